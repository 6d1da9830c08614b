"""`mrules report campaigns` on CRM campaigns that share a name: one row, as
docs/reports.md says, whose cost is what they cost together."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import EXAMPLE, mrules


def test_crm_campaigns_of_one_name_add_their_costs(tmp_path: Path) -> None:
    """Two CRM campaigns named "Webinar Cloud Security" (1,500 and 2,500) made one row
    that cost 2,500: the second's cost replaced the first's, the total cost and the ROI
    left 1,500 out."""
    crm = tmp_path / "crm"
    shutil.copytree(EXAMPLE / "crm", crm)
    with (crm / "Campaign.csv").open("a") as f:
        f.write(
            "camp-webinar2,Webinar Cloud Security,Webinar,Completed,true,2026-10-10,"
            "2026-10-10,2000,2500,20000,leung-user\n"
        )
    store = tmp_path / "g.db"
    for args in (
        ("crm", "load", crm, "--store", store),
        ("run", EXAMPLE / "rules", EXAMPLE / "events.jsonl", "--store", store),
        ("sync", "run", "--rules", EXAMPLE / "rules", "--store", store,
         "--until", "2026-12-21T00:00:00Z"),
    ):  # fmt: skip
        r = mrules(*args)
        assert r.exit_code == 0, r.output
    r = mrules("report", "campaigns", "--store", store, "--format", "json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    rows = [c for c in report["campaigns"] if c["campaign"] == "Webinar Cloud Security"]
    assert len(rows) == 1
    assert (rows[0]["cost"], rows[0]["cost_source"]) == (4000.0, "crm")
    assert rows[0]["roi"] == round((rows[0]["won_amount"] - 4000.0) / 4000.0, 6)
    assert report["totals"]["cost"] == 4200.0 + 1500.0 + 2500.0


def test_names_in_brackets_are_printed_as_they_are(store: str, tmp_path: Path) -> None:
    """The tables went through rich's markup: `[emea] Webinar` printed as ` Webinar`,
    `Spring [b]promo[/b]` lost its brackets, and a name with `[/]` was an internal
    error (MarkupError, exit 70)."""
    names = ("[emea] Webinar", "Spring [b]promo[/b]", "Q3 [/] launch", "Deal [link=x]")
    rules = tmp_path / "campaigns.mr"
    rules.write_text("".join(f'campaign "{n}" cost 100\n' for n in names))
    r = mrules("report", "campaigns", "--store", store, "--rules", rules)
    assert r.exit_code == 0, r.output
    for name in names:
        assert f"│ {name} " in r.stdout, name


def test_csv_cells_a_spreadsheet_would_compute_are_quoted(store: str, tmp_path: Path) -> None:
    """`--format csv` wrote a campaign or rule named `=HYPERLINK(...)` (or starting with
    `+`, `-`, `@`) as it is: a spreadsheet opening the file ran it as a formula (CSV
    injection). Such a cell now starts with a single quote; numbers (a negative ROI) and
    the JSON output keep what they are."""
    import csv
    import io

    names = ("=HYPERLINK(A1)", "+1+2", "-3", "@SUM(A1)")
    rules = tmp_path / "campaigns.mr"
    rules.write_text(
        "".join(f'campaign "{n}" cost 100\n' for n in names)
        + 'automation rule "=1+1" priority 1 { when all { score > 1000 } then { add tag "t" } }\n'
    )
    r = mrules("report", "campaigns", "--store", store, "--rules", rules, "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = {row[0]: row for row in csv.reader(io.StringIO(r.stdout))}
    for name in names:
        assert "'" + name in rows, name
        assert name not in rows, name
    rois = [row[10] for row in rows.values() if row[1] == "100.0"]  # cost 100, nothing won
    assert len(rois) == len(names) and all(float(roi) == -1.0 for roi in rois), rois
    r = mrules("report", "campaigns", "--store", store, "--rules", rules, "--format", "json")
    got = {c["campaign"] for c in json.loads(r.stdout)["campaigns"]}
    assert set(names) <= got
    r = mrules("report", "rules", "--store", store, "--rules", rules, "--format", "csv")
    assert r.exit_code == 0, r.output
    cells = [row[1] for row in csv.reader(io.StringIO(r.stdout))]
    assert "'=1+1" in cells and "=1+1" not in cells


def test_a_long_name_is_printed_whole_into_a_file(store: str, tmp_path: Path) -> None:
    """A table written to a file or a pipe was cut at 200 columns: a campaign (or a rule)
    whose name made the table wider lost its end behind `…`, and two long names that
    began alike read the same. A pipe or a file gets the whole width the table needs."""
    names = [f"{stem}_{'x' * 150}_{stem}" for stem in ("utm_campaign=spring", "utm_campaign=fall")]
    rules = tmp_path / "campaigns.mr"
    rules.write_text(
        "".join(f'campaign "{n}" cost 100\n' for n in names)
        + f'automation rule "{names[0]}" priority 1 {{ when all {{ score > 1000 }}'
        ' then { add tag "t" } }\n'
    )
    r = mrules("report", "campaigns", "--store", store, "--rules", rules)
    assert r.exit_code == 0, r.output
    for name in names:
        assert r.stdout.count(f"│ {name} ") == 2, name  # the campaign table and the influence one
    assert "…" not in r.stdout
    r = mrules("report", "rules", "--store", store, "--rules", rules)
    assert r.exit_code == 0, r.output
    assert f"automation rule '{names[0]}'" in r.stdout
    assert "…" not in r.stdout


def _store_with_a_campaign_named(name: str, tmp_path: Path) -> Path:
    """The reports fixture, its CRM campaign "Trade Show" (primary campaign of a won
    opportunity: 3,000 under `primary`) renamed `name`."""
    fixture = Path(__file__).parent / "fixture"
    work = tmp_path / "fixture"
    shutil.copytree(fixture, work)
    campaigns = work / "crm" / "Campaign.csv"
    campaigns.write_text(campaigns.read_text().replace("Trade Show", name))
    store = work / "fx.db"
    for args in (
        ("crm", "load", work / "crm", "--store", store),
        ("run", work / "rules", work / "events.jsonl", "--store", store),
        ("sync", "run", "--rules", work / "rules", "--store", store,
         "--until", "2026-11-24T00:00:00Z", "--changes", work / "crm-changes.jsonl"),
    ):  # fmt: skip
        r = mrules(*args)
        assert r.exit_code == 0, r.output
    return store


def test_a_campaign_named_unattributed_is_a_row_of_its_own(tmp_path: Path) -> None:
    """A campaign named "(unattributed)" read as the reports' unattributed row: the
    table's influence rows and the CSV's last row had the same name as it, and a
    spreadsheet summing "(unattributed)" added the campaign's credit to what no campaign
    got. The unattributed row is now told apart by structure: JSON keeps it in `totals`,
    the CSV's is the row with `unattributed` 1 and no name, the table and the page show
    the campaign's name quoted."""
    import csv
    import io

    name = "(unattributed)"
    store = _store_with_a_campaign_named(name, tmp_path)
    args = ("report", "campaigns", "--store", store, "--model", "primary")
    r = mrules(*args, "--format", "json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    mine = [c for c in report["campaigns"] if c["campaign"] == name]
    assert len(mine) == 1 and mine[0]["influence"]["primary"] == 3000.0
    unattributed = report["totals"]["unattributed"]
    assert unattributed["primary"] == 9000.0

    r = mrules(*args, "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["unattributed"] for row in rows] == ["0"] * (len(rows) - 1) + ["1"]
    assert [row["campaign"] for row in rows] == [
        *(c["campaign"] for c in report["campaigns"]),
        "",
    ]
    assert float(rows[-1]["primary"]) == 9000.0
    assert [float(row["primary"]) for row in rows if row["campaign"] == name] == [3000.0]

    r = mrules(*args)
    assert r.exit_code == 0, r.output
    influence = r.stdout.split("won amount credited by model")[1]
    lines = [line for line in influence.splitlines() if line.startswith("│")]
    labels = {line.split("│")[1].strip(): line.split("│")[3].strip() for line in lines}
    assert labels['"(unattributed)"'] == "3,000.00"  # the campaign, quoted
    assert labels["(unattributed)"] == "9,000.00"  # what no campaign got
    assert [line.split("│")[1].strip() for line in lines].count("(unattributed)") == 1

    page = tmp_path / "report.html"
    r = mrules("report", "html", page, "--store", store)
    assert r.exit_code == 0, r.output
    text = page.read_text()
    specs = json.loads(text.split('id="mrules-specs">')[1].split("</script>")[0])
    bars = specs["chart-campaign-influence"]["data"]["values"]
    primary = {b["label"]: b for b in bars if b["model"] == "Primary campaign"}
    assert primary['"(unattributed)"']["amount"] == 3000.0
    assert primary['"(unattributed)"']["campaign"] == name
    assert primary["(unattributed)"] == {
        "campaign": None,
        "label": "(unattributed)",
        "model": "Primary campaign",
        "amount": 9000.0,
    }
    assert "<td>&quot;(unattributed)&quot;</td>" in text


def test_a_campaign_whose_name_starts_with_a_double_quote_is_shown_quoted(
    tmp_path: Path,
) -> None:
    """docs/reports.md: a name that starts with a double quote is shown quoted, as JSON
    quotes it, so a campaign named `"(unattributed)"` shows neither as the unattributed
    row nor as a campaign named `(unattributed)` does."""
    name = '"(unattributed)"'
    store = _store_with_a_campaign_named('"""(unattributed)"""', tmp_path)  # CSV-quoted
    args = ("report", "campaigns", "--store", store, "--model", "primary")
    r = mrules(*args, "--format", "json")
    assert r.exit_code == 0, r.output
    assert [c["campaign"] for c in json.loads(r.stdout)["campaigns"]].count(name) == 1
    r = mrules(*args)
    assert r.exit_code == 0, r.output
    influence = r.stdout.split("won amount credited by model")[1]
    lines = [line for line in influence.splitlines() if line.startswith("│")]
    labels = {line.split("│")[1].strip(): line.split("│")[3].strip() for line in lines}
    assert labels[json.dumps(name)] == "3,000.00"  # "\"(unattributed)\"": the campaign
    assert labels["(unattributed)"] == "9,000.00"  # what no campaign got
    assert '"(unattributed)"' not in labels


def test_a_quoted_name_keeps_its_letters_as_they_are(tmp_path: Path) -> None:
    """A name shown quoted (it starts with a double quote) keeps its accents and other
    letters as written, as JSON quotes it without escaping them: `"\\"Été\\" Webinar"`,
    never `"\\"\\u00c9t\\u00e9\\" Webinar"`, in the table and on the page."""
    store = _store_with_a_campaign_named('"""Été"" Webinar"', tmp_path)  # CSV-quoted
    args = ("report", "campaigns", "--store", store, "--model", "primary")
    r = mrules(*args)
    assert r.exit_code == 0, r.output
    influence = r.stdout.split("won amount credited by model")[1]
    lines = [line for line in influence.splitlines() if line.startswith("│")]
    labels = {line.split("│")[1].strip(): line.split("│")[3].strip() for line in lines}
    assert labels['"\\"Été\\" Webinar"'] == "3,000.00", labels
    page = tmp_path / "report.html"
    r = mrules("report", "html", page, "--store", store)
    assert r.exit_code == 0, r.output
    assert "<td>&quot;\\&quot;Été\\&quot; Webinar&quot;</td>" in page.read_text()
