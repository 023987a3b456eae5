//! The s-expression text form of a graph: [`print_graph`] and [`parse_graph`] (plus
//! [`print_term`] / [`parse_term`] for one node). Tests are written in it.
//!
//! ```
//! use autodiff_ir::sexpr::{parse_graph, print_graph};
//! let text = r#"(graph
//!   (input x float64 (3))
//!   (input W float64 (2 3))
//!   (let t0 (add x (broadcast (3) 1.0)))
//!   (output (sum (0) (mul t0 t0)))
//!   (output (contract "ij,j->i" W t0)))"#;
//! let g = parse_graph(text).unwrap();
//! assert_eq!(print_graph(&g), text);
//! ```
//!
//! Grammar:
//! ```text
//! graph := (graph item*)
//! item  := (input NAME DTYPE SHAPE)     ; the graph's inputs, in argument order
//!        | (let NAME term)              ; a name for a shared value
//!        | (output term)                ; the graph's results, in order
//! term  := NAME                         ; an input or an earlier let
//!        | NUMBER                       ; a 0-d float64 constant: 1.0 -2.5 1e-300 inf nan
//!        | (const DTYPE SHAPE v*)       ; any other constant, row-major values
//!        | (HEAD attr* term*)           ; an op; its attributes come first
//! SHAPE := (n*)                          ; () is a scalar
//! NAME  := identifier ([A-Za-z_][A-Za-z0-9_.]*, not a number word) | "quoted string"
//! ; a comment runs to the end of the line
//! ```
//! Heads and their attributes: the unary and binary op names (`exp`, `add`, ...; see
//! [`UnaryOp::name`], [`BinaryOp::name`]), `where`, `cast DTYPE`, `broadcast SHAPE`,
//! `reshape SHAPE`, `transpose (perm)`, `sum`/`prod`/`max`/`min (axes)`, `argmax AXIS`,
//! `argmin AXIS`, `contract "ij,jk->ik"`, `slice ((start step len) ...)`,
//! `set_slice ((start step len) ...)`, `gather AXIS`, `scatter_add AXIS`, `scatter AXIS`,
//! `take_along AXIS`, `scatter_along_add AXIS`, `concat AXIS`, `cumsum AXIS`,
//! `cumprod AXIS`, `argsort AXIS`, `solve`, `trisolve lower|upper`, `cholesky`, `inv`,
//! `det`, `logabsdet` (see [`op_head`]). Constant values are numbers (int64: integers;
//! bool: `true`/`false`).
//!
//! The printer shows the nodes reachable from `graph.outputs`; a node gets a `let` when
//! it is used more than once (leaves never are) or when inlining it would nest terms more
//! than [`MAX_INLINE_DEPTH`] deep; everything else is inlined. Let names are `t0, t1, ...`
//! in node order; input names that are not identifiers are quoted, and repeated ones get
//! a `_k` suffix. Numbers print in the shortest form that parses back to the same bits.
//!
//! The parser builds through [`Graph::add`], so every node is type-checked and
//! hash-consed; errors say what is wrong and where (`line L, column C`).
//! Round trip: `print_graph(&parse_graph(&print_graph(g))?) == print_graph(g)`.

use std::collections::HashMap;
use std::fmt::Write;

use crate::{
    BinaryOp, ContractSpec, DType, Graph, IrError, LoopSpec, NodeId, Op, ReduceOp, SliceDim,
    Tensor, UnaryOp,
};

/// The printer binds a node with `let` rather than nest terms deeper than this.
pub const MAX_INLINE_DEPTH: usize = 32;

/// The parser refuses text nested deeper than this (instead of exhausting the stack).
/// 256: the recursive term parser stays far inside a 2 MiB thread stack even in debug
/// builds (1000 overflowed one at depth ~800); printed graphs nest at most
/// `MAX_INLINE_DEPTH` terms (deeper ones get a `let`).
const MAX_PARSE_DEPTH: usize = 256;

/// The head word of an op in the text form (`add`, `sum`, `argmin`, `scatter_add`, ...).
pub fn op_head(op: &Op) -> &'static str {
    match op {
        Op::Input(_) => "input",
        Op::Const(_) => "const",
        Op::Unary(u) => u.name(),
        Op::Binary(b) => b.name(),
        Op::Where => "where",
        Op::Cast(_) => "cast",
        Op::Broadcast(_) => "broadcast",
        Op::Reshape(_) => "reshape",
        Op::Transpose(_) => "transpose",
        Op::Reduce(r, _) => r.name(),
        Op::ArgMax(_, true) => "argmax",
        Op::ArgMax(_, false) => "argmin",
        Op::Contract(_) => "contract",
        Op::Slice(_) => "slice",
        Op::SetSlice(_) => "set_slice",
        Op::Gather(_) => "gather",
        Op::ScatterAdd(_) => "scatter_add",
        Op::Scatter(_) => "scatter",
        Op::TakeAlong(_) => "take_along",
        Op::ScatterAlongAdd(_) => "scatter_along_add",
        Op::Concat(_) => "concat",
        Op::Cumsum(_) => "cumsum",
        Op::Cumprod(_) => "cumprod",
        Op::ArgSort(_) => "argsort",
        Op::Solve => "solve",
        Op::TriSolve(_) => "trisolve",
        Op::Cholesky => "cholesky",
        Op::Inv => "inv",
        Op::Det => "det",
        Op::LogAbsDet => "logabsdet",
        Op::Loop(_) => "loop",
    }
}

/// One op of every head, with placeholder attributes: the parser finds an op's kind here
/// by its head and then reads its attributes.
fn templates() -> Vec<Op> {
    let mut ops: Vec<Op> = UnaryOp::ALL.iter().map(|&u| Op::Unary(u)).collect();
    ops.extend(BinaryOp::ALL.iter().map(|&b| Op::Binary(b)));
    for r in [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min] {
        ops.push(Op::Reduce(r, vec![]));
    }
    ops.extend([
        Op::Const(0),
        Op::Where,
        Op::Cast(DType::F64),
        Op::Broadcast(vec![]),
        Op::Reshape(vec![]),
        Op::Transpose(vec![]),
        Op::ArgMax(0, true),
        Op::ArgMax(0, false),
        Op::Contract(ContractSpec {
            a: vec![],
            b: vec![],
            out: vec![],
        }),
        Op::Slice(vec![]),
        Op::SetSlice(vec![]),
        Op::Gather(0),
        Op::ScatterAdd(0),
        Op::Scatter(0),
        Op::TakeAlong(0),
        Op::ScatterAlongAdd(0),
        Op::Concat(0),
        Op::Cumsum(0),
        Op::Cumprod(0),
        Op::ArgSort(0),
        Op::Solve,
        Op::TriSolve(true),
        Op::Cholesky,
        Op::Inv,
        Op::Det,
        Op::LogAbsDet,
        Op::Loop(std::sync::Arc::new(
            LoopSpec::new(Graph::new(), 0, 0, 0, false).expect("the empty loop is valid"),
        )),
    ]);
    ops
}

// ---------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------

/// `(a b c)`.
fn list<T: std::fmt::Display>(xs: &[T]) -> String {
    let items: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
    format!("({})", items.join(" "))
}

/// The attributes of an op, printed, in order.
fn attrs(op: &Op) -> Vec<String> {
    let slice = |dims: &[SliceDim]| {
        let ds: Vec<String> = dims
            .iter()
            .map(|d| format!("({} {} {})", d.start, d.step, d.len))
            .collect();
        format!("({})", ds.join(" "))
    };
    match op {
        Op::Input(_) | Op::Const(_) => vec![],
        Op::Unary(_) | Op::Binary(_) | Op::Where => vec![],
        Op::Cast(d) => vec![d.name().to_string()],
        Op::Broadcast(s) | Op::Reshape(s) => vec![list(s)],
        Op::Transpose(p) => vec![list(p)],
        Op::Reduce(_, axes) => vec![list(axes)],
        Op::ArgMax(axis, _) => vec![axis.to_string()],
        Op::Contract(spec) => vec![format!("\"{spec}\"")],
        Op::Slice(dims) | Op::SetSlice(dims) => vec![slice(dims)],
        Op::Gather(a)
        | Op::ScatterAdd(a)
        | Op::Scatter(a)
        | Op::TakeAlong(a)
        | Op::ScatterAlongAdd(a)
        | Op::Concat(a)
        | Op::Cumsum(a)
        | Op::Cumprod(a)
        | Op::ArgSort(a) => vec![a.to_string()],
        Op::TriSolve(lower) => vec![(if *lower { "lower" } else { "upper" }).to_string()],
        Op::Solve | Op::Cholesky | Op::Inv | Op::Det | Op::LogAbsDet => vec![],
        Op::Loop(spec) => vec![
            format!(
                "({} {} {} {})",
                spec.trips,
                if spec.reverse { "reverse" } else { "forward" },
                spec.n_carry,
                spec.n_xs
            ),
            print_graph(&spec.body).replace("\n  ", " "),
        ],
    }
}

/// The heads of the ops that are not elementwise functions (those are named by
/// `UnaryOp::name` / `BinaryOp::name`), in `Op` order: with them, every head [`op_head`]
/// returns. Tests use it to check that generators and goldens reach every op.
pub const STRUCTURAL_HEADS: [&str; 32] = [
    "input",
    "const",
    "where",
    "cast",
    "broadcast",
    "reshape",
    "transpose",
    "sum",
    "prod",
    "max",
    "min",
    "argmax",
    "argmin",
    "contract",
    "slice",
    "set_slice",
    "gather",
    "scatter_add",
    "scatter",
    "take_along",
    "scatter_along_add",
    "concat",
    "cumsum",
    "cumprod",
    "argsort",
    "solve",
    "trisolve",
    "cholesky",
    "inv",
    "det",
    "logabsdet",
    "loop",
];

/// Every op head: the elementwise function names, then [`STRUCTURAL_HEADS`].
pub fn all_heads() -> Vec<&'static str> {
    let mut all: Vec<&str> = UnaryOp::ALL.iter().map(|u| u.name()).collect();
    all.extend(BinaryOp::ALL.iter().map(|b| b.name()));
    all.extend(STRUCTURAL_HEADS);
    all
}

/// One element of a constant of the given dtype, in the shortest form that parses back
/// exactly.
fn number(v: f64, dtype: DType) -> String {
    match dtype {
        _ if v.is_nan() => "nan".to_string(),
        DType::Bool => (if v != 0.0 { "true" } else { "false" }).to_string(),
        DType::I64 => format!("{v}"),
        DType::F32 => format!("{:?}", v as f32),
        DType::F64 => format!("{v:?}"),
    }
}

/// A bare identifier: not a number word and not needing quotes.
fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && s.parse::<f64>().is_err()
        && !matches!(s, "true" | "false")
}

/// A name as written: bare when it is an identifier, else quoted.
fn fmt_name(s: &str) -> String {
    if is_ident(s) {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// How the printer writes a graph's nodes: names for inputs and let-bound nodes.
struct Printer<'g> {
    g: &'g Graph,
    names: HashMap<NodeId, String>,
}

impl Printer<'_> {
    /// A node as a term: its name if it has one, else its op applied to its operands.
    fn term(&self, id: NodeId, out: &mut String) {
        if let Some(name) = self.names.get(&id) {
            out.push_str(&fmt_name(name));
            return;
        }
        let n = self.g.node(id);
        if let Op::Const(c) = n.op {
            let t = &self.g.consts()[c as usize];
            if t.dtype == DType::F64 && t.shape.is_empty() {
                out.push_str(&number(t.data[0], DType::F64));
            } else {
                let _ = write!(out, "(const {} {}", t.dtype, list(&t.shape));
                for &v in &t.data {
                    let _ = write!(out, " {}", number(v, t.dtype));
                }
                out.push(')');
            }
            return;
        }
        out.push('(');
        out.push_str(op_head(&n.op));
        for a in attrs(&n.op) {
            out.push(' ');
            out.push_str(&a);
        }
        for &x in &n.inputs {
            out.push(' ');
            self.term(x, out);
        }
        out.push(')');
    }
}

/// A name not in `used`: `base`, else `base_1`, `base_2`, ...
fn fresh(base: &str, used: &mut std::collections::HashSet<String>) -> String {
    let mut name = base.to_string();
    let mut k = 1;
    while used.contains(&name) {
        name = format!("{base}_{k}");
        k += 1;
    }
    used.insert(name.clone());
    name
}

/// The graph in the text form (see the module docs).
pub fn print_graph(g: &Graph) -> String {
    let mut used = std::collections::HashSet::new();
    let mut names = HashMap::new();
    for (k, &id) in g.inputs.iter().enumerate() {
        let base = g
            .input_names
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("in{k}"));
        names.insert(id, fresh(&base, &mut used));
    }
    // Uses among the nodes the outputs reach (an output counts as a use).
    let mut uses = vec![0usize; g.len()];
    let mut reached = vec![false; g.len()];
    for o in &g.outputs {
        uses[o.index()] += 1;
        reached[o.index()] = true;
    }
    for i in (0..g.len()).rev() {
        if reached[i] {
            for x in &g.nodes()[i].inputs {
                uses[x.index()] += 1;
                reached[x.index()] = true;
            }
        }
    }
    // Let-bind shared non-leaves, and nodes whose inline nesting would get too deep.
    let mut depth = vec![0usize; g.len()];
    let mut lets = vec![];
    for i in 0..g.len() {
        let n = &g.nodes()[i];
        if !reached[i] || n.inputs.is_empty() {
            continue;
        }
        let d = 1 + n.inputs.iter().map(|x| depth[x.index()]).max().unwrap_or(0);
        if uses[i] > 1 || d > MAX_INLINE_DEPTH {
            let mut k = lets.len();
            while used.contains(&format!("t{k}")) {
                k += 1;
            }
            names.insert(NodeId(i as u32), fresh(&format!("t{k}"), &mut used));
            lets.push(NodeId(i as u32));
        } else {
            depth[i] = d;
        }
    }
    let mut p = Printer { g, names };
    let mut items = vec![];
    for &id in &g.inputs {
        let n = g.node(id);
        let name = fmt_name(&p.names[&id]);
        items.push(format!("(input {name} {} {})", n.dtype, list(&n.shape)));
    }
    for id in lets {
        // Print the body inline, then name it for later uses.
        let name = p.names.remove(&id).expect("let-bound");
        let mut s = format!("(let {} ", fmt_name(&name));
        p.term(id, &mut s);
        s.push(')');
        items.push(s);
        p.names.insert(id, name);
    }
    for &o in &g.outputs {
        let mut s = "(output ".to_string();
        p.term(o, &mut s);
        s.push(')');
        items.push(s);
    }
    if items.is_empty() {
        return "(graph)".to_string();
    }
    format!("(graph\n  {})", items.join("\n  "))
}

/// One node as a fully nested term (no `let`s; inputs by name). Shared subterms are
/// repeated, so the text can be much larger than the graph.
pub fn print_term(g: &Graph, id: NodeId) -> String {
    let names = g
        .inputs
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let name = g
                .input_names
                .get(k)
                .cloned()
                .unwrap_or_else(|| format!("in{k}"));
            (i, name)
        })
        .collect();
    let mut s = String::new();
    Printer { g, names }.term(id, &mut s);
    s
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// A parsed s-expression; `usize` is its byte offset in the text.
#[derive(Debug)]
enum Sx {
    Atom(String, usize),
    Str(String, usize),
    List(Vec<Sx>, usize),
}

impl Sx {
    fn pos(&self) -> usize {
        match self {
            Sx::Atom(_, p) | Sx::Str(_, p) | Sx::List(_, p) => *p,
        }
    }

    fn describe(&self) -> String {
        match self {
            Sx::Atom(a, _) => format!("'{a}'"),
            Sx::Str(s, _) => format!("\"{s}\""),
            Sx::List(..) => "a list".to_string(),
        }
    }
}

/// `line L, column C: msg` for a byte offset in `src`.
fn located(src: &str, pos: usize, msg: impl std::fmt::Display) -> IrError {
    let before = &src[..pos.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    IrError(format!("line {line}, column {col}: {msg}"))
}

/// Reads the text into s-expressions.
fn read(src: &str) -> Result<Vec<Sx>, IrError> {
    let bytes = src.as_bytes();
    let mut stack: Vec<(Vec<Sx>, usize)> = vec![(vec![], 0)];
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b';' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' => {
                if stack.len() > MAX_PARSE_DEPTH {
                    return Err(located(src, i, "nested too deeply"));
                }
                stack.push((vec![], i));
                i += 1;
            }
            b')' => {
                if stack.len() == 1 {
                    return Err(located(src, i, "unbalanced ')'"));
                }
                let (items, start) = stack.pop().expect("checked");
                stack
                    .last_mut()
                    .expect("checked")
                    .0
                    .push(Sx::List(items, start));
                i += 1;
            }
            b'"' => {
                let start = i;
                let mut s = String::new();
                i += 1;
                loop {
                    match src[i..].chars().next() {
                        None => return Err(located(src, start, "unterminated string")),
                        Some('"') => break,
                        Some('\\') if i + 1 < bytes.len() => {
                            let e = src[i + 1..].chars().next().expect("in range");
                            s.push(e);
                            i += 1 + e.len_utf8();
                        }
                        Some(ch) => {
                            s.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                i += 1;
                stack
                    .last_mut()
                    .expect("nonempty")
                    .0
                    .push(Sx::Str(s, start));
            }
            _ if c.is_ascii_whitespace() => i += 1,
            _ => {
                let start = i;
                while i < bytes.len()
                    && !b"();\"".contains(&bytes[i])
                    && !bytes[i].is_ascii_whitespace()
                {
                    i += 1;
                }
                let atom = src[start..i].to_string();
                stack
                    .last_mut()
                    .expect("nonempty")
                    .0
                    .push(Sx::Atom(atom, start));
            }
        }
    }
    if stack.len() > 1 {
        let start = stack.last().expect("nonempty").1;
        return Err(located(src, start, "unclosed '('"));
    }
    Ok(stack.pop().expect("nonempty").0)
}

/// Builds graph nodes from s-expressions.
struct Parser<'s> {
    src: &'s str,
    g: Graph,
    scope: HashMap<String, NodeId>,
}

impl Parser<'_> {
    fn err<T>(&self, at: &Sx, msg: impl std::fmt::Display) -> Result<T, IrError> {
        Err(located(self.src, at.pos(), msg))
    }

    fn atom<'x>(&self, sx: &'x Sx, what: &str) -> Result<&'x str, IrError> {
        match sx {
            Sx::Atom(a, _) => Ok(a),
            _ => self.err(sx, format!("expected {what}, found {}", sx.describe())),
        }
    }

    fn list<'x>(&self, sx: &'x Sx, what: &str) -> Result<&'x [Sx], IrError> {
        match sx {
            Sx::List(items, _) => Ok(items),
            _ => self.err(sx, format!("expected {what}, found {}", sx.describe())),
        }
    }

    fn usize(&self, sx: &Sx, what: &str) -> Result<usize, IrError> {
        let a = self.atom(sx, what)?;
        a.parse()
            .or_else(|_| self.err(sx, format!("expected {what}, found '{a}'")))
    }

    fn i64(&self, sx: &Sx, what: &str) -> Result<i64, IrError> {
        let a = self.atom(sx, what)?;
        a.parse()
            .or_else(|_| self.err(sx, format!("expected {what}, found '{a}'")))
    }

    fn usizes(&self, sx: &Sx, what: &str) -> Result<Vec<usize>, IrError> {
        let items = self.list(sx, &format!("a list of {what}"))?;
        items.iter().map(|x| self.usize(x, what)).collect()
    }

    fn dtype(&self, sx: &Sx) -> Result<DType, IrError> {
        let a = self.atom(sx, "a dtype")?;
        DType::from_name(a).map_or_else(|| self.err(sx, format!("unknown dtype '{a}'")), Ok)
    }

    fn name(&self, sx: &Sx) -> Result<String, IrError> {
        match sx {
            Sx::Str(s, _) => Ok(s.clone()),
            Sx::Atom(a, _) if is_ident(a) => Ok(a.clone()),
            _ => self.err(sx, format!("expected a name, found {}", sx.describe())),
        }
    }

    /// Binds a new name; names are never redefined.
    fn bind(&mut self, at: &Sx, name: String, id: NodeId) -> Result<(), IrError> {
        if self.scope.contains_key(&name) {
            return self.err(at, format!("'{name}' is already defined"));
        }
        self.scope.insert(name, id);
        Ok(())
    }

    fn graph(&mut self, top: &[Sx]) -> Result<(), IrError> {
        let body = match top {
            [sx @ Sx::List(items, _)] => match items.split_first() {
                Some((Sx::Atom(h, _), rest)) if h == "graph" => rest,
                _ => return self.err(sx, "expected (graph ...)"),
            },
            [] => return Err(IrError("empty text: expected (graph ...)".into())),
            [first] => return self.err(first, "expected (graph ...)"),
            [_, second, ..] => return self.err(second, "text after the graph"),
        };
        for item in body {
            let parts = self.list(item, "(input ...), (let ...) or (output ...)")?;
            let head = parts
                .first()
                .map(|h| self.atom(h, "input, let or output"))
                .transpose()?;
            match (head, parts) {
                (Some("input"), [_, name, dt, shape]) => {
                    let (name, dt, shape) = (
                        self.name(name)?,
                        self.dtype(dt)?,
                        self.usizes(shape, "extents")?,
                    );
                    let id = self.g.add_input(&name, shape, dt);
                    self.bind(item, name, id)?;
                }
                (Some("let"), [_, name, term]) => {
                    let name_s = self.name(name)?;
                    let id = self.term(term, 0)?;
                    self.bind(name, name_s, id)?;
                }
                (Some("output"), [_, term]) => {
                    let id = self.term(term, 0)?;
                    self.g.outputs.push(id);
                }
                (Some(h @ ("input" | "let" | "output")), _) => {
                    let form = match h {
                        "input" => "(input NAME DTYPE (SHAPE))",
                        "let" => "(let NAME TERM)",
                        _ => "(output TERM)",
                    };
                    return self.err(item, format!("malformed {h}: expected {form}"));
                }
                _ => return self.err(item, "expected (input ...), (let ...) or (output ...)"),
            }
        }
        Ok(())
    }

    /// A term: a name, a number, a constant, or an op applied to terms.
    fn term(&mut self, sx: &Sx, depth: usize) -> Result<NodeId, IrError> {
        if depth > MAX_PARSE_DEPTH {
            return self.err(sx, "nested too deeply");
        }
        let items = match sx {
            Sx::Str(name, _) => return self.lookup(sx, name),
            Sx::Atom(a, _) => {
                if let Ok(v) = a.parse::<f64>() {
                    return Ok(self.g.scalar(v, DType::F64));
                }
                return self.lookup(sx, a);
            }
            Sx::List(items, _) => items,
        };
        let Some((head, rest)) = items.split_first() else {
            return self.err(sx, "empty term '()'");
        };
        let h = self.atom(head, "an op name")?;
        let Some(template) = templates().into_iter().find(|t| op_head(t) == h) else {
            return self.err(head, format!("unknown op '{h}'"));
        };
        if let Op::Const(_) = template {
            return self.constant(sx, rest);
        }
        let (op, operands) = self.op(&template, sx, rest)?;
        let ids = operands
            .iter()
            .map(|x| self.term(x, depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        self.g
            .add(op, ids)
            .or_else(|e| self.err(sx, format!("({h} ...): {e}")))
    }

    fn lookup(&self, sx: &Sx, name: &str) -> Result<NodeId, IrError> {
        match self.scope.get(name) {
            Some(&id) => Ok(id),
            None => self.err(sx, format!("unknown name '{name}'")),
        }
    }

    /// `(const DTYPE (SHAPE) v ...)`.
    fn constant(&mut self, sx: &Sx, rest: &[Sx]) -> Result<NodeId, IrError> {
        let [dt, shape, vals @ ..] = rest else {
            return self.err(sx, "expected (const DTYPE (SHAPE) values...)");
        };
        let (dt, shape) = (self.dtype(dt)?, self.usizes(shape, "extents")?);
        let n: usize = shape.iter().product();
        if vals.len() != n {
            return self.err(
                sx,
                format!(
                    "a constant of shape {shape:?} needs {n} values, got {}",
                    vals.len()
                ),
            );
        }
        let data = vals
            .iter()
            .map(|v| {
                let a = self.atom(v, "a number")?;
                let x = match (dt, a) {
                    (DType::Bool, "true") => Some(1.0),
                    (DType::Bool, "false") => Some(0.0),
                    (DType::F32, _) => a.parse::<f32>().ok().map(f64::from),
                    _ => a.parse::<f64>().ok(),
                };
                x.map_or_else(
                    || {
                        self.err(
                            v,
                            format!(
                                "expected {} {dt} value, found '{a}'",
                                if dt == DType::I64 { "an" } else { "a" }
                            ),
                        )
                    },
                    Ok,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.g.constant(Tensor::new(dt, shape, data)))
    }

    /// Reads the attributes of an op of the template's kind; returns the op and its
    /// operand terms.
    fn op<'x>(&self, template: &Op, sx: &Sx, rest: &'x [Sx]) -> Result<(Op, &'x [Sx]), IrError> {
        let head = op_head(template);
        let attr = |i: usize| {
            rest.get(i)
                .map_or_else(|| self.err(sx, format!("{head}: missing attribute")), Ok)
        };
        let axis = || self.usize(attr(0)?, "an axis");
        let op = match template {
            Op::Input(_) | Op::Const(_) => {
                return self.err(sx, format!("'{head}' is not an op of a term"))
            }
            Op::Unary(_) | Op::Binary(_) | Op::Where => template.clone(),
            Op::Solve | Op::Cholesky | Op::Inv | Op::Det | Op::LogAbsDet => template.clone(),
            Op::Loop(_) => Op::Loop(std::sync::Arc::new(self.loop_spec(
                sx,
                attr(0)?,
                attr(1)?,
            )?)),
            Op::Cast(_) => Op::Cast(self.dtype(attr(0)?)?),
            Op::Broadcast(_) => Op::Broadcast(self.usizes(attr(0)?, "extents")?),
            Op::Reshape(_) => Op::Reshape(self.usizes(attr(0)?, "extents")?),
            Op::Transpose(_) => Op::Transpose(self.usizes(attr(0)?, "axes")?),
            Op::Reduce(r, _) => Op::Reduce(*r, self.usizes(attr(0)?, "axes")?),
            Op::ArgMax(_, is_max) => Op::ArgMax(axis()?, *is_max),
            Op::Contract(_) => {
                let a = attr(0)?;
                let spec = match a {
                    Sx::Str(s, _) | Sx::Atom(s, _) => ContractSpec::parse(s),
                    Sx::List(..) => None,
                };
                match spec {
                    Some(s) => Op::Contract(s),
                    None => return self.err(a, "expected a contraction spec like \"ij,jk->ik\""),
                }
            }
            Op::Slice(_) => Op::Slice(self.slice_dims(attr(0)?)?),
            Op::SetSlice(_) => Op::SetSlice(self.slice_dims(attr(0)?)?),
            Op::Gather(_) => Op::Gather(axis()?),
            Op::ScatterAdd(_) => Op::ScatterAdd(axis()?),
            Op::Scatter(_) => Op::Scatter(axis()?),
            Op::TakeAlong(_) => Op::TakeAlong(axis()?),
            Op::ScatterAlongAdd(_) => Op::ScatterAlongAdd(axis()?),
            Op::Concat(_) => Op::Concat(axis()?),
            Op::Cumsum(_) => Op::Cumsum(axis()?),
            Op::Cumprod(_) => Op::Cumprod(axis()?),
            Op::ArgSort(_) => Op::ArgSort(axis()?),
            Op::TriSolve(_) => {
                let a = attr(0)?;
                match self.atom(a, "lower or upper")? {
                    "lower" => Op::TriSolve(true),
                    "upper" => Op::TriSolve(false),
                    other => {
                        return self.err(a, format!("expected lower or upper, found '{other}'"))
                    }
                }
            }
        };
        let n_attrs = attrs(&op).len();
        Ok((op, &rest[n_attrs.min(rest.len())..]))
    }

    /// `(TRIPS forward|reverse N_CARRY N_XS) (graph ...)`: a loop's parameters and body.
    fn loop_spec(&self, sx: &Sx, params: &Sx, body: &Sx) -> Result<LoopSpec, IrError> {
        let what = "(trips forward|reverse n_carry n_xs)";
        let [trips, dir, nc, nx] = self.list(params, what)? else {
            return self.err(params, format!("expected {what}"));
        };
        let reverse = match self.atom(dir, "forward or reverse")? {
            "forward" => false,
            "reverse" => true,
            other => return self.err(dir, format!("expected forward or reverse, found '{other}'")),
        };
        let mut p = Parser {
            src: self.src,
            g: Graph::new(),
            scope: HashMap::new(),
        };
        p.graph(std::slice::from_ref(body))?;
        LoopSpec::new(
            p.g,
            self.usize(nc, "a carry count")?,
            self.usize(nx, "an xs count")?,
            self.usize(trips, "a trip count")?,
            reverse,
        )
        .or_else(|e| self.err(sx, e))
    }

    /// `((start step len) ...)`.
    fn slice_dims(&self, sx: &Sx) -> Result<Vec<SliceDim>, IrError> {
        let what = "(start step len)";
        self.list(sx, &format!("a list of {what}"))?
            .iter()
            .map(|d| match self.list(d, what)? {
                [start, step, len] => Ok(SliceDim {
                    start: self.usize(start, "a start")?,
                    step: self.i64(step, "a step")?,
                    len: self.usize(len, "a length")?,
                }),
                _ => self.err(d, format!("expected {what}")),
            })
            .collect()
    }
}

/// Parses the text form (see the module docs) into a new graph.
pub fn parse_graph(s: &str) -> Result<Graph, IrError> {
    let top = read(s)?;
    let mut p = Parser {
        src: s,
        g: Graph::new(),
        scope: HashMap::new(),
    };
    p.graph(&top)?;
    Ok(p.g)
}

/// Parses one term into an existing graph, whose inputs are referred to by name.
/// Handy in tests: `parse_term(&mut g, "(mul x (exp x))")`.
pub fn parse_term(g: &mut Graph, s: &str) -> Result<NodeId, IrError> {
    let top = read(s)?;
    let [sx] = top.as_slice() else {
        return Err(IrError(format!("expected one term, found {}", top.len())));
    };
    let scope = g
        .input_names
        .iter()
        .cloned()
        .zip(g.inputs.iter().copied())
        .collect();
    let mut p = Parser {
        src: s,
        g: std::mem::take(g),
        scope,
    };
    let r = p.term(sx, 0);
    *g = p.g;
    r
}
