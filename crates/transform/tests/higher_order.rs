//! Composition: second (and third) derivatives of every rule, by running the first-order
//! checker on gradient graphs; analytic second derivatives; Hessian-vector products.

mod common;

use autodiff_ir::{BinaryOp, DType, Graph, IrError, NodeId, Op, ReduceOp, Tensor, UnaryOp};
use autodiff_transform::{grad, hvp};
use common::{check, close, ev, rand, setup, val, In};

/// `∇ sum(sin(f(x...)))` with respect to every input, concatenated flat: the checker then
/// differentiates the reverse-mode rules of `f` themselves (second derivatives).
fn grad_graph(
    g: &mut Graph,
    x: &[NodeId],
    f: impl FnOnce(&mut Graph, &[NodeId]) -> Result<NodeId, IrError>,
) -> Result<NodeId, IrError> {
    let y = f(g, x)?;
    let s = g.unary(UnaryOp::Sin, y)?;
    let axes: Vec<usize> = (0..g.shape(s).len()).collect();
    let l = g.sum(s, &axes)?;
    let wrt: Vec<NodeId> = x
        .iter()
        .copied()
        .filter(|&n| g.dtype(n).is_float())
        .collect();
    let gs = grad(g, l, &wrt)?;
    let flat: Vec<NodeId> = gs
        .iter()
        .map(|&n| {
            let size = g.node(n).size();
            g.reshape(n, &[size])
        })
        .collect::<Result<_, _>>()?;
    if flat.len() == 1 {
        return Ok(flat[0]);
    }
    g.add(Op::Concat(0), flat)
}

fn check2(
    name: &str,
    ins: Vec<In>,
    f: impl FnOnce(&mut Graph, &[NodeId]) -> Result<NodeId, IrError>,
) {
    check(&format!("second order: {name}"), ins, |g, x| {
        grad_graph(g, x, f)
    });
}

#[test]
fn second_order_unary() {
    use UnaryOp::*;
    for u in UnaryOp::ALL {
        let (lo, hi) = match u {
            Log | Log1p | Log2 | Log10 | Sqrt | Reciprocal => (0.3, 2.0),
            Arcsin | Arccos | Arctanh => (-0.8, 0.8),
            Arccosh => (1.2, 3.0),
            Tan => (-1.2, 1.2),
            Gammaln | Digamma | Trigamma | Not | StopGradient => continue,
            _ => (-2.0, 2.0),
        };
        check2(u.name(), vec![rand(&[2, 2], lo, hi)], |g, x| {
            g.unary(u, x[0])
        });
    }
}

#[test]
fn second_order_binary() {
    use BinaryOp::*;
    for b in [
        Add, Sub, Mul, Div, Mod, Pow, Maximum, Minimum, Arctan2, LogAddExp,
    ] {
        let ra = if matches!(b, Pow | Div | Mod) {
            (0.3, 2.0)
        } else {
            (-2.0, 2.0)
        };
        let rb = match b {
            Div | Mod => (0.7, 1.3),
            _ => (-1.5, 1.5),
        };
        check2(
            b.name(),
            vec![rand(&[3], ra.0, ra.1), rand(&[3], rb.0, rb.1)],
            |g, x| g.binary(b, x[0], x[1]),
        );
    }
}

#[test]
fn second_order_structural() {
    check2(
        "where",
        vec![rand(&[4], -1.0, 1.0), rand(&[4], -1.0, 1.0)],
        |g, x| {
            let c = g.binary(BinaryOp::Lt, x[0], x[1])?;
            let p = g.mul(x[0], x[1])?;
            g.select(c, p, x[1])
        },
    );
    check2(
        "broadcast mul",
        vec![rand(&[3, 1], -1.0, 1.0), rand(&[2], -1.0, 1.0)],
        |g, x| g.mul(x[0], x[1]),
    );
    for r in [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min] {
        check2(r.name(), vec![rand(&[2, 3], 0.5, 1.5)], |g, x| {
            let sq = g.mul(x[0], x[0])?;
            g.reduce(r, sq, &[1])
        });
    }
    check2("cumsum", vec![rand(&[4], -1.0, 1.0)], |g, x| {
        let sq = g.mul(x[0], x[0])?;
        g.add(Op::Cumsum(0), vec![sq])
    });
    check2("cumprod", vec![rand(&[2, 3], 0.5, 1.5)], |g, x| {
        g.add(Op::Cumprod(1), vec![x[0]])
    });
    check2("gather", vec![rand(&[3], -1.0, 1.0)], |g, x| {
        let i = g.constant(Tensor::new(DType::I64, vec![4], vec![0.0, 2.0, 2.0, 1.0]));
        let v = g.add(Op::Gather(0), vec![x[0], i])?;
        g.mul(v, v)
    });
    check2(
        "scatter",
        vec![rand(&[3], -1.0, 1.0), rand(&[2], -1.0, 1.0)],
        |g, x| {
            let i = g.constant(Tensor::new(DType::I64, vec![2], vec![1.0, 1.0]));
            let p = g.mul(x[0], x[0])?;
            let q = g.mul(x[1], x[1])?;
            g.add(Op::Scatter(0), vec![p, i, q])
        },
    );
    check2(
        "matmul",
        vec![rand(&[2, 3], -1.0, 1.0), rand(&[3, 2], -1.0, 1.0)],
        |g, x| g.matmul(x[0], x[1]),
    );
}

fn spd(n: usize) -> In {
    let mut r = common::Rng::new("spd");
    let mut t = r.tensor(&[n, n], -0.5, 0.5);
    for i in 0..n {
        t.data[i * n + i] = n as f64 + 1.0;
    }
    In::Val(t)
}

#[test]
fn second_order_linalg() {
    check2("solve", vec![spd(3), rand(&[3, 2], -1.0, 1.0)], |g, x| {
        g.add(Op::Solve, vec![x[0], x[1]])
    });
    check2(
        "trisolve",
        vec![spd(3), rand(&[3, 1], -1.0, 1.0)],
        |g, x| g.add(Op::TriSolve(true), vec![x[0], x[1]]),
    );
    check2("inv", vec![spd(3)], |g, x| g.add(Op::Inv, vec![x[0]]));
    check2("det", vec![spd(3)], |g, x| g.add(Op::Det, vec![x[0]]));
    check2("logabsdet", vec![spd(3)], |g, x| {
        g.add(Op::LogAbsDet, vec![x[0]])
    });
    check2("cholesky", vec![spd(3)], |g, x| {
        let t = g.transpose(x[0], &[1, 0])?;
        let s = g.add_(x[0], t)?;
        let s = g.scale(s, 0.5)?;
        g.add(Op::Cholesky, vec![s])
    });
}

/// `d²/dx² sum(f(x))` elementwise, by grad of grad.
fn second_derivative(u: UnaryOp, xs: &[f64]) -> Vec<f64> {
    let (mut g, x, vals, _) = setup("d2", vec![val(&[xs.len()], xs)]);
    let y = g.unary(u, x[0]).unwrap();
    let s = g.sum(y, &[0]).unwrap();
    let g1 = grad(&mut g, s, &x).unwrap()[0];
    let s1 = g.sum(g1, &[0]).unwrap();
    let g2 = grad(&mut g, s1, &x).unwrap()[0];
    ev(&g, &vals, &[g2])[0].data.clone()
}

#[test]
fn analytic_second_derivatives() {
    let xs = [0.3, 0.7, 1.6];
    type D2 = (UnaryOp, fn(f64) -> f64);
    let table: [D2; 7] = [
        (UnaryOp::Exp, f64::exp),
        (UnaryOp::Sin, |x| -x.sin()),
        (UnaryOp::Log, |x| -1.0 / (x * x)),
        (UnaryOp::Sqrt, |x| -0.25 * x.powf(-1.5)),
        (UnaryOp::Tanh, |x| {
            -2.0 * x.tanh() * (1.0 - x.tanh() * x.tanh())
        }),
        (UnaryOp::Sigmoid, |x| {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 - s) * (1.0 - 2.0 * s)
        }),
        (UnaryOp::Erf, |x| {
            -4.0 * x / std::f64::consts::PI.sqrt() * (-x * x).exp()
        }),
    ];
    for (u, d2) in table {
        let got = second_derivative(u, &xs);
        for (x, v) in xs.iter().zip(got) {
            assert!(
                close(v, d2(*x), 1e-12),
                "{}'' at {x}: {v} vs {}",
                u.name(),
                d2(*x)
            );
        }
    }
}

#[test]
fn third_derivative_of_sin() {
    let (mut g, x, vals, _) = setup("d3", vec![val(&[2], &[0.4, 1.1])]);
    let mut y = g.unary(UnaryOp::Sin, x[0]).unwrap();
    for _ in 0..3 {
        let s = g.sum(y, &[0]).unwrap();
        y = grad(&mut g, s, &x).unwrap()[0];
    }
    let r = ev(&g, &vals, &[y]);
    assert!(close(r[0].data[0], -(0.4f64).cos(), 1e-12));
    assert!(close(r[0].data[1], -(1.1f64).cos(), 1e-12));
}

#[test]
fn hvp_matches_finite_differences_of_the_gradient() {
    // f(x, A) = sum(exp(A x) * sin(x)) + log det(A Aᵀ + I)... kept simple but mixed
    let ins = vec![rand(&[3], -1.0, 1.0), rand(&[3, 3], -0.5, 0.5)];
    let (mut g, x, vals, mut rng) = setup("hvp", ins);
    let ax = g.matmul(x[1], x[0]).unwrap();
    let e = g.unary(UnaryOp::Exp, ax).unwrap();
    let s = g.unary(UnaryOp::Sin, x[0]).unwrap();
    let p = g.mul(e, s).unwrap();
    let f1 = g.sum(p, &[0]).unwrap();
    let sq = g.mul(x[1], x[1]).unwrap();
    let m = g.reduce(ReduceOp::Max, sq, &[0, 1]).unwrap();
    let f = g.add_(f1, m).unwrap();
    let vs: Vec<Tensor> = x
        .iter()
        .map(|&n| rng.tensor(g.shape(n), -1.0, 1.0))
        .collect();
    let vc: Vec<NodeId> = vs.iter().map(|t| g.constant(t.clone())).collect();
    let hv = hvp(&mut g, f, &x, &vc).unwrap();
    let gr = grad(&mut g, f, &x).unwrap();
    let r = ev(&g, &vals, &hv);
    let h = 1e-5;
    let shift = |s: f64| -> Vec<Tensor> {
        vals.iter()
            .zip(&vs)
            .map(|(t, v)| {
                Tensor::new(
                    DType::F64,
                    t.shape.clone(),
                    t.data.iter().zip(&v.data).map(|(a, b)| a + s * b).collect(),
                )
            })
            .collect()
    };
    let (gp, gm) = (ev(&g, &shift(h), &gr), ev(&g, &shift(-h), &gr));
    for k in 0..2 {
        for e in 0..r[k].size() {
            let fd = (gp[k].data[e] - gm[k].data[e]) / (2.0 * h);
            assert!(
                close(r[k].data[e], fd, 1e-6),
                "hvp[{k}][{e}]: {} vs {fd}",
                r[k].data[e]
            );
        }
    }
}

#[test]
fn hvp_of_a_quadratic_is_exact() {
    // f = ½ xᵀ A x with symmetric A: H v = A v
    let a = [2.0, 1.0, 1.0, 3.0];
    let (mut g, x, vals, _) = setup("quad", vec![val(&[2], &[0.3, -0.2])]);
    let am = g.constant(Tensor::new(DType::F64, vec![2, 2], a.to_vec()));
    let ax = g.matmul(am, x[0]).unwrap();
    let q = g.matmul(x[0], ax).unwrap();
    let f = g.scale(q, 0.5).unwrap();
    let v = g.constant(Tensor::new(DType::F64, vec![2], vec![1.0, -1.0]));
    let hv = hvp(&mut g, f, &x, &[v]).unwrap();
    assert_eq!(ev(&g, &vals, &hv)[0].data, vec![1.0, -2.0]);
}

#[test]
fn gammaln_third_derivative_is_a_clear_error() {
    // second derivative: trigamma; third: refused
    let (mut g, x, _, _) = setup("gammaln", vec![rand(&[2], 1.0, 2.0)]);
    let y = g.unary(UnaryOp::Gammaln, x[0]).unwrap();
    let s = g.sum(y, &[0]).unwrap();
    let g1 = grad(&mut g, s, &x).unwrap()[0];
    let s1 = g.sum(g1, &[0]).unwrap();
    let g2 = grad(&mut g, s1, &x).unwrap()[0];
    let s2 = g.sum(g2, &[0]).unwrap();
    let e = grad(&mut g, s2, &x).unwrap_err();
    assert!(e.0.contains("polygamma"), "{e}");
}
