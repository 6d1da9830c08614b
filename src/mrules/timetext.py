"""Times as text: UTC, whole seconds, the year always in four digits.

`strftime("%Y")` writes the year 1 as `1` on Linux (glibc does not pad it),
which no RFC 3339 reader takes back; `isoformat` pads it. Every module that
writes a time as `YYYY-MM-DDTHH:MM:SSZ` uses these (the sync's plans and
files, the reports), so the same moment reads the same everywhere.

>>> utc_seconds_text(-62135596800.0), utc_seconds_text(0.5)
('0001-01-01T00:00:00Z', '1970-01-01T00:00:00Z')
"""

from __future__ import annotations

import datetime as dt
import math

__all__ = ["FIRST_TIME", "LAST_TIME", "utc_seconds_text", "utc_text"]

FIRST_TIME = -62_135_596_800.0
"""0001-01-01T00:00:00Z in POSIX seconds: the first moment a date can show."""
LAST_TIME = math.nextafter(253_402_300_800.0, 0.0)
"""The last POSIX time (a float) before 10000-01-01T00:00:00Z: 9999-12-31T23:59:59.99997Z.

A float near the year 9999 is exact to 2**-15 s, so `9999-12-31T23:59:59.999999Z` as
seconds rounds up to the year 10000, which no date holds."""


def utc_text(moment: dt.datetime) -> str:
    """An aware time as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds, a four-digit year)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def utc_seconds_text(seconds: float) -> str:
    """Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (see `utc_text`)."""
    return utc_text(dt.datetime.fromtimestamp(seconds, dt.UTC))
