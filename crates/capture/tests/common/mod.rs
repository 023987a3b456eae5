//! Shared setup of the crate's tests: an embedded CPython that can import NumPy, and a
//! helper that traces a Python lambda and evaluates its graph.
#![allow(dead_code)]

use autodiff_capture::{trace, CaptureError, Captured, TraceCall};
use autodiff_ir::Tensor;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// Runs `f` with the GIL, with the workspace's `.venv` (or `$VIRTUAL_ENV`) on `sys.path`
/// so that NumPy imports in the embedded interpreter.
pub fn with_py<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    Python::with_gil(|py| {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let code = format!(
            "import sys, glob, os\n\
             for d in [os.environ.get('VIRTUAL_ENV', ''), r'{root}/.venv']:\n\
             \x20   for p in glob.glob(os.path.join(d, 'lib', 'python3*', 'site-packages')):\n\
             \x20       if p not in sys.path: sys.path.append(p)\n"
        );
        let c = std::ffi::CString::new(code).unwrap();
        py.run(&c, None, None).unwrap();
        py.import("numpy")
            .expect("NumPy must be importable (create the workspace .venv, see README)");
        f(py)
    })
}

/// Evaluates a Python expression.
pub fn eval<'py>(py: Python<'py>, src: &str) -> Bound<'py, PyAny> {
    let g = PyDict::new(py);
    g.set_item("np", py.import("numpy").unwrap()).unwrap();
    let c = std::ffi::CString::new(src).unwrap();
    py.eval(&c, Some(&g), None)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
}

/// Traces `f(x)` with `x` the graph input.
pub fn capture<'py>(
    py: Python<'py>,
    f: &str,
    x: &Bound<'py, PyAny>,
) -> Result<Captured<'py>, CaptureError> {
    let func = eval(py, f);
    let flatten = eval(
        py,
        "lambda r: list(r) if isinstance(r, (tuple, list)) else [r]",
    );
    let inputs = PyList::new(py, [(x.clone(), "x")]).unwrap();
    trace(
        py,
        TraceCall {
            func,
            args: PyList::new(py, [x.clone()]).unwrap(),
            kwargs: PyDict::new(py),
            inputs,
            markers: PyDict::new(py),
            flatten,
            roll: true,
        },
    )
}

/// Traces `f(x)`, evaluates the graph at `x`, and returns (graph value, NumPy's value).
pub fn graph_and_numpy(py: Python<'_>, f: &str, x: &str) -> (Tensor, Tensor) {
    let x = eval(py, x);
    let c = capture(py, f, &x).unwrap_or_else(|e| panic!("{f}: {}", PyErr::from(e)));
    let xin = autodiff_capture::convert::to_tensor(&x).unwrap();
    let out = autodiff_exec::eval(&c.graph, &[xin], &c.graph.outputs).unwrap();
    let want = autodiff_capture::convert::to_tensor(&c.result).unwrap();
    (out.into_iter().next().unwrap(), want)
}

/// Bit-for-bit equality (NaN equals NaN, -0.0 differs from 0.0).
pub fn assert_same(f: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape, want.shape, "{f}: shapes");
    let bits = |t: &Tensor| t.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let close = got
        .data
        .iter()
        .zip(&want.data)
        .all(|(a, b)| a.to_bits() == b.to_bits() || (a - b).abs() <= 1e-12 * (1.0 + b.abs()));
    assert!(
        close,
        "{f}: got {:?}, NumPy {:?} ({:?} vs {:?})",
        got.data,
        want.data,
        bits(got),
        bits(want)
    );
}
