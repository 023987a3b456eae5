//! Scalar semantics of the elementwise ops, for constant folding.
//!
//! Guarantees: each function computes in f64 what NumPy computes for one element (the caller
//! rounds to the node's dtype with [`autodiff_ir::DType::round`]); it returns `None` where
//! folding would need a special function we do not carry (`erf`, `gammaln`, `digamma`) or
//! where NumPy's result depends on the dtype in ways a plain f64 cannot tell (integer
//! division by zero, integer negative powers). A `None` just leaves the node unfolded.

use autodiff_ir::{BinaryOp, DType, UnaryOp};

/// `u(x)` for one element, or `None` when we do not fold it.
pub fn unary(u: UnaryOp, x: f64) -> Option<f64> {
    Some(match u {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sign => {
            if x.is_nan() || x == 0.0 {
                x
            } else {
                x.signum()
            }
        }
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
        UnaryOp::Arcsinh => x.asinh(),
        UnaryOp::Arccosh => x.acosh(),
        UnaryOp::Arctanh => x.atanh(),
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::Round => x.round_ties_even(),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Not => (x == 0.0) as u8 as f64,
        UnaryOp::StopGradient => x,
        UnaryOp::Erf | UnaryOp::Gammaln | UnaryOp::Digamma | UnaryOp::Trigamma => return None,
    })
}

/// `op(a, b)` for one element of operand dtype `dt`, or `None` when we do not fold it.
pub fn binary(op: BinaryOp, a: f64, b: f64, dt: DType) -> Option<f64> {
    let int = !dt.is_float();
    let t = |c: bool| c as u8 as f64;
    Some(match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::FloorDiv if int && b == 0.0 => return None,
        BinaryOp::FloorDiv => (a / b).floor(),
        BinaryOp::Mod if int && b == 0.0 => return None,
        BinaryOp::Mod => {
            let r = a % b;
            if r != 0.0 && (r < 0.0) != (b < 0.0) {
                r + b
            } else {
                r
            }
        }
        BinaryOp::Pow if int && b < 0.0 => return None,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Maximum if a.is_nan() || b.is_nan() => f64::NAN,
        BinaryOp::Maximum => a.max(b),
        BinaryOp::Minimum if a.is_nan() || b.is_nan() => f64::NAN,
        BinaryOp::Minimum => a.min(b),
        BinaryOp::Arctan2 => a.atan2(b),
        BinaryOp::LogAddExp if a == b => a + std::f64::consts::LN_2,
        BinaryOp::LogAddExp => a.max(b) + (-(a - b).abs()).exp().ln_1p(),
        BinaryOp::Lt => t(a < b),
        BinaryOp::Le => t(a <= b),
        BinaryOp::Gt => t(a > b),
        BinaryOp::Ge => t(a >= b),
        BinaryOp::Eq => t(a == b),
        BinaryOp::Ne => t(a != b),
        BinaryOp::And => t(a != 0.0 && b != 0.0),
        BinaryOp::Or => t(a != 0.0 || b != 0.0),
        BinaryOp::Xor => t((a != 0.0) != (b != 0.0)),
    })
}

/// The dtype of `op(a, b)` for operands of dtype `dt`.
pub fn binary_dtype(op: BinaryOp, dt: DType) -> DType {
    if op.is_predicate() {
        DType::Bool
    } else {
        dt
    }
}
