//! Runnable NumPy source of a graph.
//!
//! Guarantees: the result is a self-contained Python module text (`import numpy as np`, the
//! helpers it needs, one `def`) that needs nothing beyond NumPy and the standard library;
//! every op maps to its exact NumPy equivalent, and generated expressions keep the graph's
//! grouping (no reassociation), so the function computes what the graph computes. A node
//! gets its own statement when it is used more than once, is long, or is a functional update
//! (a `copy()` then an in-place write). Apart from `np.add.at`, `np.vectorize` (for `erf`,
//! `gammaln`) and `np.take_along_axis`, the code stays within what numba compiles. A loop
//! node is a `for` loop over its body's statements (its carries are variables, its stacked
//! results preallocated arrays), or for JAX a step function run by `jax.lax.scan`.

use std::collections::{BTreeSet, HashMap, HashSet};

use autodiff_ir::{BinaryOp, ContractSpec, DType, Graph, LoopSpec, NodeId, Op, ReduceOp, UnaryOp};

use crate::syntax::*;

/// Expressions longer than this get their own statement.
const LONG: usize = 72;

const HELPERS: [(&str, &str); 6] = [
    (
        "_sigmoid",
        "def _sigmoid(x):\n    return np.exp(-np.logaddexp(0.0, -x))\n",
    ),
    ("_erf", "_erf = np.vectorize(math.erf, otypes=[np.float64])\n"),
    ("_gammaln", "_gammaln = np.vectorize(math.lgamma, otypes=[np.float64])\n"),
    (
        "_digamma",
        "def _digamma(x):\n    x = np.array(x, dtype=np.float64)\n    r = np.zeros_like(x)\n    \
         neg = x < 0.5\n    refl = np.where(neg, np.pi / np.tan(np.pi * x), 0.0)\n    \
         x = np.where(neg, 1.0 - x, x)\n    for _ in range(6):\n        small = x < 6.0\n        \
         r = r - np.where(small, 1.0 / x, 0.0)\n        x = np.where(small, x + 1.0, x)\n    \
         f = 1.0 / (x * x)\n    \
         r = r + np.log(x) - 0.5 / x - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f / 132))))\n    \
         return r - refl\n",
    ),
    (
        "_trigamma",
        "def _trigamma(x):\n    x = np.array(x, dtype=np.float64)\n    r = np.zeros_like(x)\n    \
         neg = x < 0.5\n    refl = np.where(neg, (np.pi / np.sin(np.pi * x)) ** 2, 0.0)\n    \
         sgn = np.where(neg, -1.0, 1.0)\n    x = np.where(neg, 1.0 - x, x)\n    \
         for _ in range(10):\n        small = x < 10.0\n        \
         r = r + np.where(small, 1.0 / (x * x), 0.0)\n        x = np.where(small, x + 1.0, x)\n    \
         f = 1.0 / (x * x)\n    \
         r = r + 1.0 / x + 0.5 * f + f / x * (1.0 / 6 - f * (1.0 / 30 - f * (1.0 / 42 - f * (1.0 / 30 - f * 5.0 / 66))))\n    \
         return refl + sgn * r\n",
    ),
    (
        "_scatter_along_add",
        "def _scatter_along_add(x, idx, v, axis):\n    out = x.copy()\n    \
         ix = list(np.indices(idx.shape, sparse=True))\n    ix[axis] = idx\n    \
         np.add.at(out, tuple(ix), v)\n    return out\n",
    ),
];

/// The NumPy helpers in forms numba compiles (`@numba.njit` / `@numba.vectorize`), and the
/// 2-d/3-d kernels the `Numba` target writes axis operations with.
const NUMBA_HELPERS: [(&str, &str); 15] = [
    (
        "_sigmoid",
        "@numba.njit\ndef _sigmoid(x):\n    return np.exp(-np.logaddexp(0.0, -x))\n",
    ),
    (
        "_erf",
        "@numba.vectorize([\"float64(float64)\"])\ndef _erf(x):\n    return math.erf(x)\n",
    ),
    (
        "_gammaln",
        "@numba.vectorize([\"float64(float64)\"])\ndef _gammaln(x):\n    return math.lgamma(x)\n",
    ),
    (
        "_digamma",
        "@numba.vectorize([\"float64(float64)\"])\ndef _digamma(x):\n    r = 0.0\n    refl = 0.0\n    \
         if x < 0.5:\n        refl = math.pi / math.tan(math.pi * x)\n        x = 1.0 - x\n    \
         for _ in range(6):\n        if x < 6.0:\n            r = r - 1.0 / x\n            x = x + 1.0\n    \
         f = 1.0 / (x * x)\n    \
         r = r + math.log(x) - 0.5 / x - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f / 132))))\n    \
         return r - refl\n",
    ),
    (
        "_trigamma",
        "@numba.vectorize([\"float64(float64)\"])\ndef _trigamma(x):\n    r = 0.0\n    refl = 0.0\n    sgn = 1.0\n    \
         if x < 0.5:\n        refl = (math.pi / math.sin(math.pi * x)) ** 2\n        sgn = -1.0\n        x = 1.0 - x\n    \
         for _ in range(10):\n        if x < 10.0:\n            r = r + 1.0 / (x * x)\n            x = x + 1.0\n    \
         f = 1.0 / (x * x)\n    \
         r = r + 1.0 / x + 0.5 * f + f / x * (1.0 / 6 - f * (1.0 / 30 - f * (1.0 / 42 - f * (1.0 / 30 - f * 5.0 / 66))))\n    \
         return refl + sgn * r\n",
    ),
    (
        "_reduce_rows",
        "@numba.njit\ndef _reduce_rows(x, op):\n    out = np.empty(x.shape[0], dtype=x.dtype)\n    \
         for i in range(x.shape[0]):\n        if op == 0:\n            out[i] = np.sum(x[i])\n        \
         elif op == 1:\n            out[i] = np.prod(x[i])\n        elif op == 2:\n            out[i] = np.max(x[i])\n        \
         else:\n            out[i] = np.min(x[i])\n    return out\n",
    ),
    (
        "_argmax_rows",
        "@numba.njit\ndef _argmax_rows(x, is_max):\n    out = np.empty(x.shape[0], dtype=np.int64)\n    \
         for i in range(x.shape[0]):\n        out[i] = np.argmax(x[i]) if is_max else np.argmin(x[i])\n    return out\n",
    ),
    (
        "_cum_rows",
        "@numba.njit\ndef _cum_rows(x, prod):\n    out = np.empty_like(x)\n    \
         for i in range(x.shape[0]):\n        out[i] = np.cumprod(x[i]) if prod else np.cumsum(x[i])\n    return out\n",
    ),
    (
        "_argsort_rows",
        "@numba.njit\ndef _argsort_rows(x):\n    out = np.empty(x.shape, dtype=np.int64)\n    \
         for i in range(x.shape[0]):\n        out[i] = np.argsort(x[i], kind=\"mergesort\")\n    return out\n",
    ),
    (
        "_take3",
        "@numba.njit\ndef _take3(a, idx):\n    out = np.empty((a.shape[0], idx.shape[0], a.shape[2]), dtype=a.dtype)\n    \
         for j in range(idx.shape[0]):\n        out[:, j, :] = a[:, idx[j], :]\n    return out\n",
    ),
    (
        "_take_rows",
        "@numba.njit\ndef _take_rows(a, idx):\n    out = np.empty(idx.shape, dtype=a.dtype)\n    \
         for i in range(idx.shape[0]):\n        for j in range(idx.shape[1]):\n            out[i, j] = a[i, idx[i, j]]\n    \
         return out\n",
    ),
    (
        "_add_along_rows",
        "@numba.njit\ndef _add_along_rows(x, idx, v):\n    out = x.copy()\n    \
         for i in range(idx.shape[0]):\n        for j in range(idx.shape[1]):\n            out[i, idx[i, j]] += v[i, j]\n    \
         return out\n",
    ),
    (
        "_set_at3",
        "@numba.njit\ndef _set_at3(out, idx, v):\n    for j in range(idx.shape[0]):\n        out[:, idx[j], :] = v[:, j, :]\n",
    ),
    (
        "_add_at3",
        "@numba.njit\ndef _add_at3(out, idx, v):\n    for j in range(idx.shape[0]):\n        out[:, idx[j], :] += v[:, j, :]\n",
    ),
    (
        "_bmm",
        "@numba.njit\ndef _bmm(a, b):\n    out = np.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=a.dtype)\n    \
         for i in range(a.shape[0]):\n        out[i] = a[i] @ b[i]\n    return out\n",
    ),
];

/// The helpers for the `Jax` target.
const JAX_HELPERS: [(&str, &str); 6] = [
    (
        "_sigmoid",
        "def _sigmoid(x):\n    return jnp.exp(-jnp.logaddexp(0.0, -x))\n",
    ),
    ("_erf", "_erf = jax.scipy.special.erf\n"),
    ("_gammaln", "_gammaln = jax.scipy.special.gammaln\n"),
    ("_digamma", "_digamma = jax.scipy.special.digamma\n"),
    (
        "_trigamma",
        "def _trigamma(x):\n    return jax.scipy.special.polygamma(1, x)\n",
    ),
    (
        "_scatter_along_add",
        "def _scatter_along_add(x, idx, v, axis):\n    \
         ix = list(jnp.indices(idx.shape, sparse=True))\n    ix[axis] = idx\n    \
         return x.at[tuple(ix)].add(v)\n",
    ),
];

const KEYWORDS: [&str; 36] = [
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "np",
];

/// The library the generated source runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Plain NumPy (and the standard library).
    NumPy,
    /// NumPy that `numba.njit` compiles (helpers are `@numba.njit`; needs numba to import).
    Numba,
    /// `jax.numpy`, traceable by `jax.jit` (enable `jax_enable_x64` for float64).
    Jax,
}

/// A Python function `def fn_name(inputs...)` computing the outputs (a tuple when several).
pub fn to_numpy_source(g: &Graph, outputs: &[NodeId], fn_name: &str) -> String {
    to_source(g, outputs, fn_name, Target::NumPy)
}

/// [`to_numpy_source`] for another [`Target`].
pub fn to_source(g: &Graph, outputs: &[NodeId], fn_name: &str, target: Target) -> String {
    let mut ctx = Ctx {
        names: Names::default(),
        helpers: BTreeSet::new(),
        target,
        loops: 0,
    };
    let args: Vec<String> = (g.input_names.iter())
        .map(|n| ctx.names.fresh(Some(n)))
        .collect();
    let ins: Vec<Expr> = args.iter().map(|a| Expr::atom(a.clone())).collect();
    let (mut body, outs) = emit(g, outputs, &ins, &mut ctx);
    let outs: Vec<String> = outs.into_iter().map(|e| e.s).collect();
    body.push(match outs.len() {
        1 => format!("return {}", outs[0]),
        _ => format!("return ({})", outs.join(", ")),
    });
    if target == Target::Jax {
        body = body.iter().map(|l| jnp(l)).collect();
    }
    let mut src = String::new();
    let helpers: &[(&str, &str)] = match target {
        Target::NumPy => &HELPERS,
        Target::Numba => &NUMBA_HELPERS,
        Target::Jax => &JAX_HELPERS,
    };
    let used = &ctx.helpers;
    let math = ["_erf", "_gammaln", "_digamma", "_trigamma"];
    if target != Target::Jax && used.iter().any(|h| math.contains(h)) {
        src.push_str("import math\n\n");
    }
    let scan = ctx.loops > 0 && target == Target::Jax;
    src.push_str(match target {
        Target::NumPy => "import numpy as np\n\n\n",
        Target::Numba if used.is_empty() => "import numpy as np\n\n\n",
        Target::Numba => "import numba\nimport numpy as np\n\n\n",
        Target::Jax if used.is_empty() && !scan => "import jax.numpy as jnp\n\n\n",
        Target::Jax if used.is_empty() => "import jax\nimport jax.numpy as jnp\n\n\n",
        Target::Jax => "import jax\nimport jax.numpy as jnp\nimport jax.scipy.special\n\n\n",
    });
    for (name, text) in helpers {
        if used.contains(name) {
            src.push_str(text);
            src.push_str("\n\n");
        }
    }
    let fn_name = if is_ident(fn_name) { fn_name } else { "f" };
    src.push_str(&format!("def {fn_name}({}):\n", args.join(", ")));
    for l in body {
        src.push_str(&format!("    {l}\n"));
    }
    src
}

/// What the statements of one function share: its names, the helpers it calls, the target,
/// and how many loops it has (they number the loops' variables).
struct Ctx {
    names: Names,
    helpers: BTreeSet<&'static str>,
    target: Target,
    loops: usize,
}

/// The statements computing `outputs` of `g` (a whole graph or a loop body, whose inputs
/// are the expressions `inputs`), and the expression of each output.
fn emit(g: &Graph, outputs: &[NodeId], inputs: &[Expr], ctx: &mut Ctx) -> (Vec<String>, Vec<Expr>) {
    let update = |op: &Op| matches!(op, Op::SetSlice(_) | Op::Scatter(_) | Op::ScatterAdd(_));
    let parts = loop_parts(g);
    let leaf = |id: NodeId| matches!(g.node(id).op, Op::Loop(_)) || parts[id.index()].is_some();
    let scope = Scope {
        force: &update,
        leaf: &leaf,
        taken: &HashSet::new(),
    };
    let b = Bindings::scoped(g, outputs, &scope);
    let used = used_results(g, &b.reach, &parts);
    let mut p = Py {
        g,
        cache: vec![None; g.len()],
        ctx,
        parts,
        results: HashMap::new(),
    };
    let mut body = vec![];
    for i in (0..g.len()).filter(|&i| b.reach[i]) {
        let id = NodeId(i as u32);
        let n = g.node(id);
        if let Op::Input(k) = n.op {
            p.cache[i] = Some(inputs[k as usize].clone());
            continue;
        }
        if let Op::Loop(spec) = &n.op {
            body.extend(p.loop_stmt(id, spec, &used[&id]));
        }
        if matches!(n.op, Op::Loop(_)) || p.parts[i].is_some() {
            // a loop's results are its variables: nothing to compute
            p.cache[i] = Some(p.node(id));
            continue;
        }
        let named = b.name.contains_key(&id);
        // User variable names are kept; generated `t1`-style names are renumbered.
        let want = b.name.get(&id).filter(|s| g.names.get(&id) == Some(*s));
        if let Some(lines) = p.update(id) {
            let v = p.ctx.names.fresh(want);
            body.extend(lines.iter().map(|l| l.replace("{}", &v)));
            p.cache[i] = Some(Expr::atom(v));
            continue;
        }
        let e = p.node(id);
        let is_leaf = matches!(n.op, Op::Const(_) | Op::Broadcast(_)) && e.s.len() <= LONG;
        if (named || e.s.len() > LONG) && !is_leaf {
            let v = p.ctx.names.fresh(want);
            body.push(format!("{v} = {}", e.s));
            p.cache[i] = Some(Expr::atom(v));
        } else {
            p.cache[i] = Some(e);
        }
    }
    let outs = outputs.iter().map(|o| p.e(*o).clone()).collect();
    (body, outs)
}

/// Python names in use: inputs, user variables, and temporaries `t0`, `t1`, ...
#[derive(Default)]
struct Names {
    taken: HashSet<String>,
    next: usize,
}

impl Names {
    /// `want` when it is a free, valid name; else the next free temporary.
    fn fresh(&mut self, want: Option<&String>) -> String {
        let ok =
            |s: &&String| is_ident(s) && !s.starts_with('_') && !KEYWORDS.contains(&s.as_str());
        let s = match want.filter(ok).filter(|s| !self.taken.contains(*s)) {
            Some(s) => s.clone(),
            None => loop {
                let t = format!("t{}", self.next);
                self.next += 1;
                if !self.taken.contains(&t) {
                    break t;
                }
            },
        };
        self.taken.insert(s.clone());
        s
    }
}

struct Py<'g, 'c> {
    g: &'g Graph,
    cache: Vec<Option<Expr>>,
    ctx: &'c mut Ctx,
    /// The loop result each node holds (`syntax::loop_parts`).
    parts: Vec<Option<LoopPart>>,
    /// The variables of each loop's results (`None` for those nobody reads).
    results: HashMap<NodeId, Vec<Option<String>>>,
}

fn np_dtype(dt: DType) -> &'static str {
    match dt {
        DType::Bool => "np.bool_",
        DType::I64 => "np.int64",
        DType::F32 => "np.float32",
        DType::F64 => "np.float64",
    }
}

/// `perm` moves `axes` last (in order), the other axes first; with its inverse and the
/// sizes (kept, moved) of the 2-d view it gives.
fn move_last(shape: &[usize], axes: &[usize]) -> (Vec<usize>, Vec<usize>, usize, usize) {
    let mut perm: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    perm.extend(axes);
    let mut inv = vec![0; perm.len()];
    for (k, &p) in perm.iter().enumerate() {
        inv[p] = k;
    }
    let moved: usize = axes.iter().map(|&a| shape[a]).product();
    let kept: usize = perm[..perm.len() - axes.len()]
        .iter()
        .map(|&a| shape[a])
        .product();
    (perm, inv, kept, moved)
}

/// `np.` → `jnp.` wherever `np` is the module (not the tail of a longer name).
fn jnp(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut prev: Option<char> = None;
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        let word = prev.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '.');
        if !word && rest.starts_with("np.") {
            out.push('j');
        }
        out.push(c);
        prev = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A Python tuple of the items: `()`, `(a,)`, `(a, b)`.
fn tuple(items: &[String]) -> String {
    match items {
        [one] => format!("({one},)"),
        _ => format!("({})", items.join(", ")),
    }
}

/// `x` as a contiguous array of shape `to` (numba reshapes contiguous arrays only).
fn contiguous(x: &str, to: &[usize]) -> String {
    format!("np.ascontiguousarray({x}).reshape({})", shape_tuple(to))
}

fn identity(perm: &[usize]) -> bool {
    perm.iter().enumerate().all(|(k, &p)| k == p)
}

impl Py<'_, '_> {
    fn e(&self, id: NodeId) -> &Expr {
        self.cache[id.index()]
            .as_ref()
            .expect("operands render first")
    }

    fn s(&self, id: NodeId) -> String {
        self.e(id).s.clone()
    }

    fn w(&self, id: NodeId, min: u8) -> String {
        paren(self.e(id), min)
    }

    fn call(&self, f: &str, args: &[String]) -> Expr {
        Expr::atom(format!("{f}({})", args.join(", ")))
    }

    /// `x` along `axes` as a contiguous 2-d (rest, axes) view, the shape of its
    /// transpose and the inverse permutation (for [`Py::unrows`]).
    fn rows(&self, x: NodeId, axes: &[usize]) -> (String, Vec<usize>, Vec<usize>) {
        let shape = self.g.shape(x);
        let (perm, inv, kept, moved) = move_last(shape, axes);
        let t = match identity(&perm) {
            true => self.s(x),
            false => format!("np.transpose({}, {})", self.s(x), shape_tuple(&perm)),
        };
        let tshape = perm.iter().map(|&p| shape[p]).collect();
        (contiguous(&t, &[kept, moved]), tshape, inv)
    }

    /// A 2-d result of a row kernel back in the shape `tshape` (last axis `last`), then
    /// transposed by `inv`.
    fn unrows(&self, r: String, mut tshape: Vec<usize>, last: usize, inv: &[usize]) -> Expr {
        if let Some(l) = tshape.last_mut() {
            *l = last;
        }
        let back = format!("{r}.reshape({})", shape_tuple(&tshape));
        match identity(inv) {
            true => Expr::new(back, P_POST),
            false => self.call("np.transpose", &[back, shape_tuple(inv)]),
        }
    }

    /// The expression of a node the `Numba` target writes differently, or `None`.
    fn numba(&mut self, id: NodeId) -> Option<Expr> {
        let n = self.g.node(id);
        let x = n.inputs.first().copied();
        let shape = |i: NodeId| self.g.shape(i).clone();
        let same_rest = |a: &[usize], b: &[usize], k: usize| {
            a.len() == b.len() && (0..a.len()).all(|d| d == k || a[d] == b[d])
        };
        let e = match &n.op {
            Op::Unary(
                u @ (UnaryOp::Sigmoid
                | UnaryOp::Erf
                | UnaryOp::Gammaln
                | UnaryOp::Digamma
                | UnaryOp::Trigamma),
            ) => {
                let name = match u {
                    UnaryOp::Sigmoid => "_sigmoid",
                    UnaryOp::Erf => "_erf",
                    UnaryOp::Gammaln => "_gammaln",
                    UnaryOp::Digamma => "_digamma",
                    _ => "_trigamma",
                };
                let xe = self.s(shown_operands(self.g, id)[0]);
                self.helper(name, &[xe])
            }
            Op::Reshape(to) => Expr::new(contiguous(&self.s(x?), to), P_POST),
            Op::Reduce(r, axes) if axes.len() != shape(x?).len() => {
                let (v, _, _) = self.rows(x?, axes);
                let code = match r {
                    ReduceOp::Sum => 0,
                    ReduceOp::Prod => 1,
                    ReduceOp::Max => 2,
                    ReduceOp::Min => 3,
                };
                let r = self.helper("_reduce_rows", &[v, code.to_string()]);
                Expr::new(
                    format!("{}.reshape({})", r.s, shape_tuple(&n.shape)),
                    P_POST,
                )
            }
            Op::ArgMax(k, max) => {
                let (v, _, _) = self.rows(x?, &[*k]);
                let r = self.helper(
                    "_argmax_rows",
                    &[v, (if *max { "True" } else { "False" }).into()],
                );
                Expr::new(
                    format!("{}.reshape({})", r.s, shape_tuple(&n.shape)),
                    P_POST,
                )
            }
            Op::Cumsum(k) | Op::Cumprod(k) | Op::ArgSort(k) => {
                let (v, ts, inv) = self.rows(x?, &[*k]);
                let r = match &n.op {
                    Op::Cumsum(_) => self.helper("_cum_rows", &[v, "False".into()]),
                    Op::Cumprod(_) => self.helper("_cum_rows", &[v, "True".into()]),
                    _ => self.helper("_argsort_rows", &[v]),
                };
                let last = shape(x?)[*k];
                self.unrows(r.s, ts, last, &inv)
            }
            Op::Gather(k) => {
                let s0 = shape(x?);
                let (pa, pb): (usize, usize) =
                    (s0[..*k].iter().product(), s0[k + 1..].iter().product());
                let ni = self.g.node(n.inputs[1]).size();
                let a = contiguous(&self.s(x?), &[pa, s0[*k], pb]);
                let i = contiguous(&self.s(n.inputs[1]), &[ni]);
                let r = self.helper("_take3", &[a, i]);
                Expr::new(
                    format!("{}.reshape({})", r.s, shape_tuple(&n.shape)),
                    P_POST,
                )
            }
            Op::TakeAlong(k) if same_rest(&shape(x?), &shape(n.inputs[1]), *k) => {
                let (a, _, _) = self.rows(x?, &[*k]);
                let (i, ts, inv) = self.rows(n.inputs[1], &[*k]);
                let r = self.helper("_take_rows", &[a, i]);
                let last = shape(n.inputs[1])[*k];
                self.unrows(r.s, ts, last, &inv)
            }
            Op::ScatterAlongAdd(k)
                if same_rest(&shape(x?), &shape(n.inputs[1]), *k)
                    && shape(n.inputs[1]) == shape(n.inputs[2]) =>
            {
                let (a, ts, inv) = self.rows(x?, &[*k]);
                let (i, _, _) = self.rows(n.inputs[1], &[*k]);
                let (v, _, _) = self.rows(n.inputs[2], &[*k]);
                let r = self.helper("_add_along_rows", &[a, i, v]);
                let last = shape(x?)[*k];
                self.unrows(r.s, ts, last, &inv)
            }
            Op::Contract(spec) if contract_form(spec) == ContractForm::Einsum => {
                return self.numba_einsum(id, spec);
            }
            _ => return None,
        };
        Some(e)
    }

    /// A two-operand einsum as one batched matrix product: `a` transposed to (batch, its
    /// free labels, summed labels) and `b` to (batch, summed, its free), each viewed as
    /// 3-d, multiplied, reshaped and transposed to the output's order. `None` (np.einsum
    /// stays) for repeated labels or a label summed within one operand.
    fn numba_einsum(&mut self, id: NodeId, spec: &ContractSpec) -> Option<Expr> {
        let n = self.g.node(id);
        let (a, b) = (n.inputs[0], n.inputs[1]);
        let (sa, sb) = (self.g.shape(a).clone(), self.g.shape(b).clone());
        let dup = |v: &[u8]| (1..v.len()).any(|i| v[..i].contains(&v[i]));
        if dup(&spec.a) || dup(&spec.b) || dup(&spec.out) {
            return None;
        }
        let (in_a, in_b) = (|l: &u8| spec.a.contains(l), |l: &u8| spec.b.contains(l));
        let batch: Vec<u8> = spec
            .out
            .iter()
            .copied()
            .filter(|l| in_a(l) && in_b(l))
            .collect();
        let afree: Vec<u8> = spec
            .out
            .iter()
            .copied()
            .filter(|l| in_a(l) && !in_b(l))
            .collect();
        let bfree: Vec<u8> = spec
            .out
            .iter()
            .copied()
            .filter(|l| in_b(l) && !in_a(l))
            .collect();
        let summed: Vec<u8> = spec
            .a
            .iter()
            .copied()
            .filter(|l| in_b(l) && !spec.out.contains(l))
            .collect();
        if batch.len() + afree.len() + summed.len() != spec.a.len()
            || batch.len() + bfree.len() + summed.len() != spec.b.len()
        {
            return None;
        }
        let size = |l: u8| match spec.a.iter().position(|&x| x == l) {
            Some(k) => sa[k],
            None => sb[spec.b.iter().position(|&x| x == l).unwrap_or(0)],
        };
        let prod = |ls: &[u8]| ls.iter().map(|&l| size(l)).product::<usize>();
        let pos = |v: &[u8], l: &u8| v.iter().position(|x| x == l).unwrap_or(0);
        let view = |x: String, of: &[u8], order: Vec<u8>, dims: [usize; 3]| {
            let perm: Vec<usize> = order.iter().map(|l| pos(of, l)).collect();
            let t = match identity(&perm) {
                true => x,
                false => format!("np.transpose({x}, {})", shape_tuple(&perm)),
            };
            contiguous(&t, &dims)
        };
        let (bt, m, k, nn) = (prod(&batch), prod(&afree), prod(&summed), prod(&bfree));
        let va = view(
            self.s(a),
            &spec.a,
            [&batch[..], &afree, &summed].concat(),
            [bt, m, k],
        );
        let vb = view(
            self.s(b),
            &spec.b,
            [&batch[..], &summed, &bfree].concat(),
            [bt, k, nn],
        );
        let r = self.helper("_bmm", &[va, vb]);
        let inter: Vec<u8> = [&batch[..], &afree, &bfree].concat();
        let ishape: Vec<usize> = inter.iter().map(|&l| size(l)).collect();
        let back = format!("{}.reshape({})", r.s, shape_tuple(&ishape));
        let perm: Vec<usize> = spec.out.iter().map(|l| pos(&inter, l)).collect();
        Some(match identity(&perm) {
            true => Expr::new(back, P_POST),
            false => self.call("np.transpose", &[back, shape_tuple(&perm)]),
        })
    }

    /// A node holding (part of) a loop result: the result's variable, flattened and cast
    /// to the pack dtype where the node is not the result itself.
    fn part(&self, p: LoopPart) -> Expr {
        let v = self.results[&p.node][p.k].clone();
        let mut e = Expr::atom(v.expect("a result that is read has a variable"));
        let Op::Loop(spec) = &self.g.node(p.node).op else {
            unreachable!("parts are of loops")
        };
        if p.flat {
            let numel: usize = spec.result_types()[p.k].0.iter().product();
            e = match self.ctx.target {
                Target::Numba => Expr::new(contiguous(&e.s, &[numel]), P_POST),
                _ => self.call("np.reshape", &[e.s, shape_tuple(&[numel])]),
            };
        }
        if p.packed {
            let dt = np_dtype(spec.pack_dtype());
            e = Expr::new(format!("np.asarray({}).astype({dt})", e.s), P_POST);
        }
        e
    }

    /// A loop's packed value read as a whole: its results flattened, cast to the pack
    /// dtype and concatenated.
    fn packed(&self, id: NodeId) -> Expr {
        let Op::Loop(spec) = &self.g.node(id).op else {
            unreachable!("packed values are loops'")
        };
        let pack = spec.pack_dtype();
        if self.results[&id].iter().any(Option::is_none) {
            // not read as a whole (`syntax::used_results`): never printed
            return Expr::atom("None");
        }
        let parts: Vec<String> = LoopPart::packing(id, spec)
            .into_iter()
            .map(|p| self.part(p).s)
            .collect();
        match parts.len() {
            0 => self.call(
                "np.zeros",
                &["(0,)".into(), format!("dtype={}", np_dtype(pack))],
            ),
            1 => Expr::atom(parts[0].clone()),
            _ => self.call(
                "np.concatenate",
                &[format!("({},)", parts.join(", ")), "axis=0".into()],
            ),
        }
    }

    /// `x` as a name or a number the loop body can read on every step, else a new
    /// variable (`want`) assigned before the loop.
    fn hoist(&mut self, x: NodeId, want: &str, lines: &mut Vec<String>) -> String {
        let e = self.e(x).clone();
        if is_ident(&e.s) || e.s.parse::<f64>().is_ok() {
            return e.s;
        }
        let v = self.ctx.names.fresh(Some(&want.to_string()));
        lines.push(format!("{v} = {}", e.s));
        v
    }

    /// The statements of a loop node: its carries' variables set to their initial values,
    /// its stacked results allocated, then a `for` loop over the body's statements (for
    /// JAX, a step function and `jax.lax.scan`). Names its results' variables.
    fn loop_stmt(&mut self, id: NodeId, spec: &LoopSpec, used: &[bool]) -> Vec<String> {
        self.ctx.loops += 1;
        let n = self.ctx.loops;
        let g = self.g;
        let (nc, nx, body) = (spec.n_carry, spec.n_xs, &spec.body);
        let ops = g.node(id).inputs.clone();
        let mut lines = vec![];
        // `y` of loop 1 is `y1`; `v0` of loop 1 is `v0_1`
        let base = |name: &str, fallback: &str| {
            let b = match is_ident(name) && !name.starts_with('_') {
                true => name,
                false => fallback,
            };
            match b.ends_with(|c: char| c.is_ascii_digit()) {
                true => format!("{b}_"),
                false => b.to_string(),
            }
        };
        let carries: Vec<String> = (0..nc)
            .map(|k| {
                let want = format!("{}{n}", base(&body.input_names[k], "c"));
                self.ctx.names.fresh(Some(&want))
            })
            .collect();
        let ys: Vec<Option<String>> = (nc..used.len())
            .map(|k| {
                let named = body.names.get(&body.outputs[k]).map_or("", |s| s.as_str());
                let unnamed = match spec.n_ys() {
                    1 => "ys".to_string(),
                    _ => format!("ys{}", k - nc),
                };
                let want = format!("{}{n}", base(named, &unnamed));
                used[k].then(|| self.ctx.names.fresh(Some(&want)))
            })
            .collect();
        let xs: Vec<String> = (0..nx)
            .map(|j| {
                let want = format!("{}{n}", base(&body.input_names[nc + j], "xs"));
                self.hoist(ops[nc + j], &want, &mut lines)
            })
            .collect();
        let invariants: Vec<String> = (nc + nx..ops.len())
            .map(|k| {
                let want = format!("{}{n}", base(&body.input_names[k], "v"));
                self.hoist(ops[k], &want, &mut lines)
            })
            .collect();
        let uses_t = nx > 0 || ys.iter().any(Option::is_some);
        let t = match uses_t {
            true => self.ctx.names.fresh(Some(&"t".to_string())),
            false => "_".into(),
        };
        let outs: Vec<NodeId> = (0..body.outputs.len())
            .filter(|&k| k < nc || used[k])
            .map(|k| body.outputs[k])
            .collect();
        let dtype = |o: NodeId| np_dtype(body.dtype(o));
        let mut results: Vec<Option<String>> = carries.iter().cloned().map(Some).collect();
        results.extend(ys.iter().cloned());
        self.results.insert(id, results);
        let inits: Vec<String> = (0..nc).map(|k| self.s(ops[k])).collect();
        let used_ys: Vec<&String> = ys.iter().flatten().collect();
        if self.ctx.target == Target::Jax {
            let (step, carry, row) = (
                self.ctx.names.fresh(Some(&format!("step{n}"))),
                self.ctx.names.fresh(Some(&"carry".to_string())),
                self.ctx.names.fresh(Some(&"row".to_string())),
            );
            let rows: Vec<String> = (0..nx)
                .map(|j| {
                    let want = format!("{}{n}", base(&body.input_names[nc + j], "x"));
                    self.ctx.names.fresh(Some(&want))
                })
                .collect();
            let mut ins: Vec<Expr> = carries.iter().map(|c| Expr::atom(c.clone())).collect();
            ins.extend(rows.iter().map(|r| Expr::atom(r.clone())));
            ins.extend(invariants.iter().map(|v| num_expr(v.clone())));
            let (blines, bouts) = emit(body, &outs, &ins, self.ctx);
            let typed =
                |(e, &o): (&Expr, &NodeId)| format!("np.asarray({}, dtype={})", e.s, dtype(o));
            let new: Vec<String> = bouts.iter().zip(&outs).map(typed).collect();
            let init: Vec<String> = (0..nc)
                .map(|k| format!("np.asarray({}, dtype={})", inits[k], dtype(body.inputs[k])))
                .collect();
            lines.push(format!("def {step}({carry}, {row}):"));
            lines.push(format!("    {} = {carry}", tuple(&carries)));
            if nx > 0 {
                lines.push(format!("    {} = {row}", tuple(&rows)));
            }
            lines.extend(blines.iter().map(|l| format!("    {l}")));
            let (c_new, y_new) = new.split_at(nc);
            lines.push(format!("    return {}, {}", tuple(c_new), tuple(y_new)));
            let xs_arg = match nx {
                0 => "None".to_string(),
                _ => tuple(&xs),
            };
            let ys_names: Vec<String> = used_ys.iter().map(|s| s.to_string()).collect();
            lines.push(format!(
                "{}, {} = jax.lax.scan({step}, {}, {xs_arg}, length={}, reverse={})",
                tuple(&carries),
                tuple(&ys_names),
                tuple(&init),
                spec.trips,
                if spec.reverse { "True" } else { "False" }
            ));
            return lines;
        }
        for (k, (c, init)) in carries.iter().zip(&inits).enumerate() {
            // numba types a 0-d carry as the scalar its updates give
            let scalar = self.ctx.target == Target::Numba && body.shape(body.inputs[k]).is_empty();
            match scalar {
                true => lines.push(format!("{c} = np.asarray({init}).item()")),
                false => lines.push(format!("{c} = {init}")),
            }
        }
        for (k, y) in (nc..used.len()).zip(&ys) {
            if let Some(y) = y {
                let o = body.outputs[k];
                let mut shape = vec![spec.trips];
                shape.extend(body.shape(o));
                lines.push(format!(
                    "{y} = np.empty({}, dtype={})",
                    shape_tuple(&shape),
                    dtype(o)
                ));
            }
        }
        let mut ins: Vec<Expr> = carries.iter().map(|c| Expr::atom(c.clone())).collect();
        ins.extend(xs.iter().map(|x| Expr::new(format!("{x}[{t}]"), P_POST)));
        ins.extend(invariants.iter().map(|v| num_expr(v.clone())));
        let (mut inner, bouts) = emit(body, &outs, &ins, self.ctx);
        let (c_new, y_new) = bouts.split_at(nc);
        for (y, e) in used_ys.iter().zip(y_new) {
            inner.push(format!("{y}[{t}] = {}", e.s));
        }
        let c_new: Vec<String> = c_new.iter().map(|e| e.s.clone()).collect();
        match nc {
            0 => {}
            1 => inner.push(format!("{} = {}", carries[0], c_new[0])),
            _ => inner.push(format!("{} = {}", carries.join(", "), c_new.join(", "))),
        }
        if inner.is_empty() {
            inner.push("pass".into());
        }
        let range = match spec.reverse {
            true => format!("range({}, -1, -1)", spec.trips as i64 - 1),
            false => format!("range({})", spec.trips),
        };
        lines.push(format!("for {t} in {range}:"));
        lines.extend(inner.iter().map(|l| format!("    {l}")));
        lines
    }

    fn helper(&mut self, name: &'static str, args: &[String]) -> Expr {
        self.ctx.helpers.insert(name);
        self.call(name, args)
    }

    fn post(&self, x: NodeId, suffix: &str) -> Expr {
        Expr::new(format!("{}{suffix}", self.w(x, P_POST)), P_POST)
    }

    /// The statements of a functional update (`{}` stands for the result's name).
    fn update(&mut self, id: NodeId) -> Option<Vec<String>> {
        let n = self.g.node(id);
        if !matches!(n.op, Op::SetSlice(_) | Op::Scatter(_) | Op::ScatterAdd(_)) {
            return None;
        }
        let a = |k: usize| self.s(n.inputs[k]);
        let base = self.w(n.inputs[0], P_POST);
        if self.ctx.target == Target::Jax {
            let at = match &n.op {
                Op::SetSlice(dims) => format!(
                    "at[{}].set({})",
                    slice_text(dims, self.g.shape(n.inputs[0])),
                    a(1)
                ),
                Op::Scatter(k) => format!("at[{}].set({})", axis_index(*k, &a(1)), a(2)),
                Op::ScatterAdd(k) => format!("at[{}].add({})", axis_index(*k, &a(1)), a(2)),
                _ => return None,
            };
            // `asarray`: the base may be a NumPy array (an input), which has no `.at`
            return Some(vec![format!("{{}} = np.asarray({}).{at}", a(0))]);
        }
        let copy = format!("{{}} = {base}.copy()");
        if self.ctx.target == Target::Numba {
            if let Op::Scatter(k) | Op::ScatterAdd(k) = &n.op {
                // out viewed as (A, D, B), the index as (n,), the values as (A, n, B)
                let s0 = self.g.shape(n.inputs[0]);
                let (pa, pb): (usize, usize) =
                    (s0[..*k].iter().product(), s0[k + 1..].iter().product());
                let ni = self.g.node(n.inputs[1]).size();
                let nv = n.inputs.get(2).map(|&v| self.g.node(v).size());
                if nv == Some(pa * ni * pb) {
                    let f = match n.op {
                        Op::Scatter(_) => "_set_at3",
                        _ => "_add_at3",
                    };
                    let call = format!(
                        "{f}({{}}.reshape(({pa}, {}, {pb})), {}, {})",
                        s0[*k],
                        contiguous(&a(1), &[ni]),
                        contiguous(&a(2), &[pa, ni, pb])
                    );
                    self.ctx.helpers.insert(f);
                    return Some(vec![copy, call]);
                }
            }
        }
        let write = match &n.op {
            Op::SetSlice(dims) => {
                format!(
                    "{{}}[{}] = {}",
                    slice_text(dims, self.g.shape(n.inputs[0])),
                    a(1)
                )
            }
            Op::Scatter(k) => format!("{{}}[{}] = {}", axis_index(*k, &a(1)), a(2)),
            Op::ScatterAdd(k) => {
                let ix = match k {
                    0 => a(1),
                    _ => format!("({}{})", "slice(None), ".repeat(*k), a(1)),
                };
                format!("np.add.at({{}}, {ix}, {})", a(2))
            }
            _ => return None,
        };
        Some(vec![copy, write])
    }

    fn constant(&self, id: NodeId) -> Expr {
        let t = self.g.const_value(id).expect("a constant");
        let dt = t.dtype;
        let lit = |v: f64| py_num(v, dt);
        match (t.shape.is_empty(), t.uniform_value()) {
            (true, _) => num_expr(lit(t.data[0])),
            (false, Some(v)) => self.call(
                "np.full",
                &[
                    shape_tuple(&t.shape),
                    lit(v),
                    format!("dtype={}", np_dtype(dt)),
                ],
            ),
            (false, None) => self.call(
                "np.array",
                &[
                    nested(t, &lit, "[", ", ", "]"),
                    format!("dtype={}", np_dtype(dt)),
                ],
            ),
        }
    }

    fn node(&mut self, id: NodeId) -> Expr {
        if let Some(p) = self.parts[id.index()] {
            return self.part(p);
        }
        if self.ctx.target == Target::Numba {
            if let Some(e) = self.numba(id) {
                return e;
            }
        }
        let n = self.g.node(id);
        let a = |k: usize| self.s(n.inputs[k]);
        let axis = |k: &usize| format!("axis={k}");
        match &n.op {
            Op::Input(_) => unreachable!("inputs are named"),
            Op::Const(_) => self.constant(id),
            Op::Unary(u) => {
                let xe = self.e(shown_operands(self.g, id)[0]).clone();
                match u {
                    UnaryOp::Neg => Expr::new(format!("-{}", paren(&xe, P_POW)), P_NEG),
                    UnaryOp::StopGradient => xe,
                    UnaryOp::Not => Expr::new(format!("~{}", paren(&xe, P_POW)), P_NEG),
                    UnaryOp::Sigmoid => self.helper("_sigmoid", &[xe.s]),
                    UnaryOp::Erf => self.helper("_erf", &[xe.s]),
                    UnaryOp::Gammaln => self.helper("_gammaln", &[xe.s]),
                    UnaryOp::Digamma => self.helper("_digamma", &[xe.s]),
                    UnaryOp::Trigamma => self.helper("_trigamma", &[xe.s]),
                    UnaryOp::Abs
                    | UnaryOp::Sign
                    | UnaryOp::Exp
                    | UnaryOp::Expm1
                    | UnaryOp::Log
                    | UnaryOp::Log1p
                    | UnaryOp::Log2
                    | UnaryOp::Log10
                    | UnaryOp::Sqrt
                    | UnaryOp::Square
                    | UnaryOp::Reciprocal
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
                    | UnaryOp::Round => self.call(&format!("np.{}", u.name()), &[xe.s]),
                }
            }
            Op::Binary(b) => {
                let ins = shown_operands(self.g, id);
                let (x, y) = display_order(self.g, *b, ins[0], ins[1]);
                self.binary(*b, &self.e(x).clone(), &self.e(y).clone())
            }
            Op::Where => {
                let ins = shown_operands(self.g, id);
                self.call(
                    "np.where",
                    &ins.iter().map(|&i| self.s(i)).collect::<Vec<_>>(),
                )
            }
            Op::Cast(dt) => {
                let x = self.w(shown_operands(self.g, id)[0], P_POST);
                Expr::new(format!("np.asarray({x}).astype({})", np_dtype(*dt)), P_POST)
            }
            Op::Broadcast(to) => self.call("np.broadcast_to", &[a(0), shape_tuple(to)]),
            Op::Reshape(to) => self.call("np.reshape", &[a(0), shape_tuple(to)]),
            Op::Transpose(p) if p == &[1, 0] => self.post(n.inputs[0], ".T"),
            Op::Transpose(p) => self.call("np.transpose", &[a(0), shape_tuple(p)]),
            Op::Reduce(r, axes) => {
                let f = match r {
                    ReduceOp::Sum => "np.sum",
                    ReduceOp::Prod => "np.prod",
                    ReduceOp::Max => "np.max",
                    ReduceOp::Min => "np.min",
                };
                match axes.len() == self.g.shape(n.inputs[0]).len() {
                    true => self.call(f, &[a(0)]),
                    false => self.call(f, &[a(0), format!("axis={}", axes_text(axes))]),
                }
            }
            Op::ArgMax(k, max) => self.call(
                if *max { "np.argmax" } else { "np.argmin" },
                &[a(0), axis(k)],
            ),
            Op::Contract(spec) => {
                let ops = n.inputs.clone();
                let side = |(k, t): (usize, bool), min: u8| match t {
                    true => self.post(ops[k], ".T").s,
                    false => self.w(ops[k], min),
                };
                match contract_form(spec) {
                    ContractForm::Dot => Expr::new(
                        format!(
                            "{} @ {}",
                            side((0, false), P_MUL),
                            side((1, false), P_MUL + 1)
                        ),
                        P_MUL,
                    ),
                    ContractForm::MatMul { left, right } => Expr::new(
                        format!("{} @ {}", side(left, P_MUL), side(right, P_MUL + 1)),
                        P_MUL,
                    ),
                    ContractForm::Outer(i, j) => {
                        self.call("np.outer", &[self.s(ops[i]), self.s(ops[j])])
                    }
                    ContractForm::Scale => self.binary(
                        BinaryOp::Mul,
                        &self.e(ops[0]).clone(),
                        &self.e(ops[1]).clone(),
                    ),
                    ContractForm::Einsum => {
                        self.call("np.einsum", &[format!("\"{spec}\""), a(0), a(1)])
                    }
                }
            }
            Op::Slice(dims) => {
                let sub = slice_text(dims, self.g.shape(n.inputs[0]));
                self.post(n.inputs[0], &format!("[{sub}]"))
            }
            Op::SetSlice(_) | Op::Scatter(_) | Op::ScatterAdd(_) => {
                unreachable!("updates are statements")
            }
            Op::Gather(k) => self.call("np.take", &[a(0), a(1), axis(k)]),
            Op::TakeAlong(k) => self.call("np.take_along_axis", &[a(0), a(1), axis(k)]),
            Op::ScatterAlongAdd(k) => {
                self.helper("_scatter_along_add", &[a(0), a(1), a(2), k.to_string()])
            }
            Op::Concat(k) => {
                let parts: Vec<String> = n.inputs.iter().map(|&i| self.s(i)).collect();
                self.call(
                    "np.concatenate",
                    &[format!("({},)", parts.join(", ")), axis(k)],
                )
            }
            Op::Cumsum(k) => self.call("np.cumsum", &[a(0), axis(k)]),
            Op::Cumprod(k) => self.call("np.cumprod", &[a(0), axis(k)]),
            Op::ArgSort(k) => {
                let stable = match self.ctx.target {
                    Target::Jax => "stable=True",
                    Target::NumPy | Target::Numba => "kind=\"stable\"",
                };
                self.call("np.argsort", &[a(0), axis(k), stable.into()])
            }
            Op::Solve | Op::TriSolve(_) => self.call("np.linalg.solve", &[a(0), a(1)]),
            Op::Cholesky => self.call("np.linalg.cholesky", &[a(0)]),
            Op::Inv => self.call("np.linalg.inv", &[a(0)]),
            Op::Det => self.call("np.linalg.det", &[a(0)]),
            Op::LogAbsDet => Expr::new(format!("np.linalg.slogdet({})[1]", a(0)), P_POST),
            Op::Loop(_) => self.packed(id),
        }
    }

    fn binary(&self, b: BinaryOp, x: &Expr, y: &Expr) -> Expr {
        match infix(b) {
            Some(op) => {
                let (l, r) = operand_prec(b, op.prec, true);
                Expr::new(format!("{}{}{}", paren(x, l), op.py, paren(y, r)), op.prec)
            }
            None => self.call(&format!("np.{}", b.name()), &[x.s.clone(), y.s.clone()]),
        }
    }
}
