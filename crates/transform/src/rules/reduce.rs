//! Reductions and scans (`Reduce`, `Cumsum`, `Cumprod`; `ArgMax`/`ArgSort` are int-valued
//! and carry no derivative).
//!
//! `prod` and `cumprod` are differentiated without dividing by `x`, so they are exact where
//! elements are zero: `prod` uses left/right exclusive products along the (flattened)
//! reduced axes, O(m); `cumprod` uses the explicit lower-triangular Jacobian
//! `∂y_i/∂x_j = (∏_{k<j} x_k)(∏_{j<k≤i} x_k)` for `j ≤ i`, which costs O(n²) per lane.

use autodiff_ir::{BinaryOp, Graph, NodeId, Op, ReduceOp, Tensor};

use crate::build::{exclusive_cumprod, inverse_perm, reverse, unreduce, R};

// ---- Reduce ----

/// Reverse of `y = reduce(x, axes)`.
pub(crate) fn reduce_vjp(
    g: &mut Graph,
    r: ReduceOp,
    axes: &[usize],
    x: NodeId,
    y: NodeId,
    ct: NodeId,
) -> R<NodeId> {
    let shape = g.shape(x).clone();
    match r {
        // x̄ = broadcast(ȳ)
        ReduceOp::Sum => unreduce(g, ct, axes, &shape),
        // x̄_j = ȳ ∏_{k≠j} x_k
        ReduceOp::Prod => {
            let o = prod_others(g, x, axes)?;
            let c = unreduce(g, ct, axes, &shape)?;
            g.mul(c, o)
        }
        // x̄ = [x = y] ȳ / #{x = y}: ties share the cotangent evenly
        ReduceOp::Max | ReduceOp::Min => {
            let (m, count) = extremum_mask(g, x, y, axes)?;
            let share = g.div(ct, count)?;
            let c = unreduce(g, share, axes, &shape)?;
            g.mul(m, c)
        }
    }
}

/// Forward of `y = reduce(x, axes)`.
pub(crate) fn reduce_jvp(
    g: &mut Graph,
    r: ReduceOp,
    axes: &[usize],
    x: NodeId,
    y: NodeId,
    t: NodeId,
) -> R<NodeId> {
    match r {
        // ẏ = sum(ẋ)
        ReduceOp::Sum => g.sum(t, axes),
        // ẏ = Σ_j ẋ_j ∏_{k≠j} x_k
        ReduceOp::Prod => {
            let o = prod_others(g, x, axes)?;
            let p = g.mul(t, o)?;
            g.sum(p, axes)
        }
        // ẏ = Σ [x = y] ẋ / #{x = y}
        ReduceOp::Max | ReduceOp::Min => {
            let (m, count) = extremum_mask(g, x, y, axes)?;
            let p = g.mul(m, t)?;
            let s = g.sum(p, axes)?;
            g.div(s, count)
        }
    }
}

/// `∏_{k≠j} x_k` over the reduced axes, for every element `j`, without division.
fn prod_others(g: &mut Graph, x: NodeId, axes: &[usize]) -> R<NodeId> {
    let shape = g.shape(x).clone();
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    let perm: Vec<usize> = kept.iter().chain(axes).copied().collect();
    let kept_shape: Vec<usize> = kept.iter().map(|&a| shape[a]).collect();
    let red_shape: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
    let m: usize = red_shape.iter().product();
    let last = kept.len();
    let xt = g.transpose(x, &perm)?;
    let flat = g.reshape(xt, &[kept_shape.clone(), vec![m]].concat())?;
    let left = exclusive_cumprod(g, flat, last)?;
    let rf = reverse(g, flat, last)?;
    let rc = exclusive_cumprod(g, rf, last)?;
    let right = reverse(g, rc, last)?;
    let o = g.mul(left, right)?;
    let o = g.reshape(o, &[kept_shape, red_shape].concat())?;
    g.transpose(o, &inverse_perm(&perm))
}

/// The float mask `[x = y]` of the extremal elements, and their count per result element.
fn extremum_mask(g: &mut Graph, x: NodeId, y: NodeId, axes: &[usize]) -> R<(NodeId, NodeId)> {
    let shape = g.shape(x).clone();
    let yb = unreduce(g, y, axes, &shape)?;
    let eq = g.binary(BinaryOp::Eq, x, yb)?;
    let m = g.cast(eq, g.dtype(x))?;
    let count = g.sum(m, axes)?;
    Ok((m, count))
}

// ---- Cumsum ----

/// Reverse: `x̄_j = Σ_{i≥j} ȳ_i`, a cumsum of the reversed cotangent, reversed.
pub(crate) fn cumsum_vjp(g: &mut Graph, axis: usize, ct: NodeId) -> R<NodeId> {
    let r = reverse(g, ct, axis)?;
    let c = g.add(Op::Cumsum(axis), vec![r])?;
    reverse(g, c, axis)
}

/// Forward: `ẏ = cumsum(ẋ)`.
pub(crate) fn cumsum_jvp(g: &mut Graph, axis: usize, t: NodeId) -> R<NodeId> {
    g.add(Op::Cumsum(axis), vec![t])
}

// ---- Cumprod ----

/// The Jacobian of `y = cumprod(x)` along `axis`, as `(E, K)`: `∂y_i/∂x_j = E_j K[j,i]`
/// with `E_j = ∏_{k<j} x_k` (shape of x) and `K[j,i] = [j≤i] ∏_{j<k≤i} x_k`
/// (x's shape with the axis doubled: `j` at `axis`, `i` at `axis + 1`).
fn cumprod_jacobian(g: &mut Graph, axis: usize, x: NodeId) -> R<(NodeId, NodeId)> {
    let shape = g.shape(x).clone();
    let dt = g.dtype(x);
    let n = shape[axis];
    let rest = vec![1; shape.len() - axis - 1];
    let with = |mid: &[usize]| [&shape[..axis], mid, &shape[axis + 1..]].concat();
    let mask = |g: &mut Graph, f: &dyn Fn(usize, usize) -> bool, dtype| {
        let data = (0..n * n).map(|p| f(p / n, p % n) as u8 as f64).collect();
        let c = g.constant(Tensor::new(dtype, vec![n, n], data));
        g.reshape(c, &[vec![n, n], rest.clone()].concat())
    };
    let big = with(&[n, n]);
    let xr = g.reshape(x, &with(&[1, n]))?;
    let xk = g.broadcast(xr, &big)?;
    let after = mask(g, &|j, k| k > j, autodiff_ir::DType::Bool)?;
    let one = g.scalar(1.0, dt);
    let z = g.select(after, xk, one)?;
    let p = g.add(Op::Cumprod(axis + 1), vec![z])?;
    let tri = mask(g, &|j, i| i >= j, dt)?;
    let k = g.mul(p, tri)?;
    let e = exclusive_cumprod(g, x, axis)?;
    Ok((e, k))
}

/// Reverse: `x̄_j = E_j Σ_{i≥j} K[j,i] ȳ_i` (zero-safe; O(n²) along the axis).
pub(crate) fn cumprod_vjp(g: &mut Graph, axis: usize, x: NodeId, ct: NodeId) -> R<NodeId> {
    let shape = g.shape(x).clone();
    let n = shape[axis];
    let (e, k) = cumprod_jacobian(g, axis, x)?;
    let cr = g.reshape(ct, &[&shape[..axis], &[1, n], &shape[axis + 1..]].concat())?;
    let p = g.mul(k, cr)?;
    let s = g.sum(p, &[axis + 1])?;
    g.mul(e, s)
}

/// Forward: `ẏ_i = Σ_{j≤i} E_j K[j,i] ẋ_j`.
pub(crate) fn cumprod_jvp(g: &mut Graph, axis: usize, x: NodeId, t: NodeId) -> R<NodeId> {
    let shape = g.shape(x).clone();
    let n = shape[axis];
    let (e, k) = cumprod_jacobian(g, axis, x)?;
    let et = g.mul(e, t)?;
    let er = g.reshape(et, &[&shape[..axis], &[n, 1], &shape[axis + 1..]].concat())?;
    let p = g.mul(k, er)?;
    g.sum(p, &[axis])
}
