"""The markers a traced function may call: identities outside a trace, recognised by the
capture engine inside one. Their own module, so that `_compile` (which hands them to the
engine) and `api` (which exports them) both import them without importing each other."""


def constant(x):
    """Marks `x` as a constant inside a traced function: no gradient flows through it."""
    return x


escape = constant


def tag(x, name):
    """Names an intermediate value so that `Gradient(..., wrt=name)` can target it."""
    return x
