"""What the engine and the readers need from a state store: `StateStore`, and its errors.

`StateStore` is the interface: the engine (`mrules.engine`) and the read
commands (`state export`, `state outbox`, `explain`) use only these methods.
Three stores implement it:

- `mrules.store.Store`: the SQLite file (docs/store.md), durable, lockable,
  readable while a run writes;
- `mrules.memstore.MemoryStore`: plain Python lists and dicts, for tests, the
  library API and throwaway runs; it lives as long as the process;
- `mrules.store_pg.PgStore`: the same tables in a PostgreSQL database
  (`--store postgresql://...`, docs/scale-out.md), for teams whose workers and
  reports share one database.

This module names no store: they import it (for the errors), and
`mrules.api.open_store` chooses one from a `--store` value. What a store is
handed to write, `Batch`, is `mrules.batch`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, runtime_checkable

from mrules.timetext import FIRST_TIME, LAST_TIME

if TYPE_CHECKING:
    from mrules.batch import Batch
    from mrules.records import RejectedLine

__all__ = [
    "MAX_SEQ",
    "MEMORY",
    "YEARS_1_TO_9999",
    "DamagedStore",
    "NotAStore",
    "StateStore",
    "StoreError",
    "StoreLocked",
    "StorePathError",
    "is_postgres_url",
]

MEMORY = ":memory:"
"""The `--store` value that asks for an in-memory store."""
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
"""How a `--store` value that names a PostgreSQL database begins (docs/scale-out.md)."""
YEARS_1_TO_9999 = (FIRST_TIME, LAST_TIME)
"""The POSIX times a date can show, the last second of 9999 included (it was left out:
an event at 9999-12-31T23:59:59.5Z made every read of its store "damaged"); a stored
time outside them is damage."""

MAX_SEQ = 2**53
"""The largest ledger seq a store holds (a number JSON readers keep exact); a stored last
seq past it is damage: 2**63 - 1 made the next run's insert an OverflowError (exit 70)."""


def is_postgres_url(spec: object) -> TypeGuard[str]:
    """Whether a `--store` value names a PostgreSQL database rather than a file."""
    return isinstance(spec, str) and spec.startswith(POSTGRES_SCHEMES)


class StoreError(Exception):
    """The store cannot be opened, read or written; the message says why and what to do."""


class StorePathError(StoreError):
    """The store path itself is wrong (a folder, a missing folder, no store to read): usage."""


class NotAStore(StoreError):
    """The file is not an mrules store: another program's file or SQLite database (the
    local CRM file, the events given where the store goes)."""


class DamagedStore(StoreError):
    """What the store holds cannot be read (a prospect's state that is not what mrules
    wrote): restore it from a backup, or start a new store. `mrules.api` raises it for the
    engine's and the readers' `mrules.state.DamagedState` (a ValueError), the cause."""


class StoreLocked(StoreError):
    """Another process holds the store for writing.

    Attributes:
        path: the store's path.
        pid: the holder's process id as written in the lock file, or None if unknown.
    """

    def __init__(self, message: str, path: Path, pid: int | None) -> None:
        super().__init__(message)
        self.path = path
        self.pid = pid


@runtime_checkable
class StateStore(Protocol):
    """A state store: reads at any time, writes only through `commit` (one batch, atomic)."""

    path: Path
    readonly: bool

    # -- what the engine reads when it starts ----------------------------------------------
    def stream_position(self, source: str) -> int: ...
    def stream_anchor(self, source: str) -> tuple[int, int] | None: ...
    def clock(self) -> float | None: ...
    def rules_first_seen(self) -> dict[str, float | None]: ...
    def prospects(self) -> Iterator[tuple[str, bytes]]: ...
    def visitors(self) -> Iterator[tuple[str, str | None, bytes]]: ...
    def visitor(self, visitor: str) -> str | None: ...
    def visitors_among(self, visitors: Collection[str]) -> dict[str, str]: ...
    def prospects_among(self, emails: Collection[str]) -> dict[str, bytes]: ...
    def shared(self) -> Mapping[str, str | bytes]: ...  # bytes only in a damaged store
    def max_seq(self) -> int: ...
    def activities(self, prospect: str | None = None, *, by_time: bool = True) -> Iterator[Any]: ...
    def anonymous_views(self, visitor: str) -> list[tuple[float, str]]: ...
    def anonymous_views_among(
        self, visitors: Collection[str]
    ) -> dict[str, list[tuple[float, str]]]: ...
    def applied_ids(self) -> set[str]: ...
    def has_applied_ids(self) -> bool: ...
    def applied_hashes(self) -> Iterator[int]: ...
    def applied_among(self, ids: list[str]) -> set[str]: ...

    # -- what the readers read ---------------------------------------------------------------
    def prospect(self, email: str) -> bytes | None: ...
    def prospect_count(self) -> int: ...
    def has_prospects(self) -> bool: ...
    def ledger(self, prospect: str | None = None, after_seq: int = 0) -> Iterator[Any]: ...
    def outbox(self) -> Iterator[Any]: ...
    def crm_pending(self, prospect: str | None = None, after_seq: int = 0) -> Iterator[Any]: ...
    def rejects(self, source: str | None = None) -> Iterator[RejectedLine]: ...
    def meta(self) -> dict[str, str]: ...
    def diagnostics(self) -> list[bytes]: ...
    def keep_diagnostics(self, reports: list[bytes]) -> None: ...
    def snapshot(self) -> contextlib.AbstractContextManager[Any]: ...
    def log_start(self, log: str) -> int | None: ...
    def set_log_start(self, log: str, seq: int) -> None: ...

    # -- writing and closing -----------------------------------------------------------------
    def commit(self, batch: Batch) -> None: ...
    def close(self) -> None: ...
