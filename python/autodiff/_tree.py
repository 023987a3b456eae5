"""Flattening of nested arguments and results (lists, tuples, dicts) into array leaves."""

from __future__ import annotations

import copy
import types

import numpy as np

_CONTAINERS = (list, tuple, dict)


def is_leaf(x) -> bool:
    """Array-like leaves: ndarrays, NumPy scalars and Python floats (ints and bools are
    static values unless promoted)."""
    return isinstance(x, (np.ndarray, np.generic, float)) and not isinstance(x, bool)


def flatten(tree, prefix="arg"):
    """Returns (leaves, names, treedef); `treedef` rebuilds the structure with `unflatten`."""
    leaves, names = [], []
    path = set()  # ids of the containers being walked: a cycle is an error, not a RecursionError

    def walk(x, name, depth=0):
        if isinstance(x, (list, tuple, dict)):
            if id(x) in path:
                raise TypeError(
                    f"{name} contains itself (a reference cycle); pass arguments without cycles "
                    "(or hold the cyclic structure in an object that is not an argument)"
                )
            path.add(id(x))
            try:
                return walk_container(x, name)
            finally:
                path.discard(id(x))
        if is_leaf(x):
            leaves.append(x)
            names.append(name)
            return None
        attrs = _array_attrs(x) if depth < 3 else None
        if attrs:
            keys = sorted(attrs)
            return ("object", x, keys, [walk(attrs[k], f"{name}.{k}", depth + 1) for k in keys])
        return ("static", x)

    def walk_container(x, name):
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            return ("namedtuple", type(x), [walk(v, f"{name}.{k}") for k, v in zip(x._fields, x)])
        if isinstance(x, (list, tuple)):
            return (type(x), [walk(v, f"{name}[{i}]") for i, v in enumerate(x)])
        keys = list(x.keys())
        return (dict, keys, [walk(x[k], f"{name}[{k!r}]") for k in keys])

    treedef = walk(tree, prefix)
    return leaves, names, treedef


def _array_attrs(x):
    """The attributes of a plain object that hold arrays (directly or in containers): such
    objects (models, parameter holders) are flattened so their arrays are inputs, read
    afresh on every call, never baked in as constants."""
    if (
        isinstance(x, (type, types.ModuleType, types.FunctionType, types.MethodType, str, bytes, int, bool))
        or x is None
    ):
        return None
    d = getattr(x, "__dict__", None)
    if not isinstance(d, dict):
        return None
    out = {k: v for k, v in d.items() if not k.startswith("__") and _holds_arrays(v)}
    return out or None


def _holds_arrays(v, depth=0):
    if is_leaf(v):
        return True
    if depth < 2 and isinstance(v, (list, tuple)):
        return any(_holds_arrays(e, depth + 1) for e in v)
    if depth < 2 and isinstance(v, dict):
        return any(_holds_arrays(e, depth + 1) for e in v.values())
    return False


def unflatten(treedef, leaves):
    it = iter(leaves)

    def build(t):
        if t is None:
            return next(it)
        if t[0] == "static":
            return t[1]
        if t[0] == "object":
            obj = copy.copy(t[1])
            for k, c in zip(t[2], t[3]):
                object.__setattr__(obj, k, build(c))
            return obj
        if t[0] == "namedtuple":
            return t[1](*[build(c) for c in t[2]])
        if t[0] is dict:
            return {k: build(c) for k, c in zip(t[1], t[2])}
        return t[0](build(c) for c in t[1])

    return build(treedef)


def static_key(treedef):
    """A hashable key for the static part of a tree (structure and non-array values)."""

    def key(t):
        if t is None:
            return None
        if t[0] == "static":
            v = t[1]
            try:
                hash(v)
                return ("s", type(v), v)
            except TypeError:
                return ("id", id(v))
        if t[0] == "namedtuple":
            return ("nt", t[1], tuple(key(c) for c in t[2]))
        if t[0] == "object":
            return ("o", id(t[1]), tuple(t[2]), tuple(key(c) for c in t[3]))
        if t[0] is dict:
            return ("d", tuple(map(repr, t[1])), tuple(key(c) for c in t[2]))
        return (t[0], tuple(key(c) for c in t[1]))

    return key(treedef)


def leaves_of(result):
    """Output leaves of a traced function's result (for the engine)."""
    leaves, _, _ = flatten(result, "out")
    if not leaves and not isinstance(result, _CONTAINERS):
        return [result]
    return leaves


def out_structure(result):
    """How to rebuild a traced function's result from its output arrays."""
    leaves, _, treedef = flatten(result, "out")
    if not leaves and not isinstance(result, _CONTAINERS):
        return ("single", _kind(result))
    return ("tree", treedef, [_kind(x) for x in leaves])


# the dtypes the engine computes in; other array results (int32, uint8, float16 inputs
# cast back...) are cast to their traced dtype on the way out
_ENGINE_DTYPES = frozenset(np.dtype(t) for t in (np.float64, np.float32, np.int64, np.bool_))


def _kind(x):
    if isinstance(x, np.ndarray):
        return None if x.dtype in _ENGINE_DTYPES else x.dtype
    if isinstance(x, np.generic):
        return x.dtype.type
    return type(x) if isinstance(x, (float, int, bool)) else None


def _restore(a, kind):
    if kind is None:
        return a
    if isinstance(kind, np.dtype):
        return np.asarray(a).astype(kind, copy=False)
    if isinstance(kind, type) and issubclass(kind, np.generic):
        return kind(a)
    return kind(a.item()) if kind is not float else np.float64(a)


def rebuild(structure, outs):
    """Inverse of `out_structure`: the result from the evaluated output arrays."""
    if structure[0] == "single":
        return _restore(outs[0], structure[1])
    return unflatten(structure[1], [_restore(a, k) for a, k in zip(outs, structure[2])])
