"""pyautodiff under `mypy --strict`: the public API is typed (py.typed, a stub for the
native module). Run: `mypy --strict examples/typed_usage.py` (scripts/test.sh does, on 3.11)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import autodiff
import numpy as np
from numpy.typing import NDArray


def loss(w: NDArray[np.float64], X: NDArray[np.float64], y: NDArray[np.float64]) -> np.float64:
    z = X @ w
    return np.float64(np.mean(np.logaddexp(0.0, z) - y * z))


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    y = (rng.random(20) > 0.5).astype(np.float64)
    w = np.zeros(3)

    g = autodiff.Gradient(loss, [w, X, y], wrt="w")
    (dw,) = g(w, X, y)
    text: str = g.math(shapes=True)
    latex: str = g.latex()
    source: str = g.to_source("grad_loss")
    plain: Callable[..., Any] = g.to_python()

    f = autodiff.Function(loss)
    value = f(w, X, y)

    dloss: Callable[..., Any] = autodiff.grad(loss)
    vg = autodiff.value_and_grad(loss, argnums=(0,))
    v, (dw2,) = vg(w, X, y)
    hv = autodiff.hvp(lambda w: loss(w, X, y))(w, np.ones(3))
    J = autodiff.jacobian(lambda w: np.tanh(X @ w))(w)
    H = autodiff.hessian(lambda w: loss(w, X, y))(w)
    primal, tangent = autodiff.jvp(lambda w: np.sin(w), (w,), (np.ones(3),))
    out, back = autodiff.vjp(lambda w: np.sin(w), w)
    (ct,) = back(np.ones(3))
    batched = autodiff.vmap(lambda r: np.sum(r**2))(X)
    c = autodiff.constant(w)
    t = autodiff.tag(w, "w")
    why: str = g.explain()
    count: int = g.trace_count
    tr = g.trace
    names: list[str] = tr.input_names if tr is not None else []

    @autodiff.gradient
    def sq(x: NDArray[np.float64]) -> np.float64:
        return np.float64(np.sum(x**2))

    try:
        autodiff.Gradient(lambda x: x, [np.zeros(2)])
    except autodiff.NotScalarError as e:
        message: str = str(e)
        print(message)
    print(dw, text, latex, source, plain, value, dloss(w, X, y), v, dw2, hv, J, H, primal, tangent, ct)
    print(batched, c, t, why, count, names, sq(np.ones(2)))


if __name__ == "__main__":
    main()
