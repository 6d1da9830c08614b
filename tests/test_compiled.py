"""The compiled build: the modules mypyc compiles, and what says which build runs.

`.ci/run` also installs the wheel (compiled) in its own venv and runs these
tests there with MRULES_EXPECT_COMPILED=1, so the compiled pass cannot fall
back to pure Python unnoticed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT, build_wheel
from mrules.buildinfo import PROBE, is_compiled


def _listed() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    hook = config["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["custom"]
    return list(hook["modules"])


def _dotted(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def test_every_listed_module_is_a_source_file_and_the_probe_is_among_them() -> None:
    listed = _listed()
    assert listed == sorted(listed)
    for path in listed:
        assert (ROOT / "src" / path).is_file(), path
    assert PROBE in {_dotted(p) for p in listed}


def test_version_says_which_build_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mrules", "--version"], capture_output=True, text=True, check=True
    ).stdout
    want = "compiled engine" if is_compiled() else "pure Python"
    assert out.strip() == f"mrules, version 0.1.0 ({want})"


def test_a_plain_module_is_not_reported_compiled() -> None:
    assert not is_compiled("mrules.cli")  # never compiled: the CLI is click, no hot path
    assert not is_compiled("mrules.no_such_module")


@pytest.mark.skipif(
    not os.environ.get("MRULES_EXPECT_COMPILED"), reason="the compiled pass of .ci/run sets it"
)
def test_every_listed_module_loads_compiled() -> None:
    import importlib

    for path in _listed():
        module = importlib.import_module(_dotted(path))
        assert module.__file__ is not None and not module.__file__.endswith(".py"), path


def _except_names_of_two_types(path: Path) -> list[str]:
    """Functions where one name is bound by `except A as e` and `except B as e`.

    mypy accepts that; mypyc gives the name the first clause's type and fails at run
    time when the second binds it (a broken gzip stream raised TypeError, not its error).
    """
    import ast

    found = []
    for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            types: dict[str, set[str]] = {}
            for node in ast.walk(fn):
                if isinstance(node, ast.ExceptHandler) and node.name and node.type:
                    types.setdefault(node.name, set()).add(ast.unparse(node.type))
            where = f"{path.name}:{fn.lineno} {fn.name}"
            found += [f"{where}: {name}" for name, kinds in types.items() if len(kinds) > 1]
    return found


def test_no_compiled_function_binds_one_name_to_two_exception_types() -> None:
    found = [hit for p in _listed() for hit in _except_names_of_two_types(ROOT / "src" / p)]
    assert found == []


def test_the_except_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f():\n    try:\n        pass\n    except ValueError as e:\n        pass\n"
        "    except OSError as e:\n        pass\n",
        encoding="utf-8",
    )
    assert _except_names_of_two_types(bad) == ["bad.py:1 f: e"]


def test_without_a_compiler_the_wheel_is_pure_python_and_the_build_says_why(
    tmp_path: Path,
) -> None:
    import zipfile

    build, wheel = build_wheel(ROOT, tmp_path, CC="/bin/false")
    assert build.returncode == 0, build.stderr[-2000:]
    assert "the compiled engine could not be built" in build.stdout + build.stderr
    assert wheel is not None and wheel.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert "mrules/engine/run.py" in names and not [n for n in names if n.endswith(".so")]
    assert not list((ROOT / "src").rglob("*.so"))  # the hook never writes into the sources


def test_a_required_compilation_that_fails_fails_the_build(tmp_path: Path) -> None:
    build, wheel = build_wheel(ROOT, tmp_path, CC="/bin/false", MRULES_REQUIRE_COMPILED="1")
    assert build.returncode != 0 and wheel is None
    assert "MRULES_REQUIRE_COMPILED is set" in build.stdout + build.stderr
