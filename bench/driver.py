"""The benchmark's driver: the three Story shapes, the StoryRun submissions, the stand-in for
the Engram SDK + Job controller (FakeKubelet from tests/integration/steprun_support), the gate
approver, and the watches that timestamp everything.

All timestamps are `time.perf_counter()` of this process; a watch sees an object a little after
it is written, so every latency here includes one watch delivery to the driver.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from bench.report import classify_request, label_key
from runs_controller.api.runs.steprun import StepRun
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.kube.client import KubeClient
from runs_controller.kube.errors import NotFound
from runs_controller.kube.resources import STEP_RUNS, STORY_RUNS
from runs_controller.runtime.informer import Event, Informer, InformerOptions
from tests.integration.steprun_support import (
    Attempt,
    FakeKubelet,
    echo,
    sdk_status,
    write_job_status,
)
from tests.integration.storyrun_support import DONE, create_run

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable

    from runs_controller.api.k8s import Job

GATE = "approve"


def _engram(name: str, needs: list[str] | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"name": name, "ref": {"name": "echo"}}
    if needs:
        step["needs"] = needs
    return step


SHAPES: dict[str, list[dict[str, Any]]] = {
    # s0 -> s1 -> s2 -> s3 -> s4
    "chain": [_engram("s0")] + [_engram(f"s{i}", [f"s{i - 1}"]) for i in range(1, 5)],
    # ten independent steps
    "fanout": [_engram(f"f{i}") for i in range(10)],
    # top -> (left, right) -> approve (gate) -> nap (sleep of 0: no duration) -> join
    "diamond": [
        _engram("top"),
        _engram("left", ["top"]),
        _engram("right", ["top"]),
        {"name": GATE, "type": "gate", "needs": ["left", "right"]},
        {"name": "nap", "type": "sleep", "needs": [GATE]},
        _engram("join", ["nap"]),
    ],
}
GATE_NEXT = {"diamond": "join"}
"""The StepRun that the gate approval leads to (through the sleep)."""


def engram_steps(shape: str) -> list[str]:
    return [s["name"] for s in SHAPES[shape] if "ref" in s]


def engram_needs(shape: str) -> dict[str, list[str]]:
    """Engram step -> the engram steps it waits on directly (hops measured between them)."""
    engrams = set(engram_steps(shape))
    return {
        s["name"]: [n for n in s.get("needs", []) if n in engrams]
        for s in SHAPES[shape]
        if s["name"] in engrams and all(n in engrams for n in s.get("needs", []))
    }


class CountingClient(KubeClient):
    """The driver's client, counting its own requests by apiserver verb and resource, so they
    can be subtracted from the apiserver's counters."""

    counts: Counter[str]

    async def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        query = kwargs.get("query") or ""
        content_type = kwargs.get("content_type") if kwargs.get("body") is not None else None
        verb, resource = classify_request(method, f"{path}?{query}", content_type)
        self.counts[label_key(verb, resource)] += 1
        return await super()._send(method, path, **kwargs)


@dataclass
class Timeline:
    """What the driver saw and did, with perf_counter timestamps."""

    created: dict[str, float] = field(default_factory=dict)
    """run -> its create request answered."""
    done: dict[str, float] = field(default_factory=dict)
    """run -> a watch saw it in a final phase."""
    phases: dict[str, str] = field(default_factory=dict)
    step_seen: dict[tuple[str, str], float] = field(default_factory=dict)
    """(run, step) -> a watch saw the StepRun for the first time."""
    step_started: dict[tuple[str, str], float] = field(default_factory=dict)
    """(run, step) -> a watch first saw the StepRun past Pending (Running, or already
    finished when the SDK's result came before the controller's Running)."""
    step_written: dict[tuple[str, str], float] = field(default_factory=dict)
    """(run, step) -> the SDK stand-in's terminal status write was answered."""
    gate_approved: dict[str, float] = field(default_factory=dict)
    approve_errors: int = 0


class TimedKubelet(FakeKubelet):
    """FakeKubelet that timestamps the SDK's terminal write (the start of a scheduling hop)."""

    def __init__(self, client: KubeClient, namespace: str, timeline: Timeline) -> None:
        super().__init__(client, namespace, echo())
        self.timeline = timeline

    async def play(self, job: Job, steprun: StepRun, attempt: Attempt) -> None:
        fields: dict[str, Any] = {"retries": 0, "output": dict(attempt.output or {})}
        await sdk_status(self.client, steprun, "Succeeded", **fields)
        key = (steprun.spec.story_run_ref.name, steprun.spec.step_id)
        self.timeline.step_written.setdefault(key, time.perf_counter())
        await write_job_status(self.client, job, succeeded=1)


class Watches:
    """StoryRun and StepRun watches: completion, first sightings, and the gate approver."""

    def __init__(self, client: KubeClient, namespace: str, timeline: Timeline, runs: int) -> None:
        self.client = client
        self.namespace = namespace
        self.timeline = timeline
        self.expected = runs
        self.all_done = anyio.Event()
        self.on_done: list[Callable[[str, float], None]] = []
        self._approving: set[str] = set()
        self._send, self._receive = anyio.create_memory_object_stream[str](100_000)
        options = InformerOptions(namespace)
        self.runs = Informer(client, STORY_RUNS, StoryRun, options=options)
        self.steps = Informer(client, STEP_RUNS, StepRun, options=options)
        self.runs.add_handler(self._run_event)
        self.steps.add_handler(self._step_event)

    def _step_event(self, event: Event[StepRun]) -> None:
        if event.type == "deleted":
            return
        key = (event.obj.spec.story_run_ref.name, event.obj.spec.step_id)
        now = time.perf_counter()
        self.timeline.step_seen.setdefault(key, now)
        phase = event.obj.status.phase if event.obj.status is not None else None
        if phase not in (None, "", "Pending"):
            self.timeline.step_started.setdefault(key, now)

    def _run_event(self, event: Event[StoryRun]) -> None:
        if event.type == "deleted" or event.obj.metadata is None:
            return
        name = event.obj.metadata.name or ""
        status = event.obj.status
        if status is None:
            return
        if status.phase in DONE and name not in self.timeline.done:
            now = time.perf_counter()
            self.timeline.done[name] = now
            self.timeline.phases[name] = status.phase or ""
            for hook in self.on_done:
                hook(name, now)
            if len(self.timeline.done) >= self.expected:
                self.all_done.set()
            return
        gate = (status.step_states or {}).get(GATE)
        decided = (status.gates or {}).get(GATE)
        paused = gate is not None and gate.phase == "Paused" and decided is None
        if paused and name not in self._approving:
            self._approving.add(name)
            self._send.send_nowait(name)

    async def _approve(self, name: str) -> None:
        patch = {"status": {"gates": {GATE: {"state": "Approved", "updatedBy": "bench"}}}}
        try:
            await self.client.merge_patch(
                STORY_RUNS, name, patch, self.namespace, type=StoryRun, subresource="status"
            )
        except NotFound:
            self.timeline.approve_errors += 1
            return
        self.timeline.gate_approved.setdefault(name, time.perf_counter())

    async def _approver(self) -> None:
        async with anyio.create_task_group() as group, self._receive:
            async for name in self._receive:
                group.start_soon(self._approve, name)

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(self.runs.run)
            group.start_soon(self.steps.run)
            group.start_soon(self._approver)
            deadline = time.monotonic() + 60
            while not (self.runs.has_synced and self.steps.has_synced):
                if time.monotonic() > deadline:
                    raise TimeoutError("driver watches did not sync")
                await anyio.sleep(0.05)
            task_status.started()


async def submit(
    client: KubeClient,
    namespace: str,
    shape: str,
    runs: int,
    timeline: Timeline,
    *,
    concurrency: int = 32,
    rate: float | None = None,
) -> None:
    """Create `runs` StoryRuns of the Story `shape`: as fast as `concurrency` creates in flight
    allow, or paced at `rate` per second."""
    limiter = anyio.CapacityLimiter(concurrency)
    start = time.perf_counter()

    async def one(i: int) -> None:
        name = f"{shape}-{i:05d}"
        async with limiter:
            await create_run(client, namespace, name, shape)
        timeline.created[name] = time.perf_counter()

    async with anyio.create_task_group() as group:
        for i in range(runs):
            if rate:
                wait = start + i / rate - time.perf_counter()
                if wait > 0:
                    await anyio.sleep(wait)  # pacing an open-loop load, not synchronisation
            group.start_soon(one, i)


def hop_latencies(shape: str, timeline: Timeline, *, to_started: bool = False) -> list[float]:
    """Dependency's terminal write -> dependent StepRun first seen (or, `to_started`, first
    seen past Pending), over engram->engram edges (the last dependency written starts the
    hop)."""
    needs = engram_needs(shape)
    out: list[float] = []
    ends = timeline.step_started if to_started else timeline.step_seen
    for (run, step), seen in ends.items():
        deps = needs.get(step) or []
        written = [timeline.step_written.get((run, d)) for d in deps]
        if deps and all(w is not None for w in written):
            out.append(seen - max(w for w in written if w is not None))
    return out


def gate_latencies(shape: str, timeline: Timeline) -> list[float]:
    """Gate approval answered -> the StepRun after it first seen."""
    step = GATE_NEXT.get(shape)
    if step is None:
        return []
    return [
        timeline.step_seen[(run, step)] - approved
        for run, approved in timeline.gate_approved.items()
        if (run, step) in timeline.step_seen
    ]


def start_latencies(shape: str, timeline: Timeline) -> list[float]:
    """Run created -> its first root StepRun seen."""
    roots = [s for s, deps in engram_needs(shape).items() if not deps]
    out = []
    for run, created in timeline.created.items():
        seen = [timeline.step_seen.get((run, r)) for r in roots]
        if seen and all(s is not None for s in seen):
            out.append(min(s for s in seen if s is not None) - created)
    return out


def run_latencies(timeline: Timeline) -> list[float]:
    return [timeline.done[r] - c for r, c in timeline.created.items() if r in timeline.done]
