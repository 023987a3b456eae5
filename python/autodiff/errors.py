"""The exceptions pyautodiff raises. Every message says what was expected, what was found,
where (the user's file:line) and what to do."""

from ._core import TraceError


class AutodiffError(Exception):
    """Base class of the errors about how the library is called."""


class NotScalarError(AutodiffError, ValueError):
    """A gradient was asked of a function whose output is not a scalar."""


class WrtError(AutodiffError, ValueError):
    """`wrt=` names something that is not an input or tag of the function."""


class MissingDependencyError(AutodiffError, ImportError):
    """A feature needs an optional package (SciPy, SymPy, numba, JAX, matplotlib) or
    program (Graphviz's `dot`) that is not installed; the message names what to install."""


__all__ = ["TraceError", "AutodiffError", "NotScalarError", "WrtError", "MissingDependencyError"]
