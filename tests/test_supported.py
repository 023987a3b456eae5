"""Ordinary code that used to be refused or fail: each case is traced at one input and
checked at another (value == NumPy, gradient == central finite differences)."""

import copy
import functools
import itertools
import operator

import autodiff
import numpy as np
import pytest
from conftest import numeric_grad

scipy_special = pytest.importorskip("scipy.special")


def check(f, *args, others=(), wrt=0, rtol=1e-6):
    """Value equals NumPy's and the gradient matches finite differences at `args` and at
    the argument lists in `others` (traced once, at `args`)."""
    F = autodiff.Function(f)
    G = autodiff.Gradient(f, list(args), wrt=wrt)
    for a in [args, *others]:
        want = f(*[np.array(v) for v in a])
        np.testing.assert_allclose(F(*a), want, rtol=1e-10, atol=1e-12)
        (g,) = G(*a)
        np.testing.assert_allclose(
            g, numeric_grad(f, list(a), wrt), rtol=rtol, atol=1e-7
        )
    return F


X = np.array([0.5, -1.0, 2.0, 3.0, 1.5, -0.25])
X2 = np.array([1.5, 2.0, -0.5, 0.25, -1.25, 0.75])


# --- item 7 ---------------------------------------------------------------------------


def test_zeros_slice_iadd():
    def f(x):
        y = np.zeros(6)
        y[1:3] += x[1:3]
        return np.sum(y**2 * x)

    check(f, X, others=[(X2,)])


def test_zeros_full_iadd():
    def f(x):
        y = np.zeros(6)
        y[:] += x
        y[2:] -= 2 * x[:4]
        return np.sum(np.sin(y) * x)

    check(f, X, others=[(X2,)])


def test_zeros_2d_row_iadd():
    def f(x):
        A = np.zeros((2, 6))
        A[0] += x
        A[1, ::2] *= 3.0
        A[1, 1:] += x[:-1] ** 2
        return np.sum(A * A) + A[1].sum()

    check(f, X, others=[(X2,)])


def test_iter_next_list():
    def f(x):
        i = iter([x, 2 * x])
        a = next(i)
        b = next(i)
        return np.sum(a * b) + next(i, 1.0)

    check(f, X, others=[(X2,)])


def test_iter_next_tuple_array_dict():
    def f(x):
        t = iter((x[0], x[1]))
        r = iter(x)
        d = {"a": x[2], "b": x[3]}
        v = iter(d.values())
        it = iter(d.items())
        k, w = next(it)
        return next(t) * next(t) + next(r) ** 2 + next(r) + next(v) * w

    check(f, X, others=[(X2,)])


def test_copy_and_deepcopy():
    def f(x):
        a = copy.copy(x)
        b = copy.deepcopy([x, {"k": x * 2}])
        c = copy.copy([x, x])
        a[0] = 5.0
        return np.sum(a * b[1]["k"]) + np.sum(b[0] * c[1])

    check(f, X, others=[(X2,)])


def test_operator_module():
    def f(x):
        s = operator.mul(x, x)
        s = operator.add(s, operator.truediv(x, 3.0))
        s = operator.sub(s, operator.neg(x))
        s = operator.pow(s, 2)
        return operator.getitem(s, 1) + np.sum(operator.abs(s)) + operator.matmul(x, x)

    check(f, X, others=[(X2,)])


def test_functools_reduce():
    def f(x):
        a = functools.reduce(operator.mul, [x[0], x[1], x[2]])
        b = functools.reduce(lambda u, v: u + v * v, x, 0.0)
        c = functools.reduce(np.add, [x, x * 2, x**2])
        return a + b + np.sum(c)

    check(f, X, others=[(X2,)])


def test_functools_partial_traced():
    def g(w, x, s=1.0):
        return np.sum(w * x) * s

    def f(x):
        h = functools.partial(g, x, s=2.0)
        return h(x**2)

    check(f, X, others=[(X2,)])


def test_functools_partial_outer_traced():
    def g(w, x):
        return np.sum(np.sin(w) * x)

    def f(x):
        h = functools.partial(g, x)
        return sum(h(v) for v in [x, 2.0 * x])

    check(f, X, others=[(X2,)])


def test_itertools():
    def f(x):
        xs = [x[0], x[1], x[2], x[3]]
        a = sum(u * v for u, v in itertools.combinations(xs, 2))
        b = sum(u - v for u, v in itertools.product(xs[:2], xs[2:]))
        c = sum(u * v for u, v in itertools.pairwise(xs))
        d = sum(itertools.chain(xs, [x[4]]))
        e = sum(u * v for u, v in itertools.permutations(xs[:3], 2))
        return a + b + c + d + e

    check(f, X, others=[(X2,)])


def test_itertools_accumulate():
    def f(x):
        return sum(itertools.accumulate([x[0], x[1], x[2]], operator.mul))

    check(f, X, others=[(X2,)])


def test_add_at():
    def f(x):
        y = np.zeros(3)
        np.add.at(y, [0, 2, 0, 1, 2, 2], x)
        z = x.copy()
        np.add.at(z, [1, 1], x[:2] ** 2)
        return np.sum(y**2) + np.sum(z * x)

    check(f, X, others=[(X2,)])


def test_r_traced():
    def f(x):
        y = np.r_[x[:2], 0.0, x[3:]]
        z = np.r_[x, x * 2]
        return np.sum(y * y) + np.sum(z**3)

    check(f, X, others=[(X2,)])


def test_diff_prepend_append():
    def f(x):
        a = np.diff(x, prepend=0.0)
        b = np.diff(x, append=x[-1] * 2)
        c = np.diff(x, prepend=x[:1], append=[1.0, 2.0])
        return np.sum(a**2) + np.sum(b**3) + np.sum(c * c)

    check(f, X, others=[(X2,)])


def test_cov_rowvar():
    def f(x):
        R = x.reshape(3, 2) * np.array([1.0, 2.0])
        return np.sum(np.cov(R, rowvar=False) ** 2) + np.sum(np.cov(R.T, rowvar=True))

    check(f, X, others=[(X2,)])


def _batch(x):
    A = np.stack([np.eye(3) * 2 + np.outer(x[:3], x[3:]) * 0.1, np.eye(3) * 3 + np.diag(x[:3])])
    return A


def test_batched_slogdet():
    def f(x):
        s, ld = np.linalg.slogdet(_batch(x))
        return np.sum(s * ld)

    check(f, X, others=[(X2,)])


def test_batched_det_inv_solve_cholesky():
    def f(x):
        A = _batch(x)
        S = A @ np.swapaxes(A, -1, -2)
        b = np.stack([x[:3], x[3:]])[..., None]
        return (
            np.sum(np.linalg.det(A))
            + np.sum(np.linalg.inv(A) ** 2)
            + np.sum(np.linalg.solve(A, b))
            + np.sum(np.linalg.cholesky(S))
        )

    check(f, X, others=[(X2,)])


def test_digamma_gradient():
    def f(x):
        return np.sum(scipy_special.psi(x**2 + 1.0)) + np.sum(scipy_special.digamma(x + 3))

    check(f, X, others=[(X2,)])


# --- item 8 ---------------------------------------------------------------------------


def test_set_of_dict_with_traced_values():
    def f(x):
        d = {1: x[0], 2: x[1]}
        keys = set(d)
        return sum(d[k] * k for k in sorted(keys))

    check(f, X, others=[(X2,)])


def test_poly1d_mul():
    def f(x):
        p = np.poly1d(x[:3]) * np.poly1d(x[3:5])
        return np.sum(p.coeffs**2)

    check(f, X, others=[(X2,)])


def test_fill_diagonal():
    def f(x):
        A = np.outer(x[:3], x[3:])
        np.fill_diagonal(A, x[:3] ** 2)
        B = np.zeros((3, 3))
        np.fill_diagonal(B, x[0])
        return np.sum(A * A) + np.sum(B * A)

    check(f, X, others=[(X2,)])


def test_lexsort():
    def f(x):
        i = np.lexsort((x, np.array([1, 0, 1, 0, 1, 0])))
        return np.sum(x[i] * np.arange(6))

    check(f, X, others=[(X2 + 0.01,)])


def test_partition():
    def f(x):
        p = np.partition(x, 2)
        q = np.partition(x.reshape(2, 3), 1, axis=0)
        j = np.argpartition(x, 3)
        return p[2] + np.sum(p[:2] * np.arange(2)) + np.sum(q * q.T.ravel()[:3]) + np.sum(x[j] * np.arange(6))

    X3 = np.array([2.0, -1.5, 0.5, 3.5, 1.0, -0.25])  # the same order as X
    check(f, X, others=[(X3,)])
    F = autodiff.Function(f)
    np.testing.assert_allclose(F(X2), f(X2))  # another order: traced again


def test_view_before_base_written():
    def f(x):
        y = np.zeros(6)
        v = y[1:3]
        w = y[::2]
        y[:] = x * 2
        v += x[:2]
        return np.sum(v**2) + np.sum(w * x[:3]) + np.sum(y)

    check(f, X, others=[(X2,)])


def test_c_():
    def f(x):
        return np.sum(np.c_[x[:3], x[3:] ** 2] @ np.array([1.0, 2.0]))

    check(f, X, others=[(X2,)])


def test_vectorize():
    def h(a, b):
        return a * b if a > 0 else a - b

    def f(x):
        v = np.vectorize(h)
        return np.sum(v(x, 2.0) ** 2)

    check(f, X, others=[(X2,)])
