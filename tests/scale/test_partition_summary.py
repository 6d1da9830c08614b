"""`mrules partition`'s summary line when no line has an event time: it said `until None`."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from mrules.cli import main


def test_an_empty_file_has_no_event_time_in_the_summary(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    r = CliRunner().invoke(
        main, ["partition", str(empty), "--buckets", "2", "--out", str(tmp_path / "pp")]
    )
    assert r.exit_code == 0, r.output
    assert "None" not in r.stderr
    assert r.stderr.rstrip().endswith("no event time yet")


def test_the_latest_event_time_is_in_the_summary(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(
        '{"ts": "2026-11-02T09:00:00Z", "type": "page_view", "prospect": "a@x.com",'
        ' "url": "https://x.com/"}\n',
        "utf-8",
    )
    r = CliRunner().invoke(
        main, ["partition", str(events), "--buckets", "2", "--out", str(tmp_path / "pp")]
    )
    assert r.exit_code == 0, r.output
    assert r.stderr.rstrip().endswith("until 2026-11-02T09:00:00Z")
