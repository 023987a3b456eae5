//! Every derivative rule, reverse and forward, against central finite differences of the
//! reference evaluator (see `common::check`).

mod common;

use autodiff_ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceOp, SliceDim, Tensor, UnaryOp};
use common::{check, ints, rand, val, In};

/// A sample range of each float unary op, away from its kinks and singularities.
fn unary_range(u: UnaryOp) -> Option<(f64, f64)> {
    use UnaryOp::*;
    Some(match u {
        Log | Log1p | Log2 | Log10 | Sqrt | Reciprocal => (0.3, 2.0),
        Arcsin | Arccos | Arctanh => (-0.8, 0.8),
        Arccosh => (1.2, 3.0),
        Gammaln | Digamma | Trigamma => (0.5, 4.0),
        Tan => (-1.2, 1.2),
        Not => return None,
        _ => (-2.0, 2.0),
    })
}

mod elementwise {
    use super::*;

    #[test]
    fn every_unary_op() {
        for u in UnaryOp::ALL {
            let Some((lo, hi)) = unary_range(u) else {
                continue;
            };
            if u == UnaryOp::Trigamma || u == UnaryOp::StopGradient {
                continue; // no derivative rule: see the error tests; stop_gradient below
            }
            check(
                &format!("unary {}", u.name()),
                vec![rand(&[2, 3], lo, hi)],
                |g, x| g.unary(u, x[0]),
            );
        }
    }

    /// Sample ranges for both operands of each float binary op.
    fn binary_ranges(b: BinaryOp) -> Option<[(f64, f64); 2]> {
        use BinaryOp::*;
        Some(match b {
            Pow => [(0.3, 2.0), (-1.5, 1.5)],
            Div | FloorDiv | Mod => [(0.1, 5.0), (0.7, 1.3)],
            Lt | Le | Gt | Ge | Eq | Ne | And | Or | Xor => return None,
            _ => [(-2.0, 2.0), (-2.0, 2.0)],
        })
    }

    #[test]
    fn every_binary_op() {
        for b in BinaryOp::ALL {
            let Some([ra, rb]) = binary_ranges(b) else {
                continue;
            };
            check(
                &format!("binary {}", b.name()),
                vec![rand(&[3, 2], ra.0, ra.1), rand(&[3, 2], rb.0, rb.1)],
                |g, x| g.binary(b, x[0], x[1]),
            );
            // the same op with one operand constant (only one operand differentiated)
            check(
                &format!("binary {} with a constant", b.name()),
                vec![rand(&[4], rb.0, rb.1)],
                |g, x| {
                    let c = g.constant(Tensor::new(
                        DType::F64,
                        vec![4],
                        vec![ra.0, ra.1, ra.0, ra.1],
                    ));
                    g.binary(b, c, x[0])
                },
            );
        }
    }

    #[test]
    fn comparisons_have_no_derivative_but_pass_through_where() {
        for b in [
            BinaryOp::Lt,
            BinaryOp::Le,
            BinaryOp::Gt,
            BinaryOp::Ge,
            BinaryOp::Eq,
            BinaryOp::Ne,
        ] {
            check(
                &format!("where {}", b.name()),
                vec![rand(&[5], -1.0, 1.0), rand(&[5], -1.0, 1.0)],
                |g, x| {
                    let c = g.binary(b, x[0], x[1])?;
                    let s = g.unary(UnaryOp::Sin, x[0])?;
                    let e = g.unary(UnaryOp::Exp, x[1])?;
                    g.select(c, s, e)
                },
            );
        }
    }

    #[test]
    fn where_with_one_branch_constant() {
        check("where const", vec![rand(&[6], -1.0, 1.0)], |g, x| {
            let z = g.scalar(0.0, DType::F64);
            let c = g.binary(BinaryOp::Gt, x[0], z)?;
            let sq = g.unary(UnaryOp::Square, x[0])?;
            let k = g.full(3.0, &[6], DType::F64);
            g.select(c, k, sq)
        });
    }

    #[test]
    fn binary_with_broadcasting() {
        check(
            "mul broadcast",
            vec![rand(&[3, 1], -1.0, 1.0), rand(&[4], -1.0, 1.0)],
            |g, x| g.mul(x[0], x[1]),
        );
        check(
            "pow broadcast scalar exponent",
            vec![rand(&[2, 3], 0.5, 2.0), rand(&[], 1.5, 2.5)],
            |g, x| g.binary(BinaryOp::Pow, x[0], x[1]),
        );
    }

    #[test]
    fn cast_float32_roundtrip_and_int() {
        // float64 -> float32 -> float64 loses precision; check the pass-through analytically
        let (mut g, xs, vals, _) = common::setup("cast", vec![val(&[3], &[0.5, -1.25, 2.0])]);
        let c32 = g.cast(xs[0], DType::F32).unwrap();
        let sq = g.unary(UnaryOp::Square, c32).unwrap();
        let back = g.cast(sq, DType::F64).unwrap();
        let toint = g.cast(xs[0], DType::I64).unwrap();
        let asf = g.cast(toint, DType::F64).unwrap();
        let out = g.add_(back, asf).unwrap();
        let s = g.sum(out, &[0]).unwrap();
        let gr = autodiff_transform::grad(&mut g, s, &[xs[0]]).unwrap()[0];
        assert_eq!(g.dtype(gr), DType::F64);
        let one = g.constant(Tensor::new(DType::F64, vec![3], vec![1.0; 3]));
        let t = autodiff_transform::jvp(&mut g, &[out], &[xs[0]], &[one]).unwrap()[0];
        let r = common::ev(&g, &vals, &[gr, t]);
        assert_eq!(r[0].data, vec![1.0, -2.5, 4.0]);
        assert_eq!(r[1].data, vec![1.0, -2.5, 4.0]);
    }

    #[test]
    fn stop_gradient_keeps_the_value_and_stops_the_derivative() {
        // d/dx Σ x·sg(x) = sg(x) = x; forward: ẏ = ẋ·x
        let (mut g, xs, vals, _) = common::setup("sg", vec![val(&[3], &[0.5, -1.25, 2.0])]);
        let sg = g.unary(UnaryOp::StopGradient, xs[0]).unwrap();
        let out = g.mul(xs[0], sg).unwrap();
        let s = g.sum(out, &[0]).unwrap();
        let gr = autodiff_transform::grad(&mut g, s, &[xs[0]]).unwrap()[0];
        let one = g.constant(Tensor::new(DType::F64, vec![3], vec![1.0; 3]));
        let t = autodiff_transform::jvp(&mut g, &[out], &[xs[0]], &[one]).unwrap()[0];
        let r = common::ev(&g, &vals, &[out, gr, t]);
        assert_eq!(r[0].data, vec![0.25, 1.5625, 4.0]);
        assert_eq!(r[1].data, vals[0].data);
        assert_eq!(r[2].data, vals[0].data);
    }

    /// `where(x > 0, x·log x, 0)`: at x = 0 the branch not taken has an infinite partial
    /// (log 0); its cotangent is masked to zero, and must stay exactly zero (select, not
    /// multiply), in reverse mode, forward mode and second order.
    #[test]
    fn masked_branch_contributes_exactly_zero() {
        let (mut g, xs, vals, _) = common::setup("mask", vec![val(&[3], &[0.0, 0.5, 2.0])]);
        let x = xs[0];
        let zero = g.scalar(0.0, DType::F64);
        let pos = g.binary(BinaryOp::Gt, x, zero).unwrap();
        let l = g.unary(UnaryOp::Log, x).unwrap();
        let xl = g.mul(x, l).unwrap();
        let z = g.zeros_like(xl);
        let w = g.select(pos, xl, z).unwrap();
        let s = g.sum(w, &[0]).unwrap();
        let gr = autodiff_transform::grad(&mut g, s, &[x]).unwrap()[0];
        let one = g.constant(Tensor::new(DType::F64, vec![3], vec![1.0; 3]));
        let t = autodiff_transform::jvp(&mut g, &[w], &[x], &[one]).unwrap()[0];
        let hv = autodiff_transform::jvp(&mut g, &[gr], &[x], &[one]).unwrap()[0];
        let r = common::ev(&g, &vals, &[gr, t, hv]);
        // d/dx x log x = log x + 1; d²/dx² = 1/x
        let want = [0.0, 0.5f64.ln() + 1.0, 2f64.ln() + 1.0];
        for rk in &r[..2] {
            for (a, b) in rk.data.iter().zip(want) {
                assert!(common::close(*a, b, 1e-12), "{:?} vs {want:?}", rk.data);
            }
        }
        assert_eq!(r[2].data, vec![0.0, 2.0, 0.5]);
    }
}

mod shape {
    use super::*;

    #[test]
    fn broadcast() {
        check("broadcast", vec![rand(&[3, 1], -1.0, 1.0)], |g, x| {
            g.broadcast(x[0], &[2, 3, 4])
        });
        check("broadcast scalar", vec![rand(&[], -1.0, 1.0)], |g, x| {
            g.broadcast(x[0], &[2, 2])
        });
    }

    #[test]
    fn reshape_and_transpose() {
        check("reshape", vec![rand(&[2, 6], -1.0, 1.0)], |g, x| {
            let r = g.reshape(x[0], &[3, 4])?;
            let w = g.constant(common::Rng::new("w").tensor(&[3, 4], -1.0, 1.0));
            g.mul(r, w)
        });
        check("transpose", vec![rand(&[2, 3, 4], -1.0, 1.0)], |g, x| {
            let t = g.transpose(x[0], &[2, 0, 1])?;
            g.unary(UnaryOp::Sin, t)
        });
    }

    #[test]
    fn slice_with_steps() {
        check("slice", vec![rand(&[5, 4], -1.0, 1.0)], |g, x| {
            let d = vec![
                SliceDim {
                    start: 4,
                    step: -2,
                    len: 3,
                },
                SliceDim {
                    start: 1,
                    step: 1,
                    len: 2,
                },
            ];
            g.slice(x[0], d)
        });
    }

    #[test]
    fn set_slice() {
        check(
            "set_slice",
            vec![rand(&[4, 3], -1.0, 1.0), rand(&[2, 3], -1.0, 1.0)],
            |g, x| {
                let d = vec![
                    SliceDim {
                        start: 3,
                        step: -2,
                        len: 2,
                    },
                    SliceDim {
                        start: 0,
                        step: 1,
                        len: 3,
                    },
                ];
                let s = g.add(Op::SetSlice(d), vec![x[0], x[1]])?;
                g.mul(s, s)
            },
        );
    }

    #[test]
    fn concat() {
        check(
            "concat",
            vec![
                rand(&[2, 1], -1.0, 1.0),
                rand(&[2, 3], -1.0, 1.0),
                rand(&[2, 2], -1.0, 1.0),
            ],
            |g, x| {
                let e = g.unary(UnaryOp::Exp, x[2])?;
                g.add(Op::Concat(1), vec![x[0], x[1], e])
            },
        );
        check(
            "concat with a constant",
            vec![rand(&[3], -1.0, 1.0)],
            |g, x| {
                let c = g.full(2.0, &[2], DType::F64);
                g.add(Op::Concat(0), vec![c, x[0], c])
            },
        );
    }
}

mod reduce {
    use super::*;

    fn all_reductions(name: &str, input: impl Fn() -> In) {
        for r in [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min] {
            for axes in [vec![0], vec![1], vec![0, 2], vec![0, 1, 2]] {
                check(
                    &format!("{name} {} {axes:?}", r.name()),
                    vec![input()],
                    |g, x| g.reduce(r, x[0], &axes),
                );
            }
        }
    }

    #[test]
    fn reductions() {
        all_reductions("random", || rand(&[2, 3, 2], 0.5, 1.5));
    }

    #[test]
    fn degenerate_extents() {
        // axes of length 1 and 0: the exclusive products and reversals have nothing to do
        for shape in [[2, 1, 3], [2, 0, 3]] {
            for r in [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min] {
                if shape[1] == 0 && matches!(r, ReduceOp::Max | ReduceOp::Min) {
                    continue; // undefined on an empty axis
                }
                check(
                    &format!("{} over {shape:?}", r.name()),
                    vec![rand(&shape, 0.5, 1.5)],
                    |g, x| g.reduce(r, x[0], &[1]),
                );
            }
            check(
                &format!("cumprod over {shape:?}"),
                vec![rand(&shape, 0.5, 1.5)],
                |g, x| g.add(Op::Cumprod(1), vec![x[0]]),
            );
            check(
                &format!("cumsum over {shape:?}"),
                vec![rand(&shape, 0.5, 1.5)],
                |g, x| g.add(Op::Cumsum(1), vec![x[0]]),
            );
        }
    }

    #[test]
    fn prod_with_zeros() {
        // one zero and two zeros in a lane: the gradient is exact (no division)
        let x = [0.0, 2.0, 3.0, 0.0, 0.0, 1.5, 0.5, 1.0, 2.0, -1.0, 0.0, 4.0];
        all_reductions("zeros", || val(&[2, 3, 2], &x));
    }

    #[test]
    fn max_ties_share_evenly() {
        let (mut g, xs, vals, _) =
            common::setup("ties", vec![val(&[2, 3], &[1.0, 3.0, 3.0, 2.0, 2.0, 2.0])]);
        let m = g.reduce(ReduceOp::Max, xs[0], &[1]).unwrap();
        let s = g.sum(m, &[0]).unwrap();
        let gr = autodiff_transform::grad(&mut g, s, &[xs[0]]).unwrap()[0];
        let r = common::ev(&g, &vals, &[gr]);
        let third = 1.0 / 3.0;
        assert_eq!(r[0].data, vec![0.0, 0.5, 0.5, third, third, third]);
    }

    #[test]
    fn cumsum() {
        for axis in 0..2 {
            check(
                &format!("cumsum {axis}"),
                vec![rand(&[3, 4], -1.0, 1.0)],
                |g, x| g.add(Op::Cumsum(axis), vec![x[0]]),
            );
        }
    }

    #[test]
    fn cumprod() {
        for axis in 0..3 {
            check(
                &format!("cumprod {axis}"),
                vec![rand(&[3, 4, 2], 0.5, 1.5)],
                |g, x| g.add(Op::Cumprod(axis), vec![x[0]]),
            );
        }
        let x = [1.5, 0.0, 2.0, 0.0, -1.0, 3.0, 0.5, 0.0];
        check("cumprod zeros", vec![val(&[2, 4], &x)], |g, x| {
            g.add(Op::Cumprod(1), vec![x[0]])
        });
    }

    #[test]
    fn argmax_and_argsort_select_without_derivative() {
        // sort = take_along(x, argsort(x)): the gradient is the permutation
        check("sort", vec![rand(&[3, 4], -1.0, 1.0)], |g, x| {
            let p = g.add(Op::ArgSort(1), vec![x[0]])?;
            g.add(Op::TakeAlong(1), vec![x[0], p])
        });
        check("gather at argmax", vec![rand(&[5], -1.0, 1.0)], |g, x| {
            let i = g.add(Op::ArgMax(0, true), vec![x[0]])?;
            let i = g.reshape(i, &[1])?;
            let v = g.add(Op::Gather(0), vec![x[0], i])?;
            g.unary(UnaryOp::Exp, v)
        });
    }
}

mod index {
    use super::*;

    fn idx(g: &mut Graph, shape: &[usize], data: &[i64]) -> NodeId {
        g.constant(Tensor::new(
            DType::I64,
            shape.to_vec(),
            data.iter().map(|&v| v as f64).collect(),
        ))
    }

    #[test]
    fn gather_with_repeats() {
        for axis in 0..2 {
            check(
                &format!("gather {axis}"),
                vec![rand(&[3, 3], -1.0, 1.0)],
                |g, x| {
                    let i = idx(g, &[2, 2], &[2, 0, 2, 2]);
                    g.add(Op::Gather(axis), vec![x[0], i])
                },
            );
        }
    }

    #[test]
    fn gather_with_index_input() {
        check(
            "gather int input",
            vec![rand(&[4, 2], -1.0, 1.0), ints(&[3], &[3, 1, 3])],
            |g, x| g.add(Op::Gather(0), vec![x[0], x[1]]),
        );
    }

    #[test]
    fn scatter_add() {
        check(
            "scatter_add",
            vec![rand(&[4, 2], -1.0, 1.0), rand(&[3, 2], -1.0, 1.0)],
            |g, x| {
                let i = idx(g, &[3], &[1, 3, 1]);
                let s = g.add(Op::ScatterAdd(0), vec![x[0], i, x[1]])?;
                g.unary(UnaryOp::Sin, s)
            },
        );
    }

    #[test]
    fn scatter_last_write_wins() {
        check(
            "scatter",
            vec![rand(&[2, 4], -1.0, 1.0), rand(&[2, 3], -1.0, 1.0)],
            |g, x| {
                let i = idx(g, &[3], &[2, 0, 2]);
                let s = g.add(Op::Scatter(1), vec![x[0], i, x[1]])?;
                g.unary(UnaryOp::Sin, s)
            },
        );
    }

    #[test]
    fn take_along_and_scatter_along_add() {
        check("take_along", vec![rand(&[3, 4], -1.0, 1.0)], |g, x| {
            let i = idx(g, &[3, 2], &[0, 0, 3, 1, 2, 2]);
            g.add(Op::TakeAlong(1), vec![x[0], i])
        });
        check(
            "scatter_along_add",
            vec![rand(&[3, 2], -1.0, 1.0), rand(&[2, 2], -1.0, 1.0)],
            |g, x| {
                let i = idx(g, &[2, 2], &[2, 0, 2, 1]);
                let s = g.add(Op::ScatterAlongAdd(0), vec![x[0], i, x[1]])?;
                g.mul(s, s)
            },
        );
    }
}

mod linalg {
    use super::*;

    /// A well-conditioned random n x n matrix (diagonally dominant).
    fn matrix(n: usize, seed: &str, sign: f64) -> In {
        let mut r = common::Rng::new(seed);
        let mut t = r.tensor(&[n, n], -1.0, 1.0);
        for i in 0..n {
            t.data[i * n + i] = sign * (n as f64 + r.uniform(0.5, 1.0));
        }
        In::Val(t)
    }

    #[test]
    fn contractions() {
        let specs: [(&str, &[usize], &[usize]); 7] = [
            ("ij,jk->ik", &[2, 3], &[3, 4]),
            ("i,i->", &[3], &[3]),
            ("bij,bjk->bik", &[2, 2, 3], &[2, 3, 2]),
            ("ij,j->ij", &[2, 3], &[3]),
            ("ijk,kj->i", &[2, 3, 2], &[2, 3]),
            ("i,j->ij", &[2], &[3]),
            ("ij,kj->ki", &[3, 2], &[4, 2]),
        ];
        for (s, a, b) in specs {
            check(
                &format!("contract {s}"),
                vec![rand(a, -1.0, 1.0), rand(b, -1.0, 1.0)],
                |g, x| g.contract(s, x[0], x[1]),
            );
        }
        check(
            "contract same operand",
            vec![rand(&[3, 3], -1.0, 1.0)],
            |g, x| g.contract("ij,kj->ik", x[0], x[0]),
        );
    }

    #[test]
    fn solve() {
        check(
            "solve",
            vec![matrix(3, "a", 1.0), rand(&[3, 2], -1.0, 1.0)],
            |g, x| g.add(Op::Solve, vec![x[0], x[1]]),
        );
    }

    #[test]
    fn triangular_solve() {
        for lower in [true, false] {
            check(
                &format!("trisolve {lower}"),
                vec![matrix(3, "t", 1.0), rand(&[3, 2], -1.0, 1.0)],
                |g, x| g.add(Op::TriSolve(lower), vec![x[0], x[1]]),
            );
        }
    }

    #[test]
    fn inverse_and_determinants() {
        check("inv", vec![matrix(3, "i", 1.0)], |g, x| {
            g.add(Op::Inv, vec![x[0]])
        });
        check("det", vec![matrix(3, "d", 1.0)], |g, x| {
            g.add(Op::Det, vec![x[0]])
        });
        check("det negative", vec![matrix(3, "d", -1.0)], |g, x| {
            g.add(Op::Det, vec![x[0]])
        });
        check("logabsdet", vec![matrix(3, "l", 1.0)], |g, x| {
            g.add(Op::LogAbsDet, vec![x[0]])
        });
        check("logabsdet negative", vec![matrix(3, "l", -1.0)], |g, x| {
            g.add(Op::LogAbsDet, vec![x[0]])
        });
    }

    #[test]
    fn cholesky_of_symmetric_part() {
        // chol((A + Aᵀ)/2): the derivative convention of the rule
        check("cholesky", vec![matrix(3, "c", 1.0)], |g, x| {
            let t = g.transpose(x[0], &[1, 0])?;
            let s = g.add_(x[0], t)?;
            let s = g.scale(s, 0.5)?;
            g.add(Op::Cholesky, vec![s])
        });
    }
}
