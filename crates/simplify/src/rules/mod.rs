//! The local rules, applied by a smart constructor ([`Rewriter::mk`]) while a graph is
//! rebuilt bottom-up.
//!
//! A rule is data ([`Rule`]): a kebab-case name, the op it rewrites ([`On`]), the goal it is
//! limited to (if any) and a function that returns the replacement or `None`. A phase is an
//! ordered list of rule tables ([`PhaseRules`], one file per phase: [`canonicalize`],
//! [`stabilize`], [`specialize`]; and [`loops`], which canonicalize also tries); `mk` tries the phase's rules in order and keeps the first
//! replacement (through a [`RuleIndex`], built once per process, it only looks at the rules
//! whose [`On`] admits the op at hand). Each rule states its math in a one-line comment beside its table entry, and
//! `tests/rules.rs` holds a `start ⇒ goal` s-expression case for every rule name.
//!
//! Guarantees: a rule fires only on operands that are already rewritten, builds its result
//! through `mk` again (so results are rewritten too, to a bounded depth), and returns a node
//! of the same shape and dtype with the same elements. Canonical forms the rules agree on:
//! uniform constants are `Broadcast(scalar)` (see [`Graph::full`]); commutative ops keep a
//! constant operand on the right; `x - c` is `x + (-c)` until the specialize phase;
//! `square(x)` is `x**2` and `reciprocal(x)` is `1/x` until then.

pub(crate) mod canonicalize;
pub(crate) mod loops;
pub(crate) mod specialize;
pub(crate) mod stabilize;

use autodiff_ir::{
    BinaryOp as B, ContractSpec, DType, Graph, LoopSpec, Node, NodeId, Op, ReduceOp, Tensor,
    UnaryOp as U,
};

use crate::Goal;

/// Rules nest at most this deep inside one `mk` (a guard; rules do not cycle).
const MAX_DEPTH: u32 = 64;
/// Constant tensors up to this size are folded element by element.
pub(crate) const FOLD_LIMIT: usize = 1 << 16;

/// The ops a rule looks at.
#[derive(Clone, Copy, Debug)]
pub(crate) enum On {
    Unary(U),
    Binary(B),
    AnyUnary,
    AnyBinary,
    UnaryOrBinary,
    Where,
    Cast,
    WhereOrCast,
    Broadcast,
    Reshape,
    Transpose,
    Reduce,
    Slice,
    Contract,
    Concat,
    Loop,
}

impl On {
    fn matches(self, op: &Op) -> bool {
        match self {
            On::Unary(u) => matches!(op, Op::Unary(v) if *v == u),
            On::Binary(b) => matches!(op, Op::Binary(c) if *c == b),
            On::AnyUnary => matches!(op, Op::Unary(_)),
            On::AnyBinary => matches!(op, Op::Binary(_)),
            On::UnaryOrBinary => matches!(op, Op::Unary(_) | Op::Binary(_)),
            On::Where => matches!(op, Op::Where),
            On::Cast => matches!(op, Op::Cast(_)),
            On::WhereOrCast => matches!(op, Op::Where | Op::Cast(_)),
            On::Broadcast => matches!(op, Op::Broadcast(_)),
            On::Reshape => matches!(op, Op::Reshape(_)),
            On::Transpose => matches!(op, Op::Transpose(_)),
            On::Reduce => matches!(op, Op::Reduce(..)),
            On::Slice => matches!(op, Op::Slice(_)),
            On::Contract => matches!(op, Op::Contract(_)),
            On::Concat => matches!(op, Op::Concat(_)),
            On::Loop => matches!(op, Op::Loop(_)),
        }
    }
}

/// What a rule does to `op(ins)`: the replacement, or `None` when it does not apply.
pub(crate) type Apply = fn(&mut Rewriter, &Op, &[NodeId]) -> Option<NodeId>;

/// One named rewrite.
pub(crate) struct Rule {
    /// Kebab-case, unique across phases.
    pub name: &'static str,
    pub on: On,
    /// `Some(goal)`: only when simplifying for that goal.
    pub goal: Option<Goal>,
    pub apply: Apply,
}

/// A rule for every goal.
pub(crate) const fn rule(name: &'static str, on: On, apply: Apply) -> Rule {
    Rule {
        name,
        on,
        goal: None,
        apply,
    }
}

/// A rule for one goal only.
pub(crate) const fn rule_for(goal: Goal, name: &'static str, on: On, apply: Apply) -> Rule {
    Rule {
        name,
        on,
        goal: Some(goal),
        apply,
    }
}

/// The rules of one phase: tables tried in order, the first replacement wins.
pub(crate) type PhaseRules = &'static [&'static [Rule]];

/// Ops that rules can look at, numbered: unary ops, binary ops, then the other heads.
const KINDS: usize = U::ALL.len() + B::ALL.len() + 10;

/// The kind number of `op`, or `None` for ops no rule looks at.
fn kind(op: &Op) -> Option<usize> {
    let (nu, nb) = (U::ALL.len(), B::ALL.len());
    Some(match op {
        Op::Unary(u) => *u as usize,
        Op::Binary(b) => nu + *b as usize,
        Op::Where => nu + nb,
        Op::Cast(_) => nu + nb + 1,
        Op::Broadcast(_) => nu + nb + 2,
        Op::Reshape(_) => nu + nb + 3,
        Op::Transpose(_) => nu + nb + 4,
        Op::Reduce(..) => nu + nb + 5,
        Op::Slice(_) => nu + nb + 6,
        Op::Contract(_) => nu + nb + 7,
        Op::Loop(_) => nu + nb + 8,
        Op::Concat(_) => nu + nb + 9,
        Op::Input(_)
        | Op::Const(_)
        | Op::ArgMax(..)
        | Op::SetSlice(_)
        | Op::Gather(_)
        | Op::ScatterAdd(_)
        | Op::Scatter(_)
        | Op::TakeAlong(_)
        | Op::ScatterAlongAdd(_)
        | Op::Cumsum(_)
        | Op::Cumprod(_)
        | Op::ArgSort(_)
        | Op::Solve
        | Op::TriSolve(_)
        | Op::Cholesky
        | Op::Inv
        | Op::Det
        | Op::LogAbsDet => return None,
    })
}

/// An op of kind `k` (attributes are placeholders: [`On`] looks at heads only).
fn op_of_kind(k: usize) -> Op {
    let (nu, nb) = (U::ALL.len(), B::ALL.len());
    if k < nu {
        return Op::Unary(U::ALL[k]);
    }
    if k < nu + nb {
        return Op::Binary(B::ALL[k - nu]);
    }
    match k - nu - nb {
        0 => Op::Where,
        1 => Op::Cast(DType::F64),
        2 => Op::Broadcast(vec![]),
        3 => Op::Reshape(vec![]),
        4 => Op::Transpose(vec![]),
        5 => Op::Reduce(ReduceOp::Sum, vec![]),
        6 => Op::Slice(vec![]),
        7 => Op::Contract(ContractSpec {
            a: vec![],
            b: vec![],
            out: vec![],
        }),
        8 => Op::Loop(std::sync::Arc::new(
            LoopSpec::new(Graph::new(), 0, 0, 0, false).expect("the empty loop is valid"),
        )),
        _ => Op::Concat(0),
    }
}

/// A phase's rules by op kind, in phase order: `mk` tries only the rules that can apply.
pub(crate) struct RuleIndex {
    by_kind: Vec<Vec<&'static Rule>>,
}

impl RuleIndex {
    pub fn new(tables: PhaseRules) -> RuleIndex {
        let by_kind = (0..KINDS)
            .map(|k| {
                let op = op_of_kind(k);
                debug_assert_eq!(kind(&op), Some(k), "kind numbers follow ALL's order");
                let rules = tables.iter().flat_map(|t| t.iter());
                rules.filter(|r| r.on.matches(&op)).collect()
            })
            .collect();
        RuleIndex { by_kind }
    }
}

/// Every rule of every phase (names are unique), for tests and tooling.
pub fn all_rule_names() -> Vec<&'static str> {
    [
        canonicalize::RULES,
        loops::RULES,
        stabilize::RULES,
        specialize::RULES,
    ]
    .iter()
    .flat_map(|t| t.iter().map(|r| r.name))
    .collect()
}

/// A graph under construction plus the rules of one phase.
pub(crate) struct Rewriter {
    pub g: Graph,
    rules: Option<&'static RuleIndex>,
    goal: Goal,
    depth: u32,
    /// Names of the rules that fired, when recording (tests).
    pub fired: Option<Vec<&'static str>>,
    /// The loop nodes built so far (for `loop-prefix`).
    pub loops: Vec<NodeId>,
}

impl Rewriter {
    /// A rewriter applying `rules` (a plain compacting copy when `None`).
    pub fn new(rules: Option<&'static RuleIndex>, goal: Goal) -> Rewriter {
        Rewriter {
            g: Graph::new(),
            rules,
            goal,
            depth: 0,
            fired: None,
            loops: vec![],
        }
    }

    /// Adds a literal; uniform tensors become the canonical `Broadcast(scalar)`.
    pub fn constant(&mut self, t: Tensor) -> NodeId {
        match t.uniform_value() {
            Some(v) if self.rules.is_some() && t.size() > 1 => self.g.full(v, &t.shape, t.dtype),
            _ => self.g.constant(t),
        }
    }

    /// Copies constant `c` of `from` (uniform ones become `Broadcast(scalar)` as above).
    pub fn copy_constant(&mut self, from: &Graph, c: u32) -> NodeId {
        let t = &from.consts()[c as usize];
        if self.rules.is_some() && t.size() > 1 {
            if let Some(v) = t.uniform_value() {
                return self.g.full(v, &t.shape.clone(), t.dtype);
            }
        }
        self.g.copy_constant(from, c)
    }

    /// Adds `op(ins)`, or an equal node the rules prefer.
    pub fn mk(&mut self, op: Op, ins: Vec<NodeId>) -> NodeId {
        if let Some(index) = self.rules {
            if self.depth < MAX_DEPTH {
                self.depth += 1;
                let r = self.first_rule(index, &op, &ins);
                self.depth -= 1;
                if let Some(r) = r {
                    return r;
                }
            }
        }
        let is_loop = matches!(op, Op::Loop(_));
        let id = self
            .g
            .add(op, ins)
            .unwrap_or_else(|e| panic!("simplify built an ill-typed node: {e}"));
        if is_loop && !self.loops.contains(&id) {
            self.loops.push(id);
        }
        id
    }

    /// The replacement of the first rule (in phase order) that applies to `op(ins)`.
    fn first_rule(&mut self, index: &RuleIndex, op: &Op, ins: &[NodeId]) -> Option<NodeId> {
        let rules = index.by_kind.get(kind(op)?)?;
        for rule in rules {
            if rule.goal.is_some_and(|g| g != self.goal) {
                continue;
            }
            if let Some(r) = (rule.apply)(self, op, ins) {
                if let Some(f) = &mut self.fired {
                    f.push(rule.name);
                }
                return Some(r);
            }
        }
        None
    }

    // ---- small helpers shared by the rules ----

    pub(crate) fn node(&self, id: NodeId) -> &Node {
        self.g.node(id)
    }

    /// The value of a constant whose elements are all equal.
    pub(crate) fn uc(&self, id: NodeId) -> Option<f64> {
        self.g.uniform_const(id)
    }

    pub(crate) fn is(&self, id: NodeId, v: f64) -> bool {
        self.uc(id) == Some(v)
    }

    /// Constant, uniform or not.
    pub(crate) fn konst(&self, id: NodeId) -> bool {
        self.uc(id).is_some() || matches!(self.node(id).op, Op::Const(_))
    }

    pub(crate) fn un(&self, id: NodeId) -> Option<(U, NodeId)> {
        match self.node(id).op {
            Op::Unary(u) => Some((u, self.node(id).inputs[0])),
            _ => None,
        }
    }

    /// `x` when `id` is `op(x)`.
    pub(crate) fn un_of(&self, id: NodeId, op: U) -> Option<NodeId> {
        self.un(id).filter(|u| u.0 == op).map(|u| u.1)
    }

    /// `(x, y)` when `id` is `op(x, y)`.
    pub(crate) fn bin_of(&self, id: NodeId, op: B) -> Option<(NodeId, NodeId)> {
        match self.node(id).op {
            Op::Binary(b) if b == op => Some((self.node(id).inputs[0], self.node(id).inputs[1])),
            _ => None,
        }
    }

    /// `(x, c)` when `id` is `op(x, c)` with `c` a constant.
    pub(crate) fn with_const(&self, id: NodeId, op: B) -> Option<(NodeId, NodeId)> {
        self.bin_of(id, op).filter(|&(_, c)| self.konst(c))
    }

    pub(crate) fn full(&mut self, v: f64, shape: &[usize], dt: DType) -> NodeId {
        self.g.full(v, shape, dt)
    }

    /// A uniform constant shaped and typed like `like`.
    pub(crate) fn full_like(&mut self, v: f64, like: NodeId) -> NodeId {
        let (s, d) = (self.node(like).shape.clone(), self.node(like).dtype);
        self.full(v, &s, d)
    }

    pub(crate) fn b(&mut self, op: B, x: NodeId, y: NodeId) -> NodeId {
        self.mk(Op::Binary(op), vec![x, y])
    }

    pub(crate) fn u(&mut self, op: U, x: NodeId) -> NodeId {
        self.mk(Op::Unary(op), vec![x])
    }

    pub(crate) fn bcast(&mut self, x: NodeId, to: &[usize]) -> NodeId {
        self.mk(Op::Broadcast(to.to_vec()), vec![x])
    }

    pub(crate) fn float(&self, id: NodeId) -> bool {
        self.node(id).dtype.is_float()
    }

    /// The elements of a small constant.
    pub(crate) fn tensor(&self, id: NodeId) -> Option<Tensor> {
        let n = self.node(id);
        if n.size() > FOLD_LIMIT {
            return None;
        }
        match self.g.const_value(id) {
            Some(t) => Some(t.clone()),
            None => Some(Tensor::full(n.dtype, n.shape.clone(), self.uc(id)?)),
        }
    }
}
