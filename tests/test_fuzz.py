"""Hypothesis-driven fuzzing of what takes untrusted input: the argument flattener (nested
containers, namedtuples, objects holding arrays, odd statics, cycles) and the bytecode
engine (random compositions of Python statements: try/except/finally, with, break/else,
generators, closures, recursion, match, exceptions raised at chosen points).

Each example is compared with plain Python: the same value, or the same exception type.
AUTODIFF_FUZZ_EXAMPLES=<n> sets the number of examples per test (CI: a few dozen)."""

import math
import os
from collections import namedtuple

import autodiff
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("AUTODIFF_FUZZ_EXAMPLES", "25"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("AUTODIFF_FUZZ_EXAMPLES"),
    suppress_health_check=list(HealthCheck),
)

Pair = namedtuple("Pair", "a b")


class Holder:
    """A parameter holder: an object whose attributes hold arrays and statics."""

    def __init__(self, a, b, c):
        self.a, self.b, self.c = a, b, c


# --- the argument flattener ----------------------------------------------------------------

arrays = st.builds(
    lambda shape, seed: np.random.default_rng(seed).standard_normal(shape),
    st.sampled_from([(), (1,), (3,), (2, 2)]),
    st.integers(0, 2**16),
)
statics = st.one_of(
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.floats(-2, 2, allow_nan=False),
)
trees = st.recursive(
    st.one_of(arrays, statics),
    lambda kids: st.one_of(
        st.lists(kids, max_size=3),
        st.lists(kids, max_size=3).map(tuple),
        st.dictionaries(st.text("abc", min_size=1, max_size=2), kids, max_size=3),
        st.builds(Pair, kids, kids),
        st.builds(Holder, kids, kids, st.integers(-2, 2)),
    ),
    max_leaves=8,
)


def score(t, depth=0):
    """A plain-Python walk of a tree: what the engine has to interpret faithfully."""
    if isinstance(t, np.ndarray):
        return np.sum(np.sin(t)) * (depth + 1)
    if isinstance(t, bool):
        return 1.5 if t else -0.5
    if isinstance(t, float):
        return math.cos(t) * 0.5
    if isinstance(t, int):
        return t * 0.25
    if isinstance(t, str):
        return len(t) * 0.1
    if t is None:
        return 0.125
    if isinstance(t, dict):
        return sum((score(v, depth + 1) * (i + 1) for i, (_, v) in enumerate(sorted(t.items()))), 0.0)
    if isinstance(t, Pair):
        return score(t.a, depth + 1) - 2.0 * score(t.b, depth + 1)
    if isinstance(t, (list, tuple)):
        total = 0.0 if isinstance(t, list) else 0.5
        for i, v in enumerate(t):
            total = total + score(v, depth + 1) * (1 if i % 2 else -1)
        return total
    if isinstance(t, Holder):
        return score(t.a, depth + 1) + 2 * score(t.b, depth + 1) + t.c
    raise TypeError(type(t))


def _mutated(t, r):
    """The same structure with new array values and some statics changed."""
    if isinstance(t, np.ndarray):
        return t + r.standard_normal(t.shape)
    if isinstance(t, bool):
        return (not t) if r.random() < 0.5 else t
    if isinstance(t, float):
        return t + 0.5
    if isinstance(t, int):
        return t + int(r.integers(-1, 2))
    if isinstance(t, Pair):
        return Pair(_mutated(t.a, r), _mutated(t.b, r))
    if isinstance(t, list):
        return [_mutated(v, r) for v in t]
    if isinstance(t, tuple):
        return tuple(_mutated(v, r) for v in t)
    if isinstance(t, dict):
        return {k: _mutated(v, r) for k, v in t.items()}
    if isinstance(t, Holder):
        return Holder(_mutated(t.a, r), _mutated(t.b, r), t.c + int(r.integers(-1, 2)))
    return t


@SETTINGS
@given(trees, st.integers(0, 2**16))
def test_flattener_fuzz_values_match_plain_python(tree, seed):
    F = autodiff.Function(score)
    r = np.random.default_rng(seed)
    for t in (tree, _mutated(tree, r), tree, _mutated(tree, r)):
        want = score(t)
        got = F(t)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(trees, st.integers(0, 2**16))
def test_flattener_fuzz_in_place_changes_of_statics_are_seen(tree, seed):
    """The same argument object, its statics changed in place between calls."""
    F = autodiff.Function(score)
    holder = Holder(tree, [1, 2], 0)
    for c in range(3):
        holder.c = c
        holder.b[0] = c * 2
        np.testing.assert_allclose(F(holder), score(holder), rtol=1e-12, atol=1e-12)


def test_flattener_refuses_cycles_with_a_clear_error():
    """Found by this fuzzer: a cyclic argument was a RecursionError from deep inside."""
    cyc = [np.ones(2)]
    cyc.append(cyc)
    d = {"x": np.ones(2)}
    d["self"] = d
    for arg in (cyc, d):
        with pytest.raises(TypeError, match="reference cycle"):
            autodiff.Function(lambda t: 1.0)(arg)
        with pytest.raises(TypeError, match="reference cycle"):
            autodiff.Gradient(lambda t: np.sum(t[0]))(arg)
    # shared (not cyclic) sub-structures are fine
    shared = [np.ones(2)]
    np.testing.assert_allclose(autodiff.Function(lambda t: np.sum(t[0][0]) + np.sum(t[1][0]))([shared, shared]), 4.0)
    assert autodiff.Gradient(lambda x: np.sum(x * x))(np.ones(2))[0].tolist() == [2.0, 2.0]


def _kind_of(t):
    return np.sum(np.sin(t)) if isinstance(t, np.ndarray) else math.cos(t) * 0.5


@pytest.mark.parametrize("make", [autodiff.Function, autodiff.Gradient])
def test_a_0d_array_and_a_float_are_different_signatures(make):
    """Found by this fuzzer: a trace made for a 0-d array answered a later call with a
    float (or NumPy scalar) of the same value type, although the function branches on
    the type: a silently wrong result (on the Python path and the native call path)."""
    f = make(_kind_of)
    a = np.array(0.3)
    for t in (a, np.float64(1.3), 1.3, a, 2.0, np.float64(0.5), np.array(0.5)):
        got = f(t)
        got = got[0] if isinstance(got, list) else got
        if make is autodiff.Function:
            np.testing.assert_allclose(got, _kind_of(t), rtol=1e-14)
        else:
            want = np.cos(t) if isinstance(t, np.ndarray) else -0.5 * math.sin(t)
            np.testing.assert_allclose(got, want, rtol=1e-12)


# --- the bytecode engine -----------------------------------------------------------------


class _Ctx:
    def __enter__(self):
        return 1.0

    def __exit__(self, *exc):
        return False


def _rec(v, n):
    return v if n <= 0 else _rec(v * 0.9, n - 1) + 0.01


SNIPPETS = [
    "try:\n    acc = acc + x\n    if k > {n}:\n        raise ValueError('boom')\nexcept ValueError:\n    acc = acc * 2\nfinally:\n    acc = acc - 0.5",
    "with _Ctx() as c:\n    acc = acc + c",
    "for i, v in enumerate(x):\n    if i == {n} % 4:\n        break\n    acc = acc + v\nelse:\n    acc = acc * 3",
    "acc = acc + sum(v * v for v in x)",
    "acc = acc + np.array([v for v in x if v > 0] + [0.0]).sum()",
    "def inner(a, b=2.0):\n    return a * b\nacc = inner(acc)",
    "g = lambda a, *r, **kw: a + len(r) + kw.get('z', 0)\nacc = g(acc, 1, 2, z=3)",
    "a, *rest = x\nacc = acc + a - rest[-1]",
    "if (m := x.sum()) > 0:\n    acc = acc + m",
    "acc = acc + _rec(x, {n} * 7)",
    "match k % 3:\n    case 0:\n        acc = acc + 1\n    case 1:\n        acc = acc * x\n    case _:\n        acc = acc - x",
    "d = {{'a': x, 'b': acc}}\nd['a'] = d['a'] * 2\nacc = d['a'] + d['b']",
    "tmp = acc * 1\ndel tmp",
    "acc = acc + (x if k % 2 else -x)",
    "j = k\nwhile j > 0 and acc.sum() < 100:\n    acc = acc + 1\n    j -= 1",
    "s = f'{{k}}:{{len(x)}}'\nacc = acc + len(s)",
    "acc = np.where(x > 0, acc, -acc)",
    "it = (v for v in x)\nacc = acc + next(it)",
    "try:\n    raise KeyError('a')\nexcept (KeyError, IndexError) as e:\n    acc = acc + len(str(e))",
    "assert acc.shape == (3,), 'shape'",
    "class _C:\n    def __init__(self, v):\n        self.v = v\n\n    def m(self):\n        return self.v * 2\n\nacc = _C(acc).m()",
    "acc = acc + x[{n} % 3]",
    "acc[{n} % 3] += x.sum()",
    "if k == {n}:\n    raise RuntimeError('at ' + str(k))",
    "acc = acc / (x * 0.0 + {n} - k) if k != {n} else acc",
    "total = 0\nfor q in range(k):\n    total += q\nacc = acc + total",
    "acc = acc + [1.0, 2.0, 3.0][k % 3]",
    "acc = acc + {{0: 1.0}}[k - {n}]",
    "acc = acc + x.tolist()[{n} % 3]",
    "acc = acc + float(x[0]) * int(k)",
    "vals = sorted(x.tolist())\nacc = acc + vals[-1]",
]


def _engine_fn(snips, ns):
    body = "\n".join("    " + ln for s in snips for ln in s.splitlines())
    src = f"def f(x, k):\n    acc = x * 1.0\n{body}\n    return acc.sum()\n"
    exec(compile(src, "<fuzz-engine>", "exec"), ns)
    return ns["f"], src


def _outcome(fn, *args):
    try:
        with np.errstate(all="ignore"):
            return ("value", float(np.asarray(fn(*args))))
    except autodiff.TraceError as e:
        return ("trace-error", str(e))
    except Exception as e:
        return ("raise", type(e))


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, len(SNIPPETS) - 1), st.integers(0, 4)), min_size=1, max_size=6),
    st.integers(0, 2**16),
)
def test_engine_fuzz_matches_plain_python(picks, seed):
    snips = [SNIPPETS[i].format(n=n) for i, n in picks]
    ns = {"np": np, "_Ctx": _Ctx, "_rec": _rec}
    f, src = _engine_fn(snips, ns)
    F = autodiff.Function(f)
    r = np.random.default_rng(seed)
    for k in (0, 1, 3, 1):
        x = r.standard_normal(3)
        want = _outcome(f, x, k)
        got = _outcome(F, x, k)
        if got[0] == "trace-error":
            # a refusal must be a documented one, never an internal error
            assert "internal" not in got[1], f"{got[1]}\n{src}"
            continue
        assert got[0] == want[0], f"{src}\nk={k}: autodiff {got} vs Python {want}"
        if want[0] == "value":
            np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-12, err_msg=src)
        else:
            assert got[1] is want[1], f"{src}\nk={k}: autodiff raised {got[1]}, Python {want[1]}"


def test_engine_deep_recursion_is_an_error_not_a_crash():
    def deep(x, n):
        return x if n == 0 else deep(x, n - 1) * 1.0

    with pytest.raises((RecursionError, autodiff.TraceError)):
        autodiff.Function(deep)(np.ones(2), 100_000)
    np.testing.assert_allclose(autodiff.Function(deep)(np.ones(2), 50), np.ones(2))
