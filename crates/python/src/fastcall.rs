//! `CallTable`: the per-call hot path of a `Specializer` in Rust.
//!
//! It holds, for each signature of positional arguments seen before (float64 or float32
//! arrays in native order, C-contiguous and aligned, floats, or exact lists/tuples of such
//! arrays: containers, shapes and the programs' input dtypes), the specializations Python
//! cached for it (most recent first), each with its
//! compiled program, guards and *sources* (values read from outside the arguments). A call
//! checks the arguments' types, shapes and dtypes, then the sources, runs the program,
//! compares the guards and builds the output arrays — and returns `None` whenever anything
//! does not match or is not cheap to decide, so that Python takes its general path. A
//! signature may carry a *plan* grouping the flat outputs as the caller's result (a
//! `Gradient` of list arguments: one list of gradients per list). Being
//! conservative is the contract: this path only ever answers where the Python path would
//! have answered the same (same entry, same values).
//!
//! Arrays are read through the `PyArrayObject` struct (stable since NumPy 1.7, the layout
//! the `numpy` crate reads too), checked once at start-up against a live array; a mismatch
//! disables the table (every call returns `None`).

use std::os::raw::c_int;
use std::sync::{Arc, Mutex};

use autodiff_ir::DType;
use pyo3::exceptions::{PyAttributeError, PyKeyError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyFloat, PyList, PyString, PyTuple};

use crate::traced::{eval_err, shield, PyTrace};

/// How many signatures the table keeps (most recently installed first).
const MAX_GROUPS: usize = 16;

#[repr(C)]
struct ArrayHead {
    ob_base: ffi::PyObject,
    data: *mut u8,
    nd: c_int,
    dimensions: *const isize,
    strides: *const isize,
    base: *mut ffi::PyObject,
    descr: *mut ffi::PyObject,
    flags: c_int,
}

const C_CONTIGUOUS: c_int = 0x1;
const ALIGNED: c_int = 0x100;

/// NumPy objects the hot path compares against, found once.
struct Np {
    ndarray: usize,
    float64_scalar: usize,
    f64_descr: Py<PyAny>,
    /// NumPy's float32 descriptor (float32 arguments are read and widened to f64, as
    /// `Trace.run` converts them).
    f32_descr: Py<PyAny>,
    empty: Py<PyAny>,
    /// `PyArray_NewFromDescr` from NumPy's C-API table (slot 94), when found and checked.
    new_from_descr: Option<NewFromDescr>,
    /// The struct layout matched a live array.
    ok: bool,
}

/// NumPy's `PyArray_NewFromDescr` (C-API slot 94). A type, not a block: calling it is
/// `unsafe`, and each call site states why its arguments are valid (see `empty_f64`).
type NewFromDescr = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *mut ffi::PyObject,
    c_int,
    *const isize,
    *const isize,
    *mut std::ffi::c_void,
    c_int,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

/// `PyArray_NewFromDescr` from the `_ARRAY_API` capsule, after checking that the table's
/// slot 2 is `numpy.ndarray` (the table is NumPy's stable C-API, read by every extension).
fn find_new_from_descr(py: Python<'_>, ndarray: &Bound<'_, PyAny>) -> Option<NewFromDescr> {
    let capsule = ["numpy._core._multiarray_umath", "numpy.core.multiarray"]
        .iter()
        .find_map(|m| py.import(*m).ok()?.getattr("_ARRAY_API").ok())?;
    let capsule = capsule.downcast::<pyo3::types::PyCapsule>().ok()?;
    let table = capsule.pointer() as *const *const std::ffi::c_void;
    if table.is_null() {
        return None;
    }
    // SAFETY: the capsule holds NumPy's C-API table (an array of pointers, > 94 slots).
    unsafe {
        if !std::ptr::eq(*table.add(2), ndarray.as_ptr() as *const std::ffi::c_void) {
            return None;
        }
        Some(std::mem::transmute::<*const std::ffi::c_void, NewFromDescr>(*table.add(94)))
    }
}

static NP: GILOnceCell<Np> = GILOnceCell::new();

fn np(py: Python<'_>) -> PyResult<&Np> {
    NP.get_or_try_init(py, || {
        let m = py.import("numpy")?;
        let ndarray = m.getattr("ndarray")?;
        let f64_descr = m.getattr("dtype")?.call1(("float64",))?;
        let empty = m.getattr("empty")?;
        let probe = empty.call1(((2usize, 3usize),))?;
        let data: usize = probe
            .getattr("__array_interface__")?
            .get_item("data")?
            .get_item(0)?
            .extract()?;
        let descr = probe.getattr("dtype")?;
        // SAFETY: `probe` is an ndarray (made by numpy.empty); the fields read are the
        // leading fields of `PyArrayObject`, checked here against what NumPy reports.
        let ok = unsafe {
            let h = &*(probe.as_ptr() as *const ArrayHead);
            h.nd == 2
                && *h.dimensions == 2
                && *h.dimensions.add(1) == 3
                && h.data as usize == data
                && h.descr == descr.as_ptr()
                && descr.is(&f64_descr)
                && h.flags & (C_CONTIGUOUS | ALIGNED) == C_CONTIGUOUS | ALIGNED
        };
        let mut np = Np {
            ndarray: ndarray.as_ptr() as usize,
            float64_scalar: m.getattr("float64")?.as_ptr() as usize,
            f64_descr: f64_descr.unbind(),
            f32_descr: m.getattr("dtype")?.call1(("float32",))?.unbind(),
            empty: empty.unbind(),
            new_from_descr: find_new_from_descr(py, &ndarray),
            ok,
        };
        // The C-API allocation must make what numpy.empty makes, else numpy.empty is used.
        if ok && np.new_from_descr.is_some() {
            let fine = np.empty_f64(py, &[2, 3]).is_ok_and(|a| {
                a.get_type_ptr() as usize == np.ndarray
                    && a.getattr("shape")
                        .is_ok_and(|s| s.eq((2, 3)).unwrap_or(false))
                    && a.getattr("dtype").is_ok_and(|d| d.is(&np.f64_descr))
                    && a.getattr("flags")
                        .and_then(|f| f.getattr("c_contiguous"))
                        .is_ok_and(|c| c.is_truthy().unwrap_or(false))
            });
            if !fine {
                np.new_from_descr = None;
            }
        }
        Ok(np)
    })
}

impl Np {
    /// A new C-contiguous float64 array of shape `dims` (uninitialized, as numpy.empty).
    fn empty_f64<'py>(&self, py: Python<'py>, dims: &[isize]) -> PyResult<Bound<'py, PyAny>> {
        self.empty_of(py, dims, false)
    }

    /// A new C-contiguous float64 (or, with `f32`, float32) array of shape `dims`
    /// (uninitialized, as numpy.empty).
    fn empty_of<'py>(
        &self,
        py: Python<'py>,
        dims: &[isize],
        f32: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let descr = if f32 {
            &self.f32_descr
        } else {
            &self.f64_descr
        };
        match self.new_from_descr {
            // SAFETY: NumPy's PyArray_NewFromDescr with a new reference to a float
            // descriptor (it steals one), no strides, data or flags: a fresh array.
            Some(f) => unsafe {
                let d = descr.as_ptr();
                ffi::Py_IncRef(d);
                let nd = dims.len() as c_int;
                let p = f(
                    self.ndarray as *mut ffi::PyObject,
                    d,
                    nd,
                    dims.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null_mut(),
                    0,
                    std::ptr::null_mut(),
                );
                Bound::from_owned_ptr_or_err(py, p)
            },
            None => self
                .empty
                .bind(py)
                .call1((PyTuple::new(py, dims.iter())?, descr.bind(py))),
        }
    }
}

/// A positional argument read as a leaf: a C-contiguous aligned float64 ndarray (read in
/// place), a float32 one (widened to f64 for the run), or a Python float /
/// `numpy.float64` (0-d).
enum Leaf<'a> {
    Array { data: *const f64, dims: &'a [isize] },
    ArrayF32 { data: *const f32, dims: &'a [isize] },
    Scalar(f64),
}

impl Leaf<'_> {
    /// Whether this leaf is what the program reads for an input of `shape` and `dtype`
    /// (`top`: the leaf is an argument itself, where a float may stand for a 0-d array).
    /// `scalar`: the leaf was traced as a Python/NumPy scalar (a 0-d array and a float are
    /// different signatures: user code may branch on `isinstance(x, float)`).
    fn fits(&self, shape: &[isize], dtype: DType, scalar: bool, top: bool) -> bool {
        match self {
            Leaf::Array { dims, .. } => !scalar && dtype == DType::F64 && *dims == shape,
            Leaf::ArrayF32 { dims, .. } => !scalar && dtype == DType::F32 && *dims == shape,
            Leaf::Scalar(_) => scalar && dtype == DType::F64 && shape.is_empty() && top,
        }
    }
}

/// # Safety
/// The GIL is held and `obj` stays alive while the result is used; no Python code may run
/// between this read and the last use of the pointers (an array can be resized by Python).
unsafe fn leaf<'a>(np: &Np, obj: &'a Bound<'_, PyAny>) -> Option<Leaf<'a>> {
    let t = obj.get_type_ptr() as usize;
    if t == np.ndarray {
        let h = &*(obj.as_ptr() as *const ArrayHead);
        let f32 = h.descr == np.f32_descr.as_ptr();
        if !(f32 || h.descr == np.f64_descr.as_ptr())
            || h.flags & (C_CONTIGUOUS | ALIGNED) != C_CONTIGUOUS | ALIGNED
        {
            return None;
        }
        let dims = if h.nd == 0 {
            &[][..]
        } else {
            std::slice::from_raw_parts(h.dimensions, h.nd as usize)
        };
        return Some(if f32 {
            Leaf::ArrayF32 {
                data: h.data as *const f32,
                dims,
            }
        } else {
            Leaf::Array {
                data: h.data as *const f64,
                dims,
            }
        });
    }
    if t == np.float64_scalar || t == std::ptr::addr_of_mut!(ffi::PyFloat_Type) as usize {
        return obj
            .downcast::<PyFloat>()
            .ok()
            .map(|f| Leaf::Scalar(f.value()));
    }
    None
}

/// Where a source is read from (as `_compile.stale` reads it).
enum Fetch {
    Global(Py<PyAny>, Py<PyAny>),
    Cell(Py<PyAny>),
    Attr(Py<PyAny>, Py<PyString>),
}

/// A source's snapshot (`_compile._freeze`), with the cases Rust decides alone.
enum Frozen {
    /// `_ARR`: the original array and its private snapshot (a C-contiguous copy).
    Arr(Py<PyAny>, Py<PyAny>),
    /// `_VAL` (identity is enough; anything else asks `_same`).
    Val(Py<PyAny>),
    /// `_ID`: identity decides.
    Id(Py<PyAny>),
    /// Containers and sets: `_same` decides.
    Other,
}

struct Source {
    fetch: Fetch,
    frozen: Frozen,
    /// The Python snapshot, for `_same(cur, fz)`.
    fz: Py<PyAny>,
}

struct Entry {
    trace: Py<PyTrace>,
    /// The Python cache entry `(compiled, (sig, structure), checks)`.
    obj: Py<PyAny>,
    sources: Vec<Source>,
    /// Output shapes (for `numpy.empty`), when every output is float64: the program writes
    /// straight into those arrays (else outputs are built by `convert::tensor_into_numpy`).
    out_shapes: Option<Vec<Vec<isize>>>,
    /// Which outputs are float32 (written by narrowing the f64 results, as `Trace.run`
    /// rounds them; the values are exact: each float32 node's result is rounded already).
    out_f32: Vec<bool>,
}

/// How a positional argument holds its leaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The argument is one leaf (a float64 array or a float).
    Leaf,
    /// A list (exactly) of this many float64 arrays.
    List(usize),
    /// A tuple (exactly) of this many float64 arrays.
    Tuple(usize),
}

/// The leaves of `args` laid out as `kinds` says (into `out`), or `false`.
fn collect_leaves<'py>(
    args: &Bound<'py, PyTuple>,
    kinds: &[Kind],
    out: &mut Vec<Bound<'py, PyAny>>,
) -> bool {
    out.clear();
    if args.len() != kinds.len() {
        return false;
    }
    for (a, k) in args.iter().zip(kinds) {
        match *k {
            Kind::Leaf => out.push(a),
            Kind::List(n) => match a.downcast_exact::<PyList>() {
                Ok(l) if l.len() == n => out.extend(l.iter()),
                _ => return false,
            },
            Kind::Tuple(n) => match a.downcast_exact::<PyTuple>() {
                Ok(t) if t.len() == n => out.extend(t.iter()),
                _ => return false,
            },
        }
    }
    true
}

/// The flat outputs grouped as `plan` says (the rest appended as they are); `None` when
/// there are fewer outputs than the plan groups (Python decides then).
fn regroup<'py>(
    py: Python<'py>,
    outs: Bound<'py, PyList>,
    plan: &[Kind],
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let items: Vec<Bound<'py, PyAny>> = outs.iter().collect();
    let mut grouped = Vec::with_capacity(plan.len());
    let mut at = 0;
    for kind in plan {
        let n = match *kind {
            Kind::Leaf => 1,
            Kind::List(n) | Kind::Tuple(n) => n,
        };
        let Some(part) = items.get(at..at + n) else {
            return Ok(None);
        };
        grouped.push(match *kind {
            Kind::Leaf => part[0].clone(),
            Kind::List(_) => PyList::new(py, part)?.into_any(),
            Kind::Tuple(_) => PyTuple::new(py, part)?.into_any(),
        });
        at += n;
    }
    grouped.extend(items[at..].iter().cloned());
    Ok(Some(PyList::new(py, grouped)?.into_any()))
}

/// Whether leaf `k` of the layout `kinds` is an argument itself (may be a float).
fn top_level(kinds: &[Kind], k: usize) -> bool {
    let mut at = 0;
    for kind in kinds {
        let n = match *kind {
            Kind::Leaf => 1,
            Kind::List(n) | Kind::Tuple(n) => n,
        };
        if k < at + n {
            return *kind == Kind::Leaf;
        }
        at += n;
    }
    false
}

struct Group {
    kinds: Vec<Kind>,
    /// How the caller's result groups the flat outputs (`__call__`): one item per entry,
    /// a list/tuple of `n` outputs for `List(n)`/`Tuple(n)`, the rest appended as they are.
    /// `None`: the flat output list is the result (only when every argument is a leaf).
    plan: Option<Vec<Kind>>,
    /// Shapes of the leaves, flattened as `kinds` lays them out.
    shapes: Vec<Vec<isize>>,
    /// The programs' input dtypes (float64 or float32), one per leaf.
    dtypes: Vec<DType>,
    /// Which leaves were traced as Python/NumPy scalars (not ndarrays): a 0-d array and a
    /// float are different signatures (user code may branch on `isinstance(x, float)`).
    scalars: Vec<bool>,
    /// Tried in order: most recent trace first (as `Specializer.lookup`).
    entries: Vec<Entry>,
}

/// The fast call path of one `Specializer` (see the module comment).
#[pyclass(module = "autodiff._core", frozen)]
pub struct CallTable {
    groups: Mutex<Arc<Vec<Arc<Group>>>>,
    /// `_compile._same(cur, fz)`: the reference comparison of a source.
    same: Py<PyAny>,
}

enum Stale {
    No,
    Yes,
    /// Python must decide (an unexpected exception while reading a source).
    Unsure,
}

impl CallTable {
    fn snapshot(&self) -> Arc<Vec<Arc<Group>>> {
        self.groups
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn stale(&self, py: Python<'_>, np: &Np, e: &Entry) -> PyResult<Stale> {
        for s in &e.sources {
            let got = match &s.fetch {
                Fetch::Global(d, k) => {
                    let d = d.bind(py);
                    match d.downcast_exact::<PyDict>() {
                        Ok(d) => d.get_item(k.bind(py)),
                        Err(_) => d.get_item(k.bind(py)).map(Some),
                    }
                }
                Fetch::Cell(c) => c
                    .bind(py)
                    .getattr(pyo3::intern!(py, "cell_contents"))
                    .map(Some),
                Fetch::Attr(o, k) => o.bind(py).getattr(k.bind(py)).map(Some),
            };
            let cur = match got {
                Ok(Some(c)) => c,
                Ok(None) => return Ok(Stale::Yes),
                Err(err)
                    if err.is_instance_of::<PyAttributeError>(py)
                        || err.is_instance_of::<PyKeyError>(py)
                        || err.is_instance_of::<PyValueError>(py) =>
                {
                    return Ok(Stale::Yes)
                }
                Err(_) => return Ok(Stale::Unsure),
            };
            let decided = match &s.frozen {
                Frozen::Id(o) => Some(cur.is(o)),
                Frozen::Val(o) if cur.is(o) => Some(true),
                // SAFETY: both are live ndarrays; no Python code runs during the compare.
                Frozen::Arr(orig, snap) if cur.is(orig) => unsafe {
                    same_bytes(np, &cur, snap.bind(py)).then_some(true)
                },
                _ => None,
            };
            let same = match decided {
                Some(b) => b,
                None => match self.same.bind(py).call1((cur, s.fz.bind(py))) {
                    Ok(r) => r.is_truthy()?,
                    Err(_) => return Ok(Stale::Unsure),
                },
            };
            if !same {
                return Ok(Stale::Yes);
            }
        }
        Ok(Stale::No)
    }
}

/// Whether `cur` (an ndarray) has the snapshot's type, shape, dtype and bytes, C-contiguous:
/// then `_same` is true. `false` means "not decided here".
///
/// # Safety
/// The GIL is held and no Python code runs during the call.
unsafe fn same_bytes(np: &Np, cur: &Bound<'_, PyAny>, snap: &Bound<'_, PyAny>) -> bool {
    if cur.get_type_ptr() as usize != np.ndarray || snap.get_type_ptr() as usize != np.ndarray {
        return false;
    }
    let a = &*(cur.as_ptr() as *const ArrayHead);
    let b = &*(snap.as_ptr() as *const ArrayHead);
    if a.descr != b.descr
        || a.nd != b.nd
        || a.flags & C_CONTIGUOUS == 0
        || b.flags & C_CONTIGUOUS == 0
    {
        return false;
    }
    let nd = a.nd as usize;
    let (da, db) = if nd == 0 {
        (&[][..], &[][..])
    } else {
        (
            std::slice::from_raw_parts(a.dimensions, nd),
            std::slice::from_raw_parts(b.dimensions, nd),
        )
    };
    if da != db {
        return false;
    }
    // itemsize from the descriptor is not read (its layout changed in NumPy 2): the
    // descriptors are the same object, and the snapshot's bytes are counted by `nbytes`.
    let Ok(nbytes) = snap
        .getattr(pyo3::intern!(snap.py(), "nbytes"))
        .and_then(|n| n.extract::<usize>())
    else {
        return false;
    };
    let (pa, pb) = (a.data as *const u8, b.data as *const u8);
    nbytes == 0 || std::slice::from_raw_parts(pa, nbytes) == std::slice::from_raw_parts(pb, nbytes)
}

fn parse_source(py: Python<'_>, check: &Bound<'_, PyAny>) -> PyResult<Source> {
    let kind: String = check.get_item(0)?.extract()?;
    let container = check.get_item(1)?.unbind();
    let key = check.get_item(2)?.unbind();
    let fz = check.get_item(3)?;
    let fetch = match kind.as_str() {
        "global" => Fetch::Global(container, key),
        "cell" => Fetch::Cell(container),
        _ => Fetch::Attr(
            container,
            key.into_bound(py).downcast_into::<PyString>()?.unbind(),
        ),
    };
    let tag: i64 = fz.get_item(0)?.extract()?;
    let frozen = match tag {
        0 => Frozen::Arr(fz.get_item(1)?.unbind(), fz.get_item(2)?.unbind()),
        1 => Frozen::Val(fz.get_item(1)?.unbind()),
        5 => Frozen::Id(fz.get_item(1)?.unbind()),
        _ => Frozen::Other,
    };
    Ok(Source {
        fetch,
        frozen,
        fz: fz.unbind(),
    })
}

#[pymethods]
impl CallTable {
    #[new]
    fn new(same: Py<PyAny>) -> Self {
        CallTable {
            groups: Mutex::new(Arc::new(vec![])),
            same,
        }
    }

    /// Registers the cache entries `[(compiled, info, checks), ...]` (oldest first) of the
    /// signature of float64 arrays of `shapes`. Returns whether they were taken (every
    /// program input must be float64 of those shapes). `containers`: `(type, n)` per
    /// argument ("list"/"tuple" of n arrays, else one leaf); `plan`: the same per item of
    /// the caller's result, grouping the flat outputs (see `Group::plan`); `scalars` says
    /// which leaves are floats (else ndarrays; default: none).
    #[pyo3(signature = (shapes, entries, containers=None, plan=None, scalars=None))]
    fn install(
        &self,
        py: Python<'_>,
        shapes: Vec<Vec<isize>>,
        entries: Vec<Bound<'_, PyAny>>,
        containers: Option<Vec<(String, usize)>>,
        plan: Option<Vec<(String, usize)>>,
        scalars: Option<Vec<bool>>,
    ) -> PyResult<bool> {
        if !np(py)?.ok {
            return Ok(false);
        }
        let parse = |c: &[(String, usize)]| -> Vec<Kind> {
            c.iter()
                .map(|(t, n)| match t.as_str() {
                    "list" => Kind::List(*n),
                    "tuple" => Kind::Tuple(*n),
                    _ => Kind::Leaf,
                })
                .collect()
        };
        let kinds: Vec<Kind> = match &containers {
            None => vec![Kind::Leaf; shapes.len()],
            Some(c) => parse(c),
        };
        let plan = plan.as_deref().map(parse);
        let leaves: usize = kinds
            .iter()
            .map(|k| match *k {
                Kind::Leaf => 1,
                Kind::List(n) | Kind::Tuple(n) => n,
            })
            .sum();
        let scalars = scalars.unwrap_or_else(|| vec![false; shapes.len()]);
        if leaves != shapes.len() || scalars.len() != shapes.len() {
            return Ok(false);
        }
        let mut parsed = Vec::with_capacity(entries.len());
        let mut dtypes: Option<Vec<DType>> = None;
        for e in entries.iter().rev() {
            let Ok(trace) = e.get_item(0)?.downcast_into::<PyTrace>() else {
                return Ok(false);
            };
            let t = trace.get();
            let g = &t.data().graph;
            let fits = g.inputs.len() == shapes.len()
                && g.inputs.iter().zip(&shapes).all(|(&n, s)| {
                    matches!(g.dtype(n), DType::F64 | DType::F32)
                        && g.shape(n).len() == s.len()
                        && g.shape(n).iter().zip(s).all(|(&a, &b)| a as isize == b)
                });
            if !fits || t.run_program().is_err() {
                return Ok(false);
            }
            // every entry of one signature reads the same dtypes
            let these: Vec<DType> = g.inputs.iter().map(|&n| g.dtype(n)).collect();
            match &dtypes {
                Some(d) if *d != these => return Ok(false),
                _ => dtypes = Some(these),
            }
            let all_float = g
                .outputs
                .iter()
                .all(|&o| matches!(g.dtype(o), DType::F64 | DType::F32));
            let out_shapes = all_float.then(|| {
                g.outputs
                    .iter()
                    .map(|&o| g.shape(o).iter().map(|&d| d as isize).collect())
                    .collect()
            });
            let out_f32 = g
                .outputs
                .iter()
                .map(|&o| g.dtype(o) == DType::F32)
                .collect();
            let mut sources = vec![];
            for c in e.get_item(2)?.try_iter()? {
                sources.push(parse_source(py, &c?)?);
            }
            parsed.push(Entry {
                trace: trace.unbind(),
                obj: e.clone().unbind(),
                sources,
                out_shapes,
                out_f32,
            });
        }
        let Some(dtypes) = dtypes else {
            return Ok(false);
        };
        let group = Arc::new(Group {
            kinds,
            plan,
            shapes,
            dtypes,
            scalars,
            entries: parsed,
        });
        let mut lock = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let mut next: Vec<Arc<Group>> = vec![group.clone()];
        next.extend(
            lock.iter()
                .filter(|g| {
                    g.shapes != group.shapes
                        || g.kinds != group.kinds
                        || g.dtypes != group.dtypes
                        || g.scalars != group.scalars
                })
                .take(MAX_GROUPS - 1)
                .cloned(),
        );
        *lock = Arc::new(next);
        Ok(true)
    }

    /// The garbage collector's view: the table holds user objects (sources reach
    /// `self` of methods, globals dicts, ...), so cycles through it must be visible.
    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.same)?;
        // never block here: a table being swapped is skipped for this collection
        let Ok(groups) = self.groups.try_lock().map(|g| g.clone()) else {
            return Ok(());
        };
        for g in groups.iter() {
            for e in &g.entries {
                visit.call(&e.trace)?;
                visit.call(&e.obj)?;
                for src in &e.sources {
                    match &src.fetch {
                        Fetch::Global(a, b) => {
                            visit.call(a)?;
                            visit.call(b)?;
                        }
                        Fetch::Cell(a) => visit.call(a)?,
                        Fetch::Attr(a, b) => {
                            visit.call(a)?;
                            visit.call(b)?;
                        }
                    }
                    match &src.frozen {
                        Frozen::Arr(a, b) => {
                            visit.call(a)?;
                            visit.call(b)?;
                        }
                        Frozen::Val(a) | Frozen::Id(a) => visit.call(a)?,
                        Frozen::Other => {}
                    }
                    visit.call(&src.fz)?;
                }
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        self.clear();
    }

    /// Forgets every signature (after the Python cache evicted or changed entries).
    fn clear(&self) {
        let mut lock = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        *lock = Arc::new(vec![]);
    }

    /// The caller's result of `f(*args)`: the outputs (a list of arrays), grouped by the
    /// signature's plan when it has one; or `None` when the general path must decide.
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some((outs, _, group)) = self.call(py, args, true)? else {
            return Ok(None);
        };
        match &group.plan {
            None => Ok(Some(outs)),
            Some(plan) => regroup(py, outs.downcast_into::<PyList>()?, plan),
        }
    }

    /// As `Specializer.lookup`: `(outputs, info, compiled)`, or `None`.
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Some((outs, obj, _)) = self.call(py, args, false)? else {
            return Ok(None);
        };
        let obj = obj.bind(py);
        Ok(Some(PyTuple::new(
            py,
            [outs, obj.get_item(1)?, obj.get_item(0)?],
        )?))
    }
}

impl CallTable {
    /// `grouped`: only signatures whose arguments are leaves themselves or that have a
    /// plan (the caller's result is then the output list, or its regrouping).
    #[allow(clippy::type_complexity)]
    fn call<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        grouped: bool,
    ) -> PyResult<Option<(Bound<'py, PyAny>, Py<PyAny>, Arc<Group>)>> {
        shield("the call path", || {
            let np = np(py)?;
            if !np.ok {
                return Ok(None);
            }
            let groups = self.snapshot();
            let mut leaves = Vec::with_capacity(args.len());
            // The signature: containers, types, dtypes and shapes (no Python code runs).
            let group = groups.iter().find(|g| {
                if grouped && g.plan.is_none() && g.kinds.iter().any(|k| *k != Kind::Leaf) {
                    return false;
                }
                collect_leaves(args, &g.kinds, &mut leaves)
                    && leaves.len() == g.shapes.len()
                    && leaves.iter().zip(&g.shapes).enumerate().all(|(k, (a, s))| {
                        // SAFETY: GIL held, `a` alive, pointers not kept.
                        unsafe { leaf(np, a) }.is_some_and(|l| {
                            l.fits(s, g.dtypes[k], g.scalars[k], top_level(&g.kinds, k))
                        })
                    })
            });
            let Some(group) = group.cloned() else {
                return Ok(None);
            };
            drop(leaves);
            for e in &group.entries {
                match self.stale(py, np, e)? {
                    Stale::No => {}
                    Stale::Yes => continue,
                    Stale::Unsure => return Ok(None),
                }
                if let Some(outs) = self.run_entry(py, np, e, &group, args)? {
                    return Ok(Some((outs, e.obj.clone_ref(py), group.clone())));
                }
            }
            Ok(None)
        })
    }

    /// Runs one entry: `Ok(None)` when a guard fails (or the arguments changed meanwhile).
    fn run_entry<'py>(
        &self,
        py: Python<'py>,
        np: &Np,
        e: &Entry,
        group: &Group,
        args: &Bound<'py, PyTuple>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let shapes = &group.shapes;
        let t = e.trace.get();
        let program = t.run_program()?;
        let data = t.data();
        let ng = data.guards.len();
        // Output arrays first: allocating them may run Python code (the garbage
        // collector), and none may run between reading the inputs' pointers and the end
        // of the run.
        let outs = match &e.out_shapes {
            Some(shapes) => {
                let list = PyList::empty(py);
                for (s, &f32) in shapes.iter().zip(&e.out_f32) {
                    list.append(np.empty_of(py, s, f32)?)?;
                }
                Some(list)
            }
            None => None,
        };
        // The leaves again (a list argument may have changed while Python code ran).
        let mut leaves = Vec::with_capacity(shapes.len());
        if !collect_leaves(args, &group.kinds, &mut leaves) || leaves.len() != shapes.len() {
            return Ok(None);
        }
        let n = leaves.len();
        let mut scalars = [0.0f64; 8];
        if n > scalars.len()
            && leaves
                .iter()
                .any(|a| a.get_type_ptr() as usize != np.ndarray)
        {
            return Ok(None);
        }
        // float32 arguments widened to f64 (exact), as `Trace.run` converts them
        let mut widened: Vec<Vec<f64>> = vec![];
        let mut slices: Vec<&[f64]> = Vec::with_capacity(n);
        for (k, (a, s)) in leaves.iter().zip(shapes).enumerate() {
            // SAFETY: GIL held, `a` alive (`leaves` holds it); the pointers are used only
            // until the run ends, with no Python code in between.
            let l = match unsafe { leaf(np, a) } {
                Some(l)
                    if l.fits(
                        s,
                        group.dtypes[k],
                        group.scalars[k],
                        top_level(&group.kinds, k),
                    ) =>
                {
                    l
                }
                _ => return Ok(None),
            };
            let len: usize = s.iter().product::<isize>() as usize;
            match l {
                Leaf::Array { data, .. } => {
                    // SAFETY: a C-contiguous aligned float64 array of the checked shape.
                    slices.push(unsafe { std::slice::from_raw_parts(data, len) });
                }
                Leaf::ArrayF32 { data, .. } => {
                    // SAFETY: a C-contiguous aligned float32 array of the checked shape.
                    let src = unsafe { std::slice::from_raw_parts(data, len) };
                    widened.push(src.iter().map(|&v| v as f64).collect());
                    slices.push(&[]); // filled below (`widened` must stop growing first)
                }
                Leaf::Scalar(v) => {
                    scalars[k] = v;
                    slices.push(&[]); // filled below (the scalars must stop moving first)
                }
            }
        }
        let mut next_wide = widened.iter();
        for (k, sl) in slices.iter_mut().enumerate() {
            if group.dtypes[k] == DType::F32 {
                *sl = next_wide.next().map(|w| w.as_slice()).unwrap_or(&[]);
            } else if sl.is_empty() && shapes[k].is_empty() {
                *sl = std::slice::from_ref(&scalars[k]);
            }
        }
        if let Some(list) = outs {
            let mut failed = false;
            let mut dst: Vec<Option<&mut [f64]>> = (0..ng).map(|_| None).collect();
            // float32 outputs: visited, then narrowed into their arrays (addresses as
            // usize, so the visitor may run with the GIL released)
            let mut narrow: Vec<Option<(usize, usize)>> = vec![None; ng];
            for ((a, s), &f32) in list
                .iter()
                .zip(e.out_shapes.iter().flatten())
                .zip(&e.out_f32)
            {
                let len = s.iter().product::<isize>() as usize;
                // SAFETY: made by empty_of above: a fresh C-contiguous array of this shape
                // and dtype, kept alive by the list and seen by no one else yet.
                let ptr = unsafe { (*(a.as_ptr() as *const ArrayHead)).data };
                if f32 {
                    dst.push(None);
                    narrow.push(Some((ptr as usize, len)));
                } else {
                    // SAFETY: as above, a float64 array of `len` elements.
                    dst.push(Some(unsafe {
                        std::slice::from_raw_parts_mut(ptr as *mut f64, len)
                    }));
                    narrow.push(None);
                }
            }
            let guards: Vec<&[f64]> = data.guards.iter().map(|g| g.1.data.as_slice()).collect();
            let mut run = || {
                program.run_f64_into(&slices, &mut dst, &mut |k, v| {
                    if k < ng {
                        failed |= v != guards[k];
                    } else if let Some((ptr, len)) = narrow[k] {
                        // SAFETY: the float32 array of `len` elements registered above,
                        // alive (held by the list) and written by this visit only.
                        let d = unsafe { std::slice::from_raw_parts_mut(ptr as *mut f32, len) };
                        d.iter_mut().zip(v).for_each(|(o, &x)| *o = x as f32);
                    }
                })
            };
            // Large runs release the GIL while the kernels run (as NumPy's ufuncs do):
            // other Python threads go on meanwhile. `leaves` keeps every input array alive
            // (and, by its reference, unresizable); a Python thread writing an input
            // meanwhile races with the kernels reading it, as it would with NumPy's loops.
            let work: usize = slices.iter().map(|s| s.len()).sum();
            if work >= autodiff_lower::PAR_MIN {
                py.allow_threads(run)
            } else {
                run()
            }
            .map_err(|e| eval_err(py, e))?;
            if failed {
                return Ok(None);
            }
            return Ok(Some(list.into_any()));
        }
        // Large runs release the GIL while the kernels run (as NumPy's ufuncs do): other
        // Python threads go on meanwhile. `leaves` keeps every input array alive (and, by
        // its reference, unresizable); a Python thread writing an input meanwhile races
        // with the kernels reading it, as it would with NumPy's own loops.
        let work: usize = slices.iter().map(|s| s.len()).sum();
        let vals = if work >= autodiff_lower::PAR_MIN {
            py.allow_threads(|| program.run_f64(&slices))
        } else {
            program.run_f64(&slices)
        }
        .map_err(|e| eval_err(py, e))?;
        drop(slices);
        let g = &data.graph;
        let mut outs = vec![];
        for (k, v) in vals.into_iter().enumerate() {
            if k < ng {
                if v != data.guards[k].1.data {
                    return Ok(None);
                }
                continue;
            }
            let o = g.outputs[k - ng];
            let t = autodiff_ir::Tensor {
                dtype: g.dtype(o),
                shape: g.shape(o).clone(),
                data: v,
            };
            outs.push(autodiff_capture::convert::tensor_into_numpy(py, t)?);
        }
        Ok(Some(PyList::new(py, outs)?.into_any()))
    }
}
