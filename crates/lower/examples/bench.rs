//! Micro-benchmark: the reference evaluator vs `Program::run` on
//! (a) sum(exp(x)*sin(x) + x**2) over 1e6 elements, (b) a chain of three 256×256 matmuls,
//! (c) an MLP gradient, (d) a tiny graph (per-run overhead).
//!
//! `cargo run --release -p autodiff-lower --example bench`

use std::time::Instant;

use autodiff_ir::{BinaryOp, DType, Graph, NodeId, Tensor, UnaryOp};
use autodiff_lower::Program;

fn rand(shape: &[usize], seed: u64) -> Tensor {
    let mut s = seed | 1;
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect();
    Tensor::new(DType::F64, shape.to_vec(), data)
}

/// Median seconds of `reps` runs of `f`.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut ts: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    ts[reps / 2]
}

fn compare(name: &str, g: &Graph, outs: &[NodeId], ins: &[Tensor], reps: usize) {
    let p = Program::compile(g, outs).unwrap();
    let want = autodiff_exec::eval(g, ins, outs).unwrap();
    let got = p.run(ins).unwrap();
    let mut err = 0.0f64;
    for (a, b) in want.iter().zip(&got) {
        for (x, y) in a.data.iter().zip(&b.data) {
            err = err.max((x - y).abs() / x.abs().max(1e-300));
        }
    }
    let t_ref = time(reps.div_ceil(4).max(3), || {
        autodiff_exec::eval(g, ins, outs).unwrap();
    });
    let slices: Vec<&[f64]> = ins.iter().map(|t| t.data.as_slice()).collect();
    let t_prog = time(reps, || {
        p.run_f64(&slices).unwrap();
    });
    println!(
        "{name:<34} reference {:>10.1} us   program {:>9.1} us   speedup {:>6.1}x   max rel diff {err:.1e}",
        t_ref * 1e6,
        t_prog * 1e6,
        t_ref / t_prog
    );
    println!("    {}", p.stats());
}

fn main() {
    let threads = rayon::current_num_threads();
    println!("rayon threads: {threads}");
    // (a) elementwise chain + sum
    {
        let mut g = Graph::new();
        let x = g.add_input("x", vec![1_000_000], DType::F64);
        let e = g.unary(UnaryOp::Exp, x).unwrap();
        let s = g.unary(UnaryOp::Sin, x).unwrap();
        let es = g.mul(e, s).unwrap();
        let two = g.scalar(2.0, DType::F64);
        let x2 = g.binary(BinaryOp::Pow, x, two).unwrap();
        let y = g.add_(es, x2).unwrap();
        let r = g.sum(y, &[0]).unwrap();
        let ins = [rand(&[1_000_000], 1)];
        compare("(a) sum(exp(x)sin(x)+x**2), 1e6", &g, &[r], &ins, 20);
        // same chain, no reduction (stores 1e6 values)
        compare("(a') exp(x)sin(x)+x**2, 1e6", &g, &[y], &ins, 20);
    }
    // (b) matmul chain
    {
        let mut g = Graph::new();
        let a = g.add_input("a", vec![256, 256], DType::F64);
        let b = g.add_input("b", vec![256, 256], DType::F64);
        let c = g.add_input("c", vec![256, 256], DType::F64);
        let d = g.add_input("d", vec![256, 256], DType::F64);
        let ab = g.matmul(a, b).unwrap();
        let abc = g.matmul(ab, c).unwrap();
        let abcd = g.matmul(abc, d).unwrap();
        let ins = [
            rand(&[256, 256], 2),
            rand(&[256, 256], 3),
            rand(&[256, 256], 4),
            rand(&[256, 256], 5),
        ];
        compare("(b) 256x256 matmul chain (3)", &g, &[abcd], &ins, 20);
    }
    // (c) MLP gradient
    {
        let (batch, sizes) = (128usize, [256usize, 256, 256, 10]);
        let mut g = Graph::new();
        let x = g.add_input("x", vec![batch, sizes[0]], DType::F64);
        let mut params = vec![];
        let mut h = x;
        for (l, w) in sizes.windows(2).enumerate() {
            let wn = g.add_input(&format!("W{l}"), vec![w[0], w[1]], DType::F64);
            let bn = g.add_input(&format!("b{l}"), vec![w[1]], DType::F64);
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
        let y = g.add_input("y", vec![batch, 10], DType::F64);
        let d = g.sub(h, y).unwrap();
        let sq = g.unary(UnaryOp::Square, d).unwrap();
        let loss = g.sum(sq, &[0, 1]).unwrap();
        let grads = autodiff_transform::grad(&mut g, loss, &params).unwrap();
        let mut outs = vec![loss];
        outs.extend(grads);
        let ins: Vec<Tensor> = g
            .inputs
            .iter()
            .enumerate()
            .map(|(k, &id)| rand(g.shape(id), 10 + k as u64))
            .collect();
        compare("(c) MLP 128x256-256-256-10 grad", &g, &outs, &ins, 20);
    }
    // (e) cheap arithmetic chain (memory-bound)
    {
        let mut g = Graph::new();
        let x = g.add_input("x", vec![1000, 1000], DType::F64);
        let y = g.add_input("y", vec![1000, 1000], DType::F64);
        let b = g.add_input("b", vec![1000], DType::F64);
        let d = g.sub(x, y).unwrap();
        let d = g.scale(d, 0.5).unwrap();
        let xy = g.mul(x, y).unwrap();
        let r = g.add_(d, xy).unwrap();
        let r = g.add_(r, b).unwrap();
        let s = g.sum(r, &[0]).unwrap();
        let ins = [
            rand(&[1000, 1000], 21),
            rand(&[1000, 1000], 22),
            rand(&[1000], 23),
        ];
        compare("(e) (x-y)*.5+x*y+b, 1e6", &g, &[r], &ins, 20);
        compare("(e') sum((x-y)*.5+x*y+b, axis 0)", &g, &[s], &ins, 20);
    }
    // (d) tiny graph: per-run overhead
    {
        let mut g = Graph::new();
        let x = g.add_input("x", vec![3], DType::F64);
        let y = g.add_input("y", vec![3], DType::F64);
        let a = g.mul(x, y).unwrap();
        let b = g.unary(UnaryOp::Sin, a).unwrap();
        let c = g.add_(b, x).unwrap();
        let s = g.sum(c, &[0]).unwrap();
        let ins = [rand(&[3], 7), rand(&[3], 8)];
        compare(
            "(d) tiny: sum(sin(x*y)+x), 3 elems",
            &g,
            &[s, c],
            &ins,
            20001,
        );
    }
}
