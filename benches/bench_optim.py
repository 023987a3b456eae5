"""Whole-optimizer runs: Rosenbrock N = 1000 from zeros with L-BFGS-B.

Candidates (interleaved, best of REPEATS runs each; every run starts from scratch after a
warm-up that compiled the gradients):
- ours native: `autodiff.minimize(rosen, [x0])` (Rust L-BFGS-B, compiled gradient);
- ours + SciPy: `autodiff.minimize(..., backend="scipy")`;
- SciPy + JAX: `scipy.optimize.minimize(jac=True)` on `jax.jit(jax.value_and_grad(rosen))`
  (the issue's reference: the target is at most a fifth of its wall time);
- SciPy + NumPy: SciPy's `rosen`/`rosen_der` by hand.

`python benches/bench_optim.py` prints the table; run_all.py includes it.
"""

from __future__ import annotations

import time

import autodiff
import numpy as np
from common import jax

N = 1000
REPEATS = 5


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def candidates():
    import scipy.optimize as so

    x0 = np.zeros(N)
    out = {
        "pyautodiff native L-BFGS-B": lambda: autodiff.minimize(rosen, [x0]),
        "pyautodiff + SciPy L-BFGS-B": lambda: autodiff.minimize(rosen, [x0], backend="scipy"),
    }
    if jax is not None:
        import jax.numpy as jnp

        def jrosen(x):
            return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

        vg = jax.jit(jax.value_and_grad(jrosen))

        def jfun(x):
            v, g = vg(x)
            return float(v), np.asarray(g)

        out["SciPy L-BFGS-B + JAX grad"] = lambda: so.minimize(jfun, x0, jac=True, method="L-BFGS-B")
    out["SciPy L-BFGS-B + NumPy grad (hand)"] = lambda: so.minimize(
        lambda x: (so.rosen(x), so.rosen_der(x)), x0, jac=True, method="L-BFGS-B"
    )
    return out


def run():
    cands = candidates()
    results = {}
    for name, fn in cands.items():  # warm-up: compile everything, record the outcome
        r = fn()
        results[name] = {"nit": int(r.nit), "nfev": int(r.nfev), "fun": float(r.fun), "times": []}
    for _ in range(REPEATS):
        for name, fn in cands.items():
            t0 = time.perf_counter()
            fn()
            results[name]["times"].append(time.perf_counter() - t0)
    return results


def table(results):
    ours = min(results["pyautodiff native L-BFGS-B"]["times"])
    lines = [
        f"Rosenbrock N = {N} from zeros, whole L-BFGS-B run (best of {REPEATS}, interleaved).",
        "",
        "| candidate | wall time (ms) | × ours | iterations | f,g evaluations | final loss |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        t = min(r["times"])
        lines.append(f"| {name} | {t * 1e3:.1f} | {t / ours:.2f} | {r['nit']} | {r['nfev']} | {r['fun']:.3g} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run()))
