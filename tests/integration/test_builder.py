"""Controllers declared on the builder, against the real apiserver: which events wake which
object, and what the typed readers return."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from prometheus_client import CollectorRegistry

from runs_controller.api.bubustack.story import Story
from runs_controller.api.k8s import ConfigMap
from runs_controller.api.meta import ObjectMeta, OwnerReference
from runs_controller.api.refs import StoryReference, StoryRunReference
from runs_controller.api.runs.steprun import StepRun, StepRunSpec
from runs_controller.api.runs.storyrun import StoryRun, StoryRunSpec
from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.kube.resources import CONFIG_MAPS, STEP_RUNS, STORIES, STORY_RUNS
from runs_controller.reconcilers.indexes import (
    STORY_INDEX,
    STORYRUN_INDEX,
    STORYRUN_LABEL,
    steprun_storyrun,
    storyrun_story,
)
from runs_controller.reconcilers.setup import runs_of_story
from runs_controller.runtime.builder import ControllerBuilder, Kit
from runs_controller.runtime.cache import CacheReader
from runs_controller.runtime.manager import Manager, ManagerOptions
from runs_controller.runtime.reconciler import Request, Result
from runs_controller.testing import HarnessClient
from runs_controller.testing.wait import wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def client(kubeconfig: Path, crds: list[str]) -> AsyncIterator[KubeClient]:
    async with KubeClient(await load_kubeconfig(kubeconfig)) as kube:
        yield kube


@dataclass
class Recorder:
    """Counts the reconciles per object and what the readers showed it."""

    runs: CacheReader[StoryRun]
    steps: CacheReader[StepRun]
    kit: Kit
    calls: list[Request] = field(default_factory=list)
    children: dict[str, list[str]] = field(default_factory=dict)

    async def reconcile(self, request: Request) -> Result:
        self.calls.append(request)
        run = self.runs.get(request.namespace, request.name)
        if run is not None and run.metadata is not None and run.metadata.uid:
            owned = self.steps.owned_by(run.metadata.uid)
            self.children[request.name] = sorted(s.metadata.name or "" for s in owned if s.metadata)
        return Result()


def _step(namespace: str, name: str, run: StoryRun) -> StepRun:
    assert run.metadata is not None
    owner = OwnerReference(
        api_version="runs.bubustack.io/v1alpha1",
        kind="StoryRun",
        name=run.metadata.name or "",
        uid=run.metadata.uid or "",
        controller=True,
    )
    return StepRun(
        metadata=ObjectMeta(
            name=name,
            namespace=namespace,
            labels={STORYRUN_LABEL: run.metadata.name or ""},
            owner_references=[owner],
        ),
        spec=StepRunSpec(story_run_ref=StoryRunReference(name="run"), step_id="fetch"),
    )


async def test_for_owns_and_watches_wake_the_right_object(
    client: KubeClient, namespace: str
) -> None:
    manager = Manager(
        client,
        CollectorRegistry(),
        options=ManagerOptions(
            metrics_address=None, health_address=None, handle_signals=False, namespaces=(namespace,)
        ),
    )
    builder = ControllerBuilder(manager, "recorder")
    runs = builder.for_(STORY_RUNS, StoryRun, indexers={STORY_INDEX: storyrun_story})
    steps = builder.owns(STEP_RUNS, StepRun, indexers={STORYRUN_INDEX: steprun_storyrun})
    builder.watches(STORIES, Story, lambda story: runs_of_story(runs, story))
    recorder = Recorder(runs, steps, builder.kit)
    builder.complete(recorder)

    def seen(name: str) -> int:
        return recorder.calls.count(Request(namespace, name))

    async with anyio.create_task_group() as group:
        group.start_soon(manager.run)
        waiting = await client.create(
            STORY_RUNS,
            StoryRun(
                metadata=ObjectMeta(name="waiting", namespace=namespace),
                spec=StoryRunSpec(story_ref=StoryReference(name="later")),
            ),
            type=StoryRun,
        )
        await client.create(
            STORY_RUNS,
            StoryRun(
                metadata=ObjectMeta(name="bystander", namespace=namespace),
                spec=StoryRunSpec(story_ref=StoryReference(name="other")),
            ),
            type=StoryRun,
        )
        await wait_until(lambda: seen("waiting") == 1, within=30, what="the run's own event")
        # A child's event wakes its controlling owner, which then sees the child in its reader.
        await client.create(STEP_RUNS, _step(namespace, "waiting-fetch", waiting), type=StepRun)
        await wait_until(
            lambda: recorder.children.get("waiting") == ["waiting-fetch"],
            within=30,
            what="the owner to be woken by its child",
        )
        # A Story appearing wakes the runs that name it, and only those.
        calls_before = seen("bystander")
        story = {
            "apiVersion": "bubustack.io/v1alpha1",
            "kind": "Story",
            "metadata": {"name": "later", "namespace": namespace},
            "spec": {"steps": [{"name": "a", "type": "sleep", "with": {"duration": "1s"}}]},
        }
        await client.create(STORIES, story, type=Story)
        await wait_until(lambda: seen("waiting") >= 3, within=30, what="the Story to wake its run")
        manager.stop()
    assert seen("bystander") == calls_before
    assert [
        r.metadata.name for r in runs.by_index(STORY_INDEX, f"{namespace}/later") if r.metadata
    ] == ["waiting"]
    assert [
        s.metadata.name
        for s in steps.list(namespace, labels={STORYRUN_LABEL: "waiting"})
        if s.metadata
    ] == ["waiting-fetch"]
    assert steps.list(namespace, labels={STORYRUN_LABEL: "nobody"}) == []
    assert sorted(r.metadata.name or "" for r in runs.list() if r.metadata) == [
        "bystander",
        "waiting",
    ]
    assert runs.get("elsewhere", "waiting") is None  # a namespace this manager does not watch
    assert not runs.watches("elsewhere")


async def test_a_read_only_kind_can_be_cached_by_label_only(
    client: KubeClient, admin_client: HarnessClient, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    admin_client.create(path, {"metadata": {"name": "ours", "labels": {"app": "runs"}}})
    admin_client.create(path, {"metadata": {"name": "theirs", "labels": {"app": "other"}}})
    manager = Manager(
        client,
        CollectorRegistry(),
        options=ManagerOptions(
            metrics_address=None, health_address=None, handle_signals=False, namespaces=(namespace,)
        ),
    )
    builder = ControllerBuilder(manager, "reader")
    builder.for_(STORY_RUNS, StoryRun)
    labelled = builder.reads(CONFIG_MAPS, ConfigMap, label_selector="app=runs")
    everything = builder.reads(CONFIG_MAPS, ConfigMap)
    runs = builder.reads(STORY_RUNS, StoryRun)
    builder.complete(Recorder(runs, builder.reads(STEP_RUNS, StepRun), builder.kit))
    async with anyio.create_task_group() as group:
        group.start_soon(manager.run)
        await wait_until(
            lambda: labelled.has_synced and everything.has_synced,
            within=30,
            what="both readers to sync",
        )
        manager.stop()
    assert [c.metadata.name for c in labelled.list(namespace) if c.metadata] == ["ours"]
    assert {c.metadata.name for c in everything.list(namespace) if c.metadata} >= {"ours", "theirs"}
