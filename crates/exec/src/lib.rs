//! The reference evaluator of the IR: slow, plain, and the oracle for every faster path.
//!
//! Guarantees:
//! - [`eval`] computes exactly the nodes reachable from the requested outputs, each once, in
//!   index (topological) order;
//! - every op follows NumPy's semantics for its dtype (the IR's conventions in
//!   `autodiff_ir::op` hold: explicit broadcasting, removed reduce axes, int64 indices);
//!   each value is held as `ArrayD<f64>` and, after every node, rounded to what its dtype
//!   holds ([`DType::round`]: float32 precision, int64 truncation, bool 0/1);
//! - bad input never panics: a wrong number, shape or dtype of inputs, an unknown output,
//!   an out-of-range or negative index, a singular or non-positive-definite matrix, an
//!   integer raised to a negative power, or a max/min over an empty axis is an
//!   [`ExecError`] naming the node.
//!
//! Known, deliberate differences from NumPy: sums add in index order (NumPy sums
//! pairwise, so the last bits can differ); int64 arithmetic is done in f64, so it is exact
//! only below 2^53 and does not wrap around on overflow; float32 ops compute in f64 and
//! round once (NumPy's float32 transcendental functions can differ in the last bit).

mod linalg;
/// The scalar semantics, now kept in `ir` (re-exported under its old path).
pub use autodiff_ir::scalar as special;

use autodiff_ir::{BinaryOp, DType, Graph, Node, NodeId, Op, ReduceOp, SliceDim, Tensor, UnaryOp};
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Zip};

use linalg::Lu;

/// An evaluation failure: bad inputs or a value the op is undefined on.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecError(pub String);

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExecError {}

type Res<T> = Result<T, ExecError>;

fn fail<T>(msg: impl Into<String>) -> Res<T> {
    Err(ExecError(msg.into()))
}

/// A tensor as an ndarray (row-major).
pub fn to_array(t: &Tensor) -> ArrayD<f64> {
    array(&t.shape, t.data.clone())
}

/// An ndarray as a tensor of the given dtype (values are rounded to the dtype).
pub fn from_array(a: ArrayD<f64>, dtype: DType) -> Tensor {
    Tensor::new(dtype, a.shape().to_vec(), a.iter().copied().collect())
}

/// Row-major data into an array; `data.len()` equals the product of `shape` by
/// construction at every call site.
fn array(shape: &[usize], data: Vec<f64>) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(shape), data).expect("data matches shape")
}

/// The elements in row-major order.
fn flat(a: &ArrayD<f64>) -> Vec<f64> {
    a.iter().copied().collect()
}

/// Evaluates `outputs` of `g` on `inputs` (one tensor per graph input, in order).
pub fn eval(g: &Graph, inputs: &[Tensor], outputs: &[NodeId]) -> Result<Vec<Tensor>, ExecError> {
    if inputs.len() != g.inputs.len() {
        return fail(format!(
            "expected {} inputs, got {}",
            g.inputs.len(),
            inputs.len()
        ));
    }
    for (k, (t, &id)) in inputs.iter().zip(&g.inputs).enumerate() {
        let n = g.node(id);
        if t.shape != n.shape || t.dtype != n.dtype {
            return fail(format!(
                "input {k} ({}): expected {} {:?}, got {} {:?}",
                g.input_names.get(k).map_or("?", |s| s.as_str()),
                n.dtype,
                n.shape,
                t.dtype,
                t.shape
            ));
        }
        if t.data.len() != t.shape.iter().product::<usize>() {
            return fail(format!("input {k}: data does not match its shape"));
        }
    }
    let mut needed = vec![false; g.len()];
    for o in outputs {
        match needed.get_mut(o.index()) {
            Some(b) => *b = true,
            None => return fail(format!("output node {} does not exist", o.0)),
        }
    }
    for i in (0..g.len()).rev() {
        if needed[i] {
            for x in &g.nodes()[i].inputs {
                needed[x.index()] = true;
            }
        }
    }
    let mut vals: Vec<Option<ArrayD<f64>>> = vec![None; g.len()];
    for i in 0..g.len() {
        if !needed[i] {
            continue;
        }
        let node = &g.nodes()[i];
        autodiff_ir::mem::check_elements(node.size(), &format!("node {i}")).map_err(ExecError)?;
        let args: Vec<&ArrayD<f64>> = node
            .inputs
            .iter()
            .map(|x| {
                vals[x.index()]
                    .as_ref()
                    .expect("operands are evaluated first")
            })
            .collect();
        let mut v = eval_op(g, node, &args, inputs).map_err(|e| {
            ExecError(format!(
                "node {i} ({}): {}",
                autodiff_ir::sexpr::op_head(&node.op),
                e.0
            ))
        })?;
        if node.dtype != DType::F64 {
            v.mapv_inplace(|x| node.dtype.round(x));
        }
        debug_assert_eq!(v.shape(), node.shape.as_slice(), "node {i}");
        vals[i] = Some(v);
    }
    Ok(outputs
        .iter()
        .map(|o| from_array(vals[o.index()].clone().expect("evaluated"), g.dtype(*o)))
        .collect())
}

/// Evaluates one op on its operands' values.
fn eval_op(g: &Graph, node: &Node, a: &[&ArrayD<f64>], inputs: &[Tensor]) -> Res<ArrayD<f64>> {
    Ok(match &node.op {
        Op::Input(k) => to_array(&inputs[*k as usize]),
        Op::Const(c) => to_array(&g.consts()[*c as usize]),
        Op::Unary(u) => unary(*u, a[0])?,
        Op::Binary(b) => binary(*b, a[0], a[1], g.dtype(node.inputs[0]))?,
        // cond ? x : y
        Op::Where => Zip::from(a[0])
            .and(a[1])
            .and(a[2])
            .map_collect(|&c, &x, &y| if c != 0.0 { x } else { y }),
        // the value itself; the dtype rounding after every node does the conversion
        Op::Cast(_) => a[0].clone(),
        // right-aligned NumPy broadcast
        Op::Broadcast(shape) => match a[0].broadcast(IxDyn(shape)) {
            Some(v) => v.to_owned(),
            None => return fail(format!("cannot broadcast {:?} to {shape:?}", a[0].shape())),
        },
        // same row-major elements
        Op::Reshape(shape) => array(shape, flat(a[0])),
        // out axis i = in axis perm[i]
        Op::Transpose(perm) => {
            let v = a[0].view().permuted_axes(IxDyn(perm));
            array(v.shape(), v.iter().copied().collect())
        }
        Op::Reduce(r, axes) => reduce(*r, a[0], axes)?,
        // index of the first max (min); NaN counts as the extreme, like NumPy
        Op::ArgMax(axis, is_max) => {
            if a[0].shape()[*axis] == 0 {
                return fail("argmax of an empty axis");
            }
            a[0].map_axis(Axis(*axis), |lane| {
                let mut best = 0;
                for (i, &v) in lane.iter().enumerate() {
                    let b = lane[best];
                    if b.is_nan() {
                        break;
                    }
                    if v.is_nan() || (*is_max && v > b) || (!*is_max && v < b) {
                        best = i;
                    }
                }
                best as f64
            })
        }
        Op::Contract(spec) => contract(&spec.a, &spec.b, &spec.out, a[0], a[1]),
        // out[i] = x[start + step*i] per axis
        Op::Slice(dims) => {
            let (xs, offs) = (flat(a[0]), slice_offsets(dims, a[0].shape()));
            let shape: Vec<usize> = dims.iter().map(|d| d.len).collect();
            array(&shape, offs.iter().map(|&o| xs[o]).collect())
        }
        // x with x[slice] = v
        Op::SetSlice(dims) => {
            let mut xs = flat(a[0]);
            for (o, v) in slice_offsets(dims, a[0].shape())
                .into_iter()
                .zip(a[1].iter())
            {
                xs[o] = *v;
            }
            array(a[0].shape(), xs)
        }
        // np.take(x, idx, axis)
        Op::Gather(axis) => {
            let (xs, mut out) = (flat(a[0]), vec![]);
            for_take(a[0].shape(), *axis, a[1], |src, _| out.push(xs[src]))?;
            array(&node.shape, out)
        }
        // np.add.at(x, (.., idx, ..), v): duplicates accumulate
        Op::ScatterAdd(axis) => {
            scatter(a[0], a[2], |f| for_take(a[0].shape(), *axis, a[1], f), true)?
        }
        // x[.., idx, ..] = v: the last write wins
        Op::Scatter(axis) => scatter(
            a[0],
            a[2],
            |f| for_take(a[0].shape(), *axis, a[1], f),
            false,
        )?,
        // np.take_along_axis(x, idx, axis)
        Op::TakeAlong(axis) => {
            let xs = flat(a[0]);
            let mut out = Vec::with_capacity(a[1].len());
            for_take_along(a[0].shape(), *axis, a[1], |src, _| out.push(xs[src]))?;
            array(a[1].shape(), out)
        }
        // np.put_along_axis with add: duplicates accumulate
        Op::ScatterAlongAdd(axis) => scatter(
            a[0],
            a[2],
            |f| for_take_along(a[0].shape(), *axis, a[1], f),
            true,
        )?,
        // np.concatenate(xs, axis)
        Op::Concat(axis) => {
            let views: Vec<ArrayViewD<f64>> = a.iter().map(|x| x.view()).collect();
            match ndarray::concatenate(Axis(*axis), &views) {
                Ok(v) => v.as_standard_layout().into_owned(),
                Err(e) => return fail(format!("concat: {e}")),
            }
        }
        // out[i] = x[0] + ... + x[i] along the axis
        Op::Cumsum(axis) => {
            let mut v = a[0].clone();
            v.accumulate_axis_inplace(Axis(*axis), |&prev, cur| *cur += prev);
            v
        }
        // out[i] = x[0] * ... * x[i] along the axis
        Op::Cumprod(axis) => {
            let mut v = a[0].clone();
            v.accumulate_axis_inplace(Axis(*axis), |&prev, cur| *cur *= prev);
            v
        }
        // np.argsort(x, axis, kind='stable'); NaN sorts last
        Op::ArgSort(axis) => {
            let mut out = ArrayD::zeros(a[0].raw_dim());
            Zip::from(out.lanes_mut(Axis(*axis)))
                .and(a[0].lanes(Axis(*axis)))
                .for_each(|mut o, x| {
                    let mut idx: Vec<usize> = (0..x.len()).collect();
                    idx.sort_by(|&i, &j| nan_last(x[i], x[j]));
                    for (slot, i) in o.iter_mut().zip(idx) {
                        *slot = i as f64;
                    }
                });
            out
        }
        // x = a⁻¹ b by LU with partial pivoting
        Op::Solve => {
            let (n, k) = (a[0].shape()[0], a[1].shape()[1]);
            array(&[n, k], Lu::new(&flat(a[0]), n).solve(&flat(a[1]), k)?)
        }
        // x = a⁻¹ b by substitution with a's lower (upper) triangle
        Op::TriSolve(lower) => {
            let (n, k) = (a[0].shape()[0], a[1].shape()[1]);
            array(
                &[n, k],
                linalg::tri_solve(&flat(a[0]), n, &flat(a[1]), k, *lower)?,
            )
        }
        // L with L Lᵀ = a
        Op::Cholesky => {
            let n = a[0].shape()[0];
            array(&[n, n], linalg::cholesky(&flat(a[0]), n)?)
        }
        // a⁻¹ = solve(a, I)
        Op::Inv => {
            let n = a[0].shape()[0];
            array(&[n, n], Lu::new(&flat(a[0]), n).solve(&linalg::eye(n), n)?)
        }
        // det a = sign(P) Π u_ii (0 when singular, like NumPy)
        Op::Det => {
            let n = a[0].shape()[0];
            ndarray::arr0(Lu::new(&flat(a[0]), n).det()).into_dyn()
        }
        // ln |det a| (-inf when singular)
        Op::LogAbsDet => {
            let n = a[0].shape()[0];
            ndarray::arr0(Lu::new(&flat(a[0]), n).log_abs_det()).into_dyn()
        }
        // c ← body(c, xs[t], v) for each t; the results packed (see autodiff_ir::loops)
        Op::Loop(spec) => {
            let ops: Vec<Tensor> = a
                .iter()
                .zip(&node.inputs)
                .map(|(x, &id)| from_array((*x).clone(), g.dtype(id)))
                .collect();
            let packed = run_loop(spec, &ops)?;
            array(&[packed.len()], packed)
        }
    })
}

/// Runs a loop on its operands (carries, stacked xs, invariants) and returns its packed
/// value (see `autodiff_ir::loops`), rounded to the pack dtype.
pub fn run_loop(spec: &autodiff_ir::LoopSpec, operands: &[Tensor]) -> Res<Vec<f64>> {
    let b = &spec.body;
    let (nc, nx) = (spec.n_carry, spec.n_xs);
    let mut carries: Vec<Tensor> = operands[..nc].to_vec();
    let row_types: Vec<(Vec<usize>, DType)> = b.inputs[nc..nc + nx]
        .iter()
        .map(|&i| (b.shape(i).clone(), b.dtype(i)))
        .collect();
    let ys_types: Vec<usize> = b.outputs[nc..].iter().map(|&o| b.node(o).size()).collect();
    let mut ys: Vec<Vec<f64>> = ys_types
        .iter()
        .map(|&n| vec![0.0; n * spec.trips])
        .collect();
    let order: Vec<usize> = if spec.reverse {
        (0..spec.trips).rev().collect()
    } else {
        (0..spec.trips).collect()
    };
    for t in order {
        let mut ins = carries.clone();
        for (k, (shape, dt)) in row_types.iter().enumerate() {
            let n: usize = shape.iter().product();
            let src = &operands[nc + k].data[t * n..(t + 1) * n];
            ins.push(Tensor::new(*dt, shape.clone(), src.to_vec()));
        }
        ins.extend_from_slice(&operands[nc + nx..]);
        let mut outs = eval(b, &ins, &b.outputs)
            .map_err(|e| ExecError(format!("loop iteration {t}: {}", e.0)))?;
        for (k, y) in outs.drain(nc..).enumerate() {
            let n = ys_types[k];
            ys[k][t * n..(t + 1) * n].copy_from_slice(&y.data);
        }
        carries = outs;
    }
    let pack = spec.pack_dtype();
    let mut out: Vec<f64> = carries.into_iter().flat_map(|c| c.data).collect();
    for y in ys {
        out.extend(y);
    }
    out.iter_mut().for_each(|v| *v = pack.round(*v));
    Ok(out)
}

/// NumPy's sort order: NaN after every number; equal values compare equal (stable).
fn nan_last(x: f64, y: f64) -> std::cmp::Ordering {
    x.partial_cmp(&y)
        .unwrap_or_else(|| x.is_nan().cmp(&y.is_nan()))
}

/// `u` elementwise: the scalar definition every stage shares ([`UnaryOp::eval_f64`]).
fn unary(u: UnaryOp, x: &ArrayD<f64>) -> Res<ArrayD<f64>> {
    Ok(x.mapv(|v| u.eval_f64(v)))
}

/// `op` elementwise ([`BinaryOp::eval_f64`]); integers to negative powers are an error.
fn binary(op: BinaryOp, x: &ArrayD<f64>, y: &ArrayD<f64>, dtype: DType) -> Res<ArrayD<f64>> {
    if op == BinaryOp::Pow && dtype == DType::I64 && y.iter().any(|&e| e < 0.0) {
        return fail("integers to negative integer powers are not allowed");
    }
    Ok(Zip::from(x).and(y).map_collect(|&p, &q| op.eval_f64(p, q)))
}

fn reduce(r: ReduceOp, x: &ArrayD<f64>, axes: &[usize]) -> Res<ArrayD<f64>> {
    let mut v = x.clone();
    for &ax in axes.iter().rev() {
        if matches!(r, ReduceOp::Max | ReduceOp::Min) && v.shape()[ax] == 0 {
            return fail(format!("{} of an empty axis (no identity)", r.name()));
        }
        v = v.map_axis(Axis(ax), |lane| match r {
            // NumPy: the sum of nothing is +0; otherwise it starts from the first term
            // (Rust's `sum` starts from -0, which keeps sum([-0.0]) == -0.0)
            ReduceOp::Sum if lane.is_empty() => 0.0,
            ReduceOp::Sum => lane.iter().sum(),
            ReduceOp::Prod => lane.iter().product(),
            ReduceOp::Max => lane
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, special::maximum),
            ReduceOp::Min => lane.iter().copied().fold(f64::INFINITY, special::minimum),
        });
    }
    Ok(v)
}

/// Row-major strides of a shape.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Visits every multi-index of `ext` in row-major order, passing `K` running offsets:
/// offset k is `base[k] + Σ_d index_d · step[k][d]`.
fn walk<const K: usize>(
    ext: &[usize],
    base: [i64; K],
    step: [&[i64]; K],
    mut f: impl FnMut([i64; K]),
) {
    if ext.contains(&0) {
        return;
    }
    let (mut idx, mut off) = (vec![0; ext.len()], base);
    loop {
        f(off);
        let mut d = ext.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            for k in 0..K {
                off[k] += step[k][d];
            }
            if idx[d] < ext[d] {
                break;
            }
            for k in 0..K {
                off[k] -= step[k][d] * ext[d] as i64;
            }
            idx[d] = 0;
        }
    }
}

/// Flat offsets into `x` (of `shape`) of the elements of a basic slice, row-major.
fn slice_offsets(dims: &[SliceDim], shape: &[usize]) -> Vec<usize> {
    let st = strides(shape);
    let base = dims
        .iter()
        .zip(&st)
        .map(|(d, &s)| (d.start * s) as i64)
        .sum();
    let step: Vec<i64> = dims
        .iter()
        .zip(&st)
        .map(|(d, &s)| d.step * s as i64)
        .collect();
    let lens: Vec<usize> = dims.iter().map(|d| d.len).collect();
    let mut out = vec![];
    walk(&lens, [base], [&step], |[o]| out.push(o as usize));
    out
}

/// A two-operand einsum by direct summation over every assignment of the labels:
/// `out[o] = Σ a[ia] b[ib]`, output labels outermost so each sum runs in index order.
fn contract(la: &[u8], lb: &[u8], lo: &[u8], a: &ArrayD<f64>, b: &ArrayD<f64>) -> ArrayD<f64> {
    let mut labels = lo.to_vec();
    for &l in la.iter().chain(lb) {
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    let ext_of = |l: u8| match la.iter().position(|&x| x == l) {
        Some(i) => a.shape()[i],
        None => b.shape()[lb
            .iter()
            .position(|&x| x == l)
            .expect("label in an operand")],
    };
    let ext: Vec<usize> = labels.iter().map(|&l| ext_of(l)).collect();
    let step_in = |ls: &[u8], shape: &[usize]| -> Vec<i64> {
        let st = strides(shape);
        let pos = |l: &u8| ls.iter().position(|x| x == l);
        labels
            .iter()
            .map(|l| pos(l).map_or(0, |i| st[i] as i64))
            .collect()
    };
    let out_shape: Vec<usize> = lo.iter().map(|&l| ext_of(l)).collect();
    let (sa, sb, so) = (
        step_in(la, a.shape()),
        step_in(lb, b.shape()),
        step_in(lo, &out_shape),
    );
    let (xa, xb) = (flat(a), flat(b));
    let mut out = vec![0.0; out_shape.iter().product()];
    walk(&ext, [0; 3], [&sa, &sb, &so], |[ia, ib, io]| {
        out[io as usize] += xa[ia as usize] * xb[ib as usize];
    });
    array(&out_shape, out)
}

/// Reads an index value, checking it against the extent `n`.
fn index(v: f64, n: usize) -> Res<usize> {
    if v >= 0.0 && v < n as f64 {
        Ok(v as usize)
    } else {
        fail(format!("index {v} out of range for an axis of extent {n}"))
    }
}

/// Visits the positions `np.take(x, idx, axis)` reads: `f(offset in x, offset in the
/// result)`, in result order. With `x` split as (P, N, Q) around the axis and M indices,
/// result `(p, m, q)` reads `x[p, idx[m], q]`.
fn for_take(
    shape: &[usize],
    axis: usize,
    idx: &ArrayD<f64>,
    mut f: impl FnMut(usize, usize),
) -> Res<()> {
    let (p_n, n, q_n) = split_at_axis(shape, axis);
    let idx = idx.iter().map(|&v| index(v, n)).collect::<Res<Vec<_>>>()?;
    let m_n = idx.len();
    for p in 0..p_n {
        for (m, &i) in idx.iter().enumerate() {
            for q in 0..q_n {
                f((p * n + i) * q_n + q, (p * m_n + m) * q_n + q);
            }
        }
    }
    Ok(())
}

/// Visits the positions `np.take_along_axis(x, idx, axis)` reads: result `(p, k, q)`
/// reads `x[p, idx[p, k, q], q]`.
fn for_take_along(
    shape: &[usize],
    axis: usize,
    idx: &ArrayD<f64>,
    mut f: impl FnMut(usize, usize),
) -> Res<()> {
    let (_, n, q_n) = split_at_axis(shape, axis);
    let k_n = idx.shape()[axis];
    for (pos, &v) in idx.iter().enumerate() {
        let (p, q) = (pos / (k_n * q_n), pos % q_n);
        f((p * n + index(v, n)?) * q_n + q, pos);
    }
    Ok(())
}

/// `(Π shape[..axis], shape[axis], Π shape[axis+1..])`.
fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let p = shape[..axis].iter().product();
    let q = shape[axis + 1..].iter().product();
    (p, shape[axis], q)
}

/// `x` with `v` added (`add`) or written at the positions a visitor reports as
/// `(offset in x, offset in v)`.
fn scatter(
    x: &ArrayD<f64>,
    v: &ArrayD<f64>,
    visit: impl FnOnce(&mut dyn FnMut(usize, usize)) -> Res<()>,
    add: bool,
) -> Res<ArrayD<f64>> {
    let (mut xs, vs) = (flat(x), flat(v));
    visit(&mut |dst, k| {
        if add {
            xs[dst] += vs[k]
        } else {
            xs[dst] = vs[k]
        }
    })?;
    Ok(array(x.shape(), xs))
}
