import os
import signal
import threading

import numpy as np
import pytest

# The tests' loops are short; by default a `for` loop whose rest would add fewer than 2048
# nodes stays unrolled (AUTODIFF_ROLL_MIN_NODES). The suite rolls every loop it can, so the
# rolling paths are exercised everywhere; tests/test_loops.py checks the default itself.
os.environ.setdefault("AUTODIFF_ROLL_MIN_NODES", "0")

# A shell that starts the suite in the background (`pytest ... &`) ignores SIGINT, and
# Python then installs no KeyboardInterrupt handler: the Ctrl-C tests' signals would be
# dropped. Install Python's own handler, as an interactive run has it.
if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def numeric_grad(f, args, i, eps=1e-6):
    """Central finite differences of scalar f w.r.t. argument i."""
    x = np.array(args[i], dtype=np.float64)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        ap, am = list(args), list(args)
        ap[i], am[i] = xp, xm
        g[idx] = (float(f(*ap)) - float(f(*am))) / (2 * eps)
    return g


def central_grad(f, x, eps=1e-6):
    """Central finite differences of scalar f of one array argument."""
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = eps
        g.flat[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


try:  # JAX is optional: where installed, gradients are compared against it too.
    import jax  # noqa: F401

    HAVE_JAX = True
except Exception:  # pragma: no cover
    HAVE_JAX = False
    # scripts/test.sh installs JAX on every Python version and sets this: there, a missing
    # JAX is an error, not a silently skipped comparison.
    if os.environ.get("AUTODIFF_REQUIRE_JAX"):
        raise RuntimeError("AUTODIFF_REQUIRE_JAX is set but JAX does not import") from None
