"""Optional dependencies. Each feature that needs one imports it through `require`, so a
missing package is a `MissingDependencyError` naming the package (and the extra of
pyproject.toml that installs it), never a bare `ModuleNotFoundError`."""

from __future__ import annotations

import importlib
import shutil
from types import ModuleType

from .errors import MissingDependencyError

# import name -> (what to pip install, the pyautodiff extra that brings it)
_PACKAGES = {
    "scipy": ("scipy", "scipy"),
    "sympy": ("sympy", "sympy"),
    "numba": ("numba", "numba"),
    "jax": ("jax", "jax"),
    "matplotlib": ("matplotlib", "plot"),
}


def require(module: str, feature: str) -> ModuleType:
    """`import module`, or a `MissingDependencyError` saying that `feature` needs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        package, extra = _PACKAGES.get(top, (top, None))
        how = f"pip install {package}"
        if extra:
            how += f" (or pip install 'pyautodiff[{extra}]')"
        raise MissingDependencyError(f"{feature} needs {package}, which is not installed: {how}") from e


def require_dot(feature: str) -> str:
    """The path of Graphviz's `dot` program, or a `MissingDependencyError`."""
    path = shutil.which("dot")
    if path is None:
        raise MissingDependencyError(
            f"{feature} needs Graphviz's `dot` program, which is not on PATH: install Graphviz "
            "(apt install graphviz, brew install graphviz or conda install graphviz); "
            "`to_dot()` gives the DOT text without it"
        )
    return path
