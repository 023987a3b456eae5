"""Optimizers on compiled gradients return arrays shaped like their initial arguments."""

import autodiff
import numpy as np
import pytest

optimize = pytest.importorskip("scipy.optimize")


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def test_seed_lbfgs_returns_list_of_0d_arrays():
    out = autodiff.fmin_l_bfgs_b(lambda x: (x + 1) ** 2, [np.zeros(())])
    assert isinstance(out, list) and out[0].shape == ()
    assert float(out[0]) == pytest.approx(-1.0, abs=1e-6)


def test_lbfgs_with_bounds_and_several_arguments():
    def f(a, b):
        return np.sum((a - 3.0) ** 2) + np.sum((b + 2.0) ** 2)

    a, b = autodiff.fmin_l_bfgs_b(f, [np.zeros((2, 2)), np.zeros(3)], bounds=[(None, 1.0), (-1.0, None)])
    assert a.shape == (2, 2) and b.shape == (3,)
    np.testing.assert_allclose(a, 1.0, atol=1e-6)
    np.testing.assert_allclose(b, -1.0, atol=1e-6)


@pytest.mark.parametrize("opt", ["fmin_l_bfgs_b", "fmin_cg", "fmin_ncg"])
def test_rosenbrock_minimized(opt):
    kw = {"maxiter": 2000} if opt != "fmin_l_bfgs_b" else {}
    (x,) = getattr(autodiff, opt)(rosen, [np.full(4, -0.5)], **kw)
    np.testing.assert_allclose(x, np.ones(4), atol=1e-3)  # Newton-CG's default tolerance


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "Newton-CG", "trust-ncg"])
def test_minimize_mirrors_scipy(method):
    res = autodiff.minimize(rosen, [np.zeros(3)], method=method, options={"maxiter": 5000})
    assert res.success or res.fun < 1e-8
    np.testing.assert_allclose(res.x[0], np.ones(3), atol=1e-4)
    assert res.x_flat.shape == (3,)


def test_non_scalar_objective_is_a_clear_error():
    with pytest.raises(autodiff.NotScalarError):
        autodiff.fmin_l_bfgs_b(lambda x: x**2, [np.zeros(3)])


@pytest.mark.parametrize("method", ["TNC", "Nelder-Mead", "Powell", "trust-exact", "dogleg"])
def test_scipy_methods_that_pass_a_bare_point_or_need_the_hessian(method):
    # regressions: TNC hands the callback an ndarray (AttributeError: no .x); the
    # derivative-free methods got a jac (SciPy warned); trust-exact and dogleg got no
    # Hessian (SciPy refused)
    import warnings

    f = lambda x: np.sum((x - np.array([1.0, -2.0, 0.5])) ** 2) + 0.1 * np.sum(x**4)
    x0 = np.zeros(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = autodiff.minimize(f, [x0], method=method, options={"maxiter": 20000} if method == "Nelder-Mead" else None)
    want = optimize.minimize(lambda x: f(x), x0, method="BFGS").x
    np.testing.assert_allclose(res.x[0], want, atol=2e-3)
