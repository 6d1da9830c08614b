"""What `mrules replay --diff` counts and lists, against two separate `mrules run`s.

Each test edits the bundled example's rules, runs both sides with `mrules run` and
reads them back with `state export` and `state outbox`; the replay, through the CLI,
must report what those differ in: each category's prospects, the summary counts, the
messages gained and lost (docs/replay.md, What is compared). Found missing by
mutation testing of replay.py.
"""

from __future__ import annotations

import shutil
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from conftest import example_rules_without_grading
from mrules.cli import main

EXAMPLE = Path(__file__).parent.parent / "examples" / "getcloudy"
EVENTS = EXAMPLE / "events.jsonl"
NOT_KEYS = ("seq", "time", "rule", "at")  # where and when, not what (a message's body)


def _mrules(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _edited(folder: Path, edits: dict[str, tuple[str, str]], name: str = "rules") -> Path:
    """The example's rules in `folder`/`name`, each file's `old` text replaced by `new`
    (a file not in the example is written whole, `old` empty)."""
    rules = folder / name
    shutil.copytree(EXAMPLE / "rules", rules)
    for file, (old, new) in edits.items():
        path = rules / file
        if not old:
            path.write_text(new, encoding="utf-8")
            continue
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, old
        path.write_text(text.replace(old, new), encoding="utf-8")
    return rules


def _run(rules: Path, events: Path, store: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One side as `mrules run` leaves it: each prospect's export, and the outbox."""
    res = _mrules("run", str(rules), str(events), "--store", str(store), "-q")
    assert res.exit_code in (0, 3), res.output
    export = _mrules("state", "export", "--store", str(store)).stdout.splitlines()
    outbox = _mrules("state", "outbox", "--store", str(store)).stdout.splitlines()
    return {r["email"]: r for r in map(orjson.loads, export)}, list(map(orjson.loads, outbox))


def _compared(r: dict[str, Any]) -> dict[str, Any]:
    """A prospect's export as the replay compares it: not `crm_id` (the sync's), and its
    CRM work by what it holds, not when or by which rule."""
    work = sorted(
        orjson.dumps({k: v for k, v in w.items() if k not in NOT_KEYS}, option=orjson.OPT_SORT_KEYS)
        for w in r["pending_crm"]
    )
    return {**{k: v for k, v in r.items() if k not in ("crm_id", "pending_crm")}, "crm": work}


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The prospects that differ in anything compared, or exist under one rule set only."""
    return sorted(
        e
        for e in old.keys() | new.keys()
        if e not in old or e not in new or _compared(old[e]) != _compared(new[e])
    )


def _message(m: dict[str, Any]) -> tuple[str, str, bytes]:
    drop = (*NOT_KEYS, "prospect", "kind", "count", "reason")
    body = {k: v for k, v in m.items() if k not in drop}
    return m["prospect"], m["kind"], orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def _replay(old: Path, new: Path, events: Path) -> tuple[dict[str, Any], str]:
    """The replay's JSON and its text."""
    args = ["replay", "--diff", str(old), str(new), str(events), "--jobs", "1"]
    res = _mrules(*args, "--format", "json")
    assert res.exit_code == 0, res.output
    text = _mrules(*args)
    assert text.exit_code == 0, text.output
    return orjson.loads(res.stdout), text.stdout


def _contact_form(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Old rules that reject a form they do not declare, new ones that declare it: its
    sender, first in email order, exists under the new rules only."""
    settings = ("", 'settings {\n  unknown_assets = "reject"\n}\n')
    old = _edited(tmp_path, {"05-settings.mr": settings}, "old")
    contact = 'form "Contact us"\non submit of form "Contact us" {\n  score +5\n}\n'
    new = _edited(tmp_path, {"05-settings.mr": settings, "60-contact.mr": ("", contact)}, "new")
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        EVENTS.read_bytes()
        + b'{"ts":"2026-11-02T09:00:00Z","type":"form_submit","prospect":"aaron@x.example",'
        b'"asset":"Contact us"}\n'
    )
    return old, new, events


def test_a_prospect_under_one_rule_set_only_is_listed_on_its_side_and_counted(
    tmp_path: Path,
) -> None:
    """The prospect a line only the new rules accept makes is "only under the new rules"
    (the other way round, "only under the old rules"), counted as changed, and the
    prospects after it in email order are compared as well."""
    old, new, events = _contact_form(tmp_path)
    old_state, _ = _run(old, events, tmp_path / "old.db")
    new_state, _ = _run(new, events, tmp_path / "new.db")
    assert sorted(new_state.keys() - old_state.keys()) == ["aaron@x.example"]  # the data
    assert min(new_state) == "aaron@x.example"
    changed = _changed(old_state, new_state)
    rejects = tmp_path / "rejects.jsonl"
    res = _mrules(
        "run", str(old), str(events), "--store", str(tmp_path / "r.db"), "--rejects", str(rejects)
    )
    assert res.exit_code == 3 and len(rejects.read_text().splitlines()) == 1  # the new: none

    for a, b, only, other, said in (
        (old, new, "only_new", "only_old", "Only under the new rules: 1 prospect changes\n"
         "  ~ aaron@x.example: created: event form_submit, event line 29,"),
        (new, old, "only_old", "only_new", "Only under the old rules: 1 prospect changes\n"
         "  ~ aaron@x.example: no such prospect under the new rules: event form_submit,"
         " event line 29,"),
    ):  # fmt: skip
        d, text = _replay(a, b, events)
        assert d[only]["prospects"] == ["aaron@x.example"]
        assert d[other]["count"] == 0
        sizes = (len(old_state), len(new_state)) if a == old else (len(new_state), len(old_state))
        assert d["prospects"] == {"old": sizes[0], "new": sizes[1], "changed": len(changed)}
        assert f"\n{said}" in text, text
        rejected = "1 line rejected under the old rules, 0 under the new rules"
        if a == new:
            rejected = "0 lines rejected under the old rules, 1 under the new rules"
        assert f"\n  ({rejected})\n" in text, text
        count = f"Prospects: {sizes[0]} before, {sizes[1]} after; {len(changed)} changed\n"
        assert count in text, text


def test_messages_no_longer_sent_are_lost_for_prospects_sent_none_under_the_new_rules(
    tmp_path: Path,
) -> None:
    """The form's notification and autoresponder dropped: a prospect who gets no message at
    all under the new rules loses its messages too, as the two runs' outboxes differ."""
    new = _edited(
        tmp_path,
        {
            "10-completion-actions.mr": (
                '  notify assigned user\n  send autoresponder "Proposition d\'horaire"\n',
                "",
            )
        },
    )
    _, old_outbox = _run(EXAMPLE / "rules", EVENTS, tmp_path / "old.db")
    _, new_outbox = _run(new, EVENTS, tmp_path / "new.db")
    lost = Counter(map(_message, old_outbox)) - Counter(map(_message, new_outbox))
    silent = {m["prospect"] for m in old_outbox} - {m["prospect"] for m in new_outbox}
    assert silent and not Counter(map(_message, new_outbox)) - Counter(map(_message, old_outbox))

    d, text = _replay(EXAMPLE / "rules", new, EVENTS)
    got = d["outbox"]["lost"]
    assert Counter({_message(m): m["count"] for m in got["messages"]}) == lost
    assert got["total"] == sum(lost.values())
    by_kind = sorted(Counter(k for (_p, k, _b), n in lost.items() for _ in range(n)).items())
    assert list(got["by_kind"].items()) == by_kind  # in the order of their names
    assert (d["outbox"]["old"], d["outbox"]["new"]) == (len(old_outbox), len(new_outbox))
    kinds = ", ".join(f"{k} {n}" for k, n in by_kind)
    assert f"  - by kind: {kinds}\n" in text, text
    assert f"(+0 gained, -{sum(lost.values())} lost)\n" in text, text
    first: dict[tuple[str, str, bytes], dict[str, Any]] = {}
    for m in old_outbox:  # each message lost, by its first one
        if _message(m) in lost:
            first.setdefault(_message(m), m)
    assert len(first) > 5  # the data: more than the text shows
    shown = [x for x in text.splitlines() if x.startswith("  - ") and "by kind" not in x]
    assert len(shown) == 5 and f"\n    ... and {len(first) - 5} more (--format json" in text
    by_seq = sorted(first.items(), key=lambda x: x[1]["seq"])[:5]
    for line, (key, m) in zip(shown, by_seq, strict=True):
        body = {k: v for k, v in m.items() if k not in (*NOT_KEYS, "prospect", "kind")}
        times = f" x{lost[key]}" if lost[key] > 1 else ""
        said = f"{orjson.dumps(body).decode()}: {m['rule']} ("
        head = f"  - {m['kind']}{times} for {m['prospect']} {said}"
        assert line.startswith(head) and line.endswith(f"), {m['time']}"), (line, head)
    assert any(n > 1 for n in lost.values())


def test_score_moves_are_counted_up_and_down_with_their_mean(tmp_path: Path) -> None:
    """Careers views cost more and a newsletter click brings more: scores move both
    ways; how many, which way and by how much on average is the two runs' scores'."""
    new = _edited(
        tmp_path,
        {
            "20-page-actions.mr": ("  score -10\n", "  score -30\n"),
            "10-completion-actions.mr": ("  score +5\n", "  score +9\n"),
        },
    )
    old_state, _ = _run(EXAMPLE / "rules", EVENTS, tmp_path / "old.db")
    new_state, _ = _run(new, EVENTS, tmp_path / "new.db")
    moves = [new_state[e]["score"] - old_state[e]["score"] for e in sorted(old_state)]
    moves = [m for m in moves if m]
    up, down = sum(m > 0 for m in moves), sum(m < 0 for m in moves)
    assert up and down  # the data is what we think

    d, text = _replay(EXAMPLE / "rules", new, EVENTS)
    s = d["score"]
    mean = round(sum(moves) / len(moves), 2)
    assert (s["changed"], s["up"], s["down"], s["mean_change"]) == (len(moves), up, down, mean)
    assert f"\nScores: {len(moves)} changed ({up} up, {down} down, mean change {mean:+})\n" in text


def _lists(r: dict[str, Any]) -> set[str]:
    return {*r["lists"], *(f"{x} (dynamic)" for x in r["dynamic_lists"])}


def test_lists_gained_and_lost_are_listed_in_order(tmp_path: Path) -> None:
    """The form adds its senders to four more lists: each sender's lists gained (the other
    way round, lost) are every list of the two runs' exports that differs, in name order,
    in the JSON and in the text."""
    more = "".join(f'list "{n}"\n' for n in ("Webinar", "Partners", "Events", "Alumni"))
    adds = "".join(f'  add to list "{n}"\n' for n in ("Webinar", "Partners", "Events", "Alumni"))
    new = _edited(
        tmp_path,
        {
            "60-lists.mr": ("", more),
            "10-completion-actions.mr": ("  assign to user", f"{adds}  assign to user"),
        },
    )
    old_state, _ = _run(EXAMPLE / "rules", EVENTS, tmp_path / "old.db")
    new_state, _ = _run(new, EVENTS, tmp_path / "new.db")
    gained = {
        e: sorted(_lists(new_state[e]) - _lists(old_state[e]))
        for e in old_state
        if _lists(new_state[e]) != _lists(old_state[e])
    }
    assert len(gained) > 1 and all(len(x) >= 4 for x in gained.values())  # the data

    for a, b, key, sign in (
        (EXAMPLE / "rules", new, "added", "+"),
        (new, EXAMPLE / "rules", "removed", "-"),
    ):
        d, text = _replay(a, b, EVENTS)
        assert d["lists"]["prospects"] == sorted(gained)
        assert d["prospects"]["changed"] == len(_changed(old_state, new_state))
        assert {i["prospect"]: i[key] for i in d["lists"]["examples"]} == gained
        form = ": completion action 'submit of form Demande Get Cloudy' ("
        side = "" if key == "added" else " (old rules)"
        for item in d["lists"]["examples"]:  # the reasons of the first two lists
            names = gained[item["prospect"]]
            parts = item["reason"].split("; ")
            assert [p.partition(form)[0] for p in parts] == [f"{n}{side}" for n in names[:2]]
        for e, names in gained.items():
            assert f"  ~ {e}: " + ", ".join(f"{sign}{n}" for n in names) in text, text


def test_a_grade_alone_that_changes_is_a_changed_prospect(tmp_path: Path) -> None:
    """New rules without the grading rule: the prospects it graded change in their grade
    alone, and each counts as changed."""
    new = example_rules_without_grading(tmp_path)
    old_state, _ = _run(EXAMPLE / "rules", EVENTS, tmp_path / "old.db")
    new_state, _ = _run(new, EVENTS, tmp_path / "new.db")
    changed = _changed(old_state, new_state)
    graded = [e for e in changed if old_state[e]["grade"] != new_state[e]["grade"]]
    alone = [
        e
        for e in graded
        if _compared(old_state[e]) | {"grade": None} == _compared(new_state[e]) | {"grade": None}
    ]
    assert alone  # the data is what we think

    d, text = _replay(EXAMPLE / "rules", new, EVENTS)
    assert d["grade"]["prospects"] == graded
    assert d["prospects"]["changed"] == len(changed)
    assert f"; {len(changed)} changed\n" in text
    assert any(new_state[e]["grade"] is None for e in graded)  # the data: "-" shown
    for a, b, sa, sb in (
        (EXAMPLE / "rules", new, old_state, new_state),
        (new, EXAMPLE / "rules", new_state, old_state),
    ):
        _d, text = _replay(a, b, EVENTS)
        for e in graded:
            assert f"  ~ {e}: {sa[e]['grade'] or '-'} -> {sb[e]['grade'] or '-'}" in text, text


def _work(r: dict[str, Any]) -> Counter[bytes]:
    return Counter(
        orjson.dumps({k: v for k, v in w.items() if k not in NOT_KEYS}, option=orjson.OPT_SORT_KEYS)
        for w in r["pending_crm"]
    )


def test_crm_work_gained_and_lost_is_what_the_two_runs_hold(tmp_path: Path) -> None:
    """The form assigns to a queue instead of Alan: each sender's lead to create is gained
    for the queue and lost for Alan, as the two runs' pending CRM work differs."""
    new = _edited(
        tmp_path,
        {
            "10-completion-actions.mr": (
                '  assign to user "alan@getcloudy.com"\n',
                '  assign to queue "Inside Sales"\n',
            )
        },
    )
    old_state, _ = _run(EXAMPLE / "rules", EVENTS, tmp_path / "old.db")
    new_state, _ = _run(new, EVENTS, tmp_path / "new.db")
    by_hand = {
        e: (_work(new_state[e]) - _work(old_state[e]), _work(old_state[e]) - _work(new_state[e]))
        for e in old_state
        if _work(old_state[e]) != _work(new_state[e])
    }
    assert by_hand and all(a and b for a, b in by_hand.values())  # the data

    d, _text = _replay(EXAMPLE / "rules", new, EVENTS)
    assert d["crm"]["prospects"] == sorted(by_hand)
    for item in d["crm"]["examples"]:
        added, removed = by_hand[item["prospect"]]
        assert Counter(orjson.dumps(w, option=orjson.OPT_SORT_KEYS) for w in item["added"]) == added
        assert (
            Counter(orjson.dumps(w, option=orjson.OPT_SORT_KEYS) for w in item["removed"])
            == removed
        )


def test_a_crm_status_alone_that_changes_is_a_crm_change(tmp_path: Path) -> None:
    """New rules that reject a bad picklist value reject the CRM's update of a prospect
    with no CRM work: its CRM status alone differs (a lead under the old rules, none under
    the new), which is a CRM change of a changed prospect."""
    new = _edited(
        tmp_path, {"05-settings.mr": ("", 'settings {\n  bad_field_values = "reject"\n}\n')}
    )
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        EVENTS.read_bytes()
        + b'{"ts":"2026-11-06T09:00:00Z","type":"crm_update","prospect":"carol@startup.example",'
        b'"object":"lead","crm_id":"00Q5e000009","fields":{"Company_Size__c":"huge"}}\n'
    )
    old_state, _ = _run(EXAMPLE / "rules", events, tmp_path / "old.db")
    new_state, _ = _run(new, events, tmp_path / "new.db")
    carol = (old_state["carol@startup.example"], new_state["carol@startup.example"])
    assert [r["crm_status"] for r in carol] == ["lead", "none"]  # the data is what we think
    assert not carol[0]["pending_crm"] and not carol[1]["pending_crm"]
    changed = _changed(old_state, new_state)
    status = sorted(e for e in changed if old_state[e]["crm_status"] != new_state[e]["crm_status"])

    d, text = _replay(EXAMPLE / "rules", new, events)
    assert d["crm"]["prospects"] == status
    item = next(i for i in d["crm"]["examples"] if i["prospect"] == "carol@startup.example")
    assert (item["added"], item["removed"], item["crm_status"]) == ([], [], ["lead", "none"])
    assert d["prospects"]["changed"] == len(changed)
    assert (
        "  ~ carol@startup.example: status lead -> none: event crm_update, event line 29," in text
    )


def test_data_changes_come_in_name_order_and_the_text_shows_three(tmp_path: Path) -> None:
    """The form sets a field more, another value and other tags: a sender's data changes
    are each datum the two runs' exports differ in, in the order of their names (the same
    JSON every time), and the text shows the first three and how many more."""
    new = _edited(
        tmp_path,
        {
            "10-completion-actions.mr": (
                '  set lead_source = "Web consult"\n  increment consult_requests by 1\n',
                '  set lead_source = "Web form"\n  increment consult_requests by 2\n'
                '  set interests = "cloud"\n  add tag "newsletter-reader"\n  add tag "web"\n',
            ),
            "60-tags.mr": ("", 'tag "web"\n'),
        },
    )
    old_state, _ = _run(EXAMPLE / "rules", EVENTS, tmp_path / "old.db")
    new_state, _ = _run(new, EVENTS, tmp_path / "new.db")
    by_hand = {}
    for e, a in old_state.items():
        b = new_state[e]
        changes = [
            {"what": f"fields.{k}", "old": a["fields"].get(k), "new": b["fields"].get(k)}
            for k in a["fields"].keys() | b["fields"].keys()
            if a["fields"].get(k) != b["fields"].get(k)
        ]
        if a["tags"] != b["tags"]:
            changes.append({"what": "tags", "old": a["tags"], "new": b["tags"]})
        if changes:
            by_hand[e] = sorted(changes, key=lambda c: c["what"])
    many = [e for e, c in by_hand.items() if len(c) > 3]
    assert many and any(len(c) == 3 for c in by_hand.values())  # the data is what we think

    tags = [c for cs in by_hand.values() for c in cs if c["what"] == "tags"]
    assert any(len(set(c["new"]) - set(c["old"])) > 1 for c in tags)

    for a, b, way in (
        (EXAMPLE / "rules", new, ("old", "new")),
        (new, EXAMPLE / "rules", ("new", "old")),
    ):
        d, text = _replay(a, b, EVENTS)
        want = {
            e: [{"what": c["what"], "old": c[way[0]], "new": c[way[1]]} for c in cs]
            for e, cs in by_hand.items()
        }
        assert {i["prospect"]: i["changes"] for i in d["data"]["examples"]} == want
        for e, cs in want.items():
            assert f"  ~ {e}: {_data_text(cs)}: " in text, (_data_text(cs), text)


def _data_text(changes: list[dict[str, Any]]) -> str:
    """`lead_source "Web consult" -> "Web form", +tag vip`: the first three, then a count."""
    parts = []
    for c in changes[:3]:
        if c["what"] == "tags":
            parts += [f"+tag {t}" for t in sorted(set(c["new"]) - set(c["old"]))]
            parts += [f"-tag {t}" for t in sorted(set(c["old"]) - set(c["new"]))]
        else:
            old, new = (orjson.dumps(c[k]).decode() for k in ("old", "new"))
            parts.append(f"{c['what'].removeprefix('fields.')} {old} -> {new}")
    more = [f"{len(changes) - 3} more"] if len(changes) > 3 else []
    return ", ".join([*parts, *more])


def _replay_with(old: Path, new: Path, *more: str) -> tuple[dict[str, Any], str]:
    args = ["replay", "--diff", str(old), str(new), str(EVENTS), "--jobs", "1", *more]
    res, text = _mrules(*args, "--format", "json"), _mrules(*args)
    assert res.exit_code == text.exit_code == 0, res.output + text.output
    return orjson.loads(res.stdout), text.stdout


def test_an_mql_the_new_rules_remove_names_both_rules(tmp_path: Path) -> None:
    """New rules that take a prospect out of the MQL list again: the MQL lost names what
    had added it under the old rules and what removes it under the new ones."""
    unqualify = (
        'automation rule "Unqualify" priority 20 {\n  when all { score >= 100 }\n'
        '  then { remove from list "MQL" }\n}\n'
    )
    new = _edited(tmp_path, {"70-unqualify.mr": ("", unqualify)})
    d, text = _replay_with(EXAMPLE / "rules", new)
    lost = d["mql"]["lost"]
    assert lost["prospects"] and lost["count"] == len(lost["examples"])
    for item in lost["examples"]:
        reason = item["reason"]
        old_part, _, new_part = reason.partition("; new rules removed it: ")
        assert old_part.startswith("old rules: automation rule 'MQL handoff' ("), reason
        assert new_part.startswith("automation rule 'Unqualify' ("), reason
        assert "70-unqualify.mr:1)" in new_part
        score = " -> ".join(map(str, item["score"]))
        assert f"  - {item['prospect']} (score {score}): {reason}\n" in text, text


def test_an_assignment_change_names_the_rule_of_the_side_that_assigns(tmp_path: Path) -> None:
    """The form no longer assigns to Alan: the assignment lost names what assigned the
    prospect under the old rules; the other way round, what assigns it under the new."""
    new = _edited(
        tmp_path, {"10-completion-actions.mr": ('  assign to user "alan@getcloudy.com"\n', "")}
    )
    form = "completion action 'submit of form Demande Get Cloudy' ("
    for a, b, label in (
        (EXAMPLE / "rules", new, "old rules: "),
        (new, EXAMPLE / "rules", "new rules: "),
    ):
        d, text = _replay_with(a, b)
        bob = next(i for i in d["assignment"]["examples"] if i["prospect"] == "bob@bigcorp.example")
        assert {bob["old"], bob["new"]} == {"user alan@getcloudy.com", None}
        assert bob["reason"].startswith(f"{label}{form}"), bob
        assert f"  ~ bob@bigcorp.example: {_line(bob)}: {bob['reason']}\n" in text, text


def _line(item: dict[str, Any]) -> str:
    return f"{item['old'] or 'unassigned'} -> {item['new'] or 'unassigned'}"


def test_a_grade_both_rule_sets_give_names_the_new_rules(tmp_path: Path) -> None:
    """The grading rule marks the criterion the other way: both runs grade the prospect,
    and the reason is what grades it under the new rules."""
    new = _edited(tmp_path, {"30-automation.mr": ("as matches }", "as does not match }")})
    d, text = _replay_with(EXAMPLE / "rules", new)
    assert d["grade"]["count"] and d["grade"]["count"] == len(d["grade"]["examples"])
    for item in d["grade"]["examples"]:
        assert item["old"] and item["new"] and item["old"] != item["new"]
        assert item["reason"].startswith("new rules: automation rule 'Enterprise grading' ("), item
        assert f"  ~ {item['prospect']}: {item['old']} -> {item['new']}: {item['reason']}\n" in text


def _line_of(path: Path, text: str) -> int:
    return next(i for i, x in enumerate(path.read_text().splitlines(), 1) if text in x)


def test_rules_come_biggest_change_first_each_where_it_is_now(tmp_path: Path) -> None:
    """Rules moved down two lines, the MQL threshold lowered and the decay rule renamed:
    the rules whose count changed most come first, and each is named where the new rules
    have it (a rule the new rules no longer have, where the old ones had it)."""
    new = _edited(tmp_path, {})
    automation = new / "30-automation.mr"
    text = automation.read_text(encoding="utf-8")
    text = text.replace("score >= 100", "score >= 50").replace('"Score decay"', '"Decay"')
    automation.write_text("# moved\n\n" + text, encoding="utf-8")
    old_file = EXAMPLE / "rules" / "30-automation.mr"

    d, text = _replay_with(EXAMPLE / "rules", new)
    rules = d["rules"]
    change = [abs(r["after"] - r["before"]) for r in rules]
    assert len(set(change)) > 2 and max(r["after"] + r["before"] for r in rules) > max(change)
    assert rules == sorted(
        rules, key=lambda r: (-abs(r["after"] - r["before"]), r["kind"], r["name"])
    )
    at = {r["name"]: r["at"] for r in rules}
    for name, path in (
        ("MQL handoff", automation),
        ("Decay", automation),
        ("Score decay", old_file),
    ):
        line = _line_of(path, f'automation rule "{name}"')
        assert at[name].endswith(f"/rules/30-automation.mr:{line}"), (name, at[name])
    assert _line_of(automation, "MQL handoff") != _line_of(old_file, "MQL handoff")
    shown = text.split("\nRules: ")[1].splitlines()[1:]
    moved = [r for r in rules if r["before"] != r["after"]]
    assert shown == [
        f"  {r['kind']} '{r['name']}' ({r['at']}): {r['before']} -> {r['after']}"
        f" ({r['after'] - r['before']:+})"
        for r in moved
    ]


BOUNDS = (0, 24, 25, 49, 50, 99, 100, 149, 150, 199, 200, 230)  # each bucket's ends


def _bucket(score: int) -> str:
    for low, high in ((0, 24), (25, 49), (50, 99), (100, 149), (150, 199)):
        if low <= score <= high:
            return f"{low}-{high}"
    return "<0" if score < 0 else "200+"


def _num_text(x: float) -> str:
    return f"{x:,.1f}" if x != int(x) else f"{int(x):,}"


@pytest.mark.parametrize(("old_low", "new_low"), [(-1, -1), (1, 1), (-1, 3)])
def test_the_score_distributions_are_the_two_runs_scores(
    tmp_path: Path, old_low: int, new_low: int
) -> None:
    """Prospects scored at each end of each bucket, one of them below 0 on both sides, on
    neither or on the old side only: the mean, median, 90th percentile, maximum and
    buckets of each side are those of the two runs' scores; `<0` is there, once on both
    sides, when a score of either is below 0."""
    for side, low in (("old", old_low), ("new", new_low)):
        scores = (low, *BOUNDS)
        forms = "".join(
            f'form "S{i}"\non submit of form "S{i}" {{ score +{s} }}\n'
            for i, s in enumerate(scores)
        )
        (tmp_path / side).mkdir()
        (tmp_path / side / "r.mr").write_text(
            f'list "MQL"\n{forms}'.replace("+-", "-"), encoding="utf-8"
        )
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            f'{{"ts":"2026-11-02T10:00:00Z","type":"form_submit","prospect":"p{i}@x.example","asset":"S{i}"}}\n'
            for i in range(len(BOUNDS) + 1)
        ),
        encoding="utf-8",
    )
    by_hand = {}
    for side in ("old", "new"):
        state, _ = _run(tmp_path / side, events, tmp_path / f"{side}.db")
        by_hand[side] = sorted(r["score"] for r in state.values())
    assert by_hand["old"] == sorted((old_low, *BOUNDS))  # the data is what we think
    negative = min(by_hand["old"] + by_hand["new"]) < 0
    labels = ["<0"] * negative + ["0-24", "25-49", "50-99", "100-149", "150-199", "200+"]

    d, text = _replay(tmp_path / "old", tmp_path / "new", events)
    rows = text.split("\nScores: ")[1].split("\n\n")[0].splitlines()[2:]
    for i, side in enumerate(("old", "new")):
        s = by_hand[side]
        got = d["score"][side]
        n = Counter(map(_bucket, s))
        want = {
            "prospects": len(s),
            "mean": round(statistics.mean(s), 2),
            "median": statistics.median(s),
            "p90": statistics.quantiles(s, n=10, method="inclusive")[8],
            "max": max(s),
            "buckets": [{"range": x, "prospects": n[x]} for x in labels],
        }
        assert got["buckets"] == want.pop("buckets"), side
        assert {k: v for k, v in got.items() if k != "buckets"} == pytest.approx(want), side
        for key, row in zip(("mean", "median", "p90", "max"), rows, strict=False):
            assert row.split()[0] == key and row.split()[1 + i] == _num_text(want[key]), row
        bucket_rows = {r.split()[0]: r.split()[1:] for r in rows[4:]}
        sides = [Counter(map(_bucket, by_hand[x])) for x in ("old", "new")]
        shown = [x for x in labels if sides[0][x] or sides[1][x]]
        assert [r.split()[0] for r in rows[4:]] == shown  # each bucket once, in order
        assert {k: v[i] for k, v in bucket_rows.items()} == {x: str(n[x]) for x in bucket_rows}


def test_a_history_of_no_prospect_gives_zero_scores(tmp_path: Path) -> None:
    """No prospect in both runs (every line rejected): the figures of the scores are 0 and
    the report is made, not a traceback."""
    events = tmp_path / "events.jsonl"
    events.write_text('{"ts":"nope"}\n', encoding="utf-8")
    d, text = _replay(EXAMPLE / "rules", EXAMPLE / "rules", events)
    for side in ("old", "new"):
        s = d["score"][side]
        assert (s["prospects"], s["mean"], s["median"], s["p90"], s["max"]) == (0, 0, 0, 0, 0)
        assert all(b["prospects"] == 0 for b in s["buckets"])
    rows = text.split("\nScores: ")[1].split("\n\n")[0].splitlines()[2:]
    assert rows == [f"  {k:8} {'0':>10} {'0':>10}" for k in ("mean", "median", "p90", "max")]


@pytest.mark.parametrize("scores", [(10,), (10, 15)])
def test_the_median_and_90th_percentile_of_one_or_two_prospects(
    tmp_path: Path, scores: tuple[int, ...]
) -> None:
    """One prospect's score is its median and 90th percentile; two prospects' lie between
    their scores (by linear interpolation, as `statistics.quantiles` inclusive)."""
    forms = "".join(f'form "S{s}"\non submit of form "S{s}" {{ score +{s} }}\n' for s in scores)
    (tmp_path / "r.mr").write_text(f'list "MQL"\n{forms}', encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            f'{{"ts":"2026-11-02T10:00:00Z","type":"form_submit","prospect":"p{s}@x.example",'
            f'"asset":"S{s}"}}\n'
            for s in scores
        ),
        encoding="utf-8",
    )
    d, _text = _replay(tmp_path / "r.mr", tmp_path / "r.mr", events)
    cuts = statistics.quantiles(scores, n=10, method="inclusive") if len(scores) > 1 else scores * 9
    for side in ("old", "new"):
        s = d["score"][side]
        assert (s["median"], s["p90"]) == pytest.approx((statistics.median(scores), cuts[8]))


def test_a_score_one_point_up_or_down_is_counted(tmp_path: Path) -> None:
    """Two forms' points moved by one, one up and one down: one score up, one down."""
    for side, (a, b) in (("old", (10, 10)), ("new", (11, 9))):
        (tmp_path / side).mkdir()
        (tmp_path / side / "r.mr").write_text(
            f'list "MQL"\nform "A"\nform "B"\non submit of form "A" {{ score +{a} }}\n'
            f'on submit of form "B" {{ score +{b} }}\n',
            encoding="utf-8",
        )
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            f'{{"ts":"2026-11-02T10:00:00Z","type":"form_submit","prospect":"{f}@x.example",'
            f'"asset":"{f}"}}\n'
            for f in "AB"
        ),
        encoding="utf-8",
    )
    d, text = _replay(tmp_path / "old", tmp_path / "new", events)
    s = d["score"]
    assert (s["changed"], s["up"], s["down"], s["mean_change"]) == (2, 1, 1, 0)
    assert "\nScores: 2 changed (1 up, 1 down, mean change +0.0)\n" in text


def test_examples_n_shows_n_a_category_and_says_how_many_more(tmp_path: Path) -> None:
    """`--examples 1`: one prospect of each category shown, then how many more; the JSON
    lists every prospect and that one example."""
    new = _edited(
        tmp_path,
        {"10-completion-actions.mr": ('  set lead_source = "Web consult"\n', "")},
    )
    old_state, _ = _run(EXAMPLE / "rules", EVENTS, tmp_path / "old.db")
    new_state, _ = _run(new, EVENTS, tmp_path / "new.db")
    data = sorted(e for e in old_state if old_state[e]["fields"] != new_state[e]["fields"])
    assert len(data) > 1  # the data is what we think

    d, text = _replay_with(EXAMPLE / "rules", new, "--examples", "1")
    assert d["data"]["prospects"] == data and len(d["data"]["examples"]) == 1
    section = text.split("\nProspect data: ")[1].split("\n\n")[0].splitlines()
    assert section[0] == f"{len(data)} prospects change"
    assert section[1].startswith(f"  ~ {data[0]}: lead_source ")
    assert section[2:] == [f"    ... and {len(data) - 1} more (--format json lists them all)"]


def test_mql_list_may_be_a_list_of_one_rule_set_only_or_a_dynamic_list(tmp_path: Path) -> None:
    """`--mql-list` takes a list either rule set declares, static or dynamic: the MQLs
    counted are that list's members in each run (none where it is not declared)."""
    new = _edited(
        tmp_path,
        {
            "60-vip.mr": ("", 'list "VIP"\n'),
            "10-completion-actions.mr": (
                "  assign to user",
                '  add to list "VIP"\n  assign to user',
            ),
        },
    )
    old_state, _ = _run(EXAMPLE / "rules", EVENTS, tmp_path / "old.db")
    new_state, _ = _run(new, EVENTS, tmp_path / "new.db")
    for name, key in (("VIP", "lists"), ("Engaged enterprise", "dynamic_lists")):
        by_hand = [sum(name in r[key] for r in s.values()) for s in (old_state, new_state)]
        d, _text = _replay_with(EXAMPLE / "rules", new, "--mql-list", name)
        assert [d["mql"]["old"], d["mql"]["new"]] == by_hand, name
    assert sum("Engaged enterprise" in r["dynamic_lists"] for r in old_state.values())
    assert sum("VIP" in r["lists"] for r in new_state.values())


@pytest.mark.parametrize("n", [15, 16])
def test_the_text_shows_fifteen_rules_and_how_many_more(tmp_path: Path, n: int) -> None:
    """Fifteen or sixteen automation rules the new rules drop: the text lists fifteen of
    them, then says how many more the JSON lists, if any."""
    base = 'list "MQL"\nlist "L"\nform "F"\non submit of form "F" { score +1 }\n'
    dropped = "".join(
        f'automation rule "R{i:02}" priority {i + 1} {{ when all {{ score > 0 }}'
        ' then { add to list "L" } }\n'
        for i in range(n)
    )
    for side, text in (("old", base + dropped), ("new", base)):
        (tmp_path / side).mkdir()
        (tmp_path / side / "r.mr").write_text(text, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"ts":"2026-11-02T10:00:00Z","type":"form_submit","prospect":"p@x.example","asset":"F"}\n',
        encoding="utf-8",
    )
    d, text = _replay(tmp_path / "old", tmp_path / "new", events)
    changed = [r for r in d["rules"] if r["before"] != r["after"]]
    assert [r["name"] for r in changed] == [f"R{i:02}" for i in range(n)]
    rows = text.split("\nRules: ")[1].splitlines()
    assert rows[0] == f"{n} of {len(d['rules'])} act a different number of times"
    assert [r.split("'")[1] for r in rows[1:16]] == [f"R{i:02}" for i in range(15)]
    more = [f"  ... and {n - 15} more (--format json lists them all)"] if n > 15 else []
    assert rows[16:] == more


@pytest.mark.parametrize("n", [5, 6])
def test_the_text_shows_five_messages_and_how_many_more(tmp_path: Path, n: int) -> None:
    """The new rules notify a user of each form's sender: five messages gained are all
    shown; of six, five and "... and 1 more"."""
    for side, then in (("old", "score +1"), ("new", 'notify user "a@x.com"')):
        (tmp_path / side).mkdir()
        (tmp_path / side / "r.mr").write_text(
            f'list "MQL"\nuser "a@x.com"\nform "F"\non submit of form "F" {{ {then} }}\n',
            encoding="utf-8",
        )
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            f'{{"ts":"2026-11-02T10:00:00Z","type":"form_submit","prospect":"p{i}@x.example",'
            '"asset":"F"}\n'
            for i in range(n)
        ),
        encoding="utf-8",
    )
    d, text = _replay(tmp_path / "old", tmp_path / "new", events)
    assert d["outbox"]["gained"]["total"] == len(d["outbox"]["gained"]["messages"]) == n
    rows = text.split("\nOutbox: ")[1].split("\n\n")[0].splitlines()
    assert rows[1] == f"  + by kind: notify {n}"
    assert [r.split(" for ")[1].split()[0] for r in rows[2:7]] == [
        f"p{i}@x.example" for i in range(5)
    ]
    assert rows[2].startswith("  + notify for p0@x.example ")  # once each: no "x1"
    assert rows[7:] == (
        [f"    ... and {n - 5} more (--format json lists them all)"] if n > 5 else []
    )
