"""The native call path (`_core.CallTable`): it serves steady-state calls of float64 arrays
and floats, and answers exactly what the general path answers — else it declines (None)."""

import threading

import autodiff
import numpy as np
import pytest

SCALE = 2.0
W = np.array([1.0, 2.0, 3.0])
TABLE = {"w": np.array([1.0, -1.0, 0.5]), "k": [1.0, 2.0]}


def seed(x):
    return ((x + 1) ** 2).sum()


def test_steady_state_calls_are_served_natively():
    g = autodiff.Gradient(seed)
    x = np.arange(3.0)
    np.testing.assert_array_equal(g(x)[0], 2 * (x + 1))
    out = g._native((x,))
    assert out is not None
    np.testing.assert_array_equal(out[0], 2 * (x + 1))
    # a fresh, writable, C-contiguous float64 array each call
    again = g._native((x,))
    assert again[0] is not out[0] and again[0].flags.c_contiguous and again[0].flags.writeable
    # Function goes through Specializer.lookup, which asks the table first
    F = autodiff.Function(seed)
    F(x)
    assert F._spec.native.lookup((x,)) is not None
    assert F(x + 1) == seed(x + 1)


@pytest.mark.parametrize("x", [2.0, np.float64(2.0), np.array(2.0)], ids=["float", "np.float64", "0-d"])
def test_scalar_arguments(x):
    g = autodiff.Gradient(seed)
    assert float(g(x)[0]) == 6.0
    assert g._native((x,)) is not None
    for y in (-1.5, np.float64(0.25), np.array(3.0)):
        out = g(y)
        assert isinstance(out, list) and float(out[0]) == 2 * (float(y) + 1)
    # floats and NumPy scalars share a trace; a 0-d array is another signature (code may
    # branch on isinstance(x, float): see test_fuzz.test_a_0d_array_and_a_float_are_...)
    assert g.trace_count == 2
    for z in (np.float64(0.5), np.array(0.5)):
        g(z)
        assert g._native((z,)) is not None


def test_other_kinds_of_arrays_decline_and_stay_right():
    g = autodiff.Gradient(seed)
    x = np.arange(6.0)
    g(x)
    others = [
        np.arange(12.0)[::2],  # not contiguous
        np.arange(6.0).astype(">f8"),  # byte-swapped
        np.arange(6, dtype=np.float32),  # another dtype (another signature)
        np.arange(6),  # integers, promoted
        np.frombuffer(b"\0" + np.arange(6.0).tobytes(), dtype=np.float64, offset=1),  # misaligned
    ]
    for y in others:
        if y.dtype != np.float32:
            assert g._native((y,)) is None
        np.testing.assert_allclose(g(y)[0], 2 * (np.asarray(y, dtype=np.float64) + 1), rtol=1e-6)


def test_guards_on_the_native_path():
    def f(x):
        return (x**2).sum() if x.sum() > 0 else (x**3).sum()

    g = autodiff.Gradient(f)
    for k in range(6):
        x = np.array([1.0, 2.0]) * (1 if k % 2 else -1)
        want = 2 * x if x.sum() > 0 else 3 * x**2
        np.testing.assert_array_equal(g(x)[0], want)
    assert g.trace_count == 2


def f_sources(x):
    return (SCALE * W * x).sum() + (TABLE["w"] * x).sum() * TABLE["k"][1]


def test_sources_are_checked_on_the_native_path():
    global SCALE, W
    saved = SCALE, W.copy(), TABLE["w"].copy(), list(TABLE["k"])
    try:
        g = autodiff.Gradient(f_sources)
        x = np.zeros(3)

        def want():
            return SCALE * W + TABLE["w"] * TABLE["k"][1]

        np.testing.assert_array_equal(g(x)[0], want())
        assert g._native((x,)) is not None
        changes = [
            lambda: W.__imul__(2.0),  # an array modified in place
            lambda: globals().__setitem__("SCALE", 3.0),  # a float rebound
            lambda: globals().__setitem__("SCALE", 3),  # same value, another type
            lambda: TABLE["w"].__setitem__(0, 7.0),  # an array inside a dict
            lambda: TABLE["k"].__setitem__(1, 5.0),  # a float inside a list
            lambda: globals().__setitem__("W", W.copy()),  # rebound to an equal array
        ]
        for change in changes:
            change()
            np.testing.assert_array_equal(g(x)[0], want())
            np.testing.assert_array_equal(g(x)[0], want())  # the native path, re-installed
        # rebinding to an equal value does not re-trace
        assert g.trace_count == 6
    finally:
        SCALE, W = saved[0], saved[1]
        TABLE["w"], TABLE["k"] = saved[2], saved[3]


def test_nan_in_a_source_is_equal_to_itself():
    box = np.array([np.nan, 1.0])

    def f(x):
        return (np.nan_to_num(box) * x).sum()

    g = autodiff.Gradient(f)
    x = np.ones(2)
    g(x)
    g(x)
    assert g.trace_count == 1 and g._native((x,)) is not None


def test_several_signatures_stay_native():
    g = autodiff.Gradient(seed)
    xs = [np.arange(float(n)) for n in (2, 3, 4)]
    for _ in range(3):
        for x in xs:
            np.testing.assert_array_equal(g(x)[0], 2 * (x + 1))
    assert all(g._native((x,)) is not None for x in xs)
    assert g.trace_count == 3


def test_with_value_and_several_arguments():
    vg = autodiff.value_and_grad(lambda a, b: (a * b).sum() + SCALE, argnums=(0, 1))
    a, b = np.arange(3.0), np.ones(3)
    for _ in range(3):
        v, (ga, gb) = vg(a, b)
        assert v == (a * b).sum() + SCALE
        np.testing.assert_array_equal(ga, b)
        np.testing.assert_array_equal(gb, a)
    g = autodiff.Gradient(lambda a, b: (a * b).sum(), wrt=[1])
    g(a, b)
    out = g(a, b)
    assert len(out) == 1
    np.testing.assert_array_equal(out[0], a)


def test_same_array_twice_and_threads():
    g = autodiff.Gradient(lambda a, b: (a * b).sum())
    x = np.arange(4.0)
    g(x, x)
    results = []

    def work():
        for _ in range(200):
            ga, gb = g(x, x)
            results.append(np.array_equal(ga, x) and np.array_equal(gb, x))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results) and len(results) == 800


def test_lists_and_tuples_of_arrays():
    def f(p, s):
        return np.sum(p[0] * p[1] + p[2]) * s

    g = autodiff.grad(f)
    F = autodiff.Function(f)
    ps = [np.arange(3.0) + k for k in range(3)]
    for _ in range(3):
        for p in (ps, tuple(ps)):
            out = g(p, 2.0)
            assert type(out) is type(p) and len(out) == 3
            np.testing.assert_array_equal(out[0], 2 * p[1])
            np.testing.assert_array_equal(out[2], np.full(3, 2.0))
            assert F(p, 2.0) == f(p, 2.0)
    assert F._spec.native.lookup((ps, 2.0)) is not None
    assert F._spec.native.lookup((tuple(ps), 2.0)) is not None
    assert F._spec.native((ps, 2.0)) is None  # the direct call takes leaves only
    # another length, a float inside, a non-contiguous element: declined, still right
    for p in (ps[:2] + [ps[2], ps[0]], [ps[0], ps[1], 1.5], [ps[0], ps[1], np.arange(6.0)[::2]]):
        assert F._spec.native.lookup((p, 2.0)) is None
        np.testing.assert_allclose(F(p, 2.0), f(p, 2.0))


def test_cycles_through_the_table_are_collected():
    import gc
    import weakref

    class Model:
        def __init__(self):
            self.w = np.ones(3)
            self.g = autodiff.Gradient(self.loss)

        def loss(self, x):
            return (self.w * x).sum()

    m = Model()
    x = np.zeros(3)
    m.g(x)
    assert m.g._native((x,)) is not None
    r = weakref.ref(m)
    del m
    gc.collect()
    assert r() is None


def test_large_and_non_float_outputs():
    g = autodiff.Gradient(seed)
    x = np.linspace(-1, 1, 5000)
    g(x)
    out = g._native((x,))
    np.testing.assert_array_equal(out[0], 2 * (x + 1))
    F = autodiff.Function(lambda x: (x > 0, x.argmax(), x * 2))
    y = np.array([-1.0, 2.0, 0.5])
    F(y)
    hit = F._spec.native.lookup((y,))
    assert hit is not None
    mask, idx, twice = F(y)
    assert mask.dtype == bool and list(mask) == [False, True, True]
    assert int(idx) == 1
    np.testing.assert_array_equal(twice, 2 * y)


def test_gradient_of_lists_is_grouped_natively():
    """Lists/tuples of arrays go through the direct call too: the table groups the
    gradients as the general path does (`api._group`)."""

    def f(p, y):
        return np.sum(p[0] * p[1]) * np.sum(y)

    ps, y = [np.arange(3.0), np.ones(3)], np.full(3, 2.0)
    for wrt, with_value in ((None, False), (0, True), ([1, 0], False)):
        g = autodiff.Gradient(f, wrt=wrt, with_value=with_value)
        for p in (ps, tuple(ps)):
            want = g(p, y)
            got = g._native((p, y))
            assert got is not None
            if with_value:
                assert got[0] == want[0] == f(p, y)
                got, want = got[1:], want[1]
            assert [type(o) for o in got] == [type(o) for o in want]
            for a, b in zip(got, want):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            assert type(got[0 if wrt != [1, 0] else 1]) is type(p)
    # a list of another length is another signature: declined by the table, then right
    g = autodiff.grad(f)
    g(ps, y)
    longer = [*ps, np.ones(3)]
    assert g.gradient._native((longer, y)) is None
    assert len(g(longer, y)) == 3


def test_keyword_arguments_take_the_native_path():
    def f(x, y, scale=1.0):
        return np.sum((x + 1) ** 2 * y) * scale

    g = autodiff.Gradient(f)
    x, y = np.arange(3.0), np.ones(3)
    want = g(x, y)
    for call in (lambda: g(x=x, y=y), lambda: g(x, y=y)):
        got = call()
        assert len(got) == 2
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    assert g.trace_count == 1 and g._native((x, y)) is not None
    # a keyword argument that is not positional-or-keyword in place stays on the general path
    np.testing.assert_array_equal(g(x, y, scale=2.0)[0], 2 * want[0])


def test_hessian_vector_products_take_the_native_path():
    def f(p, X):
        return np.sum(np.tanh(X @ p[0]) * p[1])

    hv = autodiff.HessianVector(f, wrt=0)
    p, X = [np.array([0.5, -1.0]), np.array([1.0, 2.0, 3.0])], np.arange(6.0).reshape(3, 2) / 6
    v = [np.array([1.0, 0.5]), np.array([-1.0, 0.0, 2.0])]
    want = hv(p, X, vectors=v)
    got = hv._native((p, X, v))
    assert got is not None and len(got) == 1 and type(got[0]) is list
    for a, b in zip(got[0], want[0]):
        np.testing.assert_array_equal(a, b)
    # another vector gives another product (the vectors are read on every call)
    w = [2 * v[0], 2 * v[1]]
    for a, b in zip(hv(p, X, vectors=w)[0], want[0]):
        np.testing.assert_allclose(a, 2 * b, rtol=1e-12)
    assert hv.trace_count == 1
    # vectors of the wrong shape: declined by the table, the general path's error
    with pytest.raises(ValueError, match="shape"):
        hv(p, X, vectors=[np.ones(3), np.ones(3)])


def test_hessian_vector_product_of_one_array_and_a_bare_vector():
    hv = autodiff.HessianVector(lambda x: np.sum(x**3))
    x, v = np.array([1.0, 2.0]), np.array([1.0, -1.0])
    for _ in range(3):
        np.testing.assert_allclose(hv(x, vectors=v)[0], 6 * x * v)
    assert hv._native((x, v)) is not None
    assert hv._native((x, [v])) is None  # another container: another signature
    np.testing.assert_allclose(hv(x, vectors=[v])[0], 6 * x * v)


def test_hessian_vector_products_see_changed_globals():
    global SCALE
    hv = autodiff.HessianVector(lambda x: SCALE * np.sum(x**3))
    x, v = np.array([1.0, 2.0]), np.array([1.0, -1.0])
    hv(x, vectors=v)
    assert hv._native((x, v)) is not None
    old = SCALE
    try:
        SCALE = 5.0
        assert hv._native((x, v)) is None  # the source changed: the table declines
        np.testing.assert_allclose(hv(x, vectors=v)[0], 5.0 * 6 * x * v)
    finally:
        SCALE = old


def test_float32_arrays_take_the_native_path():
    def f(p, y):
        return np.sum(np.tanh(p[0] * p[1])) * np.sum(y)

    g, slow = autodiff.Gradient(f), autodiff.Gradient(f)
    p = [np.linspace(-1, 1, 5, dtype=np.float32), np.arange(5, dtype=np.float32)]
    y = np.ones(2, dtype=np.float32)
    g(p, y)
    got = g._native((p, y))
    assert got is not None
    slow._spec._install = lambda *a: None  # the general path alone
    want = slow(p, y)
    assert slow._native((p, y)) is None
    for a, b in zip([*got[0], got[1]], [*want[0], want[1]]):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    # float64 arrays of the same shapes are another signature; mixed dtypes too
    p64 = [q.astype(np.float64) for q in p]
    assert g._native((p64, y)) is None
    assert g._native(([p[0], p64[1]], y)) is None
    np.testing.assert_allclose(g(p64, y)[0][1], want[0][1], rtol=1e-4, atol=1e-6)
    g(p, y)  # a new trace clears the table; the next call re-installs
    assert g._native((p64, y)) is not None and g._native((p, y)) is not None


def test_float32_outputs_are_written_natively_with_numpys_values():
    """float32 outputs of the native path (narrowed in Rust into new float32 arrays, at
    every size: 0-d, small, and past the zero-copy threshold) equal the general path's
    and NumPy's values, bit for bit, at inputs other than the traced ones."""

    def f(x, s):
        return np.tanh(x) * s + x * x

    fn, slow = autodiff.Function(f), autodiff.Function(f)
    slow._spec._install = lambda *a: None  # the general path alone
    rng = np.random.default_rng(3)
    for shape in [(), (7,), (64, 80)]:
        x0 = np.asarray(rng.standard_normal(shape), dtype=np.float32)
        s0 = np.full(shape, 1.5, dtype=np.float32)
        fn(x0, s0)
        x = np.asarray(rng.standard_normal(shape), dtype=np.float32)
        s = np.asarray(rng.standard_normal(shape), dtype=np.float32)
        got = fn._spec.native((x, s))
        assert got is not None, shape
        want = slow(x, s)
        assert got[0].dtype == want.dtype == np.float32
        assert got[0].shape == want.shape == shape
        np.testing.assert_array_equal(got[0], want)
        np.testing.assert_allclose(got[0], f(x, s), rtol=2e-6, atol=1e-6)

    g = autodiff.Gradient(lambda x: np.sum(np.exp(-x * x)))
    x0 = rng.standard_normal(5000).astype(np.float32)
    g(x0)
    x = rng.standard_normal(5000).astype(np.float32)
    (got,) = g(x)
    assert g._native((x,)) is not None and got.dtype == np.float32
    np.testing.assert_allclose(got, -2 * x * np.exp(-x * x), rtol=1e-5, atol=1e-6)
