//! Indexing: `x[key]` and `x[key] = v` on traced arrays.
//!
//! Basic keys (ints, slices, None, Ellipsis) become `Slice` (+ `Reshape`) and
//! `SetSlice`; any other key (integer arrays, lists, boolean masks) is resolved by
//! indexing an array of flat positions with the same key, giving a `Gather` or `Scatter`
//! whose indices are constants. Symbolic parts of a key are integers or booleans made
//! concrete under guards; `x[mask] = scalar` with a traced mask becomes a `Where`.

use autodiff_ir::{DType, NodeId, Op, Shape, SliceDim};
use pyo3::prelude::*;
use pyo3::types::{PyEllipsis, PyInt, PySlice, PyTuple};

use super::{unsupported, Res, Tracer, Val};
use crate::convert;

impl<'py> Tracer<'py> {
    fn is_array(&self, o: &Bound<'py, PyAny>) -> bool {
        o.is_instance(&self.r.ndarray).unwrap_or(false)
            || o.is_instance(&self.r.generic).unwrap_or(false)
    }

    /// Key items as a tuple (a lone key becomes a 1-tuple).
    fn key_items(&self, k: &Bound<'py, PyAny>) -> Vec<Bound<'py, PyAny>> {
        match k.downcast::<PyTuple>() {
            Ok(t) => t.iter().collect(),
            Err(_) => vec![k.clone()],
        }
    }

    /// Makes the symbolic parts of a key concrete under guards.
    fn concrete_key(&mut self, k: &Val<'py>) -> Res<()> {
        if !self.deep_sym(k) {
            return Ok(());
        }
        for item in self.key_items(k.obj()) {
            let v = if item.is(k.obj()) {
                k.clone()
            } else {
                Val::new(item)
            };
            if self.sym(&v).is_some() {
                self.concretize(&v, "an index")?;
            }
        }
        if self.sym(k).is_some() && k.obj().downcast::<PyTuple>().is_ok() {
            self.concretize(k, "an index")?;
        }
        Ok(())
    }

    /// The slice of a basic key over `shape`, or `None` if the key is not basic.
    fn basic_dims(&self, k: &Bound<'py, PyAny>, shape: &Shape) -> Res<Option<Vec<SliceDim>>> {
        let items = self.key_items(k);
        let consumed = items
            .iter()
            .filter(|i| !i.is_none() && !i.is_instance_of::<PyEllipsis>())
            .count();
        if consumed > shape.len() {
            return Ok(None);
        }
        let mut dims = vec![];
        let mut ax = 0;
        for it in &items {
            if it.is_none() {
                continue;
            }
            if it.is_instance_of::<PyEllipsis>() {
                let skip = shape.len() - consumed;
                for _ in 0..skip {
                    dims.push(SliceDim {
                        start: 0,
                        step: 1,
                        len: shape[ax],
                    });
                    ax += 1;
                }
                continue;
            }
            let n = shape[ax];
            if let Ok(s) = it.downcast::<PySlice>() {
                let ind = s.indices(n as isize)?;
                let (start, step, len) = (ind.start, ind.step as i64, ind.slicelength);
                dims.push(SliceDim {
                    start: if len == 0 { 0 } else { start as usize },
                    step,
                    len,
                });
            } else if it.is_instance_of::<PyInt>()
                || (it.is_instance(&self.r.generic)?
                    && it.getattr("dtype")?.getattr("kind")?.extract::<String>()? == "i")
            {
                let i: i64 = it.extract()?;
                let j = if i < 0 { i + n as i64 } else { i };
                if j < 0 || j >= n as i64 {
                    return Ok(None); // NumPy raises the IndexError on the real call.
                }
                dims.push(SliceDim {
                    start: j as usize,
                    step: 1,
                    len: 1,
                });
            } else {
                return Ok(None);
            }
            ax += 1;
        }
        while ax < shape.len() {
            dims.push(SliceDim {
                start: 0,
                step: 1,
                len: shape[ax],
            });
            ax += 1;
        }
        Ok(Some(dims))
    }

    /// Flat positions that `x[key]` reads, as an int64 constant node.
    fn positions(&mut self, shape: &Shape, k: &Bound<'py, PyAny>) -> Res<(NodeId, Shape)> {
        let np = self.r.np.clone();
        let size: usize = shape.iter().product();
        let pos = np
            .call_method1("arange", (size,))?
            .call_method1("reshape", (shape.clone(),))?;
        let p = np.call_method1("asarray", (pos.get_item(k)?, "int64"))?;
        let pshape: Shape = p.getattr("shape")?.extract()?;
        Ok((self.g.constant(convert::to_tensor(&p)?), pshape))
    }

    /// A basic-slice view of an untracked array the function owns (`y = np.zeros(6)`;
    /// `y[1:3]`) is recorded, so that a traced write through it (`y[1:3] += x[1:3]`,
    /// `row = y[0]; row += x`) updates `y` instead of leaving it stale.
    fn note_untracked_view(
        &mut self,
        base: &Bound<'py, PyAny>,
        k: &Bound<'py, PyAny>,
        view: &Bound<'py, PyAny>,
    ) -> Res<()> {
        if !view.is_instance(&self.r.ndarray)?
            || !base.is_instance(&self.r.ndarray)?
            || view.getattr("base")?.is_none()
            || self.is_foreign(base)
            || !view.getattr("flags")?.getattr("writeable")?.is_truthy()?
        {
            return Ok(());
        }
        let Some((shape, _)) = convert::shape_dtype(base)? else {
            return Ok(());
        };
        if let Some(dims) = self.basic_dims(k, &shape)? {
            self.note_view(view, base, dims);
        }
        Ok(())
    }

    pub fn getitem(&mut self, c: &Val<'py>, k: &Val<'py>) -> Res<Val<'py>> {
        let csym = self.sym(c).is_some();
        if !csym && !self.deep_sym(k) {
            self.check_not_stale(c.obj())?;
            let out = c.obj().get_item(k.obj())?;
            self.note_untracked_view(c.obj(), k.obj(), &out)?;
            if super::is_namespace(c.obj()) {
                // `globals()["X"]`: a global read.
                if let Ok(key) = k.obj().extract::<String>() {
                    self.note_source("global", c.obj(), &key, &out)?;
                }
            } else if self.is_foreign(c.obj()) {
                self.mark_foreign(&out);
            }
            return Ok(Val::new(out));
        }
        if !self.is_array(c.obj()) {
            let conc = self
                .r
                .np
                .getattr("lib")
                .and_then(|l| l.getattr("_index_tricks_impl"))
                .and_then(|m| m.getattr("AxisConcatenator"));
            if conc.is_ok_and(|t| c.obj().is_instance(&t).unwrap_or(false)) {
                // `np.r_[a, 0.0, b]`, `np.c_[...]` with traced parts: a concatenation.
                if let Some(f) = self.pure_fn("concat_getitem") {
                    return self.call_pure(&f, vec![c.clone(), k.clone()], vec![]);
                }
            }
            self.concrete_key(k)?;
            return Ok(Val::new(c.obj().get_item(k.obj())?));
        }
        self.concrete_key(k)?;
        let res = c.obj().get_item(k.obj())?;
        let x = self.node(c)?;
        let shape = self.g.shape(x).clone();
        if let Some(dims) = self.basic_dims(k.obj(), &shape)? {
            let s = self.g.slice(x, dims.clone())?;
            let out = self.track(res.clone(), s)?;
            if res.is_instance(&self.r.ndarray)? && !res.getattr("base")?.is_none() {
                self.note_view(out.obj(), c.obj(), dims);
            }
            return Ok(out);
        }
        let (idx, _) = self.positions(&shape, k.obj())?;
        let size = shape.iter().product::<usize>();
        let fx = self.g.reshape(x, &[size])?;
        let out = self.g.add(Op::Gather(0), vec![fx, idx])?;
        self.track(res, out)
    }

    pub fn setitem(&mut self, c: &Val<'py>, k: &Val<'py>, v: &Val<'py>) -> Res<()> {
        let o = c.obj();
        self.check_owned(o, "`x[...] = v`")?;
        if super::type_name(o) == "flatiter" {
            let base = o.getattr("base")?;
            if self.deep_sym(v) || self.deep_sym(k) || self.sym_obj(&base).is_some() {
                return unsupported(
                    "a write through `.flat` (also used by np.fill_diagonal) with traced values: \
                     it writes memory behind the engine's back, so the result would be a constant \
                     of the trace. Build the array with indexing instead, e.g. \
                     `a[np.arange(n), np.arange(n)] = v` or `a = a + np.diag(v)`",
                );
            }
            self.check_owned(&base, "a write through `.flat`")?;
        }
        if !self.is_array(o) || (self.sym(c).is_none() && !self.deep_sym(v) && !self.deep_sym(k)) {
            self.concrete_key(k)?;
            o.set_item(k.obj(), self.escape(v)?)?;
            return Ok(());
        }
        if !o.is_instance(&self.r.ndarray)? {
            return unsupported("item assignment on a NumPy scalar");
        }
        let x = self.node(c)?;
        let shape = self.g.shape(x).clone();
        let dt = self.g.dtype(x);
        // x[mask] = v with a traced boolean mask of x's shape: a select, no guard needed.
        if let Some(m) = self.sym(k) {
            let scalarish = convert::shape_dtype(v.obj())?
                .is_some_and(|(s, _)| s.iter().product::<usize>() == 1);
            if self.g.dtype(m) == DType::Bool && self.g.shape(m) == &shape && scalarish {
                let vn = self.arr_node(v)?;
                let vn = self.g.cast(vn, dt)?;
                let vn = self.g.reshape(vn, &[])?;
                let new = self.g.select(m, vn, x)?;
                o.set_item(k.obj(), v.obj())?;
                return self.update(o, new);
            }
        }
        self.concrete_key(k)?;
        let target: Shape = self
            .r
            .np
            .call_method1("shape", (o.get_item(k.obj())?,))?
            .extract()?;
        let vn = self.arr_node(v)?;
        let vn = self.g.cast(vn, dt)?;
        // As NumPy: a value with more axes than the target loses its leading length-1 axes
        // (`v[0] = w[None]`, `v[:2] = ones((1, 1, n))`).
        let vs = self.g.shape(vn).clone();
        let extra = vs.len().saturating_sub(target.len());
        let vn = if extra > 0 && vs[..extra].iter().all(|&d| d == 1) {
            self.g.reshape(vn, &vs[extra..])?
        } else {
            vn
        };
        let vn = match self.g.broadcast(vn, &target) {
            Ok(n) => n,
            Err(_) => {
                o.set_item(k.obj(), v.obj())?; // NumPy raises the real error.
                return unsupported("internal: assignment shapes do not broadcast");
            }
        };
        let new = match self.basic_dims(k.obj(), &shape)? {
            Some(dims) => {
                let lens: Shape = dims.iter().map(|d| d.len).collect();
                let vr = self.g.reshape(vn, &lens)?;
                self.g.add(Op::SetSlice(dims), vec![x, vr])?
            }
            None => {
                let (idx, pshape) = self.positions(&shape, k.obj())?;
                let n: usize = pshape.iter().product();
                let size: usize = shape.iter().product();
                let idx = self.g.reshape(idx, &[n])?;
                let vflat = self.g.reshape(vn, &[n])?;
                let fx = self.g.reshape(x, &[size])?;
                let sc = self.g.add(Op::Scatter(0), vec![fx, idx, vflat])?;
                self.g.reshape(sc, &shape)?
            }
        };
        o.set_item(k.obj(), v.obj())?;
        self.update(o, new)
    }
}
