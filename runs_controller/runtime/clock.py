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


class FixedClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, at: datetime.datetime) -> None:
        self.at = at

    def now(self) -> datetime.datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += datetime.timedelta(seconds=seconds)


__all__ = ["Clock", "FixedClock", "SystemClock"]
