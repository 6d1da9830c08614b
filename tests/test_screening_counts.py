"""The run summary's counts of unexpected events, and how their names are shown.

Found by mutation testing of `engine/screening.py`: a summary keeps at most 100
distinct causes (the rest counted together), and a name longer than 60 characters is
cut in a message; neither was exercised."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import mrules
from mrules.cli import main


def _form(asset: str, line: int) -> dict[str, str]:
    return {
        "ts": f"2026-01-01T00:00:{line % 60:02d}Z",
        "type": "form_submit",
        "prospect": "ann@x.com",
        "asset": asset,
    }


def test_a_cause_already_kept_still_counts_once_the_summary_keeps_no_new_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "r.mr").write_text('form "Known"\n')
    names = [f"f{i:03d}" for i in range(101)] + ["f000", "f000"]
    events = tmp_path / "e.jsonl"
    events.write_text("".join(json.dumps(_form(n, i)) + "\n" for i, n in enumerate(names)))
    with mrules.run(tmp_path / "r.mr", events) as result:
        counts = result.summary.unknown_assets
    assert counts["unknown form 'f000'"] == 3
    assert counts[""] == 1  # f100: the 101st distinct cause
    assert sum(counts.values()) == 103
    res = CliRunner().invoke(
        main, ["run", str(tmp_path / "r.mr"), str(events), "--store", ":memory:"]
    )
    assert res.exit_code == 0, res.output
    row = next(line for line in res.stderr.splitlines() if "unknown form 'f000'" in line)
    assert row.rstrip("│ ").endswith("3")


def test_a_long_unknown_name_is_cut_after_60_characters(tmp_path: Path) -> None:
    (tmp_path / "r.mr").write_text('settings { unknown_assets = "reject" }\nform "Known"\n')
    sixty, more = "x" * 60, "y" * 61
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps(_form(sixty, 1)) + "\n" + json.dumps(_form(more, 2)) + "\n")
    rejects = tmp_path / "rejects.jsonl"
    res = CliRunner().invoke(
        main,
        [
            "run",
            str(tmp_path / "r.mr"),
            str(events),
            "--store",
            ":memory:",
            "--rejects",
            str(rejects),
        ],
    )
    assert res.exit_code == 3, res.output
    reasons = [json.loads(line)["reason"] for line in rejects.read_text().splitlines()]
    assert reasons == [f"unknown form '{sixty}'", f"unknown form '{'y' * 60}...'"]
