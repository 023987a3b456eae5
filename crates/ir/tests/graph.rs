//! The graph: typing rules (good and bad), verify, hash-consing, broadcasting, builders.

use autodiff_ir::graph::broadcast_shapes;
use autodiff_ir::sexpr::{parse_graph, parse_term, print_term};
use autodiff_ir::verify::verify;
use autodiff_ir::{
    BinaryOp, ContractSpec, DType, Graph, NodeId, Op, ReduceOp, SliceDim, Tensor, UnaryOp,
};

/// Inputs used by the typing tables below.
const DECLS: &str =
    "(input x float64 (2 3)) (input y float64 (3)) (input s float64 ()) (input m float64 (3 3)) \
                     (input i int64 (4)) (input b bool (2 3)) (input f float32 (2 3))";

/// Parses one term over [`DECLS`].
fn typed(term: &str) -> Result<(Vec<usize>, DType), String> {
    let g = parse_graph(&format!("(graph {DECLS} (output {term}))")).map_err(|e| e.0)?;
    verify(&g).unwrap();
    let o = g.outputs[0];
    Ok((g.shape(o).clone(), g.dtype(o)))
}

#[test]
fn typing_rules_of_good_terms() {
    use DType::*;
    #[rustfmt::skip]
    let cases: &[(&str, &[usize], DType)] = &[
        ("(exp x)", &[2, 3], F64),
        ("(neg i)", &[4], I64),
        ("(not b)", &[2, 3], Bool),
        ("(add x x)", &[2, 3], F64),
        ("(lt x x)", &[2, 3], Bool),
        ("(and b b)", &[2, 3], Bool),
        ("(floordiv i i)", &[4], I64),
        ("(where b x (neg x))", &[2, 3], F64),
        ("(cast int64 x)", &[2, 3], I64),
        ("(broadcast (4 2 3) x)", &[4, 2, 3], F64),
        ("(broadcast (2 3) y)", &[2, 3], F64),
        ("(broadcast () s)", &[], F64),
        ("(reshape (6) x)", &[6], F64),
        ("(reshape (1 6 1) x)", &[1, 6, 1], F64),
        ("(transpose (1 0) x)", &[3, 2], F64),
        ("(sum (1) x)", &[2], F64),
        ("(sum () x)", &[2, 3], F64),
        ("(prod (0 1) x)", &[], F64),
        ("(sum (0) b)", &[3], I64),
        ("(max (0) b)", &[3], Bool),
        ("(argmax 1 x)", &[2], I64),
        ("(argmin 0 x)", &[3], I64),
        ("(contract \"ij,j->i\" x y)", &[2], F64),
        ("(contract \"ij,kj->ikj\" x x)", &[2, 2, 3], F64),
        ("(contract \",->\" s s)", &[], F64),
        ("(slice ((1 -1 2) (0 2 2)) x)", &[2, 2], F64),
        ("(slice ((5 1 0) (0 1 3)) x)", &[0, 3], F64),
        ("(set_slice ((0 1 1) (2 -1 3)) x (neg (slice ((0 1 1) (2 -1 3)) x)))", &[2, 3], F64),
        ("(gather 1 x i)", &[2, 4], F64),
        ("(gather 0 y (const int64 () 1))", &[], F64),
        ("(scatter_add 0 y i (broadcast (4) 1.0))", &[3], F64),
        ("(scatter 1 x i (broadcast (2 4) 1.0))", &[2, 3], F64),
        ("(take_along 1 x (const int64 (2 1) 0 2))", &[2, 1], F64),
        ("(scatter_along_add 0 x (const int64 (1 3) 0 1 1) (const float64 (1 3) 1 2 3))", &[2, 3], F64),
        ("(concat 0 x x (reshape (1 3) y))", &[5, 3], F64),
        ("(cumsum 1 x)", &[2, 3], F64),
        ("(cumprod 0 b)", &[2, 3], I64),
        ("(argsort 0 x)", &[2, 3], I64),
        ("(solve m (transpose (1 0) x))", &[3, 2], F64),
        ("(trisolve upper m (reshape (3 1) y))", &[3, 1], F64),
        ("(cholesky m)", &[3, 3], F64),
        ("(inv m)", &[3, 3], F64),
        ("(det m)", &[], F64),
        ("(logabsdet (cast float32 m))", &[], F32),
    ];
    for &(term, shape, dtype) in cases {
        assert_eq!(typed(term), Ok((shape.to_vec(), dtype)), "{term}");
    }
}

#[test]
fn typing_rules_refuse_bad_terms() {
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        ("(add x y)", "operand shapes differ"),
        ("(add x f)", "operand dtypes differ"),
        ("(add b b)", "add of bool operands"),
        ("(div i i)", "div expects a float operand"),
        ("(and x x)", "and expects bool operands"),
        ("(exp i)", "exp expects a float operand"),
        ("(not x)", "not expects a bool operand"),
        ("(neg b)", "neg of a bool operand"),
        ("(where x x x)", "the condition must be bool"),
        ("(where b x f)", "branch dtypes differ"),
        ("(where b y y)", "shapes differ"),
        ("(broadcast (3 2) x)", "cannot broadcast"),
        ("(broadcast (3) x)", "cannot broadcast"),
        ("(reshape (4) x)", "cannot reshape"),
        ("(transpose (0 0) x)", "not a permutation"),
        ("(transpose (0) x)", "permutation [0] for shape [2, 3]"),
        ("(sum (1 0) x)", "must be sorted and unique"),
        ("(sum (1 1) x)", "must be sorted and unique"),
        ("(sum (2) x)", "axis 2 out of range"),
        ("(argmax 2 x)", "axis 2 out of range"),
        ("(argmax 0 (slice ((0 1 0) (0 1 3)) x))", "argmax of an empty axis"),
        ("(contract \"ij,jk->ik\" x x)", "extents of 'j' differ"),
        ("(contract \"ii,j->i\" m y)", "label repeated in one operand"),
        ("(contract \"ij,j->ijk\" x y)", "output label not in an operand"),
        ("(contract \"ij,j->ii\" x y)", "output label repeated"),
        ("(contract \"ij,k->i\" x y)", "in one operand only and not the output"),
        ("(contract \"i,j->ij\" x y)", "operand shapes"),
        ("(contract \"ij,ij->ij\" b b)", "operand dtypes"),
        ("(contract \"ij->ij\" x x)", "contraction spec"),
        ("(slice ((0 0 1) (0 1 3)) x)", "slice step 0"),
        ("(slice ((1 1 2) (0 1 3)) x)", "out of range for extent 2"),
        ("(slice ((0 -1 2) (0 1 3)) x)", "out of range"),
        ("(slice ((0 1 1)) x)", "slice of 1 axes for shape [2, 3]"),
        ("(set_slice ((0 1 1) (0 1 3)) x y)", "set_slice: value [3]"),
        ("(gather 1 x x)", "indices must be int64"),
        ("(gather 2 x i)", "axis 2 out of range"),
        ("(scatter_add 1 x i x)", "do not fit"),
        ("(take_along 1 x i)", "int64 of the operand's rank"),
        ("(take_along 1 x (const int64 (1 1) 0))", "index shape"),
        ("(scatter_along_add 0 x (const int64 (1 3) 0 1 1) y)", "values must match the indices"),
        ("(concat 0 x y)", "differ in rank or dtype"),
        ("(concat 0 x (transpose (1 0) x))", "differ off axis 0"),
        ("(cumsum 2 x)", "axis 2 out of range"),
        ("(solve x x)", "square matrix"),
        ("(solve m y)", "rank 2"),
        ("(solve m (cast float32 m))", "operand dtypes differ"),
        ("(cholesky (cast int64 m))", "float operand"),
        ("(det x)", "square matrix"),
        ("(inv s)", "square matrix"),
        ("(exp x x)", "takes 1 operands, got 2"),
        ("(concat 0)", "needs at least one operand"),
    ];
    for &(term, want) in cases {
        let e = typed(term).expect_err(term);
        assert!(e.contains(want), "{term}: {e}");
    }
}

#[test]
fn contract_spec_parsing() {
    let s = ContractSpec::parse("ij,jk->ik").unwrap();
    assert_eq!(
        (s.a, s.b, s.out),
        (b"ij".to_vec(), b"jk".to_vec(), b"ik".to_vec())
    );
    assert_eq!(ContractSpec::parse(",->").unwrap().to_string(), ",->");
    for bad in ["ij,jk", "ij->ik", "i1,j->", "ij,jk->i k", ""] {
        assert!(ContractSpec::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn hash_consing_shares_equal_nodes() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![3], DType::F64);
    let a = g.add(Op::Unary(UnaryOp::Exp), vec![x]).unwrap();
    let n = g.len();
    assert_eq!(g.add(Op::Unary(UnaryOp::Exp), vec![x]).unwrap(), a);
    let b = g.add(Op::Binary(BinaryOp::Mul), vec![a, a]).unwrap();
    assert_eq!(g.add(Op::Binary(BinaryOp::Mul), vec![a, a]).unwrap(), b);
    assert_eq!(g.len(), n + 1);
    // operand order matters; so do attributes
    let c = g.add(Op::Binary(BinaryOp::Sub), vec![x, a]).unwrap();
    assert_ne!(g.add(Op::Binary(BinaryOp::Sub), vec![a, x]).unwrap(), c);
    assert_ne!(
        g.add(Op::Reduce(ReduceOp::Sum, vec![0]), vec![x]).unwrap(),
        g.add(Op::Reduce(ReduceOp::Max, vec![0]), vec![x]).unwrap()
    );
    // equal constants are one node (bit-exact: 0.0 and -0.0 differ)
    let k1 = g.constant(Tensor::new(DType::F64, vec![2], vec![1.0, 2.0]));
    let k2 = g.constant(Tensor::new(DType::F64, vec![2], vec![1.0, 2.0]));
    assert_eq!(k1, k2);
    assert_eq!(g.scalar(0.0, DType::F64), g.scalar(0.0, DType::F64));
    assert_ne!(g.scalar(0.0, DType::F64), g.scalar(-0.0, DType::F64));
    assert_ne!(g.scalar(1.0, DType::F64), g.scalar(1.0, DType::F32));
    assert_eq!(g.consts().len(), 5);
    // inputs are never merged
    let y = g.add_input("y", vec![3], DType::F64);
    assert_ne!(x, y);
    verify(&g).unwrap();
}

#[test]
fn add_refuses_leaves_and_missing_operands() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![3], DType::F64);
    assert!(g.add(Op::Input(0), vec![]).is_err());
    assert!(g.add(Op::Const(0), vec![]).is_err());
    let e = g.add(Op::Unary(UnaryOp::Exp), vec![NodeId(7)]).unwrap_err();
    assert!(e.0.contains("does not exist"), "{e}");
    assert_eq!(g.len(), 1);
    let _ = x;
}

#[test]
fn verify_catches_broken_graphs() {
    let mut g =
        parse_graph("(graph (input x float64 (3)) (input y float64 (3)) (output (add x y)))")
            .unwrap();
    verify(&g).unwrap();
    g.inputs.swap(0, 1);
    assert!(verify(&g).unwrap_err().0.contains("claims to be input"));
    g.inputs.swap(0, 1);
    g.outputs.push(NodeId(99));
    assert!(verify(&g)
        .unwrap_err()
        .0
        .contains("output 99 does not exist"));
}

#[test]
fn broadcasting_shapes() {
    let ok: &[(&[usize], &[usize], &[usize])] = &[
        (&[], &[], &[]),
        (&[3], &[], &[3]),
        (&[], &[2, 3], &[2, 3]),
        (&[2, 1], &[3], &[2, 3]),
        (&[4, 1, 5], &[3, 1], &[4, 3, 5]),
        (&[1], &[0], &[0]),
        (&[2, 0], &[1, 1], &[2, 0]),
    ];
    for &(a, b, want) in ok {
        assert_eq!(broadcast_shapes(a, b).unwrap(), want, "{a:?} {b:?}");
        assert_eq!(broadcast_shapes(b, a).unwrap(), want, "{b:?} {a:?}");
    }
    for (a, b) in [(&[3][..], &[2][..]), (&[2, 3], &[3, 2]), (&[0], &[2])] {
        assert!(broadcast_shapes(a, b)
            .unwrap_err()
            .0
            .contains("do not broadcast"));
    }
}

#[test]
fn builders_make_broadcasting_and_promotion_explicit() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![2, 3], DType::F64);
    let i = g.add_input("i", vec![3], DType::I64);
    let b = g.add_input("b", vec![2, 1], DType::Bool);
    let s = g.add_input("s", vec![], DType::F32);
    let cases = [
        (g.add_(x, i), "(add x (broadcast (2 3) (cast float64 i)))"),
        (
            g.binary(BinaryOp::Div, i, i),
            "(div (cast float64 i) (cast float64 i))",
        ),
        (
            g.binary(BinaryOp::Add, b, b),
            "(add (cast int64 b) (cast int64 b))",
        ),
        (
            g.binary(BinaryOp::Lt, b, i),
            "(lt (broadcast (2 3) (cast int64 b)) (broadcast (2 3) i))",
        ),
        (g.scale(s, 2.0), "(mul s (const float32 () 2.0))"),
        (
            g.select(b, x, s),
            "(where (broadcast (2 3) b) x (broadcast (2 3) (cast float64 s)))",
        ),
        (g.sum(x, &[1, 0, 1]), "(sum (0 1) x)"),
        (g.sum_to(x, &[1, 3]), "(reshape (1 3) (sum (0) x))"),
        (g.matmul(x, i), "(contract \"ij,j->i\" x (cast float64 i))"),
        (Ok(g.full(1.5, &[2], DType::F64)), "(broadcast (2) 1.5)"),
    ];
    for (id, want) in cases {
        assert_eq!(print_term(&g, id.unwrap()), want);
    }
    // identities are no-ops
    assert_eq!(g.sum(x, &[]).unwrap(), x);
    assert_eq!(g.reshape(x, &[2, 3]).unwrap(), x);
    assert_eq!(g.transpose(x, &[0, 1]).unwrap(), x);
    assert_eq!(g.broadcast(x, &[2, 3]).unwrap(), x);
    assert_eq!(g.cast(x, DType::F64).unwrap(), x);
    let full = vec![
        SliceDim {
            start: 0,
            step: 1,
            len: 2,
        },
        SliceDim {
            start: 0,
            step: 1,
            len: 3,
        },
    ];
    assert_eq!(g.slice(x, full).unwrap(), x);
    // reshape of a reshape folds; back to the original shape gives the original node
    let r = g.reshape(x, &[6]).unwrap();
    assert_eq!(g.reshape(r, &[2, 3]).unwrap(), x);
    let r2 = g.reshape(r, &[3, 2]).unwrap();
    assert_eq!(print_term(&g, r2), "(reshape (3 2) x)");
    assert!(g.matmul(s, s).is_err());
    // uniform constants are seen through broadcasts
    let k = parse_term(&mut g, "(reshape (2 3) (broadcast (6) 4.0))").unwrap();
    assert_eq!(g.uniform_const(k), Some(4.0));
    verify(&g).unwrap();
}
