"""The markers a traced function may call: identities outside a trace, recognised by the
capture engine inside one. Their own module, so that `_compile` (which hands them to the
engine) and `api` (which exports them) both import them without importing each other."""

from typing import TypeVar

_T = TypeVar("_T")


def constant(x: _T) -> _T:
    """Marks `x` as a constant inside a traced function: no gradient flows through it."""
    return x


escape = constant


def tag(x: _T, name: str) -> _T:
    """Names an intermediate value so that `Gradient(..., wrt=name)` can target it."""
    return x
