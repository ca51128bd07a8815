"""A workqueue with client-go semantics for one asyncio event loop.

What it guarantees (client-go `util/workqueue`, queue + delaying + rate limiting):

* a key is queued at most once (the *dirty* set), in FIFO order, or, given `order`, lowest
  rank first (ties in FIFO order): the rank of a key is taken when it becomes ready;
* a key is never handed to two workers at once: re-adding a key that is being processed
  only marks it dirty, and `done` queues it again, once;
* `add_after` keeps delayed keys in a heap; a duplicate keeps the *earlier* ready time, and
  a key that becomes ready is added as by `add` (so the usual dedupe applies then);
* `shutdown` stops intake at once, workers still get what is queued, then `QueueShutDown`.

Delayed keys are moved into the queue by one background task, `run()` (or `async with
queue:`). The same task refreshes the unfinished-work gauges every 500 ms, as client-go does;
`update_unfinished_work()` does it on demand.

Everything runs on the event loop thread: the methods are not thread-safe, and need no lock.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import anyio
import anyio.lowlevel

from runs_controller.runtime.ratelimit import default_controller_rate_limiter

if TYPE_CHECKING:
    from types import TracebackType

    from prometheus_client import Counter, Gauge, Histogram

    from runs_controller.observability.metrics import WorkqueueMetrics
    from runs_controller.runtime.ratelimit import RateLimiter

K = TypeVar("K", bound=Hashable)

# client-go's `maxWait`: insurance that a ready key never sits longer than this.
MAX_WAIT = 10.0
# client-go's `defaultUnfinishedWorkUpdatePeriod`.
UNFINISHED_WORK_UPDATE_PERIOD = 0.5


class QueueShutDown(Exception):
    """Raised by `get()` once the queue is shut down and has nothing left to hand out."""


class _BoundMetrics:
    """The metric children for one queue, resolved once instead of per call."""

    __slots__ = (
        "adds",
        "depth",
        "longest_running_processor",
        "queue_duration",
        "retries",
        "unfinished_work",
        "work_duration",
    )

    def __init__(self, metrics: WorkqueueMetrics, name: str, controller: str) -> None:
        labels = {"name": name, "controller": controller}
        self.depth: Gauge = metrics.depth.labels(**labels)
        self.adds: Counter = metrics.adds.labels(**labels)
        self.queue_duration: Histogram = metrics.queue_duration.labels(**labels)
        self.work_duration: Histogram = metrics.work_duration.labels(**labels)
        self.unfinished_work: Gauge = metrics.unfinished_work.labels(**labels)
        self.longest_running_processor: Gauge = metrics.longest_running_processor.labels(**labels)
        self.retries: Counter = metrics.retries.labels(**labels)


class WorkQueue(Generic[K]):
    """Rate-limited, delaying, deduplicating work queue (client-go `TypedRateLimitingQueue`).

    `clock` and `sleep` default to anyio's loop clock; tests inject fakes to drive time.
    """

    def __init__(
        self,
        name: str = "",
        *,
        controller: str = "",
        rate_limiter: RateLimiter[K] | None = None,
        metrics: WorkqueueMetrics | None = None,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        max_wait: float = MAX_WAIT,
        unfinished_work_update_period: float = UNFINISHED_WORK_UPDATE_PERIOD,
        order: Callable[[K], Any] | None = None,
    ) -> None:
        self.name = name
        self.controller = controller
        self.rate_limiter: RateLimiter[K] = (
            rate_limiter if rate_limiter is not None else default_controller_rate_limiter()
        )
        self._metrics = _BoundMetrics(metrics, name, controller) if metrics is not None else None
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait
        self._update_period = unfinished_work_update_period

        self._queue: deque[K] = deque()  # ready keys, FIFO (without `order`)
        # With `order`: a min-heap of (rank, seq, key); a key is in it at most once (dirty set).
        self._order = order
        self._ranked: list[tuple[Any, int, K]] = []
        self._ready_seq = itertools.count()
        self._dirty: set[K] = set()  # keys that need processing (queued or re-added)
        self._processing: dict[K, float] = {}  # key -> start time (0.0 without metrics)
        self._added_at: dict[K, float] = {}  # for queue_duration; only with metrics
        self._getters: deque[anyio.Event] = deque()  # blocked get() calls, oldest first
        self._shutting_down = False
        self._drain = False
        self._drained: anyio.Event | None = None

        # Delayed keys: a min-heap of (ready_at, seq, key) plus key -> (ready_at, seq) of its
        # live entry. An earlier add_after for a waiting key pushes a new entry; the old one
        # no longer matches `_waiting` and is skipped when it reaches the top. `seq` keeps
        # keys with equal ready times in add order.
        self._heap: list[tuple[float, int, K]] = []
        self._waiting: dict[K, tuple[float, int]] = {}
        self._seq = itertools.count()
        self._wake_at = float("inf")  # when the waiter will next look at the heap
        self._wake_scope: anyio.CancelScope | None = None
        self._running = False
        self._task_group: anyio.abc.TaskGroup | None = None

    # -- basic queue ------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of keys ready to be handed out (not counting keys being processed)."""
        return len(self._queue) + len(self._ranked)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: K) -> None:
        """Queue `key` unless it is already queued; if it is being processed, mark it dirty."""
        if self._shutting_down or key in self._dirty:
            return
        if self._metrics is not None:
            self._metrics.adds.inc()
            self._metrics.depth.inc()
            self._added_at[key] = self._clock()
        self._dirty.add(key)
        if key not in self._processing:
            self._push(key)

    async def get(self) -> K:
        """Wait for a key and mark it as being processed; the caller must call `done(key)`.

        Raises `QueueShutDown` once the queue is shut down and empty. Always yields to the
        event loop once, so a busy worker cannot starve other tasks.
        """
        await anyio.lowlevel.checkpoint()
        while not (self._queue or self._ranked):
            if self._shutting_down:
                raise QueueShutDown
            event = anyio.Event()
            self._getters.append(event)
            try:
                await event.wait()
            except BaseException:
                if event.is_set():
                    self._wake_getter()  # pass the wake-up on, or a key could sit unseen
                else:
                    self._getters.remove(event)
                raise
        key = heapq.heappop(self._ranked)[2] if self._ranked else self._queue.popleft()
        self._dirty.discard(key)
        if self._metrics is not None:
            now = self._clock()
            self._processing[key] = now
            self._metrics.depth.dec()
            added_at = self._added_at.pop(key, None)
            if added_at is not None:
                self._metrics.queue_duration.observe(now - added_at)
        else:
            self._processing[key] = 0.0
        return key

    def done(self, key: K) -> None:
        """Mark `key` finished; if it was added meanwhile, queue it again now.

        A key that is not being processed is ignored (client-go would queue a dirty key a
        second time here).
        """
        started = self._processing.pop(key, None)
        if started is None:
            return
        if self._metrics is not None:
            self._metrics.work_duration.observe(self._clock() - started)
        if key in self._dirty:
            self._push(key)
        if not self._processing and self._drained is not None:
            self._drained.set()
            self._drained = None

    def shutdown(self) -> None:
        """Stop intake now; getters get what is queued, then `QueueShutDown`."""
        self._drain = False
        self._begin_shutdown()
        if self._drained is not None:
            self._drained.set()
            self._drained = None

    async def shutdown_with_drain(self) -> None:
        """`shutdown`, then wait until no key is being processed.

        Like client-go, this waits for `processing` to empty, not for the queue: keys still
        queued are left to whoever keeps calling `get`. A later `shutdown()` stops the wait.
        """
        self._drain = True
        self._begin_shutdown()
        while self._processing and self._drain:
            if self._drained is None:
                self._drained = anyio.Event()
            await self._drained.wait()

    def _begin_shutdown(self) -> None:
        self._shutting_down = True
        while self._getters:
            self._getters.popleft().set()
        self._heap.clear()
        self._waiting.clear()
        if self._wake_scope is not None:
            self._wake_scope.cancel()

    def _push(self, key: K) -> None:
        if self._order is None:
            self._queue.append(key)
        else:
            heapq.heappush(self._ranked, (self._order(key), next(self._ready_seq), key))
        self._wake_getter()

    def _wake_getter(self) -> None:
        if self._getters:
            self._getters.popleft().set()

    # -- delaying queue ---------------------------------------------------------------------

    def add_after(self, key: K, delay: float) -> None:
        """Add `key` after `delay` seconds; a key already waiting keeps the earlier time.

        Needs the background task (`run()` / `async with queue:`) to deliver it, unless
        `delay <= 0`, which adds at once.
        """
        if self._shutting_down:
            return
        if self._metrics is not None:
            self._metrics.retries.inc()
        if delay <= 0:
            self.add(key)
            return
        ready_at = self._clock() + delay
        waiting = self._waiting.get(key)
        if waiting is not None and waiting[0] <= ready_at:
            return
        seq = next(self._seq)
        self._waiting[key] = (ready_at, seq)
        heapq.heappush(self._heap, (ready_at, seq, key))
        if ready_at < self._wake_at and self._wake_scope is not None:
            self._wake_scope.cancel()

    def _add_ready(self, now: float) -> float | None:
        """Add every waiting key whose time has come; return the next ready time, if any."""
        heap, waiting = self._heap, self._waiting
        while heap:
            ready_at, seq, key = heap[0]
            live = waiting.get(key) == (ready_at, seq)
            if live and ready_at > now:
                return ready_at
            heapq.heappop(heap)
            if live:
                del waiting[key]
                self.add(key)
        return None

    async def _waiting_loop(self) -> None:
        while not self._shutting_down:
            now = self._clock()
            next_ready = self._add_ready(now)
            timeout = self._max_wait
            if next_ready is not None:
                timeout = min(next_ready - now, timeout)
            self._wake_at = now + timeout
            with anyio.CancelScope() as scope:
                self._wake_scope = scope
                await self._sleep(timeout)
            self._wake_scope = None
            self._wake_at = float("inf")

    # -- rate limiting ----------------------------------------------------------------------

    def add_rate_limited(self, key: K) -> None:
        """`add_after(key, rate_limiter.when(key))`: the retry path after a failure."""
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: K) -> None:
        """Reset the key's backoff; call it when the key was processed successfully."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.rate_limiter.num_requeues(key)

    # -- background task and metrics --------------------------------------------------------

    def update_unfinished_work(self) -> None:
        """Set unfinished_work_seconds and longest_running_processor_seconds from now."""
        if self._metrics is None:
            return
        now = self._clock()
        total = longest = 0.0
        for started in self._processing.values():
            age = now - started
            total += age
            longest = max(longest, age)
        self._metrics.unfinished_work.set(total)
        self._metrics.longest_running_processor.set(longest)

    async def _unfinished_work_loop(self) -> None:
        while not self._shutting_down:
            self.update_unfinished_work()
            await self._sleep(self._update_period)

    async def run(self) -> None:
        """Deliver delayed keys (and tick the unfinished-work gauges) until shutdown."""
        if self._running:
            raise RuntimeError(f"workqueue {self.name!r} is already running")
        self._running = True
        try:
            async with anyio.create_task_group() as tg:
                if self._metrics is not None:
                    tg.start_soon(self._unfinished_work_loop)
                await self._waiting_loop()
                tg.cancel_scope.cancel()
        finally:
            self._running = False

    async def __aenter__(self) -> Self:
        """Start `run()` in the background; leaving the block shuts the queue down."""
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        task_group.start_soon(self.run)
        self._task_group = task_group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self.shutdown()
        task_group, self._task_group = self._task_group, None
        if task_group is None:
            raise RuntimeError("__aexit__ without __aenter__")
        task_group.cancel_scope.cancel()
        # The body's own exception is not passed in: the task group would wrap it in an
        # ExceptionGroup. Returning None lets it propagate unchanged.
        await task_group.__aexit__(None, None, None)
        return None
