//! Every op against values computed with NumPy 2 / SciPy (pasted, no Python at test time).

// Expected values are pasted from NumPy, so some equal well-known constants.
#![allow(clippy::approx_constant)]
// `&[t.clone()]` reads better than `std::slice::from_ref(&t)` in these tables.
#![allow(clippy::cloned_ref_to_slice_refs)]

use autodiff_exec::{eval, ExecError};
use autodiff_ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceOp, SliceDim, Tensor, UnaryOp};

const NAN: f64 = f64::NAN;
const INF: f64 = f64::INFINITY;

fn f64s(shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::new(DType::F64, shape.to_vec(), data.to_vec())
}

fn i64s(shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::new(DType::I64, shape.to_vec(), data.to_vec())
}

/// 0..n as f64.
fn range(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64).collect()
}

/// Equal up to `rtol` relative (and 1e-15 absolute); NaN equals NaN; infinities exactly.
fn assert_close(got: &[f64], want: &[f64], rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan())
            || g == w
            || (w.is_finite() && (g - w).abs() <= rtol * w.abs() + 1e-15);
        assert!(
            ok,
            "{what}[{i}]: got {g:e}, want {w:e}\n got {got:?}\nwant {want:?}"
        );
    }
}

/// A graph with one input per tensor, `build` adds the output; returns its value.
fn run(
    ins: &[Tensor],
    build: impl FnOnce(&mut Graph, &[NodeId]) -> NodeId,
) -> Result<Tensor, ExecError> {
    let mut g = Graph::new();
    let ids: Vec<NodeId> = ins
        .iter()
        .enumerate()
        .map(|(k, t)| g.add_input(&format!("x{k}"), t.shape.clone(), t.dtype))
        .collect();
    let out = build(&mut g, &ids);
    autodiff_ir::verify::verify(&g).unwrap();
    Ok(eval(&g, ins, &[out])?.remove(0))
}

/// One op applied to the inputs.
fn op(ins: &[Tensor], op: Op) -> Result<Tensor, ExecError> {
    run(ins, |g, x| g.add(op, x.to_vec()).unwrap())
}

fn check(ins: &[Tensor], o: Op, shape: &[usize], want: &[f64]) {
    let what = format!("{o:?}");
    let t = op(ins, o).unwrap();
    assert_eq!(t.shape, shape, "{what}: shape");
    assert_close(&t.data, want, 1e-14, &what);
}

const X: [f64; 11] = [-2.5, -1.5, -0.5, -0.3, 0.0, 0.2, 0.5, 0.7, 1.5, 2.5, 3.7];

#[rustfmt::skip]
const UNARY: [(&str, [f64; 11]); 31] = [
    ("neg", [2.5, 1.5, 0.5, 0.3, -0.0, -0.2, -0.5, -0.7, -1.5, -2.5, -3.7]),
    ("abs", [2.5, 1.5, 0.5, 0.3, 0.0, 0.2, 0.5, 0.7, 1.5, 2.5, 3.7]),
    ("sign", [-1.0, -1.0, -1.0, -1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
    ("exp", [0.0820849986238988, 0.22313016014842982, 0.6065306597126334, 0.7408182206817179, 1.0, 1.2214027581601699, 1.6487212707001282, 2.0137527074704766, 4.4816890703380645, 12.182493960703473, 40.4473043600674]),
    ("expm1", [-0.9179150013761012, -0.7768698398515702, -0.3934693402873666, -0.2591817793182821, 0.0, 0.22140275816016985, 0.6487212707001282, 1.0137527074704764, 3.481689070338065, 11.182493960703473, 39.4473043600674]),
    ("log", [NAN, NAN, NAN, NAN, -INF, -1.6094379124341003, -0.6931471805599453, -0.35667494393873245, 0.4054651081081644, 0.9162907318741551, 1.308332819650179]),
    ("log1p", [NAN, NAN, -0.6931471805599453, -0.35667494393873234, 0.0, 0.18232155679395465, 0.4054651081081644, 0.5306282510621704, 0.9162907318741551, 1.252762968495368, 1.547562508716013]),
    ("log2", [NAN, NAN, NAN, NAN, -INF, -2.321928094887362, -1.0, -0.5145731728297583, 0.5849625007211562, 1.3219280948873624, 1.8875252707415875]),
    ("log10", [NAN, NAN, NAN, NAN, -INF, -0.6989700043360187, -0.3010299956639812, -0.1549019599857432, 0.17609125905568124, 0.3979400086720376, 0.568201724066995]),
    ("sqrt", [NAN, NAN, NAN, NAN, 0.0, 0.4472135954999579, 0.7071067811865476, 0.8366600265340756, 1.224744871391589, 1.5811388300841898, 1.9235384061671346]),
    ("square", [6.25, 2.25, 0.25, 0.09, 0.0, 0.04000000000000001, 0.25, 0.48999999999999994, 2.25, 6.25, 13.690000000000001]),
    ("reciprocal", [-0.4, -0.6666666666666666, -2.0, -3.3333333333333335, INF, 5.0, 2.0, 1.4285714285714286, 0.6666666666666666, 0.4, 0.27027027027027023]),
    ("sin", [-0.5984721441039565, -0.9974949866040544, -0.479425538604203, -0.29552020666133955, 0.0, 0.19866933079506122, 0.479425538604203, 0.644217687237691, 0.9974949866040544, 0.5984721441039565, -0.5298361409084934]),
    ("cos", [-0.8011436155469337, 0.0707372016677029, 0.8775825618903728, 0.955336489125606, 1.0, 0.9800665778412416, 0.8775825618903728, 0.7648421872844885, 0.0707372016677029, -0.8011436155469337, -0.848100031710408]),
    ("tan", [0.7470222972386603, -14.101419947171719, -0.5463024898437905, -0.3093362496096232, 0.0, 0.2027100355086725, 0.5463024898437905, 0.8422883804630794, 14.101419947171719, -0.7470222972386603, 0.6247330752245639]),
    ("arcsin", [NAN, NAN, -0.5235987755982989, -0.30469265401539747, 0.0, 0.2013579207903308, 0.5235987755982989, 0.775397496610753, NAN, NAN, NAN]),
    ("arccos", [NAN, NAN, 2.0943951023931957, 1.8754889808102941, 1.5707963267948966, 1.369438406004566, 1.0471975511965976, 0.7953988301841436, NAN, NAN, NAN]),
    ("arctan", [-1.1902899496825317, -0.982793723247329, -0.4636476090008061, -0.2914567944778671, 0.0, 0.19739555984988078, 0.4636476090008061, 0.6107259643892086, 0.982793723247329, 1.1902899496825317, 1.3068326031691921]),
    ("sinh", [-6.0502044810397875, -2.1292794550948173, -0.5210953054937474, -0.3045202934471426, 0.0, 0.201336002541094, 0.5210953054937474, 0.7585837018395335, 2.1292794550948173, 6.0502044810397875, 20.21129041679853]),
    ("cosh", [6.132289479663686, 2.352409615243247, 1.1276259652063807, 1.0453385141288605, 1.0, 1.020066755619076, 1.1276259652063807, 1.255169005630943, 2.352409615243247, 6.132289479663686, 20.23601394326887]),
    ("tanh", [-0.9866142981514303, -0.9051482536448665, -0.46211715726000974, -0.2913126124515909, 0.0, 0.197375320224904, 0.46211715726000974, 0.6043677771171634, 0.9051482536448665, 0.9866142981514303, 0.9987782412811311]),
    ("arcsinh", [-1.6472311463710958, -1.1947632172871092, -0.48121182505960347, -0.29567304756342244, 0.0, 0.19869011034924142, 0.48121182505960347, 0.6526665660823557, 1.1947632172871092, 1.6472311463710958, 2.0192606561549606]),
    ("arccosh", [NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, 0.9624236501192069, 1.566799236972411, 1.9826969446812033]),
    ("arctanh", [NAN, NAN, -0.5493061443340549, -0.3095196042031117, 0.0, 0.2027325540540822, 0.5493061443340549, 0.8673005276940531, NAN, NAN, NAN]),
    ("floor", [-3.0, -2.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0]),
    ("ceil", [-2.0, -1.0, -0.0, -0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 3.0, 4.0]),
    ("round", [-2.0, -2.0, -0.0, -0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 2.0, 4.0]),
    ("sigmoid", [0.07585818002124355, 0.18242552380635635, 0.3775406687981454, 0.425557483188341, 0.5, 0.549833997312478, 0.6224593312018546, 0.6681877721681662, 0.8175744761936437, 0.9241418199787566, 0.9758729785823308]),
    ("erf", [-0.999593047982555, -0.9661051464753108, -0.5204998778130465, -0.3286267594591274, 0.0, 0.22270258921047845, 0.5204998778130465, 0.6778011938374183, 0.9661051464753108, 0.999593047982555, 0.9999998328489421]),
    ("gammaln", [-0.05624371649767401, 0.860047015376481, 1.2655121234846454, 1.4648400508576027, INF, 1.5240638224307845, 0.5723649429247, 0.2608672465316665, -0.12078223763524526, 0.2846828704729192, 1.428072326665388]),
    ("digamma", [1.1031566406452433, 0.7031566406452434, 0.03648997397857651, 2.1133097796353972, -INF, -5.289039896592189, -1.9635100260214235, -1.2200235536979347, 0.03648997397857652, 0.7031566406452432, 1.1671535393615113]),
];

#[test]
fn unary_ops() {
    for (name, want) in UNARY {
        let u = UnaryOp::from_name(name).unwrap();
        let t = op(&[f64s(&[11], &X)], Op::Unary(u)).unwrap();
        let rtol = if matches!(u, UnaryOp::Gammaln | UnaryOp::Digamma) {
            1e-13
        } else {
            1e-15
        };
        assert_close(&t.data, &want, rtol, name);
    }
    // not, and signs of zero kept where NumPy keeps them
    let b = Tensor::new(DType::Bool, vec![2], vec![1.0, 0.0]);
    check(&[b], Op::Unary(UnaryOp::Not), &[2], &[0.0, 1.0]);
    let neg = op(&[f64s(&[], &[0.0])], Op::Unary(UnaryOp::Neg)).unwrap();
    assert!(neg.data[0] == 0.0 && neg.data[0].is_sign_negative());
}

#[test]
fn sigmoid_and_logaddexp_are_stable() {
    check(
        &[f64s(&[4], &[-800.0, -40.0, 40.0, 800.0])],
        Op::Unary(UnaryOp::Sigmoid),
        &[4],
        &[0.0, 4.248354255291589e-18, 1.0, 1.0],
    );
    let a = f64s(&[3], &[1000.0, -1000.0, -INF]);
    let b = f64s(&[3], &[999.0, -1001.0, -INF]);
    check(
        &[a, b],
        Op::Binary(BinaryOp::LogAddExp),
        &[3],
        &[1000.3132616875182, -999.6867383124818, -INF],
    );
}

const A: [f64; 10] = [-7.0, -3.5, -1.0, 0.0, 0.5, 2.0, 3.0, 7.25, 0.0, -0.0];
const B: [f64; 10] = [2.0, -2.0, 3.0, 1.5, -0.25, 2.0, 0.5, -3.0, 0.0, 3.0];

#[rustfmt::skip]
const BINARY: [(&str, [f64; 10]); 17] = [
    ("add", [-5.0, -5.5, 2.0, 1.5, 0.25, 4.0, 3.5, 4.25, 0.0, 3.0]),
    ("sub", [-9.0, -1.5, -4.0, -1.5, 0.75, 0.0, 2.5, 10.25, 0.0, -3.0]),
    ("mul", [-14.0, 7.0, -3.0, 0.0, -0.125, 4.0, 1.5, -21.75, 0.0, -0.0]),
    ("div", [-3.5, 1.75, -0.3333333333333333, 0.0, -2.0, 1.0, 6.0, -2.4166666666666665, NAN, -0.0]),
    ("floordiv", [-4.0, 1.0, -1.0, 0.0, -2.0, 1.0, 6.0, -3.0, NAN, -0.0]),
    ("mod", [1.0, -1.5, 2.0, 0.0, -0.0, 0.0, 0.0, -1.75, NAN, 0.0]),
    ("pow", [49.0, 0.08163265306122448, -1.0, 0.0, 1.189207115002721, 4.0, 1.7320508075688772, 0.002624133830825372, 1.0, -0.0]),
    ("maximum", [2.0, -2.0, 3.0, 1.5, 0.5, 2.0, 3.0, 7.25, 0.0, 3.0]),
    ("minimum", [-7.0, -3.5, -1.0, 0.0, -0.25, 2.0, 0.5, -3.0, 0.0, -0.0]),
    ("arctan2", [-1.2924966677897853, -2.0899424410414196, -0.3217505543966422, 0.0, 2.0344439357957027, 0.7853981633974483, 1.4056476493802699, 1.9631364710104124, 0.0, -0.0]),
    ("logaddexp", [2.000123402189723, -1.7985867220172476, 3.01814992791781, 1.7014132779827524, 0.8868710061148999, 2.6931471805599454, 3.0788897342925496, 7.250035356875789, 0.6931471805599453, 3.048587351573742]),
    ("lt", [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]),
    ("le", [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]),
    ("gt", [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]),
    ("ge", [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]),
    ("eq", [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]),
    ("ne", [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]),
];

#[test]
fn binary_float_ops() {
    for (name, want) in BINARY {
        let b = BinaryOp::from_name(name).unwrap();
        let t = op(&[f64s(&[10], &A), f64s(&[10], &B)], Op::Binary(b)).unwrap();
        assert_close(&t.data, &want, 1e-15, name);
        let signs = |v: &[f64]| {
            v.iter()
                .map(|x| *x == 0.0 && x.is_sign_negative())
                .collect::<Vec<_>>()
        };
        if !b.is_predicate() {
            assert_eq!(signs(&t.data), signs(&want), "{name}: negative zeros");
        }
        assert_eq!(
            t.dtype,
            if b.is_predicate() {
                DType::Bool
            } else {
                DType::F64
            }
        );
    }
    // NaN propagates through maximum/minimum; comparisons with NaN are false (but ne)
    let (a, b) = (f64s(&[2], &[NAN, 1.0]), f64s(&[2], &[1.0, NAN]));
    for o in [BinaryOp::Maximum, BinaryOp::Minimum] {
        check(&[a.clone(), b.clone()], Op::Binary(o), &[2], &[NAN, NAN]);
    }
    check(
        &[a.clone(), b.clone()],
        Op::Binary(BinaryOp::Lt),
        &[2],
        &[0.0, 0.0],
    );
    check(&[a, b], Op::Binary(BinaryOp::Ne), &[2], &[1.0, 1.0]);
    // NumPy's floor division is exact: 1 // 0.1 == 9
    check(
        &[f64s(&[], &[1.0]), f64s(&[], &[0.1])],
        Op::Binary(BinaryOp::FloorDiv),
        &[],
        &[9.0],
    );
    check(
        &[f64s(&[], &[1.0]), f64s(&[], &[0.1])],
        Op::Binary(BinaryOp::Mod),
        &[],
        &[0.09999999999999995],
    );
}

#[test]
fn binary_int_ops() {
    let ia = [-7.0, -7.0, 7.0, 7.0, 0.0, 5.0, 3.0, -3.0, 2.0, 9.0];
    let ib = [2.0, -2.0, 2.0, -2.0, 3.0, 0.0, 0.0, 5.0, 10.0, 3.0];
    #[rustfmt::skip]
    let cases: [(&str, [f64; 10]); 7] = [
        ("add", [-5.0, -9.0, 9.0, 5.0, 3.0, 5.0, 3.0, 2.0, 12.0, 12.0]),
        ("sub", [-9.0, -5.0, 5.0, 9.0, -3.0, 5.0, 3.0, -8.0, -8.0, 6.0]),
        ("mul", [-14.0, 14.0, 14.0, -14.0, 0.0, 0.0, 0.0, -15.0, 20.0, 27.0]),
        ("floordiv", [-4.0, 3.0, 3.0, -4.0, 0.0, 0.0, 0.0, -1.0, 0.0, 3.0]),
        ("mod", [1.0, -1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 0.0]),
        ("maximum", [2.0, -2.0, 7.0, 7.0, 3.0, 5.0, 3.0, 5.0, 10.0, 9.0]),
        ("minimum", [-7.0, -7.0, 2.0, -2.0, 0.0, 0.0, 0.0, -3.0, 2.0, 3.0]),
    ];
    for (name, want) in cases {
        let t = op(
            &[i64s(&[10], &ia), i64s(&[10], &ib)],
            Op::Binary(BinaryOp::from_name(name).unwrap()),
        )
        .unwrap();
        assert_eq!(t.dtype, DType::I64);
        assert_eq!(t.data, want, "{name}");
    }
    let pow = Op::Binary(BinaryOp::Pow);
    check(
        &[
            i64s(&[4], &[2.0, -3.0, 0.0, 5.0]),
            i64s(&[4], &[3.0, 3.0, 0.0, 1.0]),
        ],
        pow.clone(),
        &[4],
        &[8.0, -27.0, 1.0, 5.0],
    );
    let e = op(&[i64s(&[1], &[2.0]), i64s(&[1], &[-1.0])], pow).unwrap_err();
    assert!(e.0.contains("negative integer powers"), "{e}");
}

#[test]
fn logical_ops() {
    let p = Tensor::new(DType::Bool, vec![4], vec![0.0, 0.0, 1.0, 1.0]);
    let q = Tensor::new(DType::Bool, vec![4], vec![0.0, 1.0, 0.0, 1.0]);
    for (name, want) in [
        ("and", [0.0, 0.0, 0.0, 1.0]),
        ("or", [0.0, 1.0, 1.0, 1.0]),
        ("xor", [0.0, 1.0, 1.0, 0.0]),
    ] {
        check(
            &[p.clone(), q.clone()],
            Op::Binary(BinaryOp::from_name(name).unwrap()),
            &[4],
            &want,
        );
    }
    let c = Tensor::new(DType::Bool, vec![2, 2], vec![1.0, 0.0, 0.0, 1.0]);
    check(
        &[
            c,
            f64s(&[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            f64s(&[2, 2], &[-1.0, -2.0, -3.0, -4.0]),
        ],
        Op::Where,
        &[2, 2],
        &[1.0, -2.0, -3.0, 4.0],
    );
}

#[test]
fn casts_round_to_the_dtype() {
    let x = f64s(&[4], &[0.1, 1.0 / 3.0, 1e40, -2.7]);
    check(
        &[x],
        Op::Cast(DType::F32),
        &[4],
        &[
            0.10000000149011612,
            0.3333333432674408,
            INF,
            -2.700000047683716,
        ],
    );
    let x = f64s(&[5], &[0.1, -2.7, 2.7, -0.5, 1e3]);
    let t = op(&[x.clone()], Op::Cast(DType::I64)).unwrap();
    assert_eq!(
        (t.dtype, t.data),
        (DType::I64, vec![0.0, -2.0, 2.0, 0.0, 1000.0])
    );
    check(
        &[x],
        Op::Cast(DType::Bool),
        &[5],
        &[1.0, 1.0, 1.0, 1.0, 1.0],
    );
    // float32 arithmetic rounds after every node
    let a = Tensor::new(DType::F32, vec![], vec![1.0]);
    let b = Tensor::new(DType::F32, vec![], vec![3.0]);
    check(
        &[a, b],
        Op::Binary(BinaryOp::Div),
        &[],
        &[(1.0f32 / 3.0) as f64],
    );
}

#[test]
fn broadcast_reshape_transpose() {
    check(
        &[f64s(&[3], &[1.0, 2.0, 3.0])],
        Op::Broadcast(vec![2, 3]),
        &[2, 3],
        &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0],
    );
    check(
        &[f64s(&[2, 1], &[1.0, 2.0])],
        Op::Broadcast(vec![2, 3]),
        &[2, 3],
        &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0],
    );
    check(
        &[f64s(&[], &[5.0])],
        Op::Broadcast(vec![2, 2]),
        &[2, 2],
        &[5.0; 4],
    );
    check(
        &[f64s(&[1, 2], &[1.0, 2.0])],
        Op::Broadcast(vec![2, 0, 2]),
        &[2, 0, 2],
        &[],
    );
    check(
        &[f64s(&[2, 3], &range(6))],
        Op::Reshape(vec![3, 1, 2]),
        &[3, 1, 2],
        &range(6),
    );
    check(&[f64s(&[1], &[7.0])], Op::Reshape(vec![]), &[], &[7.0]);
    #[rustfmt::skip]
    let want = [0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 1.0, 5.0, 9.0, 13.0, 17.0, 21.0, 2.0, 6.0, 10.0, 14.0, 18.0, 22.0, 3.0, 7.0, 11.0, 15.0, 19.0, 23.0];
    check(
        &[f64s(&[2, 3, 4], &range(24))],
        Op::Transpose(vec![2, 0, 1]),
        &[4, 2, 3],
        &want,
    );
    // a transpose followed by a reshape reads the permuted (logical) order
    let t = run(&[f64s(&[2, 3], &range(6))], |g, x| {
        let t = g.transpose(x[0], &[1, 0]).unwrap();
        g.reshape(t, &[6]).unwrap()
    })
    .unwrap();
    assert_eq!(t.data, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
}

fn x3() -> Tensor {
    f64s(
        &[2, 3, 4],
        &range(24).iter().map(|v| v * 1.5 - 7.0).collect::<Vec<_>>(),
    )
}

/// Axes, result shape, and the expected sum, prod, max, min.
type ReduceCase<'a> = (&'a [usize], &'a [usize], [&'a [f64]; 4]);

#[test]
fn reductions() {
    #[rustfmt::skip]
    let cases: [ReduceCase; 4] = [
        (&[1], &[2, 4], [&[-3.0, 1.5, 6.0, 10.5, 51.0, 55.5, 60.0, 64.5], &[35.0, -17.875, -64.0, -83.125, 4301.0, 5665.625, 7280.0, 9164.375], &[5.0, 6.5, 8.0, 9.5, 23.0, 24.5, 26.0, 27.5], &[-7.0, -5.5, -4.0, -2.5, 11.0, 12.5, 14.0, 15.5]]),
        (&[2], &[2, 3], [&[-19.0, 5.0, 29.0, 53.0, 77.0, 101.0], &[385.0, -3.5, 2470.0, 29837.5, 135235.0, 402902.5], &[-2.5, 3.5, 9.5, 15.5, 21.5, 27.5], &[-7.0, -1.0, 5.0, 11.0, 17.0, 23.0]]),
        (&[0, 2], &[3], [&[34.0, 82.0, 130.0], &[11487437.5, -473322.5, 995169175.0], &[15.5, 21.5, 27.5], &[-7.0, -1.0, 5.0]]),
        (&[0, 1, 2], &[], [&[246.0], &[-5.410996171819742e21], &[27.5], &[-7.0]]),
    ];
    for (axes, shape, wants) in cases {
        for (r, want) in [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min]
            .into_iter()
            .zip(wants)
        {
            check(&[x3()], Op::Reduce(r, axes.to_vec()), shape, want);
        }
    }
    // empty axes list: identity
    check(
        &[x3()],
        Op::Reduce(ReduceOp::Sum, vec![]),
        &[2, 3, 4],
        &x3().data,
    );
    // empty extent: sum 0, prod 1, max an error
    check(
        &[f64s(&[2, 0], &[])],
        Op::Reduce(ReduceOp::Sum, vec![1]),
        &[2],
        &[0.0, 0.0],
    );
    check(
        &[f64s(&[2, 0], &[])],
        Op::Reduce(ReduceOp::Prod, vec![1]),
        &[2],
        &[1.0, 1.0],
    );
    check(
        &[f64s(&[0, 2], &[])],
        Op::Reduce(ReduceOp::Max, vec![1]),
        &[0],
        &[],
    );
    assert!(op(&[f64s(&[2, 0], &[])], Op::Reduce(ReduceOp::Max, vec![1])).is_err());
    // NaN propagates through max; bool sums count
    check(
        &[f64s(&[3], &[1.0, NAN, 2.0])],
        Op::Reduce(ReduceOp::Max, vec![0]),
        &[],
        &[NAN],
    );
    let b = Tensor::new(DType::Bool, vec![4], vec![1.0, 0.0, 1.0, 1.0]);
    let t = op(&[b], Op::Reduce(ReduceOp::Sum, vec![0])).unwrap();
    assert_eq!((t.dtype, t.data), (DType::I64, vec![3.0]));
}

#[test]
fn argmax_first_occurrence_and_nan() {
    let m = f64s(
        &[3, 4],
        &[
            3.0, 1.0, 3.0, 0.0, 2.0, NAN, 5.0, 5.0, -1.0, -1.0, -4.0, -4.0,
        ],
    );
    check(
        &[m.clone()],
        Op::ArgMax(0, true),
        &[4],
        &[0.0, 1.0, 1.0, 1.0],
    );
    check(&[m.clone()], Op::ArgMax(1, true), &[3], &[0.0, 1.0, 0.0]);
    check(
        &[m.clone()],
        Op::ArgMax(0, false),
        &[4],
        &[2.0, 1.0, 2.0, 2.0],
    );
    check(&[m], Op::ArgMax(1, false), &[3], &[3.0, 1.0, 2.0]);
}

fn contract(spec: &str, a: Tensor, b: Tensor) -> Tensor {
    run(&[a, b], |g, x| g.contract(spec, x[0], x[1]).unwrap()).unwrap()
}

#[test]
fn contractions() {
    let a = f64s(
        &[2, 3],
        &range(6).iter().map(|v| v + 1.0).collect::<Vec<_>>(),
    );
    let b = f64s(
        &[3, 4],
        &range(12).iter().map(|v| v - 5.0).collect::<Vec<_>>(),
    );
    assert_eq!(
        contract("ij,jk->ik", a.clone(), b).data,
        [2.0, 8.0, 14.0, 20.0, -7.0, 8.0, 23.0, 38.0]
    );
    let ba = f64s(
        &[2, 3, 4],
        &range(24).iter().map(|v| v * 0.5 - 3.0).collect::<Vec<_>>(),
    );
    let bb = f64s(
        &[2, 4, 5],
        &range(40).iter().map(|v| v * 0.25 - 4.0).collect::<Vec<_>>(),
    );
    #[rustfmt::skip]
    let want = [22.25, 20.0, 17.75, 15.5, 13.25, 5.25, 5.0, 4.75, 4.5, 4.25, -11.75, -10.0, -8.25, -6.5, -4.75, 46.25, 50.0, 53.75, 57.5, 61.25, 69.25, 75.0, 80.75, 86.5, 92.25, 92.25, 100.0, 107.75, 115.5, 123.25];
    let t = contract("bij,bjk->bik", ba.clone(), bb);
    assert_eq!(
        (t.shape.as_slice(), t.data.as_slice()),
        ([2, 3, 5].as_slice(), want.as_slice())
    );
    let w = f64s(
        &[3, 2],
        &range(6).iter().map(|v| v - 2.0).collect::<Vec<_>>(),
    );
    let t = contract("ijk,jl->lik", ba, w);
    assert_eq!(t.shape, [2, 2, 4]);
    assert_eq!(
        t.data,
        [8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 5.0, 6.5, 8.0, 9.5, 23.0, 24.5, 26.0, 27.5]
    );
    let t = contract("ij,k->kji", a.clone(), f64s(&[2], &[1.0, -2.0]));
    assert_eq!(
        t.data,
        [1.0, 4.0, 2.0, 5.0, 3.0, 6.0, -2.0, -8.0, -4.0, -10.0, -6.0, -12.0]
    );
    assert_eq!(
        contract("ij,ij->i", a.clone(), a.clone()).data,
        [14.0, 77.0]
    );
    let t = contract("ij,ij->", a.clone(), a);
    assert_eq!((t.shape.len(), t.data[0]), (0, 91.0));
    // scalars and empty contractions
    assert_eq!(
        contract(",->", f64s(&[], &[3.0]), f64s(&[], &[4.0])).data,
        [12.0]
    );
    assert_eq!(
        contract("ij,jk->ik", f64s(&[2, 0], &[]), f64s(&[0, 2], &[])).data,
        [0.0; 4]
    );
    // int64 contraction stays exact
    let t = contract(
        "i,i->",
        i64s(&[3], &[1.0, 2.0, 3.0]),
        i64s(&[3], &[4.0, 5.0, 6.0]),
    );
    assert_eq!((t.dtype, t.data), (DType::I64, vec![32.0]));
}

fn sd(start: usize, step: i64, len: usize) -> SliceDim {
    SliceDim { start, step, len }
}

#[test]
fn slices() {
    // x3[1:2, ::-1, 3:0:-2]
    let dims = vec![sd(1, 1, 1), sd(2, -1, 3), sd(3, -2, 2)];
    check(
        &[x3()],
        Op::Slice(dims.clone()),
        &[1, 3, 2],
        &[27.5, 24.5, 21.5, 18.5, 15.5, 12.5],
    );
    // x3[:, 0:3:2, 1:4]
    let want = [
        -5.5, -4.0, -2.5, 6.5, 8.0, 9.5, 12.5, 14.0, 15.5, 24.5, 26.0, 27.5,
    ];
    check(
        &[x3()],
        Op::Slice(vec![sd(0, 1, 2), sd(0, 2, 2), sd(1, 1, 3)]),
        &[2, 2, 3],
        &want,
    );
    // an empty slice never reads
    check(
        &[f64s(&[3], &[1.0, 2.0, 3.0])],
        Op::Slice(vec![sd(3, 1, 0)]),
        &[0],
        &[],
    );
    #[rustfmt::skip]
    let want = [-7.0, -5.5, -4.0, -2.5, -1.0, 0.5, 2.0, 3.5, 5.0, 6.5, 8.0, 9.5, 11.0, 105.0, 14.0, 104.0, 17.0, 103.0, 20.0, 102.0, 23.0, 101.0, 26.0, 100.0];
    let v = f64s(
        &[1, 3, 2],
        &range(6).iter().map(|v| v + 100.0).collect::<Vec<_>>(),
    );
    check(&[x3(), v], Op::SetSlice(dims), &[2, 3, 4], &want);
}

fn x34() -> Tensor {
    f64s(&[3, 4], &range(12))
}

#[test]
fn gather_and_scatter() {
    let idx = i64s(&[2, 2], &[3.0, 0.0, 3.0, 1.0]);
    let want = [3.0, 0.0, 3.0, 1.0, 7.0, 4.0, 7.0, 5.0, 11.0, 8.0, 11.0, 9.0];
    check(&[x34(), idx.clone()], Op::Gather(1), &[3, 2, 2], &want);
    let want = [
        8.0, 9.0, 10.0, 11.0, 8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 3.0,
    ];
    check(
        &[x34(), i64s(&[3], &[2.0, 2.0, 0.0])],
        Op::Gather(0),
        &[3, 4],
        &want,
    );
    check(
        &[x34(), i64s(&[], &[2.0])],
        Op::Gather(1),
        &[3],
        &[2.0, 6.0, 10.0],
    );
    // np.add.at accumulates the duplicate index 3
    let v = f64s(
        &[3, 2, 2],
        &range(12).iter().map(|v| v * 10.0).collect::<Vec<_>>(),
    );
    let want = [
        10.0, 31.0, 2.0, 23.0, 54.0, 75.0, 6.0, 107.0, 98.0, 119.0, 10.0, 191.0,
    ];
    check(&[x34(), idx, v], Op::ScatterAdd(1), &[3, 4], &want);
    // plain assignment: the last write of index 1 wins
    let v = f64s(&[3, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    let want = [0.0, 3.0, 2.0, 2.0, 4.0, 6.0, 6.0, 5.0, 8.0, 9.0, 10.0, 8.0];
    check(
        &[x34(), i64s(&[3], &[1.0, 3.0, 1.0]), v],
        Op::Scatter(1),
        &[3, 4],
        &want,
    );
}

#[test]
fn take_along_and_scatter_along() {
    let ia = i64s(&[2, 4], &[2.0, 0.0, 2.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    check(
        &[x34(), ia.clone()],
        Op::TakeAlong(0),
        &[2, 4],
        &[8.0, 1.0, 10.0, 7.0, 4.0, 5.0, 2.0, 3.0],
    );
    let ib = i64s(&[3, 2], &[3.0, 3.0, 0.0, 1.0, 2.0, 2.0]);
    check(
        &[x34(), ib],
        Op::TakeAlong(1),
        &[3, 2],
        &[3.0, 3.0, 4.0, 5.0, 10.0, 10.0],
    );
    let v = f64s(
        &[2, 4],
        &range(8).iter().map(|v| v + 1.0).collect::<Vec<_>>(),
    );
    let want = [
        0.0, 3.0, 9.0, 11.0, 9.0, 11.0, 6.0, 11.0, 9.0, 9.0, 13.0, 11.0,
    ];
    check(&[x34(), ia, v], Op::ScatterAlongAdd(0), &[3, 4], &want);
}

#[test]
fn bad_indices_are_errors() {
    for bad in [4.0, -1.0] {
        let e = op(&[x34(), i64s(&[1], &[bad])], Op::Gather(1)).unwrap_err();
        assert!(
            e.0.contains("out of range") && e.0.contains("gather"),
            "{e}"
        );
        let e = op(&[x34(), i64s(&[3, 1], &[0.0, bad, 0.0])], Op::TakeAlong(1)).unwrap_err();
        assert!(e.0.contains("out of range"), "{e}");
        let e = op(
            &[x34(), i64s(&[1], &[bad]), f64s(&[3, 1], &[1.0; 3])],
            Op::ScatterAdd(1),
        )
        .unwrap_err();
        assert!(e.0.contains("out of range"), "{e}");
    }
}

#[test]
fn concat_and_scans() {
    let want = [
        0.0, 1.0, 2.0, 3.0, -0.0, 0.5, 1.5, 4.0, 5.0, 6.0, 7.0, -4.0, 4.5, 5.5, 8.0, 9.0, 10.0,
        11.0, -8.0, 8.5, 9.5,
    ];
    let t = run(&[x34()], |g, x| {
        let s1 = g.slice(x[0], vec![sd(0, 1, 3), sd(0, 1, 1)]).unwrap();
        let n1 = g.neg(s1).unwrap();
        let s2 = g.slice(x[0], vec![sd(0, 1, 3), sd(0, 1, 2)]).unwrap();
        let half = g.full(0.5, &[3, 2], DType::F64);
        let p2 = g.add_(s2, half).unwrap();
        g.add(Op::Concat(1), vec![x[0], n1, p2]).unwrap()
    })
    .unwrap();
    assert_eq!(
        (t.shape.as_slice(), t.data.as_slice()),
        ([3, 7].as_slice(), want.as_slice())
    );
    check(&[x34()], Op::Concat(0), &[3, 4], &range(12));
    let want = [
        0.0, 1.0, 3.0, 6.0, 4.0, 9.0, 15.0, 22.0, 8.0, 17.0, 27.0, 38.0,
    ];
    check(&[x34()], Op::Cumsum(1), &[3, 4], &want);
    let x1 = f64s(
        &[3, 4],
        &range(12).iter().map(|v| v + 1.0).collect::<Vec<_>>(),
    );
    let want = [
        1.0, 2.0, 3.0, 4.0, 5.0, 12.0, 21.0, 32.0, 45.0, 120.0, 231.0, 384.0,
    ];
    check(&[x1], Op::Cumprod(0), &[3, 4], &want);
    let b = Tensor::new(DType::Bool, vec![3], vec![1.0, 0.0, 1.0]);
    let t = op(&[b], Op::Cumsum(0)).unwrap();
    assert_eq!((t.dtype, t.data), (DType::I64, vec![1.0, 1.0, 2.0]));
}

#[test]
fn argsort_is_stable_with_nan_last() {
    let s = f64s(
        &[2, 6],
        &[3.0, 1.0, NAN, 1.0, 2.0, 3.0, 0.0, -0.0, 5.0, -1.0, 5.0, 0.0],
    );
    check(
        &[s.clone()],
        Op::ArgSort(1),
        &[2, 6],
        &[1.0, 3.0, 4.0, 0.0, 5.0, 2.0, 3.0, 0.0, 1.0, 5.0, 2.0, 4.0],
    );
    check(
        &[s],
        Op::ArgSort(0),
        &[2, 6],
        &[1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    );
}

fn mat_a() -> Tensor {
    f64s(&[3, 3], &[4.0, -2.0, 1.0, 3.0, 6.0, -4.0, 2.0, 1.0, 8.0])
}

fn mat_b() -> Tensor {
    f64s(&[3, 2], &[12.0, 1.0, -25.0, 0.0, 32.0, -2.0])
}

#[test]
fn linear_algebra() {
    let r = 1e-13;
    let t = op(&[mat_a(), mat_b()], Op::Solve).unwrap();
    assert_close(
        &t.data,
        &[
            1.0,
            0.1825095057034221,
            -2.0,
            -0.2661596958174905,
            4.0,
            -0.2623574144486692,
        ],
        r,
        "solve",
    );
    // a zero leading entry needs pivoting
    let a2 = f64s(&[3, 3], &[0.0, 2.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 0.0]);
    let t = op(&[a2.clone(), mat_b()], Op::Solve).unwrap();
    assert_close(
        &t.data,
        &[
            -1.6666666666666643,
            -1.0,
            35.33333333333333,
            0.0,
            -58.666666666666664,
            1.0,
        ],
        r,
        "solve pivot",
    );
    assert_close(&op(&[a2], Op::Det).unwrap().data, &[3.0], r, "det pivot");
    #[rustfmt::skip]
    let inv = [0.19771863117870722, 0.06463878326996197, 0.007604562737642592, -0.12167300380228137, 0.11406844106463877, 0.07224334600760458, -0.034220532319391636, -0.030418250950570346, 0.1140684410646388];
    assert_close(&op(&[mat_a()], Op::Inv).unwrap().data, &inv, r, "inv");
    assert_close(&op(&[mat_a()], Op::Det).unwrap().data, &[263.0], r, "det");
    assert_close(
        &op(&[mat_a()], Op::LogAbsDet).unwrap().data,
        &[5.572154032177764],
        r,
        "logabsdet",
    );
    let swap = f64s(&[2, 2], &[0.0, 1.0, 1.0, 0.0]);
    assert_eq!(op(&[swap], Op::Det).unwrap().data, [-1.0]);
    let tiny = f64s(&[2, 2], &[1e-200, 0.0, 0.0, 1e-200]);
    assert_close(
        &op(&[tiny], Op::LogAbsDet).unwrap().data,
        &[-921.0340371976183],
        r,
        "logabsdet tiny",
    );
    let lower = [
        3.0,
        0.25,
        -5.666666666666666,
        -0.125,
        3.958333333333333,
        -0.296875,
    ];
    assert_close(
        &op(&[mat_a(), mat_b()], Op::TriSolve(true)).unwrap().data,
        &lower,
        r,
        "trisolve lower",
    );
    let upper = [
        1.25,
        0.22916666666666669,
        -1.5,
        -0.16666666666666666,
        4.0,
        -0.25,
    ];
    assert_close(
        &op(&[mat_a(), mat_b()], Op::TriSolve(false)).unwrap().data,
        &upper,
        r,
        "trisolve upper",
    );
    let spd = f64s(&[3, 3], &[4.0, 2.0, -2.0, 2.0, 10.0, 2.0, -2.0, 2.0, 5.0]);
    let want = [2.0, 0.0, 0.0, 1.0, 3.0, 0.0, -1.0, 1.0, 1.7320508075688772];
    assert_close(
        &op(&[spd], Op::Cholesky).unwrap().data,
        &want,
        r,
        "cholesky",
    );
    // 0×0 matrices
    assert_eq!(op(&[f64s(&[0, 0], &[])], Op::Det).unwrap().data, [1.0]);
    assert_eq!(op(&[f64s(&[0, 0], &[])], Op::Inv).unwrap().shape, [0, 0]);
}

#[test]
fn singular_and_indefinite_matrices() {
    let sing = f64s(&[2, 2], &[1.0, 2.0, 2.0, 4.0]);
    let rhs = f64s(&[2, 1], &[1.0, 1.0]);
    assert!(op(&[sing.clone(), rhs.clone()], Op::Solve)
        .unwrap_err()
        .0
        .contains("singular"));
    assert!(op(&[sing.clone()], Op::Inv)
        .unwrap_err()
        .0
        .contains("singular"));
    assert_eq!(op(&[sing.clone()], Op::Det).unwrap().data, [0.0]);
    assert_eq!(op(&[sing.clone()], Op::LogAbsDet).unwrap().data, [-INF]);
    let zero_diag = f64s(&[2, 2], &[1.0, 0.0, 3.0, 0.0]);
    assert!(op(&[zero_diag, rhs], Op::TriSolve(true))
        .unwrap_err()
        .0
        .contains("singular"));
    let indef = f64s(&[2, 2], &[1.0, 2.0, 2.0, 1.0]);
    assert!(op(&[indef], Op::Cholesky)
        .unwrap_err()
        .0
        .contains("positive definite"));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![2], DType::F64);
    let y = g.unary(UnaryOp::Exp, x).unwrap();
    let e = eval(&g, &[], &[y]).unwrap_err();
    assert!(e.0.contains("expected 1 inputs"), "{e}");
    let e = eval(&g, &[f64s(&[3], &[1.0; 3])], &[y]).unwrap_err();
    assert!(e.0.contains("input 0 (x)"), "{e}");
    let e = eval(&g, &[i64s(&[2], &[1.0; 2])], &[y]).unwrap_err();
    assert!(e.0.contains("int64"), "{e}");
    let bad = Tensor {
        dtype: DType::F64,
        shape: vec![2],
        data: vec![1.0],
    };
    assert!(eval(&g, &[bad], &[y]).is_err());
    assert!(eval(&g, &[f64s(&[2], &[1.0; 2])], &[NodeId(99)]).is_err());
}

#[test]
fn evaluates_only_what_outputs_need() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![2, 2], DType::F64);
    let bad = g.add(Op::Cholesky, vec![x]).unwrap(); // fails on an indefinite x
    let ok = g.sum(x, &[0, 1]).unwrap();
    let xs = [f64s(&[2, 2], &[1.0, 2.0, 2.0, 1.0])];
    assert_eq!(eval(&g, &xs, &[ok]).unwrap()[0].data, [6.0]);
    let e = eval(&g, &xs, &[ok, bad]).unwrap_err();
    assert!(
        e.0.starts_with(&format!("node {} (cholesky)", bad.0)),
        "{e}"
    );
    // zero outputs: nothing is evaluated
    assert!(eval(&g, &xs, &[]).unwrap().is_empty());
    // an input can be an output
    assert_eq!(eval(&g, &xs, &[x]).unwrap()[0], xs[0]);
}

#[test]
fn array_helpers_round_trip() {
    let t = x3();
    let a = autodiff_exec::to_array(&t);
    assert_eq!(a.shape(), [2, 3, 4]);
    assert_eq!(a[[1, 2, 3]], 27.5);
    assert_eq!(autodiff_exec::from_array(a, DType::F64), t);
    let i = autodiff_exec::from_array(ndarray::arr1(&[1.7, -1.7]).into_dyn(), DType::I64);
    assert_eq!(i.data, [1.0, -1.0]);
}
