"""Pure work in worker threads: results, errors and cancellation, and the loop stays free."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from runs_controller.runtime.offload import MAX_THREADS, run_pure


def busy(until: threading.Event) -> str:
    """CPU-bound until told to stop (as an evaluation burning its budget)."""
    while not until.is_set():
        sum(range(1000))
    return threading.current_thread().name


async def test_the_loop_keeps_running_while_pure_work_computes() -> None:
    stop = threading.Event()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while ticks < 20:
            await anyio.sleep(0.001)
            ticks += 1
        stop.set()

    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        worker = await run_pure(busy, stop)
    # The loop ticked 20 times while the thread computed (it only stops when the ticks are done).
    assert ticks == 20
    assert worker != threading.current_thread().name


async def test_errors_propagate_and_results_come_back() -> None:
    assert await run_pure(divmod, 7, 2) == (3, 1)
    with pytest.raises(ZeroDivisionError):
        await run_pure(divmod, 1, 0)


async def test_a_cancelled_caller_stops_waiting_and_the_work_ends_by_itself() -> None:
    stop = threading.Event()
    with anyio.move_on_after(0.05) as scope:
        await run_pure(busy, stop)
    assert scope.cancelled_caught
    stop.set()  # the computation's own budget ends it


async def test_at_most_max_threads_computations_at_once() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    async with anyio.create_task_group() as group:
        for _ in range(6):
            group.start_soon(run_pure, work)
    assert peak == MAX_THREADS
