//! Unit tests of the lowering: what gets fused, how buffers are planned, the `dgemm` path,
//! threaded kernels, and errors — each also checked against the reference evaluator.

mod common;

use autodiff_ir::{
    BinaryOp, ContractSpec, DType, Graph, NodeId, Op, ReduceOp, SliceDim, Tensor, UnaryOp,
};
use autodiff_lower::Program;
use common::*;

fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng(seed | 1);
    let n: usize = shape.iter().product();
    Tensor::new(
        DType::F64,
        shape.to_vec(),
        (0..n).map(|_| rng.unit() * 2.0 - 1.0).collect(),
    )
}

fn rand_inputs(g: &Graph, seed: u64) -> Vec<Tensor> {
    g.inputs
        .iter()
        .enumerate()
        .map(|(k, &id)| rand_tensor(g.shape(id), seed + k as u64))
        .collect()
}

/// Same order of operations as the reference: equal up to the transcendental functions,
/// which come from `vmath` (within 2 ulp of the correctly rounded value, not bit-equal to
/// libm) — a few ulp once propagated.
fn exact(g: &Graph, outs: &[NodeId]) {
    check_against_reference(g, outs, &rand_inputs(g, 3), 1e-14, 0.0).unwrap();
}

fn approx(g: &Graph, outs: &[NodeId]) {
    check_against_reference(g, outs, &rand_inputs(g, 3), 1e-12, 1e-12).unwrap();
}

#[test]
fn elementwise_chain_and_sum_is_one_kernel() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![1000], DType::F64);
    let e = g.unary(UnaryOp::Exp, x).unwrap();
    let s = g.unary(UnaryOp::Sin, x).unwrap();
    let es = g.mul(e, s).unwrap();
    let x2 = g.unary(UnaryOp::Square, x).unwrap();
    let y = g.add_(es, x2).unwrap();
    let r = g.sum(y, &[0]).unwrap();
    let p = Program::compile(&g, &[r]).unwrap();
    assert_eq!(p.num_kernels(), 1, "{}", p.stats());
    assert_eq!(p.num_fused(), (1, 1));
    assert_eq!(p.buffer_plan(), (1, 1), "only the 0-d result is stored");
    exact(&g, &[r]);
}

#[test]
fn pow_two_is_a_square() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![50], DType::F64);
    let two = g.scalar(2.0, DType::F64);
    let y = g.binary(BinaryOp::Pow, x, two).unwrap();
    let ins = rand_inputs(&g, 1);
    let got = Program::compile(&g, &[y]).unwrap().run(&ins).unwrap();
    for (a, b) in ins[0].data.iter().zip(&got[0].data) {
        assert_eq!(a * a, *b);
    }
    approx(&g, &[y]);
}

#[test]
fn a_cheap_node_read_by_two_kernels_is_recomputed_in_each() {
    // t = 0.01·x feeds two outputs: no kernel stores t (a gradient loop's body: `t9 =
    // ct·0.01` read by two carries); the two outputs, reading the same leaves, are one
    // kernel with two stores
    let mut g = Graph::new();
    let x = g.add_input("x", vec![10], DType::F64);
    let y = g.add_input("y", vec![10], DType::F64);
    let t = g.scale(x, 0.01).unwrap();
    let s = g.unary(UnaryOp::Cos, y).unwrap();
    let ts = g.mul(t, s).unwrap();
    let a = g.add_(x, ts).unwrap();
    let ty = g.mul(t, y).unwrap();
    let b = g.add_(y, ty).unwrap();
    let p = Program::compile(&g, &[a, b]).unwrap();
    assert_eq!(p.num_fused(), (1, 0), "{}", p.stats());
    assert_eq!(p.buffer_plan().0, 2, "no buffer for t: {}", p.stats());
    exact(&g, &[a, b]);
    // a transcendental function read by two kernels is stored once, not recomputed
    let e = g.unary(UnaryOp::Exp, x).unwrap();
    let a2 = g.add_(e, s).unwrap();
    let b2 = g.mul(e, y).unwrap();
    let p = Program::compile(&g, &[a2, b2]).unwrap();
    assert_eq!(p.num_fused(), (2, 0), "{}", p.stats());
    exact(&g, &[a2, b2]);
    // t as an output of its own is stored by its kernel
    let p = Program::compile(&g, &[a, b, t]).unwrap();
    assert!(p.buffer_plan().0 >= 3, "{}", p.stats());
    exact(&g, &[a, b, t]);
}

#[test]
fn a_value_stored_and_reduced_is_one_kernel() {
    // s' = s + 1e-6·cos(s) is an output and its sum is another (a while loop's body: the
    // carry and its exit test): one pass stores s' and folds it
    let mut g = Graph::new();
    let x = g.add_input("x", vec![300], DType::F64);
    let c = g.unary(UnaryOp::Cos, x).unwrap();
    let c = g.scale(c, 1e-6).unwrap();
    let s = g.add_(x, c).unwrap();
    let r = g.sum(s, &[0]).unwrap();
    let p = Program::compile(&g, &[s, r]).unwrap();
    assert_eq!(p.num_fused(), (1, 1), "{}", p.stats());
    exact(&g, &[s, r]);
    // a user of s planned before the reduction: s is stored by a kernel of its own
    let sq = g.unary(UnaryOp::Square, s).unwrap();
    let m = g.reduce(ReduceOp::Max, sq, &[0]).unwrap();
    let r2 = g.sum(s, &[0]).unwrap();
    let both = g.add_(m, r2).unwrap();
    exact(&g, &[both, s]);
}

#[test]
fn siblings_that_depend_on_each_other_are_not_merged() {
    // b reads sum(a) (through a broadcast): one kernel computing both would need a's
    // sum before a exists
    let mut g = Graph::new();
    let x = g.add_input("x", vec![50], DType::F64);
    let a = g.unary(UnaryOp::Sin, x).unwrap();
    let sa = g.sum(a, &[0]).unwrap();
    let sb = g.broadcast(sa, &[50]).unwrap();
    let xb = g.mul(x, sb).unwrap();
    let b = g.unary(UnaryOp::Exp, xb).unwrap();
    exact(&g, &[a, b]);
    let p = Program::compile(&g, &[a, b]).unwrap();
    assert_eq!(p.num_fused().0, 2, "{}", p.stats());
}

#[test]
fn dag_with_shared_intermediate_is_one_kernel() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![7, 5], DType::F64);
    let t = g.unary(UnaryOp::Tanh, x).unwrap();
    let tt = g.mul(t, t).unwrap();
    let st = g.unary(UnaryOp::Sin, t).unwrap();
    let y = g.add_(tt, st).unwrap();
    let p = Program::compile(&g, &[y]).unwrap();
    assert_eq!(p.num_kernels(), 1, "{}", p.stats());
    exact(&g, &[y]);
}

#[test]
fn broadcasts_transposes_and_slices_are_read_in_place() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![6, 4], DType::F64);
    let b = g.add_input("b", vec![4], DType::F64);
    let c = g.add_input("c", vec![6, 1], DType::F64);
    let w = g.add_input("w", vec![4, 6], DType::F64);
    let wt = g.transpose(w, &[1, 0]).unwrap();
    let xs = g
        .add(
            Op::Slice(vec![
                SliceDim {
                    start: 5,
                    step: -1,
                    len: 6,
                },
                SliceDim {
                    start: 0,
                    step: 1,
                    len: 4,
                },
            ]),
            vec![x],
        )
        .unwrap();
    let y = g.add_(xs, b).unwrap();
    let y = g.mul(y, c).unwrap();
    let y = g.sub(y, wt).unwrap();
    let p = Program::compile(&g, &[y]).unwrap();
    assert_eq!(p.num_kernels(), 1, "{}", p.stats());
    exact(&g, &[y]);
    // a reshape of contiguous data is free too
    let r = g.reshape(x, &[24]).unwrap();
    let e = g.unary(UnaryOp::Exp, r).unwrap();
    let p = Program::compile(&g, &[e, r]).unwrap();
    assert_eq!(p.num_kernels(), 1, "{}", p.stats());
    exact(&g, &[e, r]);
}

#[test]
fn reductions_over_every_axis_set() {
    for op in [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min] {
        for mask in 1u32..16 {
            let mut g = Graph::new();
            let x = g.add_input("x", vec![3, 4, 5, 2], DType::F64);
            let e = g.unary(UnaryOp::Exp, x).unwrap();
            let axes: Vec<usize> = (0..4).filter(|i| (mask >> i) & 1 == 1).collect();
            let r = g.reduce(op, e, &axes).unwrap();
            let p = Program::compile(&g, &[r]).unwrap();
            // one contiguous block: one fused kernel; two blocks: two kernels
            let blocks = (0..4)
                .filter(|&i| (mask >> i) & 1 == 1 && (i == 0 || (mask >> (i - 1)) & 1 == 0))
                .count();
            assert_eq!(p.num_kernels(), blocks, "{op:?} {axes:?}: {}", p.stats());
            exact(&g, &[r]);
        }
    }
}

#[test]
fn large_reductions_split_across_threads() {
    // above PAR_MIN: split over kept axes (exact) or the reduced axis (reordered sums)
    for (shape, axes) in [
        (vec![400, 300], vec![1]),
        (vec![400, 300], vec![0]),
        (vec![400, 300], vec![0, 1]),
        (vec![200_000], vec![0]),
        (vec![3, 200, 300], vec![1, 2]),
    ] {
        for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min] {
            let mut g = Graph::new();
            let x = g.add_input("x", shape.clone(), DType::F64);
            let e = g.unary(UnaryOp::Cos, x).unwrap();
            let r = g.reduce(op, e, &axes).unwrap();
            approx(&g, &[r]);
        }
    }
    // a large elementwise kernel split across threads is exact
    let mut g = Graph::new();
    let x = g.add_input("x", vec![300, 400], DType::F64);
    let b = g.add_input("b", vec![400], DType::F64);
    let y = g.add_(x, b).unwrap();
    let y = g.unary(UnaryOp::Sigmoid, y).unwrap();
    exact(&g, &[y]);
}

#[test]
fn float32_and_int_chains_round_per_node() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![40], DType::F32);
    let e = g.unary(UnaryOp::Exp, x).unwrap();
    let s = g.unary(UnaryOp::Sin, e).unwrap();
    let y = g.mul(s, e).unwrap();
    let i = g.cast(y, DType::I64).unwrap();
    let three = g.scalar(3.0, DType::I64);
    let j = g.binary(BinaryOp::FloorDiv, i, three).unwrap();
    let k = g.binary(BinaryOp::Mod, i, three).unwrap();
    let sum = g.sum(y, &[0]).unwrap();
    let ins = vec![Tensor::new(
        DType::F32,
        vec![40],
        (0..40).map(|v| (v as f64 - 20.0) * 0.37).collect(),
    )];
    check_against_reference(&g, &[y, j, k, sum], &ins, 0.0, 0.0).unwrap();
}

#[test]
fn buffers_are_reused_and_elementwise_kernels_write_in_place() {
    // cumsum (not fused) between elementwise kernels: each exp/sin writes over its dying
    // operand, and the chain needs two slots however long it is
    let mut g = Graph::new();
    let x = g.add_input("x", vec![100], DType::F64);
    let mut h = x;
    for _ in 0..10 {
        let c = g.add(Op::Cumsum(0), vec![h]).unwrap();
        h = g.unary(UnaryOp::Sin, c).unwrap();
    }
    let p = Program::compile(&g, &[h]).unwrap();
    assert_eq!(p.num_kernels(), 20, "{}", p.stats());
    let (slots, elems) = p.buffer_plan();
    assert_eq!(slots, 2, "{}", p.stats());
    assert_eq!(elems, 200);
    assert_eq!(p.num_in_place(), 10, "{}", p.stats());
    // ten rounds of sin(cumsum over 100 elements) amplify sin's last-bit differences from
    // libm (~1e-16) by the chain's condition number (measured: ~2e-12 relative)
    check_against_reference(&g, &[h], &rand_inputs(&g, 3), 1e-9, 1e-9).unwrap();
}

#[test]
fn contractions_take_gemm_with_views_batches_and_packing() {
    let cases: [(&str, Vec<usize>, Vec<usize>); 9] = [
        ("ij,jk->ik", vec![40, 30], vec![30, 50]),
        ("ji,jk->ik", vec![30, 40], vec![30, 50]),
        ("ij,kj->ki", vec![40, 30], vec![50, 30]),
        ("bij,bjk->bik", vec![3, 20, 30], vec![3, 30, 25]),
        ("ibj,jkb->bki", vec![20, 3, 30], vec![30, 25, 3]),
        ("ij,kl->ikjl", vec![20, 16], vec![18, 15]),
        ("ijk,kj->i", vec![40, 12, 10], vec![10, 12]),
        ("ikjl,jlm->mik", vec![6, 7, 8, 9], vec![8, 9, 10]),
        ("ij,j->i", vec![100, 80], vec![80]),
    ];
    for (spec, sa, sb) in cases {
        let mut g = Graph::new();
        let a = g.add_input("a", sa, DType::F64);
        let b = g.add_input("b", sb, DType::F64);
        let c = g
            .add(Op::Contract(ContractSpec::parse(spec).unwrap()), vec![a, b])
            .unwrap();
        let e = g.unary(UnaryOp::Tanh, c).unwrap();
        let p = Program::compile(&g, &[c, e]).unwrap();
        assert!(p.stats().contains("gemm: 1"), "{spec}: {}", p.stats());
        approx(&g, &[c, e]);
    }
    // a transposed operand is read in place (no copy)
    let mut g = Graph::new();
    let a = g.add_input("a", vec![64, 48], DType::F64);
    let b = g.add_input("b", vec![64, 32], DType::F64);
    let at = g.transpose(a, &[1, 0]).unwrap();
    let c = g.matmul(at, b).unwrap();
    let p = Program::compile(&g, &[c]).unwrap();
    assert_eq!(p.num_kernels(), 1, "{}", p.stats());
    approx(&g, &[c]);
    // small and dot-product contractions sum in the reference's order: bit-exact
    let mut g = Graph::new();
    let a = g.add_input("a", vec![5, 4], DType::F64);
    let b = g.add_input("b", vec![4, 3], DType::F64);
    let v = g.add_input("v", vec![1000], DType::F64);
    let c = g.matmul(a, b).unwrap();
    let d = g.matmul(v, v).unwrap();
    exact(&g, &[c, d]);
}

#[test]
fn every_data_movement_op_matches() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![5, 6], DType::F64);
    let idx = g.constant(Tensor::new(DType::I64, vec![4], vec![4.0, 0.0, 4.0, 2.0]));
    let ga = g.add(Op::Gather(1), vec![x, idx]).unwrap();
    let v = g.add(Op::Gather(0), vec![x, idx]).unwrap();
    let v2 = g.unary(UnaryOp::Exp, v).unwrap();
    let sc = g.add(Op::ScatterAdd(0), vec![x, idx, v2]).unwrap();
    let st = g.add(Op::Scatter(0), vec![x, idx, v2]).unwrap();
    let ti = g.constant(Tensor::new(
        DType::I64,
        vec![5, 2],
        vec![0., 5., 1., 1., 2., 3., 5., 0., 4., 4.],
    ));
    let ta = g.add(Op::TakeAlong(1), vec![x, ti]).unwrap();
    let taa = g.add(Op::ScatterAlongAdd(1), vec![x, ti, ta]).unwrap();
    let xt = g.transpose(x, &[1, 0]).unwrap();
    let cc = g.add(Op::Concat(0), vec![xt, xt]).unwrap();
    let cs = g.add(Op::Cumsum(1), vec![xt]).unwrap();
    let cp = g.add(Op::Cumprod(0), vec![xt]).unwrap();
    let asrt = g.add(Op::ArgSort(1), vec![xt]).unwrap();
    let am = g.add(Op::ArgMax(0, true), vec![xt]).unwrap();
    let an = g.add(Op::ArgMax(1, false), vec![xt]).unwrap();
    let sl = vec![
        SliceDim {
            start: 4,
            step: -2,
            len: 3,
        },
        SliceDim {
            start: 1,
            step: 2,
            len: 3,
        },
    ];
    let part = g.add(Op::Slice(sl.clone()), vec![x]).unwrap();
    let part = g.unary(UnaryOp::Neg, part).unwrap();
    let ss = g.add(Op::SetSlice(sl), vec![x, part]).unwrap();
    exact(&g, &[ga, sc, st, ta, taa, cc, cs, cp, asrt, am, an, ss]);
}

#[test]
fn linear_algebra_matches() {
    let mut g = Graph::new();
    let a = g.add_input("a", vec![4, 4], DType::F64);
    let b = g.add_input("b", vec![4, 2], DType::F64);
    let at = g.transpose(a, &[1, 0]).unwrap();
    let spd = g.matmul(a, at).unwrap();
    let eye = g.constant(Tensor::new(
        DType::F64,
        vec![4, 4],
        (0..16)
            .map(|i| if i % 5 == 0 { 4.0 } else { 0.0 })
            .collect(),
    ));
    let spd = g.add_(spd, eye).unwrap();
    let outs: Vec<NodeId> = [
        (Op::Solve, vec![spd, b]),
        (Op::TriSolve(true), vec![spd, b]),
        (Op::TriSolve(false), vec![spd, b]),
        (Op::Cholesky, vec![spd]),
        (Op::Inv, vec![spd]),
        (Op::Det, vec![spd]),
        (Op::LogAbsDet, vec![spd]),
    ]
    .into_iter()
    .map(|(op, ins)| g.add(op, ins).unwrap())
    .collect();
    exact(&g, &outs);
}

#[test]
fn bad_inputs_and_bad_values_are_errors() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![3], DType::F64);
    let i = g.add_input("i", vec![2], DType::I64);
    let ga = g.add(Op::Gather(0), vec![x, i]).unwrap();
    let p = Program::compile(&g, &[ga]).unwrap();
    let ok = [
        Tensor::new(DType::F64, vec![3], vec![1., 2., 3.]),
        Tensor::new(DType::I64, vec![2], vec![2., 0.]),
    ];
    assert_eq!(p.run(&ok).unwrap()[0].data, vec![3., 1.]);
    let bad = [
        ok[0].clone(),
        Tensor::new(DType::I64, vec![2], vec![3., 0.]),
    ];
    let e = p.run(&bad).unwrap_err();
    assert!(e.0.contains("out of range"), "{e}");
    assert!(p.run(&ok[..1]).is_err());
    assert!(p.run(&[ok[1].clone(), ok[0].clone()]).is_err());
    assert!(p.run_f64(&[&[1.0, 2.0], &[0.0, 0.0]]).is_err());
    // int to a negative power
    let mut g = Graph::new();
    let a = g.add_input("a", vec![2], DType::I64);
    let b = g.add_input("b", vec![2], DType::I64);
    let c = g.binary(BinaryOp::Pow, a, b).unwrap();
    let p = Program::compile(&g, &[c]).unwrap();
    let ins = [
        Tensor::new(DType::I64, vec![2], vec![2., 3.]),
        Tensor::new(DType::I64, vec![2], vec![1., -1.]),
    ];
    assert!(p.run(&ins).unwrap_err().0.contains("negative"));
    // max over an empty axis
    let mut g = Graph::new();
    let a = g.add_input("a", vec![0, 2], DType::F64);
    let m = g.reduce(ReduceOp::Max, a, &[0]).unwrap();
    let s = g.reduce(ReduceOp::Sum, a, &[0]).unwrap();
    let p = Program::compile(&g, &[m]).unwrap();
    assert!(p
        .run(&[Tensor::new(DType::F64, vec![0, 2], vec![])])
        .is_err());
    exact(&g, &[s]);
    // unknown output
    assert!(Program::compile(&g, &[NodeId(99)]).is_err());
}

#[test]
fn outputs_that_are_inputs_views_or_duplicates() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![2, 3], DType::F64);
    let t = g.transpose(x, &[1, 0]).unwrap();
    let b = g.broadcast(x, &[4, 2, 3]).unwrap();
    let e = g.unary(UnaryOp::Exp, t).unwrap();
    exact(&g, &[x, t, b, e, e, x]);
}

#[test]
fn stats_describe_the_program() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![64, 64], DType::F64);
    let y = g.matmul(x, x).unwrap();
    let z = g.unary(UnaryOp::Exp, y).unwrap();
    let s = g.sum(z, &[1]).unwrap();
    let p = Program::compile(&g, &[s]).unwrap();
    let st = p.stats();
    assert!(
        st.contains("kernels: 2") && st.contains("gemm: 1") && st.contains("1 with a reduction"),
        "{st}"
    );
}

#[test]
fn a_value_stored_and_max_reduced_over_an_empty_axis_fails_cleanly() {
    // the max of nothing is an error at run time; the value itself must still be planned
    let mut g = Graph::new();
    let x = g.add_input("x", vec![0, 3], DType::F64);
    let e = g.unary(UnaryOp::Exp, x).unwrap();
    let m = g.reduce(ReduceOp::Max, e, &[0]).unwrap();
    let p = Program::compile(&g, &[e, m]).unwrap();
    let err = p
        .run(&[Tensor::new(DType::F64, vec![0, 3], vec![])])
        .unwrap_err();
    assert!(err.to_string().contains("empty axis"), "{err}");
}
