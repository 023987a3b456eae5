"""In-place updates are functionalized: values and gradients are those of the real code."""

import autodiff
import numpy as np
import pytest
from conftest import numeric_grad


def check(f, *args, wrt=0, others=()):
    """Value equals NumPy's and the gradient matches finite differences, at `args` and at
    the argument lists in `others` (traced once)."""
    F = autodiff.Function(f)
    G = autodiff.Gradient(f, list(args), wrt=wrt)
    for a in [args, *others]:
        copies = [np.array(v) for v in a]
        want = f(*[np.array(v) for v in a])
        np.testing.assert_allclose(F(*a), want, rtol=1e-12)
        (g,) = G(*a)
        np.testing.assert_allclose(g, numeric_grad(f, list(a), wrt), rtol=1e-6, atol=1e-8)
        for c, v in zip(copies, a):
            np.testing.assert_array_equal(c, v)  # the caller's arrays are never mutated


X = np.array([0.5, -1.0, 2.0, 3.0])
X2 = np.array([1.5, 2.0, -0.5, 0.25])


def test_setitem_int():
    def f(x):
        y = x.copy()
        y[1] = x[0] * x[2]
        return np.sum(y**2)

    check(f, X, others=[(X2,)])


def test_slice_iadd():
    def f(x):
        y = x * 1.0
        y[1:3] += x[:2] ** 2
        return np.sum(y * x)

    check(f, X, others=[(X2,)])


def test_traced_mask_assign():
    def f(x):
        y = x.copy()
        y[y < 0] = 0
        return np.sum(y**2)

    check(f, X, others=[(X2,)])


def test_mask_assign_values():
    def f(x):
        y = x.copy()
        m = x > 1
        y[m] = x[m] ** 3
        return np.sum(y)

    F = autodiff.Function(f)
    for x in [X, X2]:
        assert F(x) == pytest.approx(f(x))


def test_augmented_on_argument():
    def f(x, y):
        x += y
        x *= 2
        x /= 3
        return np.sum(x**2)

    check(f, X, X2, others=[(X2, X)])


def test_augmented_on_argument_both_grads():
    def f(x, y):
        x -= y**2
        return np.sum(x * x)

    G = autodiff.Gradient(f, [X, X2])
    gx, gy = G(X, X2)
    pure = lambda x, y: f(x.copy(), y.copy())
    np.testing.assert_allclose(gx, numeric_grad(pure, [X, X2], 0), rtol=1e-6)
    np.testing.assert_allclose(gy, numeric_grad(pure, [X, X2], 1), rtol=1e-6)


def test_sort_method():
    def f(x):
        y = x.copy()
        y.sort()
        return np.sum(y * np.arange(4.0))

    check(f, X, others=[(X2,)])


def test_array_created_inside_filled_in_loop():
    def f(x):
        n = x.shape[0]
        out = np.zeros(n)
        for i in range(n):
            out[i] = x[i] * (i + 1) + (out[i - 1] if i else 0.0)
        M = np.zeros((n, n))
        for i in range(n):
            M[i, : i + 1] = x[: i + 1]
        return out @ out + np.sum(M @ x)

    check(f, X, others=[(X2,)])


def test_empty_then_fill():
    def f(x):
        y = np.empty(3)
        y.fill(1.5)
        y[0] = x[0]
        z = x.copy()
        z.fill(x[1])
        return np.sum(y * x[:3]) + z.sum()

    check(f, X, others=[(X2,)])


def test_write_through_basic_slice_view():
    def f(x):
        A = x.reshape(2, 2).copy()
        row = A[0]
        row += 1.0
        col = A[:, 1]
        col *= x[0]
        return np.sum(A**2) + np.sum(row) + np.sum(col)

    check(f, X, others=[(X2,)])


def test_write_through_view_of_argument():
    def f(x):
        head = x[:2]
        head *= 3.0
        return np.sum(x**2)

    check(f, X, others=[(X2,)])


@pytest.mark.parametrize("make", ["T", "reshape", "transpose"])
def test_write_through_reshape_or_transpose_view_refused(make):
    def f(x):
        A = x.reshape(2, 2).copy()
        V = {"T": lambda: A.T, "reshape": lambda: A.reshape(4), "transpose": lambda: A.transpose()}[make]()
        V[0] = 5.0
        return np.sum(A)

    with pytest.raises(autodiff.TraceError) as e:
        autodiff.Function(f)(X)
    assert "view" in str(e.value) and "test_inplace.py" in str(e.value)


def test_stale_view_of_untraced_array_refused():
    def f(x):
        buf = np.zeros((2, 2))
        t = buf.T  # made before buf holds traced values
        buf[0, 1] = x[0]
        return t.sum() * x[1]

    with pytest.raises(autodiff.TraceError, match="shares memory"):
        autodiff.Function(f)(X)


def test_callers_arrays_untouched_by_function():
    def f(x):
        x[0] = 100.0
        x += 1
        return x.sum()

    a = X.copy()
    assert autodiff.Function(f)(a) == pytest.approx(f(X.copy()))
    np.testing.assert_array_equal(a, X)


def test_inplace_on_attribute_and_list_items():
    class State:
        pass

    def f(x):
        s = State()
        s.v = x.copy()
        s.v += 1.0
        s.v[0] = x[1]
        items = [x[0], x[1]]
        items[0] += x[2]
        items[1] *= 3.0
        return s.v @ s.v + items[0] * items[1]

    check(f, X, others=[(X2,)])


def test_matmul_inplace():
    def f(x):
        A = np.eye(2)
        A @= x.reshape(2, 2)
        return np.sum(A**2)

    check(f, X, others=[(X2,)])


def test_views_still_reachable_see_later_writes():
    """Views the code can no longer reach are forgotten after a write (so `y[i] =
    f(y[i-1])` traces in linear time); views it still holds, in locals or in a list, keep
    seeing every write."""

    def f(x):
        y = np.zeros(8)
        v = y[1:3]
        w = y[5:]
        for i in range(8):
            y[i] = x[i] * 2 + y[i - 1]
        return np.sum(v * x[:2]) + np.sum(w) + np.sum(y)

    def g(x):
        y = np.zeros((30, 2))
        rows = []
        y[0] = x[:2]
        for i in range(1, 30):
            r = y[i - 1]
            rows.append(r)
            y[i] = np.cos(r) * x[2]
        y[3] += 1.0  # written after the loop: every kept row view sees it
        return sum(np.sum(r * r) for r in rows)

    x = np.linspace(0.1, 1.0, 8)
    check(f, x, others=[(x**2,), (-x,)])
    check(g, np.array([0.2, 0.4, 0.9]), others=[(np.array([1.0, -0.3, 0.5]),)])


@pytest.mark.parametrize(
    "make",
    [
        lambda y: map(np.sum, y),
        lambda y: map(lambda r, s: np.sum(r * s), y, y),
        lambda y: filter(lambda v: True, map(np.sum, y)),
        lambda y: __import__("itertools").starmap(lambda r: np.sum(r * r), ((r,) for r in [y[0], y[2]])),
        lambda y: __import__("itertools").accumulate(map(np.sum, y)),
    ],
    ids=["map", "map2", "filter", "starmap", "accumulate"],
)
def test_lazy_iterators_made_before_a_write_see_it(make):
    """`map`, `filter`, `itertools.starmap`/`accumulate` are lazy in Python: items are
    computed when consumed, from the array as it is then. (They were computed when made:
    rows written later were read as zeros, with zero gradients.)"""

    def f(y0):
        y = np.zeros((3, 2))
        y[0] = y0
        it = make(y)
        y[1] = 2 * y[0]
        y[2] = np.sin(y[1])
        return sum(it)

    check(f, np.array([1.0, 2.0]), others=[(np.array([-0.5, 0.3]),)])


@pytest.mark.parametrize(
    "f",
    [
        lambda x: sum(__import__("itertools").accumulate(x * 2.0)),
        lambda x: sum(__import__("itertools").accumulate(x, initial=1.0)),
        lambda x: np.sum(list(__import__("itertools").accumulate([x, x * 2, np.sin(x)], lambda a, b: a * b))),
        lambda x: sum(__import__("itertools").starmap(lambda a, b: a * b, zip(x, x[::-1]))),
        lambda x: sum(map(lambda a: a * a, filter(lambda a: True, x))),
    ],
    ids=["accumulate", "accumulate-initial", "accumulate-func", "starmap", "map-filter"],
)
def test_lazy_iterator_stand_ins_follow_python(f):
    check(f, np.array([0.5, -1.0, 2.0]), others=[(np.array([1.5, 0.25, -0.75]),)])


def test_rows_filled_through_the_loop_variable():
    """`for r in y: r[:] = v` writes into `y` (the rows are views the engine knows)."""

    def f(a):
        y = np.zeros((4, 3))
        for r in y:
            r[:] = a
            a = 2 * np.sin(a)
        return np.sum(y * y)

    check(f, np.array([1.0, 2.0, 3.0]), others=[(np.array([-0.5, 0.1, 0.7]),)])


def test_a_view_of_a_view_sees_writes_to_the_base():
    def f(a):
        y = np.zeros((5, 3))
        v = y[1:4][1:3]  # the temporary y[1:4] dies; v stays linked to y through it
        y[2] = a
        y[3] = a * a
        return np.sum(v * np.arange(1.0, 4.0))

    check(f, np.array([1.0, 2.0, 3.0]), others=[(np.array([-0.5, 0.1, 0.7]),)])


def test_lazy_map_takes_one_item_per_item_and_raises_as_python():
    import itertools

    x = np.array([0.5, -2.0, 3.0])

    def shared(x):
        it = iter([x[0], x[1], x[2]])
        m = map(lambda v: v * v, it)
        a = next(m)
        b = next(it)  # the map used one item only
        return a + 10 * b + sum(m)

    def header(x):
        lines = iter(["a", "b", "c"])
        next(map(str.upper, lines))
        return x.sum() * len(list(lines))

    for f in (shared, header):
        np.testing.assert_allclose(autodiff.Function(f)(x), f(x))
    bad = [
        lambda x: sum(map(np.sin)) + x.sum(),
        lambda x: sum(map(None, x)),
        lambda x: sum(filter(None, x, x)),
        lambda x: sum(itertools.starmap(5, [(x[0],)])),
        lambda x: sum(itertools.accumulate(x, 5)),
    ]
    for f in bad:
        with pytest.raises(TypeError):
            f(x)
        with pytest.raises(TypeError):
            autodiff.Function(f)(x)


def test_an_exception_raised_in_a_traced_generator_passes_unchanged():
    """CPython 3.12+ wraps a generator's body in a handler that turns StopIteration into
    RuntimeError (PEP 479); the engine turned every exception into that RuntimeError."""

    def gen(x):
        for v in x:
            if v > 1:
                raise ValueError("too big")
            yield v

    def f(x):
        return sum(gen(x))

    with pytest.raises(ValueError, match="too big"):
        autodiff.Function(f)(np.array([0.5, 2.0]))

    def stops(x):
        def g():
            yield x[0]
            raise StopIteration

        return sum(g())

    with pytest.raises(RuntimeError):
        stops(np.array([0.5]))
    with pytest.raises(RuntimeError):
        autodiff.Function(stops)(np.array([0.5]))


def _fill_enumerate(y, x):
    for i, r in enumerate(y):
        r[:] = x * (i + 1)


def _fill_list(y, x):
    for r in list(y):
        r[:] = x


def _fill_zip(y, x):
    for r, k in zip(y, [1.0, 2.0]):
        r[:] = x * k


@pytest.mark.parametrize("fill", [_fill_enumerate, _fill_list, _fill_zip], ids=["enumerate", "list", "zip"])
def test_rows_from_enumerate_list_zip_are_views(fill):
    def f(x):
        y = np.zeros((2, 3))
        fill(y, x)
        return np.sum(y * y)

    check(f, np.array([1.0, 2.0, 3.0]), others=[(np.array([-0.5, 0.1, 0.7]),)])
