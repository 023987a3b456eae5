"""Guards and re-tracing: decisions made on traced values are checked on every call."""

import autodiff
import numpy as np
import pytest


def abs_sum(x):
    return x.sum() if x.sum() > 0 else -x.sum()


def test_branch_on_data_both_sides_after_one_gradient():
    g = autodiff.Gradient(abs_sum, [np.ones(3)])
    assert g.trace_count == 1
    (pos,) = g(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(pos, np.ones(3))
    (neg,) = g(np.array([-1.0, -2.0, -3.0]))
    np.testing.assert_allclose(neg, -np.ones(3))
    assert g.trace_count == 2
    why = g.explain()
    assert "first call" in why and "guard failed" in why
    assert "branch" in why and "test_guards.py" in why, why
    # Both specializations are cached: going back does not trace again.
    (pos2,) = g(np.array([4.0, 0.0, 0.0]))
    np.testing.assert_allclose(pos2, np.ones(3))
    (neg2,) = g(np.array([-4.0, 0.0, 0.0]))
    np.testing.assert_allclose(neg2, -np.ones(3))
    assert g.trace_count == 2


def test_function_values_on_both_sides():
    f = autodiff.Function(abs_sum)
    for x in [np.ones(2), -np.ones(2), np.array([3.0, -1.0]), np.array([-3.0, 1.0])]:
        assert f(x) == pytest.approx(abs(x.sum()))
    assert f.trace_count == 2


def newton_sqrt(a):
    y = a
    n = 0
    while abs(y * y - a) > 1e-10:
        y = 0.5 * (y + a / y)
        n += 1
    return y


def test_while_loop_trip_count_depends_on_data():
    f = autodiff.Function(newton_sqrt)
    g = autodiff.Gradient(newton_sqrt, [np.float64(4.0)])
    for a in [4.0, 2.0, 100.0, 4.0, 1e4]:
        assert f(np.float64(a)) == pytest.approx(np.sqrt(a), rel=1e-9)
        (d,) = g(np.float64(a))
        assert d == pytest.approx(0.5 / np.sqrt(a), rel=1e-6)
    assert f.trace_count >= 3  # different trip counts are different traces
    assert "guard failed" in f.explain()


def count_positive_then_take(x):
    k = int((x > 0).sum())  # int() of a traced value: a guard
    return np.sum(x[:k] ** 2)


def test_int_guard():
    f = autodiff.Function(count_positive_then_take)
    g = autodiff.Gradient(count_positive_then_take, [np.array([1.0, 2.0, -1.0])])
    for x in [np.array([1.0, 2.0, -1.0]), np.array([1.0, -2.0, -1.0]), np.array([3.0, 2.0, 1.0])]:
        assert f(x) == pytest.approx(count_positive_then_take(x))
        k = int((x > 0).sum())
        want = np.zeros(3)
        want[:k] = 2 * x[:k]
        np.testing.assert_allclose(g(x)[0], want)
    assert "int() of a traced value" in f.explain()


def test_new_shapes_retrace():
    f = autodiff.Function(lambda x: np.sum(x**2))
    assert f(np.ones(3)) == 3.0
    assert f(np.ones(5)) == 5.0
    assert f(np.ones((2, 2))) == 4.0
    assert f.trace_count == 3
    assert "new signature" in f.explain()
    assert f(np.ones(3) * 2) == 12.0
    assert f.trace_count == 3


def test_static_int_argument_is_part_of_the_signature():
    def power_sum(x, n):
        return np.sum(x**n)

    f = autodiff.Function(power_sum)
    assert f(np.full(2, 2.0), 2) == 8.0
    assert f(np.full(2, 2.0), 3) == 16.0
    assert f.trace_count == 2


def test_failing_guard_never_returns_stale_results():
    def f(x):
        if x[0] > 0:
            return x * 2
        return x * 3

    F = autodiff.Function(f)
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.normal(size=2)
        np.testing.assert_allclose(F(x), f(x))


def test_bool_in_container_is_guarded():
    def f(x):
        flags = [x[0] > 0, x[1] > 0]
        info = {"pos": x.sum() > 0}
        a = x.sum() if flags[0] else -x.sum()
        return a * (2.0 if info["pos"] else 3.0)

    F = autodiff.Function(f)
    for x in [np.array([1.0, 2.0]), np.array([-1.0, -2.0]), np.array([1.0, -5.0]), np.array([-1.0, 5.0])]:
        assert F(x) == pytest.approx(f(x))


def test_bool_in_closure_cell_and_attribute_is_guarded():
    class Box:
        pass

    def f(x):
        pos = x.sum() > 0
        box = Box()
        box.flag = x[0] > 0

        def sign():
            return 1.0 if pos else -1.0

        def pick(*flags):
            return 2.0 if flags[0] else 5.0

        return sign() * x.sum() + (1.0 if box.flag else 0.0) + pick(*[x[1] > 0])

    F = autodiff.Function(f)
    for x in [np.array([1.0, 2.0]), np.array([-1.0, -2.0]), np.array([1.0, -5.0]), np.array([-3.0, 5.0])]:
        assert F(x) == pytest.approx(f(x))


def test_guard_on_float_scalar_argument():
    def relu_scale(a, x):
        return a * x.sum() if a > 0 else 0.0 * x.sum()

    g = autodiff.Gradient(relu_scale, [2.0, np.ones(2)], wrt=0)
    assert g(2.0, np.ones(2))[0] == pytest.approx(2.0)
    assert g(-2.0, np.ones(2))[0] == pytest.approx(0.0)
    assert g.trace_count == 2


def test_cache_is_bounded():
    from autodiff import _compile

    f = autodiff.Function(lambda x: x.sum())
    for n in range(1, _compile.MAX_SIGNATURES + 10):
        f(np.ones(n))
    assert len(f._spec.cache) <= _compile.MAX_SIGNATURES


# Arrays read from outside the function are constants of the trace; changing them (in
# place or by rebinding) re-traces instead of returning stale results.
_X = np.ones((3, 2))


def _loss_global(w):
    r = _X @ w
    return np.sum(r * r)


def test_global_arrays_changed_between_calls_retrace():
    global _X
    g = autodiff.Gradient(_loss_global, [np.zeros(2)])
    w = np.array([1.0, 2.0])
    np.testing.assert_allclose(g(w)[0], 2 * _X.T @ (_X @ w))
    _X[0, 0] = 5.0
    np.testing.assert_allclose(g(w)[0], 2 * _X.T @ (_X @ w))
    _X = np.arange(6.0).reshape(3, 2)
    np.testing.assert_allclose(g(w)[0], 2 * _X.T @ (_X @ w))
    assert "modified in place" in g.explain() and "rebound" in g.explain()


def test_closure_arrays_changed_between_calls_retrace():
    data = np.ones(3)

    def f(x):
        return np.sum(data * x**2)

    g = autodiff.Gradient(f, [np.zeros(3)])
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(g(x)[0], 2 * x)
    data[:] = 2.0
    np.testing.assert_allclose(g(x)[0], 4 * x)


def test_random_numbers_inside_a_traced_function_are_refused():
    rng = np.random.default_rng(0)
    for f in (lambda x: np.sum(x + np.random.normal(size=3)), lambda x: np.sum(x * rng.random(3))):
        with pytest.raises(autodiff.TraceError, match="random"):
            autodiff.Gradient(f, [np.ones(3)])
