"""Optimizers driven by compiled gradients. Each takes the function and a list of initial
arrays and returns arrays of the same shapes."""

from __future__ import annotations

import numpy as np

from .api import value_and_grad


def _pack(arrays):
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays]) if arrays else np.zeros(0)


def _unpack(vec, like):
    out, k = [], 0
    for a in like:
        a = np.asarray(a)
        out.append(vec[k : k + a.size].reshape(a.shape).copy())
        k += a.size
    return out


def _objective(fn, init_args):
    """A scipy-style `f(vec) -> (value, grad_vec)` from `fn(*arrays)`."""
    init = [np.asarray(a, dtype=np.float64) for a in init_args]
    vg = value_and_grad(_scalar(fn), argnums=tuple(range(len(init))))

    def f(vec):
        value, grads = vg(*_unpack(vec, init))
        return float(value), _pack(grads)

    return f, init


def _scalar(fn):
    """Minimizers need a scalar: a 0-d or size-1 result is accepted as is."""

    def scalar_fn(*args):
        return fn(*args)

    scalar_fn.__wrapped__ = fn
    return fn


def fmin_l_bfgs_b(fn, init_args, bounds=None, **scipy_options):
    """Minimizes `fn(*args)` with SciPy's L-BFGS-B, gradients from pyautodiff.

    `bounds` is one `(low, high)` pair per argument (scalars or arrays, None for no bound).
    Returns a list of arrays shaped like `init_args`.
    """
    from scipy.optimize import fmin_l_bfgs_b as scipy_lbfgsb

    f, init = _objective(fn, init_args)
    b = None
    if bounds is not None:
        b = []
        for (lo, hi), a in zip(bounds, init):
            lo_a = np.broadcast_to(-np.inf if lo is None else lo, a.shape).ravel()
            hi_a = np.broadcast_to(np.inf if hi is None else hi, a.shape).ravel()
            b.extend((None if np.isneginf(l) else float(l), None if np.isposinf(h) else float(h)) for l, h in zip(lo_a, hi_a))
    x, _, _ = scipy_lbfgsb(f, _pack(init), bounds=b, **scipy_options)
    return _unpack(x, init)
