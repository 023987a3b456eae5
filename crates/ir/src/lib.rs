//! The graph IR: a typed, hash-consed tensor DAG in an arena.
//!
//! Guarantees:
//! - every node has a static shape and dtype, inferred and checked when it is added
//!   ([`Graph::add`] refuses ill-typed nodes);
//! - structurally equal nodes are the same node (hash-consing gives free CSE);
//! - nodes only refer to earlier nodes, so `0..len` is a topological order;
//! - the s-expression form ([`sexpr`]) prints and parses every graph;
//! - each op's facts live here, once: its name ([`UnaryOp::name`]), its scalar semantics
//!   ([`UnaryOp::eval_f64`], [`BinaryOp::eval_f64`] in [`scalar`]), whether it is
//!   elementwise ([`Op::is_elementwise`]), float-only ([`UnaryOp::is_float_only`]) or
//!   commutative ([`BinaryOp::is_commutative`]).
//!
//! This crate depends on nothing; every other stage depends on it.

pub mod dtype;
pub mod graph;
pub mod infer;
pub mod loops;
pub mod mem;
pub mod op;
pub mod scalar;
pub mod sexpr;
pub mod tensor;
pub mod verify;

pub use dtype::DType;
pub use graph::{Graph, Node, NodeId};
pub use loops::LoopSpec;
pub use op::{BinaryOp, ContractSpec, Op, ReduceOp, SliceDim, UnaryOp};
pub use tensor::Tensor;

/// A shape: one extent per axis; `[]` is a scalar.
pub type Shape = Vec<usize>;

/// Errors raised while building or checking a graph.
#[derive(Debug, Clone, PartialEq)]
pub struct IrError(pub String);

impl std::fmt::Display for IrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IrError {}

/// Shorthand for building an [`IrError`] result.
pub fn err<T>(msg: impl Into<String>) -> Result<T, IrError> {
    Err(IrError(msg.into()))
}
