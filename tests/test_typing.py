"""The package ships its types (py.typed, a stub for the native module). `mypy --strict`
on examples/typed_usage.py runs once in scripts/test.sh (CPython 3.11), not here."""

import pathlib


def test_the_package_ships_types():
    import autodiff

    pkg = pathlib.Path(autodiff.__file__).parent
    assert (pkg / "py.typed").exists()
    stub = (pkg / "_core.pyi").read_text()
    # every public method of the native Trace is in the stub
    from autodiff import _core

    missing = [m for m in dir(_core.Trace) if not m.startswith("_") and f"def {m}(" not in stub]
    assert not missing, f"_core.pyi lacks Trace.{missing}"
