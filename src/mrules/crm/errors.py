"""Errors shaped like Salesforce's.

`CrmError` is one per-record error, the `{statusCode, message, fields}` of an
sObject Collections result. `CrmCallError` is a whole call that failed (a
limit, an expired session, an outage, a malformed request): the records of
that call have no result, and `transient` says whether trying again later
can succeed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "AUTH_CODES",
    "NO_ACCESS_CODES",
    "RECORD_ACCESS_CODES",
    "TRANSIENT_CODES",
    "CrmCallError",
    "CrmError",
]

TRANSIENT_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "REQUEST_LIMIT_EXCEEDED",
        "INVALID_SESSION_ID",
        "SERVER_UNAVAILABLE",
        "QUERY_TIMEOUT",
        "INVALID_QUERY_LOCATOR",
    }
)
"""Codes a later attempt may get past without any change to the record: a row locked by
another transaction, the API limit, a session to renew, an outage; a query stopped for
running too long (HTTP 400 QUERY_TIMEOUT: a busy org), the next page of a query whose
cursor expired before it was read (INVALID_QUERY_LOCATOR): the next cycle reads again."""

AUTH_CODES = frozenset({"INVALID_SESSION_ID", "LOGIN_FAILED"})
"""Codes of a call refused for who makes it, not for what it asks: no other call can do
better, so a caller that skips an object it may not read must not skip these."""

NO_ACCESS_CODES = frozenset(
    {"INSUFFICIENT_ACCESS", "INSUFFICIENT_ACCESS_OR_READONLY", "INVALID_TYPE", "NOT_FOUND"}
)
"""Codes of a call refused because the user may not see the object it reads: Salesforce
answers a query of an object the user cannot see with INVALID_TYPE ("sObject type ... is
not supported"), its describe with NOT_FOUND, and a refused permission with
INSUFFICIENT_ACCESS. A caller that can do without an object skips these, and says so; any
other failure (MALFORMED_QUERY, HTTP_414...) is a failed call."""

RECORD_ACCESS_CODES = frozenset({"INSUFFICIENT_ACCESS_OR_READONLY"})
"""Codes of one record's write refused for the integration user's permissions: no edit
access to that record (its sharing), to the object, or a read-only field. No later attempt
does better until someone grants the access, so such a write is held, not dropped, and is
tried again when the prospect or its record changes, or on `sync retry`."""


@dataclass(unsafe_hash=True)
class CrmError(Exception):
    """One record's error: Salesforce's `statusCode`, `message` and `fields`."""

    status_code: str
    message: str
    fields: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        where = f" [{', '.join(self.fields)}]" if self.fields else ""
        if where and self.message.endswith(where.strip()):
            # Salesforce's REQUIRED_FIELD_MISSING message lists them already:
            # "Required fields are missing: [LastName] [LastName]" said it twice.
            where = ""
        return f"{self.status_code}: {self.message}{where}"

    @property
    def transient(self) -> bool:
        return self.status_code in TRANSIENT_CODES

    def as_json(self) -> dict[str, object]:
        """The error as the REST API writes it."""
        return {
            "statusCode": self.status_code,
            "message": self.message,
            "fields": list(self.fields),
        }


class CrmCallError(Exception):
    """A call that failed as a whole; no record of it was written."""

    def __init__(self, code: str, message: str, *, transient: bool, http_status: int = 0) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.transient = transient
        self.http_status = http_status
