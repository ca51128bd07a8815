"""The wall clock reconcilers read, behind a protocol so tests can set the time.

Decision functions never read a clock: the reconciler asks `clock.now()` once and passes the
instant in, so one reconcile decides against one consistent time.
"""

from __future__ import annotations

import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime.datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)


__all__ = ["Clock", "SystemClock"]
