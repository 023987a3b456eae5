//! An MLP's forward pass and gradient (built with the graph builders and
//! `autodiff_transform::grad`) matches the reference evaluator.

mod common;

use autodiff_ir::{DType, Graph, NodeId, Tensor, UnaryOp};
use autodiff_lower::Program;
use common::*;

/// `loss = sum((tanh(tanh(x W1 + b1) W2 + b2) W3 + b3 - y)^2) / n` and its gradient with
/// respect to every weight and bias. Returns the graph, the outputs (loss, grads), and
/// inputs.
pub fn mlp(
    batch: usize,
    sizes: &[usize],
    dtype: DType,
    seed: u64,
) -> (Graph, Vec<NodeId>, Vec<Tensor>) {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![batch, sizes[0]], dtype);
    let mut params = vec![];
    let mut h = x;
    for (l, w) in sizes.windows(2).enumerate() {
        let wn = g.add_input(&format!("W{l}"), vec![w[0], w[1]], dtype);
        let bn = g.add_input(&format!("b{l}"), vec![w[1]], dtype);
        params.push(wn);
        params.push(bn);
        let z = g.matmul(h, wn).unwrap();
        let z = g.add_(z, bn).unwrap();
        h = if l + 2 < sizes.len() {
            g.unary(UnaryOp::Tanh, z).unwrap()
        } else {
            z
        };
    }
    let y = g.add_input("y", vec![batch, *sizes.last().unwrap()], dtype);
    let d = g.sub(h, y).unwrap();
    let sq = g.unary(UnaryOp::Square, d).unwrap();
    let s = g.sum(sq, &[0, 1]).unwrap();
    let loss = g.scale(s, 1.0 / batch as f64).unwrap();
    let grads = autodiff_transform::grad(&mut g, loss, &params).unwrap();
    let mut outs = vec![loss];
    outs.extend(grads);
    let mut rng = Rng(seed | 1);
    let ins = g
        .inputs
        .iter()
        .map(|&id| {
            let shape = g.shape(id).clone();
            let n: usize = shape.iter().product();
            let scale = 1.0 / (shape[0] as f64).sqrt();
            let data = (0..n).map(|_| (rng.unit() * 2.0 - 1.0) * scale).collect();
            Tensor::new(dtype, shape, data)
        })
        .collect();
    (g, outs, ins)
}

#[test]
fn small_mlp_gradient_matches_reference_exactly() {
    // small: every contraction takes the reference-order path; the only differences left
    // are the activations' transcendental functions (vmath: within 2 ulp, not bit-equal
    // to libm), so a few ulp after propagation
    let (g, outs, ins) = mlp(4, &[5, 6, 3], DType::F64, 7);
    check_against_reference(&g, &outs, &ins, 1e-14, 0.0).unwrap();
}

#[test]
fn mlp_gradient_matches_reference() {
    let (g, outs, ins) = mlp(64, &[32, 48, 48, 10], DType::F64, 11);
    check_against_reference(&g, &outs, &ins, 1e-12, 1e-12).unwrap();
    let p = Program::compile(&g, &outs).unwrap();
    assert!(p.stats().contains("gemm"), "{}", p.stats());
}

#[test]
fn float32_mlp_gradient_matches_reference() {
    // float32 nodes compute in f64 and round once per node, like the reference; dgemm
    // sums in another order, so the last float32 bit may differ
    let (g, outs, ins) = mlp(32, &[16, 24, 4], DType::F32, 3);
    check_against_reference(&g, &outs, &ins, 1e-6, 1e-6).unwrap();
}

#[test]
fn program_is_reusable_across_runs_and_threads() {
    let (g, outs, ins) = mlp(16, &[8, 12, 3], DType::F64, 5);
    let p = Program::compile(&g, &outs).unwrap();
    let want = autodiff_exec::eval(&g, &ins, &outs).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..20 {
                    let got = p.run(&ins).unwrap();
                    assert_eq!(got.len(), want.len());
                    for (a, b) in got.iter().zip(&want) {
                        for (x, y) in a.data.iter().zip(&b.data) {
                            assert!(close(*x, *y, 1e-12, 1e-12), "{x} vs {y}");
                        }
                    }
                }
            });
        }
    });
}

#[test]
fn program_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Program>();
}
