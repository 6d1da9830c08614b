"""`mrules state outbox` on the example: the autoresponder goes out once, opt-outs get none."""

from __future__ import annotations

import json

from click.testing import CliRunner

from conftest import EXAMPLE
from mrules.cli import main


def test_outbox_of_the_example(tmp_path) -> None:
    store = str(tmp_path / "gc.db")
    runner = CliRunner()
    run = runner.invoke(
        main, ["run", str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), "--store", store, "-q"]
    )
    assert run.exit_code == 0, run.output
    result = runner.invoke(main, ["state", "outbox", "--store", store])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    auto = [(r["prospect"], r["email"]) for r in rows if r["kind"] == "autoresponder"]
    # Leung submits twice within the 10-minute throttle: one "Proposition d'horaire".
    assert auto.count(("leung@example.com", "Proposition d'horaire")) == 1
    # Henry's first submit is answered; he then opts out, so his second gets nothing.
    assert auto.count(("henry@example.org", "Proposition d'horaire")) == 1
    leung_notes = [
        r["to"] for r in rows if r["kind"] == "notify" and r["prospect"] == "leung@example.com"
    ]
    # Alan (assigned) twice for the two submits; Leung once for the pricing page,
    # the second pricing view falling within the page action's notification hour.
    assert sorted(leung_notes) == [
        "alan@getcloudy.com",
        "alan@getcloudy.com",
        "leung@getcloudy.com",
    ]
