//! Strided views: where a value's elements live (an input, a constant or an arena slot)
//! and how a multi-index maps to an offset. `Broadcast`, `Transpose`, `Slice` and (on
//! contiguous data) `Reshape` are views and cost nothing until something reads them.

use autodiff_ir::SliceDim;

/// A buffer: graph input `k`, materialized constant `c`, or arena slot `s` (virtual slot
/// ids at compile time, mapped to physical slots by the buffer planner).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Loc {
    Input(u32),
    Const(u32),
    Slot(u32),
}

/// `element(idx) = buf[offset + Σ idx_d · strides_d]`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct View {
    pub loc: Loc,
    pub offset: isize,
    pub shape: Vec<usize>,
    pub strides: Vec<isize>,
}

/// Row-major strides of a shape.
pub(crate) fn std_strides(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![1isize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as isize;
    }
    s
}

impl View {
    pub fn contiguous(loc: Loc, shape: &[usize]) -> View {
        View {
            loc,
            offset: 0,
            shape: shape.to_vec(),
            strides: std_strides(shape),
        }
    }

    pub fn size(&self) -> usize {
        self.shape.iter().product()
    }

    /// Row-major and dense (any offset): the elements are `buf[offset..offset + size]`.
    pub fn is_contiguous(&self) -> bool {
        let mut expect = 1isize;
        for (&n, &s) in self.shape.iter().zip(&self.strides).rev() {
            if n != 1 && s != expect {
                return false;
            }
            expect *= n as isize;
        }
        true
    }

    /// Every element is the same buffer element.
    pub fn is_splat(&self) -> bool {
        self.shape
            .iter()
            .zip(&self.strides)
            .all(|(&n, &s)| n == 1 || s == 0)
    }

    /// NumPy broadcast (right-aligned) to `to`.
    pub fn broadcast(&self, to: &[usize]) -> View {
        let off = to.len() - self.shape.len();
        let strides = (0..to.len())
            .map(|i| {
                if i < off || (self.shape[i - off] == 1 && to[i] != 1) {
                    0
                } else {
                    self.strides[i - off]
                }
            })
            .collect();
        View {
            loc: self.loc,
            offset: self.offset,
            shape: to.to_vec(),
            strides,
        }
    }

    /// Output axis i is input axis `perm[i]`.
    pub fn transpose(&self, perm: &[usize]) -> View {
        View {
            loc: self.loc,
            offset: self.offset,
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
        }
    }

    pub fn slice(&self, dims: &[SliceDim]) -> View {
        let mut offset = self.offset;
        let mut strides = Vec::with_capacity(dims.len());
        for (d, &s) in dims.iter().zip(&self.strides) {
            if d.len > 0 {
                offset += d.start as isize * s;
            }
            strides.push(s * d.step as isize);
        }
        View {
            loc: self.loc,
            offset,
            shape: dims.iter().map(|d| d.len).collect(),
            strides,
        }
    }

    /// Same row-major elements, new shape; only for contiguous views.
    pub fn reshape(&self, to: &[usize]) -> Option<View> {
        self.is_contiguous().then(|| View {
            loc: self.loc,
            offset: self.offset,
            shape: to.to_vec(),
            strides: std_strides(to),
        })
    }

    /// Equivalent (shape, strides) with size-1 axes dropped and mergeable neighbours merged
    /// (fewer axes for the odometer).
    pub fn collapsed(&self) -> (Vec<usize>, Vec<isize>) {
        collapse(&self.shape, &self.strides)
    }
}

/// Drops size-1 axes and merges neighbours `(n1, s1), (n2, s2)` with `s1 == s2 * n2`.
pub(crate) fn collapse(shape: &[usize], strides: &[isize]) -> (Vec<usize>, Vec<isize>) {
    let mut sh: Vec<usize> = vec![];
    let mut st: Vec<isize> = vec![];
    for (&n, &s) in shape.iter().zip(strides) {
        if n == 1 {
            continue;
        }
        if let (Some(&ln), Some(&ls)) = (sh.last(), st.last()) {
            if ls == s * n as isize {
                *sh.last_mut().expect("nonempty") = ln * n;
                *st.last_mut().expect("nonempty") = s;
                continue;
            }
        }
        sh.push(n);
        st.push(s);
    }
    (sh, st)
}

/// Gathers elements `[start, start + out.len())` (row-major positions in the view's shape)
/// of a strided view into `out`. `shape`/`strides` should be collapsed.
///
/// # Safety
/// `base` offset by every visited position must be in bounds of the buffer.
pub(crate) unsafe fn gather_strided(
    base: *const f64,
    offset: isize,
    shape: &[usize],
    strides: &[isize],
    start: usize,
    out: &mut [f64],
) {
    if out.is_empty() {
        return;
    }
    let r = shape.len();
    if r == 0 {
        out.fill(*base.offset(offset));
        return;
    }
    if r == 1 {
        let s = strides[0];
        let mut p = base.offset(offset + start as isize * s);
        if s == 1 {
            std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len());
        } else if s == 0 {
            out.fill(*p);
        } else {
            for o in out.iter_mut() {
                *o = *p;
                p = p.offset(s);
            }
        }
        return;
    }
    // Odometer over the outer axes, tight loop over the innermost.
    let mut idx = [0usize; 16];
    let mut idx_v;
    let idx: &mut [usize] = if r <= 16 {
        &mut idx[..r]
    } else {
        idx_v = vec![0usize; r];
        &mut idx_v
    };
    let mut rem = start;
    for d in (0..r).rev() {
        idx[d] = rem % shape[d];
        rem /= shape[d];
    }
    let mut pos: isize = offset + (0..r).map(|d| idx[d] as isize * strides[d]).sum::<isize>();
    let (inner_n, inner_s) = (shape[r - 1], strides[r - 1]);
    let mut k = 0;
    let n = out.len();
    while k < n {
        let run = (inner_n - idx[r - 1]).min(n - k);
        let p = base.offset(pos);
        if inner_s == 1 {
            std::ptr::copy_nonoverlapping(p, out.as_mut_ptr().add(k), run);
        } else if inner_s == 0 {
            out[k..k + run].fill(*p);
        } else {
            for j in 0..run {
                out[k + j] = *p.offset(j as isize * inner_s);
            }
        }
        k += run;
        // advance the odometer by `run` along the innermost axis
        idx[r - 1] += run;
        pos += run as isize * inner_s;
        let mut d = r - 1;
        while idx[d] == shape[d] && d > 0 {
            pos -= shape[d] as isize * strides[d];
            idx[d] = 0;
            d -= 1;
            idx[d] += 1;
            pos += strides[d];
        }
    }
}
