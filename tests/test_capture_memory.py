"""The capture engine allocates nothing that outlives a trace: resident memory stays flat
over 10^4 traces of a small function (the table is built once per process)."""

import os
import sys

import numpy as np
import pytest
from autodiff import _compile, _core, _tree


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _small(x):
    return np.sum(a=x * 2.0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_rss_is_flat_over_ten_thousand_traces():
    x = np.array([0.5, -1.5, 2.0])

    def once():
        out, _, _ = _core.trace(_small, [x], {}, [(x, "x")], _compile._markers(), _tree.leaves_of)
        return out

    for _ in range(300):  # warm-up: caches, the process-wide table, allocator arenas
        once()
    before = _rss_bytes()
    for _ in range(10_000):
        once()
    grown = _rss_bytes() - before
    # About 5.7 KB per trace leaked before the table was built once per process (57 MB
    # here); a few MB of allocator noise is allowed.
    assert grown < 8 * 2**20, f"RSS grew by {grown / 2**20:.1f} MB over 10^4 traces"
    assert float(once()) == pytest.approx(float(_small(x)))


def _steps(x, n=60):
    y = x
    for _ in range(n):
        y = y + 0.01 * np.sin(y)
    return (y**2).sum()


def test_a_long_unrolled_trace_over_large_arrays_does_not_hold_every_intermediate(monkeypatch):
    """The tracer held every intermediate array until the trace ended: 60 unrolled steps
    over 2·10^5 elements (three 1.6 MB results each) peaked near 300 MB, and the kernel
    zeroing fresh pages was a third of the trace time. Arrays only the tracer still
    references give their buffers back as the trace goes (their values are in the graph)."""
    import tracemalloc

    from conftest import central_grad

    monkeypatch.setenv("AUTODIFF_ROLL_LOOPS", "0")  # unrolled on purpose
    x = np.random.default_rng(0).standard_normal(200_000)
    tracemalloc.start()
    try:
        xc = x.copy()
        out, _, _ = _core.trace(_steps, [xc], {}, [(xc, "x")], _compile._markers(), _tree.leaves_of)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 150 * 2**20, f"peak {peak / 2**20:.0f} MB while tracing"
    assert float(out) == pytest.approx(float(_steps(x)), rel=1e-12)
    # the released intermediates' values live on in the graph: values and gradients hold
    import autodiff

    small = np.array([0.3, -1.2, 2.0])
    g = autodiff.Gradient(_steps)
    for z in (small, small + 0.7):
        np.testing.assert_allclose(autodiff.Function(_steps)(z), _steps(z), rtol=1e-12)
        np.testing.assert_allclose(g(z)[0], central_grad(_steps, z), rtol=1e-6)
