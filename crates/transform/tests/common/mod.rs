//! The finite-difference oracle shared by the transform tests.
//!
//! `check(name, inputs, f)` builds `out = f(inputs)` and checks, for the float inputs:
//! - reverse mode: `vjp(out, w)` against central differences of `loss = sum(out * w)`,
//!   element by element (w fixed random weights);
//! - forward mode: `jvp(out, u)` against central differences of `out` along `u`;
//! - consistency: `<w, J u>` (forward) equals `<Jᵀ w, u>` (reverse);
//! - the graph still verifies after both transforms.
#![allow(dead_code)]

use autodiff_exec::eval;
use autodiff_ir::{verify::verify, DType, Graph, IrError, NodeId, Tensor};
use autodiff_transform::{jvp, vjp};

pub const H: f64 = 1e-5;
pub const TOL: f64 = 1e-6;

/// A small deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: &str) -> Rng {
        let mut h = 0xcbf29ce484222325u64;
        for b in seed.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        Rng(h | 1)
    }
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
    pub fn tensor(&mut self, shape: &[usize], lo: f64, hi: f64) -> Tensor {
        let n = shape.iter().product();
        let data = (0..n).map(|_| self.uniform(lo, hi)).collect();
        Tensor::new(DType::F64, shape.to_vec(), data)
    }
}

/// A test input: uniform random in `[lo, hi]`, or a given tensor (float tensors are
/// differentiated too; int/bool ones are not).
pub enum In {
    Rand(Vec<usize>, f64, f64),
    Val(Tensor),
}

pub fn rand(shape: &[usize], lo: f64, hi: f64) -> In {
    In::Rand(shape.to_vec(), lo, hi)
}

pub fn val(shape: &[usize], data: &[f64]) -> In {
    In::Val(Tensor::new(DType::F64, shape.to_vec(), data.to_vec()))
}

pub fn ints(shape: &[usize], data: &[i64]) -> In {
    In::Val(Tensor::new(
        DType::I64,
        shape.to_vec(),
        data.iter().map(|&v| v as f64).collect(),
    ))
}

/// A graph with the given inputs (named x0, x1, ...) and their values.
pub fn setup(name: &str, ins: Vec<In>) -> (Graph, Vec<NodeId>, Vec<Tensor>, Rng) {
    let mut rng = Rng::new(name);
    let mut g = Graph::new();
    let mut xs = vec![];
    let mut vals = vec![];
    for (i, inp) in ins.into_iter().enumerate() {
        let t = match inp {
            In::Rand(s, lo, hi) => rng.tensor(&s, lo, hi),
            In::Val(t) => t,
        };
        xs.push(g.add_input(&format!("x{i}"), t.shape.clone(), t.dtype));
        vals.push(t);
    }
    (g, xs, vals, rng)
}

pub fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

pub fn dot(a: &Tensor, b: &Tensor) -> f64 {
    a.data.iter().zip(&b.data).map(|(x, y)| x * y).sum()
}

pub fn ev(g: &Graph, vals: &[Tensor], outs: &[NodeId]) -> Vec<Tensor> {
    eval(g, vals, outs).unwrap_or_else(|e| panic!("eval failed: {e}"))
}

/// `vals` with float input `k` moved by `s * dir`.
fn moved(vals: &[Tensor], k: usize, dir: &Tensor, s: f64) -> Vec<Tensor> {
    let mut v = vals.to_vec();
    for (x, d) in v[k].data.iter_mut().zip(&dir.data) {
        *x += s * d;
    }
    v
}

/// The full first-order check of `out = f(inputs)`; see the module docs.
pub fn check(
    name: &str,
    ins: Vec<In>,
    f: impl FnOnce(&mut Graph, &[NodeId]) -> Result<NodeId, IrError>,
) {
    check_tol(name, ins, TOL, f)
}

pub fn check_tol(
    name: &str,
    ins: Vec<In>,
    tol: f64,
    f: impl FnOnce(&mut Graph, &[NodeId]) -> Result<NodeId, IrError>,
) {
    let (mut g, xs, vals, mut rng) = setup(name, ins);
    let out = f(&mut g, &xs).unwrap_or_else(|e| panic!("{name}: building: {e}"));
    assert_eq!(g.dtype(out), DType::F64, "{name}: output must be float64");
    let wrt_k: Vec<usize> = (0..xs.len())
        .filter(|&k| g.dtype(xs[k]).is_float())
        .collect();
    let wrt: Vec<NodeId> = wrt_k.iter().map(|&k| xs[k]).collect();
    let w = rng.tensor(g.shape(out), -1.0, 1.0);
    let wc = g.constant(w.clone());
    let grads = vjp(&mut g, &[out], &[wc], &wrt).unwrap_or_else(|e| panic!("{name}: vjp: {e}"));
    let us: Vec<Tensor> = wrt
        .iter()
        .map(|&x| rng.tensor(g.shape(x), -1.0, 1.0))
        .collect();
    let ucs: Vec<NodeId> = us.iter().map(|u| g.constant(u.clone())).collect();
    let tan = jvp(&mut g, &[out], &wrt, &ucs).unwrap_or_else(|e| panic!("{name}: jvp: {e}"))[0];
    verify(&g).unwrap_or_else(|e| panic!("{name}: verify: {e}"));
    for (&gr, &x) in grads.iter().zip(&wrt) {
        assert_eq!(
            (g.shape(gr), g.dtype(gr)),
            (g.shape(x), g.dtype(x)),
            "{name}: gradient type"
        );
    }
    let mut outs = grads.clone();
    outs.push(tan);
    outs.push(out);
    let r = ev(&g, &vals, &outs);
    let (gr, t) = (&r[..grads.len()], &r[grads.len()]);
    let loss = |v: &[Tensor]| dot(&ev(&g, v, &[out])[0], &w);
    // reverse mode vs central differences, element by element
    for (j, &k) in wrt_k.iter().enumerate() {
        for e in 0..vals[k].size() {
            let mut d = Tensor::full(DType::F64, vals[k].shape.clone(), 0.0);
            d.data[e] = 1.0;
            let fd = (loss(&moved(&vals, k, &d, H)) - loss(&moved(&vals, k, &d, -H))) / (2.0 * H);
            let an = gr[j].data[e];
            assert!(
                close(an, fd, tol),
                "{name}: vjp d/dx{k}[{e}]: reverse {an} vs finite difference {fd}"
            );
        }
    }
    // forward mode vs central differences along u
    let mut plus = vals.clone();
    let mut minus = vals.clone();
    for (j, &k) in wrt_k.iter().enumerate() {
        plus = moved(&plus, k, &us[j], H);
        minus = moved(&minus, k, &us[j], -H);
    }
    let (op, om) = (&ev(&g, &plus, &[out])[0], &ev(&g, &minus, &[out])[0]);
    for e in 0..t.size() {
        let fd = (op.data[e] - om.data[e]) / (2.0 * H);
        assert!(
            close(t.data[e], fd, tol),
            "{name}: jvp[{e}]: forward {} vs finite difference {fd}",
            t.data[e]
        );
    }
    // <w, J u> == <J^T w, u>
    let fwd = dot(&w, t);
    let rev: f64 = gr.iter().zip(&us).map(|(a, b)| dot(a, b)).sum();
    assert!(
        close(fwd, rev, 1e-9),
        "{name}: <w, J u> = {fwd} but <J^T w, u> = {rev}"
    );
}
