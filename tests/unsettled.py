"""Rule sets whose rules do not settle, set up for a run that gets past the lint.

The lint refuses the known cause (MR313: dynamic lists that read each other through
`not`); the run's report of unsettled prospects is the safety net for what it misses,
so the tests of that report run such a rule set with the checker skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

OSCILLATING = """
dynamic list "A" {
  when all {
    not in list "B"
  }
}
dynamic list "B" {
  when all {
    in list "A"
  }
}
"""
"""Two dynamic lists that flip each other: a prospect in neither never settles."""


def unchecked_rules(monkeypatch: pytest.MonkeyPatch, folder: Path, text: str = OSCILLATING) -> Path:
    """`text` as FOLDER/r.mr, and `mrules run` in this process past the lint: the file."""
    monkeypatch.setattr("mrules.cli.run_cmd.check", lambda program: [])
    rules = folder / "r.mr"
    rules.write_text(text)
    return rules
