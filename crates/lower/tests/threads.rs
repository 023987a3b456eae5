//! Large kernels give the same bits on 1, 2 and 3 threads (tasks are cut by the shape, and
//! partial folds combined in a fixed order), and agree with the reference evaluator.

use autodiff_ir::{BinaryOp, DType, Graph, NodeId, Tensor, UnaryOp};
use autodiff_lower::Program;

fn data(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect()
}

fn pool(t: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(t)
        .build()
        .unwrap()
}

/// `tanh(x)·exp(-x²) + x` over `shape`, then the reductions given (each over `axes`).
fn graph(shape: &[usize], reductions: &[&[usize]]) -> (Graph, Vec<NodeId>) {
    let mut g = Graph::new();
    let x = g.add_input("x", shape.to_vec(), DType::F64);
    let t = g.unary(UnaryOp::Tanh, x).unwrap();
    let two = g.scalar(2.0, DType::F64);
    let x2 = g.binary(BinaryOp::Pow, x, two).unwrap();
    let nx2 = g.neg(x2).unwrap();
    let e = g.unary(UnaryOp::Exp, nx2).unwrap();
    let te = g.mul(t, e).unwrap();
    let y = g.add_(te, x).unwrap();
    let mut outs = vec![y];
    for axes in reductions {
        outs.push(g.sum(y, axes).unwrap());
    }
    (g, outs)
}

#[test]
fn kernels_are_independent_of_thread_count() {
    let cases: [(&[usize], &[&[usize]]); 4] = [
        (&[300_001], &[&[0]]),
        (&[700, 300], &[&[0], &[1], &[0, 1]]),
        (&[3, 50_000], &[&[1], &[0]]),
        (&[40_000, 2], &[&[0]]),
    ];
    for (shape, reds) in cases {
        let (g, outs) = graph(shape, reds);
        let n: usize = shape.iter().product();
        let x = Tensor::new(DType::F64, shape.to_vec(), data(n, 7));
        let p = Program::compile(&g, &outs).unwrap();
        let one = pool(1).install(|| p.run(std::slice::from_ref(&x)).unwrap());
        for t in [2, 3] {
            let many = pool(t).install(|| p.run(std::slice::from_ref(&x)).unwrap());
            for (k, (a, b)) in one.iter().zip(&many).enumerate() {
                assert!(
                    a.data
                        .iter()
                        .zip(&b.data)
                        .all(|(u, v)| u.to_bits() == v.to_bits()),
                    "{shape:?} output {k}: {t} threads differ from 1"
                );
            }
        }
        let want = autodiff_exec::eval(&g, std::slice::from_ref(&x), &outs).unwrap();
        for (k, (a, b)) in want.iter().zip(&one).enumerate() {
            let scale = a.data.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (u, v) in a.data.iter().zip(&b.data) {
                assert!(
                    (u - v).abs() <= 1e-12 * scale * (n as f64).sqrt(),
                    "{shape:?} output {k}: reference {u}, program {v}"
                );
            }
        }
    }
}
