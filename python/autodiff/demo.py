"""The pyautodiff demo: the seed examples of the 2012 announcement, and a little more.

Run it with `python -m autodiff demo` (or `python examples/demo.py`)."""

import numpy as np

import autodiff


def sqr(x):
    return x * x


def f(x):
    a = x + 1
    return np.sum(sqr(2 * a))


def branchy(x):
    s = x.sum()
    if s > 0:  # a branch on data: guarded, re-traced when it flips
        return s
    return -s


def logistic_loss(w, X, y):
    z = X @ w
    return np.mean(np.logaddexp(0.0, z) - y * z)


def spring_chain(x, k=3.0):
    e = np.zeros(len(x) - 1)
    for i in range(len(x) - 1):  # an array filled in place, in a loop
        e[i] = 0.5 * k * (x[i + 1] - x[i] - 1.0) ** 2
    return e.sum()


def main() -> None:
    print(">>> autodiff.fmin_l_bfgs_b(lambda x: (x + 1) ** 2, [np.zeros(())])")
    print(autodiff.fmin_l_bfgs_b(lambda x: (x + 1) ** 2, [np.zeros(())]))
    print("\n>>> g = autodiff.Gradient(lambda x: ((x + 1) ** 2).sum(), [np.zeros(3)])")
    g = autodiff.Gradient(lambda x: ((x + 1) ** 2).sum(), [np.zeros(3)])
    print(">>> print(g)")
    print(g)
    print(">>> g(np.arange(3.0))")
    print(g(np.arange(3.0)))
    print("\n>>> # a helper function, traced at zeros and evaluated elsewhere")
    G = autodiff.Gradient(f, [np.zeros(3)])
    print(f"f(zeros(3)) = {autodiff.Function(f)(np.zeros(3))}")
    print(f"grad f([0, 1, 2]) = {G(np.array([0.0, 1.0, 2.0]))}")
    print(G)
    print("\n>>> # control flow on data: guards and re-tracing")
    B = autodiff.Gradient(branchy)
    print(B(np.ones(3)), B(-np.ones(3)))
    print(B.explain())
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 3)), (rng.random(50) > 0.5).astype(float)
    print("\n>>> # logistic regression: the gradient as math, then L-BFGS-B on it")
    print(autodiff.Gradient(logistic_loss, [np.zeros(3), X, y], wrt="w"))
    (w,) = autodiff.fmin_l_bfgs_b(lambda w: logistic_loss(w, X, y), [np.zeros(3)])
    print("w =", np.round(w, 4))
    print("\n>>> # in-place fills in a loop; Hessian-vector products; exported NumPy source")
    x0 = np.array([0.0, 1.5, 2.0, 3.5])
    print("forces:", -autodiff.grad(spring_chain)(x0))
    print("H @ v: ", autodiff.hvp(spring_chain)(x0, np.array([1.0, 0.0, 0.0, 0.0])))
    print(autodiff.Gradient(lambda x: np.sum(np.tanh(x) ** 2), [np.zeros(3)]).to_source("grad_f"))


if __name__ == "__main__":
    main()
