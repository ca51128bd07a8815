"""A controller: N workers taking requests from a workqueue and calling a reconciler.

controller-runtime's contract (see `reconciler.py` for the reconciler's side): `Result()`
forgets the key's backoff, `Result(requeue_after=s)` forgets it and comes back in s seconds,
`Result(requeue=True)` comes back with backoff; a `TerminalError` is not retried (the reconciler
may report it in a condition); any other exception, and a reconcile that outlives
`reconcile_timeout`, is logged with the key and retried with per-key exponential backoff and
never kills the worker. A write refused by the leader fence (`WriteFenced`) ends the reconcile
quietly: leadership is going, the next leader picks the key up from its own cache.

The workqueue makes sure one key is never reconciled by two workers at once. After `shutdown()`
no queued key is started any more; the ones in flight finish.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from runs_controller.kube.errors import Forbidden, WriteFenced
from runs_controller.runtime.reconciler import (
    ReportsTerminalErrors,
    Request,
    TerminalError,
)
from runs_controller.runtime.workqueue import QueueShutDown, WorkQueue

if TYPE_CHECKING:
    from collections.abc import Callable

    from runs_controller.observability.metrics import ControllerMetrics, WorkqueueMetrics
    from runs_controller.runtime.reconciler import Reconciler

log = structlog.get_logger("runs_controller.controller")

RESULTS = ("success", "error", "requeue", "requeue_after")
DEFAULT_RECONCILE_TIMEOUT = 60.0


class Controller:
    """Owns a workqueue; `run()` starts the workers and returns when the queue is shut down."""

    def __init__(
        self,
        name: str,
        reconciler: Reconciler,
        *,
        workers: int = 1,
        reconcile_timeout: float | None = DEFAULT_RECONCILE_TIMEOUT,
        metrics: ControllerMetrics | None = None,
        queue_metrics: WorkqueueMetrics | None = None,
        order: Callable[[Request], Any] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a controller needs at least one worker")
        if reconcile_timeout is not None and reconcile_timeout <= 0:
            raise ValueError("reconcile_timeout must be > 0 (or None for no limit)")
        self.name = name
        self.reconciler = reconciler
        self.workers = workers
        self.reconcile_timeout = reconcile_timeout
        self._metrics = metrics
        self._stopping = False
        self.queue: WorkQueue[Request] = WorkQueue(
            name, controller=name, metrics=queue_metrics, order=order
        )
        if metrics is not None:
            for result in RESULTS:
                metrics.reconcile_total.labels(name, result)
            for counter in (metrics.reconcile_errors, metrics.terminal_errors, metrics.timeouts):
                counter.labels(name)
            metrics.max_concurrent_reconciles.labels(name).set(workers)
            metrics.active_workers.labels(name).set(0)

    def enqueue(self, request: Request) -> None:
        self.queue.add(request)

    async def run(self) -> None:
        """Run the workers until the queue is shut down (see `shutdown`)."""
        async with self.queue, anyio.create_task_group() as group:
            for _ in range(self.workers):
                group.start_soon(self._worker)

    async def shutdown(self) -> None:
        """Start no queued key any more and wait for in-flight reconciles (call under a
        deadline); then the workers end."""
        self._stopping = True
        await self.queue.shutdown_with_drain()
        self.queue.shutdown()

    async def _worker(self) -> None:
        while True:
            try:
                request = await self.queue.get()
            except QueueShutDown:
                return
            try:
                if not self._stopping:
                    await self._process(request)
            finally:
                self.queue.done(request)

    async def _process(self, request: Request) -> None:
        metrics = self._metrics
        started = anyio.current_time()
        if metrics is not None:
            metrics.active_workers.labels(self.name).inc()
        with structlog.contextvars.bound_contextvars(
            controller=self.name,
            namespace=request.namespace,
            name=request.name,
            reconcile_id=str(uuid.uuid4()),
        ):
            try:
                outcome = await self._reconcile(request)
            finally:
                if metrics is not None:
                    metrics.active_workers.labels(self.name).dec()
                    metrics.reconcile_time.labels(self.name).observe(anyio.current_time() - started)
        if metrics is not None:
            metrics.reconcile_total.labels(self.name, outcome).inc()

    async def _reconcile(self, request: Request) -> str:
        """Call the reconciler and turn its outcome into queue actions; returns the result label."""
        queue, metrics = self.queue, self._metrics
        try:
            with anyio.move_on_after(self.reconcile_timeout) as scope:
                result = await self.reconciler.reconcile(request)
        except TerminalError as error:
            queue.forget(request)
            if metrics is not None:
                metrics.reconcile_errors.labels(self.name).inc()
                metrics.terminal_errors.labels(self.name).inc()
            log.error("reconcile_terminal_error", reason=error.reason, error=error.message)
            await self._report_terminal(request, error)
            return "error"
        except WriteFenced as error:
            queue.add_rate_limited(request)
            log.warning("reconcile_fenced", error=str(error))
            return "error"
        except Exception as error:
            if isinstance(error, Forbidden) and error.namespace_terminating:
                # Nothing new can be created there and the object goes with its namespace:
                # retrying would only spin until it is gone.
                queue.forget(request)
                log.info("reconcile_stopped_namespace_terminating", namespace=request.namespace)
                return "success"
            queue.add_rate_limited(request)
            if metrics is not None:
                metrics.reconcile_errors.labels(self.name).inc()
            log.exception("reconcile_failed", error=str(error))
            return "error"
        if scope.cancelled_caught:
            queue.add_rate_limited(request)
            if metrics is not None:
                metrics.reconcile_errors.labels(self.name).inc()
                metrics.timeouts.labels(self.name).inc()
            log.error("reconcile_timed_out", timeout=self.reconcile_timeout)
            return "error"
        if result.requeue_after is not None and result.requeue_after > 0:
            queue.forget(request)
            queue.add_after(request, result.requeue_after)
            return "requeue_after"
        if result.requeue:
            queue.add_rate_limited(request)
            return "requeue"
        queue.forget(request)
        return "success"

    async def _report_terminal(self, request: Request, error: TerminalError) -> None:
        if not isinstance(self.reconciler, ReportsTerminalErrors):
            return
        try:
            with anyio.fail_after(self.reconcile_timeout):
                await self.reconciler.report_terminal(request, error)
        except Exception as report_error:
            # The condition must get written eventually: retry the whole key with backoff.
            self.queue.add_rate_limited(request)
            log.warning("terminal_error_report_failed", error=str(report_error))
