//! Loops under simplification: bodies are simplified (recursively), loops of no or one
//! iteration disappear into plain nodes, and values stay those of the reference evaluator.

use autodiff_ir::sexpr::{parse_graph, print_graph};
use autodiff_ir::{DType, Graph, LoopSpec, NodeId, Op, Tensor};
use autodiff_simplify::{simplify, simplify_for_print};

/// A loop of `trips` over `body` (1 carry of shape (3,) named c, an int counter n, a row r
/// of xs (trips, 3), an invariant k), with its results unpacked by `Graph::loop_outputs`.
fn looped(body: &str, trips: usize) -> (Graph, Vec<NodeId>) {
    let b = parse_graph(body).unwrap();
    let mut g = Graph::new();
    let y = g.add_input("y", vec![3], DType::F64);
    let n = g.add_input("n", vec![], DType::I64);
    let xs = g.add_input("xs", vec![trips, 3], DType::F64);
    let k = g.add_input("k", vec![], DType::F64);
    let spec = LoopSpec::new(b, 2, 1, trips, false).unwrap();
    let outs = g.add_loop(spec, vec![y, n, xs, k]).unwrap();
    g.outputs = outs.clone();
    (g, outs)
}

/// c ← c*1 + 0 + r·k (plus zeros to fold), n ← n + 1; ys: Σc, c > 0.
const BODY: &str = r#"(graph
  (input c float64 (3)) (input n int64 ()) (input r float64 (3)) (input k float64 ())
  (output (add (add (mul c (broadcast (3) 1.0)) (broadcast (3) 0.0)) (mul r (broadcast (3) k))))
  (output (add n (const int64 () 1)))
  (output (sum (0) (mul c (broadcast (3) 1.0))))
  (output (gt c (broadcast (3) 0.0))))"#;

fn inputs(trips: usize) -> Vec<Tensor> {
    let xs: Vec<f64> = (0..trips * 3).map(|i| (i as f64 * 0.7).sin()).collect();
    vec![
        Tensor::new(DType::F64, vec![3], vec![0.5, -1.0, 2.0]),
        Tensor::new(DType::I64, vec![], vec![4.0]),
        Tensor::new(DType::F64, vec![trips, 3], xs),
        Tensor::scalar(0.3),
    ]
}

fn same_values(g: &Graph, outs: &[NodeId], s: &Graph, so: &[NodeId], ins: &[Tensor]) {
    let want = autodiff_exec::eval(g, ins, outs).unwrap();
    let got = autodiff_exec::eval(s, ins, so).unwrap();
    for (w, r) in want.iter().zip(&got) {
        assert_eq!((&w.shape, w.dtype, &w.data), (&r.shape, r.dtype, &r.data));
    }
}

fn loops_in(g: &Graph) -> Vec<&LoopSpec> {
    (g.nodes().iter())
        .filter_map(|n| match &n.op {
            Op::Loop(spec) => Some(spec.as_ref()),
            _ => None,
        })
        .collect()
}

#[test]
fn bodies_are_simplified() {
    let (g, outs) = looped(BODY, 4);
    for (s, so) in [simplify(&g, &outs), simplify_for_print(&g, &outs)] {
        let before = loops_in(&g)[0].body.len();
        let after = loops_in(&s)[0].body.len();
        assert!(after < before, "body of {before} nodes became {after}");
        let text = print_graph(&loops_in(&s)[0].body);
        assert!(!text.contains("1.0"), "{text}");
        same_values(&g, &outs, &s, &so, &inputs(4));
    }
}

#[test]
fn loops_in_loop_bodies_are_simplified() {
    let (inner, _) = looped(BODY, 2);
    // an outer body running the inner loop on its carry
    let mut b = Graph::new();
    let c = b.add_input("c", vec![3], DType::F64);
    let n = b.add_input("n", vec![], DType::I64);
    let xs = b.add_input("xs", vec![2, 3], DType::F64);
    let k = b.add_input("k", vec![], DType::F64);
    let spec = loops_in(&inner)[0].clone();
    let r = b.add_loop(spec, vec![c, n, xs, k]).unwrap();
    b.outputs = vec![r[0], r[1]];
    let mut g = Graph::new();
    let y = g.add_input("y", vec![3], DType::F64);
    let m = g.add_input("n", vec![], DType::I64);
    let xs = g.add_input("xs", vec![2, 3], DType::F64);
    let k = g.add_input("k", vec![], DType::F64);
    let spec = LoopSpec::new(b, 2, 0, 3, false).unwrap();
    let outs = g.add_loop(spec, vec![y, m, xs, k]).unwrap();
    let (s, so) = simplify(&g, &outs);
    let outer = loops_in(&s)[0];
    let nested = loops_in(&outer.body)[0];
    assert!(nested.body.len() < loops_in(&inner)[0].body.len());
    same_values(&g, &outs, &s, &so, &inputs(2));
}

#[test]
fn loops_of_no_or_one_trip_become_plain_nodes() {
    for trips in [0, 1] {
        let (g, outs) = looped(BODY, trips);
        let (s, so) = simplify(&g, &outs);
        assert!(loops_in(&s).is_empty(), "{}", print_graph(&s));
        let text = print_graph(&s);
        assert!(
            !text.contains("concat") && !text.contains("slice"),
            "{text}"
        );
        same_values(&g, &outs, &s, &so, &inputs(trips));
        if trips == 0 {
            // the carries come back as they went in
            assert_eq!(&so[..2], &s.inputs[..2]);
        }
    }
}

#[test]
fn a_loop_whose_results_begin_another_is_shared() {
    // the primal loop (carries only) and a residual loop (the same, plus stacked rows), as
    // reverse mode builds them: one loop runs
    let (g0, _) = looped(BODY, 5);
    let full = loops_in(&g0)[0].clone();
    let mut primal_body = full.body.clone();
    primal_body.outputs.truncate(2);
    let primal = LoopSpec::new(primal_body, 2, 1, 5, false).unwrap();
    let mut g = Graph::new();
    let ins: Vec<NodeId> = (g0.inputs.iter().zip(&g0.input_names))
        .map(|(&i, n)| g.add_input(n, g0.shape(i).clone(), g0.dtype(i)))
        .collect();
    let p = g.add_loop(primal, ins.clone()).unwrap();
    let r = g.add_loop(full, ins).unwrap();
    let outs = vec![p[0], p[1], r[2], r[3]];
    for (s, so) in [simplify(&g, &outs), simplify_for_print(&g, &outs)] {
        assert_eq!(loops_in(&s).len(), 1, "{}", print_graph(&s));
        same_values(&g, &outs, &s, &so, &inputs(5));
    }
    // a loop that differs in its carries' updates is not a prefix
    let other = BODY.replace("(add n (const int64 () 1))", "(add n (const int64 () 2))");
    let (g2, _) = looped(&other, 5);
    let mut b2 = loops_in(&g2)[0].body.clone();
    b2.outputs.truncate(2);
    let mut g3 = g.clone();
    let ins3 = g3.inputs.clone();
    let q = g3
        .add_loop(LoopSpec::new(b2, 2, 1, 5, false).unwrap(), ins3)
        .unwrap();
    let outs3 = vec![q[1], r[1]];
    let (s, so) = simplify(&g3, &outs3);
    assert_eq!(loops_in(&s).len(), 2);
    same_values(&g3, &outs3, &s, &so, &inputs(5));
}
