"""`sync apply` of a saved plan whose id matches but whose values are not of the shape
`mrules sync plan` writes (a plan another program wrote, or one damaged before its id
was computed): refused with exit 2 naming the value, before any write to the CRM or
the sync file. Such a plan was read halfway through the apply: an internal error after
some of the CRM writes were made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import EXAMPLE, example_store, mrules
from tests.sync.org import Org
from tests.sync.test_two_held_of_a_kind import TASK_RULES, VALIDATION, _refuse_by_subject

from mrules.sync.plan import plan_id
from mrules.sync.plancheck import plan_problem

RULES = EXAMPLE / "rules"


@pytest.fixture
def planned(here: Path) -> tuple[Path, Path]:
    store = example_store(here)
    plan = here / "plan.json"
    r = mrules("sync", "plan", "--rules", RULES, "--store", store, "--out", plan)
    assert r.exit_code == 2, r.output  # changes pending
    return store, plan


def _rewrite(plan: Path, change: Any) -> None:
    doc = json.loads(plan.read_text("utf-8"))
    change(doc)
    doc["id"] = plan_id({k: v for k, v in doc.items() if k != "id"})
    plan.write_text(json.dumps(doc), "utf-8")


def _first(doc: dict[str, Any], op: str) -> dict[str, Any]:
    return next(o for o in doc["ops"] if o["op"] == op)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda d: _first(d, "create").update(seqs="e"), "seqs: not a list"),
        (lambda d: _first(d, "create").update(values=None), "values: not a JSON object"),
        (
            lambda d: _first(d, "create")["fields"][0].update(crm_field=["Phone"]),
            "fields[0].crm_field: not text",
        ),
        (lambda d: d["ops"].append(3.5), "not a JSON object"),
        (lambda d: d.update(sent=[1]), "sent[0]: not text"),
        (lambda d: d.update(api_calls="many"), "api_calls: not a whole number"),
        (lambda d: d["opportunities"][0].pop("stage"), "opportunities[0]: no stage"),
        (
            lambda d: d["campaigns"][0].update(deleted="no"),
            "campaigns[0].deleted: not true or false",
        ),
        # Values of the right type that `sync plan` never writes: each was applied (exit 0)
        # as if it were not there, or stored (a count below 0 the sync file then refused
        # to read back: `sync status` exit 4).
        (lambda d: d.update(api_calls=-100), "api_calls: not a count"),
        (lambda d: d.update(retry_mark=2**60), "retry_mark: not a count"),
        (lambda d: d["summary"].update(waiting=-1), "summary.waiting: not a count"),
        (
            lambda d: _first(d, "create").update(op="delete"),
            'op: not an op sync plan writes: "delete"',
        ),
        (
            lambda d: _first(d, "create").update(object="Widget"),
            'object: not lead or contact: "Widget"',
        ),
        (lambda d: _first(d, "create").update(batch=-5), "batch: out of range (0 to 0 here): -5"),
        (lambda d: _first(d, "create").update(batch=99), "batch: out of range (0 to 0 here): 99"),
        (lambda d: _first(d, "create").update(seqs=[-1]), "seqs[0]: not a count"),
        (lambda d: _first(d, "skip").update(batch=0), "batch: a skip op is in no batch"),
        # The held rows a skip takes out of the queue (a write found in the CRM): an apply
        # met them halfway (an internal error), or cleared no row without a word.
        (lambda d: _first(d, "skip").update(resolved_items="x"), "resolved_items: not a list"),
        (
            lambda d: _first(d, "skip").update(resolved_items=[["*task", "k"]]),
            "resolved_items[0]: not a JSON object",
        ),
        (
            lambda d: _first(d, "skip").update(resolved_items=[{"field": "*task", "item": 3}]),
            "resolved_items[0].item: not text",
        ),
        (lambda d: _first(d, "update").pop("batch"), "]: no batch"),
        (lambda d: _first(d, "update")["link"].__setitem__(0, "Widget"), "link: not [object"),
        (lambda d: d["inbound"][0].update(op="zap"), "inbound[0].op: not a kind of CRM fact"),
        (lambda d: d["inbound"][0].update(object="Widget"), "inbound[0].object: not lead or"),
        (
            lambda d: d["cursors_to"].update(Widget=d["cursors_to"]["Lead"]),
            "cursors_to.Widget: not an object the sync reads",
        ),
        (lambda d: d["config"].update(batch=0), "config.batch: not 1 or more: 0"),
        # The creates read the mapped CRM fields: each of these was an internal error.
        (
            lambda d: d["config"]["mappings"].__setitem__(0, None),
            "config.mappings[0]: not a JSON object",
        ),
        (lambda d: d["config"].update(mappings="x"), "config.mappings: not a list"),
        (lambda d: d["config"].update(mappings=7), "config.mappings: not a list"),
        (
            lambda d: d["config"]["mappings"][0].update(crm_field=["Phone"]),
            "config.mappings[0].crm_field: not text",
        ),
    ],
)
def test_a_plan_of_another_shape_is_refused_before_any_write(
    planned: tuple[Path, Path], change: Any, said: str
) -> None:
    store, plan = planned
    before = mrules("crm", "export", "--store", store).output
    _rewrite(plan, change)
    r = mrules("sync", "apply", plan, "--rules", RULES, "--store", store)
    assert r.exit_code == 2, r.output
    assert "plan.json: not a sync plan mrules can apply (" in r.output and said in r.output
    assert "internal error" not in r.output
    assert mrules("crm", "export", "--store", store).output == before  # nothing written
    assert not store.with_name("g.sync.db").exists()


def test_the_plans_mrules_writes_pass(planned: tuple[Path, Path]) -> None:
    store, plan = planned
    assert plan_problem(json.loads(plan.read_text("utf-8"))) is None
    r = mrules("sync", "apply", plan, "--rules", RULES, "--store", store)
    assert r.exit_code == 0, r.output


def _hold(doc: dict[str, Any]) -> dict[str, Any]:
    return next(o for o in doc["ops"] if o["op"] == "hold")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        # The errors a hold holds: the apply reads each one's code (an internal error).
        (lambda d: _hold(d).update(held="x"), "held: not a list"),
        (lambda d: _hold(d).update(held=["x"]), "held[0]: not a JSON object"),
        (lambda d: _hold(d)["held"][0].update(code=7), "held[0].code: not text"),
        # The payload of the task held: the apply never reads it, but it is refused as a
        # task op's is, as the summary's counts the apply does not read are.
        (lambda d: _hold(d).update(payload="Call"), "payload: not a JSON object"),
        (lambda d: _hold(d)["payload"].update(subject=["Call"]), "payload.subject: not text"),
        (lambda d: _hold(d)["payload"].update(due_days="2"), "payload.due_days: not a whole"),
    ],
)
def test_a_hold_of_another_shape_is_refused_before_any_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Any, said: str
) -> None:
    """Ann's task Call is held (refused by a validation rule), and a saved plan holds it:
    its `held` errors and its `payload` were read by no check, so a `held` entry that is
    not an object was an internal error halfway through the apply, and a payload of
    another shape was applied without a word. Both are refused as other values are."""
    org = Org(tmp_path, TASK_RULES.replace('  create crm task "Email" (due in 3 days)\n', ""))
    _refuse_by_subject(monkeypatch, {"Call": VALIDATION})
    org.submit(("2026-11-02T09:00:00Z", "ann@ex.org", "F"))
    assert org.sync("run", "--until", "2026-11-02T09:00:00Z").exit_code == 0
    plan = tmp_path / "plan.json"
    org.sync("plan", "--at", "2026-11-02T09:10:00Z", "--out", str(plan))
    assert plan_problem(json.loads(plan.read_text("utf-8"))) is None
    before = org.status()
    _rewrite(plan, change)
    r = org.sync("apply", str(plan))
    assert r.exit_code == 2, r.output
    assert "plan.json: not a sync plan mrules can apply (ops[0]." in r.output, r.output
    assert said in r.output, r.output
    assert org.status() == before  # nothing written
