"""The elementwise gradient of issue 10 at n = 1e5, 1e6, 1e7, float64 and float32:
d/dx sum(tanh(x)·exp(-x²) + log1p(x²)), pyautodiff against jax.jit(jax.grad) (inputs
already on the device) and a hand-written NumPy gradient, timed round-robin in one process.

Reports the time per call, the memory bandwidth it amounts to (the input read once and the
gradient written once: 2·n·itemsize bytes per call; a lower bound on the traffic) and how
many cores each system kept busy (its process CPU time over the wall time of the timed
loops; JAX and NumPy may start their own threads).

    python benches/bench_elementwise.py
"""

from __future__ import annotations

import sys
import time

import autodiff
import numpy
from common import OURS, check, jax, jax_call, time_round_robin, to_jax

SIZES = (100_000, 1_000_000, 10_000_000)
DTYPES = (numpy.float64, numpy.float32)


def make(np):
    def f(x):
        return np.sum(np.tanh(x) * np.exp(-(x**2)) + np.log1p(x**2))

    return f


def hand(x):
    t = numpy.tanh(x)
    e = numpy.exp(-(x**2))
    return (1 - t * t) * e - 2 * x * t * e + 2 * x / (1 + x * x)


def cores_used(fn, args, seconds=0.3) -> float:
    """Process CPU time / wall time while `fn(*args)` runs back to back."""
    fn(*args)
    n, w0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - w0 < seconds or n < 3:
        fn(*args)
        n += 1
    return (time.process_time() - c0) / (time.perf_counter() - w0)


def run() -> list[dict]:
    rng = numpy.random.default_rng(0)
    rows = []
    for dt in DTYPES:
        for n in SIZES:
            name = f"n=1e{len(str(n)) - 1}, {numpy.dtype(dt).name}"
            print(f"  elementwise {name} ...", file=sys.stderr, flush=True)
            x = rng.standard_normal(n).astype(dt)
            cands = {OURS: (autodiff.grad(make(numpy)), (x,))}
            if jax is not None:
                cands["jax.jit"] = (jax_call(jax.jit(jax.grad(make(jax.numpy)))), to_jax((x,)))
            cands["numpy (hand)"] = (hand, (x,))
            want = cands[OURS][0](x)
            tol = 1e-4 if dt == numpy.float32 else 1e-7
            bad = [c for c, (fn, a) in cands.items() if c != OURS and not check(name, c, fn(*a), want, rtol=tol, atol=tol)]
            times = time_round_robin(cands)
            cores = {c: cores_used(fn, a) for c, (fn, a) in cands.items()}
            nbytes = 2 * n * numpy.dtype(dt).itemsize
            rows.append({"name": name, "times": times, "cores": cores, "bytes": nbytes, "bad": bad})
    return rows


def table(rows: list[dict]) -> str:
    names = list(rows[0]["times"])
    head = "| workload | " + " | ".join(f"{c}: time, GB/s, cores" for c in names)
    head += " | " + " | ".join(f"{c}/ours" for c in names if c != OURS) + " |"
    lines = [head, "|---" * (1 + 2 * len(names) - 1) + "|"]
    for r in rows:
        cells = []
        for c in names:
            us = r["times"][c][0]
            t = f"{us / 1e3:.2f} ms" if us >= 1e3 else f"{us:.0f} µs"
            gbs = r["bytes"] / (us * 1e-6) / 1e9
            mark = " ⚠ mismatch" if c in r["bad"] else ""
            cells.append(f"{t}, {gbs:.1f} GB/s, {r['cores'][c]:.1f}{mark}")
        ours = r["times"][OURS][0]
        ratios = [f"{r['times'][c][0] / ours:.2f}x" for c in names if c != OURS]
        lines.append(f"| {r['name']} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run()))
