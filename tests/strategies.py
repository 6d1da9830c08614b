"""Hypothesis strategies for valid `mrules.ast` trees, and the test profiles.

Every tree these strategies build can be written as text that parses back to
the same tree (spans aside): names the grammar quotes may hold any character
(quotes, backslashes, control characters, any script); bare names follow
`[a-z_][a-z0-9_]*` and avoid the words that would read as keywords where they
stand (see `CRITERION_KEYWORDS`); numbers stay in the ranges the tokens allow.
Import the node strategies (`files`, `items`, `criteria`, `actions`...) from
any test; `SETTINGS` applies the profile chosen by MRULES_HYPOTHESIS_PROFILE
(`default`: a few seconds; `long`: thousands of examples).
"""

from __future__ import annotations

import os
import string
import unicodedata

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from mrules import ast

__all__ = [
    "CRITERION_KEYWORDS",
    "SETTINGS",
    "actions",
    "bare_names",
    "criteria",
    "field_names",
    "files",
    "groups",
    "items",
    "quoted_names",
    "statements",
    "values",
]

settings.register_profile(
    "mrules-default",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_PROFILE = os.environ.get("MRULES_HYPOTHESIS_PROFILE", "mrules-default")
SETTINGS = settings(settings.get_profile("mrules-default" if _PROFILE == "default" else _PROFILE))
"""Decorate property tests with this: the profile without changing the global one."""

# Words the parser reads as the start of another criterion (or that make
# `word is "x"` mean something else: `campaign is`, `profile is`, `score < 3`)
# when they begin a criterion; `set score = 1` fails too. Found by parsing each
# keyword of the grammar in each position that takes a bare field name.
CRITERION_KEYWORDS = frozenset(
    {
        "all",
        "any",
        "assigned",
        "campaign",
        "clicked",
        "crm",
        "days",
        "downloaded",
        "grade",
        "in",
        "not",
        "opened",
        "opted",
        "profile",
        "score",
        "submitted",
        "tagged",
        "viewed",
        "visited",
    }
)

# ------------------------------------------------------------------- leaves

_NAME_CHARS = st.one_of(
    st.sampled_from('"\\#{}[]();,\n\t\x01\x1b\x7f\x85 '),
    st.sampled_from(string.ascii_letters + string.digits + "-_./@*+"),
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
)


def _quoted_text(max_size: int) -> st.SearchStrategy[str]:
    """Text in Unicode NFC, as the parser reads every name and string literal: `e` and a
    combining accent, or the ohm sign, would parse back as another (equal) text."""
    return st.text(_NAME_CHARS, max_size=max_size).map(lambda t: unicodedata.normalize("NFC", t))


quoted_names = st.builds(ast.Name, text=_quoted_text(12))
"""Names written as strings: anything but NUL and lone surrogates (the language refuses both)."""

bare_names = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)
"""Words the grammar takes bare where no keyword competes (declarations, settings, sync)."""

field_names = bare_names.filter(lambda w: w not in CRITERION_KEYWORDS)
"""Field names that can begin a criterion or follow `set`."""

_bare = st.builds(ast.Name, text=bare_names)
_field = st.builds(ast.Name, text=field_names)
_nat = st.integers(min_value=0, max_value=10**6)
_signed = st.integers(min_value=-(10**6), max_value=10**6)
_ops = st.sampled_from(["<", "<=", ">", ">="])


def _date(d: object) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"  # type: ignore[attr-defined]


_dates = st.dates().map(_date)
_times = st.builds(
    lambda d, h, m, s, z: f"{_date(d)}T{h:02d}:{m:02d}{s}{z}",
    st.dates(),
    st.integers(0, 23),
    st.integers(0, 59),
    st.sampled_from(["", ":00", ":59"]),
    st.sampled_from(["", "Z", "+01:00", "-05:30"]),
)
timestamps = st.builds(ast.TimestampValue, value=st.one_of(_dates, _times))
string_lists = st.builds(ast.StringList, values=st.lists(quoted_names, max_size=3).map(tuple))
values = st.one_of(
    st.builds(ast.StringValue, value=_quoted_text(10)),
    st.builds(
        ast.NumberValue,
        value=st.one_of(
            st.integers(-(10**9), 10**9),
            st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
        ),
    ),
    timestamps,
    st.builds(ast.BoolValue, value=st.booleans()),
    string_lists,
)
_asset_kinds = st.sampled_from(ast.ASSET_KINDS)
_assignees = st.sampled_from(["user", "group", "queue"])

# ----------------------------------------------------------------- criteria


def _field_test(field: ast.Name, op: str, a: object, b: object) -> ast.FieldTest:
    if op in ("is empty", "is not empty"):
        return ast.FieldTest(field=field, op=op)
    if op == "between":
        return ast.FieldTest(field=field, op=op, value=a, value2=b)
    return ast.FieldTest(field=field, op=op, value=a)


_verbs = st.sampled_from(["submitted", "opened", "clicked", "downloaded", "visited", "viewed"])
_within = st.none() | _nat
_activities = st.one_of(
    st.builds(
        ast.Activity, verb=_verbs, asset_kind=_asset_kinds, name=quoted_names, within_days=_within
    ),
    st.builds(
        ast.Activity, verb=_verbs, asset_kind=_asset_kinds, name=st.none(), within_days=_within
    ),
    st.builds(
        ast.Activity, verb=_verbs, asset_kind=st.none(), name=quoted_names, within_days=_within
    ),
)

_simple_criteria = st.one_of(
    st.builds(ast.ScoreCompare, op=_ops, value=_nat),
    st.builds(ast.ScoreBetween, low=_nat, high=_nat),
    st.builds(ast.CategoryScoreCompare, category=quoted_names, op=_ops, value=_nat),
    st.builds(
        ast.GradeCompare,
        op=_ops,
        grade=st.sampled_from(
            ["A+", "A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "F"]
        ),
    ),
    st.builds(
        _field_test,
        _field,
        st.sampled_from(
            [
                "<",
                "<=",
                ">",
                ">=",
                "is",
                "is not",
                "is empty",
                "is not empty",
                "contains",
                "does not contain",
                "starts with",
                "ends with",
                "between",
            ]
        ),
        values,
        values,
    ),
    st.builds(ast.InList, list=quoted_names),
    st.builds(ast.Tagged, tag=quoted_names),
    st.just(ast.Assigned()),
    st.builds(ast.Assigned, to=_assignees, name=quoted_names),
    st.builds(ast.CrmStatus, status=st.sampled_from(["lead", "contact", "deleted", "none"])),
    st.builds(ast.ProfileIs, profile=quoted_names),
    st.builds(ast.CampaignIs, campaign=quoted_names),
    st.just(ast.OptedOut()),
    _activities,
    st.builds(
        ast.DaysSince,
        anchor=st.sampled_from(["created", "last activity", "assigned"]),
        op=_ops,
        days=_nat,
    ),
)


def _extend(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(
        st.builds(
            ast.Group,
            match=st.sampled_from(["all", "any"]),
            items=st.lists(children, max_size=3).map(tuple),
        ),
        st.builds(ast.Not, criterion=children),
    )


criteria = st.recursive(_simple_criteria, _extend, max_leaves=6)
"""Any criterion, groups and `not` nested a few levels."""

groups = st.builds(
    ast.Group,
    match=st.sampled_from(["all", "any"]),
    items=st.lists(criteria, max_size=3).map(tuple),
)

# ------------------------------------------------------------------ actions

actions = st.one_of(
    st.builds(ast.AddToList, list=quoted_names),
    st.builds(ast.RemoveFromList, list=quoted_names),
    st.builds(ast.AddTag, tag=quoted_names),
    st.builds(ast.RemoveTag, tag=quoted_names),
    st.builds(ast.AdjustScore, points=_signed),
    st.builds(ast.AdjustCategoryScore, points=_signed, category=quoted_names),
    st.builds(ast.SetScore, value=_nat),
    st.builds(ast.Assign, to=_assignees, name=quoted_names),
    st.just(ast.AssignByCrmRule()),
    st.builds(ast.SetField, field=_field, value=values),
    st.builds(
        ast.IncrementField,
        field=_bare,
        by=st.one_of(
            _signed, st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
        ),
    ),
    st.builds(ast.ChangeSourceCampaign, campaign=quoted_names),
    st.builds(ast.AddToCrmCampaign, campaign=quoted_names, status=st.none() | quoted_names),
    st.builds(
        ast.CreateCrmTask,
        subject=st.text(_NAME_CHARS, max_size=10),
        due_days=st.none() | _nat,
        priority=st.none() | st.text(_NAME_CHARS, max_size=5),
        status=st.none() | st.text(_NAME_CHARS, max_size=5),
        owner=st.none() | quoted_names,
    ),
    st.builds(ast.NotifyUser, user=quoted_names),
    st.just(ast.NotifyAssignedUser()),
    st.builds(ast.SendAutoresponder, email=quoted_names),
    st.builds(ast.ChangeProfile, profile=quoted_names),
    st.builds(
        ast.MarkProfileCriterion,
        criterion=quoted_names,
        profile=quoted_names,
        state=st.sampled_from(["matches", "does not match", "not known"]),
    ),
    st.just(ast.DoNotSync()),
    st.just(ast.AllowCrmRecreate()),
)
_action_lists = st.lists(actions, max_size=3).map(tuple)
statements = st.one_of(
    actions,
    st.builds(ast.Conditional, condition=criteria, actions=_action_lists),
    st.just(ast.PriorityFlag()),
)
"""What a completion-action or page-action body holds."""

# -------------------------------------------------------------------- items

_triggers = st.one_of(
    st.builds(
        ast.Trigger,
        verb=st.just("submit"),
        asset_kind=st.sampled_from(["form", "form handler", "landing page"]),
        asset=quoted_names,
    ),
    st.builds(
        ast.Trigger, verb=st.just("download"), asset_kind=st.just("file"), asset=quoted_names
    ),
    st.builds(
        ast.Trigger,
        verb=st.just("click"),
        asset_kind=st.sampled_from(["custom redirect", "email"]),
        asset=quoted_names,
    ),
)
_bodies = st.lists(statements, max_size=4).map(tuple)
_weights = st.integers(1, 3)


@st.composite
def _syncs(draw: st.DrawFn) -> ast.Sync:
    every = draw(st.none() | _nat)
    return ast.Sync(
        crm=draw(_bare),
        objects=draw(st.none() | st.lists(_bare, min_size=1, max_size=3).map(tuple)),
        match_by=draw(st.sampled_from([None, "email", "crm id"])),
        precedence=draw(
            st.none()
            | st.tuples(st.sampled_from(["contact", "lead"]), st.sampled_from(["contact", "lead"]))
        ),
        create_on_assignment=draw(st.sampled_from([None, "lead", "contact"])),
        auto_create=draw(st.none() | st.booleans()),
        every_minutes=every,
        batch=draw(st.none() | _nat) if every is not None else None,
        blank_crm_values=draw(st.sampled_from([None, "overwrite", "never overwrite"])),
        mappings=draw(
            st.lists(
                st.builds(
                    ast.SyncMap,
                    field=_bare,
                    crm_field=quoted_names,
                    crm_type=st.none() | _bare,
                    prefer=st.sampled_from(["ours", "crm", "most recent"]),
                ),
                max_size=2,
            ).map(tuple)
        ),
    )


items = st.one_of(
    st.builds(ast.Include, path=quoted_names),
    st.builds(ast.FieldDecl, name=_bare, type=_bare, choices=st.none() | string_lists),
    st.builds(ast.UserDecl, name=quoted_names),
    st.builds(ast.GroupDecl, name=quoted_names, members=string_lists),
    st.builds(ast.QueueDecl, name=quoted_names),
    st.builds(ast.ListDecl, name=quoted_names),
    st.builds(ast.TagDecl, name=quoted_names),
    st.builds(
        ast.AssetDecl, asset_kind=_asset_kinds, name=quoted_names, folder=st.none() | quoted_names
    ),
    st.builds(ast.CampaignDecl, name=quoted_names),
    st.builds(ast.CrmCampaignDecl, name=quoted_names, statuses=st.none() | string_lists),
    st.builds(ast.CompletionActions, trigger=_triggers, since=st.none() | timestamps, body=_bodies),
    st.builds(
        ast.PageAction,
        name=quoted_names,
        url=quoted_names,
        since=st.none() | timestamps,
        body=_bodies,
    ),
    st.builds(
        ast.AutomationRule,
        name=quoted_names,
        priority=_nat,
        when=st.none() | groups,
        repeat=st.none() | st.builds(ast.Repeat, every_days=_nat, max_times=st.none() | _nat),
        paused=st.booleans(),
        then=_action_lists,
    ),
    st.builds(
        ast.Scoring,
        rows=st.lists(
            st.builds(
                ast.ScoreRow,
                activity=st.lists(bare_names, min_size=1, max_size=3).map(
                    lambda ws: ast.Name(text=" ".join(ws))
                ),
                points=_signed,
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(ast.ScoringCategory, name=quoted_names, folders=string_lists),
    st.builds(
        ast.GradingProfile,
        name=quoted_names,
        default=st.booleans(),
        criteria=st.lists(
            st.builds(ast.GradingCriterion, name=quoted_names, weight=_weights), max_size=3
        ).map(tuple),
    ),
    st.builds(ast.SegmentationRule, name=quoted_names, when=st.none() | groups, then=_action_lists),
    st.builds(ast.DynamicList, name=quoted_names, when=st.none() | groups),
    _syncs(),
    st.builds(
        ast.Settings,
        items=st.lists(st.builds(ast.Setting, name=_bare, value=values), max_size=3).map(tuple),
    ),
)
"""Any top-level item."""

files = st.builds(
    ast.File, path=st.just("generated.mr"), items=st.lists(items, max_size=5).map(tuple)
)
"""A whole file of items."""
