"""The names a rule set declares, gathered once for the checker and the compiler.

Declarations may come in any file and any order (a rule may use a list that a
later file declares). `collect(program)` walks the top level of every file and
records each declaration with where it stands; the first declaration of a name
wins and later ones are kept in `duplicates` for the checker to report.
Prospect default fields (§1 of the reference) are built in and need no
declaration.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from mrules import ast
from mrules.vocab import ACTIVITY_TYPES as _ACTIVITY_TYPES

__all__ = [
    "ACTIVITY_TYPES",
    "BUILTIN_FIELDS",
    "FIELD_TYPES",
    "Declared",
    "FieldInfo",
    "Symbols",
    "collect",
]

FIELD_TYPES = ("text", "number", "date", "boolean", "picklist", "multiselect")

# Pardot's default prospect fields: usable without a `field` declaration.
BUILTIN_FIELDS: dict[str, str] = {
    "email": "text",
    "salutation": "text",
    "first_name": "text",
    "last_name": "text",
    "company": "text",
    "job_title": "text",
    "department": "text",
    "industry": "text",
    "phone": "text",
    "fax": "text",
    "website": "text",
    "address_one": "text",
    "address_two": "text",
    "city": "text",
    "state": "text",
    "zip": "text",
    "country": "text",
    "territory": "text",
    "annual_revenue": "text",
    "employees": "number",
    "years_in_business": "text",
    "source": "text",
    "comments": "text",
    "opted_out": "boolean",
    "do_not_email": "boolean",
    "do_not_call": "boolean",
}

# Activity types a `scoring` row can name (§5.1): the vocabulary's table.
ACTIVITY_TYPES = _ACTIVITY_TYPES


@dataclass(frozen=True)
class Declared:
    """Where a name is declared: the file and the node."""

    path: str
    node: ast.Node
    name: ast.Name


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: str
    choices: tuple[str, ...] | None = None
    declared: Declared | None = None  # None for built-in fields


@dataclass
class Symbols:
    """Every declared name by namespace; the first declaration of a name wins."""

    fields: dict[str, FieldInfo] = field(default_factory=dict)
    users: dict[str, Declared] = field(default_factory=dict)
    groups: dict[str, Declared] = field(default_factory=dict)
    queues: dict[str, Declared] = field(default_factory=dict)
    lists: dict[str, Declared] = field(default_factory=dict)  # static lists
    dynamic_lists: dict[str, Declared] = field(default_factory=dict)
    tags: dict[str, Declared] = field(default_factory=dict)
    assets: dict[tuple[str, str], Declared] = field(default_factory=dict)  # (kind, name)
    campaigns: dict[str, Declared] = field(default_factory=dict)
    crm_campaigns: dict[str, Declared] = field(default_factory=dict)
    profiles: dict[str, Declared] = field(default_factory=dict)
    categories: dict[str, Declared] = field(default_factory=dict)
    page_actions: dict[str, Declared] = field(default_factory=dict)
    automation_rules: dict[str, Declared] = field(default_factory=dict)
    segmentation_rules: dict[str, Declared] = field(default_factory=dict)
    # (namespace, later declaration, first declaration)
    duplicates: list[tuple[str, Declared, Declared]] = field(default_factory=list)

    def field_type(self, name: str) -> str | None:
        info = self.fields.get(name)
        return info.type if info else None

    def asset_names(self, kind: str) -> list[str]:
        return [name for (k, name) in self.assets if k == kind]

    def group_members(self, name: str) -> tuple[str, ...]:
        decl = self.groups.get(name)
        if decl is None or not isinstance(decl.node, ast.GroupDecl):
            return ()
        return tuple(n.text for n in decl.node.members.values)

    def default_profile(self) -> str | None:
        for name, decl in self.profiles.items():
            if isinstance(decl.node, ast.GradingProfile) and decl.node.default:
                return name
        return None


def items(program: ast.Program) -> Iterator[tuple[str, ast.Node]]:
    """Every top-level item of a program with the path of its file, in load order."""
    for file in program.files:
        for item in file.items:
            yield file.path, item


def collect(program: ast.Program) -> Symbols:
    """Gather the declarations of a program."""
    sym = Symbols()
    for builtin, builtin_type in BUILTIN_FIELDS.items():
        sym.fields[builtin] = FieldInfo(builtin, builtin_type)

    def add(
        namespace: str, table: dict, key: object, path: str, node: ast.Node, name: ast.Name
    ) -> None:
        decl = Declared(path, node, name)
        if key in table:
            sym.duplicates.append((namespace, decl, table[key]))
        else:
            table[key] = decl

    for path, item in items(program):
        match item:
            case ast.FieldDecl(name=name, type=ftype, choices=choices):
                decl = Declared(path, item, name)
                existing = sym.fields.get(name.text)
                if existing is not None and existing.declared is not None:
                    sym.duplicates.append(("field", decl, existing.declared))
                    continue
                values = tuple(v.text for v in choices.values) if choices else None
                sym.fields[name.text] = FieldInfo(name.text, ftype.text, values, decl)
            case ast.UserDecl(name=name):
                add("user", sym.users, name.text, path, item, name)
            case ast.GroupDecl(name=name):
                add("group", sym.groups, name.text, path, item, name)
            case ast.QueueDecl(name=name):
                add("queue", sym.queues, name.text, path, item, name)
            case ast.ListDecl(name=name):
                add("list", sym.lists, name.text, path, item, name)
            case ast.DynamicList(name=name):
                add("dynamic list", sym.dynamic_lists, name.text, path, item, name)
            case ast.TagDecl(name=name):
                add("tag", sym.tags, name.text, path, item, name)
            case ast.AssetDecl(asset_kind=kind, name=name):
                add(kind, sym.assets, (kind, name.text), path, item, name)
            case ast.CampaignDecl(name=name):
                add("campaign", sym.campaigns, name.text, path, item, name)
            case ast.CrmCampaignDecl(name=name):
                add("crm campaign", sym.crm_campaigns, name.text, path, item, name)
            case ast.GradingProfile(name=name):
                add("grading profile", sym.profiles, name.text, path, item, name)
            case ast.ScoringCategory(name=name):
                add("scoring category", sym.categories, name.text, path, item, name)
            case ast.PageAction(name=name):
                add("page action", sym.page_actions, name.text, path, item, name)
            case ast.AutomationRule(name=name):
                add("automation rule", sym.automation_rules, name.text, path, item, name)
            case ast.SegmentationRule(name=name):
                add("segmentation rule", sym.segmentation_rules, name.text, path, item, name)
            case _:
                pass
    return sym
