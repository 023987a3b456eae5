"""Soak and threads: many calls and many re-traces keep memory flat; threads calling,
re-tracing and evicting at once get the single-threaded results; KeyboardInterrupt at
random points leaves every object usable.

Small sizes run in CI; AUTODIFF_SOAK=1 runs the full ones (10^6 calls, 10^4 re-traces)."""

import _thread
import os
import random
import threading
import time

import autodiff
import numpy as np
import pytest
from autodiff import _compile

FULL = os.environ.get("AUTODIFF_SOAK", "0") not in ("", "0")
CALLS = 1_000_000 if FULL else 20_000
RETRACES = 10_000 if FULL else 200


def rss_mb():
    """Resident set size now (not the peak), in MiB."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - not Linux
        pytest.skip("needs /proc/self/statm")


def loss(w, x):
    return np.sum(np.tanh(x @ w) ** 2) + 0.1 * np.sum(w * w)


def _grow(step, n, warm):
    """RSS growth (MiB) over `n` steps after `warm` warm-up steps, measured in the second half
    against the first (allocator high-water marks settle in the first half)."""
    for i in range(warm):
        step(i)
    mid = None
    for i in range(n):
        step(warm + i)
        if i == n // 2:
            mid = rss_mb()
    return rss_mb() - mid


def test_many_calls_keep_memory_flat():
    rng = np.random.default_rng(0)
    w, x = rng.standard_normal((6, 3)), rng.standard_normal((5, 6))
    g = autodiff.Gradient(loss)
    f = autodiff.Function(loss)
    want = g(w, x)[0]

    def step(i):
        out = g(w, x) if i % 2 else [f(w, x)]
        if i % 1000 == 1:
            np.testing.assert_array_equal(out[0], want)

    assert _grow(step, CALLS, 2000) < 8


def test_many_retraces_keep_memory_flat():
    """A global read by the traced function changes on every call: every call re-traces
    (bounded cache, bounded log)."""
    g = autodiff.Gradient(_uses_scale)
    x = np.linspace(-1, 1, 7)

    def step(i):
        global SCALE
        SCALE = 1.0 + (i % 997) * 1e-3
        np.testing.assert_allclose(g(x)[0], 2 * SCALE * x, rtol=1e-12)

    before = g.trace_count
    grown = _grow(step, RETRACES, 50)
    assert g.trace_count - before == RETRACES + 50
    assert grown < 8


SCALE = 1.0


def _uses_scale(x):
    return np.sum(SCALE * x * x)


def _branchy(x, k):
    y = x * k
    if y.sum() > 0:
        y = np.sin(y)
    else:
        y = np.cos(y) * 2.0
    return np.sum(y * y) + float(k)


def test_threads_calling_retracing_and_evicting_agree_with_one_thread(monkeypatch):
    """8 threads share one Gradient and one Function over more signatures than the cache
    holds (so entries are evicted while other threads use them) and inputs that take both
    branches (guards fail, re-traces); every result equals the single-threaded one."""
    monkeypatch.setattr(_compile, "MAX_SIGNATURES", 3)
    monkeypatch.setattr(_compile, "MAX_FAST_KEYS", 4)
    rng = np.random.default_rng(5)
    cases = []
    for n in range(1, 9):
        for sign in (1.0, -1.0):
            cases.append((sign * np.abs(rng.standard_normal(n)) + 0.01 * sign, 1.0 + n % 3))
    want_g = [autodiff.Gradient(_branchy, wrt=0)(x, k)[0] for x, k in cases]
    want_f = [_branchy(x, k) for x, k in cases]
    g = autodiff.Gradient(_branchy, wrt=0)
    f = autodiff.Function(_branchy)
    errors = []
    rounds = 40 if FULL else 2

    def worker(t):
        r = random.Random(t)
        try:
            for _ in range(rounds * len(cases)):
                i = r.randrange(len(cases))
                x, k = cases[i]
                got = g(x, k)[0]
                np.testing.assert_allclose(got, want_g[i], rtol=1e-12, atol=1e-14)
                np.testing.assert_allclose(f(x, k), want_f[i], rtol=1e-12)
        except BaseException as e:
            errors.append((t, repr(e)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[:3]
    assert g.trace_count > len(cases) // 3  # evictions made it trace again


def _long(x):
    y = x
    for _ in range(300):
        y = np.sin(y) * 0.9 + x * 0.1
    return np.sum(y)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
def test_keyboard_interrupt_at_random_points_leaves_objects_usable():
    """Ctrl-C (SIGINT through Python's handler, as a user's Ctrl-C) at random moments of
    tracing, transforming, compiling and calling; afterwards every object still answers,
    and answers right."""
    x = np.linspace(-1, 1, 5)
    want_f = _long(x)
    want_g = autodiff.Gradient(_long)(x)[0]
    r = random.Random(1)
    interrupted = 0
    objs = []
    for _ in range(8 if not FULL else 100):
        g = autodiff.Gradient(_long)
        f = autodiff.Function(_long)
        objs.append((f, g))
        delay = r.uniform(0.0, 0.1)
        timer = threading.Timer(delay, _thread.interrupt_main)
        timer.start()
        try:
            deadline = time.time() + 0.25
            while time.time() < deadline:
                g(x + 0.0)
                f(x)
            timer.join()
        except KeyboardInterrupt:
            interrupted += 1
        finally:
            timer.cancel()
            timer.join()
        np.testing.assert_allclose(g(x)[0], want_g, rtol=1e-10)
        np.testing.assert_allclose(f(x), want_f, rtol=1e-12)
    assert interrupted >= 4
    for _, g in objs:
        np.testing.assert_allclose(g(x)[0], want_g, rtol=1e-10)
