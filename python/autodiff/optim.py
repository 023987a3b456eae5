"""Optimizers driven by compiled gradients. Each takes the function and a list of initial
arrays and returns arrays of the same shapes (the original PyAutoDiff's convention).

SciPy is needed for these (it is optional for the rest of the library); the import error
says so."""

from __future__ import annotations

import numpy as np

from .api import HessianVector, value_and_grad


def _scipy_optimize():
    try:
        import scipy.optimize
    except ImportError as e:  # pragma: no cover - scipy is installed in the test setup
        raise ImportError("autodiff's optimizers use SciPy: pip install scipy") from e
    return scipy.optimize


def _pack(arrays):
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays]) if arrays else np.zeros(0)


def _unpack(vec, like):
    out, k = [], 0
    for a in like:
        out.append(vec[k : k + a.size].reshape(a.shape).copy())
        k += a.size
    return out


class _Problem:
    """`fn(*arrays)` seen as a function of one flat float64 vector."""

    def __init__(self, fn, init_args):
        if not isinstance(init_args, (list, tuple)):
            raise TypeError("init_args must be a list of initial arrays, e.g. [np.zeros(3)]")
        self.fn = fn
        self.init = [np.asarray(a, dtype=np.float64) for a in init_args]
        self.vg = value_and_grad(fn, argnums=tuple(range(len(self.init))))
        self._hv = None

    def value_and_grad(self, vec):
        value, grads = self.vg(*_unpack(vec, self.init))
        if np.size(value) != 1:
            from .errors import NotScalarError

            raise NotScalarError(f"the objective must return a scalar; it returned shape {np.shape(value)}")
        return float(value), _pack(grads)

    def value(self, vec):
        return self.value_and_grad(vec)[0]

    def grad(self, vec):
        return self.value_and_grad(vec)[1]

    def hessp(self, vec, p):
        if self._hv is None:
            self._hv = HessianVector(self.fn, wrt=tuple(range(len(self.init))))
        return _pack(self._hv(*_unpack(vec, self.init), vectors=_unpack(p, self.init)))

    def x0(self):
        return _pack(self.init)

    def result(self, vec):
        return _unpack(np.asarray(vec, dtype=np.float64), self.init)


def _flat_bounds(bounds, init):
    if bounds is None:
        return None
    if len(bounds) != len(init):
        raise ValueError(f"bounds needs one (low, high) pair per argument: got {len(bounds)} for {len(init)} arguments")
    out = []
    for (lo, hi), a in zip(bounds, init):
        lo_a = np.broadcast_to(-np.inf if lo is None else lo, a.shape).ravel()
        hi_a = np.broadcast_to(np.inf if hi is None else hi, a.shape).ravel()
        out.extend(
            (None if np.isneginf(lo_) else float(lo_), None if np.isposinf(hi_) else float(hi_))
            for lo_, hi_ in zip(lo_a, hi_a)
        )
    return out


def fmin_l_bfgs_b(fn, init_args, bounds=None, **scipy_options):
    """Minimizes `fn(*args)` with SciPy's L-BFGS-B; gradients from pyautodiff.

    `bounds` is one `(low, high)` pair per argument (scalars or arrays, None for no bound).
    Returns a list of arrays shaped like `init_args`."""
    opt = _scipy_optimize()
    p = _Problem(fn, init_args)
    x, _, _ = opt.fmin_l_bfgs_b(p.value_and_grad, p.x0(), bounds=_flat_bounds(bounds, p.init), **scipy_options)
    return p.result(x)


def fmin_cg(fn, init_args, **scipy_options):
    """Nonlinear conjugate gradient (SciPy's fmin_cg) on the compiled gradient."""
    opt = _scipy_optimize()
    p = _Problem(fn, init_args)
    x = opt.fmin_cg(p.value, p.x0(), fprime=p.grad, disp=scipy_options.pop("disp", False), **scipy_options)
    return p.result(x)


def fmin_ncg(fn, init_args, **scipy_options):
    """Newton-CG (SciPy's fmin_ncg) with exact Hessian-vector products."""
    opt = _scipy_optimize()
    p = _Problem(fn, init_args)
    x = opt.fmin_ncg(
        p.value, p.x0(), fprime=p.grad, fhess_p=p.hessp, disp=scipy_options.pop("disp", False), **scipy_options
    )
    return p.result(x)


def minimize(fn, init_args, method="L-BFGS-B", bounds=None, **options):
    """Mirrors `scipy.optimize.minimize` with gradients (and Hessian-vector products for the
    methods that use them) from pyautodiff. Returns SciPy's `OptimizeResult` with `x`
    replaced by a list of arrays shaped like `init_args` (the flat vector is `x_flat`)."""
    opt = _scipy_optimize()
    p = _Problem(fn, init_args)
    kw = dict(jac=True, bounds=_flat_bounds(bounds, p.init), **options)
    if method.lower() in ("newton-cg", "trust-ncg", "trust-krylov", "trust-constr"):
        kw["hessp"] = p.hessp
    res = opt.minimize(p.value_and_grad, p.x0(), method=method, **kw)
    res["x_flat"] = res.x
    res["x"] = p.result(res.x)
    return res
