"""Notebook displays: a drawing of a graph, an HTML summary of an optimization result and a
plot of its history.

`Function`, `Gradient` and the other traced objects show themselves as LaTeX in Jupyter
(`_repr_latex_`); `g.draw()` returns a `Drawing` of the graph (SVG when Graphviz's `dot`
is installed, else the DOT text and a message saying what to install).

`summary(result)` and `plot_history(result)` take the result of an optimizer: any object
with some of the attributes (or keys) `x`, `fun`, `nit`, `nfev`, `success`, `message`,
`history` — `history` being a sequence of objective values, or of records that hold one
as `fun`/`f`/`value` (SciPy's `OptimizeResult` and ours both fit)."""

from __future__ import annotations

import html
import shutil
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._optional import require

__all__ = ["Drawing", "Summary", "summary", "plot_history", "history_values"]


class Drawing:
    """A graph drawing for notebooks: SVG through Graphviz's `dot` when it is installed."""

    def __init__(self, dot: str) -> None:
        self.dot = dot

    def svg(self) -> str:
        """The SVG text (needs Graphviz's `dot`: a `MissingDependencyError` says so)."""
        from ._export import dot_to_svg

        return dot_to_svg(self.dot, "Drawing.svg()")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        if shutil.which("dot") is not None:
            return {"image/svg+xml": self.svg(), "text/plain": repr(self)}
        msg = "Graphviz's `dot` is not installed, so the graph cannot be drawn (install Graphviz)."
        return {
            "text/html": f"<p><i>{html.escape(msg)}</i></p><pre>{html.escape(self.dot)}</pre>",
            "text/plain": msg + "\n" + self.dot,
        }

    def __repr__(self) -> str:
        return f"<autodiff.display.Drawing of {self.dot.count('->')} edges>"


def _get(result: Any, name: str) -> Any:
    if isinstance(result, dict) and name in result:
        return result[name]
    return getattr(result, name, None)


def history_values(result: Any) -> list[float]:
    """The objective values recorded in `result.history` (empty when there is none)."""
    hist = _get(result, "history")
    if hist is None:
        return []
    out = []
    for h in hist:
        v = h
        for key in ("fun", "f", "value"):
            got = _get(h, key) if not isinstance(h, (int, float, np.generic)) else None
            if got is not None:
                v = got
                break
        out.append(float(np.asarray(v)))
    return out


class Summary:
    """An optimization result as an HTML table (and as text)."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def _rows(self) -> list[tuple[str, str]]:
        rows = []
        for key in ("success", "message", "fun", "nit", "nfev", "njev"):
            v = _get(self.result, key)
            if v is not None:
                rows.append((key, str(v if not isinstance(v, bytes) else v.decode())))
        x = _get(self.result, "x")
        if x is not None:
            xs = x if isinstance(x, (list, tuple)) else [x]
            for k, a in enumerate(xs):
                a = np.asarray(a)
                label = "x" if len(xs) == 1 else f"x[{k}]"
                text = np.array2string(a, precision=6, threshold=8)
                rows.append((label, f"{text}  (shape {a.shape})" if a.ndim else text))
        hist = history_values(self.result)
        if hist:
            rows.append(("history", f"{len(hist)} values, {hist[0]:.6g} → {hist[-1]:.6g}"))
        return rows

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>"
            for k, v in self._rows()
        )
        return f"<table><caption>Optimization result</caption>{body}</table>"

    def __str__(self) -> str:
        width = max((len(k) for k, _ in self._rows()), default=0)
        return "\n".join(f"{k:>{width}}: {v}" for k, v in self._rows())

    __repr__ = __str__


def summary(result: Any) -> Summary:
    """An HTML (notebook) and text summary of an optimization result."""
    return Summary(result)


def plot_history(result: Any, ax: Any = None, log: bool | None = None) -> Any:
    """Plots the objective values in `result.history` against the iteration (needs
    matplotlib); `log` uses a log scale (default: when all values are positive and span
    more than two decades). Returns the matplotlib Axes."""
    values: Sequence[float] = history_values(result) if not isinstance(result, (list, tuple)) else list(result)
    if not values:
        raise ValueError("plot_history: the result has no `history` of objective values to plot")
    if ax is None:
        plt = require("matplotlib.pyplot", "plot_history()")
        _, ax = plt.subplots(figsize=(5, 3))
    ax.plot(range(len(values)), values, marker="o", markersize=3)
    v = np.asarray(values)
    if log is None:
        log = bool(np.all(v > 0) and v.max() / v.min() > 100)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("objective")
    ax.set_title("optimization history")
    return ax
