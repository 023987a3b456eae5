//! The stabilize phase: forms that lose precision or overflow become the functions made for
//! them. Tried before the canonicalize rules (which run in this phase too); each of these
//! rewrites a shape no canonicalize rule of the same op matches, so the order between the
//! two tables never changes a result.

use autodiff_ir::{BinaryOp as B, Graph, NodeId, Op, ReduceOp, Shape, UnaryOp as U};

use super::{rule, rule_for, On, Rewriter, Rule};
use crate::Goal;

/// The stabilize rules, in the order they are tried.
pub(crate) const RULES: &[Rule] = &[
    // log(y + 1) = log1p(y)
    rule("log1p-of-add-one", On::Unary(U::Log), |rw, _, x| {
        let (y, _) = rw.bin_of(x[0], B::Add).filter(|&(_, c)| rw.is(c, 1.0))?;
        Some(rw.u(U::Log1p, y))
    }),
    // log(1 - y) = log1p(-y)
    rule("log1p-of-one-sub", On::Unary(U::Log), |rw, _, x| {
        let (_, y) = rw.bin_of(x[0], B::Sub).filter(|&(c, _)| rw.is(c, 1.0))?;
        let ny = rw.u(U::Neg, y);
        Some(rw.u(U::Log1p, ny))
    }),
    // log σ(y) = -log(1 + e^-y) = -logaddexp(0, -y)
    rule_for(
        Goal::Execute,
        "log-sigmoid",
        On::Unary(U::Log),
        |rw, _, x| {
            let y = rw.un_of(x[0], U::Sigmoid)?;
            let ny = rw.u(U::Neg, y);
            let zero = rw.full_like(0.0, y);
            let s = rw.b(B::LogAddExp, zero, ny);
            Some(rw.u(U::Neg, s))
        },
    ),
    // log Σ e^z = m + log Σ e^(z - m), m = max z (0 where that max is infinite)
    rule_for(
        Goal::Execute,
        "logsumexp-shift",
        On::Unary(U::Log),
        |rw, _, x| logsumexp(rw, x[0]),
    ),
    // e^x + (-1) = expm1(x)
    rule("expm1-of-add", On::Binary(B::Add), |rw, _, x| {
        let e = rw.un_of(x[0], U::Exp).filter(|_| rw.is(x[1], -1.0))?;
        Some(rw.u(U::Expm1, e))
    }),
    // e^x - 1 = expm1(x)
    rule("expm1-of-sub", On::Binary(B::Sub), |rw, _, x| {
        let e = rw.un_of(x[0], U::Exp).filter(|_| rw.is(x[1], 1.0))?;
        Some(rw.u(U::Expm1, e))
    }),
    // 1/(1 + e^z) = σ(-z)
    rule("sigmoid-of-neg", On::Binary(B::Div), |rw, _, x| {
        let z = exp_plus_one(rw, x[1]).filter(|_| rw.is(x[0], 1.0))?;
        let nz = rw.u(U::Neg, z);
        Some(rw.u(U::Sigmoid, nz))
    }),
    // e^z/(e^z + 1) = σ(z)
    rule("sigmoid", On::Binary(B::Div), |rw, _, x| {
        let z = exp_plus_one(rw, x[1])?;
        (rw.with_const(x[1], B::Add)?.0 == x[0]).then(|| rw.u(U::Sigmoid, z))
    }),
];

/// `z` when `id` is `exp(z) + 1`.
fn exp_plus_one(rw: &Rewriter, id: NodeId) -> Option<NodeId> {
    let (e, one) = rw.with_const(id, B::Add)?;
    rw.un_of(e, U::Exp).filter(|_| rw.is(one, 1.0))
}

/// `log(sum(exp(z), axes))` → `m + log(sum(exp(z - m), axes))` with `m` the max of `z`
/// over the axes (0 where that max is infinite, so all `-inf` rows give `-inf`).
fn logsumexp(rw: &mut Rewriter, x: NodeId) -> Option<NodeId> {
    let n = rw.node(x);
    let Op::Reduce(ReduceOp::Sum, axes) = n.op.clone() else {
        return None;
    };
    let z = rw.un_of(n.inputs[0], U::Exp)?;
    if let Some((_, m)) = rw.bin_of(z, B::Sub) {
        let mut m = m;
        while let Op::Broadcast(_) | Op::Reshape(_) = rw.node(m).op {
            m = rw.node(m).inputs[0];
        }
        if matches!(rw.node(m).op, Op::Where) {
            return None; // already shifted
        }
    }
    let zs = rw.node(z).shape.clone();
    let g = &mut rw.g;
    let add = |g: &mut Graph, op: Op, ins: Vec<NodeId>| g.add(op, ins).expect("well-typed");
    let mx = add(g, Op::Reduce(ReduceOp::Max, axes.clone()), vec![z]);
    let ms = g.shape(mx).clone();
    let dt = g.dtype(mx);
    let a = add(g, Op::Unary(U::Abs), vec![mx]);
    let inf = g.full(f64::INFINITY, &ms, dt);
    let fin = add(g, Op::Binary(B::Lt), vec![a, inf]);
    let zero = g.full(0.0, &ms, dt);
    let m = add(g, Op::Where, vec![fin, mx, zero]);
    let keep: Shape = (0..zs.len())
        .map(|i| if axes.contains(&i) { 1 } else { zs[i] })
        .collect();
    let mk = g.reshape(m, &keep).expect("same size");
    let mb = g.broadcast(mk, &zs).expect("keepdims broadcasts back");
    let d = add(g, Op::Binary(B::Sub), vec![z, mb]);
    let e = add(g, Op::Unary(U::Exp), vec![d]);
    let s = add(g, Op::Reduce(ReduceOp::Sum, axes), vec![e]);
    let l = add(g, Op::Unary(U::Log), vec![s]);
    Some(add(g, Op::Binary(B::Add), vec![l, m]))
}
