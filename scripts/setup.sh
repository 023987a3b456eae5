#!/usr/bin/env bash
# Sets everything up from a fresh clone: a virtualenv in .venv with the build and test
# tools, the Rust build of the engine (release), and the package installed into .venv.
# Idempotent; safe to run again. Uses CPython 3.11 (the default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q maturin numpy scipy pytest sympy hypothesis ruff
# JAX is optional: where it installs, gradients are also checked against it.
.venv/bin/python -m pip install -q jax >/dev/null 2>&1 || echo "note: jax did not install; JAX comparisons will be skipped"
command -v cargo >/dev/null || { echo "error: cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
# One abi3 wheel serves CPython 3.11, 3.12 and 3.13.
rm -rf target/wheels
.venv/bin/maturin build --release -q -o target/wheels 2>&1 | grep -v "^\s*$" | tail -3 || true
.venv/bin/python -m pip install -q --force-reinstall --no-deps target/wheels/*.whl
