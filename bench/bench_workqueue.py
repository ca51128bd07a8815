"""Workqueue throughput: add + get + done per second, on one asyncio event loop.

Run: .venv/bin/python bench/bench_workqueue.py. Numbers only, no assertions: compare runs
on the same machine, not across machines.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
from prometheus_client import CollectorRegistry

from runs_controller.observability.metrics import WorkqueueMetrics
from runs_controller.runtime.workqueue import QueueShutDown, WorkQueue

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

N = 100_000


def new_queue(with_metrics: bool) -> WorkQueue[str]:
    metrics = WorkqueueMetrics.create(CollectorRegistry()) if with_metrics else None
    return WorkQueue[str]("bench", controller="bench", metrics=metrics)


async def worker(queue: WorkQueue[str], processed: list[int]) -> None:
    while True:
        try:
            key = await queue.get()
        except QueueShutDown:
            return
        processed[0] += 1
        queue.done(key)


async def distinct_keys(with_metrics: bool) -> tuple[int, float]:
    """100k distinct keys added up front, then drained by one worker."""
    queue = new_queue(with_metrics)
    processed = [0]
    keys = [f"ns/obj-{i}" for i in range(N)]
    start = time.perf_counter()
    for key in keys:
        queue.add(key)
    queue.shutdown()  # the worker drains what is queued, then stops
    await worker(queue, processed)
    return processed[0], time.perf_counter() - start


async def hot_keys(with_metrics: bool) -> tuple[int, float]:
    """100k adds over 1k keys, interleaved with 4 workers (dedupe does most of the work)."""
    queue = new_queue(with_metrics)
    processed = [0]
    keys = [f"ns/obj-{i}" for i in range(1_000)]
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(worker, queue, processed)
        for i in range(N):
            queue.add(keys[i % 1_000])
            if i % 100 == 99:
                await anyio.lowlevel.checkpoint()  # a watch stream yields between events
        await queue.shutdown_with_drain()
    return processed[0], time.perf_counter() - start


async def main() -> None:
    cases: list[tuple[str, Callable[[bool], Awaitable[tuple[int, float]]]]] = [
        ("100k distinct keys, 1 worker", distinct_keys),
        ("100k adds of 1k keys, 4 workers", hot_keys),
    ]
    for label, case in cases:
        for with_metrics in (False, True):
            processed, elapsed = await case(with_metrics)
            sys.stdout.write(
                f"{label:34} metrics={'on ' if with_metrics else 'off'} "
                f"{N / elapsed:>10,.0f} adds/s  {processed / elapsed:>10,.0f} processed/s  "
                f"({processed:,} processed in {elapsed * 1000:.0f} ms)\n"
            )


if __name__ == "__main__":
    anyio.run(main, backend="asyncio")
