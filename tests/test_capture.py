"""The capture engine: Python constructs, value types, and clear errors for what it refuses."""

import math
import sys

import autodiff
import numpy as np
import pytest
from conftest import numeric_grad

X = np.array([0.5, -1.0, 2.0])


def same(f, *argsets):
    F = autodiff.Function(f)
    for a in argsets:
        got, want = F(*a), f(*a)
        if isinstance(want, tuple):
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-12)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12)
    return F


# ---------------------------------------------------------------- value types


def test_float_inputs_and_outputs():
    def f(a, x):
        return a * x.sum() + a**2

    same(f, (2.0, X), (-3.0, X))
    (ga,) = autodiff.Gradient(f, [2.0, X], wrt=0)(2.0, X)
    assert ga == pytest.approx(X.sum() + 4.0)


def test_python_float_output():
    def f(x):
        return float(x[0]) * 2 + math.sin(float(x[1]))

    same(f, (X,), (X * 2,))
    (g,) = autodiff.Gradient(f, [X])(X)
    np.testing.assert_allclose(g, [2.0, math.cos(X[1]), 0.0])


def test_integer_and_bool_outputs():
    F = same(lambda x: np.argmax(x), (X,), (-X,))
    assert F(X).dtype.kind == "i"
    same(lambda x: x.sum() > 0, (X,), (-X,))
    same(lambda x: (x > 0).sum(), (X,), (-X,))


def test_tuple_and_dict_outputs():
    F = autodiff.Function(lambda x: (x.sum(), {"double": x * 2}))
    s, d = F(X)
    assert s == pytest.approx(X.sum())
    np.testing.assert_allclose(d["double"], X * 2)


def test_np_scalar_results_and_attributes():
    def f(A):
        s = A.sum()
        return s.item() + s.real + abs(A.min()) + A.T[0, 1] + A.mT[1, 0] + A.ndim + A.size + A.shape[0]

    same(f, (np.arange(6.0).reshape(2, 3),))


# ---------------------------------------------------------------- Python constructs


def test_user_class_with_traced_attributes_property_and_super():
    class Base:
        def __init__(self, w):
            self.w = w

        def energy(self, x):
            return np.sum((x * self.w) ** 2)

    class Child(Base):
        def __init__(self, w, b):
            super().__init__(w)
            self.b = b

        @property
        def bias(self):
            return self.b * 2

        def energy(self, x):
            return super().energy(x) + self.bias

    def f(w, x):
        return Child(w, w[0]).energy(x)

    same(f, (X, X[::-1].copy()))
    (g,) = autodiff.Gradient(f, [X, X], wrt=0)(X, X)
    np.testing.assert_allclose(g, numeric_grad(f, [X, X], 0), rtol=1e-6)


def test_class_defined_inside_function():
    def f(x):
        class P:
            def __init__(self, v):
                self.v = v

            def sq(self):
                return self.v**2

        return P(x).sq().sum()

    same(f, (X,))


def test_generators_and_generator_expressions():
    def f(x):
        def evens(v):
            for i, vi in enumerate(v):
                if i % 2 == 0:
                    yield vi * 2

        g = evens(x)
        first = next(g)
        rest = list(g)
        return first + sum(rest) + sum(v * v for v in x) + max(v for v in x)

    same(f, (X,), (X * 3,))


def test_comprehensions_nested_and_with_conditions():
    def f(x):
        grid = [[xi * xj for xj in x] for xi in x]
        diag = {i: grid[i][i] for i in range(len(x)) if i != 1}
        return sum(sum(r) for r in grid) + sum(diag.values())

    same(f, (X,))


def test_match_walrus_chained_comparison():
    def f(x):
        if (s := x.sum()) > 0 and 0 < x[2] < 5:
            out = s
        else:
            out = -s
        match len(x):
            case 3:
                return out * 2
            case _:
                return out

    same(f, (X,), (-X,))


def test_try_finally_with_and_raise_inside():
    def f(x):
        try:
            try:
                y = 1 / 0
            finally:
                z = 2.0
        except ZeroDivisionError as e:
            y = 3.0 if "division" in str(e) else 0.0
        with np.errstate(all="ignore"):
            w = np.log(x**2)
        return np.sum(w) * y * z

    same(f, (X,))


def test_nonlocal_and_global_assignment():
    def f(x):
        total = 0.0

        def add(v):
            nonlocal total
            total += v

        for v in x:
            add(v)
        return total

    same(f, (X,))


def test_functools_partial_and_map():
    import functools

    def scaled(v, k=1.0):
        return v * k

    def f(x):
        g = functools.partial(scaled, k=3.0)
        return sum(map(g, x)) + sum(map(lambda a, b: a * b, x, x))

    same(f, (X,))


def test_int_index_from_traced_value():
    def f(x):
        i = int(np.argmax(x))
        return x[i] * 2 + x[-1]

    same(f, (X,), (X[::-1].copy(),))


def test_constant_and_tag():
    def f(x):
        c = autodiff.constant(x * 2)
        h = autodiff.tag(x**2, "h")
        return np.sum(c * h)

    (g,) = autodiff.Gradient(f, [X])(X)
    np.testing.assert_allclose(g, 2 * X * 2 * X)  # c is a constant: d/dx (c * x^2) = 2 c x
    (gh,) = autodiff.Gradient(f, [X], wrt="h")(X)
    np.testing.assert_allclose(gh, 2 * X)


def test_guard_reasons_name_user_file_and_line():
    def f(x):
        if x.sum() > 0:
            return x.sum()
        return -x.sum()

    F = autodiff.Function(f)
    F(X)
    (why,) = F.trace.guards
    assert "test_capture.py:" in why and "branch" in why


# ---------------------------------------------------------------- refused constructs


def _refused(f, *args, match):
    with pytest.raises(autodiff.TraceError) as e:
        autodiff.Function(f)(*args)
    msg = str(e.value)
    assert match in msg, msg
    assert "test_capture.py:" in msg, msg
    return msg


def test_yield_from_refused():
    def f(x):
        def g():
            yield from [x, x]

        return sum(g())

    _refused(f, X, match="yield from")


def test_coroutine_refused():
    def f(x):
        async def c():
            return x

        return c()

    _refused(f, X, match="coroutine")


def test_fft_on_traced_value_refused():
    _refused(lambda x: np.fft.fft(x).real.sum(), X, match="numpy.fft.fft")


def test_unknown_c_function_refused():
    import zlib

    def f(x):
        return zlib.crc32(x)

    _refused(f, X, match="crc32")


def test_unknown_ufunc_on_traced_value_refused():
    _refused(lambda x: np.spacing(x).sum(), X, match="spacing")


def test_float_guard_on_continuous_index_refused():
    def f(x):
        return np.arange(5.0)[slice(0, x[0])]

    _refused(f, X, match="`slice`")


def test_print_and_fstring_run_but_are_not_traced(capsys):
    def f(x):
        s = x.sum()
        print(f"s={s:.3f} n={len(x)}")
        return s * 2

    F = autodiff.Function(f)
    F(X)
    F(X * 2)  # not re-traced: prints once
    out = capsys.readouterr().out
    assert out.count("s=") == 1  # printed while tracing only
    assert F.trace_count == 1


@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.12+ bytecode")
def test_inlined_comprehension_keeps_outer_variable():
    def f(x):
        v = x[0]
        ys = [v * k for k in range(3)]
        return sum(ys) + v

    same(f, (X,))


# ---------------------------------------------------------------- table entries (regressions)

_A = np.random.default_rng(0).normal(size=(3, 4))
_S = _A[:, :3] @ _A[:, :3].T + 3 * np.eye(3)

TABLE = {
    "list_and_dict_methods": (
        lambda x: (
            lambda out, d: (
                out.append(x[0] * 2),
                out.extend([x[1]]),
                d.update(k=x[2] > 0),
                d.setdefault("v", x[0]),
                sum(out) + (1.0 if d["k"] else -1.0) * d.get("v"),
            )[-1]
        )([], {}),
        X,
    ),
    "ufunc_outer_reduce_accumulate": (
        lambda x: (
            np.subtract.outer(x, x).sum() ** 2
            + np.multiply.outer(x, x).sum()
            + np.add.reduce(x)
            + np.multiply.accumulate(x).sum()
        ),
        X,
    ),
    "logical_reduce_guard": (lambda x: x.sum() if np.logical_and.reduce(x > -5) else 0.0, X),
    "numpy_python_implementations": (
        lambda a: (
            np.kron(a[0], a[1]).sum()
            + np.linalg.multi_dot([a, a.T, a]).sum()
            + np.ptp(a)
            + np.linalg.matrix_power(_S * a[0, 0], 2).sum()
        ),
        _A,
    ),
    "isclose_allclose": (lambda x: x.sum() * np.isclose(x, x).all() + (x.sum() if np.allclose(x, x) else 0.0), X),
    "full_with_traced_fill": (lambda x: np.full(3, x[0]).sum() * np.full_like(x, x[1]).sum(), X),
    "average_weights_axis": (lambda a: np.average(a, axis=0, weights=np.arange(1.0, 4.0)).sum(), _A),
    "round_ndigits": (lambda x: round(float(x.sum()), 3) + np.round(x, 2).sum(), X),
    "isfinite_on_list": (lambda x: x.sum() if np.isfinite([float(v) for v in x]).all() else 0.0, X),
    "logsumexp_keepdims": (lambda a: __import__("scipy.special").special.logsumexp(a, axis=1, keepdims=True).sum(), _A),
    "norm_variants": (
        lambda a: (
            np.linalg.norm(a, axis=1).sum()
            + np.linalg.norm(a[0], 1)
            + np.linalg.norm(a[1], np.inf)
            + np.linalg.norm(a[2], 3)
        ),
        _A,
    ),
}


@pytest.mark.parametrize("name", list(TABLE))
def test_table_entry(name):
    f, x = TABLE[name]
    F = autodiff.Function(f)
    np.testing.assert_allclose(F(x), f(x), rtol=1e-10)
    np.testing.assert_allclose(F(x * 1.5), f(x * 1.5), rtol=1e-10)
    (g,) = autodiff.Gradient(f, [x])(x)
    np.testing.assert_allclose(g, numeric_grad(f, [x], 0), rtol=1e-5, atol=1e-6)


def test_builtins_on_lists_of_traced_bools_are_guarded():
    def f(x):
        flags = [x[0] > 0, x[1] > 0]
        return x.sum() if all(flags) else (x.prod() if any(flags) else -x.sum())

    same(f, (np.array([1.0, 2.0]),), (np.array([1.0, -2.0]),), (np.array([-1.0, -2.0]),))


def test_sorted_of_traced_floats_refused():
    _refused(lambda x: sorted(x)[0], X, match="sorted")
