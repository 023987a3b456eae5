//! The two sweeps over the graph: reverse (cotangents, from the outputs down) and forward
//! (tangents, from the differentiated nodes up). Both only visit nodes that are *active*:
//! float-valued and depending on a `wrt` node. Each `wrt` node is an independent variable:
//! paths from an output through one `wrt` node to another are cut.

use autodiff_ir::{err, Graph, IrError, NodeId, Op};

use crate::build::{add_opt, R};
use crate::rules;

/// Checks that every `wrt` node is float-valued.
fn check_wrt(g: &Graph, wrt: &[NodeId]) -> R<()> {
    for &w in wrt {
        if w.index() >= g.len() {
            return err(format!(
                "cannot differentiate with respect to node {}: it does not exist",
                w.0
            ));
        }
        let dt = g.dtype(w);
        if !dt.is_float() {
            let name = match g.node(w).op {
                Op::Input(k) => match g.input_names.get(k as usize) {
                    Some(n) if !n.is_empty() => format!("input `{n}`"),
                    _ => format!("input {k}"),
                },
                _ => format!("node {}", w.0),
            };
            return err(format!(
                "cannot differentiate with respect to an integer/bool input: {name} has dtype {dt}; \
                 convert it to float (e.g. x.astype(float)) or leave it out of wrt"
            ));
        }
    }
    Ok(())
}

/// `(active, is_wrt)` for the first `n` nodes.
fn activity(g: &Graph, wrt: &[NodeId], n: usize) -> (Vec<bool>, Vec<bool>) {
    let mut is_wrt = vec![false; n];
    for &w in wrt {
        is_wrt[w.index()] = true;
    }
    let mut active = is_wrt.clone();
    let lo = wrt.iter().map(|w| w.index()).min().unwrap_or(n);
    for i in lo..n {
        let node = &g.nodes()[i];
        if !active[i] && node.dtype.is_float() {
            active[i] = node.inputs.iter().any(|x| active[x.index()]);
        }
    }
    (active, is_wrt)
}

/// Checks that a rule's result has its primal's type (a bug in a rule otherwise).
fn check_like(g: &Graph, d: NodeId, primal: NodeId, what: &str) -> R<()> {
    if g.shape(d) != g.shape(primal) || g.dtype(d) != g.dtype(primal) {
        return err(format!(
            "internal error: {what} of node {} ({:?}) has type {:?} {} instead of {:?} {}",
            primal.0,
            g.node(primal).op,
            g.shape(d),
            g.dtype(d),
            g.shape(primal),
            g.dtype(primal)
        ));
    }
    Ok(())
}

/// Reverse sweep: see [`crate::vjp`].
/// A rule's error with the user's file:line of the node it was differentiating.
fn located(e: IrError, loc: Option<&str>) -> IrError {
    match loc {
        Some(l) => IrError(format!("{e}\n  at {l}")),
        None => e,
    }
}

pub(crate) fn vjp(
    g: &mut Graph,
    outputs: &[NodeId],
    cotangents: &[NodeId],
    wrt: &[NodeId],
) -> Result<Vec<NodeId>, IrError> {
    if outputs.len() != cotangents.len() {
        return err(format!(
            "vjp: {} outputs but {} cotangents",
            outputs.len(),
            cotangents.len()
        ));
    }
    check_wrt(g, wrt)?;
    for (&o, &c) in outputs.iter().zip(cotangents) {
        if o.index() >= g.len() || c.index() >= g.len() {
            return err("vjp: an output or cotangent node does not exist");
        }
        if g.shape(o) != g.shape(c) || g.dtype(o) != g.dtype(c) {
            return err(format!(
                "vjp: cotangent of shape {:?} {} for an output of shape {:?} {}",
                g.shape(c),
                g.dtype(c),
                g.shape(o),
                g.dtype(o)
            ));
        }
    }
    let n = g.len();
    let (active, is_wrt) = activity(g, wrt, n);
    let mut ct: Vec<Option<NodeId>> = vec![None; n];
    for (&o, &c) in outputs.iter().zip(cotangents) {
        if active[o.index()] {
            ct[o.index()] = add_opt(g, ct[o.index()], Some(c))?;
        }
    }
    let lo = wrt.iter().map(|w| w.index()).min().unwrap_or(n);
    for i in (lo..n).rev() {
        let Some(c) = ct[i] else { continue };
        if is_wrt[i] {
            continue;
        }
        let id = NodeId(i as u32);
        let need: Vec<bool> = g
            .node(id)
            .inputs
            .iter()
            .map(|x| active[x.index()])
            .collect();
        if !need.iter().any(|&b| b) {
            continue;
        }
        // Derivative nodes carry the provenance of the primal node they come from.
        let loc = g.loc(id).map(str::to_string);
        g.set_loc(loc.as_deref());
        let contribs = rules::vjp(g, id, c, &need).map_err(|e| located(e, loc.as_deref()))?;
        let inputs = g.node(id).inputs.clone();
        for ((&x, &nd), d) in inputs.iter().zip(&need).zip(contribs) {
            if let (true, Some(d)) = (nd, d) {
                check_like(g, d, x, "cotangent")?;
                ct[x.index()] = add_opt(g, ct[x.index()], Some(d))?;
            }
        }
    }
    Ok(wrt
        .iter()
        .map(|&w| ct[w.index()].unwrap_or_else(|| g.zeros_like(w)))
        .collect())
}

/// Forward sweep: see [`crate::jvp`].
pub(crate) fn jvp(
    g: &mut Graph,
    outputs: &[NodeId],
    wrt: &[NodeId],
    tangents: &[NodeId],
) -> Result<Vec<NodeId>, IrError> {
    if wrt.len() != tangents.len() {
        return err(format!(
            "jvp: {} wrt nodes but {} tangents",
            wrt.len(),
            tangents.len()
        ));
    }
    check_wrt(g, wrt)?;
    for (i, (&w, &t)) in wrt.iter().zip(tangents).enumerate() {
        if t.index() >= g.len() {
            return err("jvp: a tangent node does not exist");
        }
        if wrt[..i].contains(&w) {
            return err(format!("jvp: node {} is listed twice in wrt", w.0));
        }
        if g.shape(w) != g.shape(t) || g.dtype(w) != g.dtype(t) {
            return err(format!(
                "jvp: tangent of shape {:?} {} for a primal of shape {:?} {}",
                g.shape(t),
                g.dtype(t),
                g.shape(w),
                g.dtype(w)
            ));
        }
    }
    for &o in outputs {
        if o.index() >= g.len() {
            return err(format!("jvp: output node {} does not exist", o.0));
        }
    }
    let n = g.len();
    let (active, is_wrt) = activity(g, wrt, n);
    // Ancestors of the outputs: the only nodes whose tangents matter.
    let mut needed = vec![false; n];
    for &o in outputs {
        needed[o.index()] = true;
    }
    for i in (0..n).rev() {
        if needed[i] {
            for x in &g.nodes()[i].inputs {
                needed[x.index()] = true;
            }
        }
    }
    let mut tan: Vec<Option<NodeId>> = vec![None; n];
    for (&w, &t) in wrt.iter().zip(tangents) {
        tan[w.index()] = Some(t);
    }
    let lo = wrt.iter().map(|w| w.index()).min().unwrap_or(n);
    for i in lo..n {
        if !needed[i] || !active[i] || is_wrt[i] {
            continue;
        }
        let id = NodeId(i as u32);
        let t: Vec<Option<NodeId>> = g.node(id).inputs.iter().map(|x| tan[x.index()]).collect();
        if t.iter().all(Option::is_none) {
            continue;
        }
        let loc = g.loc(id).map(str::to_string);
        g.set_loc(loc.as_deref());
        tan[i] = rules::jvp(g, id, &t).map_err(|e| located(e, loc.as_deref()))?;
        if let Some(d) = tan[i] {
            check_like(g, d, id, "tangent")?;
        }
    }
    Ok(outputs
        .iter()
        .map(|&o| tan[o.index()].unwrap_or_else(|| g.zeros_like(o)))
        .collect())
}
