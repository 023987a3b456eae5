//! Kernels for the ops that are not fused: data movement (copy of a strided view, gather,
//! scatter, take-along, concat, set-slice), scans (cumsum/cumprod), arg-reductions,
//! argsort, and the rare linear-algebra ops (delegated to the reference evaluator on a
//! one-node graph). Every kernel reads dense row-major operands ([`Src`]) and writes a
//! whole fresh slot, and follows the reference's definitions and visiting order exactly.

use autodiff_ir::{DType, Graph, NodeId, Op, Tensor};

use crate::view::{gather_strided, Loc};
use crate::Env;

/// A dense row-major operand: `len` elements at `off` in a buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Src {
    pub loc: Loc,
    pub off: usize,
    pub len: usize,
}

/// `(Π shape[..axis], shape[axis], Π shape[axis+1..])`.
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let p = shape[..axis].iter().product();
    let q = shape[axis + 1..].iter().product();
    (p, shape[axis], q)
}

#[derive(Clone, Debug)]
pub(crate) enum Kernel {
    /// Materializes a strided view (collapsed shape/strides).
    Copy {
        loc: Loc,
        offset: isize,
        shape: Vec<usize>,
        strides: Vec<isize>,
        n: usize,
    },
    ArgMax {
        x: Src,
        pnq: (usize, usize, usize),
        is_max: bool,
    },
    /// `x` with the slice (`offset`, `shape`, `strides` in x's row-major layout) set to `v`.
    SetSlice {
        x: Src,
        v: Src,
        offset: isize,
        shape: Vec<usize>,
        strides: Vec<isize>,
    },
    /// `np.take(x, idx, axis)` with x as `(P, N, Q)`.
    Gather {
        x: Src,
        idx: Src,
        pnq: (usize, usize, usize),
    },
    /// `x` with `v` added (or written) where `Gather` would read.
    Scatter {
        x: Src,
        idx: Src,
        v: Src,
        pnq: (usize, usize, usize),
        add: bool,
        round: DType,
    },
    /// `np.take_along_axis` with x as `(P, N, Q)` and `k` indices along the axis.
    TakeAlong {
        x: Src,
        idx: Src,
        pnq: (usize, usize, usize),
        k: usize,
    },
    ScatterAlongAdd {
        x: Src,
        idx: Src,
        v: Src,
        pnq: (usize, usize, usize),
        k: usize,
        round: DType,
    },
    /// Operands `(P, n_i, Q)` joined on the middle axis.
    Concat {
        parts: Vec<(Src, usize)>,
        p: usize,
        q: usize,
    },
    Cum {
        x: Src,
        pnq: (usize, usize, usize),
        prod: bool,
        round: DType,
    },
    ArgSort {
        x: Src,
        pnq: (usize, usize, usize),
    },
    /// A rare op evaluated by the reference on a one-node graph.
    Reference {
        graph: Box<Graph>,
        node: NodeId,
        args: Vec<Src>,
    },
    /// An op that always fails at run time (e.g. max over an empty axis), as the reference.
    Fail(String),
}

fn index(v: f64, n: usize) -> Result<usize, String> {
    if v >= 0.0 && v < n as f64 {
        Ok(v as usize)
    } else {
        Err(format!("index {v} out of range for an axis of extent {n}"))
    }
}

/// Every index of `is` checked against an axis of extent `n`.
fn indices(is: &[f64], n: usize) -> Result<Vec<usize>, String> {
    is.iter().map(|&v| index(v, n)).collect()
}

/// NumPy's sort order: NaN after every number; equal values compare equal (stable).
fn nan_last(x: f64, y: f64) -> std::cmp::Ordering {
    x.partial_cmp(&y)
        .unwrap_or_else(|| x.is_nan().cmp(&y.is_nan()))
}

fn round_all(t: DType, o: &mut [f64]) {
    t.round_all(o);
}

/// Visits every offset `offset + Σ idx_d strides_d` in row-major order of `shape`.
pub(crate) fn for_each_offset(
    shape: &[usize],
    strides: &[isize],
    offset: isize,
    mut f: impl FnMut(isize),
) {
    if shape.contains(&0) {
        return;
    }
    let r = shape.len();
    let mut idx = vec![0usize; r];
    let mut pos = offset;
    loop {
        f(pos);
        let mut d = r;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            pos += strides[d];
            if idx[d] < shape[d] {
                break;
            }
            pos -= strides[d] * shape[d] as isize;
            idx[d] = 0;
        }
    }
}

impl Kernel {
    /// Runs the kernel into `out` (a fresh slot of the node's size).
    ///
    /// # Safety
    /// Every `Src` resolves to a live buffer of at least `off + len` elements, none of
    /// which is `out`.
    pub unsafe fn run(&self, env: &Env, out: &mut [f64]) -> Result<(), String> {
        match self {
            Kernel::Copy {
                loc,
                offset,
                shape,
                strides,
                n,
            } => {
                gather_strided(env.ptr(*loc), *offset, shape, strides, 0, &mut out[..*n]);
            }
            Kernel::ArgMax { x, pnq, is_max } => {
                let xs = env.slice(*x);
                let (p_n, n, q_n) = *pnq;
                for p in 0..p_n {
                    for q in 0..q_n {
                        let at = |i: usize| xs[(p * n + i) * q_n + q];
                        let mut best = 0;
                        for i in 0..n {
                            let (v, b) = (at(i), at(best));
                            if b.is_nan() {
                                break;
                            }
                            if v.is_nan() || (*is_max && v > b) || (!*is_max && v < b) {
                                best = i;
                            }
                        }
                        out[p * q_n + q] = best as f64;
                    }
                }
            }
            Kernel::SetSlice {
                x,
                v,
                offset,
                shape,
                strides,
            } => {
                out.copy_from_slice(env.slice(*x));
                let vs = env.slice(*v);
                let mut k = 0;
                for_each_offset(shape, strides, *offset, |o| {
                    out[o as usize] = vs[k];
                    k += 1;
                });
            }
            Kernel::Gather { x, idx, pnq } => {
                let (xs, is) = (env.slice(*x), env.slice(*idx));
                let (p_n, n, q_n) = *pnq;
                let m_n = is.len();
                let ii = indices(is, n)?;
                for p in 0..p_n {
                    for (m, &i) in ii.iter().enumerate() {
                        let src = (p * n + i) * q_n;
                        let dst = (p * m_n + m) * q_n;
                        out[dst..dst + q_n].copy_from_slice(&xs[src..src + q_n]);
                    }
                }
            }
            Kernel::Scatter {
                x,
                idx,
                v,
                pnq,
                add,
                round,
            } => {
                out.copy_from_slice(env.slice(*x));
                let (is, vs) = (env.slice(*idx), env.slice(*v));
                let (p_n, n, q_n) = *pnq;
                let m_n = is.len();
                let ii = indices(is, n)?;
                for p in 0..p_n {
                    for (m, &i) in ii.iter().enumerate() {
                        let dst = (p * n + i) * q_n;
                        let src = (p * m_n + m) * q_n;
                        let (o, s) = (&mut out[dst..dst + q_n], &vs[src..src + q_n]);
                        if *add {
                            o.iter_mut().zip(s).for_each(|(a, &b)| *a += b);
                        } else {
                            o.copy_from_slice(s);
                        }
                    }
                }
                round_all(*round, out);
            }
            Kernel::TakeAlong { x, idx, pnq, k } => {
                let (xs, is) = (env.slice(*x), env.slice(*idx));
                let (_, n, q_n) = *pnq;
                for (pos, &v) in is.iter().enumerate() {
                    let (p, q) = (pos / (k * q_n), pos % q_n);
                    out[pos] = xs[(p * n + index(v, n)?) * q_n + q];
                }
            }
            Kernel::ScatterAlongAdd {
                x,
                idx,
                v,
                pnq,
                k,
                round,
            } => {
                out.copy_from_slice(env.slice(*x));
                let (is, vs) = (env.slice(*idx), env.slice(*v));
                let (_, n, q_n) = *pnq;
                for (pos, &iv) in is.iter().enumerate() {
                    let (p, q) = (pos / (k * q_n), pos % q_n);
                    out[(p * n + index(iv, n)?) * q_n + q] += vs[pos];
                }
                round_all(*round, out);
            }
            Kernel::Concat { parts, p, q } => {
                let total: usize = parts.iter().map(|(_, n)| n).sum();
                for (j, (s, n)) in parts.iter().enumerate() {
                    let xs = env.slice(*s);
                    let before: usize = parts[..j].iter().map(|(_, n)| n).sum();
                    let w = n * q;
                    for pi in 0..*p {
                        let dst = (pi * total + before) * q;
                        out[dst..dst + w].copy_from_slice(&xs[pi * w..pi * w + w]);
                    }
                }
            }
            Kernel::Cum {
                x,
                pnq,
                prod,
                round,
            } => {
                let xs = env.slice(*x);
                out.copy_from_slice(xs);
                let (p_n, n, q_n) = *pnq;
                for p in 0..p_n {
                    for i in 1..n {
                        let (prev, cur) = out.split_at_mut((p * n + i) * q_n);
                        let prev = &prev[(p * n + i - 1) * q_n..];
                        let cur = &mut cur[..q_n];
                        if *prod {
                            cur.iter_mut().zip(prev).for_each(|(c, &a)| *c *= a);
                        } else {
                            cur.iter_mut().zip(prev).for_each(|(c, &a)| *c += a);
                        }
                    }
                }
                round_all(*round, out);
            }
            Kernel::ArgSort { x, pnq } => {
                let xs = env.slice(*x);
                let (p_n, n, q_n) = *pnq;
                let mut idx: Vec<usize> = Vec::with_capacity(n);
                for p in 0..p_n {
                    for q in 0..q_n {
                        let at = |i: usize| xs[(p * n + i) * q_n + q];
                        idx.clear();
                        idx.extend(0..n);
                        idx.sort_by(|&i, &j| nan_last(at(i), at(j)));
                        for (r, &i) in idx.iter().enumerate() {
                            out[(p * n + r) * q_n + q] = i as f64;
                        }
                    }
                }
            }
            Kernel::Reference { graph, node, args } => {
                let inputs: Vec<Tensor> = args
                    .iter()
                    .zip(&graph.inputs)
                    .map(|(s, &id)| Tensor {
                        dtype: graph.dtype(id),
                        shape: graph.shape(id).clone(),
                        data: env.slice(*s).to_vec(),
                    })
                    .collect();
                let r = autodiff_exec::eval(graph, &inputs, &[*node]).map_err(|e| {
                    // strip the one-node graph's "node k (op): " prefix
                    match e.0.split_once("): ") {
                        Some((_, m)) => m.to_string(),
                        None => e.0,
                    }
                })?;
                out.copy_from_slice(&r[0].data);
            }
            Kernel::Fail(msg) => return Err(msg.clone()),
        }
        Ok(())
    }

    /// The buffers this kernel reads.
    pub fn reads(&mut self) -> Vec<&mut Loc> {
        match self {
            Kernel::Copy { loc, .. } => vec![loc],
            Kernel::ArgMax { x, .. } | Kernel::Cum { x, .. } | Kernel::ArgSort { x, .. } => {
                vec![&mut x.loc]
            }
            Kernel::SetSlice { x, v, .. } => vec![&mut x.loc, &mut v.loc],
            Kernel::Gather { x, idx, .. } | Kernel::TakeAlong { x, idx, .. } => {
                vec![&mut x.loc, &mut idx.loc]
            }
            Kernel::Scatter { x, idx, v, .. } | Kernel::ScatterAlongAdd { x, idx, v, .. } => {
                vec![&mut x.loc, &mut idx.loc, &mut v.loc]
            }
            Kernel::Concat { parts, .. } => parts.iter_mut().map(|(s, _)| &mut s.loc).collect(),
            Kernel::Reference { args, .. } => args.iter_mut().map(|s| &mut s.loc).collect(),
            Kernel::Fail(_) => vec![],
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Copy { .. } => "copy",
            Kernel::ArgMax { .. } => "argmax",
            Kernel::SetSlice { .. } => "set_slice",
            Kernel::Gather { .. } => "gather",
            Kernel::Scatter { .. } => "scatter",
            Kernel::TakeAlong { .. } => "take_along",
            Kernel::ScatterAlongAdd { .. } => "scatter_along_add",
            Kernel::Concat { .. } => "concat",
            Kernel::Cum { .. } => "cumulative",
            Kernel::ArgSort { .. } => "argsort",
            Kernel::Reference { .. } => "reference",
            Kernel::Fail(_) => "fail",
        }
    }
}

/// One-node graph applying `op` to operands of the given types (for [`Kernel::Reference`]).
pub(crate) fn one_node_graph(
    op: &Op,
    operands: &[(Vec<usize>, DType)],
) -> Result<(Graph, NodeId), String> {
    let mut g = Graph::new();
    let ins: Vec<NodeId> = operands
        .iter()
        .enumerate()
        .map(|(k, (s, d))| g.add_input(&format!("x{k}"), s.clone(), *d))
        .collect();
    let id = g.add(op.clone(), ins).map_err(|e| e.0)?;
    Ok((g, id))
}
