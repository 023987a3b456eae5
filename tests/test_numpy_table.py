"""NumPy/SciPy functions mirrored by compositions of IR ops (crates/python/src/capture/compose.rs).

Each case traces at one input, then checks the value against NumPy at other inputs (the same
trace, or a re-trace where a guard fails) and the gradient against central differences.
"""

import autodiff
import numpy as np
import pytest
import scipy.special as sp
from conftest import numeric_grad

R = np.random.default_rng(7)
X = R.normal(size=6)
Y = R.normal(size=6)
A = R.normal(size=(3, 4))
W = np.arange(1.0, 7.0)
XN = X.copy()
XN[2] = np.nan
KNOTS = np.array([-2.0, -0.5, 0.0, 1.0, 3.0])
VALS = np.array([1.0, 2.0, 0.0, 5.0, -1.0])


def mat(a):
    return A * a[:4]


CASES = {
    # where= / initial= and NaN-skipping reductions
    "sum_where": (lambda a: np.sum(a**2 * W, where=a > 0), (X,)),
    "sum_initial": (lambda a: np.sum(a * W, initial=2.0), (X,)),
    "mean_where": (lambda a: np.mean(a * W, where=W > 2), (X,)),
    "mean_where_axis": (
        lambda a: (np.mean(mat(a), axis=1, where=np.arange(12).reshape(3, 4) % 3 != 0) * [1, 2, 3]).sum(),
        (X,),
    ),
    "var_where": (lambda a: np.var(a * W, where=W != 3, ddof=1), (X,)),
    "std_method_where": (lambda a: (a * W).std(where=W > 1), (X,)),
    "prod_where": (lambda a: np.prod(a, where=W < 5), (X,)),
    "max_initial": (lambda a: np.max(a * W, initial=0.3), (X,)),
    "max_where": (lambda a: np.max(a * W, where=W > 2, initial=-10.0), (X,)),
    "min_where_axis": (lambda a: np.min(mat(a), axis=0, where=A < 1, initial=5.0).sum(), (X,)),
    "method_sum_where": (lambda a: (a * W).sum(where=a < 0.5), (X,)),
    "nansum": (lambda a: np.nansum(a) * a[0], (XN,)),
    "nanmean": (lambda a: np.nanmean(a) + a[1] ** 2, (XN,)),
    "nanmax": (lambda a: np.nanmax(a * W), (XN,)),
    "nanmin": (lambda a: np.nanmin(a * W), (XN,)),
    "nanprod": (lambda a: np.nanprod(a), (XN,)),
    "nanvar": (lambda a: np.nanvar(a), (XN,)),
    "nanstd": (lambda a: np.nanstd(a, ddof=1), (XN,)),
    "nanmean_axis": (lambda a: (np.nanmean(a.reshape(2, 3), axis=0) * [1, 2, 3]).sum(), (XN,)),
    # elementwise compositions
    "heaviside": (lambda a: (np.heaviside(a, 0.5) * a + np.heaviside(-a, a)).sum(), (X,)),
    "logaddexp2": (lambda a, b: np.logaddexp2(a, b).sum(), (X, Y)),
    "conj": (lambda a: (a.conj() * np.conjugate(a) * a.conjugate()).sum(), (X,)),
    "vecdot": (lambda a: np.vecdot(mat(a), A).sum() if hasattr(np, "vecdot") else np.sum(mat(a) * A), (X,)),
    "xlogy": (lambda a: sp.xlogy(a, a**2 + 1).sum() + sp.xlogy(a * 0, a).sum(), (X,)),
    "xlog1py": (lambda a: sp.xlog1py(a, a**2).sum(), (X,)),
    "log_expit": (lambda a: sp.log_expit(3 * a).sum(), (X,)),
    "logit": (lambda a: sp.logit(sp.expit(a) * 0.9).sum(), (X,)),
    "nan_to_num": (lambda a: np.nan_to_num(a * W).sum(), (X,)),
    # movement and combination
    "cross3": (lambda a, b: (np.cross(a[:3], b[:3]) * [1, 2, 3]).sum(), (X, Y)),
    "cross3_batched": (lambda a, b: np.cross(a.reshape(2, 3), b.reshape(2, 3)).sum() ** 2, (X, Y)),
    "cross2": (lambda a, b: np.cross(a[:2], b[:2]) ** 2, (X, Y)),
    "meshgrid": (lambda a, b: sum((g * i).sum() for i, g in enumerate(np.meshgrid(a, b[:3] ** 2), 1)), (X, Y)),
    "meshgrid_ij": (lambda a, b: (np.meshgrid(a, b, indexing="ij")[1] * A[0, 0] + 1).prod(), (X, Y)),
    "broadcast_arrays": (lambda a: (np.broadcast_arrays(a, A[:1, :1])[0] ** 2).sum(), (X,)),
    "select": (lambda a: np.select([a > 0.5, a < -0.5], [a**2, a**3], 0.1).sum(), (X,)),
    "copyto_where": (lambda a: _copyto(a), (X,)),
    "interp": (lambda a: np.interp(2 * a, KNOTS, VALS).sum(), (X,)),
    "interp_left_right": (lambda a: np.interp(3 * a, KNOTS, VALS, left=-3.0, right=7.0).sum(), (X,)),
    "interp_traced_fp": (lambda f: np.interp(np.array([0.3, 1.5, -1.0]), KNOTS, f).sum(), (VALS,)),
    "interp_traced_xp": (lambda k: np.interp(np.array([0.3, 1.5, -1.0]), k, VALS).sum(), (KNOTS,)),
    "interp_scalar": (lambda a: np.interp(a[0], KNOTS, VALS), (X,)),
    "convolve_full": (lambda a, b: (np.convolve(a, b[:3]) ** 2).sum(), (X, Y)),
    "convolve_same": (lambda a, b: (np.convolve(a, b[:4], "same") ** 2).sum(), (X, Y)),
    "convolve_valid": (lambda a, b: (np.convolve(a[:3], b, mode="valid") ** 2).sum(), (X, Y)),
    "correlate_valid": (lambda a, b: (np.correlate(a, b[:3]) ** 2).sum(), (X, Y)),
    "correlate_full": (lambda a, b: (np.correlate(a, b[:4], "full") * np.arange(9.0)).sum(), (X, Y)),
    # order statistics
    "median": (lambda a: np.median(a), (X,)),
    "median_odd": (lambda a: np.median(a[:5] * W[:5]), (X,)),
    "median_axis": (lambda a: (np.median(mat(a), axis=1) * [1, 2, 3]).sum(), (X,)),
    "percentile": (lambda a: np.percentile(a, 30), (X,)),
    "percentile_many": (lambda a: (np.percentile(a * W, [10, 50, 95]) * [1, 2, 3]).sum(), (X,)),
    "quantile_axis": (lambda a: np.quantile(mat(a), 0.3, axis=1, keepdims=True).sum(), (X,)),
    "quantile_lower": (lambda a: np.quantile(a, 0.7, method="lower"), (X,)),
    "quantile_midpoint": (lambda a: np.quantile(a, 0.7, method="midpoint"), (X,)),
    "quantile_nearest": (lambda a: np.quantile(a, 0.7, method="nearest"), (X,)),
    # statistics written in Python by NumPy, now traceable
    "cov": (lambda a: (np.cov(mat(a)) * np.arange(9.0).reshape(3, 3)).sum(), (X,)),
    "cov_weights": (lambda a: np.cov(a, aweights=W).sum(), (X,)),
    "average_returned": (lambda a: np.average(a, weights=W, returned=True)[0] * 2, (X,)),
    "corrcoef": (lambda a: (np.corrcoef(mat(a)) * np.arange(9.0).reshape(3, 3)).sum(), (X,)),
    "corrcoef_xy": (lambda a, b: np.corrcoef(a, b)[0, 1], (X, Y)),
    "corrcoef_rowvar": (lambda a: np.corrcoef(mat(a), rowvar=False).sum(), (X,)),
    # discrete results (graph-computed counts or guarded masks)
    "searchsorted": (lambda a: (np.searchsorted(KNOTS, a) * a).sum(), (X,)),
    "searchsorted_right": (lambda a: np.sort(a)[np.searchsorted(np.sort(a), 0.0, side="right") % 6], (X,)),
    "digitize": (lambda a: (np.digitize(a, [-1.0, 0.0, 1.0]) * a).sum(), (X,)),
    "digitize_right_decreasing": (lambda a: (np.digitize(a, [1.0, 0.0, -1.0], right=True) * a).sum(), (X,)),
    "nonzero_float": (lambda a: a[np.nonzero(np.maximum(a, 0))].sum(), (X,)),
    "count_nonzero": (lambda a: np.count_nonzero(np.maximum(a, 0)) * a.sum(), (X,)),
    "flatnonzero": (lambda a: a[np.flatnonzero(np.maximum(a, 0))].sum(), (X,)),
    "poly1d": (lambda p, a: np.poly1d(p)(a).sum(), (X[:3], Y)),
    "polyval": (lambda p, a: np.polyval(p, a).sum(), (X[:3], Y)),
    "unique": (lambda a: (np.unique(np.concatenate([a[:3], a[:3]])) * [1.0, 2.0, 3.0]).sum(), (X,)),
    "unique_counts": (lambda a: (np.unique(a, return_counts=True)[0] ** 2).sum(), (X,)),
    "bincount_weights": (lambda a: (np.bincount(np.array([0, 1, 1, 3, 0, 3]), weights=a) ** 2).sum(), (X,)),
    # logsumexp, norms, einsum
    "logsumexp_b": (lambda a: sp.logsumexp(a, b=W), (X,)),
    "logsumexp_b_axis": (lambda a: (sp.logsumexp(mat(a), axis=1, b=A**2) * [1, 2, 3]).sum(), (X,)),
    "logsumexp_sign": (lambda a: sp.logsumexp(a, b=np.array([1.0, -1.0, 1, 1, 1, 1]), return_sign=True)[0], (X,)),
    "norm_mat_1": (lambda a: np.linalg.norm(mat(a), 1), (X,)),
    "norm_mat_inf": (lambda a: np.linalg.norm(mat(a), np.inf), (X,)),
    "norm_mat_neg1": (lambda a: np.linalg.norm(mat(a), -1), (X,)),
    "norm_mat_neginf": (lambda a: np.linalg.norm(mat(a), -np.inf), (X,)),
    "norm_mat_axis": (lambda a: np.linalg.norm(mat(a), 1, axis=(1, 0)), (X,)),
    "norm_vec_0": (lambda a: np.linalg.norm(a, 0) * a.sum(), (X,)),
    "einsum_ellipsis": (lambda a: np.einsum("...i,...i->...", mat(a), A).sum(), (X,)),
    "einsum_ellipsis_implicit": (lambda a: (np.einsum("...ij", mat(a)) ** 2).sum(), (X,)),
    "einsum_ellipsis_broadcast": (
        lambda a: np.einsum("...j,ij->...i", a.reshape(1, 2, 3), A[:, :3]).sum() ** 2,
        (X,),
    ),
}


def _copyto(a):
    out = np.zeros(6)
    np.copyto(out, a * W, where=a > 0)
    return (out**2).sum()


def _inputs(args, k):
    """Other inputs than the traced ones (NaNs kept where they were)."""
    return tuple(np.asarray(a) * (1.0 + 0.13 * k) + 0.05 * k for a in args)


@pytest.mark.parametrize("name", list(CASES))
def test_value_and_gradient(name):
    f, args = CASES[name]
    try:
        f(*args)
    except ValueError as e:  # e.g. 2-vector np.cross, removed in NumPy 2.5
        pytest.skip(f"this NumPy refuses the case itself: {e}")
    F = autodiff.Function(f)
    F(*args)
    for k in (1, 2):
        other = _inputs(args, k)
        np.testing.assert_allclose(F(*other), f(*other), rtol=1e-10, atol=1e-12)
    for i in range(len(args)):
        (g,) = autodiff.Gradient(f, list(args), wrt=[i])(*args)
        np.testing.assert_allclose(g, numeric_grad(f, args, i), rtol=1e-5, atol=1e-6)


def test_mean_where_is_not_ignored():
    F = autodiff.Function(lambda a: np.mean(a, where=a > 0))
    np.testing.assert_allclose(F(X), X[X > 0].mean())


def test_nanmax_all_nan_slice_is_nan():
    F = autodiff.Function(lambda a: np.nanmax(a.reshape(2, 3), axis=1))
    a = X.copy()
    a[:3] = np.nan
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        got = F(a)
    assert np.isnan(got[0]) and got[1] == pytest.approx(X[3:].max())


def test_searchsorted_is_an_integer_node_without_guards():
    F = autodiff.Function(lambda a: np.searchsorted(KNOTS, a))
    F(X)
    assert not F.trace.guards
    np.testing.assert_array_equal(F(3 * X), np.searchsorted(KNOTS, 3 * X))


def test_unique_retraces_when_the_equalities_change():
    f = lambda a: np.unique(np.floor(a) + 0.5 * a).sum()
    F = autodiff.Function(f)
    F(X)
    b = np.array([1.0, 1.0, 2.0, 3.0, 3.0, 3.0])
    assert F(b) == pytest.approx(f(b))
    assert F.trace_count == 2


# ---------------------------------------------------------------- refused, with a location


def _refused(f, *args, match):
    with pytest.raises(autodiff.TraceError) as e:
        autodiff.Function(f)(*args)
    msg = str(e.value)
    assert match in msg, msg
    assert "test_numpy_table.py:" in msg, msg


@pytest.mark.parametrize(
    "name,f,match",
    [
        ("norm_nuc", lambda a: np.linalg.norm(mat(a), "nuc"), "SVD"),
        ("norm_2", lambda a: np.linalg.norm(mat(a), 2), "SVD"),
        ("quantile_traced_q", lambda a: np.quantile(a, a[0] ** 2 / 10), "traced q"),
        ("quantile_method", lambda a: np.quantile(a, 0.5, method="weibull"), "weibull"),
        ("interp_period", lambda a: np.interp(a, KNOTS, VALS, period=3.0), "period"),
        ("erfc", lambda a: sp.erfc(a).sum(), "erfc"),
        ("eigh", lambda a: np.linalg.eigh(np.outer(a, a))[0].sum(), "eigh"),
        ("digitize_traced_bins", lambda a: np.digitize(0.3, np.sort(a)), "digitize"),
    ],
)
def test_refused(name, f, match):
    _refused(f, X, match=match)
