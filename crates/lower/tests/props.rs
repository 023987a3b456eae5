//! Property: on random graphs (every op, every dtype, broadcasting, views, reductions over
//! random axes, contractions of random specs), `Program::run` equals the reference
//! evaluator `autodiff_exec::eval`, or both fail.

mod common;

use autodiff_ir::{DType, NodeId};
use common::*;
use proptest::prelude::*;

fn outputs_of(g: &autodiff_ir::Graph) -> Vec<NodeId> {
    // float32 kernels take exp, tanh, … from the f64 path (bit-identical to the reference;
    // their own float32 math is ≤ 1 ulp, tested in `vmath32.rs`). Every test here calls
    // this before compiling anything, so the mode is read with the variable set.
    std::env::set_var("AUTODIFF_F32_MATH", "exact");
    g.outputs.clone()
}

/// Float64 graphs over larger inputs; every fourth step tries a contraction.
fn build_larger(steps: &[Step]) -> autodiff_ir::Graph {
    let steps: Vec<Step> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| if i % 4 == 1 { (9, s.1, s.2, s.3) } else { *s })
        .collect();
    let shapes = [vec![96, 80], vec![80], vec![], vec![80, 96], vec![96, 1]];
    build(&shapes, &[DType::F64], &steps, &[], true)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Small shapes, every op and dtype; bit-exact is expected (the 1e-12 tolerance only
    /// covers a `dgemm` contraction, rarely reached here).
    #[test]
    fn random_graphs_match_reference(
        dts in prop::collection::vec(0usize..4, 1..5),
        steps in prop::collection::vec((any::<u8>(), any::<u32>(), any::<u32>(), any::<u32>()), 0..60),
        outs in prop::collection::vec(any::<u32>(), 0..4),
        seed in any::<u64>(),
        bias in any::<bool>(),
    ) {
        let shapes = [vec![2, 3], vec![3], vec![], vec![3, 3], vec![1, 3]];
        let dtypes: Vec<DType> = dts.iter().map(|&d| DTYPES[d]).collect();
        let g = build(&shapes[..dts.len().max(1)], &dtypes, &steps, &outs, bias);
        let ins = inputs(&g, seed, true);
        check_against_reference(&g, &outputs_of(&g), &ins, 1e-12, 0.0)
            .map_err(TestCaseError::fail)?;
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Larger float64 shapes (threads, `dgemm`, long fused chains); sums may be ordered
    /// differently (GEMM blocking, blocked reductions), so values agree within 1e-10 of the
    /// output's magnitude: a k-term sum's rounding error is bounded by k·eps·Σ|terms|, and
    /// with cancellation Σ|terms| exceeds the output's magnitude (a saved case: a product
    /// chain near 1e307 differs by 5e-12 of the output between the two summation orders).
    #[test]
    fn larger_float_graphs_match_reference(
        steps in prop::collection::vec((any::<u8>(), any::<u32>(), any::<u32>(), any::<u32>()), 0..30),
        seed in any::<u64>(),
    ) {
        let g = build_larger(&steps);
        let ins = inputs(&g, seed, false);
        check_against_reference(&g, &outputs_of(&g), &ins, 1e-10, 1e-10)
            .map_err(TestCaseError::fail)?;
    }
}

/// The generator reaches every op (so the properties above cover them all).
#[test]
fn the_generator_reaches_every_op() {
    use std::collections::HashSet;
    let mut heads = HashSet::new();
    let mut rng = Rng(12345);
    for _ in 0..300 {
        let steps: Vec<Step> = (0..60)
            .map(|_| {
                (
                    rng.next() as u8,
                    rng.next() as u32,
                    rng.next() as u32,
                    rng.next() as u32,
                )
            })
            .collect();
        let shapes = [vec![2, 3], vec![3], vec![], vec![3, 3]];
        let g = build(&shapes, &DTYPES, &steps, &[], false);
        heads.extend(g.nodes().iter().map(|n| autodiff_ir::sexpr::op_head(&n.op)));
    }
    let all = autodiff_ir::sexpr::all_heads();
    let missing: Vec<_> = all.iter().filter(|h| !heads.contains(**h)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
}

/// The larger generator reaches the `dgemm` path and multithreaded kernels.
#[test]
fn the_larger_generator_reaches_gemm_and_threads() {
    let mut rng = Rng(777);
    let (mut gemm, mut par) = (0, 0);
    for _ in 0..300 {
        let steps: Vec<Step> = (0..30)
            .map(|_| {
                (
                    rng.next() as u8,
                    rng.next() as u32,
                    rng.next() as u32,
                    rng.next() as u32,
                )
            })
            .collect();
        let g = build_larger(&steps);
        let st = autodiff_lower::Program::compile(&g, &g.outputs)
            .unwrap()
            .stats();
        gemm += !st.contains("gemm: 0") as usize;
        par += !st.contains(", 0 multithreaded") as usize;
    }
    assert!(
        gemm >= 5 && par >= 5,
        "gemm in {gemm} graphs, threads in {par}"
    );
}
