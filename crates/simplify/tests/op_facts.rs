//! One definition of each elementwise op, four places that compute it: for every unary and
//! binary op at special inputs (±0, ±inf, NaN, subnormals, ±740, ±800, huge and tiny
//! values, halves), the IR's scalar definition (`eval_f64`), the reference evaluator, the
//! constant folder and the compiled fast path agree bit for bit — except that the fast
//! path takes the transcendental functions from `lower::vmath`, which is within 2 ulp of
//! the correctly rounded value and exact wherever the result is special (NaN, ±inf, ±0
//! with its sign, ±1). `tests/test_op_facts.py` compares the same table with NumPy.

use autodiff_ir::{BinaryOp, DType, Graph, NodeId, Op, Tensor, UnaryOp};

/// The special inputs; repeated past one fused chunk (256) so vector bodies and scalar
/// tails both see each value.
const SPECIAL: [f64; 34] = [
    0.0,
    -0.0,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    5e-324,
    -5e-324,
    1e-310,
    -1e-310,
    2.2250738585072014e-308,
    1e-300,
    -1e-300,
    1e300,
    -1e300,
    f64::MAX,
    800.0,
    -800.0,
    740.0,
    -740.0,
    709.0,
    -709.0,
    0.5,
    -0.5,
    1.0,
    -1.0,
    2.0,
    -2.0,
    2.5,
    -3.5,
    3.7,
    -3.7,
    1e-8,
    0.49999999999999994,
    1e16,
];

/// Ops the fast path takes from `vmath` (≤ 2 ulp) instead of `eval_f64` (bit for bit).
fn from_vmath_unary(u: UnaryOp) -> bool {
    use UnaryOp::*;
    matches!(
        u,
        Exp | Expm1 | Log | Log1p | Log2 | Log10 | Sin | Cos | Sinh | Cosh | Tanh | Sigmoid
    )
}

fn repeated(xs: &[f64], n: usize) -> Vec<f64> {
    xs.iter().copied().cycle().take(n).collect()
}

/// Distance in units in the last place (same-sign finite values), `u64::MAX` otherwise.
fn ulps(a: f64, b: f64) -> u64 {
    if a.is_sign_negative() != b.is_sign_negative() || !a.is_finite() || !b.is_finite() {
        return if a.to_bits() == b.to_bits() {
            0
        } else {
            u64::MAX
        };
    }
    a.to_bits().abs_diff(b.to_bits())
}

/// Whether `got` (fast path) is acceptable for `want` (the definition).
fn close(want: f64, got: f64, exact: bool) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    let special = !want.is_finite() || want == 0.0 || want.abs() == 1.0;
    if exact || special {
        return want.to_bits() == got.to_bits();
    }
    ulps(want, got) <= 2
}

fn same(want: f64, got: f64) -> bool {
    (want.is_nan() && got.is_nan()) || want.to_bits() == got.to_bits()
}

/// The values of the evaluator, the fast path and the folder for `build(inputs)`.
fn three_ways(data: &[Vec<f64>], build: impl Fn(&mut Graph, &[NodeId]) -> NodeId) -> [Vec<f64>; 3] {
    let n = data[0].len();
    let tensors: Vec<Tensor> = data
        .iter()
        .map(|d| Tensor::new(DType::F64, vec![n], d.clone()))
        .collect();
    let mut g = Graph::new();
    let ins: Vec<NodeId> = (0..data.len())
        .map(|k| g.add_input(&format!("x{k}"), vec![n], DType::F64))
        .collect();
    let out = build(&mut g, &ins);
    let reference = autodiff_exec::eval(&g, &tensors, &[out]).unwrap();
    let fast = autodiff_lower::Program::compile(&g, &[out])
        .unwrap()
        .run(&tensors)
        .unwrap();
    let mut c = Graph::new();
    let consts: Vec<NodeId> = tensors.iter().map(|t| c.constant(t.clone())).collect();
    let out_c = build(&mut c, &consts);
    let (s, outs) = autodiff_simplify::simplify(&c, &[out_c]);
    assert!(matches!(s.node(outs[0]).op, Op::Const(_)), "not folded");
    let folded = s.const_value(outs[0]).unwrap().data.to_vec();
    [reference[0].data.to_vec(), fast[0].data.to_vec(), folded]
}

#[test]
fn unary_ops_agree_at_special_inputs() {
    let xs = repeated(&SPECIAL, 300);
    for u in UnaryOp::ALL {
        if u == UnaryOp::Not {
            continue; // bool operands: checked with the predicates below
        }
        let [reference, fast, folded] =
            three_ways(std::slice::from_ref(&xs), |g, i| g.unary(u, i[0]).unwrap());
        for (k, &x) in xs.iter().enumerate() {
            let want = u.eval_f64(x);
            let name = u.name();
            assert!(
                same(want, reference[k]),
                "{name}({x:e}): evaluator {:e}, definition {want:e}",
                reference[k]
            );
            assert!(
                same(want, folded[k]),
                "{name}({x:e}): folder {:e}, definition {want:e}",
                folded[k]
            );
            assert!(
                close(want, fast[k], !from_vmath_unary(u)),
                "{name}({x:e}): fast path {:e}, definition {want:e}",
                fast[k]
            );
        }
    }
}

#[test]
fn binary_ops_agree_at_special_inputs() {
    let (mut a, mut b) = (vec![], vec![]);
    for &x in &SPECIAL {
        for &y in &SPECIAL {
            a.push(x);
            b.push(y);
        }
    }
    for op in BinaryOp::ALL {
        if matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor) {
            continue; // bool operands: below
        }
        let [reference, fast, folded] = three_ways(&[a.clone(), b.clone()], |g, i| {
            g.binary(op, i[0], i[1]).unwrap()
        });
        for k in 0..a.len() {
            let (x, y, want) = (a[k], b[k], op.eval_f64(a[k], b[k]));
            let name = op.name();
            assert!(
                same(want, reference[k]),
                "{name}({x:e}, {y:e}): evaluator {:e}, definition {want:e}",
                reference[k]
            );
            assert!(
                same(want, folded[k]),
                "{name}({x:e}, {y:e}): folder {:e}, definition {want:e}",
                folded[k]
            );
            assert!(
                close(want, fast[k], op != BinaryOp::LogAddExp),
                "{name}({x:e}, {y:e}): fast path {:e}, definition {want:e}",
                fast[k]
            );
        }
    }
}

#[test]
fn logical_ops_agree() {
    let (p, q) = (vec![0.0, 0.0, 1.0, 1.0], vec![0.0, 1.0, 0.0, 1.0]);
    let bools = |d: &[f64]| Tensor::new(DType::Bool, vec![d.len()], d.to_vec());
    for op in [BinaryOp::And, BinaryOp::Or, BinaryOp::Xor] {
        let mut g = Graph::new();
        let (x, y) = (g.constant(bools(&p)), g.constant(bools(&q)));
        let o = g.binary(op, x, y).unwrap();
        let n = g.unary(UnaryOp::Not, o).unwrap();
        let (s, outs) = autodiff_simplify::simplify(&g, &[o, n]);
        let want: Vec<f64> = p.iter().zip(&q).map(|(&a, &b)| op.eval_f64(a, b)).collect();
        let not: Vec<f64> = want.iter().map(|&v| UnaryOp::Not.eval_f64(v)).collect();
        assert_eq!(s.const_value(outs[0]).unwrap().data.to_vec(), want);
        assert_eq!(s.const_value(outs[1]).unwrap().data.to_vec(), not);
        assert_eq!(
            autodiff_exec::eval(&g, &[], &[o, n]).unwrap()[1]
                .data
                .to_vec(),
            not
        );
    }
}

/// The values the issue named: NumPy's `np.sign(-0.0)` is `+0.0`; sigmoid saturates to
/// exactly 1 and 0 at ±800 without overflow.
#[test]
fn named_special_values() {
    assert_eq!(UnaryOp::Sign.eval_f64(-0.0).to_bits(), 0.0f64.to_bits());
    assert!(UnaryOp::Sign.eval_f64(f64::NAN).is_nan());
    assert_eq!(UnaryOp::Sigmoid.eval_f64(800.0), 1.0);
    assert_eq!(
        UnaryOp::Sigmoid.eval_f64(-800.0).to_bits(),
        0.0f64.to_bits()
    );
    assert_eq!(UnaryOp::Sigmoid.eval_f64(-0.0), 0.5);
    assert!(BinaryOp::Maximum.eval_f64(f64::NAN, 1.0).is_nan());
    assert!(BinaryOp::Minimum.eval_f64(1.0, f64::NAN).is_nan());
    assert_eq!(
        BinaryOp::Mod.eval_f64(-0.0, 3.0).to_bits(),
        0.0f64.to_bits()
    );
    assert_eq!(
        BinaryOp::FloorDiv.eval_f64(-0.0, 3.0).to_bits(),
        (-0.0f64).to_bits()
    );
}
