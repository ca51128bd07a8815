"""Support for the StoryRun controller tests: the controller in this process, a stand-in for
the Engram SDK that writes StepRun status as the SDK does (merge patch on /status), and
watchers that see every version of every StepRun."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
import msgspec
from prometheus_client import CollectorRegistry

from runs_controller.api.bubustack.engram import Engram
from runs_controller.api.bubustack.story import Story
from runs_controller.api.catalog.engramtemplate import EngramTemplate
from runs_controller.api.runs.steprun import StepRun
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.app import ControllerSettings, build_manager
from runs_controller.dag.states import steps_context
from runs_controller.expr import resolve_value
from runs_controller.kube.client import KubeClient
from runs_controller.kube.errors import AlreadyExists, NotFound
from runs_controller.kube.resources import (
    ENGRAM_TEMPLATES,
    ENGRAMS,
    STEP_RUNS,
    STORIES,
    STORY_RUNS,
)
from runs_controller.runtime.informer import Event, Informer, InformerOptions
from runs_controller.runtime.manager import Manager
from runs_controller.testing.wait import poll_until_async

DONE = {"Succeeded", "Failed", "Compensated", "Timeout", "Finished"}
"""The phases a StoryRun ends in."""
TERMINAL = {
    "Succeeded",
    "Failed",
    "Finished",
    "Canceled",
    "Compensated",
    "Timeout",
    "Aborted",
    "Skipped",
}


def settings(namespace: str, **overrides: Any) -> ControllerSettings:
    values: dict[str, Any] = {
        "namespaces": (namespace,),
        "leader_election_namespace": namespace,
        "leader_election_id": f"rc-{namespace}",
        "metrics_address": None,
        "health_address": None,
        "handle_signals": False,
        "lease_duration": 4.0,
        "renew_deadline": 3.0,
        "retry_period": 0.5,
        "config_namespace": namespace,
        **overrides,
    }
    return ControllerSettings(**values)


@asynccontextmanager
async def running_controller(
    client: KubeClient,
    namespace: str,
    *,
    prepare: Callable[[Manager], None] | None = None,
    **overrides: Any,
) -> AsyncIterator[Manager]:
    """The manager with the four controllers, leading and synced, until the block ends;
    `prepare` may adjust it (wrap its reconcilers) before it starts."""
    manager = build_manager(
        settings(namespace, **overrides), client, namespace, CollectorRegistry()
    )
    if prepare is not None:
        prepare(manager)
    async with anyio.create_task_group() as group:
        group.start_soon(manager.run)

        async def ready() -> bool | None:
            return True if manager.controllers_started else None

        await poll_until_async(ready, within=60, what="the controller to lead with synced caches")
        try:
            yield manager
        finally:
            manager.stop()


# -- objects -----------------------------------------------------------------------------------


async def create(
    client: KubeClient, resource: Any, body: Mapping[str, Any], kind: type[Any]
) -> Any:
    namespace = body.get("metadata", {}).get("namespace")
    return await client.create(resource, dict(body), namespace, type=kind)


async def ensure_template(client: KubeClient, name: str = "echo") -> None:
    body = {
        "apiVersion": "catalog.bubustack.io/v1alpha1",
        "kind": "EngramTemplate",
        "metadata": {"name": name},
        "spec": {"version": "1.0.0", "supportedModes": ["job"], "image": "example/echo:1"},
    }
    with suppress(AlreadyExists):
        await client.create(ENGRAM_TEMPLATES, body, type=EngramTemplate)


def nested_value(depth: int) -> Any:
    """`{"n": {"n": ... "leaf"}}`, `depth` objects deep."""
    value: Any = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value


async def create_engram(client: KubeClient, namespace: str, name: str = "echo") -> Engram:
    await ensure_template(client)
    body = {
        "apiVersion": "bubustack.io/v1alpha1",
        "kind": "Engram",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"templateRef": {"name": "echo"}},
    }
    result: Engram = await client.create(ENGRAMS, body, namespace, type=Engram)
    return result


async def create_story(
    client: KubeClient, namespace: str, name: str, spec: Mapping[str, Any]
) -> Story:
    body = {
        "apiVersion": "bubustack.io/v1alpha1",
        "kind": "Story",
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec),
    }
    result: Story = await client.create(STORIES, body, namespace, type=Story)
    return result


async def create_run(
    client: KubeClient,
    namespace: str,
    name: str,
    story: str,
    inputs: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> StoryRun:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = dict(annotations)
    spec: dict[str, Any] = {"storyRef": {"name": story}}
    if inputs is not None:
        spec["inputs"] = dict(inputs)
    body = {
        "apiVersion": "runs.bubustack.io/v1alpha1",
        "kind": "StoryRun",
        "metadata": meta,
        "spec": spec,
    }
    result: StoryRun = await client.create(STORY_RUNS, body, namespace, type=StoryRun)
    return result


async def get_run(client: KubeClient, namespace: str, name: str) -> StoryRun:
    result: StoryRun = await client.get(STORY_RUNS, name, namespace, type=StoryRun)
    return result


async def wait_for_phase(
    client: KubeClient, namespace: str, name: str, phases: set[str] | str, within: float = 60
) -> StoryRun:
    wanted = {phases} if isinstance(phases, str) else phases

    async def reached() -> StoryRun | None:
        run = await get_run(client, namespace, name)
        return run if run.status is not None and run.status.phase in wanted else None

    result: StoryRun = await poll_until_async(
        reached, within=within, what=f"StoryRun {name} to reach {sorted(wanted)}"
    )
    return result


async def sdk_write(
    client: KubeClient,
    steprun: StepRun,
    phase: str,
    output: Mapping[str, Any] | None = None,
    exit_class: str | None = None,
) -> None:
    """What the SDK in the Engram pod writes: a merge patch on the status subresource."""
    status: dict[str, Any] = {"phase": phase}
    if steprun.status is None or steprun.status.retries is None:
        status["retries"] = 0
    if output is not None:
        status["output"] = dict(output)
    if exit_class is not None:
        status["exitClass"] = exit_class
    meta = steprun.metadata
    assert meta is not None
    await client.merge_patch(
        STEP_RUNS,
        meta.name or "",
        {"status": status},
        meta.namespace,
        type=StepRun,
        subresource="status",
    )


Decision = tuple[str, dict[str, Any] | None]
Behaviour = Callable[["FakeSdk", StepRun], Awaitable[Decision | None]]


@dataclass
class StepRunLog:
    """Every version of every StepRun of a namespace, in watch order."""

    versions: list[StepRun] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)
    """name -> how many distinct UIDs were seen under it (a duplicate shows as 2)."""
    uids: dict[str, set[str]] = field(default_factory=dict)

    def record(self, steprun: StepRun) -> None:
        self.versions.append(steprun)
        meta = steprun.metadata
        if meta is None:
            return
        self.uids.setdefault(meta.name or "", set()).add(meta.uid or "")


class FakeSdk:
    """Plays the Engram SDK (and the Job): each new StepRun gets the status `behaviour` gives."""

    def __init__(self, client: KubeClient, namespace: str, behaviour: Behaviour) -> None:
        self.client = client
        self.namespace = namespace
        self.behaviour = behaviour
        self.log = StepRunLog()
        self.handled: set[str] = set()
        self.paused = False
        self._busy: set[str] = set()
        self.observers: list[Callable[[StepRun], None]] = []
        """Called with every version the SDK's watch delivers (benchmarks time them)."""
        self._send, self._receive = anyio.create_memory_object_stream[StepRun](10_000)

    def _on_event(self, event: Event[StepRun]) -> None:
        if event.type == "deleted":
            return
        self.log.record(event.obj)
        for observe in self.observers:
            observe(event.obj)
        self._send.send_nowait(event.obj)

    async def _work(self) -> None:
        """Each StepRun is handled in its own task (one SDK per pod), a few at a time."""
        limiter = anyio.CapacityLimiter(16)
        async with anyio.create_task_group() as group:
            async for steprun in self._receive:
                meta = steprun.metadata
                if meta is None or meta.uid in self.handled or self.paused:
                    continue
                if steprun.status is not None and steprun.status.phase in TERMINAL:
                    continue
                if meta.uid in self._busy:
                    continue
                self._busy.add(meta.uid or "")
                group.start_soon(self._handle, steprun, limiter)

    async def _handle(self, steprun: StepRun, limiter: anyio.CapacityLimiter) -> None:
        meta = steprun.metadata
        assert meta is not None
        try:
            async with limiter:
                decision = await self.behaviour(self, steprun)
                if decision is None:
                    return
                self.handled.add(meta.uid or "")
                phase, output = decision
                with suppress(NotFound):
                    await sdk_write(self.client, steprun, phase, output)
        finally:
            self._busy.discard(meta.uid or "")

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        informer = Informer(
            self.client, STEP_RUNS, StepRun, options=InformerOptions(self.namespace)
        )
        informer.add_handler(self._on_event)
        with self._send, self._receive:
            await self._serve(informer, task_status)

    async def _serve(
        self, informer: Informer[StepRun], task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(informer.run)
            group.start_soon(self._work)

            async def synced() -> bool | None:
                return True if informer.has_synced else None

            await poll_until_async(synced, within=30, what="the SDK's StepRun informer")
            task_status.started()

    def retrigger(self, steprun: StepRun) -> None:
        """Offer a StepRun again (e.g. after `paused` is lifted)."""
        self._send.send_nowait(steprun)


@asynccontextmanager
async def fake_sdk(
    client: KubeClient, namespace: str, behaviour: Behaviour
) -> AsyncIterator[FakeSdk]:
    sdk = FakeSdk(client, namespace, behaviour)
    async with anyio.create_task_group() as group:
        await group.start(sdk.run)
        try:
            yield sdk
        finally:
            group.cancel_scope.cancel()


async def resolved_input(client: KubeClient, steprun: StepRun) -> dict[str, Any]:
    """The step's input with its templates resolved against the run's inputs and the outputs
    of its StepRuns so far: what the SDK reads from BUBU_TRIGGER_DATA."""
    meta = steprun.metadata
    assert meta is not None
    namespace = meta.namespace or ""
    run = await get_run(client, namespace, steprun.spec.story_run_ref.name)
    siblings = [
        sr
        for sr in await list_stepruns(client, namespace)
        if sr.spec.story_run_ref.name == steprun.spec.story_run_ref.name
    ]
    variables = {
        "inputs": dict(run.spec.inputs or {}),
        "steps": steps_context(siblings, {}, {}),
    }
    resolved = resolve_value(msgspec.to_builtins(steprun.spec.input) or {}, variables)
    return dict(resolved)


async def echo_success(sdk: FakeSdk, steprun: StepRun) -> Decision:
    """Succeeded, with the step's resolved input as its output (plus the step id)."""
    output = await resolved_input(sdk.client, steprun)
    output["step"] = steprun.spec.step_id
    return "Succeeded", output


async def list_stepruns(client: KubeClient, namespace: str) -> list[StepRun]:
    items, _ = await client.list_all(STEP_RUNS, namespace, type=StepRun)
    return items


def behaviour_by_step(outcomes: Mapping[str, str], default: str | None = "Succeeded") -> Behaviour:
    """Succeed (echoing the resolved input) unless `outcomes` names another phase for the step
    id; a step mapped to "hold" (or absent with default None) is left running."""

    async def decide(sdk: FakeSdk, steprun: StepRun) -> Decision | None:
        phase = outcomes.get(steprun.spec.step_id, default)
        if phase is None or phase == "hold":
            return None
        output = await resolved_input(sdk.client, steprun)
        output["step"] = steprun.spec.step_id
        return phase, output if phase == "Succeeded" else None

    return decide


async def merge_patch_run(
    client: KubeClient, namespace: str, name: str, patch: Mapping[str, Any], *, status: bool = False
) -> StoryRun:
    result: StoryRun = await client.merge_patch(
        STORY_RUNS,
        name,
        dict(patch),
        namespace,
        type=StoryRun,
        subresource="status" if status else None,
    )
    return result


async def wait_for_run(
    client: KubeClient,
    namespace: str,
    name: str,
    predicate: Callable[[StoryRun], bool],
    what: str,
    within: float = 60,
) -> StoryRun:
    async def reached() -> StoryRun | None:
        run = await get_run(client, namespace, name)
        return run if predicate(run) else None

    result: StoryRun = await poll_until_async(reached, within=within, what=what)
    return result


def step_phase(run: StoryRun, step: str) -> str | None:
    states = (run.status.step_states if run.status else None) or {}
    state = states.get(step)
    return state.phase if state is not None else None


def engram_step(name: str, **extra: Any) -> dict[str, Any]:
    """A Story step that runs the `echo` Engram (`create_engram`)."""
    return {"name": name, "ref": {"name": "echo"}, **extra}


def storyrun_reconciles(registry: CollectorRegistry, controller: str = "storyrun") -> float:
    """Reconciles the controller (StoryRun by default) finished, whatever their result."""
    total = 0.0
    for result in ("success", "error", "requeue", "requeue_after"):
        value = registry.get_sample_value(
            "controller_runtime_reconcile_total", {"controller": controller, "result": result}
        )
        total += float(value or 0.0)
    return total


async def wait_until_deleted(
    client: KubeClient, namespace: str, name: str, what: str, within: float = 30
) -> None:
    async def gone() -> bool | None:
        try:
            await get_run(client, namespace, name)
        except NotFound:
            return True
        return None

    await poll_until_async(gone, within=within, what=what)
