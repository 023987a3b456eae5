"""First calls and call kinds (issue 10):

- the first call of the MLP 784-256-10 softmax cross-entropy gradient (trace, differentiate,
  simplify, lower, self-check, one run), ours against jax.jit's first call (XLA compilation),
  with where our time goes (target: at most 20 ms of compile time);
- the steady-state latency of the seed gradient at shapes () and (3,) (`bench_overhead.latency`;
  target: at most 1 µs at (3,));
- the steady-state latency of the other call kinds the native call path serves (lists of
  arrays, keyword arguments, Hessian-vector products), against the same call with the native
  path switched off.

Run directly (`python benches/bench_firstcall.py`) or through `run_all.py`. The split of the
first call uses internals (`autodiff._core`, `_compile`); when they change shape the split is
skipped, never failed.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import autodiff
import numpy
from bench_gradients import big_mlp_args, make_mlp_softmax, make_seed
from common import OURS, fmt_us, jax, jax_call, time_round_robin, to_jax

REPEATS = 5
FORWARD = "NumPy forward pass f(x) alone (for scale)"


def _first_and_steady(build, args, steady_calls=3, no_check=False):
    fn = build()
    t0 = time.perf_counter()
    if no_check:
        os.environ["AUTODIFF_SELF_CHECK"] = "0"
        try:
            fn(*args)
        finally:
            del os.environ["AUTODIFF_SELF_CHECK"]
    else:
        fn(*args)
    first = time.perf_counter() - t0
    steady = []
    for _ in range(steady_calls):
        t0 = time.perf_counter()
        fn(*args)
        steady.append(time.perf_counter() - t0)
    return first, min(steady)


def first_call(repeats=REPEATS) -> dict:
    """name -> (first calls [s], steady calls [s]) for the MLP gradient (w.r.t. the
    parameters), each repeat with a freshly made function (cold caches), ours and JAX
    interleaved so that background load hits both alike."""
    args = big_mlp_args()
    ours = (lambda: autodiff.grad(make_mlp_softmax(numpy)), args)
    cands = {OURS: ours, f"{OURS}, AUTODIFF_SELF_CHECK=0 (no self-check)": ours}
    if jax is not None:
        cands["jax.jit"] = (lambda: jax_call(jax.jit(jax.grad(make_mlp_softmax(jax.numpy)))), to_jax(args))
    cands[FORWARD] = (lambda: make_mlp_softmax(numpy), args)
    out: dict = {name: ([], []) for name in cands}
    for _ in range(repeats):
        for name, (build, a) in cands.items():
            first, steady = _first_and_steady(build, a, no_check="SELF_CHECK=0" in name)
            out[name][0].append(first)
            out[name][1].append(steady)
    return out


def split(repeats=REPEATS) -> list[tuple[str, float]]:
    """Where our first call of the MLP gradient goes, step by step as `Specializer` runs
    them (best of `repeats`, ms)."""
    try:
        from autodiff import _compile, _core, _tree, api

        f = make_mlp_softmax(numpy)
        params, X, Y = big_mlp_args()
        leaves = [*params, X, Y]
        samples: dict = {}
        for _ in range(repeats):
            t = {}
            t0 = time.perf_counter()
            fresh = [_compile._fresh(a, False) for a in leaves]
            inputs = list(zip(fresh, [f"x{i}" for i in range(len(fresh))]))
            _, tr, _ = _core.trace(f, [fresh[:4], fresh[4], fresh[5]], {}, inputs, _compile._markers(), _tree.leaves_of)
            t["capture (private copies of the inputs, bytecode + NumPy run)"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            tr.program_stats()
            t["simplify + lower the value program"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            tr.run(leaves)
            t["self-check: the value program at x (vs the traced result)"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            g = tr.grad(list(range(4)))
            t["differentiate (reverse mode)"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            g.simplified()
            t["simplify the gradient graph (alone, for the split)"] = time.perf_counter() - t0
            g = tr.grad(list(range(4)))
            t0 = time.perf_counter()
            g.program_stats()
            t["simplify + lower the gradient program"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            outs, _ = g.run(leaves)
            t["run the gradient program once (the first call's result)"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            vs = api._directions(leaves[:4])
            sum(api._dot(a, b) for a, b in zip(outs, vs))
            for h in (1e-6, -1e-6):
                tr.run([x + h * v for x, v in zip(leaves[:4], vs)] + leaves[4:])
            t["self-check: direction + two finite-difference probes"] = time.perf_counter() - t0
            for k, v in t.items():
                samples.setdefault(k, []).append(v)
        return [(k, min(v) * 1e3) for k, v in samples.items()]
    except (AttributeError, TypeError, ImportError) as e:
        print(f"[firstcall] internals changed, split skipped: {e}", file=sys.stderr)
        return []


def _no_native(*objs):
    """The same callables with the native call path off (the Python path that served
    these calls before they went native)."""
    for o in objs:
        spec = o._spec
        spec.native.clear()
        spec._install = lambda *a, **k: None
        o._direct = False


def call_kinds() -> list[tuple[str, float, float]]:
    """(call kind, µs native, µs with the native path off), timed round-robin."""
    six = [numpy.arange(3.0) + k for k in range(6)]
    x, y = numpy.arange(3.0), numpy.ones(3)

    def six_as_list(p):
        return numpy.sum(p[0] * p[1] + p[2] * p[3] + p[4] * p[5])

    def two(x, y):
        return numpy.sum((x + 1) ** 2 * y)

    def cube(x):
        return numpy.sum(x**3)

    kinds = {
        "seed, x of shape (3,)": (lambda: autodiff.Gradient(make_seed(numpy)), (x,), {}),
        "6 arrays (n=3) in one list argument": (lambda: autodiff.Gradient(six_as_list), (six,), {}),
        "two arrays as keyword arguments": (lambda: autodiff.Gradient(two), (), {"x": x, "y": y}),
        "Hessian-vector product, n=3": (lambda: autodiff.HessianVector(cube), (x,), {"vectors": y}),
    }
    cases = {}
    for name, (build, args, kw) in kinds.items():
        on, off = build(), build()
        _no_native(off)
        for which, o in (("native", on), ("python", off)):
            o(*args, **kw)
            cases[name, which] = ((lambda o=o, args=args, kw=kw: o(*args, **kw)), ())
    times = time_round_robin(cases)
    return [(name, times[name, "native"][0], times[name, "python"][0]) for name in kinds]


def run() -> dict:
    print("  first call of the MLP gradient ...", file=sys.stderr, flush=True)
    first = first_call()
    parts = split()
    print("  seed latency ...", file=sys.stderr, flush=True)
    import bench_overhead

    latency = bench_overhead.latency()
    print("  call kinds ...", file=sys.stderr, flush=True)
    kinds = call_kinds()
    return {"first": first, "split": parts, "latency": latency, "kinds": kinds}


def tables(res: dict) -> str:
    import bench_overhead

    lines = [
        "### First call: MLP 784-256-10 tanh + softmax CE gradient, batch 512 (fresh function each repeat)",
        "",
        "| | first call (best) | first call (median) | steady call | first − steady |",
        "|---|---|---|---|---|",
    ]
    for name, (firsts, steadies) in res["first"].items():
        best, med, steady = min(firsts) * 1e6, statistics.median(firsts) * 1e6, min(steadies) * 1e6
        if name == FORWARD:
            lines.append(f"| {name} | — | — | {fmt_us(min(best, steady))} | — |")
            continue
        lines.append(f"| {name} | {fmt_us(best)} | {fmt_us(med)} | {fmt_us(steady)} | {fmt_us(best - steady)} |")
    if res["split"]:
        lines += ["", "Where our first call goes (each step timed alone, best of repeats):", ""]
        lines += ["| step | ms |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in res["split"]]
    lines += ["", "### Seed gradient latency (steady state)", "", bench_overhead.latency_table(res["latency"])]
    lines += [
        "",
        "### Call kinds on the native call path (steady state)",
        "",
        "| call | native | Python path | Python / native |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {fmt_us(a)} | {fmt_us(b)} | {b / a:.1f}x |" for n, a, b in res["kinds"]]
    return "\n".join(lines)


if __name__ == "__main__":
    print(tables(run()))
