//! Graphviz DOT drawings of a graph.
//!
//! Guarantees: one DOT node per node the outputs need (inputs as ellipses, constants as
//! plain text, ops as boxes) labeled with the op and its shape (and dtype when not float64),
//! one edge per operand (numbered when an op has several), and one labeled sink per output.

use autodiff_ir::{DType, Graph, NodeId, Op};

use crate::syntax::*;

/// The graph in Graphviz DOT (`dot -Tsvg` draws it).
pub fn to_dot(g: &Graph, outputs: &[NodeId]) -> String {
    let b = Bindings::new(g, outputs, &|_| false);
    let mut s = String::from(
        "digraph autodiff {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for i in (0..g.len()).filter(|&i| b.reach[i]) {
        let n = &g.nodes()[i];
        let mut label = op_label(g, NodeId(i as u32));
        label.push_str(&format!("\\n{}", shape_tuple(&n.shape)));
        if n.dtype != DType::F64 {
            label.push_str(&format!(" {}", n.dtype));
        }
        let shape = match n.op {
            Op::Input(_) => ", shape=ellipse",
            Op::Const(_) => ", shape=plaintext",
            _ => "",
        };
        s.push_str(&format!("  n{i} [label=\"{}\"{shape}];\n", escape(&label)));
        for (k, x) in n.inputs.iter().enumerate() {
            let tag = if n.inputs.len() > 1 {
                format!(" [label=\"{k}\"]")
            } else {
                String::new()
            };
            s.push_str(&format!("  n{} -> n{i}{tag};\n", x.0));
        }
    }
    for (k, o) in outputs.iter().enumerate() {
        s.push_str(&format!(
            "  out{k} [label=\"out{k}\", shape=plaintext];\n  n{} -> out{k};\n",
            o.0
        ));
    }
    s.push_str("}\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('"', "\\\"")
}

/// A short description of a node's op.
fn op_label(g: &Graph, id: NodeId) -> String {
    let n = g.node(id);
    let axis = |name: &str, k: &usize| format!("{name} axis={k}");
    match &n.op {
        Op::Input(k) => g.input_names[*k as usize].clone(),
        Op::Const(_) => match g.uniform_const(id) {
            Some(v) => num(v),
            None => "const".into(),
        },
        Op::Unary(u) => u.name().into(),
        Op::Binary(b) => b.name().into(),
        Op::Where => "where".into(),
        Op::Cast(dt) => format!("cast {dt}"),
        Op::Broadcast(_) => "broadcast".into(),
        Op::Reshape(_) => "reshape".into(),
        Op::Transpose(p) => format!("transpose {}", shape_tuple(p)),
        Op::Reduce(r, axes) => format!("{} axis={}", r.name(), axes_text(axes)),
        Op::ArgMax(k, max) => axis(if *max { "argmax" } else { "argmin" }, k),
        Op::Contract(spec) => format!("einsum {spec}"),
        Op::Slice(d) => format!("slice [{}]", slice_text(d, g.shape(n.inputs[0]))),
        Op::SetSlice(d) => format!("set_slice [{}]", slice_text(d, g.shape(n.inputs[0]))),
        Op::Gather(k) => axis("gather", k),
        Op::ScatterAdd(k) => axis("scatter_add", k),
        Op::Scatter(k) => axis("scatter", k),
        Op::TakeAlong(k) => axis("take_along", k),
        Op::ScatterAlongAdd(k) => axis("scatter_along_add", k),
        Op::Concat(k) => axis("concat", k),
        Op::Cumsum(k) => axis("cumsum", k),
        Op::Cumprod(k) => axis("cumprod", k),
        Op::ArgSort(k) => axis("argsort", k),
        Op::Solve => "solve".into(),
        Op::TriSolve(lower) => format!("solve_triangular lower={lower}"),
        Op::Cholesky => "cholesky".into(),
        Op::Inv => "inv".into(),
        Op::Det => "det".into(),
        Op::LogAbsDet => "logabsdet".into(),
        Op::Loop(spec) => format!("loop ×{}", spec.trips),
    }
}
