//! The Moré–Thuente line search (ACM TOMS 20(3), 1994) as a resumable state machine.
//!
//! The caller evaluates `φ(stp) = f(x + stp d)` and `φ'(stp) = ∇f · d` and hands them to
//! [`MoreThuente::next`], which either accepts the step (the strong Wolfe conditions
//! `φ(stp) ≤ φ(0) + ftol·stp·φ'(0)` and `|φ'(stp)| ≤ gtol·|φ'(0)|` hold, or a safeguard
//! such as the interval shrinking below `xtol` says further progress is impossible) or
//! returns the next trial step, always inside `[stpmin, stpmax]`.

/// What the search says after a trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Evaluate at the (updated) `stp` and call `next` again.
    Evaluate,
    /// Both Wolfe conditions hold.
    Converged,
    /// Stop here (rounding errors, interval below `xtol`, `stp` at a limit): the step is
    /// still usable, as in MINPACK-2.
    Warning(&'static str),
}

/// Constants of the search (L-BFGS-B uses ftol 1e-3, gtol 0.9, xtol 0.1).
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub ftol: f64,
    pub gtol: f64,
    pub xtol: f64,
    pub stpmin: f64,
    pub stpmax: f64,
}

/// Interval extrapolation factors for the next trial while nothing is bracketed.
const XTRAPL: f64 = 1.1;
const XTRAPU: f64 = 4.0;

/// One search, from `φ(0)`, `φ'(0) < 0`.
pub struct MoreThuente {
    p: Params,
    bracketed: bool,
    stage1: bool,
    finit: f64,
    ginit: f64,
    gtest: f64,
    width: f64,
    width1: f64,
    // The best step so far (x) and the other end of the interval (y).
    stx: f64,
    fx: f64,
    gx: f64,
    sty: f64,
    fy: f64,
    gy: f64,
    stmin: f64,
    stmax: f64,
}

impl MoreThuente {
    /// Starts a search at `φ(0) = f0`, `φ'(0) = g0` (must be < 0) with first trial `stp`.
    pub fn new(p: Params, f0: f64, g0: f64, stp: f64) -> MoreThuente {
        MoreThuente {
            p,
            bracketed: false,
            stage1: true,
            finit: f0,
            ginit: g0,
            gtest: p.ftol * g0,
            width: p.stpmax - p.stpmin,
            width1: 2.0 * (p.stpmax - p.stpmin),
            stx: 0.0,
            fx: f0,
            gx: g0,
            sty: 0.0,
            fy: f0,
            gy: g0,
            stmin: 0.0,
            stmax: stp + XTRAPU * stp,
        }
    }

    /// Takes `φ(stp) = f`, `φ'(stp) = g`; updates `stp` to the next trial when it says so.
    pub fn next(&mut self, stp: &mut f64, f: f64, g: f64) -> Verdict {
        let p = self.p;
        // Sufficient decrease line: φ(0) + stp·ftol·φ'(0).
        let ftest = self.finit + *stp * self.gtest;
        if self.stage1 && f <= ftest && g >= 0.0 {
            self.stage1 = false;
        }
        if self.bracketed && (*stp <= self.stmin || *stp >= self.stmax) {
            return Verdict::Warning("rounding errors prevent progress");
        }
        if self.bracketed && self.stmax - self.stmin <= p.xtol * self.stmax {
            return Verdict::Warning("xtol test satisfied");
        }
        if *stp == p.stpmax && f <= ftest && g <= self.gtest {
            return Verdict::Warning("stp = stpmax");
        }
        if *stp == p.stpmin && (f > ftest || g >= self.gtest) {
            return Verdict::Warning("stp = stpmin");
        }
        if f <= ftest && g.abs() <= p.gtol * (-self.ginit) {
            return Verdict::Converged;
        }
        if self.stage1 && f <= self.fx && f > ftest {
            // Stage 1 with a lower value that is not yet sufficient: work on the modified
            // function ψ(s) = φ(s) - φ(0) - ftol·s·φ'(0), whose minimizers satisfy both;
            // ψ = φ - s·gtest up to a constant, ψ' = φ' - gtest.
            let gt = self.gtest;
            let xm = (self.fx - self.stx * gt, self.gx - gt);
            let ym = (self.fy - self.sty * gt, self.gy - gt);
            let (xm, ym) = self.dcstep(xm, ym, stp, f - *stp * gt, g - gt);
            (self.fx, self.gx) = (xm.0 + self.stx * gt, xm.1 + gt);
            (self.fy, self.gy) = (ym.0 + self.sty * gt, ym.1 + gt);
        } else {
            let (xs, ys) = self.dcstep((self.fx, self.gx), (self.fy, self.gy), stp, f, g);
            (self.fx, self.gx) = xs;
            (self.fy, self.gy) = ys;
        }
        if self.bracketed {
            // Force enough shrinkage: bisect when the interval did not shrink by 2/3.
            if (self.sty - self.stx).abs() >= 0.66 * self.width1 {
                *stp = self.stx + 0.5 * (self.sty - self.stx);
            }
            self.width1 = self.width;
            self.width = (self.sty - self.stx).abs();
            self.stmin = self.stx.min(self.sty);
            self.stmax = self.stx.max(self.sty);
        } else {
            self.stmin = *stp + XTRAPL * (*stp - self.stx);
            self.stmax = *stp + XTRAPU * (*stp - self.stx);
        }
        *stp = stp.clamp(p.stpmin, p.stpmax);
        // A trial at or beyond the interval's ends, or an interval below xtol: fall back
        // to the best step so far (the next call then reports the warning).
        let stuck = *stp <= self.stmin
            || *stp >= self.stmax
            || self.stmax - self.stmin <= p.xtol * self.stmax;
        if self.bracketed && stuck {
            *stp = self.stx;
        }
        Verdict::Evaluate
    }

    /// One safeguarded step of the search (`dcstep`): chooses the next trial from cubic
    /// and quadratic interpolants of the interval ends and the trial, and updates the
    /// interval so that it keeps containing a step satisfying the conditions.
    fn dcstep(
        &mut self,
        xs: (f64, f64),
        ys: (f64, f64),
        stp: &mut f64,
        fp: f64,
        dp: f64,
    ) -> ((f64, f64), (f64, f64)) {
        let (mut xs, mut ys) = (xs, ys);
        let (stx, fx, dx) = (self.stx, xs.0, xs.1);
        let (sty, fy, dy) = (self.sty, ys.0, ys.1);
        let (stpmin, stpmax) = (self.stmin, self.stmax);
        let sgnd = dp * (dx / dx.abs());
        let s0 = *stp;
        let stpf;
        if fp > fx {
            // Case 1: higher value; the minimum is bracketed. Cubic step if closer to stx,
            // else the average of cubic and quadratic.
            let theta = 3.0 * (fx - fp) / (s0 - stx) + dx + dp;
            let s = theta.abs().max(dx.abs()).max(dp.abs());
            let mut gamma = s * ((theta / s).powi(2) - (dx / s) * (dp / s)).sqrt();
            if s0 < stx {
                gamma = -gamma;
            }
            let p = (gamma - dx) + theta;
            let q = ((gamma - dx) + gamma) + dp;
            let stpc = stx + (p / q) * (s0 - stx);
            let stpq = stx + ((dx / ((fx - fp) / (s0 - stx) + dx)) / 2.0) * (s0 - stx);
            stpf = if (stpc - stx).abs() < (stpq - stx).abs() {
                stpc
            } else {
                stpc + (stpq - stpc) / 2.0
            };
            self.bracketed = true;
        } else if sgnd < 0.0 {
            // Case 2: derivatives of opposite sign; bracketed. The step farther from stp.
            let theta = 3.0 * (fx - fp) / (s0 - stx) + dx + dp;
            let s = theta.abs().max(dx.abs()).max(dp.abs());
            let mut gamma = s * ((theta / s).powi(2) - (dx / s) * (dp / s)).sqrt();
            if s0 > stx {
                gamma = -gamma;
            }
            let p = (gamma - dp) + theta;
            let q = ((gamma - dp) + gamma) + dx;
            let stpc = s0 + (p / q) * (stx - s0);
            let stpq = s0 + (dp / (dp - dx)) * (stx - s0);
            stpf = if (stpc - s0).abs() > (stpq - s0).abs() {
                stpc
            } else {
                stpq
            };
            self.bracketed = true;
        } else if dp.abs() < dx.abs() {
            // Case 3: same sign, derivative magnitude decreases. The cubic may not have a
            // minimizer in the right direction; extrapolate safely.
            let theta = 3.0 * (fx - fp) / (s0 - stx) + dx + dp;
            let s = theta.abs().max(dx.abs()).max(dp.abs());
            let mut gamma = s * ((theta / s).powi(2) - (dx / s) * (dp / s)).max(0.0).sqrt();
            if s0 > stx {
                gamma = -gamma;
            }
            let p = (gamma - dp) + theta;
            let q = (gamma + (dx - dp)) + gamma;
            let r = p / q;
            let stpc = if r < 0.0 && gamma != 0.0 {
                s0 + r * (stx - s0)
            } else if s0 > stx {
                stpmax
            } else {
                stpmin
            };
            let stpq = s0 + (dp / (dp - dx)) * (stx - s0);
            if self.bracketed {
                let t = if (stpc - s0).abs() < (stpq - s0).abs() {
                    stpc
                } else {
                    stpq
                };
                stpf = if s0 > stx {
                    t.min(s0 + 0.66 * (sty - s0))
                } else {
                    t.max(s0 + 0.66 * (sty - s0))
                };
            } else {
                let t = if (stpc - s0).abs() > (stpq - s0).abs() {
                    stpc
                } else {
                    stpq
                };
                stpf = t.min(stpmax).max(stpmin);
            }
        } else {
            // Case 4: same sign, derivative does not decrease: cubic on (stp, sty) when
            // bracketed, else go to the limit.
            stpf = if self.bracketed {
                let theta = 3.0 * (fp - fy) / (sty - s0) + dy + dp;
                let s = theta.abs().max(dy.abs()).max(dp.abs());
                let mut gamma = s * ((theta / s).powi(2) - (dy / s) * (dp / s)).sqrt();
                if s0 > sty {
                    gamma = -gamma;
                }
                let p = (gamma - dp) + theta;
                let q = ((gamma - dp) + gamma) + dy;
                s0 + (p / q) * (sty - s0)
            } else if s0 > stx {
                stpmax
            } else {
                stpmin
            };
        }
        // Update the interval: y takes the trial when it is worse, else x moves to it (and
        // y to the old x when the derivative changed sign).
        if fp > fx {
            self.sty = s0;
            ys = (fp, dp);
        } else {
            if sgnd < 0.0 {
                self.sty = stx;
                ys = (fx, dx);
            }
            self.stx = s0;
            xs = (fp, dp);
        }
        *stp = stpf;
        (xs, ys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search on φ from `stp`; returns the accepted step and the evaluations used.
    fn search(phi: impl Fn(f64) -> (f64, f64), stp0: f64, gtol: f64) -> (f64, usize, Verdict) {
        let p = Params {
            ftol: 1e-3,
            gtol,
            xtol: 0.1,
            stpmin: 0.0,
            stpmax: 1e10,
        };
        let (f0, g0) = phi(0.0);
        let mut ls = MoreThuente::new(p, f0, g0, stp0);
        let mut stp = stp0;
        for k in 1..=30 {
            let (f, g) = phi(stp);
            let v = ls.next(&mut stp, f, g);
            if v != Verdict::Evaluate {
                return (stp, k, v);
            }
        }
        panic!("no convergence");
    }

    fn strong_wolfe(phi: &impl Fn(f64) -> (f64, f64), stp: f64, gtol: f64) -> bool {
        let (f0, g0) = phi(0.0);
        let (f, g) = phi(stp);
        f <= f0 + 1e-3 * stp * g0 && g.abs() <= gtol * g0.abs()
    }

    #[test]
    fn finds_strong_wolfe_steps_from_far_and_near_starts() {
        // Moré–Thuente's first test function, φ(α) = −α/(α² + β), β = 2: minimizer √2.
        let phi = |a: f64| (-a / (a * a + 2.0), (a * a - 2.0) / (a * a + 2.0).powi(2));
        // The paper's Table 1 (ftol 1e-3, gtol 0.1): 6, 3, 1, 4 evaluations ending at
        // α ≈ 1.4, 1.4, 10, 37.
        for (stp0, want_evals, want_stp) in [
            (1e-3, 6, 1.4),
            (1e-1, 3, 1.4),
            (1e1, 1, 10.0),
            (1e3, 4, 37.0),
        ] {
            let (stp, evals, v) = search(phi, stp0, 0.1);
            assert_eq!(v, Verdict::Converged, "from {stp0}");
            assert!(strong_wolfe(&phi, stp, 0.1), "from {stp0}: {stp}");
            assert_eq!(evals, want_evals, "from {stp0}");
            assert!(
                (stp - want_stp).abs() < 0.05 * want_stp,
                "from {stp0}: {stp}"
            );
        }
    }

    #[test]
    fn a_quadratic_accepts_its_minimizer_at_once() {
        // φ(α) = (α − 1)²: the unit step is exact.
        let phi = |a: f64| ((a - 1.0).powi(2), 2.0 * (a - 1.0));
        let (stp, evals, v) = search(phi, 1.0, 0.9);
        assert_eq!((stp, evals, v), (1.0, 1, Verdict::Converged));
    }

    #[test]
    fn stops_at_stpmax_when_the_function_keeps_decreasing() {
        let p = Params {
            ftol: 1e-3,
            gtol: 0.9,
            xtol: 0.1,
            stpmin: 0.0,
            stpmax: 4.0,
        };
        let mut ls = MoreThuente::new(p, 0.0, -1.0, 1.0);
        let mut stp = 1.0;
        let mut last = Verdict::Evaluate;
        for _ in 0..10 {
            let f = -stp; // φ(α) = −α
            last = ls.next(&mut stp, f, -1.0);
            if last != Verdict::Evaluate {
                break;
            }
        }
        assert_eq!((stp, last), (4.0, Verdict::Warning("stp = stpmax")));
    }
}
