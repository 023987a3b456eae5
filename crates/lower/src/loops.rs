//! `Op::Loop` lowered: the body graph is compiled once, at plan time, into a [`Program`]
//! of its own (the same lowering, recursively, so loops nest), and run once per iteration
//! on the calling thread (its large kernels may still split across the pool, as in any
//! program).
//!
//! One execution of a loop step:
//! - takes one arena (buffers) for the body from the body program's pool, and two buffers
//!   per carry from the step's own pool; nothing is allocated per iteration (nor, once
//!   the pools are filled, per execution);
//! - feeds the body's inputs in place: iteration 0 reads the initial carries from the
//!   loop's operands, later iterations the buffer the previous one wrote; each xs input is
//!   row `t` of its stacked operand (a slice, never copied); invariants are the operands;
//! - points the body's outputs at their destinations: an output that is a whole dense
//!   slot of the body (no other output shares it) is written by its kernel straight into
//!   the next carry buffer, or into row `t` of its stacked result inside the packed
//!   output; any other output (a view, a constant, an input passed through, a slot shared
//!   by two outputs) is gathered there after the body ran;
//! - a ys that is a carry itself (the carry before the step: what a gradient's forward
//!   loop stores) costs no copy: that carry lives in the ys rows, each iteration writing
//!   the next carry straight into the row the next iteration reads (the last one into a
//!   carry buffer);
//! - swaps each carry's two buffers (no copy), and at the end writes the final carries
//!   into the packed output.
//!
//! Cost per iteration beyond the body's kernels: setting a few pointers and running the
//! body program's schedule (~30-40 ns on the development machine for a one-kernel body;
//! `examples/loops.rs` measures it).
//!
//! Guarantees: the packed value equals `autodiff_exec::run_loop`'s (bit for bit where the
//! body's program equals the reference; the body's values are those of its own `Program`,
//! so the crate's tolerance for transcendental functions and GEMM applies per iteration);
//! iterations run in the order of the spec (`reverse` too); zero trips give the initial
//! carries and empty ys; an error in the body stops the loop with the iteration named.
//!
//! The cast to the pack dtype is exact and free: the pack dtype is float32 only when every
//! output is float32 (already rounded by the body), and float64 holds every bool, int64
//! (below 2^53) and float32 value exactly; the packed output is still rounded once at the
//! end, which changes no value.

use autodiff_ir::{DType, LoopSpec};

use crate::fused::SendPtr;
use crate::kernels::Src;
use crate::view::{gather_strided, Loc};
use crate::{Env, Program};

/// Where one body output goes after each iteration.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dest {
    /// The output is a whole body slot: the slot is pointed at the destination.
    Slot(usize),
    /// The output is gathered from the body's buffers into the destination.
    Gather,
    /// A ys that is carry `k` itself, already in place (see `LoopStep::carry_row`).
    InPlace,
}

/// A planned loop node (see the module docs).
pub(crate) struct LoopStep {
    pub body: Program,
    /// The operands, dense row-major: carries, stacked xs, invariants.
    pub args: Vec<Src>,
    n_carry: usize,
    n_xs: usize,
    trips: usize,
    reverse: bool,
    pack: DType,
    /// Elements of each body output (a carry, or one row of a ys).
    sizes: Vec<usize>,
    /// Offset of each result in the packed output.
    offs: Vec<usize>,
    /// The outputs written through a body slot (output, slot), and those gathered.
    slots: Vec<(usize, usize)>,
    gathers: Vec<usize>,
    /// Elements of one row of each xs.
    row_len: Vec<usize>,
    /// Per carry: the ys (body output index) whose rows hold it, if one is the carry.
    carry_row: Vec<Option<usize>>,
    /// Sets of carry buffers (two per carry), reused across executions like the arenas
    /// (a loop nested in a loop runs once per outer iteration).
    carry_pool: std::sync::Mutex<Vec<Vec<Vec<f64>>>>,
    /// The packed output (a slot of the enclosing program) and its length.
    pub out: Loc,
    pub n: usize,
}

impl LoopStep {
    /// Compiles the body of `spec`; `args` are the node's operands.
    pub fn new(spec: &LoopSpec, args: Vec<Src>, out: Loc) -> Result<LoopStep, crate::LowerError> {
        let b = &spec.body;
        let nc = spec.n_carry;
        let body = Program::compile(b, &b.outputs)
            .map_err(|e| crate::LowerError(format!("loop body: {e}")))?;
        let (offs, n) = spec.offsets();
        let sizes: Vec<usize> = b.outputs.iter().map(|&o| b.node(o).size()).collect();
        let outs = &body.outputs;
        // row-major and dense from the buffer's start (a 0-d or one-element value too)
        let dense = |o: &crate::OutSpec| {
            o.offset == 0 && (o.cshape.is_empty() || (o.cshape.len() == 1 && o.cstrides[0] == 1))
        };
        let mut carry_row = vec![None; nc];
        let dests: Vec<Dest> = outs
            .iter()
            .enumerate()
            .map(|(k, o)| {
                let shared = outs.iter().filter(|p| p.loc == o.loc).count() > 1;
                match o.loc {
                    Loc::Slot(s)
                        if dense(o)
                            && !shared
                            && sizes[k] > 0
                            && body.slot_sizes[s as usize] == sizes[k] =>
                    {
                        Dest::Slot(s as usize)
                    }
                    Loc::Input(c)
                        if k >= nc
                            && (c as usize) < nc
                            && sizes[k] == sizes[c as usize]
                            && dense(o)
                            && carry_row[c as usize].is_none() =>
                    {
                        carry_row[c as usize] = Some(k);
                        Dest::InPlace
                    }
                    _ => Dest::Gather,
                }
            })
            .collect();
        let slots = (dests.iter().enumerate())
            .filter_map(|(k, d)| match *d {
                Dest::Slot(s) => Some((k, s)),
                Dest::Gather | Dest::InPlace => None,
            })
            .collect();
        let gathers = (0..dests.len())
            .filter(|&k| dests[k] == Dest::Gather)
            .collect();
        let row_len = body.input_types[nc..nc + spec.n_xs]
            .iter()
            .map(|(s, _)| s.iter().product())
            .collect();
        Ok(LoopStep {
            body,
            slots,
            gathers,
            row_len,
            args,
            n_carry: nc,
            n_xs: spec.n_xs,
            trips: spec.trips,
            reverse: spec.reverse,
            pack: spec.pack_dtype(),
            sizes,
            offs,
            carry_row,
            carry_pool: Default::default(),
            out,
            n,
        })
    }

    /// Iterations per execution.
    pub fn trips(&self) -> usize {
        self.trips
    }

    /// Runs the loop, writing the packed value into `out` (`self.n` elements).
    ///
    /// # Safety
    /// `env` resolves every operand to a live buffer covering it, not written during the
    /// call; `out` is valid for writes of `self.n` elements and overlaps no operand.
    pub unsafe fn run(&self, env: &Env, out: &mut [f64]) -> Result<(), String> {
        let (nc, nx, trips) = (self.n_carry, self.n_xs, self.trips);
        let body = &self.body;
        // the body's inputs: carries, xs rows (set per iteration), invariants
        let mut ins: Vec<&[f64]> = self.args.iter().map(|&s| env.slice(s)).collect();
        let stacked: Vec<*const f64> = ins[nc..nc + nx].iter().map(|x| x.as_ptr()).collect();
        // two buffers per carry (the one read this iteration, the one written), addressed
        // by raw pointer only: `ins` points into one while a kernel writes the other
        let mut bufs: Vec<Vec<f64>> = match self.carry_pool.lock().map(|mut p| p.pop()) {
            Ok(Some(b)) => b,
            _ => (0..2 * nc).map(|k| vec![0.0; self.sizes[k / 2]]).collect(),
        };
        let cbuf: Vec<*mut f64> = bufs.iter_mut().map(|b| b.as_mut_ptr()).collect();
        let out_ptr = out.as_mut_ptr();
        let order = |i: usize| if self.reverse { trips - 1 - i } else { i };
        let row = |k: usize, t: usize| out_ptr.add(self.offs[k] + t * self.sizes[k]);
        let mut res = Ok(());
        if trips > 0 {
            // a carry kept in the rows of a ys starts in the first iteration's row
            for (k, r) in self.carry_row.iter().enumerate() {
                if let Some(j) = *r {
                    let dst = row(j, order(0));
                    std::ptr::copy_nonoverlapping(ins[k].as_ptr(), dst, self.sizes[k]);
                    ins[k] = std::slice::from_raw_parts(dst, self.sizes[k]);
                }
            }
            let mut arena = body.take_arena();
            let mut ptrs = arena.ptrs.clone();
            let scratch = SendPtr(arena.scratch.as_mut_ptr());
            let scratch_len = arena.scratch.len();
            let mut next = 0usize;
            // where carry k's next value goes: the next iteration's row when the carry lives
            // in a ys, else the buffer not read now
            let carry_dst = |k: usize, i: usize, next: usize| match self.carry_row[k] {
                Some(j) if i + 1 < trips => row(j, order(i + 1)),
                _ => cbuf[2 * k + next],
            };
            for i in 0..trips {
                let t = order(i);
                for j in 0..nx {
                    let r = self.row_len[j];
                    ins[nc + j] = std::slice::from_raw_parts(stacked[j].add(t * r), r);
                }
                for &(k, s) in &self.slots {
                    ptrs[s] = SendPtr(if k < nc {
                        carry_dst(k, i, next)
                    } else {
                        row(k, t)
                    });
                }
                let env = Env {
                    inputs: &ins,
                    consts: &body.consts,
                    slots: &ptrs,
                    scratch,
                    scratch_len,
                };
                if let Err(e) = body.execute(&env) {
                    res = Err(format!("loop iteration {t}: {}", e.0));
                    break;
                }
                for &k in &self.gathers {
                    let o = &body.outputs[k];
                    let dst = if k < nc {
                        carry_dst(k, i, next)
                    } else {
                        row(k, t)
                    };
                    let src = env.ptr(o.loc);
                    // debug builds check the gather reads nothing it writes
                    if cfg!(debug_assertions) && self.sizes[k] > 0 {
                        let (mut lo, mut hi) = (o.offset, o.offset);
                        for (&n, &st) in o.cshape.iter().zip(&o.cstrides) {
                            let e = (n as isize - 1) * st;
                            lo += e.min(0);
                            hi += e.max(0);
                        }
                        let last = dst.add(self.sizes[k] - 1) as *const f64;
                        assert!(
                            src.offset(hi) < dst || last < src.offset(lo),
                            "loop output {k} overlaps its destination"
                        );
                    }
                    let dst = std::slice::from_raw_parts_mut(dst, self.sizes[k]);
                    gather_strided(src, o.offset, &o.cshape, &o.cstrides, 0, dst);
                }
                // the values just written are the carries read next
                for (k, x) in ins[..nc].iter_mut().enumerate() {
                    *x = std::slice::from_raw_parts(carry_dst(k, i, next), self.sizes[k]);
                }
                next ^= 1;
            }
            body.recycle(arena);
        }
        if res.is_ok() {
            // the final carries (the initial ones after zero trips)
            for (k, c) in ins[..nc].iter().enumerate() {
                std::slice::from_raw_parts_mut(row(k, 0), self.sizes[k]).copy_from_slice(c);
            }
            self.pack.round_all(out);
        }
        drop(ins);
        if let Ok(mut p) = self.carry_pool.lock() {
            p.push(bufs);
        }
        res
    }
}
