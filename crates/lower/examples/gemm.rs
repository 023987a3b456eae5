//! Matrix products, kernel level: `matrixmultiply::dgemm` (the previous backend) against the
//! `gemm` crate (one thread and on the rayon pool) and against what `Program` runs for a
//! one-`Contract` graph (gemm for matrices, our own loops for matrix × vector), on the
//! shapes of the logistic-regression and MLP benchmarks. Times are the best of interleaved
//! repetitions (the machine may be shared). NumPy's side is `benches/gemm.py`.
//!
//! `cargo run --release -p autodiff-lower --example gemm [name filter]`
//! (`RAYON_NUM_THREADS` and `MATMUL_NUM_THREADS` set the threads of each side.)

use std::time::Instant;

use autodiff_ir::{DType, Graph, Tensor};
use autodiff_lower::Program;

fn data(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect()
}

fn secs(f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn main() {
    println!(
        "rayon threads: {}; MATMUL_NUM_THREADS={}",
        rayon::current_num_threads(),
        std::env::var("MATMUL_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );
    // (name, m, n, k, A stored transposed, B stored transposed)
    let shapes: &[(&str, usize, usize, usize, bool, bool)] = &[
        ("X @ w        20000x200 @ 200", 20000, 1, 200, false, false),
        ("X.T @ r      200x20000 @ 20000", 200, 1, 20000, true, false),
        (
            "Xb @ W1      512x784 @ 784x256",
            512,
            256,
            784,
            false,
            false,
        ),
        ("h @ W2       512x256 @ 256x10", 512, 10, 256, false, false),
        ("Xb.T @ d1    784x512 @ 512x256", 784, 256, 512, true, false),
        ("h.T @ d2     256x512 @ 512x10", 256, 10, 512, true, false),
        ("d2 @ W2.T    512x10 @ 10x256", 512, 256, 10, false, true),
        ("d1 @ W1.T    512x256 @ 256x784", 512, 784, 256, false, true),
    ];
    println!(
        "{:<32} {:>14} {:>14} {:>14} {:>14} {:>14}   (µs, best of interleaved runs)",
        "product", "matrixmultiply", "gemm 1 thread", "gemm rayon", "ours (kernel)", "Program"
    );
    let only = std::env::args().nth(1).unwrap_or_default();
    for &(name, m, n, k, ta, tb) in shapes.iter().filter(|s| s.0.contains(&only)) {
        let (a, b) = (data(m * k, 1), data(k * n, 2));
        let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
        let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
        let mut c = vec![0.0; m * n];
        // the same product as a one-node graph
        let mut g = Graph::new();
        let ash = if ta { vec![k, m] } else { vec![m, k] };
        let bsh = match (n, tb) {
            (1, _) => vec![k],
            (_, true) => vec![n, k],
            (_, false) => vec![k, n],
        };
        let xa = g.add_input("a", ash.clone(), DType::F64);
        let xb = g.add_input("b", bsh.clone(), DType::F64);
        let spec = match (n, ta, tb) {
            (1, false, _) => "ik,k->i",
            (1, true, _) => "ki,k->i",
            (_, false, false) => "ik,kj->ij",
            (_, true, false) => "ki,kj->ij",
            (_, false, true) => "ik,jk->ij",
            (_, true, true) => "ki,jk->ij",
        };
        let out = g.contract(spec, xa, xb).unwrap();
        let p = Program::compile(&g, &[out]).unwrap();
        let ins = [
            Tensor::new(DType::F64, ash, a.clone()),
            Tensor::new(DType::F64, bsh, b.clone()),
        ];
        let slices: Vec<&[f64]> = ins.iter().map(|t| t.data.as_slice()).collect();
        let want = autodiff_exec::eval(&g, &ins, &[out]).unwrap();
        let got = p.run_f64(&slices).unwrap();
        let err = want[0]
            .data
            .iter()
            .zip(&got[0])
            .map(|(x, y)| (x - y).abs() / x.abs().max(1e-3))
            .fold(0.0, f64::max);
        assert!(
            err < 1e-11,
            "{name}: Program differs from the reference: {err:e}"
        );

        // SAFETY: `a` holds the m·k elements of A and `b` the k·n of B under either
        // layout (`ta`/`tb` only choose which strides walk them), `c` is a separate m·n
        // vector written with row stride n; the closure borrows all three for its lifetime.
        let mut mm = || unsafe {
            matrixmultiply::dgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                rsa,
                csa,
                b.as_ptr(),
                rsb,
                csb,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            )
        };
        let mut cc = vec![0.0; m * n];
        // SAFETY: the same operands and strides as above (gemm takes column stride first),
        // into the separate m·n vector `cc` with row stride n; `read_dst` is false, so `cc`
        // is only written. Borrowed by the closure for its lifetime.
        let mut gm = |par| unsafe {
            gemm::gemm(
                m,
                n,
                k,
                cc.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                csa,
                rsa,
                b.as_ptr(),
                csb,
                rsb,
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            )
        };
        let mut cm = vec![0.0; m * n];
        // SAFETY: `__matmul`'s contract: `a`/`b` cover their strided m×k and k×n views
        // (as above), `cm` is a separate m·n vector; all borrowed by the closure.
        let mut ours = || unsafe {
            autodiff_lower::__matmul(
                m,
                n,
                k,
                a.as_ptr(),
                rsa,
                csa,
                b.as_ptr(),
                rsb,
                csb,
                cm.as_mut_ptr(),
            )
        };
        let flops = 2.0 * (m * n * k) as f64;
        let reps = ((4e9 / flops) as usize).clamp(5, 300);
        let mut best = [f64::INFINITY; 5];
        for _ in 0..reps {
            best[0] = best[0].min(secs(&mut mm));
            best[1] = best[1].min(secs(&mut || gm(gemm::Parallelism::None)));
            best[2] = best[2].min(secs(&mut || gm(gemm::Parallelism::Rayon(0))));
            best[4] = best[4].min(secs(&mut ours));
            best[3] = best[3].min(secs(&mut || {
                p.run_f64(&slices).unwrap();
            }));
        }
        println!(
            "{name:<32} {:>14.1} {:>14.1} {:>14.1} {:>14.1} {:>14.1}   Program {:.1} GFLOP/s",
            best[0] * 1e6,
            best[1] * 1e6,
            best[2] * 1e6,
            best[4] * 1e6,
            best[3] * 1e6,
            flops / best[3] / 1e9
        );
    }
}
