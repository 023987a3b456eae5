//! `Op::Loop` lowered (`src/loops.rs`): each case is compared with the reference
//! evaluator (bit for bit where the body has no transcendental function, else within the
//! crate's tolerance for `vmath`), run twice and through `run_f64_into`
//! (`check_against_reference`); the outputs' routes (a body slot pointed at the carry or
//! the ys row, or a gather) are each reached.

mod common;

use autodiff_ir::sexpr::parse_term;
use autodiff_ir::{DType, Graph, LoopSpec, NodeId, Op, Tensor};
use autodiff_lower::Program;
use common::*;

/// Loop `body` over `operands` (carries, xs, invariants) in a new graph whose inputs are
/// the operands' types; returns the graph and the unpacked results.
fn looped(
    body: Graph,
    n_carry: usize,
    n_xs: usize,
    trips: usize,
    reverse: bool,
) -> (Graph, Vec<NodeId>) {
    let mut g = Graph::new();
    let mut ops = vec![];
    for (k, &i) in body.inputs.iter().enumerate() {
        let mut s = body.shape(i).clone();
        if k >= n_carry && k < n_carry + n_xs {
            s.insert(0, trips);
        }
        ops.push(g.add_input(&format!("a{k}"), s, body.dtype(i)));
    }
    let spec = LoopSpec::new(body, n_carry, n_xs, trips, reverse).unwrap();
    let outs = g.add_loop(spec, ops).unwrap();
    (g, outs)
}

fn check(g: &Graph, outs: &[NodeId], seed: u64, rtol: f64) {
    let ins = inputs(g, seed, false);
    check_against_reference(g, outs, &ins, rtol, 0.0).unwrap();
}

/// Explicit Euler on y' = -k y + sin(y) (the issue's loop), y of 10 elements.
fn euler_body(n: usize, dt: DType) -> Graph {
    let mut b = Graph::new();
    let y = b.add_input("y", vec![n], dt);
    // y + dt * (-k * y + sin(y))
    let (h, k) = (b.full(0.01, &[n], dt), b.full(-0.5, &[n], dt));
    let ky = b.mul(k, y).unwrap();
    let s = b.unary(autodiff_ir::UnaryOp::Sin, y).unwrap();
    let f = b.add_(ky, s).unwrap();
    let hf = b.mul(h, f).unwrap();
    let next = b.add_(y, hf).unwrap();
    b.outputs = vec![next];
    b
}

#[test]
fn euler_loop_matches_the_reference_and_the_unrolled_program() {
    for trips in [0, 1, 7, 300] {
        let (g, outs) = looped(euler_body(10, DType::F64), 1, 0, trips, false);
        let p = Program::compile(&g, &outs).unwrap();
        assert!(p.stats().contains("loop: 1"), "{}", p.stats());
        check(&g, &outs, 3, 1e-12);
    }
    // the same iterations unrolled into plain nodes, lowered normally: the same bits (both
    // are the fast path's kernels in the same order)
    let trips = 50;
    let (g, outs) = looped(euler_body(10, DType::F64), 1, 0, trips, false);
    let mut u = Graph::new();
    let mut y = u.add_input("y", vec![10], DType::F64);
    let body = euler_body(10, DType::F64);
    for _ in 0..trips {
        let mut map = vec![y];
        for n in body.nodes().iter().skip(1) {
            let id = match &n.op {
                Op::Const(c) => u.copy_constant(&body, *c),
                op => u
                    .add(
                        op.clone(),
                        n.inputs.iter().map(|x| map[x.index()]).collect(),
                    )
                    .unwrap(),
            };
            map.push(id);
        }
        y = map[body.outputs[0].index()];
    }
    let ins = inputs(&g, 9, false);
    let a = Program::compile(&g, &outs).unwrap().run(&ins).unwrap();
    let b = Program::compile(&u, &[y]).unwrap().run(&ins).unwrap();
    assert_eq!(a[0].data, b[0].data);
}

/// body(c, r, k) = (c + 0.25 * (c*c - k*c) + r, sum(c * c), c as int64 floor, c > 0)
fn body_with_ys() -> Graph {
    let mut b = Graph::new();
    b.add_input("c", vec![3], DType::F64);
    b.add_input("r", vec![3], DType::F64);
    b.add_input("k", vec![], DType::F64);
    let next = parse_term(
        &mut b,
        "(add (add c (mul (broadcast (3) 0.25) (sub (mul c c) (mul (broadcast (3) k) c)))) r)",
    )
    .unwrap();
    let s = parse_term(&mut b, "(sum (0) (mul c c))").unwrap();
    let f = parse_term(&mut b, "(cast int64 (floor c))").unwrap();
    let pos = parse_term(&mut b, "(gt c (broadcast (3) 0.0))").unwrap();
    b.outputs = vec![next, s, f, pos];
    b
}

#[test]
fn xs_ys_invariants_forward_and_reverse_bit_for_bit() {
    for trips in [0, 1, 2, 5] {
        for reverse in [false, true] {
            let (g, outs) = looped(body_with_ys(), 1, 1, trips, reverse);
            assert_eq!(outs.len(), 4);
            check(&g, &outs, 11 + trips as u64, 0.0);
        }
    }
}

#[test]
fn int_and_bool_ys_are_packed_as_float64() {
    let (g, outs) = looped(body_with_ys(), 1, 1, 4, false);
    let Op::Loop(spec) = &g.node(NodeId(3)).op else {
        panic!("node 3 is the loop")
    };
    assert_eq!(spec.pack_dtype(), DType::F64);
    assert_eq!(g.dtype(outs[2]), DType::I64);
    assert_eq!(g.dtype(outs[3]), DType::Bool);
    let ins = inputs(&g, 5, false);
    let got = Program::compile(&g, &outs).unwrap().run(&ins).unwrap();
    let want = autodiff_exec::eval(&g, &ins, &outs).unwrap();
    for (a, b) in got.iter().zip(&want) {
        assert_eq!((&a.data, &a.shape, a.dtype), (&b.data, &b.shape, b.dtype));
    }
    assert!(got[3].data.iter().all(|&v| v == 0.0 || v == 1.0));
}

#[test]
fn float32_loops_pack_float32() {
    let (g, outs) = looped(euler_body(10, DType::F32), 1, 0, 40, false);
    let Op::Loop(spec) = &g.node(NodeId(1)).op else {
        panic!("node 1 is the loop")
    };
    assert_eq!(spec.pack_dtype(), DType::F32);
    check(&g, &outs, 4, 1e-6);
    // a float32 body without transcendental functions: bit for bit
    let mut b = Graph::new();
    b.add_input("c", vec![4], DType::F32);
    b.add_input("r", vec![4], DType::F32);
    let (c, r) = (b.inputs[0], b.inputs[1]);
    let k = b.full(0.75, &[4], DType::F32);
    let ck = b.mul(c, k).unwrap();
    let rr = b.mul(r, r).unwrap();
    let n = b.add_(ck, rr).unwrap();
    let y = parse_term(&mut b, "(sum (0) c)").unwrap();
    b.outputs = vec![n, y];
    for reverse in [false, true] {
        let (g, outs) = looped(b.clone(), 1, 1, 6, reverse);
        check(&g, &outs, 8, 0.0);
    }
}

#[test]
fn zero_trips_give_the_initial_carries_and_empty_ys() {
    let (g, outs) = looped(body_with_ys(), 1, 1, 0, false);
    let ins = inputs(&g, 2, false);
    let got = Program::compile(&g, &outs).unwrap().run(&ins).unwrap();
    assert_eq!(got[0].data, ins[0].data);
    assert_eq!(got[1].shape, vec![0]);
    assert_eq!(got[2].shape, vec![0, 3]);
    check(&g, &outs, 2, 0.0);
}

/// Outputs that are not whole body slots: the carry passed through unchanged, a constant,
/// a transposed view, the xs row itself, one value as two outputs.
#[test]
fn outputs_that_are_views_inputs_constants_or_shared_are_gathered() {
    let mut b = Graph::new();
    b.add_input("c", vec![2, 3], DType::F64);
    b.add_input("d", vec![2, 3], DType::F64);
    b.add_input("r", vec![3, 2], DType::F64);
    let c = b.inputs[0];
    let r = b.inputs[2];
    let d2 = parse_term(&mut b, "(add d (transpose (1 0) r))").unwrap();
    let t = parse_term(&mut b, "(transpose (1 0) d)").unwrap();
    let k = b.constant(Tensor::new(DType::F64, vec![2], vec![1.5, -2.0]));
    b.outputs = vec![c, d2, t, r, k, d2];
    for reverse in [false, true] {
        let (g, outs) = looped(b.clone(), 2, 1, 3, reverse);
        check(&g, &outs, 21, 0.0);
    }
}

/// An outer loop whose body runs an inner loop over its own xs (a loop in a loop).
#[test]
fn nested_loops() {
    // inner: c ← c * 0.5 + r over 3 rows r of x, ys = c
    let mut inner = Graph::new();
    inner.add_input("c", vec![2], DType::F64);
    inner.add_input("r", vec![2], DType::F64);
    let n = parse_term(&mut inner, "(add (mul c (broadcast (2) 0.5)) r)").unwrap();
    inner.outputs = vec![n, n];
    // outer: s ← s + sum of the inner loop's ys; x ← x + 1 (carried), ys = inner final
    let mut outer = Graph::new();
    let s = outer.add_input("s", vec![2], DType::F64);
    let x = outer.add_input("x", vec![3, 2], DType::F64);
    let spec = LoopSpec::new(inner, 1, 1, 3, false).unwrap();
    let r = outer.add_loop(spec, vec![s, x]).unwrap();
    let tot = outer.sum(r[1], &[0]).unwrap();
    let s2 = outer.add_(s, tot).unwrap();
    let x2 = parse_term(&mut outer, "(add x (broadcast (3 2) 1.0))").unwrap();
    outer.outputs = vec![s2, x2, r[0]];
    for reverse in [false, true] {
        let (g, outs) = looped(outer.clone(), 2, 0, 4, reverse);
        let p = Program::compile(&g, &outs).unwrap();
        assert!(p.stats().contains("loop: 1"), "{}", p.stats());
        check(&g, &outs, 6, 0.0);
    }
}

/// A body failing at one iteration fails the program, naming the iteration.
#[test]
fn an_error_in_the_body_names_the_iteration() {
    let mut b = Graph::new();
    b.add_input("c", vec![2], DType::F64);
    b.add_input("i", vec![], DType::I64);
    let x = b.constant(Tensor::new(DType::F64, vec![3], vec![1.0, 2.0, 3.0]));
    let i = b.inputs[1];
    let i1 = b.reshape(i, &[1]).unwrap();
    let gth = b.add(Op::Gather(0), vec![x, i1]).unwrap();
    let gb = b.broadcast(gth, &[2]).unwrap();
    let c = b.inputs[0];
    let n = b.add_(c, gb).unwrap();
    b.outputs = vec![n];
    let (g, outs) = looped(b, 1, 1, 4, false);
    let p = Program::compile(&g, &outs).unwrap();
    let c0 = Tensor::new(DType::F64, vec![2], vec![0.0, 1.0]);
    let ok = Tensor::new(DType::I64, vec![4], vec![0.0, 2.0, 1.0, 2.0]);
    let got = p.run(&[c0.clone(), ok.clone()]).unwrap();
    let want = autodiff_exec::eval(&g, &[c0.clone(), ok], &outs).unwrap();
    assert_eq!(got[0].data, want[0].data);
    let bad = Tensor::new(DType::I64, vec![4], vec![0.0, 2.0, 7.0, 2.0]);
    let e = p.run(&[c0.clone(), bad.clone()]).unwrap_err();
    assert!(
        e.0.contains("loop iteration 2") && e.0.contains("out of range"),
        "{e}"
    );
    assert!(autodiff_exec::eval(&g, &[c0, bad], &outs).is_err());
}

/// A large body (its kernels split across threads) and a long loop of a tiny one.
#[test]
fn large_bodies_and_many_trips() {
    let (g, outs) = looped(euler_body(1 << 16, DType::F64), 1, 0, 3, false);
    check(&g, &outs, 1, 1e-12);
    let (g, outs) = looped(body_with_ys(), 1, 1, 2000, true);
    check(&g, &outs, 1, 0.0);
}

/// A ys that is a carry itself (what a gradient's forward loop stores) lives in its rows
/// (no copy); the same carry stored twice, and a 0-d carry (a Python float).
#[test]
fn carries_stored_as_ys_and_scalar_carries() {
    let mut b = Graph::new();
    let c = b.add_input("c", vec![3], DType::F64);
    let s = b.add_input("s", vec![], DType::F64);
    let half = b.full(0.5, &[3], DType::F64);
    let ch = b.mul(c, half).unwrap();
    let sb = b.broadcast(s, &[3]).unwrap();
    let c2 = b.add_(ch, sb).unwrap();
    let s2 = b.scale(s, 0.9).unwrap();
    b.outputs = vec![c2, s2, c, c, s];
    for trips in [0, 1, 4] {
        for reverse in [false, true] {
            let (g, outs) = looped(b.clone(), 2, 0, trips, reverse);
            check(&g, &outs, 31 + trips as u64, 0.0);
            // the stored rows are the carries entering each iteration
            let ins = inputs(&g, 7, false);
            let got = Program::compile(&g, &outs).unwrap().run(&ins).unwrap();
            let mut cur = ins[0].data.clone();
            let mut sv = ins[1].data[0];
            let order: Vec<usize> = if reverse {
                (0..trips).rev().collect()
            } else {
                (0..trips).collect()
            };
            for t in order {
                assert_eq!(&got[2].data[3 * t..3 * t + 3], &cur[..]);
                assert_eq!(got[3].data[3 * t..3 * t + 3], got[2].data[3 * t..3 * t + 3]);
                assert_eq!(got[4].data[t], sv);
                cur = cur.iter().map(|&x| x * 0.5 + sv).collect();
                sv *= 0.9;
            }
            assert_eq!(got[0].data, cur);
        }
    }
}

/// The Euler loop's gradient as capture and transform roll it (a forward loop storing
/// each carry, a reverse loop carrying the cotangent through the step's VJP) equals the
/// gradient of the unrolled iterations (to rounding: the VJP's terms are ordered
/// differently).
#[test]
fn a_rolled_gradient_equals_the_unrolled_one() {
    let (n, trips, h, k) = (5, 30, 0.01, 0.5);
    let step = |g: &mut Graph, y: NodeId| {
        let hh = g.full(h, &[n], DType::F64);
        let kk = g.full(-k, &[n], DType::F64);
        let ky = g.mul(kk, y).unwrap();
        let s = g.unary(autodiff_ir::UnaryOp::Sin, y).unwrap();
        let f = g.add_(ky, s).unwrap();
        let hf = g.mul(hh, f).unwrap();
        g.add_(y, hf).unwrap()
    };
    let mut fb = Graph::new();
    let y = fb.add_input("y", vec![n], DType::F64);
    let nx = step(&mut fb, y);
    fb.outputs = vec![nx, y];
    // g ← g * (1 + h (-k + cos y))
    let mut bb = Graph::new();
    let gy = bb.add_input("g", vec![n], DType::F64);
    let yt = bb.add_input("y", vec![n], DType::F64);
    let cy = bb.unary(autodiff_ir::UnaryOp::Cos, yt).unwrap();
    let kk = bb.full(-k, &[n], DType::F64);
    let d = bb.add_(kk, cy).unwrap();
    let hd = bb.scale(d, h).unwrap();
    let one = bb.full(1.0, &[n], DType::F64);
    let j = bb.add_(one, hd).unwrap();
    bb.outputs = vec![bb.mul(gy, j).unwrap()];
    let mut g = Graph::new();
    let y0 = g.add_input("y0", vec![n], DType::F64);
    let fwd = g
        .add_loop(LoopSpec::new(fb, 1, 0, trips, false).unwrap(), vec![y0])
        .unwrap();
    let gn = g.scale(fwd[0], 2.0).unwrap();
    let bwd = g
        .add_loop(
            LoopSpec::new(bb, 1, 1, trips, true).unwrap(),
            vec![gn, fwd[1]],
        )
        .unwrap();
    check(&g, &bwd, 13, 1e-12);
    let mut u = Graph::new();
    let mut yu = u.add_input("y0", vec![n], DType::F64);
    for _ in 0..trips {
        yu = step(&mut u, yu);
    }
    let sq = u.mul(yu, yu).unwrap();
    let l = u.sum(sq, &[0]).unwrap();
    let u0 = u.inputs[0];
    let du = autodiff_transform::grad(&mut u, l, &[u0]).unwrap();
    let ins = inputs(&g, 17, false);
    let a = Program::compile(&g, &bwd).unwrap().run(&ins).unwrap();
    let b = Program::compile(&u, &du).unwrap().run(&ins).unwrap();
    for (x, y) in a[0].data.iter().zip(&b[0].data) {
        assert!(close(*x, *y, 1e-12, 0.0), "{x} vs {y}");
    }
}

/// A ys that is part of a carry (a view of the carry input, dense from its start) is
/// copied, not mistaken for the carry itself (regression: it was taken for the carry and
/// its one-element rows overlapped the carry's three).
#[test]
fn a_ys_viewing_part_of_a_carry_is_copied() {
    let mut b = Graph::new();
    let c = b.add_input("c", vec![3], DType::F64);
    let two = b.full(2.0, &[3], DType::F64);
    let c2 = b.mul(c, two).unwrap();
    let first = b
        .slice(
            c,
            vec![autodiff_ir::SliceDim {
                start: 0,
                step: 1,
                len: 1,
            }],
        )
        .unwrap();
    let whole = b.reshape(c, &[1, 3]).unwrap();
    b.outputs = vec![c2, first, whole];
    for reverse in [false, true] {
        let (g, outs) = looped(b.clone(), 1, 0, 3, reverse);
        check(&g, &outs, 41, 0.0);
    }
}
