//! Math text (ASCII or Unicode) and LaTeX, from one renderer.
//!
//! Guarantees: every op has a rendering in each style (the match is exhaustive);
//! parentheses come from the shared precedence table ([`crate::syntax`]), so `2*(x + 1)`
//! and `-x**2` read as Python reads them; broadcasts of scalars and constants are invisible,
//! as are broadcasts inside elementwise ops that NumPy's implicit broadcasting reproduces;
//! shared non-trivial subexpressions become `let` lines (an `aligned` block in LaTeX); a
//! loop prints once, as its recurrence (a header naming its results, its body indented,
//! then the stacked rows and the carries' updates), and the nodes that unpack it print as
//! its results' names.

use std::collections::{HashMap, HashSet};

use autodiff_ir::{BinaryOp, ContractSpec, Graph, LoopSpec, NodeId, Op, ReduceOp, UnaryOp};

use crate::syntax::*;

/// Options of [`to_text`].
#[derive(Clone, Debug)]
pub struct TextOptions {
    /// A title: `∇f(x) =` prints before the result (on its own line when there are several).
    pub header: Option<String>,
    /// One label per output (`∂/∂x`); without them, one output prints bare and several as
    /// `out0 = ...`.
    pub labels: Vec<String>,
    /// `Σ`, `ᵀ`, `√`, `·`, `σ`, `|x|` rather than `sum`, `.T`, `sqrt`, `@`, `sigmoid`, `abs`.
    pub unicode: bool,
    /// Adds a line with the inputs' shapes and each line's shape as a `#` comment.
    pub show_shapes: bool,
    /// Ends each line with the user's `file:line` that produced it, as a `#` comment.
    pub show_locs: bool,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            header: None,
            labels: vec![],
            unicode: true,
            show_shapes: false,
            show_locs: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    Ascii,
    Unicode,
    Latex,
}

/// What a printed line does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `let lhs = text` (a loop's header when `text` ends with `:`).
    Let,
    /// `lhs ← text`: a loop carry's next value.
    Update,
    /// `lhs[t] = text`: row `t` of a loop's stacked result.
    Store,
}

/// One line: what it does, its two sides, how deep in loop bodies it sits, and the node a
/// top-level line defines (for shape and location notes).
pub(crate) struct Line {
    pub kind: Kind,
    pub lhs: String,
    pub text: String,
    pub depth: usize,
    pub id: Option<NodeId>,
}

/// The lines (named nodes and loops, in order) and the text of each output.
pub(crate) struct Rendered {
    pub lines: Vec<Line>,
    pub outs: Vec<String>,
}

/// Renders the graph in a style: named nodes first, then the outputs.
pub(crate) fn render(g: &Graph, outputs: &[NodeId], style: Style) -> Rendered {
    let mut loops = 0;
    render_scope(g, outputs, style, None, &HashSet::new(), 0, &mut loops)
}

/// Renders one scope: the whole graph, or a loop body (`inputs` then gives the text of each
/// body input, `taken` the names in use outside, `depth` the nesting). `loops` numbers the
/// loops in printing order, across scopes.
fn render_scope(
    g: &Graph,
    outputs: &[NodeId],
    style: Style,
    inputs: Option<&[Expr]>,
    taken: &HashSet<String>,
    depth: usize,
    loops: &mut usize,
) -> Rendered {
    let parts = loop_parts(g);
    let leaf = |id: NodeId| matches!(g.node(id).op, Op::Loop(_)) || parts[id.index()].is_some();
    let scope = Scope {
        force: &|_| false,
        leaf: &leaf,
        taken,
    };
    let b = Bindings::scoped(g, outputs, &scope);
    let used = used_results(g, &b.reach, &parts);
    let mut taken = taken.clone();
    taken.extend(b.name.values().cloned());
    let mut m = Math {
        g,
        style,
        cache: vec![None; g.len()],
        parts,
        results: HashMap::new(),
    };
    let mut lines = vec![];
    for i in (0..g.len()).filter(|&i| b.reach[i]) {
        let id = NodeId(i as u32);
        let op = &g.node(id).op;
        if let (Op::Input(k), Some(ins)) = (op, inputs) {
            m.cache[i] = Some(ins[*k as usize].clone());
            continue;
        }
        if let Op::Loop(spec) = op {
            let block = m.loop_block(id, spec, &used[&id], &mut taken, depth, loops);
            lines.extend(block);
        }
        let e = m.node(id);
        m.cache[i] = Some(match b.name.get(&id) {
            Some(name) => {
                let name = m.ident(name);
                if !matches!(op, Op::Input(_)) {
                    lines.push(Line {
                        kind: Kind::Let,
                        lhs: name.clone(),
                        text: e.s,
                        depth,
                        id: Some(id),
                    });
                }
                Expr::atom(name)
            }
            None => e,
        });
    }
    let outs = outputs.iter().map(|o| m.e(*o).s.clone()).collect();
    Rendered { lines, outs }
}

/// Math a person reads: `let` lines for shared subexpressions, then one line per output.
/// A loop prints as its recurrence: a header naming its results (`let y₁ = loop 1000
/// times:`), then its body, indented, ending in the carries' updates (`y ← ...`) and the
/// rows of its stacked results (`ys₁[t] = ...`).
pub fn to_text(g: &Graph, outputs: &[NodeId], opts: &TextOptions) -> String {
    let style = if opts.unicode {
        Style::Unicode
    } else {
        Style::Ascii
    };
    let r = render(g, outputs, style);
    let shape = |id: Option<NodeId>| {
        let Some(id) = id else {
            return String::new();
        };
        let mut notes = vec![];
        if opts.show_shapes {
            notes.push(match &g.node(id).op {
                Op::Loop(spec) => (spec.result_types().iter())
                    .map(|(s, _)| shape_tuple(s))
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => shape_tuple(g.shape(id)),
            });
        }
        if opts.show_locs {
            if let Some(l) = g.loc(id) {
                notes.push(l.rsplit('/').next().unwrap_or(l).to_string());
            }
        }
        if notes.is_empty() {
            String::new()
        } else {
            format!("  # {}", notes.join(", "))
        }
    };
    let mut lines = vec![];
    if opts.show_shapes {
        let ins: Vec<String> = (g.inputs.iter().zip(&g.input_names))
            .map(|(&i, n)| format!("{n}: {}", shape_tuple(g.shape(i))))
            .collect();
        lines.push(format!("# {}", ins.join(", ")));
    }
    let arrow = if opts.unicode { "←" } else { "<-" };
    for l in &r.lines {
        let pad = "  ".repeat(l.depth);
        let text = match l.kind {
            Kind::Let => format!("{pad}let {} = {}", l.lhs, l.text),
            Kind::Update => format!("{pad}{} {arrow} {}", l.lhs, l.text),
            Kind::Store => format!("{pad}{}[t] = {}", l.lhs, l.text),
        };
        let note = if l.depth == 0 {
            shape(l.id)
        } else {
            String::new()
        };
        lines.push(text + &note);
    }
    let n_lets = lines.len();
    for (k, (o, text)) in outputs.iter().zip(&r.outs).enumerate() {
        let line = match opts.labels.get(k) {
            Some(l) => format!("{l} = {text}"),
            None if outputs.len() == 1 => text.clone(),
            None => format!("out{k} = {text}"),
        };
        lines.push(line + &shape(Some(*o)));
    }
    match &opts.header {
        Some(h) if lines.len() == 1 && n_lets == 0 && opts.labels.is_empty() => {
            format!("{h} {}", lines[0])
        }
        Some(h) => std::iter::once(h.clone())
            .chain(lines.iter().map(|l| format!("  {l}")))
            .collect::<Vec<_>>()
            .join("\n"),
        None => lines.join("\n"),
    }
}

/// LaTeX math (no `$` delimiters): the bare expression for one unlabeled output without
/// shared subexpressions, else an `aligned` block with one `name &= ...` row per line (a
/// loop's body rows indented with `\quad`).
pub fn to_latex(g: &Graph, outputs: &[NodeId], labels: &[&str]) -> String {
    let r = render(g, outputs, Style::Latex);
    if r.lines.is_empty() && outputs.len() == 1 && labels.is_empty() {
        return r.outs[0].clone();
    }
    let mut rows: Vec<String> = (r.lines.iter())
        .map(|l| {
            let q = "\\quad ".repeat(l.depth);
            match (l.kind, l.depth) {
                (Kind::Let, 0) => format!("{} &= {}", l.lhs, l.text),
                (Kind::Let, _) => format!("&{q}{} = {}", l.lhs, l.text),
                (Kind::Update, _) => format!("&{q}{} \\leftarrow {}", l.lhs, l.text),
                (Kind::Store, _) => format!("&{q}{}\\left[t\\right] = {}", l.lhs, l.text),
            }
        })
        .collect();
    for (k, text) in r.outs.iter().enumerate() {
        let label = labels
            .get(k)
            .map_or(format!("\\mathrm{{out}}_{{{k}}}"), |l| l.to_string());
        rows.push(format!("{label} &= {text}"));
    }
    format!(
        "\\begin{{aligned}}\n{}\n\\end{{aligned}}",
        rows.join(" \\\\\n")
    )
}

struct Math<'g> {
    g: &'g Graph,
    style: Style,
    cache: Vec<Option<Expr>>,
    /// The loop result each node holds (`syntax::loop_parts`).
    parts: Vec<Option<LoopPart>>,
    /// The printed names of each loop's results (`_` for those nobody reads).
    results: HashMap<NodeId, Vec<String>>,
}

impl Math<'_> {
    fn latex(&self) -> bool {
        self.style == Style::Latex
    }

    fn pick(&self, ascii: &str, unicode: &str, latex: &str) -> String {
        match self.style {
            Style::Ascii => ascii,
            Style::Unicode => unicode,
            Style::Latex => latex,
        }
        .to_string()
    }

    fn e(&self, id: NodeId) -> &Expr {
        self.cache[id.index()]
            .as_ref()
            .expect("operands render first")
    }

    fn s(&self, id: NodeId) -> String {
        self.e(id).s.clone()
    }

    /// `(e)` when `e` binds looser than `min`.
    fn par(&self, e: &Expr, min: u8) -> String {
        match (e.p < min, self.latex()) {
            (true, true) => format!("\\left({}\\right)", e.s),
            _ => paren(e, min),
        }
    }

    fn w(&self, id: NodeId, min: u8) -> String {
        self.par(self.e(id), min)
    }

    /// A name as the style writes it (`W_{1}`, `\mathit{mu}` in LaTeX).
    fn ident(&self, name: &str) -> String {
        if !self.latex() {
            return name.to_string();
        }
        let head = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let digits = &name[head.len()..];
        let head = match head.chars().count() {
            1 => head.to_string(),
            _ => format!("\\mathit{{{}}}", head.replace('_', "\\_")),
        };
        match digits {
            "" => head,
            d => format!("{head}_{{{d}}}"),
        }
    }

    /// A function name: `\exp`, `\operatorname{erf}` in LaTeX, `σ` in Unicode.
    fn fname(&self, f: &str) -> String {
        match self.style {
            Style::Ascii => f.to_string(),
            Style::Unicode => match f {
                "sigmoid" => "σ".into(),
                _ => f.to_string(),
            },
            Style::Latex => match f {
                "exp" | "log" | "sin" | "cos" | "tan" | "arcsin" | "arccos" | "arctan" | "sinh"
                | "cosh" | "tanh" | "max" | "min" | "det" => format!("\\{f}"),
                "maximum" => "\\max".into(),
                "minimum" => "\\min".into(),
                "log2" => "\\log_{2}".into(),
                "log10" => "\\log_{10}".into(),
                "sigmoid" => "\\sigma".into(),
                "gammaln" => "\\ln\\Gamma".into(),
                "digamma" => "\\psi".into(),
                "sum" => "\\sum".into(),
                "prod" => "\\prod".into(),
                _ => format!("\\operatorname{{{}}}", f.replace('_', "\\_")),
            },
        }
    }

    fn call(&self, f: &str, args: &[String]) -> Expr {
        let f = self.fname(f);
        let args = args.join(", ");
        Expr::atom(match self.latex() {
            true => format!("{f}\\left({args}\\right)"),
            false => format!("{f}({args})"),
        })
    }

    fn kw(&self, k: &str, v: impl std::fmt::Display) -> String {
        match self.latex() {
            true => format!("\\text{{{k}}}={v}"),
            false => format!("{k}={v}"),
        }
    }

    fn post(&self, x: NodeId, suffix: &str) -> Expr {
        Expr::new(format!("{}{suffix}", self.w(x, P_POST)), P_POST)
    }

    fn index(&self, x: NodeId, sub: &str) -> Expr {
        self.post(
            x,
            &self.pick(
                &format!("[{sub}]"),
                &format!("[{sub}]"),
                &format!("\\left[{sub}\\right]"),
            ),
        )
    }

    fn update(&self, x: NodeId, sub: &str, verb: &str, v: NodeId) -> Expr {
        match self.latex() {
            true => self.call(verb, &[self.index(x, sub).s, self.s(v)]),
            false => self.post(x, &format!(".at[{sub}].{verb}({})", self.s(v))),
        }
    }

    fn number(&self, v: f64) -> Expr {
        if let Some((n, d)) = small_fraction(v) {
            let e = match self.style {
                Style::Latex => format!("\\frac{{{n}}}{{{d}}}"),
                _ => format!("{n}/{d}"),
            };
            return Expr::new(e, if n < 0 { P_NEG } else { P_MUL });
        }
        let s = num(v);
        num_expr(match self.style {
            Style::Ascii => s,
            Style::Unicode => s.replace("inf", "∞"),
            Style::Latex => s.replace("inf", "\\infty"),
        })
    }

    fn constant(&self, id: NodeId) -> Expr {
        let t = self.g.const_value(id).expect("a constant");
        if let Some(v) = t.uniform_value() {
            return self.number(v);
        }
        // A named array constant (a global or closure variable of the user's code).
        if let Some(name) = self.g.names.get(&id).filter(|n| is_ident(n)) {
            return Expr::atom(self.ident(name));
        }
        let dims = t.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>();
        if t.size() > 12 || t.shape.len() > 2 {
            return Expr::atom(match self.latex() {
                true => format!("\\mathrm{{const}}_{{{}}}", dims.join("\\times ")),
                false => format!("const({})", dims.join("x")),
            });
        }
        Expr::atom(match self.latex() {
            true => {
                let cols = *t.shape.last().expect("not 0-d");
                let rows: Vec<String> = (t.data.chunks(cols))
                    .map(|r| r.iter().map(|&v| num(v)).collect::<Vec<_>>().join(" & "))
                    .collect();
                format!("\\begin{{bmatrix}}{}\\end{{bmatrix}}", rows.join(" \\\\ "))
            }
            false => nested(t, &num, "[", ", ", "]"),
        })
    }

    fn ew(&self, id: NodeId) -> Vec<NodeId> {
        shown_operands(self.g, id)
    }

    /// The text of a node holding (part of) a loop result: its name, flattened with
    /// `ravel` and cast to the pack dtype where the node is not the result itself.
    fn part(&self, p: LoopPart) -> Expr {
        let name = &self.results[&p.node][p.k];
        let mut e = Expr::atom(name.clone());
        if p.flat {
            e = self.call("ravel", &[e.s]);
        }
        if p.packed {
            let Op::Loop(spec) = &self.g.node(p.node).op else {
                unreachable!("parts are of loops")
            };
            e = self.call(spec.pack_dtype().name(), &[e.s]);
        }
        e
    }

    /// A loop's packed value read as a whole: its results, flattened, cast to the pack
    /// dtype and concatenated (each result alone when there is one).
    fn packed(&self, id: NodeId) -> Expr {
        let Op::Loop(spec) = &self.g.node(id).op else {
            unreachable!("packed values are loops'")
        };
        let parts: Vec<String> = LoopPart::packing(id, spec)
            .into_iter()
            .map(|p| self.part(p).s)
            .collect();
        match parts.len() {
            1 => Expr::atom(parts[0].clone()),
            _ => {
                let list = self.pick("[", "[", "\\left[")
                    + &parts.join(", ")
                    + &self.pick("]", "]", "\\right]");
                self.call("concat", &[list, self.kw("axis", 0)])
            }
        }
    }

    /// A loop result's name: the body's name for it, subscripted with the loop's number
    /// (`y₁`, `y_1`, `{y}_{1}`), primed until it is free.
    fn result_name(&self, base: &str, n: usize, taken: &mut HashSet<String>) -> String {
        let sub: String = n
            .to_string()
            .chars()
            .map(|c| char::from_u32(0x2080 + c.to_digit(10).unwrap_or(0)).unwrap_or(c))
            .collect();
        let mut s = match self.style {
            Style::Ascii => format!("{base}_{n}"),
            Style::Unicode => format!("{base}{sub}"),
            Style::Latex => format!("{{{}}}_{{{n}}}", self.ident(base)),
        };
        while taken.contains(&s) {
            s.push('\'');
        }
        taken.insert(s.clone());
        s
    }

    /// The lines of a loop: a header naming its results, its initial carries and the
    /// invariants it binds; the body's own lines; the rows of its stacked results; the
    /// carries' updates (as one simultaneous assignment when reading them in order would
    /// see an updated carry). Names the results in `self.results`.
    fn loop_block(
        &mut self,
        id: NodeId,
        spec: &LoopSpec,
        used: &[bool],
        taken: &mut HashSet<String>,
        depth: usize,
        loops: &mut usize,
    ) -> Vec<Line> {
        *loops += 1;
        let n = *loops;
        let (nc, nx, body) = (spec.n_carry, spec.n_xs, &spec.body);
        let ops = self.g.node(id).inputs.clone();
        let uses_t = nx > 0 || used[nc..].iter().any(|&u| u);
        // names inside the body: the loop counter, the carries, the bound invariants
        let mut inner: HashSet<String> = HashSet::new();
        if uses_t {
            inner.insert("t".into());
        }
        let carries: Vec<String> = (0..nc)
            .map(|k| scoped_name(&body.input_names[k], &format!("c{k}"), &mut inner))
            .collect();
        let mut ins: Vec<Expr> = carries.iter().map(|c| Expr::atom(self.ident(c))).collect();
        for &x in &ops[nc..nc + nx] {
            ins.push(self.index(x, "t"));
        }
        let mut with = vec![];
        for (j, &v) in ops[nc + nx..].iter().enumerate() {
            let e = self.e(v).clone();
            let short = e.s.chars().count() <= 12 && !e.s.contains(' ') && e.p >= P_NEG;
            if short && !inner.contains(&e.s) {
                if is_ident(&e.s) {
                    inner.insert(e.s.clone());
                }
                ins.push(e);
            } else {
                let want = &body.input_names[nc + nx + j];
                let name = scoped_name(want, &format!("v{j}"), &mut inner);
                with.push(format!("{} = {}", self.ident(&name), e.s));
                ins.push(Expr::atom(self.ident(&name)));
            }
        }
        // the results' names, in the enclosing scope
        let ys_base = |j: usize| {
            let named = body
                .names
                .get(&body.outputs[nc + j])
                .filter(|s| is_ident(s));
            match (named, spec.n_ys()) {
                (Some(s), _) => s.clone(),
                (None, 1) => "ys".into(),
                (None, _) => format!("ys{j}"),
            }
        };
        let names: Vec<String> = (0..used.len())
            .map(|k| match (used[k], k < nc) {
                (false, _) => self.pick("_", "_", "\\_"),
                (true, true) => self.result_name(&carries[k], n, taken),
                (true, false) => self.result_name(&ys_base(k - nc), n, taken),
            })
            .collect();
        self.results.insert(id, names.clone());
        // the body, with only what the used ys and the carries need
        let outs: Vec<NodeId> = (0..body.outputs.len())
            .filter(|&k| k < nc || used[k])
            .map(|k| body.outputs[k])
            .collect();
        let mut seen = taken.clone();
        seen.extend(inner);
        let r = render_scope(body, &outs, self.style, Some(&ins), &seen, depth + 1, loops);
        taken.extend(seen);
        // the header
        let latex = self.latex();
        let mut h = match latex {
            true => format!("\\text{{loop {} times}}", spec.trips),
            false => format!("loop {} times", spec.trips),
        };
        if uses_t && spec.trips > 0 {
            let last = spec.trips - 1;
            let (a, b) = if spec.reverse { (last, 0) } else { (0, last) };
            h += &match (self.style, a == b) {
                (Style::Latex, true) => format!("\\text{{ over }} t = {a}"),
                (_, true) => format!(" over t = {a}"),
                (Style::Latex, false) => format!("\\text{{ over }} t = {a}, \\ldots, {b}"),
                (Style::Unicode, false) => format!(" over t = {a}…{b}"),
                (Style::Ascii, false) => format!(" over t = {a}...{b}"),
            };
        }
        let from: Vec<String> = (0..nc)
            .map(|k| (self.ident(&carries[k]), self.s(ops[k])))
            .filter(|(c, init)| c != init)
            .map(|(c, init)| format!("{c} = {init}"))
            .collect();
        for (word, list) in [("from", from), ("with", with)] {
            if !list.is_empty() {
                h += &match latex {
                    true => format!(",\\ \\text{{{word} }} {}", list.join(", ")),
                    false => format!(", {word} {}", list.join(", ")),
                };
            }
        }
        h.push(':');
        let mut lines = vec![Line {
            kind: Kind::Let,
            lhs: names.join(", "),
            text: h,
            depth,
            id: Some(id),
        }];
        lines.extend(r.lines);
        let (updates, rows) = r.outs.split_at(nc);
        let ys_used = (nc..used.len()).filter(|&k| used[k]);
        for (k, text) in ys_used.zip(rows) {
            lines.push(Line {
                kind: Kind::Store,
                lhs: names[k].clone(),
                text: text.clone(),
                depth: depth + 1,
                id: None,
            });
        }
        let idents: Vec<String> = carries.iter().map(|c| self.ident(c)).collect();
        if in_order(body, nc) {
            for (c, text) in idents.iter().zip(updates) {
                lines.push(Line {
                    kind: Kind::Update,
                    lhs: c.clone(),
                    text: text.clone(),
                    depth: depth + 1,
                    id: None,
                });
            }
        } else {
            lines.push(Line {
                kind: Kind::Update,
                lhs: idents.join(", "),
                text: updates.join(", "),
                depth: depth + 1,
                id: None,
            });
        }
        lines
    }

    fn node(&self, id: NodeId) -> Expr {
        if let Some(p) = self.parts[id.index()] {
            return self.part(p);
        }
        let n = self.g.node(id);
        let a = |k: usize| n.inputs[k];
        let axis = |k: usize| self.kw("axis", k);
        match &n.op {
            Op::Input(k) => Expr::atom(self.ident(&self.g.input_names[*k as usize])),
            Op::Const(_) => self.constant(id),
            Op::Unary(u) => self.unary(*u, self.ew(id)[0]),
            Op::Binary(b) => {
                let ins = self.ew(id);
                self.binary(*b, ins[0], ins[1])
            }
            Op::Where => {
                let ins = self.ew(id);
                self.call("where", &ins.iter().map(|&i| self.s(i)).collect::<Vec<_>>())
            }
            Op::Cast(dt) => self.call(dt.name(), &[self.s(self.ew(id)[0])]),
            Op::Broadcast(to) => {
                let x = a(0);
                if self.g.shape(x).is_empty() || self.g.uniform_const(x).is_some() {
                    self.e(x).clone()
                } else {
                    self.call("broadcast", &[self.s(x), shape_tuple(to)])
                }
            }
            Op::Reshape(to) => self.call("reshape", &[self.s(a(0)), shape_tuple(to)]),
            Op::Transpose(p) if p == &[1, 0] => self.post(a(0), &self.pick(".T", "ᵀ", "^\\top")),
            Op::Transpose(p) => self.call("transpose", &[self.s(a(0)), shape_tuple(p)]),
            Op::Reduce(r, axes) => {
                let x = self.s(a(0));
                let all = axes.len() == self.g.shape(a(0)).len();
                match (r, all, self.style) {
                    (ReduceOp::Sum, true, Style::Unicode) => Expr::atom(format!("Σ({x})")),
                    (_, true, _) => self.call(r.name(), &[x]),
                    _ => self.call(r.name(), &[x, self.kw("axis", axes_text(axes))]),
                }
            }
            Op::ArgMax(k, max) => self.call(
                if *max { "argmax" } else { "argmin" },
                &[self.s(a(0)), axis(*k)],
            ),
            Op::Contract(spec) => self.contract(spec, a(0), a(1)),
            Op::Slice(dims) => self.index(a(0), &slice_text(dims, self.g.shape(a(0)))),
            Op::SetSlice(dims) => {
                self.update(a(0), &slice_text(dims, self.g.shape(a(0))), "set", a(1))
            }
            Op::Gather(k) => self.index(a(0), &axis_index(*k, &self.s(a(1)))),
            Op::ScatterAdd(k) => self.update(a(0), &axis_index(*k, &self.s(a(1))), "add", a(2)),
            Op::Scatter(k) => self.update(a(0), &axis_index(*k, &self.s(a(1))), "set", a(2)),
            Op::TakeAlong(k) => {
                self.call("take_along_axis", &[self.s(a(0)), self.s(a(1)), axis(*k)])
            }
            Op::ScatterAlongAdd(k) => self.call(
                "scatter_along_add",
                &[self.s(a(0)), self.s(a(1)), self.s(a(2)), axis(*k)],
            ),
            Op::Concat(k) => {
                let parts: Vec<String> = n.inputs.iter().map(|&i| self.s(i)).collect();
                let list = self.pick("[", "[", "\\left[")
                    + &parts.join(", ")
                    + &self.pick("]", "]", "\\right]");
                self.call("concat", &[list, axis(*k)])
            }
            Op::Cumsum(k) => self.call("cumsum", &[self.s(a(0)), axis(*k)]),
            Op::Cumprod(k) => self.call("cumprod", &[self.s(a(0)), axis(*k)]),
            Op::ArgSort(k) => self.call("argsort", &[self.s(a(0)), axis(*k)]),
            Op::Solve => self.call("solve", &[self.s(a(0)), self.s(a(1))]),
            Op::TriSolve(lower) => {
                let lower = self.kw("lower", if *lower { "True" } else { "False" });
                self.call("solve_triangular", &[self.s(a(0)), self.s(a(1)), lower])
            }
            Op::Cholesky => self.call("cholesky", &[self.s(a(0))]),
            Op::Inv => match self.style {
                Style::Ascii => self.call("inv", &[self.s(a(0))]),
                _ => self.post(a(0), &self.pick("", "⁻¹", "^{-1}")),
            },
            Op::Det => self.call("det", &[self.s(a(0))]),
            Op::LogAbsDet => match self.style {
                Style::Ascii => self.call("logabsdet", &[self.s(a(0))]),
                Style::Unicode => Expr::atom(format!("log|det({})|", self.s(a(0)))),
                Style::Latex => Expr::atom(format!(
                    "\\log\\left|\\det {}\\right|",
                    self.w(a(0), P_ATOM)
                )),
            },
            Op::Loop(_) => self.packed(id),
        }
    }

    fn unary(&self, u: UnaryOp, x: NodeId) -> Expr {
        let sx = self.s(x);
        match (u, self.style) {
            (UnaryOp::Neg, _) => Expr::new(format!("-{}", self.w(x, P_POW)), P_NEG),
            (UnaryOp::Not, _) => {
                let op = self.pick("~", "¬", "\\lnot ");
                Expr::new(format!("{op}{}", self.w(x, P_POW)), P_NEG)
            }
            (UnaryOp::Abs, Style::Unicode) => Expr::atom(format!("|{sx}|")),
            (UnaryOp::Abs, Style::Latex) => Expr::atom(format!("\\left|{sx}\\right|")),
            (UnaryOp::Sqrt, Style::Unicode) => Expr::new(format!("√{}", self.w(x, P_ATOM)), P_NEG),
            (UnaryOp::Sqrt, Style::Latex) => Expr::atom(format!("\\sqrt{{{sx}}}")),
            (UnaryOp::Square, _) => self.power(x, Expr::atom("2")),
            (UnaryOp::Reciprocal, Style::Latex) => Expr::atom(format!("\\frac{{1}}{{{sx}}}")),
            (UnaryOp::Reciprocal, _) => Expr::new(format!("1/{}", self.w(x, P_MUL + 1)), P_MUL),
            (UnaryOp::Exp, Style::Latex) => Expr::new(format!("e^{{{sx}}}"), P_POW),
            (UnaryOp::Floor, Style::Unicode) => Expr::atom(format!("⌊{sx}⌋")),
            (UnaryOp::Ceil, Style::Unicode) => Expr::atom(format!("⌈{sx}⌉")),
            (UnaryOp::Floor, Style::Latex) => {
                Expr::atom(format!("\\left\\lfloor {sx} \\right\\rfloor"))
            }
            (UnaryOp::Ceil, Style::Latex) => {
                Expr::atom(format!("\\left\\lceil {sx} \\right\\rceil"))
            }
            (
                UnaryOp::Abs
                | UnaryOp::Sign
                | UnaryOp::Exp
                | UnaryOp::Expm1
                | UnaryOp::Log
                | UnaryOp::Log1p
                | UnaryOp::Log2
                | UnaryOp::Log10
                | UnaryOp::Sqrt
                | UnaryOp::Sin
                | UnaryOp::Cos
                | UnaryOp::Tan
                | UnaryOp::Arcsin
                | UnaryOp::Arccos
                | UnaryOp::Arctan
                | UnaryOp::Sinh
                | UnaryOp::Cosh
                | UnaryOp::Tanh
                | UnaryOp::Arcsinh
                | UnaryOp::Arccosh
                | UnaryOp::Arctanh
                | UnaryOp::Floor
                | UnaryOp::Ceil
                | UnaryOp::Round
                | UnaryOp::Sigmoid
                | UnaryOp::Erf
                | UnaryOp::Gammaln
                | UnaryOp::Digamma
                | UnaryOp::Trigamma
                | UnaryOp::StopGradient,
                _,
            ) => self.call(u.name(), &[sx]),
        }
    }

    fn power(&self, x: NodeId, e: Expr) -> Expr {
        match self.latex() {
            true => Expr::new(format!("{}^{{{}}}", self.w(x, P_POW + 1), e.s), P_POW),
            false => Expr::new(
                format!("{}**{}", self.w(x, P_POW + 1), self.par(&e, P_NEG)),
                P_POW,
            ),
        }
    }

    fn binary(&self, b: BinaryOp, x: NodeId, y: NodeId) -> Expr {
        let Some(op) = infix(b) else {
            return self.call(b.name(), &[self.s(x), self.s(y)]);
        };
        let konst = |i: NodeId| self.g.uniform_const(i);
        // Display only: `x - 2` for `x + -2`, constants first in products.
        if let (BinaryOp::Add, Some(c)) = (b, konst(y).filter(|c| *c < 0.0)) {
            let e = self.par(&self.number(-c), P_ADD + 1);
            return Expr::new(format!("{} - {e}", self.w(x, P_ADD)), P_ADD);
        }
        let (x, y) = display_order(self.g, b, x, y);
        match (b, self.latex()) {
            (BinaryOp::Div, true) => {
                Expr::atom(format!("\\frac{{{}}}{{{}}}", self.s(x), self.s(y)))
            }
            (BinaryOp::Pow, _) => self.power(x, self.e(y).clone()),
            (BinaryOp::Mul, true) if konst(x).is_some() => {
                let (l, r) = operand_prec(b, op.prec, false);
                Expr::new(format!("{} {}", self.w(x, l), self.w(y, r)), op.prec)
            }
            _ => {
                let (l, r) = operand_prec(b, op.prec, false);
                let sym = if self.latex() { op.latex } else { op.py };
                Expr::new(format!("{}{sym}{}", self.w(x, l), self.w(y, r)), op.prec)
            }
        }
    }

    fn contract(&self, spec: &ContractSpec, a: NodeId, b: NodeId) -> Expr {
        let ops = [a, b];
        match contract_form(spec) {
            ContractForm::Dot => {
                let sym = self.pick(" @ ", " · ", " \\cdot ");
                Expr::new(
                    format!("{}{sym}{}", self.w(a, P_MUL), self.w(b, P_MUL + 1)),
                    P_MUL,
                )
            }
            ContractForm::MatMul { left, right } => {
                let side = |(k, t): (usize, bool), min: u8| match t {
                    true => self.post(ops[k], &self.pick(".T", "ᵀ", "^\\top")).s,
                    false => self.w(ops[k], min),
                };
                let sym = self.pick(" @ ", " @ ", " ");
                let s = format!("{}{sym}{}", side(left, P_MUL), side(right, P_MUL + 1));
                Expr::new(s, P_MUL)
            }
            ContractForm::Outer(i, j) => match self.latex() {
                true => Expr::new(
                    format!("{} {}^\\top", self.w(ops[i], P_MUL), self.w(ops[j], P_POST)),
                    P_MUL,
                ),
                false => self.call("outer", &[self.s(ops[i]), self.s(ops[j])]),
            },
            ContractForm::Scale => self.binary(BinaryOp::Mul, a, b),
            ContractForm::Einsum => {
                let spec = match self.latex() {
                    true => format!("\\text{{{spec}}}"),
                    false => format!("\"{spec}\""),
                };
                self.call("einsum", &[spec, self.s(a), self.s(b)])
            }
        }
    }
}

/// Whether a loop body's carry updates read right one after another: no update reads a
/// carry that an earlier line has changed.
fn in_order(body: &Graph, nc: usize) -> bool {
    (1..nc).all(|k| {
        let reads = reachable(body, body.outputs[k]);
        (0..k).all(|j| body.outputs[j] == body.inputs[j] || !reads[body.inputs[j].index()])
    })
}

/// The nodes `out` depends on (itself included).
fn reachable(g: &Graph, out: NodeId) -> Vec<bool> {
    let mut seen = vec![false; g.len()];
    seen[out.index()] = true;
    for i in (0..g.len()).rev() {
        if seen[i] {
            for x in &g.nodes()[i].inputs {
                seen[x.index()] = true;
            }
        }
    }
    seen
}

/// `n/d` with a small denominator when it is exactly `v` and shorter than its decimals
/// (`0.3333333333333333` → `1/3`; `0.5` stays `0.5`).
fn small_fraction(v: f64) -> Option<(i64, i64)> {
    if !v.is_finite() || v == v.trunc() || format!("{v}").len() <= 6 {
        return None;
    }
    (2..=1024i64).find_map(|d| {
        let n = (v * d as f64).round();
        (n.abs() < 1e6 && n / d as f64 == v).then_some((n as i64, d))
    })
}
