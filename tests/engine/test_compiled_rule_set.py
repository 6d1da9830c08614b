"""What a rule set compiles to beyond its criteria: the sync block's defaults."""

from __future__ import annotations

import mrules


def test_with_no_sync_block_a_crm_record_of_an_unknown_email_makes_no_prospect() -> None:
    # `auto create prospects` is off unless a sync block turns it on (docs/semantics.md).
    event = {"ts": "2026-09-01T00:00:00Z", "type": "crm_update", "object": "lead"}
    event |= {"prospect": "new@x.example", "fields": {"Phone": "1"}}
    with mrules.run('form "F"\n', [event]) as result:
        assert result.export() == []
        assert result.summary.ignored == 1
