"""The VS Code extension folder: its manifest, its TextMate grammar (kept in step with the
Lark grammar's keywords), the client script, and the grammar run on the example files and
its syntax tests with `vscode-tmgrammar-test` from npm (skipped, with the reason, when node,
npm or the package cannot be had)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mrules.comments import scan
from mrules.parser import lark_parser

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = json.loads((VSCODE / "syntaxes" / "mrules.tmLanguage.json").read_text("utf-8"))
EXAMPLES = sorted((ROOT / "examples" / "getcloudy" / "rules").glob("*.mr"))
TOOL_VERSION = "0.1.3"


def keywords() -> set[str]:
    return {
        t.pattern.value
        for t in lark_parser().terminals
        if t.pattern.type == "str" and t.pattern.value.isalpha()
    }


def test_manifest_points_at_the_grammar_and_configuration() -> None:
    manifest = json.loads((VSCODE / "package.json").read_text("utf-8"))
    [lang] = manifest["contributes"]["languages"]
    assert lang["extensions"] == [".mr"] and lang["id"] == "mrules"
    assert (VSCODE / lang["configuration"]).is_file()
    [grammar] = manifest["contributes"]["grammars"]
    assert grammar["scopeName"] == GRAMMAR["scopeName"] == "source.mrules"
    assert (VSCODE / grammar["path"]).is_file()
    assert (VSCODE / manifest["main"]).is_file()
    config = json.loads((VSCODE / "language-configuration.json").read_text("utf-8"))
    assert config["comments"]["lineComment"] == "#"
    props = manifest["contributes"]["configuration"]["properties"]
    assert props["mrules.server.args"]["default"] == ["lsp"]


def test_every_keyword_of_the_language_is_highlighted() -> None:
    patterns = GRAMMAR["repository"]["keywords"]["patterns"]
    covered = set()
    for p in patterns:
        covered |= set(re.findall(r"[a-z]+", p["match"].removeprefix(r"\b(?:")))
    assert keywords() - covered == set()


def test_the_client_script_is_valid_javascript() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    out = subprocess.run(
        [node, "--check", str(VSCODE / "extension.js")], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def tmgrammar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vscode-tmgrammar-test binaries, installed from npm into a temporary folder."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("node and npm are not installed: the TextMate grammar is not run")
    prefix = tmp_path_factory.mktemp("npm")
    try:
        out = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                "--silent",
                f"vscode-tmgrammar-test@{TOOL_VERSION}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("npm install vscode-tmgrammar-test timed out")
    bin_dir = prefix / "node_modules" / ".bin"
    if out.returncode != 0 or not (bin_dir / "vscode-tmgrammar-test").exists():
        pytest.skip(f"npm could not install vscode-tmgrammar-test: {out.stderr[-300:]}")
    return bin_dir


def test_grammar_syntax_tests(tmgrammar: Path) -> None:
    out = subprocess.run(
        [
            str(tmgrammar / "vscode-tmgrammar-test"),
            "-g",
            "syntaxes/mrules.tmLanguage.json",
            "test/*.test.mr",
        ],
        cwd=VSCODE,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("run successfuly") == len(list((VSCODE / "test").glob("*.test.mr")))


def snapshot_scopes(snap: str) -> list[list[set[str]]]:
    """Scopes per (line, column) from a vscode-tmgrammar-snap snapshot."""
    lines: list[list[set[str]]] = []
    for row in snap.split("\n"):
        if row.startswith(">"):
            lines.append([set() for _ in range(len(row) - 1)])
        elif row.startswith("#") and lines:
            m = re.match(r"#( *)(\^+) (.*)$", row)
            if m:
                start = len(m.group(1))
                for col in range(start, start + len(m.group(2))):
                    if col < len(lines[-1]):
                        lines[-1][col] |= set(m.group(3).split())
    return lines


def test_grammar_on_the_example_files(tmgrammar: Path, tmp_path: Path) -> None:
    for path in EXAMPLES:
        shutil.copy(path, tmp_path / path.name)
    out = subprocess.run(
        [
            str(tmgrammar / "vscode-tmgrammar-snap"),
            "-g",
            str(VSCODE / "syntaxes" / "mrules.tmLanguage.json"),
            "-s",
            "source.mrules",
            "--updateSnapshot",
            str(tmp_path / "*.mr"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    kw = keywords()
    for path in EXAMPLES:
        text = path.read_text("utf-8")
        scopes = snapshot_scopes((tmp_path / f"{path.name}.snap").read_text("utf-8"))
        starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

        def at(offset: int, _starts: list[int] = starts, _scopes=scopes) -> set[str]:
            line = max(i for i, s in enumerate(_starts) if s <= offset)
            return _scopes[line][offset - _starts[line]]

        tokens, comments = scan(text)
        for c in comments:
            assert any(s.startswith("comment.line") for s in at(c.start)), (path.name, c)
        for t in tokens:
            got = at(t.start)
            assert not any("invalid" in s for s in got), (path.name, t, got)
            if t.text.startswith('"'):
                assert "string.quoted.double.mrules" in got, (path.name, t, got)
            elif t.text in kw:
                assert any(s.split(".")[0] in ("keyword", "storage", "constant") for s in got), (
                    path.name,
                    t,
                    got,
                )
            elif re.fullmatch(r"[+-]?[0-9]+", t.text):
                assert any(s.startswith("constant.numeric") for s in got), (path.name, t, got)
