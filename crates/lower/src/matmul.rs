//! Dense products `C = A·B` (f64; `C` row-major contiguous `m×n`) for `Contract`'s GEMM plan.
//!
//! - matrix × matrix: the `gemm` crate (faer's GEMM: packed micro-kernels chosen at run time
//!   for the CPU found — AVX-512, AVX2+FMA, SSE), on the rayon pool when the product is
//!   large enough;
//! - matrix × vector (`m == 1` or `n == 1`): `gemm`'s GEMV kernels, one thread per task,
//!   the tasks cut by the shape alone and run on the rayon pool (see [`gemv`]).
//!
//! Determinism: every output element is summed in an order that depends only on the
//! shapes and strides, never on the number of threads. The GEMV tasks are fixed by the
//! shape (their partial sums are added in a fixed order). `gemm` splits over output tiles inside each block of the summed axis; the block
//! size (`kc`) comes from the shape and the CPU's cache sizes, not the thread count, so
//! every element still sums the same blocks in the same order
//! (`tests::gemm_is_independent_of_thread_count` checks this bit for bit). Results do
//! depend on the CPU's instruction set (FMA or not), as with any BLAS.

use rayon::prelude::*;

/// `m·n·k` at or above which matrix products run on the rayon pool.
const GEMM_PAR_MIN: usize = 1 << 18;
/// Matrix-vector products with at least this many multiply-adds run on the rayon pool.
const GEMV_PAR_MIN: usize = 1 << 16;

struct P(*const f64);
// SAFETY: moving the pointer to another thread is sound for the same reasons as sharing it
// (see `Sync` below): operands are only read, and the output `c` is written in disjoint tiles
// while `pool().install` blocks the caller until every task is done.
unsafe impl Send for P {}
// SAFETY: threads only copy the pointer out of a shared `&P`. Through `a`/`b` (and `mat`/`v`
// in `gemv`) they only read, from buffers no one writes during the product; `c` is written
// only inside the one `gemm_call` it is handed to, and `gemm` gives each of its threads
// disjoint output tiles. `pool().install` blocks until every task is done, so the buffers
// (alive for the whole `matmul` call, by its contract) outlive every use.
unsafe impl Sync for P {}

/// `C (m×n, row-major contiguous) = A·B`, `A[i,p] = a[i·rsa + p·csa]`,
/// `B[p,j] = b[p·rsb + j·csb]`.
///
/// # Safety
/// `a`, `b` cover their strided views; `c` holds `m·n` elements and overlaps neither.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: *const f64,
    rsa: isize,
    csa: isize,
    b: *const f64,
    rsb: isize,
    csb: isize,
    c: *mut f64,
) {
    if m == 0 || n == 0 {
        return;
    }
    let out = std::slice::from_raw_parts_mut(c, m * n);
    if k == 0 {
        out.fill(0.0);
    } else if n == 1 {
        gemv(out, k, a, rsa, csa, b, rsb);
    } else if m == 1 {
        // out[j] = Σ_p B[p, j]·a[p]
        gemv(out, k, b, csb, rsb, a, csa);
    } else {
        let par = if m * n * k >= GEMM_PAR_MIN && crate::threads() > 1 {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        let (a, b, c) = (P(a), P(b), P(c));
        crate::pool().install(|| {
            let (a, b, c) = (&a, &b, &c);
            gemm_call(m, n, k, a.0, rsa, csa, b.0, rsb, csb, c.0 as *mut f64, par)
        });
    }
}

/// `C (m×n, row-major, row stride n) = A·B` by one call to `gemm::gemm` (views as in
/// [`matmul`]).
///
/// # Safety
/// `a[i·rsa + p·csa]` (`i < m`, `p < k`) and `b[p·rsb + j·csb]` (`p < k`, `j < n`) are in
/// bounds of live buffers not written during the call; `c` is valid for writes of
/// `c[i·n + j]` (`i < m`, `j < n`), and that range overlaps neither operand.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_call(
    m: usize,
    n: usize,
    k: usize,
    a: *const f64,
    rsa: isize,
    csa: isize,
    b: *const f64,
    rsb: isize,
    csb: isize,
    c: *mut f64,
    par: gemm::Parallelism,
) {
    // dst := alpha·dst + beta·lhs·rhs; with read_dst = false, dst is not read.
    gemm::gemm(
        m, n, k, c, 1, n as isize, false, a, csa, rsa, b, csb, rsb, 0.0, 1.0, false, false, false,
        par,
    );
}

/// Output elements per task of a dot-product GEMV (above 256, where `gemm` switches to a
/// slower kernel for tiny outputs), output columns per task of a row GEMV (a multiple of
/// every SIMD width), and rows of the matrix per block of a short row GEMV.
const GEMV_ROWS: usize = 1024;
const GEMV_COLS: usize = 1024;
const GEMV_KBLOCK: usize = 1024;
/// At most this many partial sums per output element (blocks of the summed axis).
const GEMV_MAX_BLOCKS: usize = 32;

/// `out[o] = Σ_p M[o, p]·v[p]` with `M[o, p] = mat[o·so + p·sp]`, `v[p] = vec[p·sv]`.
///
/// The work is cut into tasks by the shape alone (never by the thread count), each task
/// one single-threaded `gemm` call (its GEMV kernels), so the result is the same on any
/// number of threads:
/// - `M` rows contiguous (`X @ w`): tasks of `GEMV_ROWS` output elements, a dot each;
/// - `M` columns contiguous (`X.T @ r`), long output: tasks of `GEMV_COLS` outputs, each
///   streaming over all `p`;
/// - same, short output: the summed axis is cut into blocks of at least `GEMV_KBLOCK`
///   rows, one partial vector per block, then the partials are added in block order.
///
/// # Safety
/// `mat[o·so + p·sp]` (`o < out.len()`, `p < k`) and `vec[p·sv]` (`p < k`) are in bounds of
/// live buffers not written during the call, and neither range overlaps `out`. (A strided
/// `vec` is gathered into a contiguous copy first, so the tasks may read `v[p0..p0+kn]`
/// with unit stride; each task writes only its own `dst`, a disjoint chunk of `out` or of
/// `partial`.)
unsafe fn gemv(
    out: &mut [f64],
    k: usize,
    mat: *const f64,
    so: isize,
    sp: isize,
    vec: *const f64,
    sv: isize,
) {
    let len = out.len();
    // a strided vector is gathered once (k values against len·k reads of the matrix)
    let gathered: Vec<f64>;
    let v = if sv == 1 || k == 1 {
        vec
    } else {
        gathered = (0..k).map(|p| *vec.offset(p as isize * sv)).collect();
        gathered.as_ptr()
    };
    let (mat, v) = (P(mat), P(v));
    let par = crate::threads() > 1 && len * k >= GEMV_PAR_MIN;
    // out[o0..o0+dst.len()] = Σ_{p in p0..p0+kn} M[o, p]·v[p]
    let task = |o0: usize, p0: usize, kn: usize, dst: &mut [f64]| {
        let (mat, v) = (&mat, &v);
        gemm_call(
            dst.len(),
            1,
            kn,
            mat.0.offset(o0 as isize * so + p0 as isize * sp),
            so,
            sp,
            v.0.add(p0),
            1,
            1,
            dst.as_mut_ptr(),
            gemm::Parallelism::None,
        )
    };
    let over_outputs = |chunk: usize, out: &mut [f64]| {
        if par && len > chunk {
            crate::pool().install(|| {
                out.par_chunks_mut(chunk)
                    .enumerate()
                    .for_each(|(i, dst)| task(i * chunk, 0, k, dst))
            });
        } else {
            out.chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, dst)| task(i * chunk, 0, k, dst));
        }
    };
    if so == 1 && sp != 1 && len < GEMV_COLS && k >= 2 * GEMV_KBLOCK {
        let kb = GEMV_KBLOCK.max(k.div_ceil(GEMV_MAX_BLOCKS));
        let blocks = k.div_ceil(kb);
        let mut partial = vec![0.0; blocks * len];
        let run = |(b, dst): (usize, &mut [f64])| task(0, b * kb, kb.min(k - b * kb), dst);
        if par {
            crate::pool().install(|| partial.par_chunks_mut(len).enumerate().for_each(run));
        } else {
            partial.chunks_mut(len).enumerate().for_each(run);
        }
        out.copy_from_slice(&partial[..len]);
        for part in partial[len..].chunks(len) {
            out.iter_mut().zip(part).for_each(|(o, x)| *o += x);
        }
    } else if so == 1 && sp != 1 {
        over_outputs(GEMV_COLS, out);
    } else {
        over_outputs(GEMV_ROWS, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect()
    }

    /// `(m, n, k, rsa, csa, rsb, csb)` covering row-/column-major operands, vectors.
    fn cases() -> Vec<(usize, usize, usize, bool, bool)> {
        let mut v = vec![];
        for &(m, n, k) in &[
            (1, 1, 7),
            (300, 1, 37),
            (1, 300, 37),
            (37, 1, 3000),
            (1, 37, 3000),
            (5, 7, 3),
            (64, 48, 700),
            (130, 70, 600),
            (512, 10, 256),
            (257, 129, 1100),
        ] {
            for ta in [false, true] {
                for tb in [false, true] {
                    v.push((m, n, k, ta, tb));
                }
            }
        }
        v
    }

    fn run(m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Vec<f64> {
        let (a, b) = (data(m * k, 1 + m as u64), data(k * n, 2 + n as u64));
        let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
        let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
        let mut c = vec![f64::NAN; m * n];
        // SAFETY: `a` (m·k) and `b` (k·n) hold exactly their views for either layout
        // (`ta`/`tb` pick row- or column-major strides over the same elements); `c` is a
        // separate `m·n` vector; all three live until the call returns.
        unsafe {
            matmul(
                m,
                n,
                k,
                a.as_ptr(),
                rsa,
                csa,
                b.as_ptr(),
                rsb,
                csb,
                c.as_mut_ptr(),
            )
        };
        // against a plain sum
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut mag) = (0.0f64, 0.0f64);
                for p in 0..k {
                    let t = a[(i as isize * rsa + p as isize * csa) as usize]
                        * b[(p as isize * rsb + j as isize * csb) as usize];
                    s += t;
                    mag += t.abs();
                }
                let got = c[i * n + j];
                assert!(
                    (got - s).abs() <= 1e-12 * mag.max(1e-300),
                    "{m}x{n}x{k} ta={ta} tb={tb} at ({i},{j}): {got} vs {s}"
                );
            }
        }
        c
    }

    #[test]
    fn products_match_a_plain_sum() {
        for (m, n, k, ta, tb) in cases() {
            run(m, n, k, ta, tb);
        }
    }

    #[test]
    fn gemm_is_independent_of_thread_count() {
        let pool = |t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        };
        let mut big = cases();
        big.extend([
            (784, 256, 512, true, false),
            (512, 256, 784, false, false),
            (200, 1, 20000, true, false),
            (20000, 1, 200, false, false),
            (600, 700, 1500, false, true),
        ]);
        for (m, n, k, ta, tb) in big {
            let one = pool(1).install(|| run(m, n, k, ta, tb));
            for t in [2, 3, 8] {
                let many = pool(t).install(|| run(m, n, k, ta, tb));
                assert!(
                    one.iter()
                        .zip(&many)
                        .all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{m}x{n}x{k} ta={ta} tb={tb}: {t} threads differ from 1"
                );
            }
        }
    }
}
