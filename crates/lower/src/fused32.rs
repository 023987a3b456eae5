//! Float32 fused kernels: a group whose values are all float32 (or bool), read from leaves
//! that are float32 or bool, runs on float32 registers — twice the SIMD lanes and half the
//! register traffic of the f64 path, and no rounding pass after each instruction.
//!
//! Guarantee: the same bits as the f64 path (each value computed in f64 and rounded to
//! float32), but for the functions of `vmath32`. Native float32 instructions are only those whose float32 result is the
//! rounding of the f64 one: `+ - * /`, `sqrt`, `1/x` and `x²` (correctly rounded, and
//! rounding twice through f64 is innocuous for them since 53 ≥ 2·24 + 2), and the exact ones
//! (negation, `abs`, `sign`, `floor`/`ceil`/`rint`, `maximum`/`minimum`, comparisons,
//! logic, `where`, copies). exp, expm1, log, log1p, tanh and sigmoid take their float32
//! kernels (`vmath32`: ≤ 1 ulp, not always the f64 path's bits; `AUTODIFF_F32_MATH=exact`
//! takes them from the f64 path instead). Every other instruction (sin, pow, casts to bool,
//! …) widens its operands to f64, runs the f64 kernel with its rounding, and narrows the
//! result back (exact: the rounded value is a float32).
//!
//! Registers live in the f64 scratch as float32 (`CHUNK` floats each, two per f64 slot),
//! followed by [`TEMPS`] f64 chunks for the widened operands, gathered leaves and the
//! result handed to the sink.

use autodiff_ir::{BinaryOp, DType, UnaryOp};

use crate::fused::{binary, map1, map2, unary, Fused, InsKind, Leaf, Reg, CHUNK};
use crate::view::gather_strided;
use crate::vmath::Isa;
use crate::vmath32::{self, Func32};
use crate::Env;

/// f64 chunks after the float32 registers.
const TEMPS: usize = 4;

/// Whether a value of this dtype is held exactly by a float32 register (a float32, or a
/// bool's 0/1).
pub(crate) fn fits(d: DType) -> bool {
    matches!(d, DType::F32 | DType::Bool)
}

#[inline(always)]
fn widen(d: &mut [f64], a: &[f32]) {
    d.iter_mut().zip(a).for_each(|(o, &x)| *o = x as f64);
}

#[inline(always)]
fn narrow(d: &mut [f32], a: &[f64]) {
    d.iter_mut().zip(a).for_each(|(o, &x)| *o = x as f32);
}

#[inline(always)]
fn truth(c: bool) -> f32 {
    c as u8 as f32
}

/// The unary ops whose float32 result equals the f64 result rounded (see the module docs).
fn native_unary(u: UnaryOp) -> bool {
    use UnaryOp::*;
    matches!(
        u,
        Neg | Abs | Sign | Square | Sqrt | Reciprocal | Floor | Ceil | Round | Not | StopGradient
    )
}

/// The binary ops whose float32 result equals the f64 result rounded.
fn native_binary(b: BinaryOp) -> bool {
    use BinaryOp::*;
    matches!(
        b,
        Add | Sub | Mul | Div | Maximum | Minimum | Lt | Le | Gt | Ge | Eq | Ne | And | Or | Xor
    )
}

/// `d = u(a)` for a [`native_unary`] op.
#[inline(always)]
fn unary32(u: UnaryOp, d: &mut [f32], a: &[f32]) {
    match u {
        // -x
        UnaryOp::Neg => map1!(d, a, |x: f32| -x),
        // |x|
        UnaryOp::Abs => map1!(d, a, |x: f32| x.abs()),
        // sign(x) ∈ {-1, 0, 1}, NaN kept
        UnaryOp::Sign => map1!(d, a, |x: f32| if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            x
        }),
        // x·x
        UnaryOp::Square => map1!(d, a, |x: f32| x * x),
        // √x
        UnaryOp::Sqrt => map1!(d, a, |x: f32| x.sqrt()),
        // 1/x
        UnaryOp::Reciprocal => map1!(d, a, |x: f32| 1.0 / x),
        UnaryOp::Floor => map1!(d, a, |x: f32| x.floor()),
        UnaryOp::Ceil => map1!(d, a, |x: f32| x.ceil()),
        // rint: ties to even, as NumPy
        UnaryOp::Round => map1!(d, a, |x: f32| x.round_ties_even()),
        // !x
        UnaryOp::Not => map1!(d, a, |x: f32| truth(x == 0.0)),
        UnaryOp::StopGradient => d.copy_from_slice(a),
        _ => unreachable!("{u:?} is not a native float32 op"),
    }
}

/// `d = b(x, y)` for a [`native_binary`] op.
#[inline(always)]
fn binary32(b: BinaryOp, d: &mut [f32], x: &[f32], y: &[f32]) {
    match b {
        BinaryOp::Add => map2!(d, x, y, |p: f32, q: f32| p + q),
        BinaryOp::Sub => map2!(d, x, y, |p: f32, q: f32| p - q),
        BinaryOp::Mul => map2!(d, x, y, |p: f32, q: f32| p * q),
        BinaryOp::Div => map2!(d, x, y, |p: f32, q: f32| p / q),
        // NaN-propagating; of two equal values the second (autodiff_ir::scalar::maximum)
        BinaryOp::Maximum => map2!(d, x, y, |p: f32, q: f32| if p.is_nan() || p > q {
            p
        } else {
            q
        }),
        BinaryOp::Minimum => map2!(d, x, y, |p: f32, q: f32| if p.is_nan() || p < q {
            p
        } else {
            q
        }),
        BinaryOp::Lt => map2!(d, x, y, |p: f32, q: f32| truth(p < q)),
        BinaryOp::Le => map2!(d, x, y, |p: f32, q: f32| truth(p <= q)),
        BinaryOp::Gt => map2!(d, x, y, |p: f32, q: f32| truth(p > q)),
        BinaryOp::Ge => map2!(d, x, y, |p: f32, q: f32| truth(p >= q)),
        BinaryOp::Eq => map2!(d, x, y, |p: f32, q: f32| truth(p == q)),
        BinaryOp::Ne => map2!(d, x, y, |p: f32, q: f32| truth(p != q)),
        BinaryOp::And => map2!(d, x, y, |p: f32, q: f32| truth(p != 0.0 && q != 0.0)),
        BinaryOp::Or => map2!(d, x, y, |p: f32, q: f32| truth(p != 0.0 || q != 0.0)),
        BinaryOp::Xor => map2!(d, x, y, |p: f32, q: f32| truth((p != 0.0) != (q != 0.0))),
        _ => unreachable!("{b:?} is not a native float32 op"),
    }
}

/// Leaf `l` at positions `[start, start + d.len())` into `d` (through `tmp` unless
/// contiguous).
///
/// # Safety
/// As for [`Fused::eval_chunk32`]: the leaf's view is in bounds at those positions.
#[inline(always)]
unsafe fn load32(l: &Leaf, env: &Env, start: usize, d: &mut [f32], tmp: &mut [f64]) {
    let src = env.ptr(l.loc);
    if l.shape.len() == 1 && l.strides[0] == 1 {
        let s = std::slice::from_raw_parts(src.offset(l.offset + start as isize), d.len());
        narrow(d, s);
    } else {
        let t = &mut tmp[..d.len()];
        gather_strided(src, l.offset, &l.shape, &l.strides, start, t);
        narrow(d, t);
    }
}

impl Fused {
    /// Scratch (f64 elements) of the float32 path on one thread.
    pub(crate) fn regs_len32(&self) -> usize {
        self.n_regs.max(1) * CHUNK / 2 + TEMPS * CHUNK
    }

    /// The float32 registers and the f64 temporaries in a scratch of
    /// [`Self::regs_len32`] elements.
    pub(crate) fn split32<'a>(&self, regs: &'a mut [f64]) -> (*mut f32, &'a mut [f64]) {
        let (r, t) = regs.split_at_mut(self.n_regs.max(1) * CHUNK / 2);
        (r.as_mut_ptr() as *mut f32, t)
    }

    /// The float32 twin of `eval_chunk`: computes the chunk `[start, start + len)` into
    /// the float32 registers; returns a pointer to the result's `len` values.
    ///
    /// # Safety
    /// Those of `eval_chunk` (`len ≤ CHUNK`, leaves in bounds and not written, registers
    /// numbered below `n_regs`), with `regs` of at least [`Self::regs_len32`] elements;
    /// the kernel was planned for float32 (`self.f32`: every load, immediate and value fits
    /// a float32, no operand is a `DIRECT` leaf).
    pub(crate) unsafe fn eval_chunk32(
        &self,
        env: &Env,
        start: usize,
        len: usize,
        regs: &mut [f64],
    ) -> Result<*const f32, String> {
        match Isa::detect() {
            // SAFETY: the CPU has the features `detect` found.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => self.eval_chunk32_avx512(env, start, len, regs),
            // SAFETY: likewise.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => self.eval_chunk32_avx2(env, start, len, regs),
            _ => self.eval_chunk32_body(Isa::Portable, env, start, len, regs),
        }
    }

    /// [`Self::eval_chunk32`] compiled for AVX2 + FMA.
    ///
    /// # Safety
    /// Those of [`Self::eval_chunk32`]; the CPU supports AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn eval_chunk32_avx2(
        &self,
        env: &Env,
        start: usize,
        len: usize,
        regs: &mut [f64],
    ) -> Result<*const f32, String> {
        self.eval_chunk32_body(Isa::Avx2, env, start, len, regs)
    }

    /// [`Self::eval_chunk32`] compiled for AVX-512F.
    ///
    /// # Safety
    /// Those of [`Self::eval_chunk32`]; the CPU supports AVX-512F, AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn eval_chunk32_avx512(
        &self,
        env: &Env,
        start: usize,
        len: usize,
        regs: &mut [f64],
    ) -> Result<*const f32, String> {
        self.eval_chunk32_body(Isa::Avx512, env, start, len, regs)
    }

    /// The body of [`Self::eval_chunk32`] (inlined into each `target_feature` variant).
    ///
    /// # Safety
    /// Those of [`Self::eval_chunk32`].
    #[inline(always)]
    unsafe fn eval_chunk32_body(
        &self,
        isa: Isa,
        env: &Env,
        start: usize,
        len: usize,
        regs: &mut [f64],
    ) -> Result<*const f32, String> {
        let (base, tmp) = self.split32(regs);
        let (t0, rest) = tmp.split_at_mut(CHUNK);
        let (t1, rest) = rest.split_at_mut(CHUNK);
        let (t2, t3) = rest.split_at_mut(CHUNK);
        let (t0, t1, t2, t3) = (
            &mut t0[..len],
            &mut t1[..len],
            &mut t2[..len],
            &mut t3[..len],
        );
        // (the planner never gives an instruction a destination among its operands)
        let reg = |r: Reg| std::slice::from_raw_parts(base.add(r as usize * CHUNK), len);
        for ins in &self.code {
            let d = std::slice::from_raw_parts_mut(base.add(ins.dst as usize * CHUNK), len);
            match ins.kind {
                InsKind::Load(l) => load32(&self.leaves[l as usize], env, start, d, t0),
                InsKind::Imm(v) => d.fill(v as f32),
                InsKind::Mov(a) if ins.round == DType::F32 => d.copy_from_slice(reg(a)),
                InsKind::Unary(u, a) if native_unary(u) => unary32(u, d, reg(a)),
                InsKind::Binary(b, x, y, false) if native_binary(b) => {
                    binary32(b, d, reg(x), reg(y))
                }
                InsKind::Where(c, x, y) => {
                    let (c, x, y) = (reg(c), reg(x), reg(y));
                    for i in 0..len {
                        d[i] = if c[i] != 0.0 { x[i] } else { y[i] };
                    }
                }
                // everything else through f64, rounded as on the f64 path
                InsKind::Mov(a) => {
                    widen(t3, reg(a));
                    ins.round.round_all(t3);
                    narrow(d, t3);
                }
                InsKind::Unary(u, a) => match Func32::of(u) {
                    Some(f) => vmath32::apply_unchecked(isa, f, d, reg(a)),
                    None => {
                        widen(t0, reg(a));
                        unary(isa, u, t3, t0);
                        ins.round.round_all(t3);
                        narrow(d, t3);
                    }
                },
                // (an int64 `pow`, which checks its exponents, never reaches a float32 kernel)
                InsKind::Binary(b, x, y, _) => {
                    widen(t0, reg(x));
                    widen(t1, reg(y));
                    binary(b, t2, t0, t1);
                    ins.round.round_all(t2);
                    narrow(d, t2);
                }
            }
        }
        Ok(base.add(self.result as usize * CHUNK))
    }

    /// The chunk's result (`len` float32 values at `v`) widened into `dst`, and the extra
    /// stores of a multi-output kernel written to their slots at `start`.
    ///
    /// # Safety
    /// `v` points to `len` values in the registers; `dst` is valid for `len` writes and
    /// aliases no register; the stores' slots have room at `start..start + len`.
    pub(crate) unsafe fn finish_chunk32(
        &self,
        env: &Env,
        regs: *const f32,
        v: *const f32,
        start: usize,
        len: usize,
        dst: *mut f64,
    ) {
        let out = std::slice::from_raw_parts_mut(dst, len);
        widen(out, std::slice::from_raw_parts(v, len));
        for &(r, loc) in &self.stores {
            let src = std::slice::from_raw_parts(regs.add(r as usize * CHUNK), len);
            let o = std::slice::from_raw_parts_mut(env.mut_ptr(loc).add(start), len);
            widen(o, src);
        }
    }
}
