//! `Op::Loop`: a fixed number of iterations of a body graph (the shape of `lax.scan`).
//!
//! A loop node `(loop SPEC c₁…c_k xs₁…xs_m v₁…v_r)` has three groups of operands:
//! - the initial **carries** `c` (one per state variable the iterations thread through);
//! - the stacked per-iteration inputs **xs**: operand `xs_j` has shape `[trips] ++ row_j`
//!   and iteration `t` reads row `t` (`x[i]` inside a Python loop);
//! - the loop-**invariant** values `v` the body reads.
//!
//! The body is an ordinary graph whose inputs are, in order, the carries, one row of each
//! xs, and the invariants (same shapes and dtypes as the operands, minus the leading axis
//! of the xs). Its outputs are the next carries (each of its carry's shape and dtype)
//! followed by the per-iteration outputs **ys** (rows of any shape and dtype).
//!
//! Semantics: `c ← body(c, xs[t], v)` for `t = 0, 1, …, trips-1` (`t = trips-1, …, 0` when
//! `reverse`), each iteration's ys rows stored at row `t` of their stacked result.
//!
//! Invariants (checked by [`LoopSpec::new`] and [`LoopSpec::check_operands`]):
//! - the loop node has **one value**, the *packed* vector: the final carries, flattened,
//!   then each ys stacked (`[trips] ++ row`) and flattened, all cast to the pack dtype
//!   (`float32` when every output is float32, else `float64`; bool and int outputs are
//!   cast exactly, ints below 2^53). [`Graph::loop_outputs`] unpacks it with
//!   slice/reshape/cast nodes, so every other op keeps one value per node;
//! - `trips` may be 0 (the final carries are the initial ones, the ys are empty);
//! - loop specs compare and hash structurally (the body's nodes, constants, inputs and
//!   outputs), so hash-consing merges equal loops and never two different ones.
//!
//! [`Graph::inline`] copies a body into another graph (the transforms build their loop
//! bodies with it) and [`unroll`] replaces every loop node by its iterations as plain
//! nodes (the packed value rebuilt with `concat`, so every other node is unchanged): the
//! oracle the loop rules are tested against, and the printers' way to show a loop
//! elementwise. [`segment_loops`] splits long loops into √T segments of √T trips (equal
//! values, bit for bit): reverse mode over the result stores O(√T) carries (checkpointing).

use std::hash::{Hash, Hasher};

use crate::{err, DType, Graph, IrError, NodeId, Op, Shape, SliceDim, Tensor};

/// The body and parameters of a loop node.
#[derive(Clone)]
pub struct LoopSpec {
    pub body: Graph,
    pub n_carry: usize,
    pub n_xs: usize,
    pub trips: usize,
    pub reverse: bool,
    pack: DType,
    fingerprint: u64,
}

impl std::fmt::Debug for LoopSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Loop(trips={}, carries={}, xs={}, invariants={}, ys={}, body of {} nodes{})",
            self.trips,
            self.n_carry,
            self.n_xs,
            self.n_inv(),
            self.n_ys(),
            self.body.len(),
            if self.reverse { ", reverse" } else { "" }
        )
    }
}

impl PartialEq for LoopSpec {
    fn eq(&self, o: &LoopSpec) -> bool {
        self.fingerprint == o.fingerprint
            && self.n_carry == o.n_carry
            && self.n_xs == o.n_xs
            && self.trips == o.trips
            && self.reverse == o.reverse
            && same_graph(&self.body, &o.body)
    }
}

impl Eq for LoopSpec {}

impl Hash for LoopSpec {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.fingerprint.hash(h);
    }
}

/// Structural equality of two graphs: nodes, constants (bit for bit), inputs, outputs.
pub fn same_graph(a: &Graph, b: &Graph) -> bool {
    a.len() == b.len()
        && a.inputs == b.inputs
        && a.outputs == b.outputs
        && a.nodes() == b.nodes()
        && a.consts().len() == b.consts().len()
        && a.consts()
            .iter()
            .zip(b.consts())
            .all(|(x, y)| x.same_bits(y))
}

/// A hash of a graph's structure (consistent with [`same_graph`]).
fn graph_hash(g: &Graph) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for n in g.nodes() {
        n.op.hash(&mut h);
        n.inputs.hash(&mut h);
        n.shape.hash(&mut h);
        n.dtype.hash(&mut h);
    }
    for c in g.consts() {
        c.bits_hash().hash(&mut h);
    }
    g.inputs.hash(&mut h);
    g.outputs.hash(&mut h);
    h.finish()
}

impl LoopSpec {
    /// A loop of `trips` iterations over `body` (see the module docs for the layout).
    pub fn new(
        body: Graph,
        n_carry: usize,
        n_xs: usize,
        trips: usize,
        reverse: bool,
    ) -> Result<LoopSpec, IrError> {
        if body.inputs.len() < n_carry + n_xs {
            return err(format!(
                "loop: the body has {} inputs for {n_carry} carries and {n_xs} xs",
                body.inputs.len()
            ));
        }
        if body.outputs.len() < n_carry {
            return err(format!(
                "loop: the body has {} outputs for {n_carry} carries",
                body.outputs.len()
            ));
        }
        for k in 0..n_carry {
            let (i, o) = (body.inputs[k], body.outputs[k]);
            if body.shape(i) != body.shape(o) || body.dtype(i) != body.dtype(o) {
                return err(format!(
                    "loop: carry {k} enters as {:?} {} but leaves as {:?} {}",
                    body.shape(i),
                    body.dtype(i),
                    body.shape(o),
                    body.dtype(o)
                ));
            }
        }
        let all_f32 = body.outputs.iter().all(|&o| body.dtype(o) == DType::F32);
        let pack = if all_f32 { DType::F32 } else { DType::F64 };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (graph_hash(&body), n_carry, n_xs, trips, reverse).hash(&mut h);
        Ok(LoopSpec {
            body,
            n_carry,
            n_xs,
            trips,
            reverse,
            pack,
            fingerprint: h.finish(),
        })
    }

    /// Number of invariant operands.
    pub fn n_inv(&self) -> usize {
        self.body.inputs.len() - self.n_carry - self.n_xs
    }

    /// Number of per-iteration outputs.
    pub fn n_ys(&self) -> usize {
        self.body.outputs.len() - self.n_carry
    }

    /// The dtype of the packed value.
    pub fn pack_dtype(&self) -> DType {
        self.pack
    }

    /// The shape and dtype of each unpacked result: the final carries, then the stacked ys.
    pub fn result_types(&self) -> Vec<(Shape, DType)> {
        let b = &self.body;
        let mut out = vec![];
        for (k, &o) in b.outputs.iter().enumerate() {
            let mut s = b.shape(o).clone();
            if k >= self.n_carry {
                s.insert(0, self.trips);
            }
            out.push((s, b.dtype(o)));
        }
        out
    }

    /// Offset of each result in the packed vector, and the total length.
    pub fn offsets(&self) -> (Vec<usize>, usize) {
        let mut offs = vec![];
        let mut at = 0usize;
        for (s, _) in self.result_types() {
            offs.push(at);
            at += s.iter().product::<usize>();
        }
        (offs, at)
    }

    /// The type of the loop node for operands of the given types.
    pub fn check_operands(&self, ins: &[(&Shape, DType)]) -> Result<(Shape, DType), IrError> {
        let b = &self.body;
        if ins.len() != b.inputs.len() {
            return err(format!(
                "loop takes {} operands (carries, xs, invariants), got {}",
                b.inputs.len(),
                ins.len()
            ));
        }
        for (k, (&(s, d), &bi)) in ins.iter().zip(&b.inputs).enumerate() {
            let (bs, bd) = (b.shape(bi), b.dtype(bi));
            let is_xs = k >= self.n_carry && k < self.n_carry + self.n_xs;
            let ok = if is_xs {
                s.len() == bs.len() + 1 && s[0] == self.trips && &s[1..] == bs.as_slice()
            } else {
                s == bs
            };
            if !ok || d != bd {
                let role = if k < self.n_carry {
                    "carry"
                } else if is_xs {
                    "xs"
                } else {
                    "invariant"
                };
                return err(format!(
                    "loop operand {k} ({role}) is {s:?} {d}, the body expects {}{bs:?} {bd}",
                    if is_xs {
                        format!("[{}] ++ ", self.trips)
                    } else {
                        String::new()
                    }
                ));
            }
        }
        Ok((vec![self.offsets().1], self.pack))
    }
}

impl Graph {
    /// Adds a loop node and returns its unpacked results (final carries, then stacked ys).
    pub fn add_loop(
        &mut self,
        spec: LoopSpec,
        operands: Vec<NodeId>,
    ) -> Result<Vec<NodeId>, IrError> {
        let node = self.add(Op::Loop(std::sync::Arc::new(spec)), operands)?;
        self.loop_outputs(node)
    }

    /// The results of a loop node, each as a slice of its packed value (reshaped, and cast
    /// back from the pack dtype where it differs).
    pub fn loop_outputs(&mut self, node: NodeId) -> Result<Vec<NodeId>, IrError> {
        let Op::Loop(spec) = self.node(node).op.clone() else {
            return err("loop_outputs of a node that is not a loop");
        };
        let (offs, _) = spec.offsets();
        let mut out = vec![];
        for ((shape, dtype), off) in spec.result_types().into_iter().zip(offs) {
            let n: usize = shape.iter().product();
            let s = self.add(
                Op::Slice(vec![SliceDim {
                    start: off,
                    step: 1,
                    len: n,
                }]),
                vec![node],
            )?;
            let r = self.reshape(s, &shape)?;
            out.push(if dtype != spec.pack {
                self.cast(r, dtype)?
            } else {
                r
            });
        }
        Ok(out)
    }
}

impl Graph {
    /// Copies every node of `src` into this graph, its inputs replaced by `args` (one per
    /// input of `src`, of its type), and returns the new node of each node of `src`
    /// (hash-consed, so a node equal to one already here is shared). Provenance is not
    /// copied: the copies get this graph's current location.
    pub fn inline(&mut self, src: &Graph, args: &[NodeId]) -> Result<Vec<NodeId>, IrError> {
        copy_nodes(self, src, args, false)
    }
}

/// `src`'s nodes copied into `dst` (see [`Graph::inline`]); `locs`: each copy keeps the
/// location of its original.
fn copy_nodes(
    dst: &mut Graph,
    src: &Graph,
    args: &[NodeId],
    locs: bool,
) -> Result<Vec<NodeId>, IrError> {
    if args.len() != src.inputs.len() {
        return err(format!(
            "inline: {} arguments for a graph of {} inputs",
            args.len(),
            src.inputs.len()
        ));
    }
    let mut map: Vec<NodeId> = Vec::with_capacity(src.len());
    for (i, n) in src.nodes().iter().enumerate() {
        if locs {
            dst.set_loc(src.loc(NodeId(i as u32)));
        }
        let id = match &n.op {
            Op::Input(k) => {
                let a = args[*k as usize];
                if dst.shape(a) != &n.shape || dst.dtype(a) != n.dtype {
                    return err(format!(
                        "inline: argument {k} is {:?} {}, the graph expects {:?} {}",
                        dst.shape(a),
                        dst.dtype(a),
                        n.shape,
                        n.dtype
                    ));
                }
                a
            }
            Op::Const(c) => dst.copy_constant(src, *c),
            op => dst.add(
                op.clone(),
                n.inputs.iter().map(|x| map[x.index()]).collect(),
            )?,
        };
        map.push(id);
    }
    Ok(map)
}

/// `g` with every loop node (nested ones too) replaced by its iterations as plain nodes:
/// iteration `t` reads row `t` of each xs (`reshape(slice(xs))`), each ys is the `concat`
/// of its rows, and the loop's packed value is the `concat` of its flattened results cast
/// to the pack dtype, so the nodes that read it are unchanged. Same inputs (and names),
/// outputs, variable names and provenance. The size grows with the trip counts: for
/// printing and testing, not for running.
pub fn unroll(g: &Graph) -> Result<Graph, IrError> {
    rebuild(g, &mut |u, spec, ins, loc| {
        let body = unroll(&spec.body)?;
        unroll_loop(u, spec, &body, ins, loc)
    })
}

/// What [`rebuild`] adds for a loop node (its spec, new operands, location): its packed value.
type OnLoop<'a> =
    dyn FnMut(&mut Graph, &LoopSpec, &[NodeId], Option<&str>) -> Result<NodeId, IrError> + 'a;

/// `g` rebuilt node by node, each loop node replaced by the (packed) node `on_loop` adds;
/// same inputs (and names), outputs, variable names and provenance.
fn rebuild(g: &Graph, on_loop: &mut OnLoop) -> Result<Graph, IrError> {
    let mut u = Graph::new();
    let mut map: Vec<NodeId> = Vec::with_capacity(g.len());
    for (i, n) in g.nodes().iter().enumerate() {
        let id = NodeId(i as u32);
        u.set_loc(g.loc(id));
        let ins: Vec<NodeId> = n.inputs.iter().map(|x| map[x.index()]).collect();
        let new = match &n.op {
            Op::Input(k) => u.add_input(&g.input_names[*k as usize], n.shape.clone(), n.dtype),
            Op::Const(c) => u.copy_constant(g, *c),
            Op::Loop(spec) => on_loop(&mut u, spec, &ins, g.loc(id))?,
            op => u.add(op.clone(), ins)?,
        };
        map.push(new);
    }
    u.set_loc(None);
    u.outputs = g.outputs.iter().map(|o| map[o.index()]).collect();
    u.names = g
        .names
        .iter()
        .map(|(k, v)| (map[k.index()], v.clone()))
        .collect();
    Ok(u)
}

/// The packed value of a loop (see the module docs) from its unpacked results:
/// `concat(flat(r₀), flat(r₁), …)` cast to the pack dtype.
fn pack_results(u: &mut Graph, spec: &LoopSpec, results: &[NodeId]) -> Result<NodeId, IrError> {
    let pack = spec.pack_dtype();
    let mut parts = vec![];
    for &r in results {
        let flat = u.reshape(r, &[u.node(r).size()])?;
        parts.push(u.cast(flat, pack)?);
    }
    match parts.len() {
        0 => Ok(u.constant(Tensor::full(pack, vec![0], 0.0))),
        1 => Ok(parts[0]),
        _ => u.add(Op::Concat(0), parts),
    }
}

/// The packed value of one loop, its iterations added to `u` as plain nodes.
fn unroll_loop(
    u: &mut Graph,
    spec: &LoopSpec,
    body: &Graph,
    ops: &[NodeId],
    loc: Option<&str>,
) -> Result<NodeId, IrError> {
    let (nc, nx) = (spec.n_carry, spec.n_xs);
    let mut carries: Vec<NodeId> = ops[..nc].to_vec();
    let mut rows: Vec<Vec<NodeId>> = vec![vec![]; spec.n_ys()];
    let order: Vec<usize> = if spec.reverse {
        (0..spec.trips).rev().collect()
    } else {
        (0..spec.trips).collect()
    };
    for t in order {
        let mut args = carries.clone();
        for &xs in &ops[nc..nc + nx] {
            let shape = u.shape(xs).clone();
            let mut dims = vec![SliceDim {
                start: t,
                step: 1,
                len: 1,
            }];
            dims.extend(shape[1..].iter().map(|&len| SliceDim {
                start: 0,
                step: 1,
                len,
            }));
            let s = u.add(Op::Slice(dims), vec![xs])?;
            args.push(u.reshape(s, &shape[1..])?);
        }
        args.extend_from_slice(&ops[nc + nx..]);
        let m = copy_nodes(u, body, &args, true)?;
        u.set_loc(loc);
        carries = body.outputs[..nc].iter().map(|o| m[o.index()]).collect();
        for (k, o) in body.outputs[nc..].iter().enumerate() {
            let y = m[o.index()];
            let mut one = vec![1];
            one.extend(u.shape(y).iter().copied());
            let r = u.reshape(y, &one)?;
            rows[k].push(r);
        }
    }
    if spec.reverse {
        rows.iter_mut().for_each(|r| r.reverse());
    }
    let mut results = carries;
    for (r, (shape, dtype)) in rows
        .into_iter()
        .zip(spec.result_types().into_iter().skip(nc))
    {
        results.push(match r.len() {
            0 => u.constant(Tensor::full(dtype, shape, 0.0)),
            1 => r[0],
            _ => u.add(Op::Concat(0), r)?,
        });
    }
    pack_results(u, spec, &results)
}

/// `g` with every loop of at least `min_trips` iterations (nested ones too) split into
/// segments: `T = B·K + R` with `K = ⌈√T⌉`, an outer loop of `B` trips whose body is the
/// loop of `K` trips (xs reshaped to `[B, K] ++ row`, ys back to `[B·K] ++ row`), then a
/// loop of the `R` remaining trips (before the segments when `reverse`). The same
/// operations in the same order (equal values, bit for bit); what changes is reverse
/// mode, which stores the carries entering each segment and, per segment, those entering
/// each of its iterations: memory O(√T × carry size) instead of O(T × carry size), for
/// about one more evaluation of the loop (checkpointing).
pub fn segment_loops(g: &Graph, min_trips: usize) -> Result<Graph, IrError> {
    rebuild(g, &mut |u, spec, ins, _| {
        let body = segment_loops(&spec.body, min_trips)?;
        let spec = LoopSpec::new(body, spec.n_carry, spec.n_xs, spec.trips, spec.reverse)?;
        if spec.trips < min_trips.max(2) {
            return u.add(Op::Loop(std::sync::Arc::new(spec)), ins.to_vec());
        }
        segment_loop(u, &spec, ins)
    })
}

/// One loop as segments (see [`segment_loops`]); returns its packed value.
fn segment_loop(u: &mut Graph, spec: &LoopSpec, ops: &[NodeId]) -> Result<NodeId, IrError> {
    let (nc, nx, t) = (spec.n_carry, spec.n_xs, spec.trips);
    let k = (t as f64).sqrt().ceil() as usize;
    let (nb, r) = (t / k, t % k);
    let b = &spec.body;
    // rows [lo, lo + n) of every xs
    let rows = |u: &mut Graph, lo: usize, n: usize| -> Result<Vec<NodeId>, IrError> {
        ops[nc..nc + nx]
            .iter()
            .map(|&x| {
                let shape = u.shape(x).clone();
                let mut dims = vec![SliceDim {
                    start: lo,
                    step: 1,
                    len: n,
                }];
                dims.extend(shape[1..].iter().map(|&len| SliceDim {
                    start: 0,
                    step: 1,
                    len,
                }));
                u.slice(x, dims)
            })
            .collect()
    };
    // the outer body: the loop of K trips
    let mut ob = Graph::new();
    let mut args = vec![];
    for (j, &i) in b.inputs.iter().enumerate() {
        let mut shape = b.shape(i).clone();
        if j >= nc && j < nc + nx {
            shape.insert(0, k);
        }
        let name = b.input_names.get(j).map_or("", |s| s.as_str());
        args.push(ob.add_input(name, shape, b.dtype(i)));
    }
    let inner = LoopSpec::new(b.clone(), nc, nx, k, spec.reverse)?;
    ob.outputs = ob.add_loop(inner, args)?;
    let outer = LoopSpec::new(ob, nc, nx, nb, spec.reverse)?;
    let run_outer = |u: &mut Graph, carries: &[NodeId]| -> Result<Vec<NodeId>, IrError> {
        let mut o = carries.to_vec();
        for x in rows(u, 0, nb * k)? {
            let mut s = u.shape(x).clone();
            s[0] = k;
            s.insert(0, nb);
            o.push(u.reshape(x, &s)?);
        }
        o.extend_from_slice(&ops[nc + nx..]);
        let mut res = u.add_loop(outer.clone(), o)?;
        for y in res[nc..].iter_mut() {
            let mut s = u.shape(*y)[1..].to_vec();
            s[0] = nb * k;
            *y = u.reshape(*y, &s)?;
        }
        Ok(res)
    };
    let run_rest = |u: &mut Graph, carries: &[NodeId]| -> Result<Vec<NodeId>, IrError> {
        let rest = LoopSpec::new(b.clone(), nc, nx, r, spec.reverse)?;
        let mut o = carries.to_vec();
        o.extend(rows(u, nb * k, r)?);
        o.extend_from_slice(&ops[nc + nx..]);
        u.add_loop(rest, o)
    };
    let (seg, rest) = if r == 0 {
        (run_outer(u, &ops[..nc])?, None)
    } else if spec.reverse {
        let rest = run_rest(u, &ops[..nc])?;
        (run_outer(u, &rest[..nc])?, Some(rest))
    } else {
        let seg = run_outer(u, &ops[..nc])?;
        let rest = run_rest(u, &seg[..nc])?;
        (seg, Some(rest))
    };
    let mut results = match (&rest, spec.reverse) {
        (Some(rest), false) => rest[..nc].to_vec(),
        _ => seg[..nc].to_vec(),
    };
    for j in nc..seg.len() {
        results.push(match &rest {
            Some(rest) => u.add(Op::Concat(0), vec![seg[j], rest[j]])?,
            None => seg[j],
        });
    }
    pack_results(u, spec, &results)
}
