"""Forward mode, Jacobians, Hessians and vmap through rolled loops (the loop rules of
crates/transform/src/rules/loops.rs): each equals the same transform of the unrolled trace
(`AUTODIFF_ROLL_LOOPS=0`) and finite differences; vmap batches the loop node itself (no
per-example fallback) and equals a per-example map."""

import autodiff
import numpy as np
import pytest
from autodiff import _compile


def rolled(f, *args):
    _, tr, _, _ = _compile.trace(f, list(args), {})
    return tr.rolled_loops


def unrolled(monkeypatch, make):
    """`make()` with rolling off (one node per operation): the reference."""
    monkeypatch.setenv("AUTODIFF_ROLL_LOOPS", "0")
    try:
        return make()
    finally:
        monkeypatch.delenv("AUTODIFF_ROLL_LOOPS")


def damped(y, k):
    """Vector-valued: a damped oscillator with a per-step read of a table (x[i])."""
    v = y * 0.0
    table = np.linspace(0.0, 1.0, 120)
    for i in range(120):
        a = -k * y - 0.2 * v + np.sin(y) * table[i]
        y, v = y + 0.02 * v, v + 0.02 * a
    return np.tanh(y) + v


def scalar(y, k):
    return np.sum(damped(y, k) ** 2)


Y, K = np.array([0.3, -0.8, 1.1]), 0.9


def central_jac(f, x, h=1e-6):
    cols = [(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(x.size)]
    return np.stack(cols, axis=-1)


def test_the_cases_roll():
    assert rolled(damped, Y, K) >= 1


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_jacobians_of_a_rolled_loop(monkeypatch, mode):
    f = lambda y: damped(y, K)
    got = autodiff.jacobian(f, mode=mode)(Y)
    want = unrolled(monkeypatch, lambda: autodiff.jacobian(lambda y: damped(y, K), mode=mode)(Y))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got, central_jac(f, Y), rtol=1e-6, atol=1e-8)


def test_jvp_and_hessian_of_a_rolled_loop(monkeypatch):
    v = np.array([1.0, -0.5, 2.0])
    val, tan = autodiff.jvp(lambda y: damped(y, K), [Y], [v])
    np.testing.assert_allclose(val, damped(Y, K), rtol=1e-12)
    jac = central_jac(lambda y: damped(y, K), Y)
    np.testing.assert_allclose(tan, jac @ v, rtol=1e-6, atol=1e-8)
    h = autodiff.hessian(lambda y: scalar(y, K))(Y)
    hu = unrolled(monkeypatch, lambda: autodiff.hessian(lambda y: scalar(y, K))(Y))
    np.testing.assert_allclose(h, hu, rtol=1e-9, atol=1e-11)
    g = autodiff.grad(lambda y: scalar(y, K))
    np.testing.assert_allclose(h, central_jac(lambda y: np.asarray(g(y)), Y), rtol=1e-5, atol=1e-7)


def test_vmap_batches_the_loop_node():
    ys = np.stack([Y, Y * 0.5, -Y, Y + 0.1])
    mapped = autodiff.vmap(damped, in_axes=(0, None))
    got = mapped(ys, K)
    # the batching rule handled the loop: no fallback to a per-example loop
    assert all(bt is not None for bt, _ in mapped._cache.values())
    np.testing.assert_allclose(got, np.stack([damped(y, K) for y in ys]), rtol=1e-12, atol=1e-14)
    # vmap of a gradient: the batched residual and backward loops
    g = autodiff.grad(scalar)
    gm = autodiff.vmap(g, in_axes=(0, None))
    np.testing.assert_allclose(gm(ys, K), np.stack([g(y, K) for y in ys]), rtol=1e-12, atol=1e-14)
