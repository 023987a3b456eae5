//! Shape and dtype inference: the typing rule of every op, checked when a node is added
//! and again by `verify`.

use crate::{err, BinaryOp, DType, IrError, Op, Shape, UnaryOp};

fn rank_is(what: &str, s: &Shape, r: usize) -> Result<(), IrError> {
    if s.len() != r {
        return err(format!("{what} expects rank {r}, got shape {s:?}"));
    }
    Ok(())
}

fn axis_ok(what: &str, axis: usize, s: &Shape) -> Result<(), IrError> {
    if axis >= s.len() {
        return err(format!("{what}: axis {axis} out of range for shape {s:?}"));
    }
    Ok(())
}

fn square(what: &str, s: &Shape) -> Result<usize, IrError> {
    if s.len() != 2 || s[0] != s[1] {
        return err(format!("{what} expects a square matrix, got shape {s:?}"));
    }
    Ok(s[0])
}

fn float(what: &str, d: DType) -> Result<(), IrError> {
    if !d.is_float() {
        return err(format!("{what} expects a float operand, got {d}"));
    }
    Ok(())
}

/// The shape and dtype of `op` applied to operands of the given shapes and dtypes.
/// `n_consts` bounds `Const` ids.
pub fn infer(op: &Op, ins: &[(&Shape, DType)], n_consts: usize) -> Result<(Shape, DType), IrError> {
    let (shape, dtype) = infer_op(op, ins, n_consts)?;
    if crate::mem::checked_size(&shape).is_none() {
        return err(format!(
            "{op:?}: the shape {shape:?} has more elements than an array can hold"
        ));
    }
    Ok((shape, dtype))
}

/// The typing rule of every op. Over 200 lines on purpose: one exhaustive match, one arm
/// per op, so the rules that must agree (operand counts, shapes, dtypes) read side by side
/// and a new op is one more arm the compiler asks for.
fn infer_op(op: &Op, ins: &[(&Shape, DType)], n_consts: usize) -> Result<(Shape, DType), IrError> {
    if let Some(n) = op.arity() {
        if ins.len() != n {
            return err(format!("{op:?} takes {n} operands, got {}", ins.len()));
        }
    } else if ins.is_empty() && !matches!(op, Op::Loop(_)) {
        return err(format!("{op:?} needs at least one operand"));
    }
    let s = |i: usize| ins[i].0.clone();
    let d = |i: usize| ins[i].1;
    match op {
        Op::Input(_) => err("an input's type is given, not inferred"),
        Op::Const(c) => {
            if (*c as usize) >= n_consts {
                return err(format!("constant {c} does not exist"));
            }
            err("a constant's type is given, not inferred")
        }
        Op::Unary(u) => {
            // which dtypes each op takes is a fact of the op (`not`: bool; float-only ops:
            // floats; the rest: any number), kept once in `op.rs`
            let dt = if *u == UnaryOp::Not {
                if d(0) != DType::Bool {
                    return err("not expects a bool operand");
                }
                DType::Bool
            } else if *u == UnaryOp::StopGradient {
                d(0)
            } else if u.is_float_only() {
                float(u.name(), d(0))?;
                d(0)
            } else {
                if d(0) == DType::Bool {
                    return err(format!("{} of a bool operand", u.name()));
                }
                d(0)
            };
            Ok((s(0), dt))
        }
        Op::Binary(b) => {
            if s(0) != s(1) {
                return err(format!(
                    "{}: operand shapes differ: {:?} vs {:?}",
                    b.name(),
                    s(0),
                    s(1)
                ));
            }
            if d(0) != d(1) {
                return err(format!(
                    "{}: operand dtypes differ: {} vs {}",
                    b.name(),
                    d(0),
                    d(1)
                ));
            }
            let dt = match b {
                BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => {
                    if d(0) != DType::Bool {
                        return err(format!("{} expects bool operands", b.name()));
                    }
                    DType::Bool
                }
                BinaryOp::Lt
                | BinaryOp::Le
                | BinaryOp::Gt
                | BinaryOp::Ge
                | BinaryOp::Eq
                | BinaryOp::Ne => DType::Bool,
                BinaryOp::Div | BinaryOp::Arctan2 | BinaryOp::LogAddExp => {
                    float(b.name(), d(0))?;
                    d(0)
                }
                BinaryOp::Add
                | BinaryOp::Sub
                | BinaryOp::Mul
                | BinaryOp::FloorDiv
                | BinaryOp::Mod
                | BinaryOp::Pow
                | BinaryOp::Maximum
                | BinaryOp::Minimum => {
                    if d(0) == DType::Bool {
                        return err(format!("{} of bool operands", b.name()));
                    }
                    d(0)
                }
            };
            Ok((s(0), dt))
        }
        Op::Where => {
            if d(0) != DType::Bool {
                return err("where: the condition must be bool");
            }
            if s(0) != s(1) || s(1) != s(2) {
                return err(format!(
                    "where: shapes differ: {:?} {:?} {:?}",
                    s(0),
                    s(1),
                    s(2)
                ));
            }
            if d(1) != d(2) {
                return err("where: branch dtypes differ");
            }
            Ok((s(1), d(1)))
        }
        Op::Cast(t) => Ok((s(0), *t)),
        Op::Broadcast(to) => {
            let from = s(0);
            if from.len() > to.len() {
                return err(format!("cannot broadcast {from:?} to {to:?}"));
            }
            let off = to.len() - from.len();
            for (i, &f) in from.iter().enumerate() {
                if f != 1 && f != to[off + i] {
                    return err(format!("cannot broadcast {from:?} to {to:?}"));
                }
            }
            Ok((to.clone(), d(0)))
        }
        Op::Reshape(to) => {
            if to.iter().product::<usize>() != s(0).iter().product::<usize>() {
                return err(format!("cannot reshape {:?} to {to:?}", s(0)));
            }
            Ok((to.clone(), d(0)))
        }
        Op::Transpose(perm) => {
            let x = s(0);
            let mut seen = vec![false; x.len()];
            if perm.len() != x.len() {
                return err(format!("transpose: permutation {perm:?} for shape {x:?}"));
            }
            for &p in perm {
                if p >= x.len() || seen[p] {
                    return err(format!("transpose: {perm:?} is not a permutation"));
                }
                seen[p] = true;
            }
            Ok((perm.iter().map(|&p| x[p]).collect(), d(0)))
        }
        Op::Reduce(r, axes) => {
            let x = s(0);
            if axes.windows(2).any(|w| w[0] >= w[1]) {
                return err(format!(
                    "{}: axes {axes:?} must be sorted and unique",
                    r.name()
                ));
            }
            for &a in axes {
                axis_ok(r.name(), a, &x)?;
            }
            let out = x
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &n)| n)
                .collect();
            let dt = match (r, d(0)) {
                (crate::ReduceOp::Sum | crate::ReduceOp::Prod, DType::Bool) => DType::I64,
                (_, t) => t,
            };
            Ok((out, dt))
        }
        Op::ArgMax(axis, _) => {
            let mut x = s(0);
            axis_ok("argmax", *axis, &x)?;
            if x[*axis] == 0 {
                return err("argmax of an empty axis");
            }
            x.remove(*axis);
            Ok((x, DType::I64))
        }
        Op::Contract(spec) => {
            let (a, b) = (s(0), s(1));
            if spec.a.len() != a.len() || spec.b.len() != b.len() {
                return err(format!("contract {spec}: operand shapes {a:?}, {b:?}"));
            }
            if d(0) != d(1) || d(0) == DType::Bool {
                return err(format!(
                    "contract {spec}: operand dtypes {} and {}",
                    d(0),
                    d(1)
                ));
            }
            let mut ext = std::collections::HashMap::new();
            for (labels, shape) in [(&spec.a, &a), (&spec.b, &b)] {
                for (i, l) in labels.iter().enumerate() {
                    if labels[..i].contains(l) {
                        return err(format!("contract {spec}: label repeated in one operand"));
                    }
                    if *ext.entry(*l).or_insert(shape[i]) != shape[i] {
                        return err(format!(
                            "contract {spec}: extents of '{}' differ",
                            *l as char
                        ));
                    }
                }
            }
            for (labels, other) in [(&spec.a, &spec.b), (&spec.b, &spec.a)] {
                for l in labels.iter() {
                    if !other.contains(l) && !spec.out.contains(l) {
                        return err(format!(
                            "contract {spec}: '{}' is in one operand only and not the output",
                            *l as char
                        ));
                    }
                }
            }
            let mut out = vec![];
            for (i, l) in spec.out.iter().enumerate() {
                if spec.out[..i].contains(l) {
                    return err(format!("contract {spec}: output label repeated"));
                }
                match ext.get(l) {
                    Some(&n) => out.push(n),
                    None => return err(format!("contract {spec}: output label not in an operand")),
                }
            }
            Ok((out, d(0)))
        }
        Op::Slice(dims) => {
            let x = s(0);
            check_slice(dims, &x)?;
            Ok((dims.iter().map(|d| d.len).collect(), d(0)))
        }
        Op::SetSlice(dims) => {
            let x = s(0);
            check_slice(dims, &x)?;
            let want: Shape = dims.iter().map(|d| d.len).collect();
            if s(1) != want || d(1) != d(0) {
                return err(format!(
                    "set_slice: value {:?} {} for slice {want:?} {}",
                    s(1),
                    d(1),
                    d(0)
                ));
            }
            Ok((x, d(0)))
        }
        Op::Gather(axis) => {
            let x = s(0);
            axis_ok("gather", *axis, &x)?;
            if d(1) != DType::I64 {
                return err("gather: indices must be int64");
            }
            Ok((gather_shape(&x, &s(1), *axis), d(0)))
        }
        Op::ScatterAdd(axis) | Op::Scatter(axis) => {
            let x = s(0);
            axis_ok("scatter", *axis, &x)?;
            if d(1) != DType::I64 {
                return err("scatter: indices must be int64");
            }
            if s(2) != gather_shape(&x, &s(1), *axis) || d(2) != d(0) {
                return err(format!("scatter: values {:?} do not fit", s(2)));
            }
            Ok((x, d(0)))
        }
        Op::TakeAlong(axis) => {
            let (x, i) = (s(0), s(1));
            axis_ok("take_along", *axis, &x)?;
            along_ok(&x, &i, *axis, d(1))?;
            Ok((i, d(0)))
        }
        Op::ScatterAlongAdd(axis) => {
            let (x, i) = (s(0), s(1));
            axis_ok("scatter_along_add", *axis, &x)?;
            along_ok(&x, &i, *axis, d(1))?;
            if s(2) != i || d(2) != d(0) {
                return err("scatter_along_add: values must match the indices");
            }
            Ok((x, d(0)))
        }
        Op::Concat(axis) => {
            let first = s(0);
            axis_ok("concat", *axis, &first)?;
            let mut out = first.clone();
            out[*axis] = 0;
            for (sh, dt) in ins {
                if sh.len() != first.len() || *dt != d(0) {
                    return err("concat: operands differ in rank or dtype");
                }
                for (k, (&a, &b)) in sh.iter().zip(&first).enumerate() {
                    if k != *axis && a != b {
                        return err(format!(
                            "concat: shapes {sh:?} and {first:?} differ off axis {axis}"
                        ));
                    }
                }
                out[*axis] += sh[*axis];
            }
            Ok((out, d(0)))
        }
        Op::Cumsum(axis) | Op::Cumprod(axis) => {
            axis_ok("cumulative op", *axis, &s(0))?;
            let dt = if d(0) == DType::Bool {
                DType::I64
            } else {
                d(0)
            };
            Ok((s(0), dt))
        }
        Op::ArgSort(axis) => {
            axis_ok("argsort", *axis, &s(0))?;
            Ok((s(0), DType::I64))
        }
        Op::Solve | Op::TriSolve(_) => {
            let n = square("solve", &s(0))?;
            rank_is("solve right-hand side", &s(1), 2)?;
            if s(1)[0] != n {
                return err(format!("solve: {:?} and {:?} do not match", s(0), s(1)));
            }
            float("solve", d(0))?;
            if d(0) != d(1) {
                return err("solve: operand dtypes differ");
            }
            Ok((s(1), d(0)))
        }
        Op::Cholesky | Op::Inv => {
            square("matrix op", &s(0))?;
            float("matrix op", d(0))?;
            Ok((s(0), d(0)))
        }
        Op::Det | Op::LogAbsDet => {
            square("det", &s(0))?;
            float("det", d(0))?;
            Ok((vec![], d(0)))
        }
        Op::Loop(spec) => spec.check_operands(ins),
    }
}

fn check_slice(dims: &[crate::SliceDim], x: &Shape) -> Result<(), IrError> {
    if dims.len() != x.len() {
        return err(format!("slice of {} axes for shape {x:?}", dims.len()));
    }
    for (d, &n) in dims.iter().zip(x) {
        if d.step == 0 {
            return err("slice step 0");
        }
        if d.len > 0 {
            let last = d.start as i64 + d.step * (d.len as i64 - 1);
            if d.start >= n || last < 0 || last >= n as i64 {
                return err(format!("slice {d:?} out of range for extent {n}"));
            }
        }
    }
    Ok(())
}

/// Output shape of `np.take(x, idx, axis)`.
pub fn gather_shape(x: &Shape, idx: &Shape, axis: usize) -> Shape {
    let mut out = x[..axis].to_vec();
    out.extend_from_slice(idx);
    out.extend_from_slice(&x[axis + 1..]);
    out
}

fn along_ok(x: &Shape, i: &Shape, axis: usize, idt: DType) -> Result<(), IrError> {
    if idt != DType::I64 || i.len() != x.len() {
        return err("take_along: indices must be int64 of the operand's rank");
    }
    for k in 0..x.len() {
        if k != axis && i[k] != x[k] {
            return err(format!("take_along: index shape {i:?} vs {x:?}"));
        }
    }
    Ok(())
}
