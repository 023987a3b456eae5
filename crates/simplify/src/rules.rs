//! The local rules, applied by a smart constructor ([`Rewriter::mk`]) while a graph is
//! rebuilt bottom-up.
//!
//! Guarantees: a rule fires only on operands that are already rewritten, builds its result
//! through `mk` again (so results are rewritten too, to a bounded depth), and returns a node
//! of the same shape and dtype with the same elements. Canonical forms the rules agree on:
//! uniform constants are `Broadcast(scalar)` (see [`Graph::full`]); commutative ops keep a
//! constant operand on the right; `x - c` is `x + (-c)` until the specialize phase;
//! `square(x)` is `x**2` and `reciprocal(x)` is `1/x` until then.

use autodiff_ir::{
    BinaryOp as B, DType, Graph, Node, NodeId, Op, ReduceOp, Shape, SliceDim, Tensor, UnaryOp as U,
};

use crate::{scalar, Goal, Phase};

/// Rules nest at most this deep inside one `mk` (a guard; rules do not cycle).
const MAX_DEPTH: u32 = 64;
/// Constant tensors up to this size are folded element by element.
const FOLD_LIMIT: usize = 1 << 16;

/// A graph under construction plus the rules of one phase.
pub(crate) struct Rewriter {
    pub g: Graph,
    phase: Option<Phase>,
    goal: Goal,
    depth: u32,
}

impl Rewriter {
    pub fn new(phase: Option<Phase>, goal: Goal) -> Rewriter {
        Rewriter {
            g: Graph::new(),
            phase,
            goal,
            depth: 0,
        }
    }

    /// Adds a literal; uniform tensors become the canonical `Broadcast(scalar)`.
    pub fn constant(&mut self, t: Tensor) -> NodeId {
        match t.uniform_value() {
            Some(v) if self.phase.is_some() && t.size() > 1 => self.g.full(v, &t.shape, t.dtype),
            _ => self.g.constant(t),
        }
    }

    /// Copies constant `c` of `from` (uniform ones become `Broadcast(scalar)` as above).
    pub fn copy_constant(&mut self, from: &Graph, c: u32) -> NodeId {
        let t = &from.consts()[c as usize];
        if self.phase.is_some() && t.size() > 1 {
            if let Some(v) = t.uniform_value() {
                return self.g.full(v, &t.shape.clone(), t.dtype);
            }
        }
        self.g.copy_constant(from, c)
    }

    /// Adds `op(ins)`, or an equal node the rules prefer.
    pub fn mk(&mut self, op: Op, ins: Vec<NodeId>) -> NodeId {
        if self.phase.is_some() && self.depth < MAX_DEPTH {
            self.depth += 1;
            let r = match self.phase {
                Some(Phase::Specialize) => self.specialize(&op, &ins),
                _ => self.canonical(&op, &ins),
            };
            self.depth -= 1;
            if let Some(r) = r {
                return r;
            }
        }
        self.g
            .add(op, ins)
            .unwrap_or_else(|e| panic!("simplify built an ill-typed node: {e}"))
    }

    // ---- small helpers ----

    fn node(&self, id: NodeId) -> &Node {
        self.g.node(id)
    }

    /// The value of a constant whose elements are all equal.
    fn uc(&self, id: NodeId) -> Option<f64> {
        self.g.uniform_const(id)
    }

    fn is(&self, id: NodeId, v: f64) -> bool {
        self.uc(id) == Some(v)
    }

    /// Constant, uniform or not.
    fn konst(&self, id: NodeId) -> bool {
        self.uc(id).is_some() || matches!(self.node(id).op, Op::Const(_))
    }

    fn un(&self, id: NodeId) -> Option<(U, NodeId)> {
        match self.node(id).op {
            Op::Unary(u) => Some((u, self.node(id).inputs[0])),
            _ => None,
        }
    }

    fn bin(&self, id: NodeId) -> Option<(B, NodeId, NodeId)> {
        match self.node(id).op {
            Op::Binary(b) => Some((b, self.node(id).inputs[0], self.node(id).inputs[1])),
            _ => None,
        }
    }

    /// `x` when `id` is `op(x)`.
    fn un_of(&self, id: NodeId, op: U) -> Option<NodeId> {
        self.un(id).filter(|u| u.0 == op).map(|u| u.1)
    }

    /// `(x, y)` when `id` is `op(x, y)`.
    fn bin_of(&self, id: NodeId, op: B) -> Option<(NodeId, NodeId)> {
        self.bin(id).filter(|b| b.0 == op).map(|b| (b.1, b.2))
    }

    /// `x` when `id` is `op(x, c)` with `c` a constant.
    fn with_const(&self, id: NodeId, op: B) -> Option<(NodeId, NodeId)> {
        self.bin_of(id, op).filter(|&(_, c)| self.konst(c))
    }

    fn full(&mut self, v: f64, shape: &[usize], dt: DType) -> NodeId {
        self.g.full(v, shape, dt)
    }

    /// A uniform constant shaped and typed like `like`.
    fn full_like(&mut self, v: f64, like: NodeId) -> NodeId {
        let (s, d) = (self.node(like).shape.clone(), self.node(like).dtype);
        self.full(v, &s, d)
    }

    fn b(&mut self, op: B, x: NodeId, y: NodeId) -> NodeId {
        self.mk(Op::Binary(op), vec![x, y])
    }

    fn u(&mut self, op: U, x: NodeId) -> NodeId {
        self.mk(Op::Unary(op), vec![x])
    }

    fn bcast(&mut self, x: NodeId, to: &[usize]) -> NodeId {
        self.mk(Op::Broadcast(to.to_vec()), vec![x])
    }

    fn float(&self, id: NodeId) -> bool {
        self.node(id).dtype.is_float()
    }

    // ---- canonicalize and stabilize ----

    fn canonical(&mut self, op: &Op, ins: &[NodeId]) -> Option<NodeId> {
        match op {
            Op::Unary(u) => self
                .fold_unary(*u, ins[0])
                .or_else(|| self.hoist(op, ins).or_else(|| self.unary(*u, ins[0]))),
            Op::Binary(b) => self.fold_binary(*b, ins[0], ins[1]).or_else(|| {
                self.hoist(op, ins)
                    .or_else(|| self.binary(*b, ins[0], ins[1]))
            }),
            Op::Where => self
                .select(ins[0], ins[1], ins[2])
                .or_else(|| self.hoist(op, ins)),
            Op::Cast(dt) => self.cast(*dt, ins[0]).or_else(|| self.hoist(op, ins)),
            Op::Broadcast(s) => self.broadcast(s, ins[0]),
            Op::Reshape(s) => self.reshape(s, ins[0]),
            Op::Transpose(p) => self.transpose(p, ins[0]),
            Op::Reduce(r, axes) => self.reduce(*r, axes, ins[0]),
            Op::Slice(dims) => self.slice(dims, ins[0]),
            Op::Contract(spec) => self.contract(spec, ins[0], ins[1]),
            Op::Input(_)
            | Op::Const(_)
            | Op::ArgMax(..)
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
            | Op::LogAbsDet => None,
        }
    }

    fn fold_unary(&mut self, u: U, x: NodeId) -> Option<NodeId> {
        let dt = if u == U::Not {
            DType::Bool
        } else {
            self.node(x).dtype
        };
        let shape = self.node(x).shape.clone();
        if let Some(v) = self.uc(x) {
            let r = scalar::unary(u, v)?;
            return Some(self.full(r, &shape, dt));
        }
        let t = self.g.const_value(x).filter(|t| t.size() <= FOLD_LIMIT)?;
        let data: Option<Vec<f64>> = t.data.iter().map(|&v| scalar::unary(u, v)).collect();
        Some(self.constant(Tensor::new(dt, shape, data?)))
    }

    fn fold_binary(&mut self, op: B, a: NodeId, b: NodeId) -> Option<NodeId> {
        let (shape, dt) = (self.node(a).shape.clone(), self.node(a).dtype);
        let out = scalar::binary_dtype(op, dt);
        if let (Some(x), Some(y)) = (self.uc(a), self.uc(b)) {
            let r = scalar::binary(op, x, y, dt)?;
            return Some(self.full(r, &shape, out));
        }
        let (ta, tb) = (self.tensor(a)?, self.tensor(b)?);
        let data: Option<Vec<f64>> = (ta.data.iter().zip(&tb.data))
            .map(|(&x, &y)| scalar::binary(op, x, y, dt))
            .collect();
        Some(self.constant(Tensor::new(out, shape, data?)))
    }

    /// The elements of a small constant.
    fn tensor(&self, id: NodeId) -> Option<Tensor> {
        let n = self.node(id);
        if n.size() > FOLD_LIMIT {
            return None;
        }
        match self.g.const_value(id) {
            Some(t) => Some(t.clone()),
            None => Some(Tensor::full(n.dtype, n.shape.clone(), self.uc(id)?)),
        }
    }

    /// `op(broadcast(x), broadcast(y), c)` → `broadcast(op(x, y, c))` when the broadcasts
    /// start from one shape and the other operands are uniform constants.
    fn hoist(&mut self, op: &Op, ins: &[NodeId]) -> Option<NodeId> {
        let mut from: Option<Shape> = None;
        for &i in ins {
            if self.uc(i).is_none() {
                let n = self.node(i);
                let Op::Broadcast(_) = n.op else { return None };
                let s = self.node(n.inputs[0]).shape.clone();
                if from.as_ref().is_some_and(|f| *f != s) {
                    return None;
                }
                from = Some(s);
            }
        }
        let from = from?;
        let to = self.node(ins[0]).shape.clone();
        let new_ins = ins
            .iter()
            .map(|&i| match self.uc(i) {
                Some(v) => {
                    let dt = self.node(i).dtype;
                    self.full(v, &from, dt)
                }
                None => self.node(i).inputs[0],
            })
            .collect();
        let r = self.mk(op.clone(), new_ins);
        Some(self.bcast(r, &to))
    }

    fn unary(&mut self, u: U, x: NodeId) -> Option<NodeId> {
        let stab = self.phase == Some(Phase::Stabilize);
        match u {
            U::Neg => {
                if let Some(y) = self.un_of(x, U::Neg) {
                    return Some(y);
                }
                if let Some((p, q)) = self.bin_of(x, B::Sub) {
                    return Some(self.b(B::Sub, q, p));
                }
                let (y, c) = self.with_const(x, B::Mul)?;
                let nc = self.u(U::Neg, c);
                Some(self.b(B::Mul, y, nc))
            }
            U::Abs => match self.un(x) {
                Some((U::Abs, _)) => Some(x),
                Some((U::Neg, y)) => Some(self.u(U::Abs, y)),
                _ => None,
            },
            U::Square => {
                let two = self.full_like(2.0, x);
                Some(self.b(B::Pow, x, two))
            }
            U::Reciprocal => {
                let one = self.full_like(1.0, x);
                Some(self.b(B::Div, one, x))
            }
            U::Log if stab => {
                // log(y + 1) = log1p(y);  log(1 - y) = log1p(-y)
                if let Some((y, _)) = self.bin_of(x, B::Add).filter(|&(_, c)| self.is(c, 1.0)) {
                    return Some(self.u(U::Log1p, y));
                }
                if let Some((_, y)) = self.bin_of(x, B::Sub).filter(|&(c, _)| self.is(c, 1.0)) {
                    let ny = self.u(U::Neg, y);
                    return Some(self.u(U::Log1p, ny));
                }
                if self.goal == Goal::Execute {
                    if let Some(y) = self.un_of(x, U::Sigmoid) {
                        // log σ(y) = -log(1 + e^-y)
                        let ny = self.u(U::Neg, y);
                        let zero = self.full_like(0.0, y);
                        let s = self.b(B::LogAddExp, zero, ny);
                        return Some(self.u(U::Neg, s));
                    }
                    return self.logsumexp(x);
                }
                None
            }
            U::Sign
            | U::Exp
            | U::Expm1
            | U::Log
            | U::Log1p
            | U::Log2
            | U::Log10
            | U::Sqrt
            | U::Sin
            | U::Cos
            | U::Tan
            | U::Arcsin
            | U::Arccos
            | U::Arctan
            | U::Sinh
            | U::Cosh
            | U::Tanh
            | U::Arcsinh
            | U::Arccosh
            | U::Arctanh
            | U::Floor
            | U::Ceil
            | U::Round
            | U::Sigmoid
            | U::Erf
            | U::Gammaln
            | U::Digamma
            | U::Trigamma
            | U::Not
            // kept: removing it before differentiation would let the gradient through
            | U::StopGradient => None,
        }
    }

    /// `log(sum(exp(z), axes))` → `m + log(sum(exp(z - m), axes))` with `m` the max of `z`
    /// over the axes (0 where that max is infinite, so all `-inf` rows give `-inf`).
    fn logsumexp(&mut self, x: NodeId) -> Option<NodeId> {
        let n = self.node(x);
        let Op::Reduce(ReduceOp::Sum, axes) = n.op.clone() else {
            return None;
        };
        let z = self.un_of(n.inputs[0], U::Exp)?;
        if let Some((_, m)) = self.bin_of(z, B::Sub) {
            let mut m = m;
            while let Op::Broadcast(_) | Op::Reshape(_) = self.node(m).op {
                m = self.node(m).inputs[0];
            }
            if matches!(self.node(m).op, Op::Where) {
                return None; // already shifted
            }
        }
        let zs = self.node(z).shape.clone();
        let g = &mut self.g;
        let add = |g: &mut Graph, op: Op, ins: Vec<NodeId>| g.add(op, ins).expect("well-typed");
        let mx = add(g, Op::Reduce(ReduceOp::Max, axes.clone()), vec![z]);
        let ms = g.shape(mx).clone();
        let dt = g.dtype(mx);
        let a = add(g, Op::Unary(U::Abs), vec![mx]);
        let inf = g.full(f64::INFINITY, &ms, dt);
        let fin = add(g, Op::Binary(B::Lt), vec![a, inf]);
        let zero = g.full(0.0, &ms, dt);
        let m = add(g, Op::Where, vec![fin, mx, zero]);
        let keep: Shape = (0..zs.len())
            .map(|i| if axes.contains(&i) { 1 } else { zs[i] })
            .collect();
        let mk = g.reshape(m, &keep).expect("same size");
        let mb = g.broadcast(mk, &zs).expect("keepdims broadcasts back");
        let d = add(g, Op::Binary(B::Sub), vec![z, mb]);
        let e = add(g, Op::Unary(U::Exp), vec![d]);
        let s = add(g, Op::Reduce(ReduceOp::Sum, axes), vec![e]);
        let l = add(g, Op::Unary(U::Log), vec![s]);
        Some(add(g, Op::Binary(B::Add), vec![l, m]))
    }

    fn binary(&mut self, op: B, a: NodeId, b: NodeId) -> Option<NodeId> {
        let commutes = matches!(
            op,
            B::Add
                | B::Mul
                | B::Maximum
                | B::Minimum
                | B::LogAddExp
                | B::Eq
                | B::Ne
                | B::And
                | B::Or
                | B::Xor
        );
        if commutes && self.konst(a) && !self.konst(b) {
            return Some(self.b(op, b, a));
        }
        match op {
            B::Add => self.add(a, b),
            B::Sub => self.sub(a, b),
            B::Mul => self.mul(a, b),
            B::Div => self.div(a, b),
            B::Pow => self.pow(a, b),
            B::Maximum | B::Minimum | B::And | B::Or => (a == b).then_some(a),
            B::FloorDiv
            | B::Mod
            | B::Arctan2
            | B::LogAddExp
            | B::Lt
            | B::Le
            | B::Gt
            | B::Ge
            | B::Eq
            | B::Ne
            | B::Xor => None,
        }
    }

    /// `(base, k)` when `id` is `base*k` with a uniform constant `k` (`-base` is `k = -1`).
    fn term(&self, id: NodeId) -> (NodeId, f64) {
        if let Some((y, c)) = self.bin_of(id, B::Mul) {
            if let Some(k) = self.uc(c) {
                return (y, k);
            }
        }
        match self.un_of(id, U::Neg) {
            Some(y) => (y, -1.0),
            None => (id, 1.0),
        }
    }

    /// `(base, n)` when `id` is `base**n` with a positive integer `n` (else `(id, 1)`).
    fn power(&self, id: NodeId) -> (NodeId, f64) {
        if let Some((y, c)) = self.bin_of(id, B::Pow) {
            if let Some(n) = self.uc(c).filter(|n| *n >= 1.0 && n.fract() == 0.0) {
                return (y, n);
            }
        }
        (id, 1.0)
    }

    /// Collects like terms of `a ± b` (`op` is `Add` or `Sub`).
    fn like_terms(&mut self, op: B, a: NodeId, b: NodeId) -> Option<NodeId> {
        let ((ba, ka), (bb, kb)) = (self.term(a), self.term(b));
        if ba == bb && !self.konst(ba) {
            let k = if op == B::Add { ka + kb } else { ka - kb };
            let c = self.full_like(k, ba);
            return Some(self.b(B::Mul, ba, c));
        }
        // p*q ± r*s with a shared factor.
        let ((p, q), (r, s)) = (self.bin_of(a, B::Mul)?, self.bin_of(b, B::Mul)?);
        let (common, x, y) = if q == s {
            (q, p, r)
        } else if p == r {
            (p, q, s)
        } else if p == s {
            (p, q, r)
        } else if q == r {
            (q, p, s)
        } else {
            return None;
        };
        let t = self.b(op, x, y);
        Some(self.b(B::Mul, t, common))
    }

    fn add(&mut self, a: NodeId, b: NodeId) -> Option<NodeId> {
        if self.is(b, 0.0) {
            return Some(a);
        }
        if let Some(y) = self.un_of(b, U::Neg) {
            return Some(self.b(B::Sub, a, y));
        }
        if let Some(y) = self.un_of(a, U::Neg) {
            return Some(self.b(B::Sub, b, y));
        }
        if self.konst(b) {
            if let Some((x, c)) = self.with_const(a, B::Add) {
                let c = self.b(B::Add, c, b);
                return Some(self.b(B::Add, x, c));
            }
            if let Some((c, x)) = self.bin_of(a, B::Sub).filter(|&(c, _)| self.konst(c)) {
                let c = self.b(B::Add, c, b);
                return Some(self.b(B::Sub, c, x));
            }
            if let Some((x, c)) = self.with_const(a, B::Sub) {
                let c = self.b(B::Sub, b, c);
                return Some(self.b(B::Add, x, c));
            }
            if self.phase == Some(Phase::Stabilize) && self.is(b, -1.0) {
                let x = self.un_of(a, U::Exp)?;
                return Some(self.u(U::Expm1, x));
            }
            return None;
        }
        if let Some((x, c)) = self.with_const(a, B::Add) {
            let t = self.b(B::Add, x, b);
            return Some(self.b(B::Add, t, c));
        }
        if let Some((y, c)) = self.with_const(b, B::Add) {
            let t = self.b(B::Add, a, y);
            return Some(self.b(B::Add, t, c));
        }
        self.like_terms(B::Add, a, b)
    }

    fn sub(&mut self, a: NodeId, b: NodeId) -> Option<NodeId> {
        if self.is(b, 0.0) {
            return Some(a);
        }
        if self.is(a, 0.0) {
            return Some(self.u(U::Neg, b));
        }
        if let Some(y) = self.un_of(b, U::Neg) {
            return Some(self.b(B::Add, a, y));
        }
        match (self.konst(a), self.konst(b)) {
            (_, true) => {
                if self.phase == Some(Phase::Stabilize) && self.is(b, 1.0) {
                    if let Some(x) = self.un_of(a, U::Exp) {
                        return Some(self.u(U::Expm1, x));
                    }
                }
                let nb = self.u(U::Neg, b);
                Some(self.b(B::Add, a, nb))
            }
            (true, false) => {
                if let Some((x, c)) = self.with_const(b, B::Add) {
                    let c = self.b(B::Sub, a, c);
                    return Some(self.b(B::Sub, c, x));
                }
                let (c, x) = self.bin_of(b, B::Sub).filter(|&(c, _)| self.konst(c))?;
                let c = self.b(B::Sub, a, c);
                Some(self.b(B::Add, x, c))
            }
            (false, false) => {
                if let Some((x, c)) = self.with_const(a, B::Add) {
                    let t = self.b(B::Sub, x, b);
                    return Some(self.b(B::Add, t, c));
                }
                if let Some((y, c)) = self.with_const(b, B::Add) {
                    let t = self.b(B::Sub, a, y);
                    return Some(self.b(B::Sub, t, c));
                }
                self.like_terms(B::Sub, a, b)
            }
        }
    }

    fn mul(&mut self, a: NodeId, b: NodeId) -> Option<NodeId> {
        if self.is(b, 1.0) {
            return Some(a);
        }
        if self.is(b, -1.0) {
            return Some(self.u(U::Neg, a));
        }
        if self.konst(b) {
            if let Some((x, c)) = self.with_const(a, B::Mul) {
                let c = self.b(B::Mul, c, b);
                return Some(self.b(B::Mul, x, c));
            }
            if let Some((c, y)) = self.bin_of(a, B::Div).filter(|&(c, _)| self.konst(c)) {
                let c = self.b(B::Mul, c, b);
                return Some(self.b(B::Div, c, y));
            }
            // (c1/y · q) · c2 = ((c1·c2)/y) · q, also through a broadcast of c1/y
            if let Some((p, q)) = self.bin_of(a, B::Mul) {
                let (inner, shape) = match self.node(p).op {
                    Op::Broadcast(ref s) => (self.node(p).inputs[0], Some(s.clone())),
                    _ => (p, None),
                };
                if let (Some((c1, y)), Some(v2)) = (
                    self.bin_of(inner, B::Div).filter(|&(c, _)| self.konst(c)),
                    self.uc(b),
                ) {
                    let c1v = self.uc(c1)?;
                    let ishape = self.node(inner).shape.clone();
                    let k = self.full(c1v * v2, &ishape, self.node(inner).dtype);
                    let d = self.b(B::Div, k, y);
                    let d = match shape {
                        Some(s) => self.bcast(d, &s),
                        None => d,
                    };
                    return Some(self.b(B::Mul, d, q));
                }
            }
            let x = self.un_of(a, U::Neg)?;
            let nb = self.u(U::Neg, b);
            return Some(self.b(B::Mul, x, nb));
        }
        match (self.un_of(a, U::Neg), self.un_of(b, U::Neg)) {
            (Some(x), Some(y)) => return Some(self.b(B::Mul, x, y)),
            (Some(x), None) => {
                let t = self.b(B::Mul, x, b);
                return Some(self.u(U::Neg, t));
            }
            (None, Some(y)) => {
                let t = self.b(B::Mul, a, y);
                return Some(self.u(U::Neg, t));
            }
            (None, None) => {}
        }
        if let Some((x, c)) = self.with_const(a, B::Mul) {
            let t = self.b(B::Mul, x, b);
            return Some(self.b(B::Mul, t, c));
        }
        if let Some((y, c)) = self.with_const(b, B::Mul) {
            let t = self.b(B::Mul, a, y);
            return Some(self.b(B::Mul, t, c));
        }
        for (p, q) in [(a, b), (b, a)] {
            if let Some((_, y)) = self.bin_of(q, B::Div).filter(|&(o, _)| self.is(o, 1.0)) {
                return Some(self.b(B::Div, p, y));
            }
            // p · broadcast(1/y) = p / broadcast(y)
            if let Op::Broadcast(ref s) = self.node(q).op {
                let (s, inner) = (s.clone(), self.node(q).inputs[0]);
                if let Some((_, y)) = self.bin_of(inner, B::Div).filter(|&(o, _)| self.is(o, 1.0)) {
                    let yb = self.bcast(y, &s);
                    return Some(self.b(B::Div, p, yb));
                }
            }
        }
        let ((x, n), (y, m)) = (self.power(a), self.power(b));
        if x == y {
            let e = self.full_like(n + m, x);
            return Some(self.b(B::Pow, x, e));
        }
        None
    }

    /// A contraction with a uniform constant operand `c` is a scaled sum of the other:
    /// einsum(c, x) = c · Π(extents summed from c alone) · Σ(x over its summed labels),
    /// broadcast to the output.
    fn contract(
        &mut self,
        spec: &autodiff_ir::ContractSpec,
        a: NodeId,
        b: NodeId,
    ) -> Option<NodeId> {
        let (c, x, lc, lx) = if self.uc(a).is_some() {
            (a, b, &spec.a, &spec.b)
        } else if self.uc(b).is_some() {
            (b, a, &spec.b, &spec.a)
        } else {
            return None;
        };
        let v = self.uc(c)?;
        let (cs, xs) = (self.node(c).shape.clone(), self.node(x).shape.clone());
        let dt = self.node(x).dtype;
        let axes: Vec<usize> = (0..lx.len())
            .filter(|&i| !spec.out.contains(&lx[i]))
            .collect();
        let summed = if axes.is_empty() {
            x
        } else {
            self.mk(Op::Reduce(ReduceOp::Sum, axes), vec![x])
        };
        let kept: Vec<u8> = lx
            .iter()
            .copied()
            .filter(|l| spec.out.contains(l))
            .collect();
        let ext = |l: u8| -> usize {
            lx.iter()
                .position(|&m| m == l)
                .map(|i| xs[i])
                .or_else(|| lc.iter().position(|&m| m == l).map(|i| cs[i]))
                .unwrap_or(1)
        };
        let scale: f64 = lc
            .iter()
            .filter(|l| !lx.contains(l) && !spec.out.contains(l))
            .map(|&l| ext(l) as f64)
            .product::<f64>()
            * v;
        let order: Vec<u8> = spec
            .out
            .iter()
            .copied()
            .filter(|l| kept.contains(l))
            .collect();
        let perm: Vec<usize> = order
            .iter()
            .map(|l| kept.iter().position(|k| k == l).unwrap())
            .collect();
        let t = if perm.iter().enumerate().all(|(i, &p)| i == p) {
            summed
        } else {
            self.mk(Op::Transpose(perm), vec![summed])
        };
        let with_ones: Shape = spec
            .out
            .iter()
            .map(|&l| if kept.contains(&l) { ext(l) } else { 1 })
            .collect();
        let full: Shape = spec.out.iter().map(|&l| ext(l)).collect();
        let r = if self.node(t).shape == with_ones {
            t
        } else {
            self.mk(Op::Reshape(with_ones.clone()), vec![t])
        };
        let r = if with_ones == full {
            r
        } else {
            self.mk(Op::Broadcast(full.clone()), vec![r])
        };
        if scale == 1.0 {
            return Some(r);
        }
        let k = self.full(scale, &full, dt);
        Some(self.b(B::Mul, r, k))
    }

    fn div(&mut self, a: NodeId, b: NodeId) -> Option<NodeId> {
        if self.is(b, 1.0) {
            return Some(a);
        }
        // c1 / (y * c2) = (c1 / c2) / y
        if let (Some(c1), Some((y, c2))) = (self.uc(a), self.with_const(b, B::Mul)) {
            if let Some(c2) = self.uc(c2) {
                let shape = self.node(a).shape.clone();
                let k = self.full(c1 / c2, &shape, self.node(a).dtype);
                return Some(self.b(B::Div, k, y));
            }
        }
        if self.is(b, -1.0) {
            return Some(self.u(U::Neg, a));
        }
        if let (Some(x), Some(y)) = (self.un_of(a, U::Neg), self.un_of(b, U::Neg)) {
            return Some(self.b(B::Div, x, y));
        }
        if self.phase == Some(Phase::Stabilize) {
            // 1/(1 + e^z) = σ(-z) and e^z/(e^z + 1) = σ(z)
            let (e, one) = self.with_const(b, B::Add)?;
            let z = self.un_of(e, U::Exp).filter(|_| self.is(one, 1.0))?;
            if self.is(a, 1.0) {
                let nz = self.u(U::Neg, z);
                return Some(self.u(U::Sigmoid, nz));
            }
            if a == e {
                return Some(self.u(U::Sigmoid, z));
            }
        }
        None
    }

    fn pow(&mut self, a: NodeId, b: NodeId) -> Option<NodeId> {
        let e = self.uc(b)?;
        if e == 1.0 {
            return Some(a);
        }
        if e == 0.0 {
            return Some(self.full_like(1.0, a));
        }
        if e == -1.0 && self.float(a) {
            let one = self.full_like(1.0, a);
            return Some(self.b(B::Div, one, a));
        }
        let (x, c) = self.with_const(a, B::Pow)?;
        let inner = self.uc(c)?;
        if inner.fract() == 0.0 && e.fract() == 0.0 {
            let k = self.full_like(inner * e, x);
            return Some(self.b(B::Pow, x, k));
        }
        None
    }

    fn select(&mut self, c: NodeId, a: NodeId, b: NodeId) -> Option<NodeId> {
        if a == b {
            return Some(a);
        }
        match self.uc(c) {
            Some(v) => Some(if v != 0.0 { a } else { b }),
            None => {
                let c = self.un_of(c, U::Not)?;
                Some(self.mk(Op::Where, vec![c, b, a]))
            }
        }
    }

    fn cast(&mut self, dt: DType, x: NodeId) -> Option<NodeId> {
        if self.node(x).dtype == dt {
            return Some(x);
        }
        let t = self.tensor(x)?;
        Some(self.constant(Tensor::new(dt, t.shape, t.data)))
    }

    fn broadcast(&mut self, to: &Shape, x: NodeId) -> Option<NodeId> {
        let n = self.node(x).clone();
        if n.shape == *to {
            return Some(x);
        }
        if let Some(v) = self.uc(x).filter(|_| !n.shape.is_empty()) {
            return Some(self.full(v, to, n.dtype));
        }
        let strip = |s: &[usize]| {
            s.iter()
                .skip_while(|&&d| d == 1)
                .copied()
                .collect::<Vec<_>>()
        };
        match n.op {
            Op::Broadcast(_) => Some(self.bcast(n.inputs[0], to)),
            // broadcast(reshape(y)) = broadcast(y) when the reshape only adds or drops
            // leading 1s and y is not of higher rank than the target
            Op::Reshape(_)
                if strip(&n.shape) == strip(self.g.shape(n.inputs[0]))
                    && self.g.shape(n.inputs[0]).len() <= to.len() =>
            {
                Some(self.bcast(n.inputs[0], to))
            }
            _ => None,
        }
    }

    fn reshape(&mut self, to: &Shape, x: NodeId) -> Option<NodeId> {
        let n = self.node(x).clone();
        if n.shape == *to {
            return Some(x);
        }
        if let Some(v) = self.uc(x) {
            return Some(self.full(v, to, n.dtype));
        }
        match n.op {
            Op::Reshape(_) => Some(self.mk(Op::Reshape(to.clone()), vec![n.inputs[0]])),
            Op::Const(_) => {
                let t = self.tensor(x)?;
                Some(self.constant(Tensor::new(t.dtype, to.clone(), t.data)))
            }
            _ => None,
        }
    }

    fn transpose(&mut self, perm: &[usize], x: NodeId) -> Option<NodeId> {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Some(x);
        }
        let n = self.node(x).clone();
        if let Some(v) = self.uc(x) {
            let to: Shape = perm.iter().map(|&p| n.shape[p]).collect();
            return Some(self.full(v, &to, n.dtype));
        }
        let Op::Transpose(q) = &n.op else { return None };
        let composed = perm.iter().map(|&p| q[p]).collect();
        Some(self.mk(Op::Transpose(composed), vec![n.inputs[0]]))
    }

    fn slice(&mut self, dims: &[SliceDim], x: NodeId) -> Option<NodeId> {
        let n = self.node(x);
        let full = dims
            .iter()
            .zip(&n.shape)
            .all(|(d, &e)| d.start == 0 && d.step == 1 && d.len == e);
        if full {
            return Some(x);
        }
        let to: Shape = dims.iter().map(|d| d.len).collect();
        if let Op::Broadcast(bto) = &n.op {
            // slice(broadcast(y)) = broadcast(slice(y)): a broadcast axis gives the same
            // value at every index, so only y's own axes are sliced; a huge broadcast that
            // is indexed is never materialized.
            let bto = bto.clone();
            let y = n.inputs[0];
            let ys = self.g.shape(y).clone();
            let lead = bto.len() - ys.len();
            let padded: Shape = (0..bto.len())
                .map(|i| if i < lead { 1 } else { ys[i - lead] })
                .collect();
            let ydims: Vec<SliceDim> = dims
                .iter()
                .zip(&padded)
                .map(|(d, &p)| {
                    if p == 1 {
                        SliceDim {
                            start: 0,
                            step: 1,
                            len: 1,
                        }
                    } else {
                        *d
                    }
                })
                .collect();
            let y = self.mk(Op::Reshape(padded), vec![y]);
            let y = self.mk(Op::Slice(ydims), vec![y]);
            return Some(self.bcast(y, &to));
        }
        let v = self.uc(x)?;
        let dt = n.dtype;
        Some(self.full(v, &to, dt))
    }

    fn reduce(&mut self, r: ReduceOp, axes: &[usize], x: NodeId) -> Option<NodeId> {
        let n = self.node(x).clone();
        let out: Shape = (0..n.shape.len())
            .filter(|i| !axes.contains(i))
            .map(|i| n.shape[i])
            .collect();
        let count: usize = axes.iter().map(|&a| n.shape[a]).product();
        let sum = r == ReduceOp::Sum;
        if let Some(v) = self.uc(x) {
            let dt = match (r, n.dtype) {
                (ReduceOp::Sum | ReduceOp::Prod, DType::Bool) => DType::I64,
                (_, t) => t,
            };
            let v = match r {
                ReduceOp::Sum => v * count as f64,
                ReduceOp::Prod => v.powi(count as i32),
                ReduceOp::Max | ReduceOp::Min if count == 0 => return None,
                ReduceOp::Max | ReduceOp::Min => v,
            };
            return Some(self.full(v, &out, dt));
        }
        match &n.op {
            Op::Reduce(r2, inner) if *r2 == r => {
                let kept: Vec<usize> = (0..self.g.shape(n.inputs[0]).len())
                    .filter(|i| !inner.contains(i))
                    .collect();
                let mut all = inner.to_vec();
                all.extend(axes.iter().map(|&a| kept[a]));
                all.sort_unstable();
                Some(self.mk(Op::Reduce(r, all), vec![n.inputs[0]]))
            }
            Op::Broadcast(to) if r != ReduceOp::Prod && n.dtype != DType::Bool => {
                // Reducing only broadcast axes: no reduction at all (a scale for sums).
                let y = n.inputs[0];
                let ys = self.g.shape(y).clone();
                let lead = to.len() - ys.len();
                let padded = |i: usize| if i < lead { 1 } else { ys[i - lead] };
                if !axes.iter().all(|&a| padded(a) == 1) {
                    return None;
                }
                let kept: Shape = (0..to.len())
                    .filter(|i| !axes.contains(i))
                    .map(padded)
                    .collect();
                let y = self.mk(Op::Reshape(kept), vec![y]);
                let y = self.bcast(y, &out);
                if !sum || count == 1 {
                    return Some(y);
                }
                let k = self.full_like(count as f64, y);
                Some(self.b(B::Mul, y, k))
            }
            Op::Binary(B::Mul) if sum && self.uc(n.inputs[1]).is_some() => {
                let c = self.uc(n.inputs[1])?;
                let s = self.mk(Op::Reduce(r, axes.to_vec()), vec![n.inputs[0]]);
                let k = self.full_like(c, s);
                Some(self.b(B::Mul, s, k))
            }
            Op::Unary(U::Neg) if sum => {
                let s = self.mk(Op::Reduce(r, axes.to_vec()), vec![n.inputs[0]]);
                Some(self.u(U::Neg, s))
            }
            // sum(set_slice(zeros, v)) = set_slice(zeros, sum(v)) over the kept axes: the
            // zeros add nothing (the cotangent of an index into a broadcast, which would
            // otherwise materialize the broadcast's full shape).
            Op::SetSlice(dims) if sum && n.dtype != DType::Bool && self.is(n.inputs[0], 0.0) => {
                let v = self.mk(Op::Reduce(r, axes.to_vec()), vec![n.inputs[1]]);
                let kept: Vec<SliceDim> = (0..n.shape.len())
                    .filter(|i| !axes.contains(i))
                    .map(|i| dims[i])
                    .collect();
                let covers = kept
                    .iter()
                    .zip(&out)
                    .all(|(d, &e)| d.start == 0 && d.step == 1 && d.len == e);
                if covers {
                    return Some(v);
                }
                let z = self.full(0.0, &out, n.dtype);
                Some(self.mk(Op::SetSlice(kept), vec![z, v]))
            }
            _ => None,
        }
    }

    // ---- specialize ----

    fn specialize(&mut self, op: &Op, ins: &[NodeId]) -> Option<NodeId> {
        let Op::Binary(bop) = op else { return None };
        let (a, b) = (ins[0], ins[1]);
        match bop {
            // x + -c → x - c;  x + y*(-c) → x - y*c
            B::Add => {
                if let Some(c) = self.uc(b).filter(|c| *c < 0.0) {
                    let k = self.full_like(-c, b);
                    return Some(self.b(B::Sub, a, k));
                }
                let (y, c) = self.with_const(b, B::Mul)?;
                let c = self.uc(c).filter(|c| *c < 0.0)?;
                let k = self.full_like(-c, y);
                let t = self.b(B::Mul, y, k);
                Some(self.b(B::Sub, a, t))
            }
            B::Pow if self.goal == Goal::Execute && self.is(b, 2.0) => Some(self.u(U::Square, a)),
            _ => None,
        }
    }
}
