"""Specialization: trace per signature, check guards on every call, re-trace on failure.

A *signature* is the structure of the arguments, the shape and dtype of every array leaf
and the value of every static (non-array) argument. Each signature holds the traces made
for it (one per guard outcome seen); a call tries them, most recent first, and traces
anew when every one of them has a failing guard. The cache is bounded (LRU).
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import io
import os
import signal
import threading
import time
import types
import warnings
from collections import OrderedDict, deque

import numpy as np

from . import _core, _tree
from ._markers import constant, escape, tag
from .errors import TraceError

MAX_SIGNATURES = 64
MAX_TRACES_PER_SIGNATURE = 16
MAX_FAST_KEYS = 4 * MAX_SIGNATURES
MAX_LOG = 1000


def _markers():
    return {
        "constant": constant,
        "escape": escape,
        "tag": tag,
        # also what `stale` reads for an absent attribute: a check that an attribute is
        # still absent is one whose value is this sentinel
        "_sentinel": _MISSING,
    }


def self_check_enabled() -> bool:
    return os.environ.get("AUTODIFF_SELF_CHECK", "1") != "0"


def check_every_call_enabled() -> bool:
    """AUTODIFF_CHECK_EVERY_CALL=1 (read when a function is wrapped): every call, not only
    the first of each trace, is checked against the reference evaluator (slow; for chasing
    a suspected wrong result)."""
    return os.environ.get("AUTODIFF_CHECK_EVERY_CALL", "0") not in ("", "0")


def arg_names(fn, nargs):
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for i in range(nargs):
        if i < len(params) and params[i].kind in (params[i].POSITIONAL_ONLY, params[i].POSITIONAL_OR_KEYWORD):
            names.append(params[i].name)
        elif params and params[-1].kind == params[-1].VAR_POSITIONAL or i >= len(params):
            names.append(f"arg{i}")
        else:
            names.append(params[i].name)
    return names


def check_leaf(leaf):
    """Refuses array subclasses whose operators mean something else than ndarray's
    (`np.matrix`: `*` is a matrix product; masked arrays: masked entries are skipped): a
    trace of one must never serve the other."""
    t = type(leaf)
    if t is np.ndarray or not isinstance(leaf, np.ndarray) or isinstance(leaf, np.memmap):
        return
    if isinstance(leaf, np.matrix):
        what = "np.matrix inputs are not supported (their * is a matrix product); pass np.asarray(m) and use @"
    elif isinstance(leaf, np.ma.MaskedArray):
        what = (
            "masked-array inputs are not supported (their operations skip masked entries); pass the data and "
            "the mask as two arrays and use np.where, or m.filled(value)"
        )
    else:
        what = (
            f"inputs of the ndarray subclass {t.__module__}.{t.__qualname__} are not supported (its operations "
            "may differ from ndarray's); pass np.asarray(x)"
        )
    raise TypeError(what)


def _value(v, promote):
    """An input leaf as the compiled program reads it: ints promoted to float64 where
    differentiated, byte-swapped arrays in native order."""
    if promote and np.asarray(v).dtype.kind in "iu":
        return np.asarray(v, dtype=np.float64)
    if isinstance(v, np.ndarray):
        if not v.dtype.isnative:
            return v.astype(v.dtype.newbyteorder("="))
        if not v.flags.aligned:
            return v.copy()
    return v


def _fresh(leaf, promote):
    """A private copy of an input leaf (the caller's arrays are never mutated)."""
    check_leaf(leaf)
    leaf = _value(leaf, promote)
    if isinstance(leaf, np.ndarray):
        return leaf.copy()
    if isinstance(leaf, np.generic):
        return leaf.dtype.type(leaf)
    return np.float64(leaf)


class Signature:
    """The static description of one call: structure, shapes/dtypes, static values."""

    __slots__ = ("key", "treedef", "names", "shapes", "cache_key")

    def __init__(self, args, kwargs, names, promote=()):
        leaves, lnames, treedef = _tree.flatten((tuple(args), dict(kwargs)), "args")
        self.treedef = treedef
        self.names = [_pretty(n, names) for n in lnames]
        self.shapes = []
        for i, leaf in enumerate(leaves):
            check_leaf(leaf)
            a = np.asarray(leaf)
            dt = a.dtype
            if i in promote and dt.kind in "iu":
                dt = np.dtype(np.float64)
            elif not dt.isnative:
                dt = dt.newbyteorder("=")
            self.shapes.append((a.shape, dt.str))
        # a 0-d array and a float (or NumPy scalar) are different signatures: user code may
        # branch on isinstance(x, float) or np.ndarray
        kinds = tuple(type(leaf) is not np.ndarray for leaf in leaves)
        self.key = (_tree.static_key(treedef), tuple(self.shapes), kinds)
        # the key of the cache entry that holds this (traced) signature's trace
        self.cache_key = self.key


def _pretty(path, names):
    # args[(0, ...)] paths: "args[0][0]" → the parameter name.
    if path.startswith("args[0]["):
        rest = path[len("args[0][") :]
        idx, _, tail = rest.partition("]")
        if idx.isdigit() and int(idx) < len(names):
            return names[int(idx)] + tail
    if path.startswith("args[1]["):
        rest = path[len("args[1][") :]
        key, _, tail = rest.partition("]")
        return key.strip("'\"") + tail
    return path


@contextlib.contextmanager
def _ctrl_c_stops_the_trace():
    """While tracing on the main thread, SIGINT also raises a flag the engine polls, then
    runs the handler that was installed (Python's default raises KeyboardInterrupt): a
    KeyboardInterrupt raised inside Python code that the engine calls could otherwise be
    lost, and the trace run on."""
    try:
        prev = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    except Exception:  # no signal module state: nothing to install
        prev = None
    if not callable(prev):  # SIG_IGN, SIG_DFL, not the main thread
        yield
        return

    def on_sigint(signum, frame):
        _core._interrupt()  # the engine stops at its next check, even if this is swallowed
        return prev(signum, frame)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, prev)


@contextlib.contextmanager
def _no_gc():
    """The cyclic garbage collector paused while tracing: the engine allocates many
    short-lived objects and keeps every traced one alive, so collections find nothing and
    cost a tenth of the trace."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def trace(fn, args, kwargs, promote=()):
    """Traces `fn(*args, **kwargs)`; returns (result, Trace, Signature, checks) where the
    checks are the values read from outside the function (globals, closure cells, attributes
    of non-argument objects, class attributes, default arguments, a partial's arguments),
    with snapshots: constants of the trace, checked on each call."""
    return _trace(fn, args, kwargs, promote)[:4]


def _trace(fn, args, kwargs, promote=()):
    """`trace`, plus the traced program's outputs at the traced inputs when the self-check
    computed them (else None): the finite-difference check reuses them as f(x)."""
    names = arg_names(fn, len(args))
    sig = Signature(args, kwargs, names, promote)
    leaves, _, treedef = _tree.flatten((tuple(args), dict(kwargs)), "args")
    fresh = [_fresh(leaf, i in promote) for i, leaf in enumerate(leaves)]
    cargs, ckwargs = _tree.unflatten(treedef, fresh)
    inputs = list(zip(fresh, sig.names))
    # The self-check reads the caller's arrays (the trace ran on private copies, and writes
    # to objects reached otherwise are refused), so no second copy is made.
    values = [
        _value(leaf, i in promote) if type(leaf) is np.ndarray else np.array(f)
        for i, (leaf, f) in enumerate(zip(leaves, fresh))
    ]
    with _ctrl_c_stops_the_trace(), _no_gc():
        result, tr, sources = _core.trace(fn, list(cargs), dict(ckwargs), inputs, _markers(), _tree.leaves_of)
    if tr.needs_plain_check and not _plain_run_agrees(fn, leaves, treedef, promote, result):
        # A rolled loop's iterations differed in a way the trace could not see (a branch
        # on the loop counter, say): trace again with every loop unrolled.
        fresh = [_fresh(leaf, i in promote) for i, leaf in enumerate(leaves)]
        cargs, ckwargs = _tree.unflatten(treedef, fresh)
        inputs = list(zip(fresh, sig.names))
        with _ctrl_c_stops_the_trace(), _no_gc():
            result, tr, sources = _core.trace(
                fn, list(cargs), dict(ckwargs), inputs, _markers(), _tree.leaves_of, roll=False
            )
    got = _self_check(fn, tr, values, result) if self_check_enabled() else None
    if self_check_enabled() and not tr.rolled_loops and not tr.uninit_values:
        _nearby_check(fn, tr, leaves, treedef, promote, values)
    checks = tuple((kind, container, key, _freeze(obj)) for kind, container, key, obj in sources)
    return result, tr, sig, checks, got


def _plain_run_agrees(fn, leaves, treedef, promote, result):
    """Runs `fn` by NumPy on copies of the arguments and compares with the traced result
    (a rolled loop whose iterations may differ from the ones observed is checked so)."""
    want = _quiet_plain_run(fn, treedef, [_fresh(leaf, i in promote) for i, leaf in enumerate(leaves)])
    if want is None:  # the traced run did not raise: the trace is not to be trusted
        return False
    got = _tree.leaves_of(result)
    return len(got) == len(want) and all(_agree(g, w) for g, w in zip(got, want))


def _self_check(fn, tr, values, result):
    got, failed = tr.run(values)
    if got is None:
        raise TraceError(
            f"internal: a guard of the fresh trace of {getattr(fn, '__qualname__', fn)} fails at the traced inputs"
        )
    want = _tree.leaves_of(result)
    for k, (g, w) in enumerate(zip(got, want)):
        w = np.asarray(w)
        if w.dtype.kind in "iu" and g.shape == w.shape and not np.array_equal(g, w):
            raise TraceError(
                f"the integer result {k} of {getattr(fn, '__qualname__', fn)} cannot be traced exactly: traced "
                f"{g!r} vs real {w!r}. Integer values are computed exactly only up to 2**53 and without int64 "
                "overflow; use float64, or keep such integers out of the traced computation"
            )
        if g.shape != w.shape or not (_agree(g, w) or _agree_up_to_cancellation(tr, values, k, g, w)):
            if tr.half_values:
                raise TraceError(
                    f"{getattr(fn, '__qualname__', fn)}: NumPy computes part of it in float16 (a ufunc such as "
                    "np.exp or np.sin of a bool, int8 or uint8 array), which the tracer computes in float64, "
                    f"so its result differs from NumPy's (output {k}: traced {g!r} vs real {w!r}). Cast the "
                    "array first (np.exp(m.astype(float)))."
                )
            raise TraceError(
                f"internal: the traced graph of {getattr(fn, '__qualname__', fn)} does not reproduce "
                f"its result (output {k}: traced {g!r} vs real {w!r}). Please report this; set "
                "AUTODIFF_SELF_CHECK=0 to skip the check."
            )
    return got


def _nearby_check(fn, tr, leaves, treedef, promote, values):
    """The trace must follow `fn` at an input near the traced one, not only reproduce it
    there: each float input moved by about 1e-3 of its size, `fn` run by NumPy on copies and
    the trace evaluated (where its guards hold) must agree. A value the engine cannot see
    being read (a native iterator, `.flat`, `np.nditer`, `memoryview` made over an array
    before traced values were written into it) is a constant of the trace, right at the
    traced input only: an error here, never a stale result. No verdict where a guard fails
    or `fn` raises at the moved input. (Rolled loops are checked by their own plain run.)"""
    if sum(int(np.size(v)) for v in values) > _NEARBY_MAX_ELEMENTS and not check_every_call_enabled():
        return  # its cost (one NumPy run, one of the trace) is left to small and medium inputs
    rng = np.random.default_rng(0)
    moved_values = list(values)
    moved_leaves = list(leaves)
    any_moved = False
    for i, v in enumerate(values):
        a = np.asarray(v)
        if a.dtype.kind != "f" or a.size == 0:
            moved_leaves[i] = _fresh(leaves[i], i in promote)
            continue
        m = _moved(a, rng)
        if m is None:
            moved_leaves[i] = _fresh(leaves[i], i in promote)
            continue
        moved_values[i] = m
        # (the trace runs on `m` before the function, which may write into its argument)
        leaf = leaves[i]
        moved_leaves[i] = m if isinstance(leaf, np.ndarray) else np.dtype(a.dtype).type(m)
        any_moved = True
    if not any_moved:
        return
    got, _ = tr.run(moved_values)
    if got is None:  # another branch there: the trace does not claim that input
        return
    want = _quiet_plain_run(fn, treedef, moved_leaves)
    if want is None or len(want) != len(got):
        return
    for k, (g, w) in enumerate(zip(got, want)):
        w = np.asarray(w)
        if g.shape != w.shape or w.dtype.kind not in "fcbiu":
            continue
        if _agree(g, w) or _agree_up_to_cancellation(tr, moved_values, k, g, w):
            continue
        # A function that does not reproduce itself (it returns what `np.empty` held) gets
        # no verdict: run again at the traced inputs, it must give the traced result.
        again = _quiet_plain_run(fn, treedef, [_fresh(leaf, i in promote) for i, leaf in enumerate(leaves)])
        base, _ = tr.run(values)
        if again is None or base is None or not all(_agree(b, np.asarray(a)) for b, a in zip(base, again)):
            return
        raise TraceError(
            f"the trace of {getattr(fn, '__qualname__', fn)} reproduces it at the traced inputs but not at "
            f"nearby ones (output {k}: traced {g!r} vs real {w!r}): the function reads values the engine "
            "cannot follow, which became constants of the trace. The usual cause is a reader made over an "
            "array before values computed from the inputs are written into it (an iterator, `zip`, "
            "`enumerate`, `.flat`, `np.nditer`, `memoryview`): make the reader after the writes, or index "
            "the array. Set AUTODIFF_SELF_CHECK=0 to skip the check."
        )


# The nearby check runs when the inputs hold at most this many elements in all: past it,
# a NumPy run of the function and an evaluation of the trace would add a third or more
# to a first call that is dominated by them (AUTODIFF_CHECK_EVERY_CALL=1 checks any size).
_NEARBY_MAX_ELEMENTS = 1 << 17
# Arrays up to this many elements are moved everywhere by the nearby check; larger ones
# at this many random places and their first elements (the check then costs one copy).
_MOVE_ALL = 1 << 16


def _moved(a, rng):
    """`a` moved by about 1e-3 of its size (None: not finite, left alone). A symmetric
    matrix stays symmetric: a covariance passed to cholesky/eigh, which read one triangle
    (a non-symmetric input is outside their contract)."""
    scale = float(np.max(np.abs(a)))
    if not np.isfinite(scale):
        return None
    scale = scale or 1.0
    square = a.ndim >= 2 and a.shape[-1] == a.shape[-2]
    if a.size <= _MOVE_ALL or (square and np.array_equal(a, np.swapaxes(a, -1, -2))):
        u = rng.uniform(-1.0, 1.0, a.shape)
        if square and np.array_equal(a, np.swapaxes(a, -1, -2)):
            u = (u + np.swapaxes(u, -1, -2)) / 2
        return np.asarray(a + 1e-3 * (np.abs(a) + scale) * u, dtype=a.dtype)
    m = np.array(a, dtype=a.dtype, copy=True)
    flat = m.reshape(-1)
    at = np.concatenate([np.arange(256), rng.integers(0, a.size, _MOVE_ALL)])
    flat[at] += (1e-3 * (np.abs(flat[at]) + scale) * rng.uniform(-1.0, 1.0, at.size)).astype(a.dtype)
    return m


def _quiet_plain_run(fn, treedef, leaves):
    """The result leaves of `fn` run by NumPy on `leaves` (copies), its prints and warnings
    silenced (the trace's own run showed them); None when it raises."""
    pargs, pkwargs = _tree.unflatten(treedef, leaves)
    quiet = io.StringIO()
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            with contextlib.redirect_stderr(quiet):
                return _tree.leaves_of(fn(*pargs, **pkwargs))
    except Exception:  # no verdict: the function itself fails there
        return None


def _agree(g, w):
    g, w = np.asarray(g), np.asarray(w)
    # float32 sums in a different order (NumPy pairwise, ours in f64) differ more; float16
    # results (NumPy computes in float16, we in float64 rounded at the end) more still
    dt = np.result_type(g, w) if g.dtype.kind == w.dtype.kind == "f" else np.float64
    if w.dtype == np.float16:
        dt = np.float16
    rtol, atol = {np.dtype(np.float32): (1e-4, 1e-6), np.dtype(np.float16): (1e-2, 1e-3)}.get(
        np.dtype(dt), (1e-7, 1e-10)
    )
    return g.shape == w.shape and np.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True)


def _agree_up_to_cancellation(tr, values, k, g, w):
    """Whether output `k` (ours `g`, NumPy's `w`) differs by no more than summing its terms
    in another order can explain: about `ε·√n·Σ|tᵢ|`, where `Σ|tᵢ|` is the trace's
    magnitude bound (its sums taken over absolute values) and n the number of elements
    the inputs hold. `sum(tanh(x))` over a symmetric x is near 0 while its terms are not:
    NumPy's pairwise sum and ours then differ far beyond a tolerance relative to the sum."""
    g, w = np.asarray(g), np.asarray(w)
    if g.shape != w.shape or g.dtype.kind not in "fc" or not np.isfinite(g).all() or not np.isfinite(w).all():
        return False
    try:
        mag, _ = tr.magnitude().run(values)
    except Exception:  # no bound, no allowance
        return False
    if mag is None:
        return False
    m = np.abs(np.asarray(mag[k], dtype=np.float64))
    if m.shape != g.shape or not np.isfinite(m).all():
        return False
    n = max([1] + [int(np.size(v)) for v in values])
    eps = np.finfo(np.result_type(g, w)).eps
    allowed = 2 * np.sqrt(n) * eps * m + 1e-7 * np.abs(w) + 1e-10
    return bool(np.all(np.abs(g.astype(np.float64) - w.astype(np.float64)) <= allowed))


# The reference evaluator is ~100x slower than the compiled program: it checks programs
# that run faster than this (seconds); larger ones rely on the finite-difference check.
REFERENCE_CHECK_MAX_S = 5e-4


def _check_fast_path(fn, compiled, values, fast, seconds):
    """The compiled program of a fresh (transformed) trace must agree with the reference
    evaluator at the traced inputs: a lowering bug (a kernel reading the wrong register, a
    wrong fusion) is an error, never a wrong derivative. `fast` is the program's output
    there, computed (compilation included) in `seconds`; skipped for programs that take
    longer than REFERENCE_CHECK_MAX_S (the first call would take seconds)."""
    if seconds > REFERENCE_CHECK_MAX_S:
        return
    try:
        ref, _ = compiled.run(values, reference=True)
    except MemoryError:
        return  # the unsimplified graph holds a value too large to evaluate: no verdict
    if fast is None or ref is None:
        return
    for k, (g, w) in enumerate(zip(fast, ref)):
        if not _agree(g, w):
            raise TraceError(
                f"internal: the compiled program of {getattr(fn, '__qualname__', fn)} disagrees with the "
                f"reference evaluator (output {k}: {g!r} vs {w!r}). Please report this; set "
                "AUTODIFF_SELF_CHECK=0 to skip the check."
            )


def directional_check(fn, f_at, value, slope, x, v, what="gradient", f_pair=None, jumps=False):
    """Checks a directional derivative `slope` (= grad·v, or a Hessian-vector product's
    projection) of the scalar function `f_at(t) = f(x + t v)` (t a float; None where a guard
    fails) against central differences. Raises TraceError when the two disagree at two step
    sizes while the function is smooth there (forward and backward differences agree), so
    kinks (relu at 0, abs, where) never raise. Returns the finite difference checked, or None
    when the check did not apply. `x` and `v` are arrays or lists of arrays (the pieces of
    one long vector). The second, smaller step is evaluated only when the first one
    disagrees. `f_pair(t)`, when given, returns `(f_at(t), f_at(-t))` in one evaluation.
    `jumps`: the function has values that jump (comparisons, floor, ...; `Trace.has_jumps`):
    differences that agree with each other but not with `slope` are then no verdict either
    (jumps denser than the steps, as a `where` chattering in a long loop, move every
    difference alike while the derivative is that of the pieces)."""
    scale = max(1.0, _max_abs(x))
    vmax = max(1.0, _max_abs(v))
    seen = []
    for h in (6e-6 * scale / vmax, 1.5e-6 * scale / vmax):
        fp, fm = f_pair(h) if f_pair is not None else (f_at(h), f_at(-h))
        if fp is None or fm is None:
            return None
        f0 = value
        if not all(np.isfinite(t) for t in (fp, fm, f0)):
            return None
        central = (fp - fm) / (2 * h)
        fwd, bwd = (fp - f0) / h, (f0 - fm) / h
        noise = 64 * np.finfo(np.float64).eps * (abs(fp) + abs(fm) + abs(f0)) / h
        # (a NaN slope at a kink — sqrt of 0 inside std, arctan2 at the origin — must not
        # hide the kink: it gets no verdict, while a NaN slope where f is smooth is refused)
        size = abs(central) + (abs(slope) if np.isfinite(slope) else 0.0)
        if abs(fwd - bwd) > 1e-2 * size + 4 * noise:
            return None  # a kink or strong curvature at this step: no verdict
        # (absolute floor 1e-10: a saturated tanh leaves gradients of 1e-13 made of rounding
        # noise, which the noise estimate from the values alone does not see)
        if np.isfinite(slope) and abs(central - slope) <= 1e-4 * size + 4 * noise + 1e-10:
            return central
        seen.append(central)
    if abs(seen[0] - seen[1]) > 1e-2 * (abs(seen[0]) + abs(seen[1])):
        # the differences themselves change with the step (a jump crossed, as a `where`
        # whose branches do not meet, or many kinks within one step): they measure no
        # derivative, so they refute none
        return None
    if jumps:
        return None
    raise TraceError(
        f"internal: the {what} of {getattr(fn, '__qualname__', fn)} fails the finite-difference self-check at "
        f"the traced inputs (directional derivative {slope!r}, finite differences {seen!r}). Please report "
        "this; set AUTODIFF_SELF_CHECK=0 to skip the check."
    )


def _max_abs(x):
    """max |x| over an array or a list of arrays (0 when empty)."""
    parts = x if isinstance(x, (list, tuple)) else [x]
    return max((float(np.max(np.abs(p))) for p in map(np.asarray, parts) if p.size), default=0.0)


class Specializer:
    """Caches compiled traces of `fn` (after `transform`) by signature and guard outcome.

    `check(tr, compiled, sig, values, outs, base)`, when given, verifies the derivative of a
    fresh trace (the self-check of derivatives; see `directional_check`); `outs` is the
    compiled program's output at `values` and `base` the traced function's (None when not
    computed)."""

    def __init__(self, fn, transform=None, promote_all=False, promote=(), check=None, out_plan=None):
        self.fn = fn
        # out_plan(args): how the caller groups the flat outputs of a call (a list of
        # ("leaf" | "list" | "tuple", n) items, the rest flat), handed to the native table
        # so that `self.native(args)` returns the caller's result; None: no grouping.
        self.out_plan = out_plan
        self.check = check
        self.transform = transform or (lambda tr, sig: tr)
        self.promote_all = promote_all
        self.promote = promote
        self.cache: OrderedDict = OrderedDict()
        # Bounded records: re-tracing 10^4 times must not grow memory.
        self.log: deque[str] = deque(maxlen=MAX_LOG)
        self.traces = 0
        self.fast: dict = {}
        # lookups and inserts from several threads: the slow path (trace, cache update,
        # eviction, re-batching) runs under this lock; the fast path only reads
        self._lock = threading.RLock()
        self._arg_names: dict = {}
        # The per-call hot path in Rust: float64 arrays (and floats) as positional
        # arguments, a signature seen before. It answers only where this class would answer
        # the same (same entry, same sources, same guards), else None: see `_core.CallTable`.
        self.native = _core.CallTable(_same)
        if check_every_call_enabled():  # AUTODIFF_CHECK_EVERY_CALL=1: see `_checked_lookup`
            self.native = _CheckedTable(self.native)
            self.lookup = self._checked_lookup

    def _checked_lookup(self, args, kwargs, extra=()):
        """`lookup`, then the same call evaluated by the reference evaluator (guards and
        outputs): a disagreement is a TraceError instead of a returned number."""
        out = Specializer.lookup(self, args, kwargs, extra)
        outs, (sig, _), compiled = out
        leaves, _, _ = _tree.flatten((tuple(args), dict(kwargs)), "args")
        promote = self._promote_set(args)
        values = [_value(v, i in promote) for i, v in enumerate(leaves)] + list(extra)
        try:
            ref, bad = compiled.run(values, reference=True)
        except MemoryError:
            return out  # too large for the reference evaluator: no verdict
        if ref is None:
            raise TraceError(
                f"AUTODIFF_CHECK_EVERY_CALL: the trace of {_fname(self.fn)} that answered this call has a "
                f"failing guard in the reference evaluator ({compiled.guards[bad]}). Please report this."
            )
        for k, (g, w) in enumerate(zip(outs, ref)):
            if not _agree(g, w):
                raise TraceError(
                    f"AUTODIFF_CHECK_EVERY_CALL: the compiled program of {_fname(self.fn)} disagrees with the "
                    f"reference evaluator on this call (output {k}: {g!r} vs {w!r}). Please report this."
                )
        return out

    def _names(self, n):
        names = self._arg_names.get(n)
        if names is None:
            names = self._arg_names[n] = arg_names(self.fn, n)
        return names

    def _promote_set(self, args):
        if not self.promote_all and not self.promote:
            return frozenset()
        leaves, _, _ = _tree.flatten((tuple(args), {}), "args")
        return frozenset(range(len(leaves))) if self.promote_all else frozenset(self.promote(args))

    def lookup(self, args, kwargs, extra=(), extra_arg=None):
        """Returns (outputs, (signature, output structure), compiled trace). `extra`: input
        leaves appended after the arguments' (a transform's extra inputs), given by the
        caller as the one object `extra_arg` (when not None): the native table then reads
        them as one more argument, `self.native(args + (extra_arg,))`."""
        if not kwargs and not extra:
            hit = self.native.lookup(args)
            if hit is not None:
                return hit
        # Fast path: positional arrays (or flat lists/tuples of arrays), a signature seen
        # before: one pass builds both the key and the input values.
        fast = None
        leaves = None if kwargs else _fast_leaves(args)
        if leaves is not None:
            # The dtype itself (not its `char`: a byte-swapped array is another key) and the
            # container type of each argument (a list and a tuple may take other branches).
            fast = tuple([(a.shape, a.dtype) for a in leaves]) + (
                tuple(None if type(a) is np.ndarray else (type(a), len(a)) for a in args),
            )
            hit = self.fast.get(fast)
            if hit is not None:
                entries = self.cache.get(hit[0])
                if entries:
                    convert = hit[1]
                    values = (
                        [a.astype(convert[i]) if i in convert else a for i, a in enumerate(leaves)]
                        if convert
                        else leaves
                    )
                    values += extra
                    for entry in reversed(entries):
                        if entry[2] and stale(entry[2]):
                            continue
                        try:
                            outs, bad = entry[0].run(values)
                        except BufferError:  # a misaligned array: the general path copies it
                            break
                        if outs is not None:
                            if not extra:
                                self._install(args, hit[0])
                            elif extra_arg is not None:
                                self._install(args, hit[0], (extra_arg,))
                            return outs, entry[1], entry[0]
        out = self._lookup(args, kwargs, extra)
        if fast is not None:
            sig = out[1][0]
            convert = {i: np.dtype(dt) for i, (a, (_, dt)) in enumerate(zip(leaves, sig.shapes)) if a.dtype.str != dt}
            if len(self.fast) >= MAX_FAST_KEYS:
                self.fast.clear()
            self.fast[fast] = (sig.cache_key, convert)
        if not kwargs and not extra:
            self._install(args, out[1][0].cache_key)
        elif not kwargs and extra_arg is not None:
            self._install(args, out[1][0].cache_key, (extra_arg,))
        return out

    def _install(self, args, key, more=()):
        """Hands the cache entries of `key` to the native path when it can read these
        arguments (and `more`, the extra inputs as one argument) as they are: float64
        arrays and floats, or flat lists/tuples of float64 arrays."""
        full = tuple(args) + tuple(more)
        if all(_native_leaf(a) for a in full):
            shapes, containers = [np.shape(a) for a in full], None
        elif all(_native_leaf(a) or _native_seq(a) for a in full):
            shapes = [np.shape(e) for a in full for e in (a if _native_seq(a) else (a,))]
            containers = [(type(a).__name__, len(a)) if _native_seq(a) else ("leaf", 1) for a in full]
        else:
            return
        plan = self.out_plan(args) if self.out_plan is not None else None
        with self._lock:
            entries = self.cache.get(key)
            if entries:
                scalars = [type(e) is not np.ndarray for a in full for e in (a if _native_seq(a) else (a,))]
                self.native.install(shapes, list(entries), containers, plan, scalars)

    def _lookup(self, args, kwargs, extra):
        with self._lock:
            return self._lookup_locked(args, kwargs, extra)

    def _lookup_locked(self, args, kwargs, extra):
        promote = self._promote_set(args)
        names = self._names(len(args))
        sig = Signature(args, kwargs, names, promote)
        entries = self.cache.get(sig.key)
        leaves, _, _ = _tree.flatten((tuple(args), dict(kwargs)), "args")
        values = [_value(v, i in promote) for i, v in enumerate(leaves)]
        values += list(extra)
        if entries is None:
            reason = "first call" if not self.cache else f"new signature {_describe(sig)}"
        else:
            self.cache.move_to_end(sig.key)
            failed = []
            for entry in reversed(entries):
                changed = entry[2] and stale(entry[2])
                if changed:
                    failed.append(changed)
                    continue
                outs, bad = entry[0].run(values)
                if outs is not None:
                    entry[1][0].cache_key = sig.key
                    return outs, entry[1], entry[0]
                failed.append(entry[0].guards[bad])
            reason = f"guard failed: {failed[0]}"
        result, tr, tsig, checks, base = _trace(self.fn, args, kwargs, promote)
        self.traces += 1
        self.log.append(f"trace {self.traces} of {_fname(self.fn)}: {reason}")
        compiled = self.transform(tr, tsig)
        # One run serves the checks and the caller (the outputs are fresh arrays each run).
        t0 = time.perf_counter()
        outs, bad = (base, None) if compiled is tr and base is not None else compiled.run(values)
        seconds = time.perf_counter() - t0
        if compiled is not tr and self_check_enabled():
            _check_fast_path(self.fn, compiled, values, outs, seconds)
            if self.check is not None:
                self.check(tr, compiled, tsig, values, outs, base)
        entries = self.cache.setdefault(sig.key, [])
        entries.append((compiled, (tsig, _tree.out_structure(result)), checks))
        del entries[:-MAX_TRACES_PER_SIGNATURE]
        while len(self.cache) > MAX_SIGNATURES:
            self.cache.popitem(last=False)
        # the native table holds copies of entry lists: re-installed by `lookup`
        self.native.clear()
        if outs is None:
            raise TraceError(f"internal: guard {compiled.guards[bad]} fails right after tracing")
        tsig.cache_key = sig.key
        return outs, entries[-1][1], compiled

    def explain(self) -> str:
        """Why each trace happened (`first call`, `new signature ...`, `guard failed: ...`)."""
        return "\n".join(self.log) if self.log else "not traced yet"


_NATIVE_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _native_leaf(a):
    """Whether `CallTable` reads this argument as it is: a float64 or float32 ndarray in
    native byte order, a float or a numpy.float64."""
    t = type(a)
    return t is float or t is np.float64 or (t is np.ndarray and a.dtype in _NATIVE_DTYPES and a.dtype.isnative)


def _native_seq(a):
    """A non-empty list or tuple (exactly) of float64/float32 arrays in native byte order."""
    t = type(a)
    return (
        (t is list or t is tuple)
        and len(a) > 0
        and all(type(e) is np.ndarray and e.dtype in _NATIVE_DTYPES and e.dtype.isnative for e in a)
    )


def _fast_leaves(args):
    """The input leaves of arguments that are ndarrays or flat lists/tuples of ndarrays
    (the common shapes of a call), else None (the general path flattens)."""
    out = []
    for a in args:
        t = type(a)
        if t is np.ndarray:
            out.append(a)
        elif (t is list or t is tuple) and a and all(type(e) is np.ndarray for e in a):
            out.extend(a)
        else:
            return None
    return out


# Snapshots of values read from outside the traced function (see `_freeze`), by tag.
_ARR, _VAL, _SEQ, _MAP, _SET, _ID, _METH, _ENV = range(8)
_MISSING = object()
_SCALARS = (bool, int, float, complex, str, bytes, type(None))
# Arrays up to this many bytes are compared as bytes (fast; NaN equals an identical NaN).
_SMALL = 1 << 16


def _freeze(v, depth=0):
    """A snapshot of `v` that `_same` compares with a later value: arrays by contents,
    scalars and strings by type and value, lists/tuples/dicts/sets item by item (deeply),
    anything else (user functions and objects) by identity."""
    t = type(v)
    if isinstance(v, np.ndarray):
        snap = v.copy()
        return (_ARR, v, snap, snap.tobytes() if snap.nbytes <= _SMALL else None)
    if t in _SCALARS or isinstance(v, np.generic):
        return (_VAL, v)
    if depth < 8 and isinstance(v, (list, tuple)):
        return (_SEQ, v, t, [_freeze(e, depth + 1) for e in v])
    if depth < 8 and isinstance(v, dict):
        return (_MAP, v, t, [(k, _freeze(e, depth + 1)) for k, e in v.items()])
    if isinstance(v, (set, frozenset)):
        return (_SET, v, t, frozenset(v))
    if v is os.environ:
        return (_ENV, v, dict(v))
    if t is types.MethodType:
        # made afresh by each attribute access: the same function bound to the same object
        return (_METH, v, v.__func__, v.__self__)
    return (_ID, v)


def _same(cur, fz):
    tag = fz[0]
    if tag is _ARR:
        snap = fz[2]
        if type(cur) is not type(fz[1]) or cur.shape != snap.shape or cur.dtype != snap.dtype:
            return False
        if fz[3] is not None:
            return cur.tobytes() == fz[3]
        # Equal values (as np.array_equal), or equal bits (a NaN in the same place).
        return bool((cur == snap).all()) or cur.tobytes() == snap.tobytes()
    if tag is _VAL:
        old = fz[1]
        if cur is old:
            return True
        if type(cur) is not type(old):
            return False
        return bool(cur == old) or (cur != cur and old != old)
    if tag is _SEQ:
        items = fz[3]
        return type(cur) is fz[2] and len(cur) == len(items) and all(_same(c, f) for c, f in zip(cur, items))
    if tag is _MAP:
        items = fz[3]
        if type(cur) is not fz[2] or len(cur) != len(items):
            return False
        for k, f in items:
            c = cur.get(k, _MISSING)
            if c is _MISSING or not _same(c, f):
                return False
        return True
    if tag is _SET:
        return type(cur) is fz[2] and cur == fz[3]
    if tag is _ENV:
        return cur is fz[1] and dict(cur) == fz[2]
    if tag is _METH:
        return type(cur) is types.MethodType and cur.__func__ is fz[2] and cur.__self__ is fz[3]
    return cur is fz[1]


def stale(checks):
    """Why a trace's outside values no longer hold (None while they all do)."""
    for kind, container, key, fz in checks:
        try:
            if kind == "global":
                cur = container[key]
            elif kind == "cell":
                cur = container.cell_contents
            else:
                cur = getattr(container, key)
        except (AttributeError, KeyError, ValueError):
            cur = _MISSING
        if not _same(cur, fz):
            return _why(kind, container, key, cur, fz)
    return None


def _why(kind, container, key, cur, fz):
    what = {"global": "global", "cell": "closure variable", "attr": "attribute"}.get(kind, kind)
    if kind == "attr":
        owner = getattr(container, "__qualname__", None) or getattr(container, "__name__", None)
        owner = owner or type(container).__name__
        name = f"{what} '{owner}.{key}'"
    else:
        name = f"{what} '{key}'"
    if cur is _MISSING:
        return f"the {name} was deleted since tracing"
    if fz[0] is _ARR:
        if cur is fz[1]:
            return f"the {name} (an array) was modified in place since tracing"
        return f"the {name} (an array) was rebound since tracing"
    if fz[0] is _VAL:
        return f"the {name} changed since tracing (was {fz[1]!r}, now {cur!r})"
    if fz[0] is _ID:
        return f"the {name} was rebound to another object since tracing"
    how = "modified in place" if cur is fz[1] else "rebound"
    return f"the {name} (a {type(fz[1]).__name__}) was {how} since tracing"


def _describe(sig):
    parts = [f"{n}: {s}{dt}" for n, (s, dt) in zip(sig.names, sig.shapes)]
    return "(" + ", ".join(parts) + ")"


def _fname(fn):
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


class _CheckedTable:
    """The native call table with its direct call turned off (every call then goes through
    `Specializer.lookup`, which checks it): AUTODIFF_CHECK_EVERY_CALL mode."""

    def __init__(self, table):
        self._table = table

    def __call__(self, args):
        return None

    def __getattr__(self, name):
        return getattr(self._table, name)
