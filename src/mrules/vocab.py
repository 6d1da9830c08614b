"""The one vocabulary of mrules: event types, asset kinds, activity verbs, ledger actions, CRM.

Every module that names one of these (the event reader, the symbols, the
checker, the compiler, the engine, the store and `explain`) takes it from
here. The enums are `StrEnum`s: a member *is* its string (`EventType.TICK ==
"tick"`), so the store, the JSON outputs and the tests see the same text as
before, and a plain string read back from a file compares equal.

>>> EventType.FORM_SUBMIT == "form_submit", ASSET_EVENTS[EventType.EMAIL_CLICK]
(True, (<Verb.CLICKED: 'clicked'>, <AssetKind.EMAIL: 'email'>))
>>> TRIGGERS[("submit", "form")]
<EventType.FORM_SUBMIT: 'form_submit'>
>>> Action("crm campaign member") in MESSAGE_ACTIONS
True
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACTIVITY_TYPES",
    "ASSET_ACTIVITIES",
    "ASSET_EVENTS",
    "EVENT_ASSET_KINDS",
    "MESSAGE_ACTIONS",
    "TRIGGERS",
    "TRIGGER_EVENTS",
    "Action",
    "AssetKind",
    "CrmObject",
    "EventType",
    "Verb",
]


class EventType(StrEnum):
    """The `type` of an event line (docs/events.md)."""

    PAGE_VIEW = "page_view"
    FORM_SUBMIT = "form_submit"
    FORM_HANDLER_SUBMIT = "form_handler_submit"
    LANDING_PAGE_SUBMIT = "landing_page_submit"
    EMAIL_OPEN = "email_open"
    EMAIL_CLICK = "email_click"
    FILE_DOWNLOAD = "file_download"
    CUSTOM_REDIRECT_CLICK = "custom_redirect_click"
    FORM_VIEW = "form_view"
    LANDING_PAGE_VIEW = "landing_page_view"
    IDENTIFY = "identify"
    PROSPECT_UPDATE = "prospect_update"
    UNSUBSCRIBE = "unsubscribe"
    CRM_UPDATE = "crm_update"
    TICK = "tick"


class AssetKind(StrEnum):
    """The kinds of asset a rule set declares (`form "X"`, `email "Y"`...)."""

    FORM = "form"
    FORM_HANDLER = "form handler"
    LANDING_PAGE = "landing page"
    FILE = "file"
    CUSTOM_REDIRECT = "custom redirect"
    EMAIL = "email"


class Verb(StrEnum):
    """Activity verbs of criteria (`submitted form "X"`, `visited "url*"`)."""

    SUBMITTED = "submitted"
    OPENED = "opened"
    CLICKED = "clicked"
    DOWNLOADED = "downloaded"
    VISITED = "visited"
    VIEWED = "viewed"


class CrmObject(StrEnum):
    """The CRM objects a `crm_update` event may name."""

    LEAD = "lead"
    CONTACT = "contact"
    ACCOUNT = "account"
    OPPORTUNITY = "opportunity"
    CAMPAIGN_MEMBER = "campaign_member"


class Action(StrEnum):
    """What a ledger entry did (`action` of the action log, docs/outputs.md)."""

    CREATE_PROSPECT = "create prospect"
    RULE_MATCHED = "rule matched"
    SCORE = "score"
    SET_SCORE = "set score"
    CATEGORY_SCORE = "category score"
    ADD_TO_LIST = "add to list"
    REMOVE_FROM_LIST = "remove from list"
    ADD_TAG = "add tag"
    REMOVE_TAG = "remove tag"
    SET_FIELD = "set field"
    SKIP_FIELD = "skip field"  # an event's value that does not fit its field (not applied)
    ASSIGN = "assign"
    SOURCE_CAMPAIGN = "source campaign"
    CHANGE_PROFILE = "change profile"
    GRADING = "grading"
    GRADE = "grade"
    DO_NOT_SYNC = "do not sync"
    ALLOW_CRM_RECREATE = "allow crm recreate"
    OPT_OUT = "opt out"
    CRM_STATUS = "crm status"
    NOTIFY = "notify"
    AUTORESPONDER = "autoresponder"
    CRM_CAMPAIGN_MEMBER = "crm campaign member"
    CRM_TASK = "crm task"
    CRM_CREATE_RECORD = "crm create record"
    CRM_ASSIGNMENT_RULE = "crm assignment rule"

    @classmethod
    def crm(cls, kind: str) -> Action:
        """The ledger action of CRM work of a kind (`campaign_member`: `crm campaign member`)."""
        return cls("crm " + kind.replace("_", " "))


# Ledger actions that are messages or CRM work (`explain` lists them together).
MESSAGE_ACTIONS = frozenset(
    {
        Action.NOTIFY,
        Action.AUTORESPONDER,
        Action.CRM_CAMPAIGN_MEMBER,
        Action.CRM_TASK,
        Action.CRM_CREATE_RECORD,
        Action.CRM_ASSIGNMENT_RULE,
    }
)

# Event types that are activities on an asset: (criterion verb, asset kind).
ASSET_EVENTS: dict[EventType, tuple[Verb, AssetKind]] = {
    EventType.FORM_SUBMIT: (Verb.SUBMITTED, AssetKind.FORM),
    EventType.FORM_HANDLER_SUBMIT: (Verb.SUBMITTED, AssetKind.FORM_HANDLER),
    EventType.LANDING_PAGE_SUBMIT: (Verb.SUBMITTED, AssetKind.LANDING_PAGE),
    EventType.EMAIL_OPEN: (Verb.OPENED, AssetKind.EMAIL),
    EventType.EMAIL_CLICK: (Verb.CLICKED, AssetKind.EMAIL),
    EventType.FILE_DOWNLOAD: (Verb.DOWNLOADED, AssetKind.FILE),
    EventType.CUSTOM_REDIRECT_CLICK: (Verb.CLICKED, AssetKind.CUSTOM_REDIRECT),
    # What `viewed form "F"` and `viewed landing page "P"` read: a view is an activity
    # (last activity, history), with no default score and no completion action.
    EventType.FORM_VIEW: (Verb.VIEWED, AssetKind.FORM),
    EventType.LANDING_PAGE_VIEW: (Verb.VIEWED, AssetKind.LANDING_PAGE),
}

# The kind of asset an event's `asset` names (an unsubscribe names an email).
EVENT_ASSET_KINDS: dict[EventType, AssetKind] = {
    **{t: kind for t, (_, kind) in ASSET_EVENTS.items()},
    EventType.UNSUBSCRIBE: AssetKind.EMAIL,
}

# Event types that fire completion actions: (trigger verb of `on <verb> of`, asset kind).
TRIGGER_EVENTS: dict[EventType, tuple[str, AssetKind]] = {
    EventType.FORM_SUBMIT: ("submit", AssetKind.FORM),
    EventType.FORM_HANDLER_SUBMIT: ("submit", AssetKind.FORM_HANDLER),
    EventType.LANDING_PAGE_SUBMIT: ("submit", AssetKind.LANDING_PAGE),
    EventType.FILE_DOWNLOAD: ("download", AssetKind.FILE),
    EventType.CUSTOM_REDIRECT_CLICK: ("click", AssetKind.CUSTOM_REDIRECT),
    EventType.EMAIL_CLICK: ("click", AssetKind.EMAIL),
}
TRIGGERS: dict[tuple[str, str], EventType] = {v: k for k, v in TRIGGER_EVENTS.items()}

# Which asset kinds each activity verb of a criterion exists for (§4.4); None is a URL.
ASSET_ACTIVITIES: dict[Verb, tuple[AssetKind | None, ...]] = {
    Verb.SUBMITTED: (AssetKind.FORM, AssetKind.FORM_HANDLER, AssetKind.LANDING_PAGE),
    Verb.OPENED: (AssetKind.EMAIL,),
    Verb.CLICKED: (AssetKind.EMAIL, AssetKind.CUSTOM_REDIRECT),
    Verb.DOWNLOADED: (AssetKind.FILE,),
    Verb.VISITED: (None, AssetKind.LANDING_PAGE),
    Verb.VIEWED: (AssetKind.FORM, AssetKind.LANDING_PAGE, None),
}

# Activity types a `scoring` row can name (§5.1), with the event types they score.
ACTIVITY_TYPES: dict[str, tuple[EventType, ...]] = {
    "custom redirect click": (EventType.CUSTOM_REDIRECT_CLICK,),
    "email open": (EventType.EMAIL_OPEN,),
    "email click": (EventType.EMAIL_CLICK,),
    "event checked in": (),
    "event registered": (),
    "file access": (EventType.FILE_DOWNLOAD,),
    "form error": (),
    "form handler error": (),
    "form handler submission": (EventType.FORM_HANDLER_SUBMIT,),
    "form submission": (EventType.FORM_SUBMIT,),
    "landing page error": (),
    "landing page success": (EventType.LANDING_PAGE_SUBMIT,),
    "olark chat": (),
    "opportunity created": (EventType.CRM_UPDATE,),
    "opportunity lost": (EventType.CRM_UPDATE,),
    "opportunity won": (EventType.CRM_UPDATE,),
    "page view": (EventType.PAGE_VIEW,),
    "site search query": (),
    "visitor session": (),
    "webinar attended": (),
    "webinar invited": (),
    "webinar registered": (),
}
