//! The canonicalize phase: constant folding, identities, constants on the right and pulled
//! together, like terms, products of powers, broadcasts hoisted above elementwise work and
//! shape ops merged. The stabilize phase runs these too (after its own rules).
//!
//! Within one op the table order is the order rules are tried; rules guarded by "`b` not
//! constant" and the like keep apart the cases an earlier rule owns.

use autodiff_ir::NodeId;
use autodiff_ir::{
    BinaryOp as B, ContractSpec, DType, Op, ReduceOp, Shape, SliceDim, Tensor, UnaryOp as U,
};

use super::{rule, On, Rewriter, Rule, FOLD_LIMIT};
use crate::scalar;

type R = Option<NodeId>;

/// The canonicalize rules, in the order they are tried.
pub(crate) const RULES: &[Rule] = &[
    // ---- every unary and binary op ----
    // u(c) = the constant u(c), elementwise (scalar semantics: `ir::scalar`)
    rule("fold-unary", On::AnyUnary, |rw, op, x| {
        fold_unary(rw, unary_op(op), x[0])
    }),
    // b(c1, c2) = the constant b(c1, c2), elementwise
    rule("fold-binary", On::AnyBinary, |rw, op, x| {
        fold_binary(rw, binary_op(op), x[0], x[1])
    }),
    // f(broadcast(x), broadcast(y), c) = broadcast(f(x, y, c)) when x, y have one shape
    rule("hoist-broadcast", On::UnaryOrBinary, hoist),
    // ---- unary ----
    // --x = x
    rule("neg-neg", On::Unary(U::Neg), |rw, _, x| {
        rw.un_of(x[0], U::Neg)
    }),
    // -(p - q) = q - p
    rule("neg-sub", On::Unary(U::Neg), |rw, _, x| {
        let (p, q) = rw.bin_of(x[0], B::Sub)?;
        Some(rw.b(B::Sub, q, p))
    }),
    // -(y·c) = y·(-c)
    rule("neg-into-const", On::Unary(U::Neg), |rw, _, x| {
        let (y, c) = rw.with_const(x[0], B::Mul)?;
        let nc = rw.u(U::Neg, c);
        Some(rw.b(B::Mul, y, nc))
    }),
    // ||x|| = |x|
    rule("abs-abs", On::Unary(U::Abs), |rw, _, x| {
        rw.un_of(x[0], U::Abs).map(|_| x[0])
    }),
    // |-y| = |y|
    rule("abs-neg", On::Unary(U::Abs), |rw, _, x| {
        let y = rw.un_of(x[0], U::Neg)?;
        Some(rw.u(U::Abs, y))
    }),
    // square(x) = x**2 (until specialize)
    rule("square-as-pow", On::Unary(U::Square), |rw, _, x| {
        let two = rw.full_like(2.0, x[0]);
        Some(rw.b(B::Pow, x[0], two))
    }),
    // reciprocal(x) = 1/x
    rule("reciprocal-as-div", On::Unary(U::Reciprocal), |rw, _, x| {
        let one = rw.full_like(1.0, x[0]);
        Some(rw.b(B::Div, one, x[0]))
    }),
    // ---- binary ----
    // c ∘ x = x ∘ c for commutative ∘ (constants on the right)
    rule("const-right", On::AnyBinary, |rw, op, x| {
        let b = binary_op(op);
        let swap = b.is_commutative() && rw.konst(x[0]) && !rw.konst(x[1]);
        swap.then(|| rw.b(b, x[1], x[0]))
    }),
    // max(x, x) = min(x, x) = x and x, x or x = x
    rule("idempotent", On::AnyBinary, |_, op, x| {
        let b = binary_op(op);
        let idem = matches!(b, B::Maximum | B::Minimum | B::And | B::Or);
        (idem && x[0] == x[1]).then_some(x[0])
    }),
    // x + 0 = x
    rule("add-zero", On::Binary(B::Add), |rw, _, x| {
        rw.is(x[1], 0.0).then_some(x[0])
    }),
    // a + -y = a - y
    rule("add-neg-right", On::Binary(B::Add), |rw, _, x| {
        let y = rw.un_of(x[1], U::Neg)?;
        Some(rw.b(B::Sub, x[0], y))
    }),
    // -y + b = b - y
    rule("add-neg-left", On::Binary(B::Add), |rw, _, x| {
        let y = rw.un_of(x[0], U::Neg)?;
        Some(rw.b(B::Sub, x[1], y))
    }),
    // (x + c) + k = x + (c + k)
    rule("add-const-const", On::Binary(B::Add), |rw, _, x| {
        let (y, c) = rw.with_const(x[0], B::Add).filter(|_| rw.konst(x[1]))?;
        let c = rw.b(B::Add, c, x[1]);
        Some(rw.b(B::Add, y, c))
    }),
    // (c - y) + k = (c + k) - y
    rule("const-sub-add-const", On::Binary(B::Add), |rw, _, x| {
        let (c, y) = rw
            .bin_of(x[0], B::Sub)
            .filter(|&(c, _)| rw.konst(c) && rw.konst(x[1]))?;
        let c = rw.b(B::Add, c, x[1]);
        Some(rw.b(B::Sub, c, y))
    }),
    // (y + c) + b = (y + b) + c
    rule("add-const-out-left", On::Binary(B::Add), |rw, _, x| {
        let (y, c) = rw.with_const(x[0], B::Add).filter(|_| !rw.konst(x[1]))?;
        let t = rw.b(B::Add, y, x[1]);
        Some(rw.b(B::Add, t, c))
    }),
    // a + (y + c) = (a + y) + c
    rule("add-const-out-right", On::Binary(B::Add), |rw, _, x| {
        let (y, c) = rw.with_const(x[1], B::Add).filter(|_| !rw.konst(x[1]))?;
        let t = rw.b(B::Add, x[0], y);
        Some(rw.b(B::Add, t, c))
    }),
    // k·x + m·x = (k+m)·x  and  p·q + p·s = (q + s)·p
    rule("add-like-terms", On::Binary(B::Add), |rw, _, x| {
        (!rw.konst(x[1])).then(|| like_terms(rw, B::Add, x[0], x[1]))?
    }),
    // x - 0 = x
    rule("sub-zero", On::Binary(B::Sub), |rw, _, x| {
        rw.is(x[1], 0.0).then_some(x[0])
    }),
    // 0 - y = -y
    rule("zero-sub", On::Binary(B::Sub), |rw, _, x| {
        rw.is(x[0], 0.0).then(|| rw.u(U::Neg, x[1]))
    }),
    // a - -y = a + y
    rule("sub-neg", On::Binary(B::Sub), |rw, _, x| {
        let y = rw.un_of(x[1], U::Neg)?;
        Some(rw.b(B::Add, x[0], y))
    }),
    // x - c = x + (-c) (until specialize)
    rule("sub-const-as-add", On::Binary(B::Sub), |rw, _, x| {
        rw.konst(x[1]).then(|| {
            let nb = rw.u(U::Neg, x[1]);
            rw.b(B::Add, x[0], nb)
        })
    }),
    // c - (y + k) = (c - k) - y
    rule("const-sub-add", On::Binary(B::Sub), |rw, _, x| {
        let (y, k) = rw.with_const(x[1], B::Add).filter(|_| rw.konst(x[0]))?;
        let c = rw.b(B::Sub, x[0], k);
        Some(rw.b(B::Sub, c, y))
    }),
    // c - (k - y) = y + (c - k)
    rule("const-sub-sub", On::Binary(B::Sub), |rw, _, x| {
        let (k, y) = rw
            .bin_of(x[1], B::Sub)
            .filter(|&(k, _)| rw.konst(k) && rw.konst(x[0]))?;
        let c = rw.b(B::Sub, x[0], k);
        Some(rw.b(B::Add, y, c))
    }),
    // (y + c) - b = (y - b) + c
    rule("sub-const-out-left", On::Binary(B::Sub), |rw, _, x| {
        let (y, c) = rw.with_const(x[0], B::Add).filter(|_| !rw.konst(x[0]))?;
        let t = rw.b(B::Sub, y, x[1]);
        Some(rw.b(B::Add, t, c))
    }),
    // a - (y + c) = (a - y) - c
    rule("sub-const-out-right", On::Binary(B::Sub), |rw, _, x| {
        let (y, c) = rw.with_const(x[1], B::Add).filter(|_| !rw.konst(x[0]))?;
        let t = rw.b(B::Sub, x[0], y);
        Some(rw.b(B::Sub, t, c))
    }),
    // k·x - m·x = (k-m)·x  and  p·q - p·s = (q - s)·p
    rule("sub-like-terms", On::Binary(B::Sub), |rw, _, x| {
        (!rw.konst(x[0])).then(|| like_terms(rw, B::Sub, x[0], x[1]))?
    }),
    // x·1 = x
    rule("mul-one", On::Binary(B::Mul), |rw, _, x| {
        rw.is(x[1], 1.0).then_some(x[0])
    }),
    // x·(-1) = -x
    rule("mul-minus-one", On::Binary(B::Mul), |rw, _, x| {
        rw.is(x[1], -1.0).then(|| rw.u(U::Neg, x[0]))
    }),
    // (y·c)·k = y·(c·k)
    rule("mul-const-const", On::Binary(B::Mul), |rw, _, x| {
        let (y, c) = rw.with_const(x[0], B::Mul).filter(|_| rw.konst(x[1]))?;
        let c = rw.b(B::Mul, c, x[1]);
        Some(rw.b(B::Mul, y, c))
    }),
    // (c/y)·k = (c·k)/y
    rule("const-div-mul-const", On::Binary(B::Mul), |rw, _, x| {
        let (c, y) = rw
            .bin_of(x[0], B::Div)
            .filter(|&(c, _)| rw.konst(c) && rw.konst(x[1]))?;
        let c = rw.b(B::Mul, c, x[1]);
        Some(rw.b(B::Div, c, y))
    }),
    // (c1/y · q) · c2 = ((c1·c2)/y) · q, also through a broadcast of c1/y
    rule(
        "scaled-div-mul-const",
        On::Binary(B::Mul),
        scaled_div_mul_const,
    ),
    // (-y)·k = y·(-k)
    rule("neg-mul-const", On::Binary(B::Mul), |rw, _, x| {
        let y = rw.un_of(x[0], U::Neg).filter(|_| rw.konst(x[1]))?;
        let nk = rw.u(U::Neg, x[1]);
        Some(rw.b(B::Mul, y, nk))
    }),
    // (-x)·(-y) = x·y
    rule("mul-neg-neg", On::Binary(B::Mul), |rw, _, x| {
        let (p, q) = (rw.un_of(x[0], U::Neg)?, rw.un_of(x[1], U::Neg)?);
        (!rw.konst(x[1])).then(|| rw.b(B::Mul, p, q))
    }),
    // (-x)·y = -(x·y)
    rule("mul-neg-left", On::Binary(B::Mul), |rw, _, x| {
        let p = rw.un_of(x[0], U::Neg).filter(|_| !rw.konst(x[1]))?;
        let t = rw.b(B::Mul, p, x[1]);
        Some(rw.u(U::Neg, t))
    }),
    // x·(-y) = -(x·y)
    rule("mul-neg-right", On::Binary(B::Mul), |rw, _, x| {
        let q = rw.un_of(x[1], U::Neg).filter(|_| !rw.konst(x[1]))?;
        let t = rw.b(B::Mul, x[0], q);
        Some(rw.u(U::Neg, t))
    }),
    // (y·c)·b = (y·b)·c
    rule("mul-const-out-left", On::Binary(B::Mul), |rw, _, x| {
        let (y, c) = rw.with_const(x[0], B::Mul).filter(|_| !rw.konst(x[1]))?;
        let t = rw.b(B::Mul, y, x[1]);
        Some(rw.b(B::Mul, t, c))
    }),
    // a·(y·c) = (a·y)·c
    rule("mul-const-out-right", On::Binary(B::Mul), |rw, _, x| {
        let (y, c) = rw.with_const(x[1], B::Mul).filter(|_| !rw.konst(x[1]))?;
        let t = rw.b(B::Mul, x[0], y);
        Some(rw.b(B::Mul, t, c))
    }),
    // p·(1/y) = (1/y)·p = p/y, also through a broadcast of 1/y
    rule("mul-reciprocal", On::Binary(B::Mul), mul_reciprocal),
    // x**n · x**m = x**(n+m) (n, m positive integers; x = x**1)
    rule("mul-powers", On::Binary(B::Mul), |rw, _, x| {
        if rw.konst(x[1]) {
            return None;
        }
        let ((p, n), (q, m)) = (power(rw, x[0]), power(rw, x[1]));
        (p == q).then(|| {
            let e = rw.full_like(n + m, p);
            rw.b(B::Pow, p, e)
        })
    }),
    // x/1 = x
    rule("div-one", On::Binary(B::Div), |rw, _, x| {
        rw.is(x[1], 1.0).then_some(x[0])
    }),
    // c1 / (y·c2) = (c1/c2) / y
    rule("const-div-scaled", On::Binary(B::Div), |rw, _, x| {
        let c1 = rw.uc(x[0])?;
        let (y, c2) = rw.with_const(x[1], B::Mul)?;
        let c2 = rw.uc(c2)?;
        let (shape, dt) = (rw.node(x[0]).shape.clone(), rw.node(x[0]).dtype);
        let k = rw.full(c1 / c2, &shape, dt);
        Some(rw.b(B::Div, k, y))
    }),
    // x/(-1) = -x
    rule("div-minus-one", On::Binary(B::Div), |rw, _, x| {
        rw.is(x[1], -1.0).then(|| rw.u(U::Neg, x[0]))
    }),
    // (-x)/(-y) = x/y
    rule("div-neg-neg", On::Binary(B::Div), |rw, _, x| {
        let (p, q) = (rw.un_of(x[0], U::Neg)?, rw.un_of(x[1], U::Neg)?);
        Some(rw.b(B::Div, p, q))
    }),
    // x**1 = x
    rule("pow-one", On::Binary(B::Pow), |rw, _, x| {
        rw.is(x[1], 1.0).then_some(x[0])
    }),
    // x**0 = 1 (also at 0, inf and NaN, like NumPy)
    rule("pow-zero", On::Binary(B::Pow), |rw, _, x| {
        rw.is(x[1], 0.0).then(|| rw.full_like(1.0, x[0]))
    }),
    // x**-1 = 1/x (floats)
    rule("pow-minus-one", On::Binary(B::Pow), |rw, _, x| {
        (rw.is(x[1], -1.0) && rw.float(x[0])).then(|| {
            let one = rw.full_like(1.0, x[0]);
            rw.b(B::Div, one, x[0])
        })
    }),
    // (x**n)**m = x**(n·m) for integers n, m
    rule("pow-pow", On::Binary(B::Pow), |rw, _, x| {
        let e = rw.uc(x[1])?;
        let (y, c) = rw.with_const(x[0], B::Pow)?;
        let inner = rw.uc(c)?;
        (inner.fract() == 0.0 && e.fract() == 0.0).then(|| {
            let k = rw.full_like(inner * e, y);
            rw.b(B::Pow, y, k)
        })
    }),
    // ---- where and cast ----
    // where(c, a, a) = a
    rule("where-same", On::Where, |_, _, x| {
        (x[1] == x[2]).then_some(x[1])
    }),
    // where(true, a, b) = a;  where(false, a, b) = b
    rule("where-const", On::Where, |rw, _, x| {
        rw.uc(x[0]).map(|v| if v != 0.0 { x[1] } else { x[2] })
    }),
    // where(¬c, a, b) = where(c, b, a)
    rule("where-not", On::Where, |rw, _, x| {
        let c = rw.un_of(x[0], U::Not)?;
        Some(rw.mk(Op::Where, vec![c, x[2], x[1]]))
    }),
    // cast(x: T, T) = x
    rule("cast-same", On::Cast, |rw, op, x| {
        let Op::Cast(dt) = op else { return None };
        (rw.node(x[0]).dtype == *dt).then_some(x[0])
    }),
    // cast(c, T) = the constant c as T
    rule("fold-cast", On::Cast, |rw, op, x| {
        let Op::Cast(dt) = op else { return None };
        let t = rw.tensor(x[0])?;
        Some(rw.constant(Tensor::new(*dt, t.shape, t.data)))
    }),
    // cast(cast(x: T, U), T) = x when U holds every T exactly (bool in any; int64 and
    // float32 in float64): how a loop's packed results come back
    rule("cast-round-trip", On::Cast, |rw, op, x| {
        let Op::Cast(dt) = op else { return None };
        let n = rw.node(x[0]);
        let Op::Cast(mid) = n.op else { return None };
        let y = n.inputs[0];
        let t = rw.node(y).dtype;
        let holds = t == DType::Bool || mid == DType::F64 || mid == t;
        (t == *dt && holds).then_some(y)
    }),
    // where/cast(broadcast(x), ...) = broadcast(where/cast(x, ...))
    rule("hoist-broadcast-late", On::WhereOrCast, hoist),
    // ---- shape ops ----
    // broadcast(x: S, S) = x
    rule("broadcast-same", On::Broadcast, |rw, op, x| {
        let Op::Broadcast(to) = op else { return None };
        (rw.node(x[0]).shape == *to).then_some(x[0])
    }),
    // broadcast(c, S) = c of shape S (uniform c)
    rule("broadcast-uniform", On::Broadcast, |rw, op, x| {
        let Op::Broadcast(to) = op else { return None };
        let n = rw.node(x[0]);
        let (v, dt) = (rw.uc(x[0]).filter(|_| !n.shape.is_empty())?, n.dtype);
        Some(rw.full(v, to, dt))
    }),
    // broadcast(broadcast(y), S) = broadcast(y, S)
    rule("broadcast-broadcast", On::Broadcast, |rw, op, x| {
        let Op::Broadcast(to) = op else { return None };
        let n = rw.node(x[0]);
        let y = matches!(n.op, Op::Broadcast(_)).then(|| n.inputs[0])?;
        Some(rw.bcast(y, &to.clone()))
    }),
    // broadcast(reshape(y), S) = broadcast(y, S) when the reshape only adds or drops
    // leading 1s and y is not of higher rank than S
    rule("broadcast-reshape", On::Broadcast, |rw, op, x| {
        let Op::Broadcast(to) = op else { return None };
        let n = rw.node(x[0]);
        let y = matches!(n.op, Op::Reshape(_)).then(|| n.inputs[0])?;
        let strip = |s: &[usize]| {
            s.iter()
                .skip_while(|&&d| d == 1)
                .copied()
                .collect::<Vec<_>>()
        };
        let ys = rw.g.shape(y);
        (strip(&n.shape) == strip(ys) && ys.len() <= to.len()).then(|| rw.bcast(y, &to.clone()))
    }),
    // reshape(x: S, S) = x
    rule("reshape-same", On::Reshape, |rw, op, x| {
        let Op::Reshape(to) = op else { return None };
        (rw.node(x[0]).shape == *to).then_some(x[0])
    }),
    // reshape(c, S) = c of shape S (uniform c)
    rule("reshape-uniform", On::Reshape, |rw, op, x| {
        let Op::Reshape(to) = op else { return None };
        let (v, dt) = (rw.uc(x[0])?, rw.node(x[0]).dtype);
        Some(rw.full(v, to, dt))
    }),
    // reshape(reshape(y), S) = reshape(y, S)
    rule("reshape-reshape", On::Reshape, |rw, op, x| {
        let n = rw.node(x[0]);
        let y = matches!(n.op, Op::Reshape(_)).then(|| n.inputs[0])?;
        Some(rw.mk(op.clone(), vec![y]))
    }),
    // reshape(c, S) = the constant c with shape S
    rule("fold-reshape", On::Reshape, |rw, op, x| {
        let Op::Reshape(to) = op else { return None };
        if !matches!(rw.node(x[0]).op, Op::Const(_)) {
            return None;
        }
        let t = rw.tensor(x[0])?;
        Some(rw.constant(Tensor::new(t.dtype, to.clone(), t.data)))
    }),
    // transpose(x, identity) = x
    rule("transpose-identity", On::Transpose, |_, op, x| {
        let Op::Transpose(p) = op else { return None };
        p.iter().enumerate().all(|(i, &q)| i == q).then_some(x[0])
    }),
    // transpose(c, p) = c of the permuted shape (uniform c)
    rule("transpose-uniform", On::Transpose, |rw, op, x| {
        let Op::Transpose(p) = op else { return None };
        let n = rw.node(x[0]);
        let to: Shape = p.iter().map(|&i| n.shape[i]).collect();
        let (v, dt) = (rw.uc(x[0])?, n.dtype);
        Some(rw.full(v, &to, dt))
    }),
    // transpose(transpose(y, q), p) = transpose(y, q∘p)
    rule("transpose-transpose", On::Transpose, |rw, op, x| {
        let (Op::Transpose(p), Op::Transpose(q)) = (op, &rw.node(x[0]).op) else {
            return None;
        };
        let composed = p.iter().map(|&i| q[i]).collect();
        let y = rw.node(x[0]).inputs[0];
        Some(rw.mk(Op::Transpose(composed), vec![y]))
    }),
    // x[:] = x (the whole of every axis)
    rule("slice-full", On::Slice, |rw, op, x| {
        let Op::Slice(dims) = op else { return None };
        let full = dims
            .iter()
            .zip(&rw.node(x[0]).shape)
            .all(|(d, &e)| d.start == 0 && d.step == 1 && d.len == e);
        full.then_some(x[0])
    }),
    // broadcast(y)[s] = broadcast(y[s on y's own axes]): never materializes the broadcast
    rule("slice-broadcast", On::Slice, slice_broadcast),
    // x[s₁][s₂] = x[s₁∘s₂]: per axis, start s₁.start + s₁.step·s₂.start, step s₁.step·s₂.step
    rule("slice-slice", On::Slice, |rw, op, x| {
        let Op::Slice(outer) = op else { return None };
        let n = rw.node(x[0]);
        let Op::Slice(inner) = &n.op else { return None };
        let y = n.inputs[0];
        let dims = (inner.iter().zip(outer))
            .map(|(i, o)| SliceDim {
                start: (i.start as i64 + i.step * o.start as i64) as usize,
                step: i.step * o.step,
                len: o.len,
            })
            .collect();
        Some(rw.mk(Op::Slice(dims), vec![y]))
    }),
    // x[s] = the empty constant when s selects no element
    rule("slice-empty", On::Slice, |rw, op, x| {
        let Op::Slice(dims) = op else { return None };
        let to: Shape = dims.iter().map(|d| d.len).collect();
        let dt = rw.node(x[0]).dtype;
        (to.contains(&0) && rw.uc(x[0]).is_none()).then(|| rw.full(0.0, &to, dt))
    }),
    // concat(…, p, …)[s] = p[s − p's offset] when s reads within p along the axis
    rule("slice-concat", On::Slice, slice_concat),
    // concat(…, y[a:b], y[b:c], …) = concat(…, y[a:c], …) along the axis (the rows of a
    // loop's stacked results appended one by one come back to the stacked value)
    rule("concat-slices", On::Concat, concat_slices),
    // c[s] = c of the slice's shape (uniform c)
    rule("slice-uniform", On::Slice, |rw, op, x| {
        let Op::Slice(dims) = op else { return None };
        let to: Shape = dims.iter().map(|d| d.len).collect();
        let (v, dt) = (rw.uc(x[0])?, rw.node(x[0]).dtype);
        Some(rw.full(v, &to, dt))
    }),
    // ---- reductions and contractions ----
    // sum(c) = c·n, prod(c) = c**n, max(c) = min(c) = c over n elements (uniform c)
    rule("reduce-uniform", On::Reduce, reduce_uniform),
    // r(r(y, A), B) = r(y, A ∪ B)
    rule("reduce-reduce", On::Reduce, |rw, op, x| {
        let Op::Reduce(r, axes) = op else { return None };
        let n = rw.node(x[0]);
        let Op::Reduce(r2, inner) = &n.op else {
            return None;
        };
        if r2 != r || rw.uc(x[0]).is_some() {
            return None;
        }
        let kept: Vec<usize> = (0..rw.g.shape(n.inputs[0]).len())
            .filter(|i| !inner.contains(i))
            .collect();
        let mut all = inner.clone();
        all.extend(axes.iter().map(|&a| kept[a]));
        all.sort_unstable();
        let y = n.inputs[0];
        Some(rw.mk(Op::Reduce(*r, all), vec![y]))
    }),
    // r(broadcast(y)) over broadcast axes only = y (max, min), y·count (sum)
    rule("reduce-broadcast", On::Reduce, reduce_broadcast),
    // Σ(x·c) = (Σx)·c
    rule("sum-scaled", On::Reduce, |rw, op, x| {
        let Op::Reduce(ReduceOp::Sum, axes) = op else {
            return None;
        };
        let (y, c) = rw.bin_of(x[0], B::Mul).filter(|_| rw.uc(x[0]).is_none())?;
        let c = rw.uc(c)?;
        let s = rw.mk(Op::Reduce(ReduceOp::Sum, axes.clone()), vec![y]);
        let k = rw.full_like(c, s);
        Some(rw.b(B::Mul, s, k))
    }),
    // Σ(-y) = -Σy
    rule("sum-neg", On::Reduce, |rw, op, x| {
        let Op::Reduce(ReduceOp::Sum, axes) = op else {
            return None;
        };
        let y = rw.un_of(x[0], U::Neg)?;
        let s = rw.mk(Op::Reduce(ReduceOp::Sum, axes.clone()), vec![y]);
        Some(rw.u(U::Neg, s))
    }),
    // Σ set_slice(0, v) = set_slice(0, Σv) over the kept axes (= Σv when they cover)
    rule("sum-set-slice-zeros", On::Reduce, sum_set_slice_zeros),
    // einsum(c, x) = c · Π(extents summed from c alone) · Σ(x over its summed labels)
    rule("contract-uniform", On::Contract, |rw, op, x| {
        let Op::Contract(spec) = op else { return None };
        contract_uniform(rw, spec, x[0], x[1])
    }),
];

fn unary_op(op: &Op) -> U {
    match op {
        Op::Unary(u) => *u,
        other => unreachable!("a unary rule ran on {other:?}"),
    }
}

fn binary_op(op: &Op) -> B {
    match op {
        Op::Binary(b) => *b,
        other => unreachable!("a binary rule ran on {other:?}"),
    }
}

fn fold_unary(rw: &mut Rewriter, u: U, x: NodeId) -> R {
    let dt = if u == U::Not {
        DType::Bool
    } else {
        rw.node(x).dtype
    };
    let shape = rw.node(x).shape.clone();
    if let Some(v) = rw.uc(x) {
        let r = scalar::unary(u, v)?;
        return Some(rw.full(r, &shape, dt));
    }
    let t = rw.g.const_value(x).filter(|t| t.size() <= FOLD_LIMIT)?;
    let data: Option<Vec<f64>> = t.data.iter().map(|&v| scalar::unary(u, v)).collect();
    Some(rw.constant(Tensor::new(dt, shape, data?)))
}

fn fold_binary(rw: &mut Rewriter, op: B, a: NodeId, b: NodeId) -> R {
    let (shape, dt) = (rw.node(a).shape.clone(), rw.node(a).dtype);
    let out = scalar::binary_dtype(op, dt);
    if let (Some(x), Some(y)) = (rw.uc(a), rw.uc(b)) {
        let r = scalar::binary(op, x, y, dt)?;
        return Some(rw.full(r, &shape, out));
    }
    let (ta, tb) = (rw.tensor(a)?, rw.tensor(b)?);
    let data: Option<Vec<f64>> = (ta.data.iter().zip(&tb.data))
        .map(|(&x, &y)| scalar::binary(op, x, y, dt))
        .collect();
    Some(rw.constant(Tensor::new(out, shape, data?)))
}

/// `op(broadcast(x), broadcast(y), c)` → `broadcast(op(x, y, c))` when the broadcasts
/// start from one shape and the other operands are uniform constants.
fn hoist(rw: &mut Rewriter, op: &Op, ins: &[NodeId]) -> R {
    let mut from: Option<Shape> = None;
    for &i in ins {
        if rw.uc(i).is_none() {
            let n = rw.node(i);
            let Op::Broadcast(_) = n.op else { return None };
            let s = rw.node(n.inputs[0]).shape.clone();
            if from.as_ref().is_some_and(|f| *f != s) {
                return None;
            }
            from = Some(s);
        }
    }
    let from = from?;
    let to = rw.node(ins[0]).shape.clone();
    let new_ins = ins
        .iter()
        .map(|&i| match rw.uc(i) {
            Some(v) => {
                let dt = rw.node(i).dtype;
                rw.full(v, &from, dt)
            }
            None => rw.node(i).inputs[0],
        })
        .collect();
    let r = rw.mk(op.clone(), new_ins);
    Some(rw.bcast(r, &to))
}

/// `(base, k)` when `id` is `base*k` with a uniform constant `k` (`-base` is `k = -1`).
fn term(rw: &Rewriter, id: NodeId) -> (NodeId, f64) {
    if let Some((y, c)) = rw.bin_of(id, B::Mul) {
        if let Some(k) = rw.uc(c) {
            return (y, k);
        }
    }
    match rw.un_of(id, U::Neg) {
        Some(y) => (y, -1.0),
        None => (id, 1.0),
    }
}

/// `(base, n)` when `id` is `base**n` with a positive integer `n` (else `(id, 1)`).
fn power(rw: &Rewriter, id: NodeId) -> (NodeId, f64) {
    if let Some((y, c)) = rw.bin_of(id, B::Pow) {
        if let Some(n) = rw.uc(c).filter(|n| *n >= 1.0 && n.fract() == 0.0) {
            return (y, n);
        }
    }
    (id, 1.0)
}

/// Collects like terms of `a ± b` (`op` is `Add` or `Sub`).
fn like_terms(rw: &mut Rewriter, op: B, a: NodeId, b: NodeId) -> R {
    let ((ba, ka), (bb, kb)) = (term(rw, a), term(rw, b));
    if ba == bb && !rw.konst(ba) {
        let k = if op == B::Add { ka + kb } else { ka - kb };
        let c = rw.full_like(k, ba);
        return Some(rw.b(B::Mul, ba, c));
    }
    // p*q ± r*s with a shared factor.
    let ((p, q), (r, s)) = (rw.bin_of(a, B::Mul)?, rw.bin_of(b, B::Mul)?);
    let (common, x, y) = if q == s {
        (q, p, r)
    } else if p == r {
        (p, q, s)
    } else if p == s {
        (p, q, r)
    } else if q == r {
        (q, p, s)
    } else {
        return None;
    };
    let t = rw.b(op, x, y);
    Some(rw.b(B::Mul, t, common))
}

/// `(c1/y · q) · c2` → `((c1·c2)/y) · q`, also through a broadcast of `c1/y`.
fn scaled_div_mul_const(rw: &mut Rewriter, _: &Op, x: &[NodeId]) -> R {
    let (a, b) = (x[0], x[1]);
    let v2 = rw.uc(b)?;
    let (p, q) = rw.bin_of(a, B::Mul)?;
    let (inner, shape) = match rw.node(p).op {
        Op::Broadcast(ref s) => (rw.node(p).inputs[0], Some(s.clone())),
        _ => (p, None),
    };
    let (c1, y) = rw.bin_of(inner, B::Div).filter(|&(c, _)| rw.konst(c))?;
    let c1v = rw.uc(c1)?;
    let ishape = rw.node(inner).shape.clone();
    let k = rw.full(c1v * v2, &ishape, rw.node(inner).dtype);
    let d = rw.b(B::Div, k, y);
    let d = match shape {
        Some(s) => rw.bcast(d, &s),
        None => d,
    };
    Some(rw.b(B::Mul, d, q))
}

/// `p · (1/y)` and `(1/y) · p` → `p / y`, also through a broadcast of `1/y`.
fn mul_reciprocal(rw: &mut Rewriter, _: &Op, x: &[NodeId]) -> R {
    let (a, b) = (x[0], x[1]);
    if rw.konst(b) {
        return None;
    }
    for (p, q) in [(a, b), (b, a)] {
        if let Some((_, y)) = rw.bin_of(q, B::Div).filter(|&(o, _)| rw.is(o, 1.0)) {
            return Some(rw.b(B::Div, p, y));
        }
        if let Op::Broadcast(ref s) = rw.node(q).op {
            let (s, inner) = (s.clone(), rw.node(q).inputs[0]);
            if let Some((_, y)) = rw.bin_of(inner, B::Div).filter(|&(o, _)| rw.is(o, 1.0)) {
                let yb = rw.bcast(y, &s);
                return Some(rw.b(B::Div, p, yb));
            }
        }
    }
    None
}

/// `broadcast(y)[s]` → `broadcast(y[s'])`: a broadcast axis gives the same value at every
/// index, so only y's own axes are sliced; a huge broadcast that is indexed is never
/// materialized.
fn slice_concat(rw: &mut Rewriter, op: &Op, x: &[NodeId]) -> R {
    let Op::Slice(dims) = op else { return None };
    let n = rw.node(x[0]);
    let Op::Concat(axis) = n.op else { return None };
    let d = dims[axis];
    let first = d.start as i64;
    let last = first + d.step * (d.len as i64 - 1);
    let (lo, hi) = (first.min(last), first.max(last));
    let mut off = 0i64;
    for &p in &n.inputs.clone() {
        let e = rw.node(p).shape[axis] as i64;
        let within = match d.len {
            0 => off <= first && first <= off + e,
            _ => off <= lo && hi < off + e,
        };
        if within {
            let mut nd = dims.clone();
            nd[axis].start = (first - off) as usize;
            return Some(rw.mk(Op::Slice(nd), vec![p]));
        }
        off += e;
    }
    None
}

/// `concat` whose adjacent operands are contiguous unit-step slices of one value along the
/// axis (the same on every other axis): each run becomes one slice, and a concat left with
/// one operand is that operand.
fn concat_slices(rw: &mut Rewriter, op: &Op, x: &[NodeId]) -> R {
    let Op::Concat(axis) = *op else { return None };
    // a unit-step slice along the axis: (its source, its dims)
    type Piece = (NodeId, Vec<SliceDim>);
    let piece = |rw: &Rewriter, p: NodeId| -> Option<Piece> {
        let n = rw.node(p);
        match &n.op {
            Op::Slice(d) if d[axis].step == 1 => Some((n.inputs[0], d.clone())),
            _ => None,
        }
    };
    // runs: (first operand, merged slice, operands in the run)
    let mut runs: Vec<(NodeId, Option<Piece>, usize)> = vec![];
    for &p in x {
        let cur = piece(rw, p);
        if let (Some((_, Some((y, dims)), k)), Some((y2, d2))) = (runs.last_mut(), &cur) {
            let other_axes_equal = (0..dims.len()).all(|a| a == axis || dims[a] == d2[a]);
            if *y == *y2 && other_axes_equal && dims[axis].start + dims[axis].len == d2[axis].start
            {
                dims[axis].len += d2[axis].len;
                *k += 1;
                continue;
            }
        }
        runs.push((p, cur, 1));
    }
    if runs.len() == x.len() {
        return None;
    }
    let mut out = vec![];
    for (p, merged, k) in runs {
        out.push(match merged {
            Some((y, dims)) if k > 1 => rw.mk(Op::Slice(dims), vec![y]),
            _ => p,
        });
    }
    if out.len() == 1 {
        return Some(out[0]);
    }
    Some(rw.mk(Op::Concat(axis), out))
}

fn slice_broadcast(rw: &mut Rewriter, op: &Op, x: &[NodeId]) -> R {
    let Op::Slice(dims) = op else { return None };
    let n = rw.node(x[0]);
    let Op::Broadcast(bto) = &n.op else {
        return None;
    };
    let to: Shape = dims.iter().map(|d| d.len).collect();
    let bto = bto.clone();
    let y = n.inputs[0];
    let ys = rw.g.shape(y).clone();
    let lead = bto.len() - ys.len();
    let padded: Shape = (0..bto.len())
        .map(|i| if i < lead { 1 } else { ys[i - lead] })
        .collect();
    let ydims: Vec<SliceDim> = dims
        .iter()
        .zip(&padded)
        .map(|(d, &p)| {
            if p == 1 {
                SliceDim {
                    start: 0,
                    step: 1,
                    len: 1,
                }
            } else {
                *d
            }
        })
        .collect();
    let y = rw.mk(Op::Reshape(padded), vec![y]);
    let y = rw.mk(Op::Slice(ydims), vec![y]);
    Some(rw.bcast(y, &to))
}

/// The shape left after reducing `axes` of `shape`, and the number of elements reduced.
fn reduced(shape: &[usize], axes: &[usize]) -> (Shape, usize) {
    let out = (0..shape.len())
        .filter(|i| !axes.contains(i))
        .map(|i| shape[i])
        .collect();
    (out, axes.iter().map(|&a| shape[a]).product())
}

fn reduce_uniform(rw: &mut Rewriter, op: &Op, x: &[NodeId]) -> R {
    let Op::Reduce(r, axes) = op else { return None };
    let v = rw.uc(x[0])?;
    let n = rw.node(x[0]);
    let (out, count) = reduced(&n.shape, axes);
    let dt = match (r, n.dtype) {
        (ReduceOp::Sum | ReduceOp::Prod, DType::Bool) => DType::I64,
        (_, t) => t,
    };
    let v = match r {
        ReduceOp::Sum => v * count as f64,
        ReduceOp::Prod => v.powi(count as i32),
        // max/min of nothing has no identity: left for the evaluator to report
        ReduceOp::Max | ReduceOp::Min if count == 0 => return None,
        ReduceOp::Max | ReduceOp::Min => v,
    };
    Some(rw.full(v, &out, dt))
}

/// Reducing only broadcast axes: no reduction at all (a scale for sums).
fn reduce_broadcast(rw: &mut Rewriter, op: &Op, x: &[NodeId]) -> R {
    let Op::Reduce(r, axes) = op else { return None };
    let n = rw.node(x[0]).clone();
    let Op::Broadcast(to) = &n.op else {
        return None;
    };
    // uniform operands belong to reduce-uniform (which refuses empty max/min)
    if *r == ReduceOp::Prod || n.dtype == DType::Bool || rw.uc(x[0]).is_some() {
        return None;
    }
    let (out, count) = reduced(&n.shape, axes);
    let y = n.inputs[0];
    let ys = rw.g.shape(y).clone();
    let lead = to.len() - ys.len();
    let padded = |i: usize| if i < lead { 1 } else { ys[i - lead] };
    if !axes.iter().all(|&a| padded(a) == 1) {
        return None;
    }
    let kept: Shape = (0..to.len())
        .filter(|i| !axes.contains(i))
        .map(padded)
        .collect();
    let y = rw.mk(Op::Reshape(kept), vec![y]);
    let y = rw.bcast(y, &out);
    if *r != ReduceOp::Sum || count == 1 {
        return Some(y);
    }
    let k = rw.full_like(count as f64, y);
    Some(rw.b(B::Mul, y, k))
}

/// `sum(set_slice(zeros, v))` = `set_slice(zeros, sum(v))` over the kept axes: the zeros
/// add nothing (the cotangent of an index into a broadcast, which would otherwise
/// materialize the broadcast's full shape).
fn sum_set_slice_zeros(rw: &mut Rewriter, op: &Op, x: &[NodeId]) -> R {
    let Op::Reduce(ReduceOp::Sum, axes) = op else {
        return None;
    };
    let n = rw.node(x[0]).clone();
    let Op::SetSlice(dims) = &n.op else {
        return None;
    };
    if n.dtype == DType::Bool || !rw.is(n.inputs[0], 0.0) {
        return None;
    }
    let (out, _) = reduced(&n.shape, axes);
    let v = rw.mk(Op::Reduce(ReduceOp::Sum, axes.clone()), vec![n.inputs[1]]);
    let kept: Vec<SliceDim> = (0..n.shape.len())
        .filter(|i| !axes.contains(i))
        .map(|i| dims[i])
        .collect();
    let covers = kept
        .iter()
        .zip(&out)
        .all(|(d, &e)| d.start == 0 && d.step == 1 && d.len == e);
    if covers {
        return Some(v);
    }
    let z = rw.full(0.0, &out, n.dtype);
    Some(rw.mk(Op::SetSlice(kept), vec![z, v]))
}

/// A contraction with a uniform constant operand `c` is a scaled sum of the other:
/// einsum(c, x) = c · Π(extents summed from c alone) · Σ(x over its summed labels),
/// broadcast to the output.
fn contract_uniform(rw: &mut Rewriter, spec: &ContractSpec, a: NodeId, b: NodeId) -> R {
    let (c, x, lc, lx) = if rw.uc(a).is_some() {
        (a, b, &spec.a, &spec.b)
    } else if rw.uc(b).is_some() {
        (b, a, &spec.b, &spec.a)
    } else {
        return None;
    };
    let v = rw.uc(c)?;
    let (cs, xs) = (rw.node(c).shape.clone(), rw.node(x).shape.clone());
    let dt = rw.node(x).dtype;
    let axes: Vec<usize> = (0..lx.len())
        .filter(|&i| !spec.out.contains(&lx[i]))
        .collect();
    let summed = if axes.is_empty() {
        x
    } else {
        rw.mk(Op::Reduce(ReduceOp::Sum, axes), vec![x])
    };
    let kept: Vec<u8> = lx
        .iter()
        .copied()
        .filter(|l| spec.out.contains(l))
        .collect();
    let ext = |l: u8| -> usize {
        lx.iter()
            .position(|&m| m == l)
            .map(|i| xs[i])
            .or_else(|| lc.iter().position(|&m| m == l).map(|i| cs[i]))
            .unwrap_or(1)
    };
    let scale: f64 = lc
        .iter()
        .filter(|l| !lx.contains(l) && !spec.out.contains(l))
        .map(|&l| ext(l) as f64)
        .product::<f64>()
        * v;
    let order: Vec<u8> = spec
        .out
        .iter()
        .copied()
        .filter(|l| kept.contains(l))
        .collect();
    let perm: Vec<usize> = order
        .iter()
        .map(|l| kept.iter().position(|k| k == l).unwrap())
        .collect();
    let t = if perm.iter().enumerate().all(|(i, &p)| i == p) {
        summed
    } else {
        rw.mk(Op::Transpose(perm), vec![summed])
    };
    let with_ones: Shape = spec
        .out
        .iter()
        .map(|&l| if kept.contains(&l) { ext(l) } else { 1 })
        .collect();
    let full: Shape = spec.out.iter().map(|&l| ext(l)).collect();
    let r = if rw.node(t).shape == with_ones {
        t
    } else {
        rw.mk(Op::Reshape(with_ones.clone()), vec![t])
    };
    let r = if with_ones == full {
        r
    } else {
        rw.mk(Op::Broadcast(full.clone()), vec![r])
    };
    if scale == 1.0 {
        return Some(r);
    }
    let k = rw.full(scale, &full, dt);
    Some(rw.b(B::Mul, r, k))
}
