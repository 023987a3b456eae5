//! Graphviz DOT.
use autodiff_ir::{Graph, NodeId};
/// DOT text.
pub fn to_dot(_g: &Graph, _outputs: &[NodeId]) -> String { todo!() }
