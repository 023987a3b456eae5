"""Differential testing over generated programs (tests/gen): every program's value, gradient,
Hessian-vector product, compiled vs reference and simplified vs unsimplified results, and
second calls are checked (see `gen.check`). Failures found once are kept, shrunk, in
tests/gen/regressions.json and run here.

AUTODIFF_GEN_PROGRAMS=<n> sets how many generated programs this file checks (CI: a few
hundred, split between full checks and value/gradient-only checks); the long campaign is
`python scripts/campaign.py --programs 10000`."""

import json
import os
import pathlib

import autodiff
import gen
import numpy as np
import pytest

N = int(os.environ.get("AUTODIFF_GEN_PROGRAMS", "120"))
CHUNK = 40
REGRESSIONS = pathlib.Path(__file__).parent / "gen" / "regressions.json"


def _report(bad):
    return "\n\n".join(f"seed {s}: {v.check}: {v.message}\n{p.source()}" for s, p, v in bad)


@pytest.mark.parametrize("start", range(0, N, CHUNK))
def test_generated_programs(start):
    """Every fourth program gets every check (JAX, HVP); the others value, gradient,
    compiled/reference, simplified and second-call checks."""
    bad = []
    for seed in range(start, min(start + CHUNK, N)):
        p = gen.generate(seed)
        full = seed % 4 == 0
        # autograd where installed (fast); JAX, jit-compiled, costs a compile per program:
        # test_generated_programs_against_jax samples it
        oracle = "autograd" if full else False
        v = gen.check(p, use_jax=oracle, hvp=full)
        if not v.ok:
            bad.append((seed, gen.shrink(p, v, budget=40, use_jax=oracle, hvp=full), v))
    assert not bad, _report(bad)


def test_generated_programs_against_jax():
    pytest.importorskip("jax")
    checked = 0
    for seed in range(1000, 1100):
        p = gen.generate(seed)
        if p.nojax or p.dtype != "float64":
            continue
        v = gen.check(p, use_jax=True, hvp=False)
        assert v.ok, _report([(seed, p, v)])
        checked += 1
        if checked == 3:
            break
    assert checked == 3


def _regressions():
    if not REGRESSIONS.exists():
        return []
    return json.loads(REGRESSIONS.read_text())


@pytest.mark.parametrize("case", _regressions(), ids=lambda c: f"seed{c['program']['seed']}-{c['check']}")
def test_regression_programs(case):
    p = gen.load_program(case["program"])
    v = gen.check(p)
    assert v.ok, f"{case['note']}\n{v.check}: {v.message}\n{p.source()}"


def test_generated_programs_run_in_plain_numpy_and_cover_the_features():
    seen = set()
    for seed in range(60):
        p = gen.generate(seed)
        f = gen.compile_program(p)
        out = f(*p.inputs(1))
        assert np.ndim(out) == 0 and np.isfinite(out)
        src = p.source()
        for feat in ("@", "einsum", "keepdims=True", "axis=", "np.array([", "] += ", "] = ", "if ", "for ", "while ", "def h"):
            if feat in src:
                seen.add(feat)
        seen.add(p.dtype)
    assert seen >= {"@", "einsum", "keepdims=True", "axis=", "] += ", "if ", "for ", "while ", "def h", "float32", "float64"}, seen


def test_the_checks_catch_a_wrong_gradient(monkeypatch):
    """A planted bug (every gradient 1% too large) is reported by `check`, and the shrinker
    keeps the program failing while making it smaller."""

    class Off(autodiff.Gradient):
        def __call__(self, *args, **kwargs):
            return [
                [1.01 * e for e in g] if isinstance(g, list) else 1.01 * g for g in super().__call__(*args, **kwargs)
            ]

    monkeypatch.setattr(autodiff, "Gradient", Off)
    p = next(q for q in (gen.generate(s, nstmts=6) for s in range(4, 100)) if q.dtype == "float64")
    v = gen.check(p, use_jax=False, hvp=False)
    assert not v.ok and v.check == "grad", v
    small = gen.shrink(p, v, budget=60, use_jax=False, hvp=False)
    assert len(small.stmts) <= len(p.stmts)
    assert not gen.check(small, use_jax=False, hvp=False).ok


def test_the_checks_catch_a_stale_result(monkeypatch):
    """A Function that keeps answering with its first result is reported at the second call."""

    class Stale(autodiff.Function):
        first = None

        def __call__(self, *args, **kwargs):
            if self.first is None:
                self.first = super().__call__(*args, **kwargs)
            return self.first

    monkeypatch.setattr(autodiff, "Function", Stale)
    v = gen.check(gen.generate(3), use_jax=False, hvp=False)
    assert not v.ok and v.check == "stale", v


def test_shrink_removes_what_the_failure_does_not_need(monkeypatch):
    p = gen.generate(12, nstmts=8)
    marker = p.stmts[-1].split(" = ")[0]

    def fake(q, **kw):
        return gen.Verdict(True) if marker + " = " not in "\n".join(q.stmts) else gen.Verdict(False, "grad", "x")

    monkeypatch.setattr(gen, "check", fake)
    small = gen.shrink(p, gen.Verdict(False, "grad", "x"))
    assert len(small.stmts) == 1 + ("p0, p1 = ps" in p.stmts)


# --- findings of the generator, kept as plain regression tests -----------------------------


@pytest.mark.parametrize(
    "cond", ["np.any(s > 1.5)", "(s > 1.5).any()", "np.all(s > 1.5)", "(s > 1.5).sum() > 0", "np.any(s > 1.5) == True"]
)
def test_a_branch_on_a_method_of_a_0d_comparison_is_guarded(cond):
    """Found by the generator (seeds 100175, 100518, 100593, 100640 of the campaign): a
    comparison of a 0-d array is a NumPy bool, which the engine carries in its stack slot;
    a method of it (`.any()`, `.astype`, also reached through `np.any`) lost the node, so
    the branch was not guarded and the first branch's trace answered every later call."""
    ns = {"np": np}
    exec(f"def f(s, p):\n    if {cond}:\n        return np.sum(np.tanh(p))\n    return np.sum(p * 2.0)\n", ns)
    f = ns["f"]
    p = np.array([0.3, 0.4])
    F, G = autodiff.Function(f), autodiff.Gradient(f, wrt=1)
    for s in (np.array(2.0), np.array(0.0), np.array(3.0), np.array(-1.0)):
        np.testing.assert_allclose(F(s, p), f(s, p), rtol=1e-14)
        want = 1 - np.tanh(p) ** 2 if s > 1.5 else np.full(2, 2.0)
        np.testing.assert_allclose(G(s, p)[0], want, rtol=1e-12)


def test_astype_of_a_0d_comparison_stays_traced():
    F = autodiff.Function(lambda s: (s > 1.5).astype(float) * 3.0)
    assert float(F(np.array(2.0))) == 3.0
    assert float(F(np.array(0.0))) == 0.0


def _set_row(w):
    v = w.copy()
    v[0] = w[None, 1]  # a (1, n) value into a row of shape (n,)
    return np.sum(v * w)


def _set_rows(w):
    v = w.copy()
    v[:2] = np.ones((1, 1, w.shape[1])) * w[0]  # a (1, 1, n) value into (2, n)
    return np.sum(v * w)


@pytest.mark.parametrize("f", [_set_row, _set_rows])
def test_assignment_drops_leading_length_1_axes_of_the_value(f):
    """Found by the generator (seeds 101405, 102231): NumPy drops the leading length-1 axes
    of an assigned value with more axes than the target; the engine refused it with an
    'internal' TraceError."""
    rng = np.random.default_rng(3)
    F, G = autodiff.Function(f), autodiff.Gradient(f)
    for _ in range(2):
        w = rng.standard_normal((3, 4))
        np.testing.assert_allclose(F(w), f(w), rtol=1e-13)
        d = rng.standard_normal(w.shape)
        h = 1e-6
        fd = (f(w + h * d) - f(w - h * d)) / (2 * h)
        np.testing.assert_allclose(np.sum(G(w)[0] * d), fd, rtol=1e-6)


@pytest.mark.xfail(strict=True, reason="known: sqrt-like ops at exactly 0 (std, hypot, norm) give a nan gradient")
def test_std_of_identical_values_has_a_zero_gradient():
    """Found by the generator (seeds 1141, 1167, 1175, 105538, 105589, 106439): std over a
    length-1 axis, or of values that are identical by construction (y[[1, 1, 1]]), and
    hypot/norm of exact zeros are constant functions with zero derivative, but the chain
    rule through sqrt at 0 gives 0 * inf = nan (JAX gives nan too). The first call's
    self-check turns it into a TraceError; with AUTODIFF_SELF_CHECK=0, or on later calls,
    the nan is returned."""
    g = autodiff.Gradient(lambda y: np.sum(np.std(y[:, None], axis=1)) + np.sum(y))
    np.testing.assert_array_equal(g(np.array([0.5, -1.0]))[0], [1.0, 1.0])


# --- AUTODIFF_CHECK_EVERY_CALL ---------------------------------------------------------------


def test_check_every_call_mode_checks_every_call(monkeypatch):
    """With AUTODIFF_CHECK_EVERY_CALL=1 each call (the native path's too) is compared with
    the reference evaluator: a planted disagreement on a later call is an error."""
    from autodiff import _compile

    monkeypatch.setenv("AUTODIFF_CHECK_EVERY_CALL", "1")
    calls, planted = [], []
    real = _compile._agree

    def agree(g, w):
        calls.append(1)
        return real(g, w) and not planted

    monkeypatch.setattr(_compile, "_agree", agree)
    f = lambda x: np.sum(np.sin(x) * x)
    g, fn = autodiff.Gradient(f), autodiff.Function(f)
    x = np.linspace(0, 1, 4)
    for _ in range(2):
        np.testing.assert_allclose(g(x)[0], np.cos(x) * x + np.sin(x), rtol=1e-12)
        np.testing.assert_allclose(fn(x), f(x), rtol=1e-12)
    assert len(calls) >= 4  # every call was compared, not only the first of each trace
    planted.append(1)
    with pytest.raises(autodiff.TraceError, match="AUTODIFF_CHECK_EVERY_CALL"):
        g(x)
    with pytest.raises(autodiff.TraceError, match="AUTODIFF_CHECK_EVERY_CALL"):
        fn(x)
    monkeypatch.delenv("AUTODIFF_CHECK_EVERY_CALL")
    assert autodiff.Gradient(f)._spec.lookup.__func__ is _compile.Specializer.lookup
