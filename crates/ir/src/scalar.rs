//! The scalar semantics of every elementwise op: the one definition of what `u(x)` and
//! `b(x, y)` compute for one element held as f64 ([`UnaryOp::eval_f64`],
//! [`BinaryOp::eval_f64`]), with NumPy's conventions (`np.sign(-0.0)` is `+0.0`, maximum and
//! minimum propagate NaN, floor division and `%` follow `npy_divmod`, sigmoid is
//! `scipy.special.expit` without overflow at ±800, `logaddexp` is `npy_logaddexp`), plus the
//! special functions (`erf`, `gammaln`, `digamma`, `trigamma`) written out so that nothing
//! but `std` is needed.
//!
//! Who calls it: the reference evaluator (`exec`) maps it over arrays, the constant folder
//! (`simplify`) folds with it, and the fast path (`lower`) uses it for every op it does not
//! take from its vectorized kernels (those are tested against it). The caller rounds the
//! result to the node's dtype ([`crate::DType::round`]); an f64 result is exact for bool and
//! for int64 below 2^53.
//!
//! Accuracy (checked in the tests against SciPy/`math` values): `erf` ~1e-15 relative,
//! `gammaln` ~1e-14 relative away from its zeros at 1 and 2 (~1e-15 absolute near them),
//! `digamma` ~1e-14 relative away from its root near 1.4616.

use crate::{BinaryOp, UnaryOp};
use std::f64::consts::{FRAC_2_SQRT_PI, PI};

/// The error function. Power series `erf x = 2/√π e^{-x²} Σ 2ⁿ x^{2n+1} / (2n+1)!!` (all
/// terms positive, no cancellation) for |x| < 3; `1 - erfc x` with erfc's continued
/// fraction beyond.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let ax = x.abs();
    let r = if ax < 3.0 {
        let x2 = ax * ax;
        let (mut term, mut sum, mut n) = (ax, ax, 0.0);
        while term > sum * 1e-17 {
            n += 1.0;
            term *= 2.0 * x2 / (2.0 * n + 1.0);
            sum += term;
        }
        FRAC_2_SQRT_PI * (-x2).exp() * sum
    } else {
        1.0 - erfc_cf(ax)
    };
    r.copysign(x)
}

/// erfc(x) for x ≥ 3 by the continued fraction
/// `erfc x = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))`, modified Lentz.
fn erfc_cf(x: f64) -> f64 {
    if x > 27.0 {
        return 0.0; // below the smallest subnormal
    }
    let tiny = 1e-300;
    let mut f = x;
    let (mut c, mut d) = (x, 0.0);
    for k in 1..500 {
        let a = k as f64 / 2.0;
        d = x + a * d;
        d = if d == 0.0 { tiny } else { d };
        c = x + a / c;
        c = if c == 0.0 { tiny } else { c };
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (PI.sqrt() * f)
}

/// `ln Γ(x)` for x > 0 large enough (≥ 15): Stirling's series.
fn lgamma_stirling(x: f64) -> f64 {
    // Bernoulli terms B_{2k} / (2k (2k-1) x^{2k-1}).
    const C: [f64; 7] = [
        1.0 / 12.0,
        -1.0 / 360.0,
        1.0 / 1260.0,
        -1.0 / 1680.0,
        1.0 / 1188.0,
        -691.0 / 360360.0,
        1.0 / 156.0,
    ];
    let (inv, inv2) = (1.0 / x, 1.0 / (x * x));
    let mut series = 0.0;
    let mut p = inv;
    for c in C {
        series += c * p;
        p *= inv2;
    }
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * PI).ln() + series
}

/// `ln |Γ(x)|` (SciPy's `gammaln`): recurrence up to x ≥ 15, then Stirling's series;
/// reflection for x < 0.5; +inf at the poles (non-positive integers).
pub fn gammaln(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x.is_infinite() {
        return x; // SciPy: gammaln(-inf) = -inf
    }
    if x < 0.5 {
        if x == x.floor() {
            return f64::INFINITY;
        }
        // Γ(x)Γ(1-x) = π / sin(πx)
        return (PI / (PI * x).sin().abs()).ln() - gammaln(1.0 - x);
    }
    if x == 1.0 || x == 2.0 {
        return 0.0;
    }
    // ln Γ(x) = ln Γ(x+k) - ln(x (x+1) ... (x+k-1))
    let (mut y, mut prod) = (x, 1.0);
    while y < 15.0 {
        prod *= y;
        y += 1.0;
    }
    lgamma_stirling(y) - prod.ln()
}

/// The digamma function ψ = Γ'/Γ: recurrence `ψ(x) = ψ(x+1) - 1/x` up to x ≥ 10, then the
/// asymptotic series; reflection `ψ(x) = ψ(1-x) - π/tan(πx)` for x < 0.5. Like SciPy:
/// -inf at x = 0 (+inf at -0), NaN at negative integers.
pub fn digamma(x: f64) -> f64 {
    if x.is_nan() || x == f64::NEG_INFINITY {
        return f64::NAN;
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        };
    }
    if x < 0.5 {
        if x == x.floor() {
            return f64::NAN;
        }
        return digamma(1.0 - x) - PI / (PI * x).tan();
    }
    let (mut y, mut acc) = (x, 0.0);
    while y < 10.0 {
        acc -= 1.0 / y;
        y += 1.0;
    }
    // ψ(y) ~ ln y - 1/(2y) - Σ B_{2k} / (2k y^{2k})
    const C: [f64; 7] = [
        1.0 / 12.0,
        -1.0 / 120.0,
        1.0 / 252.0,
        -1.0 / 240.0,
        1.0 / 132.0,
        -691.0 / 32760.0,
        1.0 / 12.0,
    ];
    let inv2 = 1.0 / (y * y);
    let (mut series, mut p) = (0.0, inv2);
    for c in C {
        series += c * p;
        p *= inv2;
    }
    acc + y.ln() - 0.5 / y - series
}

/// polygamma(1, x) = Σ_{k≥0} 1/(x+k)²: reflection below 1/2, the recurrence
/// ψ₁(x) = ψ₁(x+1) + 1/x² up to 10, then the asymptotic series (≈1e-16 relative).
pub fn trigamma(x: f64) -> f64 {
    if x.is_nan() || x == f64::NEG_INFINITY {
        return f64::NAN;
    }
    if x == f64::INFINITY {
        return 0.0;
    }
    if x <= 0.0 && x == x.floor() {
        return f64::INFINITY;
    }
    if x < 0.5 {
        // ψ₁(1 - x) + ψ₁(x) = π² / sin²(πx)
        let s = (PI * x).sin();
        return PI * PI / (s * s) - trigamma(1.0 - x);
    }
    let (mut y, mut acc) = (x, 0.0);
    while y < 10.0 {
        acc += 1.0 / (y * y);
        y += 1.0;
    }
    // ψ₁(y) ~ 1/y + 1/(2y²) + Σ B_{2k} / y^{2k+1}
    const C: [f64; 7] = [
        1.0 / 6.0,
        -1.0 / 30.0,
        1.0 / 42.0,
        -1.0 / 30.0,
        5.0 / 66.0,
        -691.0 / 2730.0,
        7.0 / 6.0,
    ];
    let inv = 1.0 / y;
    let inv2 = inv * inv;
    let (mut series, mut p) = (0.0, inv2 * inv);
    for c in C {
        series += c * p;
        p *= inv2;
    }
    acc + inv + 0.5 * inv2 + series
}

/// `1 / (1 + e^{-x})` without overflow: for x < 0 computed as `e^x / (1 + e^x)`.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(e^a + e^b)` as NumPy computes it.
pub fn logaddexp(a: f64, b: f64) -> f64 {
    if a == b {
        return a + std::f64::consts::LN_2; // also right for ±inf
    }
    let d = a - b;
    if d > 0.0 {
        a + (-d).exp().ln_1p()
    } else if d <= 0.0 {
        b + d.exp().ln_1p()
    } else {
        d // NaN
    }
}

/// NumPy's `divmod` for floats (`npy_divmod`): the floored quotient and the remainder
/// with the sign of the divisor. Division by zero gives `(a/b, fmod(a, b))`.
pub fn divmod(a: f64, b: f64) -> (f64, f64) {
    let mut m = a % b;
    if b == 0.0 {
        return (a / b, m);
    }
    let mut div = (a - m) / b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) {
            m += b;
            div -= 1.0;
        }
    } else {
        m = 0.0f64.copysign(b);
    }
    let q = if div != 0.0 {
        let f = div.floor();
        if div - f > 0.5 {
            f + 1.0
        } else {
            f
        }
    } else {
        0.0f64.copysign(a / b)
    };
    (q, m)
}

/// `np.sign`: -1, 0 or 1 (NaN stays NaN; -0 gives +0).
pub fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else if x == 0.0 {
        0.0
    } else {
        x
    }
}

/// `np.maximum`: NaN-propagating; of two equal values (`0.0` and `-0.0`) the second, as
/// NumPy's loops return it (`a > b ? a : b`).
pub fn maximum(a: f64, b: f64) -> f64 {
    if a.is_nan() || a > b {
        a
    } else {
        b
    }
}

/// `np.minimum`: NaN-propagating; of two equal values the second, like NumPy.
pub fn minimum(a: f64, b: f64) -> f64 {
    if a.is_nan() || a < b {
        a
    } else {
        b
    }
}

/// `np.arcsinh` as C's `asinh` computes it (fdlibm's method, which glibc uses): no overflow
/// at `f64::MAX` (Rust's `f64::asinh` returns inf there) and `-0.0` kept.
pub fn asinh(x: f64) -> f64 {
    let ax = x.abs();
    if !ax.is_finite() || ax < TWO_M28 {
        return x; // ±inf, NaN; tiny x (and ±0) are their own asinh
    }
    let w = if ax > TWO_P28 {
        ax.ln() + std::f64::consts::LN_2
    } else if ax > 2.0 {
        (2.0 * ax + 1.0 / ((x * x + 1.0).sqrt() + ax)).ln()
    } else {
        let t = x * x;
        (ax + t / (1.0 + (1.0 + t).sqrt())).ln_1p()
    };
    w.copysign(x)
}

/// `np.arccosh` as C's `acosh` computes it (fdlibm's method): no overflow at `f64::MAX`.
pub fn acosh(x: f64) -> f64 {
    if x.is_nan() || x < 1.0 {
        return f64::NAN;
    }
    if x >= TWO_P28 {
        return if x.is_infinite() {
            x
        } else {
            x.ln() + std::f64::consts::LN_2
        };
    }
    if x == 1.0 {
        return 0.0;
    }
    if x > 2.0 {
        (2.0 * x - 1.0 / (x + (x * x - 1.0).sqrt())).ln()
    } else {
        let t = x - 1.0;
        (t + (2.0 * t + t * t).sqrt()).ln_1p()
    }
}

/// `np.arctanh` as C's `atanh` computes it (fdlibm's method).
pub fn atanh(x: f64) -> f64 {
    let ax = x.abs();
    if x.is_nan() || ax > 1.0 {
        return f64::NAN;
    }
    if ax == 1.0 {
        return x / 0.0;
    }
    if ax < TWO_M28 {
        return x;
    }
    let w = if ax < 0.5 {
        let t = ax + ax;
        0.5 * (t + t * ax / (1.0 - ax)).ln_1p()
    } else {
        0.5 * ((ax + ax) / (1.0 - ax)).ln_1p()
    };
    w.copysign(x)
}

const TWO_M28: f64 = 3.725290298461914e-9; // 2^-28
const TWO_P28: f64 = 268435456.0; // 2^28

/// `true` as 1.0, `false` as 0.0 (bool values are held as f64).
fn truth(c: bool) -> f64 {
    c as u8 as f64
}

impl UnaryOp {
    /// `self(x)` for one element: the definition every evaluator and the constant folder
    /// share (libm for the elementary functions).
    // always inlined: the fast path calls it with a literal op inside its per-element
    // loops, where the match must fold away for the loop to vectorize
    #[inline(always)]
    pub fn eval_f64(self, x: f64) -> f64 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sign => sign(x),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Expm1 => x.exp_m1(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Log1p => x.ln_1p(),
            UnaryOp::Log2 => x.log2(),
            UnaryOp::Log10 => x.log10(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Square => x * x,
            UnaryOp::Reciprocal => 1.0 / x,
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::Tan => x.tan(),
            UnaryOp::Arcsin => x.asin(),
            UnaryOp::Arccos => x.acos(),
            UnaryOp::Arctan => x.atan(),
            UnaryOp::Sinh => x.sinh(),
            UnaryOp::Cosh => x.cosh(),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Arcsinh => asinh(x),
            UnaryOp::Arccosh => acosh(x),
            UnaryOp::Arctanh => atanh(x),
            UnaryOp::Floor => x.floor(),
            UnaryOp::Ceil => x.ceil(),
            // half to even, like np.round
            UnaryOp::Round => x.round_ties_even(),
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::Erf => erf(x),
            UnaryOp::Gammaln => gammaln(x),
            UnaryOp::Digamma => digamma(x),
            UnaryOp::Trigamma => trigamma(x),
            UnaryOp::Not => truth(x == 0.0),
            UnaryOp::StopGradient => x,
        }
    }
}

impl BinaryOp {
    /// `self(a, b)` for one element of either operand: the definition every evaluator and
    /// the constant folder share. Integer operands are held as f64 too: `int // 0` and
    /// `int % 0` give a non-finite value here that int64 rounding turns into NumPy's 0;
    /// integers to negative powers are refused by the callers before this is reached.
    // always inlined: the fast path calls it with a literal op inside its per-element
    // loops, where the match must fold away for the loop to vectorize
    #[inline(always)]
    pub fn eval_f64(self, a: f64, b: f64) -> f64 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            // floor(a / b), NumPy's divmod quotient
            BinaryOp::FloorDiv => divmod(a, b).0,
            // a - b floor(a / b): the sign of the divisor
            BinaryOp::Mod => divmod(a, b).1,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Maximum => maximum(a, b),
            BinaryOp::Minimum => minimum(a, b),
            BinaryOp::Arctan2 => a.atan2(b),
            BinaryOp::LogAddExp => logaddexp(a, b),
            BinaryOp::Lt => truth(a < b),
            BinaryOp::Le => truth(a <= b),
            BinaryOp::Gt => truth(a > b),
            BinaryOp::Ge => truth(a >= b),
            BinaryOp::Eq => truth(a == b),
            BinaryOp::Ne => truth(a != b),
            BinaryOp::And => truth(a != 0.0 && b != 0.0),
            BinaryOp::Or => truth(a != 0.0 || b != 0.0),
            BinaryOp::Xor => truth((a != 0.0) != (b != 0.0)),
        }
    }
}
