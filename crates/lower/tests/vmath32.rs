//! Accuracy of the float32 math kernels (`vmath32`) on every path this CPU has (forced one
//! by one), against glibc's f64 function rounded to float32 (itself the correctly rounded
//! float32 but in rare cases): ≤ 1 ulp over ~2e6 points per function (random float32 bit
//! patterns — NaNs, infinities, subnormals, huge values —, uniform draws over the
//! interesting ranges, exponent-uniform draws, the neighbours of the special values), and
//! special values exactly (±0 with their sign, ±inf, NaN, overflow to inf, underflow to 0).
//! `VMATH_POINTS=N` changes the count; `-- --nocapture` prints the table of maximum ulp
//! differences and the share of results not equal to the reference.

use autodiff_exec::special;
use autodiff_lower::vmath::Isa;
use autodiff_lower::vmath32::{self, Func32};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
}

fn reference(f: Func32, x: f32) -> f32 {
    let x = x as f64;
    (match f {
        Func32::Exp => x.exp(),
        Func32::Expm1 => x.exp_m1(),
        Func32::Log => x.ln(),
        Func32::Log1p => x.ln_1p(),
        Func32::Tanh => x.tanh(),
        Func32::Sigmoid => special::sigmoid(x),
    }) as f32
}

const SPECIALS: &[f32] = &[
    0.0,
    -0.0,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
    f32::MIN_POSITIVE,
    -f32::MIN_POSITIVE,
    1e-45,
    -1e-45,
    f32::MAX,
    f32::MIN,
    f32::EPSILON,
    1.0,
    -1.0,
    0.5,
    0.55,
    -0.55,
    0.35,
    -0.35,
    1e-3,
    -1e-3,
    88.72283,
    88.72284,
    -87.33654,
    -103.97208,
    -103.97209,
    100.0,
    -110.0,
    20.0,
    9.01,
    -0.99999994,
    -1.0000001,
];

fn points(f: Func32, n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed);
    let mut v: Vec<f32> = SPECIALS.to_vec();
    for &s in SPECIALS {
        if s.is_finite() {
            v.push(f32::from_bits(s.to_bits().wrapping_add(1)));
            v.push(f32::from_bits(s.to_bits().wrapping_sub(1)));
        }
    }
    let k = n / 6;
    for _ in 0..k {
        v.push(f32::from_bits(r.next() as u32)); // anything
    }
    for _ in 0..k {
        // exponent-uniform over the float32 range near the interesting scales
        let e = (r.next() % 60) as i32 - 40;
        let m = 1.0 + r.unit();
        let s = if r.next() & 1 == 1 { -1.0 } else { 1.0 };
        v.push(s * m * 2f32.powi(e));
    }
    let (lo, hi) = match f {
        Func32::Exp | Func32::Sigmoid => (-110.0, 95.0),
        Func32::Expm1 => (-20.0, 90.0),
        Func32::Tanh => (-12.0, 12.0),
        Func32::Log => (0.0, 4.0),
        Func32::Log1p => (-1.0, 4.0),
    };
    for _ in 0..2 * k {
        v.push(r.range(lo, hi));
    }
    while v.len() < n {
        v.push(r.range(-2.0, 2.0));
    }
    v
}

fn ulps(a: f32, b: f32) -> u64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() {
            0
        } else {
            u64::MAX
        };
    }
    let key = |v: f32| -> i64 {
        let b = v.to_bits();
        if b >> 31 == 1 {
            -((b & !(1 << 31)) as i64)
        } else {
            b as i64
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

fn n_points() -> usize {
    std::env::var("VMATH_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000)
}

#[test]
fn within_one_ulp_of_the_rounded_f64_function_on_every_path() {
    let n = n_points();
    let mut failures = vec![];
    println!(
        "{:8} {:>16} {:>16} {:>16}",
        "function", "portable", "avx2", "avx512"
    );
    for f in Func32::ALL {
        let xs = points(f, n, 0x9E37_79B9_7F4A_7C15 ^ f as u64);
        let want: Vec<f32> = xs.iter().map(|&x| reference(f, x)).collect();
        let mut row = format!("{:8}", format!("{f:?}"));
        for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
            if !isa.available() {
                row += &format!(" {:>16}", "-");
                continue;
            }
            let mut got = vec![0.0f32; xs.len()];
            vmath32::apply_with(isa, f, &mut got, &xs);
            let (mut worst, mut at, mut off) = (0u64, 0usize, 0usize);
            for i in 0..xs.len() {
                let u = ulps(got[i], want[i]);
                off += (u > 0) as usize;
                if u > worst {
                    (worst, at) = (u, i);
                }
            }
            row += &format!(" {worst:>5} ({:.4}%)", 100.0 * off as f64 / xs.len() as f64);
            if worst > 1 {
                failures.push(format!(
                    "{f:?} on {isa:?}: {worst} ulp at x = {:e} ({:#x}): got {:e}, want {:e}",
                    xs[at],
                    xs[at].to_bits(),
                    got[at],
                    want[at]
                ));
            }
        }
        println!("{row}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn special_values_exactly_on_every_path() {
    for isa in Isa::all_available() {
        for f in Func32::ALL {
            let mut got = vec![0.0f32; SPECIALS.len()];
            vmath32::apply_with(isa, f, &mut got, SPECIALS);
            for (&x, &g) in SPECIALS.iter().zip(&got) {
                let w = reference(f, x);
                let exact = !x.is_finite() || x == 0.0 || w.is_infinite() || w == 0.0;
                if exact {
                    let same = (g.is_nan() && w.is_nan()) || g.to_bits() == w.to_bits();
                    assert!(same, "{f:?}({x:e}) on {isa:?}: {g:e}, want {w:e}");
                }
            }
        }
    }
}

/// Chunks of any length and alignment give the same values (the vector loops' tails).
#[test]
fn any_length_gives_the_same_values() {
    let xs: Vec<f32> = (0..67).map(|i| (i as f32 - 30.0) * 0.37).collect();
    for f in Func32::ALL {
        let mut whole = vec![0.0f32; xs.len()];
        vmath32::apply(f, &mut whole, &xs);
        for start in 0..5 {
            for len in [0, 1, 3, 8, 17, 62 - start] {
                let mut part = vec![0.0f32; len];
                vmath32::apply(f, &mut part, &xs[start..start + len]);
                let same = part
                    .iter()
                    .zip(&whole[start..start + len])
                    .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
                assert!(same, "{f:?} over [{start}, {})", start + len);
            }
        }
    }
}

/// A float32 kernel that calls these functions agrees with the reference evaluator (f64
/// values rounded to float32 after each op) within an ulp per function, and its other
/// instructions (float32 arithmetic) give the reference's bits.
#[test]
fn float32_kernels_use_them_and_agree_with_the_reference() {
    use autodiff_ir::{BinaryOp, DType, Graph, Tensor, UnaryOp};
    let n = 5000;
    let mut g = Graph::new();
    let x = g.add_input("x", vec![n], DType::F32);
    let t = g.unary(UnaryOp::Tanh, x).unwrap();
    let sq = g.binary(BinaryOp::Mul, x, x).unwrap();
    let e = g.unary(UnaryOp::Exp, sq).unwrap();
    let l = g.unary(UnaryOp::Log1p, sq).unwrap();
    let s = g.unary(UnaryOp::Sigmoid, x).unwrap();
    let a = g.binary(BinaryOp::Mul, t, e).unwrap();
    let b = g.binary(BinaryOp::Add, l, s).unwrap();
    let out = g.binary(BinaryOp::Add, a, b).unwrap();
    let data: Vec<f64> = (0..n)
        .map(|i| ((i as f64 * 0.618034).fract() - 0.5) * 8.0)
        .map(|v| DType::F32.round(v))
        .collect();
    let xt = Tensor::new(DType::F32, vec![n], data.clone());
    let p = autodiff_lower::Program::compile(&g, &[out]).unwrap();
    assert!(p.stats().contains(", 1 float32;"), "{}", p.stats());
    let got = p.run(std::slice::from_ref(&xt)).unwrap();
    let want = autodiff_exec::eval(&g, &[xt], &[out]).unwrap();
    for (i, (&a, &b)) in got[0].data.iter().zip(&want[0].data).enumerate() {
        assert_eq!(a, DType::F32.round(a), "a float32 value");
        // each of the 4 functions ≤ 1 ulp, then 3 roundings: a few float32 ulp
        assert!(
            (a - b).abs() <= 4.0 * f32::EPSILON as f64 * b.abs().max(1e-30),
            "x = {}: {a} vs reference {b}",
            data[i]
        );
    }
}
