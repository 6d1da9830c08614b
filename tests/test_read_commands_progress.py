"""The commands that read a whole store show on a terminal what they are doing, as `mrules
run` does: a spinner, what is being read, the time taken (and done of the total where it is
known); nothing where standard error is not a terminal.

At 2 million events `state export` took 16 s, `report html` 24 s, `report rules` 12 s,
`segment` 7 s and `state outbox` 7 s with nothing on the screen; at 200,000
prospects `sync plan` took 72 s and `sync apply` (a first link) 104 s.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from tests.terminal import on_a_terminal, output_on_a_terminal

from conftest import EXAMPLE, example_store, mrules

COMMANDS = {
    "export": (["state", "export"], "exporting prospects"),
    "outbox": (["state", "outbox"], "reading the outbox"),
    "funnel": (["report", "funnel"], "reading the store for the report"),
    "rules": (["report", "rules"], "reading the store for the report"),
    "html": (["report", "html", "{tmp}/page.html"], "report html:"),
    "segment": (["segment", str(EXAMPLE / "rules")], "segmenting every prospect"),
    "sync plan": (["sync", "plan", "--rules", str(EXAMPLE / "rules")], "sync plan: reading"),
    "sync apply": (["sync", "apply", "--rules", str(EXAMPLE / "rules")], "sync apply: planning"),
}
EXIT = {"sync plan": 2}  # work pending (docs/exit-codes.md)


def _args(name: str, tmp_path: Path, store: Path) -> list[str]:
    args, _label = COMMANDS[name]
    return [a.replace("{tmp}", str(tmp_path)) for a in args] + ["--store", str(store)]


def _copy(store: Path, folder: Path) -> Path:
    """The store and its CRM file in FOLDER (segment and sync apply change them)."""
    shutil.copy(store.with_name("g.crm.db"), folder / "g.crm.db")
    return Path(shutil.copy(store, folder / "g.db"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_store(tmp_path_factory.mktemp("progress"))


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_terminal_shows_what_the_command_reads(name: str, store: Path, tmp_path: Path) -> None:
    copy = _copy(store, tmp_path)
    code, out, shown = on_a_terminal([sys.executable, "-m", "mrules", *_args(name, tmp_path, copy)])
    assert code == EXIT.get(name, 0), shown
    assert COMMANDS[name][1] in shown, shown
    assert COMMANDS[name][1] not in out  # the records and tables are unchanged
    assert "Traceback" not in shown
    if name == "export":  # done of the total: the example's prospects, one a line
        assert f"0/{len(out.splitlines())}" in shown, shown


@pytest.mark.parametrize("name", list(COMMANDS))
def test_nothing_where_standard_error_is_not_a_terminal(
    name: str, store: Path, tmp_path: Path
) -> None:
    copy = _copy(store, tmp_path)
    result = mrules(*_args(name, tmp_path, copy))
    assert result.exit_code == EXIT.get(name, 0), result.output
    assert COMMANDS[name][1] not in result.stderr


def test_no_bar_between_records_printed_on_the_terminal(store: Path) -> None:
    # Standard output the terminal too: the records scrolling by are the progress.
    code, text = output_on_a_terminal(
        [sys.executable, "-m", "mrules", "state", "export", "--store", str(store)],
        stderr_too=True,
    )
    assert code == 0
    assert '"email"' in text and "exporting prospects" not in text


QUIET_HELP = "No progress line, no summary table."  # `mrules run -q`'s, word for word


@pytest.mark.parametrize("flag", ["-q", "--quiet"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_quiet_shows_no_progress_on_a_terminal(
    name: str, flag: str, store: Path, tmp_path: Path
) -> None:
    # As `mrules run -q`: the progress line could not be turned off (a terminal that
    # records its session, a screen reader); the output itself is the same.
    copy = _copy(store, tmp_path)
    code, out, shown = on_a_terminal(
        [sys.executable, "-m", "mrules", *_args(name, tmp_path, copy), flag]
    )
    assert code == EXIT.get(name, 0), shown
    assert COMMANDS[name][1] not in shown, shown
    assert "Traceback" not in shown
    if name in ("export", "outbox", "funnel", "rules"):  # the store unchanged: the same bytes
        _code, again, _shown = on_a_terminal(
            [sys.executable, "-m", "mrules", *_args(name, tmp_path, copy)]
        )
        assert out == again
    if name == "html":  # nor its summary line on standard error
        assert "open it in a browser" not in shown
        assert (tmp_path / "page.html").stat().st_size > 0


@pytest.mark.parametrize("name", list(COMMANDS))
def test_quiet_has_run_s_help(name: str) -> None:
    args, _label = COMMANDS[name]
    words = [a for a in args if not a.startswith(("{", "/"))]
    result = mrules(*words[: 2 if words[0] in ("state", "report", "sync") else 1], "--help")
    assert "-q, --quiet" in result.output
    assert " ".join(QUIET_HELP.split()) in " ".join(result.output.split())
    run_help = " ".join(mrules("run", "--help").output.split())
    assert " ".join(QUIET_HELP.split()) in run_help
