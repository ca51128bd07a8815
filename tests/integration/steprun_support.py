"""Support for the StepRun controller tests: a stand-in for the kubelet and the Engram SDK.

There is no kubelet or Job controller on the test control plane, so `FakeKubelet` plays both
for each Job the controller creates: it reads the step's inputs from the Job's environment
(`BUBU_TRIGGER_DATA`, exactly what the SDK reads), writes the StepRun status as the SDK does
(merge patch on /status), creates the pod a failed attempt leaves behind (with its exit code)
and writes the Job's status.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import anyio

from runs_controller.api.k8s import Job, Pod
from runs_controller.api.runs.steprun import StepRun
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.kube.client import KubeClient
from runs_controller.kube.errors import (
    AlreadyExists,
    NotFound,
    ServerError,
    TooManyRequests,
    TransportError,
)
from runs_controller.kube.resources import JOBS, PODS, STEP_RUNS, STORY_RUNS
from runs_controller.runtime.informer import Event, Informer, InformerOptions
from runs_controller.testing.wait import poll_until_async

APISERVER_AWAY = (TransportError, ServerError, TooManyRequests)
"""What a client sees while the apiserver is briefly away (restarting: refused connections,
5xx, and 429 "storage is (re)initializing"): a fault of the scenario, to ride out."""


def job_env(job: Job) -> dict[str, str]:
    """The `engram` container's plain env values by name (valueFrom entries read "")."""
    assert job.spec is not None
    container = next(c for c in job.spec.template.spec.containers if c.name == "engram")
    return {var.name: var.value or "" for var in container.env or []}


def trigger_data(job: Job) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(job_env(job)["BUBU_TRIGGER_DATA"])
    return data


@dataclass(frozen=True)
class Attempt:
    """What one Job attempt does: the SDK's status write (None: it wrote nothing), and how the
    Job ends ("succeeded", "failed" with the pod's exit code, or None: still running)."""

    sdk_phase: str | None = None
    output: Mapping[str, Any] | None = None
    exit_class: str | None = None
    job_result: str | None = None
    exit_code: int = 0


def succeed(output: Mapping[str, Any] | None = None) -> Attempt:
    return Attempt("Succeeded", output, None, "succeeded")


def crash(exit_code: int) -> Attempt:
    """The pod dies without the SDK reporting anything (OOM, a bug, a kill)."""
    return Attempt(None, None, None, "failed", exit_code)


HOLD = Attempt()
VANISH = Attempt(None, None, None, "failed-without-pod")
"""The Job fails and its pod is gone (evicted, garbage-collected): the exit code is unknown."""

Behaviour = Callable[["FakeKubelet", Job, StepRun], Awaitable[Attempt]]


async def write_job_status(client: KubeClient, job: Job, **status: int) -> None:
    meta = job.metadata
    assert meta is not None
    await client.merge_patch(
        JOBS, meta.name or "", {"status": status}, meta.namespace, type=Job, subresource="status"
    )


async def failed_pod(client: KubeClient, job: Job, exit_code: int, *, suffix: str = "") -> Pod:
    """A pod of `job` that ended with `exit_code` (label job-name, as the Job controller sets)."""
    meta = job.metadata
    assert meta is not None
    name = f"{meta.name}-{(meta.uid or '')[:5]}{suffix}"
    pod = {
        "metadata": {"name": name, "namespace": meta.namespace, "labels": {"job-name": meta.name}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "engram", "image": "x"}]},
    }
    with suppress(AlreadyExists):
        await client.create(PODS, pod, meta.namespace, type=Pod)
    terminated = {"exitCode": exit_code, "reason": "Error"}
    status = {
        "phase": "Failed",
        "containerStatuses": [
            {
                "name": "engram",
                "image": "x",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
        ],
    }
    written: Pod = await client.merge_patch(
        PODS, name, {"status": status}, meta.namespace, type=Pod, subresource="status"
    )
    return written


async def sdk_status(client: KubeClient, steprun: StepRun, phase: str, **fields: Any) -> StepRun:
    """What the SDK writes: a merge patch on the status subresource."""
    meta = steprun.metadata
    assert meta is not None
    status: dict[str, Any] = {"phase": phase, **fields}
    written: StepRun = await client.merge_patch(
        STEP_RUNS,
        meta.name or "",
        {"status": status},
        meta.namespace,
        type=StepRun,
        subresource="status",
    )
    return written


class StepRunVersions:
    """Every version of every StepRun of a namespace, in watch order (a watch, not a poll)."""

    def __init__(self, client: KubeClient, namespace: str) -> None:
        self.versions: list[StepRun] = []
        self.informer = Informer(client, STEP_RUNS, StepRun, options=InformerOptions(namespace))
        self.informer.add_handler(self._seen)

    def _seen(self, event: Event[StepRun]) -> None:
        if event.type != "deleted":
            self.versions.append(event.obj)

    def of(self, name: str) -> list[StepRun]:
        return [v for v in self.versions if v.metadata is not None and v.metadata.name == name]


@asynccontextmanager
async def watching_stepruns(client: KubeClient, namespace: str) -> AsyncIterator[StepRunVersions]:
    versions = StepRunVersions(client, namespace)
    async with anyio.create_task_group() as group:
        group.start_soon(versions.informer.run)

        async def synced() -> bool | None:
            return True if versions.informer.has_synced else None

        await poll_until_async(synced, within=30, what="the StepRun watch")
        try:
            yield versions
        finally:
            group.cancel_scope.cancel()


@dataclass
class JobLog:
    """Every Job the controller created in the namespace, by name: their UIDs in order."""

    uids: dict[str, list[str]] = field(default_factory=dict)

    def record(self, job: Job) -> None:
        meta = job.metadata
        if meta is None:
            return
        seen = self.uids.setdefault(meta.name or "", [])
        if meta.uid not in seen:
            seen.append(meta.uid or "")


class FakeKubelet:
    """Runs each new Job once, as `behaviour` says."""

    def __init__(self, client: KubeClient, namespace: str, behaviour: Behaviour) -> None:
        self.client = client
        self.namespace = namespace
        self.behaviour = behaviour
        self.jobs = JobLog()
        self.observers: list[Callable[[Job], None]] = []
        """Called with every Job version the kubelet's watch delivers (benchmarks time them)."""
        self._handled: set[str] = set()
        self._send, self._receive = anyio.create_memory_object_stream[Job](10_000)

    def _on_event(self, event: Event[Job]) -> None:
        if event.type == "deleted":
            return
        self.jobs.record(event.obj)
        for observe in self.observers:
            observe(event.obj)
        self._send.send_nowait(event.obj)

    async def _work(self) -> None:
        async with anyio.create_task_group() as group:
            async for job in self._receive:
                uid = job.metadata.uid if job.metadata else None
                if uid is None or uid in self._handled:
                    continue
                self._handled.add(uid)
                group.start_soon(self._run, job)

    async def _run(self, job: Job) -> None:
        # Like a real SDK and kubelet, ride out an apiserver that is briefly away (a restart
        # in a reliability scenario): the client's own retries give up after a few seconds.
        for _ in range(60):
            try:
                await self._run_once(job)
                return
            except APISERVER_AWAY:
                await anyio.sleep(0.5)

    async def _run_once(self, job: Job) -> None:
        meta = job.metadata
        assert meta is not None
        try:
            steprun = await self.client.get(
                STEP_RUNS, meta.name or "", meta.namespace, type=StepRun
            )
        except NotFound:
            return
        attempt = await self.behaviour(self, job, steprun)
        with suppress(NotFound):
            await self.play(job, steprun, attempt)

    async def play(self, job: Job, steprun: StepRun, attempt: Attempt) -> None:
        if attempt.sdk_phase is not None:
            fields: dict[str, Any] = {}
            if steprun.status is None or steprun.status.retries is None:
                fields["retries"] = 0
            if attempt.output is not None:
                fields["output"] = dict(attempt.output)
            if attempt.exit_class is not None:
                fields["exitClass"] = attempt.exit_class
            if attempt.exit_code:
                fields["exitCode"] = attempt.exit_code
            await sdk_status(self.client, steprun, attempt.sdk_phase, **fields)
        if attempt.job_result == "succeeded":
            await write_job_status(self.client, job, succeeded=1)
        elif attempt.job_result == "failed":
            await failed_pod(self.client, job, attempt.exit_code)
            await write_job_status(self.client, job, failed=1)
        elif attempt.job_result == "failed-without-pod":
            await write_job_status(self.client, job, failed=1)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        informer = Informer(self.client, JOBS, Job, options=InformerOptions(self.namespace))
        informer.add_handler(self._on_event)
        with self._send, self._receive:
            async with anyio.create_task_group() as group:
                group.start_soon(informer.run)
                group.start_soon(self._work)

                async def synced() -> bool | None:
                    return True if informer.has_synced else None

                await poll_until_async(synced, within=30, what="the kubelet's Job informer")
                task_status.started()


@asynccontextmanager
async def fake_kubelet(
    client: KubeClient, namespace: str, behaviour: Behaviour
) -> AsyncIterator[FakeKubelet]:
    kubelet = FakeKubelet(client, namespace, behaviour)
    async with anyio.create_task_group() as group:
        await group.start(kubelet.run)
        try:
            yield kubelet
        finally:
            group.cancel_scope.cancel()


def echo(step_output: Mapping[str, Any] | None = None) -> Behaviour:
    """Every attempt succeeds; the output is the step's inputs (from the Job's environment)
    plus the step id, or `step_output` when given."""

    async def behave(kubelet: FakeKubelet, job: Job, steprun: StepRun) -> Attempt:
        output = dict(step_output) if step_output is not None else trigger_data(job)
        output.setdefault("step", steprun.spec.step_id)
        return succeed(output)

    return behave


def scripted(attempts: Mapping[str, list[Attempt]], default: Behaviour | None = None) -> Behaviour:
    """Attempt n of step S does `attempts[S][n]` (the last entry repeats); other steps echo."""
    fallback = default or echo()
    counts: dict[str, int] = {}

    async def behave(kubelet: FakeKubelet, job: Job, steprun: StepRun) -> Attempt:
        script = attempts.get(steprun.spec.step_id)
        if not script:
            return await fallback(kubelet, job, steprun)
        index = counts.get(steprun.spec.step_id, 0)
        counts[steprun.spec.step_id] = index + 1
        attempt = script[min(index, len(script) - 1)]
        if attempt.sdk_phase == "Succeeded" and attempt.output is None:
            output = trigger_data(job)
            output.setdefault("step", steprun.spec.step_id)
            return Attempt("Succeeded", output, attempt.exit_class, attempt.job_result)
        return attempt

    return behave


async def get_steprun(client: KubeClient, namespace: str, name: str) -> StepRun:
    result: StepRun = await client.get(STEP_RUNS, name, namespace, type=StepRun)
    return result


async def wait_for_steprun(
    client: KubeClient,
    namespace: str,
    name: str,
    predicate: Callable[[StepRun], bool],
    what: str,
    within: float = 60,
) -> StepRun:
    async def reached() -> StepRun | None:
        try:
            steprun = await get_steprun(client, namespace, name)
        except NotFound:
            return None
        return steprun if predicate(steprun) else None

    result: StepRun = await poll_until_async(reached, within=within, what=what)
    return result


async def wait_for_job(
    client: KubeClient, namespace: str, name: str, *, not_uid: str | None = None, within: float = 60
) -> Job:
    async def present() -> Job | None:
        try:
            job: Job = await client.get(JOBS, name, namespace, type=Job)
        except NotFound:
            return None
        if job.metadata is not None and job.metadata.uid == not_uid:
            return None
        return job

    result: Job = await poll_until_async(present, within=within, what=f"Job {name}")
    return result


def phase_of(steprun: StepRun) -> str | None:
    return steprun.status.phase if steprun.status else None


async def wait_until_gone(
    client: KubeClient,
    resource: Any,
    namespace: str,
    name: str,
    kind: type[Any],
    within: float = 30,
) -> None:
    async def gone() -> bool | None:
        try:
            await client.get(resource, name, namespace, type=kind)
        except NotFound:
            return True
        return None

    await poll_until_async(gone, within=within, what=f"{resource.kind} {name} to be deleted")


async def wait_for_event(
    client: KubeClient, namespace: str, regarding: str, reason: str, within: float = 30
) -> Any:
    """The events.k8s.io Event with `reason` about the object named `regarding`."""
    from runs_controller.api.k8s import Event as ApiEvent
    from runs_controller.kube.resources import EVENTS

    async def found() -> Any:
        events = (await client.list(EVENTS, namespace, type=ApiEvent)).items
        return next(
            (
                e
                for e in events
                if e.reason == reason and e.regarding is not None and e.regarding.name == regarding
            ),
            None,
        )

    return await poll_until_async(found, within=within, what=f"event {reason} on {regarding}")


async def manual_steprun(
    client: KubeClient, namespace: str, run_name: str, step: str, engram: str, **spec: Any
) -> StepRun:
    """A StepRun of `run_name` made by hand (the run's own step waits on something else)."""
    run = await client.get(STORY_RUNS, run_name, namespace, type=StoryRun)
    assert run.metadata is not None
    body = {
        "metadata": {
            "name": f"{run_name}-{step}",
            "namespace": namespace,
            "labels": {"bubustack.io/storyrun": run_name},
            "ownerReferences": [
                {
                    "apiVersion": "runs.bubustack.io/v1alpha1",
                    "kind": "StoryRun",
                    "name": run_name,
                    "uid": run.metadata.uid,
                    "controller": True,
                }
            ],
        },
        "spec": {
            "storyRunRef": {"name": run_name},
            "stepId": step,
            "engramRef": {"name": engram},
            **spec,
        },
    }
    created: StepRun = await client.create(STEP_RUNS, body, namespace, type=StepRun)
    return created
