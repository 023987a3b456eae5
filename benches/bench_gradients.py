"""Gradients of plain NumPy workloads: pyautodiff against jax.jit(jax.grad), autograd.grad
and hand-written NumPy gradients, timed side by side in one process.

Each workload is written once, as `make(np) -> f`, and instantiated with `numpy` (ours),
`jax.numpy` and `autograd.numpy`. Every peer's gradient is checked against ours before it
is timed. Run directly (`python benches/bench_gradients.py`) or through `run_all.py`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import autodiff
import numpy
from common import OURS, Row, autograd, check, first_call, jax, jax_call, time_round_robin, to_jax
from scipy.optimize import rosen_der

rng = numpy.random.default_rng(0)


# --------------------------------------------------------------------------- workloads


def make_seed(np):
    def seed(x):
        return np.sum((x + 1) ** 2)

    return seed


def hand_seed(x):
    return 2 * (x + 1)


def make_logistic(np):
    def logistic(w, X, y):
        z = X @ w
        return np.mean(np.log1p(np.exp(-y * z)))

    return logistic


def hand_logistic(w, X, y):
    s = 1 / (1 + numpy.exp(y * (X @ w)))
    return -(X.T @ (y * s)) / len(y)


def make_mlp(np):
    def mlp(params, X, y):
        W1, b1, W2, b2, W3, b3 = params
        h1 = np.tanh(X @ W1 + b1)
        h2 = np.tanh(h1 @ W2 + b2)
        out = (h2 @ W3 + b3)[:, 0]
        return np.mean((out - y) ** 2)

    return mlp


def hand_mlp(params, X, y):
    W1, b1, W2, b2, W3, b3 = params
    h1 = numpy.tanh(X @ W1 + b1)
    h2 = numpy.tanh(h1 @ W2 + b2)
    out = (h2 @ W3 + b3)[:, 0]
    d_out = (2 / len(y)) * (out - y)[:, None]
    d_a2 = (d_out @ W3.T) * (1 - h2**2)
    d_a1 = (d_a2 @ W2.T) * (1 - h1**2)
    return [X.T @ d_a1, d_a1.sum(0), h1.T @ d_a2, d_a2.sum(0), h2.T @ d_out, d_out.sum(0)]


def make_elementwise(np):
    def elementwise(x):
        return np.sum(np.tanh(x) * np.exp(-(x**2)) + np.log1p(x**2))

    return elementwise


def hand_elementwise(x):
    t, e = numpy.tanh(x), numpy.exp(-(x**2))
    return (1 - t * t) * e - 2 * x * t * e + 2 * x / (1 + x * x)


def make_mlp_softmax(np):
    def mlp_softmax(params, X, Y):
        W1, b1, W2, b2 = params
        h = np.tanh(X @ W1 + b1)
        z = h @ W2 + b2
        z = z - np.max(z, axis=1, keepdims=True)
        lse = np.log(np.sum(np.exp(z), axis=1))
        return -np.mean(np.sum(Y * z, axis=1) - lse)

    return mlp_softmax


def hand_mlp_softmax(params, X, Y):
    W1, b1, W2, b2 = params
    h = numpy.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    p = numpy.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz = (p - Y) / len(X)
    dh = (dz @ W2.T) * (1 - h * h)
    return [X.T @ dh, dh.sum(0), h.T @ dz, dz.sum(0)]


def make_rosenbrock(np):
    def rosenbrock(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    return rosenbrock


STEPS = 100


def make_ode(np):
    def ode(theta, y0):
        """Explicit Euler of dy/dt = -a*y + b*sin(y), a Python loop."""
        y = y0
        for _ in range(STEPS):
            y = y + 0.01 * (-theta[0] * y + theta[1] * np.sin(y))
        return np.sum(y**2)

    return ode


def jax_ode_fori(theta, y0):
    """The ODE as JAX users would write it: lax.fori_loop instead of an unrolled loop."""

    def step(_, y):
        return y + 0.01 * (-theta[0] * y + theta[1] * jax.numpy.sin(y))

    return jax.numpy.sum(jax.lax.fori_loop(0, STEPS, step, y0) ** 2)


@dataclass
class Workload:
    name: str
    make: Callable  # make(np) -> scalar function; gradient w.r.t. its first argument
    args: tuple
    hand: Callable | None = None  # hand-written NumPy gradient, when easy


def mlp_args():
    sizes = [(64, 128), (128,), (128, 64), (64,), (64, 1), (1,)]
    params = [rng.standard_normal(s) * 0.1 for s in sizes]
    return params, rng.standard_normal((256, 64)), rng.standard_normal(256)


def mlp_workload() -> Workload:
    return Workload("MLP 64-128-64-1 tanh, batch 256", make_mlp, mlp_args(), hand_mlp)


def workloads() -> list[Workload]:
    X = rng.standard_normal((1000, 20))
    y = numpy.sign(rng.standard_normal(1000))
    return [
        Workload("seed sum((x+1)**2), n=3", make_seed, (rng.standard_normal(3),), hand_seed),
        Workload("seed sum((x+1)**2), n=1e6", make_seed, (rng.standard_normal(1_000_000),), hand_seed),
        Workload("logistic regression, X 1000x20", make_logistic, (rng.standard_normal(20) * 0.1, X, y), hand_logistic),
        mlp_workload(),
        Workload("Rosenbrock, n=1e4", make_rosenbrock, (rng.standard_normal(10_000),), rosen_der),
        Workload(f"Euler ODE, {STEPS} steps, n=100", make_ode, (numpy.array([0.5, 1.2]), rng.standard_normal(100))),
        Workload("sum(tanh(x)exp(-x²)+log1p(x²)), n=1e5", make_elementwise, (rng.standard_normal(100_000),), hand_elementwise),
        Workload("sum(tanh(x)exp(-x²)+log1p(x²)), n=1e6", make_elementwise, (rng.standard_normal(1_000_000),), hand_elementwise),
        Workload("logistic regression, X 20000x200", make_logistic, (rng.standard_normal(200) * 0.1, rng.standard_normal((20000, 200)), numpy.sign(rng.standard_normal(20000))), hand_logistic),
        Workload("MLP 784-256-10 tanh+softmax CE, batch 512", make_mlp_softmax, big_mlp_args(), hand_mlp_softmax),
    ]


def big_mlp_args():
    params = [rng.standard_normal((784, 256)) * 0.05, numpy.zeros(256), rng.standard_normal((256, 10)) * 0.05, numpy.zeros(10)]
    return params, rng.standard_normal((512, 784)), numpy.eye(10)[rng.integers(0, 10, 512)]


# --------------------------------------------------------------------------- runners


def gradient_candidates(w: Workload) -> dict:
    """name -> (build, args): `build()` makes a fresh compiled gradient (cold cache)."""
    cands = {OURS: (lambda: autodiff.grad(w.make(numpy)), w.args)}
    if jax is not None:
        cands["jax.jit"] = (lambda: jax_call(jax.jit(jax.grad(w.make(jax.numpy)))), to_jax(w.args))
    if autograd is not None:
        cands["autograd"] = (lambda: autograd.grad(w.make(autograd.numpy)), w.args)
    if w.hand is not None:
        cands["numpy (hand)"] = (lambda: w.hand, w.args)
    return cands


def bench(name: str, cands: dict, cold: tuple = (OURS, "jax.jit"), companions: dict | None = None) -> Row:
    """Cold first call for the compiling candidates, result check, then steady timing.
    `companions` (name -> (fn, args)) are timed in the same rounds, into `row.extra`."""
    row = Row(name)
    fns = {}
    for c, (build, args) in cands.items():
        fn = build()
        if c in cold:  # the cold object is kept: JAX would compile a fresh one again
            row.first[c] = first_call(fn, args)
        fns[c] = (fn, args)
    want = fns[OURS][0](*fns[OURS][1])
    for c, (fn, args) in fns.items():
        if c != OURS and not check(name, c, fn(*args), want):
            row.mismatches.append(c)
    companions = companions or {}
    times = time_round_robin({**fns, **{("companion", c): v for c, v in companions.items()}})
    row.times = {c: times[c] for c in fns}
    row.extra = {c: times["companion", c] for c in companions}
    return row


def hvp_candidates() -> dict:
    """Hessian-vector products of the MLP loss along `v` (one vector per parameter)."""
    params, X, y = mlp_args()
    v = [rng.standard_normal(p.shape) for p in params]

    def ours():
        hv = autodiff.HessianVector(make_mlp(numpy), wrt=0)
        return lambda p, X, y, v: hv(p, X, y, vectors=v)

    cands = {OURS: (ours, (params, X, y, v))}
    if jax is not None:
        f = make_mlp(jax.numpy)

        def jax_hvp():
            def hvp(p, X, y, v):
                return jax.jvp(lambda q: jax.grad(f)(q, X, y), (p,), (v,))[1]

            return jax_call(jax.jit(hvp))

        cands["jax.jit"] = (jax_hvp, to_jax((params, X, y, v)))
    if autograd is not None:
        anp = autograd.numpy
        g = autograd.grad(make_mlp(anp))

        def dot_grad(p, X, y, v):  # reverse over reverse: grad of <grad f, v>
            return sum(anp.sum(gi * vi) for gi, vi in zip(g(p, X, y), v))

        cands["autograd"] = (lambda: autograd.grad(dot_grad), (params, X, y, v))
    return cands


def run() -> tuple[list[Row], list[Row], dict]:
    """Returns (gradient rows, [HVP row], HVP-over-gradient ratios per candidate)."""
    rows = []
    for w in workloads():
        print(f"  {w.name} ...", file=sys.stderr, flush=True)
        rows.append(bench(w.name, gradient_candidates(w)))
        if w.make is make_ode and jax is not None:
            name = f"{w.name}; jax with lax.fori_loop"
            print(f"  {name} ...", file=sys.stderr, flush=True)
            cands = gradient_candidates(w)
            cands = {OURS: cands[OURS], "jax.jit": (lambda: jax_call(jax.jit(jax.grad(jax_ode_fori))), to_jax(w.args))}
            rows.append(bench(name, cands))
    print("  MLP Hessian-vector product ...", file=sys.stderr, flush=True)
    hvp = hvp_candidates()
    # The MLP gradients, timed in the same rounds as the HVPs, for the HVP/gradient ratio.
    grads = {c: (build(), args) for c, (build, args) in gradient_candidates(mlp_workload()).items() if c in hvp}
    hvp_row = bench("MLP Hessian-vector product", hvp, companions=grads)
    ratios = {c: hvp_row.times[c][0] / hvp_row.extra[c][0] for c in grads}
    return rows, [hvp_row], ratios


if __name__ == "__main__":
    from common import first_call_table, steady_table

    rows, hvp_rows, ratios = run()
    print(steady_table(rows + hvp_rows))
    print()
    print(first_call_table(rows + hvp_rows))
    print()
    print("HVP / gradient time (MLP):", ", ".join(f"{c} {r:.2f}x" for c, r in ratios.items()))
