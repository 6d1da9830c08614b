"""An sdist carries what the package reads at run time, so a wheel built from it works.

`src/mrules/grammar`, `library` and `docs` are links to top-level folders. A
wheel built from the checkout follows them; an sdist keeps no links, so
pyproject.toml copies the folders into it where the package expects them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from conftest import ROOT, build_wheel

PACKAGED = ("mrules/grammar/", "mrules/library/", "mrules/docs/")


def test_a_wheel_built_from_the_sdist_holds_the_grammar_library_and_docs(tmp_path: Path) -> None:
    env = {**os.environ, "MRULES_PURE_PYTHON": "1"}  # packaging is the point, not compiling
    sdist = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "sdist", "-d", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert sdist.returncode == 0, sdist.stderr
    [archive] = tmp_path.glob("mrules-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    for folder in PACKAGED:
        assert any(f"/src/{folder}" in n for n in names), folder
    wheel, built = build_wheel(archive, tmp_path / "wheel", MRULES_PURE_PYTHON="1")
    assert wheel.returncode == 0 and built is not None, wheel.stderr
    with zipfile.ZipFile(built) as z:
        files = z.namelist()
    assert "mrules/grammar/mrules.lark" in files
    assert "mrules/docs/diagnostics.md" in files
    assert "mrules/py.typed" in files  # PEP 561: type checkers read the package's types
    assert any(f.startswith("mrules/library/") and f.endswith(".mr") for f in files)


def test_the_version_is_pyprojects() -> None:
    """`mrules --version`, the stores' `mrules_version` and SARIF name the version that
    `mrules.buildinfo` holds; a release that bumps pyproject.toml alone would misname it."""
    import tomllib

    import mrules
    from mrules import buildinfo

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert buildinfo.__version__ == declared
    assert mrules.__version__ is buildinfo.__version__
