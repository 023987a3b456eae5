"""Vector math: the fused kernel for `sum(tanh(x)*exp(-x**2) + log1p(x**2))` (n = 1e6) and a
few single functions, against NumPy on the same machine. Ratios come from one run.

    .venv/bin/python benches/bench_vmath.py [--threads N]

The thread count of the fused kernels is rayon's (RAYON_NUM_THREADS); NumPy's ufuncs are
single-threaded, so the single-function rows are also worth reading at RAYON_NUM_THREADS=1.
"""

from __future__ import annotations

import time

import autodiff
import numpy as np


def best(f, *args, reps=15):
    f(*args)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f(*args)
        ts.append(time.perf_counter() - t)
    return min(ts)


def main():
    rng = np.random.default_rng(0)
    n = 1_000_000
    x = rng.uniform(-3, 3, n)

    def composite(x):
        return np.sum(np.tanh(x) * np.exp(-(x**2)) + np.log1p(x**2))

    cases = {
        "sum(tanh(x)*exp(-x**2) + log1p(x**2))": composite,
        "exp(x)": lambda x: np.exp(x),
        "log(x**2)": lambda x: np.log(x**2),
        "tanh(x)": lambda x: np.tanh(x),
        "sin(x)": lambda x: np.sin(x),
        "sum(exp(x))": lambda x: np.sum(np.exp(x)),
        "sum(log1p(x*x))": lambda x: np.sum(np.log1p(x * x)),
        "sum(sin(x)*cos(x))": lambda x: np.sum(np.sin(x) * np.cos(x)),
    }
    print(f"n = {n:.0e}, numpy {np.__version__}")
    print(f"{'case':42s} {'numpy ms':>9s} {'fused ms':>9s} {'numpy/fused':>11s}")
    for name, f in cases.items():
        fc = autodiff.Function(f, (x,))
        np.testing.assert_allclose(fc(x), f(x), rtol=1e-12, atol=1e-300)
        t_np = best(f, x)
        t_ad = best(fc, x)
        print(f"{name:42s} {t_np * 1e3:9.2f} {t_ad * 1e3:9.2f} {t_np / t_ad:11.2f}")


if __name__ == "__main__":
    main()
