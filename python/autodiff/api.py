"""The user-facing API, following the original PyAutoDiff: `Function`, `Gradient`,
`HessianVector`, plus JAX-style `grad` and `value_and_grad`."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _export, _tree
from ._compile import Specializer, arg_names, directional_check
from ._markers import constant, escape, tag  # noqa: F401 (exported)
from .errors import NotScalarError, WrtError

if TYPE_CHECKING:
    from ._core import Trace
    from .display import Drawing

class _Traced:
    """Common machinery: a specializer and readable printing of the latest trace."""

    _spec: Specializer

    def explain(self) -> str:
        """Why each (re-)trace happened."""
        return self._spec.explain()

    @property
    def trace_count(self) -> int:
        return self._spec.traces

    def _latest(self):
        for entries in reversed(self._spec.cache.values()):
            return entries[-1][0], entries[-1][1][0]
        return None, None

    @property
    def trace(self) -> Trace | None:
        """The latest compiled trace (graph, guards), or None before the first call."""
        return self._latest()[0]

    def _text_labels(self, tr, sig):
        return None, None

    def __str__(self) -> str:
        return self.math()

    def math(self, shapes: bool = False, locs: bool = False) -> str:
        """The compiled computation as math; `shapes` and `locs` annotate each line with
        its shape and the file:line of the user's code that produced it."""
        tr, sig = self._latest()
        if tr is None:
            return f"{type(self).__name__}({_fname(self._fn)}) — not traced yet: call it or pass example_args"
        labels, header = self._text_labels(tr, sig)
        return tr.to_text(labels, header, shapes, locs)

    def __repr__(self) -> str:
        return f"<autodiff.{type(self).__name__} of {_fname(self._fn)}>"

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        # Used as a method: bind the instance as the first (static) argument.
        return self if obj is None else types.MethodType(self, obj)

    def latex(self) -> str:
        """The compiled computation as LaTeX (what notebooks display)."""
        tr, sig = self._latest()
        labels, _ = self._text_labels(tr, sig)
        return tr.to_latex(labels)

    def _repr_latex_(self) -> str | None:
        tr, _ = self._latest()
        return None if tr is None else f"$${self.latex()}$$"

    def to_source(self, name: str | None = None, target: str = "numpy") -> str:
        """Runnable source of the compiled computation: `target="numpy"` (no autodiff
        needed to run it), `"numba"` (compiles with `numba.njit`) or `"jax"` (`jax.numpy`)."""
        tr, _ = self._latest()
        return _specialized_note(tr) + tr.to_source(name or _ident(self._fn), target)

    def to_numba(self, name: str | None = None) -> Callable[..., Any]:
        """`numba.njit` of `to_source(target="numba")` (needs numba). It takes the arrays of
        `trace.input_names` in order and returns the outputs (a tuple when several)."""
        return _export.to_numba(self._need_trace("to_numba()"), name or _ident(self._fn))

    def to_jax(self, name: str | None = None) -> Callable[..., Any]:
        """A `jax.numpy` function computing the same outputs (needs JAX; enable
        `jax_enable_x64` for float64), which `jax.jit`, `jax.vmap` and JAX's sharding take.
        It takes the arrays of `trace.input_names` in order."""
        return _export.to_jax(self._need_trace("to_jax()"), name or _ident(self._fn))

    def draw(self) -> Drawing:
        """A drawing of the graph for notebooks (SVG via Graphviz's `dot` when installed)."""
        from .display import Drawing

        return Drawing(self.to_dot())

    def to_svg(self) -> str:
        """The graph as SVG (needs Graphviz's `dot`)."""
        return _export.dot_to_svg(self.to_dot(), "to_svg()")

    def _need_trace(self, what: str) -> Trace:
        tr = self.trace
        if tr is None:
            raise RuntimeError(f"{what}: {_fname(self._fn)} is not traced yet; call it once or pass example_args")
        return tr

    def to_python(self, name: str | None = None) -> Callable[..., Any]:
        """A plain Python function compiled from `to_source()`."""
        name = name or _ident(self._fn)
        ns: dict[str, Any] = {}
        exec(compile(self.to_source(name), f"<autodiff:{name}>", "exec"), ns)
        fn: Callable[..., Any] = ns[name]
        return fn

    def to_sympy(self) -> Any:
        """The computation as a SymPy expression (elementwise graphs; needs SymPy)."""
        from ._optional import require

        sympy = require("sympy", "to_sympy()")

        tr, sig = self._latest()
        expr = tr.to_sympy()
        ns = {n: sympy.Symbol(n) for n in (tr.input_names or [])}
        ns["sympy"] = sympy
        return eval(expr, ns)

    def to_dot(self) -> str:
        """The graph in Graphviz's DOT language."""
        return self._latest()[0].to_dot()

    def _repr_svg_(self) -> str | None:
        import shutil
        import subprocess

        if shutil.which("dot") is None or self.trace is None:
            return None
        return subprocess.run(["dot", "-Tsvg"], input=self.to_dot(), capture_output=True, text=True).stdout


class Function(_Traced):
    """`fn` compiled: same results, evaluated from the traced graph; re-traces when a guard
    (a branch on data, `int(x)`, ...) or the signature changes."""

    def __init__(
        self,
        fn: Callable[..., Any],
        example_args: Sequence[Any] | None = None,
        example_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self._fn = fn
        self._spec = Specializer(fn)
        if example_args is not None:
            self._spec.lookup(tuple(example_args), dict(example_kwargs or {}))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        outs, (sig, structure), _ = self._spec.lookup(args, kwargs)
        return _tree.rebuild(structure, outs)


def _resolve_wrt(fn, wrt, args):
    """Positions of the arguments to differentiate, and tag names."""
    names = arg_names(fn, len(args))
    if wrt is None:
        # Arrays, floats and containers of arrays; objects holding arrays (a model passed
        # as `self`) are inputs but are differentiated only when named in `wrt`. Python ints
        # are static (a step count, a size) unless nothing else can be differentiated
        # (`Gradient(lambda x: x**2)(3)`).
        pos = [i for i, a in enumerate(args) if (isinstance(a, (list, tuple, dict)) and _tree.flatten(a)[0]) or _tree.is_leaf(a)]
        if not pos:
            pos = [i for i, a in enumerate(args) if isinstance(a, int) and not isinstance(a, bool)]
        return pos, []
    items = list(wrt) if isinstance(wrt, (tuple, list)) else [wrt]
    pos, tags = [], []
    for w in items:
        if isinstance(w, str):
            if w in names:
                pos.append(names.index(w))
            elif w in _keyword_only(fn):
                raise WrtError(
                    f"wrt='{w}' names a keyword-only argument of {_fname(fn)}; only positional arguments "
                    f"can be differentiated: declare '{w}' before the `*` (it can still be passed as {w}=...)"
                )
            else:
                tags.append(w)
        elif isinstance(w, (int, np.integer)) and not isinstance(w, bool):
            if not 0 <= int(w) < len(args):
                raise WrtError(f"wrt={w} is out of range: the function was given {len(args)} arguments")
            pos.append(int(w))
        else:
            hits = [i for i, a in enumerate(args) if a is w]
            if not hits:
                raise WrtError(
                    "wrt= names an object that is not among the positional arguments; pass the argument "
                    "object itself, its name or its index (keyword-only arguments cannot be differentiated)"
                )
            pos.append(hits[0])
    return pos, tags


def _keyword_only(fn):
    """The names of `fn`'s keyword-only parameters (none when it has no signature)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind == p.KEYWORD_ONLY]


def _leaf_ranges(args):
    """For each positional argument, the range of its leaves in the flattened call."""
    out, k = [], 0
    for a in args:
        n = len(_tree.flatten(a)[0])
        out.append(range(k, k + n))
        k += n
    return out


class Gradient(_Traced):
    """Gradient of a scalar-valued `fn` with respect to some of its arguments.

    `Gradient(fn, example_args=None, wrt=None)(*args)` returns a list with one gradient per
    differentiated argument (all array arguments by default), each shaped like it. `wrt`
    takes argument names, indices, the argument objects themselves, or `tag` names.
    Integer arguments that are differentiated are promoted to float64.
    """

    def __init__(
        self, fn: Callable[..., Any], example_args: Sequence[Any] | None = None, wrt: Any = None, *, with_value: bool = False
    ) -> None:
        self._fn = fn
        self._wrt = wrt
        self._with_value = with_value
        self._targets_cache: dict = {}
        if example_args is not None and wrt is not None:
            self._pos, self._tags = _resolve_wrt(fn, wrt, list(example_args))
            self._wrt = self._pos + self._tags
        self._spec = Specializer(
            fn, self._transform, promote=self._promote, check=self._check, out_plan=self._out_plan
        )
        self._native = self._spec.native
        self._direct = False
        self._params = None
        self.__autodiff__ = ("grad", fn, None, with_value, "list")
        if example_args is not None:
            self(*example_args)

    def _targets(self, args):
        if (
            isinstance(self._wrt, (list, tuple))
            and all(isinstance(w, (int, str)) for w in self._wrt)
            or isinstance(self._wrt, (int, str))
            or self._wrt is None
        ):
            key = (
                len(args),
                self._wrt is None and tuple(type(a) is np.ndarray or isinstance(a, (float, np.generic)) for a in args),
            )
            hit = self._targets_cache.get(key)
            if hit is None:
                hit = self._targets_cache[key] = _resolve_wrt(self._fn, self._wrt, list(args))
            return hit
        return _resolve_wrt(self._fn, self._wrt, list(args))

    def _out_plan(self, args):
        """How `__call__` groups the flat outputs for these arguments (see `_group`): the
        value first when asked for, then one item per differentiated argument."""
        plan = [("leaf", 1)] if self._with_value else []
        return plan + _plan(args, self._targets(args)[0])

    def _promote(self, args):
        args = _promote_ints(args, self._targets(args)[0])
        pos, _ = self._targets(args)
        ranges = _leaf_ranges(args)
        return [k for p in pos for k in ranges[p]]

    def _transform(self, tr, sig):
        scalar, wrt = self._targets_of(tr, sig)
        if scalar:
            return _for_derivative(tr).grad(wrt, 0, self._with_value)
        # scalar code (a gradient first called on 0-d inputs) called on arrays:
        # `Gradient(lambda x: (x + 1)**2, [np.zeros(())])(np.arange(3.0))` is [2, 4, 6], as the
        # seed thread expects, when the function is elementwise at these shapes
        elementwise = tr.elementwise_grad(wrt, self._with_value) if wrt and self._scalar_code() else None
        if elementwise is not None:
            return elementwise
        self._not_scalar(tr)

    def _not_scalar(self, tr):
        shapes = tr.output_shapes()
        found = (
            "several outputs" if len(shapes) != 1 else f"an output of shape {tuple(shapes[0])} and dtype {tr.output_dtypes()[0]}"
        )
        raise NotScalarError(
            f"Gradient needs a function returning one float scalar, but {_fname(self._fn)} returns {found}; "
            "use autodiff.jacobian for vector outputs, or reduce it (e.g. .sum()). (A gradient first called on "
            "0-d inputs applies elementwise to arrays when the function is elementwise.)"
        )

    def _targets_of(self, tr, sig):
        """Whether the trace's output is one float scalar, and the leaves to differentiate
        (checked: no bool argument among them)."""
        shapes = tr.output_shapes()
        scalar = len(shapes) == 1 and shapes[0] == [] and tr.output_dtypes()[0] in ("float64", "float32")
        wrt = self._leaf_wrt(sig, tr) if scalar or len(shapes) == 1 else []
        for k in wrt:
            if isinstance(k, int) and tr.input_dtypes()[k] == "bool":
                raise TypeError(f"cannot differentiate with respect to the boolean argument '{tr.input_names[k]}'")
        return scalar, wrt

    def _scalar_code(self):
        """Whether this gradient was called on 0-d inputs only (its function is scalar code)."""
        return any(all(s == () for s, _ in key[1]) for key in self._spec.cache)

    def _check(self, tr, compiled, sig, values, outs=None, base=None):
        """Self-check of a fresh gradient: grad·v against finite differences of the traced
        function along a random direction v (float64 inputs; tags are not perturbed).
        `outs`: the compiled gradient's outputs at `values`; `base`: the traced function's
        (each computed here when not given)."""
        wrt = [k for k in self._leaf_wrt(sig, tr) if isinstance(k, int)]
        xs = [np.asarray(values[k]) for k in wrt]
        if not wrt or any(x.dtype != np.float64 for x in xs) or tr.stops_gradient() or tr.low_precision():
            return
        if outs is None:
            outs, _ = compiled.run(values)
        if outs is None:
            return
        grads = outs[1:] if self._with_value else outs
        if base is None:
            base, _ = tr.run(values)
        if base is None:
            return
        vs = _directions(xs, symmetric=tr.has_cholesky())
        slope = float(sum(_dot(g, v) for g, v in zip(grads, vs)))
        # the traced formula, also where a nearby input would re-trace (another branch, a
        # while loop's other trip count): its derivative is what the gradient computes
        probe = tr.unguarded()

        def f_at(t):
            moved = list(values)
            for k, x, v in zip(wrt, xs, vs):
                moved[k] = x + t * v
            out, _ = probe.run(moved)
            return None if out is None else float(np.sum(out[0]))

        # A rolled loop runs once per evaluation, its time per iteration mostly fixed costs:
        # x + hv and x - hv go through one run of the trace batched over the pair.
        pair = probe.vmap([k in wrt for k in range(len(values))], 2) if tr.rolled_loops else None

        def f_pair(t):
            moved = list(values)
            for k, x, v in zip(wrt, xs, vs):
                moved[k] = np.stack([x + t * v, x - t * v])
            out, _ = pair.run(moved)
            if out is None:
                return None, None
            both = np.asarray(out[0], dtype=np.float64).reshape(2, -1)
            return float(np.sum(both[0])), float(np.sum(both[1]))

        # (the sum: an elementwise derivative is the gradient of the output's sum)
        directional_check(
            self._fn,
            f_at,
            float(np.sum(base[0])),
            slope,
            xs,
            vs,
            f_pair=f_pair if pair is not None else None,
            jumps=tr.has_jumps(),
        )

    def _leaf_wrt(self, sig, tr):
        args = _placeholders(sig)
        pos, tags = self._targets(args)
        leaves = []
        for p in pos:
            leaves.extend(int(i) for i in _tree.flatten(args[p])[0])
        for t in tags:
            if t not in tr.tags:
                raise WrtError(f"wrt='{t}' is neither an argument of {_fname(self._fn)} nor a tag in it")
            leaves.append(t)
        if not leaves:
            raise WrtError(f"{_fname(self._fn)} has no array arguments to differentiate")
        return leaves

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            if self._params is None:
                self._params = _params(self._fn)
            args, kwargs = _positional(self._params, args, kwargs)
        if not kwargs and self._direct:
            # The native path: float64 arrays/floats (or flat lists/tuples of float64
            # arrays) as arguments; it groups the outputs as `_group` would (see below).
            outs = self._native(args)
            if outs is not None:
                return (outs[0], outs[1:]) if self._with_value else outs
        if self._wrt is not None and not _by_position(self._wrt):
            # wrt= given as argument objects: resolved against this call's arguments
            self._pos, self._tags = _resolve_wrt(self._fn, self._wrt, list(args))
            self._wrt = self._pos + self._tags
        pos, _ = self._targets(args)
        if not all(type(a) is np.ndarray for a in args):
            args = _promote_ints(args, pos)
        outs, (sig, structure), tr = self._spec.lookup(args, kwargs)
        # With wrt fixed by position, every argument a float64 array or a float (the only
        # calls the native path takes), `pos` and the result's grouping are the same for
        # every call: the result is the output list (regrouped per leaf: the same items).
        self._direct = self._wrt is None or _by_position(self._wrt)
        if self._with_value:
            value, outs = outs[0], outs[1:]
            if structure[0] == "single" and _is_float16(structure[1]) or (
                structure[0] == "tree" and len(structure[2]) == 1 and _is_float16(structure[2][0])
            ):
                value = np.asarray(value).astype(np.float16)  # a float16 result stays float16
        outs = _in_leaf_dtypes(args, pos, outs)
        if len(outs) == len(pos) and all(type(args[p]) is np.ndarray for p in pos):
            return (value, outs) if self._with_value else outs
        grads = _group(args, pos, outs)
        return (value, grads) if self._with_value else grads

    def _text_labels(self, tr, sig):
        names = [n for n in (tr.input_names or [])]
        args = _placeholders(sig)
        pos, tags = self._targets(args)
        ranges = _leaf_ranges(args)
        wrt = [names[k] for p in pos for k in ranges[p]] + list(tags)
        if len(wrt) == 1:
            return None, f"{', '.join(names)} ↦"
        return [f"∂/∂{w}" for w in wrt], None


def _directions(xs, symmetric=False):
    """A random direction for the finite-difference self-check, one piece per array, with
    entries uniform in [-1, 1) (fixed seed: a fresh trace is checked the same way each
    time; uniform draws cost a fifth of normal ones on large parameters). `symmetric`:
    square matrices (last two axes) get symmetric pieces — a Cholesky factorization reads
    one triangle while its derivative is that of the symmetric part, and the two agree
    along symmetric directions only."""
    rng = np.random.default_rng(0)
    vs = [rng.random(x.shape) * 2.0 - 1.0 for x in xs]
    if symmetric:
        vs = [(v + np.swapaxes(v, -1, -2)) / 2 if v.ndim >= 2 and v.shape[-1] == v.shape[-2] else v for v in vs]
    return vs


def _specialized_note(tr):
    """A comment heading exported source: it is the traced path only (the branches taken
    and the trip counts of data-dependent loops at the traced inputs), where the compiled
    function checks guards and re-traces."""
    guards = tr.guards
    if not guards:
        return ""
    lines = "".join(f"#   - {g}\n" for g in guards[:10])
    more = f"#   ... and {len(guards) - 10} more\n" if len(guards) > 10 else ""
    return (
        "# Specialized to the traced path: this code takes the branches and loop trip counts\n"
        "# the traced call took, and checks none of them (the compiled function re-traces\n"
        "# when one changes). Recorded at:\n" + lines + more
    )


def _for_derivative(tr):
    """The trace to differentiate: a trace with rolled loops is simplified first, so the
    rows of a loop's stacked results read back one by one (`ys.append(h)` then
    `np.stack(ys)`) are the stacked value again before reverse mode sees them (else each
    row's cotangent is padded to the whole stack: O(N²) per call)."""
    return tr.simplified() if tr.rolled_loops else tr


def _symmetric(v):
    """Whether `v` is not a square matrix (last two axes), or is a symmetric one."""
    return v.ndim < 2 or v.shape[-1] != v.shape[-2] or np.array_equal(v, np.swapaxes(v, -1, -2))


def _dot(a, b):
    """sum(a * b) over all entries, as float64, without a temporary product array."""
    a = np.asarray(a, dtype=np.float64)
    return float(np.dot(a.ravel(), np.asarray(b).ravel()))


def _by_position(wrt):
    items = wrt if isinstance(wrt, (list, tuple)) else [wrt]
    return all(isinstance(w, (int, str, np.integer)) and not isinstance(w, bool) for w in items)


def _params(fn):
    """The names of `fn`'s parameters, with whether each may be passed by keyword or
    position (read once per Gradient: `_positional` runs on every keyword call)."""
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return ()
    return tuple((p.name, p.kind is p.POSITIONAL_OR_KEYWORD) for p in params)


def _positional(params, args, kwargs):
    """Keyword arguments that name positional parameters (`params`, from `_params`),
    moved into place (so that `Gradient(f)(x=..., y=...)` differentiates x and y as
    `Gradient(f)(x, y)` does)."""
    if not params:
        return args, kwargs
    args, kwargs = list(args), dict(kwargs)
    for name, positional in params[len(args) :]:
        if not positional or name not in kwargs:
            break
        args.append(kwargs.pop(name))
    return tuple(args), kwargs


def _plan(args, pos):
    """The native table's grouping of the per-leaf outputs of the arguments at `pos` (see
    `_group`): one item per argument, a list/tuple of arrays as a list/tuple of its
    gradients. Used only for calls the native table reads (arrays, floats, flat
    lists/tuples of float64 arrays)."""
    plan = []
    for p in pos:
        t = type(args[p])
        plan.append((t.__name__, len(args[p])) if t is list or t is tuple else ("leaf", 1))
    return plan


def _group(args, pos, outs):
    """Flat per-leaf results regrouped like the arguments at `pos` (then any extra, e.g.
    tag gradients, as they are)."""
    grouped, k = [], 0
    for p in pos:
        a = args[p]
        t = type(a)
        if t is np.ndarray:
            grouped.append(outs[k])
            k += 1
            continue
        if (t is list or t is tuple) and all(type(e) is np.ndarray for e in a):
            # a flat list/tuple of arrays: what flatten + unflatten would build
            grouped.append(t(outs[k : k + len(a)]))
            k += len(a)
            continue
        idx, _, tdef = _tree.flatten(a)
        grouped.append(_tree.unflatten(tdef, outs[k : k + len(idx)]))
        k += len(idx)
    grouped.extend(outs[k:])
    return grouped


def _placeholders(sig):
    """The positional arguments of a signature with each array leaf replaced by its index."""
    return _tree.unflatten(sig.treedef, [np.float64(i) for i in range(len(sig.names))])[0]


def _promote_ints(args, pos):
    out = list(args)
    for p in pos:
        a = out[p]
        if isinstance(a, bool) or (isinstance(a, np.ndarray) and a.dtype == bool):
            raise TypeError(f"cannot differentiate with respect to a boolean argument (argument {p})")
        if isinstance(a, (int, np.integer)):
            out[p] = np.float64(a)
        elif isinstance(a, np.ndarray) and a.dtype.kind in "iu":
            out[p] = a.astype(np.float64)
    return tuple(out)


class HessianVector(_Traced):
    """Hessian-vector products of a scalar `fn`: `hv(*args, vectors=v)` returns
    `[H v]` per differentiated argument (forward-over-reverse)."""

    def __init__(
        self, fn: Callable[..., Any], example_args: Sequence[Any] | None = None, wrt: Any = None, vectors: Any = None
    ) -> None:
        self._fn = fn
        self._grad = Gradient(fn, None, wrt)
        self._spec = Specializer(
            fn, self._transform, promote=self._grad._promote, check=self._check, out_plan=self._out_plan
        )
        self._native = self._spec.native
        self._direct = False
        if example_args is not None and vectors is not None:
            self(*example_args, vectors=vectors)

    def _transform(self, tr, sig):
        scalar, wrt = self._grad._targets_of(tr, sig)
        if not scalar:
            self._grad._not_scalar(tr)
        return _for_derivative(tr).hvp(wrt)

    def _check(self, tr, compiled, sig, values, outs=None, base=None):
        """Self-check of a fresh Hessian-vector product: w·Hv against finite differences of
        w·grad along v (w random). `outs`: the compiled product at `values` (run here when
        not given)."""
        wrt = [k for k in self._grad._leaf_wrt(sig, tr) if isinstance(k, int)]
        n = len(sig.names)
        xs = [np.asarray(values[k]) for k in wrt]
        vs = [np.asarray(v, dtype=np.float64) for v in values[n:]]
        if not wrt or len(vs) != len(wrt) or any(x.dtype != np.float64 for x in xs) or tr.stops_gradient() or tr.low_precision():
            return
        if tr.has_cholesky() and not all(_symmetric(v) for v in vs):
            return  # the factorization reads one triangle: only symmetric vectors compare
        if outs is None:
            outs, _ = compiled.run(values)
        gtr = tr.unguarded().grad(wrt)
        try:
            gbase, _ = gtr.run(values[:n])
        except MemoryError:
            return  # too large to evaluate: no verdict
        if outs is None or gbase is None:
            return
        ws = _directions(xs)
        slope = float(sum(_dot(h, w) for h, w in zip(outs, ws)))

        def g_at(t):
            moved = list(values[:n])
            for k, x, v in zip(wrt, xs, vs):
                moved[k] = x + t * v
            out, _ = gtr.run(moved)
            return None if out is None else float(sum(_dot(g, w) for g, w in zip(out, ws)))

        base = float(sum(_dot(g, w) for g, w in zip(gbase, ws)))
        directional_check(self._fn, g_at, base, slope, xs, vs, "Hessian-vector product", jumps=tr.has_jumps())

    def _out_plan(self, args):
        return _plan(args, self._grad._targets(args)[0])

    def __call__(self, *args: Any, vectors: Any) -> list[Any]:
        if self._direct:
            # The native path: the vectors are read as one more argument (the transform
            # appends them as inputs), the outputs grouped as `_group` does below.
            outs = self._native(args + (vectors,))
            if outs is not None:
                return outs
        pos, _ = self._grad._targets(args)
        args = _promote_ints(args, pos)
        vs = vectors if isinstance(vectors, (list, tuple)) else [vectors]
        vleaves = []
        for v in vs:
            vleaves.extend(np.asarray(x, dtype=np.float64) for x in _tree.flatten(v)[0])
        # The vectors are extra inputs appended by the transform.
        outs, _, _ = self._spec.lookup(args, {}, vleaves, vectors)
        self._direct = self._grad._wrt is None or _by_position(self._grad._wrt)
        return _group(args, pos, list(outs))

    def _text_labels(self, tr, sig):
        return None, "H·v ="


def _is_float16(kind):
    try:
        return kind is not None and np.dtype(kind) == np.float16
    except TypeError:  # a Python type (float, int)
        return False


def _in_leaf_dtypes(args, pos, outs):
    """Gradients of float16 leaves as float16 (the engine computes them in float64, as
    it computes float16 values): a gradient has the dtype of what it differentiates."""
    leaves = [leaf for p in pos for leaf in _tree.flatten(args[p])[0]]
    if len(leaves) != len(outs) or not any(getattr(leaf, "dtype", None) == np.float16 for leaf in leaves):
        return outs
    return [
        np.asarray(o).astype(np.float16) if getattr(leaf, "dtype", None) == np.float16 else o
        for leaf, o in zip(leaves, outs)
    ]


def grad(fn: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """`grad(f)(x, ...)`: the gradient of scalar `f` w.r.t. argument `argnums` (an int gives
    one array, a tuple gives a tuple)."""
    g = Gradient(fn, wrt=argnums)
    single = isinstance(argnums, int)

    def grad_fn(*args, **kwargs):
        if not kwargs and g._direct:  # Gradient.__call__'s native path, one layer less
            out = g._native(args)
            if out is not None:
                return out[0] if single else tuple(out)
        out = g(*args, **kwargs)
        return out[0] if single else tuple(out)

    grad_fn.gradient = g
    grad_fn.__autodiff__ = (
        "grad",
        fn,
        _argnums_list(argnums),
        False,
        "single" if isinstance(argnums, int) else "tuple",
    )
    return grad_fn


def value_and_grad(fn: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """`value_and_grad(f)(x, ...)` returns `(f(x, ...), grad)` from one evaluation."""
    g = Gradient(fn, wrt=argnums, with_value=True)
    single = isinstance(argnums, int)

    def vg(*args, **kwargs):
        if not kwargs and g._direct:  # Gradient.__call__'s native path, one layer less
            out = g._native(args)
            if out is not None:
                return out[0], (out[1] if single else tuple(out[1:]))
        value, out = g(*args, **kwargs)
        return value, (out[0] if single else tuple(out))

    vg.gradient = g
    vg.__autodiff__ = ("grad", fn, _argnums_list(argnums), True, "single" if isinstance(argnums, int) else "tuple")
    return vg


def _fname(fn):
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _ident(fn):
    n = getattr(fn, "__name__", "f")
    return n if n.isidentifier() else "f"


def _argnums_list(argnums):
    return [argnums] if isinstance(argnums, int) else list(argnums)


def _leaf_indices(args, argnums):
    ranges = _leaf_ranges(args)
    return [k for p in argnums for k in ranges[p]]


class _Derivative(_Traced):
    """A transform of `fn` (jacobian, hessian) compiled per signature."""

    def __init__(self, fn, argnums, kind, mode="auto"):
        self._fn, self._argnums, self._kind, self._mode = fn, argnums, kind, mode
        self._spec = Specializer(fn, self._transform, promote=lambda a: _leaf_indices(a, _argnums_list(argnums)))
        self.__autodiff__ = (kind, fn, _argnums_list(argnums), False, "single" if isinstance(argnums, int) else "tuple")

    def _transform(self, tr, sig):
        args = _placeholders(sig)
        wrt = [int(i) for p in _argnums_list(self._argnums) for i in _tree.flatten(args[p])[0]]
        if self._kind == "hessian":
            shapes = tr.output_shapes()
            if len(shapes) != 1 or shapes[0] != []:
                raise NotScalarError(
                    f"hessian needs a function returning one scalar; {_fname(self._fn)} returns shapes {shapes}"
                )
            return tr.grad(wrt).jacobian(wrt, self._mode)
        return tr.jacobian(wrt, self._mode)

    def __call__(self, *args: Any) -> Any:
        args = _promote_ints(args, _argnums_list(self._argnums))
        outs, (sig, structure), _ = self._spec.lookup(args, {})
        nw = len(_argnums_list(self._argnums))
        rows = [tuple(outs[i : i + nw]) for i in range(0, len(outs), nw)]
        rows = [r[0] if isinstance(self._argnums, int) else r for r in rows]
        return rows[0] if len(rows) == 1 else tuple(rows)


def jacobian(fn: Callable[..., Any], argnums: int | Sequence[int] = 0, mode: str = "auto") -> _Derivative:
    """`jacobian(f)(x)`: d f / d x shaped `f(x).shape + x.shape`. `mode` is "fwd"
    (one forward sweep per input element), "rev" (one reverse sweep per output element)
    or "auto" (the fewer)."""
    return _Derivative(fn, argnums, "jacobian", mode)


def jacfwd(fn: Callable[..., Any], argnums: int | Sequence[int] = 0) -> _Derivative:
    """`jacobian` in forward mode."""
    return jacobian(fn, argnums, "fwd")


def jacrev(fn: Callable[..., Any], argnums: int | Sequence[int] = 0) -> _Derivative:
    """`jacobian` in reverse mode."""
    return jacobian(fn, argnums, "rev")


def hessian(fn: Callable[..., Any], argnums: int | Sequence[int] = 0) -> _Derivative:
    """`hessian(f)(x)` of scalar `f`, shaped `x.shape + x.shape` (forward over reverse)."""
    return _Derivative(fn, argnums, "hessian", "fwd")


def jvp(fn: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Forward mode: returns `(f(*primals), J·tangents)`."""
    primals = tuple(primals)
    spec = Specializer(fn, lambda tr, sig: tr.jvp(list(range(tr.n_inputs))), promote_all=True)
    tleaves = [np.asarray(x, dtype=np.float64) for x in _tree.flatten(tuple(tangents))[0]]
    res, (sig, structure), _ = spec.lookup(primals, {}, tleaves)
    n = len(res) // 2
    return _tree.rebuild(structure, res[:n]), _tree.rebuild(structure, res[n:])


def vjp(fn: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[[Any], tuple[Any, ...]]]:
    """Reverse mode: returns `(f(*primals), vjp_fn)` with `vjp_fn(cotangent)` giving one
    gradient per primal."""
    spec = Specializer(fn, lambda tr, sig: tr, promote_all=True)
    outs, (sig, structure), tr = spec.lookup(primals, {})
    back = tr.vjp(list(range(tr.n_inputs)))
    leaves = [np.asarray(x, dtype=np.float64) for x in _tree.flatten((primals, {}))[0]]
    ranges = _leaf_ranges(primals)

    def vjp_fn(cotangent):
        cts = [np.asarray(c, dtype=np.float64) for c in _tree.flatten(cotangent)[0]]
        res, bad = back.run(leaves + cts)
        return tuple(
            _tree.unflatten(_tree.flatten(primals[p])[2], [res[k] for k in ranges[p]]) for p in range(len(primals))
        )

    return _tree.rebuild(structure, outs), vjp_fn


def hvp(fn: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """`hvp(f)(x, v)`: Hessian-vector product of scalar `f` at `x` along `v`."""
    hv = HessianVector(fn, wrt=argnums)

    def hvp_fn(*args):
        *a, v = args
        out = hv(*a, vectors=v)
        return out[0] if isinstance(argnums, int) else tuple(out)

    return hvp_fn


class _VMap(_Traced):
    """`vmap(f)(X, ...)`: `f` mapped over the leading axis of its mapped arguments.

    The trace of `f` on one example is batched op by op (a batching rule per op), so the
    whole batch runs as one graph; when an op has no batching rule, or a guard differs
    between examples, the map is compiled as an unrolled loop instead (still one graph,
    still correct)."""

    def __init__(self, fn, in_axes=0):
        self._fn, self._in_axes = fn, in_axes
        self._spec = Specializer(fn)
        self._cache: dict = {}
        self._loop = Function(self._unrolled)
        # the trace that computed the last call (batched, or the unrolled loop's): what
        # printing and the exports show, never the one-example trace it was made from
        self._last: tuple | None = None

    def _latest(self):
        if self._last is not None:
            return self._last
        return self._loop._latest()

    def _axes(self, args):
        axes = list(self._in_axes) if isinstance(self._in_axes, (list, tuple)) else [self._in_axes] * len(args)
        if len(axes) != len(args) or any(a not in (0, None) for a in axes):
            raise ValueError("vmap supports in_axes of 0 or None, one per argument")
        return axes

    def _unrolled(self, *args):
        axes = self._axes(args)
        n = min(len(a) for a, ax in zip(args, axes) if ax is not None)
        outs = [self._fn(*[a[k] if ax is not None else a for a, ax in zip(args, axes)]) for k in range(n)]
        if isinstance(outs[0], tuple):
            return tuple(np.stack([o[j] for o in outs]) for j in range(len(outs[0])))
        return np.stack(outs)

    def __call__(self, *args: Any) -> Any:
        axes = self._axes(args)
        arrs = [np.asarray(a) if ax is not None else a for a, ax in zip(args, axes)]
        sizes = {a.shape[0] for a, ax in zip(arrs, axes) if ax is not None}
        if len(sizes) != 1:
            raise ValueError(f"vmap: mapped arguments need one common leading size, got {sorted(sizes)}")
        (n,) = sizes
        key = tuple((np.shape(a), np.asarray(a).dtype.str, ax) for a, ax in zip(arrs, axes))
        batched = self._cache.get(key)
        if batched is None:
            # an empty batch is traced on an example of ones (only shapes matter then)
            example = [
                (a[0] if n else np.ones(a.shape[1:], a.dtype)) if ax is not None else a for a, ax in zip(arrs, axes)
            ]
            _, (sig, structure), tr = self._spec.lookup(tuple(example), {})
            flags = []
            for a, ax in zip(example, axes):
                flags += [ax is not None] * len(_tree.flatten(a)[0])
            bt = tr.vmap(flags, n)
            batched = self._cache[key] = (bt, structure) if bt is not None else (None, None)
        bt, structure = batched
        if bt is not None:
            leaves = _tree.flatten((tuple(arrs), {}), "args")[0]
            outs, bad = bt.run(leaves)
            if outs is not None:
                self._last = (bt, None)
                return _tree.rebuild(structure, outs)
        if n == 0:
            raise ValueError(
                f"vmap of {_fname(self._fn)} over an empty batch: its trace has no batching rule, and "
                "with no element there is nothing to map one by one"
            )
        self._last = None
        return self._loop(*args)


def vmap(fn: Callable[..., Any], in_axes: int | None | Sequence[int | None] = 0) -> _VMap:
    """`vmap(f, in_axes=0)(X, ...)`: maps `f` over the leading axis of the arguments whose
    `in_axes` entry is 0 (None leaves an argument unmapped). See `_VMap`."""
    return _VMap(fn, in_axes)


def _decorator(cls: type[_Traced]) -> Callable[..., Any]:
    def deco(fn: Any = None, **kw: Any) -> Any:
        if fn is None:
            return lambda f: deco(f, **kw)
        if isinstance(fn, staticmethod):
            return staticmethod(cls(fn.__func__, **kw))
        if isinstance(fn, classmethod):
            return classmethod(cls(fn.__func__, **kw))
        return cls(fn, **kw)

    deco.__doc__ = f"Decorator form of autodiff.{cls.__name__}; works on functions, methods, static and class methods."
    return deco


function = _decorator(Function)
gradient = _decorator(Gradient)
hessian_vector = _decorator(HessianVector)
