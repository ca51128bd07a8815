"""Rate limiter math: client-go's exponential, bucket, max-of and fast-slow limiters."""

from __future__ import annotations

import math
from collections.abc import Hashable

import pytest

from runs_controller.kube.throttle import TokenBucket
from runs_controller.runtime.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    ItemFastSlowRateLimiter,
    MaxOfRateLimiter,
    default_controller_rate_limiter,
    default_item_based_rate_limiter,
)


class ManualClock:
    """A clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RecordingSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


# -- exponential --------------------------------------------------------------------------


def test_exponential_doubles_from_base_per_failure() -> None:
    limiter = ItemExponentialFailureRateLimiter[str](base=0.005, max=1000.0)
    delays = [limiter.when("a") for _ in range(5)]
    assert delays == pytest.approx([0.005, 0.010, 0.020, 0.040, 0.080])


def test_exponential_reaches_the_cap_after_18_failures_and_stays_there() -> None:
    limiter = ItemExponentialFailureRateLimiter[str](base=0.005, max=1000.0)
    delays = [limiter.when("a") for _ in range(25)]
    # 5 ms * 2**17 = 655.36 s is the last uncapped delay; 2**18 would be 1310.72 s.
    assert delays[17] == pytest.approx(655.36)
    assert delays[18:] == [1000.0] * 7


def test_exponential_never_overflows() -> None:
    limiter = ItemExponentialFailureRateLimiter[str](base=0.005, max=1000.0)
    for _ in range(3000):
        delay = limiter.when("a")
    assert delay == 1000.0
    assert limiter.num_requeues("a") == 3000


def test_exponential_counts_failures_per_item_and_forget_resets() -> None:
    limiter = ItemExponentialFailureRateLimiter[str](base=1.0, max=100.0)
    limiter.when("a")
    limiter.when("a")
    limiter.when("b")
    assert (limiter.num_requeues("a"), limiter.num_requeues("b")) == (2, 1)
    assert limiter.when("a") == 4.0
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == 1.0
    assert limiter.num_requeues("b") == 1
    limiter.forget("never-seen")  # harmless


def test_exponential_cap_below_base_wins() -> None:
    limiter = ItemExponentialFailureRateLimiter[str](base=10.0, max=3.0)
    assert limiter.when("a") == 3.0


def test_default_item_based_limiter_starts_at_1ms() -> None:
    limiter = default_item_based_rate_limiter()
    assert [limiter.when("a") for _ in range(3)] == pytest.approx([0.001, 0.002, 0.004])


# -- token bucket -------------------------------------------------------------------------


def test_bucket_allows_the_burst_then_spaces_calls_by_one_over_qps() -> None:
    clock = ManualClock()
    bucket = TokenBucket(qps=10.0, burst=100, clock=clock)
    assert [bucket.reserve() for _ in range(100)] == [0.0] * 100
    # Reservations pile up: each further caller waits one more 1/qps slot.
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.1, 0.2, 0.3])


def test_bucket_refills_at_qps() -> None:
    clock = ManualClock()
    bucket = TokenBucket(qps=10.0, burst=2, clock=clock)
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0.0, 0.0, 0.1, 0.2])
    clock.now = 0.2  # the two reserved tokens have now been paid back
    assert bucket.reserve() == pytest.approx(0.1)
    clock.now = 0.35  # 1.5 tokens accrued since 0.2: balance 0.5, so half a slot to wait
    assert bucket.reserve() == pytest.approx(0.05)
    clock.now = 0.6  # balance -0.5 + 2.5 = 2.0, a full burst again
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.1])


def test_bucket_refill_is_capped_at_burst() -> None:
    clock = ManualClock()
    bucket = TokenBucket(qps=10.0, burst=3, clock=clock)
    bucket.reserve()
    clock.now = 1000.0
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.1])


def test_bucket_ignores_a_clock_that_goes_backwards() -> None:
    clock = ManualClock()
    clock.now = 10.0
    bucket = TokenBucket(qps=1.0, burst=1, clock=clock)
    assert bucket.reserve() == 0.0
    clock.now = 5.0
    assert bucket.reserve() == pytest.approx(1.0)


def test_bucket_with_infinite_qps_never_waits() -> None:
    bucket = TokenBucket(qps=math.inf, burst=1, clock=ManualClock())
    assert [bucket.reserve() for _ in range(1000)] == [0.0] * 1000


@pytest.mark.parametrize(("qps", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0), (math.nan, 1)])
def test_bucket_rejects_bad_settings(qps: float, burst: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        TokenBucket(qps=qps, burst=burst)


async def test_acquire_sleeps_for_the_reserved_delay_and_returns_it() -> None:
    clock = ManualClock()
    sleep = RecordingSleep()
    bucket = TokenBucket(qps=4.0, burst=1, clock=clock, sleep=sleep)
    assert await bucket.acquire() == 0.0
    assert sleep.calls == []
    assert await bucket.acquire() == pytest.approx(0.25)
    assert await bucket.acquire() == pytest.approx(0.5)
    assert sleep.calls == pytest.approx([0.25, 0.5])


def test_bucket_rate_limiter_takes_a_token_per_call_whatever_the_item() -> None:
    clock = ManualClock()
    limiter = BucketRateLimiter(qps=10.0, burst=2, clock=clock)
    assert [limiter.when(item) for item in ("a", "b", "c", "a")] == pytest.approx(
        [0.0, 0.0, 0.1, 0.2]
    )
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("d") == pytest.approx(0.3)  # forget gives no token back


# -- max-of and defaults ------------------------------------------------------------------


class FixedLimiter:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: list[Hashable] = []
        self.forgotten: list[Hashable] = []

    def when(self, item: Hashable) -> float:
        self.calls.append(item)
        return self.delay

    def forget(self, item: Hashable) -> None:
        self.forgotten.append(item)

    def num_requeues(self, item: Hashable) -> int:
        return self.calls.count(item)


def test_max_of_returns_the_longest_delay_and_asks_every_limiter() -> None:
    short, long_ = FixedLimiter(1.0), FixedLimiter(5.0)
    limiter = MaxOfRateLimiter[str](long_, short)
    assert limiter.when("a") == 5.0
    assert short.calls == ["a"]
    assert long_.calls == ["a"]


def test_max_of_num_requeues_is_the_max_and_forget_reaches_all() -> None:
    exp = ItemExponentialFailureRateLimiter[str](1.0, 100.0)
    fixed = FixedLimiter(0.0)
    limiter = MaxOfRateLimiter[str](exp, fixed)
    for _ in range(3):
        limiter.when("a")
    exp.when("a")
    assert limiter.num_requeues("a") == 4
    limiter.forget("a")
    assert exp.num_requeues("a") == 0
    assert fixed.forgotten == ["a"]


def test_max_of_needs_a_limiter() -> None:
    with pytest.raises(ValueError, match="at least one"):
        MaxOfRateLimiter[str]()


def test_default_controller_limiter_is_per_item_backoff_until_the_bucket_runs_dry() -> None:
    clock = ManualClock()
    limiter = default_controller_rate_limiter(clock=clock)
    # One item failing repeatedly: the per-item backoff dominates.
    assert [limiter.when("x") for _ in range(3)] == pytest.approx([0.005, 0.01, 0.02])
    # Distinct items: 5 ms each until the 100-token burst is spent (3 used above) ...
    assert [limiter.when(i) for i in range(97)] == pytest.approx([0.005] * 97)
    # ... then the 10 qps bucket dominates.
    assert [limiter.when(i) for i in range(100, 103)] == pytest.approx([0.1, 0.2, 0.3])
    assert limiter.num_requeues("x") == 3
    limiter.forget("x")
    assert limiter.num_requeues("x") == 0


# -- fast-slow ----------------------------------------------------------------------------


def test_fast_slow_gives_fast_delays_for_max_fast_attempts_then_slow() -> None:
    limiter = ItemFastSlowRateLimiter[str](fast=0.1, slow=10.0, max_fast_attempts=3)
    assert [limiter.when("a") for _ in range(5)] == [0.1, 0.1, 0.1, 10.0, 10.0]
    assert limiter.when("b") == 0.1  # per item
    assert limiter.num_requeues("a") == 5
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == 0.1


def test_fast_slow_with_zero_fast_attempts_is_always_slow() -> None:
    limiter = ItemFastSlowRateLimiter[str](fast=0.1, slow=10.0, max_fast_attempts=0)
    assert limiter.when("a") == 10.0
