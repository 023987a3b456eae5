"""Docs execute: the README's examples (as doctests) and the demo script."""

import doctest
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_readme_examples_run_as_doctests():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has python examples"
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for k, block in enumerate(blocks):
        test = parser.get_doctest(block, {}, f"README block {k}", "README.md", 0)
        runner.run(test)
    assert runner.failures == 0 and runner.tries > 0


def test_demo_runs_and_prints_the_seed_results():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "[array(-1.)]" in out.stdout
    assert "x ↦ 2*(x + 1)" in out.stdout
    assert "[array([2., 4., 6.])]" in out.stdout
