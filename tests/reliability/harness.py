"""The reliability workload: StoryRuns driven to completion while a fault is injected, and the
checks every scenario makes afterwards.

The controllers run as separate processes (`runs-controller run`, two replicas with short
leases), so a fault can be a real `kill -9`. The test process plays the SDK and the Job
controller (`FakeKubelet`) and watches every StepRun and Job version. After the runs finish it
checks: every run reached its expected phase; no StepRun or Job was created twice; no terminal
phase the SDK wrote ever went back; reconciles per object stayed bounded.

Sizes come from the environment so the same scenarios run small in CI and large at night:
RELIABILITY_RUNS (default 16), RELIABILITY_STEPS (chain length, default 3).
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from runs_controller.api.runs.steprun import StepRun
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.kube.errors import AlreadyExists, NotFound
from runs_controller.kube.resources import LEASES, STORY_RUNS
from runs_controller.runtime.informer import Event
from runs_controller.testing.controller_cli import controller_run_argv
from runs_controller.testing.controlplane import free_port
from runs_controller.testing.process import ManagedProcess
from runs_controller.testing.wait import poll_until_async
from tests.integration.steprun_support import APISERVER_AWAY, StepRunVersions, echo, fake_kubelet
from tests.integration.storyrun_support import create_engram, create_run, create_story

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from runs_controller.kube.client import KubeClient
    from tests.integration.steprun_support import FakeKubelet

RUNS = int(os.environ.get("RELIABILITY_RUNS", "16"))
STEPS = int(os.environ.get("RELIABILITY_STEPS", "3"))
RECONCILE_BOUND = 40.0
"""Reconciles per object, summed over every replica and controller: a real run needs ~5 per
StepRun; a hot loop needs hundreds."""
TERMINAL = ("Succeeded", "Failed", "Canceled", "Timeout", "Aborted")


def chain(steps: int) -> dict[str, Any]:
    names = [f"s{i}" for i in range(steps)]
    return {
        "steps": [
            {"name": name, "ref": {"name": "echo"}, **({"needs": [names[i - 1]]} if i else {})}
            for i, name in enumerate(names)
        ]
    }


def scrape(port: int) -> dict[str, float]:
    """A replica's /metrics as `name{labels}` -> value (for the few families we read)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, value = line.rpartition(" ")
        samples[key] = float(value)
    return samples


def reconciles(samples: dict[str, float]) -> float:
    return sum(v for k, v in samples.items() if k.startswith("controller_runtime_reconcile_total{"))


def responses(samples: dict[str, float], code: str) -> float:
    pattern = re.compile(rf'^rest_client_requests_total\{{.*code="{code}"')
    return sum(v for k, v in samples.items() if pattern.match(k))


@dataclass
class Replica:
    """One `runs-controller run` process of the scenario's namespace."""

    name: str
    kubeconfig: Path
    namespace: str
    log_dir: Path
    metrics_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    process: ManagedProcess = field(init=False)
    last_samples: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        argv = controller_run_argv(
            kubeconfig=self.kubeconfig,
            home_namespace=self.namespace,
            namespaces=self.namespace,
            lease_id=f"rc-{self.namespace}",
            metrics_port=self.metrics_port,
            health_port=self.health_port,
            fast_lease=True,
            extra=["--log-format=json"],
        )
        self.process = ManagedProcess(self.name, argv, self.log_dir / f"{self.name}.log")

    def sample(self) -> dict[str, float]:
        """Scrape and remember (a killed replica keeps its last scrape)."""
        with suppress(OSError):
            self.last_samples = scrape(self.metrics_port)
        return self.last_samples

    def identity(self) -> str | None:
        """The Lease holder identity this process logged when it started electing."""
        path = self.process.log_path
        for line in path.read_text().splitlines() if path.exists() else []:
            if '"leader_election_acquiring"' in line:
                identity: str = json.loads(line)["identity"]
                return identity
        return None


@dataclass
class Observed:
    """What the watches saw while the workload ran."""

    versions: StepRunVersions
    kubelet: FakeKubelet
    steprun_uids: dict[str, set[str]] = field(default_factory=dict)

    def record_steprun(self, event: Event[StepRun]) -> None:
        meta = event.obj.metadata
        if meta is not None and meta.name and meta.uid:
            self.steprun_uids.setdefault(meta.name, set()).add(meta.uid)

    def duplicated_stepruns(self) -> dict[str, set[str]]:
        return {name: uids for name, uids in self.steprun_uids.items() if len(uids) > 1}

    def duplicated_jobs(self) -> dict[str, list[str]]:
        return {name: uids for name, uids in self.kubelet.jobs.uids.items() if len(set(uids)) > 1}

    def reverted_sdk_phases(self) -> dict[str, list[str]]:
        """StepRuns whose phase left a terminal value once the SDK had written it."""
        history: dict[str, list[str]] = {}
        for version in self.versions.versions:
            if version.metadata and version.metadata.name and version.status:
                history.setdefault(version.metadata.name, []).append(version.status.phase or "")
        reverted = {}
        for name, phases in history.items():
            first = next((i for i, phase in enumerate(phases) if phase in TERMINAL), None)
            if first is not None and any(p != phases[first] for p in phases[first:]):
                reverted[name] = phases
        return reverted


@dataclass
class Workload:
    client: KubeClient
    namespace: str
    kubeconfig: Path
    log_dir: Path
    replicas: list[Replica] = field(default_factory=list)
    retired: list[Replica] = field(default_factory=list)

    def start_replica(self) -> Replica:
        replica = Replica(
            f"{self.namespace}-r{len(self.replicas) + len(self.retired)}",
            self.kubeconfig,
            self.namespace,
            self.log_dir,
        )
        replica.process.start()
        self.replicas.append(replica)
        return replica

    async def leader(self) -> Replica:
        async def leading() -> Replica | None:
            holder = await self._holder()
            return next((r for r in self.replicas if holder and r.identity() == holder), None)

        return await poll_until_async(leading, within=60, what="a leading replica")

    async def _holder(self) -> str | None:
        try:
            lease = await self.client.get(
                LEASES, f"rc-{self.namespace}", self.namespace, type=dict[str, Any]
            )
        except (NotFound, *APISERVER_AWAY):
            return None
        holder: str | None = lease.get("spec", {}).get("holderIdentity")
        return holder

    def kill(self, replica: Replica) -> None:
        """`kill -9` (after one last scrape, so its reconciles still count), and a new replica
        in its place, as a Deployment would start."""
        replica.sample()
        replica.process.kill()
        self.replicas.remove(replica)
        self.retired.append(replica)
        self.start_replica()

    def total_reconciles(self) -> float:
        return sum(
            reconciles(r.sample() if r in self.replicas else r.last_samples)
            for r in [*self.replicas, *self.retired]
        )

    def stop(self) -> None:
        for replica in self.replicas:
            replica.sample()
            replica.process.stop()
        for replica in self.retired:
            replica.process.stop()  # reaps it and closes its log

    async def submit(self, runs: int, prefix: str = "run") -> list[str]:
        names = [f"{prefix}-{i}" for i in range(runs)]
        for name in names:
            await self._create(name)
        return names

    async def _create(self, name: str) -> None:
        """Create one run, riding out an apiserver that is away; a create whose answer was
        lost shows up as AlreadyExists on the next try."""
        for _ in range(120):
            try:
                await create_run(self.client, self.namespace, name, "chain")
                return
            except AlreadyExists:
                return
            except APISERVER_AWAY:
                await anyio.sleep(0.5)
        raise AssertionError(f"could not create run {name}")

    async def wait_all(self, names: list[str], within: float) -> dict[str, str]:
        """Every run's final phase (fails if one is still running after `within` s)."""
        phases: dict[str, str] = {}

        async def all_done() -> bool | None:
            try:
                runs = await self.client.list(STORY_RUNS, self.namespace, type=StoryRun)
            except APISERVER_AWAY:
                return None  # the apiserver is away (a fault of the scenario): ask again
            for run in runs.items:
                meta, status = run.metadata, run.status
                if meta and meta.name in names and status and status.phase in TERMINAL:
                    phases[meta.name or ""] = status.phase
            return True if len(phases) == len(names) else None

        await poll_until_async(all_done, within=within, what=f"{len(names)} runs to finish")
        return phases


async def prepare(client: KubeClient, namespace: str, steps: int = STEPS) -> None:
    await create_engram(client, namespace)
    await create_story(client, namespace, "chain", chain(steps))


@asynccontextmanager
async def observing(client: KubeClient, namespace: str) -> AsyncIterator[Observed]:
    """The StepRun version log, StepRun creations and the stand-in kubelet, for the block."""
    versions = StepRunVersions(client, namespace)
    async with (
        anyio.create_task_group() as group,
        fake_kubelet(client, namespace, echo()) as kubelet,
    ):
        observed = Observed(versions, kubelet)
        versions.informer.add_handler(observed.record_steprun)
        group.start_soon(versions.informer.run)

        async def synced() -> bool | None:
            return True if versions.informer.has_synced else None

        await poll_until_async(synced, within=30, what="the StepRun watch")
        try:
            yield observed
        finally:
            group.cancel_scope.cancel()


def assert_clean(
    workload: Workload, observed: Observed, phases: dict[str, str], objects: int
) -> None:
    """The checks every scenario makes once its runs have finished."""
    assert set(phases.values()) == {"Succeeded"}, phases
    assert not observed.duplicated_stepruns(), observed.duplicated_stepruns()
    assert not observed.duplicated_jobs(), observed.duplicated_jobs()
    assert not observed.reverted_sdk_phases(), observed.reverted_sdk_phases()
    per_object = workload.total_reconciles() / objects
    print(
        f"{len(phases)} runs Succeeded, {len(observed.steprun_uids)} StepRuns, "
        f"{len(observed.kubelet.jobs.uids)} Jobs, {per_object:.1f} reconciles per object, "
        f"{len(workload.retired)} replicas retired"
    )
    assert per_object < RECONCILE_BOUND, f"{per_object:.1f} reconciles per object"


async def periodically(
    interval: float, action: Callable[[], Awaitable[None]], until: anyio.Event
) -> None:
    """Run `action` every `interval` seconds until `until` is set."""
    while not until.is_set():
        with anyio.move_on_after(interval):
            await until.wait()
        if not until.is_set():
            await action()
