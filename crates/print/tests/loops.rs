//! Loops in every printer: the text shows the recurrence (a header naming the results, the
//! body, the carries' updates), the sources run it (a `for` loop; `jax.lax.scan`) and agree
//! with the reference evaluator, SymPy refuses, DOT draws the body in a box.

mod common;
use common::*;

use autodiff_ir::sexpr::parse_graph;
use autodiff_ir::LoopSpec;

/// `y ← y + 0.01*(sin(y) - k*y)` 1000 times, then `Σ(y**2)`.
const EULER: &str = r#"(graph
  (input y float64 (3))
  (input k float64 ())
  (let l (loop (1000 forward 1 0) (graph (input y float64 (3)) (input k float64 ()) (output (add y (mul (broadcast (3) 0.01) (sub (sin y) (mul (broadcast (3) k) y)))))) y k))
  (output (sum (0) (pow (slice ((0 1 3)) l) (broadcast (3) 2.0)))))"#;

/// Two carries updated together (`v` reads `x` before its update), a row of `F` per step,
/// the stacked energy, an invariant that is an expression, run backwards.
const OSC: &str = r#"(graph
  (input x float64 (2))
  (input v float64 (2))
  (input F float64 (5 2))
  (input h float64 ())
  (let l (loop (5 reverse 2 1) (graph (input x float64 (2)) (input v float64 (2)) (input f float64 (2)) (input dt float64 ())
     (output (add x (mul (broadcast (2) dt) v)))
     (output (add v (mul (broadcast (2) dt) (sub f x))))
     (output (sum (0) (mul x x)))) x (mul v (broadcast (2) 2.0)) F (mul h 0.5)))
  (output (slice ((2 1 2)) l))
  (output (slice ((4 1 5)) l)))"#;

/// A 0-d carry, an int counter, a row of `x` per step, stacked bool and float rows, unpacked
/// as `Graph::loop_outputs` does (slices, reshapes, casts back from float64).
const SCALARS: &str = r#"(graph (input s float64 ()) (input n int64 ()) (input x float64 ()) (input a float64 ())
  (output (add (mul s a) x)) (output (add n (const int64 () 1))) (output (gt s 0.0)) (output (mul s s)))"#;

fn scalars(trips: usize) -> (Graph, Vec<NodeId>) {
    let mut g = Graph::new();
    let s0 = g.add_input("s0", vec![], DType::F64);
    let n0 = g.add_input("n0", vec![], DType::I64);
    let xs = g.add_input("x", vec![trips], DType::F64);
    let a = g.add_input("a", vec![], DType::F64);
    let body = parse_graph(SCALARS).unwrap();
    let spec = LoopSpec::new(body, 2, 1, trips, false).unwrap();
    let outs = g.add_loop(spec, vec![s0, n0, xs, a]).unwrap();
    (g, outs)
}

fn scalar_inputs(trips: usize) -> Vec<Tensor> {
    vec![
        Tensor::scalar(0.5),
        Tensor::new(DType::I64, vec![], vec![3.0]),
        tensor(&[trips], |i| (i as f64 * 1.3).sin()),
        Tensor::scalar(-0.9),
    ]
}

/// An outer loop whose body runs an inner loop: `y ← inner(y) + 1`, inner `c ← c/2 + k`.
const NESTED: &str = r#"(graph
  (input y float64 (2))
  (input k float64 ())
  (let l (loop (4 forward 1 0) (graph (input y float64 (2)) (input k float64 ())
     (let m (loop (3 forward 1 0) (graph (input c float64 (2)) (input k float64 ())
        (output (add (mul c (broadcast (2) 0.5)) (broadcast (2) k)))) y k))
     (output (add m (broadcast (2) 1.0)))) y k))
  (output l))"#;

fn tensor(shape: &[usize], f: impl Fn(usize) -> f64) -> Tensor {
    let n = shape.iter().product();
    Tensor::new(DType::F64, shape.to_vec(), (0..n).map(f).collect())
}

fn parse(src: &str) -> Graph {
    parse_graph(src).unwrap()
}

fn unicode(g: &Graph, outs: &[NodeId]) -> String {
    to_text(g, outs, &TextOptions::default())
}

fn ascii(g: &Graph, outs: &[NodeId]) -> String {
    let opts = TextOptions {
        unicode: false,
        ..TextOptions::default()
    };
    to_text(g, outs, &opts)
}

#[test]
fn euler_prints_its_recurrence() {
    let g = parse(EULER);
    assert_eq!(
        unicode(&g, &g.outputs),
        "let y₁ = loop 1000 times:\n  y ← y + 0.01*(sin(y) - k*y)\nΣ(y₁**2)"
    );
    assert_eq!(
        ascii(&g, &g.outputs),
        "let y_1 = loop 1000 times:\n  y <- y + 0.01*(sin(y) - k*y)\nsum(y_1**2)"
    );
    assert_eq!(
        to_latex(&g, &g.outputs, &[]),
        "\\begin{aligned}\n{y}_{1} &= \\text{loop 1000 times}: \\\\\n\
         &\\quad y \\leftarrow y + 0.01 \\left(\\sin\\left(y\\right) - k \\cdot y\\right) \\\\\n\
         \\mathrm{out}_{0} &= \\sum\\left({y}_{1}^{2}\\right)\n\\end{aligned}"
    );
}

#[test]
fn simplified_for_print_the_body_reads_the_same() {
    let g = parse(EULER);
    let (s, o) = simplify_for_print(&g, &g.outputs);
    assert_eq!(
        unicode(&s, &o),
        "let y₁ = loop 1000 times:\n  y ← y + 0.01*(sin(y) - k*y)\nΣ(y₁**2)"
    );
}

#[test]
fn carries_updated_together_print_as_one_assignment() {
    let g = parse(OSC);
    assert_eq!(
        unicode(&g, &g.outputs),
        "let _, v₁, ys₁ = loop 5 times over t = 4…0, from v = 2*v, with dt = 0.5*h:\n  \
         ys₁[t] = Σ(x*x)\n  x, v ← x + dt*v, v + dt*(F[t] - x)\nout0 = v₁\nout1 = ys₁"
    );
    let opts = TextOptions {
        unicode: false,
        show_shapes: true,
        ..TextOptions::default()
    };
    let text = to_text(&g, &g.outputs, &opts);
    assert!(
        text.contains("with dt = 0.5*h:  # (2,), (2,), (5,)\n"),
        "{text}"
    );
}

#[test]
fn unpacked_results_print_as_names() {
    let (g, outs) = scalars(6);
    assert_eq!(
        unicode(&g, &outs),
        "let s₁, n₁, ys0₁, ys1₁ = loop 6 times over t = 0…5, from s = s0, n = n0:\n  \
         ys0₁[t] = s > 0\n  ys1₁[t] = s*s\n  s ← s*a + x[t]\n  n ← n + 1\n\
         out0 = s₁\nout1 = n₁\nout2 = ys0₁\nout3 = ys1₁"
    );
    // the packed value read whole: the results flattened, cast and concatenated
    let mut g2 = g.clone();
    let packed = g2.node(outs[0]).inputs[0];
    let packed = g2.node(packed).inputs[0];
    let total = g2.sum(packed, &[0]).unwrap();
    assert_eq!(
        unicode(&g2, &[total]),
        "let s₁, n₁, ys0₁, ys1₁ = loop 6 times over t = 0…5, from s = s0, n = n0:\n  \
         ys0₁[t] = s > 0\n  ys1₁[t] = s*s\n  s ← s*a + x[t]\n  n ← n + 1\n\
         Σ(concat([ravel(s₁), float64(ravel(n₁)), float64(ys0₁), ys1₁], axis=0))"
    );
    check_runs(&g2, &[total, outs[1]], &scalar_inputs(6));
}

#[test]
fn nested_loops_indent() {
    let g = parse(NESTED);
    assert_eq!(
        unicode(&g, &g.outputs),
        "let y₁ = loop 4 times:\n  let c₂ = loop 3 times, from c = y:\n    c ← 0.5*c + k\n  \
         y ← c₂ + 1\ny₁"
    );
}

#[test]
fn sources_run_loops() {
    let g = parse(EULER);
    assert_eq!(
        to_numpy_source(&g, &g.outputs, "f"),
        "import numpy as np\n\n\ndef f(y, k):\n    y1 = y\n    for _ in range(1000):\n        \
         y1 = y1 + 0.01*(np.sin(y1) - k*y1)\n    return np.sum(y1**2.0)\n"
    );
    let jax = to_source(&g, &g.outputs, "f", Target::Jax);
    assert!(jax.contains("jax.lax.scan(step1, "), "{jax}");
    let euler_ins = [tensor(&[3], |i| 0.5 + i as f64), Tensor::scalar(0.7)];
    let osc = parse(OSC);
    let src = to_numpy_source(&osc, &osc.outputs, "f");
    assert!(
        src.contains(
            "    for t in range(4, -1, -1):\n        ys1[t] = np.sum(x1*x1)\n        x1, v1 = "
        ),
        "{src}"
    );
    let osc_ins = [
        tensor(&[2], |i| 0.5 + i as f64),
        tensor(&[2], |i| 1.0 - i as f64),
        tensor(&[5, 2], |i| (i as f64 * 0.3).sin()),
        Tensor::scalar(0.1),
    ];
    let scalar_cases: Vec<_> = [0, 1, 6]
        .map(|trips| (scalars(trips), scalar_inputs(trips)))
        .into_iter()
        .collect();
    let nested = parse(NESTED);
    let nested_ins = [tensor(&[2], |i| i as f64 - 0.5), Tensor::scalar(0.25)];
    let mut cases: Vec<(&Graph, &[NodeId], &[Tensor])> = vec![
        (&g, &g.outputs, &euler_ins),
        (&osc, &osc.outputs, &osc_ins),
        (&nested, &nested.outputs, &nested_ins),
    ];
    for ((sg, so), si) in &scalar_cases {
        cases.push((sg, so, si));
    }
    check_runs_many(&cases);
}

#[test]
fn sympy_refuses_and_dot_draws_the_body() {
    let g = parse(EULER);
    let e = to_sympy(&g, &g.outputs).unwrap_err();
    assert!(
        e.contains("a loop (1000 iterations of a body graph) has no SymPy form"),
        "{e}"
    );
    let dot = to_dot(&g, &g.outputs);
    for needle in [
        "subgraph cluster_n2 {\n    label=\"loop ×1000: body\";",
        "n2_0 [label=\"y (carry)\\n(3,)\", shape=ellipse];",
        "n0 -> n2_0 [style=dashed, label=\"init\"];",
        "n2_9 -> n2_0 [style=dashed, constraint=false, label=\"next\"];",
        "n2_9 -> n2 [style=dashed, label=\"final\"];",
    ] {
        assert!(dot.contains(needle), "{needle} not in\n{dot}");
    }
}
