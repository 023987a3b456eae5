"""The user-facing API, following the original PyAutoDiff: `Function`, `Gradient`,
`HessianVector`, plus JAX-style `grad` and `value_and_grad`."""

from __future__ import annotations

import numpy as np

from . import _tree
from ._compile import Specializer, arg_names
from .errors import NotScalarError, WrtError


def constant(x):
    """Marks `x` as a constant inside a traced function: no gradient flows through it."""
    return x


escape = constant


def tag(x, name):
    """Names an intermediate value so that `Gradient(..., wrt=name)` can target it."""
    return x


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
    def trace(self):
        """The latest compiled trace (graph, guards), or None before the first call."""
        return self._latest()[0]

    def _text_labels(self, tr, sig):
        return None, None

    def __str__(self):
        tr, sig = self._latest()
        if tr is None:
            return f"{type(self).__name__}({_fname(self._fn)}) — not traced yet: call it or pass example_args"
        labels, header = self._text_labels(tr, sig)
        return tr.to_text(labels, header)

    def __repr__(self):
        return f"<autodiff.{type(self).__name__} of {_fname(self._fn)}>"

    def latex(self) -> str:
        tr, sig = self._latest()
        labels, _ = self._text_labels(tr, sig)
        return tr.to_latex(labels)

    def _repr_latex_(self):
        tr, _ = self._latest()
        return None if tr is None else f"$${self.latex()}$$"

    def to_source(self, name=None) -> str:
        """Runnable NumPy source of the compiled computation (no autodiff needed to run it)."""
        tr, _ = self._latest()
        return tr.to_source(name or _ident(self._fn))

    def to_python(self, name=None):
        """A plain Python function compiled from `to_source()`."""
        name = name or _ident(self._fn)
        ns: dict = {}
        exec(compile(self.to_source(name), f"<autodiff:{name}>", "exec"), ns)
        return ns[name]

    def to_sympy(self):
        import sympy

        tr, sig = self._latest()
        expr = tr.to_sympy()
        ns = {n: sympy.Symbol(n) for n in (tr.input_names or [])}
        ns["sympy"] = sympy
        return eval(expr, ns)

    def to_dot(self) -> str:
        return self._latest()[0].to_dot()

    def _repr_svg_(self):
        import shutil
        import subprocess

        if shutil.which("dot") is None or self.trace is None:
            return None
        return subprocess.run(["dot", "-Tsvg"], input=self.to_dot(), capture_output=True, text=True).stdout


class Function(_Traced):
    """`fn` compiled: same results, evaluated from the traced graph; re-traces when a guard
    (a branch on data, `int(x)`, ...) or the signature changes."""

    def __init__(self, fn, example_args=None, example_kwargs=None):
        self._fn = fn
        self._spec = Specializer(fn)
        if example_args is not None:
            self._spec.lookup(tuple(example_args), dict(example_kwargs or {}))

    def __call__(self, *args, **kwargs):
        outs, (sig, structure), _ = self._spec.lookup(args, kwargs)
        return _tree.rebuild(structure, outs)


def _resolve_wrt(fn, wrt, args):
    """Positions of the arguments to differentiate, and tag names."""
    names = arg_names(fn, len(args))
    if wrt is None:
        pos = [i for i, a in enumerate(args) if _tree.flatten(a)[0] or isinstance(a, int) and not isinstance(a, bool)]
        return pos, []
    items = list(wrt) if isinstance(wrt, (tuple, list)) else [wrt]
    pos, tags = [], []
    for w in items:
        if isinstance(w, str):
            if w in names:
                pos.append(names.index(w))
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
                    "wrt= names an object that is not among the arguments; pass the argument "
                    "object itself, its name or its index"
                )
            pos.append(hits[0])
    return pos, tags


def _leaf_ranges(args):
    """For each positional argument, the range of its leaves in the flattened call."""
    out, k = [], 0
    for a in args:
        n = len(_tree.flatten(a)[0]) if not isinstance(a, (int, bool)) or isinstance(a, np.generic) else 0
        if isinstance(a, int) and not isinstance(a, bool):
            n = 0
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

    def __init__(self, fn, example_args=None, wrt=None, *, with_value=False):
        self._fn = fn
        self._wrt = wrt
        self._with_value = with_value
        if example_args is not None and wrt is not None:
            self._pos, self._tags = _resolve_wrt(fn, wrt, list(example_args))
            self._wrt = self._pos + self._tags
        self._spec = Specializer(fn, self._transform, promote=self._promote)
        if example_args is not None:
            self(*example_args)

    def _targets(self, args):
        return _resolve_wrt(self._fn, self._wrt, list(args))

    def _promote(self, args):
        args = _promote_ints(args, self._targets(args)[0])
        pos, _ = self._targets(args)
        ranges = _leaf_ranges(args)
        return [k for p in pos for k in ranges[p]]

    def _transform(self, tr, sig):
        shapes = tr.output_shapes()
        if len(shapes) != 1 or shapes[0] != [] or tr.output_dtypes()[0] not in ("float64", "float32"):
            found = "several outputs" if len(shapes) != 1 else f"an output of shape {tuple(shapes[0])} and dtype {tr.output_dtypes()[0]}"
            raise NotScalarError(
                f"Gradient needs a function returning one float scalar, but {_fname(self._fn)} "
                f"returns {found}; use autodiff.jacobian for vector outputs, or reduce it (e.g. .sum())"
            )
        wrt = self._leaf_wrt(sig, tr)
        for k in wrt:
            if isinstance(k, int) and tr.input_dtypes()[k] == "bool":
                raise TypeError(f"cannot differentiate with respect to the boolean argument '{tr.input_names[k]}'")
        return tr.grad(wrt, 0, self._with_value)

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

    def __call__(self, *args, **kwargs):
        pos, _ = self._targets(args)
        args = _promote_ints(args, pos)
        outs, (sig, _), tr = self._spec.lookup(args, kwargs)
        if self._with_value:
            value, outs = outs[0], outs[1:]
        grads, k = [], 0
        for p in pos:
            idx, _, tdef = _tree.flatten(args[p])
            part = outs[k : k + len(idx)]
            k += len(idx)
            grads.append(_tree.unflatten(tdef, part))
        grads.extend(outs[k:])
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

    def __init__(self, fn, example_args=None, wrt=None, vectors=None):
        self._fn = fn
        self._grad = Gradient(fn, None, wrt)
        self._spec = Specializer(fn, self._transform, promote=self._grad._promote)
        if example_args is not None and vectors is not None:
            self(*example_args, vectors=vectors)

    def _transform(self, tr, sig):
        g = self._grad._transform(tr, sig)  # checks scalar output and bool inputs
        del g
        return tr.hvp(self._grad._leaf_wrt(sig, tr))

    def __call__(self, *args, vectors):
        pos, _ = self._grad._targets(args)
        args = _promote_ints(args, pos)
        vs = vectors if isinstance(vectors, (list, tuple)) else [vectors]
        vleaves = []
        for v in vs:
            vleaves.extend(np.asarray(x, dtype=np.float64) for x in _tree.flatten(v)[0])
        spec = self._spec
        # The vectors are extra inputs appended by the transform: evaluate with them.
        outs, (sig, _), tr = spec.lookup(args, {})
        del outs
        leaves, _, _ = _tree.flatten((tuple(args), {}), "args")
        values = [np.asarray(x, dtype=np.float64) if np.asarray(x).dtype.kind in "iu" else x for x in leaves]
        res, bad = tr.run(values + vleaves)
        if res is None:
            raise RuntimeError("internal: guard failed after lookup")
        return list(res)

    def _text_labels(self, tr, sig):
        return None, "H·v ="


def grad(fn, argnums=0):
    """`grad(f)(x, ...)`: the gradient of scalar `f` w.r.t. argument `argnums` (an int gives
    one array, a tuple gives a tuple)."""
    g = Gradient(fn, wrt=argnums)

    def grad_fn(*args, **kwargs):
        out = g(*args, **kwargs)
        return out[0] if isinstance(argnums, int) else tuple(out)

    grad_fn.gradient = g
    return grad_fn


def value_and_grad(fn, argnums=0):
    """`value_and_grad(f)(x, ...)` returns `(f(x, ...), grad)` from one evaluation."""
    g = Gradient(fn, wrt=argnums, with_value=True)

    def vg(*args, **kwargs):
        value, out = g(*args, **kwargs)
        return value, (out[0] if isinstance(argnums, int) else tuple(out))

    vg.gradient = g
    return vg


def _fname(fn):
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _ident(fn):
    n = getattr(fn, "__name__", "f")
    return n if n.isidentifier() else "f"
