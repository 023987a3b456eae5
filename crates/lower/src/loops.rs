//! `Op::Loop` lowered: the body graph is compiled once, at plan time, into a [`Program`]
//! of its own (the same lowering, recursively, so loops nest), and run once per iteration
//! on the calling thread (its large kernels may still split across the pool, as in any
//! program).
//!
//! One execution of a loop step:
//! - takes one arena (buffers) for the body from the body program's pool, and two buffers
//!   per carry; nothing is allocated per iteration;
//! - feeds the body's inputs in place: iteration 0 reads the initial carries from the
//!   loop's operands, later iterations the buffer the previous one wrote; each xs input is
//!   row `t` of its stacked operand (a slice, never copied); invariants are the operands;
//! - points the body's outputs at their destinations: an output that owns a whole slot of
//!   the body (see `OutSpec::take`) is written by its kernel straight into the next carry
//!   buffer, or into row `t` of its stacked result inside the packed output; any other
//!   output (a view, a constant, an input passed through, a slot shared by two outputs)
//!   is gathered there after the body ran;
//! - swaps each carry's two buffers (no copy), and at the end writes the final carries
//!   into the packed output.
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
#[derive(Clone, Copy, Debug)]
enum Dest {
    /// The output is a whole body slot: the slot is pointed at the destination.
    Slot(usize),
    /// The output is gathered from the body's buffers into the destination.
    Gather,
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
    dests: Vec<Dest>,
    /// The packed output (a slot of the enclosing program) and its length.
    pub out: Loc,
    pub n: usize,
}

impl LoopStep {
    /// Compiles the body of `spec`; `args` are the node's operands.
    pub fn new(spec: &LoopSpec, args: Vec<Src>, out: Loc) -> Result<LoopStep, crate::LowerError> {
        let b = &spec.body;
        let body = Program::compile(b, &b.outputs)
            .map_err(|e| crate::LowerError(format!("loop body: {e}")))?;
        let (offs, n) = spec.offsets();
        let sizes = b.outputs.iter().map(|&o| b.node(o).size()).collect();
        let dests = body
            .outputs
            .iter()
            .map(|o| match (o.take, o.loc) {
                (true, Loc::Slot(s)) => Dest::Slot(s as usize),
                _ => Dest::Gather,
            })
            .collect();
        Ok(LoopStep {
            body,
            args,
            n_carry: spec.n_carry,
            n_xs: spec.n_xs,
            trips: spec.trips,
            reverse: spec.reverse,
            pack: spec.pack_dtype(),
            sizes,
            offs,
            dests,
            out,
            n,
        })
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
        let row_len: Vec<usize> = body.input_types[nc..nc + nx]
            .iter()
            .map(|(s, _)| s.iter().product())
            .collect();
        // two buffers per carry (the one read this iteration, the one written), addressed
        // by raw pointer only: `ins` points into one while a kernel writes the other
        let mut bufs: Vec<Vec<f64>> = (0..2 * nc)
            .map(|k| vec![0.0; if trips > 0 { self.sizes[k / 2] } else { 0 }])
            .collect();
        let cbuf: Vec<*mut f64> = bufs.iter_mut().map(|b| b.as_mut_ptr()).collect();
        let out_ptr = out.as_mut_ptr();
        let mut res = Ok(());
        if trips > 0 {
            let mut arena = body.take_arena();
            let mut ptrs = arena.ptrs.clone();
            let scratch = SendPtr(arena.scratch.as_mut_ptr());
            let scratch_len = arena.scratch.len();
            let mut next = 0usize;
            for i in 0..trips {
                let t = if self.reverse { trips - 1 - i } else { i };
                for j in 0..nx {
                    let r = row_len[j];
                    ins[nc + j] = std::slice::from_raw_parts(stacked[j].add(t * r), r);
                }
                // destinations: the next carry buffers, row t of each ys
                for (k, d) in self.dests.iter().enumerate() {
                    if let Dest::Slot(s) = *d {
                        ptrs[s] = SendPtr(if k < nc {
                            cbuf[2 * k + next]
                        } else {
                            out_ptr.add(self.offs[k] + t * self.sizes[k])
                        });
                    }
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
                for (k, d) in self.dests.iter().enumerate() {
                    if let Dest::Gather = d {
                        let o = &body.outputs[k];
                        let n = self.sizes[k];
                        let dst = if k < nc {
                            cbuf[2 * k + next]
                        } else {
                            out_ptr.add(self.offs[k] + t * n)
                        };
                        let dst = std::slice::from_raw_parts_mut(dst, n);
                        gather_strided(env.ptr(o.loc), o.offset, &o.cshape, &o.cstrides, 0, dst);
                    }
                }
                // the buffers just written are the carries read next
                for (k, x) in ins[..nc].iter_mut().enumerate() {
                    *x = std::slice::from_raw_parts(cbuf[2 * k + next], self.sizes[k]);
                }
                next ^= 1;
            }
            body.recycle(arena);
        }
        if res.is_ok() {
            // the final carries (the initial ones after zero trips)
            for k in 0..nc {
                out[self.offs[k]..self.offs[k] + self.sizes[k]].copy_from_slice(ins[k]);
            }
            self.pack.round_all(out);
        }
        drop(ins);
        drop(bufs);
        res
    }
}
