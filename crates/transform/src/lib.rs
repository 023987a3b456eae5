//! Graph-to-graph derivatives of the pyautodiff IR: reverse mode ([`vjp`], [`grad`]),
//! forward mode ([`jvp`]) and their composition ([`hvp`]).
//!
//! Guarantees:
//! - Every transform *appends* nodes to the given graph (hash-consed, so shared
//!   subexpressions are reused) and returns the new nodes; nothing existing is changed.
//!   The results are ordinary nodes, so transforms compose: grad of grad, jvp of grad.
//! - Every op has one reverse rule and one forward rule, side by side in `src/rules/`
//!   (`elementwise`, `shape`, `reduce`, `index`, `linalg`, `loops`), dispatched by exhaustive matches
//!   on `Op`; each rule is linear in the (co)tangent and the pair are adjoint:
//!   `<ȳ, J ẋ> = <Jᵀ ȳ, ẋ>`. The rules only use ops of the IR, so their results can be
//!   differentiated again.
//! - Only float values carry derivatives. Int/bool nodes (comparisons, argmax, argsort,
//!   indices, casts to int) contribute nothing; a cast between float types passes the
//!   derivative through (cast back in reverse mode). Differentiating with respect to an
//!   int/bool node is an error.
//! - A `wrt` node the outputs do not depend on gets explicit zeros of its shape and dtype.
//!   Each `wrt` node is an independent variable: when one `wrt` node depends on another,
//!   paths through the downstream one are not followed to the upstream one.
//! - Nondifferentiable points follow JAX: `abs'(0) = 0`, ties of `maximum`/`minimum` split
//!   0.5/0.5, ties of max/min reductions share evenly, `sqrt'(0) = inf`, `floor`/`ceil`/
//!   `round`/`sign`/`floordiv` have zero derivative, `d/db a^b = 0` where `a = 0`.
//! - `prod` and `cumprod` are differentiated without dividing by the operand (exact at
//!   zeros); `Det`/`Inv`/`Solve` need a nonsingular matrix; `Cholesky` is differentiated as a
//!   function of the symmetric part of its operand; a `TriSolve`'s matrix gets a derivative
//!   in its read triangle only. `digamma` (the derivative of `gammaln`) has no derivative
//!   here: that is an error (polygamma is not in the IR).
//! - A loop node is differentiated and batched by new loop nodes (`rules/loops.rs`):
//!   reverse mode stores the carries of every iteration (memory O(trips × carry size)) and
//!   runs the body's vjp backward; forward mode carries the tangents beside the carries;
//!   vmap batches the body. No loop is unrolled. `autodiff_ir::loops::segment_loops`
//!   applied before differentiating makes reverse mode store O(√trips) carries instead.

mod batch;
mod build;
mod magnitude;
mod rules;
mod sweep;

use autodiff_ir::{err, Graph, IrError, NodeId};

pub use batch::vmap;
pub use magnitude::magnitude;

/// Reverse mode: nodes computing the vector-Jacobian product
/// `Σ_i <cot_i, ∂out_i/∂wrt_j>` for each `j`. Each cotangent has its output's shape and
/// dtype; int/bool outputs contribute nothing.
pub fn vjp(
    g: &mut Graph,
    outputs: &[NodeId],
    cotangents: &[NodeId],
    wrt: &[NodeId],
) -> Result<Vec<NodeId>, IrError> {
    sweep::vjp(g, outputs, cotangents, wrt)
}

/// Gradient of a 0-d float output with respect to each `wrt` node.
pub fn grad(g: &mut Graph, output: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>, IrError> {
    if output.index() >= g.len() {
        return err(format!(
            "gradient of node {} which does not exist",
            output.0
        ));
    }
    let (shape, dtype) = (g.shape(output).clone(), g.dtype(output));
    if !shape.is_empty() {
        return err(format!(
            "gradient needs a scalar output, got shape {shape:?}; use jacobian"
        ));
    }
    if !dtype.is_float() {
        return err(format!("gradient needs a float output, got {dtype}"));
    }
    let one = g.scalar(1.0, dtype);
    vjp(g, &[output], &[one], wrt)
}

/// Forward mode: tangents of `outputs` given tangents of `wrt` (a tangent has its primal's
/// shape and dtype). Outputs that do not depend on `wrt` get explicit zeros.
pub fn jvp(
    g: &mut Graph,
    outputs: &[NodeId],
    wrt: &[NodeId],
    tangents: &[NodeId],
) -> Result<Vec<NodeId>, IrError> {
    sweep::jvp(g, outputs, wrt, tangents)
}

/// Hessian-vector product of a scalar output: forward-over-reverse, `jvp(grad)`.
/// Returns `Σ_k ∂²out/∂wrt_j∂wrt_k · vectors_k` for each `j`.
pub fn hvp(
    g: &mut Graph,
    output: NodeId,
    wrt: &[NodeId],
    vectors: &[NodeId],
) -> Result<Vec<NodeId>, IrError> {
    let gs = grad(g, output, wrt)?;
    jvp(g, &gs, wrt, vectors)
}

/// The Jacobian of `output` with respect to `wrt`, shaped `output.shape + wrt.shape`.
/// Reverse mode (`forward == false`) builds one vjp per output element; forward mode one
/// jvp per element of `wrt` (pick the smaller count). Both share the primal subgraph.
pub fn jacobian(
    g: &mut Graph,
    output: NodeId,
    wrt: NodeId,
    forward: bool,
) -> Result<NodeId, IrError> {
    let (so, sw) = (g.shape(output).clone(), g.shape(wrt).clone());
    let (m, n) = (g.node(output).size(), g.node(wrt).size());
    let (dto, dtw) = (g.dtype(output), g.dtype(wrt));
    if !dto.is_float() || !dtw.is_float() {
        return err("jacobian needs float outputs and inputs");
    }
    let one_hot = |g: &mut Graph, shape: &[usize], size: usize, i: usize, dt| {
        let mut data = vec![0.0; size];
        data[i] = 1.0;
        g.constant(autodiff_ir::Tensor::new(dt, shape.to_vec(), data))
    };
    let mut full: Vec<usize> = so.clone();
    full.extend(&sw);
    if m == 0 || n == 0 {
        return Ok(g.full(0.0, &full, dtw));
    }
    let mut parts = vec![];
    if forward {
        for j in 0..n {
            let t = one_hot(g, &sw, n, j, dtw);
            let d = jvp(g, &[output], &[wrt], &[t])?[0];
            parts.push(g.reshape(d, &[m, 1])?);
        }
        let cat = g.add(autodiff_ir::Op::Concat(1), parts)?;
        g.reshape(cat, &full)
    } else {
        for i in 0..m {
            let c = one_hot(g, &so, m, i, dto);
            let d = vjp(g, &[output], &[c], &[wrt])?[0];
            parts.push(g.reshape(d, &[1, n])?);
        }
        let cat = g.add(autodiff_ir::Op::Concat(0), parts)?;
        g.reshape(cat, &full)
    }
}
