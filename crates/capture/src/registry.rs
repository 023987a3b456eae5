//! The registry of the table's named entries: every NumPy, SciPy, `math` and builtin
//! callable the engine understands, grouped by family, with where it lives in Python.
//!
//! Guarantees: the registry is a constant (built once per process, nothing allocated per
//! trace); each name appears once; an entry's arguments are bound by name and position to
//! its parameter list (`sig.rs`) before its family's handler (`funcs.rs`) runs, so every
//! keyword form NumPy accepts reaches the handler in the same place as the positional
//! form, and a call NumPy refuses fails with NumPy's own error.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The families of entries; each has one handler in `funcs.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `autodiff.constant`, `autodiff.escape`, `autodiff.tag`.
    Markers,
    /// Python builtins that compute on values (`sum`, `abs`, `min`, `pow`, ...).
    Builtins,
    /// Calls that depend only on types, shapes and dtypes (`len`, `np.shape`, ...).
    Introspection,
    /// Builtins that move values without looking at them (`list`, `zip`, `map`, ...).
    Iteration,
    /// Builtins recognised by identity and run natively (discrete traced arguments are
    /// concretized under guards, continuous ones refused).
    Native,
    /// The `math` module.
    Math,
    /// Reductions and statistics (`np.sum`, `np.mean`, `np.median`, `np.cumsum`, ...).
    Reductions,
    /// Contractions (`np.dot`, `np.matmul`, `np.einsum`, ...).
    Products,
    /// Reshaping, transposing, joining and copying arrays.
    Layout,
    /// Gathers at positions fixed by the call (`np.flip`, `np.diag`, `np.triu`, ...).
    Movement,
    /// Element choice and construction (`np.where`, `np.clip`, `np.full`, `np.round`, ...).
    Selection,
    /// Order-dependent entries (`np.sort`, `np.argmax`, `np.partition`, ...).
    Sorting,
    /// `np.linalg` and `scipy.linalg`.
    Linalg,
}

/// One entry: its canonical name (what handlers match on) and family.
#[derive(Debug)]
pub struct Entry {
    pub name: &'static str,
    pub family: Family,
}

impl Entry {
    /// Where the callable lives, as (module, attribute path); None for entries reached
    /// only as array methods (`x.conj()`, `x.astype(...)`) or through the markers.
    pub fn python(&self) -> Option<(&'static str, &'static str)> {
        let n = self.name;
        match n {
            "np.conj" | "np.conjugate" | "np.astype" | "np.flatten" => None,
            "np.logsumexp" => Some(("scipy.special", "logsumexp")),
            "scipy.solve_triangular" => Some(("scipy.linalg", "solve_triangular")),
            "scipy.cholesky" => Some(("scipy.linalg", "cholesky")),
            _ => {
                let (m, rest) = n.split_once('.')?;
                match m {
                    "np" => Some(("numpy", rest)),
                    "builtins" | "math" => Some((m, rest)),
                    _ => None,
                }
            }
        }
    }
}

use Family::*;

/// The entries, by family.
const FAMILIES: &[(Family, &[&str])] = &[
    (
        Markers,
        &["autodiff.constant", "autodiff.escape", "autodiff.tag"],
    ),
    (
        Builtins,
        &[
            "builtins.sum",
            "builtins.abs",
            "builtins.min",
            "builtins.max",
            "builtins.float",
            "builtins.int",
            "builtins.bool",
            "builtins.round",
            "builtins.pow",
            "builtins.getattr",
            "np.float64",
            "np.float32",
        ],
    ),
    (
        Introspection,
        &[
            "np.result_type",
            "np.ndim",
            "np.shape",
            "np.size",
            "np.isscalar",
            "np.iscomplexobj",
            "np.isrealobj",
            "np.broadcast_shapes",
            "np.promote_types",
            "builtins.len",
            "builtins.isinstance",
            "builtins.type",
            "builtins.id",
            "builtins.print",
            "builtins.repr",
            "builtins.str",
            "builtins.format",
            "builtins.hasattr",
            "builtins.setattr",
            "builtins.callable",
            "builtins.dict",
            "builtins.issubclass",
        ],
    ),
    (
        Iteration,
        &[
            "builtins.list",
            "builtins.tuple",
            "builtins.zip",
            "builtins.enumerate",
            "builtins.reversed",
            "builtins.iter",
            "builtins.next",
            "builtins.map",
            "builtins.filter",
        ],
    ),
    (
        Native,
        &[
            "builtins.range",
            "builtins.any",
            "builtins.all",
            "builtins.sorted",
            "builtins.divmod",
        ],
    ),
    (
        Math,
        &[
            "math.exp",
            "math.log",
            "math.log1p",
            "math.log2",
            "math.log10",
            "math.sqrt",
            "math.sin",
            "math.cos",
            "math.tan",
            "math.asin",
            "math.acos",
            "math.atan",
            "math.sinh",
            "math.cosh",
            "math.tanh",
            "math.asinh",
            "math.acosh",
            "math.atanh",
            "math.expm1",
            "math.erf",
            "math.lgamma",
            "math.fabs",
            "math.atan2",
            "math.pow",
            "math.floor",
            "math.ceil",
            "math.hypot",
        ],
    ),
    (
        Reductions,
        &[
            "np.sum",
            "np.prod",
            "np.max",
            "np.amax",
            "np.min",
            "np.amin",
            "np.mean",
            "np.var",
            "np.std",
            "np.average",
            "np.nansum",
            "np.nanprod",
            "np.nanmax",
            "np.nanmin",
            "np.nanmean",
            "np.nanvar",
            "np.nanstd",
            "np.median",
            "np.quantile",
            "np.percentile",
            "np.logsumexp",
            "np.cumsum",
            "np.cumprod",
            "np.diff",
            "np.corrcoef",
        ],
    ),
    (
        Products,
        &[
            "np.dot",
            "np.vdot",
            "np.inner",
            "np.outer",
            "np.matmul",
            "np.tensordot",
            "np.einsum",
            "np.cross",
            "np.convolve",
            "np.correlate",
        ],
    ),
    (
        Layout,
        &[
            "np.reshape",
            "np.ravel",
            "np.flatten",
            "np.squeeze",
            "np.expand_dims",
            "np.atleast_1d",
            "np.atleast_2d",
            "np.asarray",
            "np.array",
            "np.asanyarray",
            "np.ascontiguousarray",
            "np.copy",
            "np.astype",
            "np.conj",
            "np.conjugate",
            "np.transpose",
            "np.swapaxes",
            "np.moveaxis",
            "np.broadcast_to",
            "np.broadcast_arrays",
            "np.concatenate",
            "np.stack",
            "np.hstack",
            "np.vstack",
            "np.column_stack",
        ],
    ),
    (
        Movement,
        &[
            "np.flip",
            "np.fliplr",
            "np.flipud",
            "np.roll",
            "np.tile",
            "np.repeat",
            "np.take",
            "np.diagonal",
            "np.rot90",
            "np.trace",
            "np.diag",
            "np.triu",
            "np.tril",
            "np.take_along_axis",
            "np.lib.stride_tricks.sliding_window_view",
            "np.lib.stride_tricks.as_strided",
        ],
    ),
    (
        Selection,
        &[
            "np.where",
            "np.clip",
            "np.zeros_like",
            "np.ones_like",
            "np.full_like",
            "np.empty_like",
            "np.full",
            "np.round",
            "np.around",
            "np.interp",
            "np.searchsorted",
            "np.digitize",
            "np.nonzero",
            "np.flatnonzero",
            "np.count_nonzero",
            "np.bincount",
            "np.copyto",
            "np.unique",
        ],
    ),
    (
        Sorting,
        &[
            "np.sort",
            "np.argsort",
            "np.partition",
            "np.argpartition",
            "np.argmax",
            "np.argmin",
        ],
    ),
    (
        Linalg,
        &[
            "np.linalg.norm",
            "np.linalg.solve",
            "np.linalg.inv",
            "np.linalg.det",
            "np.linalg.slogdet",
            "np.linalg.cholesky",
            "scipy.solve_triangular",
            "scipy.cholesky",
        ],
    ),
];

/// The registry: every entry, by name. Built on first use, once per process.
pub fn entries() -> &'static HashMap<&'static str, Entry> {
    static REGISTRY: OnceLock<HashMap<&'static str, Entry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut m = HashMap::new();
        for &(family, names) in FAMILIES {
            for &name in names {
                let old = m.insert(name, Entry { name, family });
                debug_assert!(old.is_none(), "{name} registered twice");
            }
        }
        m
    })
}

impl Entry {
    /// Its parameter list as a function (`sig.rs`); None: its arguments are not bound
    /// (the entry runs natively or reads none).
    pub fn signature(&self) -> Option<&'static str> {
        super::sig::signature(self.name, false)
    }
}

/// The entry named `name` (`"np.sum"`), if the table has one.
pub fn lookup(name: &str) -> Option<&'static Entry> {
    entries().get(name)
}

/// Every entry, in the registry's order (families, then names as listed).
pub fn all() -> impl Iterator<Item = &'static Entry> {
    FAMILIES
        .iter()
        .flat_map(|(_, names)| names.iter().map(|n| &entries()[n]))
}
