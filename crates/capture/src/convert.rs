//! NumPy arrays ⇄ IR tensors (row-major f64 storage with a dtype tag).

use autodiff_ir::{DType, Shape, Tensor};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

/// The IR dtype of a NumPy dtype, or `None` for dtypes the IR does not hold.
pub fn dtype_of(dt: &Bound<'_, PyAny>) -> PyResult<Option<DType>> {
    let n = np(dt.py())?;
    if dt.is(n.f64_dtype.bind(dt.py())) {
        return Ok(Some(DType::F64));
    }
    if dt.is(n.f32_dtype.bind(dt.py())) {
        return Ok(Some(DType::F32));
    }
    let kind: String = dt.getattr("kind")?.extract()?;
    let size: usize = dt.getattr("itemsize")?.extract()?;
    Ok(match (kind.as_str(), size) {
        ("f", 4) => Some(DType::F32),
        ("f", _) => Some(DType::F64),
        ("i" | "u", _) => Some(DType::I64),
        ("b", _) => Some(DType::Bool),
        _ => None,
    })
}

/// Shape and dtype of an array-like leaf (ndarray, NumPy scalar, Python number).
pub fn shape_dtype(obj: &Bound<'_, PyAny>) -> PyResult<Option<(Shape, DType)>> {
    let py = obj.py();
    let np = np(py)?;
    if obj.is_instance_of::<pyo3::types::PyBool>() {
        return Ok(Some((vec![], DType::Bool)));
    }
    if obj.is_instance_of::<pyo3::types::PyInt>() {
        return Ok(Some((vec![], DType::I64)));
    }
    if obj.is_instance_of::<pyo3::types::PyFloat>() {
        // np.float64 is a float subclass; Python floats are float64 too.
        return Ok(Some((vec![], DType::F64)));
    }
    let is_arr = obj.is_instance(np.ndarray.bind(py))? || obj.is_instance(np.generic.bind(py))?;
    if !is_arr {
        return Ok(None);
    }
    let Some(dt) = dtype_of(&obj.getattr("dtype")?)? else {
        return Ok(None);
    };
    Ok(Some((obj.getattr("shape")?.extract()?, dt)))
}

/// NumPy callables used on every call, looked up once.
struct Np {
    empty: Py<PyAny>,
    float64: Py<PyAny>,
    ndarray: Py<PyAny>,
    generic: Py<PyAny>,
    f64_dtype: Py<PyAny>,
    f32_dtype: Py<PyAny>,
}

static NP: pyo3::sync::GILOnceCell<Np> = pyo3::sync::GILOnceCell::new();

fn np(py: Python<'_>) -> PyResult<&Np> {
    NP.get_or_try_init(py, || {
        let m = py.import("numpy")?;
        Ok(Np {
            empty: m.getattr("empty")?.unbind(),
            float64: m.getattr("float64")?.unbind(),
            ndarray: m.getattr("ndarray")?.unbind(),
            generic: m.getattr("generic")?.unbind(),
            f64_dtype: m.call_method1("dtype", ("float64",))?.unbind(),
            f32_dtype: m.call_method1("dtype", ("float32",))?.unbind(),
        })
    })
}

/// Copies an array-like into a tensor. Errors name the offending type.
pub fn to_tensor(obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    // Fast path: a C-contiguous float64 ndarray of rank >= 1, read through its buffer.
    if let Ok(buf) = PyBuffer::<f64>::get(obj) {
        if buf.is_c_contiguous() && buf.dimensions() > 0 {
            let data = buf.to_vec(obj.py())?;
            return Ok(Tensor {
                dtype: DType::F64,
                shape: buf.shape().to_vec(),
                data,
            });
        }
    }
    to_tensor_slow(obj)
}

fn to_tensor_slow(obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let py = obj.py();
    let np = py.import("numpy")?;
    let a = np.call_method1("asarray", (obj,))?;
    let Some(dt) = dtype_of(&a.getattr("dtype")?)? else {
        return Err(PyTypeError::new_err(format!(
            "arrays of dtype {} are not supported (use float64, float32, int or bool)",
            a.getattr("dtype")?.str()?
        )));
    };
    let shape: Shape = a.getattr("shape")?.extract()?;
    let f = np
        .call_method1("ascontiguousarray", (a, np.getattr("float64")?))?
        .call_method1("reshape", (-1,))?;
    let buf = PyBuffer::<f64>::get(&f)?;
    let data = buf.to_vec(py)?;
    Ok(Tensor {
        dtype: dt,
        shape,
        data,
    })
}

/// A new NumPy array holding the tensor (0-d tensors become 0-d arrays).
pub fn to_numpy<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    let np = np(py)?;

    let flat = np
        .empty
        .bind(py)
        .call1((t.data.len(), np.float64.bind(py)))?;
    let buf = PyBuffer::<f64>::get(&flat)?;
    buf.copy_from_slice(py, &t.data)?;
    buf.release(py);
    let out = if t.shape.len() == 1 {
        flat
    } else {
        flat.call_method1("reshape", (t.shape.clone(),))?
    };
    if t.dtype == DType::F64 {
        Ok(out)
    } else {
        out.call_method1("astype", (t.dtype.name(),))
    }
}

/// Outputs at least this large are handed to NumPy without a copy.
pub const ZERO_COPY_MIN: usize = 4096;

/// Moves a tensor's data into a new NumPy array without copying it (large outputs).
pub fn tensor_into_numpy(py: Python<'_>, t: Tensor) -> PyResult<Bound<'_, PyAny>> {
    if t.dtype == DType::F64 && t.data.len() >= ZERO_COPY_MIN {
        owned_to_numpy(py, t.data, &t.shape)
    } else {
        to_numpy(py, &t)
    }
}

/// A NumPy array viewing `data`, which a Python object owns (freed with the array).
fn owned_to_numpy<'py>(
    py: Python<'py>,
    data: Vec<f64>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    let n = data.len() as isize;
    let owner = Bound::new(
        py,
        OwnedF64 {
            data,
            shape: [n],
            strides: [8],
        },
    )?;
    let np = py.import("numpy")?;
    let flat = np.call_method1("frombuffer", (owner, np.getattr("float64")?))?;
    if shape.len() == 1 {
        Ok(flat)
    } else {
        flat.call_method1("reshape", (shape.to_vec(),))
    }
}

/// Owns the data of a zero-copy output array and exposes it through the buffer protocol.
#[pyclass(module = "autodiff._core")]
pub struct OwnedF64 {
    data: Vec<f64>,
    shape: [isize; 1],
    strides: [isize; 1],
}

#[pymethods]
impl OwnedF64 {
    /// # Safety
    /// Fills `view` per the buffer protocol: a writable, C-contiguous, 1-d float64 buffer
    /// over `data`, which stays alive while the view holds a reference to `slf`.
    unsafe fn __getbuffer__(
        mut slf: PyRefMut<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::os::raw::c_int,
    ) -> PyResult<()> {
        use pyo3::ffi;
        if view.is_null() {
            return Err(pyo3::exceptions::PyBufferError::new_err("null view"));
        }
        let this = &mut *slf;
        (*view).buf = this.data.as_mut_ptr() as *mut std::os::raw::c_void;
        (*view).len = this.shape[0] * 8;
        (*view).readonly = 0;
        (*view).itemsize = 8;
        (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
            c"d".as_ptr() as *mut std::os::raw::c_char
        } else {
            std::ptr::null_mut()
        };
        (*view).ndim = 1;
        (*view).shape = if flags & ffi::PyBUF_ND == ffi::PyBUF_ND {
            this.shape.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        };
        (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
            this.strides.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        };
        (*view).suboffsets = std::ptr::null_mut();
        (*view).internal = std::ptr::null_mut();
        (*view).obj = slf.into_ptr();
        Ok(())
    }

    /// # Safety
    /// Nothing to release: `__getbuffer__` allocated nothing for the view (its pointers
    /// point into `self`, which the view's `obj` reference keeps alive until Python drops
    /// it after this call). The body touches no pointer, so any `view` is sound.
    unsafe fn __releasebuffer__(&self, _view: *mut pyo3::ffi::Py_buffer) {}
}
