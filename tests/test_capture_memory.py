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
