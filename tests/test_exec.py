"""The compiled fast path (fused kernels, GEMM, buffer reuse, threads) computes what the
reference evaluator (the oracle) computes, on every program of the corpus."""

import autodiff
import numpy as np
import pytest
from test_corpus import CORPUS, _args, _default_wrt


@pytest.mark.parametrize("fn,make,wrt,seeds,fd_rtol", CORPUS)
def test_fast_path_equals_reference_evaluator(fn, make, wrt, seeds, fd_rtol):
    args0 = _args(make, 0)
    G = autodiff.Gradient(fn, args0, wrt=wrt if wrt is not None else _default_wrt(args0))
    tr = G.trace
    values = autodiff._tree.flatten((tuple(_args(make, seeds[0])), {}))[0]
    fast, bad_fast = tr.run(values)
    ref, bad_ref = tr.run(values, reference=True)
    assert bad_fast == bad_ref
    if fast is None:
        return
    for f, r in zip(fast, ref):
        np.testing.assert_allclose(f, r, rtol=1e-9, atol=1e-12)


def test_large_fused_chain_and_matmul_match(rng):
    W1, W2, x = rng.normal(size=(64, 32)), rng.normal(size=(8, 64)), rng.normal(size=(32, 200))

    def f(W1, W2, x):
        h = np.tanh(W1 @ x)
        return np.sum(np.exp(-((W2 @ h) ** 2)) * 0.5 + np.sin(h).mean())

    G = autodiff.Gradient(f, [W1, W2, x])
    tr = G.trace
    fast, _ = tr.run([W1, W2, x])
    ref, _ = tr.run([W1, W2, x], reference=True)
    for a, b in zip(fast, ref):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_large_outputs_are_fresh_writable_arrays():
    x = np.linspace(0.0, 1.0, 100_000)
    g = autodiff.grad(lambda x: np.sum(np.sin(x)))
    a, b = g(x), g(x)
    assert a.flags.writeable and a.flags.c_contiguous and a.dtype == np.float64
    a[:] = 0.0  # writing one result never changes another
    np.testing.assert_allclose(b, np.cos(x))
    np.testing.assert_allclose(g(x), np.cos(x))
