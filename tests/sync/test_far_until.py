"""`sync run --until` far away: every cycle due is run, idle ones included (each reads the
CRM, whose API calls `sync status` counts and the day's limit takes, and records a row of
its own: none can be skipped without changing what a user sees); more than `FAR_CYCLES`
due is said first, in one warning line naming the count and the least time they take
(docs/sync.md#a-cycle)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

import mrules.cli.sync_cmd
import mrules.sync.cycle

from .org import Org
from .test_held_for_permission import RULES, T0


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_an_until_in_the_year_9999_says_how_many_cycles_and_how_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--until 9999-12-31T00:00:00Z` ran idle cycles for days without a word; it now says
    first how many cycles are due and that they take days. Interrupted at once (Ctrl-C),
    it exits 130 as before, and the same command resumes."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0

    def interrupted(*args: Any, **kw: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(mrules.sync.cycle, "run_until", interrupted)
    far = "9999-12-31T00:00:00Z"
    r = org.sync("run", "--until", far)
    assert r.exit_code == 130, r.output
    due = round((_epoch(far) - _epoch(T0)) / 600)  # one every 10 minutes after T0's
    (warning,) = [line for line in r.stderr.splitlines() if "warning" in line]
    assert warning.startswith(
        f"mrules: warning: {due:,} cycles are due up to --until {far} (one every 10 minutes)"
    ), warning
    assert "so this takes at least " in warning and " days;" in warning, warning


def test_more_cycles_than_the_bound_are_said_and_all_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the bound at 100 cycles: two days of cycles (288) are said in the warning, and
    all of them are run (one idle line of 288); ten hours (60) are run without it."""
    monkeypatch.setattr(mrules.cli.sync_cmd, "FAR_CYCLES", 100)
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0
    r = org.sync("run", "--until", "2026-11-02T19:00:00Z")
    assert r.exit_code == 0, r.output
    assert "warning" not in r.stderr, r.stderr
    assert "60 idle cycles: nothing to do" in r.stdout, r.stdout
    r = org.sync("run", "--until", "2026-11-04T19:00:00Z")
    assert r.exit_code == 0, r.output
    assert r.stderr.startswith("mrules: warning: 288 cycles are due up to --until"), r.stderr
    assert "288 idle cycles: nothing to do" in r.stdout, r.stdout
