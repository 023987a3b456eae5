//! Shape ops (`Broadcast`, `Reshape`, `Transpose`, `Slice`, `SetSlice`, `Concat`).
//! All are linear, so the forward rule applies the op to the tangent and the reverse rule
//! is the adjoint (transpose) of that linear map.

use autodiff_ir::{Graph, NodeId, Op, SliceDim};

use crate::build::{inverse_perm, or_zeros, slice_axis, R};

// ---- Broadcast: y = broadcast(x, S) ----

/// Reverse: the adjoint of broadcasting is summing over the broadcast axes, `x̄ = sum_to(ȳ)`.
pub(crate) fn broadcast_vjp(g: &mut Graph, x: NodeId, ct: NodeId) -> R<NodeId> {
    let s = g.shape(x).clone();
    g.sum_to(ct, &s)
}

/// Forward: `ẏ = broadcast(ẋ, S)`.
pub(crate) fn broadcast_jvp(g: &mut Graph, to: &[usize], t: NodeId) -> R<NodeId> {
    g.broadcast(t, to)
}

// ---- Reshape ----

/// Reverse: `x̄ = reshape(ȳ, shape x)`.
pub(crate) fn reshape_vjp(g: &mut Graph, x: NodeId, ct: NodeId) -> R<NodeId> {
    let s = g.shape(x).clone();
    g.reshape(ct, &s)
}

/// Forward: `ẏ = reshape(ẋ, S)`.
pub(crate) fn reshape_jvp(g: &mut Graph, to: &[usize], t: NodeId) -> R<NodeId> {
    g.reshape(t, to)
}

// ---- Transpose ----

/// Reverse: `x̄ = transpose(ȳ, perm⁻¹)`.
pub(crate) fn transpose_vjp(g: &mut Graph, perm: &[usize], ct: NodeId) -> R<NodeId> {
    g.transpose(ct, &inverse_perm(perm))
}

/// Forward: `ẏ = transpose(ẋ, perm)`.
pub(crate) fn transpose_jvp(g: &mut Graph, perm: &[usize], t: NodeId) -> R<NodeId> {
    g.transpose(t, perm)
}

// ---- Slice: y = x[dims] ----

/// Reverse: `x̄ = set_slice(0, dims, ȳ)` (zeros off the slice).
pub(crate) fn slice_vjp(g: &mut Graph, dims: &[SliceDim], x: NodeId, ct: NodeId) -> R<NodeId> {
    let z = g.zeros_like(x);
    g.add(Op::SetSlice(dims.to_vec()), vec![z, ct])
}

/// Forward: `ẏ = ẋ[dims]`.
pub(crate) fn slice_jvp(g: &mut Graph, dims: &[SliceDim], t: NodeId) -> R<NodeId> {
    g.slice(t, dims.to_vec())
}

// ---- SetSlice: y = x with x[dims] = v ----

/// Reverse: `x̄ = set_slice(ȳ, dims, 0)` (the overwritten part gets nothing), `v̄ = ȳ[dims]`.
pub(crate) fn set_slice_vjp(
    g: &mut Graph,
    dims: &[SliceDim],
    x: &[NodeId],
    ct: NodeId,
    need: &[bool],
) -> R<Vec<Option<NodeId>>> {
    let xb = if need[0] {
        let z = g.zeros_like(x[1]);
        Some(g.add(Op::SetSlice(dims.to_vec()), vec![ct, z])?)
    } else {
        None
    };
    let vb = if need[1] {
        Some(g.slice(ct, dims.to_vec())?)
    } else {
        None
    };
    Ok(vec![xb, vb])
}

/// Forward: `ẏ = set_slice(ẋ, dims, v̇)`.
pub(crate) fn set_slice_jvp(
    g: &mut Graph,
    dims: &[SliceDim],
    x: &[NodeId],
    t: &[Option<NodeId>],
) -> R<NodeId> {
    let tx = or_zeros(g, t[0], x[0]);
    let tv = or_zeros(g, t[1], x[1]);
    g.add(Op::SetSlice(dims.to_vec()), vec![tx, tv])
}

// ---- Concat along an axis ----

/// Reverse: each operand gets its slab of `ȳ`.
pub(crate) fn concat_vjp(
    g: &mut Graph,
    axis: usize,
    x: &[NodeId],
    ct: NodeId,
    need: &[bool],
) -> R<Vec<Option<NodeId>>> {
    let mut off = 0;
    let mut out = Vec::with_capacity(x.len());
    for (i, &xi) in x.iter().enumerate() {
        let len = g.shape(xi)[axis];
        out.push(if need[i] {
            Some(slice_axis(g, ct, axis, off, len)?)
        } else {
            None
        });
        off += len;
    }
    Ok(out)
}

/// Forward: `ẏ = concat(ẋ1, ..., ẋn)` (zeros for operands without a tangent).
pub(crate) fn concat_jvp(
    g: &mut Graph,
    axis: usize,
    x: &[NodeId],
    t: &[Option<NodeId>],
) -> R<NodeId> {
    let ts = x
        .iter()
        .zip(t)
        .map(|(&xi, &ti)| or_zeros(g, ti, xi))
        .collect();
    g.add(Op::Concat(axis), ts)
}
