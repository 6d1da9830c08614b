"""`RunSummary`'s repr: one short line, however many rules acted.

It was the dataclass's: every action and every rule's count of matches, about 2,000
characters on the bundled example, growing with the rules (a notebook cell, a log
line, a failed assertion's message). The data stays in the attributes.
"""

from __future__ import annotations

from pathlib import Path

import mrules

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "getcloudy"


def _run(rules: int, events: int = 240) -> mrules.api.RunResult:
    text = "".join(f'page action "P{i}" on "x.example/p{i}" {{ score +1 }}\n' for i in range(rules))
    lines = [
        {
            "ts": f"2026-11-02T09:{n // 60:02}:{n % 60:02}Z",
            "type": "page_view",
            "prospect": "a@x.example",
            "url": f"https://x.example/p{n % rules}",
        }
        for n in range(events)
    ]
    return mrules.run(text, lines)


def test_the_summary_s_repr_does_not_grow_with_the_rules() -> None:
    few, many = _run(2).summary, _run(120).summary
    assert len(few.matches) == 2 and len(many.matches) == 120  # the data is all there
    assert sum(many.matches.values()) == 240
    assert repr(few) == repr(many)
    assert repr(many) == (
        "<RunSummary lines=240 applied=240 duplicates=0 rejected=0 ignored=0 prospects_created=1>"
    )


def test_the_summary_s_repr_on_the_example_is_one_short_line(tmp_path: Path) -> None:
    rules, events = EXAMPLE / "rules", EXAMPLE / "events.jsonl"
    summary = mrules.run(rules, events).summary
    assert repr(summary) == (
        "<RunSummary lines=28 applied=27 duplicates=1 rejected=0 ignored=1 prospects_created=6>"
    )
    assert summary.actions["score"] == 26 and summary.seconds >= 0  # still reachable
    with mrules.run(rules, events, store=tmp_path / "s.db"):
        pass
    with mrules.run(rules, events, store=tmp_path / "s.db") as again:  # where it resumed
        assert repr(again.summary) == (
            "<RunSummary lines=0 applied=0 duplicates=0 rejected=0 ignored=0"
            " prospects_created=0 resumed_from=28>"
        )
    assert str(summary) == repr(summary)
