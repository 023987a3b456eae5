"""Exports every corpus gradient with `to_jax()` (also under `jax.jit`) and `to_numba()`,
compares each with our own result (1e-12 relative to the largest entry) and prints the
counts. Needs JAX and numba (`.venv/bin/python -m pip install jax numba`).

    .venv/bin/python scripts/export_corpus.py [jax] [jax.jit] [numba]   (default: all three)
"""

import pathlib
import sys
import time
import warnings

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from test_corpus import CORPUS  # noqa: E402
from test_export import _case, _close  # noqa: E402

jax.config.update("jax_enable_x64", True)
warnings.simplefilter("ignore")


def attempt(run):
    try:
        run()
        return None
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"


counts = {k: 0 for k in (sys.argv[1:] or ["jax", "jax.jit", "numba"])}
failures: dict[str, list[str]] = {k: [] for k in counts}
t0 = time.time()
for p in CORPUS:
    fn, make, wrt, seeds, _ = p.values
    G, leaves, want = _case(fn, make, wrt, seeds)
    runs = {
        "jax": lambda: _close(G.to_jax()(*leaves), want, "jax"),
        "jax.jit": lambda: _close(jax.jit(G.to_jax())(*leaves), want, "jax.jit"),
        "numba": lambda: _close(G.to_numba()(*[np.asarray(x) for x in leaves]), want, "numba"),
    }
    for k in counts:
        err = attempt(runs[k])
        if err is None:
            counts[k] += 1
        else:
            failures[k].append(f"{fn.__name__}: {err}")
        print(f"{k:8s} {fn.__name__}: {err or 'ok'}", flush=True)
for k in counts:
    print(f"{k}: {counts[k]}/{len(CORPUS)} corpus gradients equal ours")
    for f in failures[k]:
        print("   ", f)
print(f"({time.time() - t0:.0f} s)")
