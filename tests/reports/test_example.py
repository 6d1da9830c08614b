"""The bundled example's reports, as the README runs them.

The story (examples/getcloudy/events.jsonl, synced with `sync apply`) and the
three months of history before it (examples/getcloudy/history/, made by its
generate.py) both give reports with something in every table.
"""

from __future__ import annotations

import filecmp
import json
import math
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrules.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "getcloudy"
HISTORY = EXAMPLE / "history"


def cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result.stdout


def test_history_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("history_generate", HISTORY / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(tmp_path)
    names = ["events.jsonl", "crm-changes.jsonl", *(f"crm/{p.name}" for p in
             (HISTORY / "crm").iterdir())]  # fmt: skip
    match, mismatch, errors = filecmp.cmpfiles(HISTORY, tmp_path, names, shallow=False)
    assert (mismatch, errors) == ([], [])
    assert len(match) == len(names) >= 12


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The README's sync example: crm load, run, sync apply."""
    store = str(tmp_path_factory.mktemp("story") / "getcloudy.db")
    cli("crm", "load", str(EXAMPLE / "crm"), "--store", store)
    CliRunner().invoke(main, ["run", str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"),
                              "--store", store])  # fmt: skip
    cli("sync", "apply", "--rules", str(EXAMPLE / "rules"), "--store", store)
    return store


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The README's history commands: crm load, run, sync run with the CRM's changes."""
    store = str(tmp_path_factory.mktemp("history") / "history.db")
    cli("crm", "load", str(HISTORY / "crm"), "--store", store)
    result = CliRunner().invoke(
        main, ["run", str(EXAMPLE / "rules"), str(HISTORY / "events.jsonl"), "--store", store]
    )
    assert result.exit_code == 0, result.output
    cli(
        "sync", "run", "--rules", str(EXAMPLE / "rules"), "--store", store,
        "--until", "2026-11-01T00:00:00Z", "--changes", str(HISTORY / "crm-changes.jsonl"),
    )  # fmt: skip
    return store


def test_story_funnel_answers_the_seed_question(story: str) -> None:
    r = json.loads(cli("report", "funnel", "--store", story, "--format", "json"))
    counts = {s["stage"]: s["count"] for s in r["stages"]}
    # leung, bob, henry, ivy (the CRM's owner) and carol's contact owner assign 5 of 6;
    # bob, ivy and carol are contact roles; bob's migration is won.
    assert counts == {"visitor": 2, "prospect": 6, "mql": 5, "sql": 3, "won": 1}
    assert r["seed"] == {"mqls": 5, "accepted_by_sales": 3, "customers": 1}


def test_history_reports_have_something_in_every_table(history: str) -> None:
    r = json.loads(cli("report", "funnel", "--store", history, "--format", "json", "--by",
                       "month"))  # fmt: skip
    counts = {s["stage"]: s["count"] for s in r["stages"]}
    assert counts["prospect"] == 160
    assert counts["visitor"] > counts["prospect"] * 0.5
    assert counts["prospect"] > counts["mql"] > counts["sql"] > counts["won"] > 10
    assert [p["period"] for p in r["periods"]] == ["2026-08", "2026-09", "2026-10"]
    assert all(v["n"] > 0 for v in r["velocity"])

    c = json.loads(cli("report", "campaigns", "--store", history, "--format", "json",
                       "--rules", str(EXAMPLE / "rules")))  # fmt: skip
    rows = {x["campaign"]: x for x in c["campaigns"]}
    assert rows["LinkedIn Ads Q3"]["cost_source"] == "rules"  # `cost 3600` in the rules
    assert rows["Trade show Lyon 2026"]["cost_source"] == "crm"
    assert rows["LinkedIn Ads Q3"]["prospects"] > 0 and rows["Webinar Cloud Security"]["prospects"]
    assert c["totals"]["won_amount"] > 100_000
    for model in ("source", "primary", "first_touch", "last_touch", "even"):
        credited = sum(x["influence"][model] for x in c["campaigns"])
        assert math.isclose(credited + c["totals"]["unattributed"][model],
                            c["totals"]["won_amount"])  # fmt: skip
        assert credited > 0, model
    assert sum(1 for x in c["campaigns"] if x["roi"] is not None) >= 4

    rules = json.loads(cli("report", "rules", "--store", history, "--format", "json"))
    assert any(x["went_won"] for x in rules["rules"])
    s = json.loads(cli("report", "scores", "--store", history, "--format", "json"))
    assert s["score_at_mql"]["n"] == counts["mql"]
    assert {g["grade"] for g in s["grade_distribution"]} >= {"C-", None}


def test_the_history_leaves_the_story_alone(story: str) -> None:
    """The story's run never touches the history's assets (50-campaigns.mr)."""
    r = json.loads(cli("report", "rules", "--store", story, "--format", "json",
                       "--rules", str(EXAMPLE / "rules")))  # fmt: skip
    never = {x["name"] for x in r["never_matched"]}
    assert {"submit of landing page Cloud Guide", "submit of form Webinar registration"} <= never
    assert os.path.exists(HISTORY / "generate.py")
