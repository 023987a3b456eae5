//! The crate's one entry point: [`trace`] shadow-executes `func(*args, **kwargs)` and
//! returns the real result with the graph that mirrors it, or a [`CaptureError`].
//!
//! Guarantees: a trace that stops with an error exits the `with` blocks it entered; a
//! panic inside the engine becomes [`CaptureError::Internal`], never an abort; a user's
//! exception keeps its type and gains a note naming the traced file:line.

use autodiff_ir::{Graph, NodeId, Tensor};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::{is_library_path, type_name, Err as CapErr, TraceError, Tracer, Val};

/// A value read from outside the function: (kind, container, key, value). The caller
/// snapshots them and checks them on every call.
pub type Source<'py> = (String, Bound<'py, PyAny>, String, Bound<'py, PyAny>);

/// What a trace captured.
pub struct Captured<'py> {
    /// The real result of the call.
    pub result: Bound<'py, PyAny>,
    /// The graph, with `outputs` set to the leaves of `result`.
    pub graph: Graph,
    /// (node, expected value, why it was recorded): the trace is valid while each holds.
    pub guards: Vec<(NodeId, Tensor, String)>,
    /// Values named with `autodiff.tag(x, name)`.
    pub tags: Vec<(String, NodeId)>,
    pub sources: Vec<Source<'py>>,
    /// Loops rolled into loop nodes.
    pub rolled_loops: usize,
    /// A rolled loop needs the result compared with a plain run of the function.
    pub needs_plain_check: bool,
    /// See `Tracer::half_values`.
    pub half_values: bool,
    /// See `Tracer::uninit_values`.
    pub uninit_values: bool,
}

/// Why a trace stopped.
pub enum CaptureError {
    /// An exception raised by the user's code or by a call it made (Python's own type,
    /// with a note naming where the trace was).
    Raised(PyErr),
    /// A construct the engine does not support, with where and what to do.
    Unsupported(String),
    /// A bug in the engine (a caught panic).
    Internal(String),
}

impl From<CaptureError> for PyErr {
    fn from(e: CaptureError) -> PyErr {
        match e {
            CaptureError::Raised(e) => e,
            CaptureError::Unsupported(m) | CaptureError::Internal(m) => TraceError::new_err(m),
        }
    }
}

impl From<PyErr> for CaptureError {
    fn from(e: PyErr) -> CaptureError {
        CaptureError::Raised(e)
    }
}

/// What to trace: the callable, its arguments, and how the caller's values map to graph
/// inputs and outputs.
pub struct TraceCall<'py> {
    pub func: Bound<'py, PyAny>,
    pub args: Bound<'py, PyList>,
    pub kwargs: Bound<'py, PyDict>,
    /// `(object, name)` for the leaves of `args` that become graph inputs.
    pub inputs: Bound<'py, PyList>,
    /// The `autodiff` markers (`constant`, `tag`, ...) by name.
    pub markers: Bound<'py, PyDict>,
    /// `flatten(result)` returns the output leaves as a list.
    pub flatten: Bound<'py, PyAny>,
    /// Roll loops into loop nodes (also off when `AUTODIFF_ROLL_LOOPS=0`).
    pub roll: bool,
}

/// Traces `func(*args, **kwargs)`.
pub fn trace<'py>(py: Python<'py>, call: TraceCall<'py>) -> Result<Captured<'py>, CaptureError> {
    crate::INTERRUPT.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut t = Tracer::new(py, call.markers)?;
    t.roll &= call.roll;
    for item in call.inputs.iter() {
        let (obj, name): (Bound<PyAny>, String) = item.extract()?;
        t.add_input(&obj, &name)?;
    }
    let a: Vec<Val> = call.args.iter().map(Val::new).collect();
    let kw: Vec<(String, Val)> = call
        .kwargs
        .iter()
        .map(|(k, v)| Ok((k.extract::<String>()?, Val::new(v))))
        .collect::<PyResult<_>>()?;
    // The function itself (its closure, defaults, a bound method's object, a partial's
    // arguments) is outside state: read, checked, never written.
    let func = call.func;
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
        Ok(Err(e)) => return Err(located(py, &t, e)),
        Err(p) => {
            return Err(CaptureError::Internal(format!(
                "internal error (panic: {}) while tracing at {}; this is a bug in pyautodiff, \
                 please report it",
                crate::panics::panic_text(&*p),
                t.loc()
            )))
        }
    };
    let leaves = call.flatten.call1((out.obj(),))?;
    let leaves = leaves.downcast::<PyList>().map_err(PyErr::from)?;
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
                    return Err(CaptureError::Unsupported(format!(
                        "output {i} of the traced function is a {}, not an array or number",
                        type_name(&leaf)
                    )))
                }
            },
        };
        outputs.push(n);
    }
    let result = out.obj().clone();
    Ok(t.finish(result, outputs))
}

/// The engine's error, located in the user's code: the innermost frame that is not a
/// library's, and the traced call stack.
fn located(py: Python<'_>, t: &Tracer<'_>, e: CapErr) -> CaptureError {
    let all = t.err_trail.clone().unwrap_or_else(|| t.where_.clone());
    let trail: Vec<&String> = all.iter().rev().filter(|w| !w.is_empty()).collect();
    // The innermost frame of the user's code (not of a library it called into).
    let at = trail
        .iter()
        .find(|s| !is_library_path(s))
        .or(trail.first())
        .map(|s| s.as_str())
        .unwrap_or("<unknown>");
    let stack = trail
        .iter()
        .map(|s| format!("\n    {s}"))
        .collect::<String>();
    match e {
        CapErr::Unsupported(msg) => CaptureError::Unsupported(format!(
            "{msg}\n  at {at}\n  traced call stack (innermost first):{stack}"
        )),
        CapErr::Py(err) => {
            let note = if trail.is_empty() {
                "(raised when autodiff called the function with these arguments)".to_string()
            } else {
                format!("(while autodiff traced {at})")
            };
            let _ = err.value(py).call_method1("add_note", (note,));
            CaptureError::Raised(err)
        }
    }
}

impl<'py> Tracer<'py> {
    /// Ends the trace: its graph with `outputs`, guards, tags and outside reads.
    fn finish(mut self, result: Bound<'py, PyAny>, outputs: Vec<NodeId>) -> Captured<'py> {
        let sources = std::mem::take(&mut self.sources);
        let mut graph = self.g;
        graph.outputs = outputs;
        Captured {
            result,
            graph,
            guards: self
                .guards
                .into_iter()
                .map(|gd| (gd.node, gd.expected, gd.why))
                .collect(),
            tags: self.tags,
            sources,
            rolled_loops: self.rolled_loops,
            needs_plain_check: self.needs_plain_check,
            half_values: self.half_values,
            uninit_values: self.uninit_values,
        }
    }
}
