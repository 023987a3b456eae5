//! Entries of the table for NumPy functions and methods, builtins and `math`.
//!
//! Each entry runs the real call and mirrors it. Pure data movement (flip, roll, tile,
//! repeat, take, diagonal, ...) is mirrored generically: the same function applied to an
//! array of flat positions gives the positions the result reads, i.e. a `Gather`.

use autodiff_ir::{BinaryOp, DType, NodeId, Op, ReduceOp, SliceDim, UnaryOp};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::sig::Call;
use super::table::axes_of;
use super::{unsupported, Res, TracedGen, Tracer, Val};
use crate::convert;
use crate::registry::Family;

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

impl<'py> Tracer<'py> {
    /// The node of an array-like argument; lists and tuples of symbolic values are stacked.
    pub fn arr_node(&mut self, v: &Val<'py>) -> Res<NodeId> {
        if let Some(n) = self.sym(v) {
            return Ok(n);
        }
        let o = v.obj();
        if (o.downcast::<PyList>().is_ok() || o.downcast::<PyTuple>().is_ok()) && self.deep_sym(v) {
            let items: Vec<Val> = o
                .try_iter()?
                .map(|x| x.map(Val::new))
                .collect::<PyResult<_>>()?;
            let mut nodes = vec![];
            for it in &items {
                nodes.push(self.arr_node(it)?);
            }
            let dt = nodes
                .iter()
                .map(|&n| self.g.dtype(n))
                .max()
                .unwrap_or(DType::F64);
            let shape = self.g.shape(nodes[0]).clone();
            let mut parts = vec![];
            for n in nodes {
                let n = self.g.cast(n, dt)?;
                let n = self.g.broadcast(n, &shape)?;
                let mut s1 = vec![1];
                s1.extend(&shape);
                parts.push(self.g.reshape(n, &s1)?);
            }
            return Ok(self.g.add(Op::Concat(0), parts)?);
        }
        self.const_node(o)
    }

    fn ndim(&self, n: NodeId) -> usize {
        self.g.shape(n).len()
    }

    pub(super) fn flat(&mut self, n: NodeId) -> Res<NodeId> {
        let size = self.g.node(n).size();
        Ok(self.g.reshape(n, &[size])?)
    }

    fn int_of(&self, o: Option<Bound<'py, PyAny>>, default: i64) -> Res<i64> {
        Ok(match o {
            Some(v) => v.extract()?,
            None => default,
        })
    }

    pub(super) fn kw_bool(&self, c: &Call<'py>, i: usize, name: &str) -> Res<bool> {
        Ok(match c.opt(i, name) {
            Some(v) => v.is_truthy()?,
            None => false,
        })
    }

    /// `ddof=` or `correction=` (the array-API name of the same thing).
    pub(super) fn ddof(&self, c: &Call<'py>) -> Res<f64> {
        Ok(match c.opt(4, "ddof").or(c.opt(99, "correction")) {
            Some(d) => d.extract::<f64>()?,
            None => 0.0,
        })
    }

    /// Refuses a `dtype=` other than a floating dtype (entries that compute in floating
    /// point and cast the result: an integer dtype would change how NumPy accumulates).
    pub(super) fn float_dtype_only(&self, c: &Call<'py>) -> Res<()> {
        if let Some(d) = c.opt(2, "dtype") {
            let k: String = self
                .r
                .np
                .call_method1("dtype", (&d,))?
                .getattr("kind")?
                .extract()?;
            if k != "f" {
                return unsupported(format!(
                    "`{}(..., dtype={})` is not supported on traced arrays: only floating \
                     dtypes are implemented; cast the result instead",
                    c.name,
                    d.repr()?
                ));
            }
        }
        Ok(())
    }

    /// `np.matmul` semantics: 1-D operands promoted, batch dimensions broadcast.
    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> Res<NodeId> {
        let (sa, sb) = (self.g.shape(a).clone(), self.g.shape(b).clone());
        if sa.is_empty() || sb.is_empty() {
            return unsupported("matmul of a 0-d array");
        }
        if sa.len() <= 2 && sb.len() <= 2 {
            return Ok(self.g.matmul(a, b)?);
        }
        let ba = &sa[..sa.len().saturating_sub(2)];
        let bb = &sb[..sb.len().saturating_sub(2)];
        let batch = autodiff_ir::graph::broadcast_shapes(ba, bb)?;
        let nb = batch.len();
        let lab: Vec<u8> = LETTERS[..nb].to_vec();
        let (i, j, k) = (b'x', b'y', b'z');
        let mut fa = batch.clone();
        fa.extend(&sa[sa.len().saturating_sub(2)..]);
        let mut fb = batch.clone();
        fb.extend(&sb[sb.len().saturating_sub(2)..]);
        let (a2, b2) = (
            if sa.len() >= 2 {
                self.g.broadcast(a, &fa)?
            } else {
                a
            },
            if sb.len() >= 2 {
                self.g.broadcast(b, &fb)?
            } else {
                b
            },
        );
        let mut la = if sa.len() >= 2 { lab.clone() } else { vec![] };
        let mut lb = if sb.len() >= 2 { lab.clone() } else { vec![] };
        let mut lo = lab.clone();
        if sa.len() >= 2 {
            la.extend([i, j]);
            lo.push(i);
        } else {
            la.push(j);
        }
        if sb.len() >= 2 {
            lb.extend([j, k]);
            lo.push(k);
        } else {
            lb.push(j);
        }
        let spec = format!("{},{}->{}", s(&la), s(&lb), s(&lo));
        Ok(self.g.contract(&spec, a2, b2)?)
    }

    /// A pure data-movement function mirrored as a gather of flat positions.
    fn movement(&mut self, c: &Call<'py>, x: NodeId, res: Bound<'py, PyAny>) -> Res<Val<'py>> {
        let np = self.r.np.clone();
        let shape = self.g.shape(x).clone();
        let size: usize = shape.iter().product();
        let pos = np
            .call_method1("arange", (size,))?
            .call_method1("reshape", (shape,))?;
        let mut args = vec![pos];
        for a in &c.args[1..] {
            args.push(a.obj().clone());
        }
        let kw = pyo3::types::PyDict::new(self.py);
        for (k, v) in &c.kwargs {
            kw.set_item(k, v.obj())?;
        }
        let callee = if c.method {
            self.r
                .ndarray
                .getattr(c.callee.getattr("__name__")?.extract::<String>()?)?
        } else {
            c.callee.clone()
        };
        let p = callee.call(PyTuple::new(self.py, args)?, Some(&kw))?;
        let idx = self.g.constant(convert::to_tensor(
            &np.call_method1("asarray", (p, "int64"))?,
        )?);
        let fx = self.flat(x)?;
        let out = self.g.add(Op::Gather(0), vec![fx, idx])?;
        self.track(res, out)
    }

    fn reduce_call(&mut self, c: &Call<'py>, op: ReduceOp) -> Res<Val<'py>> {
        for k in ["where", "initial"] {
            if c.opt(99, k).is_some() {
                let name = match op {
                    ReduceOp::Sum => "sum",
                    ReduceOp::Prod => "prod",
                    ReduceOp::Max => "max",
                    ReduceOp::Min => "min",
                };
                return self.masked_reduce(c, name, false);
            }
        }
        let res = c.real()?;
        let x = self.arr_node(&c.args[0])?;
        let axes = axes_of(c.opt(1, "axis").as_ref(), self.ndim(x))?;
        let x = if op == ReduceOp::Sum || op == ReduceOp::Prod {
            let (_, dt) = convert::shape_dtype(&res)?.unwrap();
            self.g.cast(x, dt)?
        } else {
            x
        };
        let out = self.g.reduce(op, x, &axes)?;
        self.track(res, out)
    }

    /// Mean over axes, in floating point.
    fn mean_node(&mut self, x: NodeId, axes: &[usize]) -> Res<NodeId> {
        let x = if self.g.dtype(x).is_float() {
            x
        } else {
            self.g.cast(x, DType::F64)?
        };
        let count: usize = axes.iter().map(|&a| self.g.shape(x)[a]).product();
        let s = self.g.sum(x, axes)?;
        Ok(self.g.scale(s, 1.0 / count as f64)?)
    }

    fn var_node(&mut self, x: NodeId, axes: &[usize], ddof: f64) -> Res<NodeId> {
        let x = if self.g.dtype(x).is_float() {
            x
        } else {
            self.g.cast(x, DType::F64)?
        };
        let shape = self.g.shape(x).clone();
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        let m = self.mean_node(x, axes)?;
        let kept: Vec<usize> = shape
            .iter()
            .enumerate()
            .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
            .collect();
        let m = self.g.reshape(m, &kept)?;
        let m = self.g.broadcast(m, &shape)?;
        let d = self.g.sub(x, m)?;
        let d2 = self.g.unary(UnaryOp::Square, d)?;
        let s = self.g.sum(d2, axes)?;
        // NumPy divides by max(n - ddof, 0): ddof ≥ n gives inf (or nan), never a sign flip
        Ok(self.g.scale(s, 1.0 / (count as f64 - ddof).max(0.0))?)
    }

    /// Concatenation of array-likes along `axis` after reshaping each to `shape_of(item)`.
    fn concat_items(
        &mut self,
        items: &Bound<'py, PyAny>,
        axis: Option<i64>,
        prep: &dyn Fn(&Bound<'py, PyAny>) -> PyResult<Vec<usize>>,
    ) -> Res<NodeId> {
        let vals: Vec<Val> = items
            .try_iter()?
            .map(|x| x.map(Val::new))
            .collect::<PyResult<_>>()?;
        let mut nodes = vec![];
        for v in &vals {
            let n = self.arr_node(v)?;
            let shape = prep(v.obj())?;
            nodes.push(self.g.reshape(n, &shape)?);
        }
        let dt = nodes
            .iter()
            .map(|&n| self.g.dtype(n))
            .max()
            .unwrap_or(DType::F64);
        for n in nodes.iter_mut() {
            *n = self.g.cast(*n, dt)?;
        }
        let ax = match axis {
            None => {
                for n in nodes.iter_mut() {
                    *n = self.flat(*n)?;
                }
                0
            }
            Some(a) => axes_of(
                Some(&a.into_pyobject(self.py)?.into_any()),
                self.ndim(nodes[0]),
            )?[0],
        };
        Ok(self.g.add(Op::Concat(ax), nodes)?)
    }

    /// `sliding_window_view` / `as_strided` of a traced array: a gather. The positions it
    /// reads are found by applying the same call to an array of flat positions of the same
    /// shape, layout and item size.
    fn strided_view(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        let np = self.r.np.clone();
        let xv = c.args[0].clone();
        if self.sym(&xv).is_none() || !xv.obj().is_instance(&self.r.ndarray)? {
            return unsupported(format!(
                "{name} of a value holding traced arrays: pass the traced array itself"
            ));
        }
        let res = c.real()?;
        let x = self.node(&xv)?;
        let shape = self.g.shape(x).clone();
        let size: usize = shape.iter().product();
        let itemsize: usize = xv.obj().getattr("itemsize")?.extract()?;
        let idt = if name.ends_with("as_strided") {
            let contiguous: bool = xv
                .obj()
                .getattr("flags")?
                .getattr("c_contiguous")?
                .extract()?;
            let idt = match itemsize {
                8 => "int64",
                4 => "int32",
                2 if size < 1 << 15 => "int16",
                1 if size < 1 << 7 => "int8",
                _ => "",
            };
            if !contiguous || idt.is_empty() {
                return unsupported(
                    "np.lib.stride_tricks.as_strided of a traced array that is not C-contiguous \
                     (or is too large for its item size): call np.ascontiguousarray first, or use \
                     sliding_window_view",
                );
            }
            idt
        } else {
            "int64"
        };
        let kw = PyDict::new(self.py);
        kw.set_item("dtype", idt)?;
        let pos = np
            .call_method("arange", (size,), Some(&kw))?
            .call_method1("reshape", (shape.clone(),))?;
        let mut args = vec![pos];
        args.extend(c.args[1..].iter().map(|v| v.obj().clone()));
        let kwd = PyDict::new(self.py);
        for (k, v) in &c.kwargs {
            kwd.set_item(k, v.obj())?;
        }
        let p = c.callee.call(PyTuple::new(self.py, args)?, Some(&kwd))?;
        let p = np.call_method1("array", (p, "int64"))?;
        let idx = self.g.constant(convert::to_tensor(&p)?);
        let fx = self.g.reshape(x, &[size])?;
        let out = self.g.add(Op::Gather(0), vec![fx, idx])?;
        self.track(res, out)
    }

    /// The table entries called by canonical name.
    pub fn call_known(&mut self, name: &str, mut c: Call<'py>) -> Res<Val<'py>> {
        // Generators made by traced code: next/iter act on them; everything else consumes them.
        if let Some(g) = c
            .args
            .first()
            .and_then(|a| a.obj().downcast::<TracedGen>().ok())
            .map(|g| g.get().idx)
        {
            match name {
                "builtins.next" => {
                    return match self.resume(g)? {
                        Some(v) => Ok(v),
                        None => match c.args.get(1) {
                            Some(d) => Ok(d.clone()),
                            None => Err(pyo3::exceptions::PyStopIteration::new_err(()).into()),
                        },
                    }
                }
                "builtins.iter" => return Ok(c.args[0].clone()),
                _ => {}
            }
        }
        // `next(it)` / `iter(it)` of a native iterator (over a list, tuple, dict view or
        // the rows of a traced array): the real call yields the real (tracked) objects;
        // draining the iterator into a list first would lose its position.
        if matches!(name, "builtins.next" | "builtins.iter")
            && c.args.first().is_some_and(|a| {
                a.obj().hasattr("__next__").unwrap_or(false) && self.sym(a).is_none()
            })
            && !(name == "builtins.iter" && c.args.len() > 1)
        {
            return Ok(Val::new(c.real()?));
        }
        // `map`/`filter` are always the engine's lazy ones, even when nothing is traced
        // yet: an array they iterate may be written with traced values before the items
        // are consumed, and Python's would then compute them natively, out of the trace's
        // sight (constants of the trace, stale on other inputs). Their iterables are not
        // drained here either (a lazy one stays lazy).
        let lazy = matches!(name, "builtins.map" | "builtins.filter");
        if lazy {
            let (stand_in, arity_ok) = if name == "builtins.map" {
                ("_lazy_map", c.args.len() >= 2)
            } else {
                ("_lazy_filter", c.args.len() == 2)
            };
            if !arity_ok || !c.kwargs.is_empty() {
                // Python's own TypeError (`map(f)`, `filter(f, a, b)`, keywords)
                return Ok(Val::new(c.real()?));
            }
            if let Some(g) = self.pure_fn(stand_in) {
                return self.call_pure(&g, c.args, vec![]);
            }
        }
        // `zip`/`enumerate` of iterators stay lazy too: draining each argument first would
        // pair `zip(it, it)` wrongly and use up an iterator a `break` leaves half read.
        if matches!(name, "builtins.zip" | "builtins.enumerate")
            && c.kwargs.iter().all(|(k, _)| k == "start")
            && c.args
                .iter()
                .any(|a| a.obj().hasattr("__next__").unwrap_or(false))
        {
            let stand_in = if name == "builtins.zip" {
                "_lazy_zip"
            } else {
                "_lazy_enumerate"
            };
            if let Some(g) = self.pure_fn(stand_in) {
                return self.call_pure(&g, c.args, c.kwargs);
            }
        }
        for a in c.args.iter_mut() {
            *a = self.materialize(a.clone())?;
        }
        let any_sym = c.args.iter().any(|a| self.deep_sym(a))
            || c.kwargs.iter().any(|(_, v)| self.deep_sym(v));
        if name == "builtins.enumerate" && c.args.len() + c.kwargs.len() == 2 {
            // the count's start is structure, not data: a traced one is guarded
            if let Some(s) = c
                .args
                .get(1)
                .or_else(|| c.kwargs.iter().find(|(k, _)| k == "start").map(|(_, v)| v))
            {
                self.concretize_deep(&s.clone(), "the start of `enumerate`")?;
            }
        }
        // (iterating a 2-d array made in the trace gives rows the engine must know: a
        // write through one updates the array, as in `for i, r in enumerate(y): r[:] = v`)
        let rows = matches!(
            name,
            "builtins.list"
                | "builtins.tuple"
                | "builtins.zip"
                | "builtins.enumerate"
                | "builtins.reversed"
                | "builtins.iter"
        ) && c
            .args
            .iter()
            .any(|a| self.rows_are_views(a.obj()).unwrap_or(false));
        if name == "builtins.hasattr" && c.args.len() == 2 {
            // what `hasattr` finds on an outside object is a fact of the trace too: an
            // absent attribute is checked to stay absent, a present one is read like `o.n`
            // (`getattr(o, n, default)` is read so in `table.rs`)
            if let Ok(n) = c.args[1].obj().extract::<String>() {
                let o = c.args[0].obj();
                if !o.hasattr(n.as_str())? {
                    self.note_missing(o, &n)?;
                } else if self.is_foreign(o) {
                    self.getattr(&c.args[0], &n)?;
                }
            }
        }
        if !any_sym && !lazy && !rows && !name.starts_with("autodiff.") {
            return Ok(Val::new(c.real()?));
        }
        // Arguments are bound to the entry's parameter list (sig.rs): unknown or
        // unimplemented arguments are refused here, before any entry can drop them.
        let spec = super::sig::signature(name, c.method);
        if spec.is_none()
            && (name.starts_with("np.") || name.starts_with("scipy."))
            // introspection (`np.shape`, `np.result_type`, ...) depends only on types,
            // shapes and dtypes: any argument is fine
            && crate::registry::lookup(name).map(|e| e.family) != Some(Family::Introspection)
        {
            return self.call_native(c);
        }
        // An entry reads its arguments by position; a call missing one (`pow(x)`,
        // `getattr(x)`) must fail as the real call does, with Python's own TypeError: the
        // real function is called when the entry stops on a panic, and its error returned.
        let orig = c.clone();
        // Builtins without a parameter list take few or no keywords: a keyword call is
        // checked by the real call first (`map(f, x, k=1)` is Python's TypeError).
        if spec.is_none()
            && !c.kwargs.is_empty()
            && super::registry::lookup(name).is_some_and(|e| {
                matches!(
                    e.family,
                    super::registry::Family::Builtins | super::registry::Family::Iteration
                )
            })
        {
            c.real()?;
        }
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Res<Val<'py>> {
            if let Some(s) = spec {
                let before = c.clone();
                if let Some(out) = self.bind(s, &mut c)? {
                    let v = self.entry(name, c)?;
                    return self.finish_out(before, out, v);
                }
            }
            self.entry(name, c)
        }));
        match run {
            Ok(Err(e)) if !self.interrupted => {
                // A failed entry: a wrong call (`filter(f, x, y)`, `np.copyto(x, {})`) fails
                // as Python fails it, with its TypeError, whatever the entry tripped on.
                match orig.real() {
                    Err(te) if te.is_instance_of::<pyo3::exceptions::PyTypeError>(self.py) => {
                        Err(te.into())
                    }
                    _ => Err(e),
                }
            }
            Ok(r) => r,
            Err(p) => {
                orig.real()?;
                unsupported(format!(
                    "internal error (panic: {}) in the tracer's entry for `{name}`; this is a \
                     bug in pyautodiff, please report it",
                    crate::panics::panic_text(&*p)
                ))
            }
        }
    }

    /// The entries, called with their arguments bound: each family's handler.
    fn entry(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        use super::registry::Family;
        let Some(e) = super::registry::lookup(name) else {
            return self.call_native(c);
        };
        match e.family {
            Family::Markers => self.run_markers(name, c),
            Family::Builtins => self.run_builtins(name, c),
            Family::Introspection => self.run_introspection(name, c),
            Family::Iteration => self.run_iteration(name, c),
            Family::Math => self.run_math(name, c),
            Family::Reductions => self.run_reductions(name, c),
            Family::Layout => self.run_layout(name, c),
            Family::Products => self.run_products(name, c),
            Family::Selection => self.run_selection(name, c),
            Family::Movement => self.run_movement(name, c),
            Family::Sorting => self.run_sorting(name, c),
            Family::Linalg => self.run_linalg(name, c),
            Family::Native => self.call_native(c),
        }
    }

    /// `autodiff.constant`, `autodiff.escape`, `autodiff.tag`.
    fn run_markers(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        let x = c.args.first().cloned();
        match name {
            "autodiff.constant" | "autodiff.escape" => {
                let o = x.ok_or_else(|| {
                    pyo3::exceptions::PyTypeError::new_err("constant() takes one argument")
                })?;
                self.stop_gradient(&o)
            }
            "autodiff.tag" => {
                // tag(x, name): both required, as outside a trace.
                let (Some(v), Some(tag)) = (x, c.opt(1, "name")) else {
                    c.real()?;
                    return unsupported("autodiff.tag(x, name) takes a value and a name");
                };
                let tag: String = tag.extract()?;
                if let Some(n) = self.sym(&v) {
                    self.g.names.insert(n, tag.clone());
                    self.tags.push((tag, n));
                }
                Ok(v)
            }
            _ => self.call_native(c),
        }
    }

    /// Python builtins that compute on values.
    fn run_builtins(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        let py = self.py;
        let x = c.args.first().cloned();
        match name {
            "builtins.sum" => {
                let items = self.unpack(x.unwrap())?;
                let mut acc = match c.opt(1, "start") {
                    Some(s) => Val::new(s),
                    None => Val::new(0i64.into_pyobject(py)?.into_any()),
                };
                for it in items {
                    acc = self.binary_op(0, &acc, &it)?;
                }
                Ok(acc)
            }
            "builtins.abs" => {
                let res = c.real()?;
                let n = self.node(&c.args[0])?;
                let out = self.g.unary(UnaryOp::Abs, n)?;
                self.track(res, out)
            }
            "builtins.min" | "builtins.max" => {
                if c.kwargs.iter().any(|(k, _)| k == "key") {
                    return self.call_native(c);
                }
                let items = if c.args.len() == 1 {
                    self.unpack(c.args[0].clone())?
                } else {
                    c.args.clone()
                };
                let real = c
                    .callee
                    .call1(PyTuple::new(py, items.iter().map(|v| v.obj().clone()))?)?;
                // Python keeps the first item unless a later one is greater (max) or less
                // (min): with NaNs the result depends on the order, as in Python.
                let op = if name.ends_with("max") {
                    BinaryOp::Gt
                } else {
                    BinaryOp::Lt
                };
                let mut acc = self.node(&items[0])?;
                for it in &items[1..] {
                    let n = self.node(it)?;
                    let dt = self.g.dtype(acc).max(self.g.dtype(n));
                    let (a, b) = (self.g.cast(acc, dt)?, self.g.cast(n, dt)?);
                    let later = self.g.binary(op, b, a)?;
                    acc = self.g.select(later, b, a)?;
                }
                self.track(real, acc)
            }
            "builtins.float" | "np.float64" | "np.float32" => {
                let res = c.real()?;
                let n = self.arr_node(x.as_ref().unwrap())?;
                self.track(res, n)
            }
            "builtins.int" | "builtins.round" if c.args.len() == 1 => {
                let res = c.real()?;
                let n = self.node(&c.args[0])?;
                let n = if name.ends_with("round") {
                    self.g.unary(UnaryOp::Round, n)?
                } else {
                    n
                };
                let n = self.g.cast(n, DType::I64)?;
                let n = self.g.reshape(n, &[])?;
                self.guard(n, &res, &format!("{}() of a traced value", &name[9..]))?;
                Ok(Val::new(res))
            }
            "builtins.bool" => {
                let b = self.truth(x.as_ref().unwrap())?;
                Ok(Val::new(
                    pyo3::types::PyBool::new(py, b).to_owned().into_any(),
                ))
            }
            "builtins.pow" if c.args.len() == 2 && c.kwargs.is_empty() => {
                self.binary_op(8, &c.args[0], &c.args[1])
            }
            "builtins.getattr" if (2..=3).contains(&c.args.len()) && c.kwargs.is_empty() => {
                let name: String = c.args[1].obj().extract()?;
                match self.getattr(&c.args[0], &name) {
                    Ok(v) => Ok(v),
                    Err(e) => match c.args.get(2) {
                        Some(d) => Ok(d.clone()),
                        None => Err(e),
                    },
                }
            }
            // Other forms: Python's own error for a wrong call (`pow(x)`, `getattr(x)`),
            // else the usual refusal of an unsupported form.
            "builtins.pow" | "builtins.getattr" => {
                c.real()?;
                self.call_native(c)
            }
            "builtins.round" => self.run_selection(name, c),
            _ => self.call_native(c),
        }
    }

    /// Calls that depend only on types, shapes and dtypes, never on values.
    fn run_introspection(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        match name {
            // These depend only on types, shapes and dtypes, never on values.
            "np.result_type"
            | "np.ndim"
            | "np.shape"
            | "np.size"
            | "np.isscalar"
            | "np.iscomplexobj"
            | "np.isrealobj"
            | "np.broadcast_shapes"
            | "np.promote_types"
            | "builtins.len"
            | "builtins.isinstance"
            | "builtins.type"
            | "builtins.id"
            | "builtins.print"
            | "builtins.repr"
            | "builtins.str"
            | "builtins.format"
            | "builtins.hasattr"
            | "builtins.setattr"
            | "builtins.callable"
            | "builtins.dict"
            | "builtins.issubclass" => Ok(Val::new(c.real()?)),
            _ => self.call_native(c),
        }
    }

    /// Builtins that move values without looking at them.
    fn run_iteration(&mut self, name: &str, mut c: Call<'py>) -> Res<Val<'py>> {
        let py = self.py;
        match name {
            "builtins.list" | "builtins.tuple" | "builtins.zip" | "builtins.enumerate"
            | "builtins.reversed" | "builtins.iter" | "builtins.next" => {
                // Traced arrays iterate as traced rows (and arrays made in the trace as
                // rows the engine knows: views a write goes through).
                for a in c.args.iter_mut() {
                    if (self.sym(a).is_some() && a.obj().is_instance(&self.r.ndarray)?)
                        || self.rows_are_views(a.obj())?
                    {
                        let rows = self.unpack(a.clone())?;
                        *a = Val::new(
                            PyList::new(py, rows.iter().map(|r| r.obj().clone()))?.into_any(),
                        );
                    }
                }
                Ok(Val::new(c.real()?))
            }
            "builtins.map" => {
                let f = c.args[0].clone();
                if !f.obj().is_callable() {
                    // Python's error when the lazy map is consumed ("not callable").
                    f.obj().call0()?;
                }
                // (reached only inside `_lazy_map` itself, a map in the mapped function:
                // `call_known` hands every other map to that lazy stand-in)
                let mut its = vec![];
                for a in &c.args[1..] {
                    its.push(self.unpack(a.clone())?);
                }
                let n = its.iter().map(|v| v.len()).min().unwrap_or(0);
                let out = PyList::empty(py);
                for k in 0..n {
                    let args = its.iter().map(|v| v[k].clone()).collect();
                    out.append(self.call(f.clone(), args, vec![])?.obj())?;
                }
                Ok(Val::new(out.try_iter()?.into_any()))
            }
            "builtins.filter" => {
                // Keeps the items whose predicate holds (each decision guarded).
                let f = c.args[0].clone();
                if !f.obj().is_none() && !f.obj().is_callable() {
                    f.obj().call0()?;
                }
                let out = PyList::empty(py);
                for it in self.unpack(c.args[1].clone())? {
                    let keep = if f.obj().is_none() {
                        self.truth(&it)?
                    } else {
                        let r = self.call(f.clone(), vec![it.clone()], vec![])?;
                        self.truth(&r)?
                    };
                    if keep {
                        out.append(it.obj())?;
                    }
                }
                Ok(Val::new(out.try_iter()?.into_any()))
            }
            _ => self.call_native(c),
        }
    }

    /// The `math` module.
    fn run_math(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        match name {
            n if n.starts_with("math.") => {
                let res = c.real()?;
                let short = &n[5..];
                match short {
                    "floor" | "ceil" => {
                        let v = self.node(&c.args[0])?;
                        let op = if short == "floor" {
                            UnaryOp::Floor
                        } else {
                            UnaryOp::Ceil
                        };
                        let v = self.g.unary(op, v)?;
                        let v = self.g.cast(v, DType::I64)?;
                        self.guard(v, &res, &format!("math.{short}() of a traced value"))?;
                        Ok(Val::new(res))
                    }
                    "pow" => self.binary_op(8, &c.args[0], &c.args[1]),
                    "hypot" => {
                        let (a, b) = (self.node(&c.args[0])?, self.node(&c.args[1])?);
                        let (a, b) = (self.g.cast(a, DType::F64)?, self.g.cast(b, DType::F64)?);
                        let out = self.hypot(a, b)?;
                        self.track(res, out)
                    }
                    _ => self.math_or_ufunc(short, &c, res),
                }
            }
            _ => self.call_native(c),
        }
    }

    /// Reductions and statistics.
    fn run_reductions(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        let py = self.py;
        let x = c.args.first().cloned();
        match name {
            "np.sum" => self.reduce_call(&c, ReduceOp::Sum),
            "np.prod" => self.reduce_call(&c, ReduceOp::Prod),
            "np.max" | "np.amax" => self.reduce_call(&c, ReduceOp::Max),
            "np.min" | "np.amin" => self.reduce_call(&c, ReduceOp::Min),
            "np.mean" | "np.var" | "np.std" if c.opt(99, "where").is_some() => {
                self.masked_reduce(&c, &name[3..], false)
            }
            "np.nansum" | "np.nanprod" | "np.nanmax" | "np.nanmin" | "np.nanmean" | "np.nanvar"
            | "np.nanstd" => self.masked_reduce(&c, &name[6..], true),
            "np.average"
                if c.opt(3, "returned")
                    .is_some_and(|v| v.is_truthy().unwrap_or(false)) =>
            {
                self.average_returned(&c)
            }
            "np.median" => self.quantile(&c, "median"),
            "np.quantile" => self.quantile(&c, "quantile"),
            "np.percentile" => self.quantile(&c, "percentile"),
            "np.corrcoef" => self.corrcoef(&c),
            "np.mean" | "np.average" | "np.var" | "np.std" => {
                if name == "np.average" && c.opt(2, "weights").is_some() {
                    let res = c.real()?;
                    let (xn, w) = (
                        self.arr_node(&c.args[0])?,
                        self.arr_node(c.arg(2, "weights").unwrap())?,
                    );
                    let axes = axes_of(c.opt(1, "axis").as_ref(), self.ndim(xn))?;
                    // 1-D weights with an axis run along that axis.
                    let w = if self.ndim(w) == 1 && self.ndim(xn) > 1 && axes.len() == 1 {
                        let mut s = vec![1; self.ndim(xn)];
                        s[axes[0]] = self.g.shape(w)[0];
                        self.g.reshape(w, &s)?
                    } else {
                        w
                    };
                    let xw = self.g.mul(xn, w)?;
                    let w = self.g.broadcast(w, &self.g.shape(xn).clone())?;
                    let w = self.g.cast(w, DType::F64)?;
                    let (num, den) = (self.g.sum(xw, &axes)?, self.g.sum(w, &axes)?);
                    let out = self.g.div(num, den)?;
                    return self.track(res, out);
                }
                let res = c.real()?;
                let xn = self.arr_node(&c.args[0])?;
                let axes = axes_of(c.opt(1, "axis").as_ref(), self.ndim(xn))?;
                let ddof = self.ddof(&c)?;
                self.float_dtype_only(&c)?;
                let out = match name {
                    "np.var" => self.var_node(xn, &axes, ddof)?,
                    "np.std" => {
                        let v = self.var_node(xn, &axes, ddof)?;
                        self.g.unary(UnaryOp::Sqrt, v)?
                    }
                    _ => self.mean_node(xn, &axes)?,
                };
                self.track(res, out)
            }
            "np.cumsum" | "np.cumprod" => {
                let res = c.real()?;
                let mut n = self.arr_node(x.as_ref().unwrap())?;
                let ax = match c.opt(1, "axis") {
                    None => {
                        n = self.flat(n)?;
                        0
                    }
                    Some(a) => axes_of(Some(&a), self.ndim(n))?[0],
                };
                let (_, dt) = convert::shape_dtype(&res)?.unwrap();
                let n = self.g.cast(n, dt)?;
                let op = if name == "np.cumsum" {
                    Op::Cumsum(ax)
                } else {
                    Op::Cumprod(ax)
                };
                let out = self.g.add(op, vec![n])?;
                self.track(res, out)
            }
            "np.diff" => {
                let res = c.real()?;
                let mut n = self.arr_node(x.as_ref().unwrap())?;
                let times = self.int_of(c.opt(1, "n"), 1)?;
                let ax = axes_of(
                    Some(
                        &c.opt(2, "axis")
                            .unwrap_or((-1i64).into_pyobject(py)?.into_any()),
                    ),
                    self.ndim(n),
                )?[0];
                for _ in 0..times {
                    let shape = self.g.shape(n).clone();
                    if shape[ax] == 0 {
                        break; // n > len: NumPy's result is empty along the axis
                    }
                    let len = shape[ax] - 1;
                    let dims = |start: usize| -> Vec<SliceDim> {
                        shape
                            .iter()
                            .enumerate()
                            .map(|(i, &d)| {
                                if i == ax {
                                    SliceDim {
                                        start,
                                        step: 1,
                                        len,
                                    }
                                } else {
                                    SliceDim {
                                        start: 0,
                                        step: 1,
                                        len: d,
                                    }
                                }
                            })
                            .collect()
                    };
                    let hi = self.g.slice(n, dims(1))?;
                    let lo = self.g.slice(n, dims(0))?;
                    n = self.g.sub(hi, lo)?;
                }
                self.track(res, n)
            }
            "np.logsumexp" => self.logsumexp(&c),
            _ => self.call_native(c),
        }
    }

    /// Reshaping, transposing, joining and copying arrays.
    fn run_layout(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        let py = self.py;
        let x = c.args.first().cloned();
        let np = self.r.np.clone();
        match name {
            "np.broadcast_arrays" => self.broadcast_arrays(&c),
            "np.conj" | "np.conjugate" => {
                let res = c.real()?;
                let n = self.arr_node(x.as_ref().unwrap())?;
                self.track(res, n)
            }
            "np.reshape" | "np.ravel" => {
                let res = c.real()?;
                let n = self.arr_node(x.as_ref().unwrap())?;
                let order = match c.opt(99, "order") {
                    Some(o) => o.extract::<String>()?.to_uppercase(),
                    None => "C".into(),
                };
                let shape = self.g.shape(n).clone();
                let nontrivial = shape.iter().filter(|&&d| d != 1).count();
                // 'A' and 'K' follow the memory layout, which is C order for an array with
                // at most one axis longer than 1.
                let order = if nontrivial <= 1 && (order == "A" || order == "K") {
                    "C".into()
                } else {
                    order
                };
                let out = match order.as_str() {
                    "C" => n,
                    "F" => {
                        // Fortran order: reverse the axes, reshape to the reversed shape,
                        // reverse back.
                        let (rshape, _) = convert::shape_dtype(&res)?.unwrap();
                        let rev: Vec<usize> = (0..shape.len()).rev().collect();
                        let t = self.g.transpose(n, &rev)?;
                        let back: Vec<usize> = rshape.iter().rev().copied().collect();
                        let r = self.g.reshape(t, &back)?;
                        let rev2: Vec<usize> = (0..back.len()).rev().collect();
                        self.g.transpose(r, &rev2)?
                    }
                    o => {
                        return unsupported(format!(
                            "`{}(..., order='{o}')` is not supported on traced arrays: the \
                             order follows the memory layout of the array, which the trace \
                             does not record; use order='C' or 'F'",
                            c.name
                        ))
                    }
                };
                self.track(res, out)
            }
            "np.squeeze"
            | "np.expand_dims"
            | "np.atleast_1d"
            | "np.atleast_2d"
            | "np.asarray"
            | "np.array"
            | "np.asanyarray"
            | "np.ascontiguousarray"
            | "np.copy"
            | "np.astype" => {
                let res = c.real()?;
                let n = self.arr_node(x.as_ref().unwrap())?;
                self.track(res, n)
            }
            "np.transpose" | "np.swapaxes" | "np.moveaxis" => {
                let res = c.real()?;
                let n = self.arr_node(x.as_ref().unwrap())?;
                let r = self.ndim(n);
                // The permutation is read off the same call on an array of axis numbers.
                let probe_shape: Vec<usize> = (2..2 + r).collect();
                let probe = np.call_method1("empty", (probe_shape.clone(),))?;
                let mut args = vec![probe];
                args.extend(c.args[1..].iter().map(|v| v.obj().clone()));
                let callee = if c.method {
                    self.r
                        .ndarray
                        .getattr(c.callee.getattr("__name__")?.extract::<String>()?)?
                } else {
                    c.callee.clone()
                };
                let kw = pyo3::types::PyDict::new(py);
                for (k, v) in &c.kwargs {
                    kw.set_item(k, v.obj())?;
                }
                let out_shape: Vec<usize> = callee
                    .call(PyTuple::new(py, args)?, Some(&kw))?
                    .getattr("shape")?
                    .extract()?;
                let perm: Vec<usize> = out_shape.iter().map(|d| d - 2).collect();
                let out = self.g.transpose(n, &perm)?;
                self.track(res, out)
            }
            "np.broadcast_to" => {
                let res = c.real()?;
                let n = self.arr_node(x.as_ref().unwrap())?;
                let shape: Vec<usize> = res.getattr("shape")?.extract()?;
                let out = self.g.broadcast(n, &shape)?;
                self.track(res, out)
            }
            "np.concatenate" | "np.stack" | "np.hstack" | "np.vstack" | "np.column_stack" => {
                let res = c.real()?;
                let items = c.args[0].obj().clone();
                let ax_arg = c.opt(1, "axis");
                let out = match name {
                    "np.concatenate" => {
                        let axis = match (&ax_arg, c.arg(1, "axis")) {
                            (None, Some(_)) => None,
                            (Some(a), _) => Some(a.extract::<i64>()?),
                            (None, None) => Some(0),
                        };
                        self.concat_items(&items, axis, &|o| {
                            np.call_method1("shape", (o,))?.extract()
                        })?
                    }
                    "np.stack" => {
                        let a = self.int_of(ax_arg, 0)?;
                        let first: Vec<usize> =
                            np.call_method1("shape", (items.get_item(0)?,))?.extract()?;
                        let r = first.len() as i64 + 1;
                        let ax = if a < 0 { a + r } else { a } as usize;
                        self.concat_items(&items, Some(ax as i64), &|o| {
                            let mut s: Vec<usize> = np.call_method1("shape", (o,))?.extract()?;
                            s.insert(ax.min(s.len()), 1);
                            Ok(s)
                        })?
                    }
                    "np.vstack" => self.concat_items(&items, Some(0), &|o| {
                        np.call_method1("atleast_2d", (o,))?
                            .getattr("shape")?
                            .extract()
                    })?,
                    "np.hstack" => {
                        let nd: usize =
                            np.call_method1("ndim", (items.get_item(0)?,))?.extract()?;
                        self.concat_items(&items, Some(if nd <= 1 { 0 } else { 1 }), &|o| {
                            np.call_method1("atleast_1d", (o,))?
                                .getattr("shape")?
                                .extract()
                        })?
                    }
                    _ => self.concat_items(&items, Some(1), &|o| {
                        let s: Vec<usize> = np.call_method1("shape", (o,))?.extract()?;
                        Ok(if s.len() <= 1 {
                            vec![s.first().copied().unwrap_or(1), 1]
                        } else {
                            s
                        })
                    })?,
                };
                self.track(res, out)
            }
            _ => self.call_native(c),
        }
    }

    /// Contractions.
    fn run_products(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        match name {
            "np.cross" => self.cross(&c),
            "np.convolve" => self.convolve(&c, "full"),
            "np.correlate" => self.convolve(&c, "valid"),
            "np.dot" | "np.vdot" | "np.inner" | "np.outer" | "np.matmul" | "np.tensordot" => {
                let res = c.real()?;
                let (a, b) = (self.arr_node(&c.args[0])?, self.arr_node(&c.args[1])?);
                // dtype= casts each element first, as NumPy does.
                let (a, b) = if c.opt(99, "dtype").is_some() {
                    let (_, dt) = convert::shape_dtype(&res)?.unwrap();
                    (self.g.cast(a, dt)?, self.g.cast(b, dt)?)
                } else {
                    (a, b)
                };
                let out = self.products(name, a, b, &c)?;
                self.track(res, out)
            }
            "np.einsum" => {
                let res = c.real()?;
                let spec: String = c.args[0].obj().extract()?;
                let mut ops = vec![];
                let dt = match c.opt(99, "dtype") {
                    Some(_) => Some(convert::shape_dtype(&res)?.unwrap().1),
                    None => None,
                };
                for a in &c.args[1..] {
                    let n = self.arr_node(a)?;
                    // dtype= casts each element first, as NumPy does.
                    ops.push(match dt {
                        Some(dt) => self.g.cast(n, dt)?,
                        None => n,
                    });
                }
                let spec = if spec.contains("...") {
                    self.expand_ellipsis(&spec, &mut ops)?
                } else {
                    spec
                };
                let out = self.einsum(&spec, &ops)?;
                self.track(res, out)
            }
            _ => self.call_native(c),
        }
    }

    /// Element choice and construction.
    fn run_selection(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        let x = c.args.first().cloned();
        match name {
            "np.interp" => self.interp(&c),
            "np.searchsorted" => self.searchsorted(&c),
            "np.digitize" => self.digitize(&c),
            "np.nonzero" | "np.flatnonzero" | "np.count_nonzero"
                if x.as_ref()
                    .and_then(|v| self.sym(v))
                    .is_some_and(|n| self.g.dtype(n).is_float()) =>
            {
                self.nonzero(&c, name)
            }
            "np.bincount" => self.bincount(&c),
            "np.copyto" => self.copyto(c),
            "np.unique" => self.unique(&c),
            "np.where" if c.args.len() == 3 => {
                let res = c.real()?;
                let (cn, a, b) = (
                    self.arr_node(&c.args[0])?,
                    self.arr_node(&c.args[1])?,
                    self.arr_node(&c.args[2])?,
                );
                let out = self.g.select(cn, a, b)?;
                self.track(res, out)
            }
            "np.clip" => {
                let res = c.real()?;
                let mut n = self.arr_node(x.as_ref().unwrap())?;
                // the result's dtype, as NumPy promotes it (int data with float bounds is
                // float: the bounds are not truncated)
                let dt = match convert::shape_dtype(&res)? {
                    Some((_, dt)) => dt,
                    None => self.g.dtype(n),
                };
                n = self.g.cast(n, dt)?;
                // np.clip(a, lo, hi) = minimum(maximum(a, lo), hi); a None bound is skipped.
                for (i, names, op) in [
                    (1, ["a_min", "min"], BinaryOp::Maximum),
                    (2, ["a_max", "max"], BinaryOp::Minimum),
                ] {
                    let bound = c.arg(i, names[0]).or(c.arg(i, names[1]));
                    if let Some(b) = bound.filter(|v| !v.obj().is_none()).cloned() {
                        let b = self.arr_node(&b)?;
                        let b = self.g.cast(b, dt)?;
                        n = self.g.binary(op, n, b)?;
                    }
                }
                self.track(res, n)
            }
            "np.full" | "np.full_like" if self.deep_sym(c.arg(1, "fill_value").unwrap()) => {
                let res = c.real()?;
                let (shape, dt) = convert::shape_dtype(&res)?.unwrap();
                let v = self.arr_node(c.arg(1, "fill_value").unwrap())?;
                let v = self.g.cast(v, dt)?;
                let out = self.g.broadcast(v, &shape)?;
                self.track(res, out)
            }
            "np.zeros_like" | "np.ones_like" | "np.full_like" | "np.empty_like" | "np.full" => {
                Ok(Val::new(c.real()?))
            }
            "np.round" | "np.around" | "builtins.round" => {
                let res = c.real()?;
                let n = self.arr_node(x.as_ref().unwrap())?;
                let d = self.int_of(c.opt(1, "decimals"), 0)?;
                let int = !self.g.dtype(n).is_float();
                // As NumPy: multiply by 10^d, round half to even, divide (d > 0); divide by
                // 10^-d, round, multiply (d < 0, also for integers, in float64); integers
                // with d >= 0 are unchanged.
                let out = if int && d >= 0 {
                    n
                } else if d == 0 {
                    self.g.unary(UnaryOp::Round, n)?
                } else {
                    let n = if int { self.g.cast(n, DType::F64)? } else { n };
                    let p = self
                        .g
                        .scalar(10f64.powi(d.unsigned_abs() as i32), self.g.dtype(n));
                    let (fwd, back) = if d > 0 {
                        (BinaryOp::Mul, BinaryOp::Div)
                    } else {
                        (BinaryOp::Div, BinaryOp::Mul)
                    };
                    let m = self.g.binary(fwd, n, p)?;
                    let r = self.g.unary(UnaryOp::Round, m)?;
                    self.g.binary(back, r, p)?
                };
                self.track(res, out)
            }
            _ => self.call_native(c),
        }
    }

    /// Gathers at positions fixed by the call.
    fn run_movement(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        let py = self.py;
        let x = c.args.first().cloned();
        let np = self.r.np.clone();
        match name {
            "np.lib.stride_tricks.sliding_window_view" | "np.lib.stride_tricks.as_strided" => {
                self.strided_view(name, c)
            }
            "np.flip" | "np.fliplr" | "np.flipud" | "np.roll" | "np.tile" | "np.repeat"
            | "np.take" | "np.diagonal" | "np.rot90" => {
                if c.args.iter().skip(1).any(|a| self.sym(a).is_some()) {
                    for a in c.args.clone().iter().skip(1) {
                        self.concretize(a, &format!("an index argument of {name}"))?;
                    }
                }
                let res = c.real()?;
                let n = self.arr_node(x.as_ref().unwrap())?;
                self.movement(&c, n, res)
            }
            "np.trace" => {
                let res = c.real()?;
                let n = self.arr_node(x.as_ref().unwrap())?;
                let pos = np
                    .call_method1("arange", (self.g.node(n).size(),))?
                    .call_method1("reshape", (self.g.shape(n).clone(),))?;
                let (off, a1, a2) = (
                    self.int_of(c.opt(1, "offset"), 0)?,
                    self.int_of(c.opt(2, "axis1"), 0)?,
                    self.int_of(c.opt(3, "axis2"), 1)?,
                );
                let diag = np.call_method1("diagonal", (pos, off, a1, a2))?;
                let idx = self.g.constant(convert::to_tensor(
                    &np.call_method1("asarray", (diag, "int64"))?,
                )?);
                let fx = self.flat(n)?;
                let d = self.g.add(Op::Gather(0), vec![fx, idx])?;
                // dtype= casts each element first, as NumPy's sum does.
                let (_, dt) = convert::shape_dtype(&res)?.unwrap();
                let d = self.g.cast(d, dt)?;
                let last = self.ndim(d) - 1;
                let out = self.g.sum(d, &[last])?;
                self.track(res, out)
            }
            "np.diag" => {
                let res = c.real()?;
                let n = self.arr_node(x.as_ref().unwrap())?;
                if self.ndim(n) == 2 {
                    return self.movement(&c, n, res);
                }
                if c.opt(1, "k")
                    .is_some_and(|k| k.extract::<i64>().ok() != Some(0))
                {
                    return unsupported("np.diag(v, k) with k != 0 on a traced vector");
                }
                let len = self.g.shape(n)[0];
                let eye = np.call_method1("eye", (len,))?;
                let e = self.g.constant(convert::to_tensor(&eye)?);
                let row = self.g.reshape(n, &[1, len])?;
                let out = self.g.mul(row, e)?;
                self.track(res, out)
            }
            "np.triu" | "np.tril" => {
                let res = c.real()?;
                let n = self.arr_node(x.as_ref().unwrap())?;
                let f = c.callee.clone();
                let mut a: Vec<Bound<PyAny>> =
                    vec![np.call_method1("ones", (self.g.shape(n).clone(), "bool"))?];
                a.extend(c.args[1..].iter().map(|v| v.obj().clone()));
                let mask = f.call1(PyTuple::new(py, a)?)?;
                let m = self.g.constant(convert::to_tensor(&mask)?);
                let z = self.g.zeros_like(n);
                let out = self.g.select(m, n, z)?;
                self.track(res, out)
            }
            "np.take_along_axis" => {
                let res = c.real()?;
                let (n, i) = (self.arr_node(&c.args[0])?, self.arr_node(&c.args[1])?);
                let (n, i, ax) = match c.arg(2, "axis") {
                    // axis=None: the flattened array.
                    Some(a) if a.obj().is_none() => (self.flat(n)?, i, 0),
                    Some(a) => {
                        let ax = axes_of(Some(a.obj()), self.ndim(n))?[0];
                        (n, i, ax)
                    }
                    None => (n, i, self.ndim(n) - 1),
                };
                let i = self.g.cast(i, DType::I64)?;
                let out = self.g.add(Op::TakeAlong(ax), vec![n, i])?;
                self.track(res, out)
            }
            _ => self.call_native(c),
        }
    }

    /// Order-dependent entries.
    fn run_sorting(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        let py = self.py;
        let x = c.args.first().cloned();
        let np = self.r.np.clone();
        match name {
            "np.partition" | "np.argpartition" => {
                // NumPy's selection algorithm only compares elements: its permutation is
                // fixed by the order of the values and which neighbours in that order are
                // equal, both guarded; the result is a gather at that permutation.
                let res = c.real()?;
                let xo = x.clone().unwrap();
                let mut n = self.arr_node(&xo)?;
                let kth = c.arg(1, "kth").unwrap().obj().clone();
                let mut xr = np.call_method1("asarray", (xo.obj(),))?;
                let ax = match c.arg(2, "axis") {
                    Some(v) if v.obj().is_none() => {
                        n = self.flat(n)?;
                        xr = xr.call_method0("ravel")?;
                        0
                    }
                    Some(v) => axes_of(Some(v.obj()), self.ndim(n))?[0],
                    None => self.ndim(n).saturating_sub(1),
                };
                if self.ndim(n) == 0 {
                    return self.call_native(c);
                }
                let kw = PyDict::new(py);
                kw.set_item("axis", ax)?;
                let perm = np.call_method("argpartition", (&xr, &kth), Some(&kw))?;
                kw.set_item("kind", "stable")?;
                let order = np.call_method("argsort", (&xr,), Some(&kw))?;
                let onode = self.g.add(Op::ArgSort(ax), vec![n])?;
                self.guard(
                    onode,
                    &order,
                    "the order of a traced array's elements (np.partition)",
                )?;
                let shape = self.g.shape(n).clone();
                let len = shape[ax];
                if len > 1 {
                    let dims = |start: usize| -> Vec<SliceDim> {
                        shape
                            .iter()
                            .enumerate()
                            .map(|(i, &d)| SliceDim {
                                start: if i == ax { start } else { 0 },
                                step: 1,
                                len: if i == ax { len - 1 } else { d },
                            })
                            .collect()
                    };
                    let sorted = self.g.add(Op::TakeAlong(ax), vec![n, onode])?;
                    let hi = self.g.slice(sorted, dims(1))?;
                    let lo = self.g.slice(sorted, dims(0))?;
                    let eq = self.g.binary(BinaryOp::Eq, hi, lo)?;
                    let kw = PyDict::new(py);
                    kw.set_item("axis", ax)?;
                    let s = np.call_method("take_along_axis", (&xr, &order), Some(&kw))?;
                    let r1 = np.call_method1("arange", (1, len))?;
                    let r0 = np.call_method1("arange", (0, len - 1))?;
                    let hr = s.call_method("take", (r1,), Some(&kw))?;
                    let lr = s.call_method("take", (r0,), Some(&kw))?;
                    let er = np.call_method1("equal", (hr, lr))?;
                    self.guard(
                        eq,
                        &er,
                        "which elements of a traced array are equal (np.partition)",
                    )?;
                }
                let pn = self.g.constant(convert::to_tensor(
                    &np.call_method1("asarray", (&perm, "int64"))?,
                )?);
                let out = if name == "np.argpartition" {
                    pn
                } else {
                    self.g.add(Op::TakeAlong(ax), vec![n, pn])?
                };
                self.track(res, out)
            }
            "np.sort" | "np.argsort" | "np.argmax" | "np.argmin" => {
                let res = c.real()?;
                let mut n = self.arr_node(x.as_ref().unwrap())?;
                let default_axis = if name == "np.sort" || name == "np.argsort" {
                    Some((-1i64).into_pyobject(py)?.into_any())
                } else {
                    None
                };
                let axis = match c.arg(1, "axis") {
                    Some(v) => (!v.obj().is_none()).then(|| v.obj().clone()),
                    None => default_axis,
                };
                let ax = match axis {
                    None => {
                        n = self.flat(n)?;
                        0
                    }
                    Some(a) => axes_of(Some(&a), self.ndim(n))?[0],
                };
                let out = match name {
                    "np.argmax" => self.g.add(Op::ArgMax(ax, true), vec![n])?,
                    "np.argmin" => self.g.add(Op::ArgMax(ax, false), vec![n])?,
                    _ => {
                        let idx = self.g.add(Op::ArgSort(ax), vec![n])?;
                        if name == "np.argsort" {
                            idx
                        } else {
                            self.g.add(Op::TakeAlong(ax), vec![n, idx])?
                        }
                    }
                };
                self.track(res, out)
            }
            _ => self.call_native(c),
        }
    }

    /// `np.linalg` and `scipy.linalg`.
    fn run_linalg(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        let x = c.args.first().cloned();
        let np = self.r.np.clone();
        match name {
            "np.linalg.norm" => {
                let res = c.real()?;
                let n = self.arr_node(x.as_ref().unwrap())?;
                let n = self.g.cast(n, DType::F64.max(self.g.dtype(n)))?;
                let ord = c.opt(1, "ord");
                let axes = axes_of(c.opt(2, "axis").as_ref(), self.ndim(n))?;
                if ord
                    .as_ref()
                    .is_some_and(|o| o.extract::<String>().is_ok_and(|s| s == "nuc"))
                {
                    return unsupported(
                        "np.linalg.norm(ord='nuc') needs singular values (SVD), which the tracer \
                         does not support",
                    );
                }
                let ordv: Option<f64> = match &ord {
                    None => None,
                    Some(o) if o.extract::<String>().is_ok_and(|s| s == "fro") => None,
                    Some(o) => Some(o.extract::<f64>()?),
                };
                let matrix = match c.opt(2, "axis") {
                    None => self.ndim(n) == 2,
                    Some(a) => a.extract::<i64>().is_err() && axes.len() == 2,
                };
                if let (true, Some(o)) = (matrix, ordv) {
                    let out = self.matrix_norm(n, o, c.opt(2, "axis"))?;
                    return self.track(res, out);
                }
                let out = match ordv {
                    None | Some(2.0) => {
                        let sq = self.g.unary(UnaryOp::Square, n)?;
                        let s = self.g.sum(sq, &axes)?;
                        self.g.unary(UnaryOp::Sqrt, s)?
                    }
                    Some(1.0) => {
                        let a = self.g.unary(UnaryOp::Abs, n)?;
                        self.g.sum(a, &axes)?
                    }
                    Some(0.0) => {
                        let zero = self.g.scalar(0.0, self.g.dtype(n));
                        let nz = self.g.binary(BinaryOp::Ne, n, zero)?;
                        let nz = self.g.cast(nz, DType::F64)?;
                        self.g.sum(nz, &axes)?
                    }
                    Some(p) if p.is_infinite() => {
                        let a = self.g.unary(UnaryOp::Abs, n)?;
                        self.g.reduce(
                            if p > 0.0 {
                                ReduceOp::Max
                            } else {
                                ReduceOp::Min
                            },
                            a,
                            &axes,
                        )?
                    }
                    Some(p) => {
                        let a = self.g.unary(UnaryOp::Abs, n)?;
                        let pc = self.g.scalar(p, self.g.dtype(a));
                        let ap = self.g.binary(BinaryOp::Pow, a, pc)?;
                        let s = self.g.sum(ap, &axes)?;
                        let inv = self.g.scalar(1.0 / p, self.g.dtype(s));
                        self.g.binary(BinaryOp::Pow, s, inv)?
                    }
                };
                self.track(res, out)
            }
            "np.linalg.solve" | "scipy.solve_triangular" => {
                let res = c.real()?;
                let (a, b) = (self.arr_node(&c.args[0])?, self.arr_node(&c.args[1])?);
                let dt = DType::F64.max(self.g.dtype(a)).max(self.g.dtype(b));
                let (mut a, b) = (self.g.cast(a, dt)?, self.g.cast(b, dt)?);
                if self.ndim(a) != 2 || self.ndim(b) > 2 {
                    return unsupported("batched linear solves on traced arrays");
                }
                let vec = self.ndim(b) == 1;
                let nrow = self.g.shape(b)[0];
                let b2 = if vec {
                    self.g.reshape(b, &[nrow, 1])?
                } else {
                    b
                };
                let op = if name == "np.linalg.solve" {
                    Op::Solve
                } else {
                    let lower = self.kw_bool(&c, 3, "lower")?;
                    let trans = c
                        .opt(2, "trans")
                        .map(|t| t.str().map(|s| s.to_string()))
                        .transpose()?
                        .unwrap_or_default();
                    let transposed = match trans.as_str() {
                        "" | "0" | "N" => false,
                        "1" | "T" | "2" | "C" => true,
                        t => {
                            return unsupported(format!(
                                "solve_triangular(trans={t}) on traced arrays"
                            ))
                        }
                    };
                    if self.kw_bool(&c, 4, "unit_diagonal")? {
                        // The diagonal is taken as ones (whatever is stored there).
                        let k = self.g.shape(a)[0];
                        let eye = np.call_method1("eye", (k,))?;
                        let e = self.g.constant(convert::to_tensor(&eye)?);
                        let e = self.g.cast(e, dt)?;
                        let one = self.g.scalar(1.0, dt);
                        let off = self.g.sub(one, e)?;
                        let am = self.g.mul(a, off)?;
                        a = self.g.add_(am, e)?;
                    }
                    if transposed {
                        // a.T x = b: the transpose of a triangular matrix is triangular
                        // the other way.
                        a = self.g.transpose(a, &[1, 0])?;
                        Op::TriSolve(!lower)
                    } else {
                        Op::TriSolve(lower)
                    }
                };
                let out = self.g.add(op, vec![a, b2])?;
                self.track(res, out)
            }
            "np.linalg.inv" | "np.linalg.det" | "np.linalg.cholesky" | "scipy.cholesky" => {
                let res = c.real()?;
                let a = self.arr_node(x.as_ref().unwrap())?;
                let a = self.g.cast(a, DType::F64.max(self.g.dtype(a)))?;
                if self.ndim(a) != 2 {
                    return unsupported(format!("batched {name} on traced arrays"));
                }
                let out = match name {
                    "np.linalg.inv" => self.g.add(Op::Inv, vec![a])?,
                    "np.linalg.det" => self.g.add(Op::Det, vec![a])?,
                    // The upper factor reads the upper triangle, as LAPACK's 'U' does:
                    // U = L(Aᵀ)ᵀ (the lower factor of the transpose reads A's upper
                    // triangle; the same as L(A)ᵀ when A is symmetric).
                    "np.linalg.cholesky" => {
                        if self.kw_bool(&c, 99, "upper")? {
                            let at = self.g.transpose(a, &[1, 0])?;
                            let l = self.g.add(Op::Cholesky, vec![at])?;
                            self.g.transpose(l, &[1, 0])?
                        } else {
                            self.g.add(Op::Cholesky, vec![a])?
                        }
                    }
                    _ => {
                        if self.kw_bool(&c, 1, "lower")? {
                            self.g.add(Op::Cholesky, vec![a])?
                        } else {
                            let at = self.g.transpose(a, &[1, 0])?;
                            let l = self.g.add(Op::Cholesky, vec![at])?;
                            self.g.transpose(l, &[1, 0])?
                        }
                    }
                };
                self.track(res, out)
            }
            "np.linalg.slogdet" => {
                let res = c.real()?;
                let a = self.arr_node(x.as_ref().unwrap())?;
                let a = self.g.cast(a, DType::F64.max(self.g.dtype(a)))?;
                let det = self.g.add(Op::Det, vec![a])?;
                let sign = self.g.unary(UnaryOp::Sign, det)?;
                let lad = self.g.add(Op::LogAbsDet, vec![a])?;
                let f64t = np.getattr("float64")?;
                let s = self.track(f64t.call1((res.get_item(0)?,))?, sign)?;
                let l = self.track(f64t.call1((res.get_item(1)?,))?, lad)?;
                Ok(Val::new(res.get_type().call1((s.obj(), l.obj()))?))
            }
            _ => self.call_native(c),
        }
    }

    /// A `math` function on traced scalars, through the same name table as the ufuncs.
    /// (`math.remainder` is IEEE remainder, not NumPy's, and `math.log(x, base)` has no
    /// single op: both are refused.)
    fn math_or_ufunc(
        &mut self,
        short: &str,
        c: &Call<'py>,
        res: Bound<'py, PyAny>,
    ) -> Res<Val<'py>> {
        let op = match short {
            "remainder" => None,
            "log" if c.args.len() != 1 => None,
            _ => super::table::ufunc_op(short),
        };
        let out = match op {
            Some(Ok(u)) if c.args.len() == 1 => {
                let n = self.node(&c.args[0])?;
                let n = self.g.cast(n, DType::F64)?;
                self.g.unary(u, n)?
            }
            Some(Err(b)) if c.args.len() == 2 && !b.is_predicate() => {
                let (x, y) = (self.node(&c.args[0])?, self.node(&c.args[1])?);
                let (x, y) = (self.g.cast(x, DType::F64)?, self.g.cast(y, DType::F64)?);
                self.g.binary(b, x, y)?
            }
            _ => return unsupported(format!("math.{short} on traced values")),
        };
        self.track(res, out)
    }

    /// dot / vdot / inner / outer / matmul / tensordot as contractions.
    fn products(&mut self, name: &str, a: NodeId, b: NodeId, c: &Call<'py>) -> Res<NodeId> {
        let dt = self.g.dtype(a).max(self.g.dtype(b)).max(DType::I64);
        let (a, b) = (self.g.cast(a, dt)?, self.g.cast(b, dt)?);
        let (ra, rb) = (self.ndim(a), self.ndim(b));
        if ra == 0 || rb == 0 {
            return Ok(self.g.mul(a, b)?);
        }
        let la: Vec<u8> = LETTERS[..ra].to_vec();
        let lbf: Vec<u8> = LETTERS[ra..ra + rb].to_vec();
        let spec = match name {
            "np.matmul" => return self.matmul(a, b),
            "np.vdot" => {
                let (fa, fb) = (self.flat(a)?, self.flat(b)?);
                return Ok(self.g.contract("i,i->", fa, fb)?);
            }
            "np.outer" => {
                let (fa, fb) = (self.flat(a)?, self.flat(b)?);
                return Ok(self.g.contract("i,j->ij", fa, fb)?);
            }
            "np.inner" => {
                let mut lb = lbf.clone();
                lb[rb - 1] = la[ra - 1];
                (la.clone(), lb, [&la[..ra - 1], &lbf[..rb - 1]].concat())
            }
            "np.tensordot" => {
                let axes = c.opt(2, "axes");
                let (xa, xb): (Vec<i64>, Vec<i64>) = match axes {
                    None => ((ra as i64 - 2..ra as i64).collect(), (0..2).collect()),
                    Some(ax) => match ax.extract::<i64>() {
                        Ok(n) => ((ra as i64 - n..ra as i64).collect(), (0..n).collect()),
                        Err(_) => {
                            let p0 = ax.get_item(0)?;
                            let p1 = ax.get_item(1)?;
                            let one = |p: Bound<PyAny>| -> PyResult<Vec<i64>> {
                                p.extract::<i64>().map(|v| vec![v]).or_else(|_| p.extract())
                            };
                            (one(p0)?, one(p1)?)
                        }
                    },
                };
                let norm = |v: i64, r: usize| {
                    if v < 0 {
                        (v + r as i64) as usize
                    } else {
                        v as usize
                    }
                };
                let mut lb = lbf.clone();
                for (&i, &j) in xa.iter().zip(&xb) {
                    lb[norm(j, rb)] = la[norm(i, ra)];
                }
                let xa_n: Vec<usize> = xa.iter().map(|&v| norm(v, ra)).collect();
                let xb_n: Vec<usize> = xb.iter().map(|&v| norm(v, rb)).collect();
                let mut out: Vec<u8> = (0..ra)
                    .filter(|i| !xa_n.contains(i))
                    .map(|i| la[i])
                    .collect();
                out.extend((0..rb).filter(|i| !xb_n.contains(i)).map(|i| lb[i]));
                (la.clone(), lb, out)
            }
            _ => {
                // np.dot: sum over the last axis of a and the second-to-last of b.
                let cb = if rb == 1 { 0 } else { rb - 2 };
                let mut lb = lbf.clone();
                lb[cb] = la[ra - 1];
                let mut out: Vec<u8> = la[..ra - 1].to_vec();
                out.extend((0..rb).filter(|&i| i != cb).map(|i| lb[i]));
                (la.clone(), lb, out)
            }
        };
        let spec = format!("{},{}->{}", s(&spec.0), s(&spec.1), s(&spec.2));
        Ok(self.g.contract(&spec, a, b)?)
    }

    /// `np.einsum` for explicit or implicit specs over any number of operands.
    fn einsum(&mut self, spec: &str, ops: &[NodeId]) -> Res<NodeId> {
        let (ins, out) = match parse_einsum(spec) {
            Ok(p) => p,
            Err(e) => return unsupported(format!("np.einsum: {e}")),
        };
        if ins.len() != ops.len() {
            return unsupported("np.einsum: operand count does not match the spec");
        }
        let mut terms: Vec<(Vec<u8>, NodeId)> = vec![];
        for (labels, &n) in ins.into_iter().zip(ops) {
            terms.push(self.einsum_unary(labels, n)?);
        }
        // Contract left to right, keeping labels needed later or in the output.
        let (mut acc_l, mut acc) = terms.remove(0);
        for k in 0..terms.len() {
            let (bl, bn) = terms[k].clone();
            let later: Vec<u8> = terms[k + 1..]
                .iter()
                .flat_map(|t| t.0.clone())
                .chain(out.iter().copied())
                .collect();
            let mut keep: Vec<u8> = vec![];
            for l in acc_l.iter().chain(bl.iter()) {
                if later.contains(l) && !keep.contains(l) {
                    keep.push(*l);
                }
            }
            // Labels in only one operand and not kept are summed first.
            let (al2, an2) =
                self.sum_labels(&acc_l, acc, &|l| bl.contains(&l) || keep.contains(&l))?;
            let (bl2, bn2) =
                self.sum_labels(&bl, bn, &|l| al2.contains(&l) || keep.contains(&l))?;
            let sp = format!("{},{}->{}", s(&al2), s(&bl2), s(&keep));
            acc = self.g.contract(&sp, an2, bn2)?;
            acc_l = keep;
        }
        // Final: sum labels not in the output, then permute.
        let (l2, n2) = self.sum_labels(&acc_l, acc, &|l| out.contains(&l))?;
        let perm: Vec<usize> = out
            .iter()
            .map(|o| l2.iter().position(|l| l == o).unwrap())
            .collect();
        Ok(self.g.transpose(n2, &perm)?)
    }

    fn sum_labels(
        &mut self,
        labels: &[u8],
        n: NodeId,
        keep: &dyn Fn(u8) -> bool,
    ) -> Res<(Vec<u8>, NodeId)> {
        let axes: Vec<usize> = (0..labels.len()).filter(|&i| !keep(labels[i])).collect();
        let kept: Vec<u8> = labels.iter().copied().filter(|&l| keep(l)).collect();
        Ok((kept, self.g.sum(n, &axes)?))
    }

    /// Removes repeated labels in one einsum operand (diagonals) with a gather.
    fn einsum_unary(&mut self, labels: Vec<u8>, n: NodeId) -> Res<(Vec<u8>, NodeId)> {
        let mut uniq: Vec<u8> = vec![];
        for &l in &labels {
            if !uniq.contains(&l) {
                uniq.push(l);
            }
        }
        if uniq.len() == labels.len() {
            return Ok((labels, n));
        }
        let np = self.r.np.clone();
        let shape = self.g.shape(n).clone();
        let size: usize = shape.iter().product();
        let pos = np
            .call_method1("arange", (size,))?
            .call_method1("reshape", (shape,))?;
        let p = np.call_method1("einsum", (format!("{}->{}", s(&labels), s(&uniq)), pos))?;
        let idx = self.g.constant(convert::to_tensor(
            &np.call_method1("asarray", (p, "int64"))?,
        )?);
        let fx = self.flat(n)?;
        Ok((uniq, self.g.add(Op::Gather(0), vec![fx, idx])?))
    }

    /// `autodiff.constant(x)`: a copy of `x` whose traced leaves (arrays, floats, inside
    /// lists, tuples and dicts) are `stop_gradient` nodes: the value stays an input of the
    /// graph (read afresh on every call), only the derivative stops. Untraced values are
    /// returned as they are.
    fn stop_gradient(&mut self, o: &Val<'py>) -> Res<Val<'py>> {
        if let Some(n) = self.sym(o) {
            let obj = o.obj();
            let copy = if obj.is_instance_of::<pyo3::types::PyFloat>() {
                self.r.np.getattr("float64")?.call1((obj,))?
            } else {
                obj.call_method0("copy")?
            };
            let sg = self.g.unary(autodiff_ir::UnaryOp::StopGradient, n)?;
            return self.track(copy, sg);
        }
        if !self.deep_sym(o) {
            return Ok(o.clone());
        }
        let obj = o.obj().clone();
        let py = self.py;
        if let Ok(d) = obj.downcast::<pyo3::types::PyDict>() {
            let out = pyo3::types::PyDict::new(py);
            for (k, v) in d.iter() {
                let sv = self.stop_gradient(&Val::new(v))?;
                out.set_item(k, self.escape(&sv)?)?;
            }
            return Ok(Val::new(out.into_any()));
        }
        let is_list = obj.is_instance_of::<pyo3::types::PyList>();
        if is_list || obj.is_exact_instance_of::<pyo3::types::PyTuple>() {
            let mut items = vec![];
            for v in obj.try_iter()? {
                let sv = self.stop_gradient(&Val::new(v?))?;
                items.push(self.escape(&sv)?);
            }
            let out = if is_list {
                pyo3::types::PyList::new(py, items)?.into_any()
            } else {
                pyo3::types::PyTuple::new(py, items)?.into_any()
            };
            return Ok(Val::new(out));
        }
        unsupported(format!(
            "autodiff.constant() of a {} holding traced values: apply constant() to its arrays",
            super::type_name(&obj)
        ))
    }
}

/// The labels of each operand and of the output of an einsum spec (`"ij,jk->ik"`; an
/// implicit spec's output is its labels that occur once, sorted, as in NumPy).
pub fn parse_einsum(spec: &str) -> Result<(Vec<Vec<u8>>, Vec<u8>), String> {
    let spec: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
    if spec.contains("...") {
        return Err("'...' (ellipsis) is not supported on traced arrays".into());
    }
    if let Some(c) = spec
        .chars()
        .find(|c| !(c.is_ascii_alphabetic() || matches!(c, ',' | '-' | '>')))
    {
        return Err(format!("invalid character {c:?} in the spec"));
    }
    let (ins, out) = match spec.split_once("->") {
        Some((i, o)) => (i, o.as_bytes().to_vec()),
        None => {
            let all: Vec<u8> = spec.bytes().filter(|c| c.is_ascii_alphabetic()).collect();
            let mut once: Vec<u8> = all
                .iter()
                .copied()
                .filter(|c| all.iter().filter(|d| *d == c).count() == 1)
                .collect();
            once.sort_unstable();
            (spec.as_str(), once)
        }
    };
    let ins: Vec<Vec<u8>> = ins.split(',').map(|t| t.as_bytes().to_vec()).collect();
    for &l in &out {
        if !l.is_ascii_alphabetic() || !ins.iter().any(|t| t.contains(&l)) {
            return Err(format!(
                "output label {:?} does not occur in the inputs",
                l as char
            ));
        }
        if out.iter().filter(|&&m| m == l).count() > 1 {
            return Err(format!("output label {:?} repeated", l as char));
        }
    }
    if ins.iter().flatten().any(|c| !c.is_ascii_alphabetic()) {
        return Err("malformed spec".into());
    }
    Ok((ins, out))
}

fn s(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}
