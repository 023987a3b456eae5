"""The command line: `python -m autodiff grad ...` and `python -m autodiff demo`."""

import subprocess
import sys

import numpy as np


def cli(*args, ok=True):
    out = subprocess.run([sys.executable, "-m", "autodiff", *args], capture_output=True, text=True, timeout=300)
    assert (out.returncode == 0) == ok, out.stdout + out.stderr
    return out


def test_grad_prints_the_math():
    out = cli("grad", "((x + 1) ** 2).sum()", "--at", "x=np.zeros(3)")
    assert out.stdout.strip() == "x ↦ 2*(x + 1)"


def test_grad_latex_numpy_and_value():
    assert "2 \\left(x + 1\\right)" in cli("grad", "((x + 1) ** 2).sum()", "--at", "x=np.zeros(3)", "--latex").stdout
    src = cli("grad", "np.sum(np.sin(x) * y)", "--at", "x=np.zeros(2), y=np.ones(2)", "--wrt", "x", "--numpy").stdout
    ns: dict = {}
    exec(src, ns)
    x, y = np.array([0.3, -1.2]), np.array([2.0, 0.5])
    np.testing.assert_allclose(ns["grad_f"](x, y), np.cos(x) * y, rtol=1e-14)
    out = cli("grad", "x * y", "--at", "x=2.0", "--at", "y=3.0", "--value").stdout
    assert "value: 6.0" in out and "d/dx: 3.0" in out and "d/dy: 2.0" in out


def test_grad_errors_are_messages_not_tracebacks():
    out = cli("grad", "x", "--at", "x=np.zeros(3)", ok=False)
    assert "NotScalarError" in out.stderr and "Traceback" not in out.stderr
    out = cli("grad", "x +", "--at", "x=np.zeros(3)", ok=False)
    assert "not a Python expression" in out.stderr
    out = cli("grad", "x.sum()", "--at", "x=np.zeros(", ok=False)
    assert "cannot read --at" in out.stderr


def test_demo_prints_the_seed_results():
    out = cli("demo").stdout
    assert "[array(-1.)]" in out
    assert "x ↦ 2*(x + 1)" in out
    assert "[array([2., 4., 6.])]" in out
