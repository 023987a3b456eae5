"""Readable math: printed gradients of Python functions (golden snapshots), and exports
(NumPy source, SymPy, LaTeX, DOT) that recompute the same numbers.

Regenerate the snapshot after an intended change with AUTODIFF_UPDATE_GOLDEN=1 and review
the diff: every line must read as math a person would write."""

import os
import pathlib

import autodiff
import numpy as np
import pytest

GOLDEN = pathlib.Path(__file__).parent / "golden" / "print.txt"

v3 = np.linspace(0.1, 0.9, 3)
m23 = np.arange(1.0, 7.0).reshape(2, 3) / 7
CASES = {
    "seed": (lambda x: ((x + 1) ** 2).sum(), [v3]),
    "square_scalar": (lambda x: x**2, [0.5]),
    "cube": (lambda x: x**3, [0.5]),
    "exp": (lambda x: np.exp(x), [0.5]),
    "log": (lambda x: np.log(x), [0.5]),
    "sqrt": (lambda x: np.sqrt(x), [0.5]),
    "sin_cos": (lambda x: np.sin(x) * np.cos(x), [0.5]),
    "tanh": (lambda x: np.tanh(x), [0.5]),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), [0.5]),
    "reciprocal": (lambda x: 1 / x, [0.5]),
    "product_rule": (lambda x, y: x * y, [0.5, 2.0]),
    "quotient": (lambda x, y: x / y, [0.5, 2.0]),
    "polynomial": (lambda x: 3 * x**2 + 2 * x + 1, [0.5]),
    "log1p_sq": (lambda x: np.log(1 + x**2), [0.5]),
    "exp_neg_sq": (lambda x: np.exp(-(x**2)), [0.5]),
    "arctan": (lambda x: np.arctan(x), [0.5]),
    "abs": (lambda x: np.abs(x), [0.5]),
    "maximum_relu": (lambda x: np.maximum(x, 0.0), [0.5]),
    "pow_xy": (lambda x, y: x**y, [0.5, 2.0]),
    "sum_sq": (lambda x: np.sum(x**2), [v3]),
    "dot_self": (lambda x: x @ x, [v3]),
    "mean": (lambda x: np.mean(x), [v3]),
    "sum_exp": (lambda x: np.sum(np.exp(x)), [v3]),
    "logsumexp": (lambda x: np.log(np.sum(np.exp(x))), [v3]),
    "norm": (lambda x: np.sqrt(np.sum(x * x)), [v3]),
    "weighted": (lambda w, x: np.sum(w * x), [v3, v3 + 1]),
    "linear_sq": (lambda W, x: np.sum((W @ x) ** 2), [m23, v3]),
    "tanh_layer": (lambda W, x, b: np.sum(np.tanh(W @ x + b)), [m23, v3, np.ones(2)]),
    "quadratic_form": (lambda x, A: x @ A @ x, [v3, np.eye(3) + 0.1]),
    "softplus": (lambda x: np.sum(np.logaddexp(0.0, x)), [v3]),
    "rosenbrock2": (lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2, [0.5, 2.0]),
    "gaussian": (lambda x, mu: np.exp(-0.5 * np.sum((x - mu) ** 2)), [v3, v3 * 0]),
    "slices": (lambda x: np.sum(x[1:] * x[:-1]), [v3]),
    "cumsum": (lambda x: np.sum(np.cumsum(x) ** 2), [v3]),
    "where": (lambda x: np.sum(np.where(x > 0.5, x, 2 * x)), [v3]),
    "matrix_trace": (lambda A: np.sum(A * A.T), [np.eye(2) + 0.5]),
    "outer": (lambda x, y: np.sum(np.outer(x, y) ** 2), [v3, v3]),
    "mse": (lambda w, X, y: np.mean((X @ w - y) ** 2), [np.ones(2), m23.T, np.ones(3)]),
    "logistic": (lambda w, X, y: np.sum(np.logaddexp(0.0, X @ w) - y * (X @ w)), [np.ones(2), m23.T, np.ones(3)]),
    "helper_calls": (lambda x: _energy(x), [v3]),
    "loop_sum": (lambda x: _loop(x), [v3]),
    "loop_euler": (lambda y, k: _euler(y, k), [v3, 0.5]),
    "loop_rows": (lambda w: _rows(_X, w), [0.5]),
}


def _energy(x):
    k = 2.0
    d = x[1:] - x[:-1]
    return 0.5 * k * np.sum(d * d)


def _loop(x):
    s = 0.0
    for i in range(3):
        s = s + x[i] * (i + 1)
    return s


def _euler(y, k):
    # rolled: the gradient prints one forward loop (stacking y) and one reverse loop
    for _ in range(200):
        y = y + 0.01 * (-k * y + np.sin(y))
    return np.sum(y**2)


_X = np.linspace(0.0, 1.0, 30).reshape(10, 3)


def _rows(x, w):
    s = np.zeros(3)
    for i in range(x.shape[0]):
        s = np.tanh(s * w + x[i])
    return np.sum(s)


def render_all():
    out = []
    for name in sorted(CASES):
        f, args = CASES[name]
        g = autodiff.Gradient(f, args)
        out.append(f"## {name}\n{g}\n")
    return "\n".join(out)


def test_golden_gradients_print_as_math():
    text = render_all()
    if os.environ.get("AUTODIFF_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert GOLDEN.exists(), f"{GOLDEN} is missing: run with AUTODIFF_UPDATE_GOLDEN=1 and review it"
    assert text == GOLDEN.read_text()
    assert len(CASES) >= 40
    for line in text.splitlines():
        assert "Broadcast" not in line and "Reshape" not in line and len(line) < 160, line


def test_seed_prints_2x_plus_2():
    g = autodiff.Gradient(lambda x: ((x + 1) ** 2).sum(), [np.zeros(3)])
    s = str(g).replace(" ", "")
    assert s.endswith("2*(x+1)") or s.endswith("2*x+2")


@pytest.mark.parametrize("name", sorted(CASES))
def test_numpy_source_export_recomputes_the_gradient(name, rng):
    f, args = CASES[name]
    g = autodiff.Gradient(f, args)
    py = g.to_python()
    src = g.to_source()
    assert "autodiff" not in src
    new = [a + 0.05 * rng.random(np.shape(a)) for a in args]
    want = g(*new)
    got = py(*[np.asarray(a, dtype=float) for a in new])
    got = got if isinstance(got, tuple) else (got,)
    for w, o in zip(want, got):
        np.testing.assert_allclose(o, w, rtol=1e-12, atol=1e-12)


def test_exported_source_says_it_is_specialized_to_the_traced_branch():
    # an export runs the traced path only: it must say so (a user called it where the
    # function takes the other branch and got a wrong gradient without a word)
    g = autodiff.Gradient(lambda x: (x**2).sum() if x.sum() > 0 else -x.sum())
    g(np.ones(3))
    src = g.to_source()
    assert src.startswith("# Specialized to the traced path") and "branch on a traced value" in src
    compile(src, "<export>", "exec")  # still valid Python
    # no guard, no note
    assert not autodiff.Gradient(lambda x: (x**2).sum(), [np.ones(3)]).to_source().startswith("#")


def test_function_prints_and_latex_and_dot():
    F = autodiff.Function(lambda x: np.sum(np.tanh(x) ** 2), [v3])
    assert "tanh" in str(F)
    G = autodiff.Gradient(lambda x: np.sum(np.sqrt(x) / 2), [v3])
    assert "\\sqrt" in G.latex() and G._repr_latex_().startswith("$$")
    dot = G.to_dot()
    assert dot.startswith("digraph") and "sqrt" in dot


def test_sympy_export_of_elementwise_gradient():
    sympy = pytest.importorskip("sympy")
    g = autodiff.Gradient(lambda x: x**3 + 2 * x, [0.5])
    expr = g.to_sympy()
    x = sympy.Symbol("x")
    assert sympy.simplify(expr - (3 * x**2 + 2)) == 0


def test_simplification_shrinks_gradient_graphs():
    before = after = 0
    for f, args in CASES.values():
        tr = autodiff.Gradient(f, args).trace
        before += tr.node_count()
        after += tr.simplified().node_count()
    assert after < before


def _corpus():
    import test_corpus as tc

    for p in tc.CORPUS:
        fn, make, wrt, seeds, _ = p.values
        args = tc._args(make, 0)
        yield pytest.param(fn, make, wrt if wrt is not None else tc._default_wrt(args), id=fn.__name__)


@pytest.mark.parametrize("fn,make,wrt", list(_corpus()))
def test_every_corpus_gradient_prints_and_exports(fn, make, wrt):
    import test_corpus as tc

    G = autodiff.Gradient(fn, tc._args(make, 0), wrt=wrt)
    text = str(G)
    assert text and "Broadcast" not in text
    assert G.latex()
    args = tc._args(make, 1)
    want = G(*args)
    leaves = [a for a in args if autodiff._tree.flatten(a)[0]]
    flat = [x for a in leaves for x in autodiff._tree.flatten(a)[0]]
    got = G.to_python()(*[np.asarray(x, dtype=np.asarray(x).dtype) for x in flat])
    got = got if isinstance(got, tuple) else (got,)
    want_flat = (
        [x for w in want for x in autodiff._tree.flatten(w)[0]] if not isinstance(want[0], np.ndarray) else list(want)
    )
    for w, o in zip(want_flat, got):
        np.testing.assert_allclose(o, w, rtol=1e-9, atol=1e-12)
