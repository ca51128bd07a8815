"""Informer cost: time and peak RSS to list+watch N StepRun-sized objects; bytes per cached object.

    .venv/bin/python bench/bench_informer.py [--objects 10000]

Starts its own local control plane, installs the CRDs, creates N StepRuns (spec + a realistic
status with output, conditions and effects), then times an Informer from start to synced and
reports the process's peak RSS growth and the traced bytes held per cached object. Prints
numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import anyio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runs_controller.api.runs.steprun import STEP_RUN, StepRun  # noqa: E402
from runs_controller.kube.client import KubeClient  # noqa: E402
from runs_controller.kube.config import load_kubeconfig  # noqa: E402
from runs_controller.kube.resources import ResourceType  # noqa: E402
from runs_controller.runtime.informer import Informer, InformerOptions  # noqa: E402
from runs_controller.testing import ControlPlane, install_crds  # noqa: E402

STEP_RUNS = ResourceType.from_info(STEP_RUN)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _steprun(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "runs.bubustack.io/v1alpha1",
        "kind": "StepRun",
        "metadata": {
            "name": f"run-{i // 10}-step-{i % 10}",
            "labels": {
                "bubustack.io/storyrun": f"run-{i // 10}",
                "bubustack.io/story-name": "bench-story",
            },
        },
        "spec": {
            "storyRunRef": {"name": f"run-{i // 10}"},
            "stepId": f"step-{i % 10}",
            "engramRef": {"name": "fetcher"},
            "input": {"url": "https://example.com/" + "x" * 64, "method": "GET", "n": i},
            "retry": {"maxRetries": 2, "delay": "2s", "backoff": "exponential"},
            "idempotencyKey": f"ns/bench/storyrun/run-{i // 10}/step/step-{i % 10}",
        },
    }


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _populate(plane: ControlPlane, namespace: str, count: int) -> None:
    path = STEP_RUNS.path(namespace)
    limiter = anyio.Semaphore(16)

    async def one(i: int) -> None:
        async with limiter:
            await anyio.to_thread.run_sync(plane.admin.create, path, _steprun(i))

    async with anyio.create_task_group() as group:
        for i in range(count):
            group.start_soon(one, i)


async def _sync(kubeconfig: Path, namespace: str) -> Informer[StepRun]:
    async with KubeClient(await load_kubeconfig(kubeconfig)) as client:
        informer = Informer(client, STEP_RUNS, StepRun, options=InformerOptions(namespace))
        async with anyio.create_task_group() as group:
            group.start_soon(informer.run)
            await informer.wait_for_sync()
            group.cancel_scope.cancel()
        return informer


async def main(count: int) -> None:
    with ControlPlane() as plane:
        install_crds(plane.admin, [REPO / "manifests" / "crds"], timeout=120)
        namespace = plane.create_namespace("bench")
        started = time.perf_counter()
        await _populate(plane, namespace, count)
        _out(f"created {count} StepRuns in {time.perf_counter() - started:.1f}s")

        gc.collect()
        rss_before = _rss_mib()
        started = time.perf_counter()
        informer = await _sync(plane.kubeconfig_path, namespace)
        elapsed = time.perf_counter() - started
        rss_after = _rss_mib()
        _out(
            f"list+watch to synced: {elapsed:.2f}s for {len(informer.store)} objects "
            f"({len(informer.store) / elapsed:,.0f} objects/s)"
        )
        _out(f"peak RSS: {rss_after:.0f} MiB (+{rss_after - rss_before:.0f} MiB during sync)")
        del informer
        gc.collect()

        tracemalloc.start()
        informer = await _sync(plane.kubeconfig_path, namespace)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        per_object = held / max(1, len(informer.store))
        _out(
            f"traced bytes held after sync: {held / 2**20:.1f} MiB, "
            f"{per_object:,.0f} bytes per cached object (managedFields stripped)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=10_000)
    anyio.run(main, parser.parse_args().objects)
