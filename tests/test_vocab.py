"""One vocabulary: every table that names event types, asset kinds or verbs agrees with vocab."""

from __future__ import annotations

import re
import typing

from conftest import ROOT
from mrules import ast, events, symbols
from mrules.checker import criteria
from mrules.compiler import ASSET_EVENTS, TRIGGER_EVENTS
from mrules.engine.handlers import HANDLERS
from mrules.vocab import ACTIVITY_TYPES, Action, AssetKind, CrmObject, EventType, Verb


def test_the_readers_and_the_ast_use_the_vocabulary() -> None:
    assert tuple(EventType) == events.EVENT_TYPES
    assert tuple(CrmObject) == events.CRM_OBJECTS
    assert set(events.ASSET_KINDS.values()) <= set(AssetKind)
    assert set(ast.ASSET_KINDS) == set(AssetKind)
    assert set(typing.get_args(ast.AssetKind)) == set(AssetKind)
    assert set(typing.get_args(ast.ActivityVerb)) == set(Verb)
    assert set(criteria.ACTIVITIES) == set(Verb)
    assert symbols.ACTIVITY_TYPES is ACTIVITY_TYPES


def test_every_event_type_has_one_handler_and_tables_name_only_known_things() -> None:
    assert set(HANDLERS) == set(EventType)
    assert set(TRIGGER_EVENTS) <= set(ASSET_EVENTS) <= set(EventType)
    for verb, kind in ASSET_EVENTS.values():
        assert verb in Verb and kind in AssetKind
    for event_types in ACTIVITY_TYPES.values():
        assert set(event_types) <= set(EventType)


def test_the_action_log_page_lists_every_action() -> None:
    """docs/outputs.md's list of `action` values names every kind the ledger writes."""
    text = (ROOT / "docs" / "outputs.md").read_text("utf-8")
    listed = text.split("- `action`:", 1)[1].split("\n- ", 1)[0]
    named = set(re.findall(r"`([a-z ]+)`", " ".join(listed.split())))
    assert {a.value for a in Action} - named == set()
