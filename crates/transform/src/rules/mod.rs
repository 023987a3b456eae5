//! One reverse rule and one forward rule per op, dispatched by exhaustive matches.
//!
//! A reverse rule maps the cotangent `ȳ` of a node to one contribution per operand
//! (`None` = zero, or an operand that does not need one: `need[i]` is false for operands
//! that do not depend on the differentiated inputs, and always for int/bool operands).
//! A forward rule maps the operands' tangents (`None` = zero, never all `None`) to the
//! node's tangent (`None` = zero). Both are linear in the (co)tangents.

use autodiff_ir::{Graph, NodeId, Op};

use crate::build::R;
use index::Read;

pub(crate) mod elementwise;
pub(crate) mod index;
pub(crate) mod linalg;
pub(crate) mod loops;
pub(crate) mod reduce;
pub(crate) mod shape;

/// Contributions of node `y`'s cotangent `ct` to its operands.
pub(crate) fn vjp(g: &mut Graph, y: NodeId, ct: NodeId, need: &[bool]) -> R<Vec<Option<NodeId>>> {
    let node = g.node(y).clone();
    let x = &node.inputs[..];
    let one = |r: R<NodeId>| r.map(|c| vec![Some(c)]);
    match &node.op {
        Op::Input(_) | Op::Const(_) => Ok(vec![]),
        Op::Unary(u) => Ok(vec![elementwise::unary_vjp(g, *u, x[0], y, ct)?]),
        Op::Binary(b) => elementwise::binary_vjp(g, *b, x, y, ct, need),
        Op::Where => elementwise::where_vjp(g, x, ct, need),
        Op::Cast(to) => Ok(vec![elementwise::cast_vjp(g, x[0], *to, ct)?]),
        Op::Broadcast(_) => one(shape::broadcast_vjp(g, x[0], ct)),
        Op::Reshape(_) => one(shape::reshape_vjp(g, x[0], ct)),
        Op::Transpose(perm) => one(shape::transpose_vjp(g, perm, ct)),
        Op::Reduce(r, axes) => one(reduce::reduce_vjp(g, *r, axes, x[0], y, ct)),
        // int-valued: no derivative
        Op::ArgMax(..) | Op::ArgSort(_) => Ok(vec![None]),
        Op::Contract(s) => linalg::contract_vjp(g, s, x, ct, need),
        Op::Slice(dims) => one(shape::slice_vjp(g, dims, x[0], ct)),
        Op::SetSlice(dims) => shape::set_slice_vjp(g, dims, x, ct, need),
        Op::Gather(axis) => Ok(vec![
            Some(index::read_vjp(g, Read::Take, *axis, x, ct)?),
            None,
        ]),
        Op::ScatterAdd(axis) => index::scatter_add_vjp(g, Read::Take, *axis, x, ct, need),
        Op::Scatter(axis) => index::scatter_vjp(g, *axis, x, ct, need),
        Op::TakeAlong(axis) => Ok(vec![
            Some(index::read_vjp(g, Read::Along, *axis, x, ct)?),
            None,
        ]),
        Op::ScatterAlongAdd(axis) => index::scatter_add_vjp(g, Read::Along, *axis, x, ct, need),
        Op::Concat(axis) => shape::concat_vjp(g, *axis, x, ct, need),
        Op::Cumsum(axis) => one(reduce::cumsum_vjp(g, *axis, ct)),
        Op::Cumprod(axis) => one(reduce::cumprod_vjp(g, *axis, x[0], ct)),
        Op::Solve => linalg::solve_vjp(g, x, y, ct, need),
        Op::TriSolve(lower) => linalg::tri_solve_vjp(g, *lower, x, y, ct, need),
        Op::Cholesky => one(linalg::cholesky_vjp(g, y, ct)),
        Op::Inv => one(linalg::inv_vjp(g, y, ct)),
        Op::Det => one(linalg::det_vjp(g, x[0], y, ct)),
        Op::LogAbsDet => one(linalg::log_abs_det_vjp(g, x[0], ct)),
        Op::Loop(spec) => loops::loop_vjp(g, spec, x, ct, need),
    }
}

/// The tangent of node `y` from its operands' tangents `t` (not all `None`).
pub(crate) fn jvp(g: &mut Graph, y: NodeId, t: &[Option<NodeId>]) -> R<Option<NodeId>> {
    let node = g.node(y).clone();
    let x = &node.inputs[..];
    // For single-operand ops the caller guarantees the tangent is present.
    let t0 = || t[0].expect("tangent of the only operand");
    let some = |r: R<NodeId>| r.map(Some);
    match &node.op {
        Op::Input(_) | Op::Const(_) => Ok(None),
        Op::Unary(u) => elementwise::unary_jvp(g, *u, x[0], y, t0()),
        Op::Binary(b) => elementwise::binary_jvp(g, *b, x, y, t),
        Op::Where => some(elementwise::where_jvp(g, x, t)),
        Op::Cast(to) => elementwise::cast_jvp(g, x[0], *to, t0()),
        Op::Broadcast(to) => some(shape::broadcast_jvp(g, to, t0())),
        Op::Reshape(to) => some(shape::reshape_jvp(g, to, t0())),
        Op::Transpose(perm) => some(shape::transpose_jvp(g, perm, t0())),
        Op::Reduce(r, axes) => some(reduce::reduce_jvp(g, *r, axes, x[0], y, t0())),
        // int-valued: no derivative
        Op::ArgMax(..) | Op::ArgSort(_) => Ok(None),
        Op::Contract(s) => linalg::contract_jvp(g, s, x, t),
        Op::Slice(dims) => some(shape::slice_jvp(g, dims, t0())),
        Op::SetSlice(dims) => some(shape::set_slice_jvp(g, dims, x, t)),
        Op::Gather(axis) => some(index::read_jvp(g, Read::Take, *axis, x, t0())),
        Op::ScatterAdd(axis) => some(index::scatter_add_jvp(g, Read::Take, *axis, x, t)),
        Op::Scatter(axis) => some(index::scatter_jvp(g, *axis, x, t)),
        Op::TakeAlong(axis) => some(index::read_jvp(g, Read::Along, *axis, x, t0())),
        Op::ScatterAlongAdd(axis) => some(index::scatter_add_jvp(g, Read::Along, *axis, x, t)),
        Op::Concat(axis) => some(shape::concat_jvp(g, *axis, x, t)),
        Op::Cumsum(axis) => some(reduce::cumsum_jvp(g, *axis, t0())),
        Op::Cumprod(axis) => some(reduce::cumprod_jvp(g, *axis, x[0], t0())),
        Op::Solve => some(linalg::solve_jvp(g, x, y, t)),
        Op::TriSolve(lower) => some(linalg::tri_solve_jvp(g, *lower, x, y, t)),
        Op::Cholesky => some(linalg::cholesky_jvp(g, y, t0())),
        Op::Inv => some(linalg::inv_jvp(g, y, t0())),
        Op::Det => some(linalg::det_jvp(g, x[0], y, t0())),
        Op::LogAbsDet => some(linalg::log_abs_det_jvp(g, x[0], t0())),
        Op::Loop(spec) => loops::loop_jvp(g, spec, x, t),
    }
}
