"""Error of the vector math kernels (crates/lower/src/vmath.rs) in ulp of the exact result,
measured against NumPy's 80-bit long double (x87, 64-bit significand: its own error is
~2^-11 ulp of a double), on every path this CPU has.

    .venv/bin/python scripts/vmath_accuracy.py [N]

Prints, per function and path (and for NumPy's own float64 functions on this machine), the maximum of |ours - exact| / ulp(exact) (so <= 0.5 means
correctly rounded) and the fraction of results that are not correctly rounded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np

LD = np.longdouble
assert np.finfo(LD).nmant >= 63, "needs an 80-bit (or wider) long double"

FUNCS = {
    "exp": (np.exp, (-750, 712)),
    "expm1": (np.expm1, (-50, 712)),
    "log": (np.log, (0, 4)),
    "log1p": (np.log1p, (-1, 4)),
    "log2": (np.log2, (0, 4)),
    "log10": (np.log10, (0, 4)),
    "sin": (np.sin, (-1.1e6, 1.1e6)),
    "cos": (np.cos, (-1.1e6, 1.1e6)),
    "tanh": (np.tanh, (-25, 25)),
    "sinh": (np.sinh, (-712, 712)),
    "cosh": (np.cosh, (-712, 712)),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), (-750, 712)),
}


def inputs(lo, hi, n, rng):
    k = n // 6
    e = rng.integers(-1074, 1024, k).astype(float)
    parts = [
        rng.integers(0, 2**64, k, dtype=np.uint64).view(np.float64),  # any bit pattern
        rng.choice([-1.0, 1.0], k) * (1 + rng.random(k)) * np.exp2(e),  # any exponent
        rng.choice([-1.0, 1.0], k) * (1 + rng.random(k)) * np.exp2(rng.integers(-60, 5, k)),
        rng.uniform(lo, hi, 2 * k),
        rng.uniform(-3, 3, k),
    ]
    x = np.concatenate(parts)
    return x[np.isfinite(x)]


def ulp_error(ours, exact):
    """|ours - exact| / ulp(exact) (ulp of the double nearest exact); inf on a NaN mismatch."""
    with np.errstate(over="ignore"):
        r = exact.astype(np.float64)
    err = np.zeros(len(ours))
    both_nan = np.isnan(ours) & np.isnan(r)
    nan_mis = np.isnan(ours) != np.isnan(r)
    inf = np.isinf(r) | np.isinf(ours)
    inf_mis = inf & (ours != r) & ~np.isnan(ours) & ~np.isnan(r)
    ok = ~(both_nan | nan_mis | inf)
    with np.errstate(all="ignore"):
        u = np.spacing(np.abs(r[ok]))  # ulp above |r|; below a power of two use the smaller
        pow2 = np.frexp(r[ok])[0] == 0.5
        u = np.where(pow2 & (np.abs(exact[ok]) < np.abs(r[ok]).astype(LD)), u / 2, u)
        u = np.where(u == 0, 5e-324, u)
        err[ok] = np.abs(ours[ok].astype(LD) - exact[ok]) / u.astype(LD)
    err[nan_mis | inf_mis] = np.inf
    return err


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rng = np.random.default_rng(1)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as d:
        xs = {}
        for name, (_, (lo, hi)) in FUNCS.items():
            xs[name] = inputs(lo, hi, n, rng)
            xs[name].tofile(os.path.join(d, f"{name}.in"))
        x = rng.uniform(-40, 40, n)
        y = x + rng.normal(0, 3, n)
        np.concatenate([x, y]).tofile(os.path.join(d, "logaddexp.in"))
        subprocess.run(
            ["cargo", "run", "-q", "--release", "-p", "autodiff-lower", "--example", "vmath_dump", "--", d],
            check=True,
            cwd=root,
        )
        paths = sorted({f.split(".")[1] for f in os.listdir(d) if f.endswith(".out")})
        cols = paths + ["numpy float64"]
        print(f"{'function':10s}" + "".join(f" {p:>22s}" for p in cols))
        print(f"{'':10s}" + "".join(f" {'max ulp  not-CR':>22s}" for _ in cols))
        for name, (f, _) in FUNCS.items():
            with np.errstate(all="ignore"):
                exact = f(xs[name].astype(LD))
            row = f"{name:10s}"
            for p in paths:
                ours = np.fromfile(os.path.join(d, f"{name}.{p}.out"))
                err = ulp_error(ours, exact)
                row += f" {err.max():9.3f} {np.mean(err > 0.5) * 100:10.4f}%  "
            with np.errstate(all="ignore"):
                err = ulp_error(f(xs[name]).astype(np.float64), exact)
            row += f" {err.max():9.3f} {np.mean(err > 0.5) * 100:10.4f}%  "
            print(row)
        with np.errstate(all="ignore"):
            exact = np.logaddexp(x.astype(LD), y.astype(LD))
        row = f"{'logaddexp':10s}"
        for p in paths:
            ours = np.fromfile(os.path.join(d, f"logaddexp.{p}.out"))
            err = ulp_error(ours, exact)
            row += f" {err.max():9.3f} {np.mean(err > 0.5) * 100:10.4f}%  "
        err = ulp_error(np.logaddexp(x, y), exact)
        row += f" {err.max():9.3f} {np.mean(err > 0.5) * 100:10.4f}%  "
        print(row)


if __name__ == "__main__":
    main()
