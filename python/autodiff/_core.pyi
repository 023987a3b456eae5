"""Type stub of the native module `autodiff._core` (crates/python): the bytecode capture
engine and thin bindings over the Rust core crates. Private API: use `autodiff` instead."""

from collections.abc import Callable, Sequence
from typing import Any, final

import numpy as np
from numpy.typing import NDArray

class TraceError(Exception):
    """Something the tracer does not support; the message says what, where and what to do."""

def trace(
    func: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
    inputs: list[tuple[Any, str]],
    markers: dict[Any, Any],
    flatten: Callable[[Any], Any],
    roll: bool = True,
) -> tuple[Any, Trace, list[tuple[str, Any, str, Any]]]:
    """Traces `func(*args, **kwargs)`: the real result, the trace, and the values read from
    outside the arguments (sources). `roll=False` keeps every loop unrolled."""

def _interrupt() -> None: ...
def num_threads() -> int:
    """Threads the engine's large kernels run on (`AUTODIFF_NUM_THREADS`, else one per core)."""

def _registry() -> list[tuple[str, str, str | None]]:
    """The capture table's registry: `(name, family, parameter list or None)` per entry."""

def lbfgsb(
    fun: Callable[[], Any],
    xbuf: NDArray[np.float64],
    x0: Sequence[float],
    lower: Sequence[float],
    upper: Sequence[float],
    sizes: Sequence[int],
    m: int,
    factr: float,
    pgtol: float,
    maxiter: int,
    maxfun: int,
    maxls: int,
    progress: Callable[[int, int, float, float, float], Any] | None = None,
) -> dict[str, Any]:
    """Native L-BFGS-B over `fun` (reads the point from `xbuf`, returns loss and gradients)."""

@final
class Trace:
    """A traced graph with its guards and tags; transforms return new traces."""

    @property
    def rolled_loops(self) -> int:
        """Loops rolled into loop nodes when this trace was captured."""
    @property
    def needs_plain_check(self) -> bool:
        """A rolled loop's result must be compared with a plain NumPy run."""
    @property
    def half_values(self) -> bool:
        """NumPy computed some value in float16 from bool or small-integer arrays."""
    @property
    def uninit_values(self) -> bool:
        """`np.empty`/`np.empty_like` was called while tracing."""
    @property
    def n_inputs(self) -> int: ...
    @property
    def n_outputs(self) -> int: ...
    @property
    def input_names(self) -> list[str]: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def guards(self) -> list[str]: ...
    def program_stats(self) -> str: ...
    def node_count(self) -> int: ...
    def stops_gradient(self) -> bool: ...
    def has_cholesky(self) -> bool: ...
    def has_jumps(self) -> bool: ...
    def low_precision(self) -> bool: ...
    def output_shapes(self) -> list[list[int]]: ...
    def output_dtypes(self) -> list[str]: ...
    def input_dtypes(self) -> list[str]: ...
    def run(
        self, inputs: Sequence[Any], reference: bool = False
    ) -> tuple[list[NDArray[Any]] | None, int | None]: ...
    def grad(self, wrt: list[int | str], output: int = 0, with_value: bool = False) -> Trace: ...
    def vjp(self, wrt: list[int | str]) -> Trace: ...
    def jvp(self, wrt: list[int | str]) -> Trace: ...
    def hvp(self, wrt: list[int | str]) -> Trace: ...
    def jacobian(self, wrt: list[int | str], mode: str = "auto") -> Trace: ...
    def elementwise_grad(self, wrt: list[int | str], with_value: bool = False) -> Trace | None:
        """The elementwise derivative of an array output whose Jacobian is diagonal; else None."""
    def vmap(self, batched: list[bool], size: int) -> Trace | None: ...
    def simplified(self) -> Trace: ...
    def unguarded(self) -> Trace:
        """The same computation without its guards."""
    def magnitude(self) -> Trace:
        """The size of the terms each output sums (for sizing comparison tolerances); no guards."""
    def to_text(
        self, labels: list[str] | None = None, title: str | None = None, shapes: bool = False, locs: bool = False
    ) -> str: ...
    def to_latex(self, labels: list[str] | None = None) -> str: ...
    def to_source(self, name: str = "f", target: str = "numpy") -> str: ...
    def to_dot(self) -> str: ...
    def to_sympy(self) -> str: ...
    def sexpr(self) -> str: ...

@final
class CallTable:
    """The native per-call path of one specializer (see ARCHITECTURE.md, "The call path")."""

    def __init__(self, same: Callable[[Any, Any], bool]) -> None: ...
    def install(
        self, shapes: list[list[int]], entries: list[Any], containers: list[tuple[str, int]] | None = None
    ) -> bool: ...
    def clear(self) -> None: ...
    def __call__(self, args: tuple[Any, ...]) -> list[NDArray[np.float64]] | None: ...
    def lookup(self, args: tuple[Any, ...]) -> tuple[Any, Any, Any] | None: ...
