"""Converts docs/tutorial.py (jupytext "percent" cells) into a notebook, executes it with
nbclient in a fresh IPython kernel, and renders each code cell with its displays to a PNG
under docs/tutorial/ (matplotlib draws the code, text, LaTeX and plots), so a reader of the
repository sees what a notebook user sees. Also writes docs/tutorial/tutorial.ipynb.

    .venv/bin/python scripts/render_notebook.py

It installs what it needs into the running interpreter's environment (nbclient, nbformat,
ipykernel, matplotlib). SVG displays (the graph drawing) need Graphviz's `dot`; without
it the drawing cell shows the message and the DOT text, as a notebook does."""

from __future__ import annotations

import base64
import io
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "docs" / "tutorial.py"
OUT = ROOT / "docs" / "tutorial"


def ensure(*packages: str) -> None:
    import importlib.util

    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        names = {"nbclient": "nbclient", "nbformat": "nbformat", "ipykernel": "ipykernel", "matplotlib": "matplotlib"}
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *[names[m] for m in missing]], check=True)


def percent_cells(text: str) -> list[tuple[str, str]]:
    """(kind, source) per `# %%` cell; markdown cells lose their leading `# `."""
    text = re.sub(r"\A# ---\n.*?# ---\n", "", text, flags=re.S)  # the jupytext header
    cells = []
    for chunk in re.split(r"^# %%", text, flags=re.M)[1:]:
        head, _, body = chunk.partition("\n")
        body = body.strip("\n")
        if "[markdown]" in head:
            lines = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in body.splitlines()]
            cells.append(("markdown", "\n".join(lines)))
        elif body:
            cells.append(("code", body))
    return cells


def to_notebook(cells):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, src in cells:
        nb.cells.append(nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src))
    return nb


def _text_block(ax_fig, lines, y, color="black", size=9):
    """Draws monospace lines from height y (in lines) down; returns the next y."""
    for ln in lines:
        ax_fig.text(0.01, y, ln, family="monospace", fontsize=size, color=color, va="top")
        y -= 1
    return y


def render_cell(k: int, cell, plt) -> pathlib.Path | None:
    """One PNG: the code (grey), then each output (text, LaTeX via mathtext, images)."""
    parts: list[tuple[str, object]] = [("code", cell.source.splitlines())]
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(("text", out.text.rstrip("\n").splitlines()))
        elif out.output_type in ("display_data", "execute_result"):
            data = out.data
            if "image/png" in data:
                parts.append(("png", base64.b64decode(data["image/png"])))
            elif "text/latex" in data:
                parts.append(("latex", data["text/latex"]))
            else:
                parts.append(("text", data.get("text/plain", "").splitlines()))
        elif out.output_type == "error":
            parts.append(("text", [f"{out.ename}: {out.evalue}"]))
    if len(parts) == 1:
        return None
    import matplotlib.image as mpimg

    def wrap(lines):
        return [w for ln in lines for w in (textwrap.wrap(ln, 110, drop_whitespace=False) or [""])]

    heights = []
    for kind, v in parts:
        heights.append(len(wrap(v)) if kind in ("code", "text") else (2.5 if kind == "latex" else 14))
    fig = plt.figure(figsize=(9, 0.19 * sum(heights) + 0.3))
    total = sum(heights)
    y = 1.0
    for (kind, v), h in zip(parts, heights):
        ax = fig.add_axes((0, y - h / total, 1, h / total))
        ax.axis("off")
        ax.set_xlim(0, 1)
        ax.set_ylim(-h, 0)
        if kind == "code":
            ax.add_patch(plt.Rectangle((0, -h), 1, h, color="#f2f2f2"))
            _text_block(ax, wrap(v), 0, color="#1a3d7c")
        elif kind == "text":
            _text_block(ax, wrap(v), 0)
        elif kind == "latex":
            tex = str(v).strip().strip("$")
            try:
                ax.text(0.02, -h / 2, f"${tex}$", fontsize=13, va="center")
                fig.canvas.draw()  # mathtext errors show here
            except Exception:
                ax.texts[-1].remove()
                _text_block(ax, wrap([tex]), 0)
        else:
            img = mpimg.imread(io.BytesIO(v), format="png")
            ax.imshow(img, extent=(0.02, 0.02 + 0.5 * img.shape[1] / img.shape[0] * h / 14, -h, 0), aspect="auto")
        y -= h / total
    path = OUT / f"cell{k:02d}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main() -> None:
    ensure("nbclient", "nbformat", "ipykernel", "matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nbformat
    from nbclient import NotebookClient

    OUT.mkdir(parents=True, exist_ok=True)
    nb = to_notebook(percent_cells(SRC.read_text()))
    # matplotlib figures come back as PNG displays
    nb.cells.insert(0, nbformat.v4.new_code_cell("%matplotlib inline"))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    nb.cells.pop(0)
    nbformat.write(nb, OUT / "tutorial.ipynb")
    for old in OUT.glob("cell*.png"):
        old.unlink()
    made = [render_cell(k, c, plt) for k, c in enumerate(c for c in nb.cells if c.cell_type == "code")]
    made = [m for m in made if m is not None]
    print(f"executed {len(nb.cells)} cells; wrote {len(made)} PNGs and tutorial.ipynb to {OUT.relative_to(ROOT)}/")
    if shutil.which("dot") is None:
        print("note: Graphviz's `dot` is not installed: the graph drawing cell shows its DOT text instead of an SVG")


if __name__ == "__main__":
    main()
