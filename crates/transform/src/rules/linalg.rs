//! Contraction and linear algebra (`Contract`, `Solve`, `TriSolve`, `Inv`, `Det`,
//! `LogAbsDet`, `Cholesky`): the standard matrix-calculus results (Giles 2008, Murray 2016).
//!
//! `Contract` is closed under differentiation: the adjoint of one operand is again a
//! two-operand contraction (of the cotangent with the other operand), valid by the spec's
//! invariants (every label of an operand is in the other operand or the output).
//! `TriSolve` reads one triangle of `a`, so `ā` is that triangle. `Cholesky` treats its
//! operand as symmetric: derivatives are those of `chol((A + Aᵀ)/2)` (symmetric `Ā`).
//! `Det` and `Inv` rules need `A` invertible.

use autodiff_ir::{ContractSpec, Graph, NodeId, Op};

use crate::build::{add_opt, mt, tri_const, triangle, R};

// ---- Contract: y = einsum(spec, a, b) ----

/// Reverse: `ā = einsum(out,b->a)(ȳ, b)`, `b̄ = einsum(a,out->b)(a, ȳ)`.
pub(crate) fn contract_vjp(
    g: &mut Graph,
    s: &ContractSpec,
    x: &[NodeId],
    ct: NodeId,
    need: &[bool],
) -> R<Vec<Option<NodeId>>> {
    let ab = if need[0] {
        let spec = ContractSpec {
            a: s.out.clone(),
            b: s.b.clone(),
            out: s.a.clone(),
        };
        Some(g.add(Op::Contract(spec), vec![ct, x[1]])?)
    } else {
        None
    };
    let bb = if need[1] {
        let spec = ContractSpec {
            a: s.a.clone(),
            b: s.out.clone(),
            out: s.b.clone(),
        };
        Some(g.add(Op::Contract(spec), vec![x[0], ct])?)
    } else {
        None
    };
    Ok(vec![ab, bb])
}

/// Forward (bilinear): `ẏ = einsum(ȧ, b) + einsum(a, ḃ)`.
pub(crate) fn contract_jvp(
    g: &mut Graph,
    s: &ContractSpec,
    x: &[NodeId],
    t: &[Option<NodeId>],
) -> R<Option<NodeId>> {
    let ta = match t[0] {
        Some(ta) => Some(g.add(Op::Contract(s.clone()), vec![ta, x[1]])?),
        None => None,
    };
    let tb = match t[1] {
        Some(tb) => Some(g.add(Op::Contract(s.clone()), vec![x[0], tb])?),
        None => None,
    };
    add_opt(g, ta, tb)
}

// ---- Solve: X = A⁻¹ B ----

/// Reverse: `B̄ = A⁻ᵀ X̄`, `Ā = -B̄ Xᵀ`.
pub(crate) fn solve_vjp(
    g: &mut Graph,
    x: &[NodeId],
    y: NodeId,
    ct: NodeId,
    need: &[bool],
) -> R<Vec<Option<NodeId>>> {
    let at = mt(g, x[0])?;
    let bb = g.add(Op::Solve, vec![at, ct])?;
    let ab = if need[0] {
        Some(neg_outer(g, bb, y)?)
    } else {
        None
    };
    Ok(vec![ab, need[1].then_some(bb)])
}

/// Forward: `Ẋ = A⁻¹ (Ḃ - Ȧ X)`.
pub(crate) fn solve_jvp(g: &mut Graph, x: &[NodeId], y: NodeId, t: &[Option<NodeId>]) -> R<NodeId> {
    let rhs = solve_rhs_tangent(g, t[0], t[1], y)?;
    g.add(Op::Solve, vec![x[0], rhs])
}

/// `-B̄ Xᵀ`.
fn neg_outer(g: &mut Graph, bb: NodeId, y: NodeId) -> R<NodeId> {
    let yt = mt(g, y)?;
    let p = g.matmul(bb, yt)?;
    g.neg(p)
}

/// `Ḃ - Ȧ X` with missing tangents as zero (at least one is present).
fn solve_rhs_tangent(
    g: &mut Graph,
    ta: Option<NodeId>,
    tb: Option<NodeId>,
    y: NodeId,
) -> R<NodeId> {
    let ax = match ta {
        Some(ta) => {
            let p = g.matmul(ta, y)?;
            Some(g.neg(p)?)
        }
        None => None,
    };
    Ok(add_opt(g, tb, ax)?.expect("a tangent is present"))
}

// ---- TriSolve: X = A⁻¹ B, A triangular (only its triangle is read) ----

/// Reverse: `B̄ = A⁻ᵀ X̄` (Aᵀ has the other triangle), `Ā = tri(-B̄ Xᵀ)`.
pub(crate) fn tri_solve_vjp(
    g: &mut Graph,
    lower: bool,
    x: &[NodeId],
    y: NodeId,
    ct: NodeId,
    need: &[bool],
) -> R<Vec<Option<NodeId>>> {
    let at = mt(g, x[0])?;
    let bb = g.add(Op::TriSolve(!lower), vec![at, ct])?;
    let ab = if need[0] {
        let o = neg_outer(g, bb, y)?;
        Some(triangle(g, o, lower)?)
    } else {
        None
    };
    Ok(vec![ab, need[1].then_some(bb)])
}

/// Forward: `Ẋ = A⁻¹ (Ḃ - tri(Ȧ) X)`.
pub(crate) fn tri_solve_jvp(
    g: &mut Graph,
    lower: bool,
    x: &[NodeId],
    y: NodeId,
    t: &[Option<NodeId>],
) -> R<NodeId> {
    let ta = match t[0] {
        Some(ta) => Some(triangle(g, ta, lower)?),
        None => None,
    };
    let rhs = solve_rhs_tangent(g, ta, t[1], y)?;
    g.add(Op::TriSolve(lower), vec![x[0], rhs])
}

// ---- Inv: Y = A⁻¹ ----

/// Reverse: `Ā = -Yᵀ Ȳ Yᵀ`.
pub(crate) fn inv_vjp(g: &mut Graph, y: NodeId, ct: NodeId) -> R<NodeId> {
    let yt = mt(g, y)?;
    let p = g.matmul(yt, ct)?;
    let p = g.matmul(p, yt)?;
    g.neg(p)
}

/// Forward: `Ẏ = -Y Ȧ Y`.
pub(crate) fn inv_jvp(g: &mut Graph, y: NodeId, t: NodeId) -> R<NodeId> {
    let p = g.matmul(y, t)?;
    let p = g.matmul(p, y)?;
    g.neg(p)
}

// ---- Det: y = det A ----

/// Reverse: `Ā = ȳ det(A) A⁻ᵀ`.
pub(crate) fn det_vjp(g: &mut Graph, a: NodeId, y: NodeId, ct: NodeId) -> R<NodeId> {
    let s = g.mul(ct, y)?;
    let it = inv_t(g, a)?;
    g.mul(s, it)
}

/// Forward: `ẏ = det(A) tr(A⁻¹ Ȧ)`.
pub(crate) fn det_jvp(g: &mut Graph, a: NodeId, y: NodeId, t: NodeId) -> R<NodeId> {
    let tr = trace_inv_times(g, a, t)?;
    g.mul(y, tr)
}

fn inv_t(g: &mut Graph, a: NodeId) -> R<NodeId> {
    let i = g.add(Op::Inv, vec![a])?;
    mt(g, i)
}

/// `tr(A⁻¹ T) = Σ_ij (A⁻¹)_ij T_ji`.
fn trace_inv_times(g: &mut Graph, a: NodeId, t: NodeId) -> R<NodeId> {
    let i = g.add(Op::Inv, vec![a])?;
    g.contract("ij,ji->", i, t)
}

// ---- LogAbsDet: y = log |det A| ----

/// Reverse: `Ā = ȳ A⁻ᵀ`.
pub(crate) fn log_abs_det_vjp(g: &mut Graph, a: NodeId, ct: NodeId) -> R<NodeId> {
    let it = inv_t(g, a)?;
    g.mul(ct, it)
}

/// Forward: `ẏ = tr(A⁻¹ Ȧ)`.
pub(crate) fn log_abs_det_jvp(g: &mut Graph, a: NodeId, t: NodeId) -> R<NodeId> {
    trace_inv_times(g, a, t)
}

// ---- Cholesky: L = chol(A), A = L Lᵀ ----

/// `Φ(M)`: the lower triangle of `M` with its diagonal halved.
fn phi(g: &mut Graph, m: NodeId) -> R<NodeId> {
    let n = g.shape(m)[0];
    let mask = tri_const(g, n, 1.0, 0.5, 0.0, g.dtype(m));
    g.mul(m, mask)
}

/// `(M + Mᵀ)/2`.
fn sym(g: &mut Graph, m: NodeId) -> R<NodeId> {
    let t = mt(g, m)?;
    let s = g.add_(m, t)?;
    g.scale(s, 0.5)
}

/// Reverse: `S = L⁻ᵀ Φ(Lᵀ L̄) L⁻¹`, `Ā = (S + Sᵀ)/2`.
pub(crate) fn cholesky_vjp(g: &mut Graph, l: NodeId, ct: NodeId) -> R<NodeId> {
    let lt = mt(g, l)?;
    let p = g.matmul(lt, ct)?;
    let p = phi(g, p)?;
    let q = g.add(Op::TriSolve(false), vec![lt, p])?; // L⁻ᵀ P
    let qt = mt(g, q)?;
    let s = g.add(Op::TriSolve(false), vec![lt, qt])?; // L⁻ᵀ Qᵀ = (Q L⁻¹)ᵀ
    let s = mt(g, s)?;
    sym(g, s)
}

/// Forward: `L̇ = L Φ(L⁻¹ sym(Ȧ) L⁻ᵀ)`.
pub(crate) fn cholesky_jvp(g: &mut Graph, l: NodeId, t: NodeId) -> R<NodeId> {
    let s = sym(g, t)?;
    let m1 = g.add(Op::TriSolve(true), vec![l, s])?; // L⁻¹ S
    let m1t = mt(g, m1)?; // S L⁻ᵀ
    let m2 = g.add(Op::TriSolve(true), vec![l, m1t])?; // L⁻¹ S L⁻ᵀ
    let p = phi(g, m2)?;
    g.matmul(l, p)
}
