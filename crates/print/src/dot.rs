//! Graphviz DOT drawings of a graph.
//!
//! Guarantees: one DOT node per node the outputs need (inputs as ellipses, constants as
//! plain text, ops as boxes) labeled with the op and its shape (and dtype when not float64),
//! one edge per operand (numbered when an op has several), and one labeled sink per output.
//! A loop node is drawn with its body in a box labeled with its trip count: the operands
//! flow in (dashed), each carry's next value feeds back to it, and the final carries and
//! stacked rows flow out to the loop node.

use autodiff_ir::{DType, Graph, LoopSpec, NodeId, Op};

use crate::syntax::*;

/// The graph in Graphviz DOT (`dot -Tsvg` draws it).
pub fn to_dot(g: &Graph, outputs: &[NodeId]) -> String {
    let mut s = String::from(
        "digraph autodiff {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    draw(g, outputs, "n", None, &mut s, 1);
    for (k, o) in outputs.iter().enumerate() {
        s.push_str(&format!(
            "  out{k} [label=\"out{k}\", shape=plaintext];\n  n{} -> out{k};\n",
            o.0
        ));
    }
    s.push_str("}\n");
    s
}

/// Draws what `outputs` need, node `i` as `{prefix}{i}`; a loop body's inputs are labeled
/// `labels` (their role) instead of their names. A loop node is a cluster holding its
/// body: dashed edges bring the operands in, feed each carry's next value back, and take
/// the final carries and stacked rows out to the loop node.
fn draw(
    g: &Graph,
    outputs: &[NodeId],
    prefix: &str,
    labels: Option<&[String]>,
    s: &mut String,
    depth: usize,
) {
    let b = Bindings::new(g, outputs, &|_| false);
    let pad = "  ".repeat(depth);
    for i in (0..g.len()).filter(|&i| b.reach[i]) {
        let n = &g.nodes()[i];
        let mut label = match (&n.op, labels) {
            (Op::Input(k), Some(l)) => l[*k as usize].clone(),
            _ => op_label(g, NodeId(i as u32)),
        };
        label.push_str(&format!("\\n{}", shape_tuple(&n.shape)));
        if n.dtype != DType::F64 {
            label.push_str(&format!(" {}", n.dtype));
        }
        let shape = match n.op {
            Op::Input(_) => ", shape=ellipse",
            Op::Const(_) => ", shape=plaintext",
            _ => "",
        };
        s.push_str(&format!(
            "{pad}{prefix}{i} [label=\"{}\"{shape}];\n",
            escape(&label)
        ));
        if let Op::Loop(spec) = &n.op {
            draw_loop(spec, &n.inputs, &format!("{prefix}{i}"), prefix, s, depth);
            continue;
        }
        for (k, x) in n.inputs.iter().enumerate() {
            let tag = if n.inputs.len() > 1 {
                format!(" [label=\"{k}\"]")
            } else {
                String::new()
            };
            s.push_str(&format!("{pad}{prefix}{} -> {prefix}{i}{tag};\n", x.0));
        }
    }
}

/// The cluster of loop node `me` (operands `ops`, drawn with `prefix`).
fn draw_loop(
    spec: &LoopSpec,
    ops: &[NodeId],
    me: &str,
    prefix: &str,
    s: &mut String,
    depth: usize,
) {
    let (nc, nx, body) = (spec.n_carry, spec.n_xs, &spec.body);
    let pad = "  ".repeat(depth);
    let labels: Vec<String> = (0..body.inputs.len())
        .map(|k| {
            let name = &body.input_names[k];
            match (k < nc, k < nc + nx) {
                (true, _) => format!("{name} (carry)"),
                (false, true) => format!("{name} = xs[t]"),
                _ => name.clone(),
            }
        })
        .collect();
    let rev = if spec.reverse { ", reverse" } else { "" };
    s.push_str(&format!(
        "{pad}subgraph cluster_{me} {{\n{pad}  label=\"loop ×{}{rev}: body\";\n{pad}  style=rounded;\n",
        spec.trips
    ));
    let inner = format!("{me}_");
    draw(body, &body.outputs, &inner, Some(&labels), s, depth + 1);
    s.push_str(&format!("{pad}}}\n"));
    let reach = crate::syntax::Bindings::new(body, &body.outputs, &|_| false).reach;
    for (k, (&x, &bi)) in ops.iter().zip(&body.inputs).enumerate() {
        if reach[bi.index()] {
            let tag = match (k < nc, k < nc + nx) {
                (true, _) => "init",
                (false, true) => "xs",
                _ => "",
            };
            s.push_str(&format!(
                "{pad}{prefix}{} -> {inner}{} [style=dashed, label=\"{tag}\"];\n",
                x.0, bi.0
            ));
        }
    }
    for (k, &o) in body.outputs.iter().enumerate() {
        if k < nc && reach[body.inputs[k].index()] {
            s.push_str(&format!(
                "{pad}{inner}{} -> {inner}{} [style=dashed, constraint=false, label=\"next\"];\n",
                o.0, body.inputs[k].0
            ));
        }
        let tag = if k < nc { "final" } else { "rows" };
        s.push_str(&format!(
            "{pad}{inner}{} -> {me} [style=dashed, label=\"{tag}\"];\n",
            o.0
        ));
    }
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
