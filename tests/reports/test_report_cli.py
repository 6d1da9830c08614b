"""`mrules report` as a user runs it: tables, CSV, and every error with its exit code."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrules.cli import main
from mrules.exitcodes import ExitCode

REPORTS = ("funnel", "campaigns", "rules", "scores")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["report", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("name", REPORTS)
def test_help_has_an_example(name: str) -> None:
    code, out, _ = run(name, "--help")
    assert code == 0
    assert f"mrules report {name}" in out and "--format" in out and "--since" in out


def test_funnel_table_answers_the_seed_question(store: str) -> None:
    code, out, err = run("funnel", "--store", store)
    assert code == 0, err
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 2}
    assert "45.0%" in lines["prospect"]  # 9 of 20 prospects became MQLs
    assert "accepted by sales (SQL)" in out and "customers (won)" in out
    row = next(line for line in out.splitlines() if line.startswith("│ 9 "))
    assert [c.strip() for c in row.strip("│").split("│")] == ["9", "7", "5"]
    assert err == ""


def test_campaigns_table_shows_roi_and_every_model(store: str) -> None:
    code, out, _ = run("campaigns", "--store", store)
    assert code == 0
    assert "Webinar" in out and "1,000.00 (crm)" in out and "533.3%" in out
    for model in ("source", "primary", "first_touch", "last_touch", "even", "(unattributed)"):
        assert model in out


def test_rules_and_scores_tables(store: str) -> None:
    code, out, _ = run("rules", "--store", store)
    assert code == 0
    assert "page action 'Pricing'" in out and "never matched" in out and "'Never'" in out
    assert "automation rule 'Never'" in out  # it said "automation 'Never'"
    code, out, _ = run("scores", "--store", store)
    assert code == 0
    assert "score at MQL (n 9, median 55, mean 57.2)" in out


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_funnel_and_periods(store: str) -> None:
    code, out, _ = run("funnel", "--store", store, "--format", "csv")
    assert code == 0
    rows = _csv(out)
    assert [(r["stage"], r["count"], r["rate_to_next"]) for r in rows] == [
        ("visitor", "6", "0.5"),
        ("prospect", "20", "0.45"),
        ("mql", "9", "0.777778"),
        ("sql", "7", "0.714286"),
        ("won", "5", ""),
    ]
    code, out, _ = run("funnel", "--store", store, "--format", "json")
    velocity = {v["from"]: v for v in json.loads(out)["velocity"]}
    # Each velocity's `n` (the prospects behind its days), as the JSON has it: the last column.
    assert list(rows[0])[-1] == "n_to_next"
    assert [r["n_to_next"] for r in rows] == [
        *(str(velocity[r["stage"]]["n"]) for r in rows[:-1]),
        "",
    ]
    assert velocity["prospect"]["n"] > 0
    code, out, _ = run("funnel", "--store", store, "--format", "csv", "--by", "quarter")
    stages = ("period", "visitor", "prospect", "mql", "sql", "won")
    assert [{k: r[k] for k in stages} for r in _csv(out)] == [
        {"period": "2026-Q3", "visitor": "1", "prospect": "0", "mql": "0", "sql": "0", "won": "0"},
        {"period": "2026-Q4", "visitor": "5", "prospect": "20", "mql": "9", "sql": "7", "won": "5"},
    ]


@pytest.mark.parametrize("reading", ["cohort", "stage"])
@pytest.mark.parametrize("by", ["week", "month", "quarter"])
def test_csv_periods_have_the_json_figures(store: str, by: str, reading: str) -> None:
    """`--by` CSV had each period's stage counts only: the conversions the JSON and the
    HTML page give each period (reached, rate) were missing. Now
    every figure of the JSON's periods is a CSV cell, the rate a decimal as in JSON."""
    args = ("funnel", "--store", store, "--by", by, "--reading", reading)
    code, out, err = run(*args, "--format", "json")
    assert code == 0, err
    periods = json.loads(out)["periods"]
    code, out, err = run(*args, "--format", "csv")
    assert code == 0, err
    rows = _csv(out)
    assert [r["period"] for r in rows] == [p["period"] for p in periods]
    for row, p in zip(rows, periods, strict=True):
        want = {stage: str(n) for stage, n in p["stages"].items()}
        for c in p["conversions"]:
            step = f"{c['from']}_to_{c['to']}"
            want[f"{step}_reached"] = str(c["reached"])
            want[f"{step}_rate"] = "" if c["rate"] is None else repr(c["rate"])
        assert {k: v for k, v in row.items() if k != "period"} == want, p["period"]


def test_csv_campaigns_reconciles(store: str) -> None:
    code, out, _ = run("campaigns", "--store", store, "--format", "csv")
    assert code == 0
    rows = _csv(out)
    assert (rows[-1]["campaign"], rows[-1]["unattributed"]) == ("", "1")
    assert {r["unattributed"] for r in rows[:-1]} == {"0"}
    for model in ("source", "primary", "first_touch", "last_touch", "even"):
        assert sum(float(r[model]) for r in rows) == pytest.approx(28000.0)


def test_csv_rules_and_scores(store: str) -> None:
    rows = _csv(run("rules", "--store", store, "--format", "csv")[1])
    assert rows[0]["name"] == "Pricing" and rows[0]["matches"] == "12"
    assert rows[-1]["name"] == "Never" and rows[-1]["matches"] == "0"
    rows = _csv(run("scores", "--store", store, "--format", "csv")[1])
    assert {r["table"] for r in rows} == {"score", "grade", "score_at_mql"}
    assert sum(int(r["count"]) for r in rows if r["table"] == "score") == 20


def test_missing_store_is_a_usage_error(tmp_path: Path) -> None:
    for name in REPORTS:
        code, _, err = run(name, "--store", str(tmp_path / "nope.db"))
        assert code == ExitCode.USAGE
        assert err.startswith("mrules: error: no store at")


def test_a_file_that_is_not_a_store_fails_with_the_store_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text("hello, I am not SQLite\n" * 100)
    code, _, err = run("funnel", "--store", str(bad))
    assert code == ExitCode.STORE
    assert err.startswith("mrules: error:") and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("funnel", "--since", "2026-13-01"), "--since '2026-13-01' is not a date or time"),
        # An ISO 8601 month is ISO 8601 all the same: the message names the option and what
        # it reads (it said "not an ISO 8601 date or time").
        (
            ("campaigns", "--until", "2026-10"),
            "--until '2026-10' is not a date or time (give a day, such as 2026-10-01, or a"
            " time, such as 2026-10-01T09:00:00Z; UTC when no zone is given)",
        ),
        (("funnel", "--since", "2026-11-01", "--until", "2026-10-01"), "must be after --since"),
        (("funnel", "--by", "year"), "'year' is not one of"),
        (("campaigns", "--model", "linear"), "'linear' is not one of"),
        (("funnel", "--store", ":memory:"), "holds nothing to read"),
        (("funnel", "--store", "postgresql://x/y"), "SQLite store"),
        (("rules", "--rules", "/nonexistent/rules"), "the rules cannot be read"),
    ],
)
def test_bad_arguments_are_usage_errors(store: str, args: tuple[str, ...], message: str) -> None:
    if "--store" not in args:
        args = (*args, "--store", store)
    code, _, err = run(*args)
    assert code == ExitCode.USAGE, err
    assert message in err


@pytest.mark.parametrize("report", ["rules", "campaigns", "html"])
def test_rules_with_errors_exit_1_as_lint_does(store: str, tmp_path: Path, report: str) -> None:
    """A rule set with errors is exit 1 for every other command; the reports gave 2."""
    bad = tmp_path / "bad.mr"
    bad.write_text('list "A" @\n')
    out = (str(tmp_path / "r.html"),) if report == "html" else ()
    code, _, err = run(report, *out, "--store", store, "--rules", str(bad))
    assert code == ExitCode.DIAGNOSTICS, err
    assert "the rules have errors" in err and "bad.mr:1:10" in err
    assert not (tmp_path / "r.html").exists()


def test_a_missing_sync_file_given_is_a_usage_error(store: str, tmp_path: Path) -> None:
    code, _, err = run("funnel", "--store", store, "--sync-db", str(tmp_path / "none.sync.db"))
    assert code == ExitCode.USAGE
    assert "no sync file at" in err


def test_without_a_sync_file_reports_run_and_say_what_is_missing(
    store: str, tmp_path: Path
) -> None:
    alone = tmp_path / "alone.db"
    shutil.copy(store, alone)  # the store only: no alone.sync.db beside it
    code, out, err = run("funnel", "--store", str(alone))
    assert code == 0
    assert "mrules sync run" in err
    code, out, err = run("funnel", "--store", str(alone), "--format", "json")
    import json

    data = json.loads(out)
    assert data["sync"] is False
    assert {s["stage"]: s["count"] for s in data["stages"]} == {
        "visitor": 6, "prospect": 20, "mql": 9, "sql": 0, "won": 0,
    }  # fmt: skip
    code, out, _ = run("campaigns", "--store", str(alone), "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["totals"]["won_amount"] == 0.0
    # the Pardot side still counts: source campaigns of prospects
    assert {c["campaign"]: c["prospects"] for c in data["campaigns"]} == {"Webinar": 8, "Ads": 6}


def test_the_program_itself(store: str) -> None:
    """The console script as a user types it: JSON on stdout, exit 0."""
    proc = subprocess.run(
        [sys.executable, "-m", "mrules", "report", "funnel", "--store", store, "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"accepted_by_sales": 7' in proc.stdout


def _views_around_the_assigning_form(tmp_path: Path) -> str:
    """A store of the example rules run over two prospects, each with the form that
    assigns them (+50) and a Pricing page view (+1, +10) in the same second: after@ views
    after the form, before@ before it. Returns the store's path."""
    example = Path(__file__).resolve().parents[2] / "examples" / "getcloudy"
    at = '{"ts":"2026-11-02T09:00:00Z","prospect":"%s",'
    form = at + '"type":"form_submit","asset":"Demande Get Cloudy"}\n'
    view = at + '"type":"page_view","url":"https://getcloudy.com/pricing"}\n'
    events = tmp_path / "events.jsonl"
    events.write_text(form % "after@x.example" + view % "after@x.example"
                      + view % "before@x.example" + form % "before@x.example")  # fmt: skip
    store = str(tmp_path / "s.db")
    res = CliRunner().invoke(main, ["run", str(example / "rules"), str(events), "--store", store])
    assert res.exit_code == 0, res.output
    return store


def test_score_at_mql_leaves_out_an_event_of_the_same_second_after_the_assignment(
    tmp_path: Path,
) -> None:
    """Score at MQL is "the score just after the event that assigned it": a page view of the
    same second after the form that assigned (a thank-you page) was counted in; one in the
    same second before it must be. Example rules: a form +50 (and the assignment),
    a page view +1, the Pricing page action +10."""
    store = _views_around_the_assigning_form(tmp_path)
    for email, score in (("after@x.example", 61), ("before@x.example", 61)):  # as they end
        res = CliRunner().invoke(main, ["explain", email, "--store", store, "--format", "json"])
        assert f'"score": {score},' in res.stdout, res.stdout
    code, out, err = run("scores", "--store", store, "--format", "json")
    assert code == 0, err
    got = json.loads(out)["score_at_mql"]
    # after@: 50 when the form assigned it; before@: 1 + 10 + 50 when the form assigned it
    assert (got["n"], got["median"], got["mean"]) == (2, 55.5, 55.5)
    assert [(b["low"], b["count"]) for b in got["histogram"] if b["count"]] == [(50, 1), (61, 1)]


def test_a_rule_that_acts_just_after_the_assignment_did_not_lead_to_the_mql(
    tmp_path: Path,
) -> None:
    """`went_mql` counts the prospects that became MQLs at or after the rule first touched
    them: a Pricing page view logged in the same second after the form that assigned was
    credited with the MQL (went MQL 1, 0 days); one in the same second before it is."""
    store = _views_around_the_assigning_form(tmp_path)
    code, out, err = run("rules", "--store", store, "--format", "json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)["rules"]}
    pricing, form_action = rows["Pricing"], rows["submit of form Demande Get Cloudy"]
    assert (pricing["prospects"], pricing["went_mql"], pricing["median_days_to_mql"]) == (2, 1, 0)
    assert (form_action["prospects"], form_action["went_mql"]) == (2, 2)  # the same event


def _synced_with_objects(tmp_path: Path, objects: str | None) -> str:
    """A store made as the reports fixture's (CRM loaded, events run, synced to the
    fixture's end) with the sync block's `objects` line replaced by `objects`, or left
    out (None: the default objects); its path."""
    fixture = Path(__file__).parent / "fixture"
    rules = tmp_path / "rules"
    shutil.copytree(fixture / "rules", rules)
    text = (rules / "rules.mr").read_text(encoding="utf-8")
    line = "  objects lead, contact, opportunity, campaign\n"
    assert line in text
    (rules / "rules.mr").write_text(text.replace(line, "" if objects is None else f"  {objects}\n"))
    path = str(tmp_path / "s.db")
    for args in (
        ["crm", "load", str(fixture / "crm"), "--store", path],
        ["run", str(rules), str(fixture / "events.jsonl"), "--store", path],
        ["sync", "run", "--rules", str(rules), "--store", path, "--until",
         "2026-11-24T00:00:00Z", "--changes", str(fixture / "crm-changes.jsonl")],
    ):  # fmt: skip
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, (args, res.output)
    return path


def test_a_sync_without_crm_campaigns_is_said(store: str, tmp_path: Path) -> None:
    """The reports fixture synced with `campaign` left out of the sync block's `objects`:
    the touch models credited nothing and primary campaigns showed as ids, and nothing
    said why. The table notes it; the JSON has `crm_campaigns` (0), the HTML page a note."""
    path = _synced_with_objects(tmp_path, "objects lead, contact, opportunity")
    code, out, err = run("campaigns", "--store", path)
    assert code == 0, err
    assert "note: the sync file holds no CRM campaign" in err
    assert "is `campaign` in the sync block's `objects`?" in err
    code, out, _ = run("campaigns", "--store", path, "--format", "json")
    assert json.loads(out)["crm_campaigns"] == 0
    page = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["report", "html", str(page), "--store", path])
    assert res.exit_code == 0, res.output
    assert "The sync file holds no CRM campaign" in page.read_text(encoding="utf-8")
    # With its campaigns synced, as the fixture is: no note.
    code, out, err = run("campaigns", "--store", store, "--format", "json")
    assert json.loads(out)["crm_campaigns"] > 0
    assert "holds no CRM campaign" not in run("campaigns", "--store", store)[2]


def test_a_sync_without_opportunities_is_said(store: str, tmp_path: Path) -> None:
    """The reports fixture synced with the sync block's default `objects` (lead, contact):
    the sync file holds no opportunity, and the funnel said 0 accepted by sales and 0
    customers of its 9 MQLs, as if sales had answered, with nothing to say why. The
    tables note it; the JSON has `crm_opportunities` (0), the HTML page a note."""
    path = _synced_with_objects(tmp_path, None)  # the default: lead, contact
    note = "note: the sync file holds no opportunity, so no SQL, won or opportunity figures"
    for report in ("funnel", "campaigns", "rules"):
        code, out, err = run(report, "--store", path)
        assert code == 0, err
        assert note in err, (report, err)
        assert "is `opportunity` in the sync block's `objects`" in err
        code, out, _ = run(report, "--store", path, "--format", "json")
        assert json.loads(out)["crm_opportunities"] == 0
    seed = json.loads(run("funnel", "--store", path, "--format", "json")[1])["seed"]
    assert seed == {"mqls": 9, "accepted_by_sales": 0, "customers": 0}
    page = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["report", "html", str(page), "--store", path])
    assert res.exit_code == 0, res.output
    assert "The sync file holds no opportunity" in page.read_text(encoding="utf-8")
    # With its opportunities synced, as the fixture is: no note.
    for report in ("funnel", "campaigns", "rules"):
        code, out, err = run(report, "--store", store, "--format", "json")
        assert json.loads(out)["crm_opportunities"] == 6
        assert "holds no opportunity" not in run(report, "--store", store)[2]
    page = tmp_path / "fx.html"
    res = CliRunner().invoke(main, ["report", "html", str(page), "--store", store])
    assert res.exit_code == 0, res.output
    assert "holds no opportunity" not in page.read_text(encoding="utf-8")


def test_the_html_page_says_when_there_is_no_sync_file(store: str, tmp_path: Path) -> None:
    """Without a sync file the page showed "0 accepted by sales (SQLs)" and "0 became
    customers (won)" with no word, where `mrules report funnel` notes that the sync is
    missing."""
    alone = tmp_path / "alone.db"
    shutil.copy(store, alone)
    page = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["report", "html", str(page), "--store", str(alone)])
    assert res.exit_code == 0, res.output
    assert "No sync file, so no SQL and no won stage" in page.read_text(encoding="utf-8")
    assert "note: no sync file" in run("funnel", "--store", str(alone))[2]


@pytest.mark.parametrize("report", ["funnel", "campaigns", "rules", "scores", "html"])
def test_an_interrupted_report_does_not_speak_of_resuming(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, report: str
) -> None:
    """Ctrl-C (or SIGTERM) in a report said "what was committed is kept, and running the same
    command again resumes", the message of the commands that write a store: a report
    commits nothing and resumes nothing. Exit 130, and an HTML file there is kept."""
    import mrules.reports

    def stopped(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    name = {"rules": "rules_report", "html": "funnel"}.get(report, report)
    monkeypatch.setattr(mrules.reports, name, stopped)
    out = tmp_path / "r.html"
    out.write_text("the previous report\n")
    args = [str(out)] if report == "html" else []
    code, _, err = run(report, *args, "--store", store)
    assert code == ExitCode.INTERRUPTED, err
    assert err.startswith("mrules: error: interrupted; a report changes no store"), err
    assert "resumes" not in err and "committed" not in err
    if report == "html":
        assert f"{out} is never left half-written" in err
        assert out.read_text() == "the previous report\n"


@pytest.mark.parametrize("name", ["funnel", "campaigns", "rules", "scores"])
def test_help_names_a_sync_file_only_where_the_report_takes_one(name: str) -> None:
    """`report scores` reads the store alone: its help spoke of a sync file it has no
    option for, copied from the reports that take `--sync-db`."""
    res = CliRunner().invoke(main, ["report", name, "--help"])
    assert res.exit_code == 0, res.output
    takes = "--sync-db" in res.output
    assert takes == (name != "scores"), res.output
    assert ("sync file" in res.output) == takes, res.output
