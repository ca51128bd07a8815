"""StoryRun controller cost and latency: API requests per engram step, reconciles per run,
scheduling latency (a dependency's terminal status written -> the dependent StepRun created).

    .venv/bin/python bench/bench_storyrun.py [--runs 100] [--shape chain|diamond|both]

Starts its own local control plane, runs the controller in this process, and plays the Engram
SDK with a separate client (its requests are not counted): each StepRun gets `Succeeded` with an
output as soon as it appears. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runs_controller.app import build_manager  # noqa: E402
from runs_controller.kube.client import KubeClient  # noqa: E402
from runs_controller.kube.config import load_kubeconfig  # noqa: E402
from runs_controller.observability.metrics import RestClientMetrics  # noqa: E402
from runs_controller.testing import ControlPlane, install_crds  # noqa: E402
from runs_controller.testing.wait import poll_until_async  # noqa: E402
from tests.integration.storyrun_support import (  # noqa: E402
    Decision,
    FakeSdk,
    create_engram,
    create_run,
    create_story,
    fake_sdk,
    settings,
    storyrun_reconciles,
    wait_for_phase,
)

if TYPE_CHECKING:
    from runs_controller.api.runs.steprun import StepRun

SHAPES: dict[str, dict[str, Any]] = {
    "chain": {
        "steps": [{"name": "s0", "ref": {"name": "echo"}}]
        + [{"name": f"s{i}", "ref": {"name": "echo"}, "needs": [f"s{i - 1}"]} for i in range(1, 5)]
    },
    "diamond": {
        "steps": [
            {"name": "top", "ref": {"name": "echo"}},
            {"name": "left", "ref": {"name": "echo"}, "needs": ["top"]},
            {"name": "right", "ref": {"name": "echo"}, "needs": ["top"]},
            {"name": "join", "ref": {"name": "echo"}, "needs": ["left", "right"]},
        ]
    },
}


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


class Timing:
    """When each StepRun's terminal status was written and when each StepRun first appeared."""

    def __init__(self) -> None:
        self.finished: dict[tuple[str, str], float] = {}
        self.appeared: dict[tuple[str, str], float] = {}


def _behaviour(timing: Timing) -> Any:
    async def decide(sdk: FakeSdk, steprun: StepRun) -> Decision:
        return "Succeeded", {"step": steprun.spec.step_id}

    return decide


def _requests(registry: CollectorRegistry) -> dict[str, float]:
    totals: dict[str, float] = {}
    for family in registry.collect():
        if family.name != "rest_client_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                method = sample.labels["method"]
                totals[method] = totals.get(method, 0.0) + sample.value
    return totals


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _bench(plane: ControlPlane, shape: str, runs: int) -> None:
    namespace = plane.create_namespace("bench")
    config = await load_kubeconfig(plane.kubeconfig_path)
    registry = CollectorRegistry()
    async with (
        KubeClient(config) as sdk_client,
        KubeClient(config, metrics=RestClientMetrics.create(registry)) as client,
    ):
        await create_engram(sdk_client, namespace)
        await create_story(sdk_client, namespace, shape, SHAPES[shape])
        manager = build_manager(settings(namespace), client, namespace, registry)
        timing = Timing()
        sdk_behaviour = _behaviour(timing)
        async with anyio.create_task_group() as group:
            group.start_soon(manager.run)
            await poll_until_async(
                lambda: _started(manager), within=60, what="the controller to lead"
            )
            baseline = _requests(registry)
            async with fake_sdk(sdk_client, namespace, sdk_behaviour) as sdk:

                def observe(steprun: StepRun) -> None:
                    key = (steprun.spec.story_run_ref.name, steprun.spec.step_id)
                    seen = time.perf_counter()
                    timing.appeared.setdefault(key, seen)
                    if steprun.status is not None and steprun.status.phase == "Succeeded":
                        timing.finished.setdefault(key, seen)

                sdk.observers.append(observe)
                started = time.perf_counter()
                cpu_started = time.process_time()
                async with anyio.create_task_group() as submit:
                    for i in range(runs):
                        submit.start_soon(create_run, sdk_client, namespace, f"r{i:04d}", shape)
                for i in range(runs):
                    await wait_for_phase(
                        sdk_client, namespace, f"r{i:04d}", "Succeeded", within=600
                    )
                elapsed = time.perf_counter() - started
                cpu = time.process_time() - cpu_started
            manager.stop()
        steps = runs * len(SHAPES[shape]["steps"])
        used = {k: v - baseline.get(k, 0.0) for k, v in _requests(registry).items()}
        writes = sum(v for k, v in used.items() if k != "GET")
        latencies = _hop_latencies(shape, timing)
        rate = steps / elapsed
        _out(f"## {shape}: {runs} runs, {steps} engram steps, {elapsed:.1f} s ({rate:.1f} steps/s)")
        _out(
            "requests per engram step: "
            + ", ".join(f"{k} {v / steps:.2f}" for k, v in sorted(used.items()))
            + f"; writes {writes / steps:.2f} (StepRun creates and StoryRun status applies, "
            "plus the per-run finalizer patch and RBAC applies)"
        )
        _out(f"reconciles per StoryRun: {storyrun_reconciles(registry) / runs:.1f}")
        _out(f"CPU of this process (controller + SDK stand-in): {cpu:.1f} s in {elapsed:.1f} s")
        if latencies:
            _out(
                f"scheduling latency (dependency Succeeded seen -> dependent StepRun seen): "
                f"p50 {1000 * statistics.median(latencies):.0f} ms, "
                f"p99 {1000 * _pct(latencies, 0.99):.0f} ms over {len(latencies)} hops"
            )


async def _started(manager: Any) -> bool | None:
    return True if manager.controllers_started else None


def _hop_latencies(shape: str, timing: Timing) -> list[float]:
    needs = {s["name"]: s.get("needs", []) for s in SHAPES[shape]["steps"]}
    out = []
    for (run, step), appeared in timing.appeared.items():
        deps = needs.get(step) or []
        finished = [timing.finished.get((run, dep)) for dep in deps]
        if deps and all(f is not None for f in finished):
            out.append(appeared - max(f for f in finished if f is not None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--shape", choices=("chain", "diamond", "both"), default="both")
    args = parser.parse_args()
    shapes = ["chain", "diamond"] if args.shape == "both" else [args.shape]
    with ControlPlane() as plane:
        install_crds(plane.admin, [REPO / "manifests" / "crds"], timeout=120)
        for shape in shapes:
            anyio.run(_bench, plane, shape, args.runs)


if __name__ == "__main__":
    main()
