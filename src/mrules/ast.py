"""The AST of a rule set: frozen pydantic models, one class per construct.

Nodes carry syntax only, plus a `span` of character offsets into their file
(`File.path`); what the checker learns (resolved names, types) lives in its own
tables. Every class has a `kind` tag, so a JSON dump is unambiguous and
`Program.model_validate` rebuilds a tree. Names the author wrote (fields, lists,
assets, users…) are `Name` nodes so that diagnostics can underline exactly them.
`dump(node, spans=False)` gives the position-blind form used to compare trees.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, SerializationInfo, model_serializer

__all__ = [
    "ASSET_KINDS",
    "Action",
    "Activity",
    "AddTag",
    "AddToCrmCampaign",
    "AddToList",
    "AdjustCategoryScore",
    "AdjustScore",
    "AllowCrmRecreate",
    "AssetDecl",
    "AssetKind",
    "Assign",
    "AssignByCrmRule",
    "Assigned",
    "AutomationRule",
    "BoolValue",
    "CampaignDecl",
    "CampaignIs",
    "CategoryScoreCompare",
    "ChangeProfile",
    "ChangeSourceCampaign",
    "CompletionActions",
    "Conditional",
    "CreateCrmTask",
    "Criterion",
    "CrmCampaignDecl",
    "CrmStatus",
    "DaysSince",
    "DoNotSync",
    "DynamicList",
    "FieldDecl",
    "FieldTest",
    "File",
    "GradeCompare",
    "GradingCriterion",
    "GradingProfile",
    "Group",
    "GroupDecl",
    "InList",
    "Include",
    "IncrementField",
    "Item",
    "ListDecl",
    "MarkProfileCriterion",
    "Name",
    "Node",
    "Not",
    "NotifyAssignedUser",
    "NotifyUser",
    "NumberValue",
    "OptedOut",
    "PageAction",
    "PriorityFlag",
    "ProfileIs",
    "Program",
    "QueueDecl",
    "RemoveFromList",
    "RemoveTag",
    "Repeat",
    "ScoreBetween",
    "ScoreCompare",
    "ScoreRow",
    "Scoring",
    "ScoringCategory",
    "SegmentationRule",
    "SendAutoresponder",
    "SetField",
    "SetScore",
    "Setting",
    "Settings",
    "Span",
    "Statement",
    "StringList",
    "StringValue",
    "Sync",
    "SyncMap",
    "TagDecl",
    "Tagged",
    "TimestampValue",
    "Trigger",
    "UserDecl",
    "Value",
    "children",
    "dump",
    "walk",
]


class Span(NamedTuple):
    """Character offsets [start, end) into the text of the node's file."""

    start: int
    end: int


NO_SPAN = Span(0, 0)

AssetKind = Literal["form", "form handler", "landing page", "file", "custom redirect", "email"]
ASSET_KINDS: tuple[AssetKind, ...] = (
    "form",
    "form handler",
    "landing page",
    "file",
    "custom redirect",
    "email",
)
CompareOp = Literal["<", "<=", ">", ">="]


class Node(BaseModel):
    """Base of every AST node: immutable, strict about fields, with a span."""

    # defer_build: a class's validator is built when the first node of it is made, not
    # at import: every command imports this module, and uses only the classes its rules need.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    span: Span = Field(default=NO_SPAN, repr=False)
    if TYPE_CHECKING:
        kind: str  # every node class declares its own `kind` tag as a Literal

    @model_serializer(mode="wrap")
    def _drop_spans(self, handler: Any, info: SerializationInfo) -> Any:
        data = handler(self)
        if isinstance(info.context, dict) and info.context.get("spans") is False:
            data.pop("span", None)
            data.pop("option_spans", None)
        return data


def dump(node: Node, *, spans: bool = True) -> Any:
    """JSON-ready dict of a tree; `spans=False` compares trees by structure only."""
    return node.model_dump(mode="json", context={"spans": spans})


class Name(Node):
    """A name as written: a quoted string or a bare field name, with its own span."""

    kind: Literal["name"] = "name"
    text: str


# ----------------------------------------------------------------------- values


class StringValue(Node):
    kind: Literal["string"] = "string"
    value: str


class NumberValue(Node):
    kind: Literal["number"] = "number"
    value: int | float


class TimestampValue(Node):
    """A date (`2026-11-02`) or an RFC 3339 time, kept as written."""

    kind: Literal["timestamp"] = "timestamp"
    value: str


class BoolValue(Node):
    kind: Literal["bool"] = "bool"
    value: bool


class StringList(Node):
    """`["a", "b"]`: picklist values, or several values OR-ed in a positive test."""

    kind: Literal["string_list"] = "string_list"
    values: tuple[Name, ...]


Value = Annotated[
    StringValue | NumberValue | TimestampValue | BoolValue | StringList,
    Field(discriminator="kind"),
]

# --------------------------------------------------------------------- criteria


class Group(Node):
    """`all { ... }` (every item holds) or `any { ... }` (at least one holds)."""

    kind: Literal["group"] = "group"
    match: Literal["all", "any"]
    items: tuple[Criterion, ...]


class Not(Node):
    kind: Literal["not"] = "not"
    criterion: Criterion


class ScoreCompare(Node):
    kind: Literal["score_compare"] = "score_compare"
    op: CompareOp
    value: int


class ScoreBetween(Node):
    kind: Literal["score_between"] = "score_between"
    low: int
    high: int


class CategoryScoreCompare(Node):
    kind: Literal["category_score_compare"] = "category_score_compare"
    category: Name
    op: CompareOp
    value: int


class GradeCompare(Node):
    kind: Literal["grade_compare"] = "grade_compare"
    op: CompareOp
    grade: str


FieldOp = Literal[
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


class FieldTest(Node):
    """A test on a prospect field; `value2` is the upper bound of `between`."""

    kind: Literal["field_test"] = "field_test"
    field: Name
    op: FieldOp
    value: Value | None = None
    value2: Value | None = None


class InList(Node):
    kind: Literal["in_list"] = "in_list"
    list: Name


class Tagged(Node):
    kind: Literal["tagged"] = "tagged"
    tag: Name


class Assigned(Node):
    """`assigned` (to anyone), or `assigned to user|group|queue "name"`."""

    kind: Literal["assigned"] = "assigned"
    to: Literal["user", "group", "queue"] | None = None
    name: Name | None = None


class CrmStatus(Node):
    kind: Literal["crm_status"] = "crm_status"
    status: Literal["lead", "contact", "deleted", "none"]


class ProfileIs(Node):
    kind: Literal["profile_is"] = "profile_is"
    profile: Name


class CampaignIs(Node):
    kind: Literal["campaign_is"] = "campaign_is"
    campaign: Name


class OptedOut(Node):
    kind: Literal["opted_out"] = "opted_out"


ActivityVerb = Literal["submitted", "opened", "clicked", "downloaded", "visited", "viewed"]


class Activity(Node):
    """`submitted form "X"`, `clicked any custom redirect`, `visited "url*" within 30 days`.

    `asset_kind` is None for a URL (`visited "..."`); `name` is None for `any`.
    """

    kind: Literal["activity"] = "activity"
    verb: ActivityVerb
    asset_kind: AssetKind | None = None
    name: Name | None = None
    within_days: int | None = None


class DaysSince(Node):
    kind: Literal["days_since"] = "days_since"
    anchor: Literal["created", "last activity", "assigned"]
    op: CompareOp
    days: int


Criterion = Annotated[
    Group
    | Not
    | ScoreCompare
    | ScoreBetween
    | CategoryScoreCompare
    | GradeCompare
    | FieldTest
    | InList
    | Tagged
    | Assigned
    | CrmStatus
    | ProfileIs
    | CampaignIs
    | OptedOut
    | Activity
    | DaysSince,
    Field(discriminator="kind"),
]

# ---------------------------------------------------------------------- actions


class AddToList(Node):
    kind: Literal["add_to_list"] = "add_to_list"
    list: Name


class RemoveFromList(Node):
    kind: Literal["remove_from_list"] = "remove_from_list"
    list: Name


class AddTag(Node):
    kind: Literal["add_tag"] = "add_tag"
    tag: Name


class RemoveTag(Node):
    kind: Literal["remove_tag"] = "remove_tag"
    tag: Name


class AdjustScore(Node):
    kind: Literal["adjust_score"] = "adjust_score"
    points: int


class AdjustCategoryScore(Node):
    kind: Literal["adjust_category_score"] = "adjust_category_score"
    points: int
    category: Name


class SetScore(Node):
    kind: Literal["set_score"] = "set_score"
    value: int


class Assign(Node):
    kind: Literal["assign"] = "assign"
    to: Literal["user", "group", "queue"]
    name: Name


class AssignByCrmRule(Node):
    kind: Literal["assign_by_crm_rule"] = "assign_by_crm_rule"


class SetField(Node):
    kind: Literal["set_field"] = "set_field"
    field: Name
    value: Value


class IncrementField(Node):
    kind: Literal["increment_field"] = "increment_field"
    field: Name
    by: int | float


class ChangeSourceCampaign(Node):
    kind: Literal["change_source_campaign"] = "change_source_campaign"
    campaign: Name


class AddToCrmCampaign(Node):
    kind: Literal["add_to_crm_campaign"] = "add_to_crm_campaign"
    campaign: Name
    status: Name | None = None


class CreateCrmTask(Node):
    kind: Literal["create_crm_task"] = "create_crm_task"
    subject: str
    due_days: int | None = None
    priority: str | None = None
    status: str | None = None
    owner: Name | None = None


class NotifyUser(Node):
    kind: Literal["notify_user"] = "notify_user"
    user: Name


class NotifyAssignedUser(Node):
    kind: Literal["notify_assigned_user"] = "notify_assigned_user"


class SendAutoresponder(Node):
    kind: Literal["send_autoresponder"] = "send_autoresponder"
    email: Name


class ChangeProfile(Node):
    kind: Literal["change_profile"] = "change_profile"
    profile: Name


class MarkProfileCriterion(Node):
    kind: Literal["mark_profile_criterion"] = "mark_profile_criterion"
    criterion: Name
    profile: Name
    state: Literal["matches", "does not match", "not known"]


class DoNotSync(Node):
    kind: Literal["do_not_sync"] = "do_not_sync"


class AllowCrmRecreate(Node):
    kind: Literal["allow_crm_recreate"] = "allow_crm_recreate"


# Every action, once: completion actions, page actions and rules share them.
ActionNode = (
    AddToList
    | RemoveFromList
    | AddTag
    | RemoveTag
    | AdjustScore
    | AdjustCategoryScore
    | SetScore
    | Assign
    | AssignByCrmRule
    | SetField
    | IncrementField
    | ChangeSourceCampaign
    | AddToCrmCampaign
    | CreateCrmTask
    | NotifyUser
    | NotifyAssignedUser
    | SendAutoresponder
    | ChangeProfile
    | MarkProfileCriterion
    | DoNotSync
    | AllowCrmRecreate
)
Action = Annotated[ActionNode, Field(discriminator="kind")]


class Conditional(Node):
    """A conditional completion-action group: `if <one condition> { actions }`."""

    kind: Literal["conditional"] = "conditional"
    condition: Criterion
    actions: tuple[Action, ...]


class PriorityFlag(Node):
    """`priority` in a page action body: the page is a priority page."""

    kind: Literal["priority"] = "priority"


Statement = Annotated[
    ActionNode | Conditional | PriorityFlag,
    Field(discriminator="kind"),
]

# ----------------------------------------------------------------- declarations


class Include(Node):
    kind: Literal["include"] = "include"
    path: Name


class FieldDecl(Node):
    """`field company_size: picklist ["1-10", "11-50"]`; the type is checked, not parsed."""

    kind: Literal["field_decl"] = "field_decl"
    name: Name
    type: Name
    choices: StringList | None = None


class UserDecl(Node):
    kind: Literal["user_decl"] = "user_decl"
    name: Name


class GroupDecl(Node):
    """An assignment group: its members take new prospects in turn (round robin)."""

    kind: Literal["group_decl"] = "group_decl"
    name: Name
    members: StringList


class QueueDecl(Node):
    kind: Literal["queue_decl"] = "queue_decl"
    name: Name


class ListDecl(Node):
    """A static list (fed by actions); dynamic lists are `DynamicList`."""

    kind: Literal["list_decl"] = "list_decl"
    name: Name


class TagDecl(Node):
    kind: Literal["tag_decl"] = "tag_decl"
    name: Name


class AssetDecl(Node):
    kind: Literal["asset_decl"] = "asset_decl"
    asset_kind: AssetKind
    name: Name
    folder: Name | None = None


class CampaignDecl(Node):
    """A Pardot (source, first-touch) campaign."""

    kind: Literal["campaign_decl"] = "campaign_decl"
    name: Name
    cost: int | float | None = None  # what the campaign cost (`cost N`), for the reports


class CrmCampaignDecl(Node):
    kind: Literal["crm_campaign_decl"] = "crm_campaign_decl"
    name: Name
    statuses: StringList | None = None


# ------------------------------------------------------------ automation pieces


class Trigger(Node):
    """What fires completion actions: `submit of form "X"`, `click of email "Y"`…"""

    kind: Literal["trigger"] = "trigger"
    verb: Literal["submit", "download", "click"]
    asset_kind: AssetKind
    asset: Name


class CompletionActions(Node):
    kind: Literal["completion_actions"] = "completion_actions"
    trigger: Trigger
    since: TimestampValue | None = None
    body: tuple[Statement, ...]


class PageAction(Node):
    kind: Literal["page_action"] = "page_action"
    name: Name
    url: Name
    since: TimestampValue | None = None
    body: tuple[Statement, ...]


class Repeat(Node):
    """`repeat every N days [at most M times]`: cooldown and optional cap."""

    kind: Literal["repeat"] = "repeat"
    every_days: int
    max_times: int | None = None


class AutomationRule(Node):
    kind: Literal["automation_rule"] = "automation_rule"
    name: Name
    priority: int
    when: Group | None = None
    repeat: Repeat | None = None
    paused: bool = False
    then: tuple[Action, ...] = ()


class SegmentationRule(Node):
    kind: Literal["segmentation_rule"] = "segmentation_rule"
    name: Name
    when: Group | None = None
    then: tuple[Action, ...] = ()


class DynamicList(Node):
    kind: Literal["dynamic_list"] = "dynamic_list"
    name: Name
    when: Group | None = None


class ScoreRow(Node):
    """`form submission +50`: default points for one activity type."""

    kind: Literal["score_row"] = "score_row"
    activity: Name
    points: int


class Scoring(Node):
    kind: Literal["scoring"] = "scoring"
    rows: tuple[ScoreRow, ...]


class ScoringCategory(Node):
    kind: Literal["scoring_category"] = "scoring_category"
    name: Name
    folders: StringList


class GradingCriterion(Node):
    """A grading criterion worth 1, 2 or 3 steps of the 13-letter ladder."""

    kind: Literal["grading_criterion"] = "grading_criterion"
    name: Name
    weight: int


class GradingProfile(Node):
    kind: Literal["grading_profile"] = "grading_profile"
    name: Name
    default: bool = False
    criteria: tuple[GradingCriterion, ...]


class SyncMap(Node):
    """`map phone <-> "Phone" [as phone] prefer most recent`."""

    kind: Literal["sync_map"] = "sync_map"
    field: Name
    crm_field: Name
    crm_type: Name | None = None
    prefer: Literal["ours", "crm", "most recent"]


class Sync(Node):
    """The CRM connector. Unset options take the defaults in docs/language.md."""

    kind: Literal["sync"] = "sync"
    crm: Name
    objects: tuple[Name, ...] | None = None
    match_by: Literal["email", "crm id"] | None = None
    precedence: tuple[Literal["contact", "lead"], Literal["contact", "lead"]] | None = None
    create_on_assignment: Literal["lead", "contact"] | None = None
    auto_create: bool | None = None
    every_minutes: int | None = None
    batch: int | None = None
    blank_crm_values: Literal["overwrite", "never overwrite"] | None = None
    mappings: tuple[SyncMap, ...] = ()
    # Where each option is written (`every_minutes` the whole `every N minutes [batch
    # M]`, `batch` its number), for diagnostics; spans, so `--no-spans` leaves them out.
    option_spans: tuple[tuple[str, Span], ...] = Field(default=(), repr=False)

    def option_span(self, key: str) -> Span | None:
        """Where the option `key` (a field name above) is written, if the parser said."""
        return next((span for k, span in self.option_spans if k == key), None)


class Setting(Node):
    kind: Literal["setting"] = "setting"
    name: Name
    value: Value


class Settings(Node):
    kind: Literal["settings"] = "settings"
    items: tuple[Setting, ...]


Item = Annotated[
    Include
    | FieldDecl
    | UserDecl
    | GroupDecl
    | QueueDecl
    | ListDecl
    | TagDecl
    | AssetDecl
    | CampaignDecl
    | CrmCampaignDecl
    | CompletionActions
    | PageAction
    | AutomationRule
    | Scoring
    | ScoringCategory
    | GradingProfile
    | SegmentationRule
    | DynamicList
    | Sync
    | Settings,
    Field(discriminator="kind"),
]


class File(Node):
    """One rule file: its path as given (relative to the rule root) and its items."""

    kind: Literal["file"] = "file"
    path: str
    items: tuple[Item, ...]


class Program(Node):
    """A whole rule set: every file in load order (includes before their includer)."""

    kind: Literal["program"] = "program"
    files: tuple[File, ...]


Group.model_rebuild()
Not.model_rebuild()
Conditional.model_rebuild()


def children(node: Node) -> Iterator[Node]:
    """Direct child nodes, in field order (like Jinja's iter_child_nodes)."""
    for name in type(node).model_fields:
        value = getattr(node, name)
        if isinstance(value, Node):
            yield value
        elif isinstance(value, tuple):
            for v in value:
                if isinstance(v, Node):
                    yield v


def walk(node: Node) -> Iterator[Node]:
    """Every node of a tree, parents before children."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(list(children(n))))
