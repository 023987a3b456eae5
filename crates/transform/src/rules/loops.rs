//! `Op::Loop` (see `autodiff_ir::loops`): reverse mode, forward mode and batching, each
//! a new loop whose body is built from the original body with this crate's own sweeps, so
//! the results are ordinary IR and can be differentiated again (grad of grad, hvp = jvp of
//! grad, vmap of either).
//!
//! Notation: one iteration is `(c', y) = f(c, x, v)` (carries, one row of each xs,
//! invariants → next carries, ys rows); the loop runs it for `t = 0 … T-1` (`T-1 … 0` when
//! reversed) from `c₀`, producing `c_T` and the stacked `Y[t] = y_t`. The loop node's value
//! is the packed vector `P = concat(flat(c_T), flat(Y))`, so a (co)tangent of the node is
//! a (co)tangent of `P`, sliced per result.
//!
//! Guarantees:
//! - Only *active* values get (co)tangents: float values that depend on a differentiated
//!   operand. A float carry whose initial value is inactive is active when an iteration
//!   can make it depend on an active value (a fixed point over the body); int/bool carries
//!   and ys never get one.
//! - Reverse mode stores the carries at the start of every iteration (a "residual" loop:
//!   the body with those carries as extra ys after its own) and recomputes the body from them in the
//!   backward loop: memory O(T × carry size), time about 3× the forward loop (primal,
//!   residual, backward). For O(√T) memory, segment the loops first
//!   (`autodiff_ir::loops::segment_loops`: checkpointing as a rewrite of the primal).
//! - `T = 0` works throughout: the cotangent of the final carries passes straight to the
//!   initial ones, stacked xs get empty cotangents, invariants zeros.

use std::sync::Arc;

use autodiff_ir::{Graph, LoopSpec, NodeId, Op, SliceDim};

use crate::build::R;

/// Which nodes of the body are active (float and depending on an active input), given the
/// active inputs.
fn body_activity(b: &Graph, active_in: &[bool]) -> Vec<bool> {
    let mut act = vec![false; b.len()];
    for (i, n) in b.nodes().iter().enumerate() {
        act[i] = n.dtype.is_float()
            && match n.op {
                Op::Input(k) => active_in[k as usize],
                _ => n.inputs.iter().any(|x| act[x.index()]),
            };
    }
    act
}

/// The active body inputs and nodes: `active_ops` (one per loop operand), closed over the
/// carries (carry `k` is active when its next value is active in some iteration).
fn loop_activity(spec: &LoopSpec, active_ops: &[bool]) -> (Vec<bool>, Vec<bool>) {
    let b = &spec.body;
    let mut a: Vec<bool> = active_ops
        .iter()
        .zip(&b.inputs)
        .map(|(&on, &i)| on && b.dtype(i).is_float())
        .collect();
    loop {
        let act = body_activity(b, &a);
        let mut changed = false;
        for k in 0..spec.n_carry {
            if !a[k] && act[b.outputs[k].index()] {
                a[k] = true;
                changed = true;
            }
        }
        if !changed {
            return (a, act);
        }
    }
}

/// The indices `k` in `range` with `on[k]`.
fn pick(on: &[bool], range: std::ops::Range<usize>) -> Vec<usize> {
    range.filter(|&k| on[k]).collect()
}

/// Result `r` of a loop (a final carry or a stacked ys) cut out of a (co)tangent `p` of its
/// packed value: `reshape(p[off : off+n])`, cast back from the pack dtype.
fn unpack(g: &mut Graph, spec: &LoopSpec, p: NodeId, r: usize) -> R<NodeId> {
    let (offs, _) = spec.offsets();
    let (shape, dtype) = spec.result_types().swap_remove(r);
    let n: usize = shape.iter().product();
    let s = g.slice(
        p,
        vec![SliceDim {
            start: offs[r],
            step: 1,
            len: n,
        }],
    )?;
    let s = g.reshape(s, &shape)?;
    g.cast(s, dtype)
}

/// The packed vector of a loop's results (`None`: zeros), in the pack dtype of `spec`:
/// `concat(flat(r₀), flat(r₁), …)`.
fn pack(g: &mut Graph, spec: &LoopSpec, results: &[Option<NodeId>]) -> R<NodeId> {
    let dt = spec.pack_dtype();
    let mut parts = vec![];
    for (r, (shape, _)) in results.iter().zip(spec.result_types()) {
        let n: usize = shape.iter().product();
        parts.push(match r {
            Some(x) => {
                let f = g.reshape(*x, &[n])?;
                g.cast(f, dt)?
            }
            None => g.full(0.0, &[n], dt),
        });
    }
    match parts.len() {
        0 => Ok(g.full(0.0, &[0], dt)),
        1 => Ok(parts[0]),
        _ => g.add(Op::Concat(0), parts),
    }
}

/// An input of a new body graph, named after `b`'s input `k` with a prefix.
fn input_like(nb: &mut Graph, b: &Graph, k: usize, prefix: &str) -> NodeId {
    let i = b.inputs[k];
    let name = format!(
        "{prefix}{}",
        b.input_names.get(k).map_or("", |s| s.as_str())
    );
    nb.add_input(&name, b.shape(i).clone(), b.dtype(i))
}

/// Reverse: with `(c̄, Ȳ)` the cotangent of `(c_T, Y)` sliced out of `P̄`, run backward
/// `t = T-1 … 0` from `c̄_T = c̄`, `v̄ = 0`:
/// `(c̄_t, x̄_t, v̄_t) = (∂f/∂(c, x, v))ᵀ(c_t, x_t, v) · (c̄_{t+1}, Ȳ[t])`, `v̄ += v̄_t`;
/// then `c̄₀` is the initial carries' cotangent, `X̄[t] = x̄_t`, `v̄` the invariants'.
/// `c_t` (the carry entering iteration t) comes from a residual loop storing it as a ys.
pub(crate) fn loop_vjp(
    g: &mut Graph,
    spec: &Arc<LoopSpec>,
    ops: &[NodeId],
    ct: NodeId,
    need: &[bool],
) -> R<Vec<Option<NodeId>>> {
    let b = &spec.body;
    let (nc, nx, ni) = (spec.n_carry, spec.n_xs, spec.n_inv());
    let (a, act) = loop_activity(spec, need);
    let ac = pick(&a, 0..nc);
    let ax = pick(need, nc..nc + nx);
    let av = pick(need, nc + nx..nc + nx + ni);
    let ay: Vec<usize> = (0..spec.n_ys())
        .filter(|&j| act[b.outputs[nc + j].index()])
        .collect();
    if ax.is_empty() && av.is_empty() && !ac.iter().any(|&k| need[k]) {
        return Ok(vec![None; ops.len()]);
    }
    // residual loop: the primal's outputs, then the carries entering each iteration, c_t,
    // as extra ys (so the primal's packed value is a prefix of the residual's whenever
    // their pack dtypes agree: a simplifier can read the one from the other)
    let stored = if nc > 0 {
        let mut rb = b.clone();
        rb.outputs.extend_from_slice(&b.inputs[..nc]);
        let rs = LoopSpec::new(rb, nc, nx, spec.trips, spec.reverse)?;
        g.add_loop(rs, ops.to_vec())?[nc + spec.n_ys()..].to_vec()
    } else {
        vec![]
    };
    // backward body: carries (c̄ of the active carries, v̄ accumulated), xs (Ȳ rows, c_t,
    // x_t), invariants v
    let mut bb = Graph::new();
    let ct_c: Vec<NodeId> = ac
        .iter()
        .map(|&k| input_like(&mut bb, b, k, "ct_"))
        .collect();
    let acc_v: Vec<NodeId> = av
        .iter()
        .map(|&k| input_like(&mut bb, b, k, "ct_"))
        .collect();
    let ct_y: Vec<NodeId> = ay
        .iter()
        .map(|&j| {
            let o = b.outputs[nc + j];
            bb.add_input(&format!("ct_y{j}"), b.shape(o).clone(), b.dtype(o))
        })
        .collect();
    let args: Vec<NodeId> = (0..nc + nx + ni)
        .map(|k| input_like(&mut bb, b, k, ""))
        .collect();
    let m = bb.inline(b, &args)?;
    let mut outs: Vec<NodeId> = ac.iter().map(|&k| m[b.outputs[k].index()]).collect();
    outs.extend(ay.iter().map(|&j| m[b.outputs[nc + j].index()]));
    let mut cts = ct_c.clone();
    cts.extend(&ct_y);
    let wrt: Vec<NodeId> = ac.iter().chain(&ax).chain(&av).map(|&k| args[k]).collect();
    let gr = crate::sweep::vjp(&mut bb, &outs, &cts, &wrt)?;
    let (g_c, rest) = gr.split_at(ac.len());
    let (g_x, g_v) = rest.split_at(ax.len());
    let mut next = g_c.to_vec();
    for (&acc, &d) in acc_v.iter().zip(g_v) {
        next.push(bb.add_(acc, d)?);
    }
    next.extend_from_slice(g_x);
    bb.outputs = next;
    let n_bc = ac.len() + av.len();
    let bs = LoopSpec::new(bb, n_bc, ay.len() + nc + nx, spec.trips, !spec.reverse)?;
    // operands: c̄_T, v̄ = 0 | Ȳ, stored c_t, X | v
    let mut bops = vec![];
    for &k in &ac {
        bops.push(unpack(g, spec, ct, k)?);
    }
    for &k in &av {
        bops.push(g.zeros_like(ops[k]));
    }
    for &j in &ay {
        bops.push(unpack(g, spec, ct, nc + j)?);
    }
    bops.extend_from_slice(&stored);
    bops.extend_from_slice(&ops[nc..]);
    let res = g.add_loop(bs, bops)?;
    let mut out = vec![None; ops.len()];
    for (i, &k) in ac.iter().enumerate() {
        if need[k] {
            out[k] = Some(res[i]);
        }
    }
    for (i, &k) in av.iter().enumerate() {
        out[k] = Some(res[ac.len() + i]);
    }
    for (i, &k) in ax.iter().enumerate() {
        out[k] = Some(res[n_bc + i]);
    }
    Ok(out)
}

/// Forward: one loop over `(c, ċ)` whose body is `f` and its jvp,
/// `(c', ċ', y, ẏ) = (f(c, x, v), ∂f(c, x, v) · (ċ, ẋ, v̇))`, with `ẋ` rows of the xs
/// tangents as extra xs and `v̇` as extra invariants; `Ṗ = concat(flat(ċ_T), flat(Ẏ))`
/// cast to the pack dtype, zeros for results without a tangent.
pub(crate) fn loop_jvp(
    g: &mut Graph,
    spec: &Arc<LoopSpec>,
    ops: &[NodeId],
    t: &[Option<NodeId>],
) -> R<Option<NodeId>> {
    let b = &spec.body;
    let (nc, nx, ni, ny) = (spec.n_carry, spec.n_xs, spec.n_inv(), spec.n_ys());
    let on: Vec<bool> = t.iter().map(Option::is_some).collect();
    let (a, act) = loop_activity(spec, &on);
    let ac = pick(&a, 0..nc);
    let ax = pick(&a, nc..nc + nx);
    let av = pick(&a, nc + nx..nc + nx + ni);
    let ay: Vec<usize> = (0..ny)
        .filter(|&j| act[b.outputs[nc + j].index()])
        .collect();
    if ac.is_empty() && ay.is_empty() {
        return Ok(None);
    }
    // tangent body: carries (c, ċ), xs (x, ẋ), invariants (v, v̇)
    let mut tb = Graph::new();
    let mut args = vec![];
    let mut dots = vec![];
    for (range, on) in [
        (0..nc, &ac),
        (nc..nc + nx, &ax),
        (nc + nx..nc + nx + ni, &av),
    ] {
        for k in range {
            args.push(input_like(&mut tb, b, k, ""));
        }
        for &k in on {
            dots.push(input_like(&mut tb, b, k, "d_"));
        }
    }
    let m = tb.inline(b, &args)?;
    let out_at = |k: usize| m[b.outputs[k].index()];
    let mut outs: Vec<NodeId> = ac.iter().map(|&k| out_at(k)).collect();
    outs.extend(ay.iter().map(|&j| out_at(nc + j)));
    let wrt: Vec<NodeId> = ac.iter().chain(&ax).chain(&av).map(|&k| args[k]).collect();
    let tans = crate::sweep::jvp(&mut tb, &outs, &wrt, &dots)?;
    let mut next: Vec<NodeId> = (0..nc).map(out_at).collect();
    next.extend_from_slice(&tans[..ac.len()]);
    next.extend((0..ny).map(|j| out_at(nc + j)));
    next.extend_from_slice(&tans[ac.len()..]);
    tb.outputs = next;
    let ts = LoopSpec::new(tb, nc + ac.len(), nx + ax.len(), spec.trips, spec.reverse)?;
    // operands: c₀, ċ₀ | X, Ẋ | v, v̇ (zeros for an active carry without a tangent)
    let mut tops = vec![];
    for (range, on) in [
        (0..nc, &ac),
        (nc..nc + nx, &ax),
        (nc + nx..nc + nx + ni, &av),
    ] {
        tops.extend_from_slice(&ops[range]);
        for &k in on {
            tops.push(t[k].unwrap_or_else(|| g.zeros_like(ops[k])));
        }
    }
    let res = g.add_loop(ts, tops)?;
    let mut results: Vec<Option<NodeId>> = vec![None; nc + ny];
    for (i, &k) in ac.iter().enumerate() {
        results[k] = Some(res[nc + i]);
    }
    let y0 = nc + ac.len() + ny;
    for (i, &j) in ay.iter().enumerate() {
        results[nc + j] = Some(res[y0 + i]);
    }
    pack(g, spec, &results).map(Some)
}

/// `x` with a leading batch axis of `size` (broadcast along it).
fn lift(g: &mut Graph, x: NodeId, size: usize) -> R<NodeId> {
    let s = g.shape(x).clone();
    let mut one = vec![1];
    one.extend(&s);
    let r = g.reshape(x, &one)?;
    let mut full = vec![size];
    full.extend(&s);
    g.broadcast(r, &full)
}

/// Batching: `vmap` of a loop is the loop of the batched body, `f_B(c_B, x_B, v_B)`, the
/// batch axis leading on carries and invariants and second (after the trips axis) on the
/// stacked xs: `X_B[t] = transpose(X, (1, 0, …))[t]`. A carry is batched when its initial
/// value is or an iteration makes it so (a fixed point). The batched packed value is
/// `[size, len P]`: each result moved to batch-major (`Y_B` transposed back), flattened per
/// batch element, cast to the pack dtype and concatenated along axis 1.
pub(crate) fn loop_vmap(
    ng: &mut Graph,
    spec: &LoopSpec,
    ins: &[(NodeId, bool)],
    size: usize,
) -> R<NodeId> {
    let b = &spec.body;
    let (nc, nx) = (spec.n_carry, spec.n_xs);
    let mut on: Vec<bool> = ins.iter().map(|x| x.1).collect();
    let (mut vb, map) = loop {
        let (vb, map) = crate::batch::vmap(b, &on, size)?;
        let mut changed = false;
        for k in 0..nc {
            if !on[k] && map[b.outputs[k].index()].1 {
                on[k] = true;
                changed = true;
            }
        }
        if !changed {
            break (vb, map);
        }
    };
    let mut outs = vec![];
    for (k, o) in b.outputs.iter().enumerate() {
        let (id, bat) = map[o.index()];
        outs.push(if k < nc && on[k] && !bat {
            lift(&mut vb, id, size)?
        } else {
            id
        });
    }
    let ys_batched: Vec<bool> = b.outputs[nc..].iter().map(|o| map[o.index()].1).collect();
    vb.outputs = outs;
    let vs = LoopSpec::new(vb, nc, nx, spec.trips, spec.reverse)?;
    let mut vops = vec![];
    for (k, &(x, bat)) in ins.iter().enumerate() {
        vops.push(if k < nc && on[k] && !bat {
            lift(ng, x, size)?
        } else if k >= nc && k < nc + nx && bat {
            // [size, trips, row…] → [trips, size, row…]
            let r = ng.shape(x).len();
            let mut perm = vec![1, 0];
            perm.extend(2..r);
            ng.transpose(x, &perm)?
        } else {
            x
        });
    }
    let res = ng.add_loop(vs, vops)?;
    let dt = spec.pack_dtype();
    let mut parts = vec![];
    for (r, (shape, _)) in res.iter().zip(spec.result_types()) {
        let (r, k) = (*r, parts.len());
        let n: usize = shape.iter().product();
        let bat = if k < nc { on[k] } else { ys_batched[k - nc] };
        let flat = if !bat {
            let f = ng.reshape(r, &[1, n])?;
            ng.broadcast(f, &[size, n])?
        } else if k < nc {
            ng.reshape(r, &[size, n])?
        } else {
            let rk = ng.shape(r).len();
            let mut perm = vec![1, 0];
            perm.extend(2..rk);
            let tr = ng.transpose(r, &perm)?;
            ng.reshape(tr, &[size, n])?
        };
        parts.push(ng.cast(flat, dt)?);
    }
    match parts.len() {
        0 => Ok(ng.full(0.0, &[size, 0], dt)),
        1 => Ok(parts[0]),
        _ => ng.add(Op::Concat(1), parts),
    }
}
