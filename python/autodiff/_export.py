"""Exports of a traced computation to other runtimes: a plain NumPy function, a function
numba compiles, a `jax.numpy` function, an SVG drawing. All are generated from the same
printer (`crates/print/src/numpy.rs`, one `Target` each) over the simplified graph.

The exported functions take the graph's inputs in order (`traced.trace.input_names`: the
array leaves of the arguments, then any vectors a transform added) and return its outputs
(a tuple when there are several)."""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Callable
from typing import Any

from ._optional import require, require_dot


def _compile(source: str, name: str) -> Callable[..., Any]:
    ns: dict[str, Any] = {}
    exec(compile(source, f"<autodiff:{name}>", "exec"), ns)
    fn: Callable[..., Any] = ns[name]
    return fn


def to_python(trace: Any, name: str) -> Callable[..., Any]:
    return _compile(trace.to_source(name), name)


def to_numba(trace: Any, name: str) -> Callable[..., Any]:
    numba = require("numba", "to_numba()")
    fn = _compile(trace.to_source(name, "numba"), name)
    jitted: Callable[..., Any] = numba.njit(fn)
    return jitted


def to_jax(trace: Any, name: str) -> Callable[..., Any]:
    jax = require("jax", "to_jax()")
    if not jax.config.jax_enable_x64 and "float64" in trace.input_dtypes():
        warnings.warn(
            "to_jax(): JAX computes in float32 unless x64 is enabled; call "
            'jax.config.update("jax_enable_x64", True) first for float64 results',
            stacklevel=3,
        )
    return _compile(trace.to_source(name, "jax"), name)


def dot_to_svg(dot: str, feature: str = "the SVG drawing") -> str:
    exe = require_dot(feature)
    out = subprocess.run([exe, "-Tsvg"], input=dot, capture_output=True, text=True, check=True)
    return out.stdout
