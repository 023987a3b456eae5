//! Float32 vector math for the float32 kernels (`fused32`): exp, expm1, log, log1p, tanh
//! and sigmoid of float32 chunks, computed in f64 with short polynomials and rounded once
//! to float32.
//!
//! Why f64 inside: every float32 input, and every intermediate of these functions, is a
//! normal f64 far from overflow, so no subnormal, overflow or underflow case needs code of
//! its own (the final narrowing to float32 rounds to ±inf, subnormals and ±0 exactly as
//! it should), and a polynomial with a relative error below 2^-33 leaves the float32
//! result within 0.5 + 2^-9 ulp of the exact value (≤ 1 ulp; almost always the correctly
//! rounded float32). The polynomials are our own mpmath Chebyshev fits (`chebyfit`) or
//! truncated series, at about half the degree of the f64 kernels' (`vmath`), and the f64
//! kernels' double-double steps and fix-ups are not needed.
//!
//! Accuracy (tested in `tests/vmath32.rs` against the f64 libm value rounded to float32,
//! on every path the CPU has): ≤ 1 ulp everywhere, special values exact. These results
//! can differ from the f64 path's (`vmath` then rounding) in the last bit, so a float32
//! kernel is no longer bit-identical to the reference evaluator for these functions;
//! `AUTODIFF_F32_MATH=exact` makes float32 kernels take them from the f64 kernels instead
//! (bit-identical; the property tests run so).

use std::sync::atomic::{AtomicU8, Ordering};

use autodiff_ir::UnaryOp;

use crate::vmath::{Isa, Mla, Plain};

/// The float32 functions with kernels of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func32 {
    Exp,
    Expm1,
    Log,
    Log1p,
    Tanh,
    Sigmoid,
}

impl Func32 {
    pub const ALL: [Func32; 6] = [
        Func32::Exp,
        Func32::Expm1,
        Func32::Log,
        Func32::Log1p,
        Func32::Tanh,
        Func32::Sigmoid,
    ];

    /// The kernel of `u`, when float32 kernels use their own math (see the module docs).
    pub(crate) fn of(u: UnaryOp) -> Option<Func32> {
        if !enabled() {
            return None;
        }
        Some(match u {
            UnaryOp::Exp => Func32::Exp,
            UnaryOp::Expm1 => Func32::Expm1,
            UnaryOp::Log => Func32::Log,
            UnaryOp::Log1p => Func32::Log1p,
            UnaryOp::Tanh => Func32::Tanh,
            UnaryOp::Sigmoid => Func32::Sigmoid,
            _ => return None,
        })
    }
}

static MODE: AtomicU8 = AtomicU8::new(0);

/// Whether float32 kernels use these functions (`AUTODIFF_F32_MATH` is not `exact`; read
/// once).
pub fn enabled() -> bool {
    match MODE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let exact = std::env::var("AUTODIFF_F32_MATH").is_ok_and(|v| v.trim() == "exact");
            MODE.store(if exact { 2 } else { 1 }, Ordering::Relaxed);
            !exact
        }
    }
}

/// `d[i] = f(a[i])` on the detected path.
pub fn apply(f: Func32, d: &mut [f32], a: &[f32]) {
    apply_with(Isa::detect(), f, d, a)
}

/// `d[i] = f(a[i])` on path `isa`.
///
/// # Panics
/// If the CPU lacks `isa` or the lengths differ.
pub fn apply_with(isa: Isa, f: Func32, d: &mut [f32], a: &[f32]) {
    assert_eq!(d.len(), a.len());
    assert!(isa.available(), "{isa:?} is not available on this CPU");
    // SAFETY: just checked.
    unsafe { apply_unchecked(isa, f, d, a) }
}

/// [`apply_with`] without its checks.
///
/// # Safety
/// The CPU supports `isa`; `d` and `a` have equal lengths.
#[inline(always)]
pub(crate) unsafe fn apply_unchecked(isa: Isa, f: Func32, d: &mut [f32], a: &[f32]) {
    match isa {
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
}

macro_rules! per_isa {
    ($name:ident, $m:ty, $($feat:literal)?) => {
        mod $name {
            use super::*;

            /// `d[i] = f(a[i])` (over the shorter of the two).
            ///
            /// # Safety
            /// The CPU supports every feature named in this function's `target_feature`
            /// attribute (none for `portable`).
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn unary(f: Func32, d: &mut [f32], a: &[f32]) {
                macro_rules! go {
                    ($k:ident) => {
                        for (o, &x) in d.iter_mut().zip(a) {
                            *o = $k::<$m>(x as f64) as f32;
                        }
                    };
                }
                match f {
                    Func32::Exp => go!(exp),
                    Func32::Expm1 => go!(expm1),
                    Func32::Log => go!(log),
                    Func32::Log1p => go!(log1p),
                    Func32::Tanh => go!(tanh),
                    Func32::Sigmoid => go!(sigmoid),
                }
            }
        }
    };
}

per_isa!(portable, Plain,);
#[cfg(target_arch = "x86_64")]
per_isa!(avx2, crate::vmath::Fused, "avx2,fma");
#[cfg(target_arch = "x86_64")]
per_isa!(avx512, crate::vmath::Fused, "avx512f,avx2,fma");

// ---------------------------------------------------------------------------------------
// scalar bodies: f64 in (a float32 value), f64 out (rounded to float32 by the caller)

const SHIFT: f64 = 6755399441055744.0; // 1.5 * 2^52: adding it rounds to an integer
const LOG2E: f64 = std::f64::consts::LOG2_E;
const LN2: f64 = std::f64::consts::LN_2;

#[inline(always)]
fn sel(c: bool, a: f64, b: f64) -> f64 {
    if c {
        a
    } else {
        b
    }
}

/// Chebyshev fit of e^r on |r| ≤ ln2/2·1.001, degree 7: relative error < 4.3e-11.
const EXP_P: [f64; 8] = [
    0.9999999999592369,
    0.999999999995473,
    0.5000000108377728,
    0.16666666787028753,
    0.0416662165210468,
    0.008333283339034426,
    0.0013948697984710072,
    0.00019907702175735054,
];

/// e^x for x in [-110, 100] or NaN: x = n·ln2 + r, e^x = 2^n·P(r) (2^n a normal f64).
#[inline(always)]
fn exp_core<M: Mla>(x: f64) -> f64 {
    let t = M::mla(x, LOG2E, SHIFT);
    let n = t - SHIFT;
    let ni = (t.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64);
    // |n·ln2| < 160: the product's rounding is below 2^-45 of the result
    let r = M::mla(-n, LN2, x);
    let c = &EXP_P;
    let r2 = r * r;
    let r4 = r2 * r2;
    let q0 = M::mla(M::mla(c[3], r, c[2]), r2, M::mla(c[1], r, c[0]));
    let q1 = M::mla(M::mla(c[7], r, c[6]), r2, M::mla(c[5], r, c[4]));
    let p = M::mla(q1, r4, q0);
    p * f64::from_bits((ni.wrapping_add(1023) as u64) << 52)
}

/// e^x: past 100 the float32 result is +inf, below -110 it is +0 (the clamp keeps the f64
/// value finite and nonzero; NaN passes the comparisons through).
#[inline(always)]
pub fn exp<M: Mla>(x: f64) -> f64 {
    exp_core::<M>(sel(x > 100.0, 100.0, sel(x < -110.0, -110.0, x)))
}

/// e^x - 1: a Taylor series to x⁹/9! where |x| < 0.35 (relative error < 2.3e-11), else
/// e^x - 1 (its relative error at most 3.4 times e^x's).
#[inline(always)]
pub fn expm1<M: Mla>(x: f64) -> f64 {
    let p = M::mla(
        M::mla(
            M::mla(
                M::mla(
                    M::mla(
                        M::mla(
                            M::mla(M::mla(1.0 / 362880.0, x, 1.0 / 40320.0), x, 1.0 / 5040.0),
                            x,
                            1.0 / 720.0,
                        ),
                        x,
                        1.0 / 120.0,
                    ),
                    x,
                    1.0 / 24.0,
                ),
                x,
                1.0 / 6.0,
            ),
            x,
            0.5,
        ),
        x,
        1.0,
    );
    let small = x * p;
    let large = exp::<M>(x) - 1.0;
    sel(x.abs() < 0.35, small, large)
}

const SQRT_HALF_BITS: u64 = 0x3fe6_a09e_667f_3bcd;

/// log x for a positive normal f64: x = 2^k·m, m ∈ [√½, √2), f = m - 1, s = f/(2 + f),
/// log m = 2·atanh s = 2s·(1 + s²/3 + … + s¹²/13) (|s| ≤ 0.172: truncation < 1.3e-12).
#[inline(always)]
fn log_core<M: Mla>(x: f64) -> f64 {
    let ix = x.to_bits().wrapping_sub(SQRT_HALF_BITS);
    let kb = ix.wrapping_add(1023 << 52) >> 52; // k + 1023
    let k = f64::from_bits(0x4330_0000_0000_0000 | kb) - (4503599627370496.0 + 1023.0);
    let m = f64::from_bits((ix & 0x000f_ffff_ffff_ffff).wrapping_add(SQRT_HALF_BITS));
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let z2 = z * z;
    let r = M::mla(
        M::mla(
            M::mla(1.0 / 13.0, z, 1.0 / 11.0),
            z2,
            M::mla(1.0 / 9.0, z, 1.0 / 7.0),
        ),
        z2,
        M::mla(1.0 / 5.0, z, 1.0 / 3.0),
    );
    let two_s = s + s;
    M::mla(k, LN2, M::mla(two_s * z, r, two_s))
}

/// log x, with log 0 = -inf, log of a negative = NaN, log inf = inf, NaN kept.
#[inline(always)]
pub fn log<M: Mla>(x: f64) -> f64 {
    let v = log_core::<M>(x);
    let v = sel(x == f64::INFINITY, f64::INFINITY, v);
    let v = sel(x == 0.0, f64::NEG_INFINITY, v);
    let v = sel(x < 0.0, f64::NAN, v);
    sel(x.is_nan(), x, v)
}

/// log(1 + x): x·(1 - x/2 + x²/3 - x³/4) where |x| < 1e-3 (relative error < 2e-13), else
/// log(1 + x) (1 + x is exact in f64 for a float32 x of that size).
#[inline(always)]
pub fn log1p<M: Mla>(x: f64) -> f64 {
    let small = x * M::mla(M::mla(M::mla(-0.25, x, 1.0 / 3.0), x, -0.5), x, 1.0);
    let large = log::<M>(1.0 + x);
    sel(x.abs() < 1e-3, small, large)
}

/// Chebyshev fit of tanh(a)/a in z = a² on a ≤ 0.55, degree 6: error < 2.8e-11.
const TANH_P: [f64; 7] = [
    0.9999999999726805,
    -0.33333332447163827,
    0.1333328616097032,
    -0.053958777520673205,
    0.021777947615093916,
    -0.00840092200334288,
    0.002382458264463949,
];

/// tanh x: a·P(a²) where |x| < 0.55, else 1 - 2/(1 + e^{2|x|}) (the argument clamped at
/// 20, past which the float32 result is 1); the sign of x (±0 kept), NaN kept.
#[inline(always)]
pub fn tanh<M: Mla>(x: f64) -> f64 {
    let a = x.abs();
    let z = a * a;
    let c = &TANH_P;
    let z2 = z * z;
    let p = M::mla(
        M::mla(M::mla(c[6], z, c[5]), z2, M::mla(c[4], z, c[3])),
        z2 * z,
        M::mla(M::mla(c[2], z, c[1]), z, c[0]),
    );
    let small = a * p;
    let e = exp_core::<M>(2.0 * sel(a > 20.0, 20.0, a));
    let large = 1.0 - 2.0 / (1.0 + e);
    let v = sel(a < 0.55, small, large);
    let v = sel(x.is_nan(), x, v);
    f64::from_bits(v.to_bits() | (x.to_bits() & (1 << 63)))
}

/// 1/(1 + e^-x) = 1/(1 + e) for x ≥ 0, e/(1 + e) below, e = e^-|x| (|x| clamped at 110,
/// past which the float32 result is 1 or 0).
#[inline(always)]
pub fn sigmoid<M: Mla>(x: f64) -> f64 {
    let a = x.abs();
    let e = exp_core::<M>(-sel(a > 110.0, 110.0, a));
    let v = sel(x >= 0.0, 1.0, e) / (1.0 + e);
    sel(x.is_nan(), x, v)
}
