"""pyautodiff: automatic differentiation of plain Python + NumPy code.

>>> import autodiff, numpy as np
>>> autodiff.fmin_l_bfgs_b(lambda x: (x + 1) ** 2, [np.zeros(())])
[array(-1.)]
"""

from .api import (
    Function,
    Gradient,
    HessianVector,
    constant,
    escape,
    function,
    grad,
    gradient,
    hessian,
    hessian_vector,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    tag,
    value_and_grad,
    vjp,
    vmap,
)
from .errors import AutodiffError, NotScalarError, TraceError, WrtError
from .optim import OptimizeResult, fmin_adam, fmin_cg, fmin_l_bfgs_b, fmin_ncg, fmin_sgd, minimize

__all__ = [
    "Function",
    "Gradient",
    "HessianVector",
    "grad",
    "jacobian",
    "jacfwd",
    "jacrev",
    "hessian",
    "jvp",
    "vjp",
    "hvp",
    "vmap",
    "function",
    "gradient",
    "hessian_vector",
    "value_and_grad",
    "constant",
    "escape",
    "tag",
    "fmin_l_bfgs_b",
    "fmin_cg",
    "fmin_ncg",
    "minimize",
    "fmin_sgd",
    "fmin_adam",
    "OptimizeResult",
    "TraceError",
    "AutodiffError",
    "NotScalarError",
    "WrtError",
]
__version__ = "0.1.0"
