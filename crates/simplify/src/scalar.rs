//! Scalar semantics of the elementwise ops, for constant folding.
//!
//! Guarantees: each function computes what the reference evaluator computes for one element
//! (it calls the IR's one definition, [`UnaryOp::eval_f64`] / [`BinaryOp::eval_f64`], so a
//! folded constant equals the evaluated one bit for bit; the caller rounds to the node's
//! dtype with [`autodiff_ir::DType::round`]). It returns `None` where NumPy's result
//! depends on the dtype in ways the evaluator reports as an error or a warning (integer
//! division by zero, integers to negative powers). A `None` just leaves the node unfolded.

use autodiff_ir::{BinaryOp, DType, UnaryOp};

/// `u(x)` for one element, or `None` when we do not fold it.
pub fn unary(u: UnaryOp, x: f64) -> Option<f64> {
    Some(u.eval_f64(x))
}

/// `op(a, b)` for one element of operand dtype `dt`, or `None` when we do not fold it.
pub fn binary(op: BinaryOp, a: f64, b: f64, dt: DType) -> Option<f64> {
    let int = !dt.is_float();
    let refused = match op {
        BinaryOp::FloorDiv | BinaryOp::Mod => int && b == 0.0,
        BinaryOp::Pow => int && b < 0.0,
        BinaryOp::Add
        | BinaryOp::Sub
        | BinaryOp::Mul
        | BinaryOp::Div
        | BinaryOp::Maximum
        | BinaryOp::Minimum
        | BinaryOp::Arctan2
        | BinaryOp::LogAddExp
        | BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::Eq
        | BinaryOp::Ne
        | BinaryOp::And
        | BinaryOp::Or
        | BinaryOp::Xor => false,
    };
    (!refused).then(|| op.eval_f64(a, b))
}

/// The dtype of `op(a, b)` for operands of dtype `dt`.
pub fn binary_dtype(op: BinaryOp, dt: DType) -> DType {
    if op.is_predicate() {
        DType::Bool
    } else {
        dt
    }
}
