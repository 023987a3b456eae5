//! Loop rules, tried in the canonicalize phase after its own: a loop of no iteration is its
//! initial carries, a loop of one iteration is its body inlined. Both give the loop's packed
//! value (see `autodiff_ir::loops`), built as a concatenation of the flattened results, so
//! the unpacking slices after it reduce to the results themselves (`slice-concat`,
//! `slice-full`, `slice-empty`, `reshape-reshape`, `reshape-same`, `cast-round-trip`).
//!
//! Loop bodies are simplified elsewhere (`lib.rs`: the whole pipeline on each body, once per
//! simplification); these rules only look at the trip count.

use std::collections::HashMap;

use autodiff_ir::{Graph, LoopSpec, NodeId, Op, SliceDim};

use super::{rule, On, Rewriter, Rule};

type R = Option<NodeId>;

/// The loop rules, in the order they are tried.
pub(crate) const RULES: &[Rule] = &[
    // loop₀(c, xs, v) = pack(c, ys = [])
    rule("loop-zero-trips", On::Loop, |rw, op, x| {
        let Op::Loop(spec) = op else { return None };
        (spec.trips == 0).then(|| pack(rw, op, &x[..spec.n_carry]))
    }),
    // loop₁(c, xs, v) = pack(body(c, xs[0], v)), each ys row stacked alone
    rule("loop-one-trip", On::Loop, inline_one_trip),
    // loop_A(ops) = loop_B(ops)[:len A] when B, on the same operands, runs A's body with
    // more ys after A's results: A's packed value is a prefix of B's (reverse mode's
    // residual loop is the primal loop plus stacked carries)
    rule("loop-prefix", On::Loop, share_prefix),
];

/// The packed value of a loop (`op`) whose results (final carries, then stacked ys, empty
/// ones left out) are `results`: each flattened, cast to the pack dtype, concatenated.
fn pack(rw: &mut Rewriter, op: &Op, results: &[NodeId]) -> NodeId {
    let Op::Loop(spec) = op else {
        unreachable!("pack is for loops")
    };
    let pack = spec.pack_dtype();
    let mut flat = vec![];
    for &r in results {
        let n = rw.node(r).size();
        if n == 0 {
            continue;
        }
        // cast, then reshape: unpacking reshapes, then casts back (cast-round-trip)
        let mut f = r;
        if rw.node(f).dtype != pack {
            f = rw.mk(Op::Cast(pack), vec![f]);
        }
        if rw.node(f).shape != [n] {
            f = rw.mk(Op::Reshape(vec![n]), vec![f]);
        }
        flat.push(f);
    }
    match flat.len() {
        0 => rw.full(0.0, &[0], pack),
        1 => flat[0],
        _ => rw.mk(Op::Concat(0), flat),
    }
}

fn inline_one_trip(rw: &mut Rewriter, op: &Op, x: &[NodeId]) -> R {
    let Op::Loop(spec) = op else { return None };
    if spec.trips != 1 {
        return None;
    }
    let (nc, nx, b) = (spec.n_carry, spec.n_xs, &spec.body);
    let mut map: Vec<NodeId> = Vec::with_capacity(b.len());
    for n in b.nodes() {
        let id = match &n.op {
            Op::Input(k) if (nc..nc + nx).contains(&(*k as usize)) => {
                // the one row of xs: xs[0]
                let xs = x[*k as usize];
                let dims = (rw.node(xs).shape.iter().enumerate())
                    .map(|(a, &e)| SliceDim {
                        start: 0,
                        step: 1,
                        len: if a == 0 { 1 } else { e },
                    })
                    .collect();
                let row = rw.mk(Op::Slice(dims), vec![xs]);
                rw.mk(Op::Reshape(n.shape.clone()), vec![row])
            }
            Op::Input(k) => x[*k as usize],
            Op::Const(c) => rw.copy_constant(b, *c),
            op => {
                let ins = n.inputs.iter().map(|i| map[i.index()]).collect();
                rw.mk(op.clone(), ins)
            }
        };
        map.push(id);
    }
    let mut results = vec![];
    for (k, o) in b.outputs.iter().enumerate() {
        let r = map[o.index()];
        results.push(match k < nc {
            true => r,
            false => {
                let mut stacked = vec![1];
                stacked.extend(rw.node(r).shape.clone());
                rw.mk(Op::Reshape(stacked), vec![r])
            }
        });
    }
    Some(pack(rw, op, &results))
}

fn share_prefix(rw: &mut Rewriter, op: &Op, x: &[NodeId]) -> R {
    let Op::Loop(a) = op else { return None };
    let len = a.offsets().1;
    let b = rw.loops.iter().copied().find(|&b| {
        let n = rw.node(b);
        match &n.op {
            Op::Loop(spec) => n.inputs == x && is_prefix(a, spec),
            _ => false,
        }
    })?;
    let dims = vec![SliceDim {
        start: 0,
        step: 1,
        len,
    }];
    Some(rw.mk(Op::Slice(dims), vec![b]))
}

/// Whether loop `b` computes loop `a`'s results first (same trips, direction, carries and
/// xs; `a`'s body outputs found, structurally, as the first outputs of `b`'s body; one
/// pack dtype) and more after them, so that `a`'s packed value is a prefix of `b`'s.
fn is_prefix(a: &LoopSpec, b: &LoopSpec) -> bool {
    let same_loop = (a.trips, a.reverse, a.n_carry, a.n_xs)
        == (b.trips, b.reverse, b.n_carry, b.n_xs)
        && a.body.inputs.len() == b.body.inputs.len()
        && a.body.outputs.len() < b.body.outputs.len()
        && a.pack_dtype() == b.pack_dtype();
    same_loop
        && embed(&a.body, &b.body).is_some_and(|m| {
            (a.body.outputs.iter().zip(&b.body.outputs)).all(|(o, p)| m[o.index()] == *p)
        })
}

/// Each node of `a` as the node of `b` with the same op on the same (mapped) operands:
/// inputs by position, constants by value; `None` when some node of `a` has no match.
fn embed(a: &Graph, b: &Graph) -> Option<Vec<NodeId>> {
    let mut index: HashMap<(&Op, &[NodeId]), NodeId> = HashMap::new();
    let mut consts = vec![];
    for (i, n) in b.nodes().iter().enumerate() {
        let id = NodeId(i as u32);
        match n.op {
            Op::Const(_) => consts.push(id),
            _ => {
                index.insert((&n.op, &n.inputs), id);
            }
        }
    }
    let mut map: Vec<NodeId> = Vec::with_capacity(a.len());
    for (i, n) in a.nodes().iter().enumerate() {
        let m = match &n.op {
            Op::Input(k) => b.inputs[*k as usize],
            Op::Const(_) => {
                let t = a.const_value(NodeId(i as u32))?;
                let same = |c: &&NodeId| b.const_value(**c).is_some_and(|u| u.same_bits(t));
                *consts.iter().find(same)?
            }
            op => {
                let ins: Vec<NodeId> = n.inputs.iter().map(|x| map[x.index()]).collect();
                *index.get(&(op, ins.as_slice()))?
            }
        };
        map.push(m);
    }
    Some(map)
}
