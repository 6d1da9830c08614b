"""Which build is running: its version, and the run's hot path compiled to C by mypyc or not.

The version lives here, not in `mrules/__init__.py`, so the stores and the
diagnostics can name it without importing the package's API (which imports them).

A wheel (`pip install .`) compiles the modules listed in pyproject.toml
(`hatch_build.py`); an editable install runs the same modules as Python.
Both behave the same; `mrules --version` says which one is installed, because
the compiled one is faster (bench/README.md, "The compiled engine").
"""

from __future__ import annotations

import importlib.util
from importlib.machinery import EXTENSION_SUFFIXES

__all__ = ["PROBE", "__version__", "engine_build", "is_compiled"]

__version__ = "0.1.0"  # as pyproject.toml says; tests/test_packaging.py checks they agree

PROBE = "mrules.state"  # compiled in every compiled build; importing it is not needed to tell


def is_compiled(module: str = PROBE) -> bool:
    """True when `module` would load from an extension module, not a .py file."""
    spec = importlib.util.find_spec(module)
    origin = (spec.origin or "") if spec is not None else ""
    return origin.endswith(tuple(EXTENSION_SUFFIXES))


def engine_build() -> str:
    """'compiled engine' or 'pure Python', for `mrules --version`."""
    return "compiled engine" if is_compiled() else "pure Python"
