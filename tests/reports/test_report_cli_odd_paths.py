"""`mrules report` and `explain --timeline` given odd paths: a page name that is not UTF-8
(shown as `\\xNN`, never as a raw surrogate escape), and a `--sync-db` that is a folder or
empty (it read as "no sync file at .")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import mrules
from mrules.reports import funnel
from mrules.storeapi import StorePathError

EMAIL = "p01@x.example"


def test_html_says_where_it_wrote_a_name_that_is_not_utf8(copy: Path) -> None:
    out = os.fsdecode(b"o\xff.html")
    r = mrules("report", "html", out, "--store", copy)
    assert r.exit_code == 0, r.output
    assert "wrote o\\xff.html (" in r.stderr  # was `wrote o\udcff.html`
    assert "udcff" not in r.stderr
    assert Path(out).is_file()


def test_html_names_a_missing_folder_that_is_not_utf8(copy: Path) -> None:
    r = mrules("report", "html", os.fsdecode(b"nod\xfe/o.html"), "--store", copy)
    assert r.exit_code == 2, r.output
    assert "cannot write nod\\xfe/o.html: no folder nod\\xfe" in r.stderr
    assert "udcfe" not in r.stderr


def test_html_cannot_write_a_name_that_is_not_utf8(copy: Path) -> None:
    out = os.fsdecode(b"a" * 300 + b"\xff.html")  # too long a name: cannot be written
    r = mrules("report", "html", out, "--store", copy)
    assert r.exit_code == 4, r.output
    assert "cannot write " in r.stderr and "a\\xff.html" in r.stderr
    assert "udcff" not in r.stderr


@pytest.mark.parametrize("command", [["funnel"], ["campaigns"], ["rules"], ["html", "o.html"]])
def test_sync_db_that_is_a_folder_or_empty_is_a_usage_error(
    copy: Path, tmp_path: Path, command: list[str]
) -> None:
    for bad, said in (
        (tmp_path, f"{tmp_path} is a folder, not a sync file"),
        ("", "the name is empty"),
        ("  ", "the name is empty"),
    ):
        r = mrules("report", *command, "--store", copy, "--sync-db", bad)
        assert r.exit_code == 2, r.output
        assert said in r.stderr, r.stderr  # was "no sync file at ."
        assert "no sync file at" not in r.stderr
    assert not Path("o.html").exists()
    r = mrules("report", *command, "--store", copy, "--sync-db", "missing.sync.db")
    assert r.exit_code == 2 and "no sync file at missing.sync.db" in r.stderr


def test_timeline_sync_db_that_is_a_folder_or_empty_is_a_usage_error(
    copy: Path, tmp_path: Path
) -> None:
    for bad, said in (
        (tmp_path, "is a folder, not a sync file"),
        ("", "the name is empty"),  # was "--sync-db : no such file"
    ):
        r = mrules("explain", EMAIL, "--store", copy, "--timeline", "--sync-db", bad)
        assert r.exit_code == 2, r.output
        assert said in r.stderr, r.stderr
    r = mrules("explain", EMAIL, "--store", copy, "--timeline", "--sync-db", "fx.sync.db")
    assert r.exit_code == 0, r.output


def test_the_reports_api_refuses_a_sync_db_that_is_a_folder_or_empty(
    copy: Path, tmp_path: Path
) -> None:
    with pytest.raises(StorePathError, match="is empty"):
        funnel(copy, sync_db="")
    with pytest.raises(StorePathError, match="is a folder"):
        funnel(copy, sync_db=tmp_path)


@pytest.mark.parametrize("command", [["funnel"], ["html", "o.html"]])
def test_a_store_that_is_a_folder_or_a_device_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """`report html --store FOLDER` said "no store at FOLDER (run `mrules run ... --store
    FOLDER` first)", where the other reports say what is there, as `mrules run` would
    refuse it: a folder (and which store file was meant), a device, a named pipe."""
    monkeypatch.chdir(tmp_path)
    os.mkfifo("pipe")
    for store, said in (
        (tmp_path, f"store {tmp_path} is a folder, not a file (did you mean"),
        ("/dev/null", "store /dev/null is a character device, not a file"),
        ("pipe", "store pipe is a named pipe, not a file"),
    ):
        r = mrules("report", *command, "--store", store)
        assert r.exit_code == 2, r.output
        assert said in r.stderr, r.stderr
        assert "no store at" not in r.stderr
    assert not Path("o.html").exists()
    r = mrules("report", *command, "--store", "missing.db")
    assert r.exit_code == 2 and "no store at missing.db" in r.stderr


@pytest.mark.parametrize("command", [["funnel"], ["campaigns"], ["html", "o.html"]])
def test_a_sync_db_of_0_bytes_is_named_as_such(copy: Path, command: list[str]) -> None:
    """A 0-byte `--sync-db` (a copy that failed, a `touch`) read "is not an mrules sync file
    (no link or opportunity table)", as if it were some other file; a 0-byte store is named
    as an empty file. Still exit 4, as any file that is no sync file."""
    Path("empty.sync.db").touch()
    r = mrules("report", *command, "--store", copy, "--sync-db", "empty.sync.db")
    assert r.exit_code == 4, r.output
    assert "empty.sync.db is not an mrules sync file: an empty file (0 bytes)" in r.stderr
    assert not Path("o.html").exists()
    r = mrules("explain", EMAIL, "--store", copy, "--timeline", "--sync-db", "empty.sync.db")
    assert r.exit_code == 4 and "sync file: an empty file (0 bytes)" in r.stderr, r.output
