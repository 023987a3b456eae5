//! Regression tests for graphs the simplifier once got wrong.

use autodiff_ir::sexpr::parse_graph;
use autodiff_ir::{DType, Tensor};

/// Both goals give a verified graph that computes the same values as the original (the
/// reference evaluator at deterministic, non-trivial inputs).
fn simplifies_cleanly(text: &str) {
    let g = parse_graph(text).unwrap();
    let inputs: Vec<Tensor> = g
        .inputs
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let shape = g.shape(i).clone();
            let n: usize = shape.iter().product();
            let data = (0..n)
                .map(|j| 0.37 * (j + 1) as f64 - 0.81 * k as f64)
                .collect();
            Tensor::new(DType::F64, shape, data)
        })
        .collect();
    let want = autodiff_exec::eval(&g, &inputs, &g.outputs).unwrap();
    for (sg, outs) in [
        autodiff_simplify::simplify(&g, &g.outputs),
        autodiff_simplify::simplify_for_print(&g, &g.outputs),
    ] {
        autodiff_ir::verify::verify(&sg).unwrap();
        assert_eq!(outs.len(), g.outputs.len());
        let got = autodiff_exec::eval(&sg, &inputs, &outs).unwrap();
        for (w, o) in want.iter().zip(&got) {
            assert_eq!(w.shape, o.shape);
            for (a, b) in w.data.iter().zip(&o.data) {
                assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()), "{a} vs {b}");
            }
        }
    }
}

#[test]
fn broadcast_of_a_reshaped_scalar_into_a_scatter() {
    // the gradient of np.tile(a, 2).sum()
    simplifies_cleanly(
        "(graph (input a float64 (4))
           (output (scatter_add 0 (broadcast (4) 0.0) (const int64 (8) 0 1 2 3 0 1 2 3)
                      (broadcast (8) (reshape (1) 1.0)))))",
    );
}

#[test]
fn broadcast_of_a_reshaped_slice_into_a_scatter() {
    // the gradient of A[1, 2] * np.tile(A[0], 2).sum()
    simplifies_cleanly(
        "(graph (input A float64 (3 4)) (let t0 (broadcast (3 4) 0.0))
          (output (add (set_slice ((0 1 1) (0 1 4)) t0 (reshape (1 4) (scatter_add 0 (broadcast (4) 0.0)
             (const int64 (8) 0 1 2 3 0 1 2 3)
             (broadcast (8) (reshape (1) (mul 1.0 (reshape () (slice ((1 1 1) (2 1 1)) A))))))))
           (set_slice ((1 1 1) (2 1 1)) t0 (reshape (1 1) (mul 1.0 (sum (0) (gather 0
             (reshape (4) (slice ((0 1 1) (0 1 4)) A)) (const int64 (8) 0 1 2 3 0 1 2 3)))))))))",
    );
}
