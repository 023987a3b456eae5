"""The command line: `python -m autodiff grad EXPR --at x=...` and `python -m autodiff demo`.

    python -m autodiff grad "((x + 1) ** 2).sum()" --at "x=np.zeros(3)"
    x ↦ 2*(x + 1)
    python -m autodiff grad "np.sum(x * y)" --at "x=np.ones(2), y=np.ones(2)" --wrt x --latex

EXPR is a Python expression in the variables that `--at` binds (with `np` and `math`
available); it is traced at those values. The gradient prints as math (default), LaTeX
(`--latex`) or runnable NumPy source (`--numpy`); `--value` also prints the gradient's
value at the point."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import Function, Gradient, __version__
from .errors import AutodiffError, TraceError


def _namespace() -> dict[str, Any]:
    return {"np": np, "numpy": np, "math": math}


def _point(at: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for text in at:
        try:
            values.update(eval(f"dict({text})", _namespace()))
        except Exception as e:
            raise SystemExit(f"autodiff: cannot read --at {text!r}: {type(e).__name__}: {e} (write e.g. --at 'x=np.zeros(3)')") from None
    return {k: (np.float64(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in values.items()}


def _function(expr: str, names: Sequence[str]) -> Any:
    try:
        code = compile(f"lambda {', '.join(names)}: ({expr})", "<command line>", "eval")
    except SyntaxError as e:
        raise SystemExit(f"autodiff: EXPR is not a Python expression: {expr!r} ({e.msg})") from None
    return eval(code, _namespace())


def _grad(args: argparse.Namespace) -> int:
    point = _point(args.at)
    if not point:
        raise SystemExit("autodiff grad: give the point with --at, e.g. --at 'x=np.zeros(3)'")
    names = list(point)
    fn = _function(args.expr, names)
    values = [point[n] for n in names]
    wrt = args.wrt.split(",") if args.wrt else None
    g = Gradient(fn, values, wrt=wrt)
    if args.latex:
        print(g.latex())
    elif args.numpy:
        print(g.to_source(args.name), end="")
    else:
        print(g)
    if args.value:
        print("value:", Function(fn)(*values))
        for name, d in zip(wrt or names, g(*values)):
            print(f"d/d{name}:", d)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import main

    main()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autodiff", description="pyautodiff from the command line.")
    parser.add_argument("--version", action="version", version=f"pyautodiff {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("grad", help="the gradient of an expression, as math, LaTeX or NumPy source")
    p.add_argument("expr", help='a scalar Python expression, e.g. "((x + 1) ** 2).sum()"')
    p.add_argument("--at", action="append", default=[], metavar="NAME=VALUE", help="the point: 'x=np.zeros(3), y=2.0' (repeatable)")
    p.add_argument("--wrt", help="comma-separated names to differentiate (default: every array variable)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--latex", action="store_true", help="print LaTeX")
    fmt.add_argument("--numpy", action="store_true", help="print runnable NumPy source")
    p.add_argument("--name", default="grad_f", help="the function name in --numpy output (default grad_f)")
    p.add_argument("--value", action="store_true", help="also print the value and the gradient at the point")
    p.set_defaults(run=_grad)
    d = sub.add_parser("demo", help="run the demo: the seed examples")
    d.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except (TraceError, AutodiffError) as e:
        print(f"autodiff: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
