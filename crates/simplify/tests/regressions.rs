//! Regression tests for graphs the simplifier once got wrong.

use autodiff_ir::sexpr::parse_graph;

fn simplifies_cleanly(text: &str) {
    let g = parse_graph(text).unwrap();
    for (sg, outs) in [
        autodiff_simplify::simplify(&g, &g.outputs),
        autodiff_simplify::simplify_for_print(&g, &g.outputs),
    ] {
        autodiff_ir::verify::verify(&sg).unwrap();
        assert_eq!(outs.len(), g.outputs.len());
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
