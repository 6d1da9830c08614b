"""A sync whose times are before the year 1000: every time in four digits, read back as
written (`strftime("%Y")` wrote the year 999 as `999` on Linux, and `sync apply` then
failed with an internal error reading its own plan)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.sync.world import BOB, World, ev

from mrules.sync.plan import iso

EARLY = "0999-11-02T09:00:00Z"


def test_a_plan_before_the_year_1000_writes_four_digit_years_and_applies(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    w.run(ev(EARLY, "ann@x.com", asset="Demo"), ev(EARLY, "bob@x.com", asset="Demo"))
    plan = json.loads(w.sync("plan", "--format", "json", code=2).output)
    assert plan["at"] == EARLY
    times = re.findall(r'"(?:ts|at|since)": "([^"]*)"', json.dumps(plan))
    assert times and all(t.startswith("0999-") for t in times), times
    assert f"sync plan {plan['id']} at {EARLY}" in w.sync("plan", code=2).output
    applied = w.sync("apply")  # exit 70 (an internal error) before the fix
    assert f"sync at {EARLY}:" in applied.output and "Traceback" not in applied.output
    assert w.status()["last_cycle"] == EARLY
    assert f"last cycle: {EARLY}" in w.ok("sync", "status", "--store", str(w.store)).output


def test_iso_pads_the_year() -> None:
    assert iso(-62135596800.0) == "0001-01-01T00:00:00Z"  # the first second of the year 1
    assert iso(0.5) == "1970-01-01T00:00:00Z"
