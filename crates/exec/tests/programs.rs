//! Small programs written in the IR's text form, evaluated against NumPy results.

use autodiff_exec::eval;
use autodiff_ir::sexpr::parse_graph;
use autodiff_ir::{DType, Tensor};

fn run(text: &str, inputs: &[Tensor]) -> Vec<Tensor> {
    let g = parse_graph(text).unwrap_or_else(|e| panic!("{e}"));
    eval(&g, inputs, &g.outputs).unwrap_or_else(|e| panic!("{e}"))
}

fn close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-14 * w.abs().max(1.0),
            "got {got:?}\nwant {want:?}"
        );
    }
}

#[test]
fn the_seed_example() {
    // ((x + 1) ** 2).sum() at x = [0.5, -1, 2]
    let text = "(graph (input x float64 (3)) (let t0 (add x (broadcast (3) 1.0))) (output (sum (0) (mul t0 t0))))";
    let out = run(
        text,
        &[Tensor::new(DType::F64, vec![3], vec![0.5, -1.0, 2.0])],
    );
    assert_eq!((out[0].shape.len(), out[0].data[0]), (0, 11.25));
}

#[test]
fn stable_logsumexp_and_softmax() {
    // m = max(z, 1); lse = m + log(sum(exp(z - m), 1)); softmax = exp(z - lse)
    let text = r#"(graph
      (input z float64 (2 3))
      (let m (max (1) z))
      (let lse (add m (log (sum (1) (exp (sub z (broadcast (2 3) (reshape (2 1) m))))))))
      (output lse)
      (output (exp (sub z (broadcast (2 3) (reshape (2 1) lse))))))"#;
    let z = Tensor::new(
        DType::F64,
        vec![2, 3],
        vec![1000.0, 1001.0, 999.0, -2.0, 0.5, 3.0],
    );
    let out = run(text, &[z]);
    close(&out[0].data, &[1001.4076059644444, 3.08509724636431]);
    #[rustfmt::skip]
    let want = [0.24472847105478585, 0.6652409557747898, 0.09003057317037612, 0.006188285272800039, 0.07538874796299667, 0.9184229667642033];
    close(&out[1].data, &want);
}

#[test]
fn a_layer_and_a_scatter() {
    let text = r#"(graph
      (input W float64 (2 3))
      (input x float64 (3))
      (input i int64 (3))
      (output (tanh (contract "ij,j->i" W x)))
      (output (scatter_add 0 (broadcast (3) 0.0) i x)))"#;
    let w = Tensor::new(DType::F64, vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let x = Tensor::new(DType::F64, vec![3], vec![0.5, -1.0, 2.0]);
    let i = Tensor::new(DType::I64, vec![3], vec![2.0, 0.0, 2.0]);
    let out = run(text, &[w, x, i]);
    close(&out[0].data, &[0.9997532108480275, 0.9999999695400409]);
    assert_eq!(out[1].data, [-1.0, 0.0, 2.5]);
}

#[test]
fn int_and_bool_programs() {
    // count of x > 0, and x // 3 and x % 3 on int64
    let text = r#"(graph
      (input x int64 (5))
      (output (sum (0) (gt x (broadcast (5) (const int64 () 0)))))
      (output (floordiv x (broadcast (5) (const int64 () 3))))
      (output (mod x (broadcast (5) (const int64 () -3)))))"#;
    let x = Tensor::new(DType::I64, vec![5], vec![-7.0, -1.0, 0.0, 4.0, 9.0]);
    let out = run(text, &[x]);
    assert_eq!(
        (out[0].dtype, out[0].data.as_slice()),
        (DType::I64, [2.0].as_slice())
    );
    assert_eq!(out[1].data, [-3.0, -1.0, 0.0, 1.0, 3.0]);
    assert_eq!(out[2].data, [-1.0, -1.0, 0.0, -2.0, 0.0]);
}
