//! `PyTrace`: a traced graph with its guards, as a Python object. Thin: each method
//! converts arguments, calls a core crate and converts back.

use autodiff_ir::{DType, Graph, NodeId, Tensor};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use autodiff_capture::convert;

/// The Rust side of a trace: graph (with `outputs`), guards and tagged values.
#[derive(Clone)]
pub struct TraceData {
    pub graph: Graph,
    /// (node, expected value, why it was recorded)
    pub guards: Vec<(NodeId, Tensor, String)>,
    pub tags: Vec<(String, NodeId)>,
    /// Loops the capture rolled (kept by the traces derived from this one).
    pub rolled: Rolled,
}

/// What loop rolling did in a trace.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rolled {
    pub loops: usize,
    pub needs_plain_check: bool,
    /// NumPy computed some value in float16 from bool/small-int arrays (see capture).
    pub half_values: bool,
    /// `np.empty` was called while tracing (see capture).
    pub uninit_values: bool,
}

#[pyclass(name = "Trace", module = "autodiff._core", frozen)]
pub struct PyTrace {
    inner: TraceData,
    /// The fast compiled form of guards + outputs, made on the first `run`.
    program: std::sync::OnceLock<Result<autodiff_lower::Program, String>>,
}

/// Runs `f`, turning a panic (an internal bug) into an `autodiff.TraceError` that says so,
/// instead of pyo3's `PanicException` (which `except Exception` does not catch).
pub fn shield<T>(what: &str, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = panic_text(&*p);
            Err(autodiff_capture::TraceError::new_err(format!(
                "internal error in {what}: {msg}. This is a bug in pyautodiff; please report it"
            )))
        }
    }
}

pub use autodiff_capture::panics::panic_text;

/// An input of the fast path: a borrowed NumPy buffer or a converted tensor.
enum Arg {
    Borrowed(PyBuffer<f64>),
    Owned(Tensor),
}

impl Arg {
    fn data(&self) -> &[f64] {
        match self {
            // SAFETY: the buffer is a C-contiguous float64 array of `item_count` elements,
            // kept alive (and its memory pinned) by the `PyBuffer` for the slice's lifetime.
            Arg::Borrowed(b) => unsafe {
                std::slice::from_raw_parts(b.buf_ptr() as *const f64, b.item_count())
            },
            Arg::Owned(t) => &t.data,
        }
    }
}

/// The outputs, or `None` and the index of the first failing guard.
type RunResult<'py> = (Option<Vec<Bound<'py, PyAny>>>, Option<usize>);

/// An evaluation error as the exception NumPy raises for the same input: linear algebra
/// on a singular or non-positive-definite matrix is `numpy.linalg.LinAlgError` (as at the
/// first, traced call, where NumPy itself raised), anything else `ValueError`.
pub(crate) fn eval_err(py: Python<'_>, e: impl std::fmt::Display) -> PyErr {
    let msg = format!("evaluation failed: {e}");
    if msg.contains(autodiff_ir::mem::TOO_LARGE) {
        return PyMemoryError::new_err(msg);
    }
    let linalg = ["singular", "positive definite", "positive-definite"]
        .iter()
        .any(|w| msg.contains(w));
    if linalg {
        if let Ok(cls) = py
            .import("numpy.linalg")
            .and_then(|m| m.getattr("LinAlgError"))
        {
            if let Ok(v) = cls.call1((msg.clone(),)) {
                return PyErr::from_value(v);
            }
        }
    }
    PyValueError::new_err(msg)
}

/// A transform that cannot differentiate something (a derivative rule the IR lacks): a
/// `TraceError` with the user's file:line (the rule's error carries it).
fn transform_err(e: impl std::fmt::Display) -> PyErr {
    let e = e.to_string();
    let (what, loc) = match e.split_once("\n  at ") {
        Some((w, l)) => (w.to_string(), format!("\n  at {l}")),
        None => (e, String::new()),
    };
    autodiff_capture::TraceError::new_err(format!(
        "cannot differentiate: {what}. If this value's derivative is not needed, keep it \
         out of the derivative with autodiff.constant(...){loc}"
    ))
}

fn ir_err(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

impl PyTrace {
    pub fn new(inner: TraceData) -> PyTrace {
        PyTrace {
            inner,
            program: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn data(&self) -> &TraceData {
        &self.inner
    }

    /// The compiled program of guards + outputs (what `run` executes).
    pub(crate) fn run_program(&self) -> PyResult<&autodiff_lower::Program> {
        let g = &self.inner.graph;
        let mut want: Vec<NodeId> = self.inner.guards.iter().map(|x| x.0).collect();
        want.extend(&g.outputs);
        self.program(&want)
    }

    fn tensors(&self, inputs: &Bound<'_, PyList>) -> PyResult<Vec<Tensor>> {
        let g = &self.inner.graph;
        if inputs.len() != g.inputs.len() {
            return Err(PyTypeError::new_err(format!(
                "expected {} array arguments, got {}",
                g.inputs.len(),
                inputs.len()
            )));
        }
        let mut out = vec![];
        for (k, obj) in inputs.iter().enumerate() {
            let t = convert::to_tensor(&obj)?;
            let want = g.shape(g.inputs[k]);
            if &t.shape != want {
                return Err(PyValueError::new_err(format!(
                    "argument '{}' has shape {:?}, but the trace expects {:?}",
                    g.input_names[k], t.shape, want
                )));
            }
            let dt = g.dtype(g.inputs[k]);
            out.push(if t.dtype == dt {
                t
            } else {
                Tensor::new(dt, t.shape, t.data)
            });
        }
        Ok(out)
    }

    /// The inputs for the fast path: C-contiguous float64 arrays are borrowed through the
    /// buffer protocol (no copy); anything else is converted.
    fn args(&self, inputs: &Bound<'_, PyList>) -> PyResult<Vec<Arg>> {
        let g = &self.inner.graph;
        if inputs.len() != g.inputs.len() {
            return self
                .tensors(inputs)
                .map(|v| v.into_iter().map(Arg::Owned).collect());
        }
        let mut out = Vec::with_capacity(inputs.len());
        for (k, obj) in inputs.iter().enumerate() {
            let node = g.inputs[k];
            let borrowed = match PyBuffer::<f64>::get(&obj) {
                Ok(b)
                    if g.dtype(node) == DType::F64
                        && b.is_c_contiguous()
                        && b.dimensions() > 0
                        && b.shape() == g.shape(node).as_slice() =>
                {
                    Some(b)
                }
                _ => None,
            };
            out.push(match borrowed {
                Some(b) => Arg::Borrowed(b),
                None => {
                    let one = PyList::new(inputs.py(), [obj])?;
                    Arg::Owned(self.tensor_at(k, &one)?)
                }
            });
        }
        Ok(out)
    }

    /// Converts input `k` (given as a one-element list) with the checks of `tensors`.
    fn tensor_at(&self, k: usize, one: &Bound<'_, PyList>) -> PyResult<Tensor> {
        let g = &self.inner.graph;
        let t = convert::to_tensor(&one.get_item(0)?)?;
        let want = g.shape(g.inputs[k]);
        if &t.shape != want {
            return Err(PyValueError::new_err(format!(
                "argument '{}' has shape {:?}, but the trace expects {:?}",
                g.input_names[k], t.shape, want
            )));
        }
        let dt = g.dtype(g.inputs[k]);
        Ok(if t.dtype == dt {
            t
        } else {
            Tensor::new(dt, t.shape, t.data)
        })
    }

    /// The compiled program for guards + outputs, built on first use.
    fn program(&self, want: &[NodeId]) -> PyResult<&autodiff_lower::Program> {
        // Execution runs the simplified graph (cheapest form; same values, property-tested).
        let p = self.program.get_or_init(|| {
            // A panic while compiling is kept as this trace's error (the lock is never
            // left half-initialized, and every later call reports the same error).
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let (sg, outs) = autodiff_simplify::simplify(&self.inner.graph, want);
                autodiff_lower::Program::compile(&sg, &outs).map_err(|e| e.to_string())
            }))
            .unwrap_or_else(|p| {
                Err(format!(
                    "internal error (panic: {}); this is a bug in pyautodiff, please report it",
                    panic_text(&*p)
                ))
            })
        });
        p.as_ref().map_err(|e| {
            if e.contains(autodiff_ir::mem::TOO_LARGE) {
                PyMemoryError::new_err(e.clone())
            } else {
                PyValueError::new_err(format!("compiling the trace failed: {e}"))
            }
        })
    }

    fn derived(&self, graph: Graph) -> PyTrace {
        PyTrace::new(TraceData {
            graph,
            guards: self.inner.guards.clone(),
            tags: self.inner.tags.clone(),
            rolled: self.inner.rolled,
        })
    }

    /// Nodes named by `wrt`: ints are input positions, strings are input names or tags.
    /// The graph to differentiate in reverse mode, and the `wrt` nodes in it: with
    /// `AUTODIFF_CHECKPOINT_LOOPS=N`, loops of at least N trips are split into ⌈√T⌉-trip
    /// segments first (`autodiff_ir::loops::segment_loops`: the same values; reverse mode
    /// then stores O(√T) carries instead of O(T), for about one more run of the loop).
    fn for_reverse(&self, wrt: Vec<NodeId>) -> PyResult<(Graph, Vec<NodeId>)> {
        let g = &self.inner.graph;
        let min = std::env::var("AUTODIFF_CHECKPOINT_LOOPS")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|&n| n > 0);
        let inputs: Option<Vec<usize>> = wrt
            .iter()
            .map(|w| g.inputs.iter().position(|i| i == w))
            .collect();
        match (min, inputs) {
            (Some(min), Some(ks)) => {
                let s = autodiff_ir::loops::segment_loops(g, min).map_err(ir_err)?;
                let wrt = ks.iter().map(|&k| s.inputs[k]).collect();
                Ok((s, wrt))
            }
            _ => Ok((g.clone(), wrt)),
        }
    }

    fn wrt_nodes(&self, wrt: &Bound<'_, PyList>) -> PyResult<Vec<NodeId>> {
        let g = &self.inner.graph;
        let mut out = vec![];
        for w in wrt.iter() {
            if let Ok(i) = w.extract::<usize>() {
                out.push(
                    *g.inputs
                        .get(i)
                        .ok_or_else(|| PyValueError::new_err(format!("no input {i}")))?,
                );
            } else {
                let name: String = w.extract()?;
                if let Some(k) = g.input_names.iter().position(|n| *n == name) {
                    out.push(g.inputs[k]);
                } else if let Some((_, n)) = self.inner.tags.iter().rev().find(|(t, _)| *t == name)
                {
                    out.push(*n);
                } else {
                    return Err(PyValueError::new_err(format!(
                        "'{name}' is neither an argument nor a tag of the function"
                    )));
                }
            }
        }
        Ok(out)
    }

    /// The graph of the outputs, simplified, with guards dropped (for printing).
    fn for_print(&self) -> (Graph, Vec<NodeId>) {
        let g = &self.inner.graph;
        autodiff_simplify::simplify_for_print(g, &g.outputs)
    }
}

#[pymethods]
impl PyTrace {
    /// Loops rolled into loop nodes when this trace was captured.
    #[getter]
    fn rolled_loops(&self) -> usize {
        self.inner.rolled.loops
    }

    /// A rolled loop's result must be compared with a plain run of the function.
    #[getter]
    fn needs_plain_check(&self) -> bool {
        self.inner.rolled.needs_plain_check
    }

    /// NumPy computed some value of the trace in float16 from bool or small-integer arrays.
    #[getter]
    fn half_values(&self) -> bool {
        self.inner.rolled.half_values
    }

    /// `np.empty`/`np.empty_like` was called while tracing (uninitialized values).
    #[getter]
    fn uninit_values(&self) -> bool {
        self.inner.rolled.uninit_values
    }

    #[getter]
    fn n_inputs(&self) -> usize {
        self.inner.graph.inputs.len()
    }

    #[getter]
    fn n_outputs(&self) -> usize {
        self.inner.graph.outputs.len()
    }

    #[getter]
    fn input_names(&self) -> Vec<String> {
        self.inner.graph.input_names.clone()
    }

    #[getter]
    fn tags(&self) -> Vec<String> {
        self.inner.tags.iter().map(|(t, _)| t.clone()).collect()
    }

    /// Why each guard exists (`"a branch on a traced value at f.py:3 in f"`).
    #[getter]
    fn guards(&self) -> Vec<String> {
        self.inner.guards.iter().map(|g| g.2.clone()).collect()
    }

    /// How the fast path runs this trace: kernels, fused groups, buffers.
    fn program_stats(&self) -> PyResult<String> {
        shield("program_stats", || {
            let g = &self.inner.graph;
            let mut want: Vec<NodeId> = self.inner.guards.iter().map(|x| x.0).collect();
            want.extend(&g.outputs);
            Ok(self.program(&want)?.stats())
        })
    }

    /// Nodes the outputs need.
    fn node_count(&self) -> PyResult<usize> {
        shield("node_count", || {
            let g = &self.inner.graph;
            Ok(autodiff_simplify::node_count(g, &g.outputs))
        })
    }

    /// Whether the graph holds a Cholesky factorization: it reads one triangle of its
    /// operand (as NumPy does) while its derivative is that of the symmetric part, so only
    /// symmetric directions can check it by finite differences.
    fn has_cholesky(&self) -> bool {
        let g = &self.inner.graph;
        g.nodes()
            .iter()
            .any(|n| matches!(n.op, autodiff_ir::Op::Cholesky))
    }

    /// Whether any value jumps somewhere (comparisons — a `where`'s condition, a branch's
    /// guard —, floor/ceil/rint/sign, modulo, integer division, casts to int or bool), loop
    /// bodies included: with jumps (dense ones, say, in a long loop whose branch chatters)
    /// finite differences can agree with each other and still not measure the derivative
    /// the chain rule gives, that of the pieces.
    fn has_jumps(&self) -> bool {
        fn jumps(g: &Graph) -> bool {
            use autodiff_ir::{BinaryOp as B, Op, UnaryOp as U};
            g.nodes().iter().any(|n| match &n.op {
                Op::Binary(B::Lt | B::Le | B::Gt | B::Ge | B::Eq | B::Ne)
                | Op::Binary(B::Mod | B::FloorDiv)
                | Op::Unary(U::Floor | U::Ceil | U::Round | U::Sign) => true,
                Op::Cast(d) => !d.is_float(),
                Op::Loop(spec) => jumps(&spec.body),
                _ => false,
            })
        }
        jumps(&self.inner.graph)
    }

    /// Whether the graph holds a `stop_gradient` (`autodiff.constant`): its derivative is
    /// not that of its values, so finite differences of the values cannot check it.
    fn stops_gradient(&self) -> bool {
        let g = &self.inner.graph;
        g.nodes().iter().any(|n| {
            matches!(
                n.op,
                autodiff_ir::Op::Unary(autodiff_ir::UnaryOp::StopGradient)
            )
        })
    }

    /// Whether any value is float32: finite differences of a graph that rounds to float32
    /// somewhere are too noisy at float64 step sizes to judge a derivative.
    fn low_precision(&self) -> bool {
        let g = &self.inner.graph;
        g.nodes().iter().any(|n| n.dtype == DType::F32)
    }

    /// Output shapes.
    fn output_shapes(&self) -> Vec<Vec<usize>> {
        let g = &self.inner.graph;
        g.outputs.iter().map(|o| g.shape(*o).clone()).collect()
    }

    fn output_dtypes(&self) -> Vec<String> {
        let g = &self.inner.graph;
        g.outputs
            .iter()
            .map(|o| g.dtype(*o).name().to_string())
            .collect()
    }

    fn input_dtypes(&self) -> Vec<String> {
        let g = &self.inner.graph;
        g.inputs
            .iter()
            .map(|o| g.dtype(*o).name().to_string())
            .collect()
    }

    /// Evaluates the outputs; `None` if a guard fails (then the index of the first failing
    /// guard is returned as the second element). The compiled fast path (`autodiff-lower`)
    /// runs by default; `reference=True` uses the reference evaluator (the oracle).
    #[pyo3(signature = (inputs, reference=false))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        inputs: Bound<'py, PyList>,
        reference: bool,
    ) -> PyResult<RunResult<'py>> {
        shield("run", || -> PyResult<RunResult<'py>> {
            let g = &self.inner.graph;
            let mut want: Vec<NodeId> = self.inner.guards.iter().map(|x| x.0).collect();
            want.extend(&g.outputs);
            let vals = if reference {
                let ins = self.tensors(&inputs)?;
                py.allow_threads(|| autodiff_exec::eval(g, &ins, &want))
                    .map_err(|e| eval_err(py, e))?
            } else {
                let program = self.program(&want)?;
                let args = self.args(&inputs)?;
                let slices: Vec<&[f64]> = args.iter().map(Arg::data).collect();
                // Borrowed NumPy buffers are read in place, so the GIL is held while the
                // kernels run (rayon still uses every core): a Python thread writing one
                // of those arrays cannot race with the kernels reading it. With owned
                // (converted) inputs only, other Python threads run meanwhile.
                let borrowed = args.iter().any(|a| matches!(a, Arg::Borrowed(_)));
                let data = if borrowed {
                    program.run_f64(&slices)
                } else {
                    py.allow_threads(|| program.run_f64(&slices))
                }
                .map_err(|e| eval_err(py, e))?;
                data.into_iter()
                    .zip(&want)
                    .map(|(d, &n)| Tensor {
                        dtype: g.dtype(n),
                        shape: g.shape(n).clone(),
                        data: d,
                    })
                    .collect()
            };
            for (k, gd) in self.inner.guards.iter().enumerate() {
                if vals[k].data != gd.1.data {
                    return Ok((None, Some(k)));
                }
            }
            let outs = vals
                .into_iter()
                .skip(self.inner.guards.len())
                .map(|t| convert::tensor_into_numpy(py, t))
                .collect::<PyResult<_>>()?;
            Ok((Some(outs), None))
        })
    }

    /// A trace whose outputs are the gradients of output `output` w.r.t. `wrt`
    /// (prefixed by the value itself when `with_value`).
    #[pyo3(signature = (wrt, output=0, with_value=false))]
    fn grad(&self, wrt: Bound<'_, PyList>, output: usize, with_value: bool) -> PyResult<PyTrace> {
        shield("grad", || -> PyResult<PyTrace> {
            let (mut g, wrt) = self.for_reverse(self.wrt_nodes(&wrt)?)?;
            let out = *g
                .outputs
                .get(output)
                .ok_or_else(|| PyValueError::new_err("no such output"))?;
            let grads = autodiff_transform::grad(&mut g, out, &wrt).map_err(transform_err)?;
            g.outputs = if with_value {
                std::iter::once(out).chain(grads).collect()
            } else {
                grads
            };
            Ok(self.derived(g))
        })
    }

    /// Vector-Jacobian product: new inputs (one cotangent per output) are appended.
    fn vjp(&self, wrt: Bound<'_, PyList>) -> PyResult<PyTrace> {
        shield("vjp", || -> PyResult<PyTrace> {
            let (mut g, wrt) = self.for_reverse(self.wrt_nodes(&wrt)?)?;
            let outs = g.outputs.clone();
            let mut cots = vec![];
            for (k, &o) in outs.iter().enumerate() {
                let (s, d) = (g.shape(o).clone(), g.dtype(o));
                cots.push(g.add_input(&format!("ct{k}"), s, d));
            }
            let r = autodiff_transform::vjp(&mut g, &outs, &cots, &wrt).map_err(transform_err)?;
            g.outputs = r;
            Ok(self.derived(g))
        })
    }

    /// Forward mode: one tangent input per `wrt` is appended; outputs become
    /// (outputs..., tangents of outputs...).
    fn jvp(&self, wrt: Bound<'_, PyList>) -> PyResult<PyTrace> {
        shield("jvp", || -> PyResult<PyTrace> {
            let wrt = self.wrt_nodes(&wrt)?;
            let mut g = self.inner.graph.clone();
            let mut tans = vec![];
            for &w in &wrt {
                let (s, d) = (g.shape(w).clone(), g.dtype(w));
                let name = format!(
                    "d{}",
                    g.input_names.get(tans.len()).cloned().unwrap_or_default()
                );
                tans.push(g.add_input(&name, s, d));
            }
            let outs = g.outputs.clone();
            let t = autodiff_transform::jvp(&mut g, &outs, &wrt, &tans).map_err(transform_err)?;
            g.outputs = outs.into_iter().chain(t).collect();
            Ok(self.derived(g))
        })
    }

    /// Hessian-vector product of output 0: one vector input per `wrt` is appended.
    fn hvp(&self, wrt: Bound<'_, PyList>) -> PyResult<PyTrace> {
        shield("hvp", || -> PyResult<PyTrace> {
            let (mut g, wrt) = self.for_reverse(self.wrt_nodes(&wrt)?)?;
            let mut vs = vec![];
            for (k, &w) in wrt.iter().enumerate() {
                let (s, d) = (g.shape(w).clone(), g.dtype(w));
                vs.push(g.add_input(&format!("v{k}"), s, d));
            }
            let out = g.outputs[0];
            let r = autodiff_transform::hvp(&mut g, out, &wrt, &vs).map_err(transform_err)?;
            g.outputs = r;
            Ok(self.derived(g))
        })
    }

    /// Jacobians of every output w.r.t. each of `wrt` (output-major order), each shaped
    /// `output.shape + wrt.shape`. `mode` is "fwd", "rev" or "auto" (fewer sweeps).
    #[pyo3(signature = (wrt, mode="auto"))]
    fn jacobian(&self, wrt: Bound<'_, PyList>, mode: &str) -> PyResult<PyTrace> {
        shield("jacobian", || -> PyResult<PyTrace> {
            let wrt = self.wrt_nodes(&wrt)?;
            let mut g = self.inner.graph.clone();
            let mut outs = vec![];
            for o in g.outputs.clone() {
                for &w in &wrt {
                    let forward = match mode {
                        "fwd" => true,
                        "rev" => false,
                        _ => g.node(w).size() < g.node(o).size(),
                    };
                    outs.push(
                        autodiff_transform::jacobian(&mut g, o, w, forward)
                            .map_err(transform_err)?,
                    );
                }
            }
            g.outputs = outs;
            Ok(self.derived(g))
        })
    }

    /// The elementwise derivative of a function whose one output is a float array and whose
    /// Jacobian with respect to every `wrt` is diagonal: each `wrt` has the output's shape,
    /// and every node of the output's computation that depends on one is elementwise
    /// (`Unary`, `Binary`, `Where`, `Cast`) at the output's shape. The derivative is then the
    /// vector-Jacobian product with ones (the gradient of the output's sum). `None` when the
    /// trace is not such a function (a reduction, a reshape, a loop on the way, ...).
    #[pyo3(signature = (wrt, with_value=false))]
    fn elementwise_grad(
        &self,
        wrt: Bound<'_, PyList>,
        with_value: bool,
    ) -> PyResult<Option<PyTrace>> {
        shield("elementwise_grad", || -> PyResult<Option<PyTrace>> {
            let wrt = self.wrt_nodes(&wrt)?;
            let g = &self.inner.graph;
            let out = match g.outputs[..] {
                [o] => o,
                _ => return Ok(None),
            };
            if !diagonal(g, out, &wrt) {
                return Ok(None);
            }
            let (mut g, wrt) = self.for_reverse(wrt)?;
            let out = g.outputs[0];
            let (shape, dtype) = (g.shape(out).clone(), g.dtype(out));
            let ones = g.full(1.0, &shape, dtype);
            let grads =
                autodiff_transform::vjp(&mut g, &[out], &[ones], &wrt).map_err(transform_err)?;
            g.outputs = if with_value {
                std::iter::once(out).chain(grads).collect()
            } else {
                grads
            };
            Ok(Some(self.derived(g)))
        })
    }

    /// The computation mapped over a new leading axis of size `size` of the inputs flagged
    /// in `batched`; every output gains that axis. `None` when an op has no batching rule.
    fn vmap(&self, batched: Vec<bool>, size: usize) -> PyResult<Option<PyTrace>> {
        shield("vmap", || -> PyResult<Option<PyTrace>> {
            let g = &self.inner.graph;
            if batched.len() != g.inputs.len() {
                return Err(PyValueError::new_err("vmap: one flag per input"));
            }
            let Ok((mut ng, map)) = autodiff_transform::vmap(g, &batched, size) else {
                return Ok(None);
            };
            let lift = |ng: &mut Graph, (n, b): (NodeId, bool)| -> PyResult<NodeId> {
                if b {
                    return Ok(n);
                }
                let mut s = vec![size];
                s.extend(ng.shape(n).iter().copied());
                let mut one = vec![1];
                one.extend(ng.shape(n).iter().copied());
                let r = ng.reshape(n, &one).map_err(ir_err)?;
                ng.broadcast(r, &s).map_err(ir_err)
            };
            let mut outs = vec![];
            for o in &g.outputs {
                outs.push(lift(&mut ng, map[o.index()])?);
            }
            ng.outputs = outs;
            let mut guards = vec![];
            for (n, t, why) in &self.inner.guards {
                let gn = lift(&mut ng, map[n.index()])?;
                let mut shape = vec![size];
                shape.extend(&t.shape);
                let data = t
                    .data
                    .iter()
                    .cycle()
                    .take(t.data.len() * size)
                    .copied()
                    .collect();
                guards.push((
                    gn,
                    Tensor {
                        dtype: t.dtype,
                        shape,
                        data,
                    },
                    why.clone(),
                ));
            }
            let tags = self
                .inner
                .tags
                .iter()
                .map(|(t, n)| (t.clone(), map[n.index()].0))
                .collect();
            Ok(Some(PyTrace::new(TraceData {
                graph: ng,
                guards,
                tags,
                rolled: self.inner.rolled,
            })))
        })
    }

    /// The same computation without its guards: the traced formula evaluated as it is at
    /// any input (the finite-difference self-check probes the derivative of the traced
    /// computation, which is what a derivative trace computes, also where a nearby input
    /// would take another branch or another trip count and re-trace).
    fn unguarded(&self) -> PyTrace {
        PyTrace::new(TraceData {
            graph: self.inner.graph.clone(),
            guards: vec![],
            tags: self.inner.tags.clone(),
            rolled: self.inner.rolled,
        })
    }

    /// The magnitude bound of each output (see `autodiff_transform::magnitude`): the size of
    /// the terms its sums add up, for sizing the tolerance of a comparison. No guards.
    fn magnitude(&self) -> PyResult<PyTrace> {
        shield("magnitude", || -> PyResult<PyTrace> {
            let mut g = self.inner.graph.clone();
            let outs = g.outputs.clone();
            g.outputs = autodiff_transform::magnitude(&mut g, &outs).map_err(ir_err)?;
            Ok(PyTrace::new(TraceData {
                graph: g,
                guards: vec![],
                tags: vec![],
                rolled: self.inner.rolled,
            }))
        })
    }

    /// The same computation after simplification (guards kept).
    fn simplified(&self) -> PyResult<PyTrace> {
        shield("simplified", || -> PyResult<PyTrace> {
            let g = &self.inner.graph;
            let mut want: Vec<NodeId> = self.inner.guards.iter().map(|x| x.0).collect();
            let ng = want.len();
            want.extend(&g.outputs);
            let tags: Vec<NodeId> = self.inner.tags.iter().map(|t| t.1).collect();
            want.extend(&tags);
            let (mut sg, outs) = autodiff_simplify::simplify(g, &want);
            sg.outputs = outs[ng..ng + g.outputs.len()].to_vec();
            let guards = self
                .inner
                .guards
                .iter()
                .zip(&outs[..ng])
                .map(|(gd, &n)| (n, gd.1.clone(), gd.2.clone()))
                .collect();
            let tags = self
                .inner
                .tags
                .iter()
                .zip(&outs[ng + g.outputs.len()..])
                .map(|(t, &n)| (t.0.clone(), n))
                .collect();
            Ok(PyTrace::new(TraceData {
                graph: sg,
                guards,
                tags,
                rolled: self.inner.rolled,
            }))
        })
    }

    /// Readable math of the outputs, one line per output (labels name them).
    #[pyo3(signature = (labels=None, title=None, shapes=false, locs=false))]
    fn to_text(
        &self,
        labels: Option<Vec<String>>,
        title: Option<String>,
        shapes: bool,
        locs: bool,
    ) -> PyResult<String> {
        shield("to_text", || -> PyResult<String> {
            let (g, outs) = self.for_print();
            let opts = autodiff_print::TextOptions {
                labels: labels.unwrap_or_default(),
                header: title,
                show_shapes: shapes,
                show_locs: locs,
                ..Default::default()
            };
            Ok(autodiff_print::to_text(&g, &outs, &opts))
        })
    }

    #[pyo3(signature = (labels=None))]
    fn to_latex(&self, labels: Option<Vec<String>>) -> PyResult<String> {
        shield("to_latex", || -> PyResult<String> {
            let (g, outs) = self.for_print();
            let labels = labels.unwrap_or_default();
            let refs: Vec<&str> = labels.iter().map(|s| s.as_str()).collect();
            Ok(autodiff_print::to_latex(&g, &outs, &refs))
        })
    }

    /// Python source of the outputs for `target` "numpy" (default), "numba" or "jax".
    #[pyo3(signature = (name="f", target="numpy"))]
    fn to_source(&self, name: &str, target: &str) -> PyResult<String> {
        let target = match target {
            "numpy" => autodiff_print::Target::NumPy,
            "numba" => autodiff_print::Target::Numba,
            "jax" => autodiff_print::Target::Jax,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "to_source: target must be \"numpy\", \"numba\" or \"jax\", not {target:?}"
                )))
            }
        };
        shield("to_source", || -> PyResult<String> {
            let g = &self.inner.graph;
            let (sg, outs) = autodiff_simplify::simplify(g, &g.outputs);
            Ok(autodiff_print::to_source(&sg, &outs, name, target))
        })
    }

    fn to_dot(&self) -> PyResult<String> {
        shield("to_dot", || -> PyResult<String> {
            let (g, outs) = self.for_print();
            Ok(autodiff_print::to_dot(&g, &outs))
        })
    }

    fn to_sympy(&self) -> PyResult<String> {
        shield("to_sympy", || -> PyResult<String> {
            let (g, outs) = self.for_print();
            autodiff_print::to_sympy(&g, &outs).map_err(PyValueError::new_err)
        })
    }

    /// The graph in the s-expression text form.
    fn sexpr(&self) -> PyResult<String> {
        shield("sexpr", || {
            Ok(autodiff_ir::sexpr::print_graph(&self.inner.graph))
        })
    }
}

/// Whether the Jacobian of `out` (a float array) with respect to each of `wrt` is diagonal:
/// every `wrt` has `out`'s shape, and every node `out` needs that depends on one of them is
/// an elementwise op at that shape (see `PyTrace::elementwise_grad`).
fn diagonal(g: &Graph, out: NodeId, wrt: &[NodeId]) -> bool {
    use autodiff_ir::Op;
    let shape = g.shape(out);
    if shape.is_empty() || !g.dtype(out).is_float() || wrt.iter().any(|&w| g.shape(w) != shape) {
        return false;
    }
    let mut needed = vec![false; g.len()];
    needed[out.index()] = true;
    for i in (0..g.len()).rev() {
        if needed[i] {
            for x in &g.nodes()[i].inputs {
                needed[x.index()] = true;
            }
        }
    }
    let mut dep = vec![false; g.len()];
    for &w in wrt {
        dep[w.index()] = true;
    }
    for (i, n) in g.nodes().iter().enumerate() {
        if dep[i] || !needed[i] || !n.inputs.iter().any(|x| dep[x.index()]) {
            continue;
        }
        dep[i] = true;
        let elementwise = matches!(n.op, Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast(_));
        if !elementwise || &n.shape != shape {
            return false;
        }
    }
    true
}
