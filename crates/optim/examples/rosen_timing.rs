//! Time of the L-BFGS-B algorithm itself (gradient in Rust): Rosenbrock N = 1000 from
//! zeros. `cargo run --release -p autodiff-optim --example rosen_timing`.

use autodiff_optim::{lbfgsb, Options};

fn rosen(x: &[f64], g: &mut [f64]) -> Result<f64, ()> {
    let n = x.len();
    let mut f = 0.0;
    g.iter_mut().for_each(|v| *v = 0.0);
    for i in 0..n - 1 {
        let a = x[i + 1] - x[i] * x[i];
        let b = 1.0 - x[i];
        f += 100.0 * a * a + b * b;
        g[i] += -400.0 * x[i] * a - 2.0 * b;
        g[i + 1] += 200.0 * a;
    }
    Ok(f)
}

fn main() {
    let n = 1000;
    let (l, u) = (vec![f64::NEG_INFINITY; n], vec![f64::INFINITY; n]);
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let mut tg = 0.0;
        let r = lbfgsb(
            |x: &[f64], g: &mut [f64]| {
                let t0 = std::time::Instant::now();
                let f = rosen(x, g);
                tg += t0.elapsed().as_secs_f64();
                f
            },
            &vec![0.0; n],
            &l,
            &u,
            &Options::default(),
            |_| Ok(false),
        )
        .unwrap();
        let total = t.elapsed().as_secs_f64();
        println!(
            "nit {} nfev {} f {:.3e}: total {:.1} ms, in the gradient {:.1} ms, per iteration without it {:.1} µs",
            r.nit,
            r.nfev,
            r.f,
            total * 1e3,
            tg * 1e3,
            (total - tg) / r.nit as f64 * 1e6
        );
    }
}
