"""Clocks the tests move by hand."""

from __future__ import annotations

import datetime

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class ManualClock:
    """A monotonic clock (call it) with a wall clock (`wall()`) that follows it from T0."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime.datetime:
        return T0 + datetime.timedelta(seconds=self.now)
