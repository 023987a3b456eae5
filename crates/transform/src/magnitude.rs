//! The magnitude bound of a computation: the graph rewritten so that each float result is
//! an estimate of the size of the terms it sums, not of their (possibly cancelling) sum.
//! Used to size the tolerance of checks that compare our values with NumPy's: two ways of
//! summing the same terms differ by about `ε·√n·Σ|tᵢ|`, which can dwarf `|Σtᵢ|`.
//!
//! Guarantees: the rewritten nodes are appended (nothing existing changes); only float
//! nodes are rewritten; int and bool nodes (indices, comparisons, casts to int) keep their
//! original operands, so indexing and control data are the original ones; the result has
//! the original outputs' shapes and dtypes.

use autodiff_ir::{BinaryOp, Graph, IrError, NodeId, Op, ReduceOp, UnaryOp};

/// Appends the magnitude form of `outs` to `g` and returns its nodes (one per output).
/// Rules (float nodes): `Σ x → Σ |x|`, `a ± b → |a| + |b|`, `-x → |x|`, products and
/// contractions of `|a|`, `|b|`, running sums of `|x|`; every other op is applied to the
/// rewritten operands.
pub fn magnitude(g: &mut Graph, outs: &[NodeId]) -> Result<Vec<NodeId>, IrError> {
    let n = g.len();
    let mut m: Vec<NodeId> = (0..n as u32).map(NodeId).collect();
    for i in 0..n {
        let node = g.node(NodeId(i as u32)).clone();
        if !node.dtype.is_float() {
            continue; // ints and bools keep their operands (indices, conditions)
        }
        let ins: Vec<NodeId> = node.inputs.iter().map(|x| m[x.index()]).collect();
        let abs = |g: &mut Graph, x: NodeId| -> Result<NodeId, IrError> {
            if g.dtype(x).is_float() {
                g.unary(UnaryOp::Abs, x)
            } else {
                Ok(x)
            }
        };
        let new = match &node.op {
            Op::Input(_) | Op::Const(_) => continue,
            // Σ x, Σ x / n → Σ |x|
            Op::Reduce(ReduceOp::Sum, axes) => {
                let a = abs(g, ins[0])?;
                g.add(Op::Reduce(ReduceOp::Sum, axes.clone()), vec![a])?
            }
            // a ± b → |a| + |b|
            Op::Binary(BinaryOp::Add | BinaryOp::Sub) => {
                let (a, b) = (abs(g, ins[0])?, abs(g, ins[1])?);
                g.add(Op::Binary(BinaryOp::Add), vec![a, b])?
            }
            // -x → |x|
            Op::Unary(UnaryOp::Neg) => abs(g, ins[0])?,
            // Σ a·b → Σ |a|·|b|
            Op::Contract(spec) => {
                let (a, b) = (abs(g, ins[0])?, abs(g, ins[1])?);
                g.add(Op::Contract(spec.clone()), vec![a, b])?
            }
            // running sums of |x|
            Op::Cumsum(axis) => {
                let a = abs(g, ins[0])?;
                g.add(Op::Cumsum(*axis), vec![a])?
            }
            // scattered additions accumulate magnitudes
            Op::ScatterAdd(_) | Op::ScatterAlongAdd(_) => {
                let (x, v) = (abs(g, ins[0])?, abs(g, ins[2])?);
                g.add(node.op.clone(), vec![x, ins[1], v])?
            }
            Op::Unary(_)
            | Op::Binary(_)
            | Op::Where
            | Op::Cast(_)
            | Op::Broadcast(_)
            | Op::Reshape(_)
            | Op::Transpose(_)
            | Op::Reduce(ReduceOp::Prod | ReduceOp::Max | ReduceOp::Min, _)
            | Op::ArgMax(..)
            | Op::Slice(_)
            | Op::SetSlice(_)
            | Op::Gather(_)
            | Op::Scatter(_)
            | Op::TakeAlong(_)
            | Op::Concat(_)
            | Op::Cumprod(_)
            | Op::ArgSort(_)
            | Op::Solve
            | Op::TriSolve(_)
            | Op::Cholesky
            | Op::Inv
            | Op::Det
            | Op::LogAbsDet
            | Op::Loop(_) => {
                if ins == node.inputs {
                    continue;
                }
                g.add(node.op.clone(), ins)?
            }
        };
        m[i] = new;
    }
    Ok(outs.iter().map(|o| m[o.index()]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff_exec::eval;
    use autodiff_ir::{DType, Tensor};

    #[test]
    fn a_cancelling_sum_gets_the_size_of_its_terms() {
        // Σ (x - 1) over x = [0, 2] is 0; its magnitude Σ (|x| + 1) is 4
        let mut g = Graph::new();
        let x = g.add_input("x", vec![2], DType::F64);
        let one = g.scalar(1.0, DType::F64);
        let one = g.broadcast(one, &[2]).unwrap();
        let d = g.sub(x, one).unwrap();
        let s = g.sum(d, &[0]).unwrap();
        let out = magnitude(&mut g, &[s]).unwrap();
        let xv = Tensor::new(DType::F64, vec![2], vec![0.0, 2.0]);
        let r = eval(&g, &[xv], &[s, out[0]]).unwrap();
        assert_eq!(r[0].data, vec![0.0]);
        assert_eq!(r[1].data, vec![4.0]);
    }

    #[test]
    fn indices_keep_their_original_values() {
        // take(x, argmax(x - 5)): the index is computed from the original x - 5
        let mut g = Graph::new();
        let x = g.add_input("x", vec![3], DType::F64);
        let five = g.scalar(5.0, DType::F64);
        let five = g.broadcast(five, &[3]).unwrap();
        let d = g.sub(x, five).unwrap();
        let k = g.add(Op::ArgMax(0, true), vec![d]).unwrap();
        let r = g.add(Op::Gather(0), vec![x, k]).unwrap();
        let out = magnitude(&mut g, &[r]).unwrap();
        let xv = Tensor::new(DType::F64, vec![3], vec![-9.0, 1.0, 2.0]);
        // argmax of x - 5 = [-14, -4, -3] is 2 (argmax of |x| + 5 would be 0)
        assert_eq!(eval(&g, &[xv], &out).unwrap()[0].data, vec![2.0]);
    }
}
