"""`mrules report html --replay-diff FILE`: a file of the wrong shape is exit 2, never a crash.

The diff is a real one: `mrules replay --diff` on the bundled example with the
threshold of tests/replay/lower-threshold.sed (docs/replay.md's example); each
of its keys is then replaced by a value of another type.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.test_replay_cli import _lowered

from mrules.cli import main
from mrules.cli.report_html_cmd import html as html_cmd
from mrules.reports import html as page

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "getcloudy"


def _real_diff(folder: Path) -> dict[str, Any]:
    rules = _lowered(folder)
    events = str(EXAMPLE / "events.jsonl")
    r = CliRunner().invoke(
        main,
        ["replay", "--diff", str(EXAMPLE / "rules"), str(rules), events, "--format", "json"],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def _key_paths(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every key of every object, and the first item of every list (and its keys)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*path, k)
            yield from _key_paths(v, (*path, k))
    elif isinstance(value, list) and value:
        yield (*path, 0)
        yield from _key_paths(value[0], (*path, 0))


def _shown(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A store of the bundled example, and a real diff."""
    d = tmp_path_factory.mktemp("replay-diff")
    store = d / "g.db"
    r = CliRunner().invoke(
        main,
        ["run", str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), "--store", str(store)],
    )
    assert r.exit_code == 0, r.output
    return store, _real_diff(d)


def test_every_key_of_another_type_is_exit_2_or_a_page(
    setup: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each key of the real diff set to "x", null, 5 and []: a page, or exit 2 naming that key;
    never exit 70. One test rather than ~470: the paths come from the real diff. The other
    sections are left out of the page (their charts are most of its time, and read no diff)."""
    store, diff = setup
    for section in ("funnel", "campaigns", "rules", "scores", "timeline"):
        monkeypatch.setattr(page, f"_{section}_section", lambda *a: None)
    paths = list(_key_paths(diff))
    assert len(paths) > 100
    file, out = tmp_path / "diff.json", tmp_path / "r.html"
    wrong = []
    for path in paths:
        for bad in ("x", None, 5, []):
            mutated = copy.deepcopy(diff)
            parent = mutated
            for k in path[:-1]:
                parent = parent[k]
            parent[path[-1]] = bad
            file.write_text(json.dumps(mutated))
            out.unlink(missing_ok=True)
            r = CliRunner().invoke(
                html_cmd, [str(out), "--store", str(store), "--replay-diff", str(file)]
            )
            ok = (
                (r.exception is None or isinstance(r.exception, SystemExit))
                and "Traceback" not in r.output
                and "internal error" not in r.output
            )
            if r.exit_code == 2:  # the file and the first bad key path named, nothing written
                ok = ok and f"{file}: not the JSON of `mrules replay --diff" in r.stderr
                ok = ok and f"({_shown(path)}: " in r.stderr and not out.exists()
            else:
                ok = ok and r.exit_code == 0 and out.read_text().startswith("<!DOCTYPE html>")
            if not ok:
                wrong.append(f"{_shown(path)} = {bad!r}: exit {r.exit_code}: {r.output[-300:]}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"mql": "x", "score": {}, "rules": []}', "(mql_list: missing)"),
        (
            '{"mql_list": "MQL", "mql": {}, "score": {}, "rules": [5]}',
            "(prospects: missing)",
        ),
        ("[1]", "(the top level: an object expected)"),
    ],
)
def test_the_audit_cases(
    setup: tuple[Path, dict[str, Any]], tmp_path: Path, text: str, message: str
) -> None:
    file = tmp_path / "d1.json"
    file.write_text(text)
    out = tmp_path / "r.html"
    r = CliRunner().invoke(
        html_cmd, [str(out), "--store", str(setup[0]), "--replay-diff", str(file)]
    )
    assert r.exit_code == 2, r.stderr
    assert message in r.stderr and not out.exists()


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (("rules",), [5], "(rules[0]: an object expected)"),
        (("lists",), {"count": None, "examples": []}, "(lists.count: a whole number expected)"),
        (("mql", "gained", "count"), True, "(mql.gained.count: a whole number expected)"),
        (("score", "new", "buckets"), {}, "(score.new.buckets: a list expected)"),
    ],
)
def test_what_the_message_says(
    setup: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    where: tuple[str, ...],
    value: Any,
    message: str,
) -> None:
    store, diff = setup
    mutated = copy.deepcopy(diff)
    parent = mutated
    for k in where[:-1]:
        parent = parent[k]
    parent[where[-1]] = value
    file = tmp_path / "d.json"
    file.write_text(json.dumps(mutated))
    r = CliRunner().invoke(html_cmd, ["-", "--store", str(store), "--replay-diff", str(file)])
    assert r.exit_code == 2, r.stderr
    assert message in r.stderr and r.stdout == ""


def test_the_diff_comes_through_a_pipe(setup: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """`mrules replay --diff ... --format json | mrules report html r.html --replay-diff -`
    said "cannot read -: No such file or directory" (exit 2): `-` is standard input, as
    for every command that reads a file; what is wrong with it is named `<stdin>`."""
    store, diff = setup
    out = tmp_path / "r.html"
    r = CliRunner().invoke(
        html_cmd, [str(out), "--store", str(store), "--replay-diff", "-"], input=json.dumps(diff)
    )
    assert r.exit_code == 0, r.output
    with_file = tmp_path / "f.html"
    (tmp_path / "d.json").write_text(json.dumps(diff))
    r = CliRunner().invoke(
        html_cmd,
        [str(with_file), "--store", str(store), "--replay-diff", str(tmp_path / "d.json")],
    )
    assert r.exit_code == 0, r.output
    section = "<section id='replay-diff'>"
    piped, read = out.read_text(), with_file.read_text()
    assert section in piped and section in read
    assert piped[piped.index(section) :] == read[read.index(section) :]  # the same section
    r = CliRunner().invoke(html_cmd, ["-", "--store", str(store), "--replay-diff", "-"], input="{}")
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("mrules: error: <stdin>: not the JSON of `mrules replay --diff")
    assert r.stdout == ""
