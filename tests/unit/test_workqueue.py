"""The workqueue's client-go semantics, driven by a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections import Counter
from collections.abc import Hashable

import anyio
import anyio.lowlevel
import pytest
from prometheus_client import CollectorRegistry

from runs_controller.observability.metrics import WorkqueueMetrics
from runs_controller.runtime.ratelimit import ItemExponentialFailureRateLimiter, RateLimiter
from runs_controller.runtime.workqueue import QueueShutDown, WorkQueue

# A safety net only: a broken queue shows up as a hang, and this turns it into a failure.
pytestmark = pytest.mark.timeout(20)


class FakeClock:
    """Time that moves only in `advance`; `sleep` parks the caller until then."""

    def __init__(self) -> None:
        self.now = 0.0
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, anyio.Event]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        event = anyio.Event()
        entry = (self.now + seconds, next(self._seq), event)
        heapq.heappush(self._sleepers, entry)
        try:
            await event.wait()
        finally:
            if not event.is_set():
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

    @property
    def sleepers(self) -> int:
        return len(self._sleepers)

    async def advance(self, seconds: float) -> None:
        """Move time forward one due sleeper at a time, letting each react before the next."""
        target = self.now + seconds
        await anyio.wait_all_tasks_blocked()
        while self._sleepers and self._sleepers[0][0] <= target:
            due, _, event = heapq.heappop(self._sleepers)
            self.now = max(self.now, due)
            event.set()
            await anyio.wait_all_tasks_blocked()
        self.now = target


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_queue(
    clock: FakeClock,
    metrics: WorkqueueMetrics | None = None,
    *,
    rate_limiter: RateLimiter[Hashable] | None = None,
    max_wait: float = 10.0,
) -> WorkQueue[str]:
    return WorkQueue[str](
        "test",
        controller="ctl",
        rate_limiter=rate_limiter,
        metrics=metrics,
        clock=clock,
        sleep=clock.sleep,
        max_wait=max_wait,
    )


def ready(queue: WorkQueue[str]) -> list[str]:
    """The keys ready right now, in order, without taking them."""
    return list(queue._queue)


async def take_all(queue: WorkQueue[str]) -> list[str]:
    """Get and finish every ready key, in order."""
    keys = []
    while len(queue):
        key = await queue.get()
        queue.done(key)
        keys.append(key)
    return keys


# -- ordered queue (`order`) --------------------------------------------------------------


async def test_an_ordered_queue_hands_out_the_lowest_rank_first_ties_in_add_order(
    clock: FakeClock,
) -> None:
    ranks = {"old": 1, "new": 3, "mid-a": 2, "mid-b": 2}
    queue = WorkQueue[str]("test", clock=clock, sleep=clock.sleep, order=ranks.__getitem__)
    for key in ("new", "mid-b", "old", "mid-a", "old", "new"):
        queue.add(key)
    assert len(queue) == 4  # still deduplicated
    assert await take_all(queue) == ["old", "mid-b", "mid-a", "new"]


async def test_an_ordered_queue_ranks_a_key_when_it_becomes_ready(clock: FakeClock) -> None:
    ranks = {"a": 5, "b": 1, "c": 3}
    queue = WorkQueue[str]("test", clock=clock, sleep=clock.sleep, order=ranks.__getitem__)
    queue.add("a")
    assert await queue.get() == "a"
    queue.add("a")  # dirty while processing: ranked when done() queues it again
    queue.add("c")
    ranks["a"] = 2
    queue.done("a")
    queue.add("b")
    assert await take_all(queue) == ["b", "a", "c"]
    # The processing rules hold as in FIFO order: a key is never handed out twice at once.
    queue.add("c")
    taken = await queue.get()
    queue.add("c")
    assert len(queue) == 0
    queue.done(taken)
    assert await take_all(queue) == ["c"]


async def test_an_ordered_queue_wakes_a_blocked_getter_and_hands_out_delayed_keys(
    clock: FakeClock,
) -> None:
    ranks = {"late": 0, "early": 9}
    queue = WorkQueue[str]("test", clock=clock, sleep=clock.sleep, order=ranks.__getitem__)
    got: list[str] = []
    async with anyio.create_task_group() as group, queue:

        async def getter() -> None:
            got.append(await queue.get())

        group.start_soon(getter)
        await anyio.wait_all_tasks_blocked()
        queue.add("early")
        await anyio.wait_all_tasks_blocked()
        assert got == ["early"]
        queue.done("early")
        queue.add_after("late", 5)
        queue.add("early")
        await clock.advance(5)
        assert await take_all(queue) == ["late", "early"]


# -- basic queue --------------------------------------------------------------------------


async def test_fifo_order(clock: FakeClock) -> None:
    queue = make_queue(clock)
    for key in ("c", "a", "b"):
        queue.add(key)
    assert await take_all(queue) == ["c", "a", "b"]


async def test_duplicate_adds_are_dropped_while_queued(clock: FakeClock) -> None:
    queue = make_queue(clock)
    for key in ("a", "b", "a", "a", "b", "c"):
        queue.add(key)
    assert len(queue) == 3
    assert await take_all(queue) == ["a", "b", "c"]


async def test_a_key_can_be_added_again_once_taken(clock: FakeClock) -> None:
    queue = make_queue(clock)
    queue.add("a")
    assert await queue.get() == "a"
    queue.done("a")
    queue.add("a")
    assert len(queue) == 1


async def test_key_added_while_processing_waits_for_done_and_requeues_once(
    clock: FakeClock,
) -> None:
    queue = make_queue(clock)
    queue.add("a")
    key = await queue.get()
    for _ in range(5):
        queue.add("a")
    assert len(queue) == 0  # not handed out while being processed
    queue.done(key)
    assert len(queue) == 1
    assert await take_all(queue) == ["a"]
    assert len(queue) == 0


async def test_done_without_readd_does_not_requeue(clock: FakeClock) -> None:
    queue = make_queue(clock)
    queue.add("a")
    queue.done(await queue.get())
    assert len(queue) == 0


async def test_done_on_a_key_not_being_processed_is_ignored(clock: FakeClock) -> None:
    queue = make_queue(clock)
    queue.add("a")
    queue.done("a")  # queued, not processing: must not queue it a second time
    queue.done("zzz")
    assert len(queue) == 1


async def test_processing_key_is_not_handed_to_a_second_worker(clock: FakeClock) -> None:
    queue = make_queue(clock)
    queue.add("a")
    first = await queue.get()
    queue.add("a")
    got: list[str] = []

    async def second_worker() -> None:
        got.append(await queue.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(second_worker)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        queue.done(first)
    assert got == ["a"]


async def test_blocked_getter_wakes_on_add(clock: FakeClock) -> None:
    queue = make_queue(clock)
    got: list[str] = []

    async def worker() -> None:
        got.append(await queue.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        await anyio.wait_all_tasks_blocked()
        queue.add("a")
    assert got == ["a"]


async def test_getters_are_served_in_arrival_order(clock: FakeClock) -> None:
    queue = make_queue(clock)
    got: list[tuple[int, str]] = []

    async def worker(n: int) -> None:
        got.append((n, await queue.get()))

    async with anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(worker, n)
            await anyio.wait_all_tasks_blocked()
        for key in ("a", "b", "c"):
            queue.add(key)
    assert sorted(got) == [(0, "a"), (1, "b"), (2, "c")]


async def test_a_getter_cancelled_after_its_wakeup_passes_the_wakeup_on(
    clock: FakeClock,
) -> None:
    """Plain asyncio cancellation can land after the wake-up: the key must not be stranded."""
    queue = make_queue(clock)
    task_a = asyncio.create_task(queue.get())
    await anyio.wait_all_tasks_blocked()
    task_b = asyncio.create_task(queue.get())
    await anyio.wait_all_tasks_blocked()
    queue.add("k")  # wakes A, first in line ...
    task_a.cancel()  # ... which is cancelled before it runs
    await anyio.wait_all_tasks_blocked()
    assert task_a.cancelled()
    assert task_b.done()
    assert task_b.result() == "k"


async def test_same_key_added_1000_times_while_processing_runs_exactly_twice(
    clock: FakeClock,
) -> None:
    queue = make_queue(clock)
    runs: Counter[str] = Counter()
    in_flight: set[str] = set()
    started, release = anyio.Event(), anyio.Event()

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except QueueShutDown:
                return
            assert key not in in_flight
            in_flight.add(key)
            runs[key] += 1
            if runs[key] == 1:
                started.set()
                await release.wait()
            await anyio.lowlevel.checkpoint()
            in_flight.discard(key)
            queue.done(key)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(worker)
        queue.add("k")
        await started.wait()
        for _ in range(1000):
            queue.add("k")
            await anyio.lowlevel.checkpoint()  # let the idle workers try to grab it
        release.set()
        await anyio.wait_all_tasks_blocked()
        queue.shutdown()
    assert runs == {"k": 2}


async def test_random_adds_with_workers_never_process_a_key_concurrently(
    clock: FakeClock,
) -> None:
    rng = random.Random(1234)  # noqa: S311 - a reproducible schedule, not crypto
    queue = make_queue(clock)
    keys = [f"k{i}" for i in range(20)]
    in_flight: set[str] = set()
    overlaps: list[str] = []
    last_add: dict[str, int] = {}
    last_start: dict[str, int] = {}
    step = itertools.count()

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except QueueShutDown:
                return
            if key in in_flight:
                overlaps.append(key)
            in_flight.add(key)
            last_start[key] = next(step)
            for _ in range(rng.randrange(3)):
                await anyio.lowlevel.checkpoint()
            in_flight.discard(key)
            queue.done(key)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(worker)
        for _ in range(3000):
            key = rng.choice(keys)
            queue.add(key)
            last_add[key] = next(step)
            if rng.random() < 0.3:
                await anyio.lowlevel.checkpoint()
        await anyio.wait_all_tasks_blocked()
        queue.shutdown()
    assert overlaps == []
    # Every add was followed by a processing run that started after it.
    assert all(last_start[key] > last_add[key] for key in last_add)


# -- shutdown -----------------------------------------------------------------------------


async def test_shutdown_wakes_every_blocked_getter(clock: FakeClock) -> None:
    queue = make_queue(clock)
    results: list[str] = []

    async def worker() -> None:
        try:
            await queue.get()
        except QueueShutDown:
            results.append("shutdown")

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(worker)
        await anyio.wait_all_tasks_blocked()
        queue.shutdown()
    assert results == ["shutdown"] * 3


async def test_shutdown_drops_adds_but_hands_out_what_is_queued(clock: FakeClock) -> None:
    queue = make_queue(clock)
    queue.add("a")
    queue.shutdown()
    assert queue.shutting_down
    queue.add("b")
    queue.add_after("c", 0)
    queue.add_after("d", 1)
    queue.add_rate_limited("e")
    assert await queue.get() == "a"
    with pytest.raises(QueueShutDown):
        await queue.get()


async def test_done_after_shutdown_still_requeues_a_dirty_key(clock: FakeClock) -> None:
    queue = make_queue(clock)
    queue.add("a")
    key = await queue.get()
    queue.add("a")
    queue.shutdown()
    queue.done(key)
    assert await queue.get() == "a"
    queue.done("a")
    with pytest.raises(QueueShutDown):
        await queue.get()


async def test_shutdown_with_drain_waits_for_in_flight_items(clock: FakeClock) -> None:
    queue = make_queue(clock)
    queue.add("a")
    queue.add("b")
    a, b = await queue.get(), await queue.get()
    drained = anyio.Event()

    async def drain() -> None:
        await queue.shutdown_with_drain()
        drained.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(drain)
        await anyio.wait_all_tasks_blocked()
        assert queue.shutting_down
        queue.add("c")  # intake already stopped
        queue.done(a)
        await anyio.wait_all_tasks_blocked()
        assert not drained.is_set()
        queue.done(b)
    assert drained.is_set()
    assert len(queue) == 0


async def test_shutdown_with_drain_returns_at_once_when_idle(clock: FakeClock) -> None:
    queue = make_queue(clock)
    with anyio.fail_after(5):
        await queue.shutdown_with_drain()
    with pytest.raises(QueueShutDown):
        await queue.get()


async def test_shutdown_stops_a_pending_drain(clock: FakeClock) -> None:
    queue = make_queue(clock)
    queue.add("a")
    await queue.get()
    drained = anyio.Event()

    async def drain() -> None:
        await queue.shutdown_with_drain()
        drained.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(drain)
        await anyio.wait_all_tasks_blocked()
        assert not drained.is_set()
        queue.shutdown()
    assert drained.is_set()


# -- add_after ----------------------------------------------------------------------------


async def test_add_after_delivers_in_ready_time_order(clock: FakeClock) -> None:
    queue = make_queue(clock)
    async with queue:
        queue.add_after("c", 3)
        queue.add_after("a", 1)
        queue.add_after("d", 4)
        queue.add_after("b", 2)
        await clock.advance(0.5)
        assert len(queue) == 0
        await clock.advance(0.5)
        assert ready(queue) == ["a"]
        await clock.advance(10)
        assert await take_all(queue) == ["a", "b", "c", "d"]


async def test_add_after_equal_ready_times_keep_add_order(clock: FakeClock) -> None:
    queue = make_queue(clock)
    async with queue:
        for key in ("x", "y", "z"):
            queue.add_after(key, 1)
        await clock.advance(1)
        assert await take_all(queue) == ["x", "y", "z"]


async def test_add_after_duplicate_with_an_earlier_time_wins(clock: FakeClock) -> None:
    queue = make_queue(clock)
    async with queue:
        queue.add_after("k", 5)
        queue.add_after("k", 1)
        await clock.advance(1)
        assert await take_all(queue) == ["k"]
        await clock.advance(10)  # the superseded 5 s entry is gone
        assert len(queue) == 0


async def test_add_after_duplicate_with_a_later_time_does_not_postpone(clock: FakeClock) -> None:
    queue = make_queue(clock)
    async with queue:
        queue.add_after("k", 1)
        queue.add_after("k", 5)
        await clock.advance(1)
        assert await take_all(queue) == ["k"]
        await clock.advance(10)
        assert len(queue) == 0


async def test_add_after_with_no_delay_adds_at_once_without_the_waiter(
    clock: FakeClock,
) -> None:
    queue = make_queue(clock)  # not running: only the immediate path can deliver
    queue.add_after("a", 0)
    queue.add_after("b", -1)
    assert await take_all(queue) == ["a", "b"]


async def test_add_then_pending_add_after_fires_again_later(clock: FakeClock) -> None:
    """As in client-go, an immediate add does not cancel a waiting add_after."""
    queue = make_queue(clock)
    async with queue:
        queue.add_after("k", 5)
        queue.add("k")
        assert await take_all(queue) == ["k"]
        await clock.advance(5)
        assert await take_all(queue) == ["k"]


async def test_ready_key_is_deduplicated_against_the_queue(clock: FakeClock) -> None:
    queue = make_queue(clock)
    async with queue:
        queue.add("k")
        queue.add_after("k", 1)
        await clock.advance(1)
        assert await take_all(queue) == ["k"]


async def test_ready_key_being_processed_is_only_marked_dirty(clock: FakeClock) -> None:
    queue = make_queue(clock)
    async with queue:
        queue.add("k")
        key = await queue.get()
        queue.add_after("k", 1)
        await clock.advance(1)
        assert len(queue) == 0
        queue.done(key)
        assert await take_all(queue) == ["k"]


async def test_waiter_wakes_early_for_an_earlier_item(clock: FakeClock) -> None:
    queue = make_queue(clock, max_wait=1000.0)
    async with queue:
        queue.add_after("late", 100)
        await clock.advance(0)  # the waiter is now asleep until t=100
        queue.add_after("early", 1)
        await clock.advance(1)
        assert ready(queue) == ["early"]
        await clock.advance(99)
        assert await take_all(queue) == ["early", "late"]


async def test_waiter_loops_at_least_every_max_wait(clock: FakeClock) -> None:
    queue = make_queue(clock, max_wait=10.0)
    async with queue:
        await clock.advance(35)
        assert clock.now == 35
        assert clock.sleepers == 1  # just the waiter, re-armed after each 10 s heartbeat


async def test_leaving_the_context_stops_the_waiter_and_shuts_down(clock: FakeClock) -> None:
    queue = make_queue(clock)
    async with queue:
        queue.add_after("k", 5)
        await clock.advance(0)
        assert clock.sleepers == 1
    assert clock.sleepers == 0
    assert queue.shutting_down
    with pytest.raises(QueueShutDown):
        await queue.get()


async def test_context_exit_propagates_the_body_exception(clock: FakeClock) -> None:
    queue = make_queue(clock)
    with pytest.raises(KeyError, match="boom"):
        async with queue:
            raise KeyError("boom")
    assert clock.sleepers == 0


async def test_run_cannot_be_started_twice(clock: FakeClock) -> None:
    queue = make_queue(clock)
    async with queue:
        await clock.advance(0)
        with pytest.raises(RuntimeError, match="already running"):
            await queue.run()


async def test_run_returns_on_shutdown(clock: FakeClock) -> None:
    queue = make_queue(clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(queue.run)
        await clock.advance(0)
        queue.shutdown()
    assert clock.sleepers == 0


async def test_add_after_with_the_real_anyio_clock() -> None:
    """The defaults (anyio's clock and sleep) deliver in ready-time order."""
    queue = WorkQueue[str]("real")
    async with queue:
        queue.add_after("b", 0.02)
        queue.add_after("a", 0.01)
        with anyio.fail_after(5):
            first = await queue.get()
            second = await queue.get()
    assert [first, second] == ["a", "b"]


# -- rate limiting ------------------------------------------------------------------------


async def test_add_rate_limited_waits_for_the_limiter_delay(clock: FakeClock) -> None:
    limiter = ItemExponentialFailureRateLimiter[Hashable](base=1.0, max=100.0)
    queue = make_queue(clock, rate_limiter=limiter)
    async with queue:
        queue.add_rate_limited("k")  # 1 s
        await clock.advance(0.9)
        assert len(queue) == 0
        await clock.advance(0.1)
        assert await take_all(queue) == ["k"]
        queue.add_rate_limited("k")  # 2 s
        await clock.advance(1.9)
        assert len(queue) == 0
        await clock.advance(0.1)
        assert await take_all(queue) == ["k"]


async def test_forget_and_num_requeues(clock: FakeClock) -> None:
    queue = make_queue(clock, rate_limiter=ItemExponentialFailureRateLimiter[Hashable]())
    for _ in range(3):
        queue.add_rate_limited("k")
    queue.add_rate_limited("j")
    assert (queue.num_requeues("k"), queue.num_requeues("j")) == (3, 1)
    queue.forget("k")
    assert (queue.num_requeues("k"), queue.num_requeues("j")) == (0, 1)


async def test_default_rate_limiter_is_the_controller_default(clock: FakeClock) -> None:
    queue = make_queue(clock)
    assert [queue.rate_limiter.when("k") for _ in range(3)] == pytest.approx([0.005, 0.01, 0.02])


# -- metrics ------------------------------------------------------------------------------


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def sample(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name, {"name": "test", "controller": "ctl"})


async def test_metrics_adds_and_depth(clock: FakeClock, registry: CollectorRegistry) -> None:
    queue = make_queue(clock, WorkqueueMetrics.create(registry))
    for key in ("a", "b", "a"):
        queue.add(key)
    assert sample(registry, "workqueue_adds_total") == 2
    assert sample(registry, "workqueue_depth") == 2
    key = await queue.get()
    assert sample(registry, "workqueue_depth") == 1
    queue.add(key)  # dirty while processing: counted as an add and in depth, as client-go
    assert sample(registry, "workqueue_adds_total") == 3
    assert sample(registry, "workqueue_depth") == 2
    assert len(queue) == 1


async def test_metrics_queue_and_work_duration(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    queue = make_queue(clock, WorkqueueMetrics.create(registry))
    queue.add("a")
    clock.now = 2.0
    queue.add("a")  # duplicate: keeps the first add time
    clock.now = 3.0
    key = await queue.get()
    clock.now = 3.5
    queue.done(key)
    assert sample(registry, "workqueue_queue_duration_seconds_count") == 1
    assert sample(registry, "workqueue_queue_duration_seconds_sum") == pytest.approx(3.0)
    assert sample(registry, "workqueue_work_duration_seconds_count") == 1
    assert sample(registry, "workqueue_work_duration_seconds_sum") == pytest.approx(0.5)


async def test_metrics_retries_count_every_add_after(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    queue = make_queue(clock, WorkqueueMetrics.create(registry))
    queue.add("plain")
    assert sample(registry, "workqueue_retries_total") == 0
    queue.add_rate_limited("a")
    queue.add_after("b", 1)
    queue.add_after("c", 0)
    assert sample(registry, "workqueue_retries_total") == 3
    queue.shutdown()
    queue.add_after("d", 1)  # dropped: not a retry
    assert sample(registry, "workqueue_retries_total") == 3


async def test_metrics_unfinished_work_on_demand(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    queue = make_queue(clock, WorkqueueMetrics.create(registry))
    queue.add("a")
    queue.add("b")
    await queue.get()
    clock.now = 1.0
    b = await queue.get()
    clock.now = 4.0
    queue.update_unfinished_work()
    assert sample(registry, "workqueue_unfinished_work_seconds") == pytest.approx(7.0)
    assert sample(registry, "workqueue_longest_running_processor_seconds") == pytest.approx(4.0)
    queue.done("a")
    queue.done(b)
    queue.update_unfinished_work()
    assert sample(registry, "workqueue_unfinished_work_seconds") == 0
    assert sample(registry, "workqueue_longest_running_processor_seconds") == 0


async def test_metrics_unfinished_work_ticks_every_500ms(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    queue = make_queue(clock, WorkqueueMetrics.create(registry))
    async with queue:
        queue.add("a")
        await queue.get()
        await clock.advance(0.4)
        assert sample(registry, "workqueue_longest_running_processor_seconds") == 0
        await clock.advance(0.1)
        assert sample(registry, "workqueue_longest_running_processor_seconds") == pytest.approx(0.5)
        await clock.advance(1.0)
        assert sample(registry, "workqueue_unfinished_work_seconds") == pytest.approx(1.5)
