//! Integer indexing (`Gather` ↔ `ScatterAdd`, `TakeAlong` ↔ `ScatterAlongAdd`, `Scatter`).
//! All are linear in their float operands; index operands carry no derivative. Each gather's
//! adjoint is the matching scatter-add and vice versa.

use autodiff_ir::{BinaryOp, DType, Graph, NodeId, Op, Tensor};

use crate::build::{or_zeros, R};

/// The two index reads and, for each, the scatter-add that is its adjoint:
/// `Take` is `Gather` ↔ `ScatterAdd` (`np.take`), `Along` is `TakeAlong` ↔
/// `ScatterAlongAdd` (`np.take_along_axis`). Their rules are the same up to the op.
#[derive(Clone, Copy)]
pub(crate) enum Read {
    Take,
    Along,
}

impl Read {
    fn read(self, axis: usize) -> Op {
        match self {
            Read::Take => Op::Gather(axis),
            Read::Along => Op::TakeAlong(axis),
        }
    }

    fn scatter_add(self, axis: usize) -> Op {
        match self {
            Read::Take => Op::ScatterAdd(axis),
            Read::Along => Op::ScatterAlongAdd(axis),
        }
    }
}

// ---- reads: y = read(x, idx) ----

/// Reverse: `x̄ = scatter_add(0, idx, ȳ)` (repeated indices accumulate).
pub(crate) fn read_vjp(g: &mut Graph, r: Read, axis: usize, x: &[NodeId], ct: NodeId) -> R<NodeId> {
    let z = g.zeros_like(x[0]);
    g.add(r.scatter_add(axis), vec![z, x[1], ct])
}

/// Forward: `ẏ = read(ẋ, idx)`.
pub(crate) fn read_jvp(g: &mut Graph, r: Read, axis: usize, x: &[NodeId], t: NodeId) -> R<NodeId> {
    g.add(r.read(axis), vec![t, x[1]])
}

// ---- scatter-adds: y = x + scatter(idx, v) ----

/// Reverse: `x̄ = ȳ`, `v̄ = read(ȳ, idx)`.
pub(crate) fn scatter_add_vjp(
    g: &mut Graph,
    r: Read,
    axis: usize,
    x: &[NodeId],
    ct: NodeId,
    need: &[bool],
) -> R<Vec<Option<NodeId>>> {
    let vb = if need[2] {
        Some(g.add(r.read(axis), vec![ct, x[1]])?)
    } else {
        None
    };
    Ok(vec![need[0].then_some(ct), None, vb])
}

/// Forward: `ẏ = scatter_add(ẋ, idx, v̇)`.
pub(crate) fn scatter_add_jvp(
    g: &mut Graph,
    r: Read,
    axis: usize,
    x: &[NodeId],
    t: &[Option<NodeId>],
) -> R<NodeId> {
    let tx = or_zeros(g, t[0], x[0]);
    let tv = or_zeros(g, t[2], x[2]);
    g.add(r.scatter_add(axis), vec![tx, x[1], tv])
}

// ---- Scatter: y = x with y[idx] = v (last write wins) ----

/// Reverse: `x̄ = scatter(ȳ, idx, 0)` (overwritten positions get nothing);
/// `v̄ = take(ȳ, idx)` on the writes that won, 0 on writes overwritten by a later repeat.
pub(crate) fn scatter_vjp(
    g: &mut Graph,
    axis: usize,
    x: &[NodeId],
    ct: NodeId,
    need: &[bool],
) -> R<Vec<Option<NodeId>>> {
    let xb = if need[0] {
        let z = g.zeros_like(x[2]);
        Some(g.add(Op::Scatter(axis), vec![ct, x[1], z])?)
    } else {
        None
    };
    let vb = if need[2] {
        let won = winning_writes(g, axis, x)?;
        let gb = g.add(Op::Gather(axis), vec![ct, x[1]])?;
        let z = g.zeros_like(gb);
        Some(g.select(won, gb, z)?)
    } else {
        None
    };
    Ok(vec![xb, None, vb])
}

/// Forward: `ẏ = scatter(ẋ, idx, v̇)` (the same writes win).
pub(crate) fn scatter_jvp(
    g: &mut Graph,
    axis: usize,
    x: &[NodeId],
    t: &[Option<NodeId>],
) -> R<NodeId> {
    let tx = or_zeros(g, t[0], x[0]);
    let tv = or_zeros(g, t[2], x[2]);
    g.add(Op::Scatter(axis), vec![tx, x[1], tv])
}

/// A bool mask of `v`'s shape: true where that element of `v` is the one that ends up in
/// the result (found by scattering each write's serial number and reading it back).
fn winning_writes(g: &mut Graph, axis: usize, x: &[NodeId]) -> R<NodeId> {
    let (xs, is, vs) = (
        g.shape(x[0]).clone(),
        g.shape(x[1]).clone(),
        g.shape(x[2]).clone(),
    );
    let m: usize = is.iter().product();
    let ids = g.constant(Tensor::new(
        DType::I64,
        is.clone(),
        (0..m).map(|i| i as f64).collect(),
    ));
    let keep = [vec![1; axis], is, vec![1; xs.len() - axis - 1]].concat();
    let ids = g.reshape(ids, &keep)?;
    let ids = g.broadcast(ids, &vs)?;
    let none = g.full(-1.0, &xs, DType::I64);
    let w = g.add(Op::Scatter(axis), vec![none, x[1], ids])?;
    let back = g.add(Op::Gather(axis), vec![w, x[1]])?;
    g.binary(BinaryOp::Eq, back, ids)
}
