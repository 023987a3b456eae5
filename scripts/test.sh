#!/usr/bin/env bash
# Sets everything up, then runs every test: Rust (cargo test, clippy, fmt), Python (ruff,
# pytest) on CPython 3.11 and on 3.12 / 3.13 where they are installed (pyenv).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== cargo fmt --check"; cargo fmt --all -- --check
echo "== cargo clippy"; cargo clippy -q --workspace --all-targets -- -D warnings
echo "== cargo test"; cargo test -q --workspace
echo "== ruff"; .venv/bin/ruff check python tests benches examples
echo "== mypy --strict (the typed public API, on a usage example)"
.venv/bin/python -m pip install -q mypy
.venv/bin/python -m mypy --strict examples/typed_usage.py
# JAX comparisons run on every Python version: a missing JAX fails the run.
export AUTODIFF_REQUIRE_JAX=1
.venv/bin/python -m pip install -q jax
echo "== pytest on $(.venv/bin/python --version)"
.venv/bin/python -m pytest -q tests
for v in 3.12 3.13; do
  py=$(ls -d "$HOME"/.pyenv/versions/$v.*/bin/python3 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$py" ]; then echo "== CPython $v not installed: skipped"; continue; fi
  venv=.venv-$v
  [ -x $venv/bin/python ] || "$py" -m venv $venv
  $venv/bin/python -m pip install -q numpy scipy pytest sympy hypothesis jax
  $venv/bin/python -m pip install -q --force-reinstall --no-deps target/wheels/*.whl
  echo "== pytest on $($venv/bin/python --version)"
  $venv/bin/python -m pytest -q tests
done
