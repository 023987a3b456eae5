"""Optimizers driven by compiled gradients. Each takes the function and a list of initial
arrays and returns arrays of the same shapes (the original PyAutoDiff's convention).

- `fmin_l_bfgs_b` and `minimize(method="L-BFGS-B")` run the native L-BFGS-B (crate
  `autodiff-optim`): the whole run happens in Rust, which calls the compiled
  value-and-gradient program once per evaluation; `backend="scipy"` runs SciPy's instead
  (the reference: same algorithm, same stopping rules).
- `fmin_sgd` and `fmin_adam` train over a stream of minibatches, backing off the step size
  when the loss becomes non-finite or stops decreasing.
- `fmin_cg`, `fmin_ncg` and the other `minimize` methods use SciPy (optional for the rest
  of the library; the import error says so).

`minimize`, `fmin_sgd` and `fmin_adam` return an `OptimizeResult` (SciPy's class, or a
compatible dict when SciPy is missing): `x` (the arrays, shaped like `init_args`),
`kwargs` (keyword arrays by name, when `init_kwargs` is given), `x_flat`, `fun`, `jac`
(flat), `nit`, `nfev`, `success`, `status`, `message`, and `history` (`loss` and
`grad_norm` per iteration). A line-search step where the loss or its gradient is NaN or
infinite (outside the function's domain) is halved and the search started again from there,
as SciPy's driver does; only when the step cannot shrink further does L-BFGS-B stop, the
message says so and `x` is the last point where the loss was finite.
"""

from __future__ import annotations

import inspect
import sys
import time

import numpy as np

from . import _core
from .api import HessianVector, value_and_grad
from .errors import NotScalarError

try:  # pragma: no cover - scipy is installed in the test setup
    from scipy.optimize import OptimizeResult as _ResultBase
except ImportError:  # pragma: no cover

    class _ResultBase(dict):
        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError as e:
                raise AttributeError(name) from e

        __setattr__ = dict.__setitem__
        __delattr__ = dict.__delitem__


class OptimizeResult(_ResultBase):
    """The outcome of a run: SciPy's `OptimizeResult` (a dict with attribute access) with
    `x` as a list of arrays shaped like the initial ones; see the module docstring."""


# status codes (SciPy's for L-BFGS-B, plus ours)
_STATUS = {"Pgtol": 0, "Factr": 0, "MaxIter": 1, "MaxFun": 1, "LineSearch": 2, "NonFinite": 3, "Stopped": 99}


def _scipy_optimize():
    try:
        import scipy.optimize
    except ImportError as e:  # pragma: no cover - scipy is installed in the test setup
        raise ImportError("autodiff's optimizers other than L-BFGS-B and SGD use SciPy: pip install scipy") from e
    return scipy.optimize


def _pack(arrays):
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays]) if arrays else np.zeros(0)


def _unpack(vec, like):
    out, k = [], 0
    for a in like:
        out.append(vec[k : k + a.size].reshape(a.shape).copy())
        k += a.size
    return out


def _views(buf, like):
    out, k = [], 0
    for a in like:
        out.append(buf[k : k + a.size].reshape(a.shape))
        k += a.size
    return tuple(out)


def _arrange(fn, init_args, init_kwargs):
    """The initial arrays in `fn`'s positional order and the names of the keyword ones."""
    if not isinstance(init_args, (list, tuple)):
        raise TypeError("init_args must be a list of initial arrays, e.g. [np.zeros(3)]")
    init = [np.array(a, dtype=np.float64) for a in init_args]
    if not init_kwargs:
        return init, []
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as e:
        raise TypeError("init_kwargs needs a function whose signature inspect can read") from e
    names = []
    for p in params[len(init) :]:
        if p.kind is not p.POSITIONAL_OR_KEYWORD or p.name not in init_kwargs:
            break
        names.append(p.name)
    extra = sorted(set(init_kwargs) - set(names))
    if extra:
        raise TypeError(
            f"init_kwargs {extra} must name the parameters of {getattr(fn, '__name__', fn)} that follow "
            f"the {len(init)} positional ones, in any order, without gaps"
        )
    return init + [np.array(init_kwargs[n], dtype=np.float64) for n in names], names


class _Problem:
    """`fn(*arrays)` seen as a function of one flat float64 vector."""

    def __init__(self, fn, init_args, init_kwargs=None):
        self.fn = fn
        self.init, self.kw_names = _arrange(fn, init_args, init_kwargs)
        self.vg = value_and_grad(fn, argnums=tuple(range(len(self.init))))
        self._hv = None
        self.last = None  # (x, f, g) of the latest evaluation (SciPy path's history)

    def value_and_grad(self, vec):
        value, grads = self.vg(*_unpack(vec, self.init))
        if np.size(value) != 1:
            raise NotScalarError(f"the objective must return a scalar; it returned shape {np.shape(value)}")
        f, g = float(value), _pack(grads)
        self.last = (vec, f, g)
        return f, g

    def value(self, vec):
        return self.value_and_grad(vec)[0]

    def grad(self, vec):
        return self.value_and_grad(vec)[1]

    def hessp(self, vec, p):
        if self._hv is None:
            self._hv = HessianVector(self.fn, wrt=tuple(range(len(self.init))))
        return _pack(self._hv(*_unpack(vec, self.init), vectors=_unpack(p, self.init)))

    def flat_callable(self, xbuf):
        """A no-argument callable returning `(f, *grads)` at the point in `xbuf`: the
        compiled program's native entry (about 1 µs of Python) when it takes the call,
        else the general path."""
        views = _views(xbuf, self.init)
        self.value_and_grad(xbuf.copy())  # compiles, and checks the output is a scalar
        g = self.vg.gradient
        native = g._native if g._direct else None
        vg = self.vg

        def fun():
            if native is not None:
                out = native(views)
                if out is not None:
                    return out
            value, grads = vg(*views)
            return (value, *grads)

        return fun

    def x0(self):
        return _pack(self.init)

    def result(self, vec):
        return _unpack(np.asarray(vec, dtype=np.float64), self.init)

    def fill(self, res, vec):
        """Puts the point into `res`: `x` (positional arrays), `kwargs`, `x_flat`."""
        arrays = self.result(vec)
        k = len(arrays) - len(self.kw_names)
        res["x"] = arrays[:k]
        if self.kw_names:
            res["kwargs"] = dict(zip(self.kw_names, arrays[k:]))
        res["x_flat"] = np.asarray(vec, dtype=np.float64).copy()
        return res


def _bound_arrays(bounds, init):
    """Flat lower and upper bound vectors (±inf where unbounded)."""
    n = sum(a.size for a in init)
    if bounds is None:
        return np.full(n, -np.inf), np.full(n, np.inf)
    if len(bounds) != len(init):
        raise ValueError(f"bounds needs one (low, high) pair per argument: got {len(bounds)} for {len(init)} arguments")
    lows, highs = [], []
    for k, (b, a) in enumerate(zip(bounds, init)):
        lo, hi = (None, None) if b is None else b
        try:
            lo_a = np.broadcast_to(np.asarray(-np.inf if lo is None else lo, dtype=np.float64), a.shape)
            hi_a = np.broadcast_to(np.asarray(np.inf if hi is None else hi, dtype=np.float64), a.shape)
        except ValueError as e:
            raise ValueError(f"bounds[{k}] must be scalars or arrays of the argument's shape {a.shape}: {e}") from None
        lows.append(np.where(np.isnan(lo_a), -np.inf, lo_a).ravel())
        highs.append(np.where(np.isnan(hi_a), np.inf, hi_a).ravel())
    lo, hi = np.concatenate(lows) if lows else np.zeros(0), np.concatenate(highs) if highs else np.zeros(0)
    if np.any(lo > hi):
        k = int(np.argmax(lo > hi))
        raise ValueError(f"bounds: low > high at flat position {k} ({lo[k]} > {hi[k]})")
    return lo, hi


def _flat_bounds(bounds, init):
    """SciPy's list of (low, high) pairs, None for no bound."""
    if bounds is None:
        return None
    lo, hi = _bound_arrays(bounds, init)
    return [(None if np.isneginf(a) else float(a), None if np.isposinf(b) else float(b)) for a, b in zip(lo, hi)]


class _Progress:
    """`verbose`: a tqdm bar when tqdm is installed (else a line per `every` iterations) with
    the iteration, loss, gradient norm and step; `callback(intermediate_result)` after each
    iteration (return True, or raise StopIteration, to stop)."""

    def __init__(self, verbose, callback, total, problem=None):
        self.callback, self.problem = callback, problem
        self.bar, self.every, self.t0 = None, 0, time.perf_counter()
        if verbose:
            self.every = int(verbose) if not isinstance(verbose, bool) else 1
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, unit="it", leave=True)
            except ImportError:
                print(f"{'iter':>7} {'loss':>15} {'|grad|':>11} {'step':>11}", file=sys.stderr)

    @property
    def active(self):
        return self.callback is not None or self.every > 0

    def report(self, nit, loss, gnorm, step, extra=None):
        if self.bar is not None:
            self.bar.update(nit - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.6g}", grad=f"{gnorm:.3g}", step=f"{step:.3g}", refresh=False)
        elif self.every and nit % self.every == 0:
            print(f"{nit:7d} {loss:15.8g} {gnorm:11.4g} {step:11.4g}", file=sys.stderr)
        if self.callback is None:
            return False
        state = OptimizeResult(fun=loss, nit=nit, grad_norm=gnorm, step=step, **(extra or {}))
        try:
            return bool(self.callback(state))
        except StopIteration:
            return True

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _lbfgsb_native(p, bounds, *, m, factr, pgtol, maxiter, maxfun, maxls, callback, verbose):
    lo, hi = _bound_arrays(bounds, p.init)
    x0 = np.clip(p.x0(), lo, hi)
    xbuf = x0.copy()
    fun = p.flat_callable(xbuf)
    prog = _Progress(verbose, callback, maxiter, p)
    hook = None
    if prog.active:

        def hook(nit, nfev, f, pgnorm, step):
            extra = {"nfev": nfev}
            if prog.callback is not None:
                p.fill(extra, xbuf)
            return prog.report(nit, f, pgnorm, step, extra)

    try:
        r = _core.lbfgsb(
            fun, xbuf, x0.tolist(), lo.tolist(), hi.tolist(), [a.size for a in p.init],
            int(m), float(factr), float(pgtol), int(maxiter), int(maxfun), int(maxls), hook,
        )  # fmt: skip
    finally:
        prog.close()
    x = np.array(r["x"], dtype=np.float64)
    res = OptimizeResult(
        fun=r["f"],
        jac=np.array(r["g"], dtype=np.float64),
        nit=r["nit"],
        nfev=r["nfev"],
        njev=r["nfev"],
        success=r["success"],
        status=_STATUS[r["status"]],
        message=r["message"],
        history={"loss": np.array(r["history_f"]), "grad_norm": np.array(r["history_pgnorm"])},
        backend="native",
    )
    return p.fill(res, x)


def _scipy_result(p, sres, hist):
    res = OptimizeResult(dict(sres))
    res["history"] = {"loss": np.array(hist[0]), "grad_norm": np.array(hist[1])}
    res["backend"] = "scipy"
    return p.fill(res, sres.x)


def _scipy_minimize(p, method, bounds, callback, verbose, options, kw):
    opt = _scipy_optimize()
    x0 = p.x0()
    f0, g0 = p.value_and_grad(x0)
    lo, hi = _bound_arrays(bounds, p.init)
    hist = ([f0], [float(np.max(np.abs(g0), initial=0.0))])
    maxiter = (options or {}).get("maxiter", 15000)
    prog = _Progress(verbose, callback, maxiter, p)
    nit = [0]

    def cb(intermediate_result):
        nit[0] += 1
        _, f, g = p.last
        if isinstance(intermediate_result, np.ndarray):
            # methods that pass the point alone (TNC): the latest evaluation's value
            intermediate_result = OptimizeResult(x=intermediate_result, fun=f)
        xk = intermediate_result.x
        pg = g.copy()
        neg, pos = pg < 0, pg >= 0
        pg[neg] = np.maximum(xk[neg] - hi[neg], pg[neg])
        pg[pos] = np.minimum(xk[pos] - lo[pos], pg[pos])
        gn = float(np.max(np.abs(pg), initial=0.0))
        hist[0].append(float(intermediate_result.fun))
        hist[1].append(gn)
        extra = p.fill({}, xk) if prog.callback is not None else None
        if prog.report(nit[0], float(intermediate_result.fun), gn, 0.0, extra):
            raise StopIteration

    kw = dict(kw, bounds=_flat_bounds(bounds, p.init), options=options)
    fun = p.value_and_grad
    if method.lower() in ("nelder-mead", "powell", "cobyla", "cobyqa"):
        fun = p.value  # derivative-free: a jac would only draw SciPy's warning
    else:
        kw["jac"] = True
    if method.lower() in ("newton-cg", "trust-ncg", "trust-krylov", "trust-constr"):
        kw["hessp"] = p.hessp
    elif method.lower() in ("trust-exact", "dogleg"):
        # these need the dense Hessian: one Hessian-vector product per column
        def hess(x):
            eye = np.eye(x.size)
            return np.column_stack([p.hessp(x, e) for e in eye])

        kw["hess"] = hess
    try:
        sres = opt.minimize(fun, x0, method=method, callback=cb, **kw)
    finally:
        prog.close()
    return _scipy_result(p, sres, hist)


_LBFGSB_OPTIONS = (
    "maxcor",
    "ftol",
    "gtol",
    "maxiter",
    "maxfun",
    "maxls",
    "disp",
    "iprint",
    "eps",
    "finite_diff_rel_step",
)


def minimize(
    fn,
    init_args,
    method="L-BFGS-B",
    bounds=None,
    *,
    init_kwargs=None,
    backend="native",
    callback=None,
    verbose=False,
    tol=None,
    options=None,
    **kwargs,
):
    """Minimizes `fn(*init_args, **init_kwargs)` over all the arrays given, with gradients
    (and Hessian-vector products for the methods that use them) from pyautodiff; mirrors
    `scipy.optimize.minimize`.

    `method="L-BFGS-B"` runs the native implementation (`backend="scipy"` runs SciPy's);
    its `options` are SciPy's: `maxcor` (10), `ftol` (2.2e-9), `gtol` (1e-5), `maxiter`
    and `maxfun` (15000), `maxls` (20); `tol` sets `ftol` and `gtol`. Other methods run
    SciPy's. `bounds` is one `(low, high)` pair per array (scalars or arrays of its shape,
    None for no bound). `callback(intermediate_result)` runs after each iteration (return
    True or raise StopIteration to stop); `verbose=True` shows progress (tqdm when
    installed; an int k prints every k iterations). Returns an `OptimizeResult`."""
    p = _Problem(fn, init_args, init_kwargs)
    if method.upper() == "L-BFGS-B" and backend == "native":
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(_LBFGSB_OPTIONS))
        if unknown or kwargs:
            raise TypeError(
                f"unknown L-BFGS-B options {unknown + sorted(kwargs)}; the native one takes {list(_LBFGSB_OPTIONS[:6])}"
            )
        if tol is not None:
            opts.setdefault("ftol", tol)
            opts.setdefault("gtol", tol)
        return _lbfgsb_native(
            p,
            bounds,
            m=opts.get("maxcor", 10),
            factr=opts.get("ftol", 2.2204460492503131e-09) / np.finfo(float).eps,
            pgtol=opts.get("gtol", 1e-5),
            maxiter=opts.get("maxiter", 15000),
            maxfun=opts.get("maxfun", 15000),
            maxls=opts.get("maxls", 20),
            callback=callback,
            verbose=verbose,
        )
    if backend not in ("native", "scipy"):
        raise ValueError(f"backend must be 'native' or 'scipy', not {backend!r}")
    if tol is not None:
        kwargs["tol"] = tol
    return _scipy_minimize(p, method, bounds, callback, verbose, options, kwargs)


def fmin_l_bfgs_b(
    fn,
    init_args,
    bounds=None,
    *,
    m=10,
    factr=1e7,
    pgtol=1e-5,
    maxiter=15000,
    maxfun=15000,
    maxls=20,
    callback=None,
    verbose=False,
    backend="native",
    **scipy_options,
):
    """Minimizes `fn(*args)` with L-BFGS-B (native by default, `backend="scipy"` for
    SciPy's); gradients from pyautodiff. `bounds` is one `(low, high)` pair per argument
    (scalars or arrays, None for no bound). Returns a list of arrays shaped like
    `init_args` (use `minimize` for the full result)."""
    p = _Problem(fn, init_args)
    if backend == "scipy":
        opt = _scipy_optimize()
        kw = dict(m=m, factr=factr, pgtol=pgtol, maxiter=maxiter, maxfun=maxfun, maxls=maxls, callback=callback)
        x, _, _ = opt.fmin_l_bfgs_b(
            p.value_and_grad, p.x0(), bounds=_flat_bounds(bounds, p.init), **kw, **scipy_options
        )
        return p.result(x)
    if backend != "native":
        raise ValueError(f"backend must be 'native' or 'scipy', not {backend!r}")
    unknown = sorted(set(scipy_options) - {"disp", "iprint"})
    if unknown:
        raise TypeError(f"fmin_l_bfgs_b got unexpected options {unknown}")
    res = _lbfgsb_native(
        p, bounds, m=m, factr=factr, pgtol=pgtol, maxiter=maxiter, maxfun=maxfun, maxls=maxls,
        callback=callback, verbose=verbose,
    )  # fmt: skip
    return res.x


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


# ---------------------------------------------------------------------------------------
# Stochastic gradient descent over minibatch streams


def _epochs(stream):
    """One iterable per epoch: a callable is called for a fresh one each epoch; an
    iterator (a generator) gives its single pass; any other iterable is re-iterated."""
    while True:
        if callable(stream):
            yield stream()
        elif iter(stream) is stream:
            yield stream
            return
        else:
            yield stream


def fmin_sgd(
    fn,
    init_args,
    stream,
    *,
    stepsize=0.01,
    momentum=0.0,
    method="sgd",
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    max_epochs=1,
    max_steps=None,
    check_every=100,
    backoff=0.5,
    min_stepsize=1e-12,
    callback=None,
    verbose=False,
):
    """Minimizes `fn(*params, *minibatch)` by stochastic gradient descent over `stream`.

    `stream` yields minibatches: each is a tuple of extra arguments to `fn` (or one array).
    It may be a generator (one pass), a re-iterable such as a list, or a zero-argument
    callable returning a fresh iterable per epoch. `stepsize` is a scalar or one per
    parameter; `momentum` is the heavy-ball coefficient; `method="adam"` uses Adam (with
    `beta1`, `beta2`, `eps`). The run stops after `max_epochs` passes or `max_steps` steps.

    Back-off (as the original PyAutoDiff did): a non-finite loss or gradient, or a mean
    loss over the last `check_every` steps that is no lower than the best such mean so
    far, restores the parameters of that best window and multiplies the step sizes by
    `backoff`; the run ends early once they fall below `min_stepsize` times the start.

    Returns an `OptimizeResult`: `x` (the parameters, shaped like `init_args`), `fun` (the
    best window's mean loss), `nit` (steps), `nfev`, `success`, `message`, `history`
    (per window: `loss`, `grad_norm`, `stepsize`), `backoffs` and `stepsize` (the step
    sizes at the end: the start's after every back-off)."""
    if method not in ("sgd", "adam"):
        raise ValueError(f"method must be 'sgd' or 'adam', not {method!r}")
    if not isinstance(init_args, (list, tuple)):
        raise TypeError("init_args must be a list of initial arrays, e.g. [np.zeros(3)]")
    params = [np.array(a, dtype=np.float64) for a in init_args]
    k = len(params)
    rates = list(stepsize) if isinstance(stepsize, (list, tuple)) else [stepsize] * k
    if len(rates) != k:
        raise ValueError(f"stepsize needs one rate per parameter ({k}), got {len(rates)}")
    rates = [np.asarray(r, dtype=np.float64) for r in rates]

    def current_steps(scale):
        """The step sizes in use (the start's times the back-off factor so far): one
        number when every parameter has the same, else one per parameter."""
        steps = [scale * r for r in rates]
        if all(np.ndim(r) == 0 for r in steps) and len({float(r) for r in steps}) == 1:
            return float(steps[0])
        return [float(r) if np.ndim(r) == 0 else r for r in steps]

    scale = 1.0
    vg = value_and_grad(fn, argnums=tuple(range(k)))
    vel = [np.zeros_like(a) for a in params]
    m2 = [np.zeros_like(a) for a in params]
    t_adam = 0
    best = last_eval = [a.copy() for a in params]
    best_loss = np.inf
    win_loss, win_gn, win_n = 0.0, 0.0, 0
    hist = {"loss": [], "grad_norm": [], "stepsize": []}
    steps = nfev = backoffs = 0
    prog = _Progress(verbose, callback, max_steps)
    message, stop = "maximum number of epochs reached", False

    def back_off():
        nonlocal scale, t_adam, backoffs
        for a, b in zip(params, best):
            a[...] = b
        for v in vel + m2:
            v[...] = 0.0
        t_adam = 0
        scale *= backoff
        backoffs += 1

    try:
        done = 0
        for batches in _epochs(stream):
            if done >= max_epochs or stop:
                break
            done += 1
            for batch in batches:
                if max_steps is not None and steps >= max_steps:
                    message, stop = "maximum number of steps reached", True
                    break
                extra = batch if isinstance(batch, tuple) else (batch,)
                loss, grads = vg(*params, *extra)
                loss = float(loss)
                nfev += 1
                steps += 1
                gn = float(np.sqrt(sum(float(np.sum(np.square(g))) for g in grads)))
                if not (np.isfinite(loss) and np.isfinite(gn)):
                    back_off()
                    win_loss, win_gn, win_n = 0.0, 0.0, 0
                    if scale < min_stepsize:
                        message, stop = "the step size fell below min_stepsize after non-finite losses", True
                        break
                    continue
                last_eval = [a.copy() for a in params]  # a point whose loss is known finite
                if method == "adam":
                    t_adam += 1
                    c1, c2 = 1.0 - beta1**t_adam, 1.0 - beta2**t_adam
                    for a, g, m, v, r in zip(params, grads, vel, m2, rates):
                        m *= beta1
                        m += (1.0 - beta1) * g
                        v *= beta2
                        v += (1.0 - beta2) * np.square(g)
                        a -= scale * r * (m / c1) / (np.sqrt(v / c2) + eps)
                else:
                    for a, g, v, r in zip(params, grads, vel, rates):
                        v *= momentum
                        v -= scale * r * g
                        a += v
                win_loss, win_gn, win_n = win_loss + loss, win_gn + gn, win_n + 1
                if win_n >= check_every:
                    mean = win_loss / win_n
                    hist["loss"].append(mean)
                    hist["grad_norm"].append(win_gn / win_n)
                    hist["stepsize"].append(current_steps(scale))
                    if mean < best_loss:
                        best_loss, best = mean, last_eval
                    else:
                        back_off()
                    win_loss, win_gn, win_n = 0.0, 0.0, 0
                    if prog.report(steps, mean, hist["grad_norm"][-1], scale * float(np.max(rates[0])), {"x": [a.copy() for a in params]}):
                        message, stop = "the callback asked to stop", True
                        break
                if scale < min_stepsize:
                    message, stop = "the step size fell below min_stepsize (no more progress)", True
                    break
        if not stop and done < max_epochs:
            message = f"the stream ended after {done} epoch(s)"
    finally:
        prog.close()
    # The point returned: the last one evaluated when its (partial) window beats the best
    # window or no window was completed, else the best window's last evaluated point (a
    # point whose loss was computed and finite, never one a step moved to unseen).
    if win_n and (win_loss / win_n < best_loss or not np.isfinite(best_loss)):
        best_loss, best = win_loss / win_n, last_eval
    ok = bool(np.isfinite(best_loss))
    res = OptimizeResult(
        x=[a.copy() for a in best],
        fun=float(best_loss),
        nit=steps,
        nfev=nfev,
        success=ok,
        status=0 if ok else 3,
        message=message if ok else "no finite loss was seen",
        history={key: np.array(v) if key != "stepsize" or all(np.ndim(x) == 0 for x in v) else v for key, v in hist.items()},
        backoffs=backoffs,
        stepsize=current_steps(scale),
    )
    res["x_flat"] = _pack(res["x"])
    return res


def fmin_adam(fn, init_args, stream, *, stepsize=0.001, **kw):
    """`fmin_sgd(..., method="adam")`: Adam (Kingma & Ba 2015) with the same stream,
    budget and back-off rules."""
    return fmin_sgd(fn, init_args, stream, stepsize=stepsize, method="adam", **kw)
