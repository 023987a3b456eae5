//! The one `Op` enum. Every pass matches it exhaustively (no `_ =>`), so adding an op is a
//! checklist the compiler enforces: infer, verify, sexpr, exec, grad, jvp, print, simplify.
//!
//! Conventions shared by all stages:
//! - elementwise ops (`Unary`, `Binary`, `Where`) take operands of *equal* shape; NumPy
//!   broadcasting is made explicit with `Broadcast` by the capture stage;
//! - `Binary` operands have equal dtypes; comparisons and logical ops return `bool`;
//! - axes are non-negative and in range; `Reduce` axes are sorted and unique and are removed
//!   from the shape (keepdims is a `Reshape` after it);
//! - index operands (`Gather`, `Scatter*`, `TakeAlong`) are `int64` and non-negative.

use std::sync::Arc;

use crate::loops::LoopSpec;
use crate::{DType, Shape};

/// Elementwise functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Abs,
    Sign,
    Exp,
    Expm1,
    Log,
    Log1p,
    Log2,
    Log10,
    Sqrt,
    Square,
    Reciprocal,
    Sin,
    Cos,
    Tan,
    Arcsin,
    Arccos,
    Arctan,
    Sinh,
    Cosh,
    Tanh,
    Arcsinh,
    Arccosh,
    Arctanh,
    Floor,
    Ceil,
    Round,
    Sigmoid,
    Erf,
    Gammaln,
    Digamma,
    /// polygamma(1, x), the derivative of digamma.
    Trigamma,
    Not,
    /// The identity whose derivative is zero (`autodiff.constant`): the value stays live,
    /// the gradient stops.
    StopGradient,
}

/// Elementwise functions of two arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    Maximum,
    Minimum,
    Arctan2,
    LogAddExp,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
    Xor,
}

/// Reductions over a set of axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Prod,
    Max,
    Min,
}

/// One axis of a basic slice: elements `start, start+step, ...` (`len` of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SliceDim {
    pub start: usize,
    pub step: i64,
    pub len: usize,
}

/// A two-operand einsum: each axis of each operand and of the output has a label.
/// Labels in both operands but not the output are summed; every label of an operand
/// appears in the other operand or the output; no label repeats within one operand.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContractSpec {
    pub a: Vec<u8>,
    pub b: Vec<u8>,
    pub out: Vec<u8>,
}

impl ContractSpec {
    /// Parses `"ij,jk->ik"`.
    pub fn parse(s: &str) -> Option<ContractSpec> {
        let (ins, out) = s.split_once("->")?;
        let (a, b) = ins.split_once(',')?;
        let ok = |t: &str| t.bytes().all(|c| c.is_ascii_alphabetic());
        if !(ok(a) && ok(b) && ok(out)) {
            return None;
        }
        Some(ContractSpec {
            a: a.bytes().collect(),
            b: b.bytes().collect(),
            out: out.bytes().collect(),
        })
    }
}

impl std::fmt::Display for ContractSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        write!(f, "{},{}->{}", s(&self.a), s(&self.b), s(&self.out))
    }
}

/// The operations of the IR. Operand counts and meanings are listed per variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `()` The i-th input of the graph; shape and dtype are the node's.
    Input(u32),
    /// `()` A literal tensor, `graph.consts[id]`.
    Const(u32),
    /// `(x)` Elementwise function.
    Unary(UnaryOp),
    /// `(a, b)` Elementwise function; equal shapes and dtypes.
    Binary(BinaryOp),
    /// `(cond: bool, a, b)` Elementwise select; equal shapes.
    Where,
    /// `(x)` Convert the element type.
    Cast(DType),
    /// `(x)` NumPy broadcast of `x` to the given shape (right-aligned; extents 1 or equal).
    Broadcast(Shape),
    /// `(x)` Same elements in row-major order, new shape.
    Reshape(Shape),
    /// `(x)` Axis permutation: output axis i is input axis `perm[i]`.
    Transpose(Vec<usize>),
    /// `(x)` Reduce over the listed axes (sorted, unique), removing them.
    Reduce(ReduceOp, Vec<usize>),
    /// `(x)` Index of the max (`true`) or min (`false`) along an axis, removing it; int64.
    ArgMax(usize, bool),
    /// `(a, b)` Two-operand einsum.
    Contract(ContractSpec),
    /// `(x)` Basic slice, one `SliceDim` per axis.
    Slice(Vec<SliceDim>),
    /// `(x, v)` `x` with the slice replaced by `v` (v has the slice's shape).
    SetSlice(Vec<SliceDim>),
    /// `(x, idx)` `np.take(x, idx, axis)`: shape `x[:axis] + idx + x[axis+1:]`.
    Gather(usize),
    /// `(x, idx, v)` `x` with `v` added at the positions `Gather(axis)` would read.
    ScatterAdd(usize),
    /// `(x, idx, v)` `x` with the positions `Gather(axis)` would read set to `v`
    /// (the last write wins for repeated indices).
    Scatter(usize),
    /// `(x, idx)` `np.take_along_axis(x, idx, axis)`; idx has x's shape but on `axis`.
    TakeAlong(usize),
    /// `(x, idx, v)` `x` with `v` added where `TakeAlong(axis)` would read.
    ScatterAlongAdd(usize),
    /// `(x1, ..., xn)` Join along an axis.
    Concat(usize),
    /// `(x)` Running sum along an axis.
    Cumsum(usize),
    /// `(x)` Running product along an axis.
    Cumprod(usize),
    /// `(x)` Indices that sort `x` along an axis (stable); int64.
    ArgSort(usize),
    /// `(a, b)` Solve `a @ x = b` for square `a` (n,n) and `b` (n,k).
    Solve,
    /// `(a, b)` Solve `a @ x = b` for triangular `a`: lower (`true`) or upper.
    TriSolve(bool),
    /// `(a)` Lower Cholesky factor of a symmetric positive-definite matrix.
    Cholesky,
    /// `(a)` Matrix inverse.
    Inv,
    /// `(a)` Determinant (0-d).
    Det,
    /// `(a)` log |det a| (0-d).
    LogAbsDet,
    /// `(carries..., xs..., invariants...)` A fixed number of iterations of a body graph;
    /// its value is the packed vector of results (see [`crate::loops`]).
    Loop(Arc<LoopSpec>),
}

impl Op {
    /// Number of operands, or `None` for variadic ops.
    pub fn arity(&self) -> Option<usize> {
        Some(match self {
            Op::Input(_) | Op::Const(_) => 0,
            Op::Unary(_)
            | Op::Cast(_)
            | Op::Broadcast(_)
            | Op::Reshape(_)
            | Op::Transpose(_)
            | Op::Reduce(..)
            | Op::ArgMax(..)
            | Op::Slice(_)
            | Op::Cumsum(_)
            | Op::Cumprod(_)
            | Op::ArgSort(_)
            | Op::Cholesky
            | Op::Inv
            | Op::Det
            | Op::LogAbsDet => 1,
            Op::Binary(_)
            | Op::Contract(_)
            | Op::SetSlice(_)
            | Op::Gather(_)
            | Op::TakeAlong(_)
            | Op::Solve
            | Op::TriSolve(_) => 2,
            Op::Where | Op::ScatterAdd(_) | Op::Scatter(_) | Op::ScatterAlongAdd(_) => 3,
            Op::Concat(_) | Op::Loop(_) => return None,
        })
    }
}

impl Op {
    /// Elementwise ops (`Unary`, `Binary`, `Where`, `Cast`): output element `i` depends only
    /// on element `i` of each operand (operands of equal shape). The fast path fuses them;
    /// the simplifier hoists broadcasts above them.
    pub fn is_elementwise(&self) -> bool {
        match self {
            Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast(_) => true,
            Op::Input(_)
            | Op::Const(_)
            | Op::Broadcast(_)
            | Op::Reshape(_)
            | Op::Transpose(_)
            | Op::Reduce(..)
            | Op::ArgMax(..)
            | Op::Contract(_)
            | Op::Slice(_)
            | Op::SetSlice(_)
            | Op::Gather(_)
            | Op::ScatterAdd(_)
            | Op::Scatter(_)
            | Op::TakeAlong(_)
            | Op::ScatterAlongAdd(_)
            | Op::Concat(_)
            | Op::Cumsum(_)
            | Op::Cumprod(_)
            | Op::ArgSort(_)
            | Op::Solve
            | Op::TriSolve(_)
            | Op::Cholesky
            | Op::Inv
            | Op::Det
            | Op::LogAbsDet
            | Op::Loop(_) => false,
        }
    }
}

impl UnaryOp {
    /// All unary ops, for tables and tests.
    pub const ALL: [UnaryOp; 34] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Exp,
        UnaryOp::Expm1,
        UnaryOp::Log,
        UnaryOp::Log1p,
        UnaryOp::Log2,
        UnaryOp::Log10,
        UnaryOp::Sqrt,
        UnaryOp::Square,
        UnaryOp::Reciprocal,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tan,
        UnaryOp::Arcsin,
        UnaryOp::Arccos,
        UnaryOp::Arctan,
        UnaryOp::Sinh,
        UnaryOp::Cosh,
        UnaryOp::Tanh,
        UnaryOp::Arcsinh,
        UnaryOp::Arccosh,
        UnaryOp::Arctanh,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
        UnaryOp::Sigmoid,
        UnaryOp::Erf,
        UnaryOp::Gammaln,
        UnaryOp::Digamma,
        UnaryOp::Trigamma,
        UnaryOp::Not,
        UnaryOp::StopGradient,
    ];

    /// The NumPy-style name, also used by the s-expression form.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Exp => "exp",
            UnaryOp::Expm1 => "expm1",
            UnaryOp::Log => "log",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Log2 => "log2",
            UnaryOp::Log10 => "log10",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Square => "square",
            UnaryOp::Reciprocal => "reciprocal",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tan => "tan",
            UnaryOp::Arcsin => "arcsin",
            UnaryOp::Arccos => "arccos",
            UnaryOp::Arctan => "arctan",
            UnaryOp::Sinh => "sinh",
            UnaryOp::Cosh => "cosh",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Arcsinh => "arcsinh",
            UnaryOp::Arccosh => "arccosh",
            UnaryOp::Arctanh => "arctanh",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Round => "round",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Erf => "erf",
            UnaryOp::Gammaln => "gammaln",
            UnaryOp::Digamma => "digamma",
            UnaryOp::Trigamma => "trigamma",
            UnaryOp::Not => "not",
            UnaryOp::StopGradient => "stop_gradient",
        }
    }

    /// Inverse of [`UnaryOp::name`].
    pub fn from_name(s: &str) -> Option<UnaryOp> {
        UnaryOp::ALL.iter().copied().find(|u| u.name() == s)
    }

    /// Ops defined on floats only: an int64 operand is refused by type inference (the
    /// capture stage converts it to float64 first, as NumPy does); the rest keep their
    /// operand's dtype (`not` takes and gives bool).
    pub fn is_float_only(self) -> bool {
        match self {
            UnaryOp::Exp
            | UnaryOp::Expm1
            | UnaryOp::Log
            | UnaryOp::Log1p
            | UnaryOp::Log2
            | UnaryOp::Log10
            | UnaryOp::Sqrt
            | UnaryOp::Reciprocal
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Tan
            | UnaryOp::Arcsin
            | UnaryOp::Arccos
            | UnaryOp::Arctan
            | UnaryOp::Sinh
            | UnaryOp::Cosh
            | UnaryOp::Tanh
            | UnaryOp::Arcsinh
            | UnaryOp::Arccosh
            | UnaryOp::Arctanh
            | UnaryOp::Sigmoid
            | UnaryOp::Erf
            | UnaryOp::Gammaln
            | UnaryOp::Digamma
            | UnaryOp::Trigamma => true,
            UnaryOp::Neg
            | UnaryOp::Abs
            | UnaryOp::Sign
            | UnaryOp::Square
            | UnaryOp::Floor
            | UnaryOp::Ceil
            | UnaryOp::Round
            | UnaryOp::Not
            | UnaryOp::StopGradient => false,
        }
    }

    /// Ops whose output is bool (`not`) or integral-valued with zero derivative.
    pub fn is_piecewise_constant(self) -> bool {
        matches!(
            self,
            UnaryOp::Sign | UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round | UnaryOp::Not
        )
    }
}

impl BinaryOp {
    /// All binary ops, for tables and tests.
    pub const ALL: [BinaryOp; 20] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::FloorDiv,
        BinaryOp::Mod,
        BinaryOp::Pow,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
        BinaryOp::Arctan2,
        BinaryOp::LogAddExp,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Xor,
    ];

    /// The NumPy-style name, also used by the s-expression form.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::FloorDiv => "floordiv",
            BinaryOp::Mod => "mod",
            BinaryOp::Pow => "pow",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Arctan2 => "arctan2",
            BinaryOp::LogAddExp => "logaddexp",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Xor => "xor",
        }
    }

    /// Inverse of [`BinaryOp::name`].
    pub fn from_name(s: &str) -> Option<BinaryOp> {
        BinaryOp::ALL.iter().copied().find(|u| u.name() == s)
    }

    /// `op(a, b) = op(b, a)` for every pair of elements (NaN results included).
    pub fn is_commutative(self) -> bool {
        match self {
            BinaryOp::Add
            | BinaryOp::Mul
            | BinaryOp::Maximum
            | BinaryOp::Minimum
            | BinaryOp::LogAddExp
            | BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::And
            | BinaryOp::Or
            | BinaryOp::Xor => true,
            BinaryOp::Sub
            | BinaryOp::Div
            | BinaryOp::FloorDiv
            | BinaryOp::Mod
            | BinaryOp::Pow
            | BinaryOp::Arctan2
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge => false,
        }
    }

    /// Comparisons and logical ops produce bool.
    pub fn is_predicate(self) -> bool {
        matches!(
            self,
            BinaryOp::Lt
                | BinaryOp::Le
                | BinaryOp::Gt
                | BinaryOp::Ge
                | BinaryOp::Eq
                | BinaryOp::Ne
                | BinaryOp::And
                | BinaryOp::Or
                | BinaryOp::Xor
        )
    }
}

impl ReduceOp {
    /// The name used by the s-expression form.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Prod => "prod",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        }
    }

    /// Inverse of [`ReduceOp::name`].
    pub fn from_name(s: &str) -> Option<ReduceOp> {
        [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min]
            .into_iter()
            .find(|r| r.name() == s)
    }
}
