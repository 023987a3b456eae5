//! The parameters each table entry understands, in NumPy's positional order.
//!
//! Arguments of a call on traced values are bound by name and position to its entry's list
//! before the entry runs; an argument that is not in the list, or that has a value the entry
//! does not implement, is refused. An entry therefore cannot drop an argument silently: it
//! either reads it (through `Call::arg`, which finds positional and keyword forms alike) or
//! the list says why ignoring it is harmless.
//!
//! Each list is words separated by spaces:
//! - `name`: the entry reads it (and refuses the values it does not implement);
//! - `name=LIT`: refused unless absent or equal to the Python literal LIT (`None` also
//!   matches NumPy's `<no value>`);
//! - `name~`: its value cannot change the result's values (layout, dtype fixed by the real
//!   result's dtype, which every entry casts to, checks that cost nothing);
//! - `out@`: handled for every entry alike: the entry computes a fresh result, the real
//!   call writes `out`, and `out` takes the result's node as an in-place update;
//! - `/`: the parameters before it are positional-only in NumPy (passing one by keyword
//!   gets NumPy's own TypeError, from the real call, on NumPy versions that refuse it);
//! - `*`: the following parameters are keyword-only;
//! - `*name`: takes all remaining positional arguments.

use pyo3::prelude::*;

use pyo3::types::{PyDict, PyTuple};

use super::{unsupported, Res, Tracer, Val};

/// Parameter names that give a result's structure rather than data (see `bind`).
const STRUCTURAL: &[&str] = &[
    "axis",
    "axes",
    "axis1",
    "axis2",
    "source",
    "destination",
    "shape",
    "newshape",
    "n",
    "k",
    "N",
    "M",
    "num",
    "decimals",
    "ndmin",
    "reps",
    "repeats",
    "shift",
    "indices_or_sections",
    "deg",
    "size",
    "start",
    "stop",
    "step",
    "kth",
    "minlength",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Read,
    Default(&'static str),
    Harmless,
    Out,
}

#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    /// Position when passed positionally (None: keyword-only or varargs).
    pub pos: Option<usize>,
    pub varargs: bool,
    /// Positional-only in NumPy (before a `/`).
    pub posonly: bool,
}

pub fn parse(spec: &'static str) -> Vec<Param> {
    let mut out: Vec<Param> = vec![];
    let mut kw_only = false;
    let mut pos = 0;
    for w in spec.split_whitespace() {
        if w == "/" {
            for p in out.iter_mut() {
                p.posonly = true;
            }
            continue;
        }
        if w == "*" {
            kw_only = true;
            continue;
        }
        let (w, varargs) = match w.strip_prefix('*') {
            Some(r) => (r, true),
            None => (w, false),
        };
        let (name, kind) = if let Some((n, d)) = w.split_once('=') {
            (n, Kind::Default(d))
        } else if let Some(n) = w.strip_suffix('~') {
            (n, Kind::Harmless)
        } else if let Some(n) = w.strip_suffix('@') {
            (n, Kind::Out)
        } else {
            (w, Kind::Read)
        };
        let p = if kw_only || varargs {
            None
        } else {
            pos += 1;
            Some(pos - 1)
        };
        out.push(Param {
            name,
            kind,
            pos: p,
            varargs,
            posonly: false,
        });
        if varargs {
            kw_only = true;
        }
    }
    out
}

const REDUCE: &str = "a axis dtype out@ keepdims~ initial where";
const EXTREMUM: &str = "a axis out@ keepdims~ initial where";
const MEAN: &str = "a axis dtype out@ keepdims~ * where";
const VAR: &str = "a axis dtype out@ ddof keepdims~ * where mean=None correction";

/// The parameter list of a table entry (`method`: called as `x.name(...)`, whose first
/// parameter is the array itself). None: the name has no entry (the call runs natively,
/// which concretizes discrete traced arguments and refuses the others).
pub fn signature(name: &str, method: bool) -> Option<&'static str> {
    if method {
        let m = match name {
            "np.reshape" => Some("a *shape * order copy~"),
            "np.transpose" => Some("a *axes"),
            "np.clip" => Some("a min max out@ * where=True casting~ order~ dtype~ subok~"),
            "np.dot" => Some("a b out@"),
            "np.conj" | "np.conjugate" | "np.nonzero" => Some("a"),
            "np.ravel" | "np.flatten" => Some("a order"),
            "np.copy" => Some("a order~"),
            _ => None,
        };
        if m.is_some() {
            return m;
        }
    }
    Some(match name {
        "np.sum" | "np.prod" | "np.nansum" | "np.nanprod" => REDUCE,
        "np.max" | "np.amax" | "np.min" | "np.amin" | "np.nanmax" | "np.nanmin" => EXTREMUM,
        "np.mean" | "np.nanmean" => MEAN,
        "np.var" | "np.std" | "np.nanvar" | "np.nanstd" => VAR,
        "np.dot" | "np.outer" => "a b out@",
        "np.inner" | "np.vdot" => "a b /",
        "np.matmul" => {
            "x1 x2 / out@ * axes=None axis=None keepdims=False casting~ order~ dtype subok~ \
             signature=None"
        }
        "np.tensordot" => "a b axes",
        // every argument is applied again to an array of positions (`strided_view`)
        "np.lib.stride_tricks.sliding_window_view" => "x window_shape axis * subok writeable",
        "np.lib.stride_tricks.as_strided" => "x shape strides subok writeable",
        "np.einsum" => "*operands * out@ optimize~ dtype casting~ order~",
        "np.reshape" => "a / shape order * copy~",
        "np.ravel" => "a order",
        "np.transpose" => "a axes",
        "np.swapaxes" => "a axis1 axis2",
        "np.moveaxis" => "a source destination",
        "np.expand_dims" => "a axis",
        "np.squeeze" => "a axis",
        "np.concatenate" => "arrays / axis out@ * dtype~ casting~",
        "np.stack" => "arrays axis out@ * dtype~ casting~",
        "np.hstack" | "np.vstack" => "tup * dtype~ casting~",
        "np.column_stack" => "tup",
        "np.where" => "condition x y /",
        "np.clip" => "a a_min a_max out@ * min max where=True casting~ order~ dtype~ subok~",
        "np.zeros_like" | "np.ones_like" => "a dtype~ order~ subok~ shape~ * device~",
        "np.empty_like" => "prototype / dtype~ order~ subok~ shape~ * device~",
        "np.full_like" => "a fill_value dtype~ order~ subok~ shape~ * device~",
        "np.full" => "shape fill_value dtype~ order~ * device~ like~",
        "np.asarray" | "np.asanyarray" => "a dtype~ order~ * device~ copy~ like~",
        "np.array" => "object dtype~ * copy~ order~ subok~ ndmin~ ndmax~ like~",
        "np.ascontiguousarray" => "a dtype~ * like~",
        "np.copy" => "a order~ subok~",
        "np.astype" => "x dtype~ * copy~ device~",
        "np.cumsum" | "np.cumprod" => "a axis dtype out@",
        "np.diff" => "a n axis prepend=None append=None",
        "np.sort" | "np.argsort" => "a axis kind~ order=None * stable~",
        "np.partition" | "np.argpartition" => "a kth axis kind~ order=None",
        "np.argmax" | "np.argmin" => "a axis out@ * keepdims~",
        "np.repeat" => "a repeats axis",
        "np.tile" => "A reps",
        "np.trace" => "a offset axis1 axis2 dtype out@",
        "np.diag" => "v k",
        "np.diagonal" => "a offset axis1 axis2",
        "np.take" => "a indices axis out@ mode",
        "np.take_along_axis" => "arr indices axis",
        "np.broadcast_to" => "array shape subok~",
        "np.flip" => "m axis",
        "np.fliplr" | "np.flipud" => "m",
        "np.triu" | "np.tril" => "m k",
        "np.atleast_1d" | "np.atleast_2d" => "*arys",
        "np.round" | "np.around" => "a decimals out@",
        "np.average" => "a axis weights returned * keepdims~",
        "np.rot90" => "m k axes",
        "np.roll" => "a shift axis",
        "np.broadcast_arrays" => "*args * subok~",
        "np.cross" => "a b axisa=-1 axisb=-1 axisc=-1 axis=None",
        "np.interp" => "x xp fp left right period",
        "np.convolve" | "np.correlate" => "a v mode",
        "np.median" => "a axis out@ overwrite_input~ keepdims~",
        "np.quantile" | "np.percentile" => {
            "a q axis out@ overwrite_input~ method keepdims~ * weights=None interpolation"
        }
        "np.searchsorted" => "a v side sorter",
        "np.digitize" => "x bins right",
        "np.nonzero" | "np.flatnonzero" => "a",
        "np.count_nonzero" => "a axis * keepdims~",
        "np.bincount" => "x / weights minlength",
        "np.copyto" => "dst src casting~ where",
        "np.corrcoef" => "x y rowvar * dtype~",
        "np.unique" => "ar return_index return_inverse return_counts axis * equal_nan sorted",
        "np.conj" | "np.conjugate" => {
            "x out@ * where=True casting~ order~ dtype~ subok~ signature=None"
        }
        "np.float64" | "np.float32" => "x /",
        "np.linalg.norm" => "x ord axis keepdims~",
        "np.linalg.solve" => "a b",
        "np.linalg.inv" | "np.linalg.det" | "np.linalg.slogdet" => "a",
        "np.linalg.cholesky" => "a / * upper",
        "np.logsumexp" => "a axis b keepdims~ return_sign",
        "scipy.solve_triangular" => "a b trans lower unit_diagonal overwrite_b~ check_finite~",
        "scipy.cholesky" => "a lower overwrite_a~ check_finite~",
        "builtins.sum" => "iterable start",
        "builtins.abs" => "x",
        "builtins.round" => "number ndigits",
        "builtins.pow" => "base exp mod=None",
        "builtins.float" => "x",
        "builtins.int" => "x base=None",
        "builtins.min" | "builtins.max" => "*args * key default~",
        _ => return None,
    })
}

/// The signature of a ufunc with `nin` inputs, and of its methods.
pub fn ufunc_signature(nin: usize, method: Option<&str>, gufunc: bool) -> &'static str {
    if gufunc && method.is_none() {
        return "x1 x2 out@ * axes=None axis keepdims=False casting~ order~ dtype=None subok~ \
                signature=None";
    }
    match (method, nin) {
        (Some("reduce"), _) => "array axis dtype~ out@ keepdims~ initial=None where=True",
        (Some("accumulate"), _) => "array axis dtype~ out@",
        (Some(_), _) => "A B * out@ where=True casting~ order~ dtype~ subok~ signature=None",
        (None, 1) => "x out@ * where=True casting~ order~ dtype~ subok~ signature=None",
        _ => "x1 x2 out@ * where=True casting~ order~ dtype~ subok~ signature=None",
    }
}

/// Whether `v` equals the Python literal `lit` (`None` also matches `<no value>`).
fn is_default(py: Python<'_>, v: &Bound<'_, PyAny>, lit: &str) -> bool {
    if v.is_none() {
        return lit == "None";
    }
    if lit == "None" {
        return v.get_type().name().is_ok_and(|n| n == "_NoValueType");
    }
    let Ok(l) = py
        .import("ast")
        .and_then(|a| a.call_method1("literal_eval", (lit,)))
    else {
        return false;
    };
    // Booleans match booleans only (`where=1` is not `where=True` to an entry).
    let is_bool = |o: &Bound<'_, PyAny>| {
        o.is_instance_of::<pyo3::types::PyBool>()
            || o.get_type()
                .name()
                .is_ok_and(|n| n == "bool" || n == "bool_")
    };
    if is_bool(&l) != is_bool(v) {
        return false;
    }
    v.eq(&l).unwrap_or(false)
}

impl<'py> Tracer<'py> {
    /// Binds the arguments of a call on traced values to its entry's parameter list:
    /// keyword forms of positional parameters move into place (`np.sum(a=x)`), arguments
    /// the entry does not implement are refused, and `out=` is taken off the call (returned,
    /// for `finish_out`).
    pub fn bind(
        &mut self,
        spec: &'static str,
        c: &mut Call<'py>,
    ) -> Res<Option<Bound<'py, PyAny>>> {
        let params = parse(spec);
        let npos = params.iter().filter(|p| p.pos.is_some()).count();
        let varargs = params.iter().any(|p| p.varargs);
        if !varargs && c.args.len() > npos {
            // NumPy decides: an error of its own, or a form the entry does not know.
            c.real()?;
            return unsupported(format!(
                "`{}` with {} positional arguments is not supported on traced arrays; pass the \
                 optional arguments by keyword",
                c.name,
                c.args.len() - usize::from(c.method)
            ));
        }
        for (k, _) in &c.kwargs {
            if !params.iter().any(|p| p.name == k && !p.varargs) {
                c.real()?;
                return unsupported(format!(
                    "`{}(..., {k}=...)` is not supported on traced arrays: the tracer does not \
                     implement the argument `{k}`. Compute it without `{k}`, or wrap the \
                     arguments in autodiff.constant(...) if no derivative is needed",
                    c.name
                ));
            }
        }
        // A positional-only parameter passed by keyword: NumPy decides (its TypeError).
        if c.kwargs
            .iter()
            .any(|(k, _)| params.iter().any(|p| p.posonly && p.name == k))
        {
            c.real()?;
        }
        // Keyword forms of positional parameters, in order, become positional.
        while let Some(p) = params.iter().find(|p| p.pos == Some(c.args.len())) {
            match c.kwargs.iter().position(|(k, _)| k == p.name) {
                Some(i) => {
                    let (_, v) = c.kwargs.remove(i);
                    c.args.push(v);
                }
                None => break,
            }
        }
        c.sig = Some(spec);
        // Parameters that give structure (an axis, a shape, a count, a precision), not data:
        // a traced integer there decides the result's form, so it is guarded (its real
        // value is what the entry reads).
        for (j, p) in params.iter().enumerate() {
            if !STRUCTURAL.contains(&p.name) {
                continue;
            }
            let vals: Vec<Val<'py>> = if p.varargs {
                // (the positional arguments from the varargs' place on)
                let i = params[..j].iter().filter(|q| q.pos.is_some()).count();
                c.args.get(i..).map(|v| v.to_vec()).unwrap_or_default()
            } else {
                c.arg(usize::MAX, p.name).cloned().into_iter().collect()
            };
            for v in vals {
                self.concretize_deep(&v, &format!("the `{}` of `{}`", p.name, c.name))?;
            }
        }
        let mut out = None;
        // `out` last: every other argument is checked before the call is changed.
        let order = params
            .iter()
            .filter(|p| p.kind != Kind::Out)
            .chain(params.iter().filter(|p| p.kind == Kind::Out));
        for p in order {
            if p.varargs {
                continue;
            }
            let Some(v) = c.arg(usize::MAX, p.name).cloned() else {
                continue;
            };
            match p.kind {
                Kind::Read | Kind::Harmless => {}
                Kind::Default(lit) => {
                    if !is_default(self.py, v.obj(), lit) {
                        c.real()?;
                        return unsupported(format!(
                            "`{}(..., {}={})` is not supported on traced arrays (only the \
                             default {}={lit} is implemented); compute it another way, or wrap \
                             the arguments in autodiff.constant(...) if no derivative is needed",
                            c.name,
                            p.name,
                            v.obj().repr().map(|r| r.to_string()).unwrap_or_default(),
                            p.name
                        ));
                    }
                }
                Kind::Out => {
                    let o = v.obj().clone();
                    let o = match o.downcast::<pyo3::types::PyTuple>() {
                        Ok(t) if t.len() == 1 => t.get_item(0)?,
                        _ => o,
                    };
                    if !o.is_none() {
                        if !o.is_instance(&self.r.ndarray)? {
                            c.real()?;
                            return unsupported(format!(
                                "`{}(..., out=...)`: out must be an array",
                                c.name
                            ));
                        }
                        out = Some(o);
                        // The entry computes a fresh result; `finish_out` writes `out`.
                        let none = Val::new(self.py.None().into_bound(self.py));
                        match c.kwargs.iter().position(|(k, _)| k == p.name) {
                            Some(i) => {
                                c.kwargs.remove(i);
                            }
                            None => c.args[p.pos.unwrap()] = none,
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Completes a call whose `out=` was taken off by `bind`: the real call (with `out`)
    /// writes the array, which then takes the fresh result's node as an in-place update
    /// (views of traced arrays write through to their base).
    pub fn finish_out(
        &mut self,
        orig: Call<'py>,
        out: Bound<'py, PyAny>,
        fresh: Val<'py>,
    ) -> Res<Val<'py>> {
        let node = self.node(&fresh)?;
        let written = orig.real()?;
        let (shape, _) = crate::convert::shape_dtype(&out)?.unwrap();
        if self.g.shape(node) != &shape {
            return unsupported(format!(
                "`{}(..., out=...)` with an out array of another shape than the result",
                orig.name
            ));
        }
        self.update(&out, node)?;
        if written.is(&out) {
            Ok(Val::new(out))
        } else {
            Ok(Val::new(written))
        }
    }
}

/// A call with its arguments (for methods, `args[0]` is the array).
#[derive(Clone)]
pub struct Call<'py> {
    pub callee: Bound<'py, PyAny>,
    pub args: Vec<Val<'py>>,
    pub kwargs: Vec<(String, Val<'py>)>,
    pub method: bool,
    pub name: String,
    /// The entry's parameter list once the arguments are bound to it (`sig.rs`).
    pub sig: Option<&'static str>,
}

impl<'py> Call<'py> {
    /// Keyword `name`, or the positional argument at `name`'s position in the entry's
    /// parameter list once bound (`i` before: callers pass NumPy's position).
    pub fn arg(&self, i: usize, name: &str) -> Option<&Val<'py>> {
        let pos = match self.sig {
            Some(s) => match parse(s).iter().find(|p| p.name == name) {
                Some(p) => p.pos,
                None => Some(i),
            },
            None => Some(i),
        };
        self.kwargs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .or_else(|| pos.and_then(|p| self.args.get(p)))
    }

    /// A Python-level argument value that is not None.
    pub fn opt(&self, i: usize, name: &str) -> Option<Bound<'py, PyAny>> {
        self.arg(i, name)
            .map(|v| v.obj().clone())
            .filter(|o| !o.is_none())
    }

    /// Runs the call for real.
    pub fn real(&self) -> PyResult<Bound<'py, PyAny>> {
        let py = self.callee.py();
        let skip = usize::from(self.method);
        let args = PyTuple::new(py, self.args[skip..].iter().map(|v| v.obj().clone()))?;
        let kw = PyDict::new(py);
        for (k, v) in &self.kwargs {
            kw.set_item(k, v.obj())?;
        }
        self.callee.call(args, Some(&kw))
    }
}
