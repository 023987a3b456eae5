//! `_core.lbfgsb`: the native L-BFGS-B (crate `autodiff-optim`) driven by a Python
//! value-and-gradient callable, with no Python between evaluations.
//!
//! The caller passes a flat float64 buffer `xbuf` that its callable reads (views of it
//! shaped like the arguments) and the callable itself, which takes no arguments and
//! returns `(f, grad_0, grad_1, ...)`. For each evaluation Rust writes the point into
//! `xbuf`, calls the callable with the GIL held, and copies each gradient (any object
//! with a float64 buffer, or convertible by `numpy.asarray`) into its slice of the flat
//! gradient. Exceptions raised by the callable or the progress function end the run and
//! propagate; Ctrl-C is checked after every iteration.

use autodiff_optim::{lbfgsb as run_lbfgsb, Options, Progress};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

/// Copies the float64 contents of `obj` (`size` numbers) into `out`.
fn read_f64(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    out: &mut [f64],
    asarray: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if out.len() == 1 {
        // A Python or NumPy float, or a 0-d array (no buffer shape): its value.
        if let Ok(v) = obj.extract::<f64>() {
            out[0] = v;
            return Ok(());
        }
    }
    let buf = match PyBuffer::<f64>::get(obj) {
        Ok(b) => b,
        Err(_) => {
            let arr = asarray.call1((obj, "float64"))?;
            PyBuffer::<f64>::get(&arr)?
        }
    };
    if buf.item_count() != out.len() {
        return Err(PyValueError::new_err(format!(
            "the gradient has {} numbers where the argument has {}",
            buf.item_count(),
            out.len()
        )));
    }
    buf.copy_to_slice(py, out)
}

/// Runs L-BFGS-B; returns a dict with `x`, `f`, `g`, `nit`, `nfev`, `status`, `success`,
/// `message`, `history_f`, `history_pgnorm`. `sizes` are the argument sizes (the flat
/// gradient is their concatenation). `progress(nit, nfev, f, pgnorm, step)`, when given,
/// runs after each iteration with `xbuf` holding the new point; a true result stops.
#[pyfunction]
#[pyo3(signature = (fun, xbuf, x0, lower, upper, sizes, m, factr, pgtol, maxiter, maxfun, maxls, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn lbfgsb<'py>(
    py: Python<'py>,
    fun: Bound<'py, PyAny>,
    xbuf: Bound<'py, PyAny>,
    x0: Vec<f64>,
    lower: Vec<f64>,
    upper: Vec<f64>,
    sizes: Vec<usize>,
    m: usize,
    factr: f64,
    pgtol: f64,
    maxiter: usize,
    maxfun: usize,
    maxls: usize,
    progress: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let n = x0.len();
    if lower.len() != n || upper.len() != n || sizes.iter().sum::<usize>() != n {
        return Err(PyValueError::new_err(
            "x0, bounds and argument sizes disagree",
        ));
    }
    let xb = PyBuffer::<f64>::get(&xbuf)?;
    if xb.item_count() != n || xb.readonly() || !xb.is_c_contiguous() {
        return Err(PyValueError::new_err(
            "xbuf must be a writable contiguous float64 array of len(x0)",
        ));
    }
    let asarray = py.import("numpy")?.getattr("asarray")?;
    let opts = Options {
        m,
        factr,
        pgtol,
        maxiter,
        maxfun,
        maxls,
    };
    let fg = |x: &[f64], g: &mut [f64]| -> PyResult<f64> {
        xb.copy_from_slice(py, x)?;
        let out = fun.call0()?;
        let items: Vec<Bound<'py, PyAny>> = if let Ok(l) = out.downcast::<PyList>() {
            l.iter().collect()
        } else if let Ok(t) = out.downcast::<PyTuple>() {
            t.iter().collect()
        } else {
            vec![]
        };
        if items.len() != sizes.len() + 1 {
            return Err(PyValueError::new_err(
                "the objective must return a tuple or list (value, *gradients)",
            ));
        }
        let f: f64 = items[0].extract()?;
        let mut at = 0;
        for (item, &size) in items[1..].iter().zip(&sizes) {
            read_f64(py, item, &mut g[at..at + size], &asarray)?;
            at += size;
        }
        Ok(f)
    };
    let report_progress = |p: &Progress| -> PyResult<bool> {
        py.check_signals()?;
        match &progress {
            None => Ok(false),
            Some(cb) => {
                xb.copy_from_slice(py, p.x)?;
                cb.call1((p.nit, p.nfev, p.f, p.pgnorm, p.step))?
                    .is_truthy()
            }
        }
    };
    let r = run_lbfgsb(fg, &x0, &lower, &upper, &opts, report_progress)?;
    let d = PyDict::new(py);
    d.set_item("x", r.x)?;
    d.set_item("f", r.f)?;
    d.set_item("g", r.g)?;
    d.set_item("nit", r.nit)?;
    d.set_item("nfev", r.nfev)?;
    d.set_item("status", format!("{:?}", r.status))?;
    d.set_item("success", r.status.success())?;
    d.set_item("message", r.status.message())?;
    d.set_item("history_f", r.history_f)?;
    d.set_item("history_pgnorm", r.history_pgnorm)?;
    Ok(d)
}
