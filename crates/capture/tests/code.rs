//! Decoding: every instruction of a code object maps to the running CPython's own
//! instruction stream, with jump targets and line numbers in range.

mod common;

use autodiff_capture::code::{Code, Opc};
use pyo3::prelude::*;

const SRC: &str = "def f(x, n=3, *a, k=1, **kw):\n\
                   \x20   s = 0.0\n\
                   \x20   for i in range(n):\n\
                   \x20       if i % 2:\n\
                   \x20           s = s + x * i\n\
                   \x20       else:\n\
                   \x20           s -= x\n\
                   \x20   try:\n\
                   \x20       s = s / k\n\
                   \x20   except ZeroDivisionError:\n\
                   \x20       pass\n\
                   \x20   g = lambda y: y + s\n\
                   \x20   return [g(v) for v in a], {'s': s}\n";

fn code_of<'py>(py: Python<'py>) -> Bound<'py, PyAny> {
    let g = pyo3::types::PyDict::new(py);
    let c = std::ffi::CString::new(SRC).unwrap();
    py.run(&c, Some(&g), None).unwrap();
    g.get_item("f")
        .unwrap()
        .unwrap()
        .getattr("__code__")
        .unwrap()
}

#[test]
fn decode_matches_dis() {
    common::with_py(|py| {
        let code = code_of(py);
        let d = Code::decode(py, &code).unwrap();
        let dis: Vec<String> = py
            .import("dis")
            .unwrap()
            .call_method1("get_instructions", (&code,))
            .unwrap()
            .try_iter()
            .unwrap()
            .map(|i| i.unwrap().getattr("opname").unwrap().extract().unwrap())
            .collect();
        let ours: Vec<&str> = d.instrs.iter().map(|i| i.opname.as_str()).collect();
        assert_eq!(ours, dis);
        assert_eq!(d.name, "f");
        assert_eq!((d.argcount, d.kwonly), (2, 1));
        assert!(d.flags & autodiff_capture::code::CO_VARARGS != 0);
        assert!(d.flags & autodiff_capture::code::CO_VARKEYWORDS != 0);
        // This function uses only opcodes the engine executes.
        for i in &d.instrs {
            assert_ne!(i.op, Opc::Unknown, "{} decoded as unknown", i.opname);
            assert!(
                i.target <= d.instrs.len(),
                "{} jumps out of range",
                i.opname
            );
        }
        // A loop and a try: at least one backward jump and one exception handler.
        assert!(d
            .instrs
            .iter()
            .enumerate()
            .any(|(k, i)| i.target < k && i.op != Opc::Unknown && i.target > 0));
        assert!(!d.exc.is_empty());
        for e in &d.exc {
            assert!(e.start <= e.end && e.end <= d.instrs.len() && e.target < d.instrs.len());
        }
        // Slots: the parameters first, in order.
        assert_eq!(&d.slots[..5], &["x", "n", "k", "a", "kw"]);
        d.check_layout().unwrap();
    })
}

#[test]
fn lines_are_within_the_function() {
    common::with_py(|py| {
        let code = code_of(py);
        let d = Code::decode(py, &code).unwrap();
        let first: u32 = code.getattr("co_firstlineno").unwrap().extract().unwrap();
        let n = SRC.lines().count() as u32;
        for i in &d.instrs {
            assert!(
                (first..first + n).contains(&i.line),
                "{} at line {}",
                i.opname,
                i.line
            );
        }
    })
}
