"""Whatever a changes file or an export row holds, the CRM answers with a reason, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrules.crm.changes import OPS, apply_changes, read_changes
from mrules.crm.emulator import EmulatedCrm
from mrules.crm.files import find_files, load_files

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "getcloudy" / "crm"

KEYS = [
    "id", "email", "object", "fields", "owner", "label", "status", "opportunity", "account",
    "contact", "by", "name", "amount", "stage", "close_date", "campaign", "opportunity_label",
]  # fmt: skip


def _values(*, infinity: bool) -> st.SearchStrategy[object]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=infinity),
        st.text(max_size=12),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(
            st.sampled_from(
                ["LastName", "Phone", "OwnerId", "StageName", "Amount", "Nope", "IsWon"]
            ),
            st.one_of(
                st.text(max_size=5), st.integers(), st.none(), st.lists(st.none(), max_size=1)
            ),
            max_size=3,
        ),
        st.sampled_from(
            [
                "lead-henry", "contact-bob", "opp-startup-pilot", "bob@bigcorp.example",
                "henry@example.org", "sam@getcloudy.com", "Get Cloudy Consult 2026", "Lead",
                "Contact", "Opportunity", "Closed Won", "queue-inside-sales",
                "00Q5e0000000001EAA",
            ]
        ),
    )  # fmt: skip


VALUES = _values(infinity=True)  # rows are loaded as Python values
# A changes file is JSON, which has no Infinity (a line holding one is refused:
# tests/crm/test_crm_json_constants.py).
JSON_VALUES = _values(infinity=False)
CHANGE = st.fixed_dictionaries(
    {"at": st.just("2026-11-03T00:00:00Z"), "op": st.sampled_from(sorted(OPS))},
    optional=dict.fromkeys(KEYS, JSON_VALUES),
)
ROW = st.dictionaries(
    st.sampled_from(
        ["Id", "LastName", "Company", "Email", "Status", "OwnerId", "IsDeleted", "CreatedDate",
         "SystemModstamp", "IsConverted", "ConvertedContactId", "AccountId", "CampaignId",
         "LeadId", "Label", "Nope", "attributes"]
    ),
    VALUES,
    max_size=8,
)  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(CHANGE, max_size=5), st.sampled_from(["Lead", "Contact", "CampaignMember",
       "CampaignMemberStatus", "Opportunity", "Task"]), st.lists(ROW, max_size=3))  # fmt: skip
def test_random_changes_and_rows(tmp_path_factory, changes, sobject, rows) -> None:
    folder = tmp_path_factory.mktemp("c")
    with EmulatedCrm.open(folder / "c.crm.db") as crm:
        load_files(crm, find_files([SEED])[1])
        loaded, issues = crm.load_rows(sobject, list(enumerate(rows, 1)))
        assert loaded + len(issues) == len(rows)
        path = folder / "changes.jsonl"
        path.write_text("\n".join(json.dumps(c) for c in changes), encoding="utf-8")
        items, unreadable = read_changes(path)
        assert unreadable == []
        report = apply_changes(crm, items)
        assert len(report.applied) + len(report.failed) == len(changes)
        again = apply_changes(crm, items)  # applied once, never twice
        assert again.already == len(changes) and not again.applied


def test_a_file_not_utf8_gives_the_line_of_its_first_bad_byte(tmp_path: Path) -> None:
    """`sync run --changes` said line 0 (only `crm apply-changes` worked the line out)."""
    path = tmp_path / "changes.jsonl"
    path.write_bytes(b'{"op": "update"}\n{"op": "upd\xe9"}\n')
    changes, issues = read_changes(path)
    assert changes == []
    [(line, reason)] = issues
    assert line == 2 and reason.startswith("not UTF-8")


def test_an_op_that_is_no_text_is_an_unreadable_line_and_the_others_apply(
    tmp_path: Path, monkeypatch
) -> None:
    # `"op": {...}` was a TypeError reading the file (an object is not hashable): an
    # internal error that stopped the whole file.
    from click.testing import CliRunner

    from mrules.cli import main

    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["crm", "load", str(SEED), "--store", "g.db"]).exit_code == 0
    lines = [
        {"at": "2026-11-03T10:00:00Z", "op": {"a": 1}, "email": "henry@example.org"},
        {"at": "2026-11-03T11:00:00Z", "op": ["owner"], "email": "henry@example.org"},
        {
            "at": "2026-11-05T10:00:00Z",
            "op": "update",
            "email": "bob@bigcorp.example",
            "fields": {"Title": "CIO"},
        },
    ]
    (tmp_path / "ch.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), "utf-8")
    r = CliRunner().invoke(main, ["crm", "apply-changes", "ch.jsonl", "--store", "g.db"])
    assert r.exit_code == 3, r.output  # lines that could not be read
    assert "ch.jsonl:1: op {'a': 1} is not one of" in r.output
    assert "ch.jsonl:2: op ['owner'] is not one of" in r.output
    assert "1 applied, 0 refused" in r.output and "internal error" not in r.output
