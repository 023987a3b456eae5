"""Runs every benchmark, prints the markdown tables and writes benches/RESULTS.md:

`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benches/run_all.py`

On a small machine shared with other work, add `OPENBLAS_NUM_THREADS=1`: when the cores are
busy, OpenBLAS's spinning worker threads make the NumPy-based peers (autograd, hand-written)
swing by up to 20x from run to run. RESULTS.md records the settings used.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import autodiff._core
import bench_elementwise
import bench_firstcall
import bench_gradients
import bench_loops
import bench_optim
import bench_overhead
import numpy
from common import autograd, first_call_table, jax, steady_table

HERE = Path(__file__).resolve().parent
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "XLA_FLAGS")


def command() -> str:
    """The command line that reproduces this run, with the thread settings it used."""
    pinned = " ".join(f"{k}={os.environ[k]}" for k in THREAD_VARS if k in os.environ)
    return f"env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE {pinned + ' ' if pinned else ''}python benches/run_all.py"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def git_revision() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, check=False).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    return rev + (" (with uncommitted changes)" if git("status", "--porcelain", "--", "crates", "python") else "")


def engine_built() -> str:
    import autodiff._core as core

    mtime = datetime.datetime.fromtimestamp(Path(core.__file__).stat().st_mtime)
    return mtime.strftime("%Y-%m-%d %H:%M")


def machine_info(load_before: str, revision: str) -> str:
    blas_env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", *THREAD_VARS) if k in os.environ}
    versions = [f"Python {platform.python_version()}", f"NumPy {numpy.__version__}"]
    if jax is not None:
        import jaxlib

        versions.append(f"JAX {jax.__version__} (jaxlib {jaxlib.__version__}, CPU, x64 enabled)")
    if autograd is not None:
        from importlib.metadata import version

        versions.append(f"autograd {version('autograd')}")
    return "\n".join(
        [
            f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
            f"- CPU: {cpu_model()}, {os.cpu_count()} cores; {platform.system()} {platform.release()}",
            f"- {', '.join(versions)}",
            f"- pyautodiff: {revision}",
            f"- BLAS/thread env: {blas_env or 'none set'}",
            f"- load average (1, 5, 15 min) before: {load_before}, after: {loadavg()}",
        ]
    )


NOTES = """\
How to read it: times are per call, best of several timed loops (timeit-style, loops
auto-scaled; the candidates of one workload are timed round-robin so background load hits
them alike). `peer/ours` is the peer's time over ours: **above 1 means pyautodiff is
faster**. Every peer's result is checked against ours (`np.allclose`) before timing;
"⚠ mismatch" marks a disagreement. JAX inputs are placed on the device before timing and
each call waits for its result (`block_until_ready`). "numpy (hand)" is a hand-written
NumPy gradient (SciPy's `rosen_der` for Rosenbrock). First calls include tracing,
differentiation, our self-check (on by default) and JAX's XLA compilation."""


def main() -> None:
    t0 = time.perf_counter()
    load_before = loadavg()
    revision = f"git {git_revision()}; engine built {engine_built()}"  # before: others may rebuild
    print("gradients:", file=sys.stderr)
    rows, hvp_rows, ratios = bench_gradients.run()
    print("elementwise:", file=sys.stderr)
    elementwise = bench_elementwise.run()
    print("overhead breakdown:", file=sys.stderr)
    overhead = bench_overhead.run()
    print("optimizers:", file=sys.stderr)
    optim = bench_optim.run()
    print("first call and call kinds:", file=sys.stderr)
    firstcall = bench_firstcall.run()
    print("long loops:", file=sys.stderr)
    loops = bench_loops.run()
    hvp = ", ".join(f"{c} {r:.2f}x" for c, r in ratios.items())
    md = "\n\n".join(
        [
            "# Benchmark results",
            f"Produced by `{command()}` ({time.perf_counter() - t0:.0f} s).",
            machine_info(load_before, revision),
            "## Steady state: one gradient call\n\n" + steady_table(rows + hvp_rows),
            "## Elementwise gradient: size and dtype\n\n"
            + bench_elementwise.__doc__.split("\n\n")[1].replace("\n", " ")
            + f" pyautodiff's engine threads: {autodiff._core.num_threads()}.\n\n"
            + bench_elementwise.table(elementwise),
            f"## Hessian-vector product vs gradient (MLP)\n\nHVP time / gradient time: {hvp} (target: at most 4x).",
            "## First call (trace/compile) vs steady state\n\n" + first_call_table(rows + hvp_rows),
            "## Where a small call's time goes (pyautodiff)\n\n" + bench_overhead.table(overhead),
            "## Whole optimizer runs (L-BFGS-B)\n\n" + bench_optim.table(optim),
            "## First call and call path\n\n" + bench_firstcall.tables(firstcall),
            "## Long Python loops (Euler steps, gradient)\n\n"
            + bench_loops.__doc__.split("\n\n")[1].replace("\n", " ")
            + "\n\n"
            + bench_loops.table(*loops),
            NOTES,
        ]
    )
    print(md)
    (HERE / "RESULTS.md").write_text(md + "\n")
    print(f"\nwrote {HERE / 'RESULTS.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
