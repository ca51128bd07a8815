"""A controller: N workers taking keys from a workqueue and calling a reconciler.

controller-runtime's contract: a reconcile returns `Result()` (done: forget the key's backoff),
`Result(requeue_after=s)` (forget, then come back in s seconds: timers, polls) or
`Result(requeue=True)` (come back with backoff); an exception is logged with the key and
requeued with per-key exponential backoff, and never kills the worker. The workqueue makes sure
one key is never reconciled by two workers at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import structlog

from runs_controller.runtime.workqueue import QueueShutDown, WorkQueue

if TYPE_CHECKING:
    from runs_controller.observability.metrics import ControllerMetrics, WorkqueueMetrics

log = structlog.get_logger("runs_controller.controller")

RESULTS = ("success", "error", "requeue", "requeue_after")


@dataclass(frozen=True)
class Result:
    requeue: bool = False
    requeue_after: float | None = None


Reconciler = Callable[[str], Awaitable[Result]]


class Controller:
    """Owns a workqueue; `run()` starts the workers and returns when the queue is drained."""

    def __init__(
        self,
        name: str,
        reconcile: Reconciler,
        *,
        workers: int = 1,
        metrics: ControllerMetrics | None = None,
        queue_metrics: WorkqueueMetrics | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a controller needs at least one worker")
        self.name = name
        self._reconcile = reconcile
        self.workers = workers
        self._metrics = metrics
        self.queue: WorkQueue[str] = WorkQueue(name, controller=name, metrics=queue_metrics)
        if metrics is not None:
            for result in RESULTS:
                metrics.reconcile_total.labels(name, result)
            metrics.max_concurrent_reconciles.labels(name).set(workers)
            metrics.active_workers.labels(name).set(0)

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    async def run(self) -> None:
        """Run the workers until the queue is shut down (see `shutdown`)."""
        async with self.queue, anyio.create_task_group() as group:
            for _ in range(self.workers):
                group.start_soon(self._worker)

    async def shutdown(self) -> None:
        """Stop intake and wait for in-flight reconciles to finish (call under a deadline)."""
        await self.queue.shutdown_with_drain()
        self.queue.shutdown()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                await self._process(key)
            finally:
                self.queue.done(key)

    async def _process(self, key: str) -> None:
        metrics = self._metrics
        reconcile_id = str(uuid.uuid4())
        started = anyio.current_time()
        if metrics is not None:
            metrics.active_workers.labels(self.name).inc()
        with structlog.contextvars.bound_contextvars(
            controller=self.name, key=key, reconcile_id=reconcile_id
        ):
            try:
                result = await self._reconcile(key)
            except Exception as error:
                outcome = "error"
                self.queue.add_rate_limited(key)
                log.exception("reconcile_failed", error=str(error))
                if metrics is not None:
                    metrics.reconcile_errors.labels(self.name).inc()
            else:
                if result.requeue_after is not None and result.requeue_after > 0:
                    outcome = "requeue_after"
                    self.queue.forget(key)
                    self.queue.add_after(key, result.requeue_after)
                elif result.requeue:
                    outcome = "requeue"
                    self.queue.add_rate_limited(key)
                else:
                    outcome = "success"
                    self.queue.forget(key)
            finally:
                if metrics is not None:
                    metrics.active_workers.labels(self.name).dec()
                    metrics.reconcile_time.labels(self.name).observe(anyio.current_time() - started)
        if metrics is not None:
            metrics.reconcile_total.labels(self.name, outcome).inc()
