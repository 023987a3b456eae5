//! The one table that maps Python and NumPy callables, operators and attributes to IR.
//!
//! Every entry runs the real call (NumPy decides the value) and builds the mirroring node;
//! `Tracer::track` then checks the node's shape against the real result. Calls the table
//! does not know run natively when no argument is symbolic, concretize discrete symbolic
//! arguments under guards, and otherwise raise an error naming the callee.

use std::collections::HashMap;

use autodiff_ir::{BinaryOp, DType, NodeId, Op, ReduceOp, Shape, UnaryOp};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyTuple};

use super::sig::Call;
use super::{type_name, unsupported, Res, TracedGen, Tracer, Val};
use crate::convert;

pub enum Unary {
    Neg,
    Pos,
    Invert,
}

/// Callables recognised by identity, resolved once per process from the registry.
pub struct Known {
    /// The canonical name (the registry entry's) of each callable, by address.
    by_id: HashMap<usize, &'static str>,
    /// Keeps each recognised callable alive, so its address is never reused.
    _keep: Vec<Py<PyAny>>,
    /// C callables with a pure-Python stand-in (`autodiff/_pure.py`, `REPLACE`),
    /// interpreted when they receive traced values.
    pure: HashMap<usize, Py<PyAny>>,
    /// The module holding the stand-ins.
    pure_mod: Option<Py<PyModule>>,
}

/// The table as one trace sees it: the process-wide [`Known`] callables, the markers
/// of this trace, and the stand-ins running now.
pub struct Table {
    known: &'static Known,
    /// The `autodiff` markers (`constant`, `escape`, `tag`) passed to this trace.
    markers: HashMap<usize, &'static str>,
    /// Stand-ins being interpreted: a call to the original from inside its own stand-in
    /// goes to the original.
    active: Vec<usize>,
}

/// Methods that change the object they are bound to (lists, dicts, sets, deques, arrays):
/// refused on objects the traced function does not own.
const MUTATORS: &[&str] = &[
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "sort",
    "reverse",
    "update",
    "setdefault",
    "popitem",
    "add",
    "discard",
    "difference_update",
    "intersection_update",
    "symmetric_difference_update",
    "appendleft",
    "extendleft",
    "popleft",
    "rotate",
    "fill",
    "resize",
    "put",
    "itemset",
    "setfield",
    "partition",
    "byteswap",
    "setflags",
    "at",
    "__setitem__",
    "__delitem__",
    "__setattr__",
    "__delattr__",
    "__iadd__",
    "__isub__",
    "__imul__",
    "__itruediv__",
];

/// NumPy functions that write into their first argument.
const NP_WRITERS: &[&str] = &[
    "copyto",
    "fill_diagonal",
    "put",
    "place",
    "putmask",
    "put_along_axis",
];

/// Methods of `list` and `dict` that store or fetch values without inspecting them.
const CONTAINER_METHODS: &[&str] = &[
    "append",
    "extend",
    "insert",
    "pop",
    "copy",
    "reverse",
    "clear",
    "get",
    "setdefault",
    "update",
    "items",
    "keys",
    "values",
    "popitem",
];

impl Known {
    /// Resolves every registry entry that lives in a module (a module that fails to import,
    /// or a name this NumPy lacks, leaves its entries out).
    fn resolve(py: Python<'_>) -> Known {
        let mut k = Known {
            by_id: HashMap::new(),
            _keep: vec![],
            pure: HashMap::new(),
            pure_mod: None,
        };
        if let Ok(m) = py.import("autodiff._pure") {
            if let Ok(d) = m.getattr("REPLACE") {
                if let Ok(d) = d.downcast::<PyDict>() {
                    for (f, v) in d.iter() {
                        k.pure.insert(f.as_ptr() as usize, v.unbind());
                        k._keep.push(f.unbind());
                    }
                }
            }
            k.pure_mod = Some(m.unbind());
        }
        for e in super::registry::all() {
            let Some((module, path)) = e.python() else {
                continue;
            };
            let Ok(mut o) = py.import(module).map(|m| m.into_any()) else {
                continue;
            };
            let mut found = true;
            for part in path.split('.') {
                match o.getattr(part) {
                    Ok(x) => o = x,
                    Err(_) => {
                        found = false;
                        break;
                    }
                }
            }
            if found {
                k.by_id.entry(o.as_ptr() as usize).or_insert(e.name);
                k._keep.push(o.unbind());
            }
        }
        k
    }
}

impl Table {
    /// The table for one trace: the process-wide callables (resolved on the first trace)
    /// and this trace's markers.
    pub fn new(r: &super::Refs<'_>) -> PyResult<Table> {
        static KNOWN: pyo3::sync::GILOnceCell<Known> = pyo3::sync::GILOnceCell::new();
        let py = r.np.py();
        let known = KNOWN.get_or_init(py, || Known::resolve(py));
        let mut markers = HashMap::new();
        for (k, v) in r.markers.iter() {
            let name: String = k.extract()?;
            if let Some(e) = super::registry::lookup(&format!("autodiff.{name}")) {
                markers.insert(v.as_ptr() as usize, e.name);
            }
        }
        Ok(Table {
            known,
            markers,
            active: vec![],
        })
    }

    /// The canonical name of a recognised callable.
    pub fn name_of(&self, c: &Bound<'_, PyAny>) -> Option<&'static str> {
        let id = c.as_ptr() as usize;
        self.known
            .by_id
            .get(&id)
            .or_else(|| self.markers.get(&id))
            .copied()
    }
}

/// NumPy axis normalisation: `None` → all axes, int or tuple → sorted non-negative axes.
pub fn axes_of(axis: Option<&Bound<'_, PyAny>>, ndim: usize) -> PyResult<Vec<usize>> {
    let norm = |a: i64| -> PyResult<usize> {
        let r = if a < 0 { a + ndim as i64 } else { a };
        if r < 0 || r >= ndim.max(1) as i64 {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "axis {a} is out of bounds for array of dimension {ndim}"
            )));
        }
        Ok(r as usize)
    };
    match axis {
        None => Ok((0..ndim).collect()),
        Some(a) => {
            if let Ok(i) = a.extract::<i64>() {
                Ok(vec![norm(i)?])
            } else {
                let v: Vec<i64> = a.extract()?;
                let mut out = v.into_iter().map(norm).collect::<PyResult<Vec<_>>>()?;
                out.sort_unstable();
                Ok(out)
            }
        }
    }
}

/// The IR op of a NumPy/SciPy ufunc or `math` function name. Names that differ from the
/// IR op's own name (`UnaryOp::name`, `BinaryOp::name`) are listed; the rest are the same
/// (exp, log, sqrt, tanh, erf, gammaln, add, maximum, arctan2, logaddexp, ...).
pub(super) fn ufunc_op(name: &str) -> Option<Result<UnaryOp, BinaryOp>> {
    use BinaryOp as B;
    use UnaryOp as U;
    let alias = match name {
        "negative" => Ok(U::Neg),
        "absolute" | "fabs" => Ok(U::Abs),
        "asin" => Ok(U::Arcsin),
        "acos" => Ok(U::Arccos),
        "atan" => Ok(U::Arctan),
        "asinh" => Ok(U::Arcsinh),
        "acosh" => Ok(U::Arccosh),
        "atanh" => Ok(U::Arctanh),
        "rint" => Ok(U::Round),
        "expit" => Ok(U::Sigmoid),
        "lgamma" => Ok(U::Gammaln),
        "psi" => Ok(U::Digamma),
        "logical_not" => Ok(U::Not),
        "subtract" => Err(B::Sub),
        "multiply" => Err(B::Mul),
        "divide" | "true_divide" => Err(B::Div),
        "floor_divide" => Err(B::FloorDiv),
        "remainder" => Err(B::Mod),
        "power" | "float_power" => Err(B::Pow),
        "atan2" => Err(B::Arctan2),
        "less" => Err(B::Lt),
        "less_equal" => Err(B::Le),
        "greater" => Err(B::Gt),
        "greater_equal" => Err(B::Ge),
        "equal" => Err(B::Eq),
        "not_equal" => Err(B::Ne),
        "logical_and" => Err(B::And),
        "logical_or" => Err(B::Or),
        "logical_xor" => Err(B::Xor),
        _ => {
            return U::from_name(name)
                .map(Ok)
                .or_else(|| B::from_name(name).map(Err))
        }
    };
    Some(alias)
}

/// BINARY_OP's operator index → IR op (None: not differentiable arithmetic).
fn binop_of(arg: usize) -> Option<BinaryOp> {
    Some(match arg % 13 {
        0 => BinaryOp::Add,
        2 => BinaryOp::FloorDiv,
        5 => BinaryOp::Mul,
        6 => BinaryOp::Mod,
        8 => BinaryOp::Pow,
        10 => BinaryOp::Sub,
        11 => BinaryOp::Div,
        _ => return None,
    })
}

impl<'py> Tracer<'py> {
    fn val(&self, o: Bound<'py, PyAny>) -> Val<'py> {
        Val::new(o)
    }

    fn shape_of(&self, n: NodeId) -> Shape {
        self.g.shape(n).clone()
    }

    /// Elementwise unary node of `x` computed in the result's dtype.
    fn ew_unary(&mut self, op: UnaryOp, x: &Val<'py>, res: Bound<'py, PyAny>) -> Res<Val<'py>> {
        let n = self.arr_node(x)?;
        let (_, dt) = convert::shape_dtype(&res)?.unwrap_or((vec![], DType::F64));
        let n = if op == UnaryOp::Not {
            self.g.cast(n, DType::Bool)?
        } else {
            self.g.cast(n, dt)?
        };
        let out = self.g.unary(op, n)?;
        self.track(res, out)
    }

    /// Elementwise binary node; arithmetic is computed in the result's dtype.
    fn ew_binary(
        &mut self,
        op: BinaryOp,
        a: &Val<'py>,
        b: &Val<'py>,
        res: Bound<'py, PyAny>,
    ) -> Res<Val<'py>> {
        let (mut na, mut nb) = (self.arr_node(a)?, self.arr_node(b)?);
        if op.is_predicate() {
            // NumPy compares in the operands' common dtype, where a Python number is weak
            // (NEP 50): a float32 array against 0.1 compares with float32(0.1)
            let common = self
                .r
                .np
                .call_method1("result_type", (a.obj(), b.obj()))
                .ok()
                .and_then(|d| convert::dtype_of(&d).ok().flatten());
            if common == Some(DType::F32) {
                na = self.g.cast(na, DType::F32)?;
                nb = self.g.cast(nb, DType::F32)?;
            }
        }
        let out = self.bin_nodes(op, na, nb, &res)?;
        self.track(res, out)
    }

    fn bin_nodes(
        &mut self,
        op: BinaryOp,
        na: NodeId,
        nb: NodeId,
        res: &Bound<'py, PyAny>,
    ) -> Res<NodeId> {
        let (_, dt) = convert::shape_dtype(res)?.unwrap_or((vec![], DType::F64));
        let (na, nb) = if op.is_predicate() {
            (na, nb)
        } else {
            (self.g.cast(na, dt)?, self.g.cast(nb, dt)?)
        };
        Ok(self.g.binary(op, na, nb)?)
    }

    /// `a <op> b` for BINARY_OP (in-place variants functionalize arrays).
    pub fn binary_op(&mut self, arg: usize, a: &Val<'py>, b: &Val<'py>) -> Res<Val<'py>> {
        let out = self.binary_op_inner(arg, a, b);
        if let Err(super::Err::Py(e)) = &out {
            if self.sym(a).is_some() || self.sym(b).is_some() {
                mark_traced_raise(self.py, e, "an arithmetic operator");
            }
        }
        out
    }

    fn binary_op_inner(&mut self, arg: usize, a: &Val<'py>, b: &Val<'py>) -> Res<Val<'py>> {
        let f = self.r.binops[arg].clone();
        let (sa, sb) = (self.sym(a).is_some(), self.sym(b).is_some());
        if arg >= 13 && self.is_foreign(a.obj()) {
            // `w -= lr * g` on a global array, `L += [x]` on a global list: in place.
            let ao = a.obj();
            let immutable = ao.is_instance_of::<PyFloat>()
                || ao.is_instance_of::<pyo3::types::PyInt>()
                || ao.is_instance_of::<pyo3::types::PyString>()
                || ao.is_instance_of::<PyTuple>()
                || ao.is_instance(&self.r.generic)?;
            if !immutable {
                self.check_owned(ao, "an in-place operator")?;
            }
        }
        if !sa && !sb {
            self.check_vals_not_stale([a, b])?;
            if let Some(v) = self.user_dunder(arg, a, b)? {
                return Ok(v);
            }
            let out = f.call1((a.obj(), b.obj()))?;
            if self.is_tainted(a.obj()) || self.is_tainted(b.obj()) {
                self.taint(&out);
            }
            return Ok(self.val(out));
        }
        let inplace = arg >= 13 && a.obj().is_instance(&self.r.ndarray)?;
        if inplace {
            // Compute out of place first so the node sees the old value.
            let res = self.r.binops[arg - 13].call1((a.obj(), b.obj()))?;
            let v = self.binary_value(arg - 13, a, b, res)?;
            let node = self.node(&v)?;
            f.call1((a.obj(), b.obj()))?;
            self.update(a.obj(), node)?;
            return Ok(a.clone());
        }
        let res = f.call1((a.obj(), b.obj()))?;
        self.binary_value(arg % 13, a, b, res)
    }

    fn binary_value(
        &mut self,
        arg: usize,
        a: &Val<'py>,
        b: &Val<'py>,
        res: Bound<'py, PyAny>,
    ) -> Res<Val<'py>> {
        if arg == 4 {
            let (na, nb) = (self.node(a)?, self.node(b)?);
            let out = self.matmul(na, nb)?;
            return self.track(res, out);
        }
        if arg == 8
            && self.sym(a).is_some()
            && self.sym(b).is_none()
            && a.obj().is_instance(&self.r.ndarray)?
            && !b.obj().is_instance_of::<pyo3::types::PyBool>()
            && b.obj().extract::<f64>().is_ok_and(|e| e == 0.5)
        {
            // NumPy's `array ** 0.5` is np.sqrt (its fast path for that exponent): -0.0
            // stays -0.0 and -inf is nan, where pow gives +0.0 and inf
            let (_, dt) = convert::shape_dtype(&res)?.unwrap_or((vec![], DType::F64));
            let na = self.node(a)?;
            let na = self.g.cast(na, dt)?;
            let out = self.g.unary(UnaryOp::Sqrt, na)?;
            return self.track(res, out);
        }
        if let Some(op) = binop_of(arg) {
            return self.ew_binary(op, a, b, res);
        }
        let bools = |t: &Self, v: &Val<'py>| t.sym(v).is_none_or(|n| t.g.dtype(n) == DType::Bool);
        if matches!(arg, 1 | 7 | 12) && bools(self, a) && bools(self, b) {
            let op = [BinaryOp::And, BinaryOp::Or, BinaryOp::Xor]
                [[1, 7, 12].iter().position(|&x| x == arg).unwrap()];
            return self.ew_binary(op, a, b, res);
        }
        self.concretize(a, "a bitwise operator")?;
        self.concretize(b, "a bitwise operator")?;
        Ok(self.val(res))
    }

    /// Interprets a Python-level operator method of a user class (`__add__`, `__radd__`).
    fn user_dunder(&mut self, arg: usize, a: &Val<'py>, b: &Val<'py>) -> Res<Option<Val<'py>>> {
        const NAMES: [&str; 13] = [
            "add", "and", "floordiv", "lshift", "matmul", "mul", "mod", "or", "pow", "rshift",
            "sub", "truediv", "xor",
        ];
        if !self.deep_sym(a) && !self.deep_sym(b) {
            return Ok(None);
        }
        let name = NAMES[arg % 13];
        let tries = [
            (a, b, format!("__{name}__")),
            (b, a, format!("__r{name}__")),
        ];
        for (x, y, dunder) in tries {
            if let Ok(m) = x.obj().get_type().getattr(dunder.as_str()) {
                if m.is_instance(&self.r.function_type)? {
                    let out = self.call_function(&m, vec![x.clone(), y.clone()], vec![])?;
                    if !out.obj().is(self.py.NotImplemented()) {
                        return Ok(Some(out));
                    }
                }
            }
        }
        Ok(None)
    }

    pub fn unary(&mut self, u: Unary, v: &Val<'py>) -> Res<Val<'py>> {
        let (name, op) = match u {
            Unary::Neg => ("neg", Some(UnaryOp::Neg)),
            Unary::Pos => ("pos", None),
            Unary::Invert => ("invert", Some(UnaryOp::Not)),
        };
        let res = self.r.operator.getattr(name)?.call1((v.obj(),))?;
        let Some(n) = self.sym(v) else {
            self.check_not_stale(v.obj())?;
            return Ok(self.val(res));
        };
        match op {
            None => self.track(res, n),
            Some(UnaryOp::Not) if self.g.dtype(n) != DType::Bool => {
                self.concretize(v, "the ~ operator")?;
                Ok(self.val(res))
            }
            Some(op) => self.ew_unary(op, v, res),
        }
    }

    pub fn compare(&mut self, op: &str, a: &Val<'py>, b: &Val<'py>) -> Res<Val<'py>> {
        let (bop, pyop) = match op {
            "<" => (BinaryOp::Lt, "lt"),
            "<=" => (BinaryOp::Le, "le"),
            ">" => (BinaryOp::Gt, "gt"),
            ">=" => (BinaryOp::Ge, "ge"),
            "==" => (BinaryOp::Eq, "eq"),
            _ => (BinaryOp::Ne, "ne"),
        };
        let res = self.r.operator.getattr(pyop)?.call1((a.obj(), b.obj()))?;
        if self.sym(a).is_none() && self.sym(b).is_none() {
            // lists or tuples holding traced values compare item by item: each item
            // decides the outcome, so each is guarded
            if self.deep_sym(a) || self.deep_sym(b) {
                self.concretize_deep(a, "comparing containers of traced values")?;
                self.concretize_deep(b, "comparing containers of traced values")?;
            }
            self.check_vals_not_stale([a, b])?;
            return Ok(self.val(res));
        }
        if convert::shape_dtype(a.obj())?.is_none() || convert::shape_dtype(b.obj())?.is_none() {
            // e.g. `x == None`: Python decides without looking at the values.
            return Ok(self.val(res));
        }
        self.ew_binary(bop, a, b, res)
    }

    /// Attribute access; array attributes that compute (`.T`) are traced, properties
    /// written in Python are interpreted.
    pub fn getattr(&mut self, o: &Val<'py>, name: &str) -> Res<Val<'py>> {
        // A NumPy bool carries its node in its stack slot (the objects are shared): a method
        // bound to it (`(x > 0).any()`, `.astype(float)`) would lose the node, so its
        // attributes are read from a 0-d array tracked by identity instead.
        if o.node.is_some()
            && o.obj.as_ref().is_some_and(|b| {
                self.sym_obj(b).is_none() && b.is_instance(&self.r.np_bool).unwrap_or(false)
            })
        {
            let boxed = self.escape(o)?;
            return self.getattr(&Val::new(boxed), name);
        }
        if let Some(n) = self.sym(o) {
            match name {
                "T" | "mT" => {
                    let r = self.shape_of(n).len();
                    let perm: Vec<usize> = if name == "T" {
                        (0..r).rev().collect()
                    } else {
                        let mut p: Vec<usize> = (0..r).collect();
                        if r >= 2 {
                            p.swap(r - 1, r - 2);
                        }
                        p
                    };
                    let res = o.obj().getattr(name)?;
                    let t = self.g.transpose(n, &perm)?;
                    return self.track(res, t);
                }
                "real" => {
                    let res = o.obj().getattr(name)?;
                    return self.track(res, n);
                }
                "imag" | "flat" => {
                    return unsupported(format!(
                        "the array attribute .{name} is not supported on traced arrays"
                    ))
                }
                "data" | "__array_interface__" | "__array_struct__" | "ctypes" => {
                    return unsupported(format!(
                        "`.{name}` of a traced array exposes its memory: whatever is built from \
                         it (np.frombuffer, as_strided, ctypes) would hold the values of the trace \
                         as constants. Use NumPy operations on the array itself (indexing, \
                         reshape, np.lib.stride_tricks.sliding_window_view)"
                    ))
                }
                _ => {}
            }
        }
        let obj = o.obj();
        if !obj.is_instance_of::<PyModule>() && !obj.is_instance(&self.r.ndarray)? {
            if let Ok(ca) = obj.get_type().getattr(name) {
                let prop = self.py.import("builtins")?.getattr("property")?;
                if ca.is_instance(&prop)? {
                    let fget = ca.getattr("fget")?;
                    if fget.is_instance(&self.r.function_type)? {
                        return self.call_function(&fget, vec![o.clone()], vec![]);
                    }
                }
            }
        }
        let v = obj.getattr(name)?;
        if !obj.is_instance(&self.r.ndarray)? && self.sym(o).is_none() {
            // a method bound to `obj` from its class: the class's function is what a
            // patch (`M.act = ...`) would replace, so that is the source
            if v.is_instance(&self.r.method_type)?
                && v.getattr("__self__").is_ok_and(|s| s.is(obj))
                && !obj.is_instance_of::<PyModule>()
            {
                let t = obj.get_type().into_any();
                if let Ok(func) = t.getattr(name) {
                    if !crate::library_object(&func) {
                        self.note_source("attr", &t, name, &func)?;
                    }
                }
            }
            if self.is_foreign(obj) {
                self.note_source("attr", obj, name, &v)?;
            } else if !obj.is_instance(&self.r.generic)? && self.sym_obj(&v).is_none() {
                // A class attribute read through an instance the function owns
                // (`self.scale` where `scale` is set on the class): read from outside.
                let in_instance = obj
                    .getattr("__dict__")
                    .ok()
                    .and_then(|d| d.downcast_into::<PyDict>().ok())
                    .is_some_and(|d| d.contains(name).unwrap_or(false));
                if !in_instance {
                    let t = obj.get_type().into_any();
                    if t.getattr(name).is_ok_and(|x| x.is(&v)) {
                        self.note_source("attr", &t, name, &v)?;
                    }
                }
            }
        }
        Ok(self.val(v))
    }

    /// Calls any callable: user code is interpreted, known callables go through the table.
    pub fn call(
        &mut self,
        callee: Val<'py>,
        args: Vec<Val<'py>>,
        kwargs: Vec<(String, Val<'py>)>,
    ) -> Res<Val<'py>> {
        let c = callee.obj().clone();
        self.note_exit_call(&c);
        if !self.uninit_values
            && c.getattr(pyo3::intern!(self.py, "__name__"))
                .is_ok_and(|n| matches!(n.to_string().as_str(), "empty" | "empty_like"))
            && c.getattr(pyo3::intern!(self.py, "__module__"))
                .is_ok_and(|m| m.to_string().starts_with("numpy"))
        {
            // uninitialized memory: what it holds is no fact of the function
            self.uninit_values = true;
        }
        let traced =
            args.iter().any(|a| self.deep_sym(a)) || kwargs.iter().any(|(_, v)| self.deep_sym(v));
        let str_self = c
            .getattr("__self__")
            .ok()
            .filter(|s| s.is_instance_of::<pyo3::types::PyString>());
        let to_text = traced
            && ["str", "repr", "format", "ascii"]
                .iter()
                .any(|n| self.r.builtins.getattr(*n).is_ok_and(|b| b.is(&c)));
        let tainted_in = str_self.as_ref().is_some_and(|s| self.is_tainted(s))
            || args.iter().any(|a| self.tainted_val(a));
        let out = self.dispatch(callee, args, kwargs);
        if let Ok(v) = &out {
            if to_text || (tainted_in && (str_self.is_some() || self.is_text_fn(&c))) {
                let o = v.obj().clone();
                self.taint(&o);
                if let Ok(l) = o.downcast::<PyList>() {
                    for it in l.iter() {
                        self.taint(&it);
                    }
                }
            }
        }
        if traced
            && !c.is_instance(&self.r.function_type)?
            && !c.is_instance(&self.r.method_type)?
        {
            if let Err(super::Err::Py(e)) = &out {
                mark_traced_raise(self.py, e, &callee_name(&c));
            }
        }
        out
    }

    fn dispatch(
        &mut self,
        callee: Val<'py>,
        args: Vec<Val<'py>>,
        kwargs: Vec<(String, Val<'py>)>,
    ) -> Res<Val<'py>> {
        let c = callee.obj().clone();
        self.check_vals_not_stale(args.iter().chain(kwargs.iter().map(|(_, v)| v)))?;
        if is_random(&c) {
            return unsupported(format!(
                "`{}` draws random numbers inside a traced function: they would be drawn once, at \
                 trace time, and reused on every call. Draw them outside and pass them as arguments",
                callee_name(&c)
            ));
        }
        // eval/exec of a string would run natively, without the caller's locals (NameError)
        // and without the engine seeing the operations it performs.
        let (eval, exec) = (
            self.r.builtins.getattr("eval")?,
            self.r.builtins.getattr("exec")?,
        );
        if !self.in_library() && (c.is(&eval) || c.is(&exec)) {
            return unsupported(format!(
                "`{}()` of a string inside a traced function is not supported: the tracer                  cannot see the code it runs. Write the expression as ordinary code (or build                  the function outside and call it)",
                callee_name(&c)
            ));
        }
        // (Library code reading the clock for its own bookkeeping, like logging's record
        // timestamps, is left alone; the user's code reading it is refused.)
        if let Some(what) = nondeterministic(&c).filter(|_| !self.in_library()) {
            return unsupported(format!(
                "`{}` {what} inside a traced function: it would be read once, at trace time, and \
                 the same value reused on every call. Call it outside and pass the value in as an \
                 argument",
                callee_name(&c)
            ));
        }
        self.check_effects(&c, &args, &kwargs)?;
        if let Ok(slf) = c.getattr("__self__") {
            self.check_not_stale(&slf)?;
            let sv = self.val(slf.clone());
            if self.sym(&sv).is_some() && !slf.is_instance_of::<PyModule>() {
                let name: String = c
                    .getattr("__name__")
                    .and_then(|n| n.extract())
                    .unwrap_or_default();
                if name.starts_with("__") && name.ends_with("__") && name.len() > 4 {
                    return self.call_dunder(&name, sv, args, kwargs);
                }
            }
        }
        // functools.lru_cache / cache: the wrapped function is interpreted (a cached
        // result computed at trace time could be stale, and its reads must be seen).
        if type_name(&c) == "_lru_cache_wrapper" {
            if let Ok(w) = c.getattr("__wrapped__") {
                if w.is_instance(&self.r.function_type)? {
                    if self.is_foreign(&c) {
                        self.mark_foreign(&w);
                    }
                    return self.call(self.val(w), args, kwargs);
                }
            }
        }
        // `getattr(obj, "name")` reads like `obj.name` (so outside values are recorded).
        if self.r.builtins.getattr("getattr").is_ok_and(|g| g.is(&c))
            && kwargs.is_empty()
            && (2..=3).contains(&args.len())
            && args[1].obj().is_instance_of::<pyo3::types::PyString>()
        {
            let name: String = args[1].obj().extract()?;
            return match self.getattr(&args[0], &name) {
                Err(super::Err::Py(e))
                    if args.len() == 3
                        && e.is_instance_of::<pyo3::exceptions::PyAttributeError>(self.py) =>
                {
                    // (absent on an outside object: checked on each call)
                    self.note_missing(args[0].obj(), &name)?;
                    Ok(args[2].clone())
                }
                r => r,
            };
        }
        let args = self.call_array_methods(&c, args)?;
        if let Ok(spec) = c.getattr("__autodiff__") {
            if spec.downcast::<PyTuple>().is_ok() {
                return self.call_transformed(&c, &spec, args, kwargs);
            }
        }
        // C callables with a pure-Python stand-in (functools.reduce, itertools, operator,
        // copy, batched linalg, ...): the stand-in is interpreted when values are traced.
        if let Some(f) = self
            .table
            .known
            .pure
            .get(&(c.as_ptr() as usize))
            .map(|f| f.bind(self.py).clone())
        {
            if !self.table.active.contains(&(f.as_ptr() as usize)) {
                // (the lazy stand-ins of itertools run even when nothing is traced yet, and
                // their iterables are not drained: see `builtins.map` in `funcs.rs`)
                let lazy = f
                    .getattr("__name__")
                    .is_ok_and(|n| n.to_string() == "_starmap" || n.to_string() == "_accumulate");
                if lazy {
                    return self.call_pure(&f, args, kwargs);
                }
                let mut args = args;
                for a in args.iter_mut() {
                    *a = self.materialize(a.clone())?;
                }
                let any_sym = args.iter().any(|a| self.deep_sym(a))
                    || kwargs.iter().any(|(_, v)| self.deep_sym(v));
                if any_sym {
                    return self.call_pure(&f, args, kwargs);
                }
                return self.dispatch_known(callee, c, args, kwargs);
            }
        }
        self.dispatch_known(callee, c, args, kwargs)
    }

    /// Interprets the pure-Python stand-in `f` (never recursively: inside it, a call to
    /// the function it stands for goes to the original).
    pub(super) fn call_pure(
        &mut self,
        f: &Bound<'py, PyAny>,
        args: Vec<Val<'py>>,
        kwargs: Vec<(String, Val<'py>)>,
    ) -> Res<Val<'py>> {
        let fid = f.as_ptr() as usize;
        self.table.active.push(fid);
        let out = self.call_function(f, args, kwargs);
        if let Some(p) = self.table.active.iter().rposition(|&a| a == fid) {
            self.table.active.remove(p);
        }
        out
    }

    /// The stand-in `name` of `autodiff/_pure.py` unless it is running already.
    pub(super) fn pure_fn(&self, name: &str) -> Option<Bound<'py, PyAny>> {
        let f = self
            .table
            .known
            .pure_mod
            .as_ref()?
            .bind(self.py)
            .getattr(name)
            .ok()?;
        (!self.table.active.contains(&(f.as_ptr() as usize))).then_some(f)
    }

    // Long: the order of these checks is the dispatch rule (table, Python functions,
    // methods, ufuncs, array and container methods, partials, classes); split, it would
    // hide which check wins.
    fn dispatch_known(
        &mut self,
        callee: Val<'py>,
        c: Bound<'py, PyAny>,
        args: Vec<Val<'py>>,
        kwargs: Vec<(String, Val<'py>)>,
    ) -> Res<Val<'py>> {
        // The table comes first: many NumPy/SciPy entries are Python functions
        // (np.mean, np.linalg.solve, scipy.special.logsumexp) that must not be inlined.
        if let Some(name) = self.table.name_of(&c) {
            let call = Call {
                callee: c,
                args,
                kwargs,
                method: false,
                name: name.to_string(),
                sig: None,
            };
            return self.call_known(name, call);
        }
        if c.is_instance(&self.r.function_type)? {
            return self.call_function(&c, args, kwargs);
        }
        if c.is_instance(&self.r.method_type)? {
            let func = c.getattr("__func__")?;
            let slf = c.getattr("__self__")?;
            if self.is_foreign(&c) {
                // `Function(model.loss)`: the model is read from outside.
                self.mark_foreign(&slf);
                self.mark_foreign(&func);
            }
            let mut a = vec![self.val(slf)];
            a.extend(args);
            return self.call(self.val(func), a, kwargs);
        }
        if c.is_instance(&self.r.ufunc)? {
            let name: String = c.getattr("__name__")?.extract()?;
            let call = Call {
                callee: c,
                args,
                kwargs,
                method: false,
                name: format!("np.{name}"),
                sig: None,
            };
            return self.call_ufunc(&name, call);
        }
        if c.is_instance(&self.r.builtin_method_type)? {
            if let Ok(slf) = c.getattr("__self__") {
                if slf.is_instance(&self.r.ndarray)? || slf.is_instance(&self.r.generic)? {
                    let name: String = c.getattr("__name__")?.extract()?;
                    let mut a = vec![self.val(slf)];
                    a.extend(args);
                    let call = Call {
                        callee: c,
                        args: a,
                        kwargs,
                        method: true,
                        name: format!("ndarray.{name}"),
                        sig: None,
                    };
                    return self.call_method(&name, call);
                }
                if CONTAINER_METHODS.contains(&c.getattr("__name__")?.extract::<String>()?.as_str())
                    && (slf.downcast::<PyList>().is_ok() || slf.downcast::<PyDict>().is_ok())
                {
                    // Moving values in and out of lists and dicts never looks at them; a
                    // key or an index (`d.get(k)`, `l.pop(i)`, `l.insert(i, v)`) decides
                    // which, so a traced one is guarded.
                    let mname: String = c.getattr("__name__")?.extract()?;
                    let keyed = matches!(mname.as_str(), "get" | "pop" | "insert" | "setdefault");
                    if keyed {
                        if let Some(k) = args.first() {
                            self.concretize_deep(k, &format!("the key or index of `.{mname}`"))?;
                        }
                    }
                    let orig_key = args.first().map(|v| v.obj().clone());
                    let mut args = self.escape_all(&args)?;
                    if keyed && !args.is_empty() {
                        // the key itself (guarded above), not a tracked box of it: a
                        // traced bool stays hashable
                        args[0] = orig_key.clone().unwrap_or_else(|| args[0].clone());
                    }
                    let kw = PyDict::new(self.py);
                    for (k, v) in &kwargs {
                        kw.set_item(k, self.escape(v)?)?;
                    }
                    let out = c.call(PyTuple::new(self.py, args)?, Some(&kw))?;
                    if self.is_foreign(&slf) {
                        self.mark_foreign(&out);
                    }
                    return Ok(self.val(out));
                }
                if slf.is_instance(&self.r.ufunc)? {
                    let mname: String = c.getattr("__name__")?.extract()?;
                    if mname == "at"
                        && (args.iter().any(|a| self.deep_sym(a))
                            || kwargs.iter().any(|(_, v)| self.deep_sym(v)))
                    {
                        if let Some(f) = self.pure_fn("ufunc_at") {
                            let mut a = vec![self.val(slf.clone())];
                            a.extend(args);
                            return self.call_pure(&f, a, kwargs);
                        }
                    }
                    let call = Call {
                        name: format!("{}.{}", callee_name(&slf), c.getattr("__name__")?),
                        callee: c,
                        args,
                        kwargs,
                        method: false,
                        sig: None,
                    };
                    return self.call_ufunc_method(&slf, call);
                }
                if let Ok(g) = slf.downcast::<TracedGen>() {
                    let _ = g;
                    return unsupported("methods of traced generators are not supported");
                }
            }
        }
        if let Ok(partial) = self
            .py
            .import("functools")
            .and_then(|f| f.getattr("partial"))
        {
            if c.is_instance(&partial)? {
                if self.is_foreign(&c) {
                    // Its arguments are read from outside: checked on every call.
                    for k in ["args", "keywords"] {
                        let v = c.getattr(k)?;
                        self.note_source("attr", &c, k, &v)?;
                        for x in v.try_iter()? {
                            let x = x?;
                            let x = if k == "keywords" { v.get_item(x)? } else { x };
                            self.mark_foreign(&x);
                        }
                    }
                    let f = c.getattr("func")?;
                    self.mark_foreign(&f);
                }
                let mut a: Vec<Val> = c
                    .getattr("args")?
                    .try_iter()?
                    .map(|x| x.map(Val::new))
                    .collect::<PyResult<_>>()?;
                a.extend(args);
                let mut kw: Vec<(String, Val)> = vec![];
                for (k, v) in c
                    .getattr("keywords")?
                    .downcast::<PyDict>()
                    .map_err(PyErr::from)?
                    .iter()
                {
                    kw.push((k.extract()?, Val::new(v)));
                }
                kw.extend(kwargs);
                return self.call(self.val(c.getattr("func")?), a, kw);
            }
        }
        let any_sym =
            args.iter().any(|a| self.deep_sym(a)) || kwargs.iter().any(|(_, v)| self.deep_sym(v));
        let is_type = c.is_instance_of::<pyo3::types::PyType>();
        let is_namedtuple = is_type
            && c.hasattr("_fields")?
            && c.downcast::<pyo3::types::PyType>()
                .is_ok_and(|t| t.is_subclass_of::<PyTuple>().unwrap_or(false));
        let is_partial = self
            .py
            .import("functools")
            .and_then(|f| f.getattr("partial"))
            .is_ok_and(|p| p.is(&c));
        if is_namedtuple || is_partial {
            // A namedtuple or a functools.partial only stores its arguments (identity
            // kept): build it for real (a partial's call is interpreted, see above).
            let call = Call {
                callee: c,
                args,
                kwargs,
                method: false,
                name: "namedtuple".into(),
                sig: None,
            };
            return Ok(self.val(call.real()?));
        }
        if is_type {
            // A user class: run __init__ through the engine so it is traced (always: it may
            // compute from objects that hold traced arrays).
            let init = c.getattr("__init__")?;
            let object_new = self.r.builtins.getattr("object")?.getattr("__new__")?;
            let plain_new = c.getattr("__new__")?.is(&object_new);
            if init.is_instance(&self.r.function_type)? && (plain_new || any_sym) {
                let obj = c.call_method1("__new__", (&c,))?;
                let mut a = vec![self.val(obj.clone())];
                a.extend(args);
                self.call_function(&init, a, kwargs)?;
                return Ok(self.val(obj));
            }
        }
        if !is_type && any_sym {
            // NumPy functions written in Python behind `__array_function__` dispatch
            // (np.kron, np.cross, np.isclose, ...) are interpreted like user code.
            if let Ok(imp) = c.getattr("_implementation") {
                if imp.is_instance(&self.r.function_type)? {
                    return self.call_function(&imp, args, kwargs).map_err(|e| match e {
                        super::Err::Unsupported(m) => super::Err::Unsupported(format!(
                            "`{}` is not supported on traced (differentiable) values: {m}",
                            callee_name(&c)
                        )),
                        e => e,
                    });
                }
            }
        }
        if !is_type
            && any_sym
            && self
                .r
                .np
                .getattr("vectorize")
                .is_ok_and(|v| c.is_instance(&v).unwrap_or(false))
        {
            // `np.vectorize(f)(x)`: `f` interpreted on each element.
            if let Some(f) = self.pure_fn("vectorize_call") {
                let mut a = vec![callee.clone()];
                a.extend(args);
                return self.call_pure(&f, a, kwargs);
            }
        }
        if !is_type {
            // A callable object of a user class: interpret `__call__` (always: the object
            // itself may hold traced arrays, e.g. a layer's weights).
            if let Ok(m) = c.get_type().getattr("__call__") {
                if m.is_instance(&self.r.function_type)? {
                    let mut a = vec![callee.clone()];
                    a.extend(args);
                    return self.call_function(&m, a, kwargs);
                }
            }
        }
        let name = callee_name(&c);
        let call = Call {
            callee: c,
            args,
            kwargs,
            method: false,
            name,
            sig: None,
        };
        self.call_native(call)
    }

    /// A callable the table does not know.
    pub(super) fn call_native(&mut self, mut c: Call<'py>) -> Res<Val<'py>> {
        for a in c.args.iter_mut() {
            *a = self.materialize(a.clone())?;
        }
        let mut syms: Vec<Val> = vec![];
        for v in c.args.iter().chain(c.kwargs.iter().map(|(_, v)| v)) {
            self.sym_leaves(v.clone(), 0, &mut syms);
        }
        for v in &syms {
            match self.sym(v) {
                Some(n) if !self.g.dtype(n).is_float() => self.concretize(v, &format!("the argument of {}", c.name))?,
                _ => {
                    return unsupported(format!(
                        "`{}` is not supported by the tracer with a traced (differentiable) argument. \
                         Use a NumPy function from the supported list, write it in Python/NumPy so it can \
                         be traced, or wrap the argument in autodiff.constant(...) to treat it as a constant",
                        c.name
                    ))
                }
            }
        }
        Ok(self.val(c.real()?))
    }

    fn call_ufunc(&mut self, name: &str, mut c: Call<'py>) -> Res<Val<'py>> {
        let any_sym = c.args.iter().any(|a| self.deep_sym(a));
        if !any_sym {
            return self.call_native(c);
        }
        let nin: usize = c.callee.getattr("nin")?.extract()?;
        let gufunc = !c.callee.getattr("signature")?.is_none();
        let spec = super::sig::ufunc_signature(nin, None, gufunc);
        let orig = c.clone();
        match self.bind(spec, &mut c)? {
            Some(out) => {
                let v = self.call_ufunc_bound(name, c)?;
                self.finish_out(orig, out, v)
            }
            None => self.call_ufunc_bound(name, c),
        }
    }

    fn call_ufunc_bound(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        let res = c.real()?;
        // NumPy computes `exp`/`sin`/`sqrt`... of bool, int8 and uint8 arrays in float16;
        // the engine holds float16 as float64 (rounded only where a result leaves): noted,
        // so that a self-check mismatch that this explains says so.
        let kind = |o: &Bound<'py, PyAny>| -> String {
            o.getattr("dtype")
                .and_then(|d| d.getattr("kind"))
                .and_then(|k| k.extract())
                .unwrap_or_default()
        };
        let half = res
            .getattr("dtype")
            .and_then(|d| d.getattr("itemsize"))
            .and_then(|s| s.extract::<usize>())
            .is_ok_and(|s| s == 2)
            && kind(&res) == "f";
        if half
            && c.args
                .iter()
                .all(|a| matches!(kind(a.obj()).as_str(), "b" | "i" | "u" | ""))
        {
            self.half_values = true;
        }
        if let Some(v) = self.composed_ufunc(name, &c, &res)? {
            return Ok(v);
        }
        match name {
            "positive" => {
                let n = self.arr_node(&c.args[0])?;
                return self.track(res, n);
            }
            "fmax" | "fmin" => {
                // The other operand where one is NaN (NaN only where both are).
                let (a, b) = (self.arr_node(&c.args[0])?, self.arr_node(&c.args[1])?);
                let op = if name == "fmax" {
                    BinaryOp::Maximum
                } else {
                    BinaryOp::Minimum
                };
                let m = self.bin_nodes(op, a, b, &res)?;
                let (_, dt) = convert::shape_dtype(&res)?.unwrap_or((vec![], DType::F64));
                let (a, b) = (self.g.cast(a, dt)?, self.g.cast(b, dt)?);
                let shape = self.g.shape(m).clone();
                let (a, b) = (self.g.broadcast(a, &shape)?, self.g.broadcast(b, &shape)?);
                let (an, bn) = (
                    self.g.binary(BinaryOp::Ne, a, a)?,
                    self.g.binary(BinaryOp::Ne, b, b)?,
                );
                let r = self.g.select(an, b, m)?;
                let out = self.g.select(bn, a, r)?;
                return self.track(res, out);
            }
            "exp2" | "deg2rad" | "radians" | "rad2deg" | "degrees" | "hypot" | "cbrt" | "isnan"
            | "isinf" | "isfinite" => {
                let x = self.arr_node(&c.args[0])?;
                let x = self.g.cast(x, DType::F64.max(self.g.dtype(x)))?;
                let out = match name {
                    "exp2" => {
                        let two = self.g.scalar(2.0, self.g.dtype(x));
                        self.g.binary(BinaryOp::Pow, two, x)?
                    }
                    "deg2rad" | "radians" => self.g.scale(x, std::f64::consts::PI / 180.0)?,
                    "rad2deg" | "degrees" => self.g.scale(x, 180.0 / std::f64::consts::PI)?,
                    "isnan" => self.g.binary(BinaryOp::Ne, x, x)?,
                    "isinf" | "isfinite" => {
                        let a = self.g.unary(UnaryOp::Abs, x)?;
                        let inf = self.g.scalar(f64::INFINITY, self.g.dtype(x));
                        let op = if name == "isinf" {
                            BinaryOp::Eq
                        } else {
                            BinaryOp::Lt
                        };
                        self.g.binary(op, a, inf)?
                    }
                    "cbrt" => {
                        let (s, a) = (
                            self.g.unary(UnaryOp::Sign, x)?,
                            self.g.unary(UnaryOp::Abs, x)?,
                        );
                        let third = self.g.scalar(1.0 / 3.0, self.g.dtype(x));
                        let p = self.g.binary(BinaryOp::Pow, a, third)?;
                        self.g.mul(s, p)?
                    }
                    _ => {
                        let y = self.arr_node(&c.args[1])?;
                        let y = self.g.cast(y, self.g.dtype(x).max(self.g.dtype(y)))?;
                        let x = self.g.cast(x, self.g.dtype(y))?;
                        let (sx, sy) = (self.g.shape(x).clone(), self.g.shape(y).clone());
                        let shape = autodiff_ir::graph::broadcast_shapes(&sx, &sy)?;
                        let (x, y) = (self.g.broadcast(x, &shape)?, self.g.broadcast(y, &shape)?);
                        self.hypot(x, y)?
                    }
                };
                return self.track(res, out);
            }
            _ => {}
        }
        match ufunc_op(name) {
            Some(Ok(u)) => self.ew_unary(u, &c.args[0], res),
            Some(Err(b)) if c.args.len() >= 2 => self.ew_binary(b, &c.args[0], &c.args[1], res),
            _ => unsupported(format!(
                "the ufunc np.{name} is not supported on traced arrays"
            )),
        }
    }

    /// `ufunc.outer`, `ufunc.reduce` and `ufunc.accumulate` of the ufuncs that have a
    /// matching IR op.
    fn call_ufunc_method(&mut self, uf: &Bound<'py, PyAny>, mut c: Call<'py>) -> Res<Val<'py>> {
        if !c.args.iter().any(|a| self.deep_sym(a)) {
            return self.call_native(c);
        }
        let method: String = c.callee.getattr("__name__")?.extract()?;
        if !matches!(method.as_str(), "reduce" | "accumulate" | "outer") {
            return unsupported(format!("{} on traced arrays", c.name));
        }
        let spec = super::sig::ufunc_signature(2, Some(&method), false);
        let orig = c.clone();
        match self.bind(spec, &mut c)? {
            Some(out) => {
                let v = self.call_ufunc_method_bound(uf, &method, c)?;
                self.finish_out(orig, out, v)
            }
            None => self.call_ufunc_method_bound(uf, &method, c),
        }
    }

    fn call_ufunc_method_bound(
        &mut self,
        uf: &Bound<'py, PyAny>,
        method: &str,
        c: Call<'py>,
    ) -> Res<Val<'py>> {
        let uname: String = uf.getattr("__name__")?.extract()?;
        let method = method.to_string();
        let res = c.real()?;
        if method == "reduce" && (uname == "fmax" || uname == "fmin") {
            // NaN-ignoring: NaNs become the identity; an all-NaN slice is NaN.
            let x = self.arr_node(&c.args[0])?;
            let (x, axes) = match c.arg(1, "axis") {
                Some(v) if v.obj().is_none() => (self.flat(x)?, vec![0]),
                Some(v) => {
                    let nd = self.g.shape(x).len();
                    (x, axes_of(Some(v.obj()), nd)?)
                }
                None => (x, vec![0]),
            };
            let (_, dt) = convert::shape_dtype(&res)?.unwrap_or((vec![], DType::F64));
            let x = self.g.cast(x, dt)?;
            let (fill, rop) = if uname == "fmax" {
                (f64::NEG_INFINITY, ReduceOp::Max)
            } else {
                (f64::INFINITY, ReduceOp::Min)
            };
            let isn = self.g.binary(BinaryOp::Ne, x, x)?;
            let f = self.g.scalar(fill, dt);
            let xf = self.g.select(isn, f, x)?;
            let r = self.g.reduce(rop, xf, &axes)?;
            let isn = self.g.cast(isn, DType::F64)?;
            let all = self.g.reduce(ReduceOp::Min, isn, &axes)?;
            let zero = self.g.scalar(0.0, DType::F64);
            let all = self.g.binary(BinaryOp::Ne, all, zero)?;
            let nan = self.g.scalar(f64::NAN, dt);
            let out = self.g.select(all, nan, r)?;
            return self.track(res, out);
        }
        match (method.as_str(), ufunc_op(&uname)) {
            ("outer", Some(Err(op))) if c.args.len() >= 2 => {
                let (a, b) = (self.arr_node(&c.args[0])?, self.arr_node(&c.args[1])?);
                let (sa, sb) = (self.shape_of(a), self.shape_of(b));
                let full: Shape = sa.iter().chain(sb.iter()).copied().collect();
                let ra: Shape = sa.iter().copied().chain(sb.iter().map(|_| 1)).collect();
                let rb: Shape = sa.iter().map(|_| 1).chain(sb.iter().copied()).collect();
                let a = self.g.reshape(a, &ra)?;
                let a = self.g.broadcast(a, &full)?;
                let b = self.g.reshape(b, &rb)?;
                let b = self.g.broadcast(b, &full)?;
                let out = self.bin_nodes(op, a, b, &res)?;
                self.track(res, out)
            }
            ("reduce" | "accumulate", Some(Err(op))) => {
                let x = self.arr_node(&c.args[0])?;
                let axis = match c.arg(1, "axis") {
                    Some(v) => (!v.obj().is_none()).then(|| v.obj().clone()),
                    None => Some(0i64.into_pyobject(self.py)?.into_any()),
                };
                let (x, axes) = match axis {
                    None => (self.g.reshape(x, &[self.g.node(x).size()])?, vec![0]),
                    Some(a) => {
                        let nd = self.g.shape(x).len();
                        (x, axes_of(Some(&a), nd)?)
                    }
                };
                let (_, dt) = convert::shape_dtype(&res)?.unwrap_or((vec![], DType::F64));
                let x = self.g.cast(x, dt)?;
                let out = match (method.as_str(), op) {
                    ("reduce", BinaryOp::Add) => self.g.reduce(ReduceOp::Sum, x, &axes)?,
                    ("reduce", BinaryOp::Mul) => self.g.reduce(ReduceOp::Prod, x, &axes)?,
                    ("reduce", BinaryOp::Maximum) => self.g.reduce(ReduceOp::Max, x, &axes)?,
                    ("reduce", BinaryOp::Minimum | BinaryOp::And) => {
                        self.g.reduce(ReduceOp::Min, x, &axes)?
                    }
                    ("reduce", BinaryOp::Or) => self.g.reduce(ReduceOp::Max, x, &axes)?,
                    ("accumulate", BinaryOp::Add) if axes.len() == 1 => {
                        self.g.add(Op::Cumsum(axes[0]), vec![x])?
                    }
                    ("accumulate", BinaryOp::Mul) if axes.len() == 1 => {
                        self.g.add(Op::Cumprod(axes[0]), vec![x])?
                    }
                    _ => return unsupported(format!("{} on traced arrays", c.name)),
                };
                self.track(res, out)
            }
            _ => unsupported(format!("{} on traced arrays", c.name)),
        }
    }

    /// `x.method(...)` on a NumPy array or scalar.
    fn call_method(&mut self, name: &str, c: Call<'py>) -> Res<Val<'py>> {
        if self.sym(&c.args[0]).is_none() && !c.args.iter().skip(1).any(|a| self.deep_sym(a)) {
            return Ok(self.val(c.real()?));
        }
        match name {
            "sort" => {
                let x = c.args[0].clone();
                let n = self.node(&x)?;
                let ax = axes_of(
                    c.opt(1, "axis")
                        .as_ref()
                        .or(Some(&(-1i64).into_pyobject(self.py)?.into_any())),
                    self.g.shape(n).len(),
                )?[0];
                let idx = self.g.add(Op::ArgSort(ax), vec![n])?;
                let s = self.g.add(Op::TakeAlong(ax), vec![n, idx])?;
                c.real()?;
                self.update(x.obj(), s)?;
                Ok(self.val(self.py.None().into_bound(self.py)))
            }
            "fill" => {
                let x = c.args[0].clone();
                let n = self.node(&x)?;
                let (shape, dt) = (self.shape_of(n), self.g.dtype(n));
                let v = self.arr_node(&c.args[1])?;
                let v = self.g.cast(v, dt)?;
                let v = self.g.reshape(v, &[])?;
                let v = self.g.broadcast(v, &shape)?;
                c.real()?;
                self.update(x.obj(), v)?;
                Ok(self.val(self.py.None().into_bound(self.py)))
            }
            "resize" | "put" | "itemset" | "setfield" => {
                unsupported(format!("ndarray.{name} on a traced array is not supported"))
            }
            "item" => {
                let res = c.real()?;
                let n = self.node(&c.args[0])?;
                if c.args.len() > 1 || self.g.shape(n).iter().product::<usize>() != 1 {
                    return unsupported("x.item(index) on a traced array; use indexing");
                }
                let n = self.g.reshape(n, &[])?;
                if res.is_instance_of::<PyFloat>() {
                    let f = self.r.np.getattr("float64")?.call1((&res,))?;
                    return self.track(f, n);
                }
                self.concretize(&c.args[0], "x.item()")?;
                Ok(self.val(res))
            }
            "astype" => {
                let res = c.real()?;
                let n = self.node(&c.args[0])?;
                self.track(res, n)
            }
            "flatten" => self.call_known("np.ravel", c),
            "__array__" | "view" | "tolist" | "tobytes" => {
                unsupported(format!("ndarray.{name} on a traced array is not supported"))
            }
            _ => self.call_known(&format!("np.{name}"), c),
        }
    }
}

impl<'py> Tracer<'py> {
    /// Is `v` (or a string in the list/tuple it is) made from a traced value?
    fn tainted_val(&self, v: &Val<'py>) -> bool {
        let Some(o) = v.obj.as_ref() else {
            return false;
        };
        if self.is_tainted(o) {
            return true;
        }
        if let Ok(l) = o.downcast::<PyList>() {
            return l.iter().any(|x| self.is_tainted(&x));
        }
        if let Ok(t) = o.downcast::<PyTuple>() {
            return t.iter().any(|x| self.is_tainted(&x));
        }
        false
    }

    /// Callables that only make or show text (a string made from a traced value may go
    /// through them).
    fn is_text_fn(&self, c: &Bound<'py, PyAny>) -> bool {
        [
            "str",
            "repr",
            "format",
            "ascii",
            "print",
            "len",
            "isinstance",
            "type",
            "id",
        ]
        .iter()
        .any(|n| self.r.builtins.getattr(*n).is_ok_and(|b| b.is(c)))
    }

    /// Refuses calls with effects the trace cannot reproduce: writes into objects the
    /// function does not own (a global list's `append`, `np.copyto(global, ...)`,
    /// `out=global`, `setattr(global_obj, ...)`) and numbers parsed back from strings made
    /// of traced values (`float(str(x))`).
    fn check_effects(
        &mut self,
        c: &Bound<'py, PyAny>,
        args: &[Val<'py>],
        kwargs: &[(String, Val<'py>)],
    ) -> Res<()> {
        let name: String = c
            .getattr("__name__")
            .and_then(|n| n.extract())
            .unwrap_or_default();
        let interpreted =
            c.is_instance(&self.r.function_type)? || c.is_instance(&self.r.method_type)?;
        if let Ok(slf) = c.getattr("__self__") {
            // (Python methods are interpreted: their own writes are checked.)
            if MUTATORS.contains(&name.as_str())
                && !interpreted
                && !slf.is_instance_of::<PyModule>()
                && self.is_foreign(&slf)
            {
                let what = if slf.is_instance(&self.r.ufunc)? {
                    format!("`{}.{name}`", callee_name(&slf))
                } else {
                    format!("`.{name}(...)`")
                };
                let target = if slf.is_instance(&self.r.ufunc)? {
                    args.first().map(|a| a.obj().clone()).unwrap_or(slf)
                } else {
                    slf
                };
                self.check_owned(&target, &what)?;
            }
        }
        // `ys.append(y)` of a traced value to a list made in the trace: a per-iteration
        // output for loop rolling, not an effect that stops it.
        if name == "append" && !interpreted {
            let (list, val) = match (c.getattr("__self__"), args) {
                (Ok(l), [v]) => (Some(l), Some(v)),
                (Err(_), [l, v]) => (Some(l.obj().clone()), Some(v)),
                _ => (None, None),
            };
            if let (Some(list), Some(val)) = (list, val) {
                if list.is_exact_instance_of::<PyList>() && !self.is_foreign(&list) {
                    if let (Some(node), Some(o)) = (self.sym(val), val.obj.as_ref()) {
                        self.append_log
                            .push((list.as_ptr() as usize, node, o.as_ptr() as usize));
                        return Ok(());
                    }
                }
            }
        }
        let is_print = self.r.builtins.getattr("print").is_ok_and(|p| p.is(c));
        if is_print
            || (MUTATORS.contains(&name.as_str())
                && !interpreted
                && c.getattr("__self__")
                    .is_ok_and(|s| !s.is_instance_of::<PyModule>()))
        {
            self.effects += 1;
        }
        let cname = callee_name(c);
        let np_writer = NP_WRITERS
            .iter()
            .any(|w| self.r.np.getattr(*w).is_ok_and(|f| f.is(c)));
        if np_writer {
            if let Some(a) = args.first() {
                self.check_owned(a.obj(), &format!("`{cname}`"))?;
            }
        }
        for (k, v) in kwargs {
            if k == "out" {
                let outs: Vec<Bound<'py, PyAny>> = match v.obj().downcast::<PyTuple>() {
                    Ok(t) => t.iter().collect(),
                    Err(_) => vec![v.obj().clone()],
                };
                for o in outs {
                    if !o.is_none() {
                        self.check_owned(&o, &format!("`{cname}(..., out=...)`"))?;
                    }
                }
            }
        }
        for n in ["setattr", "delattr"] {
            if self.r.builtins.getattr(n).is_ok_and(|b| b.is(c)) {
                if let Some(a) = args.first() {
                    self.check_owned(a.obj(), &format!("`{n}`"))?;
                }
            }
        }
        let str_method = c
            .getattr("__self__")
            .is_ok_and(|s| s.is_instance_of::<pyo3::types::PyString>())
            || c.getattr("__objclass__")
                .is_ok_and(|s| s.is(self.py.get_type::<pyo3::types::PyString>().into_any()));
        if !str_method && !interpreted && !self.is_text_fn(c) && !self.in_library() {
            let container = CONTAINER_METHODS.contains(&name.as_str())
                && c.getattr("__self__").is_ok_and(|s| {
                    s.downcast::<PyList>().is_ok() || s.downcast::<PyDict>().is_ok()
                });
            if !container
                && (args.iter().any(|a| self.tainted_val(a))
                    || kwargs.iter().any(|(_, v)| self.tainted_val(v)))
            {
                return unsupported(format!(
                    "a string made from a traced value (by str(), repr(), format() or an \
                     f-string) is passed to `{cname}`: a number read back from it would be a \
                     constant of the trace, wrong on later calls and without a gradient. Use \
                     the array itself (e.g. float(x[0]) instead of float(str(x[0])))"
                ));
            }
        }
        Ok(())
    }

    /// A user object with a Python `__array__` passed to a NumPy function: NumPy would
    /// call it natively (freezing a traced result), so it is interpreted here.
    fn call_array_methods(
        &mut self,
        c: &Bound<'py, PyAny>,
        mut args: Vec<Val<'py>>,
    ) -> Res<Vec<Val<'py>>> {
        let np_fn = self.table.name_of(c).is_some_and(|n| n.starts_with("np."))
            || c.is_instance(&self.r.ufunc)?;
        if !np_fn {
            return Ok(args);
        }
        for a in args.iter_mut() {
            let o = a.obj().clone();
            if self.sym(a).is_some()
                || o.is_instance(&self.r.ndarray)?
                || o.is_instance(&self.r.generic)?
                || o.is_instance_of::<PyModule>()
                || o.is_instance_of::<pyo3::types::PyType>()
            {
                continue;
            }
            if let Ok(m) = o.get_type().getattr("__array__") {
                if m.is_instance(&self.r.function_type)? {
                    *a = self.call_function(&m, vec![a.clone()], vec![])?;
                }
            }
        }
        Ok(args)
    }

    /// `x.__mul__(2.0)`, `x.__getitem__(i)`, ... on a traced array or scalar: the same as
    /// the operator or builtin, so the engine mirrors them; other dunders are refused.
    fn call_dunder(
        &mut self,
        name: &str,
        x: Val<'py>,
        args: Vec<Val<'py>>,
        kwargs: Vec<(String, Val<'py>)>,
    ) -> Res<Val<'py>> {
        const BIN: [&str; 13] = [
            "add", "and", "floordiv", "lshift", "matmul", "mul", "mod", "or", "pow", "rshift",
            "sub", "truediv", "xor",
        ];
        let py = self.py;
        let inner = &name[2..name.len() - 2];
        let pos = |s: &str| BIN.iter().position(|b| *b == s);
        let builtin =
            |t: &Self, n: &str| -> PyResult<Val<'py>> { Ok(Val::new(t.r.builtins.getattr(n)?)) };
        if kwargs.is_empty() && args.len() == 1 {
            let y = &args[0];
            if let Some(i) = pos(inner) {
                return self.binary_op(i, &x, y);
            }
            if let Some(i) = inner.strip_prefix('r').and_then(pos) {
                return self.binary_op(i, y, &x);
            }
            if let Some(i) = inner.strip_prefix('i').and_then(pos) {
                return self.binary_op(i + 13, &x, y);
            }
            let cmp = match inner {
                "lt" => Some("<"),
                "le" => Some("<="),
                "gt" => Some(">"),
                "ge" => Some(">="),
                "eq" => Some("=="),
                "ne" => Some("!="),
                _ => None,
            };
            if let Some(op) = cmp {
                return self.compare(op, &x, y);
            }
            match inner {
                "getitem" => return self.getitem(&x, y),
                "contains" => {
                    let b = self.contains(y, &x)?;
                    return Ok(Val::new(
                        pyo3::types::PyBool::new(py, b).to_owned().into_any(),
                    ));
                }
                "divmod" | "rdivmod" => {
                    let (a, b) = if inner == "divmod" { (&x, y) } else { (y, &x) };
                    let q = self.binary_op(2, a, b)?;
                    let r = self.binary_op(6, a, b)?;
                    let t = PyTuple::new(py, self.escape_all(&[q, r])?)?;
                    return Ok(Val::new(t.into_any()));
                }
                "round" | "format" => {
                    let f = builtin(self, inner)?;
                    return self.call(f, vec![x, y.clone()], vec![]);
                }
                "deepcopy" => {
                    let f = Val::new(self.r.np.getattr("copy")?);
                    return self.call(f, vec![x], vec![]);
                }
                _ => {}
            }
        }
        if kwargs.is_empty() && args.len() == 2 && inner == "setitem" {
            self.setitem(&x, &args[0], &args[1])?;
            return Ok(Val::new(py.None().into_bound(py)));
        }
        if kwargs.is_empty() && args.is_empty() {
            match inner {
                "neg" => return self.unary(Unary::Neg, &x),
                "pos" => return self.unary(Unary::Pos, &x),
                "invert" => return self.unary(Unary::Invert, &x),
                "bool" => {
                    let b = self.truth(&x)?;
                    return Ok(Val::new(
                        pyo3::types::PyBool::new(py, b).to_owned().into_any(),
                    ));
                }
                "abs" | "float" | "int" | "round" | "len" | "str" | "repr" => {
                    let f = builtin(self, inner)?;
                    return self.call(f, vec![x], vec![]);
                }
                "index" => {
                    let f = builtin(self, "int")?;
                    return self.call(f, vec![x], vec![]);
                }
                "iter" => {
                    let rows = self.unpack(x)?;
                    let l = PyList::new(py, rows.iter().map(|r| r.obj().clone()))?;
                    return Ok(Val::new(l.try_iter()?.into_any()));
                }
                "copy" => {
                    let f = Val::new(self.r.np.getattr("copy")?);
                    return self.call(f, vec![x], vec![]);
                }
                "sizeof" | "dir" | "reduce_ex" | "hash" | "class" | "init_subclass" => {}
                _ => {}
            }
            if matches!(inner, "sizeof" | "dir" | "hash") {
                let m = x.obj().getattr(name)?;
                return Ok(Val::new(m.call0()?));
            }
        }
        unsupported(format!(
            "`x.{name}(...)` called directly on a traced value is not supported (it would run \
             outside the engine and freeze the result); use the operator or NumPy function \
             instead"
        ))
    }
}

/// What a non-deterministic callable reads (the clock, the OS's entropy), if it is one.
fn nondeterministic(c: &Bound<'_, PyAny>) -> Option<&'static str> {
    let s = |o: &Bound<'_, PyAny>, a: &str| -> String {
        o.getattr(a)
            .and_then(|m| m.extract::<String>())
            .unwrap_or_default()
    };
    let (m, n) = (s(c, "__module__"), s(c, "__name__"));
    const CLOCKS: &[&str] = &[
        "time",
        "time_ns",
        "perf_counter",
        "perf_counter_ns",
        "monotonic",
        "monotonic_ns",
        "process_time",
        "process_time_ns",
        "thread_time",
        "thread_time_ns",
        "clock_gettime",
        "clock_gettime_ns",
        "localtime",
        "gmtime",
        "ctime",
        "asctime",
        "strftime",
    ];
    if m == "time" && CLOCKS.contains(&n.as_str()) {
        return Some("reads the clock");
    }
    if let Ok(slf) = c.getattr("__self__") {
        let owner = if slf.is_instance_of::<pyo3::types::PyType>() {
            slf.clone()
        } else {
            slf.get_type().into_any()
        };
        let om = s(&owner, "__module__");
        if om == "datetime" && matches!(n.as_str(), "now" | "today" | "utcnow") {
            return Some("reads the clock");
        }
        if s(&slf, "__name__") == "time" && CLOCKS.contains(&n.as_str()) {
            return Some("reads the clock");
        }
    }
    if (m == "posix" || m == "nt" || m == "os") && matches!(n.as_str(), "urandom" | "getrandom") {
        return Some("reads random bytes from the operating system");
    }
    if m == "uuid" && matches!(n.as_str(), "uuid1" | "uuid4") {
        return Some("makes a new unique id");
    }
    if m == "secrets" {
        return Some("draws random numbers");
    }
    None
}

/// `module.qualname` of a callable, for messages.
pub fn callee_name(c: &Bound<'_, PyAny>) -> String {
    let q = c
        .getattr("__qualname__")
        .or_else(|_| c.getattr("__name__"))
        .and_then(|n| n.extract::<String>())
        .unwrap_or_else(|_| type_name(c));
    match c.getattr("__module__").and_then(|m| m.extract::<String>()) {
        Ok(m) if m != "builtins" => format!("{m}.{q}"),
        _ => q,
    }
}

/// Random-number generators: NumPy's (module functions, Generator and RandomState
/// methods) and Python's `random` module.
fn is_random(c: &Bound<'_, PyAny>) -> bool {
    let module = |o: &Bound<'_, PyAny>| {
        o.getattr("__module__")
            .and_then(|m| m.extract::<String>())
            .unwrap_or_default()
    };
    let m = module(c);
    if m.starts_with("numpy.random") || m == "random" {
        return true;
    }
    c.getattr("__self__").is_ok_and(|s| {
        let t = s.get_type();
        let tm = t
            .getattr("__module__")
            .and_then(|m| m.extract::<String>())
            .unwrap_or_default();
        tm.starts_with("numpy.random")
            || (tm == "random" && !s.is_instance_of::<PyModule>())
            || s.getattr("__name__")
                .and_then(|n| n.extract::<String>())
                .is_ok_and(|n| n == "random")
    })
}

/// Marks an exception raised by a native operation on traced values: which way a
/// `try`/`except` goes then depends on the values, and an exception cannot be guarded, so
/// the engine refuses to catch it (see `interp.rs`).
fn mark_traced_raise(py: Python<'_>, e: &PyErr, what: &str) {
    let v = e.value(py);
    if !v.hasattr(TRACED_RAISE).unwrap_or(true) {
        let _ = v.setattr(TRACED_RAISE, what);
    }
}

/// The attribute that marks such an exception.
pub const TRACED_RAISE: &str = "_autodiff_raised_on_traced_values";
