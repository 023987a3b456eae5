//! Batching (`vmap`): the same computation over a new leading axis of some inputs.
//!
//! One rule per op: a node is either unbatched (same as in the original graph) or batched
//! (its shape gains a leading axis of the batch size). Elementwise ops broadcast an
//! unbatched operand against a batched one for free (NumPy aligns shapes on the right);
//! axis-carrying ops shift their axes by one; contractions gain a batch label; a loop runs
//! the batched body (`rules/loops.rs`, the batch axis second on its xs). Ops with no
//! batching rule here (linear algebra, which the IR keeps 2-D) are an error, so the caller
//! can fall back to an unrolled loop.

use autodiff_ir::{err, ContractSpec, Graph, IrError, NodeId, Op, SliceDim};

/// Rebuilds `g` with `batched[k]` inputs gaining a leading axis of size `size`. Returns the
/// new graph (same input order and names) and the map from old nodes to new ones, with a
/// flag telling which new nodes are batched. Outputs are not set.
pub fn vmap(
    g: &Graph,
    batched: &[bool],
    size: usize,
) -> Result<(Graph, Vec<(NodeId, bool)>), IrError> {
    let mut ng = Graph::new();
    let mut map: Vec<(NodeId, bool)> = Vec::with_capacity(g.len());
    for n in g.nodes() {
        let ins: Vec<(NodeId, bool)> = n.inputs.iter().map(|i| map[i.index()]).collect();
        let any = ins.iter().any(|x| x.1);
        // Brings every operand to the batched form (broadcast along the new axis).
        let lift = |ng: &mut Graph, x: (NodeId, bool)| -> Result<NodeId, IrError> {
            if x.1 {
                return Ok(x.0);
            }
            let mut s = vec![size];
            s.extend(ng.shape(x.0).iter().copied());
            let mut one = vec![1];
            one.extend(ng.shape(x.0).iter().copied());
            let r = ng.reshape(x.0, &one)?;
            ng.broadcast(r, &s)
        };
        let plain: Vec<NodeId> = ins.iter().map(|x| x.0).collect();
        let shift = |a: usize| a + 1;
        let full_dim = |len: usize| SliceDim {
            start: 0,
            step: 1,
            len,
        };
        let new = if !any {
            // Nothing batched flows in: copy the node.
            match &n.op {
                Op::Input(k) if batched[*k as usize] => {
                    let mut s = vec![size];
                    s.extend(&n.shape);
                    (ng.add_input(&g.input_names[*k as usize], s, n.dtype), true)
                }
                Op::Input(k) => (
                    ng.add_input(&g.input_names[*k as usize], n.shape.clone(), n.dtype),
                    false,
                ),
                Op::Const(c) => (ng.copy_constant(g, *c), false),
                op => (ng.add(op.clone(), plain)?, false),
            }
        } else {
            let id = match &n.op {
                Op::Input(_) | Op::Const(_) => unreachable!("leaves have no operands"),
                // elementwise: NumPy broadcasting aligns on the right, the batch axis leads
                Op::Unary(u) => ng.unary(*u, plain[0])?,
                Op::Binary(b) => ng.binary(*b, plain[0], plain[1])?,
                Op::Where => ng.select(plain[0], plain[1], plain[2])?,
                Op::Cast(d) => ng.cast(plain[0], *d)?,
                Op::Broadcast(to) => {
                    // right-align the operand under the batch axis, then broadcast
                    let xs = ng.shape(plain[0]).clone();
                    let mut aligned = vec![size];
                    aligned.extend(std::iter::repeat_n(1, to.len() + 1 - xs.len()));
                    aligned.extend(&xs[1..]);
                    let r = ng.reshape(plain[0], &aligned)?;
                    let mut t = vec![size];
                    t.extend(to);
                    ng.broadcast(r, &t)?
                }
                Op::Reshape(to) => {
                    let mut t = vec![size];
                    t.extend(to);
                    ng.reshape(plain[0], &t)?
                }
                Op::Transpose(p) => {
                    let mut q = vec![0];
                    q.extend(p.iter().map(|&a| shift(a)));
                    ng.transpose(plain[0], &q)?
                }
                Op::Reduce(r, axes) => ng.reduce(
                    *r,
                    plain[0],
                    &axes.iter().map(|&a| shift(a)).collect::<Vec<_>>(),
                )?,
                Op::ArgMax(a, m) => ng.add(Op::ArgMax(shift(*a), *m), plain)?,
                Op::Cumsum(a) => ng.add(Op::Cumsum(shift(*a)), plain)?,
                Op::Cumprod(a) => ng.add(Op::Cumprod(shift(*a)), plain)?,
                Op::ArgSort(a) => ng.add(Op::ArgSort(shift(*a)), plain)?,
                Op::Contract(spec) => {
                    // a fresh label for the batch axis
                    let z = (b'A'..=b'Z').chain(b'a'..=b'z').find(|c| {
                        !spec.a.contains(c) && !spec.b.contains(c) && !spec.out.contains(c)
                    });
                    let Some(z) = z else {
                        return err("vmap: no free einsum label");
                    };
                    let with = |l: &Vec<u8>, on: bool| {
                        if on {
                            std::iter::once(z).chain(l.iter().copied()).collect()
                        } else {
                            l.clone()
                        }
                    };
                    let s = ContractSpec {
                        a: with(&spec.a, ins[0].1),
                        b: with(&spec.b, ins[1].1),
                        out: with(&spec.out, true),
                    };
                    ng.add(Op::Contract(s), plain)?
                }
                Op::Slice(dims) => {
                    let mut d = vec![full_dim(size)];
                    d.extend(dims);
                    ng.add(Op::Slice(d), plain)?
                }
                Op::SetSlice(dims) => {
                    let mut d = vec![full_dim(size)];
                    d.extend(dims);
                    let (x, v) = (lift(&mut ng, ins[0])?, lift(&mut ng, ins[1])?);
                    ng.add(Op::SetSlice(d), vec![x, v])?
                }
                Op::Gather(a) if !ins[1].1 => ng.add(Op::Gather(shift(*a)), plain)?,
                Op::ScatterAdd(a) | Op::Scatter(a) if !ins[1].1 => {
                    let (x, v) = (lift(&mut ng, ins[0])?, lift(&mut ng, ins[2])?);
                    let op = if matches!(n.op, Op::ScatterAdd(_)) {
                        Op::ScatterAdd(shift(*a))
                    } else {
                        Op::Scatter(shift(*a))
                    };
                    ng.add(op, vec![x, plain[1], v])?
                }
                Op::TakeAlong(a) => {
                    let (x, i) = (lift(&mut ng, ins[0])?, lift(&mut ng, ins[1])?);
                    ng.add(Op::TakeAlong(shift(*a)), vec![x, i])?
                }
                Op::ScatterAlongAdd(a) => {
                    let lifted = ins
                        .iter()
                        .map(|&x| lift(&mut ng, x))
                        .collect::<Result<Vec<_>, _>>()?;
                    ng.add(Op::ScatterAlongAdd(shift(*a)), lifted)?
                }
                Op::Loop(spec) => crate::rules::loops::loop_vmap(&mut ng, spec, &ins, size)?,
                Op::Concat(a) => {
                    let lifted = ins
                        .iter()
                        .map(|&x| lift(&mut ng, x))
                        .collect::<Result<Vec<_>, _>>()?;
                    ng.add(Op::Concat(shift(*a)), lifted)?
                }
                Op::Gather(_)
                | Op::ScatterAdd(_)
                | Op::Scatter(_)
                | Op::Solve
                | Op::TriSolve(_)
                | Op::Cholesky
                | Op::Inv
                | Op::Det
                | Op::LogAbsDet => {
                    return err(format!(
                        "vmap: no batching rule for {:?} with batched operands",
                        n.op
                    ))
                }
            };
            (id, true)
        };
        map.push(new);
    }
    Ok((ng, map))
}
