//! Dense linear algebra on row-major `n×n` / `n×k` slices: textbook algorithms, no blocking.

use crate::ExecError;

/// An LU factorization with partial pivoting, `P a = L U` (unit-diagonal L below the
/// diagonal of `lu`, U on and above it). `perm[i]` is the row of `a` in row i of `P a`.
pub struct Lu {
    n: usize,
    lu: Vec<f64>,
    perm: Vec<usize>,
    /// +1 or -1: the sign of the permutation.
    sign: f64,
    /// An exactly zero pivot was met (LAPACK's `info > 0`).
    singular: bool,
}

impl Lu {
    pub fn new(a: &[f64], n: usize) -> Lu {
        let mut lu = a.to_vec();
        let mut perm: Vec<usize> = (0..n).collect();
        let (mut sign, mut singular) = (1.0, false);
        for k in 0..n {
            // Pivot: the largest |entry| in column k at or below the diagonal (first on ties).
            let mut p = k;
            for i in k + 1..n {
                if lu[i * n + k].abs() > lu[p * n + k].abs() {
                    p = i;
                }
            }
            if p != k {
                for j in 0..n {
                    lu.swap(k * n + j, p * n + j);
                }
                perm.swap(k, p);
                sign = -sign;
            }
            let piv = lu[k * n + k];
            if piv == 0.0 {
                singular = true;
                continue;
            }
            for i in k + 1..n {
                let l = lu[i * n + k] / piv;
                lu[i * n + k] = l;
                for j in k + 1..n {
                    lu[i * n + j] -= l * lu[k * n + j];
                }
            }
        }
        Lu {
            n,
            lu,
            perm,
            sign,
            singular,
        }
    }

    /// Solves `a x = b` for `b` of shape (n, k).
    pub fn solve(&self, b: &[f64], k: usize) -> Result<Vec<f64>, ExecError> {
        if self.singular {
            return Err(ExecError("singular matrix".into()));
        }
        let n = self.n;
        let mut x: Vec<f64> = (0..n * k)
            .map(|i| b[self.perm[i / k] * k + i % k])
            .collect();
        tri_solve_in_place(&self.lu, n, &mut x, k, true, true);
        tri_solve_in_place(&self.lu, n, &mut x, k, false, false);
        Ok(x)
    }

    /// det a = sign · Π u_ii.
    pub fn det(&self) -> f64 {
        (0..self.n).fold(self.sign, |d, i| d * self.lu[i * self.n + i])
    }

    /// ln |det a| = Σ ln |u_ii| (-inf when singular).
    pub fn log_abs_det(&self) -> f64 {
        (0..self.n)
            .map(|i| self.lu[i * self.n + i].abs().ln())
            .sum()
    }
}

/// Forward (`lower`) or back substitution with the triangle of `a`, in place on `x` (n, k).
/// Only the named triangle of `a` is read; `unit` takes its diagonal as ones.
fn tri_solve_in_place(a: &[f64], n: usize, x: &mut [f64], k: usize, lower: bool, unit: bool) {
    let rows: Box<dyn Iterator<Item = usize>> = if lower {
        Box::new(0..n)
    } else {
        Box::new((0..n).rev())
    };
    for i in rows {
        let others = if lower { 0..i } else { i + 1..n };
        for c in 0..k {
            let mut s = x[i * k + c];
            for j in others.clone() {
                s -= a[i * n + j] * x[j * k + c];
            }
            x[i * k + c] = if unit { s } else { s / a[i * n + i] };
        }
    }
}

/// Solves `a x = b` for triangular `a` (only its `lower` or upper triangle is read), like
/// `scipy.linalg.solve_triangular`; a zero on the diagonal is an error.
pub fn tri_solve(
    a: &[f64],
    n: usize,
    b: &[f64],
    k: usize,
    lower: bool,
) -> Result<Vec<f64>, ExecError> {
    if (0..n).any(|i| a[i * n + i] == 0.0) {
        return Err(ExecError("singular matrix".into()));
    }
    let mut x = b.to_vec();
    tri_solve_in_place(a, n, &mut x, k, lower, false);
    Ok(x)
}

/// Lower Cholesky factor `L L^T = a`, reading only the lower triangle of `a` (like LAPACK
/// `potrf` with `UPLO='L'`, as NumPy calls it).
pub fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>, ExecError> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s = a[i * n + j] - (0..j).map(|p| l[i * n + p] * l[j * n + p]).sum::<f64>();
            if i == j {
                // NaN fails too.
                if s.is_nan() || s <= 0.0 {
                    return Err(ExecError("matrix is not positive definite".into()));
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Ok(l)
}

/// The identity matrix, row-major.
pub fn eye(n: usize) -> Vec<f64> {
    (0..n * n)
        .map(|i| if i / n == i % n { 1.0 } else { 0.0 })
        .collect()
}
