//! Vector math: branch-free f64 kernels over slices (`d[i] = f(a[i])`) that LLVM
//! auto-vectorizes, compiled three times — portable (SSE2, no FMA), AVX2+FMA and AVX-512 —
//! and selected at run time for the CPU found ([`Isa::detect`], cached). Nothing depends on
//! the build machine's `target-cpu`.
//!
//! Each function is written once as an `#[inline(always)]` scalar body generic over
//! [`Mla`] (how `a*b + c` is computed: two roundings on the portable path, one fused
//! rounding where the CPU has FMA); the per-ISA loops only instantiate it. Methods:
//! range reduction by round-to-nearest through the `1.5·2^52` shifter (no `round` call,
//! no float→int conversion), Cody–Waite constants whose high parts have trailing zeros
//! (so `n·C_hi` is exact), exponents built from integer bits, polynomials, and `select`s
//! at the end for ±0, ±inf, NaN, subnormals, overflow and underflow. Coefficients of the
//! log (`Lg1..7`) and sin/cos (`S1..6`, `C1..6`) minimax polynomials and the split
//! constants of ln 2 and π/2 are the classic public-domain fdlibm values; the code is ours.
//!
//! Accuracy (tested in `tests/vmath.rs` on every path the machine has, against glibc's
//! libm and against an 80-bit reference in `scripts/vmath_accuracy.py`): within 2 ulp of
//! the correctly rounded result over the whole domain, subnormals, ±0, ±inf and NaN
//! included. Paths may differ from each other in the last bit (FMA or not); each is
//! deterministic. sin/cos reduce exactly (double-double) for |x| ≤ 2^20 and call libm
//! for larger arguments (rare; a scalar fix-up after the vector loop).

// the constants are written with their published decimal digits (they round to the
// intended bits)
#![allow(clippy::excessive_precision)]

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction set the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Baseline x86-64 (SSE2) or any other architecture; no FMA.
    Portable,
    /// AVX2 + FMA.
    Avx2,
    /// AVX-512F (+ AVX2, FMA).
    Avx512,
}

static DETECTED: AtomicU8 = AtomicU8::new(0);

impl Isa {
    fn code(self) -> u8 {
        match self {
            Isa::Portable => 1,
            Isa::Avx2 => 2,
            Isa::Avx512 => 3,
        }
    }

    /// Whether this CPU can run the path.
    pub fn available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every path this CPU can run.
    pub fn all_available() -> Vec<Isa> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|i| i.available())
            .collect()
    }

    /// The best path of this CPU (detected once). `AUTODIFF_ISA=portable|avx2|avx512`
    /// caps it (for tests and comparisons; a path the CPU lacks is never chosen).
    pub fn detect() -> Isa {
        match DETECTED.load(Ordering::Relaxed) {
            1 => return Isa::Portable,
            2 => return Isa::Avx2,
            3 => return Isa::Avx512,
            _ => {}
        }
        let cap = match std::env::var("AUTODIFF_ISA").as_deref() {
            Ok("portable") => Isa::Portable,
            Ok("avx2") => Isa::Avx2,
            _ => Isa::Avx512,
        };
        let best = [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .find(|i| i.code() <= cap.code() && i.available())
            .unwrap_or(Isa::Portable);
        DETECTED.store(best.code(), Ordering::Relaxed);
        best
    }
}

/// The functions with vector kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Exp,
    Expm1,
    Log,
    Log1p,
    Log2,
    Log10,
    Sin,
    Cos,
    Tanh,
    Sinh,
    Cosh,
    Sigmoid,
}

impl Func {
    pub const ALL: [Func; 12] = [
        Func::Exp,
        Func::Expm1,
        Func::Log,
        Func::Log1p,
        Func::Log2,
        Func::Log10,
        Func::Sin,
        Func::Cos,
        Func::Tanh,
        Func::Sinh,
        Func::Cosh,
        Func::Sigmoid,
    ];
}

/// `d[i] = f(a[i])` on the detected path. `d` and `a` have equal lengths.
pub fn apply(f: Func, d: &mut [f64], a: &[f64]) {
    apply_with(Isa::detect(), f, d, a)
}

/// `d[i] = logaddexp(x[i], y[i])` on the detected path.
pub fn logaddexp(d: &mut [f64], x: &[f64], y: &[f64]) {
    logaddexp_with(Isa::detect(), d, x, y)
}

/// `d[i] = f(a[i])` on path `isa`.
///
/// # Panics
/// If the CPU lacks `isa` or the lengths differ.
pub fn apply_with(isa: Isa, f: Func, d: &mut [f64], a: &[f64]) {
    assert_eq!(d.len(), a.len());
    assert!(isa.available(), "{isa:?} is not available on this CPU");
    // SAFETY: just checked.
    unsafe { apply_unchecked(isa, f, d, a) }
}

/// [`apply_with`] without its checks (for kernels that already run on path `isa`: a tiny
/// kernel calls this once per chunk of a few elements).
///
/// # Safety
/// The CPU supports `isa`; `d` and `a` have equal lengths.
#[inline(always)]
pub(crate) unsafe fn apply_unchecked(isa: Isa, f: Func, d: &mut [f64], a: &[f64]) {
    // sin/cos: arguments past the exact reduction go to libm after the vector loop
    let big: Vec<(usize, f64)> = if matches!(f, Func::Sin | Func::Cos)
        && a.iter().fold(0.0f64, |m, &v| m.max(v.abs())) > TRIG_MAX
    {
        let fix = if f == Func::Sin { f64::sin } else { f64::cos };
        a.iter()
            .enumerate()
            .filter(|(_, v)| v.abs() > TRIG_MAX)
            .map(|(i, &v)| (i, fix(v)))
            .collect()
    } else {
        Vec::new()
    };
    match isa {
        // SAFETY: the portable path needs no CPU feature.
        Isa::Portable => portable::unary(f, d, a),
        // SAFETY: the CPU has the features (the caller's contract).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => avx2::unary(f, d, a),
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => avx512::unary(f, d, a),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!(),
    }
    for (i, v) in big {
        d[i] = v;
    }
}

/// `d[i] = logaddexp(x[i], y[i])` on path `isa`.
pub fn logaddexp_with(isa: Isa, d: &mut [f64], x: &[f64], y: &[f64]) {
    assert!(d.len() == x.len() && d.len() == y.len());
    assert!(isa.available(), "{isa:?} is not available on this CPU");
    match isa {
        // SAFETY: the portable path needs no CPU feature.
        Isa::Portable => unsafe { portable::logaddexp(d, x, y) },
        // SAFETY: the CPU has the features (checked above).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::logaddexp(d, x, y) },
        // SAFETY: as above: `isa.available()` asserted avx512f, avx2 and fma.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512::logaddexp(d, x, y) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!(),
    }
}

/// How `a*b + c` is evaluated.
pub trait Mla {
    /// Whether `mla` rounds once (so `mla(-q, d, num)` is the exact residual).
    const FUSED: bool;
    fn mla(a: f64, b: f64, c: f64) -> f64;
}

/// Two roundings (no FMA on the portable path: `mul_add` would be a libm call).
pub struct Plain;
impl Mla for Plain {
    const FUSED: bool = false;
    #[inline(always)]
    fn mla(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
}

/// One rounding (only inside `target_feature(enable = "fma")` code).
pub struct Fused;
impl Mla for Fused {
    const FUSED: bool = true;
    #[inline(always)]
    fn mla(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
}

macro_rules! per_isa {
    ($name:ident, $m:ty, $($feat:literal)?) => {
        mod $name {
            use super::*;

            /// `d[i] = f(a[i])` (over the shorter of the two).
            ///
            /// # Safety
            /// The CPU supports every feature named in this function's `target_feature`
            /// attribute (none for `portable`): checked by `Isa::available` in `apply_with`.
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn unary(f: Func, d: &mut [f64], a: &[f64]) {
                macro_rules! go {
                    ($k:ident) => {
                        for (o, &x) in d.iter_mut().zip(a) {
                            *o = $k::<$m>(x);
                        }
                    };
                }
                match f {
                    Func::Exp => go!(exp),
                    Func::Expm1 => go!(expm1),
                    Func::Log => go!(log),
                    Func::Log1p => go!(log1p),
                    Func::Log2 => go!(log2),
                    Func::Log10 => go!(log10),
                    Func::Sin => go!(sin),
                    Func::Cos => go!(cos),
                    Func::Tanh => go!(tanh),
                    Func::Sinh => go!(sinh),
                    Func::Cosh => go!(cosh),
                    Func::Sigmoid => go!(sigmoid),
                }
            }

            /// `d[i] = logaddexp(x[i], y[i])` (over the shortest of the three).
            ///
            /// # Safety
            /// The CPU supports every feature named in this function's `target_feature`
            /// attribute (none for `portable`): checked by `Isa::available` in `logaddexp_with`.
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn logaddexp(d: &mut [f64], x: &[f64], y: &[f64]) {
                for ((o, &p), &q) in d.iter_mut().zip(x).zip(y) {
                    *o = logaddexp_s::<$m>(p, q);
                }
            }
        }
    };
}

per_isa!(portable, Plain,);
#[cfg(target_arch = "x86_64")]
per_isa!(avx2, Fused, "avx2,fma");
#[cfg(target_arch = "x86_64")]
per_isa!(avx512, Fused, "avx512f,avx2,fma");

// ---------------------------------------------------------------------------------------
// scalar bodies (branch-free; `if` on floats below compiles to selects)

/// Adding then subtracting this rounds |v| < 2^51 to the nearest integer (ties to even);
/// the integer also sits in the low bits of `v + SHIFT`.
const SHIFT: f64 = 6755399441055744.0; // 1.5 * 2^52
const LOG2E: f64 = std::f64::consts::LOG2_E;
/// ln 2 = LN2_HI + LN2_LO; LN2_HI has 32 significant bits, so n·LN2_HI is exact.
const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;

#[inline(always)]
fn sel(c: bool, a: f64, b: f64) -> f64 {
    if c {
        a
    } else {
        b
    }
}

/// `(s, e)` with `s = fl(a + b)` and `s + e = a + b` exactly (Knuth's 2Sum).
#[inline(always)]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    (s, e)
}

/// 2^k for -1022 ≤ k ≤ 1023 from the exponent bits.
#[inline(always)]
fn pow2i(k: i64) -> f64 {
    f64::from_bits((k.wrapping_add(1023) as u64) << 52)
}

/// `p · 2^k` for |k| ≤ 2044 with one rounding (two exact power-of-two factors, so that
/// overflow, underflow and subnormal results come out right with no branch).
#[inline(always)]
fn scale(p: f64, k: i64) -> f64 {
    // floor(k/2) by a logical shift (AVX2 has no 64-bit arithmetic shift)
    // (wrapping: a NaN's exponent is garbage, whose result the callers' selects replace)
    let k1 = ((k.wrapping_add(4096) as u64) >> 1) as i64 - 2048;
    p * pow2i(k1) * pow2i(k.wrapping_sub(k1))
}

/// Horner with `Mla`.
macro_rules! horner {
    ($m:ty, $x:expr, $c0:expr $(, $c:expr)*) => {
        horner!(@acc $m, $x, $c0 $(, $c)*)
    };
    (@acc $m:ty, $x:expr, $last:expr) => { $last };
    (@acc $m:ty, $x:expr, $c0:expr $(, $c:expr)+) => {
        <$m>::mla(horner!(@acc $m, $x $(, $c)+), $x, $c0)
    };
}

/// Minimax fit (mpmath `chebyfit`) of E(r) = (e^r - 1 - r)/r² on |r| ≤ ln2/2·1.0005:
/// relative error of 1 + r + r²·E(r) below 1.3e-17.
const EXP_E: [f64; 10] = [
    0.5000000000000001,
    0.16666666666666669,
    0.04166666666662399,
    0.008333333333330051,
    0.0013888888917281794,
    0.00019841269863105968,
    2.480152119021773e-05,
    2.7557268378684192e-06,
    2.7620138719733994e-07,
    2.5100424157005067e-08,
];

/// E(r) of [`EXP_E`] by Estrin's scheme (a short dependency chain: the vector loops are
/// bound by latency, not by the few extra multiplications).
#[inline(always)]
fn exp_poly<M: Mla>(r: f64, r2: f64) -> f64 {
    let c = &EXP_E;
    let r4 = r2 * r2;
    let p01 = M::mla(c[1], r, c[0]);
    let p23 = M::mla(c[3], r, c[2]);
    let p45 = M::mla(c[5], r, c[4]);
    let p67 = M::mla(c[7], r, c[6]);
    let p89 = M::mla(c[9], r, c[8]);
    let q0 = M::mla(p23, r2, p01);
    let q1 = M::mla(p67, r2, p45);
    M::mla(M::mla(p89, r4, q1), r4, q0)
}

/// exp(x) = 2^n · (1 + r + r²·E(r)) after reduction: returns `(p, n)`, p ∈ [0.7, 1.42].
/// `x` must be clamped to [-746, 712] (NaN passes through into `p`). The reduced argument
/// r = x - n·ln2 is rounded once (≤ ½ ulp of r, ≤ 0.1 ulp of the result: no double-double).
#[inline(always)]
fn exp_parts<M: Mla>(x: f64) -> (f64, i64) {
    let t = M::mla(x, LOG2E, SHIFT);
    let n = t - SHIFT;
    let ni = (t.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64);
    let hi = x - n * LN2_HI; // exact
    let r = hi - n * LN2_LO;
    let r2 = r * r;
    let p = 1.0 + M::mla(r2, exp_poly::<M>(r, r2), r);
    (p, ni)
}

#[inline(always)]
fn clamp_exp_arg(x: f64) -> f64 {
    // comparisons keep NaN
    let x = sel(x > 712.0, 712.0, x);
    sel(x < -746.0, -746.0, x)
}

#[inline(always)]
pub fn exp<M: Mla>(x: f64) -> f64 {
    let (p, n) = exp_parts::<M>(clamp_exp_arg(x));
    scale(p, n)
}

#[inline(always)]
pub fn expm1<M: Mla>(x: f64) -> f64 {
    // below -45 the result rounds to -1; above 710 to +inf
    let xc = sel(x > 710.0, 710.0, x);
    let xc = sel(xc < -45.0, -45.0, xc);
    let t = M::mla(xc, LOG2E, SHIFT);
    let n = t - SHIFT;
    let ni = (t.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64);
    let hi = xc - n * LN2_HI;
    let (r, c) = two_sum(hi, -(n * LN2_LO));
    // expm1(r + c) = r + r²·E(r) + c·(1 + r) + …
    let r2 = r * r;
    let e = exp_poly::<M>(r, r2);
    let tail = M::mla(r2, e, M::mla(c, r, c));
    // 2^n·(1 + q) - 1 = 2·((h - 1/2) + h·r + h·tail) with h = 2^(n-1) (no overflow before
    // the last doubling; h·r and h·tail are exact scalings)
    let h = pow2i(ni - 1);
    let v = 2.0 * (((h - 0.5) + h * r) + h * tail);
    // |x| < 2^-54: expm1(x) rounds to x (keeps ±0 and subnormals exact)
    sel(x.abs() < 5.551115123125783e-17, x, v)
}

/// fdlibm's minimax coefficients of log(1+f) = f - f²/2 + s·(f²/2 + R(s²)), s = f/(2+f).
const LG1: f64 = 6.666_666_666_666_735_130e-1;
const LG2: f64 = 3.999_999_999_940_941_908e-1;
const LG3: f64 = 2.857_142_874_366_239_149e-1;
const LG4: f64 = 2.222_219_843_214_978_396e-1;
const LG5: f64 = 1.818_357_216_161_805_012e-1;
const LG6: f64 = 1.531_383_769_920_937_332e-1;
const LG7: f64 = 1.479_819_860_511_658_591e-1;
const SQRT_HALF_BITS: u64 = 0x3fe6_a09e_667f_3bcd;

/// x = 2^k · (1 + f), 1 + f ∈ [√½, √2): returns `(k, f, hfsq, s·(hfsq + R))` where
/// log(1+f) = f - hfsq + s·(hfsq + R). For positive finite x (subnormals included); other
/// inputs give garbage the callers replace.
#[inline(always)]
fn log_parts<M: Mla>(x: f64) -> (f64, f64, f64, f64) {
    let sub = x < f64::MIN_POSITIVE;
    let xs = sel(sub, x * 18014398509481984.0, x); // 2^54
    let kadj = sel(sub, 54.0, 0.0);
    let ix = xs.to_bits().wrapping_sub(SQRT_HALF_BITS);
    let kb = ix.wrapping_add(1023 << 52) >> 52; // k + 1023 ∈ [0, 2047]
    let k = f64::from_bits(0x4330_0000_0000_0000 | kb) - (4503599627370496.0 + 1023.0) - kadj;
    let m = f64::from_bits((ix & 0x000f_ffff_ffff_ffff).wrapping_add(SQRT_HALF_BITS));
    let f = m - 1.0; // exact
    let hfsq = 0.5 * f * f;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * horner!(M, w, LG2, LG4, LG6);
    let t2 = z * horner!(M, w, LG1, LG3, LG5, LG7);
    let sr = s * (hfsq + (t2 + t1));
    (k, f, hfsq, sr)
}

/// The special values of log-like functions at x ≤ 0, +inf, NaN.
#[inline(always)]
fn log_specials(x: f64, v: f64) -> f64 {
    let v = sel(x == f64::INFINITY, f64::INFINITY, v);
    let v = sel(x == 0.0, f64::NEG_INFINITY, v);
    let v = sel(x < 0.0, f64::NAN, v);
    sel(x.is_nan(), x, v)
}

#[inline(always)]
pub fn log<M: Mla>(x: f64) -> f64 {
    let (k, f, hfsq, sr) = log_parts::<M>(x);
    let v = k * LN2_HI - ((hfsq - M::mla(k, LN2_LO, sr)) - f);
    log_specials(x, v)
}

#[inline(always)]
pub fn log1p<M: Mla>(x: f64) -> f64 {
    // u = fl(1 + x), c = (1 + x) - u exactly; log1p(x) = log(u) + c/u + O(c²)
    let (u, c) = two_sum(1.0, x);
    let (k, f, hfsq, sr) = log_parts::<M>(u);
    let v = k * LN2_HI - ((hfsq - (sr + M::mla(k, LN2_LO, c / u))) - f);
    let v = sel(x == f64::INFINITY, f64::INFINITY, v);
    let v = sel(x == -1.0, f64::NEG_INFINITY, v);
    let v = sel(x < -1.0, f64::NAN, v);
    // |x| < 2^-54 (±0 and subnormals included): log1p(x) rounds to x
    let v = sel(x.abs() < 5.551115123125783e-17, x, v);
    sel(x.is_nan(), x, v)
}

/// Clears the low 32 bits (the high part of a split product).
#[inline(always)]
fn trunc32(v: f64) -> f64 {
    f64::from_bits(v.to_bits() & 0xffff_ffff_0000_0000)
}

#[inline(always)]
pub fn log2<M: Mla>(x: f64) -> f64 {
    const IVLN2HI: f64 = 1.442_695_040_721_446_275_71; // 1/ln2, 32 bits
    const IVLN2LO: f64 = 1.675_171_316_488_651_183_53e-10;
    let (k, f, hfsq, sr) = log_parts::<M>(x);
    let hi = trunc32(f - hfsq);
    let lo = ((f - hi) - hfsq) + sr;
    let vhi = hi * IVLN2HI;
    let vlo = M::mla(lo + hi, IVLN2LO, lo * IVLN2HI);
    let w = k + vhi; // k integer: exact sum up to the rounding of vhi's tail
    let vlo = vlo + ((k - w) + vhi);
    log_specials(x, vlo + w)
}

#[inline(always)]
pub fn log10<M: Mla>(x: f64) -> f64 {
    const IVLN10HI: f64 = 4.342_944_818_781_688_809_39e-1;
    const IVLN10LO: f64 = 2.508_294_671_164_527_522_98e-11;
    const LOG10_2HI: f64 = 3.010_299_956_636_117_713_06e-1;
    const LOG10_2LO: f64 = 3.694_239_077_158_930_786_16e-13;
    let (k, f, hfsq, sr) = log_parts::<M>(x);
    let hi = trunc32(f - hfsq);
    let lo = ((f - hi) - hfsq) + sr;
    let vhi = hi * IVLN10HI;
    let y2 = k * LOG10_2HI;
    let vlo = M::mla(k, LOG10_2LO, M::mla(lo + hi, IVLN10LO, lo * IVLN10HI));
    let w = y2 + vhi;
    let vlo = vlo + ((y2 - w) + vhi);
    log_specials(x, vlo + w)
}

/// Exact reduction of sin/cos arguments up to here (n = round(x·2/π) < 2^20, so n times
/// a 33-bit part of π/2 is exact); larger |x| goes to libm.
pub const TRIG_MAX: f64 = 1048576.0;
const INVPIO2: f64 = std::f64::consts::FRAC_2_PI;
const PIO2_1: f64 = 1.570_796_326_734_125_614_17; // first 33 bits of π/2
const PIO2_2: f64 = 6.077_100_506_303_965_976_60e-11; // next 33 bits
const PIO2_3: f64 = 2.022_266_248_711_166_455_80e-21; // next 33 bits
const PIO2_3T: f64 = 8.478_427_660_368_899_569_97e-32; // π/2 - (the three above)

const S1: f64 = -1.666_666_666_666_663_243_48e-1;
const S2: f64 = 8.333_333_333_322_489_461_24e-3;
const S3: f64 = -1.984_126_982_985_794_931_34e-4;
const S4: f64 = 2.755_731_370_707_006_767_89e-6;
const S5: f64 = -2.505_076_025_340_686_341_95e-8;
const S6: f64 = 1.589_690_995_211_550_102_21e-10;
const C1: f64 = 4.166_666_666_666_660_190_37e-2;
const C2: f64 = -1.388_888_888_887_410_957_49e-3;
const C3: f64 = 2.480_158_728_947_672_941_78e-5;
const C4: f64 = -2.755_731_435_139_066_330_35e-7;
const C5: f64 = 2.087_572_321_298_174_827_90e-9;
const C6: f64 = -1.135_964_755_778_819_482_65e-11;

/// x = n·π/2 + (y0 + y1), |y0| ≤ π/4 (double-double); returns `(y0, y1, n mod 4)`.
#[inline(always)]
fn rem_pio2<M: Mla>(x: f64) -> (f64, f64, u64) {
    let t = M::mla(x, INVPIO2, SHIFT);
    let n = t - SHIFT;
    let q = t.to_bits() & 3;
    let a = x - n * PIO2_1; // exact (n·PIO2_1 exact, Sterbenz)
    let (r1, e1) = two_sum(a, -(n * PIO2_2));
    let (r2, e2) = two_sum(r1, -(n * PIO2_3));
    let lo = (e1 + e2) - n * PIO2_3T;
    let y0 = r2 + lo;
    let y1 = (r2 - y0) + lo;
    (y0, y1, q)
}

/// sin(x + y) on |x| ≤ π/4, |y| ≤ ulp(x)/2.
#[inline(always)]
fn ksin<M: Mla>(x: f64, y: f64) -> f64 {
    let z = x * x;
    let v = z * x;
    let r = horner!(M, z, S2, S3, S4, S5, S6);
    x - ((z * (0.5 * y - v * r) - y) - v * S1)
}

/// cos(x + y) on |x| ≤ π/4.
#[inline(always)]
fn kcos<M: Mla>(x: f64, y: f64) -> f64 {
    let z = x * x;
    let w = z * z;
    let r = M::mla(
        w * w,
        horner!(M, z, C4, C5, C6),
        z * horner!(M, z, C1, C2, C3),
    );
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    w + (((1.0 - w) - hz) + (z * r - x * y))
}

#[inline(always)]
fn flip(v: f64, neg: bool) -> f64 {
    f64::from_bits(v.to_bits() ^ ((neg as u64) << 63))
}

#[inline(always)]
pub fn sin<M: Mla>(x: f64) -> f64 {
    let (y0, y1, q) = rem_pio2::<M>(x);
    let (s, c) = (ksin::<M>(y0, y1), kcos::<M>(y0, y1));
    let v = flip(sel(q & 1 != 0, c, s), q & 2 != 0);
    // |x| < 2^-26: sin(x) rounds to x (±0 and subnormals exact)
    sel(x.abs() < 1.4901161193847656e-8, x, v)
}

#[inline(always)]
pub fn cos<M: Mla>(x: f64) -> f64 {
    let (y0, y1, q) = rem_pio2::<M>(x);
    let (s, c) = (ksin::<M>(y0, y1), kcos::<M>(y0, y1));
    flip(sel(q & 1 != 0, s, c), (q + 1) & 2 != 0)
}

/// Minimax (Chebyshev fit, mpmath) of (tanh x - x)/x³ in z = x² on |x| ≤ 0.55: error
/// < 8e-18.
const TANH_P: [f64; 11] = [
    -0.3333333333333333,
    0.13333333333332714,
    -0.053968253967434016,
    0.021869488493666944,
    -0.008863234397814355,
    0.003592110378689024,
    -0.001455661830100716,
    0.0005889360520074057,
    -0.0002346347410887237,
    8.511313685577672e-05,
    -2.060276537636634e-05,
];

/// `num / (1 + e)` with `1 + e` carried as a double-double (one rounding less). With FMA
/// by one division: q = num·(1/d), corrected by the exact residual (num - q·d)/d; without,
/// q = num/d (a residual of two roundings cannot correct an approximate quotient).
#[inline(always)]
fn div_one_plus<M: Mla>(num: f64, e: f64) -> f64 {
    let (d, dl) = two_sum(1.0, e);
    if M::FUSED {
        let inv = 1.0 / d;
        let q = num * inv;
        // num/(d + dl) = q + ((num - q·d) - q·dl)/d + …
        let r = M::mla(-q, d, num);
        M::mla(r - q * dl, inv, q)
    } else {
        let q = num / d;
        let r = M::mla(-q, d, num); // nearly exact: q·d ≈ num
        q + (r - q * dl) / d
    }
}

#[inline(always)]
pub fn tanh<M: Mla>(x: f64) -> f64 {
    let a = x.abs();
    let z = a * a;
    // Estrin's scheme (short dependency chain)
    let c = &TANH_P;
    let (z2, z4) = (z * z, z * z * (z * z));
    let q0 = M::mla(M::mla(c[3], z, c[2]), z2, M::mla(c[1], z, c[0]));
    let q1 = M::mla(M::mla(c[7], z, c[6]), z2, M::mla(c[5], z, c[4]));
    let q2 = M::mla(c[10], z2, M::mla(c[9], z, c[8]));
    let p = M::mla(M::mla(q2, z4, q1), z4, q0);
    let small = M::mla(a * z, p, a);
    // |x| > 0.55: 1 - 2/(1 + e^{2|x|})
    // (past 25 the result rounds to 1; the clamp keeps e finite)
    let e = exp::<M>(2.0 * sel(a < 0.55, 0.55, sel(a > 25.0, 25.0, a)));
    let large = 1.0 - div_one_plus::<M>(2.0, e);
    let v = sel(a < 0.55, small, large);
    let v = sel(x.is_nan(), x, v);
    f64::from_bits(v.to_bits() | (x.to_bits() & (1 << 63)))
}

#[inline(always)]
pub fn sigmoid<M: Mla>(x: f64) -> f64 {
    let e = exp::<M>(-x.abs());
    div_one_plus::<M>(sel(x >= 0.0, 1.0, e), e)
}

#[inline(always)]
pub fn sinh<M: Mla>(x: f64) -> f64 {
    let a = x.abs();
    // |x| < 2: Taylor to x^25 (truncation < 2^-60 relative)
    let z = a * a;
    let p = horner!(
        M,
        z,
        1.0 / 6.0,
        1.0 / 120.0,
        1.0 / 5040.0,
        1.0 / 362880.0,
        1.0 / 39916800.0,
        1.0 / 6227020800.0,
        1.0 / 1307674368000.0,
        1.0 / 355687428096000.0,
        1.0 / 121645100408832000.0,
        1.0 / 51090942171709440000.0,
        1.0 / 25852016738884976640000.0,
        1.0 / 15511210043330985984000000.0
    );
    let small = M::mla(a * z, p, a);
    // otherwise h - 1/(4h), h = e^|x|/2
    let (p, n) = exp_parts::<M>(clamp_exp_arg(sel(a < 2.0, 2.0, a)));
    let h = scale(p, n - 1);
    let large = h - 0.25 / h;
    let v = sel(a < 2.0, small, large);
    let v = sel(x.is_nan(), x, v);
    f64::from_bits(v.to_bits() | (x.to_bits() & (1 << 63)))
}

#[inline(always)]
pub fn cosh<M: Mla>(x: f64) -> f64 {
    let (p, n) = exp_parts::<M>(clamp_exp_arg(x.abs()));
    let h = scale(p, n - 1);
    h + 0.25 / h
}

/// ln(e^a + e^b) = max + log1p(exp(-|a - b|)); a == b (±inf included) gives a + ln 2.
#[inline(always)]
pub fn logaddexp_s<M: Mla>(a: f64, b: f64) -> f64 {
    let m = sel(a > b, a, b);
    let d = -(a - b).abs();
    let v = m + log1p::<M>(exp::<M>(d));
    let v = sel(a == b, a + std::f64::consts::LN_2, v);
    sel(a.is_nan(), a, sel(b.is_nan(), b, v))
}
