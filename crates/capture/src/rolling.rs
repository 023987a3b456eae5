//! Loop rolling: iterations of a Python loop that record the same structure become one
//! `Op::Loop` node instead of one copy of the body per iteration.
//!
//! At every backward jump the engine snapshots the frame at the loop header (its locals
//! and stack, the graph's length, the guards, the side-effect and branch counters). When
//! three consecutive iterations recorded the same nodes — the same ops, shapes and dtypes,
//! operands that are either earlier nodes of the same iteration, the values a local or
//! stack slot held when the iteration began (**carries**), or the same node from before the
//! loop (**invariants**) — and the same guards, the engine builds the body graph from the
//! last of them and *runs the remaining iterations on the body* (the reference evaluator)
//! instead of interpreting them: each rolled iteration checks that its guards come out as
//! recorded and the rolling stops at the first one that does not (the engine then
//! interprets that iteration itself). The frame's slots get the loop's results, a
//! `range` iterator is advanced past the rolled iterations, and interpretation resumes at
//! the header, so the last iteration and the loop's exit are interpreted as usual.
//!
//! What may differ between iterations: constants that grow linearly (`y * i`), basic
//! slices whose start grows linearly along one axis (`x[i]`, `x[:, i]`) — both become
//! per-iteration inputs (xs) — and Python ints and floats in slots that grow linearly.
//!
//! Guarantees:
//! - nothing is rolled when an iteration has a side effect the engine sees (attribute,
//!   global, cell or container writes, mutating method calls, `print`, yields, exceptions),
//!   or writes in place to an array that is not held by a local of the loop's frame;
//! - the guards of the rolled iterations hold at trace time and are checked on every call
//!   (one guard over the stacked outcomes), so a call whose data would take another path
//!   in any iteration traces again;
//! - when the rolled iterations' Python-level values could differ from the observed ones
//!   in a way the structure does not show (a branch on a Python value, a live loop
//!   variable, per-iteration inputs, a Python scalar carried along), the trace is marked
//!   for a plain re-run: the caller compares the result with the function run by NumPy
//!   and traces again without rolling when they differ;
//! - `AUTODIFF_ROLL_LOOPS=0` turns rolling off.

use std::collections::HashMap;

use autodiff_ir::{BinaryOp, DType, Graph, LoopSpec, NodeId, Op, SliceDim, Tensor};
use autodiff_lower::Program;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};

use super::code::{Code, Opc};
use super::interp::Frame;
use super::{convert, Res, Tracer, Val};

/// Is rolling on (`AUTODIFF_ROLL_LOOPS`, default on)?
pub fn enabled() -> bool {
    std::env::var("AUTODIFF_ROLL_LOOPS").map_or(true, |v| v.trim() != "0")
}

/// The most iterations rolled at once in a `while` loop that reads a Python scalar it
/// changes (see `trip_bound`).
const WHILE_SCALAR_CHUNK: usize = 4096;

/// The most iterations one rolled loop runs at trace time (`AUTODIFF_MAX_LOOP_TRIPS`):
/// a `while` loop whose exit never comes stops with an error naming it.
pub fn max_trips() -> usize {
    std::env::var("AUTODIFF_MAX_LOOP_TRIPS")
        .ok()
        .and_then(|s| s.trim().replace('_', "").parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(10_000_000)
}

/// A `for` loop over a range is rolled only when the nodes its remaining iterations would
/// add unrolled reach this (`AUTODIFF_ROLL_MIN_NODES`, default 2048): a short loop stays
/// unrolled, where its iterations fuse into fewer, larger kernels (faster steady calls for
/// a slightly slower first one).
pub fn min_nodes() -> usize {
    std::env::var("AUTODIFF_ROLL_MIN_NODES")
        .ok()
        .and_then(|s| s.trim().replace('_', "").parse::<usize>().ok())
        .unwrap_or(2048)
}

/// The value in one local or stack slot at a loop header.
#[derive(Clone, Debug, PartialEq)]
enum Slot {
    Null,
    Node(NodeId),
    Int(i64),
    Float(f64),
    Obj(usize),
}

/// The frame and trace at one arrival at a loop header.
pub struct Snap {
    nodes: usize,
    guards: usize,
    effects: u64,
    branches: u64,
    updates: usize,
    appends: usize,
    slots: Vec<Slot>,
    /// The object in each slot (0 for none): an array updated in place keeps its identity.
    objs: Vec<usize>,
}

/// How an operand of a node in an iteration is reached.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ref {
    /// The node at this position of the same iteration.
    Internal(usize),
    /// The value slot `k` held when the iteration began.
    Carry(usize),
    /// The same node before the loop.
    Inv(NodeId),
    /// The node at this position of the previous iteration (an expression of the next
    /// carries computed at the end of an iteration, reused by the next one through
    /// hash-consing): carried implicitly.
    Prev(usize),
}

/// What a position of the iteration is.
enum Kind {
    Plain,
    /// A constant that grows by `step` per iteration (values of the last iteration).
    Const {
        last: Tensor,
        step: Vec<f64>,
    },
    /// A slice of an invariant whose start on `axis` grows by `step`.
    Slice {
        src: NodeId,
        dims: Vec<SliceDim>,
        axis: usize,
        step: i64,
    },
    /// `y[i-1]` while `y[i] = v` is written (the same slot, axis and step; the read `m`
    /// steps behind the write): the value written `m` iterations before, carried
    /// implicitly as `prev` (the written value for `m = 1`, else the read one step closer).
    Recur {
        prev: usize,
    },
    /// `p[i]` read right after `p[i] = v` in the same iteration (symplectic Euler's
    /// `q[i] = q[i-1] + h·p[i]`): the value written, position `of`.
    Same {
        of: usize,
    },
    /// `out[i] = v`: a write into the array of slot `slot` (read nowhere else in the
    /// iteration) at a start on `axis` growing by `step`. The loop's ys stack the values;
    /// one write after the loop puts them in place.
    Write {
        slot: usize,
        dims: Vec<SliceDim>,
        axis: usize,
        step: i64,
    },
}

/// The axis on which two slice lists differ only in start (the same step and a length of
/// one there, equal elsewhere), and the start's step across `a`, `b`, `c`.
fn moving_axis(a: &[SliceDim], b: &[SliceDim], c: &[SliceDim]) -> Option<(usize, i64)> {
    let diff: Vec<usize> = (0..c.len()).filter(|&d| a[d] != c[d]).collect();
    let [axis] = diff[..] else { return None };
    let same = |x: &SliceDim, y: &SliceDim| x.step == y.step && x.len == y.len;
    if !same(&a[axis], &c[axis])
        || !same(&b[axis], &c[axis])
        || c[axis].len != 1
        || (0..c.len()).any(|d| d != axis && b[d] != c[d])
    {
        return None;
    }
    let starts = [
        a[axis].start as f64,
        b[axis].start as f64,
        c[axis].start as f64,
    ];
    let step = linear(&starts)?;
    (step != 0.0).then_some((axis, step as i64))
}

/// The slot of the array an operand reads when it is an array written in the loop: the
/// value a slot held when the iteration began (a write's target is checked later), or the
/// result of this iteration's write into the slot's array.
fn written_slot(kinds: &[Kind], r: Option<&Ref>) -> Option<usize> {
    match r? {
        Ref::Carry(slot) => Some(*slot),
        Ref::Internal(q) => match kinds.get(*q)? {
            Kind::Write { slot, .. } => Some(*slot),
            _ => None,
        },
        _ => None,
    }
}

/// The iterations a guardless `while` loop has left, the one starting now included, when
/// its condition is one comparison of Python ints — counters growing by a fixed int step
/// (`scalars`) or values fixed in the loop (locals, constants) — placed as CPython 3.11–3.13
/// compile `while a < b:` (the test repeated at the bottom: the back edge is taken with the
/// condition true for the current values). `None` for any other loop.
fn counter_trips(
    f: &Frame<'_>,
    code: &Code<'_>,
    header: usize,
    from: usize,
    scalars: &[PyScalar],
) -> Option<usize> {
    let ins = &code.instrs;
    let cmp = match ins.get(from)?.op {
        // 3.11: POP_JUMP_BACKWARD_IF_TRUE to the header
        Opc::PopJumpIfTrue if ins[from].target == header => from.checked_sub(1)?,
        // 3.12+: POP_JUMP_IF_FALSE out of the loop, then JUMP_BACKWARD
        Opc::Jump
            if from >= 2
                && ins[from - 1].op == Opc::PopJumpIfFalse
                && ins[from - 1].target > from =>
        {
            from - 2
        }
        _ => return None,
    };
    if ins.get(cmp)?.op != Opc::CompareOp {
        return None;
    }
    let op: String = ins[cmp].argval.extract().ok()?;
    let op = op
        .trim_start_matches("bool(")
        .trim_end_matches(')')
        .to_string();
    // each operand as `base + step·j` after `j` more iterations: a counter (an int slot
    // growing by an int step), an int local the loop leaves alone, an int constant
    let slot = |k: usize| -> Option<(i64, i64)> {
        if let Some(sc) = scalars.iter().find(|sc| sc.slot == k) {
            let Slot::Int(last) = sc.last else {
                return None;
            };
            return (sc.step.fract() == 0.0).then_some((last, sc.step as i64));
        }
        let v = f.locals.get(k)?.as_ref()?.obj.as_ref()?;
        v.is_exact_instance_of::<PyInt>()
            .then(|| v.extract::<i64>().ok().map(|c| (c, 0)))
            .flatten()
    };
    let load = |i: usize| -> Option<(i64, i64)> {
        let x = ins.get(i)?;
        match x.op {
            Opc::LoadFast | Opc::LoadFastCheck => slot(x.arg as usize),
            Opc::LoadConst if x.argval.is_exact_instance_of::<PyInt>() => {
                Some((x.argval.extract::<i64>().ok()?, 0))
            }
            _ => None,
        }
    };
    let (a, b) = if ins.get(cmp.checked_sub(1)?)?.op == Opc::LoadFastLoadFast {
        let arg = ins[cmp - 1].arg as usize;
        (slot(arg >> 4)?, slot(arg & 15)?)
    } else {
        (load(cmp.checked_sub(2)?)?, load(cmp - 1)?)
    };
    // (`None` past i64)
    let at = |(base, step): (i64, i64), j: i64| base.checked_add(step.checked_mul(j)?);
    let holds = |x: i64, y: i64| -> Option<bool> {
        Some(match op.as_str() {
            "<" => x < y,
            "<=" => x <= y,
            ">" => x > y,
            ">=" => x >= y,
            "!=" => x != y,
            _ => return None,
        })
    };
    let limit = max_trips() as i64;
    let mut j = 1i64;
    while j <= limit {
        if !holds(at(a, j)?, at(b, j)?)? {
            return Some(j as usize);
        }
        j += 1;
    }
    None
}

/// Turns the reads of written arrays (`y[i-1]` in a loop that writes `y[i]`; positions,
/// slots, slices, axes and steps of the last observed iteration) into [`Kind::Recur`]: each
/// must read the same array as one write, along the same axis with the same step, the same
/// region elsewhere, `m ≥ 1` steps behind it (or `m = 0`, the row just written, read after
/// the write: [`Kind::Same`]), where the write's value is computed in the iteration (so the
/// previous iteration's value is a position) and, for `m > 1`, a read `m - 1` steps behind
/// exists. `None` for any other read of a written array.
fn resolve_recurrences(
    kinds: &mut [Kind],
    refs: &[Vec<Ref>],
    reads: &[(usize, usize, Vec<SliceDim>, usize, i64)],
) -> Option<()> {
    // (read position, write position, m)
    let mut found: Vec<(usize, usize, i64)> = vec![];
    for (p, slot, dims, axis, step) in reads {
        let w = kinds
            .iter()
            .position(|k| matches!(k, Kind::Write { slot: s, .. } if s == slot))?;
        let Kind::Write {
            dims: wd,
            axis: wa,
            step: ws,
            ..
        } = &kinds[w]
        else {
            unreachable!("a write")
        };
        let same_elsewhere = (0..dims.len()).all(|d| d == *axis || dims[d] == wd[d]);
        let behind = wd[*axis].start as i64 - dims[*axis].start as i64;
        // the row just written is read only after the write (before it, the old contents)
        let after = refs[*p].first() == Some(&Ref::Internal(w));
        let least = if after { 0 } else { 1 };
        if wa != axis
            || ws != step
            || !same_elsewhere
            || behind % step != 0
            || behind / step < least
        {
            return None;
        }
        found.push((*p, w, behind / step));
    }
    for &(p, w, m) in &found {
        if m == 0 {
            let Some(Ref::Internal(q)) = refs[w].get(1) else {
                return None;
            };
            kinds[p] = Kind::Same { of: *q };
            continue;
        }
        let prev = if m == 1 {
            match refs[w].get(1) {
                Some(Ref::Internal(q)) => *q,
                _ => return None,
            }
        } else {
            found.iter().find(|&&(_, w2, m2)| w2 == w && m2 == m - 1)?.0
        };
        kinds[p] = Kind::Recur { prev };
    }
    Some(())
}

/// A Python scalar slot that grows linearly.
struct PyScalar {
    slot: usize,
    last: Slot,
    step: f64,
}

/// The plan for rolling, built from three matching iterations.
struct Plan {
    len: usize,
    kinds: Vec<Kind>,
    refs: Vec<Vec<Ref>>,
    carries: Vec<usize>,
    next: Vec<Ref>,
    guards: Vec<(Ref, Tensor, String)>,
    /// `list.append(v)` per iteration: the list and the appended value.
    appends: Vec<(usize, Ref)>,
    /// Positions whose previous-iteration value an iteration reads (`Ref::Prev`), carried
    /// after the slots' carries.
    prev: Vec<usize>,
    scalars: Vec<PyScalar>,
    verify: bool,
    /// A `while` loop without a guard whose condition compares Python int counters (`while
    /// i < n`): the iterations left, the one starting now included (see `counter_trips`).
    counter_left: Option<usize>,
}

impl<'py> Tracer<'py> {
    fn slot_of(&self, v: Option<&Val<'py>>) -> Slot {
        let Some(v) = v else { return Slot::Null };
        let Some(o) = v.obj.as_ref() else {
            return Slot::Null;
        };
        if let Some(n) = self.sym(v) {
            return Slot::Node(n);
        }
        if o.is_instance_of::<PyBool>() {
            return Slot::Obj(o.as_ptr() as usize);
        }
        if o.is_exact_instance_of::<PyInt>() {
            if let Ok(i) = o.extract::<i64>() {
                return Slot::Int(i);
            }
        }
        if o.is_exact_instance_of::<PyFloat>() {
            if let Ok(x) = o.extract::<f64>() {
                return Slot::Float(x);
            }
        }
        Slot::Obj(o.as_ptr() as usize)
    }

    fn snapshot(&self, f: &Frame<'py>) -> Snap {
        let mut slots: Vec<Slot> = f.locals.iter().map(|v| self.slot_of(v.as_ref())).collect();
        slots.extend(f.stack.iter().map(|v| self.slot_of(Some(v))));
        let ptr = |v: Option<&Val<'py>>| {
            v.and_then(|v| v.obj.as_ref())
                .map_or(0, |o| o.as_ptr() as usize)
        };
        let mut objs: Vec<usize> = f.locals.iter().map(|v| ptr(v.as_ref())).collect();
        objs.extend(f.stack.iter().map(|v| ptr(Some(v))));
        Snap {
            nodes: self.g.len(),
            guards: self.guards.len(),
            effects: self.effects,
            branches: self.branches,
            updates: self.update_log.len(),
            appends: self.append_log.len(),
            slots,
            objs,
        }
    }

    /// Called when a backward jump arrives at `f.pc` (a loop header): snapshots, and rolls
    /// the loop when the last three iterations match. Returns whether it rolled.
    pub fn at_back_edge(&mut self, f: &mut Frame<'py>, code: &Code<'py>, from: usize) -> Res<bool> {
        if !self.roll {
            return Ok(false);
        }
        let header = f.pc;
        let snap = self.snapshot(f);
        let Some(snaps) = f.watches.entry(header).or_insert_with(|| Some(vec![])) else {
            return Ok(false); // left unrolled for good
        };
        snaps.push(snap);
        if snaps.len() > 4 {
            snaps.remove(0);
        }
        if snaps.len() < 4 {
            return Ok(false);
        }
        let snaps = std::mem::take(snaps);
        if self.too_short(f, code, header, &snaps)? {
            f.watches.insert(header, None);
            return Ok(false);
        }
        let rolled = match self.plan(&snaps, f, code, header, from) {
            Some(plan) => self.roll_loop(f, code, header, &snaps, plan)?,
            None => {
                if self.promote_floats(f, code, header, from, &snaps)? {
                    // the next iterations are observed afresh, with traced accumulators
                    f.watches.insert(header, Some(vec![]));
                    return Ok(false);
                }
                false
            }
        };
        if !rolled {
            f.watches.insert(header, Some(snaps));
        }
        Ok(rolled)
    }

    /// A loop that could not be rolled and carries Python floats that change linearly and
    /// that it reads (`t += dt` read by `np.sin(t)`: each iteration records another
    /// constant, so no two iterations match): once per loop, those floats become traced
    /// float64 scalars (a constant node holding the value now), so `t + dt` and `sin(t)`
    /// are nodes of the iteration and `t` a carry. The values are the same (a float64
    /// scalar computes as a Python float); only where Python needs a plain number (`int(t)`,
    /// `range`) is the traced value made concrete under a guard, as for any traced scalar.
    /// Returns whether any was promoted.
    fn promote_floats(
        &mut self,
        f: &mut Frame<'py>,
        code: &Code<'py>,
        header: usize,
        from: usize,
        s: &[Snap],
    ) -> Res<bool> {
        if !f.promoted.insert(header) || s[0].effects != s[3].effects {
            return Ok(false);
        }
        let floats: Vec<usize> = (0..f.locals.len())
            .filter(|&k| {
                let v: Vec<&Slot> = s.iter().map(|x| &x.slots[k]).collect();
                v.iter().all(|x| matches!(x, Slot::Float(_)))
                    && v.iter().any(|x| *x != v[0])
                    && reads_local(code, header, from, k)
            })
            .collect();
        for &k in &floats {
            let Some(obj) = get_slot(f, k).and_then(|v| v.obj) else {
                continue;
            };
            if !obj.is_exact_instance_of::<PyFloat>() {
                continue;
            }
            let x: f64 = obj.extract()?;
            let node = self.g.scalar(x, DType::F64);
            let scalar = self.r.np.getattr("float64")?.call1((x,))?;
            let v = self.track(scalar, node)?;
            set_slot(f, k, v);
        }
        Ok(!floats.is_empty())
    }

    /// A `for` loop over a range whose remaining iterations would add fewer nodes than
    /// [`min_nodes`] unrolled (judged by the last iteration's length).
    fn too_short(&self, f: &Frame<'py>, code: &Code<'py>, header: usize, s: &[Snap]) -> Res<bool> {
        if code.instrs[header].op != Opc::ForIter {
            return Ok(false);
        }
        Ok(range_left(f)?
            .is_some_and(|left| left.saturating_mul(s[3].nodes - s[2].nodes) < min_nodes()))
    }

    /// Classifies an operand seen as `ids[0..3]` in the three iterations.
    fn classify(&self, s: &[Snap], ids: [NodeId; 3]) -> Option<Ref> {
        let starts = [s[0].nodes, s[1].nodes, s[2].nodes];
        let rel: Vec<Option<usize>> = (0..3)
            .map(|k| (ids[k].index() >= starts[k]).then(|| ids[k].index() - starts[k]))
            .collect();
        if let Some(r) = rel[2] {
            return (rel[0] == Some(r) && rel[1] == Some(r)).then_some(Ref::Internal(r));
        }
        if rel.iter().any(|r| r.is_some()) {
            return None;
        }
        if ids[0] == ids[1] && ids[1] == ids[2] {
            return Some(Ref::Inv(ids[2]));
        }
        if let Some(k) =
            (0..s[0].slots.len()).find(|&k| (0..3).all(|j| s[j].slots[k] == Slot::Node(ids[j])))
        {
            return Some(Ref::Carry(k));
        }
        let (c, b) = (ids[2].index(), ids[1].index());
        if c >= s[1].nodes && c < s[2].nodes {
            let p = c - s[1].nodes;
            if b == s[0].nodes + p && ids[0].index() < s[0].nodes {
                return Some(Ref::Prev(p));
            }
        }
        None
    }

    /// Compares the three iterations between the four snapshots; `None` when they differ
    /// in anything rolling cannot express.
    fn plan(
        &self,
        s: &[Snap],
        f: &Frame<'py>,
        code: &Code<'py>,
        header: usize,
        from: usize,
    ) -> Option<Plan> {
        if s[0].effects != s[3].effects {
            return None;
        }
        let n = s[0].slots.len();
        if s.iter().any(|x| x.slots.len() != n) {
            return None;
        }
        let len = s[1].nodes - s[0].nodes;
        if s[2].nodes - s[1].nodes != len || s[3].nodes - s[2].nodes != len || len == 0 {
            return None;
        }
        // In-place writes only to arrays the frame's slots hold (their nodes are carried).
        let held: Vec<usize> = f
            .locals
            .iter()
            .flatten()
            .chain(f.stack.iter())
            .filter_map(|v| v.obj.as_ref().map(|o| o.as_ptr() as usize))
            .collect();
        if self.update_log[s[0].updates..s[3].updates]
            .iter()
            .any(|p| !held.contains(p))
        {
            return None;
        }
        let mut verify = s[0].branches != s[3].branches;
        let (carries, scalars, live) = self.slot_plan(s, f, code, header, from)?;
        verify |= live;
        // Nodes.
        let (mut kinds, refs, recur_reads) = self.node_plan(s, len, &mut verify)?;
        resolve_recurrences(&mut kinds, &refs, &recur_reads)?;
        // Next carries: what each carried slot holds at the end of an iteration.
        let next: Vec<Ref> = carries
            .iter()
            .map(|&k| {
                let ids: Vec<NodeId> = (1..4)
                    .map(|j| match s[j].slots[k] {
                        Slot::Node(id) => Some(id),
                        _ => None,
                    })
                    .collect::<Option<_>>()?;
                // (the value at the end of each iteration, in that iteration's context)
                self.classify(s, [ids[0], ids[1], ids[2]])
            })
            .collect::<Option<_>>()?;
        // A written array: its slot's next value is the write, and neither the array nor the
        // write is read elsewhere in the iteration; it is not carried through the body.
        for (p, k) in kinds.iter().enumerate() {
            if let Kind::Write { slot, .. } = k {
                let ci = carries.iter().position(|c| c == slot)?;
                let read_elsewhere = refs.iter().enumerate().any(|(q, rs)| {
                    rs.iter().enumerate().any(|(j, r)| {
                        let recur = matches!(kinds[q], Kind::Recur { .. } | Kind::Same { .. });
                        (*r == Ref::Internal(p) && !recur)
                            || (*r == Ref::Carry(*slot) && !(q == p && j == 0) && !recur)
                    })
                }) || next
                    .iter()
                    .enumerate()
                    .any(|(i, r)| i != ci && (*r == Ref::Internal(p) || *r == Ref::Carry(*slot)));
                if read_elsewhere || next[ci] != Ref::Internal(p) {
                    return None;
                }
            }
        }
        let written: Vec<usize> = kinds
            .iter()
            .filter_map(|k| match k {
                Kind::Write { slot, .. } => Some(*slot),
                _ => None,
            })
            .collect();
        let keep: Vec<bool> = carries.iter().map(|c| !written.contains(c)).collect();
        let carries: Vec<usize> = carries
            .iter()
            .zip(&keep)
            .filter(|x| *x.1)
            .map(|x| *x.0)
            .collect();
        let next: Vec<Ref> = next
            .iter()
            .zip(&keep)
            .filter(|x| *x.1)
            .map(|x| *x.0)
            .collect();
        let (guards, appends) = self.io_plan(s)?;
        // A loop that is not a `for` over a range needs a guard to end it, or a condition
        // on Python int counters whose trip count the engine can tell.
        let is_for = code.instrs[header].op == Opc::ForIter;
        let counter_left = if !is_for && guards.is_empty() {
            Some(counter_trips(f, code, header, from, &scalars)?)
        } else {
            None
        };
        let prev: Vec<usize> = {
            let mut prev: Vec<usize> = refs
                .iter()
                .flatten()
                .chain(&next)
                .chain(guards.iter().map(|g| &g.0))
                .chain(appends.iter().map(|a| &a.1))
                .filter_map(|r| match r {
                    Ref::Prev(p) => Some(*p),
                    _ => None,
                })
                .chain(kinds.iter().filter_map(|k| match k {
                    Kind::Recur { prev } => Some(*prev),
                    _ => None,
                }))
                .collect();
            prev.sort_unstable();
            prev.dedup();
            prev
        };
        Some(Plan {
            len,
            kinds,
            refs,
            carries,
            next,
            guards,
            appends,
            prev,
            scalars,
            verify,
            counter_left,
        })
    }

    /// How each position of the iteration varies ([`Kind`]) and how its operands are
    /// reached ([`Ref`]), plus the reads of written arrays to resolve once the writes are
    /// known; `None` when the three iterations differ in anything rolling cannot express.
    #[allow(clippy::type_complexity)]
    fn node_plan(
        &self,
        s: &[Snap],
        len: usize,
        verify: &mut bool,
    ) -> Option<(
        Vec<Kind>,
        Vec<Vec<Ref>>,
        Vec<(usize, usize, Vec<SliceDim>, usize, i64)>,
    )> {
        let nodes = self.g.nodes();
        let mut kinds = Vec::with_capacity(len);
        let mut refs = Vec::with_capacity(len);
        let mut recur_reads: Vec<(usize, usize, Vec<SliceDim>, usize, i64)> = vec![];
        for p in 0..len {
            let t = [
                &nodes[s[0].nodes + p],
                &nodes[s[1].nodes + p],
                &nodes[s[2].nodes + p],
            ];
            if t.iter()
                .any(|x| x.shape != t[2].shape || x.dtype != t[2].dtype)
                || t.iter().any(|x| x.inputs.len() != t[2].inputs.len())
            {
                return None;
            }
            let r: Vec<Ref> = (0..t[2].inputs.len())
                .map(|j| self.classify(s, [t[0].inputs[j], t[1].inputs[j], t[2].inputs[j]]))
                .collect::<Option<_>>()?;
            let kind = match (&t[0].op, &t[1].op, &t[2].op) {
                (Op::Const(a), Op::Const(b), Op::Const(c)) => {
                    let cs = self.g.consts();
                    let (a, b, c) = (&cs[*a as usize], &cs[*b as usize], &cs[*c as usize]);
                    if !t[2].dtype.is_float() && t[2].dtype != DType::I64 {
                        return None;
                    }
                    let step = (0..c.data.len())
                        .map(|i| linear(&[a.data[i], b.data[i], c.data[i]]))
                        .collect::<Option<Vec<f64>>>()?;
                    *verify = true;
                    Kind::Const {
                        last: (**c).clone(),
                        step,
                    }
                }
                (Op::Slice(a), Op::Slice(b), Op::Slice(c))
                    if a != c && written_slot(&kinds, r.first()).is_some() =>
                {
                    // a read of an array written in the loop (before this iteration's write,
                    // or after it: `q[i] = g(p[i-1])` once `p[i]` is written): resolved
                    // below, once the writes are known
                    let (axis, step) = moving_axis(a, b, c)?;
                    let slot = written_slot(&kinds, r.first()).expect("matched above");
                    recur_reads.push((p, slot, c.clone(), axis, step));
                    *verify = true;
                    Kind::Plain
                }
                (Op::Slice(a), Op::Slice(b), Op::Slice(c)) if a != c => {
                    let Some(Ref::Inv(src)) = r.first().copied() else {
                        return None;
                    };
                    let (axis, step) = moving_axis(a, b, c)?;
                    *verify = true;
                    Kind::Slice {
                        src,
                        dims: c.clone(),
                        axis,
                        step,
                    }
                }
                (Op::SetSlice(a), Op::SetSlice(b), Op::SetSlice(c)) if a != c => {
                    let Some(Ref::Carry(slot)) = r.first().copied() else {
                        return None;
                    };
                    let (axis, step) = moving_axis(a, b, c)?;
                    *verify = true;
                    Kind::Write {
                        slot,
                        dims: c.clone(),
                        axis,
                        step,
                    }
                }
                (a, b, c) if a == c && b == c && !matches!(c, Op::Input(_) | Op::Const(_)) => {
                    Kind::Plain
                }
                _ => return None,
            };
            kinds.push(kind);
            refs.push(r);
        }
        Some((kinds, refs, recur_reads))
    }

    /// The slots: nodes (carried when they change), Python scalars (growing linearly; the
    /// flag says one is read by the loop), the same objects. `None` if a slot differs
    /// otherwise.
    fn slot_plan(
        &self,
        s: &[Snap],
        f: &Frame<'py>,
        code: &Code<'py>,
        header: usize,
        from: usize,
    ) -> Option<(Vec<usize>, Vec<PyScalar>, bool)> {
        let n = s[0].slots.len();
        let mut verify = false;
        let mut carries = vec![];
        let mut scalars = vec![];
        for k in 0..n {
            let v: Vec<&Slot> = s.iter().map(|x| &x.slots[k]).collect();
            match v[0] {
                Slot::Node(_) => {
                    if !v.iter().all(|x| matches!(x, Slot::Node(_))) {
                        return None;
                    }
                    if v.iter().any(|x| *x != v[0]) {
                        carries.push(k);
                    }
                }
                Slot::Int(_) | Slot::Float(_) => {
                    let nums: Vec<f64> = v
                        .iter()
                        .map(|x| match x {
                            Slot::Int(i) => Some(*i as f64),
                            Slot::Float(x) => Some(*x),
                            _ => None,
                        })
                        .collect::<Option<_>>()?;
                    if v.iter()
                        .any(|x| std::mem::discriminant(*x) != std::mem::discriminant(v[0]))
                    {
                        return None;
                    }
                    if nums.iter().all(|&x| x == nums[0]) {
                        continue;
                    }
                    let step = linear(&nums)?;
                    // A live value (read in the loop) could steer Python code the structure
                    // does not show.
                    if k >= f.locals.len() || reads_local(code, header, from, k) {
                        verify = true;
                    }
                    scalars.push(PyScalar {
                        slot: k,
                        last: v[3].clone(),
                        step,
                    });
                }
                other => {
                    if v.iter().any(|x| *x != other) {
                        return None;
                    }
                }
            }
        }
        Some((carries, scalars, verify))
    }

    /// The guards (the same ones, in the same places, expecting the same values; guards on
    /// invariants left out) and the appends (to the same lists, held by slots, of values
    /// never updated in place in the observed iterations: an array appended and then
    /// updated would alias every element).
    #[allow(clippy::type_complexity)]
    fn io_plan(&self, s: &[Snap]) -> Option<(Vec<(Ref, Tensor, String)>, Vec<(usize, Ref)>)> {
        let gs: Vec<&[super::Guard]> = (0..3)
            .map(|j| &self.guards[s[j].guards..s[j + 1].guards])
            .collect();
        if gs[0].len() != gs[2].len() || gs[1].len() != gs[2].len() {
            return None;
        }
        let mut guards = vec![];
        for ((a, b), c) in gs[0].iter().zip(gs[1]).zip(gs[2]) {
            let r = self.classify(s, [a.node, b.node, c.node])?;
            let e = &c.expected;
            if !a.expected.same_bits(e) || !b.expected.same_bits(e) {
                return None;
            }
            if let Ref::Inv(_) = r {
                continue;
            }
            guards.push((r, e.clone(), c.why.clone()));
        }
        let logs: Vec<&[(usize, NodeId, usize)]> = (0..3)
            .map(|j| &self.append_log[s[j].appends..s[j + 1].appends])
            .collect();
        if logs[0].len() != logs[2].len() || logs[1].len() != logs[2].len() {
            return None;
        }
        let mut appends = vec![];
        for ((a, b), c) in logs[0].iter().zip(logs[1]).zip(logs[2]) {
            if a.0 != c.0 || b.0 != c.0 || !s[3].objs.contains(&c.0) {
                return None;
            }
            let updated = self.update_log[s[0].updates..s[3].updates]
                .iter()
                .any(|p| *p == a.2 || *p == b.2 || *p == c.2);
            if updated {
                return None;
            }
            appends.push((c.0, self.classify(s, [a.1, b.1, c.1])?));
        }
        Some((guards, appends))
    }

    /// How many iterations may be rolled: those a `range` has left but its last (which is
    /// interpreted: it sets the loop variable and exits), within the arrays the xs and the
    /// writes index; `None` when fewer than two.
    fn trip_bound(
        &self,
        f: &Frame<'py>,
        is_for: bool,
        s: &[Snap],
        plan: &Plan,
    ) -> Res<Option<usize>> {
        let mut most = max_trips();
        if let Some(left) = plan.counter_left {
            // the last iteration is interpreted (its condition ends the loop)
            most = left.saturating_sub(1);
        }
        if is_for {
            let Some(left) = range_left(f)? else {
                return Ok(None);
            };
            // the last iteration is interpreted (it sets the loop variable and exits)
            most = left.saturating_sub(1);
        }
        for k in &plan.kinds {
            let (array, dims, axis, step) = match k {
                Kind::Slice {
                    src,
                    dims,
                    axis,
                    step,
                } => (*src, dims, *axis, *step),
                Kind::Write {
                    slot,
                    dims,
                    axis,
                    step,
                } => match s[3].slots[*slot] {
                    Slot::Node(n) => (n, dims, *axis, *step),
                    _ => return Ok(None),
                },
                Kind::Plain | Kind::Const { .. } | Kind::Recur { .. } | Kind::Same { .. } => {
                    continue
                }
            };
            let extent = self.g.shape(array)[axis] as i64;
            let start = dims[axis].start as i64;
            let room = if step > 0 {
                (extent - 1 - start) / step
            } else {
                start / -step
            };
            most = most.min(room.max(0) as usize);
        }
        if !is_for && most == max_trips() && !plan.scalars.is_empty() && plan.verify {
            // A Python scalar the loop reads (an iteration counter in `while ... and it <
            // n`) may end it where no guard can see: roll a chunk at a time, so that the
            // interpreter evaluates the Python condition between chunks (a chunk that ran
            // past it is caught by the plain run that `verify` asks for, and the function
            // traced again unrolled).
            most = most.min(WHILE_SCALAR_CHUNK);
        }
        Ok((most >= 2).then_some(most))
    }

    /// The body graph of the last observed iteration (inputs: carries, implicit carries,
    /// xs rows, invariants; outputs: next carries, written rows, appended values, guard
    /// outcomes) and the positions of its writes.
    #[allow(clippy::too_many_arguments)]
    fn build_body(
        &self,
        code: &Code<'py>,
        plan: &Plan,
        base: usize,
        carry_nodes: &[NodeId],
        xs_nodes: &[NodeId],
        invs: &[NodeId],
        inv_at: &HashMap<NodeId, usize>,
    ) -> Res<(Graph, Vec<usize>)> {
        let mut body = Graph::new();
        let mut carry_in = vec![];
        for (i, &k) in plan.carries.iter().enumerate() {
            let n = carry_nodes[i];
            let name = code
                .slots
                .get(k)
                .cloned()
                .unwrap_or_else(|| format!("c{i}"));
            carry_in.push(body.add_input(&name, self.g.shape(n).clone(), self.g.dtype(n)));
        }
        let mut prev_in = vec![];
        for (i, &p) in plan.prev.iter().enumerate() {
            let n = NodeId((base + p) as u32);
            let name = self
                .g
                .names
                .get(&n)
                .cloned()
                .unwrap_or_else(|| format!("p{i}"));
            prev_in.push(body.add_input(&name, self.g.shape(n).clone(), self.g.dtype(n)));
        }
        let mut xs_in = vec![];
        for (i, &x) in xs_nodes.iter().enumerate() {
            let shape = self.g.shape(x)[1..].to_vec();
            xs_in.push(body.add_input(&format!("x{i}"), shape, self.g.dtype(x)));
        }
        let mut inv_in = vec![];
        for (i, &v) in invs.iter().enumerate() {
            let name = self
                .g
                .names
                .get(&v)
                .cloned()
                .or_else(|| match self.g.node(v).op {
                    Op::Input(k) => self.g.input_names.get(k as usize).cloned(),
                    _ => None,
                })
                .unwrap_or_else(|| format!("v{i}"));
            inv_in.push(body.add_input(&name, self.g.shape(v).clone(), self.g.dtype(v)));
        }
        let mut map: Vec<NodeId> = Vec::with_capacity(plan.len);
        let resolve = |map: &Vec<NodeId>, r: &Ref| -> NodeId {
            match r {
                Ref::Internal(p) => map[*p],
                Ref::Carry(k) => {
                    carry_in[plan.carries.iter().position(|c| c == k).expect("carried")]
                }
                Ref::Inv(n) => inv_in[inv_at[n]],
                Ref::Prev(p) => prev_in[plan.prev.iter().position(|q| q == p).expect("prev")],
            }
        };
        let mut xi = 0;
        for p in 0..plan.len {
            let node = self.g.node(NodeId((base + p) as u32)).clone();
            let id = match &plan.kinds[p] {
                Kind::Plain => {
                    let ins = plan.refs[p].iter().map(|r| resolve(&map, r)).collect();
                    body.add(node.op.clone(), ins)?
                }
                Kind::Const { .. } | Kind::Slice { .. } => {
                    xi += 1;
                    xs_in[xi - 1]
                }
                // (nothing in the iteration reads a write)
                Kind::Write { .. } => resolve(&map, &plan.refs[p][1]),
                // the value written `m` iterations before (the write's value when m = 1)
                Kind::Recur { prev } => resolve(&map, &Ref::Prev(*prev)),
                Kind::Same { of } => map[*of],
            };
            if let Some(name) = self.g.names.get(&NodeId((base + p) as u32)) {
                body.names.entry(id).or_insert_with(|| name.clone());
            }
            map.push(id);
        }
        body.outputs = plan.next.iter().map(|r| resolve(&map, r)).collect();
        body.outputs.extend(plan.prev.iter().map(|&p| map[p]));
        let writes: Vec<usize> = (0..plan.len)
            .filter(|&p| matches!(plan.kinds[p], Kind::Write { .. }))
            .collect();
        for &p in &writes {
            body.outputs.push(resolve(&map, &plan.refs[p][1]));
        }
        for (_, r) in &plan.appends {
            body.outputs.push(resolve(&map, r));
        }
        body.outputs
            .extend(plan.guards.iter().map(|g| resolve(&map, &g.0)));
        Ok((body, writes))
    }

    /// The frame's carried slots get the loop's final carries (arrays updated in place are
    /// written in place, so other names for them see the values).
    fn set_carries(
        &mut self,
        f: &mut Frame<'py>,
        s: &[Snap],
        plan: &Plan,
        carries: &[Tensor],
        outs: &[NodeId],
    ) -> Res<()> {
        let py = self.py;
        for (i, &k) in plan.carries.iter().enumerate() {
            let old = get_slot(f, k)
                .and_then(|v| v.obj)
                .expect("carried slots hold objects");
            let arr = convert::to_numpy(py, &carries[i])?;
            let same_object = s.iter().all(|x| x.objs[k] == s[3].objs[k]);
            if same_object && old.is_instance(&self.r.ndarray)? {
                // an array updated in place: it stays the same object (other names for it
                // see the new values too)
                old.set_item(py.Ellipsis(), &arr)?;
                self.update(&old, outs[i])?;
                continue;
            }
            let obj = if old.is_instance(&self.r.ndarray)? {
                arr
            } else if old.is_exact_instance_of::<PyFloat>() {
                PyFloat::new(py, carries[i].data[0]).into_any()
            } else {
                arr.get_item(pyo3::types::PyTuple::empty(py))?
            };
            let v = self.track(obj, outs[i])?;
            set_slot(f, k, v);
        }
        Ok(())
    }

    /// Python scalar slots get their values after `trips` more iterations, and a `range`
    /// iterator skips them.
    fn advance(&mut self, f: &mut Frame<'py>, plan: &Plan, trips: usize, is_for: bool) -> Res<()> {
        let py = self.py;
        for sc in &plan.scalars {
            let obj = match sc.last {
                Slot::Int(i) => (i + (sc.step * trips as f64) as i64)
                    .into_pyobject(py)?
                    .into_any(),
                Slot::Float(x) => PyFloat::new(py, x + sc.step * trips as f64).into_any(),
                _ => unreachable!("scalar slots hold numbers"),
            };
            set_slot(f, sc.slot, Val::new(obj));
        }
        if is_for {
            let it = f
                .stack
                .last()
                .and_then(|v| v.obj.clone())
                .expect("the iterator");
            let itertools = py.import("itertools")?;
            let skip = itertools.call_method1("islice", (&it, trips, trips))?;
            self.r.builtins.getattr("next")?.call1((skip, py.None()))?;
        }
        Ok(())
    }

    /// Builds the body, runs the remaining iterations on it and puts the loop node's
    /// results into the frame. Returns false (changing nothing) when no iteration could be
    /// rolled.
    fn roll_loop(
        &mut self,
        f: &mut Frame<'py>,
        code: &Code<'py>,
        header: usize,
        s: &[Snap],
        plan: Plan,
    ) -> Res<bool> {
        let py = self.py;
        let base = s[2].nodes;
        let is_for = code.instrs[header].op == Opc::ForIter;
        let Some(most) = self.trip_bound(f, is_for, s, &plan)? else {
            return Ok(false);
        };
        // Operands: carries, xs (with `most` rows), invariants.
        let mut invs: Vec<NodeId> = vec![];
        let mut inv_at: HashMap<NodeId, usize> = HashMap::new();
        let mut note_inv = |n: NodeId| {
            inv_at.entry(n).or_insert_with(|| {
                invs.push(n);
                invs.len() - 1
            });
        };
        // (a varying slice's source is an operand of its xs, not of the body)
        let plain_refs = plan
            .refs
            .iter()
            .zip(&plan.kinds)
            .filter(|(_, k)| matches!(k, Kind::Plain))
            .flat_map(|(r, _)| r);
        for r in plain_refs
            .chain(&plan.next)
            .chain(plan.appends.iter().map(|a| &a.1))
            .chain(plan.guards.iter().map(|g| &g.0))
        {
            if let Ref::Inv(n) = r {
                note_inv(*n);
            }
        }
        let mut carry_nodes: Vec<NodeId> = plan
            .carries
            .iter()
            .map(|&k| match s[3].slots[k] {
                Slot::Node(n) => n,
                _ => unreachable!("carried slots hold nodes"),
            })
            .collect();
        // (the implicit carries start from their values in the last observed iteration)
        carry_nodes.extend(plan.prev.iter().map(|&p| NodeId((base + p) as u32)));
        let xs_nodes = stacked_xs(self, &plan.kinds, most)?;
        let (body, writes) =
            self.build_body(code, &plan, base, &carry_nodes, &xs_nodes, &invs, &inv_at)?;
        let (nw, na) = (writes.len(), plan.appends.len());
        // Concrete values: carries from the frame, xs and invariants from the graph.
        let nc = plan.carries.len() + plan.prev.len();
        let mut carries: Vec<Tensor> = vec![];
        for &k in &plan.carries {
            let Some(obj) = get_slot(f, k).and_then(|v| v.obj) else {
                return Ok(false);
            };
            carries.push(convert::to_tensor(&obj)?);
        }
        let inputs: Vec<Tensor> = self
            .input_objs
            .iter()
            .map(|o| convert::to_tensor(o))
            .collect::<PyResult<_>>()?;
        let prev_nodes = &carry_nodes[plan.carries.len()..];
        let want: Vec<NodeId> = xs_nodes
            .iter()
            .chain(&invs)
            .chain(prev_nodes)
            .copied()
            .collect();
        // (the fast path: the rolled iterations compute what the compiled loop will)
        let mut vals = match Program::compile(&self.g, &want).and_then(|p| p.run(&inputs)) {
            Ok(v) => v,
            Err(_) => return Ok(false),
        };
        carries.extend(vals.drain(xs_nodes.len() + invs.len()..));
        let (xs_vals, inv_vals) = vals.split_at(xs_nodes.len());
        let types: Vec<(Vec<usize>, DType)> =
            carries.iter().map(|t| (t.shape.clone(), t.dtype)).collect();
        let expected: Vec<&Tensor> = plan.guards.iter().map(|g| &g.1).collect();
        let run = Chunks {
            body: &body,
            nc,
            ny: nw + na,
            expected: &expected,
            xs: xs_vals,
            invs: inv_vals,
        };
        let Some((trips, cur, written)) =
            run.until_a_guard_fails(py, carries.into_iter().map(|t| t.data).collect(), most)?
        else {
            return Ok(false);
        };
        let carries: Vec<Tensor> = types
            .into_iter()
            .zip(cur)
            .map(|((shape, dt), data)| Tensor::new(dt, shape, data))
            .collect();
        if trips == 0 {
            return Ok(false);
        }
        if !is_for && trips == max_trips() {
            return super::unsupported(format!(
                "the loop at {} ran {trips} iterations without its exit condition changing; \
                 raise AUTODIFF_MAX_LOOP_TRIPS if it really needs more",
                self.loc()
            ));
        }
        // The loop node.
        let xs_nodes = if trips == most {
            xs_nodes
        } else {
            stacked_xs(self, &plan.kinds, trips)?
        };
        let mut operands = carry_nodes.clone();
        operands.extend(&xs_nodes);
        operands.extend(&invs);
        let spec = LoopSpec::new(body, nc, xs_nodes.len(), trips, false)?;
        let outs = self.g.add_loop(spec, operands)?;
        for (j, (_, expected, why)) in plan.guards.iter().enumerate() {
            let stacked = outs[nc + nw + na + j];
            let mut shape = vec![trips];
            shape.extend_from_slice(&expected.shape);
            let e = self.g.constant(expected.clone());
            let e = self.g.cast(e, self.g.dtype(stacked))?;
            let e = self.g.broadcast(e, &shape)?;
            let same = self.g.binary(BinaryOp::Eq, stacked, e)?;
            let same = self.g.cast(same, DType::F64)?;
            let axes: Vec<usize> = (0..shape.len()).collect();
            let count = self.g.sum(same, &axes)?;
            let total = (trips * expected.data.len()) as f64;
            let total = PyFloat::new(py, total).into_any();
            self.guard(
                count,
                &total,
                &format!("{why} (in {trips} rolled iterations)"),
            )?;
        }
        self.set_carries(f, s, &plan, &carries, &outs)?;
        for (w, &p) in writes.iter().enumerate() {
            let Kind::Write {
                slot,
                dims,
                axis,
                step,
            } = &plan.kinds[p]
            else {
                unreachable!("a write")
            };
            self.write_rows(
                f,
                s,
                *slot,
                dims,
                *axis,
                *step,
                trips,
                outs[nc + w],
                &written[w],
            )?;
        }
        for (q, (list, _)) in plan.appends.iter().enumerate() {
            self.append_rows(f, *list, outs[nc + nw + q], trips, &written[nw + q])?;
        }
        self.advance(f, &plan, trips, is_for)?;
        if plan.verify {
            self.needs_plain_check = true;
        }
        self.rolled_loops += 1;
        Ok(true)
    }
}

impl<'py> Tracer<'py> {
    /// Puts the stacked values of a rolled `out[i] = v` into the array of `slot`: one
    /// `SetSlice` in the graph, and the same write into the real array.
    #[allow(clippy::too_many_arguments)]
    fn write_rows(
        &mut self,
        f: &Frame<'py>,
        s: &[Snap],
        slot: usize,
        dims: &[SliceDim],
        axis: usize,
        step: i64,
        trips: usize,
        stacked: NodeId,
        values: &[f64],
    ) -> Res<()> {
        let py = self.py;
        let Slot::Node(before) = s[3].slots[slot] else {
            unreachable!("a written slot holds a node")
        };
        let mut region = dims.to_vec();
        region[axis] = SliceDim {
            start: (dims[axis].start as i64 + step) as usize,
            step,
            len: trips,
        };
        // [trips] ++ row (length 1 on `axis`) -> the region's shape
        let rank = dims.len();
        let mut perm: Vec<usize> = (1..=rank).collect();
        perm.insert(axis + 1, 0);
        let lens: Vec<usize> = region.iter().map(|d| d.len).collect();
        let moved = self.g.transpose(stacked, &perm)?;
        let value = self.g.reshape(moved, &lens)?;
        let node = self
            .g
            .add(Op::SetSlice(region.clone()), vec![before, value])?;
        // the real array
        let obj = get_slot(f, slot)
            .and_then(|v| v.obj)
            .expect("a written slot holds an array");
        let np = &self.r.np;
        let mut shape = vec![trips];
        shape.extend(dims.iter().map(|d| d.len));
        let dt = self.g.dtype(stacked);
        let vals = convert::to_numpy(py, &Tensor::new(dt, shape, values.to_vec()))?;
        let vals = np
            .call_method1("moveaxis", (vals, 0, axis + 1))?
            .call_method1("reshape", (lens,))?;
        let slices = region
            .iter()
            .map(|d| {
                let start = d.start as i64;
                let stop = start + d.step * d.len as i64;
                let stop = if stop < 0 {
                    py.None().into_bound(py)
                } else {
                    stop.into_pyobject(py)?.into_any()
                };
                self.r
                    .builtins
                    .getattr("slice")?
                    .call1((start, stop, d.step))
            })
            .collect::<PyResult<Vec<_>>>()?;
        obj.set_item(pyo3::types::PyTuple::new(py, slices)?, vals)?;
        self.update(&obj, node)
    }
}

impl<'py> Tracer<'py> {
    /// Appends the rows of a rolled `ys.append(v)` to the list (held by a slot of `f`):
    /// one object per row, each the row of the stacked output.
    fn append_rows(
        &mut self,
        f: &Frame<'py>,
        list: usize,
        stacked: NodeId,
        trips: usize,
        values: &[f64],
    ) -> Res<()> {
        let py = self.py;
        let held = f
            .locals
            .iter()
            .flatten()
            .chain(f.stack.iter())
            .find_map(|v| {
                v.obj
                    .as_ref()
                    .filter(|o| o.as_ptr() as usize == list)
                    .cloned()
            });
        let Some(l) = held else {
            return super::unsupported("internal: a rolled loop appended to a list no local holds");
        };
        let l = l
            .downcast_into::<pyo3::types::PyList>()
            .map_err(PyErr::from)?;
        let like_array = l
            .get_item(l.len().saturating_sub(1))
            .map(|o| o.is_instance(&self.r.ndarray).unwrap_or(true))
            .unwrap_or(true);
        let shape: Vec<usize> = self.g.shape(stacked)[1..].to_vec();
        let dt = self.g.dtype(stacked);
        let row: usize = shape.iter().product();
        let rank = shape.len();
        for t in 0..trips {
            let mut dims = vec![SliceDim {
                start: t,
                step: 1,
                len: 1,
            }];
            dims.extend(shape.iter().map(|&n| SliceDim {
                start: 0,
                step: 1,
                len: n,
            }));
            let sl = self.g.slice(stacked, dims)?;
            let node = self.g.reshape(sl, &shape)?;
            let arr = convert::to_numpy(
                py,
                &Tensor::new(dt, shape.clone(), values[t * row..(t + 1) * row].to_vec()),
            )?;
            let obj = if like_array || rank > 0 {
                arr
            } else {
                arr.get_item(pyo3::types::PyTuple::empty(py))?
            };
            let v = self.track(obj, node)?;
            l.append(v.obj())?;
        }
        Ok(())
    }
}

/// Runs a body's iterations in chunks of loop nodes (the compiled loop, no per-iteration
/// call), checking each iteration's guard outcomes.
struct Chunks<'a> {
    body: &'a Graph,
    nc: usize,
    /// Stacked per-iteration outputs kept (writes and appends), after the carries.
    ny: usize,
    /// The guard outcomes each iteration must reproduce (outputs after the ys).
    expected: &'a [&'a Tensor],
    xs: &'a [Tensor],
    invs: &'a [Tensor],
}

/// The iterations run and the final carries and stacked ys (row-major data).
type Rolled = (usize, Vec<Vec<f64>>, Vec<Vec<f64>>);

impl Chunks<'_> {
    /// A program running `trips` iterations: inputs carries, xs rows `[trips]`, invariants;
    /// outputs the loop's results.
    fn program(&self, trips: usize) -> Option<Program> {
        let b = self.body;
        let mut g = Graph::new();
        let mut ops = vec![];
        for (k, &i) in b.inputs.iter().enumerate() {
            let mut shape = b.shape(i).clone();
            if k >= self.nc && k < self.nc + self.xs.len() {
                shape.insert(0, trips);
            }
            ops.push(g.add_input(&format!("i{k}"), shape, b.dtype(i)));
        }
        let spec = LoopSpec::new(b.clone(), self.nc, self.xs.len(), trips, false).ok()?;
        let outs = g.add_loop(spec, ops).ok()?;
        g.outputs = outs.clone();
        Program::compile(&g, &outs).ok()
    }

    /// Runs up to `most` iterations from `carries`, stopping before the first whose guard
    /// outcomes differ (or that fails to evaluate). `None` when not even one ran.
    fn until_a_guard_fails(
        &self,
        py: Python<'_>,
        carries: Vec<Vec<f64>>,
        most: usize,
    ) -> Res<Option<Rolled>> {
        let (nc, ny) = (self.nc, self.ny);
        let mut cur = carries;
        let mut ys: Vec<Vec<f64>> = vec![vec![]; ny];
        let mut trips = 0;
        let mut chunk = 8usize;
        let mut cache: Vec<(usize, Program)> = vec![];
        while trips < most {
            let n = chunk.min(most - trips);
            if !cache.iter().any(|(k, _)| *k == n) {
                let Some(p) = self.program(n) else { break };
                cache.push((n, p));
            }
            let prog = &cache.iter().find(|(k, _)| *k == n).expect("compiled").1;
            let outs = {
                let mut ins: Vec<&[f64]> = cur.iter().map(|v| v.as_slice()).collect();
                for x in self.xs {
                    let row: usize = x.shape[1..].iter().product();
                    ins.push(&x.data[trips * row..(trips + n) * row]);
                }
                ins.extend(self.invs.iter().map(|v| v.data.as_slice()));
                prog.run_f64(&ins)
            };
            // the first iteration of the chunk whose guards differ (or all held)
            let held = match &outs {
                Ok(o) => (0..n)
                    .find(|&t| {
                        self.expected.iter().zip(&o[nc + ny..]).any(|(e, v)| {
                            let m = e.data.len();
                            v[t * m..(t + 1) * m]
                                .iter()
                                .zip(&e.data)
                                .any(|(a, b)| a.to_bits() != b.to_bits())
                        })
                    })
                    .unwrap_or(n),
                Err(_) => 0,
            };
            if held < n {
                // run the iterations that held alone (a failing evaluation may come later
                // in the chunk), then stop
                if held > 0 && n > 1 {
                    let rest = self.slice_xs_from(trips);
                    let sub = Chunks { xs: &rest, ..*self };
                    if let Some((k, c, y)) = sub.until_a_guard_fails(py, cur.clone(), held)? {
                        trips += k;
                        cur = c;
                        for (a, b) in ys.iter_mut().zip(y) {
                            a.extend(b);
                        }
                    }
                }
                break;
            }
            let mut outs = outs.expect("held");
            for (a, b) in ys.iter_mut().zip(&outs[nc..nc + ny]) {
                a.extend_from_slice(b);
            }
            outs.truncate(nc);
            cur = outs;
            trips += n;
            chunk = (chunk * 2).min(4096);
            // other threads (a timer raising SIGINT) get the GIL, then signals run
            super::poll_others(py)?;
        }
        Ok((trips > 0).then_some((trips, cur, ys)))
    }

    /// The xs from row `t` on.
    fn slice_xs_from(&self, t: usize) -> Vec<Tensor> {
        self.xs
            .iter()
            .map(|x| {
                let row: usize = x.shape[1..].iter().product();
                let mut shape = x.shape.clone();
                shape[0] -= t;
                Tensor::new(x.dtype, shape, x.data[t * row..].to_vec())
            })
            .collect()
    }
}

/// Iterations left in the `range` iterator on top of a `for` loop's stack (`None` for any
/// other iterator).
fn range_left(f: &Frame<'_>) -> Res<Option<usize>> {
    match f.stack.last().and_then(|v| v.obj.as_ref()) {
        Some(it) if super::type_name(it) == "range_iterator" => {
            Ok(Some(it.call_method0("__length_hint__")?.extract()?))
        }
        _ => Ok(None),
    }
}

fn get_slot<'py>(f: &Frame<'py>, k: usize) -> Option<Val<'py>> {
    if k < f.locals.len() {
        f.locals[k].clone()
    } else {
        f.stack.get(k - f.locals.len()).cloned()
    }
}

/// The stacked per-iteration inputs of `trips` rolled iterations: each growing constant
/// as one constant, each moving slice as a strided slice with the iteration axis first.
fn stacked_xs(t: &mut Tracer<'_>, kinds: &[Kind], trips: usize) -> Res<Vec<NodeId>> {
    let mut xs = vec![];
    for k in kinds {
        match k {
            Kind::Plain | Kind::Write { .. } | Kind::Recur { .. } | Kind::Same { .. } => {}
            Kind::Const { last, step } => {
                let row = last.data.len();
                let mut data = Vec::with_capacity(row * trips);
                for it in 1..=trips {
                    data.extend((0..row).map(|i| last.data[i] + step[i] * it as f64));
                }
                let mut shape = vec![trips];
                shape.extend_from_slice(&last.shape);
                xs.push(t.g.constant(Tensor::new(last.dtype, shape, data)));
            }
            Kind::Slice {
                src,
                dims,
                axis,
                step,
            } => {
                let mut d = dims.clone();
                d[*axis] = SliceDim {
                    start: (dims[*axis].start as i64 + step) as usize,
                    step: *step,
                    len: trips,
                };
                let sl = t.g.slice(*src, d)?;
                let rank = dims.len();
                let mut perm = vec![*axis];
                perm.extend((0..rank).filter(|&a| a != *axis));
                let tr = t.g.transpose(sl, &perm)?;
                let mut shape = vec![trips];
                shape.extend(dims.iter().map(|x| x.len));
                xs.push(t.g.reshape(tr, &shape)?);
            }
        }
    }
    Ok(xs)
}

fn set_slot<'py>(f: &mut Frame<'py>, k: usize, v: Val<'py>) {
    if k < f.locals.len() {
        f.locals[k] = Some(v);
    } else {
        let i = k - f.locals.len();
        f.stack[i] = v;
    }
}

/// The common difference of an arithmetic sequence (exact for integers, within a few
/// ulps for floats), or `None`.
fn linear(v: &[f64]) -> Option<f64> {
    let step = v[1] - v[0];
    let scale = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for w in v.windows(2) {
        let d = w[1] - w[0];
        if !d.is_finite() || (d - step).abs() > 4.0 * f64::EPSILON * scale {
            return None;
        }
    }
    Some(step)
}

/// Does the loop's code (instructions `header..=from`) read local `k`?
fn reads_local(code: &Code<'_>, header: usize, from: usize, k: usize) -> bool {
    let (lo, hi) = (header.min(from), header.max(from));
    let body = &code.instrs[lo..=hi.min(code.instrs.len() - 1)];
    // `k += c` (or `-=`) reads k only to count it on: nothing else sees the value
    let counts_itself = |j: usize| {
        matches!(
            (body.get(j + 1), body.get(j + 2), body.get(j + 3)),
            (Some(c), Some(b), Some(s))
                if c.op == Opc::LoadConst
                    && b.op == Opc::BinaryOp
                    && matches!(b.arg, 13 | 23) // +=, -=
                    && s.op == Opc::StoreFast
                    && s.arg as usize == k
        )
    };
    body.iter().enumerate().any(|(j, ins)| {
        let a = ins.arg as usize;
        match ins.op {
            Opc::LoadFast | Opc::LoadFastCheck => a == k && !counts_itself(j),
            Opc::LoadFastAndClear | Opc::DeleteFast => a == k,
            Opc::LoadFastLoadFast => a >> 4 == k || a & 15 == k,
            Opc::StoreFastLoadFast => a & 15 == k,
            Opc::LoadClosure | Opc::MakeCell | Opc::LoadDeref => a == k,
            _ => false,
        }
    })
}
