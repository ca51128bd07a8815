"""A token bucket with reservation semantics: the client-side QPS limit of the API client.

It lives in `kube` because the client uses it; the workqueue's bucket limiter (`runtime`)
builds on it too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """A token bucket with reservation semantics (Go's `rate.Limiter.Reserve`).

    It starts full (`burst` tokens) and refills at `qps` tokens/s up to `burst`. Every
    reservation takes one token right away, even if that drives the balance negative; the
    caller then waits until its token exists. So a burst goes through at once and further
    calls are spaced 1/qps apart. `qps=math.inf` never delays.
    """

    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if not qps > 0:
            raise ValueError(f"qps must be > 0, got {qps!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last: float | None = None

    def reserve(self) -> float:
        """Take a token now and return how long the caller must wait before using it."""
        if math.isinf(self.qps):
            return 0.0
        now = self._clock()
        if self._last is not None:
            elapsed = max(0.0, now - self._last)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.qps)
        self._last = now
        self._tokens -= 1.0
        return -self._tokens / self.qps if self._tokens < 0 else 0.0

    async def acquire(self) -> float:
        """Reserve a token and sleep until it is due; return the time waited.

        A cancelled wait keeps its token (no refund), which only makes later callers a
        little more conservative.
        """
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)
        else:
            await anyio.lowlevel.checkpoint()
        return delay


__all__ = ["TokenBucket"]
