"""The CRM tests' start time, and a clock that moves the emulator (the recorded org has its own)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mrules.crm.emulator import EmulatedCrm

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


class Clock:
    """Moves the emulator's clock; the recorded org's times are in its answers already."""

    def __init__(self, crm: Any) -> None:
        self.crm = crm

    def at(self, minutes: int) -> None:
        if isinstance(self.crm, EmulatedCrm):
            self.crm.set_clock(T0 + dt.timedelta(minutes=minutes))
