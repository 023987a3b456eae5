//! The capture stage: a CPython bytecode interpreter that shadow-executes a function.
//!
//! Every instruction runs on the real Python objects (CPython and NumPy decide all
//! semantics); when an operand is symbolic, the engine adds the mirroring IR node.
//! Guarantees:
//! - symbolic-ness is tracked per object identity for objects that are never shared
//!   singletons (arrays, NumPy scalars, floats), with every tracked object kept alive until
//!   the trace ends, and per stack/local slot for the rest (NumPy bools, Python ints); a
//!   slot-tracked value that escapes into a container, attribute, cell or `*args` is stored
//!   as a tracked 0-d array, so no decision made on it later goes unguarded;
//! - a callable in the table is handled by the table even when it is written in Python
//!   (np.mean, scipy's logsumexp); other Python functions, and NumPy's Python
//!   implementations behind `__array_function__`, are interpreted;
//! - every decision a symbolic value makes (a branch, `int(x)`, an index) becomes a guard;
//! - a callee the table does not know that receives a continuous symbolic value is an error
//!   naming it and the user's file:line, never a silent constant;
//! - in-place updates are functionalized (the object's node is replaced by an update node);
//!   writes through basic-slice views update the base; other aliasing is refused, and so
//!   is any later use of an untracked array sharing memory with an updated one.

pub mod code;
mod compose;
pub mod convert;
mod entry;
mod funcs;
mod index;
mod interp;
mod nested;
pub mod panics;
pub mod registry;
mod rolling;
mod sig;
mod table;

use std::collections::HashMap;
use std::rc::Rc;

use autodiff_ir::{DType, Graph, NodeId, Shape, SliceDim, Tensor};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyTuple};

use code::Code;
pub use entry::{trace, CaptureError, Captured, Source, TraceCall};
pub use funcs::parse_einsum;

pyo3::create_exception!(_core, TraceError, pyo3::exceptions::PyException);

/// A generator created by traced code; it runs only inside the engine. Not `unsendable`:
/// touching it from another thread must raise the `TraceError` below, not pyo3's
/// `PanicException` (it holds only an index, so any thread may see it).
#[pyclass(frozen, module = "autodiff._core")]
pub struct TracedGen {
    pub idx: usize,
}

#[pymethods]
impl TracedGen {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }
    fn __next__(&self) -> PyResult<PyObject> {
        Err(TraceError::new_err(
            "a generator made inside a traced function was iterated outside of it; \
             consume it (list(...)) inside the function",
        ))
    }
}

/// A value on the interpreter's stack or in a local slot. `obj == None` is CPython's NULL.
#[derive(Clone)]
pub struct Val<'py> {
    pub obj: Option<Bound<'py, PyAny>>,
    /// The node of a symbolic value that is not tracked by identity (bools).
    pub node: Option<NodeId>,
}

impl<'py> Val<'py> {
    pub fn new(obj: Bound<'py, PyAny>) -> Val<'py> {
        Val {
            obj: Some(obj),
            node: None,
        }
    }
    pub fn null() -> Val<'py> {
        Val {
            obj: None,
            node: None,
        }
    }
    pub fn obj(&self) -> &Bound<'py, PyAny> {
        self.obj.as_ref().expect("NULL used as a value")
    }
}

/// Errors while tracing: a Python exception raised by the user's code (which user code may
/// catch) or an unsupported construct (which it may not).
pub enum Err {
    Py(PyErr),
    Unsupported(String),
}

impl From<PyErr> for Err {
    fn from(e: PyErr) -> Err {
        Err::Py(e)
    }
}

impl From<std::convert::Infallible> for Err {
    fn from(e: std::convert::Infallible) -> Err {
        match e {}
    }
}

impl From<autodiff_ir::IrError> for Err {
    fn from(e: autodiff_ir::IrError) -> Err {
        Err::Unsupported(format!("internal graph error: {e}"))
    }
}

pub type Res<T> = Result<T, Err>;

pub fn unsupported<T>(msg: impl Into<String>) -> Res<T> {
    Err(Err::Unsupported(msg.into()))
}

/// Snapshots at each loop header of a frame (by instruction index), for loop rolling;
/// `None` for a loop left unrolled for good (too small to be worth a loop node).
pub type Watches = HashMap<usize, Option<Vec<rolling::Snap>>>;

/// A value whose node is checked on every call: the trace is valid while it holds.
pub struct Guard {
    pub node: NodeId,
    pub expected: Tensor,
    pub why: String,
}

/// How a tracked array relates to its base, for writes through views.
struct ViewOf<'py> {
    view: Bound<'py, PyAny>,
    base: Bound<'py, PyAny>,
    dims: Vec<SliceDim>,
}

/// Cached Python objects the engine compares against.
pub struct Refs<'py> {
    pub np: Bound<'py, PyModule>,
    pub ndarray: Bound<'py, PyAny>,
    pub generic: Bound<'py, PyAny>,
    pub np_bool: Bound<'py, PyAny>,
    pub ufunc: Bound<'py, PyAny>,
    pub function_type: Bound<'py, PyAny>,
    pub method_type: Bound<'py, PyAny>,
    pub cell_type: Bound<'py, PyAny>,
    pub builtin_method_type: Bound<'py, PyAny>,
    pub builtins: Bound<'py, PyModule>,
    pub operator: Bound<'py, PyModule>,
    pub binops: Vec<Bound<'py, PyAny>>,
    pub markers: Bound<'py, PyDict>,
}

/// The default bound on the nodes of one trace. A data-dependent loop unrolled 10^6 times
/// makes 2–5 million nodes and takes minutes (measured: 10^5 guarded iterations of
/// `x = x * a + b` make 5·10^5 nodes in ~20 s on a 2-core machine); real traces (unrolled
/// loops of 10^4 steps included) stay far below.
pub const DEFAULT_MAX_TRACE_NODES: usize = 1_000_000;

/// Set by the SIGINT handler that `autodiff._compile.trace` installs while tracing: the
/// KeyboardInterrupt it raises may surface inside Python code the engine calls (and be
/// dropped there), so the engine also polls this flag.
pub static INTERRUPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Lets other Python threads run, then runs pending signal handlers (an error when one
/// raised, or when [`INTERRUPT`] is set). Called every few thousand instructions or loop
/// iterations of a trace, which otherwise holds the GIL throughout. Every
/// [`YIELD_EVERY`] the GIL is released for a moment long enough for a waiting thread to
/// take it: released and retaken at once, it is retaken before a waiter wakes, so a
/// thread (a timer raising SIGINT, a progress bar) could wait for the whole trace.
pub fn poll_others(py: Python<'_>) -> PyResult<()> {
    thread_local! {
        static LAST: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
    }
    let now = std::time::Instant::now();
    let due = LAST.with(|l| match l.get() {
        Some(t) if now.duration_since(t) < YIELD_EVERY => false,
        _ => {
            l.set(Some(now));
            true
        }
    });
    if due {
        py.allow_threads(|| std::thread::sleep(std::time::Duration::from_micros(200)));
    } else {
        py.allow_threads(|| ());
    }
    py.check_signals()?;
    if INTERRUPT.swap(false, std::sync::atomic::Ordering::Relaxed) {
        return Err(pyo3::exceptions::PyKeyboardInterrupt::new_err(()));
    }
    Ok(())
}

/// How often a trace hands the GIL to waiting threads (see [`poll_others`]): 200 µs of
/// every 20 ms, 1% of the trace.
const YIELD_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// `AUTODIFF_MAX_TRACE_NODES` if set (a positive integer), else the default.
pub fn max_trace_nodes() -> usize {
    std::env::var("AUTODIFF_MAX_TRACE_NODES")
        .ok()
        .and_then(|s| s.trim().replace('_', "").parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_MAX_TRACE_NODES)
}

/// `release_dead_buffers` runs after this many bytes of arrays were tracked...
const RELEASE_EVERY_BYTES: usize = 64 << 20;
/// ...and frees arrays of at least this size.
const RELEASE_MIN_BYTES: usize = 1 << 20;

/// The state of one trace.
pub struct Tracer<'py> {
    pub py: Python<'py>,
    pub g: Graph,
    ids: HashMap<usize, NodeId>,
    keep: Vec<Bound<'py, PyAny>>,
    /// How many strong references the tracer itself holds to each object (in `keep`,
    /// `views`, `view_like`): an object whose reference count is no more than that is
    /// unreachable from the traced code (see `prune_dead_views`).
    held: HashMap<usize, usize>,
    /// Basic-slice views of tracked arrays (keyed by the view's address).
    views: HashMap<usize, ViewOf<'py>>,
    /// Tracked arrays that view another's memory (a `.base`): the only ones an in-place
    /// write can make stale besides the written array's memory root.
    view_like: Vec<Bound<'py, PyAny>>,
    /// Bytes of arrays tracked since the last `release_dead_buffers`.
    fresh_bytes: usize,
    /// Arrays whose buffers were released (see `release_dead_buffers`).
    released: std::collections::HashSet<usize>,
    /// Memory roots (outermost `.base`) of arrays updated in place: an untracked array on
    /// one of them may hold stale values and is refused as a constant.
    written_roots: std::collections::HashSet<usize>,
    pub guards: Vec<Guard>,
    /// The guards on each node (indices into `guards`): a guard already recorded is found
    /// without scanning them all (a loop of 10^5 guarded steps was quadratic).
    guards_on: HashMap<NodeId, Vec<usize>>,
    pub r: Refs<'py>,
    codes: HashMap<usize, Rc<Code<'py>>>,
    table: table::Table,
    pub depth: usize,
    /// Instructions interpreted so far (signals and the trace size are checked every
    /// `CHECK_EVERY` of them).
    pub ticks: u64,
    /// A KeyboardInterrupt (or another signal handler's exception) is on its way out: no
    /// `try` in the traced code catches it, the trace stops.
    pub interrupted: bool,
    /// The most graph nodes one trace may hold (`AUTODIFF_MAX_TRACE_NODES`).
    pub max_nodes: usize,
    /// Where the engine is in the user's code: `file:line (function)` per frame.
    pub where_: Vec<String>,
    pub generators: Vec<Option<interp::Frame<'py>>>,
    /// Values named with `autodiff.tag(x, name)`.
    pub tags: Vec<(String, NodeId)>,
    /// Values read from outside the function: (kind, container, key, value). Python
    /// snapshots them and checks them on every call.
    pub sources: Vec<(String, Bound<'py, PyAny>, String, Bound<'py, PyAny>)>,
    source_keys: std::collections::HashSet<(String, usize, String)>,
    /// Objects reached from outside the function (globals, closure cells made before the
    /// trace, attributes and items of such objects, defaults): writing to them would be a
    /// side effect that happens at trace time only, so it is refused.
    foreign: std::collections::HashSet<usize>,
    /// Cells and functions created during the trace (owned: free to write).
    owned: std::collections::HashSet<usize>,
    /// Strings made from traced values (`str(x)`, f-strings): using them as numbers again
    /// would freeze the value, so they may only be printed.
    tainted: std::collections::HashSet<usize>,
    /// The call stack when the first uncaught error happened.
    pub err_trail: Option<Vec<String>>,
    /// The `__exit__` of each `with` block entered and not yet exited, innermost last.
    pub open_withs: Vec<Bound<'py, PyAny>>,
    /// The objects of the graph inputs, in order (loop rolling evaluates the graph).
    pub input_objs: Vec<Bound<'py, PyAny>>,
    /// Side effects seen so far (writes to attributes, globals, cells and containers,
    /// mutating calls, prints, yields, caught exceptions): a loop iteration with one is
    /// never rolled.
    pub effects: u64,
    /// Branches on Python (untraced) values taken so far.
    pub branches: u64,
    /// The objects updated in place, in order.
    pub update_log: Vec<usize>,
    /// `list.append(v)` of traced values: (list, node, object), in order.
    pub append_log: Vec<(usize, NodeId, usize)>,
    /// Roll loops (see `rolling`)?
    pub roll: bool,
    /// Loops rolled in this trace.
    pub rolled_loops: usize,
    /// A rolled loop's Python-level values may differ from what was observed: the caller
    /// re-runs the function with NumPy and compares.
    pub needs_plain_check: bool,
    /// NumPy computed a value in float16 from bool or small-integer arrays (`np.exp` of a
    /// mask), which the engine holds in float64: a mismatch is explained, not "internal".
    pub half_values: bool,
    /// `np.empty`/`np.empty_like` was called: values read from uninitialized memory are
    /// constants of the trace that no other run reproduces (the nearby check skips it).
    pub uninit_values: bool,
}

/// Is this object safe to track by identity (never a shared singleton)?
fn identity_safe(r: &Refs<'_>, obj: &Bound<'_, PyAny>) -> bool {
    if obj.is_instance(&r.ndarray).unwrap_or(false) {
        return true;
    }
    if obj.is_instance(&r.np_bool).unwrap_or(false) {
        return false;
    }
    obj.is_instance(&r.generic).unwrap_or(false) || obj.is_instance_of::<PyFloat>()
}

impl<'py> Tracer<'py> {
    pub fn new(py: Python<'py>, markers: Bound<'py, PyDict>) -> PyResult<Tracer<'py>> {
        let np = py.import("numpy")?;
        let types = py.import("types")?;
        let operator = py.import("operator")?;
        let names = [
            "add",
            "and_",
            "floordiv",
            "lshift",
            "matmul",
            "mul",
            "mod",
            "or_",
            "pow",
            "rshift",
            "sub",
            "truediv",
            "xor",
            "iadd",
            "iand",
            "ifloordiv",
            "ilshift",
            "imatmul",
            "imul",
            "imod",
            "ior",
            "ipow",
            "irshift",
            "isub",
            "itruediv",
            "ixor",
        ];
        let binops = names
            .iter()
            .map(|n| operator.getattr(*n))
            .collect::<PyResult<_>>()?;
        let r = Refs {
            ndarray: np.getattr("ndarray")?,
            generic: np.getattr("generic")?,
            np_bool: np.getattr("bool_")?,
            ufunc: np.getattr("ufunc")?,
            function_type: types.getattr("FunctionType")?,
            method_type: types.getattr("MethodType")?,
            cell_type: types.getattr("CellType")?,
            builtin_method_type: types.getattr("BuiltinMethodType")?,
            builtins: py.import("builtins")?,
            operator,
            binops,
            markers,
            np,
        };
        let table = table::Table::new(&r)?;
        Ok(Tracer {
            py,
            g: Graph::new(),
            ids: HashMap::new(),
            keep: vec![],
            held: HashMap::new(),
            views: HashMap::new(),
            view_like: vec![],
            fresh_bytes: 0,
            released: Default::default(),
            written_roots: Default::default(),
            guards: vec![],
            r,
            codes: HashMap::new(),
            table,
            depth: 0,
            guards_on: HashMap::new(),
            ticks: 0,
            interrupted: false,
            max_nodes: max_trace_nodes(),
            where_: vec![],
            generators: vec![],
            tags: vec![],
            sources: vec![],
            source_keys: Default::default(),
            foreign: Default::default(),
            owned: Default::default(),
            tainted: Default::default(),
            err_trail: None,
            open_withs: vec![],
            input_objs: vec![],
            effects: 0,
            branches: 0,
            update_log: vec![],
            append_log: vec![],
            roll: rolling::enabled(),
            rolled_loops: 0,
            needs_plain_check: false,
            half_values: false,
            uninit_values: false,
        })
    }

    /// Calls `__exit__(None, None, None)` of every `with` block still open (after a trace
    /// stopped with an error), innermost first; their own errors are ignored.
    pub fn close_open_withs(&mut self) {
        while let Some(exit) = self.open_withs.pop() {
            let none = self.py.None();
            let _ = exit.call1((&none, &none, &none));
        }
    }

    /// Notes that `callee` is being called: the exit of the innermost open `with` block
    /// closes it.
    pub fn note_exit_call(&mut self, callee: &Bound<'py, PyAny>) {
        if self.open_withs.last().is_some_and(|e| e.is(callee)) {
            self.open_withs.pop();
        }
    }

    /// The user's current location, `file:line`.
    pub fn loc(&self) -> String {
        self.where_
            .last()
            .cloned()
            .unwrap_or_else(|| "<unknown>".into())
    }

    /// Registers `obj` as the graph input `name`.
    pub fn add_input(&mut self, obj: &Bound<'py, PyAny>, name: &str) -> PyResult<NodeId> {
        let (shape, dtype) = convert::shape_dtype(obj)?.ok_or_else(|| {
            let dt = obj
                .getattr("dtype")
                .map(|d| d.to_string())
                .unwrap_or_else(|_| type_name(obj));
            pyo3::exceptions::PyTypeError::new_err(format!(
                "argument '{name}' has dtype {dt}, which pyautodiff cannot trace; \
                 pass float64, float32, integer or bool arrays (e.g. np.asarray(x, dtype=float))"
            ))
        })?;
        let id = self.g.add_input(name, shape, dtype);
        self.input_objs.push(obj.clone());
        self.ids.insert(obj.as_ptr() as usize, id);
        self.hold(obj);
        Ok(id)
    }

    /// The node of a symbolic value, if it is symbolic.
    pub fn sym(&self, v: &Val<'py>) -> Option<NodeId> {
        let obj = v.obj.as_ref()?;
        self.ids.get(&(obj.as_ptr() as usize)).copied().or(v.node)
    }

    pub fn sym_obj(&self, o: &Bound<'py, PyAny>) -> Option<NodeId> {
        self.ids.get(&(o.as_ptr() as usize)).copied()
    }

    /// Does this value, or anything inside it (lists, tuples, dicts), carry a symbolic value?
    pub fn deep_sym(&self, v: &Val<'py>) -> bool {
        if self.sym(v).is_some() {
            return true;
        }
        let mut found = vec![];
        self.sym_leaves(v.clone(), 0, &mut found);
        !found.is_empty()
    }

    /// The symbolic values in `v` and in the lists, tuples and dicts it holds.
    pub fn sym_leaves(&self, v: Val<'py>, depth: usize, out: &mut Vec<Val<'py>>) {
        if self.sym(&v).is_some() {
            out.push(v);
            return;
        }
        let Some(o) = v.obj.as_ref() else { return };
        // A method bound to a traced value (`x.__getitem__`, `x.sum`) carries it.
        let tn = type_name(o);
        if (tn == "method-wrapper" || tn == "builtin_function_or_method")
            && o.getattr("__self__")
                .is_ok_and(|s| self.sym_obj(&s).is_some())
        {
            out.push(v);
            return;
        }
        if depth > 4 {
            return;
        }
        let items: Vec<Bound<'py, PyAny>> = if let Ok(t) = o.downcast::<PyTuple>() {
            t.iter().collect()
        } else if let Ok(l) = o.downcast::<PyList>() {
            l.iter().collect()
        } else if let Ok(d) = o.downcast::<PyDict>() {
            d.values().iter().collect()
        } else if let Some(d) = plain_dict(&self.r, o) {
            // a plain object holding traced arrays in its attributes (a model, a layer)
            d.values().iter().collect()
        } else if tn == "dict_values" {
            // a live view of a dict's values (`sum(d.values())`)
            match o.try_iter() {
                Ok(it) => it.filter_map(Result::ok).collect(),
                Err(_) => return,
            }
        } else {
            return;
        };
        for it in items {
            self.sym_leaves(Val::new(it), depth + 1, out);
        }
    }

    /// The node of `v`: its symbolic node, or a constant holding its current value.
    pub fn node(&mut self, v: &Val<'py>) -> Res<NodeId> {
        if let Some(n) = self.sym(v) {
            return Ok(n);
        }
        self.const_node(v.obj())
    }

    pub fn const_node(&mut self, o: &Bound<'py, PyAny>) -> Res<NodeId> {
        if let Some(n) = self.sym_obj(o) {
            return Ok(n);
        }
        self.check_not_stale(o)?;
        match convert::to_tensor(o) {
            Ok(t) => {
                let n = self.g.constant(t);
                // An array read from a global or closure prints under its variable name.
                if let Some(s) = self.sources.iter().find(|s| s.3.is(o)) {
                    if s.0 != "attr" {
                        self.g.names.entry(n).or_insert_with(|| s.2.clone());
                    }
                }
                Ok(n)
            }
            Err(_) => unsupported(format!(
                "cannot use a value of type {} in a traced computation",
                type_name(o)
            )),
        }
    }

    /// Refuses an untracked array that shares memory with an array updated in place: its
    /// real contents were written by traced values, so using it as a constant (or running
    /// NumPy on it) would bake those values into the trace.
    pub fn check_not_stale(&self, o: &Bound<'py, PyAny>) -> Res<()> {
        if self.written_roots.is_empty()
            || self.sym_obj(o).is_some()
            || !o.is_instance(&self.r.ndarray)?
        {
            return Ok(());
        }
        let root = mem_root(o)?;
        if self.written_roots.contains(&(root.as_ptr() as usize)) {
            return unsupported(
                "an array that shares memory with an array updated in place is used after the \
                 update (a view made before the array was traced, or a write through a view of \
                 an untraced array); call .copy() when making the view",
            );
        }
        Ok(())
    }

    /// [`Tracer::check_not_stale`] for the objects of values.
    pub fn check_vals_not_stale<'a>(&self, vs: impl IntoIterator<Item = &'a Val<'py>>) -> Res<()>
    where
        'py: 'a,
    {
        if self.written_roots.is_empty() {
            return Ok(());
        }
        for v in vs {
            if let Some(o) = &v.obj {
                self.check_not_stale(o)?;
            }
        }
        Ok(())
    }

    /// Marks `obj` as the value of `node` and returns it as a stack value. The node is cast
    /// and checked against the real result's dtype and shape.
    pub fn track(&mut self, obj: Bound<'py, PyAny>, node: NodeId) -> Res<Val<'py>> {
        let Some((shape, dtype)) = convert::shape_dtype(&obj)? else {
            if let Ok(dt) = obj.getattr("dtype") {
                return unsupported(format!(
                    "a computation on traced values produced an array of dtype {dt} (NumPy's \
                     promotion of the operands' types), which the engine does not support \
                     (float64, float32, integers and bool are); cast the operands first, e.g. \
                     `x.astype(np.float64)`"
                ));
            }
            return unsupported(format!(
                "a symbolic computation produced a {}, which cannot be traced",
                type_name(&obj)
            ));
        };
        let node = self.fit(node, &shape, dtype)?;
        let node = self.wrap_narrow(&obj, node)?;
        if identity_safe(&self.r, &obj) {
            let key = obj.as_ptr() as usize;
            if let Some(&old) = self.ids.get(&key) {
                if old != node {
                    // The callee returned an object that already stands for another node
                    // (e.g. `max(a, b)` returning `a`): give the new value its own object.
                    let fresh = fresh_copy(&self.r, &obj)?;
                    return self.track(fresh, node);
                }
                return Ok(Val::new(obj));
            }
            self.ids.insert(key, node);
            self.hold(&obj);
            if let Ok(n) = obj.getattr(pyo3::intern!(self.py, "nbytes")) {
                self.fresh_bytes += n.extract::<usize>().unwrap_or(0);
                if self.fresh_bytes > RELEASE_EVERY_BYTES {
                    self.fresh_bytes = 0;
                    self.release_dead_buffers()?;
                }
            }
            Ok(Val::new(obj))
        } else {
            Ok(Val {
                obj: Some(obj),
                node: Some(node),
            })
        }
    }

    /// The object to store for `v` when it leaves the stack and the locals (into a
    /// container, an attribute, a cell, a global, `*args`). A value whose node lives in its
    /// slot (a NumPy bool or a Python int, which are shared objects) would lose the node
    /// there, so it is stored as a fresh 0-d array tracked by identity instead.
    pub fn escape(&mut self, v: &Val<'py>) -> Res<Bound<'py, PyAny>> {
        match (v.node, &v.obj) {
            (Some(n), Some(o)) if self.sym_obj(o).is_none() => {
                let boxed = self.r.np.call_method1("array", (o,))?;
                Ok(self.track(boxed, n)?.obj().clone())
            }
            _ => Ok(v.obj().clone()),
        }
    }

    /// [`Tracer::escape`] for each value.
    pub fn escape_all(&mut self, vs: &[Val<'py>]) -> Res<Vec<Bound<'py, PyAny>>> {
        vs.iter().map(|v| self.escape(v)).collect()
    }

    /// Replaces the node of an existing object (functionalized in-place update), keeping
    /// basic-slice views and their bases consistent.
    pub fn update(&mut self, obj: &Bound<'py, PyAny>, node: NodeId) -> Res<()> {
        let (shape, dtype) = convert::shape_dtype(obj)?.expect("updated objects are arrays");
        let node = self.fit(node, &shape, dtype)?;
        let node = self.wrap_narrow(obj, node)?;
        let key = obj.as_ptr() as usize;
        self.update_log.push(key);
        self.prune_dead_views();
        let fresh = !self.ids.contains_key(&key);
        self.ids.insert(key, node);
        if fresh {
            self.hold(obj);
        }
        let mroot = mem_root(obj)?;
        // Propagate into the base of a view, then refresh the other views of that base.
        // (The base may be untracked: `y = np.zeros(6); y[1:3] += x[1:3]` writes through
        // the view `y[1:3]`; its base becomes the slice update of its current contents.)
        let mut root = obj.clone();
        let mut root_node = node;
        while let Some(v) = self.views.get(&(root.as_ptr() as usize)) {
            let (base, dims) = (v.base.clone(), v.dims.clone());
            let bnode = self.const_node(&base)?;
            let lens: Shape = dims.iter().map(|d| d.len).collect();
            let val = self.g.reshape(root_node, &lens)?;
            let val = self.g.cast(val, self.g.dtype(bnode))?;
            root_node = self
                .g
                .add(autodiff_ir::Op::SetSlice(dims), vec![bnode, val])?;
            if self.sym_obj(&base).is_none() {
                self.hold(&base);
            }
            self.ids.insert(base.as_ptr() as usize, root_node);
            root = base;
        }
        self.written_roots.insert(mroot.as_ptr() as usize);
        self.hold(&mroot);
        self.refresh_views(&root, obj)?;
        // Any other tracked array sharing memory with the root is now stale.
        let shares = self.r.np.getattr("shares_memory")?;
        // (only a view, or the root of the written memory, can share it)
        for k in self.view_like.iter().chain(std::iter::once(&mroot)) {
            if k.is(&root) || k.is(obj) || !k.is_instance(&self.r.ndarray)? {
                continue;
            }
            // A hidden base no traced value stands for (`np.array(x, ndmin=2)` makes one).
            if k.is(&mroot) && self.sym_obj(k).is_none() {
                continue;
            }
            if self.views.contains_key(&(k.as_ptr() as usize)) {
                continue;
            }
            if shares.call1((k, &root))?.is_truthy()? {
                return unsupported(
                    "an in-place update writes to memory that another traced array views \
                     (made by reshape, transpose or similar); call .copy() on one of them",
                );
            }
        }
        Ok(())
    }

    fn refresh_views(&mut self, root: &Bound<'py, PyAny>, skip: &Bound<'py, PyAny>) -> Res<()> {
        let children: Vec<(usize, Bound<'py, PyAny>, Vec<SliceDim>)> = self
            .views
            .iter()
            .filter(|(_, v)| v.base.is(root))
            .map(|(k, v)| (*k, v.view.clone(), v.dims.clone()))
            .collect();
        let rnode = self.const_node(root)?;
        for (key, obj, dims) in children {
            if key == skip.as_ptr() as usize {
                continue;
            }
            let s = self.g.add(autodiff_ir::Op::Slice(dims), vec![rnode])?;
            let shape: Shape = obj.getattr("shape")?.extract()?;
            let s = self.g.reshape(s, &shape)?;
            self.ids.insert(key, s);
            self.refresh_views(&obj, skip)?;
        }
        Ok(())
    }

    /// Remembers that `view` is the basic slice `dims` of `base` (a tracked view of a
    /// tracked base, or an untracked view of an owned array: a later traced write through
    /// it updates the base).
    pub fn note_view(
        &mut self,
        view: &Bound<'py, PyAny>,
        base: &Bound<'py, PyAny>,
        dims: Vec<SliceDim>,
    ) {
        if self.sym_obj(base).is_none() {
            if self.sym_obj(view).is_some() {
                return;
            }
            // Kept alive so the address is never reused while the record exists.
            self.hold(view);
        }
        *self.held.entry(view.as_ptr() as usize).or_default() += 1;
        *self.held.entry(base.as_ptr() as usize).or_default() += 1;
        let old = self.views.insert(
            view.as_ptr() as usize,
            ViewOf {
                view: view.clone(),
                base: base.clone(),
                dims,
            },
        );
        if let Some(old) = old {
            self.release(&old);
        }
    }

    /// Keeps `obj` alive for the whole trace (so that its address, a key of `ids`, is never
    /// reused), counted in `held`; an array viewing another's memory is also noted in
    /// `view_like`.
    fn hold(&mut self, obj: &Bound<'py, PyAny>) {
        let key = obj.as_ptr() as usize;
        self.keep.push(obj.clone());
        *self.held.entry(key).or_default() += 1;
        let is_view = obj.is_instance(&self.r.ndarray).unwrap_or(false)
            && obj
                .getattr(pyo3::intern!(self.py, "base"))
                .is_ok_and(|b| !b.is_none());
        if is_view {
            self.view_like.push(obj.clone());
            *self.held.entry(key).or_default() += 1;
        }
    }

    /// The references a dropped `views` record held.
    fn release(&mut self, v: &ViewOf<'py>) {
        for o in [&v.view, &v.base] {
            if let Some(c) = self.held.get_mut(&(o.as_ptr() as usize)) {
                *c = c.saturating_sub(1);
            }
        }
    }

    /// Whether nothing but the tracer references `obj` (`obj` must be one of the references
    /// counted in `held`, not a new handle): the traced code can never reach it again.
    /// References the tracer holds but does not count only make this answer no.
    fn unreachable(&self, obj: &Bound<'py, PyAny>) -> bool {
        let ours = self
            .held
            .get(&(obj.as_ptr() as usize))
            .copied()
            .unwrap_or(0);
        ours > 0 && obj.get_refcnt() as usize <= ours
    }

    /// Frees the data of large arrays the traced code can no longer reach (only the
    /// tracer's own references are left, by reference count): their values are in the
    /// graph, and NumPy can reuse the memory for the next results. A trace over arrays of
    /// 10^6 elements and more otherwise held every intermediate (memory growing with the
    /// number of operations, and a third of the time spent by the kernel zeroing fresh
    /// pages). The objects themselves stay in `keep`, shrunk to no elements, so their
    /// addresses (keys of `ids` and of the other tables) are never reused while tracing.
    fn release_dead_buffers(&mut self) -> Res<()> {
        let mut seen = std::collections::HashSet::new();
        let dead: Vec<Bound<'py, PyAny>> = self
            .keep
            .iter()
            .filter(|o| {
                let key = o.as_ptr() as usize;
                seen.insert(key)
                    && !self.released.contains(&key)
                    && !self.views.contains_key(&key)
                    && o.is_exact_instance(&self.r.ndarray)
                    && self.unreachable(o)
            })
            .cloned()
            .collect();
        let py = self.py;
        for o in dead {
            let big = o
                .getattr(pyo3::intern!(py, "nbytes"))
                .and_then(|n| n.extract::<usize>())
                .is_ok_and(|n| n >= RELEASE_MIN_BYTES);
            let flags = o.getattr(pyo3::intern!(py, "flags"))?;
            let owns = flags.getattr(pyo3::intern!(py, "owndata"))?.is_truthy()?
                && flags.getattr(pyo3::intern!(py, "writeable"))?.is_truthy()?
                && o.getattr(pyo3::intern!(py, "base"))?.is_none();
            if big && owns {
                // `__setstate__` frees the whole buffer (a `resize` to 0 would shrink it
                // in place, leaving holes just too small for the next array of its size)
                let state = (
                    1,
                    (0,),
                    o.getattr(pyo3::intern!(py, "dtype"))?,
                    false,
                    pyo3::types::PyBytes::new(py, b""),
                );
                if o.call_method1("__setstate__", (state,)).is_ok() {
                    self.released.insert(o.as_ptr() as usize);
                }
            }
        }
        Ok(())
    }

    /// Forgets the views (and view-like arrays) the traced code can no longer reach: an
    /// in-place write needs not refresh them nor check them for staleness. (Without this,
    /// `y[i] = f(y[i-1])` refreshed every earlier `y[i-1]` after each write: quadratic.)
    /// The objects stay in `keep`, so their addresses are not reused.
    fn prune_dead_views(&mut self) {
        // (a view that is the base of another view's record stays: `y[1:4][1:3]` keeps
        // the record of `y[1:4]` that links it to `y`)
        let bases: std::collections::HashSet<usize> = self
            .views
            .values()
            .map(|v| v.base.as_ptr() as usize)
            .collect();
        let dead: Vec<usize> = self
            .views
            .iter()
            .filter(|(k, v)| !bases.contains(k) && self.unreachable(&v.view))
            .map(|(k, _)| *k)
            .collect();
        for k in dead {
            if let Some(v) = self.views.remove(&k) {
                self.ids.remove(&k);
                self.release(&v);
            }
        }
        let like = std::mem::take(&mut self.view_like);
        let (dead, live): (Vec<_>, Vec<_>) = like
            .into_iter()
            .partition(|o| !self.views.contains_key(&(o.as_ptr() as usize)) && self.unreachable(o));
        self.view_like = live;
        for o in dead {
            if let Some(c) = self.held.get_mut(&(o.as_ptr() as usize)) {
                *c = c.saturating_sub(1);
            }
        }
    }

    /// Integers narrower than int64 (held as int64 in the graph) wrap around as NumPy's do:
    /// `astype(np.int8)` of 200 is -56, and int8 arithmetic is modulo 256.
    fn wrap_narrow(&mut self, obj: &Bound<'py, PyAny>, node: NodeId) -> Res<NodeId> {
        if self.g.dtype(node) != DType::I64 {
            return Ok(node);
        }
        let Ok(dt) = obj.getattr("dtype") else {
            return Ok(node);
        };
        let kind: String = dt.getattr("kind")?.extract()?;
        let size: usize = dt.getattr("itemsize")?.extract()?;
        if size >= 8 || !(kind == "i" || kind == "u") {
            return Ok(node);
        }
        let m = 2f64.powi(8 * size as i32);
        let off = if kind == "i" { m / 2.0 } else { 0.0 };
        let offn = self.g.scalar(off, DType::I64);
        let mn = self.g.scalar(m, DType::I64);
        let x = self.g.binary(autodiff_ir::BinaryOp::Add, node, offn)?;
        let r = self.g.binary(autodiff_ir::BinaryOp::Mod, x, mn)?;
        Ok(self.g.binary(autodiff_ir::BinaryOp::Sub, r, offn)?)
    }

    /// Casts `node` to `dtype` and checks its shape.
    fn fit(&mut self, node: NodeId, shape: &Shape, dtype: DType) -> Res<NodeId> {
        if self.g.shape(node) != shape {
            if self.g.shape(node).iter().product::<usize>() == shape.iter().product::<usize>() {
                let n = self.g.reshape(node, shape)?;
                return Ok(self.g.cast(n, dtype)?);
            }
            return unsupported(format!(
                "internal: traced shape {:?} differs from the real shape {:?}",
                self.g.shape(node),
                shape
            ));
        }
        Ok(self.g.cast(node, dtype)?)
    }

    /// Records that the value of `node` must equal `expected` for this trace to hold.
    pub fn guard(&mut self, node: NodeId, expected: &Bound<'py, PyAny>, why: &str) -> Res<()> {
        let t = convert::to_tensor(expected)?;
        let node = if self.g.dtype(node) != t.dtype {
            self.g.cast(node, t.dtype)?
        } else {
            node
        };
        if self.g.const_value(node).is_some() {
            return Ok(());
        }
        let why = format!("{why} at {}", self.loc());
        let on = self.guards_on.entry(node).or_default();
        if !on.iter().any(|&k| self.guards[k].expected == t) {
            on.push(self.guards.len());
            self.guards.push(Guard {
                node,
                expected: t,
                why,
            });
        }
        Ok(())
    }

    /// The 0-d bool node of a one-element value `n` (what `bool(v)` decides on).
    pub fn bool_scalar(&mut self, n: NodeId) -> Res<NodeId> {
        let nb = self.g.cast(n, DType::Bool)?;
        Ok(if self.g.shape(nb).is_empty() {
            nb
        } else {
            self.g.reshape(nb, &[])?
        })
    }

    /// The truth value of `v`, guarded when symbolic.
    pub fn truth(&mut self, v: &Val<'py>) -> Res<bool> {
        let b = v.obj().is_truthy()?;
        if let Some(n) = self.sym(v) {
            let nb = self.bool_scalar(n)?;
            let exp = pyo3::types::PyBool::new(self.py, b).to_owned().into_any();
            self.guard(nb, &exp, "a branch on a traced value")?;
        } else {
            self.branches += 1;
        }
        Ok(b)
    }

    /// Makes a symbolic discrete value (int or bool array/scalar) concrete under a guard;
    /// continuous values are refused with `what` in the message.
    pub fn concretize(&mut self, v: &Val<'py>, what: &str) -> Res<()> {
        let Some(n) = self.sym(v) else { return Ok(()) };
        if self.g.dtype(n).is_float() {
            return unsupported(format!(
                "{what} needs a concrete value, but it depends on a differentiated input; \
                 wrap it in autodiff.constant(...) if it should not be differentiated"
            ));
        }
        self.guard(n, v.obj(), what)
    }

    /// `concretize` for every traced value `v` holds (in lists, tuples and dicts too):
    /// Python decides on all of them at once (`[x > 1] == [False]`, `a in [x[0], 2]`).
    pub fn concretize_deep(&mut self, v: &Val<'py>, what: &str) -> Res<()> {
        let mut found = vec![];
        self.sym_leaves(v.clone(), 0, &mut found);
        for leaf in found {
            self.concretize(&leaf, what)?;
        }
        Ok(())
    }

    /// Remembers that an object from outside the function lacks attribute `key`
    /// (`getattr(obj, key, default)`, `hasattr`): each call checks it is still absent.
    pub fn note_missing(&mut self, o: &Bound<'py, PyAny>, key: &str) -> Res<()> {
        if !self.is_foreign(o) || o.is_instance_of::<PyModule>() {
            return Ok(());
        }
        if let Some(s) = self.r.markers.get_item("_sentinel")? {
            self.note_source("attr", o, key, &s)?;
        }
        Ok(())
    }

    /// Remembers a value read from outside the function (a global, a closure cell, an
    /// attribute of an object that is not an argument, a default argument): it is a
    /// constant of the trace, so each call checks that it still holds (arrays: same
    /// contents; scalars and strings: same value; containers: same items, deeply; user
    /// functions and objects: same identity). The value is also marked foreign (writes to
    /// it are refused). Values that are not data (modules, classes, NumPy functions) are
    /// not recorded, so looking up `np.sum` costs nothing per call.
    pub fn note_source(
        &mut self,
        kind: &str,
        container: &Bound<'py, PyAny>,
        key: &str,
        v: &Bound<'py, PyAny>,
    ) -> Res<()> {
        if self.sym_obj(v).is_some() {
            return Ok(());
        }
        self.mark_foreign(v);
        if !self.is_data(kind, container, key, v)? {
            return Ok(());
        }
        let k = (
            kind.to_string(),
            container.as_ptr() as usize,
            key.to_string(),
        );
        if !self.source_keys.insert(k) {
            return Ok(());
        }
        self.hold(container);
        self.sources.push((
            kind.to_string(),
            container.clone(),
            key.to_string(),
            v.clone(),
        ));
        Ok(())
    }

    /// Is `v` (read as `kind` from `container`) a value that can change a result?
    fn is_data(
        &self,
        kind: &str,
        container: &Bound<'py, PyAny>,
        key: &str,
        v: &Bound<'py, PyAny>,
    ) -> PyResult<bool> {
        if self
            .r
            .markers
            .get_item("_sentinel")
            .is_ok_and(|s| s.is_some_and(|s| s.is(v)))
        {
            return Ok(true); // an absent attribute (`note_missing`)
        }
        if type_name(v) == "_Environ" {
            return Ok(true); // `os.environ`: read by the function, changed by the process
        }
        if v.is_none()
            || v.is_instance(&self.r.ndarray)?
            || v.is_instance(&self.r.generic)?
            || v.is_instance_of::<pyo3::types::PyBool>()
            || v.is_instance_of::<pyo3::types::PyInt>()
            || v.is_instance_of::<PyFloat>()
            || v.is_instance_of::<pyo3::types::PyComplex>()
            || v.is_instance_of::<pyo3::types::PyString>()
            || v.is_instance_of::<pyo3::types::PyBytes>()
            || v.is_instance_of::<PyTuple>()
            || v.is_instance_of::<PyList>()
            || v.is_instance_of::<PyDict>()
            || v.is_instance_of::<pyo3::types::PySet>()
            || v.is_instance_of::<pyo3::types::PyFrozenSet>()
        {
            // Attributes of library modules (np.pi, np.newaxis) never change.
            return Ok(!(kind == "attr" && library_module(container)));
        }
        if v.is_instance_of::<PyModule>() {
            return Ok(false);
        }
        if v.is_instance_of::<pyo3::types::PyType>() {
            // A user class held in a global or a closure variable may be rebound.
            return Ok(matches!(kind, "global" | "cell") && !library_object(v));
        }
        let user_fn = v.is_instance(&self.r.function_type)?
            && !self.owned.contains(&(v.as_ptr() as usize))
            && !library_object(v);
        let user_obj = plain_dict(&self.r, v).is_some() && !library_object(v);
        match kind {
            // A global or a closure variable rebound to another function or object (a
            // library function too: `act = np.tanh`, later `act = np.sin`).
            "global" | "cell" => Ok(user_fn
                || user_obj
                || v.is_instance(&self.r.method_type)?
                || type_name(v) == "partial"
                || v.is_callable()),
            // An object stored in an attribute (not made afresh by each access), or a
            // callable stored in an object's or a class's own namespace (`self.activation
            // = np.tanh`, a method patched on the class): checked by identity.
            _ => {
                let stored = |c: &Bound<'py, PyAny>| {
                    c.getattr("__dict__")
                        .ok()
                        .and_then(|d| d.get_item(key).ok())
                        .is_some_and(|x| x.is(v))
                };
                Ok((user_obj
                    && plain_dict(&self.r, container)
                        .and_then(|d| d.get_item(key).ok().flatten())
                        .is_some_and(|x| x.is(v)))
                    || (v.is_callable() && !library_module(container) && stored(container))
                    // a method bound to the object: an instance attribute set later would
                    // hide it (`m.act = lambda z: ...`); compared by function and object
                    || (v.is_instance(&self.r.method_type)?
                        && v.getattr("__self__").is_ok_and(|s| s.is(container))
                        && !library_object(v)))
            }
        }
    }

    /// Marks an object reached from outside the function (see `foreign`).
    pub fn mark_foreign(&mut self, v: &Bound<'py, PyAny>) {
        if v.is_none()
            || v.is_instance_of::<PyFloat>()
            || v.is_instance_of::<pyo3::types::PyInt>()
            || v.is_instance_of::<pyo3::types::PyString>()
            || self.sym_obj(v).is_some()
        {
            return;
        }
        if self.foreign.insert(v.as_ptr() as usize) {
            self.hold(v);
        }
    }

    /// Was `o` (or, for an array, the array whose memory it views) reached from outside?
    pub fn is_foreign(&self, o: &Bound<'py, PyAny>) -> bool {
        if o.is_instance_of::<PyModule>()
            || o.is_instance_of::<pyo3::types::PyType>()
            || is_namespace(o)
        {
            return true;
        }
        let mut cur = o.clone();
        for _ in 0..32 {
            if self.foreign.contains(&(cur.as_ptr() as usize)) {
                return true;
            }
            if !cur.is_instance(&self.r.ndarray).unwrap_or(false) {
                return false;
            }
            match cur.getattr("base") {
                Ok(b) if !b.is_none() => cur = b,
                _ => return false,
            }
        }
        false
    }

    /// Refuses a write into an object the function does not own (`what` names the write).
    pub fn check_owned(&self, o: &Bound<'py, PyAny>, what: &str) -> Res<()> {
        if self.in_library() || !self.is_foreign(o) {
            return Ok(());
        }
        unsupported(format!(
            "{what} writes to {} that the traced function does not own (it was reached \
             from a global, a closure variable, a default argument or an attribute of an \
             object that is not an argument). The write would happen once, at trace time, \
             and not on later calls. Pass the object in as an argument and return the new \
             value instead, or do the update outside the traced function",
            self.describe_foreign(o)
        ))
    }

    /// Is the engine running code of the standard library or an installed package (not
    /// the user's)? Their bookkeeping writes (`warnings.catch_warnings`, `np.errstate`)
    /// are not the user's side effects; writes the user's code makes are checked where it
    /// makes them.
    pub fn in_library(&self) -> bool {
        self.where_.last().is_some_and(|w| is_library_path(w))
    }

    /// Names a foreign object by where it was read (`the global 'G' (a list)`), else by type.
    fn describe_foreign(&self, o: &Bound<'py, PyAny>) -> String {
        if is_namespace(o) {
            let m = o
                .get_item("__name__")
                .map(|n| n.to_string())
                .unwrap_or_default();
            return format!("the globals of module '{m}'");
        }
        let mut cur = o.clone();
        for _ in 0..32 {
            if let Some(s) = self.sources.iter().find(|s| s.3.is(&cur)) {
                let kind = match s.0.as_str() {
                    "global" => "the global",
                    "cell" => "the closure variable",
                    _ => "the attribute",
                };
                let view = if cur.is(o) { "" } else { "a view of " };
                return format!("{view}{kind} '{}' (a {})", s.2, type_name(&cur));
            }
            match cur.getattr("base") {
                Ok(b) if !b.is_none() && cur.is_instance(&self.r.ndarray).unwrap_or(false) => {
                    cur = b
                }
                _ => break,
            }
        }
        format!("an object of type {}", type_name(o))
    }

    /// Records that a cell or function was made during the trace.
    pub fn note_owned(&mut self, o: &Bound<'py, PyAny>) {
        if self.owned.insert(o.as_ptr() as usize) {
            self.hold(o);
        }
    }

    pub fn is_owned(&self, o: &Bound<'py, PyAny>) -> bool {
        self.owned.contains(&(o.as_ptr() as usize))
    }

    /// Marks a string made from a traced value.
    pub fn taint(&mut self, s: &Bound<'py, PyAny>) {
        if s.is_instance_of::<pyo3::types::PyString>() && self.tainted.insert(s.as_ptr() as usize) {
            self.hold(s);
        }
    }

    pub fn is_tainted(&self, s: &Bound<'py, PyAny>) -> bool {
        !self.tainted.is_empty() && self.tainted.contains(&(s.as_ptr() as usize))
    }

    /// Gives a traced value the user's variable name (for printing), first name wins.
    pub fn name_value(&mut self, v: &Val<'py>, name: &str) {
        if name.starts_with('.') || name.starts_with('_') {
            return;
        }
        if let Some(n) = self.sym(v) {
            if !matches!(
                self.g.node(n).op,
                autodiff_ir::Op::Input(_) | autodiff_ir::Op::Const(_)
            ) {
                self.g.names.entry(n).or_insert_with(|| name.to_string());
            }
        }
    }

    pub fn code(&mut self, code: &Bound<'py, PyAny>) -> Res<Rc<Code<'py>>> {
        let key = code.as_ptr() as usize;
        if let Some(c) = self.codes.get(&key) {
            return Ok(c.clone());
        }
        let c = Code::decode(self.py, code)?;
        c.check_layout()?;
        let c = Rc::new(c);
        self.codes.insert(key, c.clone());
        self.hold(code);
        Ok(c)
    }
}

/// The `__dict__` of an instance of a user class (not of modules, classes or functions).
fn plain_dict<'py>(r: &Refs<'py>, o: &Bound<'py, PyAny>) -> Option<Bound<'py, PyDict>> {
    if o.is_instance_of::<PyModule>()
        || o.is_instance_of::<pyo3::types::PyType>()
        || o.is_instance(&r.function_type).unwrap_or(true)
        || o.is_instance(&r.ndarray).unwrap_or(true)
    {
        return None;
    }
    o.getattr("__dict__").ok()?.downcast_into::<PyDict>().ok()
}

/// A module's namespace dict (`globals()`, `vars(module)`, `module.__dict__`).
pub fn is_namespace(o: &Bound<'_, PyAny>) -> bool {
    o.downcast::<PyDict>().is_ok_and(|d| {
        d.contains("__name__").unwrap_or(false)
            && (d.contains("__builtins__").unwrap_or(false)
                || d.contains("__spec__").unwrap_or(false))
    })
}

/// A location (`file:line in f`) in the standard library or an installed package.
pub fn is_library_path(w: &str) -> bool {
    w.contains("/site-packages/") || w.contains("/lib/python3")
}

/// Is this a module of NumPy, SciPy or the standard library (whose data never changes)?
fn library_module(o: &Bound<'_, PyAny>) -> bool {
    if !o.is_instance_of::<PyModule>() {
        return false;
    }
    let name: String = o
        .getattr("__name__")
        .and_then(|n| n.extract())
        .unwrap_or_default();
    let top = name.split('.').next().unwrap_or("");
    matches!(
        top,
        "numpy" | "scipy" | "math" | "cmath" | "builtins" | "operator" | "functools" | "sys"
    )
}

/// Is this a function or object of NumPy, SciPy or the standard library?
fn library_object(o: &Bound<'_, PyAny>) -> bool {
    let m: String = o
        .getattr("__module__")
        .and_then(|n| n.extract())
        .or_else(|_| o.get_type().getattr("__module__").and_then(|n| n.extract()))
        .unwrap_or_default();
    let top = m.split('.').next().unwrap_or("");
    matches!(
        top,
        "numpy" | "scipy" | "math" | "builtins" | "functools" | "operator" | "autodiff"
    )
}

/// `type(o).__name__`.
pub fn type_name(o: &Bound<'_, PyAny>) -> String {
    o.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The array that owns the memory of `o` (the end of its `.base` chain).
fn mem_root<'py>(o: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let mut root = o.clone();
    loop {
        let b = root.getattr("base")?;
        if b.is_none() || !b.hasattr("base")? {
            return Ok(root);
        }
        root = b;
    }
}

/// A new object equal to `o` (arrays copied, scalars re-boxed).
fn fresh_copy<'py>(r: &Refs<'py>, o: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if o.is_instance(&r.ndarray)? {
        return o.call_method0("copy");
    }
    if o.is_instance(&r.generic)? {
        return o.get_type().call1((o,)).and_then(|x| {
            if x.is(o) {
                r.np.getattr("float64")?.call1((o,))
            } else {
                Ok(x)
            }
        });
    }
    r.np.getattr("float64")?.call1((o,))
}
