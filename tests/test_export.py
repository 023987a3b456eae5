"""Exports to other runtimes: `to_jax()` (a jax.numpy function, jit-able) and `to_numba()`
(`numba.njit` of the numba-targeted source) on the gradients of the corpus, against our
own numbers; the error that names a missing optional package.

Both run a sample of the corpus chosen to cover every op family (JAX eagerly and under
`jax.jit`; a numba compile takes about a second) unless AUTODIFF_EXPORT_CORPUS=1 asks for
the whole corpus. `scripts/export_corpus.py` prints the counts for the whole corpus."""

from __future__ import annotations

import os
import sys

import autodiff
import numpy as np
import pytest
from autodiff import _tree
from conftest import HAVE_JAX
from test_corpus import CORPUS, _args, _default_wrt

try:
    import numba  # noqa: F401

    HAVE_NUMBA = True
except Exception:  # pragma: no cover
    HAVE_NUMBA = False

FULL = bool(os.environ.get("AUTODIFF_EXPORT_CORPUS"))

NUMBA_SAMPLE = {
    "rosenbrock",
    "logistic_regression",
    "softmax_regression",
    "attention_scores",
    "gp_nlml_cholesky",
    "erf_probit",
    "sort_and_mask",
}
JAX_SAMPLE = NUMBA_SAMPLE | {
    "logistic_expit_bias",
    "mlp_tanh_relu",
    "negative_binomial_nll",
    "fancy_indexing",
    "inplace_fill_loop",
    "reshape_views_writes",
    "lennard_jones_vectorized",
}
JIT_SAMPLE = {"rosenbrock", "mlp_tanh_relu"}  # jax.jit of the whole corpus: scripts/export_corpus.py


def _case(fn, make, wrt, seeds):
    """The gradient traced at seed 0, the flat inputs at another seed and our result there."""
    args0 = _args(make, 0)
    wrt = wrt if wrt is not None else _default_wrt(args0)
    G = autodiff.Gradient(fn, args0, wrt=wrt)
    args = _args(make, seeds[0])
    want = [np.asarray(w) for w in _tree.flatten(G(*args))[0]]
    leaves = [np.asarray(x) for x in _tree.flatten((tuple(args), {}), "args")[0]]
    return G, leaves, want


def _close(got, want, what):
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want), what
    for k, (g, w) in enumerate(zip(got, want)):
        g = np.asarray(g)
        assert g.shape == w.shape, f"{what}: output {k} shape {g.shape} != {w.shape}"
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12 * scale, err_msg=f"{what}: output {k}")


@pytest.mark.skipif(not HAVE_JAX, reason="JAX is not installed")
@pytest.mark.parametrize("fn,make,wrt,seeds,fd_rtol", CORPUS)
def test_to_jax_matches_ours(fn, make, wrt, seeds, fd_rtol):  # pragma: no cover - needs JAX
    if not FULL and fn.__name__ not in JAX_SAMPLE:
        pytest.skip("a sample of the corpus; AUTODIFF_EXPORT_CORPUS=1 exports the whole corpus")
    import jax

    jax.config.update("jax_enable_x64", True)
    G, leaves, want = _case(fn, make, wrt, seeds)
    f = G.to_jax()
    _close(f(*leaves), want, f"{fn.__name__} to_jax")
    if FULL or fn.__name__ in JIT_SAMPLE:
        _close(jax.jit(f)(*leaves), want, f"{fn.__name__} jax.jit(to_jax)")


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("fn,make,wrt,seeds,fd_rtol", CORPUS)
def test_to_numba_matches_ours(fn, make, wrt, seeds, fd_rtol):  # pragma: no cover - needs numba
    if not FULL and fn.__name__ not in NUMBA_SAMPLE:
        pytest.skip("a sample of the corpus; AUTODIFF_EXPORT_CORPUS=1 compiles the whole corpus")
    G, leaves, want = _case(fn, make, wrt, seeds)
    _close(G.to_numba()(*leaves), want, f"{fn.__name__} to_numba")


def test_to_source_targets_and_bad_target():
    g = autodiff.Gradient(lambda x: np.sum(np.tanh(x) ** 2), [np.zeros(3)])
    assert "import numpy as np" in g.to_source("g")
    assert "jnp." in g.to_source("g", "jax") and "np." not in g.to_source("g", "jax").replace("jnp.", "")
    with pytest.raises(ValueError, match="numba"):
        g.to_source("g", "torch")


def _hide(monkeypatch, module):
    """Makes `import module` fail as if it were not installed."""
    monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize(
    "module,call",
    [
        ("sympy", lambda g: g.to_sympy()),
        ("numba", lambda g: g.to_numba()),
        ("jax", lambda g: g.to_jax()),
        ("matplotlib.pyplot", lambda g: autodiff.display.plot_history({"history": [3.0, 2.0, 1.0]})),
    ],
)
def test_missing_optional_package_is_named(monkeypatch, module, call):
    g = autodiff.Gradient(lambda x: np.sum(np.sin(x)), [np.zeros(2)])
    _hide(monkeypatch, module)
    with pytest.raises(autodiff.MissingDependencyError, match=f"pip install {module.split('.')[0]}") as e:
        call(g)
    assert isinstance(e.value, ImportError)


def test_missing_graphviz_is_named(monkeypatch):
    import shutil

    g = autodiff.Gradient(lambda x: np.sum(np.sin(x)), [np.zeros(2)])
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(autodiff.MissingDependencyError, match="Graphviz"):
        g.to_svg()
    bundle = g.draw()._repr_mimebundle_()
    assert "Graphviz" in bundle["text/plain"] and "digraph" in bundle["text/plain"]
    assert g._repr_svg_() is None
