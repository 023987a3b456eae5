//! `autodiff._core`: the bytecode capture engine and thin bindings over the core crates.
//!
//! Bindings only convert and delegate: `PyTrace` wraps a traced graph (`inner`) and calls
//! the transform, simplify, print and exec crates on it.

mod capture;
mod convert;
mod fastcall;
mod optim;
mod traced;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use capture::{Err as CapErr, Tracer, Val};
use traced::{PyTrace, TraceData};

/// The real result, the trace, and the arrays read from outside the function.
type TraceOut<'py> = (
    Bound<'py, PyAny>,
    PyTrace,
    Vec<(String, Bound<'py, PyAny>, String, Bound<'py, PyAny>)>,
);

/// Traces `fn(*args, **kwargs)`. `inputs` lists `(object, name)` for the leaves of `args`
/// that become graph inputs; `flatten(result)` returns the output leaves. Returns the real
/// result and the trace.
#[pyfunction]
fn trace<'py>(
    py: Python<'py>,
    func: Bound<'py, PyAny>,
    args: Bound<'py, PyList>,
    kwargs: Bound<'py, PyDict>,
    inputs: Bound<'py, PyList>,
    markers: Bound<'py, PyDict>,
    flatten: Bound<'py, PyAny>,
) -> PyResult<TraceOut<'py>> {
    traced::shield("trace", || {
        trace_inner(py, func, args, kwargs, inputs, markers, flatten)
    })
}

fn trace_inner<'py>(
    py: Python<'py>,
    func: Bound<'py, PyAny>,
    args: Bound<'py, PyList>,
    kwargs: Bound<'py, PyDict>,
    inputs: Bound<'py, PyList>,
    markers: Bound<'py, PyDict>,
    flatten: Bound<'py, PyAny>,
) -> PyResult<TraceOut<'py>> {
    capture::INTERRUPT.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut t = Tracer::new(py, markers)?;
    for item in inputs.iter() {
        let (obj, name): (Bound<PyAny>, String) = item.extract()?;
        t.add_input(&obj, &name)?;
    }
    let a: Vec<Val> = args.iter().map(Val::new).collect();
    let kw: Vec<(String, Val)> = kwargs
        .iter()
        .map(|(k, v)| Ok((k.extract::<String>()?, Val::new(v))))
        .collect::<PyResult<_>>()?;
    // The function itself (its closure, defaults, a bound method's object, a partial's
    // arguments) is outside state: read, checked, never written.
    t.mark_foreign(&func);
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        t.call(Val::new(func.clone()), a, kw)
    }));
    if !matches!(out, Ok(Ok(_))) {
        // A trace that stops with an error leaves the `with` blocks it entered: exit them
        // (innermost first), so state such as np.errstate or a held lock does not leak
        // into the user's process.
        t.close_open_withs();
    }
    let out = match out {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(into_pyerr(py, &t, e)),
        Err(p) => {
            return Err(capture::TraceError::new_err(format!(
                "internal error (panic: {}) while tracing at {}; this is a bug in pyautodiff, \
                 please report it",
                traced::panic_text(&*p),
                t.loc()
            )))
        }
    };
    let leaves = flatten.call1((out.obj(),))?;
    let leaves = leaves.downcast::<PyList>()?;
    let mut outputs = vec![];
    for (i, leaf) in leaves.iter().enumerate() {
        let n = if leaves.len() == 1 && leaf.is(out.obj()) {
            t.sym(&out)
        } else {
            t.sym_obj(&leaf)
        };
        let n = match n {
            Some(n) => n,
            None => match t.const_node(&leaf) {
                Ok(n) => n,
                Err(_) => {
                    return Err(capture::TraceError::new_err(format!(
                        "output {i} of the traced function is a {}, not an array or number",
                        capture::type_name(&leaf)
                    )))
                }
            },
        };
        outputs.push(n);
    }
    let sources: Vec<(String, Bound<PyAny>, String, Bound<PyAny>)> = std::mem::take(&mut t.sources);
    let mut g = t.g;
    g.outputs = outputs;
    let data = TraceData {
        graph: g,
        guards: t
            .guards
            .into_iter()
            .map(|gd| (gd.node, gd.expected, gd.why))
            .collect(),
        tags: t.tags,
    };
    Ok((out.obj().clone(), PyTrace::new(data), sources))
}

fn into_pyerr(py: Python<'_>, t: &Tracer<'_>, e: CapErr) -> PyErr {
    let all = t.err_trail.clone().unwrap_or_else(|| t.where_.clone());
    let trail: Vec<&String> = all.iter().rev().filter(|w| !w.is_empty()).collect();
    // The innermost frame of the user's code (not of a library it called into).
    let at = trail
        .iter()
        .find(|s| !capture::is_library_path(s))
        .or(trail.first())
        .map(|s| s.as_str())
        .unwrap_or("<unknown>");
    let stack = trail
        .iter()
        .map(|s| format!("\n    {s}"))
        .collect::<String>();
    match e {
        CapErr::Unsupported(msg) => capture::TraceError::new_err(format!(
            "{msg}\n  at {at}\n  traced call stack (innermost first):{stack}"
        )),
        CapErr::Py(err) => {
            let note = if trail.is_empty() {
                "(raised when autodiff called the function with these arguments)".to_string()
            } else {
                format!("(while autodiff traced {at})")
            };
            let _ = err.value(py).call_method1("add_note", (note,));
            err
        }
    }
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Where the last panic on this thread happened (recorded by the module's panic hook).
pub fn last_panic_location() -> Option<String> {
    LAST_PANIC.with(|c| c.borrow_mut().take())
}

/// Every panic is caught at the entry points and becomes an exception whose message says
/// where it happened; the hook records that place instead of printing to stderr (set
/// `AUTODIFF_DEBUG_PANICS=1` to print Rust's usual message and backtrace too). The hook
/// is this extension's own (its Rust runtime is linked in), not other modules'.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        LAST_PANIC.with(|c| *c.borrow_mut() = at);
        if std::env::var_os("AUTODIFF_DEBUG_PANICS").is_some() {
            default(info);
        }
    }));
}

/// Called by the SIGINT handler installed while tracing: the engine stops at its next check.
#[pyfunction]
fn _interrupt() {
    capture::INTERRUPT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Threads the engine's large kernels run on (`AUTODIFF_NUM_THREADS`, else one per core).
#[pyfunction]
fn num_threads() -> usize {
    autodiff_lower::threads()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    install_panic_hook();
    m.add_function(wrap_pyfunction!(trace, m)?)?;
    m.add_function(wrap_pyfunction!(_interrupt, m)?)?;
    m.add_function(wrap_pyfunction!(optim::lbfgsb, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    m.add_class::<PyTrace>()?;
    m.add_class::<fastcall::CallTable>()?;
    m.add("TraceError", m.py().get_type::<capture::TraceError>())?;
    let _ = PyTuple::empty(m.py());
    Ok(())
}
