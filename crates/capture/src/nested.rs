//! Derivatives inside traced code: a call to `autodiff.grad(f)`, `value_and_grad`,
//! `Gradient`, `jacobian` or `hessian` on traced values is inlined — `f` is traced into the
//! same graph and the transform is applied there — so `grad(grad(f))`, the Hessian of a
//! traced function, or a loss that calls `autodiff.grad` are all one graph, differentiable
//! again. Each differentiated argument enters `f` through an identity node of its own, so
//! the derivative is with respect to the argument only (values `f` closes over are
//! constants for it, as in JAX).

use autodiff_ir::{DType, NodeId, Op};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::{unsupported, Res, Tracer, Val};
use crate::convert;

impl<'py> Tracer<'py> {
    /// Handles a callable carrying `__autodiff__ = (kind, fn, argnums, with_value, style)`.
    pub fn call_transformed(
        &mut self,
        callee: &Bound<'py, PyAny>,
        spec: &Bound<'py, PyAny>,
        args: Vec<Val<'py>>,
        kwargs: Vec<(String, Val<'py>)>,
    ) -> Res<Val<'py>> {
        let real_call = |args: &[Val<'py>]| -> PyResult<Bound<'py, PyAny>> {
            let py = callee.py();
            let a = PyTuple::new(py, args.iter().map(|v| v.obj().clone()))?;
            let kw = PyDict::new(py);
            for (k, v) in &kwargs {
                kw.set_item(k, v.obj())?;
            }
            callee.call(a, Some(&kw))
        };
        if !args.iter().any(|a| self.deep_sym(a)) && !kwargs.iter().any(|(_, v)| self.deep_sym(v)) {
            return Ok(Val::new(real_call(&args)?));
        }
        let (kind, func, argnums, with_value, style): (
            String,
            Bound<'py, PyAny>,
            Option<Vec<usize>>,
            bool,
            String,
        ) = spec.extract()?;
        let argnums = match argnums {
            Some(a) => a,
            None => (0..args.len())
                .filter(|&i| {
                    convert::shape_dtype(args[i].obj())
                        .ok()
                        .flatten()
                        .is_some_and(|(_, d)| d != DType::Bool)
                })
                .collect(),
        };
        let real = real_call(&args)?;
        let mut inner = args.clone();
        let mut wrt: Vec<NodeId> = vec![];
        for &p in &argnums {
            let Some(v) = args.get(p) else {
                return unsupported(format!("argnums {p} is out of range"));
            };
            let n = self.node(v)?;
            let dt = if self.g.dtype(n).is_float() {
                self.g.dtype(n)
            } else {
                DType::F64
            };
            let n = self.g.cast(n, dt)?;
            // A fresh variable standing for this argument inside `func`: an identity cast,
            // which no builder looks through (an identity reshape was folded away by the
            // reshape of a reshape that `np.stack([q])` or `y[0] = q` makes, so the
            // derivative did not see that use of `q`).
            let w = self.g.add(Op::Cast(dt), vec![n])?;
            let copy = self.r.np.call_method1("array", (v.obj(), dt.name()))?;
            let copy = if self.g.shape(w).is_empty() {
                copy.call_method0("__getitem__")
                    .or_else(|_| copy.get_item(()))?
            } else {
                copy
            };
            inner[p] = self.track(copy, w)?;
            wrt.push(w);
        }
        let out = self.call(Val::new(func), inner, kwargs.clone())?;
        let on = self.node(&out)?;
        let mut outs: Vec<NodeId> = match kind.as_str() {
            "grad" => autodiff_transform::grad(&mut self.g, on, &wrt)?,
            "jacobian" => {
                let mut r = vec![];
                for &w in &wrt {
                    let fwd = self.g.node(w).size() < self.g.node(on).size();
                    r.push(autodiff_transform::jacobian(&mut self.g, on, w, fwd)?);
                }
                r
            }
            "hessian" => {
                let grads = autodiff_transform::grad(&mut self.g, on, &wrt)?;
                let mut r = vec![];
                for gr in grads {
                    for &w in &wrt {
                        r.push(autodiff_transform::jacobian(&mut self.g, gr, w, true)?);
                    }
                }
                r
            }
            k => return unsupported(format!("the transform {k} inside traced code")),
        };
        if kind == "hessian" && style != "single" {
            return unsupported("hessian with several argnums inside traced code");
        }
        if with_value {
            let value = real.get_item(0)?;
            let grads = real.get_item(1)?;
            let v = self.track(value, on)?;
            let g = self.rebuild(&grads, &mut outs, &style)?;
            let t = PyTuple::new(self.py, [v.obj().clone(), g.obj().clone()])?;
            return Ok(Val::new(t.into_any()));
        }
        self.rebuild(&real, &mut outs, &style)
    }

    /// Gives the real result's arrays the derivative nodes, keeping its container type.
    fn rebuild(
        &mut self,
        real: &Bound<'py, PyAny>,
        nodes: &mut Vec<NodeId>,
        style: &str,
    ) -> Res<Val<'py>> {
        if style == "single" {
            return self.track(real.clone(), nodes.remove(0));
        }
        let items: Vec<Bound<'py, PyAny>> = real.try_iter()?.collect::<PyResult<_>>()?;
        let mut objs = vec![];
        for it in items {
            objs.push(self.track(it, nodes.remove(0))?.obj().clone());
        }
        Ok(Val::new(if style == "list" {
            PyList::new(self.py, objs)?.into_any()
        } else {
            PyTuple::new(self.py, objs)?.into_any()
        }))
    }
}
