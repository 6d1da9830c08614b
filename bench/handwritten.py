"""The benchmark's baseline: the generator's rule set hand-coded in plain Python, no rule engine.

What a competent engineer would write for bench/generate.py's rules without
mrules: one prospect class, if/elif on the event type, page actions in a dict
of exact URLs plus a list of wildcard prefixes checked longest first,
completion actions as data per asset, the 19 active automation rules as
Python functions (each with the facts it reads, so that after a change only
the rules that read it are tried, in priority order, until quiet: the
semantics mrules documents), default scoring as a dict.

The page and completion actions come from generate.py's own catalog and
random draws (the same seeded `random.Random`, the same `_action` calls);
each drawn action phrase is decoded by a small table here, and the whole is
checked against `generate_rules` so that a change in the generator fails
loudly instead of comparing against a stale copy. The rule set is never
parsed by mrules.

Shared with mrules, as any hand-written consumer of the same contract would
share them: `read_events` (the event stream contract), `normalize_url` (URL
normalisation) and, for persistence, `mrules.store.Store`/`Batch` (the same
tables and one transaction per batch). Ticks re-check prospects whose
time-based rules may have changed (a wake-up heap, like the engine) or, with
`ticks="naive"`, every prospect at every tick.
"""

from __future__ import annotations

import heapq
import random
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate as gen

from mrules.batch import Batch
from mrules.events import Event, Reject, owner_since
from mrules.settings import EngineSettings
from mrules.urls import normalize_url

__all__ = ["Baseline", "Model", "P", "build_model", "record"]

_dumps = orjson.dumps
SETTINGS = EngineSettings()  # the generated rule set has no settings block
DAY = 86400.0
EPS = 1e-6
INF = float("inf")
THROTTLE = SETTINGS.throttle_minutes * 60.0
NOTIFY_WINDOW = SETTINGS.page_notify_minutes * 60.0
LOC = "bench/handwritten.py"  # where the ledger says a rule lives

ASSIGN, DATA, SIDE = 0, 1, 2

# library/pardot-default-scoring, by event type: (points, scoring row name).
SCORING = {
    "page_view": (1, "page view"),
    "form_submit": (50, "form submission"),
    "form_handler_submit": (50, "form handler submission"),
    "landing_page_submit": (50, "landing page success"),
    "email_open": (0, "email open"),
    "file_download": (3, "file access"),
    "custom_redirect_click": (3, "custom redirect click"),
}
CRM_SCORING = {
    "created": (50, "opportunity created"),
    "lost": (-100, "opportunity lost"),
    "won": (0, "opportunity won"),
}
# Activity events: (criterion verb, asset kind).
ACTIVITY = {
    "form_submit": ("submitted", "form"),
    "form_handler_submit": ("submitted", "form handler"),
    "landing_page_submit": ("submitted", "landing page"),
    "email_open": ("opened", "email"),
    "email_click": ("clicked", "email"),
    "file_download": ("downloaded", "file"),
    "custom_redirect_click": ("clicked", "custom redirect"),
}
TRIGGER = {  # asset kind -> (event type, verb in the completion action's name)
    "form": ("form_submit", "submit"),
    "form handler": ("form_handler_submit", "submit"),
    "landing page": ("landing_page_submit", "submit"),
    "email": ("email_click", "click"),
    "file": ("file_download", "download"),
    "custom redirect": ("custom_redirect_click", "click"),
}
GROUPS = {"Sales EMEA": gen.USERS[:5], "Sales NA": gen.USERS[5:]}
DOCS_CATEGORY = "Docs content"  # every file sits in Site/Docs


# ------------------------------------------------------------------------ state


class P:
    """One prospect (attribute names as mrules.state.Prospect, so one comparison fits both)."""

    __slots__ = (
        "acts",
        "assigned_at",
        "assigned_kind",
        "assigned_to",
        "campaign",
        "categories",
        "clicked",
        "created",
        "crm_id",
        "crm_status",
        "do_not_sync",
        "dynamic",
        "email",
        "fields",
        "last_activity",
        "lists",
        "matches",
        "notified",
        "opened",
        "opted_out",
        "reassigned_at",
        "score",
        "tags",
        "throttle",
    )

    def __init__(self, email: str, created: float) -> None:
        self.email = email
        self.created = created
        self.score = 0
        self.categories: dict[str, int] = {}
        self.fields: dict[str, Any] = {}
        self.lists: set[str] = set()
        self.dynamic: set[str] = set()
        self.tags: set[str] = set()
        self.assigned_kind: str | None = None
        self.assigned_to: str | None = None
        self.assigned_at: float | None = None  # the first assignment
        self.reassigned_at: float | None = None  # the latest change of assignee after it
        self.crm_status = "none"
        self.crm_id: str | None = None
        self.do_not_sync = False
        self.opted_out = False
        self.campaign: str | None = None
        self.last_activity: float | None = None
        self.acts: dict[str, float] = {}
        self.matches: dict[str, list[float]] = {}
        self.throttle: dict[str, float] = {}
        self.clicked: set[str] = set()
        self.notified: dict[str, float] = {}
        self.opened: set[str] = set()

    def to_json(self) -> bytes:
        out: dict[str, Any] = {}
        for name in P.__slots__:
            v = getattr(self, name)
            if v is None or v is False or v == {} or v == set():
                continue
            out[name] = sorted(v) if isinstance(v, set) else v
        return _dumps(out)


class V:
    """A visitor cookie: its prospect, or its anonymous (time, url) views."""

    __slots__ = ("history", "prospect")

    def __init__(self, prospect: str | None) -> None:
        self.prospect = prospect
        self.history: list[tuple[float, str]] | None = None


CORE = (
    "score",
    "categories",
    "fields",
    "lists",
    "dynamic",
    "tags",
    "assigned_kind",
    "assigned_to",
    "assigned_at",
    "reassigned_at",
    "crm_status",
    "crm_id",
    "opted_out",
    "do_not_sync",
    "campaign",
    "created",
    "last_activity",
)
# Throttle and notification windows are not compared here: what they decide shows in
# the ledger and the outbox, which are compared row by row.
INTERNAL = ("acts", "matches", "clicked", "opened")


def record(
    p: Any,
    names: Iterable[str] = CORE + INTERNAL,
    codecs: Any = None,
    tracked: set[str] | None = None,
) -> dict[str, Any]:
    """A prospect (baseline `P`, or mrules `Prospect` with its `codecs`) as plain values.

    mrules keeps lists, tags and one-shot rule matches as bits, and the time of
    only the activity keys some criterion reads (`tracked`); both sides are
    brought to names, {rule: match count} and the tracked activity keys.
    """
    out = {}
    for name in names:
        v = getattr(p, name, None)
        if codecs is not None and name in ("lists", "dynamic", "tags", "opened"):
            v = p.names(name, codecs)
        elif name == "matches":
            v = {k: int(m[0]) for k, m in (v or {}).items()}
            if codecs is not None:
                v.update(dict.fromkeys(p.names("latched", codecs), 1))
        elif codecs is not None and name in ("fields", "acts"):
            v = dict(zip(v[::2], v[1::2], strict=True)) if v else None
        if name == "acts" and tracked is not None:
            v = {k: t for k, t in (v or {}).items() if k in tracked}
        if v is None or v == {} or v == set() or v == []:
            v = None
        elif isinstance(v, (set, frozenset)) or name == "clicked":  # mrules: a tuple when few
            v = sorted(v)
        out[name] = v
    return out


# ------------------------------------------------------------------ criteria


def _fold(v: Any) -> Any:
    return v.casefold() if isinstance(v, str) else v


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(str(v).strip())
    except ValueError:
        return None


def _is(p: P, name: str, wanted: frozenset[str]) -> bool:
    v = p.fields.get(name)
    if isinstance(v, list):
        return any(_fold(x) in wanted for x in v)
    return v is not None and _fold(v) in wanted


def _employees_1000(p: P, now: float) -> bool:
    v = _number(p.fields.get("employees"))
    return v is not None and v >= 1000.0


_FR_BE = frozenset(("france", "belgium"))
_200 = frozenset(("200+",))
# The completion actions' `if` conditions, by their text in generate.py.
CONDITIONS: dict[str, Callable[[P, float], bool]] = {
    'company_size is "200+"': lambda p, now: _is(p, "company_size", _200),
    'country is ["France", "Belgium"]': lambda p, now: _is(p, "country", _FR_BE),
    "score >= 50": lambda p, now: p.score >= 50,
    'in list "Newsletter"': lambda p, now: "Newsletter" in p.lists,
    'tagged "trial"': lambda p, now: "trial" in p.tags,
    "employees >= 1000": _employees_1000,
}


# --------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    reads: frozenset[str]
    when: Callable[[P, float], bool]
    actions: tuple[tuple[Any, ...], ...]
    repeat: float | None = None
    max_times: int | None = None
    timers: tuple[Callable[[P], float | None], ...] = ()
    key: str = field(init=False, compare=False)  # "rule:" + name, made once

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", "rule:" + self.name)


@dataclass(frozen=True, slots=True)
class Block:
    """One page action or completion action: actions split by phase, plus conditionals."""

    kind: str  # page action | completion action
    name: str
    assign: tuple[tuple[Any, ...], ...]
    data: tuple[tuple[Any, ...], ...]
    side: tuple[tuple[Any, ...], ...]
    conditionals: tuple[tuple[Callable[[P, float], bool], tuple[tuple[Any, ...], ...]], ...]


@dataclass
class Model:
    exact: dict[str, Block] = field(default_factory=dict)  # normalised URL -> page action
    wildcards: list[tuple[str, Block]] = field(default_factory=list)  # longest prefix first
    blocks: dict[tuple[str, str], Block] = field(default_factory=dict)  # (event type, asset)
    rules: list[Rule] = field(default_factory=list)


def _unq(text: str) -> str:
    assert text[0] == '"' and text[-1] == '"' and "\\" not in text, text
    return text[1:-1]


def _decode(text: str) -> tuple[Any, ...]:
    """One action phrase generate.py writes, as an action tuple (op, args...)."""
    if text.startswith("add to list "):
        return ("list", _unq(text[12:]))
    if text.startswith("add tag "):
        return ("tag", _unq(text[8:]))
    if text.startswith("score +"):
        return ("score", int(text[7:]))
    if text.startswith("set "):
        name, _, value = text[4:].partition(" = ")
        return (
            "set",
            name,
            {"false": False, "true": True}.get(value)
            if value in ("false", "true")
            else _unq(value),
        )
    if text.startswith("increment "):
        name, _, by = text[10:].partition(" by ")
        return ("inc", name, int(by))
    if text.startswith("assign to user "):
        return ("assign", "user", _unq(text[15:]))
    if text.startswith("assign to queue "):
        return ("assign", "queue", _unq(text[16:]))
    if text.startswith("assign to group "):
        return ("group", _unq(text[16:]))
    if text.startswith("send autoresponder "):
        return ("auto", _unq(text[19:]))
    if text == "notify assigned user":
        return ("notify", None)
    if text.startswith("notify user "):
        return ("notify", _unq(text[12:]))
    if text == 'add to crm campaign "Webinar 2026" status "Registered"':
        return ("crm", "campaign_member", {"campaign": "Webinar 2026", "status": "Registered"})
    raise ValueError(f"handwritten.py does not know the action {text!r}: update _decode")


_PHASE = {"assign": ASSIGN, "group": ASSIGN, "notify": SIDE, "auto": SIDE, "task": SIDE}


def _block(
    kind: str, name: str, texts: list[str], conditionals: list[tuple[str, list[str]]]
) -> Block:
    def split(acts: list[tuple[Any, ...]], phase: int) -> tuple[tuple[Any, ...], ...]:
        return tuple(a for a in acts if _PHASE.get(a[0], DATA) == phase)

    std = [_decode(t) for t in texts]
    return Block(
        kind,
        name,
        split(std, ASSIGN),
        split(std, DATA),
        split(std, SIDE),
        tuple((CONDITIONS[c], tuple(_decode(t) for t in acts)) for c, acts in conditionals),
    )


def build_model(seed: int) -> Model:
    """The rule set of `generate_rules(seed)` as Python data, checked against its text."""
    unknown = [c for c in gen._CONDITIONS if c not in CONDITIONS]
    if unknown:
        raise ValueError(
            f"handwritten.py does not know the conditions {unknown}: update CONDITIONS"
        )
    cat = gen.build_catalog()
    rng = random.Random(f"rules-{seed}")
    model = Model()
    text = gen._declarations(cat)
    # Page actions (generate._page_actions, the same draws).
    text.append("# Page actions: two thirds exact pages, one third wildcards.")
    pages = [(f"Product {k}", url) for k, url in enumerate(cat.exact_pages)]
    pages += [(f"Docs {k}", url + "/*") for k, url in enumerate(cat.wildcard_pages)]
    wild: list[tuple[str, Block]] = []
    for n, (name, url) in enumerate(pages):
        body = [f"score +{rng.choice((1, 2, 3, 5, 10))}"]
        if n % 5 == 0:
            body.append("priority")
        if n % 3 == 0:
            body.append(gen._action(rng, cat, ("tag", "list", "notify")))
        if n % 7 == 0:
            body.append(gen._action(rng, cat, ("tag", "list")))
        text.append(f"page action {gen._q(name)} on {gen._q(url)} {{")
        text.extend(f"  {line}" for line in body)
        text += ["}", ""]
        block = _block("page action", name, [b for b in body if b != "priority"], [])
        if url.endswith("/*"):
            wild.append((url[:-1], block))  # "site.example/docs/7/"
        else:
            model.exact[url] = block
    model.wildcards = sorted(wild, key=lambda w: -len(w[0]))
    # Completion actions (generate._completion_actions).
    text.append("# Completion actions: one block per asset.")
    triggers = {
        "form": "submit of form",
        "form handler": "submit of form handler",
        "landing page": "submit of landing page",
        "file": "download of file",
        "custom redirect": "click of custom redirect",
        "email": "click of email",
    }
    kinds = ("list", "tag", "score", "set", "assign", "autoresponder", "notify", "crm")
    for kind, names in cat.assets.items():
        for n, name in enumerate(names):
            body = [gen._action(rng, cat, kinds) for _ in range(rng.randint(1, 4))]
            std = list(dict.fromkeys(body))
            lines = [f"  {a}" for a in std]
            conds: list[tuple[str, list[str]]] = []
            if n % 4 == 0:
                second = (
                    ("score",) if any(a.startswith("assign") for a in body) else ("score", "assign")
                )
                cond = rng.choice(gen._CONDITIONS)
                acts = [
                    gen._action(rng, cat, ("list", "tag", "notify")),
                    gen._action(rng, cat, second),
                ]
                conds.append((cond, acts))
                lines += [f"  if {cond} {{", *(f"    {a}" for a in acts), "  }"]
            text.append(f"on {triggers[kind]} {gen._q(name)} {{")
            text += [*lines, "}", ""]
            etype, verb = TRIGGER[kind]
            model.blocks[(etype, name)] = _block(
                "completion action", f"{verb} of {kind} {name}", std, conds
            )
    rules_text = gen._automation_rules(cat)
    expected = gen.generate_rules(seed, cat)
    if "\n".join(text + rules_text).rstrip() + "\n" != expected:
        raise RuntimeError(
            "handwritten.py no longer mirrors generate.py's page and completion "
            "actions: update build_model"
        )
    model.rules = automation_rules(cat)
    names = [line.split('"')[1] for line in rules_text if line.startswith("automation rule ")]
    if [r.name for r in model.rules] != [n for n in names if n != "Old webinar campaign"]:
        raise RuntimeError("handwritten.py's automation rules differ from generate.py's")
    return model


# ------------------------------------------------------------ automation rules


def automation_rules(cat: gen.Catalog) -> list[Rule]:
    """generate._automation_rules, hand-written, in priority order ("Old webinar" is paused)."""
    k_any_form = "submitted|form|"
    k_pricing = "visited|" + cat.exact_pages[3]
    docs_prefix = cat.wildcard_pages[1]  # `visited "site.example/docs/1*"`
    k_docs = "visited|" + docs_prefix + "*"
    k_paper = "downloaded|file|" + cat.assets["file"][3]
    k_opened = "opened|email|" + cat.assets["email"][2]
    k_clicked = "clicked|email|" + cat.assets["email"][3]
    k_redirect = "clicked|custom redirect|" + cat.assets["custom redirect"][1]

    def within(
        key: str, days: float
    ) -> tuple[Callable[[P, float], bool], Callable[[P], float | None]]:
        window = days * DAY

        def test(p: P, now: float) -> bool:
            t = p.acts.get(key)
            return t is not None and now - t <= window

        def ends(p: P) -> float | None:
            t = p.acts.get(key)
            return None if t is None else t + window + EPS

        return test, ends

    form30, form30_t = within(k_any_form, 30)
    pricing14, pricing14_t = within(k_pricing, 14)
    docs30, docs30_t = within(k_docs, 30)
    paper60, paper60_t = within(k_paper, 60)
    opened30, opened30_t = within(k_opened, 30)

    def idle_30(p: P) -> float | None:
        return None if p.last_activity is None else p.last_activity + 30 * DAY + EPS

    def created_45(p: P) -> float | None:
        return p.created + 45 * DAY + EPS

    def security(p: P, now: float) -> bool:
        v = p.fields.get("interests")
        items = v if isinstance(v, list) else ([] if v is None else [v])
        return any("security" in str(x).casefold() for x in items)

    when_time = frozenset(("time", "act", "assigned"))  # what `days since` reads
    task = {
        "subject": "Follow up trial",
        "due_days": 3,
        "priority": "High",
        "status": None,
        "owner": None,
    }
    return [
        Rule(
            "MQL handoff",
            frozenset(("score", "list")),
            lambda p, now: p.score >= 100 and "MQL" not in p.lists,
            (("list", "MQL"), ("assign", "queue", "Inside Sales"), ("notify", None)),
        ),
        Rule(
            "Enterprise fast lane",
            frozenset(("f:company_size", "act", "time")),
            lambda p, now: _is(p, "company_size", _200) and form30(p, now),
            (("list", "Enterprise"), ("group", "Sales EMEA")),
            timers=(form30_t,),
        ),
        Rule(
            "Pricing interest",
            frozenset(("act", "time", "score")),
            lambda p, now: pricing14(p, now) and p.score >= 20,
            (("tag", "pricing-visitor"),),
            timers=(pricing14_t,),
        ),
        Rule(
            "Docs readers",
            frozenset(("act", "time")),
            docs30,
            (("list", "Docs readers"), ("tag", "docs-reader")),
            timers=(docs30_t,),
        ),
        Rule(
            "Whitepaper downloaders",
            frozenset(("act", "time")),
            paper60,
            (("tag", "whitepaper"), ("score", 5)),
            timers=(paper60_t,),
        ),
        Rule(
            "Email engaged",
            frozenset(("act", "time")),
            lambda p, now: opened30(p, now) or k_clicked in p.acts,
            (("tag", "email-engaged"),),
            timers=(opened30_t,),
        ),
        Rule(
            "Redirect clickers",
            frozenset(("act",)),
            lambda p, now: k_redirect in p.acts,
            (("list", "Nurture cloud"),),
        ),
        Rule(
            "Security interest",
            frozenset(("f:interests",)),
            security,
            (("list", "Nurture security"), ("tag", "interest-security")),
        ),
        Rule(
            "French-speaking routing",
            frozenset(("f:country", "assigned")),
            lambda p, now: _is(p, "country", _FR_BE) and p.assigned_kind is None,
            (("assign", "user", gen.USERS[0]),),
        ),
        Rule(
            "Large companies",
            frozenset(("f:employees",)),
            _employees_1000,
            (("list", "Enterprise"),),
        ),
        Rule(
            "Trial follow-up",
            frozenset(("tag", "list")),
            lambda p, now: "trial" in p.tags and "Customers" not in p.lists,
            (("task", "task", task),),
        ),
        Rule(
            "Score decay",
            when_time | {"score"},
            lambda p, now: (
                p.last_activity is not None and (now - p.last_activity) / DAY > 30 and p.score > 20
            ),
            (("score", -10),),
            repeat=30 * DAY,
            max_times=3,
            timers=(idle_30,),
        ),
        Rule(
            "Nurture reminder",
            frozenset(("list", "opted_out", "time")),  # repeats read time
            lambda p, now: "Nurture cloud" in p.lists and not p.opted_out,
            (("notify", gen.USERS[1]),),
            repeat=7 * DAY,
            max_times=4,
        ),
        Rule(
            "Customers",
            frozenset(("crm", "f:is_customer")),
            lambda p, now: p.crm_status == "contact" and p.fields.get("is_customer") in (True,),
            (("list", "Customers"),),
        ),
        Rule(
            "Warm band",
            frozenset(("score",)),
            lambda p, now: 50 <= p.score <= 99,
            (("list", "Warm"),),
        ),
        Rule(
            "Web lead source",
            frozenset(("f:lead_source",)),
            lambda p, now: _is(p, "lead_source", frozenset(("web",))),
            (("campaign", "Website"),),
        ),
        Rule(
            "Cold prospects",
            when_time | {"score"},
            lambda p, now: (now - p.created) / DAY > 45 and p.score < 5,
            (("tag", "cold"),),
            timers=(created_45,),
        ),
        Rule(
            "Docs category",
            frozenset(("score",)),
            lambda p, now: p.categories.get(DOCS_CATEGORY, 0) >= 10,
            (("list", "Docs readers"),),
        ),
        Rule(
            "Opted out cleanup",
            frozenset(("opted_out",)),
            lambda p, now: p.opted_out,
            (("unlist", "Newsletter"),),
        ),
    ]


# -------------------------------------------------------------------- the loop


class Baseline:
    """Runs the model over events; persists like mrules when given a store (anything with
    `commit(Batch)`)."""

    def __init__(
        self, model: Model, store: Any, *, source: str, batch_size: int = 2000, ticks: str = "wake"
    ) -> None:
        self.m = model
        self.store = store
        self.source = source
        self.batch_size = batch_size
        self.naive_ticks = ticks == "naive"
        self.prospects: dict[str, P] = {}
        self.visitors: dict[str, V] = {}
        self.applied: set[str] = set()
        self.clock: float | None = None
        self.now = 0.0
        self.ts = 0.0
        self.seq = 0
        self.line = 0
        self.event_id: str | None = None
        self.round_robin: dict[str, int] = {}
        self.changed: set[str] = set()
        self.decided: dict[str, bool] = {}  # throttle decisions of the current trigger
        self.dirty: set[str] = set()
        self.dirty_visitors: set[str] = set()
        self.batch = Batch(source=source, line=0, clock=None)
        self.rules = model.rules
        self.time_rules = [r for r in model.rules if "time" in r.reads or r.repeat is not None]
        self._by_facts: dict[frozenset[str], list[Rule]] = {}
        self.fresh: str | None = None  # created by the current event: its first settle tries all
        self._wakes: list[tuple[float, str]] = []
        self._settled_at: dict[str, float] = {}
        self.lines = self.applied_count = self.rejected = self.ignored = 0

    # ---------------------------------------------------------------- driver

    def run(self, items: Iterable[Event | Reject]) -> None:
        pending = 0
        last = 0
        for item in items:
            last = item.line
            self.lines += 1
            if type(item) is Reject:
                self.rejected += 1
                self.batch.rejects.append((self.source, item.line, item.reason, item.text))
            else:
                self.apply(item)
            pending += 1
            if pending >= self.batch_size:
                self.commit(last)
                pending = 0
        self.commit(last)

    def apply(self, e: Event) -> None:
        eid = e.id
        if eid is not None and eid in self.applied:
            return
        if self.clock is None or e.ts_epoch > self.clock:
            self.clock = e.ts_epoch
        self.now = self.clock
        self.ts = e.ts_epoch  # a prospect the event creates was created then
        self.line, self.event_id = e.line, eid
        self.fresh = None
        t = e.type
        if t == "page_view":
            self.page_view(e)
        elif t in ACTIVITY:
            self.asset_event(e)
        elif t == "tick":
            self.tick()
        elif t == "prospect_update":
            p = self.prospect(e.prospect, t)  # type: ignore[arg-type]
            self.changed = {"time"}
            for name, value in e.fields.items():
                self.set_field(p, "event", t, self.source, name, value)
            self.settle(p, self.changed)
        elif t == "crm_update":
            self.crm_update(e)
        elif t == "identify":
            p = self.prospect(e.prospect, t)  # type: ignore[arg-type]
            self.changed = {"time"}
            self.tie(e.visitor, p)  # type: ignore[arg-type]
            self.settle(p, self.changed)
        elif t == "unsubscribe":
            p = self.prospect(e.prospect, t)  # type: ignore[arg-type]
            self.changed = {"time"}
            self.activity(p.email, e)
            if not p.opted_out:
                p.opted_out = True
                self.changed.update(("opted_out", "f:opted_out"))
                self.log(p, "event", t, self.source, "opt out", {"email": e.asset}, False, True)
            self.settle(p, self.changed)
        if eid is not None:
            self.applied.add(eid)
            self.batch.applied_ids.append(eid)
        self.applied_count += 1

    def commit(self, line: int) -> None:
        b = self.batch
        b.line, b.clock = line, self.clock
        ps, vs = self.prospects, self.visitors
        b.prospects = {email: ps[email].to_json() for email in self.dirty}
        b.visitors = {
            vid: (vs[vid].prospect, _dumps(vs[vid].history or [])) for vid in self.dirty_visitors
        }
        if self.round_robin:
            b.shared = {"round_robin:" + g: str(n) for g, n in self.round_robin.items()}
        self.store.commit(b)
        self.batch = Batch(source=self.source, line=line, clock=self.clock)
        self.dirty = set()
        self.dirty_visitors = set()

    # --------------------------------------------------------------- people

    def prospect(self, email: str, etype: str) -> P:
        p = self.prospects.get(email)
        if p is None:
            p = self.prospects[email] = P(email, min(self.ts, self.now))
            self.log(p, "event", etype, self.source, "create prospect", {}, None, email)
            self.fresh = email
        self.dirty.add(email)
        self._settled_at[email] = self.now
        return p

    def tie(self, vid: str, p: P) -> None:
        v = self.visitors.get(vid)
        if v is None:
            self.visitors[vid] = V(p.email)
            self.dirty_visitors.add(vid)
            return
        if v.prospect == p.email and not v.history:
            return
        v.prospect = p.email
        self.dirty_visitors.add(vid)
        if v.history:
            for ts, url in v.history:
                self.visited(p, normalize_url(url, SETTINGS), ts)
                self.score(
                    p,
                    "scoring",
                    "page view",
                    LOC,
                    1,
                    {"activity": "page view", "attached_from": vid},
                )
            v.history = None
            self.batch.attach_visitor.append((vid, p.email))
            self.changed.update(("act", "score", "time"))

    def activity(self, email: str | None, e: Event) -> None:
        act = ACTIVITY.get(e.type)
        self.batch.activities.append(
            (
                email,
                e.visitor,
                e.ts_epoch,
                e.type,
                act[1] if act else None,
                e.asset,
                e.url,
                self.source,
                e.line,
                e.id,
            )
        )

    # ------------------------------------------------------------- handlers

    def page_view(self, e: Event) -> None:
        url = e.url or ""
        if e.prospect is not None:
            p = self.prospect(e.prospect, "page_view")
            if e.visitor is not None:
                self.tie(e.visitor, p)
        else:
            vid = e.visitor
            v = self.visitors.get(vid)  # type: ignore[arg-type]
            if v is not None and v.prospect is not None:
                p = self.prospect(v.prospect, "page_view")
            else:
                if v is None:
                    v = self.visitors[vid] = V(None)  # type: ignore[index]
                if v.history is None:
                    v.history = []
                v.history.append((e.ts_epoch, url))
                self.dirty_visitors.add(vid)  # type: ignore[arg-type]
                self.activity(None, e)
                return
        self.changed = changed = {"act", "time"}
        self.activity(p.email, e)
        u = normalize_url(url, SETTINGS)
        self.visited(p, u, e.ts_epoch)
        self.score(p, "scoring", "page view", LOC, 1, {"activity": "page view"})
        block = self.m.exact.get(u)
        if block is None:
            slashed = u + "/"
            for prefix, b in self.m.wildcards:
                if u.startswith(prefix) or slashed == prefix:
                    block = b
                    break
        if block is not None:
            self.run_block(p, block, "page:" + block.name)
        else:
            self.settle(p, changed)

    def visited(self, p: P, u: str, ts: float) -> None:
        if p.last_activity is None or ts > p.last_activity:
            p.last_activity = ts
        # The two `visited` criteria of the rules.
        if u == "site.example/products/3":
            _touch(p, "visited|site.example/products/3", ts)
        if u.startswith("site.example/docs/1"):
            _touch(p, "visited|site.example/docs/1*", ts)

    def asset_event(self, e: Event) -> None:
        etype, asset = e.type, e.asset or ""
        p = self.prospect(e.prospect, etype)  # type: ignore[arg-type]
        self.changed = changed = {"act", "time"}
        if e.visitor is not None:
            self.tie(e.visitor, p)
        for name, value in e.fields.items():
            self.set_field(p, "event", etype, self.source, name, value)
        verb, kind = ACTIVITY[etype]
        ts = e.ts_epoch
        _touch(p, f"{verb}|{kind}|{asset}", ts)
        _touch(p, f"{verb}|{kind}|", ts)
        if p.last_activity is None or ts > p.last_activity:
            p.last_activity = ts
        self.activity(p.email, e)
        points = SCORING.get(etype)
        if points is not None:
            first = True
            if etype == "email_open":  # only the first open of an email scores
                first = asset not in p.opened
                p.opened.add(asset)
            if first:
                self.score(
                    p, "scoring", points[1], LOC, points[0], {"activity": points[1], "asset": asset}
                )
                if kind == "file":
                    self.category(p, points[1], DOCS_CATEGORY, points[0])
        block = self.m.blocks.get((etype, asset))
        if block is not None and etype == "email_click":
            link = f"{asset}|{e.url or ''}"
            if link in p.clicked:
                block = None  # a link fires each block once per prospect (one block here)
            else:
                p.clicked.add(link)
        if block is not None:
            self.run_block(p, block, f"{etype}:{asset}")
        else:
            self.settle(p, changed)

    def crm_update(self, e: Event) -> None:
        if e.prospect not in self.prospects:
            self.ignored += 1  # no auto-create: the connector does not create prospects
            return
        p = self.prospect(e.prospect, "crm_update")  # type: ignore[arg-type]
        self.changed = changed = {"time"}
        obj, src = e.object, self.source
        if obj == "lead" and p.crm_status == "contact":
            # A contact outranks a lead for the status, the id, the owner and the fields:
            # a lead's update after the contact's changes nothing (docs/sync.md).
            self.settle(p, changed)
            return
        if obj in ("lead", "contact"):
            if p.crm_status != obj and (obj == "contact" or p.crm_status in ("none", "deleted")):
                self.log(p, "event", "crm_update", src, "crm status", {}, p.crm_status, obj)
                p.crm_status = obj
                changed.add("crm")
            if e.crm_id and p.crm_id != e.crm_id:
                p.crm_id = e.crm_id
            if e.user and (p.assigned_kind != "user" or p.assigned_to != e.user):
                self.log(
                    p,
                    "event",
                    "crm_update",
                    src,
                    "assign",
                    {"to": "user", "by": "crm"},
                    p.assigned_to,
                    e.user,
                )
                if p.assigned_kind is None:
                    p.assigned_at = self.now
                elif p.assigned_kind != "crm rule":  # a reassignment, at the CRM's time
                    since = owner_since(e)
                    at = e.ts_epoch if since is None else min(since, e.ts_epoch)
                    p.reassigned_at = max(at, p.assigned_at or at)
                p.assigned_kind, p.assigned_to = "user", e.user
                changed.add("assigned")
        elif obj == "opportunity":
            outcome = e.status if e.status in ("won", "lost") else "created"
            points, name = CRM_SCORING[outcome]
            self.score(p, "scoring", name, LOC, points, {"activity": f"opportunity {outcome}"})
        self.settle(p, changed)

    # ------------------------------------------------------------------ ticks

    def tick(self) -> None:
        now, prospects = self.now, self.prospects
        if self.naive_ticks:
            due: Iterable[str] = prospects
        else:
            wakes = self._wakes
            found: set[str] = set()
            for email, settled in self._settled_at.items():
                when = self.wake(prospects[email], settled)
                if when <= now:
                    found.add(email)
                elif when != INF:
                    heapq.heappush(wakes, (when, email))
            while wakes and wakes[0][0] <= now:
                found.add(heapq.heappop(wakes)[1])
            due = found
        self._settled_at = {}
        for email in sorted(due):
            p = prospects[email]
            self.changed = set()
            before = self.seq
            for rule in self.time_rules:
                self.try_rule(p, rule)
            if self.changed:
                self.settle(p, self.changed)
            if self.seq != before:
                self.dirty.add(email)
            if not self.naive_ticks:
                when = self.wake(p, now)
                if when != INF:
                    heapq.heappush(self._wakes, (when, email))

    def wake(self, p: P, since: float) -> float:
        """When a time-based rule's outcome could next change for p, with no event."""
        best = INF
        for rule in self.time_rules:
            m = p.matches.get(rule.key)
            if m is not None:
                if rule.repeat is None:
                    continue
                if rule.max_times is not None and m[0] >= rule.max_times:
                    continue
                t = m[1] + rule.repeat
                if since < t < best:
                    best = t
            for timer in rule.timers:
                t = timer(p)  # type: ignore[assignment]
                if t is not None and since < t < best:
                    best = t
        return best

    # ---------------------------------------------------------------- rules

    def settle(self, p: P, changed: set[str]) -> None:
        """Try the rules that read a changed fact, in priority order, until nothing changes
        (all of them in a new prospect's first settle)."""
        if self.fresh == p.email:
            changed = changed | {"*"}
            self.fresh = None
        for _ in range(len(self.rules) + 2):
            if not changed:
                return
            key = frozenset(changed)
            rules = self._by_facts.get(key)
            if rules is None:
                rules = self._by_facts[key] = [r for r in self.rules if "*" in key or r.reads & key]
            self.changed = changed = set()
            for rule in rules:
                self.try_rule(p, rule)

    def try_rule(self, p: P, rule: Rule) -> None:
        now = self.now
        m = p.matches.get(rule.key)
        if m is not None:
            if rule.repeat is None:
                return
            if rule.max_times is not None and m[0] >= rule.max_times:
                return
            if now - m[1] < rule.repeat:
                return
        if not rule.when(p, now):
            return
        count = (m[0] if m else 0) + 1
        p.matches[rule.key] = [count, now]
        self.log(p, "automation rule", rule.name, LOC, "rule matched", {"count": count}, None, None)
        for a in rule.actions:
            self.do(p, a, "automation rule", rule.name, None)

    def run_block(self, p: P, b: Block, asset_key: str) -> None:
        """Assignment, data changes, automation rules, then side effects."""
        now = self.now
        self.decided = {}  # one throttle decision per trigger: its actions are no repeats
        extra = [acts for pred, acts in b.conditionals if pred(p, now)]
        kind, name = b.kind, b.name
        for phase, std in ((ASSIGN, b.assign), (DATA, b.data)):
            for a in std:
                self.do(p, a, kind, name, asset_key)
            for acts in extra:
                for a in acts:
                    if _PHASE.get(a[0], DATA) == phase:
                        self.do(p, a, kind, name, asset_key)
        self.settle(p, self.changed)
        side = list(b.side)
        for acts in extra:
            side += [a for a in acts if _PHASE.get(a[0], DATA) == SIDE]
        if side:
            self.changed = set()
            for a in side:
                self.do(p, a, kind, name, asset_key)
            if self.changed:
                self.settle(p, self.changed)

    def do(self, p: P, a: tuple[Any, ...], kind: str, name: str, asset_key: str | None) -> None:
        op = a[0]
        if op == "score":
            throttled = asset_key is not None and not asset_key.startswith("page:")
            if throttled and self.throttled(p, "score|" + asset_key):  # type: ignore[operator]
                return
            self.score(p, kind, name, LOC, a[1], {})
        elif op == "list":
            if a[1] not in p.lists:
                p.lists.add(a[1])
                self.changed.add("list")
                self.log(p, kind, name, LOC, "add to list", {"list": a[1]}, False, True)
        elif op == "unlist":
            if a[1] in p.lists:
                p.lists.discard(a[1])
                self.changed.add("list")
                self.log(p, kind, name, LOC, "remove from list", {"list": a[1]}, True, False)
        elif op == "tag":
            if a[1] not in p.tags:
                p.tags.add(a[1])
                self.changed.add("tag")
                self.log(p, kind, name, LOC, "add tag", {"tag": a[1]}, False, True)
        elif op == "set":
            self.set_field(p, kind, name, LOC, a[1], a[2])
        elif op == "inc":
            before = p.fields.get(a[1])
            try:
                base = float(before) if before not in (None, "") else 0.0
            except (TypeError, ValueError):
                base = 0.0
            after = base + a[2]
            self.set_field(p, kind, name, LOC, a[1], int(after) if after == int(after) else after)
        elif op == "assign":
            self.assign(p, kind, name, a[1], a[2])
        elif op == "group":
            if p.assigned_kind is None:
                members = GROUPS[a[1]]
                turn = self.round_robin.get(a[1], 0)
                self.round_robin[a[1]] = turn + 1
                self.assign(p, kind, name, "user", members[turn % len(members)])
        elif op == "notify":
            to = a[1]
            if to is None:
                to = p.assigned_to if p.assigned_kind == "user" else None
                if to is None:
                    return
            if asset_key is not None and asset_key.startswith("page:"):
                held = self.decided.get("notify|" + asset_key)  # one decision per view
                if held is None:
                    last = p.notified.get(asset_key)
                    held = last is not None and self.now - last < NOTIFY_WINDOW
                    if not held:
                        p.notified[asset_key] = self.now
                    self.decided["notify|" + asset_key] = held
                if held:
                    return
            self.outbox(p, kind, name, "notify", {"to": to, "prospect": p.email})
        elif op == "auto":
            if p.opted_out or p.fields.get("do_not_email") is True:
                return
            if asset_key is not None and self.throttled(p, "autoresponder|" + asset_key):
                return
            self.outbox(p, kind, name, "autoresponder", {"email": a[1], "to": p.email})
        elif op in ("crm", "task"):
            self.crm_work(p, kind, name, a[1], a[2])
        elif op == "campaign":
            if p.campaign != a[1]:
                before, p.campaign = p.campaign, a[1]
                self.changed.add("campaign")
                self.log(p, kind, name, LOC, "source campaign", {"campaign": a[1]}, before, a[1])
        else:
            raise AssertionError(op)

    # ------------------------------------------------------------ operations

    def throttled(self, p: P, key: str) -> bool:
        known = self.decided.get(key)
        if known is not None:
            return known
        last = p.throttle.get(key)
        if last is not None and self.now - last < THROTTLE:
            self.decided[key] = True
            return True
        p.throttle[key] = self.now
        self.decided[key] = False
        return False

    def score(
        self, p: P, kind: str, name: str, loc: str, points: int, args: dict[str, Any]
    ) -> None:
        if points == 0:
            return
        before = p.score
        p.score = before + points
        self.changed.add("score")
        self.log(p, kind, name, loc, "score", {"points": points, **args}, before, p.score)

    def category(self, p: P, name: str, category: str, points: int) -> None:
        before = p.categories.get(category, 0)
        p.categories[category] = before + points
        self.changed.add("score")
        self.log(
            p,
            "scoring",
            name,
            LOC,
            "category score",
            {"category": category, "points": points},
            before,
            before + points,
        )

    def set_field(self, p: P, kind: str, name: str, loc: str, field: str, value: Any) -> None:
        before = p.fields.get(field)
        if before == value:
            return
        p.fields[field] = value
        self.changed.add("f:" + field)
        self.log(p, kind, name, loc, "set field", {"field": field}, before, value)

    def assign(self, p: P, kind: str, name: str, to: str, who: str) -> None:
        if p.assigned_kind is not None:
            return  # assignment never reassigns
        p.assigned_kind, p.assigned_to, p.assigned_at = to, who, self.now
        self.changed.add("assigned")
        self.log(p, kind, name, LOC, "assign", {"to": to, "name": who}, None, who)
        if p.crm_status == "none" and not p.do_not_sync:
            self.crm_work(
                p, kind, name, "create_record", {"object": "lead", "owner": who, "as": to}
            )

    def crm_work(self, p: P, kind: str, name: str, work: str, payload: dict[str, Any]) -> None:
        self.log(p, kind, name, LOC, "crm " + work.replace("_", " "), payload, None, None)
        self.batch.crm_pending.append(
            (
                self.seq,
                self.now,
                p.email,
                work,
                _dumps({**payload, "rule": name, "at": LOC}).decode(),
            )
        )

    def outbox(self, p: P, kind: str, name: str, what: str, payload: dict[str, Any]) -> None:
        self.log(p, kind, name, LOC, what, payload, None, None)
        self.batch.outbox.append(
            (
                self.seq,
                self.now,
                p.email,
                what,
                _dumps({**payload, "rule": name, "at": LOC}).decode(),
            )
        )

    def log(
        self,
        p: P,
        kind: str,
        name: str,
        loc: str,
        action: str,
        args: dict[str, Any],
        before: Any,
        after: Any,
    ) -> None:
        self.seq += 1
        self.batch.ledger.append(
            (
                self.seq,
                self.now,
                p.email,
                kind,
                name,
                loc,
                self.source,
                self.line,
                self.event_id,
                action,
                _dumps(args).decode(),
                _dumps(before).decode(),
                _dumps(after).decode(),
            )
        )
        self.dirty.add(p.email)


def _touch(p: P, key: str, ts: float) -> None:
    if p.acts.get(key, -1e18) < ts:
        p.acts[key] = ts


# -------------------------------------------------------------------- command


def main(argv: list[str] | None = None) -> int:
    """`python bench/handwritten.py EVENTS --store PATH [--seed 7]`: the loop with a store,
    as one process (bench/compare.py times it whole); prints one JSON line of figures."""
    import argparse
    import resource
    import time

    from mrules.events import read_events
    from mrules.store import Store

    parser = argparse.ArgumentParser(description="The hand-written baseline, SQLite store.")
    parser.add_argument("events", type=Path)
    parser.add_argument("--store", type=Path, required=True, help="a new store (replaced)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(str(args.store) + suffix).unlink(missing_ok=True)
    model = build_model(args.seed)
    w0, c0 = time.perf_counter(), time.process_time()
    with Store.open(args.store) as store:
        b = Baseline(model, store, source=str(args.events.resolve()))
        b.run(read_events(args.events))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    print(
        _dumps(
            {
                "lines": b.lines,
                "prospects": len(b.prospects),
                "ledger_entries": b.seq,
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "events_per_s_cpu": round(b.lines / cpu),
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        ).decode()
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
