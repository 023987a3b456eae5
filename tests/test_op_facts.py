"""Each elementwise op computes what NumPy computes, in the reference evaluator and in the
compiled fast path, at special inputs (±0, ±inf, NaN, subnormals, ±740, ±800, huge and
tiny values, halves): one table, one row per op.

Bit for bit wherever the op is exact (arithmetic, comparisons, sign, floor, min/max, ...)
and wherever the result is special (NaN, ±inf, ±0 with its sign, ±1); transcendental
functions within a few ulp (libm, NumPy's own SIMD kernels and our `vmath` may each round
the last bit differently). The constant folder computes with the same scalar definition
as the evaluator; `crates/simplify/tests/op_facts.rs` checks folder = evaluator = fast
path bit for bit on this input table.
"""

import autodiff
import numpy as np
import pytest
import scipy.special as sp

SPECIAL = np.array(
    [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        5e-324,
        -5e-324,
        1e-310,
        -1e-310,
        2.2250738585072014e-308,
        1e-300,
        -1e-300,
        1e300,
        -1e300,
        np.finfo(float).max,
        800.0,
        -800.0,
        740.0,
        -740.0,
        709.0,
        -709.0,
        0.5,
        -0.5,
        1.0,
        -1.0,
        2.0,
        -2.0,
        2.5,
        -3.5,
        3.7,
        -3.7,
        1e-8,
        0.49999999999999994,
        1e16,
    ]
)
# more than one fused chunk (256 elements): vector bodies and scalar tails both run
XS = np.resize(SPECIAL, 300)


def _sigmoid(x):
    """scipy's expit, except that it flushes sigmoid(x) to 0 below about -709.78 where the
    true value is the subnormal exp(x) (ours keeps it: e^x / (1 + e^x))."""
    with np.errstate(all="ignore"):
        return np.where(x < -709.0, np.exp(x) / (1.0 + np.exp(x)), sp.expit(x))


EXACT, ULPS = 0, 4
# (name, function, tolerance): tolerance is EXACT (bit for bit) or a bound in ulp
UNARY = [
    ("negative", np.negative, EXACT),
    ("abs", np.abs, EXACT),
    ("sign", np.sign, EXACT),
    ("sqrt", np.sqrt, EXACT),
    ("square", np.square, EXACT),
    ("reciprocal", np.reciprocal, EXACT),
    ("floor", np.floor, EXACT),
    ("ceil", np.ceil, EXACT),
    ("round", np.round, EXACT),
    ("exp", np.exp, ULPS),
    ("expm1", np.expm1, ULPS),
    ("log", np.log, ULPS),
    ("log1p", np.log1p, ULPS),
    ("log2", np.log2, ULPS),
    ("log10", np.log10, ULPS),
    ("sin", np.sin, ULPS),
    ("cos", np.cos, ULPS),
    ("tan", np.tan, ULPS),
    ("arcsin", np.arcsin, ULPS),
    ("arccos", np.arccos, ULPS),
    ("arctan", np.arctan, ULPS),
    ("sinh", np.sinh, ULPS),
    ("cosh", np.cosh, ULPS),
    ("tanh", np.tanh, ULPS),
    ("arcsinh", np.arcsinh, ULPS),
    ("arccosh", np.arccosh, ULPS),
    ("arctanh", np.arctanh, ULPS),
    ("expit", sp.expit, ULPS),
]

BINARY = [
    ("add", np.add, EXACT),
    ("subtract", np.subtract, EXACT),
    ("multiply", np.multiply, EXACT),
    ("divide", np.divide, EXACT),
    ("floor_divide", np.floor_divide, EXACT),
    ("mod", np.mod, EXACT),
    ("maximum", np.maximum, EXACT),
    ("minimum", np.minimum, EXACT),
    ("less", np.less, EXACT),
    ("less_equal", np.less_equal, EXACT),
    ("greater", np.greater, EXACT),
    ("greater_equal", np.greater_equal, EXACT),
    ("equal", np.equal, EXACT),
    ("not_equal", np.not_equal, EXACT),
    ("power", np.power, ULPS),
    ("arctan2", np.arctan2, ULPS),
    ("logaddexp", np.logaddexp, ULPS),
]


def _mismatches(got, want, tol):
    """Indices where `got` is not acceptable for NumPy's `want`."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    gb, wb = got.view(np.int64), want.view(np.int64)
    both_nan = np.isnan(got) & np.isnan(want)
    same = (gb == wb) | both_nan
    if tol == EXACT:
        return np.flatnonzero(~same)
    special = ~np.isfinite(want) | (want == 0.0) | (np.abs(want) == 1.0) | np.isnan(got)
    with np.errstate(all="ignore"):
        ulps = np.abs(gb - wb)
    close = (np.sign(got) == np.sign(want)) & (ulps <= tol) & ~special
    return np.flatnonzero(~(same | close))


def _both_paths(fn, *args):
    tr = autodiff.Function(fn, list(args)).trace
    fast, bad_fast = tr.run(list(args))
    ref, bad_ref = tr.run(list(args), reference=True)
    assert bad_fast is None and bad_ref is None
    return np.asarray(ref[0]), np.asarray(fast[0])


def _check(name, got_by_path, want, tol, show):
    for path, got in got_by_path.items():
        bad = _mismatches(got, want, tol)
        assert bad.size == 0, f"{name} ({path}) differs from NumPy at " + ", ".join(
            f"{show(i)}: {got[i]!r} vs {want[i]!r}" for i in bad[:5]
        )


@pytest.mark.parametrize("name,f,tol", UNARY, ids=[u[0] for u in UNARY])
def test_unary_op_equals_numpy(name, f, tol):
    ref, fast = _both_paths(lambda x: f(x), XS)
    with np.errstate(all="ignore"):
        want = _sigmoid(XS) if f is sp.expit else f(XS)
    _check(name, {"evaluator": ref, "fast path": fast}, want, tol, lambda i: f"x={XS[i]!r}")


@pytest.mark.parametrize("name,f,tol", BINARY, ids=[b[0] for b in BINARY])
def test_binary_op_equals_numpy(name, f, tol):
    a, b = (g.ravel() for g in np.meshgrid(SPECIAL, SPECIAL, indexing="ij"))
    ref, fast = _both_paths(lambda x, y: f(x, y), a, b)
    with np.errstate(all="ignore"):
        want = f(a, b).astype(float)
    show = lambda i: f"({a[i]!r}, {b[i]!r})"
    _check(name, {"evaluator": ref, "fast path": fast}, want, tol, show)


def test_named_values_bit_for_bit():
    """The values the issue named: np.sign(-0.0) is +0.0; sigmoid(±800) is exactly 1 and
    +0 (no overflow), in both paths."""
    x = np.array([-0.0, 800.0, -800.0])
    for got in _both_paths(lambda x: np.sign(x), x):
        assert got.view(np.int64).tolist() == np.sign(x).view(np.int64).tolist()
        assert not np.signbit(got[0])
    for got in _both_paths(lambda x: sp.expit(x), x):
        assert got.view(np.int64).tolist() == sp.expit(x).view(np.int64).tolist()
