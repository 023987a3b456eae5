"""A seeded generator of random but realistic NumPy programs, the differential checks run on
each one, and a shrinker for failing seeds.

`generate(seed)` returns a `Program`: Python source of a function of a few float arrays
(float64 or float32) returning a scalar, built statement by statement from broadcasting
arithmetic, reductions with axes and keepdims, matmul/einsum, slicing and fancy indexing,
in-place updates, branches and loops on data and helper functions. Every statement is run
on concrete inputs as it is generated, so a program always runs in plain NumPy.

`check(program)` compares, at the generating inputs and at fresh ones:
  value      autodiff.Function == the plain Python call (values and dtype)
  grad       autodiff.Gradient == central differences along random directions, and == JAX
             (`jax.grad`) where the program uses only what JAX can trace
  fast/ref   the compiled program == the reference evaluator (Function and Gradient traces)
  simplify   the simplified graph == the unsimplified one (reference evaluator)
  hvp        autodiff.HessianVector == finite differences of autodiff's gradient
  stale      a second call at new inputs == plain Python (no state kept from the first)
and returns a `Verdict` (ok, or the first failure: which check, and its message).

`shrink(program, verdict)` removes statements and return terms while the program still
fails the same check: the smallest failing program is what the regression file keeps.
"""

from __future__ import annotations

import linecache
import math
import random
import traceback
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Program", "Verdict", "generate", "check", "shrink", "load_program"]


@dataclass
class Program:
    seed: int
    dtype: str
    args: list  # [(name, shape)]; a name "ps" is a list of two arrays
    helpers: list = field(default_factory=list)  # source blocks (module level)
    stmts: list = field(default_factory=list)  # source blocks (function body, unindented)
    ret: list = field(default_factory=list)  # terms of the returned sum
    nojax: bool = False  # uses something jax.numpy cannot trace (in-place, data branches)

    def source(self) -> str:
        params = ", ".join(n for n, _ in self.args)
        lines = ["import math", "import numpy as np", ""]
        for h in self.helpers:
            lines += h.splitlines() + [""]
        lines.append(f"def f({params}):")
        for s in self.stmts:
            lines += ["    " + ln for ln in s.splitlines()]
        lines.append("    return " + (" + ".join(self.ret) if self.ret else "0.0 * np.sum(x)"))
        return "\n".join(lines) + "\n"

    def inputs(self, which: int):
        """The arguments: `which` selects the draw (0: the generating inputs, 1, 2: others)."""
        rng = np.random.default_rng([self.seed, which])
        dt = np.dtype(self.dtype)
        out = []
        for name, shape in self.args:
            if name == "ps":
                out.append([rng.standard_normal(s).astype(dt) for s in shape])
            else:
                out.append(rng.standard_normal(shape).astype(dt))
        return out

    def to_json(self):
        return {
            "seed": self.seed,
            "dtype": self.dtype,
            "args": [[n, [list(s) for s in sh] if n == "ps" else list(sh)] for n, sh in self.args],
            "helpers": self.helpers,
            "stmts": self.stmts,
            "ret": self.ret,
            "nojax": self.nojax,
        }


def load_program(d) -> Program:
    args = [(n, [tuple(s) for s in sh] if n == "ps" else tuple(sh)) for n, sh in d["args"]]
    return Program(d["seed"], d["dtype"], args, list(d["helpers"]), list(d["stmts"]), list(d["ret"]), d["nojax"])


def compile_program(p: Program, np_module=np):
    """The function `f` of the program (its source registered with linecache, so tracebacks
    and the engine's file:line messages show it)."""
    src = p.source()
    fname = f"<gen-{p.seed}-{abs(hash(src)) % 10**8}>"
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    ns = {"__name__": "gen_program"}
    exec(compile(src, fname, "exec"), ns)
    if np_module is not np:
        ns["np"] = np_module
    return ns["f"]


# --- generation ---------------------------------------------------------------------------

UNARY = [
    "np.sin({a})",
    "np.cos({a})",
    "np.tanh({a})",
    "np.exp(np.tanh({a}))",
    "np.log1p({a} * {a})",
    "np.sqrt({a} * {a} + 1.0)",
    "1.0 / (1.0 + {a} ** 2)",
    "np.tanh({a}) ** 2",
    "np.abs({a})",
    "-{a}",
    "np.maximum({a}, 0.1)",
    "np.where({a} > 0, {a}, 0.5 * {a})",
    "np.arctan({a})",
    "np.square(np.tanh({a}))",
    "{a} * 0.5 + 1.0",
    "np.log(np.cosh(np.tanh({a})))",
    "np.clip({a}, -0.5, 0.7)",
    "np.expm1(np.tanh({a}))",
    "np.sinh(np.tanh({a}))",
    "np.logaddexp({a}, 0.3)",
    "2.0 ** np.tanh({a})",
    "np.tanh({a}) ** 3",
    "np.reciprocal(2.0 + np.sin({a}))",
    "np.arcsinh({a})",
]
BINARY = [
    "{a} + {b}",
    "{a} - {b}",
    "{a} * {b}",
    "{a} / (1.5 + np.sin({b}))",
    "np.maximum({a}, {b})",
    "np.minimum({a}, {b})",
    "np.arctan2({a}, 1.0 + {b} ** 2)",
    "np.hypot({a}, {b})",
    "np.where({a} > {b}, {a}, {b} * 0.5)",
    "np.add({a}, {b})",
    "np.multiply({a}, np.tanh({b}))",
    "({a} - {b}) ** 2",
    "np.logaddexp({a}, {b})",
]
REDUCE = ["sum", "mean", "max", "min", "prod", "var"]  # std: see test_generated (nan at zero spread)


class _Gen:
    def __init__(self, seed):
        self.seed = seed
        self.r = random.Random(seed)
        r = self.r
        self.dtype = "float32" if r.random() < 0.25 else "float64"
        m, k, n = r.choice([2, 3, 4]), r.choice([2, 3, 4, 5]), r.choice([2, 3])
        shapes = [("x", (m, k))]
        opts = [("y", (k,)), ("w", (k, n)), ("s", ()), ("z", (m, k)), ("u", (m, 1)), ("t", (n, m, k))]
        for name, sh in r.sample(opts, r.randint(1, 3)):
            shapes.append((name, sh))
        if r.random() < 0.2:
            shapes.append(("ps", [(k,), (m,)]))
        self.prog = Program(seed, self.dtype, shapes)
        self.rng = np.random.default_rng([seed, 0])
        self.env = {}  # name -> concrete value
        self.ns = {"np": np, "math": math}
        for name, sh in shapes:
            if name == "ps":
                self.env["p0"] = self.rng.standard_normal(sh[0]).astype(self.dtype)
                self.env["p1"] = self.rng.standard_normal(sh[1]).astype(self.dtype)
            else:
                self.env[name] = self.rng.standard_normal(sh).astype(self.dtype)
        if any(n == "ps" for n, _ in shapes):
            self.prog.stmts.append("p0, p1 = ps")
        self.count = 0
        self.nhelp = 0

    # helpers
    def pick(self, pred=lambda v: True):
        names = [n for n, v in self.env.items() if pred(np.asarray(v))]
        if not names:
            return None
        # prefer recent values: programs are chains, not bags of unrelated values
        names.sort(key=lambda n: self.order(n))
        w = [1 + i for i in range(len(names))]
        return self.r.choices(names, weights=w)[0]

    def order(self, n):
        return int(n[1:]) + 100 if n.startswith("v") and n[1:].isdigit() else 0

    def new(self):
        self.count += 1
        return f"v{self.count}"

    def try_stmt(self, code, target, nojax=False, helper=None):
        """Runs `code` on the concrete environment; keeps it when it defines `target` as a
        finite, moderate array."""
        ns = dict(self.ns)
        ns.update(self.env)
        if helper is not None:
            try:
                exec(helper, ns)
            except Exception:
                return False
        try:
            with np.errstate(all="raise"):
                exec(code, ns)
        except Exception:
            return False
        v = ns.get(target)
        if v is None or isinstance(v, (bool, np.bool_)):
            return False
        a = np.asarray(v)
        if a.dtype.kind != "f" or a.size == 0 or a.size > 400 or not np.all(np.isfinite(a)):
            return False
        if a.size and np.max(np.abs(a)) > 1e4:
            return False
        if a.dtype != np.dtype(self.dtype) and a.ndim > 0:
            return False  # a dtype change would only be a float64 promotion: keep programs in one dtype
        self.env[target] = v
        if helper is not None:
            self.prog.helpers.append(helper)
            self.ns[helper.split("(")[0].split()[-1]] = ns[helper.split("(")[0].split()[-1]]
        self.prog.stmts.append(code)
        self.prog.nojax |= nojax
        return True

    # statement kinds
    def s_unary(self):
        a = self.pick()
        v = self.new()
        return self.try_stmt(f"{v} = " + self.r.choice(UNARY).format(a=a), v)

    def s_binary(self):
        a = self.pick()
        sa = np.shape(self.env[a])
        b = self.pick(lambda x: _bcast(sa, x.shape))
        if b is None:
            return False
        v = self.new()
        return self.try_stmt(f"{v} = " + self.r.choice(BINARY).format(a=a, b=b), v)

    def s_scalar_mix(self):
        a = self.pick()
        s = self.pick(lambda x: x.ndim == 0)
        if s is None:
            return False
        v = self.new()
        form = self.r.choice(["{a} * {s}", "{a} + np.sin({s})", "{a} * float({s})", "{a} - math.tanh({s})"])
        return self.try_stmt(f"{v} = " + form.format(a=a, s=s), v, nojax="float(" in form or "math." in form)

    def s_reduce(self):
        a = self.pick(lambda x: x.ndim >= 1)
        if a is None:
            return False
        nd = np.ndim(self.env[a])
        op = self.r.choice(REDUCE)
        axis = self.r.choice([None] + list(range(-nd, nd)) + ([(0, 1)] if nd >= 2 else []))
        kd = self.r.random() < 0.4
        v = self.new()
        inner = f"np.tanh({a})" if op == "prod" else a
        if self.r.random() < 0.5:
            code = f"{v} = np.{op}({inner}, axis={axis!r}" + (", keepdims=True)" if kd else ")")
        else:
            code = f"{v} = ({inner}).{op}(axis={axis!r}" + (", keepdims=True)" if kd else ")")
        return self.try_stmt(code, v)

    def s_matmul(self):
        a = self.pick(lambda x: x.ndim in (1, 2))
        if a is None:
            return False
        sa = np.shape(self.env[a])
        k = sa[-1]
        b = self.pick(lambda x: x.ndim in (1, 2) and x.shape[0] == k)
        v = self.new()
        if b is None or self.r.random() < 0.2:
            form = self.r.choice(["{a} @ {a}.T", "np.dot({a}, {a}.T)", "{a}.T @ {a}"])
            return self.try_stmt(f"{v} = " + form.format(a=a), v)
        if len(sa) == 2 and np.ndim(self.env[b]) == 2:
            form = self.r.choice(
                ["{a} @ {b}", "np.matmul({a}, {b})", "np.dot({a}, {b})", 'np.einsum("ij,jk->ik", {a}, {b})']
            )
        elif len(sa) == 2:
            form = self.r.choice(["{a} @ {b}", 'np.einsum("ij,j->i", {a}, {b})', "np.dot({a}, {b})"])
        elif np.ndim(self.env[b]) == 1:
            form = self.r.choice(["{a} @ {b}", "np.dot({a}, {b})", 'np.einsum("i,i->", {a}, {b})', "np.inner({a}, {b})"])
        else:
            form = self.r.choice(["{a} @ {b}", 'np.einsum("i,ij->j", {a}, {b})'])
        return self.try_stmt(f"{v} = " + form.format(a=a, b=b), v)

    def s_einsum(self):
        a = self.pick(lambda x: x.ndim == 2)
        if a is None:
            return False
        sa = np.shape(self.env[a])
        b = self.pick(lambda x: x.shape == sa)
        v = self.new()
        form = self.r.choice(['np.einsum("ij,ij->i", {a}, {b})', 'np.einsum("ij->j", {a})', 'np.einsum("ij->ji", {b})', 'np.einsum("ij,ij->", {a}, {b})', 'np.einsum("ii->i", {a} @ {b}.T)', "np.outer({a}[0], {b}[-1])", "np.trace({a} @ {b}.T)"])
        return self.try_stmt(f"{v} = " + form.format(a=a, b=b or a), v)

    def s_slice(self):
        a = self.pick(lambda x: x.ndim >= 1)
        if a is None:
            return False
        nd = np.ndim(self.env[a])
        forms = ["{a}[1:]", "{a}[::-1]", "{a}[:2]", "{a}[..., 1:]", "{a}[-1]", "{a}[None]", "{a}.reshape(-1)", "{a}.ravel()[::2]", "np.flip({a}, 0)", "{a}.copy()"]
        if nd >= 2:
            forms += ["{a}[:, 0]", "{a}[1, :]", "{a}.T", "{a}[1:, ::2]", "{a}[:, None, :]", "np.swapaxes({a}, 0, 1)", "{a}[::-1, 1:]", "{a}.reshape({a}.shape[0], -1)", "np.transpose({a})", "{a}[0, 1]", "np.expand_dims({a}, 1).sum(axis=1)", "np.squeeze({a}[:1])"]
        v = self.new()
        return self.try_stmt(f"{v} = " + self.r.choice(forms).format(a=a), v)

    def s_fancy(self):
        a = self.pick(lambda x: x.ndim >= 1)
        if a is None:
            return False
        sh = np.shape(self.env[a])
        idx = [self.r.randrange(-sh[0], sh[0]) for _ in range(self.r.randint(1, 4))]
        v = self.new()
        forms = ["{a}[np.array({i})]", "{a}[{i}]", "np.take({a}, {i}, axis=0)", "{a}[{a} > 0.2].sum() + {a}.sum() * 0.0"]
        if len(sh) >= 2:
            j = [self.r.randrange(sh[1]) for _ in idx]
            forms += ["{a}[np.array({i}), np.array({j})]", "{a}[:, np.array({j})]", "{a}[{i}, 1:]", "np.take({a}, {j}, axis=1)"]
        else:
            j = idx
        form = self.r.choice(forms)
        return self.try_stmt(f"{v} = " + form.format(a=a, i=idx, j=j), v)

    def s_inplace(self):
        a = self.pick(lambda x: x.ndim >= 1)
        if a is None:
            return False
        sh = np.shape(self.env[a])
        b = self.pick()
        v = self.new()
        init = self.r.choice(["{a}.copy()", "np.array({a})", "np.zeros_like({a}) + {a}", "{a} * 1.0"]).format(a=a)
        i = self.r.randrange(sh[0])
        ix = self.r.choice([str(i), "1:", ":2", f"[{i}, {(i + 1) % sh[0]}]", f"[{i}, {i}]", "::-1", "..."])
        rhs = self.r.choice(["np.tanh({b})", "{b}", "np.sum({b})", "np.mean({b}) * 0.5", "2.0"]).format(b=b)
        op = self.r.choice(["=", "+=", "-=", "*="])
        lines = [f"{v} = {init}", f"{v}[{ix}] {op} {rhs}"]
        if self.r.random() < 0.3:
            lines.append(f"{v} *= 0.5")
        if self.r.random() < 0.2:
            lines.append(f"{v} += {v}[::-1].copy()" if len(sh) == 1 else f"{v}[0] += {v}[-1]")
        return self.try_stmt("\n".join(lines), v, nojax=True)

    def s_branch(self):
        a = self.pick()
        c = self.pick()
        v = self.new()
        cond = self.r.choice(["{c}.sum() > 0", "np.mean({c}) < 0.1", "float(np.max({c})) > 0.5", "{c}.min() > -1.0 and {c}.sum() < 2.0", "np.any({c} > 1.5)"]).format(c=c)
        e1 = self.r.choice(UNARY).format(a=a)
        e2 = self.r.choice(UNARY).format(a=a)
        code = f"if {cond}:\n    {v} = {e1}\nelse:\n    {v} = {e2}"
        if self.r.random() < 0.3:
            code = f"{v} = {e2}\nif {cond}:\n    {v} = {v} + {e1}"
        return self.try_stmt(code, v, nojax=True)

    def s_loop(self):
        a = self.pick()
        sa = np.shape(self.env[a])
        c = self.pick(lambda x: _bcast(sa, x.shape) == sa)
        v = self.new()
        kind = self.r.randrange(5)
        if kind == 0 and c is not None:
            n = self.r.randint(1, 4)
            code = f"{v} = {a}\nfor _i in range({n}):\n    {v} = np.tanh({v} * 0.9 + {c})"
            return self.try_stmt(code, v)
        if kind == 1:
            code = f"{v} = {a}\n_k = 0\nwhile np.abs({v}).sum() < 8.0 and _k < 5:\n    {v} = {v} * 1.5 + 0.1\n    _k += 1"
            return self.try_stmt(code, v, nojax=True)
        if kind == 2 and len(sa) >= 1:
            code = f"{v} = 0.0\nfor _r in {a}:\n    {v} = {v} + np.sin(_r).sum()"
            return self.try_stmt(code, v)
        if kind == 3 and len(sa) >= 1:
            code = f"{v} = np.stack([{a}[_i] * (_i + 1) for _i in range({a}.shape[0])])"
            return self.try_stmt(code, v)
        if len(sa) >= 1:
            code = f"{v} = sum(np.cos(_r) for _r in {a}) + {a}[0]"
            return self.try_stmt(code, v)
        return False

    def s_helper(self):
        a = self.pick()
        sa = np.shape(self.env[a])
        b = self.pick(lambda x: _bcast(sa, x.shape) is not None)
        self.nhelp += 1
        h = f"h{self.nhelp}"
        kind = self.r.randrange(4)
        if kind == 0:
            src = f"def {h}(u, w):\n    t = np.tanh(u) * w\n    return t + u * 0.5"
            call = f"{h}({a}, {b})"
        elif kind == 1:
            src = f"def {h}(u, scale=2.0, *, shift=0.1):\n    return np.sin(u * scale) + shift"
            call = self.r.choice([f"{h}({a})", f"{h}({a}, 0.5)", f"{h}({a}, shift=-0.2)"])
        elif kind == 2:
            src = f"def {h}(*parts):\n    acc = parts[0]\n    for q in parts[1:]:\n        acc = acc + np.cos(q)\n    return acc"
            call = f"{h}({a}, {b}, {b})"
        else:
            src = f"def {h}(u):\n    g = lambda z: z * np.tanh(z)\n    return g(u) + g(u * 0.5)"
            call = f"{h}({a})"
        v = self.new()
        return self.try_stmt(f"{v} = {call}", v, helper=src)

    def s_shape(self):
        a = self.pick(lambda x: x.ndim >= 1)
        if a is None:
            return False
        sa = np.shape(self.env[a])
        b = self.pick(lambda x: x.shape == sa)
        v = self.new()
        forms = ["np.concatenate([{a}, {b}], axis=0)", "np.stack([{a}, {b}])", "np.cumsum({a}, axis=-1)", "np.sort({a}, axis=-1)", "np.tile({a}, 2)", "np.repeat({a}, 2, axis=0)", "np.diff({a}, axis=-1)", "np.cumprod(np.tanh({a}), axis=0)", "np.linalg.norm({a}, axis=-1)", "np.vstack([{a}, {b}])", "np.broadcast_to({a}, (2,) + {a}.shape) * 1.0", "np.pad({a}, 1)", "np.roll({a}, 1, axis=0)", "np.triu({a}) if {a}.ndim == 2 else {a}"]
        return self.try_stmt(f"{v} = " + self.r.choice(forms).format(a=a, b=b or a), v)

    def build(self, nstmts):
        kinds = [
            (self.s_unary, 4), (self.s_binary, 5), (self.s_scalar_mix, 1), (self.s_reduce, 4),
            (self.s_matmul, 3), (self.s_einsum, 1), (self.s_slice, 3), (self.s_fancy, 2),
            (self.s_inplace, 2), (self.s_branch, 2), (self.s_loop, 2), (self.s_helper, 1),
            (self.s_shape, 2),
        ]
        fns, ws = zip(*kinds)
        tries = 0
        made = 0
        while made < nstmts and tries < nstmts * 8:
            tries += 1
            if self.r.choices(fns, weights=ws)[0]():
                made += 1
        # the returned scalar: the latest values and one earlier one
        names = [n for n in self.env if n.startswith("v")] or [n for n in self.env]
        chosen = names[-2:] + ([self.r.choice(names)] if len(names) > 2 else [])
        chosen += [n for n, _ in self.prog.args if n not in ("ps",) and self.r.random() < 0.3]
        if any(n == "ps" for n, _ in self.prog.args):
            chosen.append("p1")
        terms = []
        for n in dict.fromkeys(chosen):
            w = self.r.choice(["", "0.5 * ", "0.25 * ", "-0.3 * "])
            t = self.r.choice(["np.sum(np.tanh({n}))", "np.mean(np.sin({n}))", "np.sum({n} * {n}) * 0.1", "np.sum({n})"])
            terms.append(w + t.format(n=n))
        self.prog.ret = terms
        return self.prog


def _bcast(a, b):
    try:
        return np.broadcast_shapes(tuple(a), tuple(b))
    except ValueError:
        return None


def generate(seed: int, nstmts: int | None = None) -> Program:
    r = random.Random(seed * 7919 + 1)
    return _Gen(seed).build(nstmts if nstmts is not None else r.randint(3, 10))


# --- checking -----------------------------------------------------------------------------


@dataclass
class Verdict:
    ok: bool
    check: str = ""  # which check failed: value, dtype, grad, jax, fastref, simplify, hvp, stale, error, unsupported
    message: str = ""

    def __bool__(self):
        return self.ok


class Failure(Exception):
    def __init__(self, check, message):
        super().__init__(message)
        self.check = check


def _leaves(args):
    out = []
    for a in args:
        out.extend(a if isinstance(a, list) else [a])
    return out


def _close(got, want, rtol, atol, what, check):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise Failure(check, f"{what}: shape {got.shape} vs {want.shape}")
    if not np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
        err = np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))
        raise Failure(check, f"{what}: max abs error {err:.3g}\n got  {got!r}\n want {want!r}")


def _dir_fd(fun, x_leaves, d_leaves, value, slope):
    """Central differences of scalar `fun(leaves)` along d at two steps; returns None when
    the function is not smooth there (forward and backward differences disagree) or the
    slope matches one of them, else the differences seen."""
    seen = []
    for h in (1e-5, 2e-6, 5e-7):
        fp = fun([x + h * d for x, d in zip(x_leaves, d_leaves)])
        fm = fun([x - h * d for x, d in zip(x_leaves, d_leaves)])
        central = (fp - fm) / (2 * h)
        fwd, bwd = (fp - value) / h, (value - fm) / h
        noise = 64 * np.finfo(np.float64).eps * (abs(fp) + abs(fm) + abs(value)) / h
        size = abs(central) + abs(slope)
        if abs(fwd - bwd) > 1e-2 * size + 8 * noise:
            return None  # a kink (abs, max, where, a branch) within the step: no verdict
        if abs(central - slope) <= 1e-5 * size + 8 * noise + 1e-10:
            return None
        seen.append(central)
    return seen


def _regroup(args, flat):
    out, k = [], 0
    for a in args:
        if isinstance(a, list):
            out.append(list(flat[k : k + len(a)]))
            k += len(a)
        else:
            out.append(flat[k])
            k += 1
    return out


_JAX = None
_AUTOGRAD = None


def _jax():
    global _JAX
    if _JAX is None:
        try:
            import jax

            jax.config.update("jax_enable_x64", True)
            jax.config.update("jax_platforms", "cpu")
            import jax.numpy as jnp

            _JAX = ("jax.grad", lambda f, argnums: jax.jit(jax.grad(f, argnums=argnums)), jnp)
        except Exception:
            _JAX = False
    return _JAX


def _autograd():
    global _AUTOGRAD
    if _AUTOGRAD is None:
        try:
            import autograd
            import autograd.numpy as anp

            def grad_of(f, argnums):
                return lambda *xs: autograd.grad(lambda t: f(*t))(tuple(xs))

            _AUTOGRAD = ("autograd.grad", grad_of, anp)
        except Exception:
            _AUTOGRAD = False
    return _AUTOGRAD


def check(p: Program, use_jax="autograd", hvp: bool = True) -> Verdict:
    """Runs every check on program `p`; the first failure is the verdict. `use_jax`: the
    second AD system compared with: "autograd" (fast), True (JAX, jit-compiled: slow
    for one program, an XLA compile each) or False (none)."""
    import autodiff

    try:
        _check(p, autodiff, use_jax, hvp)
    except Failure as e:
        return Verdict(False, e.check, str(e))
    except autodiff.TraceError as e:
        msg = str(e)
        kind = "internal" if "internal" in msg or "self-check" in msg else "unsupported"
        return Verdict(False, kind, f"TraceError: {msg}")
    except Exception as e:
        return Verdict(False, "error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}")
    return Verdict(True)


def _check(p, autodiff, use_jax, hvp):
    f = compile_program(p)
    f64 = p.dtype == "float64"
    rtol, atol = (1e-9, 1e-11) if f64 else (2e-4, 2e-5)
    x0, x1, x2 = p.inputs(0), p.inputs(1), p.inputs(2)
    try:
        with np.errstate(all="ignore"):
            f(*_copy(x0))
    except Exception as e:  # the program itself is invalid (a shrink removed a definition)
        raise Failure("invalid", f"plain Python raises {type(e).__name__}: {e}") from None

    # value and dtype, first and second call (new inputs: no stale state), then the first
    # inputs again (the cached trace, the native call path)
    F = autodiff.Function(f)
    for k, xs in enumerate((x0, x1, x0, x2)):
        with np.errstate(all="ignore"):
            want = f(*_copy(xs))
        args = _copy(xs)
        got = F(*args)
        for a, b in zip(_leaves(args), _leaves(xs)):
            if not np.array_equal(a, b):
                raise Failure("mutated", "the function's arguments were changed by the call")
        _close(got, want, rtol * 100 if k else rtol * 10, atol * 10, f"Function value (call {k})", "value" if k == 0 else "stale")
        if np.asarray(got).dtype != np.asarray(want).dtype:
            raise Failure("dtype", f"Function value dtype {np.asarray(got).dtype} vs NumPy's {np.asarray(want).dtype}")
    _fast_ref(F.trace, _leaves(x0), "Function")

    G = autodiff.Gradient(f)
    grads = {}
    for k, xs in enumerate((x0, x1, x0)):
        g = G(*_copy(xs))
        flat = []
        for gi in g:
            flat.extend(gi if isinstance(gi, list) else [gi])
        for gi, xi in zip(flat, _leaves(xs)):
            if np.shape(gi) != np.shape(xi):
                raise Failure("grad", f"gradient shape {np.shape(gi)} vs argument shape {np.shape(xi)}")
        if k == 2:
            for a, b in zip(flat, grads[0]):
                _close(a, b, 1e-12, 1e-14, "gradient at the first inputs, called again", "stale")
            continue
        grads[k] = flat
        if f64:
            _grad_fd(f, xs, flat, p.seed + k, "grad" if k == 0 else "stale")
    if not f64:
        # float32: close to the gradient of the same program run in float64
        x64 = [[e.astype(np.float64) for e in a] if isinstance(a, list) else a.astype(np.float64) for a in x0]
        g64 = autodiff.Gradient(f)(*x64)
        flat64 = []
        for gi in g64:
            flat64.extend(gi if isinstance(gi, list) else [gi])
        for a, b in zip(grads[0], flat64):
            if np.asarray(a).dtype != np.float32:
                raise Failure("dtype", f"float32 program: gradient dtype {np.asarray(a).dtype}")
            scale = float(np.max(np.abs(b))) if np.size(b) else 1.0
            _close(a, b, 2e-2, 2e-3 * max(scale, 1.0), "float32 gradient vs float64 gradient", "grad")
    _fast_ref(G.trace, _leaves(x0), "Gradient")

    if use_jax and not p.nojax and f64:
        # a second AD system as oracle: JAX (jit-compiled: one XLA compile per program)
        # when use_jax is True, autograd (fast, pure NumPy) when use_jax == "autograd"
        try:
            _oracle(p, x0, grads[0], _autograd() if use_jax == "autograd" else _jax())
        except Failure:
            if use_jax != "autograd":
                raise
            # autograd has wrong rules of its own (np.tile): JAX decides
            _oracle(p, x0, grads[0], _jax())

    if hvp and f64:
        H = autodiff.HessianVector(f)
        rng = np.random.default_rng([p.seed, 7])
        vs = [rng.standard_normal(np.shape(x)) for x in _leaves(x0)]
        hv = H(*_copy(x0), vectors=_regroup(x0, vs))
        hflat = []
        for gi in hv:
            hflat.extend(gi if isinstance(gi, list) else [gi])
        _hvp_fd(G, x0, vs, hflat)
        _fast_ref(H.trace, _leaves(x0) + vs, "HessianVector")


def _oracle(p, x0, grads, oracle):
    if not oracle:
        return
    name, grad_of, npmod = oracle
    fj = compile_program(p, npmod)
    try:
        gj = grad_of(fj, tuple(range(len(x0))))(*_copy(x0))
    except Exception:
        return  # an op the oracle lacks or traces differently: no verdict
    flatj = []
    for gi in gj:
        flatj.extend(gi if isinstance(gi, list) else [gi])
    for a, b in zip(grads, flatj):
        _close(a, np.asarray(b), 1e-7, 1e-9, f"gradient vs {name}", "jax")


def _copy(xs):
    return [[e.copy() for e in a] if isinstance(a, list) else a.copy() for a in xs]


def _fast_ref(tr, values, what):
    if tr is None:
        return
    fast, bad = tr.run(list(values))
    try:
        ref, bad2 = tr.run(list(values), reference=True)
        simp, bad3 = tr.simplified().run(list(values), reference=True)
    except MemoryError:
        return
    if (fast is None) != (ref is None) or (ref is None) != (simp is None):
        raise Failure("fastref", f"{what}: guards disagree between fast ({bad}), reference ({bad2}), simplified ({bad3})")
    if fast is None:
        return  # guards of the latest trace fail at these inputs (another trace answers them)
    for k, (a, b, c) in enumerate(zip(fast, ref, simp)):
        rtol = 1e-4 if np.asarray(b).dtype == np.float32 else 1e-8
        _close(a, b, rtol, rtol * 1e-2, f"{what} output {k}: compiled vs reference evaluator", "fastref")
        _close(c, b, rtol, rtol * 1e-2, f"{what} output {k}: simplified vs unsimplified graph", "simplify")


def _grad_fd(f, xs, flat, seed, check):
    rng = np.random.default_rng([seed, 3])
    x_leaves = [np.asarray(x, dtype=np.float64) for x in _leaves(xs)]

    def fun(leaves):
        with np.errstate(all="ignore"):
            return float(f(*_regroup(xs, [e.copy() for e in leaves])))

    value = fun(x_leaves)
    if not np.isfinite(value):
        return
    for _ in range(2):
        d = [rng.standard_normal(x.shape) for x in x_leaves]
        slope = float(sum(np.sum(np.asarray(g, dtype=np.float64) * e) for g, e in zip(flat, d)))
        bad = _dir_fd(fun, x_leaves, d, value, slope)
        if bad is not None:
            raise Failure(check, f"gradient · d = {slope!r} but central differences give {bad!r}")


def _hvp_fd(G, x0, vs, hflat):
    x_leaves = [np.asarray(x, dtype=np.float64) for x in _leaves(x0)]
    rng = np.random.default_rng(11)
    w = [rng.standard_normal(x.shape) for x in x_leaves]

    def fun(leaves):
        g = G(*_regroup(x0, [e.copy() for e in leaves]))
        flat = []
        for gi in g:
            flat.extend(gi if isinstance(gi, list) else [gi])
        return float(sum(np.sum(np.asarray(a) * b) for a, b in zip(flat, w)))

    value = fun(x_leaves)
    slope = float(sum(np.sum(np.asarray(h) * b) for h, b in zip(hflat, w)))
    if not np.isfinite(value) or not np.isfinite(slope):
        if np.isfinite(value) != np.isfinite(slope):
            raise Failure("hvp", f"w·Hv = {slope!r} but w·grad = {value!r}")
        return
    bad = _dir_fd(fun, x_leaves, vs, value, slope)
    if bad is not None:
        raise Failure("hvp", f"w · Hv = {slope!r} but differences of w · grad give {bad!r}")


# --- shrinking ----------------------------------------------------------------------------


def shrink(p: Program, verdict: Verdict, budget: int = 200, **kw) -> Program:
    """Greedy: drop statements (last first), return terms and unused helpers while the
    program still fails the same check."""
    import copy

    def still(q):
        v = check(q, **kw)
        return (not v.ok) and v.check == verdict.check

    best = p
    tries = 0
    changed = True
    while changed and tries < budget:
        changed = False
        for i in reversed(range(len(best.stmts))):
            if best.stmts[i] == "p0, p1 = ps":
                continue
            q = copy.deepcopy(best)
            del q.stmts[i]
            tries += 1
            if still(q):
                best, changed = q, True
        for i in reversed(range(len(best.ret))):
            if len(best.ret) == 1:
                break
            q = copy.deepcopy(best)
            del q.ret[i]
            tries += 1
            if still(q):
                best, changed = q, True
        for i in reversed(range(len(best.helpers))):
            q = copy.deepcopy(best)
            del q.helpers[i]
            tries += 1
            if still(q):
                best, changed = q, True
    return best
