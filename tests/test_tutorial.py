"""The tutorial (docs/tutorial.py) runs end to end, so it cannot rot."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_tutorial_runs():
    out = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "tutorial.py")], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-4000:]
    text = out.stdout
    assert "[array([2., 4., 6.])]" in text  # the first gradient
    assert "x ↦ 2*(x + 1)" in text  # the math
    assert "def grad_loss(w, X, y):" in text  # the source
    assert "guard failed" in text  # explain()
    assert "forces: [ 1.5 -3.   3.  -1.5]" in text  # the in-place loop
