"""`mrules lsp` as a command: its help, and a clear message when the `lsp` extra is missing."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from mrules.cli import main


def test_lsp_help() -> None:
    result = CliRunner().invoke(main, ["lsp", "--help"])
    assert result.exit_code == 0 and "Language Server Protocol" in result.stdout


def test_lsp_without_pygls_says_how_to_install_it() -> None:
    code = ("import sys; sys.modules['pygls'] = None; sys.modules['pygls.lsp'] = None; "
            "sys.modules['pygls.lsp.server'] = None; sys.modules['pygls.exceptions'] = None; "
            "from mrules.cli import main; main(['lsp'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "pip install 'mrules[lsp]'" in out.stderr
    assert "Traceback" not in out.stderr
