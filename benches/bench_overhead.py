"""Where the time of a small pyautodiff call goes: the full call against the layers under
it, down to the compiled trace's own `run` (the Rust evaluator plus array conversion).

The layers below the public API are internals (`Gradient._spec`, `Trace.run`); when they
change shape the affected lines are skipped, never failed.
"""

from __future__ import annotations

import cProfile
import io
import math
import pstats

import autodiff
import numpy
from bench_gradients import make_seed
from common import fmt_us, leaves, time_round_robin


def layers(name, fn, args, argnums=0):
    """name -> (callable, args), outermost first, for `autodiff.grad(fn, argnums)(*args)`."""
    g = autodiff.grad(fn, argnums)
    g(*args)  # trace once
    grad_obj = g.gradient
    out = {f"{name}: autodiff.grad(f)(...)": (g, args), f"{name}: Gradient(f)(...)": (grad_obj, args)}
    try:
        out[f"{name}: Specializer.lookup"] = (grad_obj._spec.lookup, (args, {}))
        out[f"{name}: Trace.run (engine floor)"] = (grad_obj.trace.run, (leaves(args),))
    except AttributeError as e:
        print(f"[overhead] internals changed, layer skipped: {e}")
    return out


def six_as_list(p):
    return numpy.sum(p[0] * p[1] + p[2] * p[3] + p[4] * p[5])


def six_as_args(a, b, c, d, e, f):
    return numpy.sum(a * b + c * d + e * f)


def run() -> list[tuple[str, float, float]]:
    """Rows (layer, µs per call, share of the full call of its group)."""
    x = numpy.arange(3.0)
    six = [numpy.arange(3.0) + k for k in range(6)]
    seed = make_seed(numpy)
    cases = {
        "numpy: f(x) forward only, n=3": (seed, (x,)),
        "numpy: hand gradient 2*(x+1), n=3": (lambda x: 2 * (x + 1), (x,)),
        **layers("seed n=3", seed, (x,)),
        **layers("6 arrays (n=3) in one list argument", six_as_list, (six,)),
        **layers("the same 6 arrays as 6 arguments", six_as_args, tuple(six), tuple(range(6))),
    }
    times = time_round_robin(cases)
    rows, full = [], None
    for name, (best, _) in times.items():
        if name.endswith("autodiff.grad(f)(...)"):
            full = best
        share = best / full if full and not name.startswith("numpy") else float("nan")
        rows.append((name, best, share))
    return rows


def latency(native=True) -> list[tuple[str, dict]]:
    """Steady-state latency of the seed gradient at shapes () (a numpy.float64, what
    `np.zeros(()) + 0.5` gives) and (3,): ours against hand-written NumPy and jax.jit, timed
    round-robin in one run. `native=False` disables the native call path (`CallTable`),
    leaving the Python path that served every call before it existed."""
    from common import jax, jax_call, to_jax

    rows: dict = {}
    for shape in ((), (3,)):
        x = numpy.zeros(shape) + 0.5
        seed = make_seed(numpy)
        G = autodiff.Gradient(seed)
        g = autodiff.grad(seed)
        if not native:
            for spec in (G._spec, g.gradient._spec):
                spec.native.clear()
                spec._install = lambda args, key: None
        G(x), g(x)
        cases = {
            "hand NumPy 2*(x+1)": (lambda x: 2 * (x + 1), (x,)),
            "autodiff.Gradient(f)(x)": (G, (x,)),
            "autodiff.grad(f)(x)": (g, (x,)),
        }
        if jax is not None:
            jg = jax.jit(jax.grad(make_seed(jax.numpy)))
            cases["jax.jit(jax.grad(f))(x), x on device"] = (jax_call(jg), (to_jax(x),))
            cases["jax.jit(jax.grad(f))(x), x a NumPy array"] = (jax_call(jg), (x,))
        for name, (best, _) in time_round_robin(cases).items():
            rows.setdefault(name, {})[shape] = best
    return list(rows.items())


def latency_table(rows) -> str:
    base = dict(rows)["hand NumPy 2*(x+1)"]
    lines = [
        "| seed gradient, steady state | shape () | vs NumPy | shape (3,) | vs NumPy |",
        "|---|---|---|---|---|",
    ]
    for name, t in rows:
        cells = [f"{fmt_us(t[s])} | {t[s] / base[s]:.2f}x" for s in ((), (3,))]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def table(rows) -> str:
    lines = ["| layer | time per call | share of the full call |", "|---|---|---|"]
    for name, us, share in rows:
        lines.append(f"| {name} | {fmt_us(us)} | {'' if math.isnan(share) else f'{share:.0%}'} |")
    return "\n".join(lines)


def profile_small_call(n=20000, top=12) -> str:
    """cProfile of `grad(seed)(x)` on 3 elements, by own time."""
    g = autodiff.grad(make_seed(numpy))
    x = numpy.arange(3.0)
    g(x)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        g(x)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


if __name__ == "__main__":
    import sys

    print(latency_table(latency(native="--python-path" not in sys.argv)))
    print()
    print(table(run()))
    print(profile_small_call())
