//! Elementwise ops (`Unary`, `Binary`, `Where`, `Cast`).
//!
//! Their Jacobians are diagonal, so one table of partial derivatives serves both modes:
//! reverse mode scales the cotangent by each partial, forward mode sums the scaled tangents.
//! Conventions at nondifferentiable points follow JAX (see each line).

use autodiff_ir::{err, BinaryOp, DType, Graph, NodeId, UnaryOp};

use crate::build::{add_opt, or_zeros, R};

/// A partial derivative, as the way it scales a (co)tangent `v`.
pub(crate) enum D {
    /// Identically zero (piecewise constant, or a non-float result).
    Zero,
    /// `v`
    Id,
    /// `-v`
    Neg,
    /// `v * f`
    Mul(NodeId),
    /// `v / f`
    Div(NodeId),
}

/// Scales the (co)tangent `v` by the partial `d`. A `v` masked by a select with a zero
/// branch (`where(c, h, 0)`: the branch not taken, entries a nan-reduction skips) stays
/// masked: the product is taken inside the select, so a partial that is infinite or NaN
/// where the mask is zero (`log p` at `p = 0`, `1/(2√x)` at 0, NaN data) contributes
/// exactly zero there rather than `0 · inf = NaN` (select, not multiply).
fn apply(g: &mut Graph, d: D, v: NodeId) -> R<Option<NodeId>> {
    if !matches!(d, D::Zero | D::Id) {
        if let Some(m) = masked(g, v) {
            return match apply(g, d, m.value)? {
                Some(inner) => Ok(Some(m.rebuild(g, inner)?)),
                None => Ok(None),
            };
        }
    }
    Ok(match d {
        D::Zero => None,
        D::Id => Some(v),
        D::Neg => Some(g.neg(v)?),
        D::Mul(f) => Some(g.mul(v, f)?),
        D::Div(f) => Some(g.div(v, f)?),
    })
}

/// A value masked by a select with an all-zero branch: `where(cond, value, 0)` (or, with
/// `zero_first`, `where(cond, 0, value)`).
pub(crate) struct Masked {
    cond: NodeId,
    value: NodeId,
    zero: NodeId,
    zero_first: bool,
}

impl Masked {
    /// The same mask around `inner` (shaped like the masked value).
    fn rebuild(&self, g: &mut Graph, inner: NodeId) -> R<NodeId> {
        if g.shape(inner) != g.shape(self.value) || g.dtype(inner) != g.dtype(self.zero) {
            // a partial that broadcasts or casts: mask after the fact
            let zero = g.zeros_like(inner);
            let c = g.broadcast(self.cond, &g.shape(inner).clone())?;
            return if self.zero_first {
                g.select(c, zero, inner)
            } else {
                g.select(c, inner, zero)
            };
        }
        if self.zero_first {
            g.select(self.cond, self.zero, inner)
        } else {
            g.select(self.cond, inner, self.zero)
        }
    }
}

/// `v` as a masked value, if it is one.
pub(crate) fn masked(g: &Graph, v: NodeId) -> Option<Masked> {
    let n = g.node(v);
    if !matches!(n.op, autodiff_ir::Op::Where) {
        return None;
    }
    let (c, a, b) = (n.inputs[0], n.inputs[1], n.inputs[2]);
    let zero = |x: NodeId| g.uniform_const(x).is_some_and(|z| z == 0.0);
    if zero(b) && !zero(a) {
        Some(Masked {
            cond: c,
            value: a,
            zero: b,
            zero_first: false,
        })
    } else if zero(a) && !zero(b) {
        Some(Masked {
            cond: c,
            value: b,
            zero: a,
            zero_first: true,
        })
    } else {
        None
    }
}

/// `a + b` of two values masked by the same select stays masked (`where(c, a' + b', 0)`),
/// so a later infinite partial cannot turn the masked zeros into NaN.
pub(crate) fn add_masked(g: &mut Graph, a: NodeId, b: NodeId) -> R<Option<NodeId>> {
    match (masked(g, a), masked(g, b)) {
        (Some(ma), Some(mb))
            if ma.cond == mb.cond
                && ma.zero_first == mb.zero_first
                && g.shape(ma.value) == g.shape(mb.value) =>
        {
            let s = g.add_(ma.value, mb.value)?;
            Ok(Some(ma.rebuild(g, s)?))
        }
        _ => Ok(None),
    }
}

/// A scalar constant of `like`'s dtype (broadcast by the binary builders).
fn k(g: &mut Graph, v: f64, like: NodeId) -> NodeId {
    let dt = g.dtype(like);
    g.scalar(v, dt)
}

/// `f'(x)` for `y = f(x)`.
fn unary_d(g: &mut Graph, u: UnaryOp, x: NodeId, y: NodeId) -> R<D> {
    use UnaryOp::*;
    let one = k(g, 1.0, x);
    Ok(match u {
        // d/dx -x = -1
        Neg => D::Neg,
        // d/dx |x| = sign x (0 at 0, as JAX)
        Abs => D::Mul(g.unary(Sign, x)?),
        // piecewise constant: zero almost everywhere (and bool `not` carries no derivative)
        Sign | Floor | Ceil | Round | Not => D::Zero,
        // d/dx stop_gradient(x) = 0 (by definition: the value of x, no derivative)
        StopGradient => D::Zero,
        // d/dx e^x = e^x
        Exp => D::Mul(y),
        // d/dx (e^x - 1) = e^x (not y + 1: that rounds to 0 where e^x is tiny)
        Expm1 => D::Mul(g.unary(Exp, x)?),
        // d/dx log x = 1/x
        Log => D::Div(x),
        // d/dx log(1 + x) = 1/(1 + x)
        Log1p => D::Div(g.add_(x, one)?),
        // d/dx log2 x = 1/(x ln 2)
        Log2 => D::Div(g.scale(x, std::f64::consts::LN_2)?),
        // d/dx log10 x = 1/(x ln 10)
        Log10 => D::Div(g.scale(x, std::f64::consts::LN_10)?),
        // d/dx sqrt x = 1/(2 sqrt x)  (inf at 0, as JAX)
        Sqrt => D::Div(g.scale(y, 2.0)?),
        // d/dx x^2 = 2x
        Square => D::Mul(g.scale(x, 2.0)?),
        // d/dx 1/x = -1/x^2 = -y^2
        Reciprocal => {
            let y2 = g.unary(Square, y)?;
            D::Mul(g.neg(y2)?)
        }
        // d/dx sin x = cos x
        Sin => D::Mul(g.unary(Cos, x)?),
        // d/dx cos x = -sin x
        Cos => {
            let s = g.unary(Sin, x)?;
            D::Mul(g.neg(s)?)
        }
        // d/dx tan x = 1 + tan^2 x
        Tan => {
            let y2 = g.unary(Square, y)?;
            D::Mul(g.add_(one, y2)?)
        }
        // d/dx arcsin x = 1/sqrt(1 - x^2)
        Arcsin => D::Div(sqrt_one_minus_sq(g, x)?),
        // d/dx arccos x = -1/sqrt(1 - x^2)
        Arccos => {
            let s = sqrt_one_minus_sq(g, x)?;
            D::Div(g.neg(s)?)
        }
        // d/dx arctan x = 1/(1 + x^2)
        Arctan => {
            let x2 = g.unary(Square, x)?;
            D::Div(g.add_(one, x2)?)
        }
        // d/dx sinh x = cosh x
        Sinh => D::Mul(g.unary(Cosh, x)?),
        // d/dx cosh x = sinh x
        Cosh => D::Mul(g.unary(Sinh, x)?),
        // d/dx tanh x = 1 - tanh^2 x
        Tanh => {
            let y2 = g.unary(Square, y)?;
            D::Mul(g.sub(one, y2)?)
        }
        // d/dx arcsinh x = 1/sqrt(x^2 + 1)
        Arcsinh => {
            let x2 = g.unary(Square, x)?;
            let s = g.add_(x2, one)?;
            D::Div(g.unary(Sqrt, s)?)
        }
        // d/dx arccosh x = 1/sqrt(x^2 - 1)
        Arccosh => {
            let x2 = g.unary(Square, x)?;
            let s = g.sub(x2, one)?;
            D::Div(g.unary(Sqrt, s)?)
        }
        // d/dx arctanh x = 1/(1 - x^2)
        Arctanh => {
            let x2 = g.unary(Square, x)?;
            D::Div(g.sub(one, x2)?)
        }
        // d/dx s(x) = s(x) (1 - s(x)) = s(x) s(-x)  (1 - s(x) rounds to 0 for large x, s(-x)
        // keeps its digits: the slope at 20 in float32 is 2.1e-9, not 0)
        Sigmoid => {
            let nx = g.neg(x)?;
            let c = g.unary(Sigmoid, nx)?;
            D::Mul(g.mul(y, c)?)
        }
        // d/dx erf x = 2/sqrt(pi) exp(-x^2)
        Erf => {
            let x2 = g.unary(Square, x)?;
            let nx2 = g.neg(x2)?;
            let e = g.unary(Exp, nx2)?;
            D::Mul(g.scale(e, std::f64::consts::FRAC_2_SQRT_PI)?)
        }
        // d/dx gammaln x = digamma x
        Gammaln => D::Mul(g.unary(Digamma, x)?),
        // d/dx digamma x = polygamma(1, x)
        Digamma => D::Mul(g.unary(Trigamma, x)?),
        // d/dx polygamma(1, x) = polygamma(2, x): not in the IR
        Trigamma => {
            return err(
                "the derivative of polygamma(1, x) (the third derivative of gammaln, the second \
                 of digamma/psi) is not supported",
            )
        }
    })
}

fn sqrt_one_minus_sq(g: &mut Graph, x: NodeId) -> R<NodeId> {
    let one = k(g, 1.0, x);
    let x2 = g.unary(UnaryOp::Square, x)?;
    let s = g.sub(one, x2)?;
    g.unary(UnaryOp::Sqrt, s)
}

/// Reverse: `x̄ = ȳ f'(x)`.
pub(crate) fn unary_vjp(
    g: &mut Graph,
    u: UnaryOp,
    x: NodeId,
    y: NodeId,
    ct: NodeId,
) -> R<Option<NodeId>> {
    let d = unary_d(g, u, x, y)?;
    apply(g, d, ct)
}

/// Forward: `ẏ = f'(x) ẋ`.
pub(crate) fn unary_jvp(
    g: &mut Graph,
    u: UnaryOp,
    x: NodeId,
    y: NodeId,
    t: NodeId,
) -> R<Option<NodeId>> {
    let d = unary_d(g, u, x, y)?;
    apply(g, d, t)
}

/// `∂y/∂(operand i)` for `y = op(a, b)`.
fn binary_d(g: &mut Graph, op: BinaryOp, i: usize, a: NodeId, b: NodeId, y: NodeId) -> R<D> {
    use BinaryOp::*;
    let first = i == 0;
    Ok(match op {
        // d(a + b) = da + db
        Add => D::Id,
        // d(a - b) = da - db
        Sub if first => D::Id,
        Sub => D::Neg,
        // d(ab) = b da + a db
        Mul if first => D::Mul(b),
        Mul => D::Mul(a),
        // d(a/b) = da/b - (a/b^2) db = da/b - (y/b) db
        Div if first => D::Div(b),
        Div => {
            let q = g.div(y, b)?;
            D::Mul(g.neg(q)?)
        }
        // floor(a/b) is piecewise constant
        FloorDiv => D::Zero,
        // mod(a, b) = a - b floor(a/b): d/da = 1, d/db = -floor(a/b)
        Mod if first => D::Id,
        Mod => {
            let q = g.div(a, b)?;
            let f = g.unary(UnaryOp::Floor, q)?;
            D::Mul(g.neg(f)?)
        }
        // d/da a^b = b a^(b-1), with a^(b-1) taken at b=1 where b=0 (so 0^-1 never appears)
        Pow if first => {
            let zero = k(g, 0.0, b);
            let one = k(g, 1.0, b);
            let b0 = g.binary(Eq, b, zero)?;
            let bs = g.select(b0, one, b)?;
            let bm1 = g.sub(bs, one)?;
            let p = g.binary(Pow, a, bm1)?;
            D::Mul(g.mul(b, p)?)
        }
        // d/db a^b = a^b log a, taken as 0 where a=0 (JAX)
        Pow => {
            let zero = k(g, 0.0, a);
            let one = k(g, 1.0, a);
            let a0 = g.binary(Eq, a, zero)?;
            let as_ = g.select(a0, one, a)?;
            let l = g.unary(UnaryOp::Log, as_)?;
            let yl = g.mul(y, l)?;
            D::Mul(g.select(a0, zero, yl)?)
        }
        // d max(a, b) = w da + (1 - w) db, w = [a > b] + [a = b]/2 (ties split, as JAX)
        Maximum => D::Mul(tie_weight(g, Gt, i, a, b)?),
        // d min(a, b) = w da + (1 - w) db, w = [a < b] + [a = b]/2
        Minimum => D::Mul(tie_weight(g, Lt, i, a, b)?),
        // d atan2(a, b) = (b da - a db)/(a^2 + b^2)
        Arctan2 => {
            let a2 = g.unary(UnaryOp::Square, a)?;
            let b2 = g.unary(UnaryOp::Square, b)?;
            let r = g.add_(a2, b2)?;
            if first {
                D::Mul(g.div(b, r)?)
            } else {
                let q = g.div(a, r)?;
                D::Mul(g.neg(q)?)
            }
        }
        // d log(e^a + e^b) = s(a - b) da + s(b - a) db
        LogAddExp => {
            let d = if first { g.sub(a, b)? } else { g.sub(b, a)? };
            D::Mul(g.unary(UnaryOp::Sigmoid, d)?)
        }
        // comparisons and logical ops are bool: no derivative
        Lt | Le | Gt | Ge | Eq | Ne | And | Or | Xor => D::Zero,
    })
}

/// The weight of operand `i` in the derivative of max (`cmp` = Gt) or min (`cmp` = Lt).
fn tie_weight(g: &mut Graph, cmp: BinaryOp, i: usize, a: NodeId, b: NodeId) -> R<NodeId> {
    let (p, q) = if i == 0 { (a, b) } else { (b, a) };
    let wins = g.binary(cmp, p, q)?;
    let tie = g.binary(BinaryOp::Eq, p, q)?;
    let (one, half, zero) = (k(g, 1.0, a), k(g, 0.5, a), k(g, 0.0, a));
    let t = g.select(tie, half, zero)?;
    g.select(wins, one, t)
}

/// Reverse: `ā = ȳ ∂y/∂a`, `b̄ = ȳ ∂y/∂b`.
pub(crate) fn binary_vjp(
    g: &mut Graph,
    op: BinaryOp,
    x: &[NodeId],
    y: NodeId,
    ct: NodeId,
    need: &[bool],
) -> R<Vec<Option<NodeId>>> {
    let mut out = vec![None, None];
    for i in 0..2 {
        if need[i] {
            let d = binary_d(g, op, i, x[0], x[1], y)?;
            out[i] = apply(g, d, ct)?;
        }
    }
    Ok(out)
}

/// Forward: `ẏ = ∂y/∂a ȧ + ∂y/∂b ḃ`.
pub(crate) fn binary_jvp(
    g: &mut Graph,
    op: BinaryOp,
    x: &[NodeId],
    y: NodeId,
    t: &[Option<NodeId>],
) -> R<Option<NodeId>> {
    let mut acc = None;
    for (i, ti) in t.iter().enumerate() {
        if let Some(ti) = *ti {
            let d = binary_d(g, op, i, x[0], x[1], y)?;
            let term = apply(g, d, ti)?;
            acc = add_opt(g, acc, term)?;
        }
    }
    Ok(acc)
}

/// Reverse of `where(c, a, b)`: `ā = where(c, ȳ, 0)`, `b̄ = where(c, 0, ȳ)`.
pub(crate) fn where_vjp(
    g: &mut Graph,
    x: &[NodeId],
    ct: NodeId,
    need: &[bool],
) -> R<Vec<Option<NodeId>>> {
    let zero = g.zeros_like(ct);
    let a = if need[1] {
        Some(g.select(x[0], ct, zero)?)
    } else {
        None
    };
    let b = if need[2] {
        Some(g.select(x[0], zero, ct)?)
    } else {
        None
    };
    Ok(vec![None, a, b])
}

/// Forward of `where(c, a, b)`: `ẏ = where(c, ȧ, ḃ)`.
pub(crate) fn where_jvp(g: &mut Graph, x: &[NodeId], t: &[Option<NodeId>]) -> R<NodeId> {
    let ta = or_zeros(g, t[1], x[1]);
    let tb = or_zeros(g, t[2], x[2]);
    g.select(x[0], ta, tb)
}

/// Reverse of a cast: float-to-float passes the cotangent through, cast back to the
/// operand's precision; any cast to or from int/bool has zero derivative.
pub(crate) fn cast_vjp(g: &mut Graph, x: NodeId, to: DType, ct: NodeId) -> R<Option<NodeId>> {
    let from = g.dtype(x);
    if !(from.is_float() && to.is_float()) {
        return Ok(None);
    }
    Ok(Some(g.cast(ct, from)?))
}

/// Forward of a cast: `ẏ = cast(ẋ)` between float types, zero otherwise.
pub(crate) fn cast_jvp(g: &mut Graph, x: NodeId, to: DType, t: NodeId) -> R<Option<NodeId>> {
    if !(g.dtype(x).is_float() && to.is_float()) {
        return Ok(None);
    }
    Ok(Some(g.cast(t, to)?))
}
