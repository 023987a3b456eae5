//! Property tests: on random graphs built from random ops (loops among them), `simplify` and
//! `simplify_for_print` keep every value (checked with the reference evaluator), keep the
//! inputs, and never grow the graph much.

use autodiff_ir::{
    graph::broadcast_shapes, BinaryOp as B, DType, Graph, LoopSpec, NodeId, Op, ReduceOp, Shape,
    Tensor, UnaryOp as U,
};
use autodiff_simplify::{node_count, simplify, simplify_for_print};

/// xorshift64*: small, seeded, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

const UNARY: [U; 14] = [
    U::Neg,
    U::Abs,
    U::Exp,
    U::Sin,
    U::Cos,
    U::Tanh,
    U::Square,
    U::Sigmoid,
    U::Log,
    U::Sqrt,
    U::Reciprocal,
    U::Expm1,
    U::Log1p,
    U::Floor,
];
const BINARY: [B; 8] = [
    B::Add,
    B::Sub,
    B::Mul,
    B::Div,
    B::Maximum,
    B::Minimum,
    B::Pow,
    B::LogAddExp,
];
const CONSTS: [f64; 8] = [0.0, 1.0, -1.0, 2.0, 0.5, 3.0, -2.0, 1.5];

/// A random graph of float64 ops over inputs of shapes `()`, `(3,)`, `(2, 3)`.
fn random_graph(rng: &mut Rng, size: usize) -> (Graph, Vec<NodeId>) {
    let mut g = Graph::new();
    let mut pool = vec![
        g.add_input("s", vec![], DType::F64),
        g.add_input("x", vec![3], DType::F64),
        g.add_input("y", vec![3], DType::F64),
        g.add_input("A", vec![2, 3], DType::F64),
    ];
    while pool.len() < size {
        let a = rng.pick(&pool);
        let b = rng.pick(&pool);
        let c = g.scalar(rng.pick(&CONSTS), DType::F64);
        let sa = g.shape(a).clone();
        let fits = broadcast_shapes(&sa, g.shape(b)).is_ok();
        let new = match rng.below(13) {
            0 | 1 => g.unary(rng.pick(&UNARY), a),
            2 | 3 if fits => g.binary(rng.pick(&BINARY), a, b),
            4 => {
                let op = rng.pick(&BINARY[..4]);
                if rng.below(2) == 0 {
                    g.binary(op, a, c)
                } else {
                    g.binary(op, c, a)
                }
            }
            5 if !sa.is_empty() => {
                let axes: Vec<usize> = (0..sa.len()).filter(|_| rng.below(2) == 0).collect();
                let op = rng.pick(&[ReduceOp::Sum, ReduceOp::Sum, ReduceOp::Max, ReduceOp::Prod]);
                g.reduce(op, a, &axes)
            }
            6 => {
                let to: Shape = rng.pick(&[&[3][..], &[2, 3], &[4, 2, 3]]).to_vec();
                if broadcast_shapes(&sa, &to).ok() == Some(to.clone()) {
                    g.broadcast(a, &to)
                } else {
                    continue;
                }
            }
            7 if sa.len() == 2 => {
                let t = g.transpose(a, &[1, 0]).unwrap();
                let r = g.reshape(t, &[6]).unwrap();
                let r = g.reshape(r, &[3, 2]).unwrap();
                g.transpose(r, &[1, 0])
            }
            8 if fits => {
                let cond = g.binary(rng.pick(&[B::Gt, B::Le]), a, b).unwrap();
                g.select(cond, b, a)
            }
            9 => {
                // patterns the stabilize phase looks for
                let one = g.scalar(1.0, DType::F64);
                match rng.below(5) {
                    0 => g.binary(B::Add, one, a).and_then(|t| g.unary(U::Log, t)),
                    1 => g.unary(U::Exp, a).and_then(|t| g.binary(B::Sub, t, one)),
                    2 => {
                        let n = g.unary(U::Neg, a).unwrap();
                        let e = g.unary(U::Exp, n).unwrap();
                        let d = g.binary(B::Add, one, e).unwrap();
                        g.binary(B::Div, one, d)
                    }
                    3 if !sa.is_empty() => {
                        let e = g.unary(U::Exp, a).unwrap();
                        let s = g.sum(e, &[sa.len() - 1]).unwrap();
                        g.unary(U::Log, s)
                    }
                    _ => g.unary(U::Sigmoid, a).and_then(|t| g.unary(U::Log, t)),
                }
            }
            10 => {
                let t = g.binary(B::Mul, a, c).unwrap();
                let u = g.binary(B::Mul, t, c).unwrap();
                let v = g.binary(B::Add, u, a).unwrap();
                g.binary(B::Sub, v, c)
            }
            11 => match random_loop(rng, &mut g, a, b) {
                Some((carry, ys)) => {
                    if !pool.contains(&ys) {
                        pool.push(ys);
                    }
                    Ok(carry)
                }
                None => continue,
            },
            _ => {
                let n = g.unary(U::Neg, a).unwrap();
                if fits {
                    g.binary(B::Mul, n, b)
                } else {
                    g.binary(B::Add, n, a)
                }
            }
        };
        if let Ok(n) = new {
            if !pool.contains(&n) {
                pool.push(n);
            }
        }
    }
    let k = pool.len();
    let outs = vec![pool[k - 1], pool[k - 2], pool[4 + rng.below(k - 4)]];
    (g, outs)
}

/// A loop of 0 to 3 trips carrying `a`, reading a row of a constant per step and `b` as an
/// invariant when it broadcasts to `a`: `c ← (u(c) ∘ v)·1 + row` (the `·1` for the body's
/// simplification), with the stacked `Σc` as ys; half the time the same loop without its
/// ys too, its carry added to the other's. Returns the final carry and the ys.
fn random_loop(rng: &mut Rng, g: &mut Graph, a: NodeId, b: NodeId) -> Option<(NodeId, NodeId)> {
    let (sa, sb) = (g.shape(a).clone(), g.shape(b).clone());
    let trips = rng.below(4);
    let mut body = Graph::new();
    let c = body.add_input("c", sa.clone(), DType::F64);
    let row = body.add_input("r", sa.clone(), DType::F64);
    let inv = broadcast_shapes(&sa, &sb).ok() == Some(sa.clone());
    let mut next = body.unary(rng.pick(&UNARY), c).ok()?;
    if inv {
        let v = body.add_input("v", sb, DType::F64);
        let v = body.broadcast(v, &sa).ok()?;
        next = body.binary(rng.pick(&BINARY[..4]), next, v).ok()?;
    }
    let one = body.scalar(1.0, DType::F64);
    next = body.binary(B::Mul, next, one).ok()?;
    next = body.binary(B::Add, next, row).ok()?;
    let all: Vec<usize> = (0..sa.len()).collect();
    let ys = body.sum(c, &all).ok()?;
    body.outputs = vec![next, ys];
    let reverse = rng.below(2) == 1;
    // sometimes also the same loop without its ys (a prefix of it: loop-prefix shares them)
    let mut primal = body.clone();
    primal.outputs.truncate(1);
    let primal = LoopSpec::new(primal, 1, 1, trips, reverse).ok()?;
    let spec = LoopSpec::new(body, 1, 1, trips, reverse).ok()?;
    let mut xs_shape = vec![trips];
    xs_shape.extend(&sa);
    let n: usize = xs_shape.iter().product();
    let data = (0..n).map(|_| rng.unit() - 0.5).collect();
    let xs = g.constant(Tensor::new(DType::F64, xs_shape, data));
    let ops = if inv { vec![a, xs, b] } else { vec![a, xs] };
    if rng.below(2) == 0 {
        let first = g.add_loop(primal, ops.clone()).ok()?[0];
        let outs = g.add_loop(spec, ops).ok()?;
        let both = g.binary(B::Add, first, outs[0]).ok()?;
        return Some((both, outs[1]));
    }
    let outs = g.add_loop(spec, ops).ok()?;
    Some((outs[0], outs[1]))
}

fn random_inputs(rng: &mut Rng, g: &Graph) -> Vec<Tensor> {
    (g.inputs.iter())
        .map(|&i| {
            let s = g.shape(i).clone();
            let n: usize = s.iter().product();
            let data = (0..n).map(|_| rng.unit() * 4.0 - 2.0).collect();
            Tensor::new(DType::F64, s, data)
        })
        .collect()
}

fn close(p: f64, q: f64) -> bool {
    (p.is_nan() && q.is_nan()) || p == q || (p - q).abs() <= 1e-6 * (1.0 + p.abs().max(q.abs()))
}

#[test]
fn simplify_keeps_values_on_random_graphs() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut checked, mut with_loops) = (0, 0);
    let (mut before, mut after) = (0, 0);
    for case in 0..1000 {
        let (g, outs) = random_graph(&mut rng, 6 + case % 14);
        let inputs = random_inputs(&mut rng, &g);
        let Ok(want) = autodiff_exec::eval(&g, &inputs, &outs) else {
            continue;
        };
        for (which, (s, so)) in [
            ("simplify", simplify(&g, &outs)),
            ("print", simplify_for_print(&g, &outs)),
        ] {
            assert_eq!(s.input_names, g.input_names);
            assert_eq!(s.outputs, so);
            autodiff_ir::verify::verify(&s).unwrap();
            let got = autodiff_exec::eval(&s, &inputs, &so)
                .unwrap_or_else(|e| panic!("case {case} ({which}): simplified graph fails: {e}"));
            for (k, (w, r)) in want.iter().zip(&got).enumerate() {
                assert_eq!(
                    (&w.shape, w.dtype),
                    (&r.shape, r.dtype),
                    "case {case} output {k}"
                );
                for (i, (&p, &q)) in w.data.iter().zip(&r.data).enumerate() {
                    assert!(
                        close(p, q),
                        "case {case} ({which}) output {k}[{i}]: {p} before, {q} after\n{g:#?}\n{s:#?}"
                    );
                }
            }
            if which == "simplify" {
                before += node_count(&g, &outs);
                after += node_count(&s, &so);
            }
        }
        checked += 1;
        let reach = autodiff_simplify::reachable(&g, &outs);
        let is_loop = |(i, n): (usize, &autodiff_ir::Node)| reach[i] && matches!(n.op, Op::Loop(_));
        with_loops += usize::from(g.nodes().iter().enumerate().any(is_loop));
    }
    assert!(checked > 700, "only {checked} graphs evaluated");
    assert!(with_loops > 200, "only {with_loops} graphs with loops");
    eprintln!("nodes: {before} -> {after}, {checked} graphs");
    assert!(
        after < before,
        "simplify did not shrink graphs: {before} -> {after}"
    );
}

#[test]
fn inputs_survive_even_when_unused() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![3], DType::F64);
    let _w = g.add_input("W", vec![2, 2], DType::F32);
    let zero = g.scalar(0.0, DType::F64);
    let y = g.binary(B::Add, x, zero).unwrap();
    let (s, o) = simplify(&g, &[y]);
    assert_eq!(s.input_names, ["x", "W"]);
    assert_eq!(s.shape(s.inputs[1]), &vec![2, 2]);
    assert_eq!(o, vec![s.inputs[0]]);
    assert_eq!(node_count(&s, &o), 1);
}

#[test]
fn execute_goal_specializes() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![3], DType::F64);
    let sq = g.binary(B::Mul, x, x).unwrap();
    let (s, o) = simplify(&g, &[sq]);
    assert_eq!(s.node(o[0]).op, Op::Unary(U::Square));
    let (p, o) = simplify_for_print(&g, &[sq]);
    assert_eq!(p.node(o[0]).op, Op::Binary(B::Pow));
}

#[test]
fn logsumexp_is_shifted_by_its_max() {
    let mut g = Graph::new();
    let x = g.add_input("x", vec![4], DType::F64);
    let e = g.unary(U::Exp, x).unwrap();
    let s = g.sum(e, &[0]).unwrap();
    let l = g.unary(U::Log, s).unwrap();
    let (sg, so) = simplify(&g, &[l]);
    assert!(sg
        .nodes()
        .iter()
        .any(|n| n.op == Op::Reduce(ReduceOp::Max, vec![0])));
    let big = Tensor::new(DType::F64, vec![4], vec![1000.0, 999.0, -5.0, 1000.0]);
    let r = autodiff_exec::eval(&sg, std::slice::from_ref(&big), &so).unwrap();
    let want = 1000.0 + (2.0 + (-1f64).exp() + (-1005f64).exp()).ln();
    assert!((r[0].data[0] - want).abs() < 1e-9, "{}", r[0].data[0]);
    assert!(autodiff_exec::eval(&g, &[big], &[l]).unwrap()[0].data[0].is_infinite());
    let ninf = Tensor::new(DType::F64, vec![4], vec![f64::NEG_INFINITY; 4]);
    assert_eq!(
        autodiff_exec::eval(&sg, &[ninf], &so).unwrap()[0].data[0],
        f64::NEG_INFINITY
    );
}

#[test]
fn seed_gradient_shrinks() {
    // d/dx sum((x+1)**2), built as reverse mode builds it.
    let mut g = Graph::new();
    let x = g.add_input("x", vec![3], DType::F64);
    let one = g.scalar(1.0, DType::F64);
    let two = g.scalar(2.0, DType::F64);
    let u = g.binary(B::Add, x, one).unwrap();
    let gp = g.broadcast(one, &[3]).unwrap();
    let e = g.binary(B::Sub, two, one).unwrap();
    let pw = g.binary(B::Pow, u, e).unwrap();
    let d = g.binary(B::Mul, two, pw).unwrap();
    let gu = g.binary(B::Mul, gp, d).unwrap();
    let (s, o) = simplify(&g, &[gu]);
    assert!(node_count(&s, &o) < node_count(&g, &[gu]));
    // x, 1, broadcast, add, 2, broadcast, mul
    assert_eq!(node_count(&s, &o), 7);
    assert_eq!(s.node(o[0]).op, Op::Binary(B::Mul));
}
