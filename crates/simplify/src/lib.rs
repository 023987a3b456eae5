//! Simplification of IR graphs: rewrites in named phases, two extraction goals.
//!
//! [`simplify`] (cheapest, for execution) and [`simplify_for_print`] (most readable) return a
//! fresh, compact graph that computes the same values as the given outputs: it holds only
//! what those outputs need, the same inputs in the same order with the same names, and its
//! `outputs` set. The rewriter is hand-written: each pass rebuilds the graph bottom-up through
//! a smart constructor (`rules::Rewriter`) that applies local rules, and passes repeat until
//! the graph stops changing (a bounded number of times). Hash-consing makes equal subterms
//! one node, so rebuilding is also common-subexpression elimination. Rules are named data,
//! one file per phase (`rules/`); a phase is the list of rule tables it tries, in order
//! (`PHASES`); [`all_rule_names`] lists them and [`simplify_traced`] reports which fired.
//!
//! Phases, in order:
//! 1. **canonicalize** – constant folding, identities (`x+0`, `x*1`, `x**1`, `--x`, ...),
//!    constants on the right and pulled together (`2*(3*x)` → `x*6`), like terms
//!    (`x + x` → `x*2`, `a*x + b*x` → `(a+b)*x`), products of powers, multiplication by a
//!    reciprocal as division, and broadcasts/reshapes/transposes merged and hoisted above
//!    elementwise work;
//! 2. **stabilize** – `log(1+x)` → `log1p(x)`, `exp(x)-1` → `expm1(x)`,
//!    `1/(1+exp(-x))` → `sigmoid(x)`, and (for execution) `log(sum(exp(x)))` → a max-shifted
//!    log-sum-exp and `log(sigmoid(x))` → `-logaddexp(0, -x)`;
//! 3. **specialize** – `x + -c` → `x - c`; for execution also `x**2` → `square(x)`.
//!
//! Every rule keeps the value of every element (up to floating-point rounding of
//! reassociated constants), including at infinities and NaNs: `x*0` is folded only when `x`
//! is a constant, and `x - x` becomes `x*0`, not `0`.

mod rules;
pub mod scalar;

use std::collections::HashMap;
use std::sync::Arc;

use autodiff_ir::{Graph, LoopSpec, NodeId, Op};

/// What the extracted graph is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// Fewest and cheapest operations.
    Execute,
    /// Most readable when printed (`x**2` rather than `square(x)`, no log-sum-exp shift).
    Print,
}

/// The rewrite phases, applied in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Canonicalize,
    Stabilize,
    Specialize,
}

/// One phase as data: its rule tables (tried in order, the first replacement wins) and
/// how many passes it may take at most (each pass rewrites the whole graph).
struct PhaseSpec {
    phase: Phase,
    rules: rules::PhaseRules,
    passes: usize,
}

/// The phases, in order.
const PHASES: [PhaseSpec; 3] = [
    PhaseSpec {
        phase: Phase::Canonicalize,
        rules: &[rules::canonicalize::RULES, rules::loops::RULES],
        passes: 16,
    },
    PhaseSpec {
        phase: Phase::Stabilize,
        rules: &[rules::stabilize::RULES, rules::canonicalize::RULES],
        passes: 16,
    },
    PhaseSpec {
        phase: Phase::Specialize,
        rules: &[rules::specialize::RULES],
        passes: 4,
    },
];

pub use rules::all_rule_names;

/// Each phase's rules indexed by op kind, built once per process.
fn index(phase: usize) -> &'static rules::RuleIndex {
    static INDEX: std::sync::OnceLock<Vec<rules::RuleIndex>> = std::sync::OnceLock::new();
    &INDEX.get_or_init(|| {
        PHASES
            .iter()
            .map(|p| rules::RuleIndex::new(p.rules))
            .collect()
    })[phase]
}

/// Simplifies for execution: the cheapest equivalent graph of `outputs`.
pub fn simplify(g: &Graph, outputs: &[NodeId]) -> (Graph, Vec<NodeId>) {
    simplify_with(g, outputs, Goal::Execute)
}

/// Simplifies for printing: the most readable equivalent graph of `outputs`.
pub fn simplify_for_print(g: &Graph, outputs: &[NodeId]) -> (Graph, Vec<NodeId>) {
    simplify_with(g, outputs, Goal::Print)
}

/// Runs every phase to its fixed point for the given goal.
pub fn simplify_with(g: &Graph, outputs: &[NodeId], goal: Goal) -> (Graph, Vec<NodeId>) {
    run_phases(g, outputs, goal, &mut None)
}

/// [`simplify_with`], also returning the names of the rules that fired (in order, with
/// repeats), with the phase each fired in: for tests and for explaining a result.
pub fn simplify_traced(
    g: &Graph,
    outputs: &[NodeId],
    goal: Goal,
) -> (Graph, Vec<NodeId>, Vec<(Phase, &'static str)>) {
    let mut fired = Some(vec![]);
    let (g, outs) = run_phases(g, outputs, goal, &mut fired);
    (g, outs, fired.unwrap_or_default())
}

/// Runs one phase alone (to its fixed point) on `g`, returning the rules that fired: for
/// tests of single rules (`tests/rules.rs`).
pub fn simplify_phase(
    g: &Graph,
    outputs: &[NodeId],
    phase: Phase,
    goal: Goal,
) -> (Graph, Vec<NodeId>, Vec<&'static str>) {
    let k = PHASES
        .iter()
        .position(|p| p.phase == phase)
        .expect("every phase has a spec");
    let mut fired = Some(vec![]);
    let (g, outs) = rebuild(g, outputs, None, goal, &mut None);
    let (mut g, outs) = run_phase(k, g, outs, goal, &mut fired);
    g.outputs = outs.clone();
    let names = fired
        .unwrap_or_default()
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    (g, outs, names)
}

fn run_phases(
    g: &Graph,
    outputs: &[NodeId],
    goal: Goal,
    fired: &mut Option<Vec<(Phase, &'static str)>>,
) -> (Graph, Vec<NodeId>) {
    let (mut g, mut outs) = rebuild_with_bodies(g, outputs, goal);
    for k in 0..PHASES.len() {
        (g, outs) = run_phase(k, g, outs, goal, fired);
    }
    g.outputs = outs.clone();
    debug_assert!(autodiff_ir::verify::verify(&g).is_ok());
    (g, outs)
}

/// Passes of phase `k` until the graph stops changing (at most its `passes`).
fn run_phase(
    k: usize,
    mut g: Graph,
    mut outs: Vec<NodeId>,
    goal: Goal,
    fired: &mut Option<Vec<(Phase, &'static str)>>,
) -> (Graph, Vec<NodeId>) {
    let spec = &PHASES[k];
    for _ in 0..spec.passes {
        let mut names = Some(vec![]);
        let (g1, o1) = rebuild(&g, &outs, Some(index(k)), goal, &mut names);
        let names = names.unwrap_or_default();
        // no rule fired and the copy is the same graph: the fixed point, without the
        // compacting rebuild (each pass re-interns every node)
        if names.is_empty() && o1 == outs && same_graph(&g, &g1) {
            break;
        }
        if let Some(all) = fired.as_mut() {
            all.extend(names.into_iter().map(|n| (spec.phase, n)));
        }
        let (g2, o2) = rebuild(&g1, &o1, None, goal, &mut None);
        let done = o2 == outs && same_graph(&g, &g2);
        (g, outs) = (g2, o2);
        if done {
            break;
        }
    }
    (g, outs)
}

/// Number of nodes the outputs need (inputs and constants included).
pub fn node_count(g: &Graph, outputs: &[NodeId]) -> usize {
    reachable(g, outputs).iter().filter(|&&r| r).count()
}

/// Which nodes the outputs depend on.
pub fn reachable(g: &Graph, outputs: &[NodeId]) -> Vec<bool> {
    let mut seen = vec![false; g.len()];
    for o in outputs {
        seen[o.index()] = true;
    }
    for i in (0..g.len()).rev() {
        if seen[i] {
            for x in &g.nodes()[i].inputs {
                seen[x.index()] = true;
            }
        }
    }
    seen
}

/// A compacting copy in which every loop's body is simplified (the whole pipeline, for
/// `goal`, recursively for loops in bodies). Done once per simplification: the passes after
/// it see the simplified bodies and leave them alone.
fn rebuild_with_bodies(g: &Graph, outputs: &[NodeId], goal: Goal) -> (Graph, Vec<NodeId>) {
    let simplify_body = |spec: &Arc<LoopSpec>| {
        let (body, _) = run_phases(&spec.body, &spec.body.outputs, goal, &mut None);
        let new = LoopSpec::new(body, spec.n_carry, spec.n_xs, spec.trips, spec.reverse)
            .expect("simplify keeps the types of a body's inputs and outputs");
        match &new == spec.as_ref() {
            true => spec.clone(),
            false => Arc::new(new),
        }
    };
    rebuild_mapping(g, outputs, None, goal, &mut None, &simplify_body)
}

/// Copies what `outputs` need into a fresh graph, through `rules` (a plain compacting copy
/// when `None`); the names of the rules that fire are pushed to `fired` when it is `Some`.
fn rebuild(
    g: &Graph,
    outputs: &[NodeId],
    rules: Option<&'static rules::RuleIndex>,
    goal: Goal,
    fired: &mut Option<Vec<&'static str>>,
) -> (Graph, Vec<NodeId>) {
    rebuild_mapping(g, outputs, rules, goal, fired, &Arc::clone)
}

/// [`rebuild`], with each loop's spec passed through `body` first.
fn rebuild_mapping(
    g: &Graph,
    outputs: &[NodeId],
    rules: Option<&'static rules::RuleIndex>,
    goal: Goal,
    fired: &mut Option<Vec<&'static str>>,
    body: &dyn Fn(&Arc<LoopSpec>) -> Arc<LoopSpec>,
) -> (Graph, Vec<NodeId>) {
    let reach = reachable(g, outputs);
    let mut rw = rules::Rewriter::new(rules, goal);
    rw.fired = fired.take();
    let mut map: Vec<Option<NodeId>> = vec![None; g.len()];
    for (k, &inp) in g.inputs.iter().enumerate() {
        let n = g.node(inp);
        map[inp.index()] = Some(rw.g.add_input(&g.input_names[k], n.shape.clone(), n.dtype));
    }
    let siblings = loop_siblings(g, &reach);
    for (i, n) in g.nodes().iter().enumerate() {
        if !reach[i] || map[i].is_some() {
            continue;
        }
        // Nodes made for node i keep its provenance (the user's file:line).
        rw.g.set_loc(g.loc(NodeId(i as u32)));
        let new = match &n.op {
            Op::Input(_) => unreachable!("inputs are mapped first"),
            Op::Const(c) => rw.copy_constant(g, *c),
            Op::Loop(_) => {
                // the loops on these operands, those with the most results first (so
                // `loop-prefix` finds the larger loop built when it meets a smaller one)
                for &j in &siblings[&i] {
                    let Op::Loop(spec) = &g.nodes()[j].op else {
                        unreachable!("siblings are loops")
                    };
                    rw.g.set_loc(g.loc(NodeId(j as u32)));
                    let ins = n.inputs.iter().map(|x| map[x.index()].unwrap()).collect();
                    map[j] = Some(rw.mk(Op::Loop(body(spec)), ins));
                }
                continue;
            }
            op => {
                let ins = n.inputs.iter().map(|x| map[x.index()].unwrap()).collect();
                rw.mk(op.clone(), ins)
            }
        };
        map[i] = Some(new);
    }
    *fired = rw.fired.take();
    let mut g2 = rw.g;
    let mut names: Vec<_> = g.names.iter().collect();
    names.sort();
    for (old, name) in names {
        if let Some(new) = map.get(old.index()).copied().flatten() {
            if !matches!(g2.node(new).op, Op::Input(_)) {
                g2.names.entry(new).or_insert_with(|| name.clone());
            }
        }
    }
    let outs = outputs.iter().map(|o| map[o.index()].unwrap()).collect();
    (g2, outs)
}

/// For the first reachable loop node on each list of operands, every reachable loop node
/// on the same operands (itself included), those with the most body outputs first.
fn loop_siblings(g: &Graph, reach: &[bool]) -> HashMap<usize, Vec<usize>> {
    let mut groups: HashMap<&[NodeId], Vec<usize>> = HashMap::new();
    let mut firsts = vec![];
    for (i, n) in g.nodes().iter().enumerate() {
        if reach[i] && matches!(n.op, Op::Loop(_)) {
            let group = groups.entry(&n.inputs).or_default();
            if group.is_empty() {
                firsts.push((i, n.inputs.as_slice()));
            }
            group.push(i);
        }
    }
    let outputs = |j: &usize| match &g.nodes()[*j].op {
        Op::Loop(spec) => spec.body.outputs.len(),
        _ => 0,
    };
    (firsts.into_iter())
        .map(|(i, ins)| {
            let mut group = groups[ins].clone();
            group.sort_by_key(|j| std::cmp::Reverse(outputs(j)));
            (i, group)
        })
        .collect()
}

/// Structural equality of two compact graphs (constants compared by value).
fn same_graph(a: &Graph, b: &Graph) -> bool {
    a.len() == b.len()
        && a.nodes()
            .iter()
            .zip(b.nodes())
            .enumerate()
            .all(|(i, (x, y))| {
                x == y
                    && match x.op {
                        Op::Const(_) => {
                            let id = NodeId(i as u32);
                            match (a.const_value(id), b.const_value(id)) {
                                (Some(p), Some(q)) => p.same_bits(q),
                                (p, q) => p.is_none() && q.is_none(),
                            }
                        }
                        _ => true,
                    }
            })
}
