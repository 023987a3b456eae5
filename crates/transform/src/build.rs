//! Small graph builders the rules share (kept here so the IR crate stays minimal).

use autodiff_ir::{DType, Graph, IrError, NodeId, Op, SliceDim, Tensor};

pub(crate) type R<T> = Result<T, IrError>;

/// A constant of `shape` filled with `v`, of `dtype`.
pub(crate) fn full(g: &mut Graph, v: f64, shape: &[usize], dtype: DType) -> NodeId {
    g.full(v, shape, dtype)
}

/// `a + b` where `None` stands for zero.
pub(crate) fn add_opt(g: &mut Graph, a: Option<NodeId>, b: Option<NodeId>) -> R<Option<NodeId>> {
    Ok(match (a, b) {
        (Some(a), Some(b)) => match crate::rules::elementwise::add_masked(g, a, b)? {
            Some(s) => Some(s),
            None => Some(g.add_(a, b)?),
        },
        (a, None) => a,
        (None, b) => b,
    })
}

/// The tangent or cotangent `t`, or explicit zeros shaped like `like`.
pub(crate) fn or_zeros(g: &mut Graph, t: Option<NodeId>, like: NodeId) -> NodeId {
    t.unwrap_or_else(|| g.zeros_like(like))
}

/// The shape of `x` with the reduced `axes` kept as extent 1 (NumPy's keepdims).
pub(crate) fn keepdims_shape(in_shape: &[usize], axes: &[usize]) -> Vec<usize> {
    in_shape
        .iter()
        .enumerate()
        .map(|(i, &n)| if axes.contains(&i) { 1 } else { n })
        .collect()
}

/// Broadcasts a reduction result `y` (axes removed) back to the operand's shape.
pub(crate) fn unreduce(g: &mut Graph, y: NodeId, axes: &[usize], in_shape: &[usize]) -> R<NodeId> {
    let k = g.reshape(y, &keepdims_shape(in_shape, axes))?;
    g.broadcast(k, in_shape)
}

/// The whole extent of every axis, as slice dims.
pub(crate) fn full_dims(shape: &[usize]) -> Vec<SliceDim> {
    shape
        .iter()
        .map(|&n| SliceDim {
            start: 0,
            step: 1,
            len: n,
        })
        .collect()
}

/// `x[..., start:start+len, ...]` along `axis`.
pub(crate) fn slice_axis(
    g: &mut Graph,
    x: NodeId,
    axis: usize,
    start: usize,
    len: usize,
) -> R<NodeId> {
    let mut dims = full_dims(g.shape(x));
    dims[axis] = SliceDim {
        start,
        step: 1,
        len,
    };
    g.slice(x, dims)
}

/// `x` reversed along `axis` (a slice with step -1).
pub(crate) fn reverse(g: &mut Graph, x: NodeId, axis: usize) -> R<NodeId> {
    let n = g.shape(x)[axis];
    if n <= 1 {
        return Ok(x);
    }
    let mut dims = full_dims(g.shape(x));
    dims[axis] = SliceDim {
        start: n - 1,
        step: -1,
        len: n,
    };
    g.slice(x, dims)
}

/// Exclusive running product along `axis`: `[1, x0, x0 x1, ...]` (no division, zero-safe).
pub(crate) fn exclusive_cumprod(g: &mut Graph, x: NodeId, axis: usize) -> R<NodeId> {
    let shape = g.shape(x).clone();
    let n = shape[axis];
    let mut one_shape = shape.clone();
    one_shape[axis] = n.min(1);
    let ones = full(g, 1.0, &one_shape, g.dtype(x));
    if n <= 1 {
        return Ok(ones);
    }
    let c = g.add(Op::Cumprod(axis), vec![x])?;
    let head = slice_axis(g, c, axis, 0, n - 1)?;
    g.add(Op::Concat(axis), vec![ones, head])
}

/// The matrix transpose of a 2-d node.
pub(crate) fn mt(g: &mut Graph, x: NodeId) -> R<NodeId> {
    g.transpose(x, &[1, 0])
}

/// A constant `n x n` matrix: `diag` on the diagonal, `below` strictly below it, `above`
/// strictly above it.
pub(crate) fn tri_const(
    g: &mut Graph,
    n: usize,
    below: f64,
    diag: f64,
    above: f64,
    dtype: DType,
) -> NodeId {
    let mut data = Vec::with_capacity(n * n);
    for i in 0..n {
        for j in 0..n {
            data.push(match i.cmp(&j) {
                std::cmp::Ordering::Greater => below,
                std::cmp::Ordering::Equal => diag,
                std::cmp::Ordering::Less => above,
            });
        }
    }
    g.constant(Tensor::new(dtype, vec![n, n], data))
}

/// The triangle of `x` that a triangular solve reads (`lower` or upper, diagonal included).
pub(crate) fn triangle(g: &mut Graph, x: NodeId, lower: bool) -> R<NodeId> {
    let n = g.shape(x)[0];
    let (lo, up) = if lower { (1.0, 0.0) } else { (0.0, 1.0) };
    let m = tri_const(g, n, lo, 1.0, up, g.dtype(x));
    g.mul(x, m)
}

/// The inverse of a permutation.
pub(crate) fn inverse_perm(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}
