"""Never silently wrong, never stale.

Every value a traced function reads from outside its arguments is either checked on each
call (a change re-traces), or refused with a TraceError; every operation on a traced value
is either mirrored in the graph or refused; writes to outside state are refused. Each test
traces at one input, changes the outside state (or not), and evaluates at other inputs
against plain Python/NumPy (and gradients against finite differences).
"""

import dataclasses
import functools
import time
import types
from collections import namedtuple

import autodiff
import numpy as np
import pytest
from conftest import central_grad

X0 = np.array([0.5, -1.0, 2.0])
XS = [np.array([1.5, 0.25, -0.75]), np.array([-2.0, 3.0, 0.5])]


fd_grad = central_grad


def agrees(fn, F, G, xs=XS):
    """F (Function) and G (Gradient) of `fn` agree with plain execution at `xs`."""
    for x in xs:
        np.testing.assert_allclose(F(x), fn(x), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(G(x)[0], fd_grad(fn, x), rtol=1e-5, atol=1e-5)


def traced(fn, x0=X0):
    F, G = autodiff.Function(fn), autodiff.Gradient(fn, [x0])
    F(x0)
    G(x0)
    return F, G


# ----------------------------------------------------------------------------------------
# 4. Values read from outside the arguments are checked on every call.

PARAMS = {"w": np.ones(3), "b": 0.5}
COEFS = [1.0, 2.0]
SCALE = 2.0
NSTEPS = 2
FLAG = True
NT = namedtuple("NT", "w b")
NTG = NT(np.ones(3), 1.0)


@dataclasses.dataclass
class Cfg:
    scale: float
    w: np.ndarray


CFG = Cfg(2.0, np.ones(3))


class Klass:
    SCALE = 3.0

    def f(self, x):
        return np.sum(self.SCALE * x**2)


MOD = types.ModuleType("stale_cfg_mod")
MOD.k = 1.5
LRU_G = 2.0


@functools.cache
def lru_factor():
    return LRU_G * 2.0


class PropObj:
    @property
    def s(self):
        return SCALE * 3.0


POBJ = PropObj()


def f_dict(x):
    return np.sum(PARAMS["w"] * x**2) + PARAMS["b"]


def f_list(x):
    out = 0.0
    for k, c in enumerate(COEFS):
        out = out + c * np.sum(x ** (k + 1))
    return out


def f_scalars(x):
    y = x
    for _ in range(NSTEPS):
        y = y * SCALE
    return np.sum(y**2) if FLAG else np.sum(y)


def f_namedtuple(x):
    return np.sum(NTG.w * x**2) * NTG.b


def f_dataclass(x):
    return np.sum(CFG.w * np.sin(x)) * getattr(CFG, "scale")  # noqa: B009 (the builtin is tested)


def f_class_attr(x):
    return Klass().f(x) + Klass.SCALE * np.sum(x)


def f_globals_dict(x):
    return np.sum(globals()["SCALE"] * x**2)


class Other(Klass):
    SCALE = -2.0


def f_global_class(x):
    return KLASS().f(x)


KLASS = Klass


def f_module_attr(x):
    return np.sum(np.exp(MOD.k * x))


def f_lru(x):
    return np.sum(lru_factor() * x**2)


def f_property(x):
    return np.sum(POBJ.s * x**2)


def _set(name, value):
    globals()[name] = value


CHANGES = {
    f_dict: [
        lambda: PARAMS["w"].__isub__(0.5),
        lambda: PARAMS.__setitem__("w", np.array([1.0, 2.0, 3.0])),
        lambda: PARAMS.__setitem__("b", 4.0),
    ],
    f_list: [lambda: COEFS.__setitem__(1, 5.0), lambda: COEFS.append(-1.0)],
    f_scalars: [lambda: _set("SCALE", 3.0), lambda: _set("NSTEPS", 3), lambda: _set("FLAG", False)],
    f_namedtuple: [lambda: NTG.w.__imul__(2.0), lambda: _set("NTG", NTG._replace(b=3.0))],
    f_dataclass: [lambda: setattr(CFG, "scale", -1.0), lambda: CFG.w.__iadd__(1.0)],
    f_class_attr: [lambda: setattr(Klass, "SCALE", 5.0)],
    f_globals_dict: [lambda: _set("SCALE", -4.0)],
    f_global_class: [lambda: _set("KLASS", Other)],
    f_module_attr: [lambda: setattr(MOD, "k", -0.5)],
    f_lru: [lambda: (_set("LRU_G", 5.0), lru_factor.cache_clear())],
    f_property: [lambda: _set("SCALE", 7.0)],
}


@pytest.mark.parametrize("fn", list(CHANGES), ids=lambda f: f.__name__)
def test_outside_values_changed_between_calls_retrace(fn):
    saved = {k: globals()[k] for k in ("SCALE", "NSTEPS", "FLAG", "NTG", "LRU_G", "KLASS")}
    saved_params = dict(PARAMS, w=PARAMS["w"].copy())
    saved_coefs, saved_k, saved_cfg = list(COEFS), MOD.k, (CFG.scale, CFG.w.copy())
    try:
        F, G = traced(fn)
        agrees(fn, F, G)
        for change in CHANGES[fn]:
            change()
            agrees(fn, F, G)
        assert "since tracing" in F.explain()
    finally:
        globals().update(saved)
        PARAMS.clear()
        PARAMS.update(saved_params)
        COEFS[:] = saved_coefs
        MOD.k = saved_k
        CFG.scale, CFG.w = saved_cfg[0], saved_cfg[1]
        Klass.SCALE = 3.0
        lru_factor.cache_clear()


def test_explain_names_the_changed_source():
    global SCALE
    F, _ = traced(f_scalars)
    try:
        SCALE = 4.0
        F(XS[0])
        assert "global 'SCALE' changed since tracing (was 2.0, now 4.0)" in F.explain()
    finally:
        SCALE = 2.0


def test_defaults_and_kwdefaults_are_checked():
    def f(x, scale=2.0, *, w=np.ones(3)):  # noqa: B008 (a mutable default, on purpose)
        return np.sum(scale * w * x**2)

    F, G = traced(f)
    agrees(f, F, G)
    f.__defaults__ = (3.0,)
    agrees(f, F, G)
    f.__kwdefaults__["w"][:] = [1.0, 2.0, 3.0]
    agrees(f, F, G)
    f.__kwdefaults__ = {"w": np.full(3, -1.0)}
    agrees(f, F, G)


def test_partial_arguments_are_checked():
    def g(w, coefs, x):
        return np.sum(w * x**2) * coefs[0]

    w, coefs = np.ones(3), [2.0]
    p = functools.partial(g, w, coefs)
    F, G = traced(p)
    agrees(p, F, G)
    w[:] = 3.0
    agrees(p, F, G)
    coefs[0] = -1.0
    agrees(p, F, G)


def test_closures_over_rebound_values_at_any_depth():
    def make():
        s, w = 2.0, np.ones(3)

        def outer():
            def f(x):
                return np.sum(s * w * x**2)

            return f

        def set_s(v):
            nonlocal s, w
            s, w = v, w + v

        return outer(), set_s

    f, set_s = make()
    F, G = traced(f)
    agrees(f, F, G)
    set_s(5.0)
    agrees(f, F, G)


def test_bound_method_self_attributes_are_checked():
    class Model:
        def __init__(self):
            self.b, self.w = 1.0, np.ones(3)

        def loss(self, x):
            return np.sum(self.w * (x - self.b) ** 2)

    m = Model()
    F, G = traced(m.loss)
    agrees(m.loss, F, G)
    m.b = 100.0
    agrees(m.loss, F, G)
    m.w = np.array([1.0, 2.0, 3.0])
    agrees(m.loss, F, G)


HELPER = None


def test_rebound_global_function_retraces():
    global HELPER

    def f(x):
        return HELPER(x)

    try:
        HELPER = lambda x: np.sum(x**2)
        F, G = traced(f)
        agrees(f, F, G)
        HELPER = lambda x: np.sum(np.sin(x))
        agrees(f, F, G)
    finally:
        HELPER = None


@pytest.mark.parametrize(
    "clock",
    [time.time, time.perf_counter, time.monotonic, time.process_time, time.time_ns],
    ids=lambda c: c.__name__,
)
def test_clock_reads_are_refused(clock):
    def f(x):
        return np.sum(x) * (clock() % 1.0)

    with pytest.raises(autodiff.TraceError, match="reads the clock") as e:
        autodiff.Function(f)(X0)
    assert "test_stale.py" in str(e.value)


def test_datetime_now_and_urandom_are_refused():
    import datetime
    import os

    for f in (
        lambda x: np.sum(x) * datetime.datetime.now().microsecond,
        lambda x: np.sum(x) * os.urandom(1)[0],
    ):
        with pytest.raises(autodiff.TraceError, match="pass the value in"):
            autodiff.Function(f)(X0)


# ----------------------------------------------------------------------------------------
# 5. Operations on traced values the engine would not see are mirrored or refused.


def f_dunders(x):
    y = x.__mul__(2.0).__add__(1.0).__rsub__(3.0).__truediv__(x.__pow__(2).__radd__(1.0))
    z = y.__pos__().__neg__().__abs__()
    rows = list(x.__iter__())
    picked = list(map(x.__getitem__, [2, 0]))
    q, r = x.__divmod__(0.7)
    s = z.sum() + rows[1] * picked[0] + r.sum() + float(x.__getitem__(1).__float__())
    return s if x.sum().__bool__() else -s


def f_polyint(x):
    return np.sum(np.polyint(x) ** 2) + np.sum(np.poly1d(x).integ().coeffs)


class Wrap:
    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None, copy=None):
        return self.a * 2.0


def f_array_protocol(x):
    return np.sum(np.asarray(Wrap(np.sin(x))) ** 2)


def f_windows(x):
    v = np.lib.stride_tricks.sliding_window_view(x, 2)
    s = np.lib.stride_tricks.as_strided(x, shape=(2, 2), strides=(8, 8))
    return np.sum(v[:, 0] * v[:, 1]) + np.sum(s**3)


@pytest.mark.parametrize("fn", [f_dunders, f_polyint, f_array_protocol, f_windows], ids=lambda f: f.__name__)
def test_operations_behind_the_engines_back_are_mirrored(fn):
    F, G = traced(fn)
    agrees(fn, F, G, XS + [-X0])


def f_interface(x):
    return np.sum(np.asarray(types.SimpleNamespace(__array_interface__=x.__array_interface__)))


def f_frombuffer(x):
    return np.sum(np.frombuffer(x.data))


def f_str_roundtrip(x):
    return float(str(x[0])) * np.sum(x)


def f_fstring_roundtrip(x):
    return float(f"{x[0]:.6f}") * np.sum(x)


def f_flat_write(x):
    a = np.zeros(3)
    a.flat[1] = x[0]
    return np.sum(a * x)


def f_fill_diagonal(x):
    a = np.zeros((3, 3))
    np.fill_diagonal(a, x)
    return np.sum(a @ x)


def f_contains(x):
    return np.sum(x) if x.__contains__(2.0) else 0.0


@pytest.mark.parametrize(
    "fn",
    [f_interface, f_frombuffer, f_str_roundtrip, f_fstring_roundtrip, f_flat_write, f_contains],
    ids=lambda f: f.__name__,
)
def test_operations_that_cannot_be_mirrored_are_refused(fn):
    with pytest.raises(autodiff.TraceError) as e:
        autodiff.Gradient(fn, [X0])(X0)
    assert "test_stale.py" in str(e.value)


def test_printing_and_logging_traced_values_is_still_allowed(capsys):
    import logging

    log = logging.getLogger("autodiff.test_stale")

    def f(x):
        print(f"x = {x}", str(x[0]))
        log.warning(f"x0 = {x[0]}")  # logging reads the clock and formats: library code
        return np.sum(x**2)

    F, G = traced(f)
    agrees(f, F, G)


# ----------------------------------------------------------------------------------------
# 6. Writes to outside state are refused; writes to owned objects are fine.

GARR = np.zeros(3)
GLIST: list = []
GDICT: dict = {}
COUNT = 0
GOBJ = types.SimpleNamespace(v=0.0)


def w_global_array(x):
    GARR[0] = x[0]
    return np.sum(x)


def w_global_array_inplace(x):
    global GARR
    GARR += 1.0
    return np.sum(x)


def w_global_view(x):
    v = GARR.reshape(3)
    v[1:] = 2.0
    return np.sum(x)


def w_list_append(x):
    GLIST.append(np.sum(x))
    return np.sum(x)


def w_counter(x):
    global COUNT
    COUNT += 1
    return np.sum(x) * 2


def w_setattr(x):
    GOBJ.v = 1.0
    return np.sum(x)


def w_builtin_setattr(x):
    setattr(GOBJ, "v", 2.0)  # noqa: B010 (the builtin is what is tested)
    return np.sum(x)


def w_dict_item(x):
    GDICT["k"] = np.sum(x)
    return np.sum(x)


def w_globals_dict(x):
    globals()["COUNT"] = 5
    return np.sum(x)


def w_copyto(x):
    np.copyto(GARR, 1.0)
    return np.sum(x)


def w_out(x):
    np.add(np.ones(3), 1.0, out=GARR)
    return np.sum(x)


def w_nonlocal_factory():
    n = 0

    def f(x):
        nonlocal n
        n += 1
        return np.sum(x)

    return f


@pytest.mark.parametrize(
    "fn",
    [
        w_global_array,
        w_global_array_inplace,
        w_global_view,
        w_list_append,
        w_counter,
        w_setattr,
        w_builtin_setattr,
        w_dict_item,
        w_globals_dict,
        w_copyto,
        w_out,
        w_nonlocal_factory(),
    ],
    ids=lambda f: f.__name__ if f.__name__ != "f" else "nonlocal",
)
def test_writes_to_outside_state_are_refused(fn):
    before = (GARR.copy(), list(GLIST), dict(GDICT), COUNT, GOBJ.v)
    with pytest.raises(autodiff.TraceError, match="trace time") as e:
        autodiff.Function(fn)(X0)
    msg = str(e.value)
    assert "test_stale.py" in msg
    # The message names what is written to.
    assert any(f"'{n}'" in msg for n in ("GARR", "GLIST", "GDICT", "COUNT", "GOBJ", "n", __name__)), msg
    after = (GARR.copy(), list(GLIST), dict(GDICT), COUNT, GOBJ.v)
    np.testing.assert_array_equal(after[0], before[0])
    assert after[1:] == before[1:]


def test_method_writing_to_its_outside_self_is_refused():
    class Acc:
        def __init__(self):
            self.calls = 0

        def loss(self, x):
            self.calls += 1
            return np.sum(x**2)

    with pytest.raises(autodiff.TraceError, match="does not own"):
        autodiff.Function(Acc().loss)(X0)


def test_owned_objects_may_be_mutated():
    class Box:
        pass

    def f(x):
        acc, d, a, b = [], {}, np.zeros(3), Box()
        n = 0

        def bump():
            nonlocal n
            n += 1

        for i in range(3):
            acc.append(x[i] ** 2)
            bump()
        d["s"] = sum(acc)
        a[1:] = x[:2] * n
        a += 1.0
        b.v = d["s"]
        return b.v + np.sum(a * x)

    F, G = traced(f)
    agrees(f, F, G)


def test_arguments_may_be_mutated_and_callers_arrays_are_untouched():
    def f(x, lst):
        x *= 2.0
        lst.append(x[0])
        return np.sum(x**2) + lst[0] * lst[-1]

    x = np.array([1.0, 2.0, 3.0])
    F = autodiff.Function(f)
    got = F(x, [np.float64(0.5)])
    np.testing.assert_allclose(got, f(x.copy(), [np.float64(0.5)]))
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])


def test_library_bookkeeping_writes_are_allowed():
    """warnings.catch_warnings / np.errstate write module state from library code: not
    the user's side effects, so they stay usable inside traced functions."""
    import warnings

    def f(x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = np.log(x**2 + 1.0)
        with np.errstate(divide="ignore"):
            return np.sum(y / 2.0)

    F, G = traced(f)
    agrees(f, F, G)


# --- callables held in variables and attributes (regressions: all four went stale) ---

_ACT = np.tanh


def _uses_global_act(x):
    return np.sum(_ACT(x))


def test_a_global_rebound_to_another_library_function_retraces():
    global _ACT
    x = np.arange(3.0)
    F = autodiff.Function(_uses_global_act)
    try:
        np.testing.assert_allclose(F(x), np.sum(np.tanh(x)))
        _ACT = np.sin
        np.testing.assert_allclose(F(x), np.sum(np.sin(x)))
    finally:
        _ACT = np.tanh


def test_an_activation_stored_on_the_model_is_read_on_every_call():
    class Model:
        def __init__(self):
            self.activation = np.tanh

        def f(self, x):
            return np.sum(self.activation(x))

    x = np.arange(3.0)
    m = Model()
    F = autodiff.Function(m.f)
    np.testing.assert_allclose(F(x), np.sum(np.tanh(x)))
    m.activation = np.sin
    np.testing.assert_allclose(F(x), np.sum(np.sin(x)))
    g = autodiff.Gradient(m.f)
    np.testing.assert_allclose(g(x)[0], np.cos(x))


def test_a_method_patched_on_the_class_or_the_instance_retraces():
    class Net:
        def act(self, z):
            return np.tanh(z)

        def f(self, x):
            return np.sum(self.act(x))

    x = np.arange(3.0)
    n = Net()
    F = autodiff.Function(n.f)
    np.testing.assert_allclose(F(x), np.sum(np.tanh(x)))
    Net.act = lambda self, z: np.sin(z)
    np.testing.assert_allclose(F(x), np.sum(np.sin(x)))
    n.act = lambda z: z**2
    np.testing.assert_allclose(F(x), np.sum(x**2))
    # and an unchanged method is not a reason to trace again
    n2 = Net()
    G = autodiff.Gradient(n2.f)
    for _ in range(3):
        G(x)
    assert G.trace_count == 1


class _Holder:
    pass


def test_attributes_found_absent_on_outside_objects_are_checked():
    """Found by a user sweep: `getattr(obj, name, default)` and `hasattr` on an object from
    outside the function saw the attribute absent once; adding it later was ignored."""
    q, r = _Holder(), _Holder()
    F = autodiff.Function(lambda x: x.sum() * getattr(q, "scale", 1.0))
    G = autodiff.Function(lambda x: x.sum() * (2.0 if hasattr(r, "c") else 1.0))
    x = np.ones(3)
    assert F(x) == 3.0 and G(x) == 3.0
    q.scale, r.c = 4.0, 1
    assert F(x) == 12.0 and G(x) == 6.0
    del r.c
    assert G(x) == 3.0


def test_environment_variables_read_are_checked(monkeypatch):
    """Found by a user sweep: `os.environ` read by the function was a constant of the trace."""
    import os

    monkeypatch.setenv("AUTODIFF_TEST_SCALE", "1")
    F = autodiff.Function(lambda x: x.sum() * float(os.environ.get("AUTODIFF_TEST_SCALE", "1")))
    assert F(np.ones(3)) == 3.0
    monkeypatch.setenv("AUTODIFF_TEST_SCALE", "3")
    assert F(np.ones(3)) == 9.0
    assert "os.environ" in F.explain()
