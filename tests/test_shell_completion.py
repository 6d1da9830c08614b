"""`mrules completion bash`, loaded in a real bash: what Tab offers after a command line."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MRULES = Path(sys.executable).with_name("mrules")  # the console script the user runs

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def complete(words: list[str]) -> tuple[list[str], list[str]]:
    """What bash completes after `words` (the last one is the word being typed): the
    words offered, and the `compopt` calls (`-o default`: bash completes file names).

    `compopt` only works inside a completion bash itself runs; here a function of
    the same name records what the script asked of it."""
    script = subprocess.run(
        [str(MRULES), "completion", "bash"], capture_output=True, text=True, check=True
    ).stdout
    line = shlex.join(words)
    program = f"""
compopt() {{ local IFS=' '; echo "compopt $*" >&2; }}
eval "$1"
COMP_WORDS=({" ".join(shlex.quote(w) for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE={shlex.quote(line)}
COMP_POINT={len(line)}
COMPREPLY=()
_mrules_completion mrules
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    path = f"{MRULES.parent}:/usr/bin:/bin"  # `mrules` as the script calls it
    out = subprocess.run(
        ["bash", "-c", program, "bash", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": path, "HOME": str(Path.home())},
        timeout=120,
    )
    return [w for w in out.stdout.split("\n") if w], out.stderr.splitlines()


@needs_bash
def test_commands_complete() -> None:
    words, _ = complete(["mrules", ""])
    assert {"run", "lint", "state", "segment", "partition", "parse", "completion"} <= set(words)


@needs_bash
def test_options_of_run_complete() -> None:
    words, _ = complete(["mrules", "run", "--"])
    assert {"--store", "--rejects", "--wait", "--quiet", "--help"} <= set(words)
    assert all(w.startswith("--") for w in words), words


@needs_bash
@pytest.mark.parametrize(
    "words",
    [
        pytest.param(["mrules", "state", "export", "--store", ""], id="state-export"),
        pytest.param(["mrules", "state", "outbox", "--store", "g"], id="state-outbox"),
        pytest.param(["mrules", "segment", "rules", "--store", ""], id="segment"),
        pytest.param(["mrules", "run", "rules", "events.jsonl", "--store", ""], id="run"),
        pytest.param(["mrules", "explain", "a@b.example", "--sync-db", ""], id="explain-sync-db"),
        pytest.param(["mrules", "report", "funnel", "--sync-db", ""], id="report-sync-db"),
    ],
)
def test_a_store_or_sync_file_completes_as_a_file_name(words: list[str]) -> None:
    """`--store <Tab>` and `--sync-db <Tab>` completed nothing at all: their types were
    no `click.Path`, so click offered no completion and bash none either (the script
    asks bash for its file names only when told to)."""
    offered, compopt = complete(words)
    assert offered == []
    assert compopt == ["compopt -o default"]


def fish_complete(line: str, cwd: Path) -> list[str]:
    """What fish completes after `line`, with `mrules completion fish` loaded."""
    script = subprocess.run(
        [str(MRULES), "completion", "fish"], capture_output=True, text=True, check=True
    ).stdout
    (cwd / "mrules.fish").write_text(script, "utf-8")
    out = subprocess.run(
        ["fish", "--no-config", "-c", "source mrules.fish; complete -C $argv[1]", line],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        env={"PATH": f"{MRULES.parent}:/usr/bin:/bin", "HOME": str(cwd)},
        timeout=120,
    )
    return out.stdout.splitlines()


@pytest.mark.skipif(shutil.which("fish") is None, reason="needs fish")
def test_fish_keeps_what_follows_a_comma(tmp_path: Path) -> None:
    """click's fish script split each answer at every comma: `mrules lint a,b/<Tab>`
    completed `a` (and offered the folder `a,b/` again, never the files in it), and
    every help text stopped at its first comma."""
    (tmp_path / "a,b").mkdir()
    (tmp_path / "a,b" / "rules.mr").write_text("", "utf-8")
    assert fish_complete("mrules lint a,b/", tmp_path) == ["a,b/rules.mr"]
    [explain] = fish_complete("mrules expl", tmp_path)
    assert explain.startswith("explain\tExplain why EMAIL has its score, lists,")


def test_the_fish_script_splits_each_answer_at_its_first_comma_only() -> None:
    """Where fish is not installed, the script itself: one split, at the first comma."""
    script = subprocess.run(
        [str(MRULES), "completion", "fish"], capture_output=True, text=True, check=True
    ).stdout
    assert 'string split -m 1 "," -- $completion' in script
    assert 'string split "," $completion' not in script
