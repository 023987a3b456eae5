//! Shared helpers: a random-graph generator that reaches every op (adapted from the IR's
//! round-trip property test; loops get small random bodies built by the same generator,
//! nested up to [`MAX_LOOP_DEPTH`]), random inputs, and the comparison with the reference.
#![allow(dead_code)]

use autodiff_ir::{
    BinaryOp, ContractSpec, DType, Graph, LoopSpec, NodeId, Op, ReduceOp, SliceDim, Tensor, UnaryOp,
};
use autodiff_lower::Program;

pub const DTYPES: [DType; 4] = [DType::Bool, DType::I64, DType::F32, DType::F64];
pub const VALUES: [f64; 12] = [
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
pub const SPECS: [&str; 10] = [
    "ij,jk->ik",
    "i,i->",
    "ij,j->i",
    "ij,kj->ikj",
    ",->",
    "ab,ab->ba",
    "ij,ik->kj",
    "bij,bjk->bik",
    "ij,kl->ikjl",
    "ijk,kj->i",
];

/// One random step: which op, and three numbers that pick operands and attributes.
pub type Step = (u8, u32, u32, u32);

/// xorshift64*: small, seeded, good enough for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Loops nest at most this deep in generated graphs.
pub const MAX_LOOP_DEPTH: usize = 2;

/// Tries to add one node described by `step`; ill-typed attempts are simply skipped.
/// With `elementwise_bias`, most steps are elementwise (to grow fusable chains).
pub fn step(g: &mut Graph, s: Step, elementwise_bias: bool) {
    step_at(g, s, elementwise_bias, 0)
}

/// The value `z` of `body` as a value of shape `shape` and dtype `dt`: itself, a broadcast
/// of it, or a broadcast of its sum; cast where the dtype differs.
fn coerce(body: &mut Graph, z: NodeId, shape: &[usize], dt: DType) -> Option<NodeId> {
    let z = if body.shape(z).as_slice() == shape {
        z
    } else if let Ok(b) = body.broadcast(z, shape) {
        b
    } else {
        let all: Vec<usize> = (0..body.shape(z).len()).collect();
        let s = body.sum(z, &all).ok()?;
        body.broadcast(s, shape).ok()?
    };
    body.cast(z, dt).ok()
}

/// A loop node built from one random step (its unpacked results are added after it): the
/// carries are `x` and perhaps another node, the xs a node whose leading extent is the trip
/// count (0..4) or a broadcast of one, perhaps an invariant; the body is a few random steps
/// (elementwise-biased half the time) over its inputs, and its outputs are the next carries
/// (a body value coerced to each carry's type) and 0..2 ys of any type.
fn random_loop(g: &mut Graph, x: NodeId, (_, a, b, c): Step, depth: usize) -> Option<()> {
    let mut rng = Rng(((a as u64) << 32 | b as u64) ^ ((c as u64) << 17) | 1);
    // operands of at most this many elements: every iteration (of every nesting level)
    // runs the body through the reference evaluator too, and the larger generator's
    // values would make a nested loop of contractions take minutes
    let small = |g: &Graph, v: NodeId| g.node(v).size() <= 64;
    let pick = |k: usize, g: &Graph| NodeId((k % g.len()) as u32);
    if !small(g, x) {
        return None;
    }
    let mut carries = vec![x];
    let extra = pick(rng.next() as usize, g);
    if rng.below(3) == 0 && small(g, extra) {
        carries.push(extra);
    }
    // xs: a node with a small leading extent, else a broadcast of one
    let mut xs = vec![];
    let trips;
    let y = pick(rng.next() as usize, g);
    if !small(g, y) {
        return None;
    }
    let ys = g.shape(y).clone();
    if !ys.is_empty() && ys[0] <= 4 && rng.below(2) == 0 {
        trips = ys[0];
        xs.push(y);
    } else {
        trips = rng.below(5);
        let mut to = vec![trips];
        to.extend(ys.iter().copied());
        let r = g.reshape(y, &[&[1], &ys[..]].concat()).ok()?;
        xs.push(g.broadcast(r, &to).ok()?);
    }
    if rng.below(3) == 0 {
        xs.clear();
    }
    let mut invs = vec![];
    let v = pick(rng.next() as usize, g);
    if rng.below(2) == 0 && small(g, v) {
        invs.push(v);
    }
    let mut body = Graph::new();
    let mut ins = vec![];
    for (k, &cv) in carries.iter().enumerate() {
        ins.push(body.add_input(&format!("c{k}"), g.shape(cv).clone(), g.dtype(cv)));
    }
    for (k, &xv) in xs.iter().enumerate() {
        ins.push(body.add_input(&format!("r{k}"), g.shape(xv)[1..].to_vec(), g.dtype(xv)));
    }
    for (k, &v) in invs.iter().enumerate() {
        ins.push(body.add_input(&format!("v{k}"), g.shape(v).clone(), g.dtype(v)));
    }
    let bias = rng.below(2) == 0;
    for _ in 0..2 + rng.below(8) {
        let s = (
            rng.next() as u8,
            rng.next() as u32,
            rng.next() as u32,
            rng.next() as u32,
        );
        step_at(&mut body, s, bias, depth + 1);
    }
    let mut outs = vec![];
    for (k, &cv) in carries.iter().enumerate() {
        // mostly the newest values; sometimes the carry itself (passed through)
        let z = match rng.below(4) {
            0 => ins[k],
            1 => pick(rng.next() as usize, &body),
            _ => NodeId(body.len() as u32 - 1 - k as u32 % body.len() as u32),
        };
        outs.push(coerce(&mut body, z, &g.shape(cv).clone(), g.dtype(cv))?);
    }
    for _ in 0..rng.below(3) {
        outs.push(pick(rng.next() as usize, &body));
    }
    body.outputs = outs;
    let spec = LoopSpec::new(body, carries.len(), xs.len(), trips, c % 2 == 1).ok()?;
    let operands = [&carries[..], &xs[..], &invs[..]].concat();
    g.add_loop(spec, operands).ok()?;
    Some(())
}

/// [`step`] inside a loop body `depth` loops deep.
pub fn step_at(g: &mut Graph, (kind, a, b, c): Step, elementwise_bias: bool, depth: usize) {
    let pick = |k: u32| NodeId(k % g.len() as u32);
    // prefer recent nodes so chains grow deep
    let x = if b % 3 == 0 {
        pick(b)
    } else {
        NodeId(g.len() as u32 - 1 - (b as usize % g.len().min(4)) as u32)
    };
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
    let mut k = kind % 21;
    if elementwise_bias && kind % 2 == 0 {
        k = [0, 1, 1, 2, 3, 4, 7, 6, 10, 5][(kind as usize / 2) % 10];
    }
    let (op, ins): (Op, Vec<NodeId>) = match k {
        0 => (
            Op::Unary(UnaryOp::ALL[a as usize % UnaryOp::ALL.len()]),
            vec![x],
        ),
        1 => {
            let y = if c % 2 == 0 { x } else { pick(c) };
            let op = BinaryOp::ALL[a as usize % BinaryOp::ALL.len()];
            // through the builder: broadcasting and promotion made explicit
            let _ = g.binary(op, x, y);
            return;
        }
        2 => {
            let _ = g.select(pick(a), x, pick(c));
            return;
        }
        3 => (Op::Cast(DTYPES[a as usize % 4]), vec![x]),
        4 => {
            let mut to = shape.clone();
            to.iter_mut()
                .filter(|n| **n == 1)
                .for_each(|n| *n = 1 + c as usize % 3);
            if to.len() < 4 {
                to.insert(0, 1 + a as usize % 3);
            }
            (Op::Broadcast(to), vec![x])
        }
        5 => {
            let n = shape.iter().product::<usize>();
            let to = match a % 3 {
                0 => vec![n],
                1 => vec![1, n, 1],
                _ if rank >= 2 => {
                    let mut s = shape.clone();
                    let last = s.pop().unwrap_or(1);
                    let l2 = s.pop().unwrap_or(1);
                    s.push(l2 * last);
                    s
                }
                _ => vec![n, 1],
            };
            (Op::Reshape(to), vec![x])
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
            match k {
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
        16 => (
            Op::Concat(axis),
            vec![x, pick(c), x][..1 + c as usize % 3].to_vec(),
        ),
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
            if depth < MAX_LOOP_DEPTH {
                random_loop(g, x, (kind, a, b, c), depth);
            }
            return;
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

/// A graph over inputs of the given shapes (dtypes cycle through `dtypes`).
pub fn build(
    shapes: &[Vec<usize>],
    dtypes: &[DType],
    steps: &[Step],
    outs: &[u32],
    elementwise_bias: bool,
) -> Graph {
    let mut g = Graph::new();
    for (k, s) in shapes.iter().enumerate() {
        g.add_input(&format!("x{k}"), s.clone(), dtypes[k % dtypes.len()]);
    }
    for &s in steps {
        step(&mut g, s, elementwise_bias);
    }
    let n = g.len() as u32;
    g.outputs = (0..n.min(3)).map(|k| NodeId(n - 1 - k)).collect();
    g.outputs.extend(outs.iter().map(|o| NodeId(o % n)));
    g
}

/// Random inputs for `g`: floats mostly in [-2, 2] with a few special values, int64 in
/// [0, 3), bools.
pub fn inputs(g: &Graph, seed: u64, specials: bool) -> Vec<Tensor> {
    let mut rng = Rng(seed | 1);
    g.inputs
        .iter()
        .map(|&id| {
            let (shape, dt) = (g.shape(id).clone(), g.dtype(id));
            let n: usize = shape.iter().product();
            let data = (0..n)
                .map(|_| match dt {
                    DType::Bool => rng.below(2) as f64,
                    DType::I64 => rng.below(3) as f64,
                    DType::F32 | DType::F64 => {
                        if specials && rng.below(16) == 0 {
                            VALUES[rng.below(VALUES.len())]
                        } else {
                            rng.unit() * 4.0 - 2.0
                        }
                    }
                })
                .collect();
            Tensor::new(dt, shape, data)
        })
        .collect()
}

/// `a` equals `b`: bit-exact up to NaN payloads and zero signs, or within `rtol` of the
/// larger magnitude, or within `atol` (absolute, for sums whose order differs).
pub fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    (a.is_nan() && b.is_nan())
        || a == b
        || (a - b).abs() <= rtol * a.abs().max(b.abs())
        || (a - b).abs() <= atol
}

/// Runs the program and the reference; both fail, or both succeed with equal values.
pub fn check_against_reference(
    g: &Graph,
    outputs: &[NodeId],
    ins: &[Tensor],
    rtol: f64,
    atol_scale: f64,
) -> Result<(), String> {
    let prog = match Program::compile(g, outputs) {
        // a generated graph whose buffers exceed this machine's memory (the reference,
        // which checks node by node, might still run it, for minutes): nothing to compare
        Err(e) if e.0.contains("cannot allocate") => return Ok(()),
        p => p.map_err(|e| format!("compile: {e}"))?,
    };
    let want = autodiff_exec::eval(g, ins, outputs);
    let got = prog.run(ins);
    // a second run (its arena from the pool, holding the first run's values) gives the same
    // bits: no kernel reads its output slot before writing it
    if let (Ok(first), Ok(again)) = (&got, prog.run(ins)) {
        for (k, (a, b)) in first.iter().zip(&again).enumerate() {
            if !a
                .data
                .iter()
                .zip(&b.data)
                .all(|(x, y)| x.to_bits() == y.to_bits())
            {
                return Err(format!("output {k}: a second run differs from the first"));
            }
        }
    }
    // run_f64_into (outputs written into the caller's buffers, every other output visited)
    // gives the same bits too
    if let Ok(first) = &got {
        let slices: Vec<&[f64]> = ins.iter().map(|t| t.data.as_slice()).collect();
        for skip in 0..2 {
            let mut bufs: Vec<Vec<f64>> =
                first.iter().map(|t| vec![f64::NAN; t.data.len()]).collect();
            let mut visited: Vec<Option<Vec<f64>>> = vec![None; first.len()];
            let mut dst: Vec<Option<&mut [f64]>> = bufs
                .iter_mut()
                .enumerate()
                .map(|(k, b)| (k % 2 != skip).then_some(b.as_mut_slice()))
                .collect();
            prog.run_f64_into(&slices, &mut dst, &mut |k, v| visited[k] = Some(v.to_vec()))
                .map_err(|e| format!("run_f64_into failed where run did not: {e}"))?;
            for (k, t) in first.iter().enumerate() {
                let v = if k % 2 != skip {
                    Some(&bufs[k])
                } else {
                    visited[k].as_ref()
                };
                let same = v.is_some_and(|v| {
                    v.len() == t.data.len()
                        && v.iter()
                            .zip(&t.data)
                            .all(|(x, y)| x.to_bits() == y.to_bits())
                });
                if !same {
                    return Err(format!("output {k}: run_f64_into differs from run"));
                }
            }
        }
    }
    match (want, got) {
        (Err(_), Err(_)) => Ok(()),
        (Ok(w), Err(e)) => Err(format!(
            "program failed where the reference did not: {e}; {w:?}"
        )),
        (Err(e), Ok(_)) => Err(format!("reference failed ({e}) but the program did not")),
        (Ok(w), Ok(gt)) => {
            if w.len() != gt.len() {
                return Err("output count differs".into());
            }
            for (k, (a, b)) in w.iter().zip(&gt).enumerate() {
                if a.shape != b.shape || a.dtype != b.dtype {
                    return Err(format!(
                        "output {k}: {} {:?} vs {} {:?}",
                        a.dtype, a.shape, b.dtype, b.shape
                    ));
                }
                let scale = a
                    .data
                    .iter()
                    .filter(|v| v.is_finite())
                    .fold(0.0f64, |m, v| m.max(v.abs()));
                for (i, (&x, &y)) in a.data.iter().zip(&b.data).enumerate() {
                    if !close(x, y, rtol, atol_scale * scale) {
                        return Err(format!(
                            "output {k} (node {}) element {i}: reference {x:e}, program {y:e}\n{}",
                            outputs[k].0,
                            prog.stats()
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}
