"""Long Python loops (issue 11): the gradient of an explicit Euler loop

    for i in range(N): y = y + dt * (-k * y + np.sin(y))
    return np.sum(y ** 2)          (y of 10 elements)

written as plain Python, as the user writes it. pyautodiff rolls the loop into one loop
node; JAX's `jit(grad)` unrolls the Python loop while tracing (so it is timed at N = 100
only unless BENCH_LOOPS_JAX_1000=1: N = 1,000 compiles for minutes); autograd re-records
its tape on every call (its first call is its steady call). A `jax.lax.scan` rewrite of
the same loop — code the user would have to write for JAX — is shown for scale.

Two tables: first call (trace + differentiate + compile + one run) and steady call per N
beside the peers; and our first call and graph size for N = 10^2 … 10^5 (they should grow
at most linearly; with the loop rolled the graph stays the same size).
"""

from __future__ import annotations

import os
import time

import autodiff
import numpy as np
from common import autograd, first_call, jax, jax_call, time_round_robin, to_jax

DT = 0.01


def make_euler(xp, n):
    def f(y, k):
        for _ in range(n):
            y = y + DT * (-k * y + xp.sin(y))
        return xp.sum(y**2)

    return f


def make_scan(n):
    def f(y, k):
        def body(y, _):
            return y + DT * (-k * y + jax.numpy.sin(y)), None

        y, _ = jax.lax.scan(body, y, None, length=n)
        return jax.numpy.sum(y**2)

    return f


def args():
    return np.linspace(0.1, 1.0, 10), np.float64(0.5)


def rows(ns=(100, 1_000, 10_000)) -> list[tuple[int, str, float, float]]:
    """(N, candidate, first call s, steady call µs)."""
    out = []
    y0, k = args()
    for n in ns:
        cands = {}
        firsts = {}
        ours = autodiff.grad(make_euler(np, n), argnums=(0, 1))
        firsts["pyautodiff"] = first_call(ours, (y0, k))
        cands["pyautodiff"] = (ours, (y0, k))
        if autograd is not None:
            ag = autograd.grad(make_euler(autograd.numpy, n), argnum=0)
            firsts["autograd"] = first_call(ag, (y0, k))
            cands["autograd"] = (ag, (y0, k))
        if jax is not None:
            if n <= 100 or os.environ.get("BENCH_LOOPS_JAX_1000") == "1" and n <= 1000:
                jg = jax_call(jax.jit(jax.grad(make_euler(jax.numpy, n), argnums=(0, 1))))
                firsts["jax.jit (unrolled Python loop)"] = first_call(jg, to_jax((y0, k)))
                cands["jax.jit (unrolled Python loop)"] = (jg, to_jax((y0, k)))
            js = jax_call(jax.jit(jax.grad(make_scan(n), argnums=(0, 1))))
            firsts["jax.jit + lax.scan rewrite"] = first_call(js, to_jax((y0, k)))
            cands["jax.jit + lax.scan rewrite"] = (js, to_jax((y0, k)))
        want = np.asarray(ours(y0, k)[0])
        if autograd is not None:
            got = np.asarray(cands["autograd"][0](y0, k))
            assert np.allclose(got, want, rtol=1e-9), f"autograd disagrees at N={n}"
        steady = time_round_robin(cands)
        for name in cands:
            out.append((n, name, firsts[name], steady[name][0]))
    return out


def scaling(ns=(100, 1_000, 10_000, 100_000)) -> list[tuple[int, float, int]]:
    """(N, our first call s, nodes of the gradient graph)."""
    y0, k = args()
    out = []
    for n in ns:
        g = autodiff.Gradient(make_euler(np, n), [y0, k])
        t0 = time.perf_counter()
        g(y0, k)  # already traced by the constructor: time a fresh one
        g = None
        t0 = time.perf_counter()
        g = autodiff.Gradient(make_euler(np, n), [y0, k])
        first = time.perf_counter() - t0
        nodes = g.trace.node_count() if hasattr(g, "trace") else -1
        out.append((n, first, nodes))
    return out


def table(r, s) -> str:
    lines = [
        "| N | candidate | first call | steady call |",
        "|---:|---|---:|---:|",
    ]
    for n, name, first, us in r:
        lines.append(f"| {n:,} | {name} | {first * 1e3:,.1f} ms | {us:,.1f} µs |")
    lines += ["", "| N | pyautodiff first call | gradient graph nodes |", "|---:|---:|---:|"]
    for n, first, nodes in s:
        lines.append(f"| {n:,} | {first * 1e3:,.1f} ms | {nodes} |")
    return "\n".join(lines)


def run():
    return rows(), scaling()


if __name__ == "__main__":
    print(table(*run()))
