"""The sync block of a rule set as the settings the sync engine reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mrules import ast

__all__ = ["DEFAULT_BATCH", "DEFAULT_MINUTES", "FieldMap", "SyncConfig", "SyncConfigError"]

DEFAULT_MINUTES = 10
"""The connector's cycle (§7.1): every 10 minutes."""
DEFAULT_BATCH = 800
"""Records written per cycle at most (the connector's default batch)."""


class SyncConfigError(Exception):
    """The rule set has no sync block (nothing to sync)."""


@dataclass(frozen=True)
class FieldMap:
    field: str
    """Our field."""
    crm_field: str
    """The CRM's API name, as the rules spell it."""
    prefer: str
    """ours | crm | most recent; `always ours` for the package's score and grade"""


@dataclass(frozen=True)
class SyncConfig:
    objects: tuple[str, ...] = ("lead", "contact")
    match_by: str = "email"
    first: str = "contact"
    """`prefer contact over lead` (the default) or `prefer lead over contact`: which
    record a prospect with none links to when both have its email."""
    create_on: str = "lead"
    auto_create: bool = False
    every_minutes: int = DEFAULT_MINUTES
    batch: int = DEFAULT_BATCH
    blanks: str = "never overwrite"
    mappings: tuple[FieldMap, ...] = ()

    @property
    def every_seconds(self) -> float:
        return self.every_minutes * 60.0

    def as_json(self) -> dict[str, Any]:
        return {
            "objects": list(self.objects),
            "match_by": self.match_by,
            "prefer": self.first,
            "create_on_assignment": self.create_on,
            "auto_create": self.auto_create,
            "every_minutes": self.every_minutes,
            "batch": self.batch,
            "blank_crm_values": self.blanks,
            "mappings": [
                {"field": m.field, "crm_field": m.crm_field, "prefer": m.prefer}
                for m in self.mappings
            ],
        }

    @classmethod
    def from_program(cls, program: ast.Program | None) -> SyncConfig:
        """The first sync block of a (checked) program; SyncConfigError when it has none."""
        block = _find(program)
        if block is None:
            raise SyncConfigError(
                "the rule set has no `sync salesforce { ... }` block: there is nothing to sync"
            )
        objects = tuple(o.text for o in block.objects) if block.objects else ("lead", "contact")
        return cls(
            objects=objects,
            match_by=block.match_by or "email",
            first=block.precedence[0] if block.precedence else "contact",
            create_on=block.create_on_assignment or "lead",
            auto_create=bool(block.auto_create),
            every_minutes=block.every_minutes or DEFAULT_MINUTES,
            batch=block.batch or DEFAULT_BATCH,
            blanks=block.blank_crm_values or "never overwrite",
            mappings=tuple(
                FieldMap(m.field.text, m.crm_field.text, m.prefer) for m in block.mappings
            ),
        )

    @classmethod
    def from_rules(cls, compiled: Any) -> SyncConfig:
        return cls.from_program(getattr(compiled, "program", None))


def _find(program: ast.Program | None) -> ast.Sync | None:
    if program is None:
        return None
    from mrules.checker.visit import items

    for _path, item in items(program):
        if isinstance(item, ast.Sync):
            return item
    return None
