"""Jittered exponential backoff for reconnect loops (client-go's reflector defaults)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass
class Backoff:
    """initial * factor^n, capped, times (1 + jitter * rand); resets after a quiet period.

    client-go's reflector uses 800 ms, factor 2, jitter 1.0, cap 30 s and resets after 2 min
    without trouble: about 0.2 requests/s against a broken apiserver instead of a hot loop.
    """

    initial: float = 0.8
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 1.0
    reset_after: float = 120.0
    rand: Callable[[], float] = random.random
    _failures: int = 0
    _last_failure: float | None = None

    def next_delay(self, now: float) -> float:
        """The wait before the next attempt, given the time of the failure."""
        if self._last_failure is not None and now - self._last_failure >= self.reset_after:
            self._failures = 0
        self._last_failure = now
        base = min(self.cap, self.initial * self.factor**self._failures)
        self._failures += 1
        return base * (1 + self.jitter * self.rand())

    def reset(self) -> None:
        self._failures = 0
        self._last_failure = None

    @property
    def failures(self) -> int:
        return self._failures
