"""Printing rolled loops (crates/print): the math shows the recurrence once, not one line
per iteration; the exported NumPy and JAX functions run the loop (a `for` loop,
`jax.lax.scan` under `jax.jit`) and give the traced function's values at other inputs;
SymPy refuses a loop by name; the DOT drawing boxes the body."""

from __future__ import annotations

import re

import autodiff
import numpy as np
import pytest
from conftest import HAVE_JAX


def euler(y, k):
    dt = 0.01
    for _ in range(1000):
        y = y + dt * (-k * y + np.sin(y))
    return np.sum(y**2)


def running_sums(x, w):
    s = np.zeros(3)
    out = np.zeros(x.shape[0])
    for i in range(x.shape[0]):
        s = np.tanh(s * w + x[i])
        out[i] = np.sum(s)
    return out


def two_carries(x, v, h):
    for _ in range(200):
        x, v = x + h * v, v - h * x
    return x * v


CASES = {
    "euler": (euler, [np.linspace(0.1, 1.0, 3), 0.5], [np.linspace(-1.0, 0.3, 3), 1.5]),
    "running_sums": (running_sums, [np.ones((50, 3)) * 0.1, 0.5], [np.linspace(-1, 1, 150).reshape(50, 3), 0.9]),
    "two_carries": (two_carries, [np.ones(2), np.zeros(2), 0.01], [np.array([0.3, -1.0]), np.ones(2), 0.02]),
}


def _function(name):
    f, args, other = CASES[name]
    F = autodiff.Function(f, args)
    assert F.trace.rolled_loops == 1, "the loop is rolled"
    return F, f, other


def test_euler_prints_the_recurrence_not_a_thousand_lines():
    F, _, _ = _function("euler")
    text = str(F)
    lines = text.splitlines()
    assert len(lines) < 12, text
    head = [line for line in lines if re.match(r"let y₁ = loop \d+ times, from y = ", line)]
    assert len(head) == 1, text
    body = lines[lines.index(head[0]) + 1]
    assert re.fullmatch(r"  y ← y \+ 0\.01\*\(\S+\*y \+ sin\(y\)\)", body), text
    assert "y₁" in lines[-1], text
    ascii_text = F.trace.to_text(None, None, False, False)
    assert "loop" in ascii_text and "\\text{loop" in F.latex()


def test_stacked_rows_and_simultaneous_carries_print():
    F, _, _ = _function("running_sums")
    text = str(F)
    assert re.search(r"let s₁, ys₁ = loop \d+ times over t = 0…\d+, from s = ", text), text
    assert re.search(r"\n  ys₁\[t\] = ", text) and "\n  s ← " in text, text
    F, _, _ = _function("two_carries")
    text = str(F)
    # x and v update together: one tuple assignment, never two lines read in order
    assert re.search(r"\n  x, v ← x \+ \S+\*v, v - \S+\*x\n", text), text


@pytest.mark.parametrize("name", sorted(CASES))
def test_numpy_source_runs_the_loop(name):
    F, f, other = _function(name)
    src = F.to_source()
    assert re.search(r"\n    for \w+ in range\(", src), src
    assert len(src.splitlines()) < 60, src
    got = F.to_python()(*[np.asarray(a, dtype=float) for a in other])
    np.testing.assert_allclose(got, f(*other), rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not HAVE_JAX, reason="JAX is not installed")
@pytest.mark.parametrize("name", sorted(CASES))
def test_jax_export_scans_under_jit(name):  # pragma: no cover - needs JAX
    import jax

    jax.config.update("jax_enable_x64", True)
    F, f, other = _function(name)
    assert "jax.lax.scan(" in F.to_source(target="jax")
    got = jax.jit(F.to_jax())(*[np.asarray(a, dtype=float) for a in other])
    np.testing.assert_allclose(np.asarray(got), f(*other), rtol=1e-12, atol=1e-12)


def test_sympy_refuses_a_loop_and_dot_boxes_it():
    pytest.importorskip("sympy")
    F, _, _ = _function("euler")
    with pytest.raises(ValueError, match=r"a loop \(\d+ iterations of a body graph\) has no SymPy form"):
        F.to_sympy()
    dot = F.to_dot()
    assert "subgraph cluster_" in dot and "label=\"next\"" in dot
