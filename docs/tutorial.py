# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # pyautodiff in one sitting
#
# Automatic differentiation of plain Python + NumPy code: you write an ordinary NumPy
# function, pyautodiff runs it once in its own bytecode engine, records the computation
# as a graph, and gives back its derivatives — compiled, checked, and readable as math.
#
# This file is a literate script (jupytext "percent" cells): run it with `python
# docs/tutorial.py`, open it as a notebook with jupytext, or look at the rendered cells in
# `docs/tutorial/` (`scripts/render_notebook.py` makes them). CI runs it, so every line
# here works.

# %%
import importlib.util

import autodiff
import numpy as np

try:  # in a notebook, rich displays (LaTeX, SVG, HTML); as a script, text
    from IPython.display import display
except ImportError:  # pragma: no cover - outside IPython
    display = print

# %% [markdown]
# ## 1. A first gradient
#
# `Gradient(f, example_args)` traces `f` at the example arguments and returns an object
# that computes the gradient at any other point of the same shapes. It returns a list:
# one gradient per differentiated argument.

# %%
g = autodiff.Gradient(lambda x: ((x + 1) ** 2).sum(), [np.zeros(3)])
print(g(np.arange(3.0)))

# %% [markdown]
# JAX's style works too: `grad(f)` differentiates with respect to `argnums`.


# %%
def loss(w, X, y):
    z = X @ w
    return np.mean(np.logaddexp(0.0, z) - y * z)


rng = np.random.default_rng(0)
X, y = rng.normal(size=(40, 3)), (rng.random(40) > 0.5).astype(float)
dloss = autodiff.grad(loss)  # d loss / d w
print(dloss(np.zeros(3), X, y))

# %% [markdown]
# ## 2. Reading the math
#
# A gradient prints as the math it computes, simplified, with shared subexpressions
# named. `math(shapes=True, locs=True)` adds the shape of each line and the line of your
# code it comes from; `latex()` is what a notebook displays; `to_source()` is a NumPy
# function you can run without pyautodiff.

# %%
print(g)
G = autodiff.Gradient(loss, [np.zeros(3), X, y], wrt="w")
print(G.math(shapes=True))
display(G)  # LaTeX in a notebook
print(G.latex())
print(G.to_source("grad_loss"))
grad_loss = G.to_python("grad_loss")  # the same, as a plain function of (w, X, y)
assert np.allclose(grad_loss(np.ones(3), X, y), G(np.ones(3), X, y)[0])

# %% [markdown]
# The graph itself draws with Graphviz when its `dot` program is installed (without it,
# the display says so and shows the DOT text).

# %%
display(g.draw())

# %% [markdown]
# ## 3. Guards and `explain()`
#
# Control flow runs on the real values. Every decision a traced value makes (a branch,
# a loop bound, `int(x)`) becomes a *guard*: each call checks the guards and traces
# again when one fails, so a result is never computed from the wrong branch.
# `explain()` says why each trace happened.


# %%
def branchy(x):
    s = x.sum()
    if s > 0:
        return s**2
    return -s


B = autodiff.Gradient(branchy)
print(B(np.ones(3)))  # the branch s > 0
print(B(-np.ones(3)))  # the guard fails: traced again, the other branch
print(B.trace_count, "traces")
print(B.explain())

# %% [markdown]
# ## 4. In-place code
#
# Arrays filled in loops, `x[i] = v`, `x[a:b] += v`, `x *= 2`: updates are turned into
# functional graph nodes, so code written the NumPy way differentiates as it is.


# %%
def spring_chain(x, k=3.0):
    e = np.zeros(len(x) - 1)
    for i in range(len(x) - 1):
        e[i] = 0.5 * k * (x[i + 1] - x[i] - 1.0) ** 2
    return e.sum()


x0 = np.array([0.0, 1.5, 2.0, 3.5])
print("forces:", -autodiff.grad(spring_chain)(x0))

# %% [markdown]
# ## 5. Hessian-vector products and Newton-CG on a Gaussian process
#
# The negative log marginal likelihood of a Gaussian process with a squared-exponential
# kernel, as a function of its log hyperparameters θ = (log length scale, log signal
# variance, log noise variance):
#
# $$ \mathrm{nlml}(\theta) = \tfrac12 y^\top K_\theta^{-1} y + \tfrac12 \log\det K_\theta
# + \tfrac n2 \log 2\pi. $$
#
# `hvp(f)(θ, v)` is the Hessian-vector product H(θ)·v (forward mode over reverse mode),
# without forming H: exactly what SciPy's Newton-CG asks for as `hessp`.

# %%
rng = np.random.default_rng(1)
t = np.sort(rng.uniform(0, 5, 30))
obs = np.sin(2 * t) + 0.1 * rng.normal(size=30)


def nlml(theta, t, y):
    ell, sf2, sn2 = np.exp(theta)
    d = t[:, None] - t[None, :]
    K = sf2 * np.exp(-0.5 * d**2 / ell**2) + sn2 * np.eye(len(t))
    L = np.linalg.cholesky(K)
    alpha = np.linalg.solve(L.T, np.linalg.solve(L, y))
    return 0.5 * y @ alpha + np.sum(np.log(np.diag(L))) + 0.5 * len(t) * np.log(2 * np.pi)


value_and_grad = autodiff.value_and_grad(nlml)
hessp = autodiff.hvp(nlml)
theta0 = np.zeros(3)
print("nlml(θ0) =", value_and_grad(theta0, t, obs)[0])
print("H(θ0)·e0 =", hessp(theta0, t, obs, np.eye(3)[0]))  # the vector comes last

# %% [markdown]
# Newton-CG with the gradient and the Hessian-vector product (SciPy is optional for
# pyautodiff, needed here):

# %%
if importlib.util.find_spec("scipy"):
    import scipy.optimize

    history = []
    res = scipy.optimize.minimize(
        lambda th: value_and_grad(th, t, obs),
        theta0,
        jac=True,
        hessp=lambda th, v: hessp(th, t, obs, v),
        method="Newton-CG",
        callback=lambda th: history.append(float(value_and_grad(th, t, obs)[0])),
    )
    res.history = [float(value_and_grad(theta0, t, obs)[0]), *history]
    print("θ* =", res.x, " length scale", np.exp(res.x[0]))
    display(autodiff.display.summary(res))  # an HTML table in a notebook
    if importlib.util.find_spec("matplotlib"):
        autodiff.display.plot_history(res)

# %% [markdown]
# ## 6. Exporting
#
# The same printer writes the computation for other runtimes: `to_source()` (NumPy, no
# dependency on pyautodiff), `to_sympy()` for elementwise graphs, `to_jax()` (a
# `jax.numpy` function that `jax.jit`, `jax.vmap` and JAX's sharding take: the road to
# GPUs, TPUs and many hosts) and `to_numba()` (`numba.njit` of a numba-friendly source).
# Exported functions take the graph's inputs in order: `g.trace.input_names`.

# %%
h = autodiff.Gradient(lambda x: np.sum(np.tanh(x) ** 2), [np.zeros(3)])
print(h.to_source("grad_h"))
if importlib.util.find_spec("sympy"):
    print(autodiff.Gradient(lambda x: np.sin(x) * x, [np.zeros(())]).to_sympy())
if importlib.util.find_spec("jax"):
    import jax

    jax.config.update("jax_enable_x64", True)
    jgrad = jax.jit(G.to_jax())  # inputs: G.trace.input_names == ['w', 'X', 'y']
    print(G.trace.input_names, np.asarray(jgrad(np.ones(3), X, y)))
if importlib.util.find_spec("numba"):
    ngrad = G.to_numba()
    print(ngrad(np.ones(3), X, y))

# %% [markdown]
# That is the tour. More: the API table in the README, `docs/SUPPORTED.md` for what the
# tracer supports, `python -m autodiff --help` for the command line, and the API
# reference (`python scripts/apidocs.py` writes it to `docs/api/`).
