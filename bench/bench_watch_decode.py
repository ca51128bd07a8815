"""Watch-stream decode throughput: our path vs kubernetes-asyncio's `Watch.unmarshal_event`.

The stream is synthesised: ~10k MODIFIED events of a realistic StepRun (labels, owner
reference, two managedFields entries, spec with input, status with conditions and output),
as newline-delimited JSON bytes, exactly what the apiserver sends.

Ours: the byte stream cut into 64 KiB chunks -> LineSplitter -> decode_lines into WatchEvent
(object kept raw), then, for the typed row, each object decoded into the StepRun Struct.
kubernetes-asyncio: `unmarshal_event(line, "object")` per pre-split line (what a
CustomObjectsApi watch does: json.loads, then json.dumps + json.loads again through
ApiClient.deserialize), and with `None` (json.loads only). Line splitting is not counted for it.

    .venv/bin/python bench/bench_watch_decode.py [--events 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import TYPE_CHECKING, Any

from kubernetes_asyncio import watch as k8s_watch

from runs_controller.api.codec import decode, encode
from runs_controller.api.runs.steprun import StepRun
from runs_controller.kube.watch import LineSplitter, decode_events, event_object

if TYPE_CHECKING:
    from collections.abc import Callable

CHUNK = 64 * 1024


def report(line: str) -> None:
    print(line)  # noqa: T201 - a benchmark reports on stdout


def steprun(index: int) -> dict[str, Any]:
    """A StepRun as the apiserver would send it mid-run (~2 KB of JSON)."""
    name = f"story-run-{index // 8:05d}-step-{index % 8}"
    stamp = "2026-11-28T14:00:00Z"
    return {
        "apiVersion": "runs.bubustack.io/v1alpha1",
        "kind": "StepRun",
        "metadata": {
            "name": name,
            "namespace": "tenant-a",
            "uid": f"3f1c2b4e-0000-4000-8000-{index:012d}",
            "resourceVersion": str(100_000 + index),
            "generation": 1,
            "creationTimestamp": stamp,
            "labels": {
                "runs.bubustack.io/storyrun": f"story-run-{index // 8:05d}",
                "runs.bubustack.io/step": f"step-{index % 8}",
                "app.kubernetes.io/managed-by": "runs-controller",
            },
            "ownerReferences": [
                {
                    "apiVersion": "runs.bubustack.io/v1alpha1",
                    "kind": "StoryRun",
                    "name": f"story-run-{index // 8:05d}",
                    "uid": "9a8b7c6d-1111-4222-8333-444455556666",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [
                {
                    "manager": "runs-controller",
                    "operation": "Apply",
                    "apiVersion": "runs.bubustack.io/v1alpha1",
                    "time": stamp,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:stepId": {}, "f:input": {}, "f:storyRunRef": {}}},
                },
                {
                    "manager": "runs-controller",
                    "operation": "Apply",
                    "apiVersion": "runs.bubustack.io/v1alpha1",
                    "time": stamp,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:status": {"f:phase": {}, "f:conditions": {}, "f:retries": {}}},
                    "subresource": "status",
                },
            ],
        },
        "spec": {
            "storyRunRef": {"name": f"story-run-{index // 8:05d}"},
            "stepId": f"step-{index % 8}",
            "idempotencyKey": f"story-run-{index // 8:05d}/step-{index % 8}",
            "engramRef": {"name": "http-fetch", "version": "1.4.2"},
            "input": {"url": "https://example.com/feed.json", "timeout": "30s", "retries": 2},
            "timeout": "5m",
            "retry": {"maxRetries": 3, "delay": "1s", "backoff": "exponential"},
        },
        "status": {
            "retries": 0,
            "observedGeneration": 1,
            "phase": "Running",
            "startedAt": stamp,
            "podName": f"{name}-x7k2p",
            "trace": {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7"},
            "output": {"status": 200, "items": 42, "digest": "sha256:" + "ab" * 32},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "lastTransitionTime": stamp,
                    "reason": "Running",
                    "message": "step is running",
                    "observedGeneration": 1,
                },
                {
                    "type": "Scheduled",
                    "status": "True",
                    "lastTransitionTime": stamp,
                    "reason": "PodScheduled",
                    "message": "pod scheduled on node worker-3",
                    "observedGeneration": 1,
                },
            ],
        },
    }


def stream(events: int) -> bytes:
    return b"".join(
        encode({"type": "MODIFIED", "object": steprun(i)}) + b"\n" for i in range(events)
    )


def ours_envelope(data: bytes) -> int:
    splitter = LineSplitter()
    count = 0
    for start in range(0, len(data), CHUNK):
        block = splitter.feed(data[start : start + CHUNK])
        if block:
            count += len(decode_events(block))
    return count


def ours_typed(data: bytes) -> int:
    splitter = LineSplitter()
    count = 0
    for start in range(0, len(data), CHUNK):
        block = splitter.feed(data[start : start + CHUNK])
        if block:
            for event in decode_events(block):
                event_object(event, StepRun)
                count += 1
    return count


def theirs(watcher: Any, lines: list[bytes], response_type: str | None) -> Callable[[bytes], int]:
    def run(_: bytes) -> int:
        for line in lines:
            watcher.unmarshal_event(line, response_type)
        return len(lines)

    return run


def measure(name: str, run: Callable[[bytes], int], data: bytes, repeat: int) -> None:
    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        count = run(data)
        elapsed = time.perf_counter() - started
        rates.append(count / elapsed)
    best = max(rates)
    report(
        f"{name:<58} {statistics.median(rates):>10,.0f} ev/s (median) "
        f"{best:>10,.0f} (best)  {1e6 / best:6.1f} us/event"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    data = stream(args.events)
    lines = data.splitlines()
    decode(encode(steprun(0)), StepRun)  # the sample must be a valid StepRun
    report(f"{args.events} events, {len(data) / 1e6:.1f} MB, {len(data) // args.events} B/event")
    measure("ours: split + WatchEvent (object raw)", ours_envelope, data, args.repeat)
    measure("ours: split + WatchEvent + StepRun Struct", ours_typed, data, args.repeat)
    watcher = k8s_watch.Watch()  # builds an ApiClient (an aiohttp session): needs a loop
    try:
        object_run = theirs(watcher, lines, "object")
        measure("kubernetes-asyncio unmarshal_event(line, 'object')", object_run, data, args.repeat)
        dict_run = theirs(watcher, lines, None)
        measure("kubernetes-asyncio unmarshal_event(line, None)", dict_run, data, args.repeat)
    finally:
        await watcher.close()


if __name__ == "__main__":
    asyncio.run(main())
