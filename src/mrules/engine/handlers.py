"""One handler per event type: what each event means for its prospect (docs/semantics.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson
from mypy_extensions import trait

from mrules.compiler import (
    ASSET_EVENTS,
)
from mrules.engine.context import Context
from mrules.engine.parts import EngineParts
from mrules.engine.screening import fit_field
from mrules.events import Event, owner_since
from mrules.history import json_text
from mrules.policy import crm_status_after, crm_value_wins
from mrules.state import Prospect
from mrules.vocab import Action, EventType

_dumps: Final = orjson.dumps
_INF: Final = float("inf")
_json: Final = json_text


@trait
class Handlers(EngineParts):
    """The event handlers of `Engine`, by event type (`HANDLERS`)."""

    # --------------------------------------------------------------- handlers

    def _page_view(self, e: Event) -> None:
        url = e.url or ""
        p: Prospect | None = None
        if e.prospect is not None:
            p = self._prospect(e.prospect, e)
            if e.visitor is not None:  # the view's own facts below cover the tie's
                self._tie_visitor(e.visitor, Context(p))
        elif e.visitor is not None:
            email = self._visitor(e.visitor)
            if email is not None:
                p = self._prospect(email, e)
            else:  # anonymous: kept as an activity row until the visitor converts
                self._anonymous.setdefault(e.visitor, []).append((e.ts_epoch, url))
                self._activity(None, e)
                return
        if p is None:
            return
        c = Context(p, ("act", "time"))
        self._activity(p, e)
        normalized = self._urls.get(url)
        self._visited(p, url, e.ts_epoch, normalized)
        points = self.cs.scoring.get("page_view")
        if points:
            self._score(c, points[1], points[0], {"activity": "page view"})
        pages = self.cs.pages
        pa = pages.lookup_normalized(normalized)
        if pa is not None and not self._active(pa.block, e.ts_epoch):
            # Before its `since` (or the run that added it) that page action did not
            # exist: the most specific one that did is the view's (§3), a wildcard say.
            ts = e.ts_epoch
            pa = pages.lookup_normalized(normalized, lambda a: self._active(a.block, ts))
        if pa is not None:
            self._run_blocks(c, (pa.block,), "page:" + pa.ref.name)
        else:
            self._settle(c)

    def _visited(self, p: Prospect, url: str, ts: float, normalized: str | None = None) -> None:
        if p.last_activity is None or ts > p.last_activity:
            p.last_activity = ts
        if not self.cs.visited:
            return
        u = normalized if normalized is not None else self._urls.get(url)
        for key, match in self.cs.visited:
            if match(u):
                p.touch(key, ts)

    def _asset_event(self, e: Event) -> None:
        assert e.prospect is not None
        p = self._prospect(e.prospect, e)
        c = Context(p, ("act", "time"))
        if e.visitor is not None:
            self._tie_visitor(e.visitor, c)
        if e.fields:
            self._event_fields(c, e)
        etype, asset = e.type, e.asset or ""
        kind = ASSET_EVENTS[etype][1]
        if (kind, asset) not in self._assets:
            self._warn_asset(kind, asset)
        for key in self._activity_keys(etype, asset):
            p.touch(key, e.ts_epoch)
        if p.last_activity is None or e.ts_epoch > p.last_activity:
            p.last_activity = e.ts_epoch
        self._activity(p, e)
        points = self.cs.scoring.get(etype)
        if points and not (etype == "email_open" and self._seen_open(p, asset)):
            self._score(c, points[1], points[0], {"activity": points[1].name, "asset": asset})
            category = self.cs.categories.get((kind, asset))
            if category:
                self._category(c, points[1], category, points[0])
        blocks = self.cs.blocks.get((etype, asset))
        if blocks:
            active = tuple(b for b in blocks if self._active(b, e.ts_epoch))
            if active and etype == "email_click":
                # An email link fires each block once per prospect (§2.3): the click
                # that fired it is remembered, not one from before the block's actions
                # were added (`since`), nor one that fired only another block.
                link = f"{asset}|{e.url or ''}"
                active = tuple(b for b in active if p.click(link + b.link_mark))
            if active:
                self._run_blocks(c, active, f"{etype}:{asset}")
                return
        self._settle(c)

    def _seen_open(self, p: Prospect, email: str) -> bool:
        """Whether this open is not the first of its email, and does not score.

        Every open is remembered, scored or not: a rule set that turns
        `email_open_first_only` on after runs with it off scores no email
        opened in those runs again (the setting applies from the next event on).
        """
        bit = self.cs.codecs.emails.bit(email)
        seen = bool(p.opened & bit)
        p.opened |= bit
        return seen and self.settings.email_open_first_only

    def _identify(self, e: Event) -> None:
        assert e.prospect is not None and e.visitor is not None
        c = Context(self._prospect(e.prospect, e), ("time",))
        self._tie_visitor(e.visitor, c)
        self._settle(c)

    def _prospect_update(self, e: Event) -> None:
        assert e.prospect is not None
        c = Context(self._prospect(e.prospect, e), ("time",))
        if e.fields:
            self._event_fields(c, e)
        self._settle(c)

    def _unsubscribe(self, e: Event) -> None:
        assert e.prospect is not None
        p = self._prospect(e.prospect, e)
        c = Context(p, ("time",))
        if e.asset is not None:
            self._warn_asset("email", e.asset)
        self._activity(p, e)
        if not p.opted_out:
            p.opted_out = True
            if "opted_out" in self.cs.most_recent:  # `prefer most recent` reads its time
                p.stamps = {**(p.stamps or {}), "opted_out": self.event_ts}
            c.facts.update(("opted_out", "f:opted_out"))
            self.log(p, self._ref_for(e), Action.OPT_OUT, {"email": e.asset}, False, True)
        self._settle(c)

    def _crm_update(self, e: Event) -> None:
        assert e.prospect is not None
        if not self.cs.auto_create and self._get(e.prospect) is None:
            self.summary.ignored += 1  # the connector does not create prospects (§7.4)
            return
        p = self._prospect(e.prospect, e)
        c = Context(p, ("time",))
        changed = c.facts
        ref = self._ref_for(e)
        obj = e.object
        if obj in ("lead", "contact") and e.status == "deleted":
            # The linked record was deleted in the CRM (§7.8): the prospect is flagged and
            # never recreated until `allow crm recreate`. A lead deleted while we are
            # linked to a contact (or another record's delete) does not touch the link.
            if (
                p.crm_status != "deleted"
                and (not e.crm_id or p.crm_id in (None, e.crm_id))
                and not (obj == "lead" and p.crm_status == "contact")
            ):
                self.log(p, ref, Action.CRM_STATUS, {"deleted": e.crm_id}, p.crm_status, "deleted")
                p.crm_status, p.crm_id = "deleted", None
                changed.add("crm")
                if not p.do_not_sync:
                    p.do_not_sync = True
                    self.log(p, ref, "do not sync", {"by": "crm delete"}, False, True)
            self._settle(c)
            return
        if obj == "lead" and p.crm_status == "contact":
            # A contact outranks a lead for the status, the id, the owner and the fields
            # (§7.2): a lead's update after the contact's changes nothing.
            self.summary.actions["lead update ignored (contact linked)"] += 1
            self._settle(c)
            return
        if obj in ("lead", "contact"):
            status = crm_status_after(p.crm_status, obj)  # a contact outranks a lead (§7.2)
            if status is not None:
                if p.crm_status == "deleted" and e.crm_id:
                    # Relinked (an undelete, or a recreate done): the CRM's cause is gone,
                    # a rule's `do not sync` stays.
                    p.do_not_sync = p.dns_by_rule
                self.log(p, ref, Action.CRM_STATUS, {}, p.crm_status, status)
                p.crm_status = status
                changed.add("crm")
            if e.crm_id and p.crm_id != e.crm_id:
                p.crm_id = e.crm_id
            if e.user and (p.assigned_kind != "user" or p.assigned_to != e.user):
                # The owner is always the CRM's (§7.1): the CRM may reassign.
                self.log(p, ref, Action.ASSIGN, {"to": "user", "by": "crm"}, p.assigned_to, e.user)
                if p.assigned_kind is None:
                    p.assigned_at = self.now
                elif p.assigned_kind != "crm rule":
                    # A reassignment: `assigned_at` stays the first (the MQL time). The
                    # change's time is the CRM's, as for a field (§7.6): the fact's time,
                    # or its `owner_since` (the sync's), not the clock (a fact delivered
                    # late, after a kill, is timed alike); never before the first
                    # assignment. An owner given to a prospect assigned `by crm rule` is
                    # that rule's assignee: the first named, not a reassignment.
                    since = owner_since(e)
                    at = e.ts_epoch if since is None else min(since, e.ts_epoch)
                    p.reassigned_at = max(at, p.assigned_at or at)
                p.assigned_kind, p.assigned_to = "user", e.user
                changed.add("assigned")
            for crm_field, value in (e.fields or {}).items():
                mapped = self.cs.crm_fields.get(crm_field.casefold())
                if mapped is None:
                    continue
                name, prefer = mapped
                info = self._field_info.get(name)
                if info is not None:
                    value, problem = fit_field(info, value)
                    if problem is not None and not self._misfit(
                        p, ref, name, value, problem, crm_field
                    ):
                        continue
                stamp = p.stamps.get(name) if p.stamps else None
                if crm_value_wins(  # §7.6: a value beats a blank, then `prefer`
                    ours=bool(p.opted_out) if name == "opted_out" else p.field(name),
                    theirs=value,
                    prefer=prefer,
                    our_stamp=stamp,
                    their_time=e.ts_epoch,
                ):
                    self._set_field(c, ref, name, value)
        elif obj == "opportunity" and e.status != "deleted":  # a deleted one was not created
            outcome = {"won": "won", "lost": "lost"}.get(e.status or "", "created")
            points = self.cs.crm_scoring.get(outcome)
            if points:
                self._score(c, points[1], points[0], {"activity": f"opportunity {outcome}"})
        self._settle(c)

    def _tick(self, e: Event) -> None:
        self._tick_all()

    def _event_fields(self, c: Context, e: Event) -> None:
        p = c.p
        ref = self._ref_for(e)
        info_of = self._field_info
        for name, value in e.fields.items():
            info = info_of.get(name)
            if info is not None:
                value, problem = fit_field(info, value)
                if problem is not None and not self._misfit(p, ref, name, value, problem, None):
                    continue
            self._set_field(c, ref, name, value)

    def _activity(self, p: Prospect | None, e: Event) -> None:
        row = self._row_for(p.email if p else None)
        row.visitor, row.ts, row.etype, row.asset, row.url = (
            e.visitor,
            e.ts_epoch,
            e.type,
            e.asset,
            e.url,
        )


# The handler of each event type (`mrules.vocab.EventType`): a method of Handlers.
HANDLERS: Final[dict[EventType, Callable[[Any, Event], None]]] = {
    EventType.PAGE_VIEW: Handlers._page_view,
    EventType.FORM_SUBMIT: Handlers._asset_event,
    EventType.FORM_HANDLER_SUBMIT: Handlers._asset_event,
    EventType.LANDING_PAGE_SUBMIT: Handlers._asset_event,
    EventType.EMAIL_OPEN: Handlers._asset_event,
    EventType.EMAIL_CLICK: Handlers._asset_event,
    EventType.FILE_DOWNLOAD: Handlers._asset_event,
    EventType.CUSTOM_REDIRECT_CLICK: Handlers._asset_event,
    EventType.FORM_VIEW: Handlers._asset_event,
    EventType.LANDING_PAGE_VIEW: Handlers._asset_event,
    EventType.IDENTIFY: Handlers._identify,
    EventType.PROSPECT_UPDATE: Handlers._prospect_update,
    EventType.UNSUBSCRIBE: Handlers._unsubscribe,
    EventType.CRM_UPDATE: Handlers._crm_update,
    EventType.TICK: Handlers._tick,
}
