//! Small dense matrices (at most 2m × 2m, m the memory) and an LU solve with partial
//! pivoting: all the linear algebra L-BFGS-B needs beyond dot products.

/// A square row-major matrix.
#[derive(Clone, Debug)]
pub struct Mat {
    pub n: usize,
    pub a: Vec<f64>,
}

impl Mat {
    pub fn zeros(n: usize) -> Mat {
        Mat {
            n,
            a: vec![0.0; n * n],
        }
    }
    #[inline]
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.n + j]
    }
    #[inline]
    pub fn set(&mut self, i: usize, j: usize, v: f64) {
        self.a[i * self.n + j] = v;
    }
}

/// `A = P L U`, kept for repeated solves; `None` when a pivot is zero (singular).
pub struct Lu {
    m: Mat,
    piv: Vec<usize>,
}

impl Lu {
    pub fn new(mut m: Mat) -> Option<Lu> {
        let n = m.n;
        let mut piv: Vec<usize> = (0..n).collect();
        for k in 0..n {
            let p = (k..n)
                .max_by(|&i, &j| m.at(i, k).abs().total_cmp(&m.at(j, k).abs()))
                .unwrap_or(k);
            if m.at(p, k) == 0.0 || !m.at(p, k).is_finite() {
                return None;
            }
            if p != k {
                for j in 0..n {
                    m.a.swap(k * n + j, p * n + j);
                }
                piv.swap(k, p);
            }
            let pk = m.at(k, k);
            for i in k + 1..n {
                // l_ik = a_ik / u_kk; row_i -= l_ik row_k
                let l = m.at(i, k) / pk;
                m.set(i, k, l);
                for j in k + 1..n {
                    let v = m.at(i, j) - l * m.at(k, j);
                    m.set(i, j, v);
                }
            }
        }
        Some(Lu { m, piv })
    }

    /// Solves `A x = b`.
    pub fn solve(&self, b: &[f64]) -> Vec<f64> {
        let n = self.m.n;
        let mut x: Vec<f64> = self.piv.iter().map(|&p| b[p]).collect();
        for i in 0..n {
            let s: f64 = (0..i).map(|j| self.m.at(i, j) * x[j]).sum();
            x[i] -= s;
        }
        for i in (0..n).rev() {
            let s: f64 = (i + 1..n).map(|j| self.m.at(i, j) * x[j]).sum();
            x[i] = (x[i] - s) / self.m.at(i, i);
        }
        x
    }
}

/// `a·b` with sixteen partial sums, so that the compiler can vectorize it (a single
/// running sum is bound by the latency of one addition per element).
#[inline(always)]
fn dot_body(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..16 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    let mut half = [0.0f64; 4];
    for k in 0..4 {
        half[k] = (acc[k] + acc[k + 4]) + (acc[k + 8] + acc[k + 12]);
    }
    ((half[0] + half[2]) + (half[1] + half[3])) + tail
}

/// `y ← y + a·x`.
#[inline(always)]
fn axpy_body(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// The kernels compiled for AVX2 as well (chosen at run time): a wheel is built for the
/// x86-64 baseline (SSE2, two doubles per instruction), AVX2 does four.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot(a: &[f64], b: &[f64]) -> f64 {
        super::dot_body(a, b)
    }
    #[target_feature(enable = "avx2")]
    pub unsafe fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
        super::axpy_body(a, x, y)
    }
}

#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `a·b` (over the shorter length). Summation order is fixed (sixteen partial sums), so
/// the result does not depend on which instruction set runs it.
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { avx2::dot(a, b) };
    }
    dot_body(a, b)
}

/// `y ← y + a·x` (over the shorter length).
#[inline]
pub fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { avx2::axpy(a, x, y) };
    }
    axpy_body(a, x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lu_solves_a_pivoting_system() {
        let mut m = Mat::zeros(3);
        let rows = [[0.0, 2.0, 1.0], [1.0, -1.0, 0.5], [4.0, 0.0, -3.0]];
        for (i, r) in rows.iter().enumerate() {
            for (j, v) in r.iter().enumerate() {
                m.set(i, j, *v);
            }
        }
        let x = [0.3, -1.2, 2.5];
        let b: Vec<f64> = rows.iter().map(|r| dot(r, &x)).collect();
        let got = Lu::new(m).unwrap().solve(&b);
        for (g, e) in got.iter().zip(x) {
            assert!((g - e).abs() < 1e-12, "{got:?}");
        }
    }

    #[test]
    fn dot_and_axpy_match_the_plain_loops() {
        for n in [0, 1, 15, 16, 17, 100, 1001] {
            let a: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.11).cos()).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!(
                (dot(&a, &b) - plain).abs() <= 1e-12 * (1.0 + plain.abs()),
                "n={n}"
            );
            let mut y = b.clone();
            axpy(0.5, &a, &mut y);
            for i in 0..n {
                assert_eq!(y[i], b[i] + 0.5 * a[i]);
            }
        }
    }

    #[test]
    fn singular_is_none() {
        assert!(Lu::new(Mat::zeros(2)).is_none());
    }
}
