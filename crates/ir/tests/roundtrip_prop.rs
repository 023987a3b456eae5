//! Property: random well-typed graphs print, parse back, verify, and print identically.

use autodiff_ir::sexpr::{parse_graph, print_graph};
use autodiff_ir::verify::verify;
use autodiff_ir::{
    BinaryOp, ContractSpec, DType, Graph, NodeId, Op, ReduceOp, SliceDim, Tensor, UnaryOp,
};
use proptest::prelude::*;

const DTYPES: [DType; 4] = [DType::Bool, DType::I64, DType::F32, DType::F64];
const VALUES: [f64; 12] = [
    0.0,
    -0.0,
    1.0,
    -2.5,
    0.1,
    1e-300,
    1e300,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    3.0,
    1.0 / 3.0,
];
const NAMES: [&str; 6] = ["x", "W", "x[0]", "t0", "nan", "a b"];
const SPECS: [&str; 6] = [
    "ij,jk->ik",
    "i,i->",
    "ij,j->i",
    "ij,kj->ikj",
    ",->",
    "ab,ab->ba",
];

/// One random step: which op, and three numbers that pick operands and attributes.
type Step = (u8, u32, u32, u32);

/// Tries to add one node described by `step`; ill-typed attempts are simply skipped.
fn step(g: &mut Graph, (kind, a, b, c): Step) {
    let pick = |k: u32| NodeId(k % g.len() as u32);
    let x = pick(b);
    let shape = g.shape(x).clone();
    let rank = shape.len();
    let axis = if rank == 0 { 0 } else { a as usize % rank };
    let consts = |n: usize, hi: usize| -> Tensor {
        let data = (0..n)
            .map(|k| ((a as usize + 7 * k) % hi.max(1)) as f64)
            .collect();
        Tensor::new(DType::I64, vec![n], data)
    };
    let slice_dims: Vec<SliceDim> = shape
        .iter()
        .enumerate()
        .map(|(d, &n)| {
            let step = if (c >> d) & 1 == 1 {
                -1 - (a as i64 % 2)
            } else {
                1 + (a as i64 % 2)
            };
            let start = if n == 0 { 0 } else { (a as usize + d) % n };
            let room = if step > 0 {
                n.saturating_sub(start + 1)
            } else {
                start
            };
            SliceDim {
                start,
                step,
                len: if n == 0 {
                    0
                } else {
                    1 + room / step.unsigned_abs() as usize
                },
            }
        })
        .collect();
    let (op, ins): (Op, Vec<NodeId>) = match kind % 21 {
        0 => (
            Op::Unary(UnaryOp::ALL[a as usize % UnaryOp::ALL.len()]),
            vec![x],
        ),
        1 => {
            let y = if c % 2 == 0 { x } else { pick(c) };
            (
                Op::Binary(BinaryOp::ALL[a as usize % BinaryOp::ALL.len()]),
                vec![x, y],
            )
        }
        2 => (Op::Where, vec![pick(a), x, pick(c)]),
        3 => (Op::Cast(DTYPES[a as usize % 4]), vec![x]),
        4 => {
            let mut to = shape.clone();
            to.iter_mut()
                .filter(|n| **n == 1)
                .for_each(|n| *n = 1 + c as usize % 3);
            to.insert(0, 1 + a as usize % 3);
            (Op::Broadcast(to), vec![x])
        }
        5 => {
            let n = shape.iter().product::<usize>();
            (
                Op::Reshape(if a % 2 == 0 { vec![n] } else { vec![1, n, 1] }),
                vec![x],
            )
        }
        6 => (
            Op::Transpose((0..rank).map(|i| (i + a as usize) % rank).collect()),
            vec![x],
        ),
        7 => {
            let r = [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min][a as usize % 4];
            (
                Op::Reduce(r, (0..rank).filter(|i| (c >> i) & 1 == 1).collect()),
                vec![x],
            )
        }
        8 => (Op::ArgMax(axis, c % 2 == 0), vec![x]),
        9 => (
            Op::Contract(ContractSpec::parse(SPECS[a as usize % SPECS.len()]).unwrap()),
            vec![x, pick(c)],
        ),
        10 => (Op::Slice(slice_dims), vec![x]),
        11 => {
            let Ok(s) = g.add(Op::Slice(slice_dims.clone()), vec![x]) else {
                return;
            };
            let Ok(v) = g.add(Op::Unary(UnaryOp::Neg), vec![s]) else {
                return;
            };
            (Op::SetSlice(slice_dims), vec![x, v])
        }
        12..=14 => {
            let n = if rank == 0 { 0 } else { shape[axis] };
            let idx = g.constant(consts(1 + c as usize % 3, n));
            let Ok(v) = g.add(Op::Gather(axis), vec![x, idx]) else {
                return;
            };
            match kind % 20 {
                12 => (Op::Gather(axis), vec![x, idx]),
                13 => (Op::ScatterAdd(axis), vec![x, idx, v]),
                _ => (Op::Scatter(axis), vec![x, idx, v]),
            }
        }
        15 => {
            let mut ishape = shape.clone();
            if rank > 0 {
                ishape[axis] = 1 + c as usize % 2;
            }
            let n = if rank == 0 { 0 } else { shape[axis] };
            let t = consts(ishape.iter().product(), n);
            let idx = g.constant(Tensor::new(DType::I64, ishape, t.data));
            if c % 2 == 0 {
                (Op::TakeAlong(axis), vec![x, idx])
            } else {
                let Ok(v) = g.add(Op::TakeAlong(axis), vec![x, idx]) else {
                    return;
                };
                (Op::ScatterAlongAdd(axis), vec![x, idx, v])
            }
        }
        16 => (Op::Concat(axis), vec![x; 1 + c as usize % 3]),
        17 => (
            [Op::Cumsum(axis), Op::Cumprod(axis), Op::ArgSort(axis)][c as usize % 3].clone(),
            vec![x],
        ),
        18 => {
            let ops = [
                Op::Solve,
                Op::TriSolve(true),
                Op::TriSolve(false),
                Op::Cholesky,
                Op::Inv,
                Op::Det,
                Op::LogAbsDet,
            ];
            let op = ops[a as usize % ops.len()].clone();
            let y = if c % 2 == 0 { x } else { pick(c) };
            let ins = if op.arity() == Some(2) {
                vec![x, y]
            } else {
                vec![x]
            };
            (op, ins)
        }
        19 => {
            // a loop carrying `x` (and reading rows of the operand `y` when it has any):
            // c ← u(c) + row, with a ys output
            let y = pick(c);
            let (dt, ys) = (g.dtype(x), g.shape(y).clone());
            let mut body = Graph::new();
            let carry = body.add_input("c", shape.clone(), dt);
            let mut ins = vec![x];
            let n_xs = usize::from(!ys.is_empty() && g.dtype(y) == dt && ys[1..] == shape[..]);
            let mut next = body.unary(UnaryOp::ALL[a as usize % UnaryOp::ALL.len()], carry);
            if n_xs == 1 {
                let row = body.add_input("r", ys[1..].to_vec(), dt);
                next = next.and_then(|n| body.binary(BinaryOp::Add, n, row));
                ins.push(y);
            }
            let Ok(next) = next else { return };
            let Ok(out) = body.binary(BinaryOp::Mul, next, carry) else {
                return;
            };
            body.outputs = vec![next, out];
            let trips = if n_xs == 1 { ys[0] } else { a as usize % 4 };
            match autodiff_ir::LoopSpec::new(body, 1, n_xs, trips, c % 2 == 1) {
                Ok(spec) => (Op::Loop(std::sync::Arc::new(spec)), ins),
                Err(_) => return,
            }
        }
        _ => {
            let dt = DTYPES[a as usize % 4];
            let shape: Vec<usize> = (0..c as usize % 3)
                .map(|k| 1 + (b as usize >> k) % 3)
                .collect();
            let n = shape.iter().product::<usize>();
            let data = (0..n)
                .map(|k| VALUES[(a as usize + b as usize * k) % VALUES.len()])
                .collect();
            g.constant(Tensor::new(dt, shape, data));
            return;
        }
    };
    let _ = g.add(op, ins);
}

fn build(names: &[u8], steps: &[Step], outs: &[u32]) -> Graph {
    let mut g = Graph::new();
    let shapes: [&[usize]; 4] = [&[2, 3], &[3], &[], &[3, 3]];
    for (k, &n) in names.iter().enumerate() {
        g.add_input(
            NAMES[n as usize % NAMES.len()],
            shapes[k % 4].to_vec(),
            DTYPES[(k + n as usize) % 4],
        );
    }
    for &s in steps {
        step(&mut g, s);
    }
    let n = g.len() as u32;
    g.outputs = (0..n.min(3)).map(|k| NodeId(n - 1 - k)).collect();
    g.outputs.extend(outs.iter().map(|o| NodeId(o % n)));
    g
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_round_trip(
        names in prop::collection::vec(any::<u8>(), 1..6),
        steps in prop::collection::vec((any::<u8>(), any::<u32>(), any::<u32>(), any::<u32>()), 0..80),
        outs in prop::collection::vec(any::<u32>(), 0..4),
    ) {
        let g = build(&names, &steps, &outs);
        verify(&g).unwrap();
        let text = print_graph(&g);
        let g2 = parse_graph(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        verify(&g2).unwrap();
        prop_assert_eq!(print_graph(&g2), text);
        prop_assert_eq!(g2.outputs.len(), g.outputs.len());
        for (o, o2) in g.outputs.iter().zip(&g2.outputs) {
            prop_assert_eq!((g.shape(*o), g.dtype(*o)), (g2.shape(*o2), g2.dtype(*o2)));
        }
    }
}

/// The generator reaches every op (so the property above covers them all).
#[test]
fn the_generator_reaches_every_op() {
    use std::collections::HashSet;
    let mut heads = HashSet::new();
    let mut seed = 12345u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    };
    for _ in 0..200 {
        let steps: Vec<Step> = (0..80)
            .map(|_| (next() as u8, next(), next(), next()))
            .collect();
        let g = build(&[0, 1, 2, 3, 4], &steps, &[]);
        heads.extend(g.nodes().iter().map(|n| autodiff_ir::sexpr::op_head(&n.op)));
    }
    let all = autodiff_ir::sexpr::all_heads();
    let missing: Vec<_> = all.iter().filter(|h| !heads.contains(**h)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
}
