from __future__ import annotations

from collections import Counter

import anyio
import anyio.lowlevel
import pytest
from prometheus_client import CollectorRegistry

from runs_controller.observability.metrics import ControllerMetrics
from runs_controller.runtime.controller import Controller, Result


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
        "demo", reconcile, workers=2, metrics=ControllerMetrics.create(registry)
    )
    async with anyio.create_task_group() as group:
        group.start_soon(controller.run)
        for key in ("ok", "boom", "again", "later"):
            controller.enqueue(key)
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
    assert controller.queue.num_requeues("boom") == 0  # forgotten after success


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

    controller = Controller("c", reconcile, workers=4)
    async with anyio.create_task_group() as group:
        group.start_soon(controller.run)
        for _ in range(20):
            for key in ("a", "b"):
                controller.enqueue(key)
            await anyio.lowlevel.checkpoint()
        with anyio.fail_after(10):
            while count < 3:
                await anyio.lowlevel.checkpoint()
        controller.enqueue("a")
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

    controller = Controller("c", reconcile)
    async with anyio.create_task_group() as group:
        group.start_soon(controller.run)
        controller.enqueue("slow")
        await started.wait()
        group.start_soon(controller.shutdown)
        await anyio.wait_all_tasks_blocked()
        controller.enqueue("after-shutdown")  # dropped: intake is closed
        release.set()
    assert finished == ["slow"]


def test_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="worker"):
        Controller("c", lambda key: _never(), workers=0)


async def _never() -> Result:
    raise AssertionError
