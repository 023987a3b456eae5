//! L-BFGS-B: limited-memory BFGS for `min f(x)` subject to `l ≤ x ≤ u`.
//!
//! Each iteration (Byrd, Lu, Nocedal, Zhu 1995):
//! 1. the generalized Cauchy point (GCP): the first local minimizer of the quadratic model
//!    `m(x) = f + gᵀ(x−xₖ) + ½(x−xₖ)ᵀB(x−xₖ)` along the projected steepest-descent path;
//! 2. subspace minimization: the model minimized over the variables not at a bound at the
//!    GCP (the direct primal method), the result projected onto the box and kept when it is
//!    still a descent direction, else truncated to the box (Morales & Nocedal 2011);
//! 3. a Moré–Thuente line search along `d = x̄ − xₖ` (ftol 1e-3, gtol 0.9, xtol 0.1,
//!    `stpmax` keeping `x` feasible), first step `1/‖d‖` on the first iteration;
//! 4. the compact update `B = θI − W M Wᵀ` with `W = [Y θS]`, skipped unless
//!    `sᵀy > ε·(−gₖᵀs)`; a failed line search drops the memory and restarts once.
//!
//! `B` is never formed: the memory keeps `SᵀS`, `SᵀY`, `YᵀY` (m × m, updated in O(mn) per
//! iteration), so an iteration costs O(mn) plus O(m³) on 2m × 2m matrices.

use std::collections::VecDeque;

use crate::dense::{axpy, dot, Lu, Mat};
use crate::linesearch::{MoreThuente, Params, Verdict};

const EPS: f64 = f64::EPSILON;

/// The stopping rules and limits; the defaults are SciPy's `fmin_l_bfgs_b`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Memory: how many correction pairs `(s, y)` are kept.
    pub m: usize,
    /// Stop when `(f_old − f) / max(|f_old|, |f|, 1) ≤ factr · ε`.
    pub factr: f64,
    /// Stop when `max |proj g_i| ≤ pgtol`.
    pub pgtol: f64,
    pub maxiter: usize,
    /// Stop after an iteration that brought the evaluation count above this.
    pub maxfun: usize,
    /// Evaluations one line search may use before it fails.
    pub maxls: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            m: 10,
            factr: 1e7,
            pgtol: 1e-5,
            maxiter: 15000,
            maxfun: 15000,
            maxls: 20,
        }
    }
}

/// Why the run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The projected gradient is below `pgtol`.
    Pgtol,
    /// The relative reduction of `f` is below `factr · ε`.
    Factr,
    MaxIter,
    MaxFun,
    /// The line search failed with an empty memory (no descent possible along −g).
    LineSearch,
    /// The objective returned NaN or ±inf (or such a gradient).
    NonFinite,
    /// The progress callback asked to stop.
    Stopped,
}

impl Status {
    pub fn success(self) -> bool {
        matches!(self, Status::Pgtol | Status::Factr)
    }
    pub fn message(self) -> &'static str {
        match self {
            Status::Pgtol => "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL",
            Status::Factr => "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH",
            Status::MaxIter => "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT",
            Status::MaxFun => "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT",
            Status::LineSearch => {
                "ABNORMAL: the line search found no acceptable step along the steepest descent"
            }
            Status::NonFinite => {
                "STOP: the objective or its gradient is not finite; returning the last finite point"
            }
            Status::Stopped => "STOP: the callback asked to stop",
        }
    }
}

/// What the progress callback sees after each iteration.
pub struct Progress<'a> {
    pub nit: usize,
    pub nfev: usize,
    pub f: f64,
    /// Infinity norm of the projected gradient.
    pub pgnorm: f64,
    /// Euclidean length of the step just taken.
    pub step: f64,
    pub x: &'a [f64],
}

/// The outcome: the last accepted iterate and how the run went.
#[derive(Clone, Debug)]
pub struct Report {
    pub x: Vec<f64>,
    pub f: f64,
    pub g: Vec<f64>,
    pub nit: usize,
    pub nfev: usize,
    pub status: Status,
    /// `f` at the start and after each iteration.
    pub history_f: Vec<f64>,
    /// The projected gradient's infinity norm at the same points.
    pub history_pgnorm: Vec<f64>,
}

/// The bounds, with `±inf` for a missing one.
struct Box<'a> {
    l: &'a [f64],
    u: &'a [f64],
}

impl Box<'_> {
    #[inline]
    fn has_l(&self, i: usize) -> bool {
        self.l[i] > f64::NEG_INFINITY
    }
    #[inline]
    fn has_u(&self, i: usize) -> bool {
        self.u[i] < f64::INFINITY
    }
    /// `‖P(x − g) − x‖∞`: the gradient with the components that push out of the box cut.
    fn pgnorm(&self, x: &[f64], g: &[f64]) -> f64 {
        let mut norm = 0.0f64;
        for i in 0..x.len() {
            let mut gi = g[i];
            if gi < 0.0 {
                if self.has_u(i) {
                    gi = gi.max(x[i] - self.u[i]);
                }
            } else if self.has_l(i) {
                gi = gi.min(x[i] - self.l[i]);
            }
            norm = norm.max(gi.abs());
        }
        norm
    }
}

/// The correction pairs, oldest first, and their inner products.
struct Memory {
    m: usize,
    s: VecDeque<Vec<f64>>,
    y: VecDeque<Vec<f64>>,
    /// `ss[i][j] = sᵢ·sⱼ`, `sy[i][j] = sᵢ·yⱼ`, `yy[i][j] = yᵢ·yⱼ`.
    ss: Vec<Vec<f64>>,
    sy: Vec<Vec<f64>>,
    yy: Vec<Vec<f64>>,
    /// `sᵢ·yᵢ`, oldest first.
    rho: VecDeque<f64>,
    /// Whether `ss`, `sy`, `yy` are kept (bounded problems); without bounds the direction
    /// comes from the two-loop recursion, which needs only `rho`.
    products: bool,
    theta: f64,
}

impl Memory {
    fn new(m: usize, products: bool) -> Memory {
        Memory {
            m: m.max(1),
            s: VecDeque::new(),
            y: VecDeque::new(),
            ss: vec![],
            sy: vec![],
            yy: vec![],
            rho: VecDeque::new(),
            products,
            theta: 1.0,
        }
    }

    /// `H g` for the inverse L-BFGS matrix `H = B⁻¹` with `H₀ = I/θ` (Nocedal's two-loop
    /// recursion): the same matrix as the compact form, in 4mn multiply-adds.
    fn two_loop(&self, g: &[f64]) -> Vec<f64> {
        let c = self.col();
        let mut q = g.to_vec();
        let mut alpha = vec![0.0; c];
        for k in (0..c).rev() {
            // αₖ = sₖ·q / sₖ·yₖ;  q ← q − αₖ yₖ
            alpha[k] = dot(&self.s[k], &q) / self.rho[k];
            axpy(-alpha[k], &self.y[k], &mut q);
        }
        let inv_theta = 1.0 / self.theta;
        q.iter_mut().for_each(|v| *v *= inv_theta);
        for (k, a) in alpha.iter().enumerate() {
            // βₖ = yₖ·r / sₖ·yₖ;  r ← r + (αₖ − βₖ) sₖ
            let beta = dot(&self.y[k], &q) / self.rho[k];
            axpy(a - beta, &self.s[k], &mut q);
        }
        q
    }

    fn col(&self) -> usize {
        self.s.len()
    }

    fn reset(&mut self) {
        *self = Memory::new(self.m, self.products);
    }

    fn push(&mut self, s: Vec<f64>, y: Vec<f64>) {
        if self.s.len() == self.m {
            self.s.pop_front();
            self.y.pop_front();
            self.rho.pop_front();
        }
        if !self.products {
            let sy = dot(&s, &y);
            // θ = yᵀy / sᵀy: the scaling of the initial matrix θI.
            self.theta = dot(&y, &y) / sy;
            self.rho.push_back(sy);
            self.s.push_back(s);
            self.y.push_back(y);
            return;
        }
        if self.ss.len() == self.m {
            for mat in [&mut self.ss, &mut self.sy, &mut self.yy] {
                mat.remove(0);
                for row in mat.iter_mut() {
                    row.remove(0);
                }
            }
        }
        let k = self.s.len();
        let ss_row: Vec<f64> = self
            .s
            .iter()
            .map(|sj| dot(&s, sj))
            .chain([dot(&s, &s)])
            .collect();
        let yy_row: Vec<f64> = self
            .y
            .iter()
            .map(|yj| dot(&y, yj))
            .chain([dot(&y, &y)])
            .collect();
        // Row k of SᵀY: s_k·y_j; column k: s_j·y_k.
        let sy_row: Vec<f64> = self
            .y
            .iter()
            .map(|yj| dot(&s, yj))
            .chain([dot(&s, &y)])
            .collect();
        let sy_col: Vec<f64> = self.s.iter().map(|sj| dot(sj, &y)).collect();
        for j in 0..k {
            self.ss[j].push(ss_row[j]);
            self.yy[j].push(yy_row[j]);
            self.sy[j].push(sy_col[j]);
        }
        self.ss.push(ss_row);
        self.yy.push(yy_row);
        self.sy.push(sy_row);
        // θ = yᵀy / sᵀy: the scaling of the initial matrix θI.
        self.theta = self.yy[k][k] / self.sy[k][k];
        self.rho.push_back(self.sy[k][k]);
        self.s.push_back(s);
        self.y.push_back(y);
    }

    /// `M⁻¹ = [[−D, Lᵀ], [L, θSᵀS]]`, `D = diag(sᵢ·yᵢ)`, `Lᵢⱼ = sᵢ·yⱼ` for `i > j`.
    fn mid_inv(&self) -> Mat {
        let c = self.col();
        let mut k = Mat::zeros(2 * c);
        for i in 0..c {
            k.set(i, i, -self.sy[i][i]);
            for j in 0..i {
                k.set(c + i, j, self.sy[i][j]);
                k.set(j, c + i, self.sy[i][j]);
            }
            for j in 0..c {
                k.set(c + i, c + j, self.theta * self.ss[i][j]);
            }
        }
        k
    }

    /// `WᵀW = [[YᵀY, θYᵀS], [θSᵀY, θ²SᵀS]]`.
    fn wtw(&self) -> Mat {
        let c = self.col();
        let t = self.theta;
        let mut k = Mat::zeros(2 * c);
        for i in 0..c {
            for j in 0..c {
                k.set(i, j, self.yy[i][j]);
                k.set(i, c + j, t * self.sy[j][i]);
                k.set(c + i, j, t * self.sy[i][j]);
                k.set(c + i, c + j, t * t * self.ss[i][j]);
            }
        }
        k
    }

    /// Row `i` of `W = [Y θS]`.
    fn w_row(&self, i: usize) -> Vec<f64> {
        let t = self.theta;
        self.y
            .iter()
            .map(|y| y[i])
            .chain(self.s.iter().map(|s| t * s[i]))
            .collect()
    }

    /// `Wᵀv` over all variables.
    fn wt(&self, v: &[f64]) -> Vec<f64> {
        let t = self.theta;
        self.y
            .iter()
            .map(|y| dot(y, v))
            .chain(self.s.iter().map(|s| t * dot(s, v)))
            .collect()
    }

    /// `out[i] += a · (W p)[i]` over all variables.
    fn add_w_times(&self, a: f64, p: &[f64], out: &mut [f64]) {
        let c = self.col();
        let t = self.theta;
        for k in 0..c {
            let (cy, cs) = (a * p[k], a * t * p[c + k]);
            for ((o, y), s) in out.iter_mut().zip(&self.y[k]).zip(&self.s[k]) {
                *o += cy * y + cs * s;
            }
        }
    }
}

/// The generalized Cauchy point: returns `x_cp`, `c = Wᵀ(x_cp − x)`, and which variables
/// stay free (not fixed at a bound on the way).
fn cauchy(
    x: &[f64],
    g: &[f64],
    bx: &Box,
    mem: &Memory,
    m_lu: Option<&Lu>,
) -> (Vec<f64>, Vec<f64>, Vec<bool>) {
    let n = x.len();
    let c2 = 2 * mem.col();
    let theta = mem.theta;
    let mut xcp = x.to_vec();
    let mut free = vec![true; n];
    let mut d = vec![0.0; n];
    let mut breaks: Vec<(f64, usize)> = Vec::new();
    for i in 0..n {
        // tᵢ: where x − t·g meets the bound that gᵢ's sign points to.
        let t = if g[i] < 0.0 && bx.has_u(i) {
            let tu = bx.u[i] - x[i];
            if tu <= 0.0 {
                free[i] = false;
                continue;
            }
            tu / -g[i]
        } else if g[i] > 0.0 && bx.has_l(i) {
            let tl = x[i] - bx.l[i];
            if tl <= 0.0 {
                free[i] = false;
                continue;
            }
            tl / g[i]
        } else {
            f64::INFINITY
        };
        d[i] = -g[i];
        if t.is_finite() {
            breaks.push((t, i));
        }
    }
    let mut c = vec![0.0; c2];
    let mtimes = |v: &[f64]| m_lu.map(|lu| lu.solve(v)).unwrap_or_default();
    let mut p = if c2 > 0 { mem.wt(&d) } else { vec![] };
    // f1 = m'(0) = gᵀd = −dᵀd; f2 = m''(0) = dᵀBd = θdᵀd − pᵀMp.
    let mut f1 = -dot(&d, &d);
    if f1 == 0.0 {
        return (xcp, c, free);
    }
    let mut f2 = -theta * f1 - if c2 > 0 { dot(&p, &mtimes(&p)) } else { 0.0 };
    let f2_org = f2;
    let mut dtm = -f1 / f2;
    let mut tsum = 0.0;
    breaks.sort_by(|a, b| a.0.total_cmp(&b.0));
    for &(t, b) in &breaks {
        let dt = t - tsum;
        if dtm < dt {
            break;
        }
        // The path reaches variable b's bound before the model's minimum: fix it there.
        xcp[b] = if d[b] > 0.0 { bx.u[b] } else { bx.l[b] };
        free[b] = false;
        let zb = xcp[b] - x[b];
        let gb = g[b];
        for (ci, pi) in c.iter_mut().zip(&p) {
            *ci += dt * pi;
        }
        tsum = t;
        // f1 ← f1 + Δt f2 + g_b² + θ g_b z_b − g_b w_bᵀMc
        // f2 ← f2 − θ g_b² − 2 g_b w_bᵀMp − g_b² w_bᵀMw_b;  p ← p + g_b w_b
        f1 += dt * f2 + gb * gb + theta * gb * zb;
        f2 -= theta * gb * gb;
        if c2 > 0 {
            let wb = mem.w_row(b);
            let v = mtimes(&wb);
            f1 -= gb * dot(&c, &v);
            f2 -= 2.0 * gb * dot(&p, &v) + gb * gb * dot(&wb, &v);
            for (pi, wi) in p.iter_mut().zip(&wb) {
                *pi += gb * wi;
            }
        }
        d[b] = 0.0;
        f2 = f2.max(EPS * f2_org);
        dtm = -f1 / f2;
    }
    let dtm = dtm.max(0.0);
    tsum += dtm;
    for i in 0..n {
        if d[i] != 0.0 {
            xcp[i] = x[i] + tsum * d[i];
        }
    }
    for (ci, pi) in c.iter_mut().zip(&p) {
        *ci += dtm * pi;
    }
    (xcp, c, free)
}

/// Minimizes the model over the free variables from `x_cp` (direct primal method), then
/// projects onto the box; falls back to truncating the step when the projection is not a
/// descent direction from `x`. Returns the point `x̄` the line search aims at.
#[allow(clippy::too_many_arguments)]
fn subspace(
    x: &[f64],
    g: &[f64],
    bx: &Box,
    xcp: Vec<f64>,
    c: &[f64],
    free: &[bool],
    mem: &Memory,
    m_lu: Option<&Lu>,
) -> Vec<f64> {
    let n = x.len();
    let col = mem.col();
    let idx: Vec<usize> = (0..n).filter(|&i| free[i]).collect();
    let (Some(m_lu), false, true) = (m_lu, idx.is_empty(), col > 0) else {
        return xcp;
    };
    let theta = mem.theta;
    let all = idx.len() == n;
    // Reduced gradient of the model at x_cp: r = Zᵀ(g + θ(x_cp − x) − W M c).
    let mut r_full: Vec<f64> = (0..n).map(|i| g[i] + theta * (xcp[i] - x[i])).collect();
    if c.iter().any(|&v| v != 0.0) {
        mem.add_w_times(-1.0, &m_lu.solve(c), &mut r_full);
    }
    for i in 0..n {
        if !free[i] {
            r_full[i] = 0.0;
        }
    }
    // Zᵀr zero-padded, so Wᵀ(padded r) = (ZᵀW)ᵀ(Zᵀr).
    let wtr = mem.wt(&r_full);
    let mut wzwz = if all || n - idx.len() < idx.len() {
        let mut k = mem.wtw();
        for i in (0..n).filter(|&i| !free[i]) {
            let w = mem.w_row(i);
            for a in 0..2 * col {
                for b in 0..2 * col {
                    k.a[a * 2 * col + b] -= w[a] * w[b];
                }
            }
        }
        k
    } else {
        let mut k = Mat::zeros(2 * col);
        for &i in &idx {
            let w = mem.w_row(i);
            for a in 0..2 * col {
                for b in 0..2 * col {
                    k.a[a * 2 * col + b] += w[a] * w[b];
                }
            }
        }
        k
    };
    // K = M⁻¹ − (1/θ) ZᵀWᵀWZ; du = −r/θ − (1/θ²) Zᵀ W K⁻¹ WᵀZ r (Sherman–Morrison–Woodbury).
    let kinv = mem.mid_inv();
    for (kv, mv) in wzwz.a.iter_mut().zip(&kinv.a) {
        *kv = mv - *kv / theta;
    }
    let Some(k_lu) = Lu::new(wzwz) else {
        return xcp;
    };
    let v = k_lu.solve(&wtr);
    let mut du: Vec<f64> = r_full.iter().map(|r| -r / theta).collect();
    mem.add_w_times(-1.0 / (theta * theta), &v, &mut du);

    // Project x_cp + du onto the box.
    let mut z = xcp.clone();
    let mut hit = false;
    for &i in &idx {
        let mut zi = xcp[i] + du[i];
        if bx.has_l(i) && zi <= bx.l[i] {
            zi = bx.l[i];
            hit = true;
        }
        if bx.has_u(i) && zi >= bx.u[i] {
            zi = bx.u[i];
            hit = true;
        }
        z[i] = zi;
    }
    if !hit {
        return z;
    }
    let ddp: f64 = (0..n).map(|i| (z[i] - x[i]) * g[i]).sum();
    if ddp <= 0.0 {
        return z;
    }
    // Not a descent direction: take the longest step α ≤ 1 along du that stays feasible.
    let mut alpha = 1.0f64;
    let mut ibd = None;
    for &i in &idx {
        let di = du[i];
        let lim = if di < 0.0 && bx.has_l(i) {
            let room = bx.l[i] - xcp[i];
            if room >= 0.0 {
                0.0
            } else if di * alpha < room {
                room / di
            } else {
                alpha
            }
        } else if di > 0.0 && bx.has_u(i) {
            let room = bx.u[i] - xcp[i];
            if room <= 0.0 {
                0.0
            } else if di * alpha > room {
                room / di
            } else {
                alpha
            }
        } else {
            alpha
        };
        if lim < alpha {
            alpha = lim;
            ibd = Some(i);
        }
    }
    let mut z = xcp;
    for &i in &idx {
        z[i] += alpha * du[i];
    }
    if let Some(i) = ibd {
        if alpha < 1.0 {
            z[i] = if du[i] > 0.0 { bx.u[i] } else { bx.l[i] };
        }
    }
    z
}

/// Minimizes `fg` from `x0` within `[lower, upper]` (use `±inf` for no bound). `fg(x, g)`
/// returns `f(x)` and writes `∇f(x)` into `g`; an `Err` from it (or from `progress`)
/// ends the run and is returned. `progress` runs after each iteration; `Ok(true)` stops.
pub fn lbfgsb<E>(
    mut fg: impl FnMut(&[f64], &mut [f64]) -> Result<f64, E>,
    x0: &[f64],
    lower: &[f64],
    upper: &[f64],
    opts: &Options,
    mut progress: impl FnMut(&Progress) -> Result<bool, E>,
) -> Result<Report, E> {
    let n = x0.len();
    assert!(
        lower.len() == n && upper.len() == n,
        "bounds must have the length of x0"
    );
    let bx = Box { l: lower, u: upper };
    let constrained = (0..n).any(|i| bx.has_l(i) || bx.has_u(i));
    let boxed = (0..n).all(|i| bx.has_l(i) && bx.has_u(i));
    let mut x: Vec<f64> = (0..n).map(|i| x0[i].max(lower[i]).min(upper[i])).collect();
    let mut g = vec![0.0; n];
    let mut f = fg(&x, &mut g)?;
    let mut nfev = 1usize;
    let finite = |f: f64, g: &[f64]| f.is_finite() && g.iter().all(|v| v.is_finite());
    let mut rep = Report {
        x: vec![],
        f,
        g: vec![],
        nit: 0,
        nfev,
        status: Status::NonFinite,
        history_f: vec![],
        history_pgnorm: vec![],
    };
    macro_rules! finish {
        ($status:expr, $nit:expr) => {{
            rep.status = $status;
            rep.nit = $nit;
            rep.nfev = nfev;
            rep.f = f;
            rep.x = x;
            rep.g = g;
            return Ok(rep);
        }};
    }
    if !finite(f, &g) {
        finish!(Status::NonFinite, 0);
    }
    let mut pg = bx.pgnorm(&x, &g);
    rep.history_f.push(f);
    rep.history_pgnorm.push(pg);
    if pg <= opts.pgtol {
        finish!(Status::Pgtol, 0);
    }
    let mut mem = Memory::new(opts.m, constrained);
    let mut nit = 0usize;
    let mut xt = vec![0.0; n];
    let mut gt = vec![0.0; n];
    loop {
        let z = if !constrained && mem.col() > 0 {
            // No bounds: the GCP step is skipped, every variable is free, and the subspace
            // step is the quasi-Newton step −Hg.
            let hg = mem.two_loop(&g);
            x.iter().zip(&hg).map(|(xi, hi)| xi - hi).collect()
        } else {
            let m_lu = if mem.col() > 0 {
                Lu::new(mem.mid_inv())
            } else {
                None
            };
            if mem.col() > 0 && m_lu.is_none() {
                mem.reset();
                continue;
            }
            let (xcp, c, free) = cauchy(&x, &g, &bx, &mem, m_lu.as_ref());
            subspace(&x, &g, &bx, xcp, &c, &free, &mem, m_lu.as_ref())
        };
        let d: Vec<f64> = z.iter().zip(&x).map(|(a, b)| a - b).collect();
        let gd = dot(&g, &d);
        // The largest step keeping x + stp·d in the box.
        let mut stpmax = 1e10f64;
        if constrained {
            if nit == 0 {
                stpmax = 1.0;
            } else {
                for i in 0..n {
                    let di = d[i];
                    if di < 0.0 && bx.has_l(i) {
                        let room = bx.l[i] - x[i];
                        if room >= 0.0 {
                            stpmax = 0.0;
                        } else if di * stpmax < room {
                            stpmax = room / di;
                        }
                    } else if di > 0.0 && bx.has_u(i) {
                        let room = bx.u[i] - x[i];
                        if room <= 0.0 {
                            stpmax = 0.0;
                        } else if di * stpmax > room {
                            stpmax = room / di;
                        }
                    }
                }
            }
        }
        let dnorm = dot(&d, &d).sqrt();
        let mut stp = if nit == 0 && !boxed {
            (1.0 / dnorm).min(stpmax)
        } else {
            1.0
        };
        let mut accepted = false;
        let mut ft = f;
        if gd < 0.0 && stpmax > 0.0 && stp <= stpmax {
            let params = Params {
                ftol: 1e-3,
                gtol: 0.9,
                xtol: 0.1,
                stpmin: 0.0,
                stpmax,
            };
            let mut ls = MoreThuente::new(params, f, gd, stp);
            for _ in 0..opts.maxls.max(1) {
                if stp == 1.0 {
                    xt.copy_from_slice(&z);
                } else {
                    for i in 0..n {
                        xt[i] = x[i] + stp * d[i];
                    }
                    if constrained {
                        for i in 0..n {
                            xt[i] = xt[i].max(lower[i]).min(upper[i]);
                        }
                    }
                }
                ft = fg(&xt, &mut gt)?;
                nfev += 1;
                if !finite(ft, &gt) {
                    // outside the objective's domain (log of a negative, an overflow):
                    // back off toward x and start the line search again from there, as
                    // SciPy's driver does; only a step that cannot shrink further stops
                    stp *= 0.5;
                    if stp < 1e-20 {
                        finish!(Status::NonFinite, nit);
                    }
                    ls = MoreThuente::new(params, f, gd, stp);
                    continue;
                }
                match ls.next(&mut stp, ft, dot(&gt, &d)) {
                    Verdict::Evaluate => {}
                    Verdict::Converged | Verdict::Warning(_) => {
                        accepted = true;
                        break;
                    }
                }
            }
        }
        if !accepted {
            if mem.col() == 0 {
                finish!(Status::LineSearch, nit);
            }
            // Drop the memory and retry from steepest descent.
            mem.reset();
            continue;
        }
        let s: Vec<f64> = xt.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gt.iter().zip(&g).map(|(a, b)| a - b).collect();
        let gs_old = dot(&g, &s);
        let f_old = f;
        std::mem::swap(&mut x, &mut xt);
        std::mem::swap(&mut g, &mut gt);
        f = ft;
        nit += 1;
        pg = bx.pgnorm(&x, &g);
        rep.history_f.push(f);
        rep.history_pgnorm.push(pg);
        let step = dot(&s, &s).sqrt();
        if progress(&Progress {
            nit,
            nfev,
            f,
            pgnorm: pg,
            step,
            x: &x,
        })? {
            finish!(Status::Stopped, nit);
        }
        if nit >= opts.maxiter {
            finish!(Status::MaxIter, nit);
        }
        if nfev > opts.maxfun {
            finish!(Status::MaxFun, nit);
        }
        if pg <= opts.pgtol {
            finish!(Status::Pgtol, nit);
        }
        if f_old - f <= opts.factr * EPS * f_old.abs().max(f.abs()).max(1.0) {
            finish!(Status::Factr, nit);
        }
        // Keep the pair only with enough curvature: sᵀy > ε·(−gₖᵀs).
        if dot(&s, &y) > EPS * -gs_old {
            mem.push(s, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosen(x: &[f64], g: &mut [f64]) -> Result<f64, ()> {
        let n = x.len();
        let mut f = 0.0;
        g.iter_mut().for_each(|v| *v = 0.0);
        for i in 0..n - 1 {
            let a = x[i + 1] - x[i] * x[i];
            let b = 1.0 - x[i];
            f += 100.0 * a * a + b * b;
            // ∂/∂x_i = −400 x_i a − 2b; ∂/∂x_{i+1} = 200 a
            g[i] += -400.0 * x[i] * a - 2.0 * b;
            g[i + 1] += 200.0 * a;
        }
        Ok(f)
    }

    fn run(
        x0: &[f64],
        l: &[f64],
        u: &[f64],
        f: fn(&[f64], &mut [f64]) -> Result<f64, ()>,
    ) -> Report {
        lbfgsb(f, x0, l, u, &Options::default(), |_| Ok(false)).unwrap()
    }

    #[test]
    fn rosenbrock_unbounded_reaches_ones() {
        let n = 10;
        let inf = vec![f64::INFINITY; n];
        let ninf = vec![f64::NEG_INFINITY; n];
        let r = run(&vec![0.0; n], &ninf, &inf, rosen);
        assert!(r.status.success(), "{:?}", r.status);
        for v in &r.x {
            assert!((v - 1.0).abs() < 1e-4, "{:?}", r.x);
        }
        assert_eq!(r.history_f.len(), r.nit + 1);
    }

    #[test]
    fn bounds_are_active_at_the_solution_and_never_left() {
        // Rosenbrock with x_i ≤ 0.5: the solution sits on the upper bound for the first.
        let n = 4;
        let u = vec![0.5; n];
        let l = vec![-2.0; n];
        let mut inside = true;
        let r = lbfgsb(
            |x: &[f64], g: &mut [f64]| {
                inside &= x.iter().all(|v| (-2.0..=0.5).contains(v));
                rosen(x, g)
            },
            &[-1.0; 4],
            &l,
            &u,
            &Options::default(),
            |_| Ok(false),
        )
        .unwrap();
        assert!(inside);
        assert!(r.status.success(), "{:?}", r.status);
        assert!((r.x[0] - 0.5).abs() < 1e-8, "{:?}", r.x);
        assert!(Box { l: &l, u: &u }.pgnorm(&r.x, &r.g) <= 1e-3);
    }

    #[test]
    fn nan_stops_with_the_last_finite_point() {
        let r = lbfgsb(
            |x: &[f64], g: &mut [f64]| -> Result<f64, ()> {
                g[0] = 2.0 * (x[0] - 5.0);
                Ok(if x[0] > 1.0 {
                    f64::NAN
                } else {
                    (x[0] - 5.0).powi(2)
                })
            },
            &[0.0],
            &[f64::NEG_INFINITY],
            &[f64::INFINITY],
            &Options::default(),
            |_| Ok(false),
        )
        .unwrap();
        // backs off the NaN region, then cannot go on toward the minimum beyond it
        assert!(!r.status.success(), "{:?}", r.status);
        assert!(r.x[0] <= 1.0 && r.f.is_finite());
        assert!(r.x[0] > 0.99, "{:?}", r.x); // it went as far as the domain allows
    }

    #[test]
    fn a_step_outside_the_domain_is_backed_off_not_a_stop() {
        // Σ x − log x from 5: the first full step lands at x < 0 (log undefined); SciPy's
        // driver backs off and reaches the minimum at 1
        let r = lbfgsb(
            |x: &[f64], g: &mut [f64]| -> Result<f64, ()> {
                let mut f = 0.0;
                for i in 0..x.len() {
                    g[i] = 1.0 - 1.0 / x[i];
                    f += x[i] - x[i].ln();
                }
                Ok(f)
            },
            &[5.0; 3],
            &[f64::NEG_INFINITY; 3],
            &[f64::INFINITY; 3],
            &Options::default(),
            |_| Ok(false),
        )
        .unwrap();
        assert!(r.status.success(), "{:?}", r.status);
        assert!(r.x.iter().all(|v| (v - 1.0).abs() < 1e-5), "{:?}", r.x);
    }

    #[test]
    fn callback_can_stop_and_errors_propagate() {
        let inf = [f64::INFINITY; 3];
        let ninf = [f64::NEG_INFINITY; 3];
        let r = lbfgsb(rosen, &[0.0; 3], &ninf, &inf, &Options::default(), |p| {
            Ok(p.nit >= 2)
        })
        .unwrap();
        assert_eq!((r.status, r.nit), (Status::Stopped, 2));
        let e = lbfgsb(
            |_: &[f64], _: &mut [f64]| Err::<f64, _>("boom"),
            &[0.0],
            &[0.0],
            &[1.0],
            &Options::default(),
            |_| Ok(false),
        );
        assert_eq!(e.unwrap_err(), "boom");
    }
}
