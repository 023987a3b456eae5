//! `Op::Loop` in the reference evaluator: equal, bit for bit, to the same iterations
//! unrolled into plain nodes (forward and reverse, with xs, ys and invariants; zero trips).

use autodiff_exec::eval;
use autodiff_ir::sexpr::parse_term;
use autodiff_ir::{DType, Graph, LoopSpec, NodeId, Tensor};

/// body(c, r, k) = (c + 0.1 * (sin(c) - k * c) + r, sum(c * c))
fn body() -> Graph {
    let mut b = Graph::new();
    b.add_input("c", vec![3], DType::F64);
    b.add_input("r", vec![3], DType::F64);
    b.add_input("k", vec![], DType::F64);
    let next = parse_term(
        &mut b,
        "(add (add c (mul (broadcast (3) 0.1) (sub (sin c) (mul (broadcast (3) k) c)))) r)",
    )
    .unwrap();
    let y = parse_term(&mut b, "(sum (0) (mul c c))").unwrap();
    b.outputs = vec![next, y];
    b
}

fn inputs(trips: usize) -> Vec<Tensor> {
    let xs: Vec<f64> = (0..trips * 3).map(|i| (i as f64 * 0.37).cos()).collect();
    vec![
        Tensor::new(DType::F64, vec![3], vec![0.3, -1.2, 2.0]),
        Tensor::new(DType::F64, vec![trips, 3], xs),
        Tensor::scalar(0.7),
    ]
}

/// The same loop as plain nodes: one copy of the body per iteration.
fn unrolled(trips: usize, reverse: bool) -> (Graph, Vec<NodeId>) {
    let b = body();
    let mut g = Graph::new();
    let y = g.add_input("y", vec![3], DType::F64);
    let xs = g.add_input("xs", vec![trips, 3], DType::F64);
    let k = g.add_input("k", vec![], DType::F64);
    let mut c = y;
    let mut ys = vec![NodeId(0); trips];
    let order: Vec<usize> = if reverse {
        (0..trips).rev().collect()
    } else {
        (0..trips).collect()
    };
    for t in order {
        let row = g
            .slice(
                xs,
                vec![
                    autodiff_ir::SliceDim {
                        start: t,
                        step: 1,
                        len: 1,
                    },
                    autodiff_ir::SliceDim {
                        start: 0,
                        step: 1,
                        len: 3,
                    },
                ],
            )
            .unwrap();
        let row = g.reshape(row, &[3]).unwrap();
        let mut map = vec![c, row, k];
        for n in b.nodes().iter().skip(3) {
            let id = match &n.op {
                autodiff_ir::Op::Const(ci) => g.copy_constant(&b, *ci),
                op => g
                    .add(
                        op.clone(),
                        n.inputs.iter().map(|x| map[x.index()]).collect(),
                    )
                    .unwrap(),
            };
            map.push(id);
        }
        c = map[b.outputs[0].index()];
        ys[t] = map[b.outputs[1].index()];
    }
    let mut outs = vec![c];
    outs.extend(ys);
    (g, outs)
}

#[test]
fn a_loop_equals_its_unrolled_iterations() {
    for trips in [0, 1, 5] {
        for reverse in [false, true] {
            let mut g = Graph::new();
            let y = g.add_input("y", vec![3], DType::F64);
            let xs = g.add_input("xs", vec![trips, 3], DType::F64);
            let k = g.add_input("k", vec![], DType::F64);
            let spec = LoopSpec::new(body(), 1, 1, trips, reverse).unwrap();
            let outs = g.add_loop(spec, vec![y, xs, k]).unwrap();
            assert_eq!(outs.len(), 2);
            let got = eval(&g, &inputs(trips), &outs).unwrap();
            let (u, uo) = unrolled(trips, reverse);
            let want = eval(&u, &inputs(trips), &uo).unwrap();
            assert_eq!(
                got[0].data, want[0].data,
                "carry, trips {trips} reverse {reverse}"
            );
            let ys: Vec<f64> = want[1..].iter().map(|t| t.data[0]).collect();
            assert_eq!(got[1].data, ys, "ys, trips {trips} reverse {reverse}");
            assert_eq!(got[1].shape, vec![trips]);
        }
    }
}

#[test]
fn loop_operands_of_the_wrong_type_are_refused() {
    let mut g = Graph::new();
    let y = g.add_input("y", vec![4], DType::F64);
    let xs = g.add_input("xs", vec![2, 3], DType::F64);
    let k = g.add_input("k", vec![], DType::F64);
    let spec = LoopSpec::new(body(), 1, 1, 2, false).unwrap();
    let e = g.add_loop(spec, vec![y, xs, k]).unwrap_err();
    assert!(e.0.contains("carry"), "{e}");
    // a body whose carry changes type is not a loop
    let mut b = body();
    b.outputs.swap(0, 1);
    assert!(LoopSpec::new(b, 1, 1, 2, false).is_err());
}
