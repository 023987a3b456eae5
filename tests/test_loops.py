"""Loop rolling (crates/capture/src/rolling.rs): long Python loops become loop nodes, and the
values they give equal a plain NumPy run — at the traced inputs and at others — whether or
not a loop could be rolled."""

import autodiff
import numpy as np
import pytest
from autodiff import _compile
from conftest import central_grad


def traced(f, *args):
    result, tr, _, _ = _compile.trace(f, list(args), {})
    return result, tr


def agrees(f, args, others):
    """The traced result and the compiled function at other inputs equal plain NumPy."""
    result, tr = traced(f, *args)
    np.testing.assert_allclose(np.asarray(result), f(*args), rtol=1e-12, atol=1e-12)
    F = autodiff.Function(f, list(args))
    for a in others:
        np.testing.assert_allclose(F(*a), f(*a), rtol=1e-12, atol=1e-12)
    return tr


def euler(n):
    def f(y, k):
        dt = 0.01
        for _i in range(n):
            y = y + dt * (-k * y + np.sin(y))
        return np.sum(y**2)

    return f


@pytest.mark.parametrize("n", [5, 6, 50, 2000])
def test_a_long_loop_is_one_loop_node_with_the_same_value(n):
    y0 = np.linspace(0.1, 1.0, 10)
    tr = agrees(euler(n), (y0, 0.5), [(y0 * 1.3, 0.2), (-y0, 1.5)])
    # short loops stay unrolled; from 6 iterations on (4 observed, 1 left to the
    # interpreter) the rest is one node, and no plain re-run is needed
    assert tr.rolled_loops == (1 if n >= 7 else 0)
    assert not tr.needs_plain_check


def test_the_graph_stays_small_as_the_loop_grows():
    y0 = np.linspace(0.1, 1.0, 10)
    sizes = [traced(euler(n), y0, 0.5)[1].node_count() for n in (100, 10_000)]
    assert sizes[1] < 1.2 * sizes[0]


def test_rows_read_with_the_loop_counter_are_per_iteration_inputs():
    def f(x, w):
        s = np.zeros(3)
        for i in range(x.shape[0]):
            s = np.tanh(s * w + x[i])
        for j in range(x.shape[1]):
            s = s + x[:, j].sum() * 0.01
        return s

    x = np.random.default_rng(0).normal(size=(40, 3))
    tr = agrees(f, (x, 0.9), [(x[::-1].copy(), 0.3)])
    assert tr.rolled_loops == 1  # the second loop has 3 iterations only


def test_writes_into_a_preallocated_array():
    def f(x):
        out = np.zeros(x.shape[0] * 2)
        s = x
        for i in range(x.shape[0] * 2):
            s = s * 0.999
            out[i] = np.sum(s)
        return out

    x = np.linspace(0.0, 1.0, 30)
    tr = agrees(f, (x,), [(x**2,)])
    assert tr.rolled_loops == 1


def test_writes_along_a_column_and_backwards():
    def f(x):
        out = np.zeros((3, 20))
        c = x
        for i in range(19, -1, -1):
            c = np.cos(c)
            out[:, i] = c
        return out

    tr = agrees(f, (np.array([0.1, 0.5, 2.0]),), [(np.array([1.0, -1.0, 0.0]),)])
    assert tr.rolled_loops == 1


def test_several_carries_and_a_python_float():
    def f(a, b):
        acc = 0.0
        for _i in range(100):
            a, b = b, a + 0.01 * b
            acc = acc + np.sum(a * b)
        return acc + np.sum(a)

    agrees(f, (np.ones(4), np.arange(4.0)), [(np.full(4, 0.3), -np.arange(4.0))])


def test_helpers_and_nested_loops():
    def step(y, h):
        return y + h * np.tanh(y)

    def f(y):
        for _i in range(30):
            for _j in range(10):
                y = step(y, 0.01)
            y = y * 0.99
        return y

    tr = agrees(f, (np.linspace(-1, 1, 5),), [(np.linspace(0, 2, 5),)])
    assert tr.rolled_loops >= 1


def test_a_while_loop_that_stops_on_the_data():
    def f(x):
        s = x
        while np.max(np.abs(s - 2.0)) > 1e-9:
            s = s * 0.5 + 1.0
        return s

    x = np.array([0.0, 5.0, -3.0])
    tr = agrees(f, (x,), [(x * 10,), (np.array([2.0, 2.0, 2.0]),), (x * 1e-3,)])
    assert tr.rolled_loops == 1


def test_a_million_iterations_of_while_true_with_a_break():
    def f(x):
        s = x
        while True:
            s = s + 1e-6
            if np.sum(s) > 3.0:
                break
        return s * 2.0

    x = np.zeros(3)
    result, tr = traced(f, x)
    assert tr.rolled_loops == 1
    np.testing.assert_allclose(np.asarray(result), 2.0 * (1.0 + 1e-6), rtol=1e-6)


def test_a_branch_on_the_loop_counter_is_caught_by_the_plain_run():
    def f(y):
        for i in range(100):
            if i == 60:
                y = y * 2.0
            y = y + 0.01
        return y

    y = np.ones(2)
    result, tr = traced(f, y)
    np.testing.assert_allclose(np.asarray(result), f(y))


def test_a_python_list_indexed_by_the_counter():
    scales = [1.0] * 60 + [2.0] * 40

    def f(y):
        for i in range(100):
            y = y * scales[i] * 0.5
        return y

    agrees(f, (np.ones(3),), [(np.arange(3.0),)])


def test_a_branch_on_the_data_inside_the_loop_changes_per_call():
    def f(y):
        for _i in range(200):
            if np.sum(y) > 10.0:
                y = y * 0.5
            y = y + 0.1
        return y

    agrees(f, (np.zeros(4),), [(np.full(4, 9.0),), (np.full(4, -30.0),)])


def test_side_effects_stop_rolling():
    def f(y):
        seen = []
        for i in range(20):
            y = y * 1.01
            seen.append(i)
        return y * len(seen)

    result, tr = traced(f, np.ones(2))
    assert tr.rolled_loops == 0
    np.testing.assert_allclose(np.asarray(result), 20 * 1.01**20 * np.ones(2))


def test_float32_loops_stay_float32():
    def f(y):
        for _i in range(50):
            y = y * np.float32(0.9) + np.float32(0.1)
        return y

    y = np.ones(4, dtype=np.float32)
    result, tr = traced(f, y)
    assert tr.rolled_loops == 1
    assert np.asarray(result).dtype == np.float32
    np.testing.assert_allclose(np.asarray(result), f(y), rtol=1e-6)


def test_rolling_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("AUTODIFF_ROLL_LOOPS", "0")
    _, tr = traced(euler(50), np.ones(3), 0.5)
    assert tr.rolled_loops == 0


def test_an_array_updated_in_place_keeps_its_other_names():
    def f(x):
        acc = np.zeros(2)
        alias = acc
        for i in range(x.shape[0]):
            acc[0] += x[i]
            acc[1] = acc[1] * 0.5 + x[i]
        return alias * 1.0

    x = np.linspace(-1.0, 2.0, 25)
    tr = agrees(f, (x,), [(x[::-1].copy(),)])
    assert tr.rolled_loops == 1


# ---------------------------------------------------------------- derivatives through loops


def unrolled(monkeypatch, make):
    """The same function traced with rolling off (the reference: one node per operation);
    traces happen at calls, so every call runs with rolling off."""
    obj = make()

    def call(*args, **kwargs):
        with monkeypatch.context() as m:
            m.setenv("AUTODIFF_ROLL_LOOPS", "0")
            return obj(*args, **kwargs)

    return call


def central(f, args, k, h=1e-6):
    """Central differences of scalar f in args[k] (an array)."""
    x = np.asarray(args[k], dtype=float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        up = list(args)
        dn = list(args)
        up[k], dn[k] = x + e, x - e
        g[i] = (f(*up) - f(*dn)) / (2 * h)
    return g


def rolls_and_agrees(monkeypatch, f, at, other):
    """`f` rolls one loop; its value equals NumPy's and its gradient the unrolled trace's
    and central differences, at the traced arguments and at `other`."""
    _, tr = traced(f, *at)
    assert tr.rolled_loops == 1
    F = autodiff.Function(f, at)
    g = autodiff.Gradient(f, at)
    gu = unrolled(monkeypatch, lambda: autodiff.Gradient(f))
    for args in (at, other):
        np.testing.assert_allclose(F(*args), f(*args), rtol=1e-12)
        for k, (a, b) in enumerate(zip(g(*args), gu(*args))):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(a, central(f, args, k), rtol=1e-5, atol=1e-6)


def writes_then_sum(x, w):
    out = np.zeros(x.shape[0])
    s = w
    for i in range(x.shape[0]):
        s = np.tanh(s * 0.9 + x[i])
        out[i] = np.sum(s * s)
    return np.sum(out * np.arange(x.shape[0]))


def euler2(y, k):
    dt = 0.01
    v = y * 0.0
    for _i in range(300):
        a = -k * y - 0.1 * v + np.sin(y)
        y, v = y + dt * v, v + dt * a
    return np.sum(y**2) + np.sum(v)


def until_converged(x):
    s = x
    while np.max(np.abs(s - np.tanh(s) - 0.5)) > 1e-10:
        s = np.tanh(s) + 0.5
    return np.sum(s * x)


CASES = [
    (euler2, [np.linspace(0.1, 1.0, 4), np.float64(0.7)], [np.linspace(-0.5, 0.3, 4), np.float64(1.1)]),
    (
        writes_then_sum,
        [np.random.default_rng(1).normal(size=(30, 3)), np.full(3, 0.2)],
        [np.random.default_rng(2).normal(size=(30, 3)), np.full(3, -0.4)],
    ),
    (until_converged, [np.array([0.2, -0.3, 1.0])], [np.array([0.5, 0.1, -1.0])]),
]


@pytest.mark.parametrize("f,at,other", CASES, ids=[c[0].__name__ for c in CASES])
def test_gradients_through_rolled_loops_equal_unrolled_ones_and_differences(monkeypatch, f, at, other):
    g = autodiff.Gradient(f, at)
    gu = unrolled(monkeypatch, lambda: autodiff.Gradient(f))
    _, tr = traced(f, *at)
    assert tr.rolled_loops >= 1
    for args in (at, other):
        got = g(*args)
        got = got if isinstance(got, (list, tuple)) else [got]
        want = gu(*args)
        want = want if isinstance(want, (list, tuple)) else [want]
        for k, (a, b) in enumerate(zip(got, want)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(a, central(f, args, k), rtol=1e-5, atol=1e-7)


def test_hessian_vector_products_through_a_rolled_loop(monkeypatch):
    y, k = np.linspace(0.1, 1.0, 4), np.float64(0.7)
    v = np.array([1.0, -2.0, 0.5, 0.3])
    h = autodiff.HessianVector(euler2, wrt=0)
    hu = unrolled(monkeypatch, lambda: autodiff.HessianVector(euler2, wrt=0))
    for at in (y, y * -0.5):
        got = h(at, k, vectors=v)
        np.testing.assert_allclose(got[0], hu(at, k, vectors=v)[0], rtol=1e-8, atol=1e-10)
        # against differences of the gradient along v
        g = autodiff.Gradient(euler2, wrt=0)
        eps = 1e-6
        fd = (np.asarray(g(at + eps * v, k)) - np.asarray(g(at - eps * v, k))) / (2 * eps)
        np.testing.assert_allclose(got[0], fd.reshape(got[0].shape), rtol=1e-5, atol=1e-7)


def test_appends_to_a_list_are_per_iteration_outputs():
    def f(y, k):
        traj = []
        norms = []
        for _i in range(200):
            y = y + 0.01 * (-k * y + np.cos(y))
            traj.append(y)
            norms.append(np.sum(y * y))
        return np.stack(traj).sum(axis=0) + np.array(norms).mean()

    y0 = np.linspace(0.0, 1.0, 3)
    tr = agrees(f, (y0, 0.4), [(-y0, 1.2)])
    assert tr.rolled_loops == 1


def test_an_appended_array_updated_in_place_is_not_rolled():
    def f(y):
        out = []
        s = y.copy()
        for _i in range(20):
            out.append(s)
            s *= 0.5
        return np.stack(out)

    result, tr = traced(f, np.ones(2))
    assert tr.rolled_loops == 0
    np.testing.assert_allclose(np.asarray(result), f(np.ones(2)))


def test_checkpointed_loops_give_the_same_gradient(monkeypatch):
    y, k = np.linspace(0.1, 1.0, 4), np.float64(0.7)
    want = autodiff.Gradient(euler2)(y, k)
    monkeypatch.setenv("AUTODIFF_CHECKPOINT_LOOPS", "50")
    got = autodiff.Gradient(euler2)(y, k)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_short_loops_stay_unrolled_by_default(monkeypatch):
    monkeypatch.delenv("AUTODIFF_ROLL_MIN_NODES", raising=False)
    y0 = np.linspace(0.1, 1.0, 10)
    # ~6 nodes per step: 100 steps stay unrolled (they fuse into fewer kernels), 1000 roll
    assert traced(euler(100), y0, 0.5)[1].rolled_loops == 0
    assert traced(euler(1000), y0, 0.5)[1].rolled_loops == 1
    monkeypatch.setenv("AUTODIFF_ROLL_MIN_NODES", "0")
    assert traced(euler(100), y0, 0.5)[1].rolled_loops == 1


def test_rows_appended_in_a_loop_then_stacked_differentiate_in_linear_time():
    # regression: np.stack(ys) of rows appended in a rolled loop was a concat of N one-row
    # slices of the loop's stacked result; reverse mode padded each row's cotangent to the
    # whole stack (O(N²) per call: 1.1 s at N = 12,000). Simplified first, the stack is
    # the loop's result itself and the gradient's graph does not grow with N.
    def f(x, w):
        ys = []
        h = np.zeros(3)
        for i in range(x.shape[0]):
            h = np.tanh(w * h + x[i])
            ys.append(h)
        return np.sum(np.stack(ys) ** 2)

    sizes = []
    for n in (60, 120):
        rng = np.random.default_rng(n)
        x, w = rng.standard_normal((n, 3)), np.array(0.4)
        g = autodiff.Gradient(f)
        gx, gw = g(x, w)
        x2, w2 = x + 0.1 * rng.standard_normal((n, 3)), np.array(0.35)
        gx2, gw2 = g(x2, w2)
        eps = 1e-6
        want_w = (f(x2, w2 + eps) - f(x2, w2 - eps)) / (2 * eps)
        np.testing.assert_allclose(gw2, want_w, rtol=1e-6)
        k = (5, 1)
        xp, xm = x2.copy(), x2.copy()
        xp[k] += eps
        xm[k] -= eps
        np.testing.assert_allclose(gx2[k], (f(xp, w2) - f(xm, w2)) / (2 * eps), rtol=1e-6)
        (entries,) = g._spec.cache.values()
        sizes.append(entries[0][0].node_count())
    assert sizes[0] == sizes[1], sizes


@pytest.mark.parametrize("limit", [10**6, 700])
def test_a_while_loop_with_an_iteration_counter(limit):
    # regression: a Python counter read by the loop's condition (`and it < limit`) kept the
    # loop unrolled (17 s and 2·10^5 nodes for 2·10^4 iterations). It rolls a chunk at a
    # time now; where the counter ends the loop (limit 700, before convergence) the plain
    # run catches the chunk that ran past it and the loop is traced again unrolled.
    def f(a):
        x = a.copy()
        it = 0
        while np.max(np.abs(x * x - a)) > 1e-10 and it < limit:
            x = x - 0.002 * (x * x - a)
            it += 1
        return np.sum(x)

    a = np.array([2.0, 3.0])
    result, tr = traced(f, a)
    np.testing.assert_allclose(np.asarray(result), f(a), rtol=1e-12)
    if limit > 10**5:
        assert tr.rolled_loops >= 1
    g = autodiff.Gradient(f)
    for b in (a, np.array([2.5, 1.5])):
        eps = 1e-6
        want = [(f(b + eps * e) - f(b - eps * e)) / (2 * eps) for e in np.eye(2)]
        np.testing.assert_allclose(g(b)[0], want, rtol=1e-5)


# ------------------------------------------- recurrences through a preallocated array


def rows_recurrence(y0, k):
    """`y[i] = f(y[i-1])`: the most common way to write time stepping."""
    n = 400
    y = np.zeros((n, y0.shape[0]))
    y[0] = y0
    for i in range(1, n):
        y[i] = y[i - 1] + 0.01 * (-k * y[i - 1] + np.sin(y[i - 1]))
    return np.sum(y**2)


def scalar_recurrence(u, a):
    """A 1-d series: `x[t+1] = a·x[t] + u[t]` (rows of length one)."""
    x = np.zeros(u.shape[0] + 1)
    for t in range(u.shape[0]):
        x[t + 1] = a * x[t] + np.tanh(u[t])
    return np.sum(x * x)


def leapfrog(q0, w):
    """Two steps of history: `q[i+1] = 2q[i] - q[i-1] - h²·w·sin(q[i])`."""
    n = 300
    q = np.zeros((n, q0.shape[0]))
    q[0] = q0
    q[1] = q0 * 1.001
    for i in range(1, n - 1):
        q[i + 1] = 2 * q[i] - q[i - 1] - 1e-4 * w * np.sin(q[i])
    return np.sum(q[-1] ** 2) + np.sum(q[:, 0])


def columns_backwards(x, c):
    """Along axis 1, from the last column to the first."""
    n = 200
    out = np.zeros((x.shape[0], n))
    out[:, n - 1] = x
    for j in range(n - 2, -1, -1):
        out[:, j] = np.cos(out[:, j + 1]) * c
    return np.sum(out * np.linspace(0.0, 1.0, n))


def symplectic(p0, q0):
    """Two arrays, each row read after it is written (`p[i]` in `q[i] = ...`) and before
    (`q[i-1]`)."""
    n = 300
    p = np.zeros((n, p0.shape[0]))
    q = np.zeros((n, p0.shape[0]))
    p[0], q[0] = p0, q0
    for i in range(1, n):
        p[i] = p[i - 1] - 0.01 * np.sin(q[i - 1])
        q[i] = q[i - 1] + 0.01 * p[i]
    return np.sum(q[-1] ** 2) + 1e-3 * np.sum(p * p)


RECURRENCES = [
    (rows_recurrence, [np.linspace(0.1, 1.0, 5), np.float64(0.5)], [np.linspace(-1.0, 0.4, 5), np.float64(1.3)]),
    (scalar_recurrence, [np.sin(np.arange(300.0)), np.float64(0.9)], [np.cos(np.arange(300.0)), np.float64(-0.7)]),
    (leapfrog, [np.array([0.3, -0.2, 1.0]), np.float64(1.0)], [np.array([-0.5, 0.1, 0.2]), np.float64(2.0)]),
    (columns_backwards, [np.array([0.1, 0.5, 2.0]), np.float64(0.9)], [np.array([1.0, -1.0, 0.0]), np.float64(1.1)]),
    (symplectic, [np.array([0.1, -0.3]), np.array([0.5, 1.0])], [np.array([-0.4, 0.2]), np.array([1.5, -0.2])]),
]


@pytest.mark.parametrize("f,at,other", RECURRENCES, ids=[c[0].__name__ for c in RECURRENCES])
def test_recurrences_through_a_preallocated_array_roll(monkeypatch, f, at, other):
    _, tr = traced(f, *at)
    assert tr.rolled_loops == 1
    assert tr.node_count() < 300  # one loop node, not one copy of the body per step
    F = autodiff.Function(f, at)
    g = autodiff.Gradient(f, at)
    gu = unrolled(monkeypatch, lambda: autodiff.Gradient(f))
    for args in (at, other):
        np.testing.assert_allclose(F(*args), f(*args), rtol=1e-12)
        got, want = g(*args), gu(*args)
        for k, (a, b) in enumerate(zip(got, want)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(a, central(f, args, k), rtol=1e-5, atol=1e-6)


def test_other_reads_of_a_written_array_stay_unrolled_and_right():
    def f(x):
        y = np.zeros((60, 2))
        y[0] = x
        for i in range(1, 60):
            y[i] = np.sin(y[i - 1]) + 0.1 * y[0]  # y[0]: not the previous row
        return np.sum(y)

    def g(x):
        y = np.ones((60, 2))
        y[0] = x
        for i in range(1, 60):
            y[i] = np.sin(y[i - 1]) + 0.5 * y[i]  # y[i] before the write: its old contents
        return np.sum(y)

    x = np.array([0.3, -1.2])
    tr = agrees(f, (x,), [(x * 2,)])
    assert tr.rolled_loops == 0
    tr = agrees(g, (x,), [(x * 2,)])
    assert tr.rolled_loops == 0
    g = autodiff.grad(f)(x * 2)
    np.testing.assert_allclose(g, central(f, [x * 2], 0), rtol=1e-6)


def test_tracing_a_long_unrolled_recurrence_is_linear(monkeypatch):
    """Unrolled (rolling off), `y[i] = f(y[i-1])` used to refresh every earlier view `y[i-1]`
    after each write: a trace of n steps recorded O(n²) nodes."""
    monkeypatch.setenv("AUTODIFF_ROLL_LOOPS", "0")

    def make(n):
        def f(y0):
            y = np.zeros((n, 2))
            y[0] = y0
            for i in range(1, n):
                y[i] = np.cos(y[i - 1])
            return np.sum(y)

        return f

    recorded = []
    for n in (100, 400):
        f = make(n)
        _, tr = traced(f, np.array([0.1, 0.2]))
        recorded.append(tr.node_count())
    assert recorded[1] < 5 * recorded[0]


# --------------------------------------------------- while loops ended by int counters


def while_up(y, k):
    i = 0
    while i < 900:
        y = y + 0.001 * (-k * y + np.cos(y))
        i += 1
    return np.sum(y)


def while_down_by_two(y, k):
    i = 1001
    while i > 2:
        y = y + 0.001 * (-k * y + np.sin(y))
        i = i - 2
    return np.sum(y * y)


def while_fills(y0, k):
    n = 700
    y = np.zeros((n, y0.shape[0]))
    y[0] = y0
    i = 1
    while i != n:
        y[i] = y[i - 1] - 0.01 * k * np.tanh(y[i - 1])
        i += 1
    return np.sum(y**2)


WHILES = [
    (while_up, [np.array([0.2, -0.4]), np.float64(0.5)], [np.array([1.0, 0.3]), np.float64(1.5)]),
    (while_down_by_two, [np.array([0.2, -0.4]), np.float64(0.5)], [np.array([1.0, 0.3]), np.float64(1.5)]),
    (while_fills, [np.array([0.2, -0.4]), np.float64(0.5)], [np.array([1.0, 0.3]), np.float64(1.5)]),
]


@pytest.mark.parametrize("f,at,other", WHILES, ids=[c[0].__name__ for c in WHILES])
def test_while_loops_ended_by_an_int_counter_roll(monkeypatch, f, at, other):
    """`while i < n: ...; i += 1` has no guard to end it: its trip count comes from the
    comparison of the counters (values and gradients as unrolled, at other inputs too)."""
    rolls_and_agrees(monkeypatch, f, at, other)


def test_a_counter_that_jumps_later_is_caught_by_the_plain_run():
    """The first iterations step the counter by one, a later one by more: the trip count
    told from the first ones is wrong, and the plain NumPy run sends the loop unrolled."""

    def f(y):
        i = 0
        while i < 500:
            y = np.sin(y) + 0.1
            i += 1 if i < 300 else 7
        return np.sum(y)

    y = np.array([0.3, -0.2])
    agrees(f, (y,), [(y * 3,)])


# ------------------------------------------- time-varying terms of a float accumulator


def forced(y, k):
    """`t += dt` read by `np.sin(t)`: a constant per iteration that grows non-linearly."""
    dt, t = 0.01, 0.0
    for _i in range(2000):
        y = y + dt * (-k * y + np.sin(3.0 * t) * np.cos(y))
        t += dt
    return np.sum(y**2) * t


def forced_while(y, k):
    t, i = 0.0, 0
    while i < 1500:
        y = y + 0.01 * (-k * y + np.exp(-t) * y)
        t = t + 0.01
        i += 1
    return np.sum(y) + t


FORCED = [
    (forced, [np.array([0.2, -0.4]), np.float64(0.5)], [np.array([1.0, 0.3]), np.float64(1.5)]),
    (forced_while, [np.array([0.2, -0.4]), np.float64(0.5)], [np.array([1.0, 0.3]), np.float64(1.5)]),
]


@pytest.mark.parametrize("f,at,other", FORCED, ids=[c[0].__name__ for c in FORCED])
def test_loops_forced_by_a_float_accumulator_roll(monkeypatch, f, at, other):
    """The accumulator becomes a traced float64 scalar (a carry) once the loop fails to roll
    with it as a Python float; values and gradients as unrolled and as NumPy."""
    rolls_and_agrees(monkeypatch, f, at, other)


def _count_down(x):
    y = x
    i = 0
    while True:
        y = y * 0.999 + 0.0001 * np.sin(y)
        i += 1
        if np.sum(y) < 0.5:
            break
    return np.sum(y**2)


def test_a_counter_that_only_counts_itself_needs_no_plain_run():
    """`i += 1` reads `i` only to count it on: the rolled `while` loop needs no plain NumPy
    run of the whole function to be trusted (that run took 10 s of a 10^6-step loop's
    first call)."""
    x = np.array([6.0, 7.0])
    _, tr, _, _ = _compile.trace(_count_down, [x], {})
    assert tr.rolled_loops >= 1 and not tr.needs_plain_check
    g = autodiff.grad(_count_down)
    for z in (x, np.array([60.0, 70.0]), np.array([3.0, 2.0])):
        np.testing.assert_allclose(autodiff.Function(_count_down)(z), _count_down(z), rtol=1e-12)
        np.testing.assert_allclose(g(z), central_grad(_count_down, z), rtol=1e-5)
