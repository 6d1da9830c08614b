"""Counts in the CLI's messages agree with their number, through the command as a user
runs it: `1 prospect matched`, `2 prospects matched` (they said `N prospect(s)`)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import mrules

RULES = """\
form "Demo"
form "Quiet"
form "Other"
list "A"
on submit of form "Quiet" { score +1 }
on submit of form "Demo" { score +2 }
segmentation rule "One" { when all { submitted form "Other" } then { add to list "A" } }
segmentation rule "Two" { when all { submitted form "Quiet" } then { add to list "A" } }
"""

EVENTS = [
    '{"ts":"2026-11-02T09:00:00Z","type":"form_submit","prospect":"ann@x.com","asset":"Other"}',
    '{"ts":"2026-11-02T09:00:00Z","type":"form_submit","prospect":"bob@x.com","asset":"Quiet"}',
    '{"ts":"2026-11-02T09:01:00Z","type":"form_submit","prospect":"cat@x.com","asset":"Quiet"}',
    '{"ts":"2026-11-02T09:02:00Z","type":"form_submit","prospect":"cat@x.com","asset":"Demo"}',
]


def _lines(name: str, lines: list[str]) -> Path:
    Path(name).write_text("".join(line + "\n" for line in lines), "utf-8")
    return Path(name)


def _store() -> None:
    Path("r.mr").write_text(RULES, "utf-8")
    r = mrules("run", "r.mr", _lines("e.jsonl", EVENTS), "--store", "s.db", "-q")
    assert r.exit_code == 0, r.output


def test_segment_says_one_prospect_and_two_prospects(here: Path) -> None:
    _store()
    r = mrules("segment", "r.mr", "--store", "s.db")
    assert r.exit_code == 0, r.output
    assert r.stdout == "One: 1 prospect matched\nTwo: 2 prospects matched\n"


def test_explain_says_one_change_and_two_changes(here: Path) -> None:
    _store()
    bob = mrules("explain", "bob@x.com", "--store", "s.db").stdout.splitlines()
    cat = mrules("explain", "cat@x.com", "--store", "s.db").stdout.splitlines()
    assert bob[2] == "Score 1 = sum of 1 change:"
    assert cat[2] == "Score 3 = sum of 2 changes:"


def test_run_says_how_many_errors_the_rule_set_has(here: Path) -> None:
    _lines("e.jsonl", EVENTS)
    for n, rules in ((1, ["Nope"]), (2, ["Nope", "Nah"])):
        text = "".join(f'on submit of form "{f}" {{ score +1 }}\n' for f in rules)
        Path("bad.mr").write_text(text, "utf-8")
        r = mrules("run", "bad.mr", "e.jsonl", "--store", "b.db")
        assert r.exit_code == 1, r.output
        said = "1 error" if n == 1 else "2 errors"
        assert f"mrules: error: the rule set has {said}; `mrules lint`" in r.stderr


def test_partition_counts_lines_files_and_buckets(here: Path) -> None:
    r = mrules("partition", _lines("a.jsonl", EVENTS[:1]), "--buckets", "1", "--out", "p1")
    assert r.exit_code == 0, r.output
    assert "partitioned 1 line of 1 file into 1 bucket (part-0000 of p1)" in r.stderr
    assert "; 0 ticks copied to every bucket; 0 lines to reject (in bucket 0);" in r.stderr
    _lines("b.jsonl", EVENTS[1:])
    r = mrules("partition", "a.jsonl", "b.jsonl", "--buckets", "2", "--out", "p2")
    assert r.exit_code == 0, r.output
    assert "partitioned 4 lines of 2 files into 2 buckets (part-0000 of p2)" in r.stderr


def test_a_partitioned_run_counts_lines_prospects_and_buckets(here: Path) -> None:
    Path("r.mr").write_text(RULES, "utf-8")
    for n, events in ((1, EVENTS[:1]), (2, EVENTS)):
        _lines("e.jsonl", events)
        r = mrules("partition", "e.jsonl", "--buckets", str(n), "--out", f"p{n}", "-q")
        assert r.exit_code == 0, r.output
        r = mrules(
            "run", "r.mr", f"p{n}", "--engine", "local", "--workers", "1", "--store", f"s{n}.db"
        )
        assert r.exit_code == 0, r.output
        said = (
            "1 line (1 bucket line: ticks go to every bucket), 0 rejected, 1 prospect; 1 bucket"
            if n == 1
            else "4 lines (4 bucket lines: ticks go to every bucket), 0 rejected, 3 prospects;"
            " 2 buckets"
        )
        assert f"mrules run (local): {said} (0 done before) in " in r.stderr, r.stderr
        progress = "buckets 1/1  1 line  " if n == 1 else "buckets 2/2  4 lines  "
        assert progress in r.stderr, r.stderr


LEAD = '{"Id":"l1","LastName":"A","Email":"a@x.com","Company":"X"}'
LEAD_B = '{"Id":"l4","LastName":"B","Email":"b@x.com","Company":"X"}'


def test_crm_load_and_export_count_rows_and_records(here: Path) -> None:
    Path("seed").mkdir()
    Path("out").mkdir()
    for n, bad in ((1, ["Bogus__c"]), (2, ["Bogus__c", "Nope__c"])):
        refused = [f'{{"Id":"x{i}","{f}":1}}' for i, f in enumerate(bad)]
        _lines("seed/Lead.jsonl", [LEAD, *refused])
        r = mrules("crm", "load", "seed", "--store", f"c{n}.db")
        assert r.exit_code == 3, r.output
        said = "1 row refused" if n == 1 else "2 rows refused"
        assert r.stderr.endswith(f"\n{said}; the others loaded\n"), r.stderr
    r = mrules("crm", "export", "--store", "c1.db", "--out", "out", "--object", "Lead")
    assert "out/Lead.jsonl: 1 record\n" in r.stderr, r.output
    _lines("seed/Lead.jsonl", [LEAD, LEAD_B])
    assert mrules("crm", "load", "seed", "--store", "c3.db").exit_code == 0
    r = mrules("crm", "export", "--store", "c3.db", "--out", "out", "--object", "Lead")
    assert "out/Lead.jsonl: 2 records\n" in r.stderr, r.output


def test_a_replaced_events_file_is_refused_with_its_lines_counted(here: Path) -> None:
    Path("r.mr").write_text(RULES, "utf-8")

    def run(store: str, lines: list[str]) -> str:
        r = mrules("run", "r.mr", _lines("d.jsonl", lines), "--store", store, "-q")
        return r.stderr

    assert run("a.db", EVENTS[:1]) == ""
    said = run("a.db", EVENTS[1:3])
    assert "d.jsonl is not the file this store read 1 line of: its line 1 is" in said, said
    assert run("b.db", EVENTS[:2]) == ""
    said = run("b.db", EVENTS[:1])
    assert "d.jsonl has 1 line, fewer than the 2 already read from it" in said, said


def test_partition_into_a_folder_of_other_buckets_counts_them(here: Path) -> None:
    _lines("d.jsonl", EVENTS[:1])
    assert mrules("partition", "d.jsonl", "--buckets", "1", "--out", "p", "-q").exit_code == 0
    r = mrules("partition", "d.jsonl", "--buckets", "2", "--out", "p", "-q")
    assert r.exit_code == 2, r.output
    assert "mrules: error: p has 1 bucket, not 2; new files append" in r.stderr, r.stderr
