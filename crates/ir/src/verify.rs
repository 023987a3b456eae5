//! `verify(graph)`: re-checks every invariant of the IR. Runs after every pass in debug builds.

use crate::infer::infer;
use crate::{err, Graph, IrError, Op};

/// Checks topological order, operand types, input numbering and outputs.
pub fn verify(g: &Graph) -> Result<(), IrError> {
    for (i, n) in g.nodes().iter().enumerate() {
        for inp in &n.inputs {
            if inp.index() >= i {
                return err(format!("node {i} uses later node {}", inp.0));
            }
        }
        match &n.op {
            Op::Input(k) => {
                if g.inputs.get(*k as usize).map(|x| x.index()) != Some(i) {
                    return err(format!("node {i} claims to be input {k}"));
                }
            }
            Op::Const(c) => {
                let t = g.consts().get(*c as usize);
                match t {
                    Some(t) if t.shape == n.shape && t.dtype == n.dtype => {}
                    _ => return err(format!("node {i}: constant {c} mismatch")),
                }
            }
            op => {
                let ins: Vec<_> = n
                    .inputs
                    .iter()
                    .map(|x| (g.shape(*x), g.dtype(*x)))
                    .collect();
                let (shape, dtype) = infer(op, &ins, g.consts().len())
                    .map_err(|e| crate::IrError(format!("node {i}: {e}")))?;
                if shape != n.shape || dtype != n.dtype {
                    return err(format!("node {i}: stored type differs from inferred"));
                }
            }
        }
    }
    for o in &g.outputs {
        if o.index() >= g.len() {
            return err(format!("output {} does not exist", o.0));
        }
    }
    Ok(())
}
