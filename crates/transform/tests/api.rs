//! The public API's contract: errors, zeros for independent inputs, dtypes, multiple
//! outputs, and that transforms only append to the graph.

mod common;

use autodiff_ir::{DType, Graph, NodeId, Op, Tensor, UnaryOp};
use autodiff_transform::{grad, jvp, vjp};
use common::{ev, rand, setup, val};

#[test]
fn grad_of_a_non_scalar_is_an_error() {
    let (mut g, x, _, _) = setup("e", vec![rand(&[3], 0.0, 1.0)]);
    let y = g.unary(UnaryOp::Exp, x[0]).unwrap();
    let e = grad(&mut g, y, &x).unwrap_err();
    assert_eq!(
        e.0,
        "gradient needs a scalar output, got shape [3]; use jacobian"
    );
}

#[test]
fn grad_of_a_non_float_is_an_error() {
    let (mut g, x, _, _) = setup("e", vec![rand(&[3], 0.0, 1.0)]);
    let i = g.add(Op::ArgMax(0, true), vec![x[0]]).unwrap();
    let e = grad(&mut g, i, &x).unwrap_err();
    assert!(e.0.contains("float output"), "{e}");
}

#[test]
fn differentiating_with_respect_to_an_int_input_is_an_error() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![2], DType::F64);
    let n = g.add_input("n", vec![2], DType::I64);
    let nf = g.cast(n, DType::F64).unwrap();
    let p = g.mul(x, nf).unwrap();
    let s = g.sum(p, &[0]).unwrap();
    let e = grad(&mut g, s, &[x, n]).unwrap_err();
    assert!(
        e.0.starts_with("cannot differentiate with respect to an integer/bool input: input `n`"),
        "{e}"
    );
    let b = g.add_input("mask", vec![2], DType::Bool);
    let e = jvp(&mut g, &[s], &[b], &[b]).unwrap_err();
    assert!(
        e.0.contains("integer/bool input: input `mask` has dtype bool"),
        "{e}"
    );
}

#[test]
fn mismatched_cotangents_and_tangents_are_errors() {
    let (mut g, x, _, _) = setup("e", vec![rand(&[3], 0.0, 1.0)]);
    let y = g.unary(UnaryOp::Exp, x[0]).unwrap();
    let c = g.full(1.0, &[2], DType::F64);
    assert!(vjp(&mut g, &[y], &[c], &x)
        .unwrap_err()
        .0
        .contains("cotangent of shape [2]"));
    assert!(vjp(&mut g, &[y], &[], &x).is_err());
    assert!(jvp(&mut g, &[y], &x, &[c])
        .unwrap_err()
        .0
        .contains("tangent of shape [2]"));
}

#[test]
fn independent_inputs_get_explicit_zeros() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![2], DType::F64);
    let y = g.add_input("y", vec![3, 1], DType::F32);
    let s = g.sum(x, &[0]).unwrap();
    let gs = grad(&mut g, s, &[x, y]).unwrap();
    assert_eq!(
        (g.shape(gs[1]).clone(), g.dtype(gs[1])),
        (vec![3, 1], DType::F32)
    );
    let vals = [
        Tensor::new(DType::F64, vec![2], vec![1.0, 2.0]),
        Tensor::full(DType::F32, vec![3, 1], 1.0),
    ];
    let r = ev(&g, &vals, &gs);
    assert_eq!(r[0].data, vec![1.0, 1.0]);
    assert_eq!(r[1].data, vec![0.0; 3]);
    // forward mode: an output that does not depend on the wrt nodes gets zeros too
    let ty = g.full(1.0, &[3, 1], DType::F32);
    let t = jvp(&mut g, &[s], &[y], &[ty]).unwrap();
    assert_eq!(ev(&g, &vals, &t)[0].data, vec![0.0]);
}

#[test]
fn float32_gradients_stay_float32() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![3], DType::F32);
    let y = g.unary(UnaryOp::Sin, x).unwrap();
    let s = g.sum(y, &[0]).unwrap();
    let gx = grad(&mut g, s, &[x]).unwrap()[0];
    assert_eq!(g.dtype(gx), DType::F32);
    let vals = [Tensor::new(DType::F32, vec![3], vec![0.5, 1.0, -2.0])];
    let r = ev(&g, &vals, &[gx]);
    for (v, x) in r[0].data.iter().zip(&vals[0].data) {
        assert!((v - x.cos()).abs() < 1e-6);
    }
}

#[test]
fn vjp_sums_over_several_outputs() {
    let (mut g, x, vals, _) = setup("multi", vec![val(&[2], &[0.5, 2.0])]);
    let a = g.unary(UnaryOp::Exp, x[0]).unwrap();
    let b = g.unary(UnaryOp::Log, x[0]).unwrap();
    let ca = g.constant(Tensor::new(DType::F64, vec![2], vec![1.0, 2.0]));
    let cb = g.constant(Tensor::new(DType::F64, vec![2], vec![3.0, 4.0]));
    let r = vjp(&mut g, &[a, b, a], &[ca, cb, ca], &x).unwrap();
    let v = ev(&g, &vals, &r)[0].data.clone();
    let want = [
        2.0 * 0.5f64.exp() + 3.0 / 0.5,
        4.0 * 2.0f64.exp() + 4.0 / 2.0,
    ];
    for (v, w) in v.iter().zip(want) {
        assert!((v - w).abs() < 1e-12);
    }
}

#[test]
fn wrt_an_intermediate_node() {
    // y = sin(x); f = y * x. With wrt = [y, x], each is an independent variable.
    let (mut g, x, vals, _) = setup("mid", vec![val(&[], &[0.7])]);
    let y = g.unary(UnaryOp::Sin, x[0]).unwrap();
    let f = g.mul(y, x[0]).unwrap();
    let r = grad(&mut g, f, &[y, x[0]]).unwrap();
    let v = ev(&g, &vals, &r);
    assert_eq!(v[0].data, vec![0.7]); // ∂f/∂y = x
    assert_eq!(v[1].data, vec![0.7f64.sin()]); // ∂f/∂x with y held fixed
    let r = grad(&mut g, f, &[x[0]]).unwrap();
    let v = ev(&g, &vals, &r);
    assert!((v[0].data[0] - (0.7f64.sin() + 0.7 * 0.7f64.cos())).abs() < 1e-15);
}

#[test]
fn transforms_only_append() {
    let (mut g, x, _, _) = setup("append", vec![rand(&[3], 0.0, 1.0)]);
    let y = g.unary(UnaryOp::Tanh, x[0]).unwrap();
    let s = g.sum(y, &[0]).unwrap();
    let before: Vec<_> = g.nodes().to_vec();
    let gx = grad(&mut g, s, &x).unwrap()[0];
    assert_eq!(&g.nodes()[..before.len()], &before[..]);
    // hash-consing: asking again builds nothing new
    let n = g.len();
    assert_eq!(grad(&mut g, s, &x).unwrap()[0], gx);
    assert_eq!(g.len(), n);
    autodiff_ir::verify::verify(&g).unwrap();
}

#[test]
fn no_derivative_through_int_paths() {
    // floor, round, casts to int and argmax contribute exactly zero
    let (mut g, x, vals, _) = setup("int", vec![val(&[3], &[0.4, 1.7, -2.2])]);
    let f = g.unary(UnaryOp::Floor, x[0]).unwrap();
    let r = g.unary(UnaryOp::Round, x[0]).unwrap();
    let i = g.cast(x[0], DType::I64).unwrap();
    let i = g.cast(i, DType::F64).unwrap();
    let a = g.add(Op::ArgMax(0, true), vec![x[0]]).unwrap();
    let a = g.cast(a, DType::F64).unwrap();
    let s1 = g.add_(f, r).unwrap();
    let s2 = g.add_(s1, i).unwrap();
    let s3 = g.add_(s2, a).unwrap();
    let s = g.sum(s3, &[0]).unwrap();
    let gx: Vec<NodeId> = grad(&mut g, s, &x).unwrap();
    assert_eq!(ev(&g, &vals, &gx)[0].data, vec![0.0; 3]);
}

#[test]
fn conventions_at_kinks() {
    // abs'(0) = 0, maximum ties 0.5/0.5, sqrt'(0) = inf, d/db 0^b = 0, d/da a^0 = 0
    let (mut g, x, vals, _) = setup("kinks", vec![val(&[], &[0.0]), val(&[], &[0.0])]);
    let abs = g.unary(UnaryOp::Abs, x[0]).unwrap();
    let ga = grad(&mut g, abs, &[x[0]]).unwrap()[0];
    let mx = g
        .binary(autodiff_ir::BinaryOp::Maximum, x[0], x[1])
        .unwrap();
    let gm = grad(&mut g, mx, &x).unwrap();
    let sq = g.unary(UnaryOp::Sqrt, x[0]).unwrap();
    let gs = grad(&mut g, sq, &[x[0]]).unwrap()[0];
    let two = g.scalar(2.0, DType::F64);
    let pb = g.binary(autodiff_ir::BinaryOp::Pow, x[0], two).unwrap(); // 0^2: d/da = 0
    let gpa = grad(&mut g, pb, &[x[0]]).unwrap()[0];
    let b = g.add_(x[1], two).unwrap();
    let p0 = g.binary(autodiff_ir::BinaryOp::Pow, x[0], b).unwrap(); // d/db 0^b = 0
    let gpb = grad(&mut g, p0, &[x[1]]).unwrap()[0];
    let pz = g.binary(autodiff_ir::BinaryOp::Pow, x[0], x[1]).unwrap(); // d/da a^0 = 0 at a = 0
    let gpz = grad(&mut g, pz, &[x[0]]).unwrap();
    let r = ev(&g, &vals, &[ga, gm[0], gm[1], gs, gpa, gpb, gpz[0]]);
    let got: Vec<f64> = r.iter().map(|t| t.data[0]).collect();
    assert_eq!(got, vec![0.0, 0.5, 0.5, f64::INFINITY, 0.0, 0.0, 0.0]);
}

/// Builds `sum(sin(f(x)))` for float32 and float64 inputs and checks that the gradient and
/// the Hessian-vector product keep the input's dtype and agree to float32 precision.
fn f32_matches_f64(
    name: &str,
    shape: &[usize],
    lo: f64,
    hi: f64,
    f: impl Fn(&mut Graph, NodeId) -> NodeId,
) {
    let mut rng = common::Rng::new(name);
    let x64 = rng.tensor(shape, lo, hi);
    let x32 = Tensor::new(DType::F32, x64.shape.clone(), x64.data.clone());
    let x64 = Tensor::new(DType::F64, x64.shape.clone(), x32.data.clone());
    let mut res = vec![];
    for t in [&x32, &x64] {
        let mut g = Graph::new();
        let x = g.add_input("x", t.shape.clone(), t.dtype);
        let y = f(&mut g, x);
        let s = g.unary(UnaryOp::Sin, y).unwrap();
        let axes: Vec<usize> = (0..g.shape(s).len()).collect();
        let l = g.sum(s, &axes).unwrap();
        let gx = grad(&mut g, l, &[x]).unwrap()[0];
        let v = g.full(1.0, &t.shape, t.dtype);
        let hv = autodiff_transform::hvp(&mut g, l, &[x], &[v]).unwrap()[0];
        assert_eq!((g.dtype(gx), g.dtype(hv)), (t.dtype, t.dtype), "{name}");
        res.push(ev(&g, std::slice::from_ref(t), &[gx, hv]));
    }
    for (r32, r64) in res[0].iter().zip(&res[1]) {
        for (a, b) in r32.data.iter().zip(&r64.data) {
            assert!(
                (a - b).abs() <= 1e-3 * (1.0 + b.abs()),
                "{name}: float32 {a} vs float64 {b}"
            );
        }
    }
}

#[test]
fn float32_rules_keep_their_dtype() {
    use autodiff_ir::{BinaryOp, ReduceOp};
    for u in UnaryOp::ALL {
        let (lo, hi) = match u {
            UnaryOp::Arcsin | UnaryOp::Arccos | UnaryOp::Arctanh => (-0.8, 0.8),
            UnaryOp::Arccosh => (1.2, 3.0),
            UnaryOp::Not | UnaryOp::Gammaln | UnaryOp::Digamma | UnaryOp::Trigamma => continue,
            _ => (0.3, 1.5),
        };
        f32_matches_f64(u.name(), &[3], lo, hi, |g, x| g.unary(u, x).unwrap());
    }
    for b in BinaryOp::ALL {
        if b.is_predicate() {
            continue;
        }
        f32_matches_f64(b.name(), &[3], 0.5, 1.5, |g, x| {
            let c = g.unary(UnaryOp::Cos, x).unwrap();
            g.binary(b, x, c).unwrap()
        });
    }
    for r in [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min] {
        f32_matches_f64(r.name(), &[2, 3], 0.5, 1.5, |g, x| {
            g.reduce(r, x, &[1]).unwrap()
        });
    }
    f32_matches_f64("cumprod", &[4], 0.5, 1.5, |g, x| {
        g.add(Op::Cumprod(0), vec![x]).unwrap()
    });
    f32_matches_f64("cumsum", &[4], 0.5, 1.5, |g, x| {
        g.add(Op::Cumsum(0), vec![x]).unwrap()
    });
    let spd = |g: &mut Graph, x: NodeId| {
        let t = g.transpose(x, &[1, 0]).unwrap();
        let a = g.matmul(x, t).unwrap();
        let i = g.constant(Tensor::new(
            g.dtype(x),
            vec![2, 2],
            vec![2.0, 0.0, 0.0, 2.0],
        ));
        g.add_(a, i).unwrap()
    };
    f32_matches_f64("cholesky", &[2, 2], -1.0, 1.0, |g, x| {
        let a = spd(g, x);
        g.add(Op::Cholesky, vec![a]).unwrap()
    });
    f32_matches_f64("det", &[2, 2], -1.0, 1.0, |g, x| {
        let a = spd(g, x);
        g.add(Op::Det, vec![a]).unwrap()
    });
    f32_matches_f64("logabsdet", &[2, 2], -1.0, 1.0, |g, x| {
        let a = spd(g, x);
        g.add(Op::LogAbsDet, vec![a]).unwrap()
    });
    f32_matches_f64("inv", &[2, 2], -1.0, 1.0, |g, x| {
        let a = spd(g, x);
        g.add(Op::Inv, vec![a]).unwrap()
    });
    f32_matches_f64("solve", &[2, 2], -1.0, 1.0, |g, x| {
        let a = spd(g, x);
        g.add(Op::Solve, vec![a, x]).unwrap()
    });
    f32_matches_f64("trisolve", &[2, 2], -1.0, 1.0, |g, x| {
        let a = spd(g, x);
        g.add(Op::TriSolve(true), vec![a, x]).unwrap()
    });
}

#[test]
fn jacobian_forward_equals_reverse_and_matches_analytic() {
    use autodiff_ir::{DType, Graph, Tensor, UnaryOp};
    // f(x) = sin(x) * x[::-1]-free elementwise + W @ x: J = diag(cos x) + W
    let mut g = Graph::new();
    let x = g.add_input("x", vec![3], DType::F64);
    let w = g.constant(Tensor::new(
        DType::F64,
        vec![2, 3],
        vec![1., 2., 3., 4., 5., 6.],
    ));
    let s = g.unary(UnaryOp::Sin, x).unwrap();
    let wx = g.matmul(w, s).unwrap();
    let jr = autodiff_transform::jacobian(&mut g, wx, x, false).unwrap();
    let jf = autodiff_transform::jacobian(&mut g, wx, x, true).unwrap();
    assert_eq!(g.shape(jr), &vec![2, 3]);
    let xv = [0.3, -1.2, 2.0];
    let out = autodiff_exec::eval(
        &g,
        &[Tensor::new(DType::F64, vec![3], xv.to_vec())],
        &[jr, jf],
    )
    .unwrap();
    let wv = [1., 2., 3., 4., 5., 6.];
    for i in 0..2 {
        for j in 0..3 {
            let want = wv[i * 3 + j] * f64::cos(xv[j]);
            assert!((out[0].data[i * 3 + j] - want).abs() < 1e-12);
            assert!((out[1].data[i * 3 + j] - want).abs() < 1e-12);
        }
    }
}

#[test]
fn vmap_equals_a_loop_over_examples() {
    use autodiff_ir::{BinaryOp, DType, Graph, Tensor, UnaryOp};
    // f(x, W) = sum(tanh(W @ x) * x[:2]) with x batched, W not.
    let mut g = Graph::new();
    let x = g.add_input("x", vec![3], DType::F64);
    let w = g.add_input("W", vec![2, 3], DType::F64);
    let wx = g.matmul(w, x).unwrap();
    let t = g.unary(UnaryOp::Tanh, wx).unwrap();
    let head = g
        .slice(
            x,
            vec![autodiff_ir::SliceDim {
                start: 0,
                step: 1,
                len: 2,
            }],
        )
        .unwrap();
    let p = g.binary(BinaryOp::Mul, t, head).unwrap();
    let out = g.sum(p, &[0]).unwrap();
    let (bg, map) = autodiff_transform::vmap(&g, &[true, false], 4).unwrap();
    let bout = map[out.index()];
    assert!(bout.1, "the output depends on the batched input");
    let xs: Vec<f64> = (0..12).map(|i| (i as f64 * 0.37).sin()).collect();
    let ws: Vec<f64> = (0..6).map(|i| (i as f64 * 0.11).cos()).collect();
    let wt = Tensor::new(DType::F64, vec![2, 3], ws);
    let batched = autodiff_exec::eval(
        &bg,
        &[Tensor::new(DType::F64, vec![4, 3], xs.clone()), wt.clone()],
        &[bout.0],
    )
    .unwrap();
    for k in 0..4 {
        let one = autodiff_exec::eval(
            &g,
            &[
                Tensor::new(DType::F64, vec![3], xs[3 * k..3 * k + 3].to_vec()),
                wt.clone(),
            ],
            &[out],
        )
        .unwrap();
        assert!((batched[0].data[k] - one[0].data[0]).abs() < 1e-14);
    }
}
