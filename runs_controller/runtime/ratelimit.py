"""Rate limiters with client-go's `workqueue` semantics.

All delays are in seconds. Limiters are pure, synchronous objects: anything time-dependent
takes an injected clock, so tests never wait for real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

from runs_controller.kube.throttle import TokenBucket

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)

Clock = Callable[[], float]


class RateLimiter(Protocol[K_contra]):
    """How long an item must wait before it is retried (client-go `TypedRateLimiter`)."""

    def when(self, item: K_contra) -> float:
        """Delay before `item` may be retried; also records the attempt."""
        ...

    def forget(self, item: K_contra) -> None:
        """Stop tracking `item` (call on success, or per-item state leaks)."""
        ...

    def num_requeues(self, item: K_contra) -> int:
        """How many failures have been recorded for `item`."""
        ...


class ItemExponentialFailureRateLimiter(Generic[K]):
    """Per-item exponential backoff: base * 2**failures, capped at `max`."""

    def __init__(self, base: float = 0.005, max: float = 1000.0) -> None:
        if base < 0 or max < 0:
            raise ValueError("base and max must be >= 0")
        self.base = base
        self.max_delay = max
        self._failures: dict[K, int] = {}

    def when(self, item: K) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        # 2.0**1023 is the largest finite power; past it the cap applies anyway.
        return min(self.base * 2.0 ** min(exp, 1023), self.max_delay)

    def forget(self, item: K) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: K) -> int:
        return self._failures.get(item, 0)


class ItemFastSlowRateLimiter(Generic[K]):
    """`fast` delay for the first `max_fast_attempts` failures of an item, `slow` after."""

    def __init__(self, fast: float, slow: float, max_fast_attempts: int) -> None:
        if fast < 0 or slow < 0 or max_fast_attempts < 0:
            raise ValueError("fast, slow and max_fast_attempts must be >= 0")
        self.fast = fast
        self.slow = slow
        self.max_fast_attempts = max_fast_attempts
        self._failures: dict[K, int] = {}

    def when(self, item: K) -> float:
        failures = self._failures.get(item, 0) + 1
        self._failures[item] = failures
        return self.fast if failures <= self.max_fast_attempts else self.slow

    def forget(self, item: K) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: K) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter:
    """Overall (not per-item) limit: every `when` call takes a token from one bucket."""

    def __init__(
        self, qps: float = 10.0, burst: int = 100, *, clock: Clock = time.monotonic
    ) -> None:
        self.bucket = TokenBucket(qps, burst, clock=clock)

    def when(self, item: Hashable) -> float:
        return self.bucket.reserve()

    def forget(self, item: Hashable) -> None:
        """Nothing per item to forget."""

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter(Generic[K]):
    """The longest delay of several limiters; every limiter sees every call."""

    def __init__(self, *limiters: RateLimiter[K]) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self.limiters = limiters

    def when(self, item: K) -> float:
        # A list, not a generator: every limiter must record the attempt (the bucket takes
        # its token) even when an earlier one already gave the maximum.
        return max([limiter.when(item) for limiter in self.limiters])

    def forget(self, item: K) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: K) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter(*, clock: Clock = time.monotonic) -> MaxOfRateLimiter[Hashable]:
    """client-go's default: per-item 5 ms..1000 s backoff, and 10 qps / burst 100 overall."""
    return MaxOfRateLimiter[Hashable](
        ItemExponentialFailureRateLimiter[Hashable](0.005, 1000.0),
        BucketRateLimiter(10.0, 100, clock=clock),
    )


def default_item_based_rate_limiter() -> ItemExponentialFailureRateLimiter[Hashable]:
    """client-go's per-item-only default: 1 ms..1000 s backoff."""
    return ItemExponentialFailureRateLimiter[Hashable](0.001, 1000.0)
