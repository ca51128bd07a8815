"""StepRun controller cost and latency: API requests per engram step by verb and resource, and
the time from a StepRun's creation to its Job's creation.

    .venv/bin/python bench/bench_steprun.py [--runs 100] [--shape single|chain|both]

Starts its own local control plane and runs the controller (all four controllers) in this
process. A separate client plays the kubelet, the Job controller and the Engram SDK
(`tests/integration/steprun_support.FakeKubelet`; its requests are not counted): as soon as a
Job appears, the SDK's `Succeeded` is written to the StepRun and `succeeded: 1` to the Job.
Every request of the controller's client is recorded by verb and resource, so the StepRun side
(jobs, stepruns/status, engrams/status, pods) reads apart from the StoryRun side (stepruns
creates, storyruns/status). Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runs_controller.app import build_manager  # noqa: E402
from runs_controller.kube.client import KubeClient  # noqa: E402
from runs_controller.kube.config import load_kubeconfig  # noqa: E402
from runs_controller.testing import ControlPlane, install_crds  # noqa: E402
from runs_controller.testing.wait import poll_until_async  # noqa: E402
from tests.integration.steprun_support import (  # noqa: E402
    echo,
    fake_kubelet,
    watching_stepruns,
)
from tests.integration.storyrun_support import (  # noqa: E402
    create_engram,
    create_run,
    create_story,
    settings,
    storyrun_reconciles,
    wait_for_phase,
)

if TYPE_CHECKING:
    from runs_controller.api.k8s import Job
    from runs_controller.api.runs.steprun import StepRun
    from runs_controller.runtime.informer import Event

SHAPES: dict[str, dict[str, Any]] = {
    "single": {"steps": [{"name": "s0", "ref": {"name": "echo"}}]},
    "chain": {
        "steps": [{"name": "s0", "ref": {"name": "echo"}}]
        + [{"name": f"s{i}", "ref": {"name": "echo"}, "needs": [f"s{i - 1}"]} for i in range(1, 5)]
    },
}
STEPRUN_SIDE = {
    "jobs",
    "stepruns/status",
    "engrams",
    "engrams/status",
    "pods",
    "stepruns (metadata)",
}


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _resource(method: str, path: str) -> str:
    """`jobs`, `stepruns/status`, ... from an API path; a StepRun PATCH on the main resource is
    a metadata patch (finalizer, labels)."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if "namespaces" in parts:
        parts = parts[parts.index("namespaces") + 2 :]
    elif parts and parts[0] in ("api", "apis"):
        parts = parts[2:] if parts[0] == "api" else parts[3:]
    if not parts:
        return "?"
    resource = parts[0]
    if len(parts) >= 3:
        resource = f"{resource}/{parts[2]}"
    if resource == "stepruns" and method == "PATCH":
        resource = "stepruns (metadata)"
    return resource


class RecordingClient(KubeClient):
    """The controller's client, counting every request by (verb, resource)."""

    counts: Counter[tuple[str, str]]

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        self.counts[(method, _resource(method, path))] += 1
        return await super()._call(method, path, **kwargs)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _bench(plane: ControlPlane, shape: str, runs: int) -> None:
    namespace = plane.create_namespace("bench")
    config = await load_kubeconfig(plane.kubeconfig_path)
    registry = CollectorRegistry()
    client = RecordingClient(config)
    client.counts = Counter()
    async with KubeClient(config) as harness, client:
        await create_engram(harness, namespace)
        await create_story(harness, namespace, shape, SHAPES[shape])
        manager = build_manager(settings(namespace), client, namespace, registry)
        created: dict[str, float] = {}
        job_seen: dict[str, float] = {}
        async with anyio.create_task_group() as group:
            group.start_soon(manager.run)
            await poll_until_async(
                lambda: _started(manager), within=60, what="the controller to lead"
            )
            client.counts.clear()
            async with (
                watching_stepruns(harness, namespace) as versions,
                fake_kubelet(harness, namespace, echo()) as kubelet,
            ):

                def saw_steprun(event: Event[StepRun]) -> None:
                    if event.obj.metadata is not None:
                        created.setdefault(event.obj.metadata.name or "", time.perf_counter())

                def saw_job(job: Job) -> None:
                    if job.metadata is not None:
                        job_seen.setdefault(job.metadata.name or "", time.perf_counter())

                versions.informer.add_handler(saw_steprun)
                kubelet.observers.append(saw_job)
                started = time.perf_counter()
                cpu_started = time.process_time()
                async with anyio.create_task_group() as submit:
                    for i in range(runs):
                        submit.start_soon(create_run, harness, namespace, f"r{i:04d}", shape)
                for i in range(runs):
                    await wait_for_phase(harness, namespace, f"r{i:04d}", "Succeeded", within=900)
                elapsed = time.perf_counter() - started
                cpu = time.process_time() - cpu_started
            manager.stop()
    steps = runs * len(SHAPES[shape]["steps"])
    reverted = _reverted(versions.versions)
    rate = steps / elapsed
    _out(f"## {shape}: {runs} runs, {steps} engram steps, {elapsed:.1f} s ({rate:.1f} steps/s)")
    side = {k: v for k, v in client.counts.items() if k[1] in STEPRUN_SIDE}
    rest = {k: v for k, v in client.counts.items() if k[1] not in STEPRUN_SIDE}
    total_side = sum(side.values())
    _out(f"StepRun side: {total_side / steps:.2f} requests per engram step")
    for (verb, resource), count in sorted(side.items()):
        _out(f"  {verb:6} {resource:22} {count / steps:.2f}")
    _out(f"StoryRun side and shared (events): {sum(rest.values()) / steps:.2f} per step")
    for (verb, resource), count in sorted(rest.items()):
        _out(f"  {verb:6} {resource:22} {count / steps:.2f}")
    reconciles = storyrun_reconciles(registry, "steprun")
    _out(f"StepRun reconciles per StepRun: {reconciles / steps:.1f}")
    delays = [job_seen[name] - created[name] for name in job_seen if name in created]
    if delays:
        _out(
            "StepRun created -> Job created (both as watches see them): "
            f"p50 {1000 * statistics.median(delays):.0f} ms, "
            f"p99 {1000 * _pct(delays, 0.99):.0f} ms over {len(delays)} StepRuns"
        )
    _out(f"SDK-reported successes later seen in another phase: {reverted}")
    _out(f"CPU of this process (controllers + stand-ins): {cpu:.1f} s in {elapsed:.1f} s")


def _reverted(seen: list[StepRun]) -> int:
    """StepRuns a watch saw in another phase after `Succeeded` (ruling 29: never)."""
    done: set[str] = set()
    reverted: set[str] = set()
    for steprun in seen:
        name = steprun.metadata.name if steprun.metadata else ""
        phase = steprun.status.phase if steprun.status else None
        if phase == "Succeeded":
            done.add(name or "")
        elif name in done:
            reverted.add(name or "")
    return len(reverted)


async def _started(manager: Any) -> bool | None:
    return True if manager.controllers_started else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--shape", choices=("single", "chain", "both"), default="both")
    args = parser.parse_args()
    shapes = ["single", "chain"] if args.shape == "both" else [args.shape]
    with ControlPlane() as plane:
        install_crds(plane.admin, [REPO / "manifests" / "crds"], timeout=120)
        for shape in shapes:
            anyio.run(_bench, plane, shape, args.runs)


if __name__ == "__main__":
    main()
