//! Table entries that NumPy/SciPy implement natively but the IR has no op for, written as
//! compositions of existing ops. `call_known` (funcs.rs) dispatches to them by name.
//!
//! Guarantees, for each helper: the value equals NumPy's (to rounding: the compositions
//! use the same formulas, not always the same order of operations) and the gradient is
//! the exact derivative of that composition, i.e. NumPy's function wherever it is
//! differentiable. Discrete results (`searchsorted`, `digitize`, `count_nonzero`) are
//! integer nodes computed in the graph; results that are index lists (`nonzero`) are made
//! concrete under a guard on the mask they depend on. Masked and NaN-skipping reductions
//! are `Where` selects, so masked-out elements get a zero gradient (never NaN).
//! Positions that depend only on shapes (convolution windows, quantile ranks) are
//! computed with NumPy at trace time and enter the graph as `int64` constants.

use autodiff_ir::{BinaryOp, DType, NodeId, Op, ReduceOp, Shape, Tensor, UnaryOp};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::sig::Call;
use super::table::axes_of;
use super::{unsupported, Res, Tracer, Val};
use crate::convert;

/// Shape with `axes` kept as extent 1.
fn kept(shape: &[usize], axes: &[usize]) -> Shape {
    shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect()
}

impl<'py> Tracer<'py> {
    fn f64_node(&mut self, v: &Val<'py>) -> Res<NodeId> {
        let n = self.arr_node(v)?;
        Ok(self.g.cast(n, DType::F64.max(self.g.dtype(n)))?)
    }

    fn i64_const(&mut self, data: Vec<i64>, shape: Shape) -> NodeId {
        let t = Tensor::new(
            DType::I64,
            shape,
            data.into_iter().map(|v| v as f64).collect(),
        );
        self.g.constant(t)
    }

    /// `x` with the elements where `keep` is false replaced by the scalar `fill`.
    fn fill_where(&mut self, keep: NodeId, x: NodeId, fill: f64) -> Res<NodeId> {
        let f = self.g.scalar(fill, self.g.dtype(x));
        Ok(self.g.select(keep, x, f)?)
    }

    /// Sum/prod/max/min/mean/var/std with `where=`, `initial=` and the `nan*` variants
    /// (`op` is the plain name: "sum", "max", ...; `nan` skips NaNs).
    pub(super) fn masked_reduce(&mut self, c: &Call<'py>, op: &str, nan: bool) -> Res<Val<'py>> {
        if c.opt(99, "out").is_some() {
            return unsupported(format!("{}(..., out=...) on a traced array", c.name));
        }
        if !matches!(op, "max" | "min") {
            self.float_dtype_only(c)?;
        }
        let res = c.real()?;
        let x = self.arr_node(&c.args[0])?;
        let shape = self.g.shape(x).clone();
        let axes = axes_of(c.opt(1, "axis").as_ref(), shape.len())?;
        let float = matches!(op, "mean" | "var" | "std") || nan || self.g.dtype(x).is_float();
        let x = if float || matches!(op, "max" | "min") {
            self.g.cast(x, DType::F64.max(self.g.dtype(x)))?
        } else {
            let (_, dt) = convert::shape_dtype(&res)?.unwrap_or((vec![], DType::F64));
            self.g.cast(x, dt)?
        };
        // keep: the elements that take part.
        let mut keep: Option<NodeId> = None;
        if let Some(w) = c.arg(99, "where").filter(|v| !v.obj().is_none()).cloned() {
            let m = self.arr_node(&w)?;
            let m = self.g.cast(m, DType::Bool)?;
            keep = Some(self.g.broadcast(m, &shape)?);
        }
        if nan {
            let ok = self.g.binary(BinaryOp::Eq, x, x)?;
            keep = Some(match keep {
                Some(k) => self.g.binary(BinaryOp::And, k, ok)?,
                None => ok,
            });
        }
        let count = |t: &mut Self, keep: Option<NodeId>| -> Res<NodeId> {
            Ok(match keep {
                Some(k) => {
                    let k = t.g.cast(k, DType::F64)?;
                    t.g.sum(k, &axes)?
                }
                None => {
                    let n: usize = axes.iter().map(|&a| shape[a]).product();
                    let out: Shape = (0..shape.len())
                        .filter(|i| !axes.contains(i))
                        .map(|i| shape[i])
                        .collect();
                    t.g.full(n as f64, &out, DType::F64)
                }
            })
        };
        let masked = |t: &mut Self, fill: f64| -> Res<NodeId> {
            match keep {
                Some(k) => t.fill_where(k, x, fill),
                None => Ok(x),
            }
        };
        let out = match op {
            "sum" | "prod" => {
                let (fill, rop) = if op == "sum" {
                    (0.0, ReduceOp::Sum)
                } else {
                    (1.0, ReduceOp::Prod)
                };
                let xm = masked(self, fill)?;
                let mut r = self.g.reduce(rop, xm, &axes)?;
                if let Some(i) = c.arg(99, "initial").filter(|v| !v.obj().is_none()).cloned() {
                    let i = self.arr_node(&i)?;
                    let bop = if op == "sum" {
                        BinaryOp::Add
                    } else {
                        BinaryOp::Mul
                    };
                    r = self.g.binary(bop, r, i)?;
                }
                r
            }
            "max" | "min" => {
                let (fill, rop, bop) = if op == "max" {
                    (f64::NEG_INFINITY, ReduceOp::Max, BinaryOp::Maximum)
                } else {
                    (f64::INFINITY, ReduceOp::Min, BinaryOp::Minimum)
                };
                let initial = c.arg(99, "initial").filter(|v| !v.obj().is_none()).cloned();
                let empty = axes.iter().any(|&a| shape[a] == 0);
                let mut r = if empty && initial.is_some() {
                    // nothing to reduce: the identity of max/min, which `initial` replaces
                    let out: Shape = (0..shape.len())
                        .filter(|i| !axes.contains(i))
                        .map(|i| shape[i])
                        .collect();
                    self.g.full(fill, &out, self.g.dtype(x))
                } else {
                    let xm = masked(self, fill)?;
                    self.g.reduce(rop, xm, &axes)?
                };
                if let Some(i) = initial {
                    let i = self.arr_node(&i)?;
                    r = self.g.binary(bop, r, i)?;
                }
                if nan {
                    // All-NaN slices are NaN, as in NumPy.
                    let n = count(self, keep)?;
                    let zero = self.g.scalar(0.0, DType::F64);
                    let empty = self.g.binary(BinaryOp::Eq, n, zero)?;
                    let nanv = self.g.scalar(f64::NAN, self.g.dtype(r));
                    r = self.g.select(empty, nanv, r)?;
                }
                r
            }
            "mean" => {
                let xm = masked(self, 0.0)?;
                let s = self.g.sum(xm, &axes)?;
                let n = count(self, keep)?;
                self.g.div(s, n)?
            }
            _ => {
                // var / std: mean of the kept elements, then squared deviations.
                let ddof = self.ddof(c)?;
                let xm = masked(self, 0.0)?;
                let s = self.g.sum(xm, &axes)?;
                let n = count(self, keep)?;
                let m = self.g.div(s, n)?;
                let k = kept(&shape, &axes);
                let m = self.g.reshape(m, &k)?;
                let m = self.g.broadcast(m, &shape)?;
                let d = self.g.sub(x, m)?;
                let d = match keep {
                    Some(kp) => self.fill_where(kp, d, 0.0)?,
                    None => d,
                };
                let d2 = self.g.unary(UnaryOp::Square, d)?;
                let ss = self.g.sum(d2, &axes)?;
                let dd = self.g.scalar(ddof, DType::F64);
                let den = self.g.sub(n, dd)?;
                // as NumPy: var divides by max(n - ddof, 0); nanvar is nan where n ≤ ddof
                let dshape = self.g.shape(den).clone();
                let zero = self.g.scalar(0.0, DType::F64);
                let zero = self.g.broadcast(zero, &dshape)?;
                let pos = self.g.binary(BinaryOp::Gt, den, zero)?;
                let den = self.g.binary(BinaryOp::Maximum, den, zero)?;
                let v = self.g.div(ss, den)?;
                let v = if nan {
                    self.fill_where(pos, v, f64::NAN)?
                } else {
                    v
                };
                if op == "std" {
                    self.g.unary(UnaryOp::Sqrt, v)?
                } else {
                    v
                }
            }
        };
        self.track(res, out)
    }

    /// Ufuncs that are compositions: `heaviside logaddexp2 conjugate signbit vecdot` and SciPy's
    /// `xlogy xlog1py log_expit logit`. `None`: not one of them.
    pub(super) fn composed_ufunc(
        &mut self,
        name: &str,
        c: &Call<'py>,
        res: &Bound<'py, PyAny>,
    ) -> Res<Option<Val<'py>>> {
        let out = match name {
            "conjugate" | "conj" => self.arr_node(&c.args[0])?,
            "heaviside" => {
                let x = self.f64_node(&c.args[0])?;
                let h0 = self.f64_node(&c.args[1])?;
                let zero = self.g.scalar(0.0, DType::F64);
                let one = self.g.scalar(1.0, DType::F64);
                let isnan = self.g.binary(BinaryOp::Ne, x, x)?;
                let at0 = self.g.select(isnan, x, h0)?;
                let pos = self.g.binary(BinaryOp::Gt, x, zero)?;
                let r = self.g.select(pos, one, at0)?;
                let neg = self.g.binary(BinaryOp::Lt, x, zero)?;
                self.g.select(neg, zero, r)?
            }
            "signbit" => {
                let x = self.f64_node(&c.args[0])?;
                let zero = self.g.zeros_like(x);
                let neg = self.g.binary(BinaryOp::Lt, x, zero)?;
                let z = self.g.binary(BinaryOp::Eq, x, zero)?;
                let r = self.g.unary(UnaryOp::Reciprocal, x)?;
                let rneg = self.g.binary(BinaryOp::Lt, r, zero)?;
                let nz = self.g.binary(BinaryOp::And, z, rneg)?;
                self.g.binary(BinaryOp::Or, neg, nz)?
            }
            "logaddexp2" => {
                let ln2 = std::f64::consts::LN_2;
                let a = self.f64_node(&c.args[0])?;
                let b = self.f64_node(&c.args[1])?;
                let (a, b) = (self.g.scale(a, ln2)?, self.g.scale(b, ln2)?);
                let l = self.g.binary(BinaryOp::LogAddExp, a, b)?;
                self.g.scale(l, 1.0 / ln2)?
            }
            "xlogy" | "xlog1py" => {
                // xlogy(x, y) = x*log(y), 0 where x == 0 (y not NaN); d/dx = log(y) there
                // too (a Poisson model with zero counts), so the value is x*log(ŷ) with ŷ
                // = y except where x == 0 and log(y) is not finite (y ≤ 0 or inf for
                // xlogy, y ≤ -1 or inf for xlog1py): ŷ = 1 (resp. 0) there, so x*log(ŷ) = 0
                // and no gradient is NaN.
                let x = self.f64_node(&c.args[0])?;
                let y = self.f64_node(&c.args[1])?;
                let zero = self.g.scalar(0.0, DType::F64);
                let x0 = self.g.binary(BinaryOp::Eq, x, zero)?;
                let (lo, safe, op) = if name == "xlogy" {
                    (0.0, 1.0, UnaryOp::Log)
                } else {
                    (-1.0, 0.0, UnaryOp::Log1p)
                };
                let lo = self.g.scalar(lo, DType::F64);
                let inf = self.g.scalar(f64::INFINITY, DType::F64);
                let above = self.g.binary(BinaryOp::Gt, y, lo)?;
                let finite = self.g.binary(BinaryOp::Lt, y, inf)?;
                let ok = self.g.binary(BinaryOp::And, above, finite)?;
                let isnan = self.g.binary(BinaryOp::Ne, y, y)?;
                let keep = self.g.binary(BinaryOp::Or, ok, isnan)?;
                let bad = self.g.unary(UnaryOp::Not, keep)?;
                let m = self.g.binary(BinaryOp::And, x0, bad)?;
                let ys = self.fill_where_not(m, y, safe)?;
                let l = self.g.unary(op, ys)?;
                self.g.mul(x, l)?
            }
            "log_expit" => {
                let x = self.f64_node(&c.args[0])?;
                let nx = self.g.neg(x)?;
                let zero = self.g.zeros_like(nx);
                let l = self.g.binary(BinaryOp::LogAddExp, zero, nx)?;
                self.g.neg(l)?
            }
            "logit" => {
                let p = self.f64_node(&c.args[0])?;
                let lp = self.g.unary(UnaryOp::Log, p)?;
                let np_ = self.g.neg(p)?;
                let lq = self.g.unary(UnaryOp::Log1p, np_)?;
                self.g.sub(lp, lq)?
            }
            "vecdot" => {
                if c.kwargs.iter().any(|(k, _)| k != "axis" && k != "dtype") {
                    return unsupported("np.vecdot with axes=/keepdims= on traced arrays");
                }
                let a = self.arr_node(&c.args[0])?;
                let b = self.arr_node(&c.args[1])?;
                let p = self.g.mul(a, b)?;
                let nd = self.g.shape(p).len();
                let ax = c
                    .opt(99, "axis")
                    .map(|a| a.extract::<i64>())
                    .transpose()?
                    .unwrap_or(-1);
                let ax = (ax + nd as i64) as usize % nd.max(1);
                self.g.sum(p, &[ax])?
            }
            _ => return Ok(None),
        };
        Ok(Some(self.track(res.clone(), out)?))
    }

    /// `x` where `mask` is false, `fill` where it is true.
    fn fill_where_not(&mut self, mask: NodeId, x: NodeId, fill: f64) -> Res<NodeId> {
        let f = self.g.scalar(fill, self.g.dtype(x));
        Ok(self.g.select(mask, f, x)?)
    }

    /// `np.broadcast_arrays(*args)`: a tuple of broadcasts.
    /// hypot(x, y) = m·√(1 + (n/m)²) with m = max(|x|, |y|), n = min(|x|, |y|): no
    /// overflow or underflow where x² + y² would (1e200, 1e-200), 0 at (0, 0), inf where
    /// either is ±inf (a NaN in the other included, as NumPy). d/dx = x / hypot.
    pub(super) fn hypot(&mut self, x: NodeId, y: NodeId) -> Res<NodeId> {
        let (a, b) = (
            self.g.unary(UnaryOp::Abs, x)?,
            self.g.unary(UnaryOp::Abs, y)?,
        );
        let m = self.g.binary(BinaryOp::Maximum, a, b)?;
        let n = self.g.binary(BinaryOp::Minimum, a, b)?;
        let dt = self.g.dtype(m);
        let shape = self.g.shape(m).clone();
        let c = |t: &mut Self, v: f64| -> Res<NodeId> {
            let s = t.g.scalar(v, dt);
            Ok(t.g.broadcast(s, &shape)?)
        };
        let (zero, one, inf) = (c(self, 0.0)?, c(self, 1.0)?, c(self, f64::INFINITY)?);
        let is_zero = self.g.binary(BinaryOp::Eq, m, zero)?;
        let safe = self.g.select(is_zero, one, m)?;
        let q = self.g.div(n, safe)?;
        let q2 = self.g.unary(UnaryOp::Square, q)?;
        let s = self.g.add_(one, q2)?;
        let s = self.g.unary(UnaryOp::Sqrt, s)?;
        let r = self.g.mul(m, s)?;
        let r = self.g.select(is_zero, zero, r)?;
        let (ai, bi) = (
            self.g.binary(BinaryOp::Eq, a, inf)?,
            self.g.binary(BinaryOp::Eq, b, inf)?,
        );
        let either = self.g.binary(BinaryOp::Or, ai, bi)?;
        Ok(self.g.select(either, inf, r)?)
    }

    pub(super) fn broadcast_arrays(&mut self, c: &Call<'py>) -> Res<Val<'py>> {
        let res = c.real()?;
        let mut outs = vec![];
        for (a, r) in c.args.iter().zip(res.try_iter()?) {
            let r = r?;
            let n = self.arr_node(a)?;
            let shape: Vec<usize> = r.getattr("shape")?.extract()?;
            let b = self.g.broadcast(n, &shape)?;
            outs.push(self.track(r, b)?.obj().clone());
        }
        if res.downcast::<PyList>().is_ok() {
            return Ok(Val::new(PyList::new(self.py, outs)?.into_any()));
        }
        Ok(Val::new(PyTuple::new(self.py, outs)?.into_any()))
    }

    /// `np.cross` of 2- or 3-vectors along the last axis.
    pub(super) fn cross(&mut self, c: &Call<'py>) -> Res<Val<'py>> {
        if c.kwargs.iter().any(|(k, _)| k.starts_with("axis")) || c.args.len() > 2 {
            return unsupported("np.cross with axisa/axisb/axisc/axis on traced arrays");
        }
        let res = c.real()?;
        let a = self.f64_node(&c.args[0])?;
        let b = self.f64_node(&c.args[1])?;
        let (da, db) = (
            *self.g.shape(a).last().unwrap_or(&0),
            *self.g.shape(b).last().unwrap_or(&0),
        );
        if da != db || !(da == 2 || da == 3) {
            return unsupported("np.cross of vectors of different lengths on traced arrays");
        }
        let comp = |t: &mut Self, n: NodeId, idx: Vec<i64>| -> Res<NodeId> {
            let ax = t.g.shape(n).len() - 1;
            let len = idx.len();
            let i = t.i64_const(idx, vec![len]);
            Ok(t.g.add(Op::Gather(ax), vec![n, i])?)
        };
        let out = if da == 3 {
            let a1 = comp(self, a, vec![1, 2, 0])?;
            let b2 = comp(self, b, vec![2, 0, 1])?;
            let a2 = comp(self, a, vec![2, 0, 1])?;
            let b1 = comp(self, b, vec![1, 2, 0])?;
            let p = self.g.mul(a1, b2)?;
            let q = self.g.mul(a2, b1)?;
            self.g.sub(p, q)?
        } else {
            let a0 = comp(self, a, vec![0])?;
            let b1 = comp(self, b, vec![1])?;
            let a1 = comp(self, a, vec![1])?;
            let b0 = comp(self, b, vec![0])?;
            let p = self.g.mul(a0, b1)?;
            let q = self.g.mul(a1, b0)?;
            let d = self.g.sub(p, q)?;
            let s = self.g.shape(d).clone();
            self.g.reshape(d, &s[..s.len() - 1])?
        };
        self.track(res, out)
    }

    /// `np.interp(x, xp, fp, left, right)`: the knot interval of each `x` is counted in the
    /// graph (`sum(xp <= x)`), so no guard is needed and the gradient (in x, xp and fp) is
    /// the slope of the segment `x` lies in.
    pub(super) fn interp(&mut self, c: &Call<'py>) -> Res<Val<'py>> {
        if c.opt(5, "period").is_some() {
            return unsupported("np.interp(..., period=...) on traced arrays");
        }
        let res = c.real()?;
        let x = self.f64_node(&c.args[0])?;
        let xp = self.f64_node(c.arg(1, "xp").unwrap())?;
        let fp = self.f64_node(c.arg(2, "fp").unwrap())?;
        let k = self.g.node(xp).size();
        if self.g.shape(xp).len() != 1 || k < 2 {
            return unsupported("np.interp with fewer than 2 knots on traced arrays");
        }
        let n = self.g.node(x).size();
        let xf = self.g.reshape(x, &[n, 1])?;
        let xb = self.g.broadcast(xf, &[n, k])?;
        let pr = self.g.reshape(xp, &[1, k])?;
        let pb = self.g.broadcast(pr, &[n, k])?;
        let le = self.g.binary(BinaryOp::Le, pb, xb)?;
        let le = self.g.cast(le, DType::I64)?;
        let cnt = self.g.sum(le, &[1])?;
        let one = self.g.scalar(1.0, DType::I64);
        let lo = self.g.scalar(0.0, DType::I64);
        let hi = self.g.scalar((k - 2) as f64, DType::I64);
        let i = self.g.sub(cnt, one)?;
        let i = self.g.binary(BinaryOp::Maximum, i, lo)?;
        let i = self.g.binary(BinaryOp::Minimum, i, hi)?;
        let i1 = self.g.add_(i, one)?;
        let take = |t: &mut Self, a: NodeId, i: NodeId| -> Res<NodeId> {
            Ok(t.g.add(Op::Gather(0), vec![a, i])?)
        };
        let (x0, x1) = (take(self, xp, i)?, take(self, xp, i1)?);
        let (f0, f1) = (take(self, fp, i)?, take(self, fp, i1)?);
        let xv = self.g.reshape(x, &[n])?;
        let df = self.g.sub(f1, f0)?;
        let dx = self.g.sub(x1, x0)?;
        let slope = self.g.div(df, dx)?;
        let off = self.g.sub(xv, x0)?;
        let y = self.g.mul(slope, off)?;
        let mut y = self.g.add_(y, f0)?;
        let ends = [
            (0usize, BinaryOp::Lt, c.opt(3, "left")),
            (k - 1, BinaryOp::Gt, c.opt(4, "right")),
        ];
        for (pos, op, val) in ends {
            let pidx = self.i64_const(vec![pos as i64], vec![1]);
            let edge = self.g.add(Op::Gather(0), vec![xp, pidx])?;
            let edge = self.g.broadcast(edge, &[n])?;
            let out = self.g.binary(op, xv, edge)?;
            let v = match val {
                Some(v) => self.f64_node(&Val::new(v))?,
                None => {
                    let f = self.g.add(Op::Gather(0), vec![fp, pidx])?;
                    self.g.reshape(f, &[])?
                }
            };
            y = self.g.select(out, v, y)?;
        }
        self.track(res, y)
    }

    /// 1-D `np.convolve` / `np.correlate` in any mode: `out[k] = sum_j a[idx[k, j]] v[j]`,
    /// where `idx` is read off the same NumPy function applied to positions and unit
    /// vectors (both functions are bilinear, so this is exact).
    pub(super) fn convolve(&mut self, c: &Call<'py>, default_mode: &str) -> Res<Val<'py>> {
        let res = c.real()?;
        let a = self.arr_node(&c.args[0])?;
        let v = self.arr_node(c.arg(1, "v").unwrap())?;
        if self.g.shape(a).len() != 1 || self.g.shape(v).len() != 1 {
            return unsupported(format!("{} of arrays that are not 1-D", c.name));
        }
        let mode = match c.opt(2, "mode") {
            Some(m) => m.extract::<String>()?,
            None => default_mode.to_string(),
        };
        let (n, m) = (self.g.shape(a)[0], self.g.shape(v)[0]);
        let np = self.r.np.clone();
        let probe = np.call_method1("arange", (1.0, n as f64 + 1.0))?;
        let mut cols = vec![];
        for j in 0..m {
            let e = np.call_method1("zeros", (m,))?;
            e.set_item(j, 1.0)?;
            cols.push(c.callee.call1((&probe, e, mode.as_str()))?);
        }
        let idx = np
            .call_method1("stack", (PyList::new(self.py, cols)?, 1))?
            .call_method1("round", ())?
            .call_method1("astype", ("int64",))?;
        let idx = np.call_method1(
            "where",
            (idx.call_method1("__le__", (0,))?, n as i64 + 1, &idx),
        )?;
        let idx = idx.call_method1("__sub__", (1,))?;
        let idx = self.g.constant(convert::to_tensor(&idx)?);
        let dt = DType::F64.max(self.g.dtype(a)).max(self.g.dtype(v));
        let (a, v) = (self.g.cast(a, dt)?, self.g.cast(v, dt)?);
        let z = self.g.full(0.0, &[1], dt);
        let ap = self.g.add(Op::Concat(0), vec![a, z])?;
        let win = self.g.add(Op::Gather(0), vec![ap, idx])?;
        let out = self.g.contract("kj,j->k", win, v)?;
        self.track(res, out)
    }

    /// `np.median`, `np.quantile`, `np.percentile` (methods linear, lower, higher,
    /// midpoint, nearest): a sort (ArgSort + TakeAlong) then fixed ranks and weights.
    pub(super) fn quantile(&mut self, c: &Call<'py>, kind: &str) -> Res<Val<'py>> {
        let (axis_i, method_i) = if kind == "median" { (1, 99) } else { (2, 5) };
        if c.opt(99, "weights").is_some() || c.opt(3, "out").is_some() && kind != "median" {
            return unsupported(format!("{}(..., weights=/out=) on traced arrays", c.name));
        }
        let q: Vec<f64> = if kind == "median" {
            vec![0.5]
        } else {
            let qv = c.arg(1, "q").unwrap();
            if self.deep_sym(qv) {
                return unsupported(format!("{} with a traced q", c.name));
            }
            let q = self
                .r
                .np
                .call_method1("asarray", (qv.obj(), "float64"))?
                .call_method0("ravel")?;
            let q: Vec<f64> = q.extract()?;
            let s = if kind == "percentile" { 0.01 } else { 1.0 };
            q.into_iter().map(|v| v * s).collect()
        };
        let method = match c.opt(method_i, "method").or(c.opt(99, "interpolation")) {
            Some(m) => m.extract::<String>()?,
            None => "linear".into(),
        };
        if !matches!(
            method.as_str(),
            "linear" | "lower" | "higher" | "midpoint" | "nearest"
        ) {
            return unsupported(format!(
                "{}(..., method={method:?}) on traced arrays",
                c.name
            ));
        }
        let res = c.real()?;
        let mut x = self.f64_node(&c.args[0])?;
        let ax = match c.opt(axis_i, "axis") {
            None => {
                x = self.flat(x)?;
                0
            }
            Some(a) if a.extract::<i64>().is_ok() => axes_of(Some(&a), self.g.shape(x).len())?[0],
            Some(_) => {
                return unsupported(format!("{} over several axes on traced arrays", c.name))
            }
        };
        if self.g.shape(x)[ax] == 0 {
            // no element to order: NumPy's result (nan for a median) depends on no value
            return Ok(Val::new(res));
        }
        let r = self.g.shape(x).len();
        let mut perm: Vec<usize> = (0..r).filter(|&i| i != ax).collect();
        perm.push(ax);
        let xt = self.g.transpose(x, &perm)?;
        let last = r - 1;
        let order = self.g.add(Op::ArgSort(last), vec![xt])?;
        let s = self.g.add(Op::TakeAlong(last), vec![xt, order])?;
        let n = self.g.shape(s)[last];
        let (mut lo, mut hi, mut t) = (vec![], vec![], vec![]);
        for &qq in &q {
            let h = (n as f64 - 1.0) * qq;
            let (f, cl) = (h.floor(), h.ceil().min(n as f64 - 1.0));
            let (l, u, w) = match method.as_str() {
                "lower" => (f, f, 0.0),
                "higher" => (cl, cl, 0.0),
                "midpoint" => (f, cl, if f == cl { 0.0 } else { 0.5 }),
                "nearest" => {
                    let r = h.round_ties_even();
                    (r, r, 0.0)
                }
                _ => (f, (f + 1.0).min(n as f64 - 1.0), h - f),
            };
            lo.push(l as i64);
            hi.push(u as i64);
            t.push(w);
        }
        let nq = q.len();
        let lo = self.i64_const(lo, vec![nq]);
        let hi = self.i64_const(hi, vec![nq]);
        let sl = self.g.add(Op::Gather(last), vec![s, lo])?;
        let sh = self.g.add(Op::Gather(last), vec![s, hi])?;
        let y = if kind == "median" {
            // NumPy's median is the mean of the middle element(s): no product by a weight
            // (which would make inf * 0 a NaN).
            if t.iter().all(|&w| w == 0.0) {
                sl
            } else {
                let s2 = self.g.add_(sl, sh)?;
                self.g.scale(s2, 0.5)?
            }
        } else {
            // NumPy's _lerp: a + (b - a) t, or b - (b - a)(1 - t) where t >= 0.5.
            let big: Vec<f64> = t.iter().map(|&w| f64::from(u8::from(w >= 0.5))).collect();
            let tc: Vec<f64> = t.iter().map(|&w| 1.0 - w).collect();
            let tw = self.g.constant(Tensor::new(DType::F64, vec![nq], t));
            let tcw = self.g.constant(Tensor::new(DType::F64, vec![nq], tc));
            let bigc = self.g.constant(Tensor::new(DType::F64, vec![nq], big));
            let bigc = self.g.cast(bigc, DType::Bool)?;
            let d = self.g.sub(sh, sl)?;
            let dt = self.g.mul(d, tw)?;
            let lo_form = self.g.add_(sl, dt)?;
            let dtc = self.g.mul(d, tcw)?;
            let hi_form = self.g.sub(sh, dtc)?;
            let shp = self.g.shape(lo_form).clone();
            let bigc = self.g.broadcast(bigc, &shp)?;
            self.g.select(bigc, hi_form, lo_form)?
        };
        // A NaN anywhere in the slice makes the result NaN, as in NumPy.
        let isn = self.g.binary(BinaryOp::Ne, xt, xt)?;
        let isn = self.g.cast(isn, DType::F64)?;
        let anyn = self.g.reduce(ReduceOp::Max, isn, &[last])?;
        let mut k1 = self.g.shape(anyn).clone();
        k1.push(1);
        let anyn = self.g.reshape(anyn, &k1)?;
        let anyn = self.g.broadcast(anyn, &self.g.shape(y).clone())?;
        let zero = self.g.scalar(0.0, DType::F64);
        let anyn = self.g.binary(BinaryOp::Ne, anyn, zero)?;
        let nan = self.g.scalar(f64::NAN, self.g.dtype(y));
        let y = self.g.select(anyn, nan, y)?;
        let mut p2: Vec<usize> = vec![last];
        p2.extend(0..last);
        let y = self.g.transpose(y, &p2)?;
        self.track(res, y)
    }

    /// `np.searchsorted(a, v, side, sorter)` as a count of comparisons (an int64 node).
    pub(super) fn searchsorted(&mut self, c: &Call<'py>) -> Res<Val<'py>> {
        let res = c.real()?;
        let mut a = self.arr_node(&c.args[0])?;
        if let Some(s) = c.opt(3, "sorter") {
            let s = self.arr_node(&Val::new(s))?;
            let s = self.g.cast(s, DType::I64)?;
            a = self.g.add(Op::Gather(0), vec![a, s])?;
        }
        let v = self.arr_node(c.arg(1, "v").unwrap())?;
        let right = c
            .opt(2, "side")
            .map(|s| s.extract::<String>())
            .transpose()?
            .is_some_and(|s| s == "right");
        let op = if right { BinaryOp::Le } else { BinaryOp::Lt };
        let out = self.count_cmp(a, v, op)?;
        self.track(res, out)
    }

    /// `sum_k (a[k] op v)` for each element of `v` (a 1-D), as int64.
    fn count_cmp(&mut self, a: NodeId, v: NodeId, op: BinaryOp) -> Res<NodeId> {
        if self.g.shape(a).len() != 1 {
            return unsupported("searchsorted/digitize with bins that are not 1-D");
        }
        let k = self.g.shape(a)[0];
        let vs = self.g.shape(v).clone();
        let mut full = vs.clone();
        full.push(k);
        let mut v1 = vs.clone();
        v1.push(1);
        let vr = self.g.reshape(v, &v1)?;
        let vb = self.g.broadcast(vr, &full)?;
        let ab = self.g.broadcast(a, &full)?;
        let dt = self.g.dtype(ab).max(self.g.dtype(vb));
        let (ab, vb) = (self.g.cast(ab, dt)?, self.g.cast(vb, dt)?);
        let mut m = self.g.binary(op, ab, vb)?;
        if dt.is_float() {
            // NumPy orders NaN after every number (and equal to itself).
            let (na, nv) = (
                self.g.binary(BinaryOp::Ne, ab, ab)?,
                self.g.binary(BinaryOp::Ne, vb, vb)?,
            );
            let t = self.g.scalar(1.0, DType::Bool);
            let (not_na, not_nv) = (
                self.g.binary(BinaryOp::Xor, na, t)?,
                self.g.binary(BinaryOp::Xor, nv, t)?,
            );
            // a op v in that order: < and <= hold when only v is NaN, > and >= when only a is;
            // <=, >= also hold when both are.
            let only_v = self.g.binary(BinaryOp::And, nv, not_na)?;
            let only_a = self.g.binary(BinaryOp::And, na, not_nv)?;
            let both = self.g.binary(BinaryOp::And, na, nv)?;
            let extra = match op {
                BinaryOp::Lt => only_v,
                BinaryOp::Le => self.g.binary(BinaryOp::Or, only_v, both)?,
                BinaryOp::Gt => only_a,
                _ => self.g.binary(BinaryOp::Or, only_a, both)?,
            };
            m = self.g.binary(BinaryOp::Or, m, extra)?;
        }
        let m = self.g.cast(m, DType::I64)?;
        Ok(self.g.sum(m, &[vs.len()])?)
    }

    /// `np.digitize(x, bins, right)` for monotonic concrete bins.
    pub(super) fn digitize(&mut self, c: &Call<'py>) -> Res<Val<'py>> {
        let bins = c.arg(1, "bins").unwrap();
        if self.deep_sym(bins) {
            return unsupported("np.digitize with traced bins");
        }
        let res = c.real()?;
        let b = self.arr_node(bins)?;
        let x = self.arr_node(&c.args[0])?;
        let right = self.kw_bool(c, 2, "right")?;
        let bo = bins.obj();
        let nb: usize = bo.len()?;
        let increasing =
            nb < 2 || bo.get_item(nb - 1)?.extract::<f64>()? >= bo.get_item(0)?.extract::<f64>()?;
        // increasing: right=False → #(b <= x), right=True → #(b < x);
        // decreasing: right=False → #(b > x), right=True → #(b >= x).
        let op = match (increasing, right) {
            (true, false) => BinaryOp::Le,
            (true, true) => BinaryOp::Lt,
            (false, false) => BinaryOp::Gt,
            (false, true) => BinaryOp::Ge,
        };
        let out = self.count_cmp(b, x, op)?;
        self.track(res, out)
    }

    /// `np.nonzero` / `np.flatnonzero` / `np.count_nonzero` of a traced array: the mask
    /// `x != 0` is a graph node; index results are made concrete under a guard on it.
    pub(super) fn nonzero(&mut self, c: &Call<'py>, name: &str) -> Res<Val<'py>> {
        let res = c.real()?;
        let x = self.arr_node(&c.args[0])?;
        let zero = self.g.scalar(0.0, self.g.dtype(x));
        let m = self.g.binary(BinaryOp::Ne, x, zero)?;
        if name == "np.count_nonzero" {
            let axes = axes_of(c.opt(1, "axis").as_ref(), self.g.shape(x).len())?;
            let m = self.g.cast(m, DType::I64)?;
            let out = self.g.sum(m, &axes)?;
            return self.track(res, out);
        }
        let real = self.r.np.call_method1("not_equal", (c.args[0].obj(), 0))?;
        self.guard(m, &real, &format!("the mask of {name}"))?;
        Ok(Val::new(res))
    }

    /// `np.bincount(x, weights, minlength)` with traced weights: a ScatterAdd into zeros.
    pub(super) fn bincount(&mut self, c: &Call<'py>) -> Res<Val<'py>> {
        self.concretize(&c.args[0], "the indices of np.bincount")?;
        let res = c.real()?;
        let Some(w) = c.arg(1, "weights").filter(|v| !v.obj().is_none()).cloned() else {
            return Ok(Val::new(res));
        };
        let idx = self
            .r
            .np
            .call_method1("asarray", (c.args[0].obj(), "int64"))?;
        let idx = self.g.constant(convert::to_tensor(&idx)?);
        let w = self.f64_node(&w)?;
        let len: usize = res.len()?;
        let z = self.g.full(0.0, &[len], DType::F64);
        let out = self.g.add(Op::ScatterAdd(0), vec![z, idx, w])?;
        self.track(res, out)
    }

    /// `scipy.special.logsumexp(a, axis, b, keepdims, return_sign)`.
    pub(super) fn logsumexp(&mut self, c: &Call<'py>) -> Res<Val<'py>> {
        let res = c.real()?;
        let mut n = self.f64_node(&c.args[0])?;
        let shape = self.g.shape(n).clone();
        let axes = axes_of(c.opt(1, "axis").as_ref(), shape.len())?;
        if axes.iter().any(|&a| shape[a] == 0) {
            // the log of an empty sum: -inf (SciPy), whatever the (absent) values
            return Ok(Val::new(res));
        }
        let b = match c.arg(2, "b").filter(|v| !v.obj().is_none()).cloned() {
            Some(b) => {
                let b = self.f64_node(&b)?;
                if self.g.shape(b).len() > shape.len() {
                    return unsupported("scipy.special.logsumexp with b= broadcasting a");
                }
                let b = self.g.broadcast(b, &shape)?;
                // as SciPy: entries weighted 0 take no part (nor in the shift: a huge or
                // infinite entry of weight 0 changes nothing)
                let zero = self.g.scalar(0.0, DType::F64);
                let zero = self.g.broadcast(zero, &shape)?;
                let used = self.g.binary(BinaryOp::Ne, b, zero)?;
                n = self.fill_where(used, n, f64::NEG_INFINITY)?;
                Some(b)
            }
            None => None,
        };
        let m = self.g.reduce(ReduceOp::Max, n, &axes)?;
        // A non-finite max (all -inf) would give NaN in x - max: shift by 0 there.
        let finite = {
            let a = self.g.unary(UnaryOp::Abs, m)?;
            let inf = self.g.scalar(f64::INFINITY, DType::F64);
            self.g.binary(BinaryOp::Lt, a, inf)?
        };
        let m = self.fill_where(finite, m, 0.0)?;
        let mk = self.g.reshape(m, &kept(&shape, &axes))?;
        let mb = self.g.broadcast(mk, &shape)?;
        let d = self.g.sub(n, mb)?;
        let mut e = self.g.unary(UnaryOp::Exp, d)?;
        if let Some(b) = b {
            e = self.g.mul(e, b)?;
        }
        let s = self.g.sum(e, &axes)?;
        let sign = c
            .opt(4, "return_sign")
            .map(|v| v.is_truthy())
            .transpose()?
            .unwrap_or(false);
        if !sign {
            let l = self.g.unary(UnaryOp::Log, s)?;
            let out = self.g.add_(m, l)?;
            return self.track(res, out);
        }
        let a = self.g.unary(UnaryOp::Abs, s)?;
        let l = self.g.unary(UnaryOp::Log, a)?;
        let out = self.g.add_(m, l)?;
        let sg = self.g.unary(UnaryOp::Sign, s)?;
        let o = self.track(res.get_item(0)?, out)?;
        let sgv = self.track(res.get_item(1)?, sg)?;
        Ok(Val::new(
            PyTuple::new(self.py, [o.obj().clone(), sgv.obj().clone()])?.into_any(),
        ))
    }

    /// Matrix norms of order 1, -1, inf, -inf: max/min of absolute column/row sums.
    pub(super) fn matrix_norm(
        &mut self,
        n: NodeId,
        ord: f64,
        axis: Option<Bound<'py, PyAny>>,
    ) -> Res<NodeId> {
        let nd = self.g.shape(n).len();
        let (r, col) = match axis {
            None => (nd - 2, nd - 1),
            Some(a) => {
                let v: Vec<i64> = a.extract()?;
                let f = |x: i64| (x + nd as i64) as usize % nd;
                (f(v[0]), f(v[1]))
            }
        };
        if ord.abs() != 1.0 && ord.is_finite() {
            return unsupported(format!(
                "np.linalg.norm(ord={ord}) of a matrix needs singular values (SVD), which the \
                 tracer does not support"
            ));
        }
        let a = self.g.unary(UnaryOp::Abs, n)?;
        // ord ±1: sum over rows, extreme over columns; ord ±inf: the reverse.
        let (sum_ax, red_ax) = if ord.abs() == 1.0 { (r, col) } else { (col, r) };
        let s = self.g.sum(a, &[sum_ax])?;
        let red_ax = if red_ax > sum_ax { red_ax - 1 } else { red_ax };
        let op = if ord > 0.0 {
            ReduceOp::Max
        } else {
            ReduceOp::Min
        };
        Ok(self.g.reduce(op, s, &[red_ax])?)
    }

    /// Rewrites an einsum spec with `...` into explicit labels; operands whose `...` axes
    /// have extent 1 are broadcast to the common extents.
    pub(super) fn expand_ellipsis(&mut self, spec: &str, ops: &mut [NodeId]) -> Res<String> {
        let spec: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
        let (ins, out) = match spec.split_once("->") {
            Some((i, o)) => (i.to_string(), Some(o.to_string())),
            None => (spec.clone(), None),
        };
        let terms: Vec<String> = ins.split(',').map(str::to_string).collect();
        if terms.len() != ops.len() {
            return unsupported("np.einsum: operand count does not match the spec");
        }
        let used: Vec<char> = spec.chars().filter(|c| c.is_ascii_alphabetic()).collect();
        let free: Vec<char> = ('a'..='z')
            .chain('A'..='Z')
            .filter(|c| !used.contains(c))
            .collect();
        let mut nell = vec![];
        for (t, &n) in terms.iter().zip(ops.iter()) {
            let explicit = t.chars().filter(|c| c.is_ascii_alphabetic()).count();
            nell.push(if t.contains("...") {
                self.g.shape(n).len() - explicit
            } else {
                0
            });
        }
        let ne = nell.iter().copied().max().unwrap_or(0);
        if ne > free.len() {
            return unsupported("np.einsum: too many axes");
        }
        let letters: String = free[..ne].iter().collect();
        // Common extents of the `...` axes (right-aligned).
        let mut ext = vec![1usize; ne];
        for (t, (&n, &k)) in terms.iter().zip(ops.iter().zip(&nell)) {
            if k == 0 {
                continue;
            }
            let pre = t.find("...").unwrap();
            let sh = self.g.shape(n).clone();
            for i in 0..k {
                let d = sh[pre + i];
                let e = &mut ext[ne - k + i];
                if *e == 1 {
                    *e = d;
                }
            }
        }
        let mut new_terms = vec![];
        for (i, t) in terms.iter().enumerate() {
            let k = nell[i];
            if !t.contains("...") {
                new_terms.push(t.clone());
                continue;
            }
            let pre = t.find("...").unwrap();
            let mut sh = self.g.shape(ops[i]).clone();
            for j in 0..k {
                sh[pre + j] = ext[ne - k + j];
            }
            ops[i] = self.g.broadcast(ops[i], &sh)?;
            new_terms.push(t.replace("...", &letters[ne - k..]));
        }
        let out = match out {
            Some(o) => o.replace("...", &letters),
            None => {
                let joined: String = terms.concat();
                let mut once: Vec<char> = joined
                    .chars()
                    .filter(|c| c.is_ascii_alphabetic())
                    .filter(|c| joined.matches(*c).count() == 1)
                    .collect();
                once.sort_unstable();
                format!("{letters}{}", once.into_iter().collect::<String>())
            }
        };
        Ok(format!("{}->{out}", new_terms.join(",")))
    }

    /// `np.average(..., returned=True)`: the average and the sum of weights (broadcast).
    pub(super) fn average_returned(&mut self, c: &Call<'py>) -> Res<Val<'py>> {
        let res = c.real()?;
        let x = self.f64_node(&c.args[0])?;
        let axes = axes_of(c.opt(1, "axis").as_ref(), self.g.shape(x).len())?;
        let shape = self.g.shape(x).clone();
        let w = match c.arg(2, "weights").filter(|v| !v.obj().is_none()).cloned() {
            Some(w) => {
                let w = self.f64_node(&w)?;
                if self.g.shape(w).len() == 1 && shape.len() > 1 && axes.len() == 1 {
                    let mut s = vec![1; shape.len()];
                    s[axes[0]] = self.g.shape(w)[0];
                    self.g.reshape(w, &s)?
                } else {
                    w
                }
            }
            None => self.g.full(1.0, &[], DType::F64),
        };
        let w = self.g.broadcast(w, &shape)?;
        let xw = self.g.mul(x, w)?;
        let (num, den) = (self.g.sum(xw, &axes)?, self.g.sum(w, &axes)?);
        let avg = self.g.div(num, den)?;
        let a = self.track(res.get_item(0)?, avg)?;
        let r1 = res.get_item(1)?;
        let dshape: Vec<usize> = self.r.np.call_method1("shape", (&r1,))?.extract()?;
        let den = self.g.broadcast(den, &dshape)?;
        let d = self.track(r1, den)?;
        Ok(Val::new(
            PyTuple::new(self.py, [a.obj().clone(), d.obj().clone()])?.into_any(),
        ))
    }

    /// `np.copyto(dst, src, where=mask)`: a functionalized select into `dst`.
    pub(super) fn copyto(&mut self, c: Call<'py>) -> Res<Val<'py>> {
        let dst = c.args[0].clone();
        if !dst.obj().is_instance(&self.r.ndarray)? {
            return self.call_native(c);
        }
        let d = self.arr_node(&dst)?;
        let shape = self.g.shape(d).clone();
        let s = self.arr_node(c.arg(1, "src").unwrap())?;
        let s = self.g.cast(s, self.g.dtype(d))?;
        let s = self.g.broadcast(s, &shape)?;
        let out = match c.arg(3, "where").filter(|v| !v.obj().is_none()).cloned() {
            Some(w) => {
                let m = self.arr_node(&w)?;
                self.g.select(m, s, d)?
            }
            None => s,
        };
        c.real()?;
        self.update(dst.obj(), out)?;
        Ok(Val::new(self.py.None().into_bound(self.py)))
    }

    /// `np.corrcoef(x, y=None, rowvar=True)`: centred Gram matrix over the outer product
    /// of the square roots of its diagonal, clipped to [-1, 1].
    pub(super) fn corrcoef(&mut self, c: &Call<'py>) -> Res<Val<'py>> {
        if c.kwargs
            .iter()
            .any(|(k, _)| !matches!(k.as_str(), "y" | "rowvar" | "dtype"))
        {
            return unsupported("np.corrcoef with bias=/ddof= on traced arrays");
        }
        let res = c.real()?;
        let rowvar = c
            .opt(2, "rowvar")
            .map(|v| v.is_truthy())
            .transpose()?
            .unwrap_or(true);
        let mut parts = vec![];
        for v in [c.args.first(), c.arg(1, "y")].into_iter().flatten() {
            if v.obj().is_none() {
                continue;
            }
            let n = self.f64_node(v)?;
            let n = match self.g.shape(n).len() {
                0 => self.g.reshape(n, &[1, 1])?,
                1 => {
                    let len = self.g.shape(n)[0];
                    self.g.reshape(n, &[1, len])?
                }
                2 if !rowvar => self.g.transpose(n, &[1, 0])?,
                2 => n,
                _ => return unsupported("np.corrcoef of arrays with more than 2 dimensions"),
            };
            parts.push(n);
        }
        let x = if parts.len() == 1 {
            parts[0]
        } else {
            self.g.add(Op::Concat(0), parts)?
        };
        let (r, k) = (self.g.shape(x)[0], self.g.shape(x)[1]);
        let m = self.g.sum(x, &[1])?;
        let m = self.g.scale(m, 1.0 / k as f64)?;
        let m = self.g.reshape(m, &[r, 1])?;
        let xc = self.g.sub(x, m)?;
        let gram = self.g.contract("ik,jk->ij", xc, xc)?;
        let eye = self.r.np.call_method1("eye", (r,))?;
        let e = self.g.constant(convert::to_tensor(&eye)?);
        let dm = self.g.mul(gram, e)?;
        let d = self.g.sum(dm, &[1])?;
        let sd = self.g.unary(UnaryOp::Sqrt, d)?;
        let den = self.g.contract("i,j->ij", sd, sd)?;
        let q = self.g.div(gram, den)?;
        let (lo, hi) = (
            self.g.scalar(-1.0, DType::F64),
            self.g.scalar(1.0, DType::F64),
        );
        let q = self.g.binary(BinaryOp::Minimum, q, hi)?;
        let q = self.g.binary(BinaryOp::Maximum, q, lo)?;
        self.track(res, q)
    }

    /// `np.unique(x)` (and `return_counts=True`) of a traced array: the sorted values
    /// gathered at the first position of each run, under a guard on which neighbours of
    /// the sorted array are equal.
    pub(super) fn unique(&mut self, c: &Call<'py>) -> Res<Val<'py>> {
        for k in ["return_index", "return_inverse", "axis", "sorted"] {
            let on = c.opt(99, k).is_some_and(|v| v.is_truthy().unwrap_or(true));
            if on && k != "sorted" {
                return unsupported(format!("np.unique(..., {k}=...) on traced arrays"));
            }
        }
        let res = c.real()?;
        let x = self.arr_node(&c.args[0])?;
        let x = self.flat(x)?;
        let n = self.g.shape(x)[0];
        let order = self.g.add(Op::ArgSort(0), vec![x])?;
        let s = self.g.add(Op::TakeAlong(0), vec![x, order])?;
        if n == 0 {
            return Ok(Val::new(res));
        }
        let np = self.r.np.clone();
        let sorted = np.call_method1("sort", (np.call_method1("ravel", (c.args[0].obj(),))?,))?;
        let mut first = vec![0i64];
        if n > 1 {
            let dims = |start: usize| {
                vec![autodiff_ir::SliceDim {
                    start,
                    step: 1,
                    len: n - 1,
                }]
            };
            let hi = self.g.slice(s, dims(1))?;
            let lo = self.g.slice(s, dims(0))?;
            let mut diff = self.g.binary(BinaryOp::Ne, hi, lo)?;
            let (rhi, rlo) = (
                sorted.get_item(pyo3::types::PySlice::new(self.py, 1, n as isize, 1))?,
                sorted.get_item(pyo3::types::PySlice::new(self.py, 0, n as isize - 1, 1))?,
            );
            let mut real = np.call_method1("not_equal", (&rhi, &rlo))?;
            let equal_nan = c
                .opt(99, "equal_nan")
                .is_none_or(|v| v.is_truthy().unwrap_or(true));
            if equal_nan && self.g.dtype(s).is_float() {
                // NaNs sort last and are one value (NumPy's equal_nan=True).
                let (nh, nl) = (
                    self.g.binary(BinaryOp::Ne, hi, hi)?,
                    self.g.binary(BinaryOp::Ne, lo, lo)?,
                );
                let both = self.g.binary(BinaryOp::And, nh, nl)?;
                let t = self.g.scalar(1.0, DType::Bool);
                let not_both = self.g.binary(BinaryOp::Xor, both, t)?;
                diff = self.g.binary(BinaryOp::And, diff, not_both)?;
                let both_real = np.call_method1(
                    "logical_and",
                    (
                        np.call_method1("isnan", (&rhi,))?,
                        np.call_method1("isnan", (&rlo,))?,
                    ),
                )?;
                real = np.call_method1(
                    "logical_and",
                    (real, np.call_method1("logical_not", (both_real,))?),
                )?;
            }
            self.guard(diff, &real, "the equal neighbours in np.unique")?;
            let flags: Vec<bool> = real.extract()?;
            first.extend(
                flags
                    .iter()
                    .enumerate()
                    .filter(|(_, &f)| f)
                    .map(|(i, _)| i as i64 + 1),
            );
        }
        let len = first.len();
        let idx = self.i64_const(first, vec![len]);
        let out = self.g.add(Op::Gather(0), vec![s, idx])?;
        if res.downcast::<PyTuple>().is_ok() {
            let v = self.track(res.get_item(0)?, out)?;
            let mut items = vec![v.obj().clone()];
            for i in 1..res.len()? {
                items.push(res.get_item(i)?);
            }
            return Ok(Val::new(PyTuple::new(self.py, items)?.into_any()));
        }
        self.track(res, out)
    }
}
