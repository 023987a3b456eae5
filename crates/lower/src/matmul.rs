//! Dense products `C = A·B` (f64; `C` row-major contiguous `m×n`) for `Contract`'s GEMM plan.
//!
//! - matrix × matrix: the `gemm` crate (faer's GEMM: packed micro-kernels chosen at run time
//!   for the CPU found — AVX-512, AVX2+FMA, SSE), on the rayon pool when the product is
//!   large enough;
//! - matrix × vector (`m == 1` or `n == 1`): our own loops, split over output elements
//!   across the rayon pool: a dot product per output element when the summed axis is
//!   contiguous in the matrix (`X @ w`), otherwise a running `out += v[k]·M[k, ·]` over
//!   contiguous rows (`X.T @ r`); other strides go to `gemm` on one thread.
//!
//! Determinism: every output element is summed in an order that depends only on the
//! shapes and strides, never on the number of threads. Our loops split over output
//! elements only (each element's sum is one sequential chain, so the split cannot change
//! it). `gemm` splits over output tiles inside each block of the summed axis; the block
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
// SAFETY: read-only operand pointers, shared across the threads of one product.
unsafe impl Send for P {}
unsafe impl Sync for P {}

/// `C (m×n, row-major contiguous) = A·B`, `A[i,p] = a[i·rsa + p·csa]`,
/// `B[p,j] = b[p·rsb + j·csb]`.
///
/// # Safety
/// `a`, `b` cover their strided views; `c` holds `m·n` elements and overlaps neither.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul(
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
        let par = if m * n * k >= GEMM_PAR_MIN && rayon::current_num_threads() > 1 {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        gemm_call(m, n, k, a, rsa, csa, b, rsb, csb, c, par);
    }
}

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

/// `out[o] = Σ_p M[o, p]·v[p]` with `M[o, p] = mat[o·so + p·sp]`, `v[p] = vec[p·sv]`.
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
    let threads = rayon::current_num_threads();
    let par = threads > 1 && len * k >= GEMV_PAR_MIN;
    if sp == 1 {
        // one dot product per output element, over a contiguous row of M
        let run = |o0: usize, dst: &mut [f64]| {
            let (mat, v) = (&mat, &v);
            simd::dot_rows(dst, mat.0.offset(o0 as isize * so), so, v.0, k)
        };
        if par {
            let chunk = len.div_ceil(4 * threads).max(1);
            out.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, dst)| run(i * chunk, dst));
        } else {
            run(0, out);
        }
    } else if so == 1 {
        // out = Σ_p v[p]·M[·, p], each M[·, p] contiguous
        let run = |o0: usize, dst: &mut [f64]| {
            let (mat, v) = (&mat, &v);
            simd::axpy_rows(dst, mat.0.add(o0), sp, v.0, k)
        };
        if par {
            // chunks of whole cache lines; at least 64 outputs so the rows stay long
            let chunk = len.div_ceil(2 * threads).max(64).next_multiple_of(8);
            out.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, dst)| run(i * chunk, dst));
        } else {
            run(0, out);
        }
    } else {
        // neither axis contiguous: gemm's own strided path (an m×1 product), one thread
        gemm_call(
            len,
            1,
            k,
            mat.0,
            so,
            sp,
            v.0,
            1,
            1,
            out.as_mut_ptr(),
            gemm::Parallelism::None,
        );
    }
}

/// The matrix-vector loops, compiled twice: for AVX2+FMA (chosen at run time) and portable.
mod simd {
    #[inline(always)]
    fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
        if FMA {
            a.mul_add(b, c)
        } else {
            a * b + c
        }
    }

    const L: usize = 16;

    /// `dst[i] = Σ_p row_i[p]·v[p]`, `row_i = mat + i·rs`: 16 running partial sums (lane
    /// `p mod 16`), added pairwise at the end, then the tail in order.
    #[inline(always)]
    unsafe fn dot_rows_body<const FMA: bool>(
        dst: &mut [f64],
        mat: *const f64,
        rs: isize,
        v: *const f64,
        k: usize,
    ) {
        let full = k / L * L;
        let v = std::slice::from_raw_parts(v, k);
        for (i, d) in dst.iter_mut().enumerate() {
            let row = std::slice::from_raw_parts(mat.offset(i as isize * rs), k);
            let mut acc = [0.0f64; L];
            for (r, w) in row[..full].chunks_exact(L).zip(v[..full].chunks_exact(L)) {
                for l in 0..L {
                    acc[l] = madd::<FMA>(r[l], w[l], acc[l]);
                }
            }
            let mut width = L;
            while width > 1 {
                width /= 2;
                for l in 0..width {
                    acc[l] += acc[l + width];
                }
            }
            let mut s = acc[0];
            for p in full..k {
                s = madd::<FMA>(row[p], v[p], s);
            }
            *d = s;
        }
    }

    /// `dst = Σ_p v[p]·row_p`, `row_p = mat + p·rs` (contiguous, `dst.len()` long): each
    /// element is one chain over `p` in order, four rows per pass over `dst`.
    #[inline(always)]
    unsafe fn axpy_rows_body<const FMA: bool>(
        dst: &mut [f64],
        mat: *const f64,
        rs: isize,
        v: *const f64,
        k: usize,
    ) {
        let len = dst.len();
        dst.fill(0.0);
        let row = |p: usize| std::slice::from_raw_parts(mat.offset(p as isize * rs), len);
        let mut p = 0;
        while p + 4 <= k {
            let (r0, r1, r2, r3) = (row(p), row(p + 1), row(p + 2), row(p + 3));
            let (v0, v1, v2, v3) = (*v.add(p), *v.add(p + 1), *v.add(p + 2), *v.add(p + 3));
            for j in 0..len {
                let mut s = dst[j];
                s = madd::<FMA>(v0, r0[j], s);
                s = madd::<FMA>(v1, r1[j], s);
                s = madd::<FMA>(v2, r2[j], s);
                s = madd::<FMA>(v3, r3[j], s);
                dst[j] = s;
            }
            p += 4;
        }
        while p < k {
            let (r, vp) = (row(p), *v.add(p));
            for j in 0..len {
                dst[j] = madd::<FMA>(vp, r[j], dst[j]);
            }
            p += 1;
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn fma() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_rows_fma(dst: &mut [f64], mat: *const f64, rs: isize, v: *const f64, k: usize) {
        dot_rows_body::<true>(dst, mat, rs, v, k)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn axpy_rows_fma(dst: &mut [f64], mat: *const f64, rs: isize, v: *const f64, k: usize) {
        axpy_rows_body::<true>(dst, mat, rs, v, k)
    }

    /// # Safety
    /// `mat + i·rs` holds `k` values for each `i < dst.len()`; `v` holds `k`.
    pub(super) unsafe fn dot_rows(
        dst: &mut [f64],
        mat: *const f64,
        rs: isize,
        v: *const f64,
        k: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if fma() {
            return dot_rows_fma(dst, mat, rs, v, k);
        }
        dot_rows_body::<false>(dst, mat, rs, v, k)
    }

    /// # Safety
    /// `mat + p·rs` holds `dst.len()` values for each `p < k`; `v` holds `k`.
    pub(super) unsafe fn axpy_rows(
        dst: &mut [f64],
        mat: *const f64,
        rs: isize,
        v: *const f64,
        k: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if fma() {
            return axpy_rows_fma(dst, mat, rs, v, k);
        }
        axpy_rows_body::<false>(dst, mat, rs, v, k)
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
