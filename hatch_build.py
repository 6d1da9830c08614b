"""Build hook: compile the run's hot modules to C with mypyc when a wheel is built.

`pip install .` (a wheel) gets the compiled engine; an editable install
(`pip install -e .`) stays pure Python, so a developer's edits take effect
without a rebuild. The modules are compiled from the same typed source
(mypy-clean), in a scratch copy: nothing is written into `src/`, so no stale
extension module can shadow an edited `.py` file. hatch-mypyc, the plugin
made for this, compiles in place in the source tree and compiles editable
installs too, hence this short hook on mypyc's own `mypycify`.

Set MRULES_PURE_PYTHON=1 to build a pure-Python wheel. Without a C compiler
the build warns and falls back to pure Python (the same behaviour, slower);
set MRULES_REQUIRE_COMPILED=1 to make that an error instead (CI does).
`mrules --version` says which one is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_SETUP = """\
from setuptools import setup
from mypyc.build import mypycify

setup(
    name="mrules-compiled",
    ext_modules=mypycify({modules!r}, opt_level="3", debug_level="0"),
)
"""


class MypycHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._scratch: str | None = None
        if self.target_name != "wheel" or version == "editable":
            return
        if os.environ.get("MRULES_PURE_PYTHON"):
            self.app.display_info("mrules: MRULES_PURE_PYTHON is set: a pure-Python wheel")
            return
        modules = [str(m) for m in self.config.get("modules", [])]
        if not modules:
            return
        self._scratch = tempfile.mkdtemp(prefix="mrules-mypyc-")
        scratch = Path(self._scratch)
        # A copy with symlinks followed (the grammar and docs are links into the repo).
        shutil.copytree(Path(self.root) / "src" / "mrules", scratch / "mrules", symlinks=False)
        (scratch / "setup_mypyc.py").write_text(_SETUP.format(modules=modules), encoding="utf-8")
        self.app.display_info(f"mrules: compiling {len(modules)} modules with mypyc")
        proc = subprocess.run(
            [sys.executable, "setup_mypyc.py", "build_ext", "--inplace"],
            cwd=scratch,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
            if os.environ.get("MRULES_REQUIRE_COMPILED"):
                raise RuntimeError(
                    f"mrules: mypyc failed (MRULES_REQUIRE_COMPILED is set):\n{tail}"
                )
            self.app.display_warning(
                "mrules: the compiled engine could not be built; this wheel is pure Python"
                f" (the same behaviour, slower):\n{tail}"
            )
            return
        built = sorted(scratch.glob("*.so")) + sorted((scratch / "mrules").rglob("*.so"))
        built += sorted(scratch.glob("*.pyd")) + sorted((scratch / "mrules").rglob("*.pyd"))
        for path in built:
            build_data["force_include"][str(path)] = str(path.relative_to(scratch))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
