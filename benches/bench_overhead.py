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
    print(table(run()))
    print(profile_small_call())
