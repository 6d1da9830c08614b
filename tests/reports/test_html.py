"""`mrules report html`: the page from report dicts, and end to end on the bundled example."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.reports import html_samples as samples

from mrules.cli import main
from mrules.cli.report_html_cmd import html as html_cmd
from mrules.reports import MODELS, campaigns, charts, funnel, rules_report, scores
from mrules.reports import html as page

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "getcloudy"
CHART_IDS = (
    "funnel",
    "velocity",
    "conversion-over-time",
    "campaign-roi",
    "campaign-influence",
    "rules",
    "score-distribution",
    "score-at-mql",
    "grade-distribution",
    "timeline",
)


def _js() -> str:
    return "/* the chart library */"


def specs_of(text: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="mrules-specs">(.*?)</script>', text, re.S)
    assert m is not None
    return json.loads(m.group(1))


def caption_of(text: str, chart_id: str) -> str:
    """A chart's title: the caption above it on the page (unescaped)."""
    name = chart_id.removeprefix("chart-")
    m = re.search(f'<figure id="figure-{name}"><figcaption>(.*?)</figcaption>', text, re.S)
    assert m is not None, chart_id
    return html.unescape(m.group(1))


def values(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The inline data rows of a spec (of its first layer with data)."""
    if "data" in spec:
        return spec["data"]["values"]
    for layer in spec.get("layer", []):
        if "data" in layer:
            return layer["data"]["values"]
    raise AssertionError("no data")


def layer_values(spec: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The data rows of the first layer whose rows have `key` (the timeline's `score` line,
    its `stage` rules)."""
    for layer in spec.get("layer", []):
        rows = layer.get("data", {}).get("values") or []
        if rows and key in rows[0]:
            return rows
    raise AssertionError(f"no layer with {key}")


def is_empty_chart(spec: dict[str, Any]) -> bool:
    return spec.get("mark", {}).get("type") == "text" and "layer" not in spec


# ----------------------------------------------------------------------- the page from dicts


def test_page_has_every_chart_and_no_outside_reference() -> None:
    text = page.page(samples.full(), script=_js)
    specs = specs_of(text)
    assert sorted(specs) == sorted(f"chart-{c}" for c in CHART_IDS)
    for c in CHART_IDS:
        assert f'id="chart-{c}"' in text
        assert not is_empty_chart(specs[f"chart-{c}"]), c
    assert "default-src 'none'" in text  # the browser is told: no network
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", text)
    assert "/* the chart library */" in text


def test_the_rules_that_never_matched_are_counted_in_agreement() -> None:
    """`1 rule never matched:`, `2 rules never matched:` (it said `1 rule(s)`)."""
    data = samples.full()
    assert "<p class='note'>1 rule never matched:</p>" in page.page(data, script=_js)
    never = data["rules"]["never_matched"]
    never.append({**never[0], "name": "submit of form Other"})
    assert "<p class='note'>2 rules never matched:</p>" in page.page(data, script=_js)


def test_the_influence_chart_has_every_model_of_the_report() -> None:
    """`report campaigns` credits under five models; the page drew four (no primary)."""
    assert list(charts.MODEL_LABELS) == list(MODELS)
    influence = values(specs_of(page.page(samples.full(), script=_js))["chart-campaign-influence"])
    assert {r["model"] for r in influence} == set(charts.MODEL_LABELS.values())


def test_charts_carry_the_reports_numbers() -> None:
    specs = specs_of(page.page(samples.full(), script=_js))
    f = samples.funnel()
    assert [r["count"] for r in values(specs["chart-funnel"])] == [s["count"] for s in f["stages"]]
    roi = {r["campaign"]: r["roi"] for r in values(specs["chart-campaign-roi"])}
    assert roi == {c["campaign"]: c["roi"] for c in samples.campaigns()["campaigns"] if c["roi"]}
    influence = values(specs["chart-campaign-influence"])
    for model, label in charts.MODEL_LABELS.items():
        total = sum(r["amount"] for r in influence if r["model"] == label)
        assert total == pytest.approx(samples.campaigns()["totals"][model])
    conv = values(specs["chart-conversion-over-time"])
    nov = {r["step"]: (r["rate"], r["from"], r["to"]) for r in conv if r["period"] == "2026-11"}
    # The period's own conversion (of the 12 prospects, 5 went MQL), not a ratio of counts.
    assert nov["Prospects → MQLs"] == (0.416667, 12, 5)
    assert nov["Visitors → Prospects"] == (0.4, 25, 10)
    rules = values(specs["chart-rules"])
    # Kinds as people read them, as the rule-change chart names them ("page_action" and
    # "automation", the JSON keys, were shown)
    assert {r["rule"] for r in rules} == {"Pricing (page action)", "MQL handoff (automation rule)"}
    assert [r["score"] for r in layer_values(specs["chart-timeline"], "score")] == [52, 130, 120]


def test_a_page_of_ten_thousand_campaigns_stays_small() -> None:
    """10,000 campaigns made a page of 8.5 MB: every campaign was a table row, a bar of
    the ROI chart and five bars of the influence chart (its name written six times in the
    charts' data), and the charts were 280,000 pixels tall. The charts draw the 25
    campaigns that won (were credited) the most and say so, the table lists the 100 that
    won the most and names the command that gives the rest."""
    data = samples.full()
    data["campaigns"] = samples.many_campaigns(10_000)
    text = page.page(data, script=_js)
    assert len(text.encode()) < 150_000  # the chart library apart (about 0.9 MB)
    specs = specs_of(text)
    roi = specs["chart-campaign-roi"]
    assert [r["campaign"] for r in values(roi)] == [
        f"Campaign {i:05d} spring webinar" for i in range(25)
    ]
    assert "the 25 of 10,000 with a cost that won the most" in caption_of(
        text, "chart-campaign-roi"
    )
    influence = specs["chart-campaign-influence"]
    assert {r["campaign"] for r in values(influence)} == {
        f"Campaign {i:05d} spring webinar" for i in range(25)
    }
    title = caption_of(text, "chart-campaign-influence")
    assert "the 25 of 10,000 campaigns credited the most" in title
    section = text[text.index("<section id='campaigns'>") :]
    section = section[: section.index("</section>")]
    assert section.count("<tr>") == 1 + 100  # the head and the top 100
    assert "Campaign 00099 spring webinar" in section
    assert "Campaign 00100 spring webinar" not in section
    assert "9,900 more" in section and "mrules report campaigns --format csv" in section
    # a few campaigns: every one, in the charts and the table, with no note
    small = page.page(samples.full(), script=_js)
    assert "more (and every figure" not in small
    assert len(values(specs_of(small)["chart-campaign-roi"])) == 2


def test_empty_store_still_renders_every_chart() -> None:
    text = page.page(samples.empty(), script=_js)
    specs = specs_of(text)
    assert sorted(specs) == sorted(f"chart-{c}" for c in CHART_IDS)
    for spec in specs.values():
        assert is_empty_chart(spec)
        assert values(spec)[0]["text"]


def test_text_from_the_data_cannot_break_out_of_the_page() -> None:
    data = samples.full()
    data["campaigns"]["campaigns"][0]["campaign"] = "</script><script>alert(1)</script><!--"
    data["title"] = "<b>x</b>"
    text = page.page(data, script=lambda: "var a = '</script>';")
    assert "<script>alert(1)" not in text
    assert "<b>x</b>" not in text
    assert text.count("</script>") == 3  # the specs, the library, the drawing script
    names = [r["campaign"] for r in values(specs_of(text)["chart-campaign-roi"])]
    assert "</script><script>alert(1)</script><!--" in names


def test_replay_diff_section(tmp_path: Path) -> None:
    diff = _replay_diff(tmp_path)
    data = {**samples.full(), "replay_diff": diff}
    text = page.page(data, script=_js)
    specs = specs_of(text)
    assert "chart-replay-scores" in specs and "chart-replay-rules" in specs
    assert "bob@bigcorp.example" in text  # the prospect the lower threshold makes an MQL
    before_after = {
        r["rule"]: r["count"] for r in values(specs["chart-replay-rules"]) if r["rules"] == "new"
    }
    assert before_after["MQL handoff (automation rule)"] == next(
        r["after"] for r in diff["rules"] if r["name"] == "MQL handoff"
    )


def test_replay_diff_section_counts_changed_data(tmp_path: Path) -> None:
    """Fields, tags and the like are a category of their own; a diff written before they
    were compared (no `data` key) still makes a page."""
    diff = _replay_diff(tmp_path)
    diff["data"] = {
        "count": 2,
        "prospects": ["a@x.example", "b@x.example"],
        "examples": [{"prospect": "a@x.example", "reason": "set by the new rules"}],
    }
    text = page.page({**samples.full(), "replay_diff": diff}, script=_js)
    assert '<td>fields, tags and other data changed</td><td class="n">2</td>' in text
    assert "a@x.example" in text and "… 1 more" in text
    del diff["data"]
    assert page.replay_diff_problem(diff) is None
    text = page.page({**samples.full(), "replay_diff": diff}, script=_js)
    assert '<td>fields, tags and other data changed</td><td class="n">0</td>' in text


def _replay_diff(tmp_path: Path) -> dict[str, Any]:
    new = tmp_path / "newrules"
    new.mkdir()
    for f in (EXAMPLE / "rules").iterdir():
        (new / f.name).write_text(f.read_text().replace("score >= 100", "score >= 50"))
    r = CliRunner().invoke(
        main,
        [
            "replay",
            "--diff",
            str(EXAMPLE / "rules"),
            str(new),
            str(EXAMPLE / "events.jsonl"),
            "--format",
            "json",
        ],
    )
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def page_with_replay_diff(folder: Path, store: Path, name: str = "report.html") -> Path:
    """`mrules report html` of `store` with a replay diff of the example, written in `folder`."""
    diff = folder / "diff.json"
    diff.write_text(json.dumps(_replay_diff(folder)))
    out = folder / name
    r = CliRunner().invoke(html_cmd, [str(out), "--store", str(store), "--replay-diff", str(diff)])
    assert r.exit_code == 0, r.output
    return out


# -------------------------------------------------------------------- end to end, real store


@pytest.fixture(scope="module")
def example_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled example, run and synced with its CRM changes, as a new user does."""
    d = tmp_path_factory.mktemp("example")
    store = str(d / "getcloudy.db")
    runner = CliRunner()
    for args in (
        ["crm", "load", str(EXAMPLE / "crm"), "--store", store],
        ["run", str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), "--store", store],
        [
            "sync",
            "run",
            "--rules",
            str(EXAMPLE / "rules"),
            "--store",
            store,
            "--changes",
            str(EXAMPLE / "crm-changes.jsonl"),
            "--until",
            "2026-12-21T00:00:00Z",
        ],
    ):
        r = runner.invoke(main, args)
        assert r.exit_code == 0, (args, r.output)
    return Path(store)


def test_cli_writes_the_page_from_the_real_reports(example_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    rules = str(EXAMPLE / "rules")
    r = CliRunner().invoke(
        main,
        [
            "report",
            "html",
            str(out),
            "--store",
            str(example_store),
            "--rules",
            rules,
            "--by",
            "week",
        ],
    )
    assert r.exit_code == 0, r.output
    text = out.read_text()
    specs = specs_of(text)
    f = funnel(example_store, by="week")
    assert [x["count"] for x in values(specs["chart-funnel"])] == [s["count"] for s in f["stages"]]
    seed = f["seed"]
    assert seed["mqls"] > 0 and seed["customers"] > 0  # the example is meaningful
    for n in (seed["mqls"], seed["accepted_by_sales"], seed["customers"]):
        assert f"<b>{n}</b>" in text
    c = campaigns(example_store, rules=[rules])
    assert {x["campaign"]: x["roi"] for x in values(specs["chart-campaign-roi"])} == {
        x["campaign"]: x["roi"] for x in c["campaigns"] if x["roi"] is not None
    }
    top = max(rules_report(example_store, rules=[rules])["rules"], key=lambda x: x["matches"])
    assert any(
        x["value"] == top["matches"] and x["measure"] == "matches"
        for x in values(specs["chart-rules"])
    )
    # Conversion over time draws the funnel's own per-period rates, each between 0 and 1
    # (a ratio of stage counts was not: 300% in a week where 2 visitors met 6 prospects).
    drawn = {
        (x["period"], x["step"]): x["rate"] for x in values(specs["chart-conversion-over-time"])
    }
    assert drawn and all(0 <= rate <= 1 for rate in drawn.values())
    assert drawn == {
        (p["period"], f"{charts._label(c['from'])} → {charts._label(c['to'])}"): c["rate"]
        for p in f["periods"]
        for c in p["conversions"]
        if c["rate"] is not None
    }
    hist = scores(example_store)["score_histogram"]
    assert [x["count"] for x in values(specs["chart-score-distribution"])] == [
        b["count"] for b in hist
    ]
    # The default prospect is one that won; its timeline is drawn.
    t = layer_values(specs["chart-timeline"], "score")
    assert t, "no timeline drawn"
    assert "won" in {s["stage"] for s in layer_values(specs["chart-timeline"], "stage")}


def test_the_page_names_the_model_behind_its_campaign_figures(
    example_store: Path, tmp_path: Path
) -> None:
    """The campaign table's won amount and the ROI chart are the even split's credit (the
    default of `report campaigns`, whose title says `even model`), and the page did not say
    so beside the influence chart's five models: which campaigns paid read as settled."""
    out = tmp_path / "report.html"
    rules = str(EXAMPLE / "rules")
    r = CliRunner().invoke(
        main, ["report", "html", str(out), "--store", str(example_store), "--rules", rules]
    )
    assert r.exit_code == 0, r.output
    text = out.read_text()
    section = text[text.index("<section id='campaigns'>") :]
    section = section[: section.index("</section>")]
    assert "under the <b>even split</b> model" in section
    even = campaigns(example_store, rules=[rules], model="even")["campaigns"]
    primary = campaigns(example_store, rules=[rules], model="primary")["campaigns"]
    # another model tells another story: the Webinar paid 31 times its cost, or nothing
    assert {x["campaign"]: x["roi"] for x in even} != {x["campaign"]: x["roi"] for x in primary}
    shown = values(specs_of(text)["chart-campaign-roi"])
    assert {x["campaign"]: x["roi"] for x in shown} == {
        x["campaign"]: x["roi"] for x in even if x["roi"] is not None
    }
    assert "even split model" in caption_of(text, "chart-campaign-roi")


def test_cli_timeline_of_a_chosen_prospect(example_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    r = CliRunner().invoke(
        html_cmd, [str(out), "--store", str(example_store), "--timeline", "Leung@Example.com"]
    )
    assert r.exit_code == 0, r.output
    spec = specs_of(out.read_text())["chart-timeline"]
    assert "leung@example.com" in caption_of(out.read_text(), "chart-timeline")
    # her score now (README: why she has 131 points)
    assert layer_values(spec, "score")[-1]["score"] == 131


def test_cli_with_a_replay_diff(example_store: Path, tmp_path: Path) -> None:
    out = page_with_replay_diff(tmp_path, example_store, "r.html")
    assert "chart-replay-rules" in specs_of(out.read_text())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "{tmp}/none.db"], "no store at"),
        (["--store", "{store}", "--timeline", "nobody@example.com"], "no prospect"),
        (["--store", "{store}", "--replay-diff", "{tmp}/missing.json"], "cannot read"),
        (["--store", "{store}", "--replay-diff", "{tmp}/bad.json"], "not JSON"),
        (["--store", "{store}", "--replay-diff", "{tmp}/other.json"], "not the JSON of"),
        (["--store", "{store}", "--since", "yesterday"], ""),
        (["--store", ":memory:"], "in-memory"),
    ],
)
def test_cli_bad_input_exits_2_with_a_message(
    example_store: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"report": "funnel"}')
    args = [a.format(tmp=tmp_path, store=example_store) for a in args]
    out = tmp_path / "r.html"
    r = CliRunner().invoke(html_cmd, [str(out), *args])
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "mrules: error:" in r.output and message in r.output
    assert not out.exists()


def test_cli_out_in_a_missing_folder(example_store: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(
        html_cmd, [str(tmp_path / "no" / "r.html"), "--store", str(example_store)]
    )
    assert r.exit_code == 2 and "no folder" in r.output


def test_cli_dash_writes_the_page_to_standard_output(
    example_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-` is standard output, as for every command; it wrote a file named `-`."""
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(html_cmd, ["-", "--store", str(example_store)])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("<!DOCTYPE html>") and r.stdout.rstrip().endswith("</html>")
    assert "wrote the page to standard output" in r.stderr
    assert not (tmp_path / "-").exists()


def test_cli_on_a_store_with_no_events(tmp_path: Path) -> None:
    store = tmp_path / "empty.db"
    events = tmp_path / "none.jsonl"
    events.write_text("")
    r = CliRunner().invoke(
        main, ["run", str(EXAMPLE / "rules"), str(events), "--store", str(store)]
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "r.html"
    r = CliRunner().invoke(html_cmd, [str(out), "--store", str(store)])
    assert r.exit_code == 0, r.output
    specs = specs_of(out.read_text())
    assert is_empty_chart(specs["chart-funnel"]) and is_empty_chart(specs["chart-timeline"])


def test_cli_range_with_no_data_says_so_not_run_events(
    example_store: Path,
    tmp_path: Path,
) -> None:
    """A --since/--until range the story does not reach drew "No visitors or prospects
    yet: run events into the store." and "sync the CRM", over a store that has both."""
    out = tmp_path / "r.html"
    args = [str(out), "--store", str(example_store), "--since", "2030-01-01"]
    r = CliRunner().invoke(html_cmd, [*args, "--until", "2030-02-01"])
    assert r.exit_code == 0, r.output
    specs = specs_of(out.read_text())
    span = "from 2030-01-01T00:00:00Z to 2030-02-01T00:00:00Z"
    for chart in ("chart-funnel", "chart-campaign-influence"):
        assert is_empty_chart(specs[chart])
        text = values(specs[chart])[0]["text"]
        assert span in text and "run events" not in text and "sync the CRM" not in text
    # Without a range, a store with nothing in it is still told what to do.
    empty = page.page(samples.empty(), script=_js)
    assert "run events into the store" in values(specs_of(empty)["chart-funnel"])[0]["text"]


def test_cli_replay_rules_chart_says_it_shows_the_most_changed(
    example_store: Path,
    tmp_path: Path,
) -> None:
    """The rule-activity chart draws at most 15 rules; with more that acted, it dropped the
    others without a word, and a reader looked in vain for theirs."""
    diff = _replay_diff(tmp_path)
    acted = [r for r in diff["rules"] if r["before"] or r["after"]]
    extra = [
        {"kind": "page action", "name": f"Page {i}", "at": f"r.mr:{i}", "before": 1, "after": 1}
        for i in range(20 - len(acted))
    ]
    diff["rules"] = acted + extra  # as replay sorts them: the most changed first
    path = tmp_path / "diff.json"
    path.write_text(json.dumps(diff))
    out = tmp_path / "r.html"
    r = CliRunner().invoke(
        html_cmd, [str(out), "--store", str(example_store), "--replay-diff", str(path)]
    )
    assert r.exit_code == 0, r.output
    spec = specs_of(out.read_text())["chart-replay-rules"]
    assert len({row["rule"] for row in values(spec)}) == 15
    assert "MQL handoff (automation rule)" in {row["rule"] for row in values(spec)}
    assert "the 15 that changed most, of 20" in caption_of(out.read_text(), "chart-replay-rules")
