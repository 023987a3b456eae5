//! `autodiff._core`: thin bindings over the core crates.
//!
//! Bindings only convert and delegate: `trace` calls the capture crate's one entry point,
//! `PyTrace` wraps a traced graph (`inner`) and calls the transform, simplify, print, exec
//! and lower crates on it.

mod fastcall;
mod optim;
mod traced;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use autodiff_capture::{Source, TraceCall};
use traced::{PyTrace, TraceData};

/// The real result, the trace, and the values read from outside the function.
type TraceOut<'py> = (Bound<'py, PyAny>, PyTrace, Vec<Source<'py>>);

/// Traces `fn(*args, **kwargs)`. `inputs` lists `(object, name)` for the leaves of `args`
/// that become graph inputs; `flatten(result)` returns the output leaves. Returns the real
/// result and the trace.
#[pyfunction]
#[pyo3(signature = (func, args, kwargs, inputs, markers, flatten, roll = true))]
#[allow(clippy::too_many_arguments)]
fn trace<'py>(
    py: Python<'py>,
    func: Bound<'py, PyAny>,
    args: Bound<'py, PyList>,
    kwargs: Bound<'py, PyDict>,
    inputs: Bound<'py, PyList>,
    markers: Bound<'py, PyDict>,
    flatten: Bound<'py, PyAny>,
    roll: bool,
) -> PyResult<TraceOut<'py>> {
    traced::shield("trace", || {
        let call = TraceCall {
            func,
            args,
            kwargs,
            inputs,
            markers,
            flatten,
            roll,
        };
        let c = autodiff_capture::trace(py, call)?;
        let data = TraceData {
            graph: c.graph,
            guards: c.guards,
            tags: c.tags,
            rolled: traced::Rolled {
                loops: c.rolled_loops,
                needs_plain_check: c.needs_plain_check,
                half_values: c.half_values,
                uninit_values: c.uninit_values,
            },
        };
        Ok((c.result, PyTrace::new(data), c.sources))
    })
}

/// The capture table's registry: `(name, family, parameter list or None)` for each entry,
/// in the registry's order (for tests and documentation).
#[pyfunction]
fn _registry() -> Vec<(&'static str, String, Option<&'static str>)> {
    autodiff_capture::registry::all()
        .map(|e| (e.name, format!("{:?}", e.family), e.signature()))
        .collect()
}

/// Called by the SIGINT handler installed while tracing: the engine stops at its next check.
#[pyfunction]
fn _interrupt() {
    autodiff_capture::INTERRUPT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Threads the engine's large kernels run on (`AUTODIFF_NUM_THREADS`, else one per core).
#[pyfunction]
fn num_threads() -> usize {
    autodiff_lower::threads()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    autodiff_capture::panics::install_hook();
    m.add_function(wrap_pyfunction!(trace, m)?)?;
    m.add_function(wrap_pyfunction!(_interrupt, m)?)?;
    m.add_function(wrap_pyfunction!(_registry, m)?)?;
    m.add_function(wrap_pyfunction!(optim::lbfgsb, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    m.add_class::<PyTrace>()?;
    m.add_class::<fastcall::CallTable>()?;
    m.add(
        "TraceError",
        m.py().get_type::<autodiff_capture::TraceError>(),
    )?;
    Ok(())
}
