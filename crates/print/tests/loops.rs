//! Loops in every printer: the text shows the recurrence (a header, the body, the carries'
//! updates), the sources run it (a `for` loop; `jax.lax.scan`), SymPy refuses, DOT draws
//! the body in a box.

mod common;
use common::*;

use autodiff_ir::sexpr::parse_graph;

/// `y ← y + 0.01*(sin(y) - k*y)` 1000 times, then `Σ(y**2)`.
const EULER: &str = r#"(graph
  (input y float64 (3))
  (input k float64 ())
  (let l (loop (1000 forward 1 0) (graph (input y float64 (3)) (input k float64 ()) (output (add y (mul (broadcast (3) 0.01) (sub (sin y) (mul (broadcast (3) k) y)))))) y k))
  (output (sum (0) (pow (slice ((0 1 3)) l) (broadcast (3) 2.0)))))"#;

fn text(src: &str) -> String {
    let g = parse_graph(src).unwrap();
    to_text(&g, &g.outputs, &TextOptions::default())
}

#[test]
fn euler_prints_its_recurrence() {
    println!("{}", text(EULER));
}

/// Two carries updated together, a row of `F` per step, a stacked energy, an invariant
/// that is an expression: symplectic-looking but simultaneous.
const OSC: &str = r#"(graph
  (input x float64 (2))
  (input v float64 (2))
  (input F float64 (5 2))
  (input h float64 ())
  (let l (loop (5 reverse 2 1) (graph (input x float64 (2)) (input v float64 (2)) (input f float64 (2)) (input dt float64 ())
     (output (add x (mul (broadcast (2) dt) v)))
     (output (add v (mul (broadcast (2) dt) (sub f x))))
     (output (sum (0) (mul x x)))) x (mul v (broadcast (2) 2.0)) F (mul h 0.5)))
  (output (reshape (2) (slice ((2 1 2)) l)))
  (output (reshape (5) (slice ((4 1 5)) l))))"#;

#[test]
fn several_carries_rows_and_stacked_results() {
    println!("{}", text(OSC));
    let g = parse_graph(OSC).unwrap();
    println!("{}", to_latex(&g, &g.outputs, &[]));
    let opts = TextOptions {
        unicode: false,
        show_shapes: true,
        ..TextOptions::default()
    };
    println!("{}", to_text(&g, &g.outputs, &opts));
}

fn tensor(shape: &[usize], f: impl Fn(usize) -> f64) -> Tensor {
    let n = shape.iter().product();
    Tensor::new(DType::F64, shape.to_vec(), (0..n).map(f).collect())
}

#[test]
fn sources_run_loops() {
    let g = parse_graph(EULER).unwrap();
    println!("{}", to_numpy_source(&g, &g.outputs, "f"));
    println!("{}", to_source(&g, &g.outputs, "f", Target::Jax));
    check_runs(
        &g,
        &g.outputs,
        &[tensor(&[3], |i| 0.5 + i as f64), Tensor::scalar(0.7)],
    );
    let g = parse_graph(OSC).unwrap();
    println!("{}", to_numpy_source(&g, &g.outputs, "f"));
    println!("{}", to_source(&g, &g.outputs, "f", Target::Jax));
    let ins = [
        tensor(&[2], |i| 0.5 + i as f64),
        tensor(&[2], |i| 1.0 - i as f64),
        tensor(&[5, 2], |i| (i as f64 * 0.3).sin()),
        Tensor::scalar(0.1),
    ];
    check_runs(&g, &g.outputs, &ins);
}
