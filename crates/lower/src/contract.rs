//! Two-operand einsum (`Contract`). Labels split into batch (in a, b and out), m (a and out),
//! n (b and out) and k (a and b, summed). Large products run as one GEMM (`matmul.rs`) per batch index
//! on strided operand views (a transposed operand is read in place; an operand whose m/k
//! (k/n) axes cannot be merged into one strided axis is first packed by a copy step); the
//! result is written as `[batch, m, n]` and the node's value is a (free) transposed view
//! of it. Small products (and dot products) are summed directly in the reference's order:
//! for each output element, `0.0 + Σ a·b` over the summed labels in row-major order, so
//! they are bit-identical to the reference; GEMM may sum in another order (and use FMA).

use autodiff_ir::{ContractSpec, DType};

use crate::view::Loc;
use crate::Env;

/// Products `m·n·k` below this are summed directly.
pub(crate) const GEMM_MIN: usize = 4096;

#[derive(Clone, Debug, Default)]
pub(crate) struct Labels {
    pub batch: Vec<u8>,
    pub m: Vec<u8>,
    pub n: Vec<u8>,
    pub k: Vec<u8>,
}

pub(crate) fn classify(spec: &ContractSpec) -> Labels {
    let mut l = Labels::default();
    for &c in &spec.out {
        match (spec.a.contains(&c), spec.b.contains(&c)) {
            (true, true) => l.batch.push(c),
            (true, false) => l.m.push(c),
            (false, true) => l.n.push(c),
            (false, false) => {}
        }
    }
    l.k = spec
        .a
        .iter()
        .copied()
        .filter(|c| !spec.out.contains(c))
        .collect();
    l
}

/// Positions of `order`'s labels in `labels`.
pub(crate) fn perm_of(labels: &[u8], order: &[u8]) -> Vec<usize> {
    order
        .iter()
        .map(|c| {
            labels
                .iter()
                .position(|x| x == c)
                .expect("label of the operand")
        })
        .collect()
}

/// A group of axes as one strided axis `(extent, stride)`, if they merge.
pub(crate) fn merge(shape: &[usize], strides: &[isize]) -> Option<(usize, isize)> {
    let (sh, st) = crate::view::collapse(shape, strides);
    match sh.len() {
        0 => Some((1, 1)),
        1 => Some((sh[0], st[0])),
        _ => None,
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Plan {
    /// For each output element (row-major over out labels): `0.0 + Σ a·b` over the summed
    /// labels in row-major order (the reference's order).
    Direct {
        out_ext: Vec<usize>,
        a_out: Vec<isize>,
        b_out: Vec<isize>,
        k_ext: Vec<usize>,
        a_k: Vec<isize>,
        b_k: Vec<isize>,
    },
    /// `C[batch] = A[batch] (m×k) · B[batch] (k×n)`, C contiguous `[batch, m, n]`.
    Gemm {
        batch_ext: Vec<usize>,
        a_batch: Vec<isize>,
        b_batch: Vec<isize>,
        m: usize,
        n: usize,
        k: usize,
        rsa: isize,
        csa: isize,
        rsb: isize,
        csb: isize,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct Contract {
    pub a: Loc,
    pub a_off: isize,
    pub b: Loc,
    pub b_off: isize,
    pub out: Loc,
    pub size: usize,
    pub round: DType,
    pub plan: Plan,
}

/// Visits a row-major odometer over `ext` with two running offsets.
fn walk2(ext: &[usize], s1: &[isize], s2: &[isize], mut f: impl FnMut(isize, isize)) {
    if ext.contains(&0) {
        return;
    }
    let r = ext.len();
    let mut idx = [0usize; 64];
    let (mut o1, mut o2) = (0isize, 0isize);
    loop {
        f(o1, o2);
        let mut d = r;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            o1 += s1[d];
            o2 += s2[d];
            if idx[d] < ext[d] {
                break;
            }
            o1 -= s1[d] * ext[d] as isize;
            o2 -= s2[d] * ext[d] as isize;
            idx[d] = 0;
        }
    }
}

impl Contract {
    /// # Safety
    /// The operands resolve to live buffers covering their views; `out` is a distinct slot
    /// of `size` elements.
    pub unsafe fn run(&self, env: &Env) {
        let a = env.ptr(self.a).offset(self.a_off);
        let b = env.ptr(self.b).offset(self.b_off);
        let out = std::slice::from_raw_parts_mut(env.mut_ptr(self.out), self.size);
        match &self.plan {
            Plan::Direct {
                out_ext,
                a_out,
                b_out,
                k_ext,
                a_k,
                b_k,
            } => {
                let mut i = 0;
                let single_k = (k_ext.len() == 1).then(|| (k_ext[0], a_k[0], b_k[0]));
                walk2(out_ext, a_out, b_out, |oa, ob| {
                    let mut acc = 0.0;
                    if let Some((kn, sa, sb)) = single_k {
                        let (mut pa, mut pb) = (a.offset(oa), b.offset(ob));
                        for _ in 0..kn {
                            acc += *pa * *pb;
                            pa = pa.offset(sa);
                            pb = pb.offset(sb);
                        }
                    } else {
                        walk2(k_ext, a_k, b_k, |ia, ib| {
                            acc += *a.offset(oa + ia) * *b.offset(ob + ib);
                        });
                    }
                    out[i] = acc;
                    i += 1;
                });
            }
            Plan::Gemm {
                batch_ext,
                a_batch,
                b_batch,
                m,
                n,
                k,
                rsa,
                csa,
                rsb,
                csb,
            } => {
                let (m, n, k) = (*m, *n, *k);
                if m * n == 0 {
                    return;
                }
                let mut bi = 0usize;
                walk2(batch_ext, a_batch, b_batch, |oa, ob| {
                    let c = out.as_mut_ptr().add(bi * m * n);
                    crate::matmul::matmul(
                        m,
                        n,
                        k,
                        a.offset(oa),
                        *rsa,
                        *csa,
                        b.offset(ob),
                        *rsb,
                        *csb,
                        c,
                    );
                    bi += 1;
                });
            }
        }
        self.round.round_all(out);
    }
}
