"""A prospect's stored state decodes to the same state, and shares what prospects share.

The engine's cache decodes prospects from the store again and again; what
every prospect names alike (an owner, a status, a scoring category, a link)
is one string in memory however many prospects are decoded, not one each.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from hypothesis import given
from hypothesis import strategies as st

from conftest import mrules
from mrules.state import Codecs, Prospect

_names = st.sampled_from(["Webinar", "Pricing", "rep03@site.example", "queue", "B+", "lead"])
_times = st.floats(1.7e9, 1.8e9, allow_nan=False) | st.just(0.0)  # 0.0: 1970-01-01


@st.composite
def prospects(draw: st.DrawFn) -> Prospect:
    p = Prospect(draw(st.emails()), draw(_times))
    p.score = draw(st.integers(-500, 500))
    p.assigned_kind = draw(st.none() | st.sampled_from(["user", "queue"]))
    p.assigned_to = draw(st.none() | _names)
    p.assigned_at = draw(st.none() | _times)
    p.reassigned_at = draw(st.none() | _times)
    p.campaign = draw(st.none() | _names)
    p.crm_status = draw(st.sampled_from(["none", "lead", "contact", "deleted"]))
    p.categories = draw(st.none() | st.dictionaries(_names, st.integers(-50, 50), min_size=1))
    p.throttle = draw(st.none() | st.dictionaries(_names, _times, min_size=1))
    links = st.text("abc|/", min_size=1, max_size=6)
    p.clicked = draw(st.none() | st.frozensets(links, min_size=1, max_size=40))
    p.matches = draw(
        st.none() | st.dictionaries(_names, st.tuples(st.integers(1, 9), _times), min_size=1)
    )
    p.fields = draw(st.none() | st.tuples(st.just("city"), _names | st.integers(-(2**53), 2**53)))
    return p


_bits = st.lists(_names, max_size=3)
_maps = st.none() | st.dictionaries(_names, _times, min_size=1)


@st.composite
def whole_prospects(draw: st.DrawFn) -> tuple[Prospect, Codecs]:
    """A prospect with every attribute drawn (what `prospects` leaves unset too)."""
    p, codecs = draw(prospects()), Codecs()
    p.lists, p.dynamic = (codecs.lists.encode(draw(_bits)) for _ in range(2))
    p.tags, p.opened = codecs.tags.encode(draw(_bits)), codecs.emails.encode(draw(_bits))
    rules = draw(st.lists(st.sampled_from(["rule:MQL", "rule:=x", "segment:s", "=y"])))
    p.latched = codecs.rules.encode(rules)
    p.dns_by_rule, p.do_not_sync, p.opted_out = (draw(st.booleans()) for _ in range(3))
    p.crm_id, p.profile, p.grade = (draw(st.none() | _names) for _ in range(3))
    p.criteria = draw(st.none() | st.dictionaries(_names, st.sampled_from([-1, 1]), min_size=1))
    p.last_activity = draw(st.none() | _times)
    p.notified, p.stamps = draw(_maps), draw(_maps)
    acts = draw(st.dictionaries(_names, _times))
    p.acts = tuple(x for pair in acts.items() for x in pair) or None
    values = st.none() | _names | st.integers(-(2**63), 2**64 - 1) | st.booleans() | _times
    fields = draw(st.dictionaries(_names, values))
    p.fields = tuple(x for pair in fields.items() for x in pair) or None
    return p, codecs


def _attributes(p: Prospect) -> dict[str, object]:
    from mrules import state

    got = {name: getattr(p, name) for name in state._SHORT}
    got["clicked"] = None if p.clicked is None else set(p.clicked)
    return got


@given(whole_prospects())
def test_a_prospect_read_back_has_every_attribute_it_was_written_with(
    drawn: tuple[Prospect, Codecs],
) -> None:
    """What a resumed run reads of a prospect is what the run before it had."""
    p, codecs = drawn
    again = Prospect.from_json(p.to_json(codecs), codecs, p.email)
    assert _attributes(again) == _attributes(p)


@given(prospects())
def test_a_decoded_prospect_encodes_to_the_same_bytes(p: Prospect) -> None:
    codecs = Codecs()
    data = p.to_json(codecs)
    again = Prospect.from_json(data, codecs, p.email)
    assert again.to_json(codecs) == data
    assert again.email == p.email and again.score == p.score


@given(prospects())
def test_the_reassignment_time_is_kept_apart_and_only_when_set(p: Prospect) -> None:
    data = Prospect(p.email, p.created).to_json(Codecs())
    assert b'"ra"' not in data  # unset: no key, so a state written before it reads alike
    codecs = Codecs()
    again = Prospect.from_json(p.to_json(codecs), codecs, p.email)
    assert (again.assigned_at, again.reassigned_at) == (p.assigned_at, p.reassigned_at)


def test_a_state_written_before_reassigned_at_reads_unchanged() -> None:
    old = b'{"c":1750000000.0,"s":3,"aa":1750000100.0,"ak":"user","at":"alan@x.com"}'
    p = Prospect.from_json(old, Codecs(), "a@x.com")
    assert (p.assigned_at, p.reassigned_at) == (1750000100.0, None)
    assert p.to_json(Codecs()) == old


def test_what_prospects_name_alike_is_one_string() -> None:
    codecs = Codecs()
    p = Prospect("a@x.com", 1.75e9)
    p.assigned_to, p.campaign = "rep" + "03@site.example", "Web" + "inar"
    p.categories = {"Prod" + "uct": 5}
    p.clicked = ("Email 1|https://site.example/" + "pricing",)
    p.set_field("country", "Ger" + "many")
    p.set_field("note", "x" * 65)  # a long text is its own
    data = p.to_json(codecs)
    a, b = (Prospect.from_json(data, codecs, "a@x.com") for _ in range(2))
    assert a.assigned_to is b.assigned_to and a.campaign is b.campaign
    assert a.categories is not None and b.categories is not None
    assert next(iter(a.categories)) is next(iter(b.categories))
    assert a.clicked is not None and b.clicked is not None
    assert next(iter(a.clicked)) is next(iter(b.clicked))
    assert a.field("country") is b.field("country") is p.field("country")
    assert a.field("note") == b.field("note") and a.field("note") is not b.field("note")


def test_a_link_is_clicked_once_however_many_there_are() -> None:
    p = Prospect("a@x.com", 1.75e9)
    links = [f"Email {i}|https://site.example/{i}" for i in range(80)]
    for i, link in enumerate(links):
        assert p.click(link)
        assert not p.click(link)
        assert p.clicked is not None and set(p.clicked) == set(links[: i + 1])
    assert isinstance(p.clicked, frozenset)  # many links: a set, not a scan
    codecs = Codecs()
    again = Prospect.from_json(p.to_json(codecs), codecs, p.email)
    assert not any(again.click(link) for link in links) and again.click("new|link")


def test_the_stored_keys_name_every_attribute_in_order() -> None:
    """`_SHORT` stands for `Prospect.__slots__` (a compiled class has none to read)."""
    import pytest

    from mrules import state

    slots = getattr(Prospect, "__slots__", None)
    if slots is None:
        pytest.skip("compiled: Prospect has no __slots__ to compare with")
    assert tuple(state._SHORT) == slots


def test_a_rule_whose_name_starts_with_an_equals_sign_stays_matched_across_runs(
    tmp_path: Path,
) -> None:
    """A rule that matched is kept in the prospect's stored state by name: "rule:X" as
    "X", any other name as "=" + it. A rule named "=Paris bonus" was kept as
    "=Paris bonus", read back as the name "Paris bonus": the next run matched it again."""
    rules = tmp_path / "r.mr"
    rules.write_text(
        'field city: text\nautomation rule "=Paris bonus" priority 1 {\n'
        '  when all { city is "Paris" }\n  then { score +5 }\n}\n',
        encoding="utf-8",
    )
    events = tmp_path / "e.jsonl"

    def update(day: int, city: str) -> bytes:
        fields = {"city": city}
        event = {"ts": f"2026-11-0{day}T09:00:00Z", "type": "prospect_update"}
        return orjson.dumps({**event, "prospect": "ann@x.example", "fields": fields}) + b"\n"

    store = tmp_path / "s.db"
    events.write_bytes(update(2, "Paris"))
    assert mrules("run", rules, events, "--store", store, "-q").exit_code == 0
    events.write_bytes(events.read_bytes() + update(3, "Lyon") + update(4, "Paris"))
    assert mrules("run", rules, events, "--store", store, "-q").exit_code == 0  # resumed
    out = mrules("state", "export", "--store", store)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["score"] == 5


@given(st.lists(st.text(min_size=1, max_size=8), max_size=4))
def test_every_matched_rule_reads_back_by_its_own_name(names: list[str]) -> None:
    codecs = Codecs()
    p = Prospect("a@x.com", 1.75e9)
    p.latched = codecs.rules.encode(f"rule:{n}" for n in names)
    again = Prospect.from_json(p.to_json(codecs), codecs, p.email)
    assert again.names("latched", codecs) == sorted({f"rule:{n}" for n in names})


def test_a_new_prospect_is_stored_as_its_creation_time_and_score_alone() -> None:
    """Only what is set is stored (docs/store.md): no false flag, no empty set of names."""
    assert Prospect("a@x.com", 1.75e9).to_json(Codecs()) == b'{"c":1750000000.0,"s":0}'


def test_the_stored_links_do_not_depend_on_the_order_they_were_clicked() -> None:
    links = [f"Email|https://site.example/{i}" for i in range(10)]
    stored = []
    for order in (links, links[::-1]):
        p = Prospect("a@x.com", 1.75e9)
        for link in order:
            p.click(link)
        stored.append(p.to_json(Codecs()))
    assert stored[0] == stored[1]
