"""Writes the API reference of the `autodiff` package, generated from its docstrings with
pdoc, to docs/api/ (HTML; open docs/api/index.html). Installs pdoc into the running
interpreter's environment when missing.

    .venv/bin/python scripts/apidocs.py
"""

import importlib.util
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

if importlib.util.find_spec("pdoc") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pdoc"], check=True)

out = ROOT / "docs" / "api"
subprocess.run(
    [sys.executable, "-m", "pdoc", "--docformat", "markdown", "-o", str(out), "autodiff"],
    check=True,
)
print(f"API reference written to {out.relative_to(ROOT)}/ (open index.html)")
