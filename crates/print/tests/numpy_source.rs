//! NumPy source: golden text, and (where a Python with NumPy is found: `AUTODIFF_PYTHON`, the
//! active virtualenv, the workspace `.venv` or `python3`) execution compared with the
//! reference evaluator.

mod common;
use common::*;

fn t(shape: &[usize], f: impl Fn(usize) -> f64) -> Tensor {
    let n = shape.iter().product();
    Tensor::new(DType::F64, shape.to_vec(), (0..n).map(f).collect())
}

#[test]
fn seed_gradient_source() {
    let (g, gu) = seed_gradient();
    let (s, o) = autodiff_simplify::simplify(&g.0, &[gu]);
    let src = to_numpy_source(&s, &o, "grad_f");
    assert_eq!(
        src,
        "import numpy as np\n\n\ndef grad_f(x):\n    return 2.0*(x + 1.0)\n"
    );
    check_runs(&s, &o, &[t(&[3], |i| i as f64)]);
}

#[test]
fn tanh_gradient_source() {
    let (g, outs) = tanh_gradient();
    let (s, o) = autodiff_simplify::simplify(&g.0, &outs);
    assert_eq!(
        to_numpy_source(&s, &o, "grad"),
        "import numpy as np\n\n\ndef grad(W, x, b):\n    t0 = 1.0 - np.square(np.tanh(W @ x + b))\n    \
         return (np.outer(t0, x), t0 @ W, t0)\n"
    );
    let ins = [
        t(&[2, 3], |i| 0.1 * i as f64),
        t(&[3], |i| 1.0 - i as f64),
        t(&[2], |i| i as f64),
    ];
    check_runs(&s, &o, &ins);
}

#[test]
fn every_op_family_runs() {
    let mut g = G::new();
    let x = g.x("x", &[4]);
    let a = g.x("A", &[3, 3]);
    let m = g.x("M", &[2, 3]);
    let i = g.0.add_input("i", vec![2], DType::I64);
    let j = g.0.add_input("j", vec![2, 3], DType::I64);
    let mut outs = vec![];
    for u in [
        U::Exp,
        U::Sin,
        U::Tanh,
        U::Sigmoid,
        U::Erf,
        U::Gammaln,
        U::Digamma,
        U::Trigamma,
        U::Abs,
        U::Round,
    ] {
        outs.push(g.u(u, x));
    }
    let two = g.c(2.0);
    let sq = g.b(B::Pow, x, two);
    let half = g.c(0.5);
    outs.push(g.b(B::Sub, sq, half));
    outs.push(g.b(B::LogAddExp, x, sq));
    outs.push(g.b(B::Mod, x, two));
    let pos = g.b(B::Gt, x, half);
    let neg = g.u(U::Not, pos);
    outs.push(g.0.select(neg, x, sq).unwrap());
    outs.push(g.0.cast(pos, DType::F64).unwrap());
    let mt = g.0.transpose(m, &[1, 0]).unwrap();
    outs.push(g.0.matmul(mt, m).unwrap());
    outs.push(g.contract("ij,kj->ik", m, m));
    outs.push(g.contract("ij,ik->jk", m, m));
    outs.push(g.0.sum(m, &[1]).unwrap());
    outs.push(g.0.reduce(ReduceOp::Max, m, &[0, 1]).unwrap());
    outs.push(g.op(Op::ArgMax(1, true), &[m]));
    let r = g.0.reshape(m, &[3, 2]).unwrap();
    outs.push(g.0.broadcast(r, &[2, 3, 2]).unwrap());
    let sl = SliceDim {
        start: 3,
        step: -2,
        len: 2,
    };
    outs.push(g.op(Op::Slice(vec![sl]), &[x]));
    let v = g.x("v", &[2]);
    outs.push(g.op(Op::SetSlice(vec![sl]), &[x, v]));
    outs.push(g.op(Op::Gather(1), &[m, i]));
    let vm = g.x("V", &[2, 2]);
    outs.push(g.op(Op::ScatterAdd(1), &[m, i, vm]));
    outs.push(g.op(Op::Scatter(0), &[x, i, v]));
    outs.push(g.op(Op::TakeAlong(1), &[m, j]));
    outs.push(g.op(Op::ScatterAlongAdd(1), &[m, j, m]));
    outs.push(g.op(Op::Concat(0), &[x, v, x]));
    outs.push(g.op(Op::Cumsum(1), &[m]));
    outs.push(g.op(Op::Cumprod(0), &[m]));
    outs.push(g.op(Op::ArgSort(0), &[x]));
    let at = g.0.transpose(a, &[1, 0]).unwrap();
    let spd = g.0.matmul(a, at).unwrap();
    let eye = g.t(&[3, 3], &[1., 0., 0., 0., 1., 0., 0., 0., 1.]);
    let spd = g.b(B::Add, spd, eye);
    outs.push(g.op(Op::Solve, &[spd, at]));
    let l = g.op(Op::Cholesky, &[spd]);
    outs.push(l);
    outs.push(g.op(Op::TriSolve(true), &[l, a]));
    outs.push(g.op(Op::Inv, &[spd]));
    outs.push(g.op(Op::Det, &[spd]));
    outs.push(g.op(Op::LogAbsDet, &[spd]));
    // batched contractions (np.einsum; the numba target writes them as batched products)
    let q = g.x("Q", &[2, 2, 3]);
    outs.push(g.contract("bij,kj->bik", q, m));
    let qt = g.0.transpose(q, &[0, 2, 1]).unwrap();
    outs.push(g.contract("axy,ayz->axz", q, qt));
    outs.push(g.contract("bij,bik->kj", q, q));
    let idx = |d: &[f64], s: &[usize]| Tensor::new(DType::I64, s.to_vec(), d.to_vec());
    let ins = [
        t(&[4], |k| 0.7 * k as f64 + 0.3),
        t(&[3, 3], |k| ((k * 7) % 5) as f64 - 1.5),
        t(&[2, 3], |k| 0.5 + k as f64),
        idx(&[2.0, 0.0], &[2]),
        idx(&[0., 2., 1., 1., 1., 0.], &[2, 3]),
        t(&[2], |k| 10.0 + k as f64),
        t(&[2, 2], |k| k as f64),
        t(&[2, 2, 3], |k| 0.25 * k as f64 - 1.0),
    ];
    check_runs(&g.0, &outs, &ins);
    let numba = to_source(&g.0, &outs, "f", Target::Numba);
    assert!(
        numba.contains("_bmm(") && !numba.contains("np.einsum"),
        "{numba}"
    );
    let src = to_numpy_source(&g.0, &outs, "f");
    for needle in [
        "def _digamma",
        "def _trigamma",
        "import math",
        "np.add.at(t",
        ".copy()",
        "kind=\"stable\"",
        "np.linalg.slogdet(",
    ] {
        assert!(src.contains(needle), "{needle} missing in\n{src}");
    }
}
