"""mrules creates no folders but the one it is given (docs/outputs.md): `partition --out
DIR` and `replay --store-dir DIR` make DIR, and refuse a DIR whose parent is missing
(exit 2, nothing created) instead of making the whole chain (`mkdir -p`), which turned a
typo in a path into a tree of new folders."""

from __future__ import annotations

from pathlib import Path

from conftest import mrules

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "getcloudy"


def test_partition_out_in_a_missing_folder_is_refused(here: Path) -> None:
    r = mrules("partition", EXAMPLE / "events.jsonl", "--buckets", "4", "--out", "typo/parts")
    assert r.exit_code == 2, r.output
    assert "typo does not exist or is not a folder; create it first" in r.stderr
    assert not (here / "typo").exists()
    r = mrules("partition", EXAMPLE / "events.jsonl", "--buckets", "4", "--out", "parts", "-q")
    assert r.exit_code == 0, r.output
    assert (here / "parts" / "manifest.json").is_file()


def test_replay_store_dir_in_a_missing_folder_is_refused(here: Path) -> None:
    rules, events = EXAMPLE / "rules", EXAMPLE / "events.jsonl"
    r = mrules("replay", "--diff", rules, rules, events, "--store-dir", "typo/sd")
    assert r.exit_code == 2, r.output
    assert "typo does not exist or is not a folder; create it first" in r.stderr
    assert not (here / "typo").exists()
    r = mrules("replay", "--diff", rules, rules, events, "--store-dir", "sd")
    assert r.exit_code == 0, r.output
    assert (here / "sd" / "old.db").is_file() and (here / "sd" / "new.db").is_file()
