"""Pure-Python stand-ins for C callables, interpreted by the tracer when they receive traced
values (``crates/python/src/capture/table.rs``: ``Table::pure``).

The engine cannot look inside a C function such as ``functools.reduce`` or
``itertools.combinations``; written in Python, the same function is interpreted like user
code, so every operation on a traced value is recorded. Each stand-in has the semantics of
the function it replaces on the inputs it accepts; for anything else it calls the original
(which the engine then runs or refuses, without substituting again). Nothing here runs
outside a trace.
"""

import copy as _copy
import functools as _functools
import itertools as _itertools
import operator as _operator

import numpy as np

# --- operator --------------------------------------------------------------------------


def _add(a, b):
    return a + b


def _sub(a, b):
    return a - b


def _mul(a, b):
    return a * b


def _truediv(a, b):
    return a / b


def _floordiv(a, b):
    return a // b


def _mod(a, b):
    return a % b


def _pow(a, b):
    return a**b


def _matmul(a, b):
    return a @ b


def _neg(a):
    return -a


def _pos(a):
    return +a


def _abs(a):
    return abs(a)


def _getitem(a, b):
    return a[b]


def _lt(a, b):
    return a < b


def _le(a, b):
    return a <= b


def _gt(a, b):
    return a > b


def _ge(a, b):
    return a >= b


def _eq(a, b):
    return a == b


def _ne(a, b):
    return a != b


def _iadd(a, b):
    a += b
    return a


def _isub(a, b):
    a -= b
    return a


def _imul(a, b):
    a *= b
    return a


def _itruediv(a, b):
    a /= b
    return a


def _ipow(a, b):
    a **= b
    return a


def _imatmul(a, b):
    a @= b
    return a


# --- functools -------------------------------------------------------------------------


def _reduce(function, iterable, *initial):
    items = list(iterable)
    if len(initial) > 1:
        raise TypeError(f"reduce expected at most 3 arguments, got {2 + len(initial)}")
    if initial:
        value = initial[0]
    elif items:
        value = items[0]
        items = items[1:]
    else:
        raise TypeError("reduce() of empty iterable with no initial value")
    for item in items:
        value = function(value, item)
    return value


# --- itertools (finite ones; results are drained into lists) --------------------------


def _combinations(iterable, r):
    pool = tuple(iterable)
    n = len(pool)
    out = []
    if r > n:
        return iter(out)
    for idx in _itertools.combinations(range(n), r):
        out.append(tuple(pool[i] for i in idx))
    return iter(out)


def _combinations_with_replacement(iterable, r):
    pool = tuple(iterable)
    out = [tuple(pool[i] for i in idx) for idx in _itertools.combinations_with_replacement(range(len(pool)), r)]
    return iter(out)


def _permutations(iterable, r=None):
    pool = tuple(iterable)
    out = [tuple(pool[i] for i in idx) for idx in _itertools.permutations(range(len(pool)), r)]
    return iter(out)


def _product(*iterables, repeat=1):
    pools = [tuple(p) for p in iterables] * repeat
    sizes = [range(len(p)) for p in pools]
    out = [tuple(pools[k][i] for k, i in enumerate(idx)) for idx in _itertools.product(*sizes)]
    return iter(out)


def _pairwise(iterable):
    pool = list(iterable)
    return iter([(pool[i], pool[i + 1]) for i in range(len(pool) - 1)])


def _chain(*iterables):
    out = []
    for it in iterables:
        for v in it:
            out.append(v)
    return iter(out)


def _accumulate(iterable, func=None, *, initial=None):
    # a generator: each total is computed when consumed (see `_lazy_map`)
    items = iter(iterable)
    if initial is not None:
        total = initial
    else:
        empty = object()
        total = next(items, empty)
        if total is empty:
            return
    yield total
    for v in items:
        if func is not None and not callable(func):
            raise _not_callable(func)
        total = total + v if func is None else func(total, v)
        yield total


def _starmap(function, iterable):
    # a generator: each item is computed when consumed (see `_lazy_map`)
    for args in iterable:
        if not callable(function):
            raise _not_callable(function)
        yield function(*args)


def _islice(iterable, *args):
    pool = list(iterable)
    return iter([pool[i] for i in range(len(pool))[slice(*args)]])


def _zip_longest(*iterables, fillvalue=None):
    pools = [list(p) for p in iterables]
    n = max((len(p) for p in pools), default=0)
    return iter([tuple(p[i] if i < len(p) else fillvalue for p in pools) for i in range(n)])


# --- copy ------------------------------------------------------------------------------


def _plain_object(x):
    cls = type(x)
    return (
        hasattr(x, "__dict__")
        and not hasattr(cls, "__slots__")
        and cls.__reduce_ex__ is object.__reduce_ex__
        and cls.__reduce__ is object.__reduce__
        and not isinstance(x, type)
    )


def _copy_copy(x):
    cls = type(x)
    if isinstance(x, np.ndarray):
        return x.copy()
    if cls is list:
        return list(x)
    if cls is dict:
        return dict(x)
    if cls in (tuple, float, int, bool, str, frozenset) or isinstance(x, np.generic) or x is None:
        return x
    if hasattr(cls, "__copy__"):
        return x.__copy__()
    if _plain_object(x):
        new = object.__new__(cls)
        for k, v in x.__dict__.items():
            setattr(new, k, v)
        return new
    return _copy.copy(x)


def _copy_deepcopy(x, memo=None):
    if memo is None:
        memo = {}
    key = id(x)
    if key in memo:
        return memo[key]
    cls = type(x)
    if isinstance(x, np.ndarray):
        y = x.copy()
    elif cls in (float, int, bool, str, complex) or isinstance(x, np.generic) or x is None:
        return x
    elif cls is list:
        y = []
        memo[key] = y
        for v in x:
            y.append(_copy_deepcopy(v, memo))
    elif cls is tuple:
        y = tuple([_copy_deepcopy(v, memo) for v in x])
    elif isinstance(x, tuple) and hasattr(cls, "_fields"):
        y = cls(*[_copy_deepcopy(v, memo) for v in x])
    elif cls is dict:
        y = {}
        memo[key] = y
        for k, v in x.items():
            y[_copy_deepcopy(k, memo)] = _copy_deepcopy(v, memo)
    elif hasattr(cls, "__deepcopy__"):
        y = x.__deepcopy__(memo)
    elif _plain_object(x):
        y = object.__new__(cls)
        memo[key] = y
        for k, v in x.__dict__.items():
            setattr(y, k, _copy_deepcopy(v, memo))
    else:
        y = _copy.deepcopy(x, memo)
    memo[key] = y
    return y


# --- builtins --------------------------------------------------------------------------


_END = object()


def _not_callable(f):
    return TypeError(f"'{type(f).__name__}' object is not callable")


def _lazy_map(function, *iterables):
    """`map` as the engine runs it: lazy like Python's, so an item is computed when it is
    consumed, from the values its arrays hold then (an array written in place between
    `map(...)` and its use gives the new values), and each iterable gives one item per item
    (an iterator shared with other code is not used up)."""
    for args in _lazy_zip(*iterables):
        if not callable(function):
            raise _not_callable(function)
        yield function(*args)


def _lazy_zip(*iterables):
    """`zip` of iterators, lazy like Python's: `zip(it, it)` pairs consecutive items, and
    the first iterable that ends stops it (the others are not read further)."""
    its = [iter(x) for x in iterables]
    if not its:
        return
    while True:
        items = []
        for it in its:
            v = next(it, _END)
            if v is _END:
                return
            items.append(v)
        yield tuple(items)


def _lazy_enumerate(iterable, start=0):
    """`enumerate` of an iterator, lazy like Python's (a `break` leaves the rest unread)."""
    n = start
    for v in iterable:
        yield n, v
        n += 1


def _lazy_filter(function, iterable):
    """`filter`, lazy like Python's (see `_lazy_map`)."""
    for v in iterable:
        if function is not None and not callable(function):
            raise _not_callable(function)
        if v if function is None else function(v):
            yield v



def _set(iterable=()):
    # `set(d)` of a dict holds its keys only (the values are never hashed).
    if type(iterable) is dict:
        return set(iterable.keys())
    return set(iterable)


def _frozenset(iterable=()):
    if type(iterable) is dict:
        return frozenset(iterable.keys())
    return frozenset(iterable)


# --- NumPy -----------------------------------------------------------------------------


def _diff(a, n=1, axis=-1, prepend=np._NoValue, append=np._NoValue):
    # NumPy's own algorithm: the extra values are broadcast to the shape of `a` with the
    # differenced axis of length 1 and concatenated.
    a = np.asanyarray(a)
    if n == 0:
        return a
    axis = axis + a.ndim if axis < 0 else axis
    parts = []
    for extra in (prepend,):
        if extra is not np._NoValue:
            extra = np.asanyarray(extra)
            if extra.ndim == 0:
                shape = list(a.shape)
                shape[axis] = 1
                extra = np.broadcast_to(extra, tuple(shape))
            parts.append(extra)
    parts.append(a)
    if append is not np._NoValue:
        extra = np.asanyarray(append)
        if extra.ndim == 0:
            shape = list(a.shape)
            shape[axis] = 1
            extra = np.broadcast_to(extra, tuple(shape))
        parts.append(extra)
    if len(parts) > 1:
        a = np.concatenate(parts, axis)
    return np.diff(a, n, axis)


def _cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *, dtype=None):
    # numpy.cov without its in-place updates (which write through a transposed view).
    if ddof is not None and ddof != int(ddof):
        raise ValueError("ddof must be integer")
    m = np.asarray(m)
    if m.ndim > 2:
        raise ValueError("m has more than 2 dimensions")
    if y is not None:
        y = np.asarray(y)
        if y.ndim > 2:
            raise ValueError("y has more than 2 dimensions")
    if dtype is None:
        if y is None:
            dtype = np.result_type(m, np.float64)
        else:
            dtype = np.result_type(m, y, np.float64)
    X = np.array(m, ndmin=2, dtype=dtype)
    if not rowvar and m.ndim != 1:
        X = X.T
    if X.shape[0] == 0:
        return np.array([]).reshape(0, 0)
    if y is not None:
        y = np.array(y, ndmin=2, dtype=dtype)
        if not rowvar and y.shape[0] != 1:
            y = y.T
        X = np.concatenate((X, y), axis=0)
    if ddof is None:
        ddof = 0 if bias else 1
    w = None
    if fweights is not None:
        fweights = np.asarray(fweights, dtype=float)
        w = fweights
    if aweights is not None:
        aweights = np.asarray(aweights, dtype=float)
        w = aweights if w is None else w * aweights
    if w is None:
        avg = np.mean(X, axis=1)
        w_sum = X.shape[1]
        fact = X.shape[1] - ddof
    else:
        avg = np.average(X, axis=1, weights=w)
        w_sum = np.sum(w)
        if ddof == 0:
            fact = w_sum
        elif aweights is None:
            fact = w_sum - ddof
        else:
            fact = w_sum - ddof * np.sum(w * aweights) / w_sum
    if fact <= 0:
        fact = 0.0
    X = X - avg[:, None]
    X_T = X.T if w is None else (X * w).T
    c = np.dot(X, X_T.conj())
    c = c * np.true_divide(1, fact)
    return c.squeeze()


def _batch_shape(A):
    return A.shape[:-2]


def _det(a):
    a = np.asarray(a)
    if a.ndim <= 2:
        return np.linalg.det(a)
    bs = _batch_shape(a)
    return np.stack([np.linalg.det(a[i]) for i in np.ndindex(bs)]).reshape(bs)


def _inv(a):
    a = np.asarray(a)
    if a.ndim <= 2:
        return np.linalg.inv(a)
    bs = _batch_shape(a)
    return np.stack([np.linalg.inv(a[i]) for i in np.ndindex(bs)]).reshape(a.shape)


def _cholesky(a, /, *, upper=False):
    a = np.asarray(a)
    if a.ndim <= 2:
        return np.linalg.cholesky(a, upper=upper) if upper else np.linalg.cholesky(a)
    bs = _batch_shape(a)
    return np.stack([_cholesky(a[i], upper=upper) for i in np.ndindex(bs)]).reshape(a.shape)


def _slogdet(a):
    a = np.asarray(a)
    if a.ndim <= 2:
        return np.linalg.slogdet(a)
    bs = _batch_shape(a)
    parts = [np.linalg.slogdet(a[i]) for i in np.ndindex(bs)]
    sign = np.stack([p[0] for p in parts]).reshape(bs)
    logdet = np.stack([p[1] for p in parts]).reshape(bs)
    try:
        from numpy.linalg._linalg import SlogdetResult

        return SlogdetResult(sign, logdet)
    except ImportError:  # pragma: no cover (NumPy 1.x)
        return sign, logdet


def _solve(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim <= 2:
        return np.linalg.solve(a, b)
    if b.ndim == 1:
        bs = _batch_shape(a)
        return np.stack([np.linalg.solve(a[i], b) for i in np.ndindex(bs)]).reshape(bs + b.shape)
    bs = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, bs + a.shape[-2:])
    b = np.broadcast_to(b, bs + b.shape[-2:])
    return np.stack([np.linalg.solve(a[i], b[i]) for i in np.ndindex(bs)]).reshape(bs + b.shape[-2:])


def _fill_diagonal(a, val, wrap=False):
    # numpy.fill_diagonal writes through `a.flat`; the same positions as an index.
    if a.ndim < 2:
        raise ValueError("array must be at least 2-d")
    end = None
    if a.ndim == 2:
        step = a.shape[1] + 1
        if not wrap:
            end = a.shape[1] * a.shape[1]
    else:
        if not np.all(np.diff(a.shape) == 0):
            raise ValueError("All dimensions of input must be of equal length")
        step = 1 + np.cumprod(a.shape[:-1]).sum()
    pos = np.arange(a.size)[:end:step]
    v = np.ravel(np.asarray(val))
    if v.size != 1 and v.size != pos.size:
        reps = -(-pos.size // v.size)
        v = np.tile(v, reps)[: pos.size]
    a[np.unravel_index(pos, a.shape)] = v


def _lexsort(keys, axis=-1):
    keys = [np.asarray(k) for k in keys]
    if axis != -1 or any(k.ndim != 1 for k in keys):
        return np.lexsort(keys, axis)
    idx = np.arange(keys[0].shape[0])
    for k in keys:
        idx = idx[np.argsort(k[idx], kind="stable")]
    return idx


def ufunc_at(ufunc, a, indices, b=None):
    """`np.add.at(a, indices, b)` / `np.subtract.at`: a scatter-add of `b` (repeated
    indices accumulate) into `a`, in place."""
    if ufunc not in (np.add, np.subtract) or b is None:
        return ufunc.at(a, indices, b) if b is not None else ufunc.at(a, indices)
    pos = np.arange(a.size).reshape(a.shape)[indices]
    vals = np.broadcast_to(np.asarray(b), np.shape(pos))
    upd = np.bincount(np.ravel(pos), weights=np.ravel(vals), minlength=a.size).reshape(a.shape)
    if ufunc is np.subtract:
        a -= upd.astype(a.dtype)
    else:
        a += upd.astype(a.dtype)


def concat_getitem(self, key):
    """`np.r_[...]` / `np.c_[...]` of traced parts: plain items (arrays, scalars, lists and
    slices; no string directives) concatenated as NumPy does."""
    if not isinstance(key, tuple):
        key = (key,)
    ndmin = self.ndmin
    axis = self.axis
    if any(isinstance(k, str) for k in key):
        return self.__getitem__(key)
    parts = []
    for item in key:
        if isinstance(item, slice):
            item = self.__getitem__(item)
        arr = np.array(item, ndmin=ndmin) if not isinstance(item, np.ndarray) or item.ndim < ndmin else item
        if ndmin > 1 and np.ndim(item) < ndmin:
            # np.c_: a 1-D item becomes a column (trans1d=0).
            k2 = ndmin - np.ndim(item)
            axes = list(range(ndmin))
            axes = axes[k2:] + axes[:k2]
            arr = arr.transpose(axes)
        parts.append(arr)
    res = np.concatenate(tuple(parts), axis=axis)
    if self.matrix:
        return self.__getitem__(key)
    return res


def vectorize_call(self, *args, **kwargs):
    """`np.vectorize(f)(x, ...)`: `f` interpreted on each element (of the broadcast
    arguments), the results gathered into an array."""
    if kwargs or self.signature is not None or self.excluded:
        return self.__call__(*args, **kwargs)
    arrays = np.broadcast_arrays(*[np.asarray(a) for a in args])
    shape = arrays[0].shape if arrays else ()
    outs = [self.pyfunc(*[a[i] for a in arrays]) for i in np.ndindex(shape)]
    if outs and isinstance(outs[0], tuple):
        return tuple(
            _vec_result([o[j] for o in outs], shape, self.otypes, j) for j in range(len(outs[0]))
        )
    return _vec_result(outs, shape, self.otypes, 0)


def _vec_result(outs, shape, otypes, j):
    if otypes:
        return np.array(outs, dtype=otypes[j]).reshape(shape)
    return np.array(outs).reshape(shape)


REPLACE = {
    _operator.add: _add,
    _operator.sub: _sub,
    _operator.mul: _mul,
    _operator.truediv: _truediv,
    _operator.floordiv: _floordiv,
    _operator.mod: _mod,
    _operator.pow: _pow,
    _operator.matmul: _matmul,
    _operator.neg: _neg,
    _operator.pos: _pos,
    _operator.abs: _abs,
    _operator.getitem: _getitem,
    _operator.lt: _lt,
    _operator.le: _le,
    _operator.gt: _gt,
    _operator.ge: _ge,
    _operator.eq: _eq,
    _operator.ne: _ne,
    _operator.iadd: _iadd,
    _operator.isub: _isub,
    _operator.imul: _imul,
    _operator.itruediv: _itruediv,
    _operator.ipow: _ipow,
    _operator.imatmul: _imatmul,
    _functools.reduce: _reduce,
    _itertools.combinations: _combinations,
    _itertools.combinations_with_replacement: _combinations_with_replacement,
    _itertools.permutations: _permutations,
    _itertools.product: _product,
    _itertools.pairwise: _pairwise,
    _itertools.chain: _chain,
    _itertools.accumulate: _accumulate,
    _itertools.starmap: _starmap,
    _itertools.islice: _islice,
    _itertools.zip_longest: _zip_longest,
    _copy.copy: _copy_copy,
    _copy.deepcopy: _copy_deepcopy,
    set: _set,
    frozenset: _frozenset,
    np.diff: _diff,
    np.cov: _cov,
    np.linalg.det: _det,
    np.linalg.inv: _inv,
    np.linalg.cholesky: _cholesky,
    np.linalg.slogdet: _slogdet,
    np.linalg.solve: _solve,
    np.fill_diagonal: _fill_diagonal,
    np.lexsort: _lexsort,
}
# (the dunder-free `__add__` forms of `operator` are the same objects as the plain ones)
