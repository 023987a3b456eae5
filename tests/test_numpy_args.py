"""Arguments of table entries: every argument is either implemented or refused, never dropped.

Each case traces at one input, then checks the value against NumPy itself at other inputs and
the gradient against central differences (crates/python/src/capture/sig.rs binds the arguments
of every entry to the parameter list it understands).
"""

import autodiff
import numpy as np
import pytest
import scipy.linalg as sl
from conftest import numeric_grad

R = np.random.default_rng(11)
X = R.normal(size=12)
Y = R.normal(size=12)
M = R.normal(size=(4, 4))
W = np.arange(1.0, 13.0)


def sq(a):
    return a.reshape(3, 4)


def vander_inc(a):
    return (np.vander(a[:4], increasing=True) * M).sum()


def cumsum_out(a):
    out = np.empty(12)
    np.cumsum(a * W, out=out)
    return (out * W).sum()


def cumsum_out_self(a):
    b = a * 1.0
    np.cumsum(b, out=b)
    return (b * W).sum()


def add_out_view(a):
    b = a * 2.0
    np.multiply(a[:6], a[6:], out=b[3:9])
    return (b * W).sum()


def accumulate_out(a):
    out = np.zeros((3, 4))
    np.multiply.accumulate(sq(a), axis=1, out=out)
    return (out * sq(W)).sum()


def ufunc_positional_out(a):
    out = np.zeros(12)
    np.add(a, W, out)
    return (out**2).sum()


def method_out(a):
    out = np.zeros(4)
    sq(a).sum(axis=0, out=out)
    return (out**2 * W[:4]).sum()


def round_out(a):
    out = np.zeros(12)
    np.round(a * 10, 1, out)
    return (out * a).sum()


CASES = {
    # keyword forms of positional parameters
    "tril_k": (lambda a: (np.tril(sq(a), k=1) * W[:4]).sum(), (X,)),
    "triu_k": (lambda a: (np.triu(sq(a), k=-1) * W[:4]).sum(), (X,)),
    "triu_m_k": (lambda a: (np.triu(m=sq(a), k=2) * W[:4]).sum(), (X,)),
    "sum_a": (lambda a: np.sum(a=a * W), (X,)),
    "sum_a_axis": (lambda a: (np.sum(a=sq(a), axis=1) * [1, 2, 3]).sum(), (X,)),
    "transpose_a": (lambda a: (np.transpose(a=sq(a)) * np.arange(12.0).reshape(4, 3)).sum(), (X,)),
    "cumsum_a": (lambda a: (np.cumsum(a=a) * W).sum(), (X,)),
    "clip_a": (lambda a: (np.clip(a=a, a_min=-0.5, a_max=0.7) * W).sum(), (X,)),
    "clip_min_max": (lambda a: (np.clip(a, min=-0.5, max=0.7) * W).sum(), (X,)),
    "mean_a": (lambda a: np.mean(a=a * W, axis=0), (X,)),
    # trace offset / axes
    "trace_offset": (lambda a: np.trace(sq(a), offset=1), (X,)),
    "trace_offset_pos": (lambda a: np.trace(sq(a), -1), (X,)),
    "trace_axes": (lambda a: (np.trace(a.reshape(2, 3, 2), axis1=0, axis2=2) * [1, 2, 3]).sum(), (X,)),
    "trace_method_offset": (lambda a: sq(a).trace(2), (X,)),
    "linalg_trace_offset": (lambda a: np.linalg.trace(sq(a), offset=1), (X,)),
    "trace_dtype_int": (lambda a: np.trace(sq(3 * a), dtype=int) * a[0], (X,)),
    # order='F'
    "reshape_F": (lambda a: (np.reshape(a, (3, 4), order="F") * np.arange(12.0).reshape(3, 4)).sum(), (X,)),
    "reshape_method_F": (lambda a: (sq(a).reshape(4, 3, order="F") * np.arange(12.0).reshape(4, 3)).sum(), (X,)),
    "reshape_pos_F": (lambda a: (np.reshape(sq(a), (2, 6), "F") * np.arange(12.0).reshape(2, 6)).sum(), (X,)),
    "ravel_F": (lambda a: (np.ravel(sq(a), order="F") * W).sum(), (X,)),
    "ravel_method_F": (lambda a: (sq(a).ravel("F") * W).sum(), (X,)),
    "flatten_F": (lambda a: (sq(a).flatten(order="F") * W).sum(), (X,)),
    # linear algebra flags
    "solve_triangular_unit": (
        lambda a: sl.solve_triangular(np.tril(M + a[:4]), W[:4], lower=True, unit_diagonal=True).sum(),
        (X,),
    ),
    "solve_triangular_trans": (
        lambda a: sl.solve_triangular(np.triu(M + a[:4]) + 4 * np.eye(4), W[:4], trans="T").sum(),
        (X,),
    ),
    "solve_triangular_trans1_lower": (
        lambda a: sl.solve_triangular(np.tril(M + a[:4]) + 4 * np.eye(4), W[:4], 1, True).sum(),
        (X,),
    ),
    "cholesky_upper": (
        lambda a: (np.linalg.cholesky(np.outer(a[:4], a[:4]) + 5 * np.eye(4), upper=True) * M).sum(),
        (X,),
    ),
    # out=
    "vander_increasing": (vander_inc, (X,)),
    "cumsum_out": (cumsum_out, (X,)),
    "cumsum_out_self": (cumsum_out_self, (X,)),
    "ufunc_out_view": (add_out_view, (X,)),
    "accumulate_out": (accumulate_out, (X,)),
    "ufunc_positional_out": (ufunc_positional_out, (X,)),
    "method_out": (method_out, (X,)),
    "round_out": (round_out, (X,)),
    # positional forms
    "var_ddof_positional": (lambda a: np.var(a * W, None, None, None, 1), (X,)),
    "std_method_ddof_positional": (lambda a: (a * W).std(None, None, None, 2), (X,)),
    "sum_where_positional": (lambda a: np.sum(a * W, None, None, None, False, 0.0, a > 0), (X,)),
    "sum_initial_positional": (lambda a: np.sum(a * W, None, None, None, False, 1.5), (X,)),
    "max_initial_positional": (lambda a: np.max(a * W, None, None, False, 7.5), (X,)),
    "var_correction": (lambda a: np.var(a * W, correction=1), (X,)),
    "nanstd_correction": (lambda a: np.nanstd(a * W, correction=1), (X,)),
    "take_along_default_axis": (
        lambda a: (np.take_along_axis(sq(a), np.argsort(sq(a)), axis=-1) * W[:4]).sum()
        + (np.take_along_axis(sq(a), np.array([[1], [0], [3]])) * [1, 2, 3]).sum(),
        (X,),
    ),
    "take_along_axis_none": (lambda a: (np.take_along_axis(sq(a), np.array([5, 0, 11]), None) * [1, 2, 3]).sum(), (X,)),
    # casts before arithmetic
    "einsum_dtype_int": (lambda a: np.einsum("i,i->", 3 * a, W, dtype=int, casting="unsafe") * a[0], (X,)),
    "matmul_dtype_int": (
        lambda a: np.matmul(sq(3 * a), W[:4], dtype=int, casting="unsafe").sum() * a[0],
        (X,),
    ),
    "sum_dtype_int": (lambda a: np.sum(3 * a, dtype=int) * a[0], (X,)),
    "cumsum_dtype_int": (lambda a: (np.cumsum(3 * a, dtype=np.int64) * a).sum(), (X,)),
    "reduce_dtype_int": (lambda a: np.add.reduce(3 * a, dtype=int) * a[0], (X,)),
}


def _inputs(args, k):
    return tuple(np.asarray(a) * (1.0 + 0.37 * k) + 0.21 * k for a in args)


@pytest.mark.parametrize("name", list(CASES))
def test_value_and_gradient(name):
    f, args = CASES[name]
    F = autodiff.Function(f)
    F(*args)
    for k in (1, 2):
        other = _inputs(args, k)
        np.testing.assert_allclose(F(*other), f(*other), rtol=1e-10, atol=1e-12)
    for i in range(len(args)):
        (g,) = autodiff.Gradient(f, list(args), wrt=[i])(*args)
        np.testing.assert_allclose(g, numeric_grad(f, args, i), rtol=1e-5, atol=1e-6)


def test_out_write_is_seen_by_later_reads():
    """The write through out= (an input, a view) is what later code reads."""

    def f(a):
        b = a.copy()
        np.negative(b[:6], out=b[6:])
        np.exp(b, out=b)
        return b

    F = autodiff.Function(f)
    for k in range(3):
        a = X * (1 + k) - k
        np.testing.assert_allclose(F(a), f(a), rtol=1e-12)


def test_example_input_of_zeros_does_not_hide_the_argument():
    """Traced at zeros (where tril(k=1) == tril()), then called elsewhere."""
    f = lambda a: np.tril(sq(a), k=1)
    F = autodiff.Function(f)
    F(np.zeros(12))
    np.testing.assert_allclose(F(X), f(X))
    g = lambda a: np.trace(sq(a), offset=1)
    G = autodiff.Function(g)
    G(np.zeros(12))
    np.testing.assert_allclose(G(X), g(X))


# ---------------------------------------------------------------- refused, with a location


def _refused(f, *args, match):
    with pytest.raises(autodiff.TraceError) as e:
        autodiff.Function(f)(*args)
    msg = str(e.value)
    for m in match:
        assert m in msg, msg
    assert "test_numpy_args.py:" in msg, msg


REFUSED = [
    ("ufunc_where", lambda a: np.exp(a, where=a > 0, out=np.zeros(12)), ["np.exp", "where"]),
    ("reduce_where", lambda a: np.add.reduce(a, where=a > 0), ["reduce", "where"]),
    ("reduce_initial", lambda a: np.maximum.reduce(a, initial=3.0), ["reduce", "initial"]),
    ("matmul_axes", lambda a: np.matmul(sq(a), sq(a).T, axes=[(0, 1), (0, 1), (0, 1)]), ["matmul", "axes"]),
    ("mean_int_dtype", lambda a: np.mean(a, dtype=int), ["mean", "dtype"]),
    ("var_int_dtype", lambda a: np.var(a, dtype=np.int32), ["var", "dtype"]),
    ("nansum_int_dtype", lambda a: np.nansum(a, dtype=int), ["nansum", "dtype"]),
    ("ravel_K", lambda a: np.ravel(sq(a).T, order="K"), ["ravel", "order='K'"]),
    ("reshape_A", lambda a: np.reshape(sq(a).T, (2, 6), order="A"), ["reshape", "order='A'"]),
    ("var_mean", lambda a: np.var(a, mean=np.mean(a, keepdims=True)), ["var", "mean"]),
    ("cross_axis", lambda a: np.cross(a[:6].reshape(3, 2), a[6:].reshape(3, 2), axis=0), ["cross", "axis"]),
    ("quantile_weights", lambda a: np.quantile(a, 0.5, method="inverted_cdf", weights=W), ["quantile", "weights"]),
]


@pytest.mark.parametrize("name,f,match", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused(name, f, match):
    try:
        f(X)
    except Exception as e:  # NumPy refuses it itself: nothing to check here
        pytest.skip(f"NumPy refuses the case: {e}")
    _refused(f, X, match=match)


# ---------------------------------------------------------------- NumPy's value semantics

XN = X.copy()
XN[[2, 7]] = np.nan


def _nan_inputs(a, k):
    """Other inputs with NaNs (and infinities) at other places."""
    b = np.asarray(a) * (1.0 + 0.37 * k) + 0.21 * k
    b[np.isnan(b)] = 0.3
    b[[k, 5 + 2 * k]] = np.nan
    if k == 2:
        b[1] = np.inf
        b[3] = -np.inf
    return b


SEMANTICS = {
    "fmax": lambda a: np.fmax(a, a[::-1]),
    "fmin": lambda a: np.fmin(a, 0.1),
    "fmax_reduce": lambda a: np.fmax.reduce(a.reshape(3, 4), axis=1),
    "fmin_reduce_all": lambda a: np.fmin.reduce(a, axis=None),
    "median": lambda a: np.median(a),
    "median_odd": lambda a: np.median(a[:11]),
    "median_axis": lambda a: np.median(a.reshape(3, 4), axis=1),
    "quantile": lambda a: np.quantile(a, [0.1, 0.5, 0.75]),
    "quantile_lower": lambda a: np.quantile(a, 0.3, method="lower"),
    "percentile": lambda a: np.percentile(a.reshape(4, 3), 40, axis=0),
    "builtin_max": lambda a: max(a[0], a[1], a[2]),
    "builtin_min": lambda a: min(a[2], a[0]),
    "builtin_max_list": lambda a: max([a[1], a[2], a[3]]),
    "unique": lambda a: np.unique(np.concatenate([a, a[:4]])),
    "searchsorted": lambda a: np.searchsorted(np.sort(a), [np.nan, 0.0, 1.0]),
    "searchsorted_right": lambda a: np.searchsorted(np.sort(a), np.array([np.nan, 0.2]), side="right"),
    "searchsorted_v": lambda a: np.searchsorted(np.array([-1.0, 0.0, 2.0, np.nan]), a),
    "digitize": lambda a: np.digitize(a, [-1.0, 0.0, 1.0]),
    "digitize_right_decreasing": lambda a: np.digitize(a, [1.0, 0.0, -1.0], right=True),
}


@pytest.mark.parametrize("name", list(SEMANTICS))
def test_nan_semantics(name):
    f = SEMANTICS[name]
    F = autodiff.Function(f)
    with np.errstate(all="ignore"):
        F(XN)
        for k in (1, 2):
            a = _nan_inputs(XN, k)
            np.testing.assert_array_equal(F(a), f(a))
            # the reference evaluator agrees with the fast path
            np.testing.assert_array_equal(F.trace.run([a], reference=True)[0][0], f(a))


def test_median_of_infinities_is_the_middle_value():
    F = autodiff.Function(lambda a: np.median(a))
    F(np.array([3.0, 1.0, 2.0]))
    for a in ([np.inf, 1.0, -np.inf], [np.inf, 2.0, 1.0, -np.inf], [np.inf, np.inf, 1.0]):
        a = np.array(a)
        np.testing.assert_array_equal(F(a), np.median(a))


@pytest.mark.parametrize("name", ["fmax", "fmin"])
def test_fmax_gradient_goes_to_the_non_nan_operand(name):
    uf = getattr(np, name)
    f = lambda a, b: (uf(a, b) * W).sum()
    a, b = X.copy(), Y.copy()
    a[[1, 3]] = np.nan
    b[[4, 6]] = np.nan
    ga, gb = autodiff.Gradient(f, [a, b], wrt=[0, 1])(a, b)
    only_a = ~np.isnan(a) & np.isnan(b)  # b is NaN: the result is a
    only_b = np.isnan(a) & ~np.isnan(b)
    np.testing.assert_array_equal(ga[only_a], W[only_a])
    np.testing.assert_array_equal(gb[only_a], 0.0)
    np.testing.assert_array_equal(gb[only_b], W[only_b])
    np.testing.assert_array_equal(ga[only_b], 0.0)
    # elsewhere: central differences
    ok = ~np.isnan(a) & ~np.isnan(b)
    np.testing.assert_allclose(ga[ok], numeric_grad(f, [a, b], 0)[ok], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gb[ok], numeric_grad(f, [a, b], 1)[ok], rtol=1e-5, atol=1e-6)


INT_CASES = {
    "astype_int8": (lambda a: (a * 100).astype(np.int8), X),
    "astype_uint8": (lambda a: (a * 100).astype(np.uint8), X),
    "astype_int16": (lambda a: (a * 30000).astype(np.int16), X),
    "int8_arithmetic": (lambda a: a * np.int8(3) + np.int8(100), (X * 40).astype(np.int8)),
    "round_int_negative": (lambda a: np.round(a, -2), (X * 10000).astype(np.int64)),
    "round_int_positive": (lambda a: np.round(a * 3, 2), (X * 10000).astype(np.int64)),
    "round_float_negative": (lambda a: np.round(a * 1000, -1), X),
    "builtin_round_int": (lambda a: round(a[0] * 7, -1), (X * 10000).astype(np.int64)),
}


@pytest.mark.parametrize("name", list(INT_CASES))
def test_integer_semantics(name):
    f, a = INT_CASES[name]
    F = autodiff.Function(f)
    F(a)
    for k in (1, 2, 3):
        b = (np.asarray(a) * (1 + k) + 7 * k).astype(a.dtype)
        np.testing.assert_array_equal(F(b), f(b))
        np.testing.assert_array_equal(F.trace.run([b], reference=True)[0][0], f(b))
