"""Generated from the capture table's registry (`autodiff._core._registry()`): every NumPy
entry is called with its arguments by keyword wherever NumPy accepts them, and every entry
is walked with wrong arities and types (Python's own error, never a panic)."""

import inspect
import math
import warnings

import autodiff
import numpy as np
import pytest
from autodiff import _core

REGISTRY = _core._registry()

# One positional call per entry that lives in a module; `x` is the traced (3, 4) input.
# The keyword forms are generated from these with the registry's parameter lists.
SPD = "x[:, :3] @ x[:, :3].T + np.eye(3)"
SQ = "x[:, :3] + 3 * np.eye(3)"
EXAMPLES = {
    "np.float64": ["x[0, 1]"],
    "np.float32": ["x[0, 1]"],
    "np.result_type": ["x", "x[0]"],
    "np.ndim": ["x"],
    "np.shape": ["x"],
    "np.size": ["x", "1"],
    "np.isscalar": ["x"],
    "np.iscomplexobj": ["x"],
    "np.isrealobj": ["x"],
    "np.broadcast_shapes": ["(3, 1)", "(1, 4)"],
    "np.promote_types": ["x.dtype", "np.float32"],
    "np.sum": ["x", "1"],
    "np.prod": ["x", "0"],
    "np.max": ["x", "1"],
    "np.amax": ["x", "0"],
    "np.min": ["x", "1"],
    "np.amin": ["x", "0"],
    "np.mean": ["x", "0"],
    "np.var": ["x", "1"],
    "np.std": ["x", "1"],
    "np.average": ["x", "1"],
    "np.nansum": ["x", "1"],
    "np.nanprod": ["x", "0"],
    "np.nanmax": ["x", "1"],
    "np.nanmin": ["x", "1"],
    "np.nanmean": ["x", "0"],
    "np.nanvar": ["x", "1"],
    "np.nanstd": ["x", "1"],
    "np.median": ["x", "1"],
    "np.quantile": ["x", "0.3", "1"],
    "np.percentile": ["x", "30.0", "1"],
    "np.logsumexp": ["x", "1"],
    "np.cumsum": ["x", "1"],
    "np.cumprod": ["x", "0"],
    "np.diff": ["x", "1", "0"],
    "np.corrcoef": ["x"],
    "np.dot": ["x", "x.T"],
    "np.vdot": ["x", "x"],
    "np.inner": ["x", "x"],
    "np.outer": ["x[0]", "x[1]"],
    "np.matmul": ["x", "x.T"],
    "np.tensordot": ["x", "x", "([1], [1])"],
    "np.einsum": ["'ij,kj->ik'", "x", "x"],
    "np.cross": ["x[:, :3]", "x[:, 1:]"],
    "np.convolve": ["x[0]", "x[1]"],
    "np.correlate": ["x[0]", "x[1]"],
    "np.reshape": ["x", "(4, 3)"],
    "np.ravel": ["x"],
    "np.squeeze": ["x[None]"],
    "np.expand_dims": ["x", "1"],
    "np.atleast_1d": ["x"],
    "np.atleast_2d": ["x[0]"],
    "np.asarray": ["x"],
    "np.array": ["x"],
    "np.asanyarray": ["x"],
    "np.ascontiguousarray": ["x"],
    "np.copy": ["x"],
    "np.transpose": ["x", "(1, 0)"],
    "np.swapaxes": ["x", "0", "1"],
    "np.moveaxis": ["x", "0", "1"],
    "np.broadcast_to": ["x[0]", "(2, 4)"],
    "np.broadcast_arrays": ["x", "x[0]"],
    "np.concatenate": ["[x, x]", "1"],
    "np.stack": ["[x, x]", "1"],
    "np.hstack": ["[x, x]"],
    "np.vstack": ["[x, x]"],
    "np.column_stack": ["[x[0], x[1]]"],
    "np.flip": ["x", "1"],
    "np.fliplr": ["x"],
    "np.flipud": ["x"],
    "np.roll": ["x", "1", "1"],
    "np.tile": ["x", "(2, 1)"],
    "np.repeat": ["x", "2", "0"],
    "np.take": ["x", "[0, 2]", "1"],
    "np.diagonal": ["x", "1"],
    "np.rot90": ["x", "1"],
    "np.trace": ["x", "1"],
    "np.diag": ["x"],
    "np.triu": ["x", "1"],
    "np.tril": ["x", "-1"],
    "np.take_along_axis": ["x", "np.argsort(x, axis=1)", "1"],
    "np.lib.stride_tricks.sliding_window_view": ["x[0]", "2"],
    "np.lib.stride_tricks.as_strided": ["x", "(2, 2)", "x.strides"],
    "np.where": ["x > 0", "x", "0.0"],
    "np.clip": ["x", "-0.5", "0.5"],
    "np.zeros_like": ["x"],
    "np.ones_like": ["x"],
    "np.full_like": ["x", "2.0"],
    "np.empty_like": ["x"],
    "np.full": ["(2, 3)", "x[0, 0]"],
    "np.round": ["x", "1"],
    "np.around": ["x", "1"],
    "np.interp": ["x[0]", "np.array([-1.0, 0.0, 1.0])", "np.array([0.0, 2.0, 1.0])"],
    "np.searchsorted": ["np.sort(x[0])", "x[1]"],
    "np.digitize": ["x[0]", "np.array([-1.0, 0.0, 1.0])"],
    "np.nonzero": ["x"],
    "np.flatnonzero": ["x"],
    "np.count_nonzero": ["x", "1"],
    "np.bincount": ["np.array([0, 1, 1, 3])", "x[0]"],
    "np.copyto": ["np.zeros((3, 4))", "x"],
    "np.unique": ["x"],
    "np.sort": ["x", "1"],
    "np.argsort": ["x", "1"],
    "np.partition": ["x", "1", "1"],
    "np.argpartition": ["x", "1", "1"],
    "np.argmax": ["x", "1"],
    "np.argmin": ["x", "1"],
    "np.linalg.norm": ["x", "2", "1"],
    "np.linalg.solve": [SQ, "x[:, 3]"],
    "np.linalg.inv": [SQ],
    "np.linalg.det": [SQ],
    "np.linalg.slogdet": [SQ],
    "np.linalg.cholesky": [SPD],
    "scipy.solve_triangular": ["np.tril(x[:, :3]) + 3 * np.eye(3)", "x[:, 3]", "0", "True"],
    "scipy.cholesky": [SPD],
}

# Results that are not values of x: compared by what they are, not as arrays.
NOT_VALUES = {"np.empty_like"}

X1 = np.linspace(-1.3, 1.9, 12).reshape(3, 4)
X2 = np.cos(np.arange(12.0)).reshape(3, 4) * 1.7


def _callable(name):
    if name == "np.logsumexp":
        return "scipy.special.logsumexp"
    if name.startswith("scipy."):
        return "scipy.linalg." + name[len("scipy.") :]
    return name


def _params(name, spec):
    """The positional parameter names: the registry's list, else NumPy's signature."""
    if spec is None:
        try:
            sig = inspect.signature(_resolve(name))
        except (TypeError, ValueError):
            return []
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.POSITIONAL_ONLY)
        return [p.name for p in sig.parameters.values() if p.kind in kinds]
    out = []
    for w in spec.split():
        if w == "/":
            continue
        if w.startswith("*"):
            break
        out.append(w.rstrip("~@").split("=")[0])
    return out


def _env():
    import builtins

    import scipy.linalg
    import scipy.special

    return {"np": np, "scipy": scipy, "builtins": builtins, "math": math}


def _variants(name, spec):
    """(source, keywords used) for the positional call and each keyword form."""
    args = EXAMPLES[name]
    params = _params(name, spec)
    fn = _callable(name)
    out = [(f"lambda x: {fn}({', '.join(args)})", 0)]
    for k in range(len(args) - 1, -1, -1):
        if k + (len(args) - k) > len(params):
            continue
        kw = [f"{params[i]}={args[i]}" for i in range(k, len(args))]
        out.append((f"lambda x: {fn}({', '.join(args[:k] + kw)})", len(args) - k))
    return out


def _leaves(r):
    if isinstance(r, tuple | list):
        return [leaf for item in r for leaf in _leaves(item)]
    return [r]


def _same(got, want, what):
    if isinstance(want, np.dtype | type | bool | int | tuple) and not isinstance(want, np.ndarray):
        if not _leaves(want) or not all(isinstance(w, np.ndarray | np.generic | float) for w in _leaves(want)):
            assert got == want, what
            return
    g, w = _leaves(got), _leaves(want)
    assert len(g) == len(w), what
    for a, b in zip(g, w):
        np.testing.assert_allclose(
            np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-12, atol=1e-12, err_msg=what
        )


NP_ENTRIES = [(n, fam, spec) for n, fam, spec in REGISTRY if n.startswith(("np.", "scipy.")) and n in EXAMPLES]


def test_every_numpy_entry_has_an_example():
    method_only = {"np.conj", "np.conjugate", "np.astype", "np.flatten"}
    names = {n for n, _, _ in REGISTRY if n.startswith(("np.", "scipy.")) and n not in method_only}
    assert names - set(EXAMPLES) == set()
    assert set(EXAMPLES) - names == set()


@pytest.mark.parametrize("name,family,spec", NP_ENTRIES, ids=[e[0] for e in NP_ENTRIES])
def test_keyword_forms_match_numpy(name, family, spec):
    env = _env()
    tried = 0
    for src, nkw in _variants(name, spec):
        f = eval(src, env)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want1, want2 = f(X1.copy()), f(X2.copy())
        except TypeError as e:
            # NumPy does not accept this form: neither does the traced call, with NumPy's
            # own error (a positional-only parameter passed by keyword, for one).
            with pytest.raises(TypeError) as got:
                autodiff.Function(f)(X1.copy())
            assert "internal error" not in str(got.value), (src, e)
            continue
        if family == "Introspection":
            # Values that depend on types and shapes only: returned beside an array.
            g = eval(f"lambda x: (x + 0.0, {src[len('lambda x: ') :]})", env)
            F = autodiff.Function(g)
            assert F(X1.copy())[1] == want1 if not isinstance(want1, np.ndarray) else True, src
            tried += nkw > 0
            continue
        if name == "np.copyto":
            g = eval(
                f"lambda x: (lambda d: ({src[len('lambda x: ') :].replace('np.zeros((3, 4))', 'd')}, d)[1])(np.zeros((3, 4)))",
                env,
            )
            F = autodiff.Function(g)
            _same(F(X1.copy()), X1, src)
            tried += nkw > 0
            continue
        F = autodiff.Function(f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got1, got2 = F(X1.copy()), F(X2.copy())
        if name in NOT_VALUES:
            assert np.shape(got1) == np.shape(want1), src
        else:
            _same(got1, want1, src)
            _same(got2, want2, src)
        tried += nkw > 0
    # Entries whose example's parameters are all positional-only in NumPy (a `/` in the
    # registry's list) are the only ones allowed to try no keyword form.
    positional_only = {
        "np.float64",
        "np.float32",
        "np.broadcast_shapes",
        "np.result_type",
        "np.promote_types",
        "np.einsum",
        "np.broadcast_arrays",
        "np.atleast_1d",
        "np.atleast_2d",
        "np.vdot",
        "np.inner",
        "np.matmul",
        "np.where",
        "np.linalg.cholesky",
    }
    if name not in positional_only:
        assert tried > 0, f"no keyword form of {name} was accepted by NumPy: is its parameter list right?"


def _resolve(name):
    env = _env()
    return eval(_callable(name), env)


WALK = [
    (n, fam)
    for n, fam, _ in REGISTRY
    if n.startswith(("np.", "scipy.", "math.", "builtins."))
    and n not in {"np.conj", "np.conjugate", "np.astype", "np.flatten"}
]
WRONG = [
    ("no arguments", lambda fn: lambda x: fn()),
    ("an unknown keyword", lambda fn: lambda x: fn(x, bogus_keyword=1)),
    ("too many arguments", lambda fn: lambda x: fn(x, x, x, x, x, x, x, x, x, x)),
    ("a string", lambda fn: lambda x: fn("not an array")),
    ("a dict", lambda fn: lambda x: fn(x, {"a": 1})),
]


@pytest.mark.parametrize("name,family", WALK, ids=[w[0] for w in WALK])
def test_wrong_calls_fail_as_python_does(name, family, capsys):
    fn = _resolve(name)
    for what, make in WRONG:
        f = make(fn)
        if fn in (map, filter):
            # lazy, natively and traced: the errors come when the items are consumed
            f = (lambda g: lambda x: list(g(x)))(f)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f(X1.copy())
            native = None
        except Exception as e:  # any exception NumPy raises is the reference
            native = e
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                autodiff.Function(f)(X1.copy())
            traced = None
        except Exception as e:
            traced = e
        where = f"{name} with {what}: native {native!r}, traced {traced!r}"
        assert "internal error" not in str(traced), where
        if isinstance(native, TypeError):
            assert isinstance(traced, TypeError), where
        elif native is not None:
            assert isinstance(traced, type(native) | autodiff.TraceError), where
        else:
            assert traced is None or isinstance(traced, autodiff.TraceError), where


def test_builtin_short_calls_raise_type_error():
    for f in [lambda x: pow(x), lambda x: getattr(x), lambda x: math.pow(x), lambda x: abs()]:
        with pytest.raises(TypeError):
            autodiff.Function(f)(X1.copy())


@pytest.mark.parametrize("uf", [np.fmax, np.fmin], ids=["fmax", "fmin"])
def test_fmax_fmin_bit_for_bit(uf):
    """NaN in either operand gives the other operand, as NumPy; the evaluator and the fast
    path agree bit for bit. (Ties of +0.0 and -0.0 are compared as values only: NumPy's own
    answer there depends on the array length, through its SIMD loops.)"""
    v = np.array([-0.0, 0.0, 1.5, -2.0, np.nan, np.inf, -np.inf])
    a, b = (m.ravel() for m in np.meshgrid(v, v))
    F = autodiff.Function(lambda a, b: uf(a, b))
    want = uf(a, b)
    tie = (a == b) & (a == 0)
    for got in (F(a, b), F.trace.run([a, b], reference=True)[0][0]):
        np.testing.assert_array_equal(got.view(np.int64)[~tie], want.view(np.int64)[~tie])
        np.testing.assert_array_equal(got[tie], want[tie])
    # Gradients: to the operand NumPy returned.
    ga, gb = autodiff.Gradient(lambda a, b: uf(a, b).sum(), [a, b], wrt=[0, 1])(a, b)
    pick_a = np.isnan(b) | (~np.isnan(a) & ((a > b) if uf is np.fmax else (a < b)))
    sure = ~tie & ~(np.isnan(a) & np.isnan(b)) & (a != b)
    np.testing.assert_array_equal(ga[sure], pick_a[sure].astype(float))
    np.testing.assert_array_equal(gb[sure], (~pick_a[sure]).astype(float))
