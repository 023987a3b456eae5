"""Regression tests: wrong derivatives and look-alike inputs that used to return a number
without an error (the "never silently wrong" issue, items 1, 2, 3 and 7), and the
self-check of derivatives that now guards every fresh trace."""

import autodiff
import numpy as np
import pytest
from autodiff._compile import directional_check
from conftest import central_grad

scipy_special = pytest.importorskip("scipy.special")


# --- 1. long loops: fused kernels with more than 32k registers ---------------------------


def relax(x, steps):
    y = x
    for _ in range(steps):
        y = np.sin(y) * 0.5 + x * 0.5
    return np.sum(y)


def test_long_loop_gradient_is_right():
    g = autodiff.Gradient(lambda x: relax(x, 10000))
    for x in (np.array([0.3, -0.7, 1.1]), np.array([-0.2, 0.4, 0.9])):
        got = g(x)[0]
        want = central_grad(lambda z: relax(z, 10000), x)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_long_loop_hessian_vector_product_is_right():
    f = lambda x: relax(x, 4500)
    hv = autodiff.HessianVector(f)
    g = autodiff.Gradient(f)
    v = np.array([1.0, -2.0, 0.5])
    x = np.array([0.3, -0.7, 1.1])
    got = hv(x, vectors=[v])[0]
    eps = 1e-5
    want = (g(x + eps * v)[0] - g(x - eps * v)[0]) / (2 * eps)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)


# --- the self-check of derivatives ------------------------------------------------------


def test_directional_check_accepts_a_right_slope_and_refuses_a_wrong_one():
    x, v = np.array([0.5, 1.5]), np.array([1.0, -2.0])
    f = lambda t: float(np.sum(np.sin(x + t * v)))
    slope = float(np.cos(x) @ v)
    assert directional_check(np.sin, f, f(0.0), slope, x, v) == pytest.approx(slope, rel=1e-6)
    with pytest.raises(autodiff.TraceError, match="finite-difference self-check"):
        directional_check(np.sin, f, f(0.0), 2 * slope, x, v)
    with pytest.raises(autodiff.TraceError):
        directional_check(np.sin, f, f(0.0), float("nan"), x, v)


def test_directional_check_takes_the_vector_in_pieces():
    # x and v as lists of arrays (one per argument) give the verdicts of the joined vectors
    xs, vs = [np.array([0.5, 1.5]), np.array([[2.0]])], [np.array([1.0, -2.0]), np.array([[30.0]])]
    f = lambda t: float(np.sum(np.sin(xs[0] + t * vs[0])) + np.sum(np.exp(xs[1] + t * vs[1])))
    slope = float(np.cos(xs[0]) @ vs[0] + np.sum(np.exp(xs[1]) * vs[1]))
    assert directional_check(np.sin, f, f(0.0), slope, xs, vs) == pytest.approx(slope, rel=1e-6)
    with pytest.raises(autodiff.TraceError, match="finite-difference self-check"):
        directional_check(np.sin, f, f(0.0), 1.01 * slope, xs, vs)


def test_directional_check_gives_no_verdict_at_a_kink():
    # relu at 0: forward and backward differences disagree, so no slope is refused
    x, v = np.zeros(3), np.ones(3)
    f = lambda t: float(np.sum(np.maximum(x + t * v, 0.0)))
    for slope in (0.0, 1.5, 3.0):
        assert directional_check(np.sin, f, f(0.0), slope, x, v) is None


def test_a_wrong_gradient_program_is_refused_at_the_first_call():
    """A transform whose outputs do not match the function's derivative (here: the two
    gradients swapped) is caught by the self-check instead of being returned."""
    f = lambda x, y: np.sum(x**2) + np.sum(3 * y**3)
    g = autodiff.Gradient(f)
    g._spec.transform = lambda tr, sig: tr.grad([1, 0])
    with pytest.raises(autodiff.TraceError, match="self-check"):
        g(np.array([1.0, 2.0]), np.array([0.5, -1.0]))


def test_stop_gradient_is_not_mistaken_for_a_wrong_derivative():
    g = autodiff.Gradient(lambda x: np.sum(x * autodiff.constant(x)))
    for x in (np.array([1.0, 2.0]), np.array([3.0, -2.0])):
        np.testing.assert_array_equal(g(x)[0], x)


def test_constant_reads_the_current_value():
    """`constant(x)` of a traced x used to freeze x's value at trace time."""
    f = autodiff.Function(lambda x: x * autodiff.constant([x, 2 * x])[1])
    for x in (np.array([1.0, 2.0]), np.array([3.0, -2.0])):
        np.testing.assert_array_equal(f(x), x * 2 * x)
    g = autodiff.Gradient(lambda x: float(autodiff.constant(x.sum())) * x.sum())
    for x in (np.array([1.0, 2.0]), np.array([3.0, -2.0])):
        np.testing.assert_allclose(g(x)[0], np.full(2, x.sum()))


# --- 2. xlogy / xlog1py at x == 0 -----------------------------------------------------------


@pytest.mark.parametrize("name", ["xlogy", "xlog1py"])
def test_xlogy_gradient_at_zero_counts(name):
    fn = getattr(scipy_special, name)
    log = np.log if name == "xlogy" else np.log1p
    g = autodiff.Gradient(lambda x, y: np.sum(fn(x, y)))
    for x, y in [
        (np.array([0.0, 1.0, 0.0]), np.array([2.0, 3.0, 0.5])),
        (np.array([2.0, 0.0, 0.0]), np.array([0.7, 4.0, 1.5])),
    ]:
        gx, gy = g(x, y)
        np.testing.assert_allclose(gx, log(y), rtol=1e-12)
        np.testing.assert_allclose(gx, central_grad(lambda z: np.sum(fn(z, y)), x), rtol=1e-6)
        np.testing.assert_allclose(gy, central_grad(lambda z: np.sum(fn(x, z)), y), rtol=1e-6, atol=1e-9)
    # values where log(y) is not finite: NumPy's/SciPy's value, no NaN gradient
    f = autodiff.Function(lambda x, y: fn(x, y))
    x, y = np.array([0.0, 1.0, 0.0, 0.0, 1.0]), np.array([2.0, -1.0 if name == "xlog1py" else 0.0, 0.0, np.inf, np.nan])
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(f(x, y), fn(x, y))
        gx, gy = g(x, y)
    assert np.isfinite(gx[[0, 2, 3]]).all() and np.isfinite(gy[[0, 2, 3]]).all()


def test_poisson_likelihood_with_zero_counts():
    k = np.array([0.0, 1.0, 3.0, 0.0])
    nll = lambda lam: np.sum(lam - scipy_special.xlogy(k, lam))
    g = autodiff.Gradient(nll)
    for lam in (np.array([1.0, 2.0, 3.0, 0.5]), np.array([0.2, 1.0, 2.5, 4.0])):
        np.testing.assert_allclose(g(lam)[0], 1 - k / lam, rtol=1e-12)


# --- 3. NaN where the derivative is finite ------------------------------------------------


def test_nan_reductions_ignore_nan_data_in_the_gradient():
    D = np.array([1.0, np.nan, 3.0, 2.0, np.nan])
    for red in (np.nanmean, np.nansum, np.nanvar, np.nanstd):
        f = lambda s, red=red: red((D - s) ** 2)
        g = autodiff.Gradient(f)
        for s in (np.float64(0.5), np.float64(-1.25)):
            got = g(s)[0]
            assert np.isfinite(got), red.__name__
            np.testing.assert_allclose(got, central_grad(f, s), rtol=1e-6, err_msg=red.__name__)


@pytest.mark.parametrize(
    "f",
    [
        lambda p: np.sum(np.where(p > 0, p * np.log(p), 0.0)),
        lambda p: np.sum(np.where(p > 0, np.sqrt(p), 0.0) ** 2),
        lambda p: np.sum(np.where(p <= 0, 0.0, p / p * np.log(p) ** 2)),
        lambda p: np.sum(np.where(p > 0, np.log(np.where(p > 0, p, 1.0)) * p, -p)),
    ],
)
def test_the_branch_not_taken_contributes_exactly_zero(f):
    g = autodiff.Gradient(f)
    hv = autodiff.HessianVector(f)
    for p in (np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.0, 2.0, 0.3])):
        got = g(p)[0]
        assert np.isfinite(got).all(), got
        inside = p > 0
        want = central_grad(f, p)
        np.testing.assert_allclose(got[inside], want[inside], rtol=1e-5)
        h = hv(p, vectors=[np.ones_like(p)])[0]
        assert np.isfinite(h).all(), h


# --- 7. look-alike inputs do not share a trace ------------------------------------------------


def test_byte_swapped_inputs():
    f = autodiff.Function(lambda x: x * 2 + 1)
    a = np.arange(3.0)
    np.testing.assert_array_equal(f(a), a * 2 + 1)
    for dt in (">f8", "<f8", ">f4"):
        b = (a + 1).astype(dt)
        np.testing.assert_array_equal(f(b), b * 2 + 1)
    fresh = autodiff.Gradient(lambda x: np.sum(x**2))
    b = np.array([1.0, -2.0], dtype=">f8")
    np.testing.assert_array_equal(fresh(b)[0], 2 * b)


def test_list_and_tuple_arguments_do_not_share_a_trace():
    def pick(p):
        return p[0] * 2 if isinstance(p, list) else p[1] * 3

    f = autodiff.Function(pick)
    a, b = np.arange(3.0), np.ones(3)
    for args in ([a, b], (a, b), [b, a], (b, a)):
        np.testing.assert_array_equal(f(args), pick(args))


def test_array_subclasses_with_other_operators_are_refused():
    f = autodiff.Function(lambda x: x * x)
    np.testing.assert_array_equal(f(np.eye(2) * 2), np.eye(2) * 4)
    with pytest.raises(TypeError, match="np.matrix"):
        f(np.matrix([[1.0, 2.0], [3.0, 4.0]]))
    with pytest.raises(TypeError, match="masked"):
        f(np.ma.masked_array([1.0, 2.0], mask=[0, 1]))
    with pytest.raises(TypeError, match="masked"):
        autodiff.Gradient(lambda x: np.sum(x))(np.ma.masked_array([1.0, 2.0], mask=[0, 1]))


def test_float32_inside_a_float64_function_is_not_judged_by_float64_differences():
    """Finite differences of a graph that rounds to float32 are noise at float64 steps:
    the self-check gives no verdict there instead of refusing a right gradient."""
    f = lambda x: np.sum((x.astype(np.float32) * np.float32(1.1)).astype(np.float64) ** 3)
    g = autodiff.Gradient(f)
    for x in (np.array([0.3, 1.7, 2.9]), np.array([1e3, -2e3, 5e2])):
        y = (x.astype(np.float32) * np.float32(1.1)).astype(np.float64)
        np.testing.assert_allclose(g(x)[0], 3 * y**2 * np.float32(1.1), rtol=1e-6)


# --- the self-check compares with NumPy up to the rounding of summing in another order ---


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "f, grad",
    [
        # an odd function over a symmetric grid: the sum is ~0, its terms are not
        (lambda x: np.sum(np.tanh(x)), lambda x: 1 - np.tanh(x) ** 2),
        # centred data
        (lambda x: np.sum(x - np.mean(x)) + np.sum(x**2) * 1e-3, lambda x: 2e-3 * x),
        # a cancelling dot product
        (lambda x: np.dot(np.sin(x), np.ones_like(x)), np.cos),
    ],
)
def test_a_sum_that_cancels_is_not_mistaken_for_a_wrong_trace(f, grad, dtype):
    # regression: the self-check compared the traced value with NumPy's within 1e-10
    # absolute, but summing 10^6 terms of size ~1 in another order differs by ~1e-10
    # (float64) or ~0.03 (float32): the first call raised "internal: ... does not reproduce"
    g = autodiff.Gradient(f)
    for x in (np.linspace(-2, 2, 10**6), np.linspace(-1.5, 2.5, 10**6)):
        (got,) = g(x.astype(dtype))
        assert got.dtype == np.dtype(dtype) and got.shape == x.shape
        tol = 1e-5 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(got[::997], grad(x[::997]), rtol=tol, atol=tol)


def test_the_self_check_still_refuses_a_trace_that_is_wrong_by_one_term():
    # the cancellation allowance is ε·√n·Σ|t|: one term of size 1 missing among 10^6 is
    # far larger, so a trace that lost it is still refused
    from autodiff import _compile, _core, _tree

    x = np.linspace(-2, 2, 10**6)
    f = lambda x: np.sum(np.tanh(x))
    _, tr, _ = _core.trace(f, [x], {}, [(x, "x")], _compile._markers(), _tree.leaves_of)
    (got,), _ = tr.run([x])
    want = np.sum(np.tanh(x))
    assert _compile._agree_up_to_cancellation(tr, [x], 0, got, want)
    assert not _compile._agree_up_to_cancellation(tr, [x], 0, got, want + np.tanh(2.0))
    assert not _compile._agree_up_to_cancellation(tr, [x], 0, got, want + 1e-5)


# --- a gradient first called on 0-d inputs, then on arrays ---


@pytest.mark.parametrize(
    "f",
    [
        np.mean,
        np.var,
        lambda x: np.sum(x) ** 2,
        lambda x: np.sum(x**2) / x.size,
        lambda x: np.linalg.norm(x),
        lambda x: np.max(x) + np.log(np.sum(np.exp(x))),
        lambda x: np.prod(x),
    ],
)
def test_a_reduction_after_a_0d_call_is_differentiated_at_the_new_shape(f):
    # regression: the 0-d trace (where a reduction is the identity) was "rebatched" to the
    # new shape as if the function were elementwise: np.mean gave [1, 1, 1, 1]
    g = autodiff.Gradient(f)
    g(np.array(0.5))
    for x in (np.array([1.0, 2.0, 3.0, 4.5]), np.array([0.3, -1.2, 2.0])):
        np.testing.assert_allclose(g(x)[0], central_grad(f, x), rtol=1e-6, atol=1e-8)
    value, _ = autodiff.value_and_grad(f)(np.array([1.0, 2.0]))
    assert np.shape(value) == ()


@pytest.mark.parametrize(
    "f, df",
    [
        (lambda x: (x + 1) ** 2, lambda x: 2 * (x + 1)),
        (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
        (lambda x: np.where(x > 1, np.sin(x), x**3), lambda x: np.where(x > 1, np.cos(x), 3 * x**2)),
    ],
)
def test_elementwise_code_called_on_arrays_has_its_elementwise_derivative(f, df):
    # the seed thread's expectation: a gradient traced on 0-d inputs applies elementwise
    g = autodiff.Gradient(f, [np.zeros(())])
    for x in (np.arange(3.0), np.array([[0.5, 1.5], [2.5, -1.0]])):
        np.testing.assert_allclose(g(x)[0], df(x), rtol=1e-12)


@pytest.mark.parametrize(
    "f, zero_d_first",
    [
        (lambda x: x - np.mean(x), True),  # elementwise at 0-d, not at (4,)
        (np.cumsum, False),
        (lambda x: x[::-1] * x, False),
    ],
)
def test_an_array_output_that_is_not_elementwise_is_refused(f, zero_d_first):
    g = autodiff.Gradient(f)
    if zero_d_first:
        g(np.array(0.5))
    with pytest.raises(autodiff.NotScalarError, match="jacobian"):
        g(np.array([1.0, 2.0, 3.0, 4.0]))


# --- regressions found by trying the library as a user ---


@pytest.mark.parametrize(
    "f",
    [
        lambda k: np.clip(k, -0.5, 0.5),
        lambda k: k.clip(0.5, None),
        lambda k: np.clip(k, np.float64(1e-3), np.array(2.5)),
    ],
)
def test_clip_of_ints_with_float_bounds_is_float(f):
    # regression: the bounds were cast to the data's int dtype (0.5 → 0): np.clip of
    # [5, -5, 0] to ±0.5 gave zeros once traced on data the truncation did not change
    F = autodiff.Function(f)
    F(np.zeros(3, dtype=np.int64))
    for k in (np.array([5, -5, 0]), np.array([1, 2, 3])):
        got = F(k)
        assert got.dtype == f(k).dtype
        np.testing.assert_array_equal(got, f(k))


def test_gradient_through_cholesky_of_the_argument_passes_the_self_check():
    # regression: the finite-difference self-check perturbed K in a non-symmetric
    # direction, along which NumPy's cholesky (reading one triangle) and the symmetric
    # gradient (JAX's convention) differ: every Gaussian-process likelihood raised
    rng = np.random.default_rng(0)
    y = rng.standard_normal(5)

    def nll(K):
        L = np.linalg.cholesky(K)
        a = np.linalg.solve(L, y)
        return 0.5 * a @ a + np.sum(np.log(np.diag(L)))

    g = autodiff.Gradient(nll)
    for seed in (1, 2):
        B = np.random.default_rng(seed).standard_normal((5, 5))
        K = B @ B.T + 5 * np.eye(5)
        Ki = np.linalg.inv(K)
        alpha = Ki @ y
        np.testing.assert_allclose(g(K)[0], 0.5 * (Ki - np.outer(alpha, alpha)), rtol=1e-9, atol=1e-12)
    hv = autodiff.HessianVector(nll)(K, vectors=[np.eye(5)])[0]
    eps = 1e-5
    want = (g(K + eps * np.eye(5))[0] - g(K - eps * np.eye(5))[0]) / (2 * eps)
    np.testing.assert_allclose(hv, want, rtol=1e-5, atol=1e-8)


def test_python_int_arguments_are_static_by_default():
    # regression: the default wrt took Python ints too, so a step count became a float
    # (range() of it failed) and `x ** n` got a gradient with respect to n
    def f(x, steps):
        y = x
        for _ in range(steps):
            y = y * 1.01
        return np.sum(y)

    np.testing.assert_allclose(autodiff.Gradient(f)(np.ones(3), 10)[0], np.full(3, 1.01**10))
    grads = autodiff.Gradient(lambda x, n: np.sum(x**n))(2 * np.ones(3), 3)
    assert len(grads) == 1
    np.testing.assert_allclose(grads[0], np.full(3, 12.0))
    # an int is differentiated when nothing else can be
    np.testing.assert_allclose(autodiff.Gradient(lambda x: x**2)(3)[0], 6.0)


@pytest.mark.parametrize(
    "f",
    [
        lambda b: b.reshape(-1, 1) @ b.reshape(1, -1),
        lambda b: np.dot(b, b[::-1]),
        lambda b: np.abs(b),
        lambda b: np.einsum("i,j->ij", b, b),
    ],
)
def test_bool_products_and_abs_follow_numpy(f):
    # regression: "internal graph error: contract ... operand dtypes bool and bool"
    F = autodiff.Function(f)
    for b in (np.array([True, False, True]), np.array([False, False, True])):
        got, want = F(b), f(b)
        assert np.asarray(got).dtype == np.asarray(want).dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "f",
    [
        lambda r: r.sum(),
        lambda r: 1.0 / r.sum(),
        lambda r: 1.0 / np.sum(r.reshape(0, 3), axis=0),
        lambda r: 1.0 / np.dot(r, r),
    ],
)
def test_the_sum_of_nothing_is_plus_zero(f):
    # regression: empty sums were -0.0 (Rust's fold start), so 1/sum gave -inf, NumPy inf
    x = np.zeros(0)
    got, want = autodiff.Function(f)(x), f(x)
    np.testing.assert_array_equal(got, want)
    assert np.all(np.signbit(got) == np.signbit(want))


def test_vmap_over_an_empty_batch_gives_an_empty_result():
    # regression: IndexError (the example element was a[0])
    f = autodiff.vmap(lambda r: np.sum(r**2) + np.tanh(r[0]))
    out = f(np.zeros((0, 5)))
    assert out.shape == (0,)
    np.testing.assert_allclose(f(np.ones((2, 5))), [5 + np.tanh(1.0)] * 2)


@pytest.mark.parametrize("hyp", [np.hypot, lambda a, b: __import__("math").hypot(a, b)])
def test_hypot_neither_overflows_nor_underflows(hyp):
    # regression: hypot was sqrt(x² + y²): inf at 1e200, 0 at 1e-200, zero gradients
    F = autodiff.Function(lambda x: hyp(x[0], x[1]))
    G = autodiff.Gradient(lambda x: hyp(x[0], x[1]))
    F(np.array([3.0, 4.0]))
    G(np.array([3.0, 4.0]))
    for s in (1e200, 1e-200, 1.0):
        v = np.array([3.0, -4.0]) * s
        np.testing.assert_allclose(F(v), 5.0 * s, rtol=1e-15)
        np.testing.assert_allclose(G(v)[0], [0.6, -0.8], rtol=1e-15)
    if hyp is np.hypot:
        assert F(np.array([np.inf, np.nan])) == np.inf
    assert F(np.zeros(2)) == 0.0


def test_logsumexp_with_weights_shifts_by_the_weighted_entries_only():
    # regression: the shift was the max over every entry, so a huge entry of weight 0 gave
    # -inf (exp underflow of the others) and nan gradients
    sp = pytest.importorskip("scipy.special")
    b = np.array([1.0, 0.0, 2.0])
    f = lambda x: sp.logsumexp(x, b=b)
    F, G = autodiff.Function(f), autodiff.Gradient(f)
    F(np.array([1.0, 2.0, 3.0]))
    G(np.array([1.0, 2.0, 3.0]))
    for x in (np.array([1.0, 2000.0, 3.0]), np.array([1.0, np.inf, 3.0]), np.array([0.5, -1.0, 0.25])):
        np.testing.assert_allclose(F(x), f(x), rtol=1e-14)
        w = b * np.exp(x - 3.0) * (b != 0)
        w = np.where(b != 0, w, 0.0)
        np.testing.assert_allclose(G(x)[0], w / w.sum(), rtol=1e-12, atol=1e-300)
    two = lambda x: sp.logsumexp(x, b=np.array([0.0, 1.0]))
    assert autodiff.Function(two)(np.array([np.inf, 1.0])) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "f",
    [
        lambda x: np.var(x, ddof=3),
        lambda x: np.std(x, ddof=5),
        lambda x: np.nanvar(x, ddof=3),
        lambda x: np.var(x, ddof=2),
    ],
)
def test_var_with_ddof_past_the_count_is_inf_as_numpy(f):
    # regression: the divisor n - ddof went negative (a negative variance, or the
    # self-check's internal error); NumPy divides by max(n - ddof, 0)
    x = np.array([1.0, 2.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        want = f(x)
        got = autodiff.Function(f)(x)
    np.testing.assert_array_equal(got, want)


def test_array_to_the_power_one_half_is_numpys_sqrt():
    # NumPy's `a ** 0.5` is np.sqrt: -0.0 stays -0.0 and -inf is nan (pow gave +0.0, inf)
    f = lambda x: x**0.5
    F = autodiff.Function(f)
    F(np.array([1.0, 4.0]))
    x = np.array([-0.0, -np.inf, 4.0, 2.0])
    with np.errstate(invalid="ignore"):
        got, want = F(x), f(x)
    np.testing.assert_array_equal(got, want)
    assert np.signbit(got[0])
    np.testing.assert_allclose(autodiff.Gradient(lambda x: np.sum(x**0.5))(np.array([4.0, 9.0]))[0], [0.25, 1 / 6])


@pytest.mark.parametrize("dt", [np.int32, np.uint8, np.int16])
def test_array_results_keep_their_integer_dtype(dt):
    # regression: every int array result came back as int64
    f = lambda x: (x * 3).astype(dt)
    F = autodiff.Function(f)
    for x in (np.arange(4.0), np.array([7.0, 1.0, 2.0, 0.0])):
        got = F(x)
        assert got.dtype == np.dtype(dt)
        np.testing.assert_array_equal(got, f(x))


@pytest.mark.parametrize(
    "f, x",
    [
        (np.std, np.array([2.0, 2.0])),  # sqrt of a zero variance
        (lambda x: np.arctan2(x[0], x[1]), np.zeros(2)),  # the origin
    ],
)
def test_a_nan_gradient_at_a_kink_is_returned_not_an_internal_error(f, x):
    # regression: the NaN slope hid the kink from the finite-difference check, which then
    # asked the user to report an internal error; the derivative does not exist there,
    # and NaN is what JAX returns too
    (g,) = autodiff.Gradient(f)(x)
    assert np.all(np.isnan(g))
    # a smooth point nearby is checked and right
    y = x + np.array([0.3, 0.7])
    np.testing.assert_allclose(autodiff.Gradient(f)(y)[0], central_grad(f, y), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    "f, x",
    [
        (np.exp, np.arange(3, dtype=np.uint8)),  # NumPy's exp of uint8 is float16
        (lambda x: np.sum(np.sin(x)), np.linspace(0, 1, 5).astype(np.float16)),
    ],
)
def test_float16_results_are_float16_and_close_to_numpy(f, x):
    # regression: the self-check compared our float64 values with NumPy's float16 at
    # 1e-7 and raised its "internal, please report" error
    got, want = autodiff.Function(f)(x), f(x)
    assert np.asarray(got).dtype == np.float16
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=2e-3)


@pytest.mark.parametrize(
    "f",
    [
        lambda x: np.median(x),
        lambda x: np.median(x.reshape(3, 0), axis=1),
        lambda x: __import__("scipy.special", fromlist=["logsumexp"]).logsumexp(x),
    ],
)
def test_reductions_of_nothing_follow_numpy_and_scipy(f):
    # regression: "evaluation failed: node 4 (gather): index -1 out of range" (median) and
    # "node 1 (max)" (logsumexp) where NumPy gives nan and SciPy -inf
    pytest.importorskip("scipy.special")
    x = np.zeros(0)
    with np.errstate(all="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        want = f(x)
        got = autodiff.Function(f)(x)
    np.testing.assert_array_equal(got, want)


def test_a_where_chattering_in_a_long_loop_is_no_self_check_failure(monkeypatch):
    """The state crosses a `where`'s discontinuity every few steps: finite differences over
    any practical step cross many jumps and agree with each other, yet measure no
    derivative. The self-check used to call that an internal error; the gradient is the
    derivative of the branches taken (as in JAX), the one the unchecked run gives."""

    def f(y0, h):
        y = np.zeros((3000, 3))
        y[0] = y0
        for i in range(1, 3000):
            y[i] = np.where(y[i - 1] > 0.5, y[i - 1] * 0.999 - h, y[i - 1] + h * np.cos(y[i - 1]))
        return np.sum(y)

    a = np.random.default_rng(7).normal(size=3) * 0.3
    got = autodiff.grad(f, argnums=(0, 1))(a, 0.001)
    monkeypatch.setenv("AUTODIFF_SELF_CHECK", "0")
    want = autodiff.grad(f, argnums=(0, 1))(a, 0.001)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12)
        assert np.all(np.isfinite(g))


def test_float32_compared_with_a_python_float_compares_in_float32():
    """NumPy 2 casts the Python float to float32 first (NEP 50): float32(0.1) > 0.1 is
    False. The trace compared in float64: wrong masks, gradients and branches."""
    x = np.array([0.0, 0.5], np.float32)
    xs = np.array([0.1, 0.5], np.float32)
    f = lambda x: np.where(x > 0.1, x, 0.0).sum()
    assert autodiff.Function(f, [x])(xs) == f(xs)
    g = autodiff.grad(lambda x: np.where(x > 0.1, x**2, 0.0).sum())
    g(x)
    np.testing.assert_allclose(g(xs), np.where(xs > 0.1, 2 * xs, 0))
    h = lambda x: x * 2 if x[0] > 0.1 else x * 3
    np.testing.assert_allclose(autodiff.Function(h, [np.array([0.5, 1.0], np.float32)])(xs), h(xs))
    np.testing.assert_allclose(autodiff.Function(h)(xs), h(xs))
    e = lambda x: np.sum(np.greater_equal(x, 0.1) * x) + np.sum((x == 0.1) * 1.0)
    np.testing.assert_allclose(autodiff.Function(e, [x])(xs), e(xs))


@pytest.mark.parametrize(
    "f",
    [
        lambda x: x.sum() * sum(map(lambda v: v > 1.0, x)),
        lambda x: x.sum() * (2.0 if list(map(lambda v: v > 1.0, x))[1] else 1.0),
        lambda x: x.sum() * (2.0 if any(map(lambda v: v > 1.0, x)) else 1.0),
        lambda x: x.sum() * (2.0 if any(v > 1.0 for v in x) else 1.0),
        lambda x: x.sum() * sum(v > 1.0 for v in x),
    ],
    ids=["sum-map", "list-map", "any-map", "any-genexpr", "sum-genexpr"],
)
def test_traced_bools_from_generators_keep_their_guards(f):
    """A comparison yielded by a generator (or the lazy `map`) and collected by sum/list/any
    kept its value but not its node: later calls reused the traced outcome silently."""
    a, b = np.array([0.5, -2.0, 0.3]), np.array([0.5, 3.0, -2.0])
    F = autodiff.Function(f, [a])
    np.testing.assert_allclose(F(b), f(b))
    np.testing.assert_allclose(F(a), f(a))


# --- values read behind the engine's back: refused by the nearby-input check -------------


def _after_write_flat(x):
    y = np.zeros(3)
    it = y.flat
    y[:] = x**2
    return sum(v for v in it)


def _after_write_iter(x):
    y = np.zeros(3)
    it = iter(y)
    y[:] = x**2
    return sum(it)


def _after_write_memoryview(x):
    y = np.zeros(3)
    m = memoryview(y)
    y[:] = x**2
    return sum(m)


def _after_write_nditer(x):
    y = np.zeros(3)
    it = np.nditer(y)
    y[:] = x**2
    return sum(float(v) for v in it)


@pytest.mark.parametrize("f", [_after_write_flat, _after_write_iter, _after_write_memoryview, _after_write_nditer])
@pytest.mark.parametrize("make", [autodiff.Function, autodiff.Gradient])
def test_readers_made_before_a_traced_write_are_refused_not_stale(f, make):
    """A native reader made over an array before traced values were written into it reads
    them out of the engine's sight: constants of the trace, right at the traced input only.
    The trace is run against the function at a nearby input, and the disagreement refused."""
    with pytest.raises(autodiff.TraceError, match="nearby"):
        make(f)(np.array([1.0, 2.0, 3.0]))


def test_the_nearby_check_keeps_quiet_and_skips_what_is_not_reproducible(capsys):
    def f(x):
        print("value", float(x[0]))
        return x * 2.0 + np.empty_like(x) * 0.0

    out = autodiff.Function(f)(np.array([1.0, 2.0]))
    np.testing.assert_allclose(out, [2.0, 4.0])
    assert capsys.readouterr().out.count("value") == 1  # the check's own run prints nothing


def test_sum_of_dict_values_is_traced():
    def f(x):
        d = {i: x[i] * (i + 1) for i in range(3) if i != 1}
        return sum(d.values()) + x[1] ** 2

    g = autodiff.Gradient(f)
    for x in (np.array([0.5, -1.0, 2.0]), np.array([1.5, 3.0, -2.0])):
        np.testing.assert_allclose(autodiff.Function(f)(x), f(x))
        np.testing.assert_allclose(g(x)[0], central_grad(f, x), rtol=1e-7, atol=1e-9)


def test_zip_and_enumerate_of_iterators_are_lazy():
    def pairs(x):
        it = iter(x)
        return sum(a * b for a, b in zip(it, it))

    def rest_after_break(x):
        it = iter([x[0], x[1], x[2], x[3]])
        last = None
        for i, v in enumerate(it, start=1):
            last = v
            if i == 2:
                break
        return next(it) * last

    for f in (pairs, rest_after_break):
        g = autodiff.Gradient(f)
        for x in (np.arange(1.0, 5.0), np.array([0.5, -2.0, 3.0, 1.5])):
            np.testing.assert_allclose(autodiff.Function(f)(x), f(x))
            np.testing.assert_allclose(g(x)[0], central_grad(f, x), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    "f",
    [
        lambda x: x.sum() * 2 if [x[1] > 1] == [False] else x.sum(),
        lambda x: x.sum() * 2 if True in [x[1] > 1, x[0] > 5] else x.sum(),
        lambda x: x.sum() * 2 if (x[1] > 1, 3) < (True, 4) else x.sum(),
    ],
)
def test_comparing_containers_of_traced_bools_is_guarded(f):
    g = autodiff.Gradient(f)
    for x in (np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.5, 3.0]), np.array([6.0, 0.5, 3.0])):
        np.testing.assert_allclose(g(x)[0], central_grad(f, x), rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(autodiff.Function(f)(x), f(x))


def test_comparing_containers_of_traced_floats_is_refused():
    with pytest.raises(autodiff.TraceError, match="comparing containers"):
        autodiff.Function(lambda x: x.sum() if [x[0]] == [1.0] else 0.0)(np.ones(2))


def test_float16_gradients_and_values_are_float16():
    f = lambda x: (x**2).sum()
    x = np.array([1.0, 2.0], dtype=np.float16)
    v, g = autodiff.value_and_grad(f)(x)
    assert np.asarray(v).dtype == np.float16 and g.dtype == np.float16
    np.testing.assert_allclose(g, 2 * x)
    assert autodiff.grad(f)(x).dtype == np.float16


# --- integers computed from data that decide structure are guarded ----------------------

_A = np.array([3.0, -1, 2, 5, 0.5, -2])  # argmax 3
_B = np.array([-1.0, 4, 2, 1, 0.5, 6])  # argmax 5
_C = np.array([1.0, 2, 3, -4, -5, -6])  # argmax 2
_D = {i: float(i * i) for i in range(6)}
_L = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]


def _store_slice(x):
    y = x.copy()
    y[: np.argmax(x)] = 0.0
    return y.sum()


@pytest.mark.parametrize(
    "f",
    [
        lambda x: x[np.argmax(x) : np.argmax(x) + 2].sum(),  # BINARY_SLICE on 3.12+
        _store_slice,  # STORE_SLICE on 3.12+
        lambda x: sum(_L[: np.argmax(x)]) * x[0],
        lambda x: _D.get(np.argmax(x)) * x[0],
        lambda x: list(_L).pop(np.argmax(x)) * x[0],
        lambda x: (lambda ls: (ls.insert(np.argmax(x), 99.0), ls[3])[1])(list(_L)) * x[0],
        lambda x: {np.argmax(x): 2.0}.get(3, 7.0) * x[0],
        lambda x: {True: 2.0, False: 5.0}.get(x[0] > 0) * x[1],
        lambda x: sum(i * v for i, v in enumerate(_L, start=np.argmax(x))) * x[0],
        lambda x: np.full(np.argmax(x), 1.0).sum() * x[0],
        lambda x: np.ones_like(x, shape=np.argmax(x)).sum() * x[0],
        lambda x: np.diff(x, n=np.argmax(x)).sum(),
        lambda x: x.reshape(np.argmax(x) % 3 + 1, -1)[0].sum(),
        lambda x: x.reshape(2, 3).sum(axis=np.argmax(x) % 2)[0],
        lambda x: np.swapaxes(x.reshape(2, 3), 0, np.argmax(x) % 2)[0].sum(),
        lambda x: np.round(x[1] * 1.23456, np.argmax(x)),
        lambda x: np.split(x, [np.argmax(x)])[0].sum(),
    ],
)
def test_integers_from_data_that_decide_structure_are_guarded(f):
    """Found by a user sweep: an integer computed from the data (`np.argmax(x)`) used as a
    slice bound (3.12's BINARY_SLICE), a dict key or list index, an axis, a shape or a
    count was read once and frozen: later calls answered with the first call's structure."""
    F = autodiff.Function(f)
    for x in (_A, _B, _C, _A):
        np.testing.assert_allclose(F(x), f(x), rtol=1e-12)


def test_segments_from_an_int_array_argument_follow_it():
    def seg(x, bnd):
        return np.array([x[bnd[i] : bnd[i + 1]].sum() for i in range(len(bnd) - 1)])

    F = autodiff.Function(seg)
    x = np.arange(1.0, 11.0)
    for bnd in (np.array([0, 3, 10]), np.array([0, 5, 7]), np.array([2, 4, 6])):
        np.testing.assert_allclose(F(x, bnd), seg(x, bnd))


@pytest.mark.parametrize("red", [np.max, np.min])
def test_max_min_of_nothing_with_initial_is_initial(red):
    f = lambda x: red(x[:0], initial=-1.5) + red(x.reshape(2, 3)[:, :0], axis=1, initial=0.5).sum() + x.sum()
    x = np.array([1.0, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(autodiff.Function(f)(x), f(x))
    np.testing.assert_allclose(autodiff.grad(f)(x), np.ones(6))


def test_float16_computed_from_a_mask_is_explained_not_internal():
    with pytest.raises(autodiff.TraceError, match="float16") as e:
        autodiff.Function(lambda x: np.exp(x > 2).sum() + x[0])(np.array([1.1, 2.2, 3.3]))
    assert "internal:" not in str(e.value)


@pytest.mark.parametrize("f", [lambda x: np.sum(x**2) * x, lambda x: np.sum(x**2) * x[0]])
def test_vmap_exports_the_batched_computation(f):
    """Found by a user sweep: printing and exporting a `vmap` showed the one-example trace;
    its exported function, called on the batch, returned other numbers."""
    T = autodiff.vmap(f)
    x = np.arange(6.0).reshape(3, 2)
    want = np.stack([f(r) for r in x])
    np.testing.assert_allclose(T(x), want)
    np.testing.assert_allclose(T.to_python()(x), want)
    assert "axis=1" in T.to_source()


def test_upper_cholesky_reads_the_upper_triangle():
    """Found by a user sweep: the upper factor was the lower factor transposed, which reads
    the other triangle than LAPACK's 'U' (and the nearby-input check refused it)."""
    sl = pytest.importorskip("scipy.linalg")
    A = np.random.default_rng(17).normal(size=(3, 3))
    K = A @ A.T + 3 * np.eye(3)
    N = K + np.triu(np.ones((3, 3)), 1) * 0.3  # the lower triangle is K's
    F = autodiff.Function(lambda K: np.linalg.cholesky(K, upper=True))
    for M in (K, N):
        np.testing.assert_allclose(F(M), np.linalg.cholesky(M, upper=True), rtol=1e-12)
    W = np.arange(9.0).reshape(3, 3)
    f = lambda K: np.sum(sl.cholesky(K) * W)
    V = np.random.default_rng(1).normal(size=(3, 3))
    V = V + V.T  # the derivative is that of the symmetric part
    e = 1e-6
    np.testing.assert_allclose(
        np.sum(autodiff.grad(f)(K) * V), (f(K + e * V) - f(K - e * V)) / (2 * e), rtol=1e-6
    )
