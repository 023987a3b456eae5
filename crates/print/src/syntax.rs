//! What every printer shares: the precedence table of the infix targets (text, LaTeX, NumPy
//! source, SymPy), number and shape formatting, the reading of contractions as `@`/`·`/outer,
//! slice syntax, the choice of `let` names for shared subexpressions, and which nodes hold a
//! loop's results ([`loop_parts`]).
//!
//! Guarantees: precedences follow Python's (so text that looks like Python parses like
//! Python); [`paren`] adds exactly the parentheses a child needs; [`Bindings`] names every
//! input and every non-trivial node used more than once, in topological order.

use std::collections::{HashMap, HashSet};

use autodiff_ir::{BinaryOp, ContractSpec, DType, Graph, NodeId, Op, Shape, SliceDim, Tensor};

/// Precedence levels, loosest first (Python's order).
pub const P_CMP: u8 = 1;
pub const P_OR: u8 = 2;
pub const P_XOR: u8 = 3;
pub const P_AND: u8 = 4;
pub const P_ADD: u8 = 5;
pub const P_MUL: u8 = 6;
pub const P_NEG: u8 = 7;
pub const P_POW: u8 = 8;
pub const P_POST: u8 = 9;
pub const P_ATOM: u8 = 10;

/// A rendered subexpression and how tightly it binds.
#[derive(Clone, Debug)]
pub struct Expr {
    pub s: String,
    pub p: u8,
}

impl Expr {
    pub fn new(s: impl Into<String>, p: u8) -> Expr {
        Expr { s: s.into(), p }
    }

    pub fn atom(s: impl Into<String>) -> Expr {
        Expr::new(s, P_ATOM)
    }
}

/// The text of `e`, in parentheses when it binds looser than `min`.
pub fn paren(e: &Expr, min: u8) -> String {
    if e.p < min {
        format!("({})", e.s)
    } else {
        e.s.clone()
    }
}

/// An infix binary operator: its precedence and its symbol in each target.
pub struct Infix {
    pub prec: u8,
    /// Text, NumPy source and SymPy (Python syntax).
    pub py: &'static str,
    pub latex: &'static str,
}

/// The infix form of a binary op, or `None` for ops printed as function calls.
pub fn infix(op: BinaryOp) -> Option<Infix> {
    let (prec, py, latex) = match op {
        BinaryOp::Add => (P_ADD, " + ", " + "),
        BinaryOp::Sub => (P_ADD, " - ", " - "),
        BinaryOp::Mul => (P_MUL, "*", " \\cdot "),
        BinaryOp::Div => (P_MUL, "/", " / "),
        BinaryOp::FloorDiv => (P_MUL, " // ", " \\mathbin{//} "),
        BinaryOp::Mod => (P_MUL, " % ", " \\bmod "),
        BinaryOp::Pow => (P_POW, "**", "^"),
        BinaryOp::Lt => (P_CMP, " < ", " < "),
        BinaryOp::Le => (P_CMP, " <= ", " \\le "),
        BinaryOp::Gt => (P_CMP, " > ", " > "),
        BinaryOp::Ge => (P_CMP, " >= ", " \\ge "),
        BinaryOp::Eq => (P_CMP, " == ", " = "),
        BinaryOp::Ne => (P_CMP, " != ", " \\ne "),
        BinaryOp::And => (P_AND, " & ", " \\land "),
        BinaryOp::Or => (P_OR, " | ", " \\lor "),
        BinaryOp::Xor => (P_XOR, " ^ ", " \\oplus "),
        BinaryOp::Maximum | BinaryOp::Minimum | BinaryOp::Arctan2 | BinaryOp::LogAddExp => {
            return None
        }
    };
    Some(Infix { prec, py, latex })
}

/// The minimum precedences of the left and right operand of an infix op at `prec`.
/// `exact` keeps the tree's grouping for associative ops (floating point is not
/// associative, so generated code must not regroup).
pub fn operand_prec(op: BinaryOp, prec: u8, exact: bool) -> (u8, u8) {
    match op {
        BinaryOp::Pow => (P_POW + 1, P_NEG),
        BinaryOp::Add | BinaryOp::Mul if !exact => (prec, prec),
        _ if prec == P_CMP => (P_CMP + 1, P_CMP + 1),
        _ => (prec, prec + 1),
    }
}

/// The operands of a binary op in the order to print them: a product puts a uniform
/// constant first (`2*x`), which is exact since IEEE multiplication commutes.
pub fn display_order(g: &Graph, op: BinaryOp, x: NodeId, y: NodeId) -> (NodeId, NodeId) {
    let k = |i: NodeId| g.uniform_const(i).is_some();
    match op == BinaryOp::Mul && k(y) && !k(x) {
        true => (y, x),
        false => (x, y),
    }
}

/// A number as a person writes it: `2`, `0.5`, `-1`, `1e-10`, `inf`, `nan`.
pub fn num(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else if v == v.trunc() && v.abs() < 1e16 {
        format!("{}", v as i64)
    } else if (1e-4..1e16).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// A scalar of a dtype as a Python literal (`2.0`, `2`, `True`, `np.inf`).
pub fn py_num(v: f64, dt: DType) -> String {
    match dt {
        DType::Bool => if v != 0.0 { "True" } else { "False" }.into(),
        DType::I64 => num(v),
        DType::F32 | DType::F64 => {
            let s = num(v);
            if v.is_nan() || v.is_infinite() {
                s.replace("inf", "np.inf").replace("nan", "np.nan")
            } else if s.contains(['.', 'e']) {
                s
            } else {
                s + ".0"
            }
        }
    }
}

/// A number as an expression: negative values bind like unary minus.
pub fn num_expr(s: String) -> Expr {
    let p = if s.starts_with('-') { P_NEG } else { P_ATOM };
    Expr::new(s, p)
}

/// Nested-list text of a tensor (`[[1, 2], [3, 4]]`), each element through `f`.
pub fn nested(t: &Tensor, f: &dyn Fn(f64) -> String, open: &str, sep: &str, close: &str) -> String {
    fn go(
        data: &[f64],
        shape: &[usize],
        f: &dyn Fn(f64) -> String,
        d: (&str, &str, &str),
    ) -> String {
        match shape.split_first() {
            None => f(data[0]),
            Some((&n, rest)) => {
                let step: usize = rest.iter().product();
                let parts: Vec<String> = (0..n)
                    .map(|i| go(&data[i * step..(i + 1) * step], rest, f, d))
                    .collect();
                format!("{}{}{}", d.0, parts.join(d.1), d.2)
            }
        }
    }
    go(&t.data, &t.shape, f, (open, sep, close))
}

/// A shape as a Python tuple: `()`, `(3,)`, `(2, 3)`.
pub fn shape_tuple(s: &[usize]) -> String {
    match s {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Axes as a keyword value: `0` or `(0, 2)`.
pub fn axes_text(axes: &[usize]) -> String {
    match axes {
        [a] => a.to_string(),
        _ => shape_tuple(axes),
    }
}

/// One axis of a basic slice in Python syntax (`:`, `1:3`, `::2`, `4::-1`).
pub fn slice_dim(d: &SliceDim, n: usize) -> String {
    if d.step == 1 && d.start == 0 && d.len == n {
        return ":".into();
    }
    if d.len == 0 {
        return "0:0".into();
    }
    let last = d.start as i64 + d.step * (d.len as i64 - 1);
    let next = last + d.step;
    let start = if (d.step > 0 && d.start == 0) || (d.step < 0 && d.start + 1 == n) {
        String::new()
    } else {
        d.start.to_string()
    };
    let stop = if next < 0 || next >= n as i64 {
        String::new()
    } else {
        (last + d.step.signum()).to_string()
    };
    let step = if d.step == 1 {
        String::new()
    } else {
        format!(":{}", d.step)
    };
    format!("{start}:{stop}{step}")
}

/// The subscript of a basic slice (`1:3, :`), `()` for a 0-d operand.
pub fn slice_text(dims: &[SliceDim], shape: &[usize]) -> String {
    if dims.is_empty() {
        return "()".into();
    }
    let parts: Vec<String> = dims
        .iter()
        .zip(shape)
        .map(|(d, &n)| slice_dim(d, n))
        .collect();
    parts.join(", ")
}

/// The subscript that reads `idx` along `axis` (`idx`, `:, idx`), as `np.take` does.
pub fn axis_index(axis: usize, idx: &str) -> String {
    let mut parts = vec![":"; axis];
    parts.push(idx);
    parts.join(", ")
}

/// How a contraction reads in matrix notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContractForm {
    /// `a · b` of two vectors.
    Dot,
    /// `X @ Y`: for the left and right factor, the operand (0 = a, 1 = b) and whether it is
    /// transposed.
    MatMul {
        left: (usize, bool),
        right: (usize, bool),
    },
    /// `outer(X, Y)` of two vectors, operands in this order.
    Outer(usize, usize),
    /// A 0-d operand times the other: an elementwise product.
    Scale,
    /// Anything else: `einsum(spec, a, b)`.
    Einsum,
}

/// Reads a contraction spec as matrix notation where it has one.
pub fn contract_form(spec: &ContractSpec) -> ContractForm {
    let (a, b, out) = (&spec.a, &spec.b, &spec.out);
    let ops = [a, b];
    let summed: Vec<u8> = a
        .iter()
        .copied()
        .filter(|l| b.contains(l) && !out.contains(l))
        .collect();
    let has = |i: usize, l: u8| ops[i].contains(&l);
    match (a.len(), b.len(), out.len(), summed.len()) {
        (1, 1, 0, 1) => ContractForm::Dot,
        (1, 1, 2, 0) => {
            ContractForm::Outer(usize::from(!has(0, out[0])), usize::from(has(0, out[0])))
        }
        (2, 2, 2, 1) => {
            let (k, p, q) = (summed[0], out[0], out[1]);
            let l = usize::from(!has(0, p));
            let r = 1 - l;
            if !has(l, k) || !has(r, q) || !has(r, k) {
                return ContractForm::Einsum;
            }
            ContractForm::MatMul {
                left: (l, ops[l][0] == k),
                right: (r, ops[r][1] == k),
            }
        }
        (2, 1, 1, 1) | (1, 2, 1, 1) => {
            let m = usize::from(a.len() == 1);
            let v = 1 - m;
            if ops[m][0] == out[0] {
                ContractForm::MatMul {
                    left: (m, false),
                    right: (v, false),
                }
            } else {
                ContractForm::MatMul {
                    left: (v, false),
                    right: (m, false),
                }
            }
        }
        (0, _, _, 0) if out == b => ContractForm::Scale,
        (_, 0, _, 0) if out == a => ContractForm::Scale,
        _ => ContractForm::Einsum,
    }
}

/// Nodes that print as themselves everywhere (never worth a `let`).
fn is_leaf(op: &Op) -> bool {
    matches!(op, Op::Input(_) | Op::Const(_) | Op::Broadcast(_))
}

/// Which nodes are printed as a name: every input, every non-leaf node used at least twice
/// (broadcasts are transparent: a use of `broadcast(y)` is a use of `y`), and any node
/// `force` asks for; plus the reachable set and a topological order.
pub struct Bindings {
    pub reach: Vec<bool>,
    pub name: HashMap<NodeId, String>,
    /// The named non-input nodes, in topological order.
    pub order: Vec<NodeId>,
}

/// What [`Bindings::scoped`] is told beyond the graph: nodes to name whatever their uses,
/// nodes never to name (they print as a name already: a loop's results), and the names an
/// enclosing scope uses (a loop body's temporaries continue the outer numbering).
pub struct Scope<'a> {
    pub force: &'a dyn Fn(&Op) -> bool,
    pub leaf: &'a dyn Fn(NodeId) -> bool,
    pub taken: &'a HashSet<String>,
}

impl Bindings {
    pub fn new(g: &Graph, outputs: &[NodeId], force: &dyn Fn(&Op) -> bool) -> Bindings {
        let parts = loop_parts(g);
        Bindings::scoped(
            g,
            outputs,
            &Scope {
                force,
                leaf: &|id| matches!(g.node(id).op, Op::Loop(_)) || parts[id.index()].is_some(),
                taken: &HashSet::new(),
            },
        )
    }

    pub fn scoped(g: &Graph, outputs: &[NodeId], scope: &Scope) -> Bindings {
        let force = scope.force;
        let n = g.len();
        let mut reach = vec![false; n];
        let mut uses = vec![0usize; n];
        for o in outputs {
            reach[o.index()] = true;
            uses[o.index()] += 1;
        }
        for i in (0..n).rev() {
            if !reach[i] {
                continue;
            }
            let node = &g.nodes()[i];
            let weight = if matches!(node.op, Op::Broadcast(_)) {
                uses[i]
            } else {
                1
            };
            for x in &node.inputs {
                reach[x.index()] = true;
                uses[x.index()] += weight;
            }
        }
        let mut name = HashMap::new();
        let mut taken: HashSet<String> = scope.taken.clone();
        for (k, &inp) in g.inputs.iter().enumerate() {
            name.insert(inp, g.input_names[k].clone());
            taken.insert(g.input_names[k].clone());
        }
        let mut order = vec![];
        let mut t = 0;
        for i in 0..n {
            let op = &g.nodes()[i].op;
            let id = NodeId(i as u32);
            let wanted = force(op) || (uses[i] >= 2 && !is_leaf(op));
            if !reach[i] || name.contains_key(&id) || !wanted || (scope.leaf)(id) {
                continue;
            }
            let user = g
                .names
                .get(&id)
                .filter(|s| is_ident(s) && !taken.contains(*s));
            let s = match user {
                Some(s) => s.clone(),
                None => loop {
                    t += 1;
                    let s = format!("t{t}");
                    if !taken.contains(&s) {
                        break s;
                    }
                },
            };
            taken.insert(s.clone());
            name.insert(id, s);
            order.push(id);
        }
        Bindings { reach, name, order }
    }
}

/// A Python identifier of ASCII letters, digits and underscores.
pub fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// The operands of an elementwise node as printers show them: a `Broadcast` operand is
/// replaced by its source when NumPy's implicit broadcasting of the shown shapes gives the
/// node's shape back (so `A + b` rather than `A + broadcast(b, (2, 3))`).
pub fn shown_operands(g: &Graph, id: NodeId) -> Vec<NodeId> {
    let n = g.node(id);
    let src = |i: NodeId| match g.node(i).op {
        Op::Broadcast(_) => g.node(i).inputs[0],
        _ => i,
    };
    let implicit = n.inputs.iter().try_fold(Shape::new(), |s, &i| {
        autodiff_ir::graph::broadcast_shapes(&s, g.shape(src(i))).ok()
    });
    match implicit == Some(n.shape.clone()) {
        true => n.inputs.iter().map(|&i| src(i)).collect(),
        false => n.inputs.clone(),
    }
}

/// A node that holds (part of) one result of a loop node, as `Graph::loop_outputs` unpacks
/// it: the value is result `k` of `node`, flattened when `flat`, cast to the pack dtype
/// when `packed`. With neither, the node *is* the result, and printers show its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopPart {
    pub node: NodeId,
    pub k: usize,
    pub flat: bool,
    pub packed: bool,
}

impl LoopPart {
    /// Whether the node is exactly the result (its shape and dtype).
    pub fn exact(&self) -> bool {
        !self.flat && !self.packed
    }

    /// The pieces of loop `node`'s packed value, in order: each result flattened (unless
    /// it is 1-D already) and cast to the pack dtype (where it differs).
    pub fn packing(node: NodeId, spec: &autodiff_ir::LoopSpec) -> Vec<LoopPart> {
        let pack = spec.pack_dtype();
        spec.result_types()
            .iter()
            .enumerate()
            .map(|(k, (shape, dt))| LoopPart {
                node,
                k,
                flat: shape.len() != 1,
                packed: *dt != pack,
            })
            .collect()
    }
}

/// For every node, the loop result it holds (see [`LoopPart`]): the loop node itself when
/// it has one result, a 1-d slice of a loop's packed value that covers exactly one result,
/// and reshapes and casts of those between the result's shape and dtype and the flat,
/// packed ones (the pack casts are exact, see `autodiff_ir::loops`).
pub fn loop_parts(g: &Graph) -> Vec<Option<LoopPart>> {
    let mut parts: Vec<Option<LoopPart>> = vec![None; g.len()];
    for (i, n) in g.nodes().iter().enumerate() {
        let part = |node: NodeId, k: usize| {
            let Op::Loop(spec) = &g.node(node).op else {
                return None;
            };
            let (shape, dtype) = spec.result_types().swap_remove(k);
            let numel: usize = shape.iter().product();
            let ok = (n.shape == shape || n.shape == [numel])
                && (n.dtype == dtype || n.dtype == spec.pack_dtype());
            ok.then_some(LoopPart {
                node,
                k,
                flat: n.shape != shape,
                packed: n.dtype != dtype,
            })
        };
        parts[i] = match &n.op {
            Op::Loop(spec) if spec.result_types().len() == 1 => part(NodeId(i as u32), 0),
            Op::Slice(dims) if dims.len() == 1 && dims[0].step == 1 => {
                let x = n.inputs[0];
                match &g.node(x).op {
                    Op::Loop(spec) => {
                        let (offs, _) = spec.offsets();
                        let types = spec.result_types();
                        (0..types.len())
                            .find(|&k| {
                                let len: usize = types[k].0.iter().product();
                                offs[k] == dims[0].start && len == dims[0].len
                            })
                            .and_then(|k| part(x, k))
                    }
                    _ => None,
                }
            }
            // flattening and unflattening, casting to the pack dtype and back, are exact
            Op::Reshape(_) | Op::Cast(_) => {
                parts[n.inputs[0].index()].and_then(|p| part(p.node, p.k))
            }
            _ => None,
        };
    }
    parts
}

/// Which results of each loop node the outputs read (all of them where the packed value
/// itself is read other than through [`loop_parts`]), by loop node.
pub fn used_results(
    g: &Graph,
    reach: &[bool],
    parts: &[Option<LoopPart>],
) -> HashMap<NodeId, Vec<bool>> {
    let mut used: HashMap<NodeId, Vec<bool>> = HashMap::new();
    for (i, n) in g.nodes().iter().enumerate() {
        if let (true, Op::Loop(spec)) = (reach[i], &n.op) {
            used.insert(NodeId(i as u32), vec![false; spec.result_types().len()]);
        }
    }
    for (i, n) in g.nodes().iter().enumerate() {
        if !reach[i] {
            continue;
        }
        if let Some(p) = parts[i] {
            used.get_mut(&p.node).expect("reachable")[p.k] = true;
        }
        for x in &n.inputs {
            let raw = matches!(g.node(*x).op, Op::Loop(_)) && parts[i].is_none();
            if raw {
                used.get_mut(x).expect("reachable").fill(true);
            }
        }
    }
    used
}

/// A name as a loop body's scope may use it: `want` if it is an identifier not yet taken,
/// else `want` (or `fallback`) with a number appended; the result is added to `taken`.
pub fn scoped_name(want: &str, fallback: &str, taken: &mut HashSet<String>) -> String {
    let base = if is_ident(want) { want } else { fallback };
    let mut s = base.to_string();
    let mut k = 1;
    while taken.contains(&s) {
        k += 1;
        s = format!("{base}_{k}");
    }
    taken.insert(s.clone());
    s
}
