"""Events files whose names are not UTF-8, folders and pipes, given to `mrules run` and
`mrules partition`.

`mrules run bad\\xff.jsonl` and `mrules partition bad\\xff.jsonl` were internal errors
(exit 70): the store's text and the manifest's JSON cannot hold the name's raw byte.
Both now name the file with the byte as an escape, the same way, so a partitioned run
still writes what one process writes. A folder or a pipe given to `mrules partition`
was "no such file"."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from scale_helpers import ROOT, getcloudy_rules
from scale_helpers import invoke as _invoke

BAD_NAME = os.fsdecode(b"bad\xffname.jsonl")


@pytest.fixture
def getcloudy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    getcloudy_rules(tmp_path)
    data = (ROOT / "examples/getcloudy/events.jsonl").read_bytes()
    (tmp_path / BAD_NAME).write_bytes(data + b"not json\n")
    return tmp_path


def test_run_and_partition_a_file_whose_name_is_not_utf8(getcloudy: Path) -> None:
    one = _invoke("run", "rules", BAD_NAME, "--store", "one.db", "--actions", "one.jsonl", "-q")
    assert one.exit_code == 3, one.output  # the line that is not JSON; exit 70 before
    rejects = Path("one.rejects.jsonl").read_text("utf-8")
    assert "bad\\\\xffname.jsonl" in rejects and '"line":29' in rejects
    again = _invoke("run", "rules", BAD_NAME, "--store", "one.db", "-q")
    assert again.exit_code == 3, again.output  # resumed: the same stream, nothing applied
    assert Path("one.jsonl").read_text("utf-8").count('"seq":') > 0

    r = _invoke("partition", BAD_NAME, "--buckets", "3", "--out", "part")
    assert r.exit_code == 0, r.output  # exit 70 before
    r = _invoke("partition", BAD_NAME, "--out", "part")
    assert r.exit_code == 2 and "a file is partitioned once" in r.output
    many = _invoke("run", "rules", "part", "--engine", "local", "--workers", "1",
                   "--store", "many.db", "--actions", "many.jsonl", "-q")  # fmt: skip
    assert many.exit_code == 3, many.output
    assert Path("one.jsonl").read_bytes() == Path("many.jsonl").read_bytes()
    assert Path("one.rejects.jsonl").read_bytes() == Path("many.rejects.jsonl").read_bytes()


def test_partition_names_a_folder_and_a_pipe(getcloudy: Path) -> None:
    Path("folder.jsonl").mkdir()
    r = _invoke("partition", "folder.jsonl", "--buckets", "2", "--out", "part")
    assert r.exit_code == 2 and "folder.jsonl: a folder, not an events file" in r.output
    os.mkfifo("pipe.jsonl")
    r = _invoke("partition", "pipe.jsonl", "--buckets", "2", "--out", "part")
    assert r.exit_code == 2 and "pipe.jsonl: not a regular file" in r.output
    r = _invoke("partition", "nowhere.jsonl", "--buckets", "2", "--out", "part")
    assert r.exit_code == 2 and "nowhere.jsonl: no such file" in r.output
    assert not Path("part").exists()
