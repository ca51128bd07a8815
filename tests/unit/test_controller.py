from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import pytest
from prometheus_client import CollectorRegistry

from runs_controller.api.meta import Status, StatusCause, StatusDetails
from runs_controller.kube.errors import NAMESPACE_TERMINATING, Forbidden, WriteFenced
from runs_controller.observability.metrics import ControllerMetrics
from runs_controller.runtime.controller import Controller
from runs_controller.runtime.reconciler import Request, Result, TerminalError


class FnReconciler:
    """A reconciler made of one async function of the request's name."""

    def __init__(self, fn: Callable[[str], Awaitable[Result]]) -> None:
        self.fn = fn

    async def reconcile(self, request: Request) -> Result:
        return await self.fn(request.name)


def req(name: str) -> Request:
    return Request("ns", name)


def _metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_results_errors_and_metrics() -> None:
    registry = CollectorRegistry()
    calls: Counter[str] = Counter()
    done = anyio.Event()

    async def reconcile(key: str) -> Result:
        calls[key] += 1
        if key == "boom" and calls[key] == 1:
            raise RuntimeError("first attempt fails")
        if key == "again" and calls[key] == 1:
            return Result(requeue=True)
        if key == "later" and calls[key] == 1:
            return Result(requeue_after=0.01)
        if sum(calls.values()) == 7:
            done.set()
        return Result()

    controller = Controller(
        "demo", FnReconciler(reconcile), workers=2, metrics=ControllerMetrics.create(registry)
    )
    async with anyio.create_task_group() as group:
        group.start_soon(controller.run)
        for key in ("ok", "boom", "again", "later"):
            controller.enqueue(req(key))
        with anyio.fail_after(10):
            await done.wait()
        await controller.shutdown()
    assert calls == {"ok": 1, "boom": 2, "again": 2, "later": 2}
    total = "controller_runtime_reconcile_total"
    assert _metric(registry, total, controller="demo", result="success") == 4
    assert _metric(registry, total, controller="demo", result="error") == 1
    assert _metric(registry, total, controller="demo", result="requeue") == 1
    assert _metric(registry, total, controller="demo", result="requeue_after") == 1
    assert _metric(registry, "controller_runtime_reconcile_errors_total", controller="demo") == 1
    assert _metric(registry, "controller_runtime_active_workers", controller="demo") == 0
    assert _metric(registry, "controller_runtime_max_concurrent_reconciles", controller="demo") == 2
    assert controller.queue.num_requeues(req("boom")) == 0  # forgotten after success


async def test_one_key_is_never_reconciled_concurrently() -> None:
    running: set[str] = set()
    overlaps = 0
    count = 0
    finished = anyio.Event()

    async def reconcile(key: str) -> Result:
        nonlocal overlaps, count
        if key in running:
            overlaps += 1
        running.add(key)
        await anyio.lowlevel.checkpoint()
        running.discard(key)
        count += 1
        if count >= 20:
            finished.set()
        return Result()

    controller = Controller("c", FnReconciler(reconcile), workers=4)
    async with anyio.create_task_group() as group:
        group.start_soon(controller.run)
        for _ in range(20):
            for key in ("a", "b"):
                controller.enqueue(req(key))
            await anyio.lowlevel.checkpoint()
        with anyio.fail_after(10):
            while count < 3:
                await anyio.lowlevel.checkpoint()
        controller.enqueue(req("a"))
        with anyio.fail_after(10):
            await anyio.wait_all_tasks_blocked()
        await controller.shutdown()
    assert overlaps == 0


async def test_shutdown_lets_in_flight_reconciles_finish() -> None:
    started, release = anyio.Event(), anyio.Event()
    finished: list[str] = []

    async def reconcile(key: str) -> Result:
        started.set()
        await release.wait()
        finished.append(key)
        return Result()

    controller = Controller("c", FnReconciler(reconcile))
    async with anyio.create_task_group() as group:
        group.start_soon(controller.run)
        controller.enqueue(req("slow"))
        await started.wait()
        group.start_soon(controller.shutdown)
        await anyio.wait_all_tasks_blocked()
        controller.enqueue(req("after-shutdown"))  # dropped: intake is closed
        release.set()
    assert finished == ["slow"]


async def test_no_queued_key_starts_after_shutdown() -> None:
    """50 keys queued behind one in flight: shutdown lets the one finish and starts none."""
    started: list[str] = []
    release = anyio.Event()

    async def reconcile(name: str) -> Result:
        started.append(name)
        await release.wait()
        return Result()

    controller = Controller("c", FnReconciler(reconcile), workers=1)
    async with anyio.create_task_group() as group:
        group.start_soon(controller.run)
        for i in range(50):
            controller.enqueue(req(f"k{i}"))
        with anyio.fail_after(10):
            while not started:
                await anyio.lowlevel.checkpoint()
        group.start_soon(controller.shutdown)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert started == ["k0"]


async def test_a_terminal_error_is_not_retried_and_is_reported() -> None:
    registry = CollectorRegistry()
    calls: list[str] = []
    reported: list[tuple[str, str, str]] = []

    class Bad:
        async def reconcile(self, request: Request) -> Result:
            calls.append(request.name)
            raise TerminalError("InvalidStory", f"story of {request.name} has a cycle")

        async def report_terminal(self, request: Request, error: TerminalError) -> None:
            reported.append((request.name, error.reason, error.message))

    controller = Controller("c", Bad(), metrics=ControllerMetrics.create(registry))
    async with anyio.create_task_group() as group:
        group.start_soon(controller.run)
        controller.enqueue(req("x"))
        with anyio.fail_after(10):
            while not reported:
                await anyio.lowlevel.checkpoint()
        await anyio.wait_all_tasks_blocked()
        await controller.shutdown()
    assert calls == ["x"]
    assert reported == [("x", "InvalidStory", "story of x has a cycle")]
    assert controller.queue.num_requeues(req("x")) == 0
    assert len(controller.queue) == 0
    assert (
        _metric(registry, "controller_runtime_terminal_reconcile_errors_total", controller="c") == 1
    )
    assert (
        _metric(registry, "controller_runtime_reconcile_total", controller="c", result="error") == 1
    )


async def test_a_reconcile_past_its_timeout_is_cancelled_and_retried() -> None:
    registry = CollectorRegistry()
    calls: Counter[str] = Counter()
    done = anyio.Event()

    async def reconcile(name: str) -> Result:
        calls[name] += 1
        if calls[name] == 1:
            await anyio.sleep_forever()
        done.set()
        return Result()

    controller = Controller(
        "c",
        FnReconciler(reconcile),
        reconcile_timeout=0.05,
        metrics=ControllerMetrics.create(registry),
    )
    async with anyio.create_task_group() as group:
        group.start_soon(controller.run)
        controller.enqueue(req("hang"))
        with anyio.fail_after(10):
            await done.wait()
        await controller.shutdown()
    assert calls["hang"] == 2
    assert _metric(registry, "controller_runtime_reconcile_timeouts_total", controller="c") == 1


async def test_a_fenced_write_ends_the_reconcile_and_keeps_the_key() -> None:
    calls: Counter[str] = Counter()
    done = anyio.Event()

    async def reconcile(name: str) -> Result:
        calls[name] += 1
        if calls[name] == 1:
            raise WriteFenced("PATCH /x refused: this replica is not the leader")
        done.set()
        return Result()

    controller = Controller("c", FnReconciler(reconcile))
    async with anyio.create_task_group() as group:
        group.start_soon(controller.run)
        controller.enqueue(req("f"))
        with anyio.fail_after(10):
            await done.wait()
        await controller.shutdown()
    assert calls["f"] == 2


def test_needs_a_worker_and_a_positive_timeout() -> None:
    with pytest.raises(ValueError, match="worker"):
        Controller("c", FnReconciler(_never), workers=0)
    with pytest.raises(ValueError, match="reconcile_timeout"):
        Controller("c", FnReconciler(_never), reconcile_timeout=0)


async def _never(name: str) -> Result:
    raise AssertionError(name)


def _forbidden(*causes: str) -> Forbidden:
    details = StatusDetails(causes=[StatusCause(reason=cause) for cause in causes])
    return Forbidden(403, Status(reason="Forbidden", code=403, details=details))


async def test_a_create_refused_in_a_terminating_namespace_is_not_retried() -> None:
    """The namespace takes the object with it; an RBAC refusal (no cause) is retried."""
    registry = CollectorRegistry()
    calls: Counter[str] = Counter()
    second_rbac_attempt = anyio.Event()

    async def reconcile(name: str) -> Result:
        calls[name] += 1
        if name == "rbac" and calls[name] == 2:
            second_rbac_attempt.set()
            return Result()
        raise _forbidden(NAMESPACE_TERMINATING) if name == "dying" else _forbidden()

    controller = Controller(
        "c", FnReconciler(reconcile), metrics=ControllerMetrics.create(registry)
    )
    async with anyio.create_task_group() as group:
        group.start_soon(controller.run)
        controller.enqueue(req("dying"))
        controller.enqueue(req("rbac"))
        with anyio.fail_after(10):
            await second_rbac_attempt.wait()
        await anyio.wait_all_tasks_blocked()
        await controller.shutdown()
    assert calls == {"dying": 1, "rbac": 2}
    assert controller.queue.num_requeues(req("dying")) == 0
    errors = "controller_runtime_reconcile_errors_total"
    assert _metric(registry, errors, controller="c") == 1  # the RBAC refusal only
