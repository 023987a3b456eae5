//! Fused elementwise kernels: a tree (or DAG) of `Unary`/`Binary`/`Where`/`Cast` nodes
//! over strided leaves (inputs, constants, broadcasts, transposes, slices) compiled to a
//! register bytecode and evaluated over chunks of [`CHUNK`] elements ("vectorized
//! interpreter": each instruction runs over the whole chunk), so the group makes one pass
//! over memory and no intermediate is materialized. The result is stored, or folded by a
//! trailing reduction over a contiguous block of axes ([`Reducer`]).
//!
//! Order of operations: each element is computed with the same f64 operations and the same
//! per-node dtype rounding as the reference; reductions fold in the reference's order
//! (innermost reduced axis first, each fold from the op's identity), except a large
//! reduction of one kept row (≥ [`PAR_MIN`] elements), whose outermost reduced axis is cut
//! into blocks fixed by the shape, each folded in the reference's order, the partial folds
//! combined in block order. Where the cuts fall never depends on the thread count: results
//! are the same bits on any number of threads.

use autodiff_ir::scalar as special;
use autodiff_ir::{BinaryOp, DType, ReduceOp, UnaryOp};

use crate::view::{gather_strided, Loc};
use crate::vmath::{self, Func};
use crate::Env;

/// Elements per chunk (each register holds one chunk).
pub(crate) const CHUNK: usize = 256;

/// Minimum elements before a kernel is split into tasks (and run across threads).
pub const PAR_MIN: usize = 1 << 15;

/// Elements per task of a split kernel (a multiple of [`CHUNK`]).
pub(crate) const TASK: usize = 1 << 14;

/// At most this many partial folds per reduction split along its reduced axis.
const MAX_PARTS: usize = 64;

/// A register or leaf number in a kernel's bytecode (the top bit is [`DIRECT`]). Wide
/// enough for any graph that fits in memory: a kernel fusing a long unrolled loop can hold
/// hundreds of thousands of values (`Reg` once overflowed silently past 32k).
pub(crate) type Reg = u32;

/// The register number of SSA value or leaf `i`; refuses (panics, reported as an internal
/// error) rather than wrapping into another register.
pub(crate) fn reg(i: usize) -> Reg {
    match Reg::try_from(i) {
        Ok(r) if r & DIRECT == 0 => r,
        _ => panic!("fused kernel too large: {i} registers"),
    }
}

/// What an instruction computes into its destination register.
#[derive(Clone, Debug)]
pub(crate) enum InsKind {
    /// Leaf `l` (strided view) at the chunk's positions.
    Load(Reg),
    /// A constant.
    Imm(f64),
    /// A copy of a register (a `Cast`; the rounding does the conversion).
    Mov(Reg),
    Unary(UnaryOp, Reg),
    /// `int_pow`: an int64 `pow`, whose exponents must be non-negative.
    Binary(BinaryOp, Reg, Reg, bool),
    Where(Reg, Reg, Reg),
}

#[derive(Clone, Debug)]
pub(crate) struct Ins {
    pub dst: Reg,
    pub kind: InsKind,
    /// Rounded to this dtype after computing (no-op for float64).
    pub round: DType,
}

/// A strided leaf read by `Load` (or, when contiguous, directly through [`DIRECT`]).
#[derive(Clone, Debug)]
pub(crate) struct Leaf {
    pub loc: Loc,
    pub offset: isize,
    /// Collapsed shape/strides of the view in the group's shape.
    pub shape: Vec<usize>,
    pub strides: Vec<isize>,
}

/// A reduction of a contiguous block of axes: the group's elements are `(P, dims.., Q)`
/// row-major; the result `(P, Q)`.
#[derive(Clone, Debug)]
pub(crate) struct ReduceSpec {
    pub op: ReduceOp,
    pub p: usize,
    pub dims: Vec<usize>,
    pub q: usize,
}

#[derive(Clone, Debug)]
pub(crate) enum Sink {
    Store,
    Reduce(ReduceSpec),
}

#[derive(Clone, Debug)]
pub(crate) struct Fused {
    /// Elements of the group's shape.
    pub n: usize,
    /// Registers holding a constant for the whole kernel (filled once per sweep; no
    /// instruction writes them).
    pub imms: Vec<(Reg, f64)>,
    pub code: Vec<Ins>,
    pub leaves: Vec<Leaf>,
    pub n_regs: usize,
    /// The register holding the group's value.
    pub result: Reg,
    pub sink: Sink,
    /// Destination (a slot).
    pub out: Loc,
    /// Dtype rounding of a reduction's result.
    pub out_round: DType,
    /// The graph nodes fused here (for stats and errors).
    pub nodes: Vec<usize>,
    /// The last instruction writes straight into the output (off for in-place kernels).
    pub direct_store: bool,
    /// Other values of the group stored too (register, slot), chunk by chunk: a
    /// multi-output kernel (a value both stored and reduced, sibling groups).
    pub stores: Vec<(Reg, Loc)>,
    /// Every value is a float32 or a bool, every leaf too, and no operand is `DIRECT`:
    /// the kernel runs on float32 registers (`fused32`).
    pub f32: bool,
}

/// Operand bit: a contiguous leaf read in place at the chunk's position (no load).
pub(crate) const DIRECT: Reg = 1 << 31;

pub(crate) fn reduce_init(op: ReduceOp) -> f64 {
    match op {
        // Rust's float `Sum` starts from -0.0 (so that sum([-0.0]) == -0.0)
        ReduceOp::Sum => -0.0,
        ReduceOp::Prod => 1.0,
        ReduceOp::Max => f64::NEG_INFINITY,
        ReduceOp::Min => f64::INFINITY,
    }
}

#[inline(always)]
fn fold_into(op: ReduceOp, acc: &mut [f64], xs: &[f64]) {
    match op {
        ReduceOp::Sum => acc.iter_mut().zip(xs).for_each(|(a, &x)| *a += x),
        ReduceOp::Prod => acc.iter_mut().zip(xs).for_each(|(a, &x)| *a *= x),
        ReduceOp::Max => acc
            .iter_mut()
            .zip(xs)
            .for_each(|(a, &x)| *a = special::maximum(*a, x)),
        ReduceOp::Min => acc
            .iter_mut()
            .zip(xs)
            .for_each(|(a, &x)| *a = special::minimum(*a, x)),
    }
}

#[inline(always)]
fn fold_scalar(op: ReduceOp, mut acc: f64, xs: &[f64]) -> f64 {
    match op {
        ReduceOp::Sum => {
            for &x in xs {
                acc += x;
            }
        }
        ReduceOp::Prod => {
            for &x in xs {
                acc *= x;
            }
        }
        ReduceOp::Max => {
            for &x in xs {
                acc = special::maximum(acc, x);
            }
        }
        ReduceOp::Min => {
            for &x in xs {
                acc = special::minimum(acc, x);
            }
        }
    }
    acc
}

/// Folds a stream of elements `(P', dims.., Q)` (row-major, pushed in order) into
/// `out[(P', Q)]` with the reference's nesting: the innermost reduced axis is folded first;
/// each level's fold starts from the identity.
pub(crate) struct Reducer<'a> {
    op: ReduceOp,
    dims: &'a [usize],
    q: usize,
    cnt: Vec<usize>,
    /// `dims.len()` accumulators of width q.
    acc: Vec<f64>,
    qpos: usize,
    out: *mut f64,
    p: usize,
}

impl<'a> Reducer<'a> {
    /// # Safety
    /// `out` must have room for every output block that will be completed.
    pub unsafe fn new(op: ReduceOp, dims: &'a [usize], q: usize, out: *mut f64) -> Reducer<'a> {
        Reducer {
            op,
            dims,
            q,
            cnt: vec![0; dims.len()],
            acc: vec![reduce_init(op); dims.len() * q],
            qpos: 0,
            out,
            p: 0,
        }
    }

    pub fn push(&mut self, mut xs: &[f64]) {
        let d = self.dims.len();
        let q = self.q;
        let last = d - 1;
        while !xs.is_empty() {
            if q == 1 {
                // lane mode: a run of the innermost reduced axis folds into one scalar
                let take = (self.dims[last] - self.cnt[last]).min(xs.len());
                let a = &mut self.acc[last];
                *a = fold_scalar(self.op, *a, &xs[..take]);
                xs = &xs[take..];
                self.cnt[last] += take;
                if self.cnt[last] == self.dims[last] {
                    self.carry(last);
                }
            } else {
                let take = (q - self.qpos).min(xs.len());
                let base = last * q + self.qpos;
                fold_into(self.op, &mut self.acc[base..base + take], &xs[..take]);
                xs = &xs[take..];
                self.qpos += take;
                if self.qpos == q {
                    self.qpos = 0;
                    self.cnt[last] += 1;
                    if self.cnt[last] == self.dims[last] {
                        self.carry(last);
                    }
                }
            }
        }
    }

    /// Level `j` is complete: fold it into level `j - 1` (or emit it).
    fn carry(&mut self, mut j: usize) {
        let q = self.q;
        let init = reduce_init(self.op);
        loop {
            self.cnt[j] = 0;
            if j == 0 {
                // SAFETY: the caller of `new` guarantees room for each completed block.
                let dst = unsafe { std::slice::from_raw_parts_mut(self.out.add(self.p * q), q) };
                dst.copy_from_slice(&self.acc[..q]);
                self.acc[..q].fill(init);
                self.p += 1;
                return;
            }
            let (lo, hi) = self.acc.split_at_mut(j * q);
            fold_into(self.op, &mut lo[(j - 1) * q..], &hi[..q]);
            hi[..q].fill(init);
            self.cnt[j - 1] += 1;
            if self.cnt[j - 1] < self.dims[j - 1] {
                return;
            }
            j -= 1;
        }
    }
}

/// A raw pointer that may cross to worker threads (each thread touches disjoint ranges).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f64);
// SAFETY: a `SendPtr` is a plain address; moving it to another thread dereferences nothing.
// Every dereference is in an `unsafe` kernel whose contract makes it sound: arena slots and
// scratch live in the `Arena` taken for the whole run, and the threads of one kernel write
// disjoint ranges (the `[lo, hi)` task ranges of `Fused::run`, the kept-row ranges of
// `run_reduce`), while everything read during a step is not written by it.
unsafe impl Send for SendPtr {}
// SAFETY: as for `Send`: a shared `&SendPtr` only hands out a copy of the address.
unsafe impl Sync for SendPtr {}

impl Fused {
    /// Scratch (registers) the kernel needs on one thread.
    pub fn regs_len(&self) -> usize {
        if self.f32 {
            return self.regs_len32();
        }
        self.n_regs.max(1) * CHUNK
    }

    /// Computes the group's values at positions `[start, start + len)` (len ≤ CHUNK) into
    /// the registers (the last instruction into `out + start` instead, when `out` is not
    /// null); returns a pointer to the result's `len` values.
    ///
    /// # Safety
    /// `env` resolves every leaf to a live buffer that covers the leaf's view; `out`, when
    /// not null, has room for the chunk and aliases no leaf read directly.
    unsafe fn eval_chunk(
        &self,
        env: &Env,
        start: usize,
        len: usize,
        regs: &mut [f64],
        out: *mut f64,
    ) -> Result<*const f64, String> {
        match vmath::Isa::detect() {
            // SAFETY: the CPU has the features `detect` found.
            #[cfg(target_arch = "x86_64")]
            vmath::Isa::Avx512 => self.eval_chunk_avx512(env, start, len, regs, out),
            // SAFETY: likewise (`detect` only picks a path whose `available()` holds).
            #[cfg(target_arch = "x86_64")]
            vmath::Isa::Avx2 => self.eval_chunk_avx2(env, start, len, regs, out),
            _ => self.eval_chunk_body(vmath::Isa::Portable, env, start, len, regs, out),
        }
    }

    /// [`Self::eval_chunk`] with every loop compiled for AVX2 + FMA (plain arithmetic is
    /// never contracted to FMA, so the values are the same bits as on the portable path).
    ///
    /// # Safety
    /// Those of [`Self::eval_chunk`], and the CPU supports AVX2 and FMA (the caller checks
    /// with `vmath::Isa::detect`, which only returns a path whose `available()` holds).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn eval_chunk_avx2(
        &self,
        env: &Env,
        start: usize,
        len: usize,
        regs: &mut [f64],
        out: *mut f64,
    ) -> Result<*const f64, String> {
        self.eval_chunk_body(vmath::Isa::Avx2, env, start, len, regs, out)
    }

    /// [`Self::eval_chunk`] compiled for AVX-512F.
    ///
    /// # Safety
    /// Those of [`Self::eval_chunk`], and the CPU supports AVX-512F, AVX2 and FMA (checked
    /// by the caller through `vmath::Isa::detect`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn eval_chunk_avx512(
        &self,
        env: &Env,
        start: usize,
        len: usize,
        regs: &mut [f64],
        out: *mut f64,
    ) -> Result<*const f64, String> {
        self.eval_chunk_body(vmath::Isa::Avx512, env, start, len, regs, out)
    }

    /// The body of [`Self::eval_chunk`] (inlined into each `target_feature` variant).
    ///
    /// # Safety
    /// Those of [`Self::eval_chunk`], in full: `len ≤ CHUNK` and `start + len ≤ self.n`;
    /// `regs` holds at least [`Self::regs_len`] elements (register `r` is
    /// `regs[r·CHUNK..(r+1)·CHUNK]`, and the planner numbers registers below `n_regs`);
    /// every leaf's `loc` resolves in `env` to a live buffer in which the leaf's view
    /// (`offset`, `shape`, `strides`) is in bounds at every position in
    /// `[start, start + len)`, not written during the call; `out`, when not null, is valid
    /// for writes of `out[start..start + len]`, and that range overlaps no leaf read
    /// directly (a `DIRECT` register) nor `regs`.
    #[inline(always)]
    unsafe fn eval_chunk_body(
        &self,
        isa: vmath::Isa,
        env: &Env,
        start: usize,
        len: usize,
        regs: &mut [f64],
        out: *mut f64,
    ) -> Result<*const f64, String> {
        let base = regs.as_mut_ptr();
        let ptr = |r: Reg| -> *const f64 {
            if r & DIRECT != 0 {
                let l = &self.leaves[(r & !DIRECT) as usize];
                env.ptr(l.loc).offset(l.offset + start as isize)
            } else {
                base.add(r as usize * CHUNK)
            }
        };
        let reg = |r: Reg| std::slice::from_raw_parts(ptr(r), len);
        let last = self.code.len().wrapping_sub(1);
        for (t, ins) in self.code.iter().enumerate() {
            let dp = if t == last && !out.is_null() {
                out.add(start)
            } else {
                base.add(ins.dst as usize * CHUNK)
            };
            let d = std::slice::from_raw_parts_mut(dp, len);
            match ins.kind {
                InsKind::Load(l) => {
                    let leaf = &self.leaves[l as usize];
                    gather_strided(
                        env.ptr(leaf.loc),
                        leaf.offset,
                        &leaf.shape,
                        &leaf.strides,
                        start,
                        d,
                    );
                }
                InsKind::Imm(v) => d.fill(v),
                InsKind::Mov(a) => d.copy_from_slice(reg(a)),
                InsKind::Unary(u, a) => unary(isa, u, d, reg(a)),
                InsKind::Binary(b, x, y, int_pow) => {
                    let y = reg(y);
                    if int_pow && y.iter().any(|&e| e < 0.0) {
                        return Err("integers to negative integer powers are not allowed".into());
                    }
                    binary(b, d, reg(x), y)
                }
                InsKind::Where(c, x, y) => {
                    let (c, x, y) = (reg(c), reg(x), reg(y));
                    for i in 0..len {
                        d[i] = if c[i] != 0.0 { x[i] } else { y[i] };
                    }
                }
            }
            if ins.round != DType::F64 {
                ins.round.round_all(d);
            }
        }
        if !out.is_null() {
            return Ok(out.add(start));
        }
        Ok(ptr(self.result))
    }

    /// Evaluates flat positions `[lo, hi)` feeding each chunk to `sink` (with a direct
    /// store, the values are already in `out`).
    ///
    /// # Safety
    /// `lo ≤ hi ≤ self.n`; `env` resolves every leaf to a live buffer covering the leaf's
    /// view at every position in `[lo, hi)`, not written during the call except through
    /// `out` or by `sink`, and then only at positions already evaluated; `out`, when not
    /// null, is valid for writes of `out[lo..hi]` and overlaps no leaf read directly;
    /// `regs`, when given, holds at least [`Self::regs_len`] elements. (The slice handed
    /// to `sink` points into `regs`, a leaf or `out`, and is only valid during that call.)
    unsafe fn sweep(
        &self,
        env: &Env,
        lo: usize,
        hi: usize,
        regs: Option<&mut [f64]>,
        out: *mut f64,
        mut sink: impl FnMut(usize, &[f64]),
    ) -> Result<(), String> {
        let mut own;
        let regs = match regs {
            Some(r) => r,
            None => {
                own = vec![0.0; self.regs_len()];
                &mut own[..]
            }
        };
        // a chunk reads at most this many elements of a register (a tiny kernel, run once
        // per iteration of a loop, fills 10 elements, not 256)
        let width = (hi - lo).min(CHUNK);
        if self.f32 {
            let (base, _) = self.split32(regs);
            for &(r, v) in &self.imms {
                std::slice::from_raw_parts_mut(base.add(r as usize * CHUNK), width).fill(v as f32);
            }
            // the result widened straight into `out`, else into the last f64 temporary
            let spare = self.regs_len32() - CHUNK;
            let mut s = lo;
            while s < hi {
                let len = (hi - s).min(CHUNK);
                let v = self.eval_chunk32(env, s, len, regs)?;
                let dst = if out.is_null() {
                    regs.as_mut_ptr().add(spare)
                } else {
                    out.add(s)
                };
                self.finish_chunk32(env, regs.as_ptr() as *const f32, v, s, len, dst);
                sink(s, std::slice::from_raw_parts(dst, len));
                s += len;
            }
            return Ok(());
        }
        for &(r, v) in &self.imms {
            regs[r as usize * CHUNK..r as usize * CHUNK + width].fill(v);
        }
        let mut s = lo;
        while s < hi {
            let len = (hi - s).min(CHUNK);
            let v = self.eval_chunk(env, s, len, regs, out)?;
            for &(r, loc) in &self.stores {
                let src = regs.as_ptr().add(r as usize * CHUNK);
                std::ptr::copy_nonoverlapping(src, env.mut_ptr(loc).add(s), len);
            }
            sink(s, std::slice::from_raw_parts(v, len));
            s += len;
        }
        Ok(())
    }

    /// Runs the kernel (split across threads when large).
    ///
    /// Work is cut into tasks by the kernel's shape alone ([`TASK`] elements, or blocks of
    /// a reduced axis), never by the thread count; a reduction split into blocks combines
    /// the blocks' partial folds in block order. So a kernel gives the same bits on 1 or
    /// many threads (`tests::kernels_are_independent_of_thread_count`).
    ///
    /// # Safety
    /// `env` resolves every location to a live buffer; the output slot does not alias any
    /// leaf except with identical contiguous positions (in-place elementwise).
    pub unsafe fn run(&self, env: &Env) -> Result<(), String> {
        let out = SendPtr(env.mut_ptr(self.out));
        let big = self.n >= PAR_MIN;
        match &self.sink {
            Sink::Store => {
                let direct = if self.direct_store {
                    out.0
                } else {
                    std::ptr::null_mut()
                };
                let store = |s: usize, v: &[f64]| {
                    let o = out;
                    if !self.direct_store {
                        std::ptr::copy_nonoverlapping(v.as_ptr(), o.0.add(s), v.len());
                    }
                };
                if !big || crate::threads() == 1 {
                    let regs = Some(env.scratch(self.regs_len()));
                    return self.sweep(env, 0, self.n, regs, direct, store);
                }
                let direct = SendPtr(direct);
                let ranges: Vec<(usize, usize)> = (0..self.n.div_ceil(TASK))
                    .map(|t| (t * TASK, ((t + 1) * TASK).min(self.n)))
                    .collect();
                let res: Vec<Result<(), String>> = par_map(&ranges, |&(lo, hi)| {
                    let d = direct;
                    self.sweep(env, lo, hi, None, d.0, |s: usize, v: &[f64]| store(s, v))
                });
                res.into_iter().collect()
            }
            Sink::Reduce(spec) => self.run_reduce(env, spec, out, big),
        }
    }

    /// The `Sink::Reduce` half of [`Self::run`]: folds the group's values into `out`
    /// (`spec.p · spec.q` elements).
    ///
    /// # Safety
    /// Those of [`Self::run`]; `out` is `env`'s pointer for `self.out`, valid for writes of
    /// `spec.p · spec.q` elements and overlapping no leaf; `spec` is this kernel's
    /// (`self.n == spec.p · Π spec.dims · spec.q`); the calling thread is the only user of
    /// `env`'s scratch.
    unsafe fn run_reduce(
        &self,
        env: &Env,
        spec: &ReduceSpec,
        out: SendPtr,
        big: bool,
    ) -> Result<(), String> {
        let (p, q) = (spec.p, spec.q);
        let r: usize = spec.dims.iter().product();
        let round = |o: *mut f64, n: usize| {
            if self.out_round != DType::F64 {
                self.out_round
                    .round_all(std::slice::from_raw_parts_mut(o, n));
            }
        };
        if r == 0 || self.n == 0 {
            // the value of an empty reduction: +0 for a sum, as NumPy (the fold's -0 start
            // only keeps sum([-0.0]) == -0.0)
            let empty = match spec.op {
                ReduceOp::Sum => 0.0,
                op => reduce_init(op),
            };
            std::slice::from_raw_parts_mut(out.0, p * q).fill(empty);
            round(out.0, p * q);
            return Ok(());
        }
        if !big && spec.dims.len() == 1 && q == 1 {
            // each kept row folds one run of elements: the fold of `Reducer`'s lane mode,
            // without its bookkeeping (a loop body's `sum(s)` runs once per iteration)
            let (op, r0) = (spec.op, spec.dims[0]);
            let mut acc = reduce_init(op);
            let (mut row, mut seen) = (0usize, 0usize);
            let regs = env.scratch(self.regs_len());
            self.sweep(
                env,
                0,
                self.n,
                Some(regs),
                std::ptr::null_mut(),
                |_, mut v| {
                    while !v.is_empty() {
                        let take = (r0 - seen).min(v.len());
                        acc = fold_scalar(op, acc, &v[..take]);
                        v = &v[take..];
                        seen += take;
                        if seen == r0 {
                            *out.0.add(row) = acc;
                            acc = reduce_init(op);
                            row += 1;
                            seen = 0;
                        }
                    }
                },
            )?;
            round(out.0, p * q);
            return Ok(());
        }
        let block = r * q;
        let par = big && crate::threads() > 1;
        // blocks of the outermost reduced axis (by size alone): at least TASK elements each
        let d0 = spec.dims[0];
        let inner = block / d0;
        let per = TASK.div_ceil(inner).max(d0.div_ceil(MAX_PARTS));
        if big && p > 1 {
            // split the kept outer axes: every output is folded by one task, in order
            // (the reference's order, whatever the split)
            let pp = TASK.div_ceil(block).max(1);
            let ranges: Vec<(usize, usize)> = (0..p.div_ceil(pp))
                .map(|t| (t * pp, ((t + 1) * pp).min(p)))
                .collect();
            let task = |&(a, b): &(usize, usize)| {
                let o = out;
                let mut red = Reducer::new(spec.op, &spec.dims, q, o.0.add(a * q));
                self.sweep(
                    env,
                    a * block,
                    b * block,
                    None,
                    std::ptr::null_mut(),
                    |_, v| red.push(v),
                )
            };
            let res: Vec<Result<(), String>> = if par {
                par_map(&ranges, task)
            } else {
                ranges.iter().map(task).collect()
            };
            res.into_iter().collect::<Result<(), String>>()?;
        } else if big && p == 1 && d0 > per {
            // split the outermost reduced axis into blocks fixed by the shape; combine the
            // partial folds in block order
            let ranges: Vec<(usize, usize)> = (0..d0.div_ceil(per))
                .map(|t| (t * per, ((t + 1) * per).min(d0)))
                .collect();
            let task = |&(a, b): &(usize, usize)| {
                let mut dims = spec.dims.clone();
                dims[0] = b - a;
                let mut part = vec![0.0; q];
                let mut red = Reducer::new(spec.op, &dims, q, part.as_mut_ptr());
                self.sweep(
                    env,
                    a * inner,
                    b * inner,
                    None,
                    std::ptr::null_mut(),
                    |_, v| red.push(v),
                )?;
                drop(red);
                Ok(part)
            };
            let res: Vec<Result<Vec<f64>, String>> = if par {
                par_map(&ranges, task)
            } else {
                ranges.iter().map(task).collect()
            };
            let o = std::slice::from_raw_parts_mut(out.0, q);
            o.fill(reduce_init(spec.op));
            for part in res {
                fold_into(spec.op, o, &part?);
            }
        } else {
            let mut red = Reducer::new(spec.op, &spec.dims, q, out.0);
            let regs = env.scratch(self.regs_len());
            self.sweep(env, 0, self.n, Some(regs), std::ptr::null_mut(), |_, v| {
                red.push(v)
            })?;
        }
        round(out.0, p * q);
        Ok(())
    }
}

/// Runs `f` over the items on the engine's thread pool, results in order.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    use rayon::prelude::*;
    crate::pool().install(|| items.par_iter().map(f).collect())
}

macro_rules! map1 {
    ($d:expr, $a:expr, $f:expr) => {{
        let f = $f;
        for (o, &x) in $d.iter_mut().zip($a.iter()) {
            *o = f(x);
        }
    }};
}

macro_rules! map2 {
    ($d:expr, $a:expr, $b:expr, $f:expr) => {{
        let f = $f;
        for ((o, &x), &y) in $d.iter_mut().zip($a.iter()).zip($b.iter()) {
            *o = f(x, y);
        }
    }};
}

// (the float32 kernels map their chunks the same way)
pub(crate) use {map1, map2};

/// `d = u(a)` elementwise: the IR's scalar definition ([`UnaryOp::eval_f64`]) except the
/// transcendental functions taken from [`vmath`] (within 2 ulp of the correctly rounded
/// result, special values exact, not bit-equal to libm; `tests/op_facts.rs` checks both).
///
/// # Safety
/// The CPU supports `isa` (the caller runs on that path).
#[inline(always)]
pub(crate) unsafe fn unary(isa: vmath::Isa, u: UnaryOp, d: &mut [f64], a: &[f64]) {
    let apply = |f: Func, d: &mut [f64], a: &[f64]| vmath::apply_unchecked(isa, f, d, a);
    match u {
        UnaryOp::Neg => map1!(d, a, |x: f64| UnaryOp::Neg.eval_f64(x)),
        UnaryOp::Abs => map1!(d, a, |x: f64| UnaryOp::Abs.eval_f64(x)),
        UnaryOp::Sign => map1!(d, a, |x: f64| UnaryOp::Sign.eval_f64(x)),
        UnaryOp::Exp => apply(Func::Exp, d, a),
        UnaryOp::Expm1 => apply(Func::Expm1, d, a),
        UnaryOp::Log => apply(Func::Log, d, a),
        UnaryOp::Log1p => apply(Func::Log1p, d, a),
        UnaryOp::Log2 => apply(Func::Log2, d, a),
        UnaryOp::Log10 => apply(Func::Log10, d, a),
        UnaryOp::Sqrt => map1!(d, a, |x: f64| UnaryOp::Sqrt.eval_f64(x)),
        UnaryOp::Square => map1!(d, a, |x: f64| UnaryOp::Square.eval_f64(x)),
        UnaryOp::Reciprocal => map1!(d, a, |x: f64| UnaryOp::Reciprocal.eval_f64(x)),
        UnaryOp::Sin => apply(Func::Sin, d, a),
        UnaryOp::Cos => apply(Func::Cos, d, a),
        UnaryOp::Tan => map1!(d, a, |x: f64| UnaryOp::Tan.eval_f64(x)),
        UnaryOp::Arcsin => map1!(d, a, |x: f64| UnaryOp::Arcsin.eval_f64(x)),
        UnaryOp::Arccos => map1!(d, a, |x: f64| UnaryOp::Arccos.eval_f64(x)),
        UnaryOp::Arctan => map1!(d, a, |x: f64| UnaryOp::Arctan.eval_f64(x)),
        UnaryOp::Sinh => apply(Func::Sinh, d, a),
        UnaryOp::Cosh => apply(Func::Cosh, d, a),
        UnaryOp::Tanh => apply(Func::Tanh, d, a),
        UnaryOp::Arcsinh => map1!(d, a, |x: f64| UnaryOp::Arcsinh.eval_f64(x)),
        UnaryOp::Arccosh => map1!(d, a, |x: f64| UnaryOp::Arccosh.eval_f64(x)),
        UnaryOp::Arctanh => map1!(d, a, |x: f64| UnaryOp::Arctanh.eval_f64(x)),
        UnaryOp::Floor => map1!(d, a, |x: f64| UnaryOp::Floor.eval_f64(x)),
        UnaryOp::Ceil => map1!(d, a, |x: f64| UnaryOp::Ceil.eval_f64(x)),
        UnaryOp::Round => map1!(d, a, |x: f64| UnaryOp::Round.eval_f64(x)),
        UnaryOp::Sigmoid => apply(Func::Sigmoid, d, a),
        UnaryOp::Erf => map1!(d, a, |x: f64| UnaryOp::Erf.eval_f64(x)),
        UnaryOp::Gammaln => map1!(d, a, |x: f64| UnaryOp::Gammaln.eval_f64(x)),
        UnaryOp::Digamma => map1!(d, a, |x: f64| UnaryOp::Digamma.eval_f64(x)),
        UnaryOp::Trigamma => map1!(d, a, |x: f64| UnaryOp::Trigamma.eval_f64(x)),
        UnaryOp::Not => map1!(d, a, |x: f64| UnaryOp::Not.eval_f64(x)),
        UnaryOp::StopGradient => d.copy_from_slice(a),
    }
}

/// `d = b(x, y)` elementwise: the IR's scalar definition ([`BinaryOp::eval_f64`]) except
/// `logaddexp` from [`vmath`].
#[inline(always)]
pub(crate) fn binary(b: BinaryOp, d: &mut [f64], x: &[f64], y: &[f64]) {
    match b {
        BinaryOp::Add => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Add.eval_f64(p, q)),
        BinaryOp::Sub => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Sub.eval_f64(p, q)),
        BinaryOp::Mul => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Mul.eval_f64(p, q)),
        BinaryOp::Div => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Div.eval_f64(p, q)),
        BinaryOp::FloorDiv => map2!(d, x, y, |p: f64, q: f64| BinaryOp::FloorDiv.eval_f64(p, q)),
        BinaryOp::Mod => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Mod.eval_f64(p, q)),
        BinaryOp::Pow => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Pow.eval_f64(p, q)),
        BinaryOp::Maximum => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Maximum.eval_f64(p, q)),
        BinaryOp::Minimum => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Minimum.eval_f64(p, q)),
        BinaryOp::Arctan2 => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Arctan2.eval_f64(p, q)),
        BinaryOp::LogAddExp => vmath::logaddexp(d, x, y),
        BinaryOp::Lt => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Lt.eval_f64(p, q)),
        BinaryOp::Le => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Le.eval_f64(p, q)),
        BinaryOp::Gt => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Gt.eval_f64(p, q)),
        BinaryOp::Ge => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Ge.eval_f64(p, q)),
        BinaryOp::Eq => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Eq.eval_f64(p, q)),
        BinaryOp::Ne => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Ne.eval_f64(p, q)),
        BinaryOp::And => map2!(d, x, y, |p: f64, q: f64| BinaryOp::And.eval_f64(p, q)),
        BinaryOp::Or => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Or.eval_f64(p, q)),
        BinaryOp::Xor => map2!(d, x, y, |p: f64, q: f64| BinaryOp::Xor.eval_f64(p, q)),
    }
}
