//! Micro-benchmark of lowered loops (issue 11): explicit Euler on y' = -k y + sin(y),
//! `y ← y + h (-k y + sin y)`, and its gradient (a forward loop storing each carry as a ys
//! row, then a reverse loop whose body is the step's VJP, as capture + transform emit
//! them), each three ways: the reference evaluator (`autodiff_exec::eval`, what the lowering
//! ran before loops were lowered), the loop node lowered (`Program`), and the same
//! iterations unrolled into plain nodes, lowered normally. Nanoseconds per iteration (of
//! each loop: the gradient runs two), best of several runs.
//!
//! `cargo run --release -p autodiff-lower --example loops [quick] [tiny|euler] [small|large] [rolled]`
//! (quick: no unrolled row at 10^5 elements; small/large: only that size; tiny/euler: only
//! that body; rolled: only the lowered loop, for profiling)

use std::time::Instant;

use autodiff_ir::{DType, Graph, LoopSpec, NodeId, Tensor, UnaryOp};
use autodiff_lower::Program;

const H: f64 = 0.01;
const K: f64 = 0.5;

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

/// Best of `reps` runs of `f` (after one warm-up), in seconds: this thread's CPU time
/// (the loops run on the calling thread; `WALL=1` for wall-clock time, which also counts
/// the large kernels' helper threads).
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let wall = std::env::var("WALL").is_ok_and(|v| v == "1");
    (0..reps)
        .map(|_| {
            let (t, c) = (Instant::now(), thread_time());
            f();
            if wall {
                t.elapsed().as_secs_f64()
            } else {
                thread_time() - c
            }
        })
        .fold(f64::INFINITY, f64::min)
}

/// `y + h * (-k * y + sin(y))` in `g`.
fn euler_step(g: &mut Graph, y: NodeId) -> NodeId {
    let n = g.shape(y).clone();
    let (h, k) = (g.full(H, &n, DType::F64), g.full(-K, &n, DType::F64));
    let ky = g.mul(k, y).unwrap();
    let s = g.unary(UnaryOp::Sin, y).unwrap();
    let f = g.add_(ky, s).unwrap();
    let hf = g.mul(h, f).unwrap();
    g.add_(y, hf).unwrap()
}

/// `gy * (1 + h * (-k + cos(y)))`: the step's VJP at `y` for the cotangent `gy`.
fn euler_vjp(g: &mut Graph, y: NodeId, gy: NodeId) -> NodeId {
    let n = g.shape(y).clone();
    let (h, k, one) = (
        g.full(H, &n, DType::F64),
        g.full(-K, &n, DType::F64),
        g.full(1.0, &n, DType::F64),
    );
    let c = g.unary(UnaryOp::Cos, y).unwrap();
    let d = g.add_(k, c).unwrap();
    let hd = g.mul(h, d).unwrap();
    let j = g.add_(one, hd).unwrap();
    g.mul(gy, j).unwrap()
}

/// The forward loop (rolled): returns the final y.
fn rolled_forward(n: usize, trips: usize) -> (Graph, NodeId) {
    let mut b = Graph::new();
    let y = b.add_input("y", vec![n], DType::F64);
    let next = euler_step(&mut b, y);
    b.outputs = vec![next];
    let mut g = Graph::new();
    let y0 = g.add_input("y0", vec![n], DType::F64);
    let spec = LoopSpec::new(b, 1, 0, trips, false).unwrap();
    let r = g.add_loop(spec, vec![y0]).unwrap();
    (g, r[0])
}

/// The gradient of `sum(y_N ** 2)` (rolled): a forward loop storing each y_t, then a
/// reverse loop over them carrying the cotangent.
fn rolled_gradient(n: usize, trips: usize) -> (Graph, NodeId) {
    let mut fb = Graph::new();
    let y = fb.add_input("y", vec![n], DType::F64);
    let next = euler_step(&mut fb, y);
    fb.outputs = vec![next, y];
    let mut bb = Graph::new();
    let gy = bb.add_input("g", vec![n], DType::F64);
    let yt = bb.add_input("y", vec![n], DType::F64);
    let gnext = euler_vjp(&mut bb, yt, gy);
    bb.outputs = vec![gnext];
    let mut g = Graph::new();
    let y0 = g.add_input("y0", vec![n], DType::F64);
    let fwd = g
        .add_loop(LoopSpec::new(fb, 1, 0, trips, false).unwrap(), vec![y0])
        .unwrap();
    let two = g.full(2.0, &[n], DType::F64);
    let gn = g.mul(two, fwd[0]).unwrap();
    let bwd = g
        .add_loop(
            LoopSpec::new(bb, 1, 1, trips, true).unwrap(),
            vec![gn, fwd[1]],
        )
        .unwrap();
    (g, bwd[0])
}

/// The forward iterations unrolled into plain nodes.
fn unrolled_forward(n: usize, trips: usize) -> (Graph, NodeId) {
    let mut g = Graph::new();
    let mut y = g.add_input("y0", vec![n], DType::F64);
    for _ in 0..trips {
        y = euler_step(&mut g, y);
    }
    (g, y)
}

/// The gradient of the unrolled iterations (reverse mode on plain nodes).
fn unrolled_gradient(n: usize, trips: usize) -> (Graph, NodeId) {
    let (mut g, y) = unrolled_forward(n, trips);
    let y2 = g.mul(y, y).unwrap();
    let s = g.sum(y2, &[0]).unwrap();
    let y0 = g.inputs[0];
    let d = autodiff_transform::grad(&mut g, s, &[y0]).unwrap();
    (g, d[0])
}

fn row(name: &str, loops: usize, trips: usize, rows: &[(&str, Graph, NodeId)], reps: usize) {
    let n: usize = rows[0].1.shape(rows[0].1.inputs[0]).iter().product();
    let y0 = Tensor::new(
        DType::F64,
        vec![n],
        (0..n).map(|i| ((i as f64) * 0.37).sin() * 2.0).collect(),
    );
    let slices = [y0.data.as_slice()];
    let rolled_only = std::env::args().any(|a| a == "rolled");
    let want = if rolled_only {
        vec![]
    } else {
        autodiff_exec::eval(&rows[0].1, std::slice::from_ref(&y0), &[rows[0].2]).unwrap()
    };
    let per = (loops * trips) as f64;
    let mut line = format!("{name:<34}");
    for (label, g, out) in rows {
        if *label == "reference" && rolled_only {
            continue;
        }
        if *label == "reference" {
            let t = best(reps.div_ceil(10).max(2), || {
                autodiff_exec::eval(g, std::slice::from_ref(&y0), &[*out]).unwrap();
            });
            line += &format!("  {label} {:>9.0} ns/it", t / per * 1e9);
            continue;
        }
        let tc = Instant::now();
        let p = Program::compile(g, &[*out]).unwrap();
        let tc = tc.elapsed().as_secs_f64();
        let got = p.run_f64(&slices).unwrap();
        let err = got[0]
            .iter()
            .zip(want.first().map_or(&got[0], |w| &w.data))
            .map(|(a, b)| (a - b).abs() / b.abs().max(1e-300))
            .fold(0.0f64, f64::max);
        let t = best(reps, || {
            p.run_f64(&slices).unwrap();
        });
        line += &format!(
            "  {label} {:>7.1} ns/it ({:.2} ms/call, compile {:.0} ms, rel diff {err:.0e})",
            t / per * 1e9,
            t * 1e3,
            tc * 1e3
        );
    }
    println!("{line}");
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    println!(
        "isa {:?}, engine threads {}",
        autodiff_lower::vmath::Isa::detect(),
        autodiff_lower::threads()
    );
    let only = |a: &str| std::env::args().any(|x| x == a);
    // the loop's own cost: a body of one addition on one element
    if !only("large") && !only("euler") {
        let trips = 10_000;
        let mut b = Graph::new();
        let c = b.add_input("c", vec![1], DType::F64);
        let one = b.full(1.0, &[1], DType::F64);
        b.outputs = vec![b.add_(c, one).unwrap()];
        let mut g = Graph::new();
        let c0 = g.add_input("c0", vec![1], DType::F64);
        let spec = LoopSpec::new(b, 1, 0, trips, false).unwrap();
        let r = g.add_loop(spec, vec![c0]).unwrap();
        let mut u = Graph::new();
        let mut c = u.add_input("c0", vec![1], DType::F64);
        let one = u.full(1.0, &[1], DType::F64);
        for _ in 0..trips {
            c = u.add_(c, one).unwrap();
        }
        let rows = [
            ("reference", g.clone(), r[0]),
            ("rolled", g, r[0]),
            ("unrolled", u, c),
        ];
        row(
            "c + 1, one element, trips=10000",
            1,
            trips,
            &rows[..2 + !only("rolled") as usize],
            50,
        );
    }
    for &(n, trips, reps) in &[(10usize, 10_000usize, 50usize), (100_000, 100, 5)] {
        if (only("small") && n > 10) || (only("large") && n == 10) || only("tiny") {
            continue;
        }
        let unroll = (!quick || n * trips <= 100_000) && !only("rolled");
        let mut rows = vec![];
        let (g, o) = rolled_forward(n, trips);
        rows.push(("reference", g.clone(), o));
        rows.push(("rolled", g, o));
        if unroll {
            let (g, o) = unrolled_forward(n, trips);
            rows.push(("unrolled", g, o));
        }
        row(&format!("euler n={n} trips={trips}"), 1, trips, &rows, reps);
        let mut rows = vec![];
        let (g, o) = rolled_gradient(n, trips);
        rows.push(("reference", g.clone(), o));
        rows.push(("rolled", g, o));
        if unroll {
            let (g, o) = unrolled_gradient(n, trips);
            rows.push(("unrolled", g, o));
        }
        row(
            &format!("grad euler n={n} trips={trips}"),
            2,
            trips,
            &rows,
            reps,
        );
    }
}
