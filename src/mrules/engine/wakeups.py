"""The wake-up queue: each prospect's next moment a time-based rule could change outcome.

A tick asks for the prospects whose wake-up time has come (`pop_due`). The
queue holds one live time per prospect, and at 2M events it holds a hundred
thousand of them, so its layout is about memory: entries sit in hour-wide
buckets, as a list of emails and an `array` of times (16 bytes an entry, no
tuple or float object each), and the prospect's live bucket is a dict value
that points to a shared bucket object. A new time for a prospect supersedes
the old one: the old entry stays in its bucket until the bucket comes up or
the queue is compacted, and is skipped then (within one bucket, the last
entry of an email is its live one).
"""

from __future__ import annotations

import heapq
from array import array
from typing import Final

from mypy_extensions import mypyc_attr

__all__ = ["WakeQueue"]

_INF: Final = float("inf")


class _Bucket:
    """The entries whose time falls in one span of `WakeQueue.width` seconds."""

    __slots__ = ("emails", "number", "times")

    def __init__(self, number: int) -> None:
        self.number = number
        self.emails: list[str] = []
        self.times = array("d")


@mypyc_attr(allow_interpreted_subclasses=True)  # a test subclasses it to watch `schedule`
class WakeQueue:
    """Emails by wake-up time; `pop_due(now)` gives exactly those whose live time is <= now."""

    def __init__(self, width: float = 3600.0, slack: int = 1024) -> None:
        self.width = width
        # Superseded entries allowed beyond twice the live ones before a compaction.
        self.slack = slack
        self._live: dict[str, _Bucket] = {}  # email -> the bucket of its live time
        self._buckets: dict[int, _Bucket] = {}
        self._numbers: list[int] = []  # a heap of the bucket numbers in `_buckets`
        self.entries = 0  # entries in all buckets, live and superseded

    def __len__(self) -> int:
        return len(self._live)

    def schedule(self, email: str, when: float) -> None:
        """Make `when` the email's one wake-up time (infinity: none)."""
        if when == _INF:
            self.cancel(email)
            return
        number = int(when // self.width)
        bucket = self._buckets.get(number)
        if bucket is None:
            bucket = self._buckets[number] = _Bucket(number)
            heapq.heappush(self._numbers, number)
        bucket.emails.append(email)
        bucket.times.append(when)
        self._live[email] = bucket
        self.entries += 1
        if self.entries > 2 * len(self._live) + self.slack:
            self._compact()

    def cancel(self, email: str) -> None:
        """The email has no wake-up time any more."""
        if self._live.pop(email, None) is not None and (
            self.entries > 2 * len(self._live) + self.slack
        ):
            self._compact()

    def pop_due(self, now: float) -> list[str]:
        """The emails whose live wake-up time is <= now, taken out of the queue."""
        due: list[str] = []
        live, numbers, buckets = self._live, self._numbers, self._buckets
        limit = now // self.width
        while numbers and numbers[0] <= limit:
            bucket = buckets[numbers[0]]
            emails, times = bucket.emails, bucket.times
            if bucket.number < limit:  # the whole bucket is past: every live entry is due
                heapq.heappop(numbers)
                del buckets[bucket.number]
                self.entries -= len(emails)
                for email in emails:
                    if live.get(email) is bucket:
                        del live[email]
                        due.append(email)
                continue
            # The bucket `now` falls in: its live entries past now stay.
            kept = []
            for i in self._live_entries(bucket):
                if times[i] <= now:
                    del live[emails[i]]
                    due.append(emails[i])
                else:
                    kept.append(i)
            self._keep(bucket, kept)
            break
        if due and self.entries > 2 * len(live) + self.slack:
            # Fewer live times now: superseded entries in later buckets may be too many.
            self._compact()
        return due

    def _live_entries(self, bucket: _Bucket) -> list[int]:
        """The indexes of the bucket's live entries, in order: an email's last entry in
        the bucket, if the bucket is the email's live one."""
        live, emails = self._live, bucket.emails
        seen: set[str] = set()
        found = []
        for i in range(len(emails) - 1, -1, -1):
            email = emails[i]
            if email not in seen and live.get(email) is bucket:
                seen.add(email)
                found.append(i)
        found.reverse()
        return found

    def _keep(self, bucket: _Bucket, kept: list[int]) -> None:
        """Keep only the entries at these indexes of the bucket."""
        emails, times = bucket.emails, bucket.times
        self.entries -= len(emails) - len(kept)
        bucket.emails = [emails[i] for i in kept]
        bucket.times = array("d", (times[i] for i in kept))

    def _compact(self) -> None:
        """Drop superseded entries (the queue follows the prospects, not the events)."""
        for number, bucket in list(self._buckets.items()):
            self._keep(bucket, self._live_entries(bucket))
            if not bucket.emails:
                del self._buckets[number]
        self._numbers = list(self._buckets)
        heapq.heapify(self._numbers)

    def live_times(self) -> dict[str, float]:
        """Each queued email's live time (for tests and debugging; walks every bucket)."""
        found: dict[str, float] = {}
        for bucket in self._buckets.values():
            for email, when in zip(bucket.emails, bucket.times, strict=True):
                if self._live.get(email) is bucket:
                    found[email] = when  # the last entry of the email wins
        return found
