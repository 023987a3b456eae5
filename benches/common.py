"""Shared benchmark machinery: peers, timing, result checks and the markdown table.

Timing is timeit-style: each candidate is warmed up, its loop count is scaled until one
loop takes at least `MIN_LOOP_S`, then the candidates of one workload are timed
*round-robin* (ours, jax, autograd, ... , ours, jax, ...) so that background load hits
them alike. A candidate's time is the best loop, in µs per call; the median is kept too.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import numpy as np

MIN_LOOP_S = 0.02  # one timed loop lasts at least this long
REPEATS = 7  # timed loops per candidate (fewer for slow ones, see BUDGET_S)
BUDGET_S = 1.0  # rough wall-clock cap per candidate once calibrated


def _load_jax():
    try:
        import jax

        jax.config.update("jax_enable_x64", True)  # compare float64 with float64
        jax.config.update("jax_platforms", "cpu")
        import jax.numpy as jnp

        # The first jit in a process pays one-time setup; keep it out of compile times.
        jax.block_until_ready(jax.jit(lambda x: x + 1)(jnp.zeros(3)))
        return jax
    except Exception as e:
        print(f"[peers] jax unavailable: {e}")
        return None


def _load_autograd():
    try:
        import autograd

        return autograd
    except Exception as e:
        print(f"[peers] autograd unavailable: {e}")
        return None


jax = _load_jax()
autograd = _load_autograd()


def jax_call(fn):
    """A JAX function as a blocking call (JAX dispatches asynchronously)."""
    return lambda *a: jax.block_until_ready(fn(*a))


def to_jax(tree):
    """Inputs placed on the JAX device once, outside the timed loop (JAX's best case)."""
    return jax.tree_util.tree_map(jax.numpy.asarray, tree)


# --------------------------------------------------------------------------- timing


def _loop(fn, args, number):
    t0 = time.perf_counter()
    for _ in range(number):
        fn(*args)
    return time.perf_counter() - t0


def _calibrate(fn, args):
    """Loop count such that one loop takes at least MIN_LOOP_S (after a warm-up call)."""
    fn(*args)
    number = 1
    while True:
        t = _loop(fn, args, number)
        if t >= MIN_LOOP_S:
            return number, t / number
        number *= 10 if t < MIN_LOOP_S / 10 else 2


def time_round_robin(cands: dict) -> dict:
    """`cands`: name -> (fn, args). Returns name -> (best µs, median µs) per call."""
    plan = {name: (fn, args, *_calibrate(fn, args)) for name, (fn, args) in cands.items()}
    slowest = max(per_call * number for _, _, number, per_call in plan.values())
    repeats = max(3, min(REPEATS, int(BUDGET_S / max(slowest, 1e-9))))
    samples: dict = {name: [] for name in plan}
    for _ in range(repeats):
        for name, (fn, args, number, _) in plan.items():
            samples[name].append(_loop(fn, args, number) / number)
    return {n: (min(s) * 1e6, statistics.median(s) * 1e6) for n, s in samples.items()}


def first_call(fn, args) -> float:
    """Seconds taken by the first call of a freshly built `fn` (trace/compile + one run)."""
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- checks


def leaves(x):
    """Flat list of arrays from nested lists/tuples/dicts (and JAX arrays)."""
    if isinstance(x, (list, tuple)):
        return [a for v in x for a in leaves(v)]
    if isinstance(x, dict):
        return [a for k in sorted(x) for a in leaves(x[k])]
    return [np.asarray(x)]


def check(workload: str, name: str, got, want, rtol=1e-7, atol=1e-9) -> bool:
    """Compares a peer's result with ours; prints a loud banner on mismatch."""
    g, w = leaves(got), leaves(want)
    ok = len(g) == len(w) and all(a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=atol) for a, b in zip(g, w))
    if not ok:
        print("!" * 78)
        print(f"!!! MISMATCH in {workload}: {name} disagrees with pyautodiff")
        for k, (a, b) in enumerate(zip(g, w)):
            err = np.max(np.abs(a - b)) if a.shape == b.shape else f"shape {a.shape} vs {b.shape}"
            print(f"!!!   leaf {k}: max |diff| = {err}")
        if len(g) != len(w):
            print(f"!!!   {len(g)} leaves vs {len(w)}")
        print("!" * 78)
    return ok


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    workload: str
    times: dict = field(default_factory=dict)  # candidate -> (best µs, median µs)
    first: dict = field(default_factory=dict)  # candidate -> first-call seconds
    mismatches: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # companions timed in the same rounds


OURS = "pyautodiff"
PEERS = ["jax.jit", "autograd", "numpy (hand)"]


def fmt_us(us: float) -> str:
    if us >= 1e5:
        return f"{us / 1e3:,.0f} ms"
    if us >= 1e3:
        return f"{us / 1e3:,.1f} ms"
    return f"{us:,.1f} µs" if us < 100 else f"{us:,.0f} µs"


def fmt_ratio(peer_us: float, ours_us: float) -> str:
    """`peer/ours`: above 1 means we are faster."""
    r = peer_us / ours_us
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def steady_table(rows: list[Row]) -> str:
    """Steady-state time per call (best of repeats) and each peer's time over ours."""
    head = f"| workload | {OURS} | " + " | ".join(f"{p} | {p}/ours" for p in PEERS) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(PEERS))]
    for r in rows:
        ours = r.times[OURS][0]
        cells = [r.workload, fmt_us(ours)]
        for p in PEERS:
            if p in r.times:
                bad = " ⚠ mismatch" if p in r.mismatches else ""
                cells += [fmt_us(r.times[p][0]) + bad, fmt_ratio(r.times[p][0], ours)]
            else:
                cells += ["—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def first_call_table(rows: list[Row]) -> str:
    """Cold first call (trace/compile + one run) against the steady-state call."""
    lines = [
        f"| workload | {OURS} first call | {OURS} steady | jax.jit first call | jax.jit steady |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if OURS not in r.first:
            continue
        cells = [r.workload]
        for c in (OURS, "jax.jit"):
            if c in r.first:
                cells += [fmt_us(r.first[c] * 1e6), fmt_us(r.times[c][0])]
            else:
                cells += ["—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
