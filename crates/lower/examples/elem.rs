//! Micro-benchmark of the issue-10 elementwise gradient: the fused kernel of
//! `d/dx sum(tanh(x)·exp(-x²) + log1p(x²))` (one pass), its parts, and the vmath kernels
//! alone, per element, on the detected ISA (`AUTODIFF_ISA` caps it).
//!
//! `cargo run --release -p autodiff-lower --example elem [n] [f32]`

use std::time::Instant;

use autodiff_ir::{BinaryOp, DType, Graph, Tensor, UnaryOp};
use autodiff_lower::vmath::{self, Func, Isa};
use autodiff_lower::Program;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}
extern "C" {
    fn clock_gettime(clk: i32, ts: *mut Timespec) -> i32;
}

/// CPU time of this thread (not counting time descheduled on a busy machine).
fn thread_time() -> f64 {
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: CLOCK_THREAD_CPUTIME_ID = 3 on Linux; `t` is a valid timespec.
    unsafe { clock_gettime(3, &mut t) };
    t.sec as f64 + t.nsec as f64 * 1e-9
}

/// Best of `reps` (wall clock, and this thread's CPU time when `CPU=1`).
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let cpu = std::env::var("CPU").is_ok_and(|v| v == "1");
    (0..reps)
        .map(|_| {
            let (t, c) = (Instant::now(), thread_time());
            f();
            if cpu {
                thread_time() - c
            } else {
                t.elapsed().as_secs_f64()
            }
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(1)
        .map_or(1_000_000, |s| s.parse::<f64>().unwrap() as usize);
    let dt = if args.get(2).is_some_and(|s| s == "f32") {
        DType::F32
    } else {
        DType::F64
    };
    println!(
        "n = {n}, {dt}, isa {:?}, rayon threads {}",
        Isa::detect(),
        rayon::current_num_threads()
    );
    let mut g = Graph::new();
    let x = g.add_input("x", vec![n], dt);
    let two = g.scalar(2.0, dt);
    let one = g.scalar(1.0, dt);
    let t1 = g.unary(UnaryOp::Tanh, x).unwrap();
    let t2 = g.binary(BinaryOp::Pow, x, two).unwrap();
    let nt2 = g.neg(t2).unwrap();
    let t3 = g.unary(UnaryOp::Exp, nt2).unwrap();
    let d = g.add_(t2, one).unwrap();
    let r = g.div(one, d).unwrap();
    let a = g.mul(t1, t3).unwrap();
    let s = g.sub(r, a).unwrap();
    let s2 = g.mul(two, s).unwrap();
    let s3 = g.mul(s2, x).unwrap();
    let t1s = g.binary(BinaryOp::Pow, t1, two).unwrap();
    let om = g.sub(one, t1s).unwrap();
    let b = g.mul(t3, om).unwrap();
    let out = g.add_(s3, b).unwrap();
    let data: Vec<f64> = (0..n)
        .map(|i| ((i as f64 * 0.618034).fract() - 0.5) * 6.0)
        .map(|v| dt.round(v))
        .collect();
    let xt = Tensor::new(dt, vec![n], data.clone());
    let p = Program::compile(&g, &[out]).unwrap();
    println!("{}", p.stats());
    let slices = [data.as_slice()];
    if let Ok(reps) = std::env::var("ONLY") {
        // profile the gradient program alone: `ONLY=reps perf record ...`
        let reps: usize = reps.parse().unwrap_or(1000);
        for _ in 0..reps {
            p.run_f64(&slices).unwrap();
        }
        return;
    }
    let t = best(20, || {
        p.run_f64(&slices).unwrap();
    });
    println!(
        "gradient program: {:.3} ms, {:.2} ns/elem",
        t * 1e3,
        t * 1e9 / n as f64
    );
    let mut o = vec![0.0; n];
    let t = best(20, || {
        p.run_f64_into(&slices, &mut [None], &mut |_, v| o.copy_from_slice(v))
            .unwrap();
    });
    println!(
        "gradient program (visit+copy): {:.3} ms, {:.2} ns/elem",
        t * 1e3,
        t * 1e9 / n as f64
    );
    let want = autodiff_exec::eval(&g, &[xt], &[out]).unwrap();
    let got = p.run_f64(&slices).unwrap();
    let err = want[0]
        .data
        .iter()
        .zip(&got[0])
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    println!("max abs diff vs reference {err:.2e}");
    for f in [Func::Tanh, Func::Exp, Func::Log1p] {
        let t = best(20, || vmath::apply(f, &mut o, &data));
        println!("vmath {f:?}: {:.2} ns/elem", t * 1e9 / n as f64);
    }
    let d32: Vec<f32> = data.iter().map(|&v| v as f32).collect();
    let mut o32 = vec![0.0f32; n];
    for f in autodiff_lower::vmath32::Func32::ALL {
        let t = best(20, || autodiff_lower::vmath32::apply(f, &mut o32, &d32));
        println!("vmath32 {f:?}: {:.2} ns/elem", t * 1e9 / n as f64);
    }
    let t = best(20, || {
        let v = vec![0.0f64; n];
        std::hint::black_box(&v);
    });
    println!("vec![0.0; n]: {:.3} ms", t * 1e3);
    let t = best(20, || {
        let mut v: Vec<f64> = Vec::with_capacity(n);
        v.extend(data.iter().map(|&x| x + 1.0));
        std::hint::black_box(&v);
    });
    println!("alloc + write once: {:.3} ms", t * 1e3);
}
