//! Graph-building shorthands for the golden tests.
#![allow(dead_code, unused_imports)]

pub use autodiff_ir::{
    BinaryOp as B, DType, Graph, NodeId, Op, ReduceOp, SliceDim, Tensor, UnaryOp as U,
};
pub use autodiff_print::*;
pub use autodiff_simplify::simplify_for_print;

/// A graph under construction with panicking builders.
pub struct G(pub Graph);

impl G {
    pub fn new() -> G {
        G(Graph::new())
    }
    pub fn x(&mut self, name: &str, shape: &[usize]) -> NodeId {
        self.0.add_input(name, shape.to_vec(), DType::F64)
    }
    pub fn c(&mut self, v: f64) -> NodeId {
        self.0.scalar(v, DType::F64)
    }
    pub fn t(&mut self, shape: &[usize], data: &[f64]) -> NodeId {
        self.0
            .constant(Tensor::new(DType::F64, shape.to_vec(), data.to_vec()))
    }
    pub fn b(&mut self, op: B, a: NodeId, b: NodeId) -> NodeId {
        self.0.binary(op, a, b).unwrap()
    }
    pub fn u(&mut self, op: U, a: NodeId) -> NodeId {
        self.0.unary(op, a).unwrap()
    }
    pub fn op(&mut self, op: Op, ins: &[NodeId]) -> NodeId {
        self.0.add(op, ins.to_vec()).unwrap()
    }
    pub fn contract(&mut self, spec: &str, a: NodeId, b: NodeId) -> NodeId {
        self.0.contract(spec, a, b).unwrap()
    }
    /// Simplified for printing, then printed with default options.
    pub fn pretty(&self, outs: &[NodeId]) -> String {
        let (g, o) = simplify_for_print(&self.0, outs);
        to_text(&g, &o, &TextOptions::default())
    }
    /// Printed as built (no simplification).
    pub fn raw(&self, outs: &[NodeId]) -> String {
        to_text(&self.0, outs, &TextOptions::default())
    }
    pub fn ascii(&self, outs: &[NodeId]) -> String {
        let opts = TextOptions {
            unicode: false,
            ..TextOptions::default()
        };
        to_text(&self.0, outs, &opts)
    }
    pub fn latex(&self, outs: &[NodeId]) -> String {
        to_latex(&self.0, outs, &[])
    }
}

/// The reverse-mode gradient of `sum((x + 1)**2)`, built the way reverse mode builds it.
pub fn seed_gradient() -> (G, NodeId) {
    let mut g = G::new();
    let x = g.x("x", &[3]);
    let one = g.c(1.0);
    let two = g.c(2.0);
    let u = g.b(B::Add, x, one);
    let _p = g.b(B::Pow, u, two);
    // d sum / d p = broadcast(1); d p / d u = 2 * u**(2-1)
    let seed = g.c(1.0);
    let gp = g.0.broadcast(seed, &[3]).unwrap();
    let e = g.b(B::Sub, two, one);
    let pw = g.b(B::Pow, u, e);
    let d = g.b(B::Mul, two, pw);
    let gu = g.b(B::Mul, gp, d);
    (g, gu)
}

/// `sum(tanh(W @ x + b))` and its reverse-mode gradient w.r.t. W, x, b.
pub fn tanh_gradient() -> (G, Vec<NodeId>) {
    let mut g = G::new();
    let w = g.x("W", &[2, 3]);
    let x = g.x("x", &[3]);
    let b = g.x("b", &[2]);
    let z = g.0.matmul(w, x).unwrap();
    let a = g.b(B::Add, z, b);
    let t = g.u(U::Tanh, a);
    let seed = g.c(1.0);
    let gt = g.0.broadcast(seed, &[2]).unwrap();
    let one = g.c(1.0);
    let tt = g.b(B::Mul, t, t);
    let dt = g.b(B::Sub, one, tt);
    let ga = g.b(B::Mul, gt, dt);
    let gw = g.contract("i,j->ij", ga, x);
    let gx = g.contract("ij,i->j", w, ga);
    (g, vec![gw, gx, ga])
}

/// A Python with NumPy: `AUTODIFF_PYTHON`, else the active virtualenv's, else the
/// workspace `.venv`'s, else `python3`; `None` when none imports NumPy.
pub fn python() -> Option<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let venv = |d: String| format!("{d}/bin/python");
    let candidates = [
        std::env::var("AUTODIFF_PYTHON").ok(),
        std::env::var("VIRTUAL_ENV").ok().map(venv),
        Some(venv(format!("{root}/.venv"))),
        Some("python3".into()),
    ];
    candidates.into_iter().flatten().find(|py| has(py, "numpy"))
}

fn literal(t: &Tensor) -> String {
    let data: Vec<String> = t.data.iter().map(|v| format!("{v:?}")).collect();
    format!(
        "np.array([{}], dtype=np.{}).reshape({:?})",
        data.join(", "),
        t.dtype.name(),
        t.shape
    )
    .replace("[]", "()")
    .replace("np.bool", "np.bool_")
}

/// Whether the Python `py` imports `module`.
pub fn has(py: &str, module: &str) -> bool {
    std::process::Command::new(py)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs the generated function in Python and compares every output with `autodiff_exec`:
/// the NumPy source, and the numba (under `numba.njit`) and JAX (under `jax.jit`, x64)
/// sources where that Python has numba / JAX.
pub fn check_runs(g: &Graph, outs: &[NodeId], inputs: &[Tensor]) {
    check_runs_many(&[(g, outs, inputs)]);
}

/// [`check_runs`] for several graphs, one Python process per target.
pub fn check_runs_many(cases: &[(&Graph, &[NodeId], &[Tensor])]) {
    let Some(py) = python() else {
        eprintln!("no Python with NumPy: generated source not executed");
        return;
    };
    check_target(&py, cases, Target::NumPy);
    for (module, target) in [("numba", Target::Numba), ("jax", Target::Jax)] {
        match has(&py, module) {
            true => check_target(&py, cases, target),
            false => eprintln!("no {module} in {py}: the {target:?} source not executed"),
        }
    }
}

/// Runs the `target` source of each graph in `py` and compares with `autodiff_exec`.
pub fn check_target(py: &str, cases: &[(&Graph, &[NodeId], &[Tensor])], target: Target) {
    let (pre, call) = match target {
        Target::NumPy => ("", "f"),
        Target::Numba => ("import numba\n", "numba.njit(f)"),
        Target::Jax => (
            "import jax\njax.config.update('jax_enable_x64', True)\n",
            "jax.jit(f)",
        ),
    };
    let mut script = format!("{pre}import numpy as np\n");
    let mut srcs = vec![];
    for (k, (g, outs, inputs)) in cases.iter().enumerate() {
        let src = to_source(g, outs, "f", target);
        let args: Vec<String> = inputs.iter().map(literal).collect();
        script += &format!(
            "{src}\nout = {call}({})\nif not isinstance(out, tuple):\n    out = (out,)\nprint('case {k}')\n\
             for o in out:\n    print(' '.join(repr(float(v)) for v in np.asarray(o, dtype=np.float64).ravel()))\n",
            args.join(", ")
        );
        srcs.push(src);
    }
    let r = std::process::Command::new(py)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let text = String::from_utf8(r.stdout).unwrap();
    let blocks: Vec<&str> = text.split("case ").skip(1).collect();
    assert_eq!(blocks.len(), cases.len(), "{text}");
    for ((block, (g, outs, inputs)), src) in blocks.iter().zip(cases).zip(&srcs) {
        let want = autodiff_exec::eval(g, inputs, outs).unwrap();
        let lines: Vec<&str> = block.lines().skip(1).collect();
        assert_eq!(lines.len(), want.len(), "{src}");
        for (line, w) in lines.iter().zip(&want) {
            let got: Vec<f64> = line
                .split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect();
            assert_eq!(got.len(), w.data.len(), "{src}");
            for (p, q) in got.iter().zip(&w.data) {
                let close = (p.is_nan() && q.is_nan()) || (p - q).abs() <= 1e-9 * (1.0 + q.abs());
                assert!(close, "{p} vs {q}\n{src}");
            }
        }
    }
}
