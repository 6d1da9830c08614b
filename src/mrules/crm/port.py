"""The CRM port: what the sync asks of a CRM, as plain data.

Two adapters implement it: `mrules.crm.emulator.EmulatedCrm` (a local CRM in
SQLite that behaves like Salesforce) and `mrules.crm.salesforce.SalesforceCrm`
(a real org through simple-salesforce). One contract suite
(tests/crm/test_contract.py) runs against both.

Records travel as the REST API writes them: API field names, dates as
`YYYY-MM-DD`, datetimes as `2026-11-02T09:00:00.000+0000`, ids in their
18-character form. Writes take at most `MAX_BATCH` records and answer one
`WriteResult` per record, in input order; a record's failure never fails the
others (`allOrNone=false`). A call that fails as a whole raises
`mrules.crm.errors.CrmCallError`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from mrules.crm.errors import CrmError

__all__ = [
    "MAX_BATCH",
    "ApiUsage",
    "Changes",
    "ConvertResult",
    "CrmPort",
    "Cursor",
    "Deleted",
    "DeletedRecord",
    "FieldInfo",
    "LeadConvert",
    "ObjectInfo",
    "Record",
    "WriteResult",
    "with_system_fields",
]

MAX_BATCH = 200
"""Records per write call: the sObject Collections limit."""

SYSTEM_FIELDS = ("Id", "SystemModstamp", "IsDeleted")


def with_system_fields(names: list[str]) -> list[str]:
    """`names` with the fields every change query needs (id, cursor, deleted) appended."""
    names.extend(f for f in SYSTEM_FIELDS if f not in names)
    return names


@dataclass(frozen=True)
class FieldInfo:
    """One field as describe gives it."""

    name: str
    label: str
    type: str
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    required: bool = False
    """Required on create: not nillable and not defaulted."""
    defaulted_on_create: bool = False
    restricted_picklist: bool = False
    picklist_values: tuple[str, ...] = ()
    reference_to: tuple[str, ...] = ()
    custom: bool = False
    external_id: bool = False


@dataclass(frozen=True)
class ObjectInfo:
    """One object as describe gives it."""

    name: str
    key_prefix: str
    custom: bool
    fields: Mapping[str, FieldInfo]
    createable: bool = True
    """Whether the user may create records of it (a Salesforce describe's `createable`:
    its profile and permission sets); the local CRM's integration user may create all."""


@dataclass(frozen=True)
class Record:
    """One record read from the CRM; `fields` holds every field read, system fields too."""

    sobject: str
    id: str
    fields: Mapping[str, Any]
    system_modstamp: dt.datetime
    is_deleted: bool = False


@dataclass(frozen=True, order=True)
class Cursor:
    """A position in an object's changes: the last (SystemModstamp, Id) read."""

    modstamp: dt.datetime
    last_id: str = ""


@dataclass(frozen=True)
class Changes:
    """A page of changed records, oldest first, and the cursor to read the next page from."""

    records: list[Record]
    cursor: Cursor | None
    done: bool
    """True when no more changes up to `until` remain."""


@dataclass(frozen=True)
class DeletedRecord:
    id: str
    deleted_date: dt.datetime


@dataclass(frozen=True)
class Deleted:
    """getDeleted: the records deleted in a window, and the window the CRM could answer for."""

    records: list[DeletedRecord]
    earliest_date_available: dt.datetime
    latest_date_covered: dt.datetime


@dataclass(frozen=True)
class WriteResult:
    """One record's outcome: its id when it succeeded, its errors when not."""

    id: str | None
    success: bool
    errors: tuple[CrmError, ...] = ()
    created: bool = False


@dataclass(frozen=True)
class LeadConvert:
    """One lead to convert (Salesforce's LeadConvert)."""

    lead_id: str
    converted_status: str | None = None
    """A lead status with IsConverted; None takes the org's first converted status."""
    account_id: str | None = None
    contact_id: str | None = None
    owner_id: str | None = None
    do_not_create_opportunity: bool = False
    opportunity_name: str | None = None
    overwrite_lead_source: bool = False


@dataclass(frozen=True)
class ConvertResult:
    lead_id: str
    success: bool
    account_id: str | None = None
    contact_id: str | None = None
    opportunity_id: str | None = None
    errors: tuple[CrmError, ...] = ()


@dataclass(frozen=True)
class ApiUsage:
    """API calls used in the last 24 hours and the org's daily allocation."""

    used: int
    limit: int
    calls_made: int = field(default=0)
    """Calls this adapter made since it was opened."""
    unknown: str = field(default="")
    """Why `used` and `limit` are not known (0 then): no answer said them yet, or the
    last answer refused a call for the limit without saying them; empty when known."""

    def __str__(self) -> str:
        if self.unknown:
            return f"API usage unknown {self.unknown}"
        return f"API usage {self.used:,} of {self.limit:,} calls in the last 24 hours"


@runtime_checkable
class CrmPort(Protocol):
    """What the sync engine calls; every method is one API call or a few."""

    def describe(self, sobject: str) -> ObjectInfo:
        """The object's fields; CrmCallError INVALID_TYPE for an unknown or unavailable object."""
        ...

    def query_changed(
        self,
        sobject: str,
        since: Cursor | None,
        until: dt.datetime,
        fields: Sequence[str] | None = None,
        *,
        include_deleted: bool = True,
        limit: int = 2000,
        missing_ok: bool = False,
    ) -> Changes:
        """Records with (SystemModstamp, Id) after `since` and SystemModstamp <= `until`.

        Each record has `fields` and the system fields (every field when `fields` is
        None). A field the object does not have is INVALID_FIELD, unless `missing_ok`:
        then it is left out (a field the org lacks, or the user may not see).

        Ordered by SystemModstamp then Id; deleted records (still in the recycle
        bin) come with `is_deleted` when `include_deleted` (queryAll).

        A write can still be stamped with the CRM's current time after a read:
        read up to a time before the clock (the emulator's clock never goes
        back), or re-read an overlap and drop what was seen (a real org, whose
        stamps are set at commit).
        """
        ...

    def get_deleted(self, sobject: str, start: dt.datetime, end: dt.datetime) -> Deleted:
        """Ids deleted in [start, end] (getDeleted)."""
        ...

    def find(
        self,
        sobject: str,
        field: str,
        values: Sequence[str],
        fields: Sequence[str] | None = None,
        *,
        missing_ok: bool = False,
    ) -> list[Record]:
        """Live records whose `field` is one of `values` (e.g. Email; case-insensitive);
        `fields` and `missing_ok` as for `query_changed`."""
        ...

    def create(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        allow_duplicates: bool = False,
    ) -> list[WriteResult]:
        """Create up to MAX_BATCH records."""
        ...

    def update(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        allow_duplicates: bool = False,
    ) -> list[WriteResult]:
        """Update up to MAX_BATCH records, each with its `Id`."""
        ...

    def upsert(
        self, sobject: str, external_id_field: str, records: Sequence[Mapping[str, Any]]
    ) -> list[WriteResult]:
        """Create or update up to MAX_BATCH records by an external id field."""
        ...

    def delete(self, ids: Sequence[str]) -> list[WriteResult]:
        """Move up to MAX_BATCH records to the recycle bin."""
        ...

    def convert_leads(self, converts: Sequence[LeadConvert]) -> list[ConvertResult]:
        """Convert leads (account + contact [+ opportunity])."""
        ...

    def api_usage(self) -> ApiUsage:
        """The API calls used, as last reported by the CRM."""
        ...
