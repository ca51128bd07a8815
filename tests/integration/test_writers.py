"""The status writer and the child writer against the real apiserver: what server-side apply
keeps, removes and skips, and create-if-absent under deterministic names."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from prometheus_client import CollectorRegistry

from runs_controller.api.meta import Condition, ObjectMeta, OwnerReference
from runs_controller.api.refs import StoryReference, StoryRunReference
from runs_controller.api.runs.steprun import StepRun, StepRunSpec, StepRunStatus
from runs_controller.api.runs.storyrun import StoryRun, StoryRunSpec
from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.kube.errors import Conflict, NotFound
from runs_controller.kube.resources import STEP_RUNS, STORY_RUNS
from runs_controller.observability.metrics import WriterMetrics
from runs_controller.runtime.cache import CacheReader
from runs_controller.runtime.children import CHILD_CONFLICT, ChildConflict, ChildWriter
from runs_controller.runtime.informer import Informer, InformerOptions
from runs_controller.runtime.status import StatusWriter
from runs_controller.testing import HarnessClient
from runs_controller.testing.wait import wait_until

pytestmark = pytest.mark.timeout(120)

NOW = datetime.datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=datetime.UTC)


@pytest.fixture
async def client(kubeconfig: Path, crds: list[str]) -> AsyncIterator[KubeClient]:
    async with KubeClient(await load_kubeconfig(kubeconfig)) as kube:
        yield kube


def _condition(status: str, reason: str) -> Condition:
    return Condition(
        type="Ready", status=status, last_transition_time=NOW, reason=reason, message=reason
    )


def _steprun(namespace: str, name: str, owners: list[OwnerReference] | None = None) -> StepRun:
    return StepRun(
        metadata=ObjectMeta(name=name, namespace=namespace, owner_references=owners),
        spec=StepRunSpec(story_run_ref=StoryRunReference(name="run"), step_id="fetch"),
    )


async def _cached(informer: Informer[StepRun], key: str, rv_not: str | None = None) -> StepRun:
    """The cached object once it is there (and newer than `rv_not`)."""

    def fresh() -> bool:
        obj = informer.store.get(key)
        return (
            obj is not None
            and obj.metadata is not None
            and (rv_not is None or obj.metadata.resource_version != rv_not)
        )

    await wait_until(fresh, within=30, what=f"{key} in the cache")
    obj = informer.store.get(key)
    assert obj is not None
    return obj


def _rv(obj: StepRun) -> str:
    assert obj.metadata is not None
    return obj.metadata.resource_version or ""


async def test_status_apply_is_skipped_when_it_changes_nothing_and_keeps_sdk_fields(
    client: KubeClient, admin_client: HarnessClient, namespace: str
) -> None:
    registry = CollectorRegistry()
    writer = StatusWriter(client, controller="steprun", metrics=WriterMetrics.create(registry))
    created = await client.create(STEP_RUNS, _steprun(namespace, "s"), type=StepRun)
    key = f"{namespace}/s"
    informer = Informer(client, STEP_RUNS, StepRun, options=InformerOptions(namespace))
    async with anyio.create_task_group() as group:
        group.start_soon(informer.run)
        observed = await _cached(informer, key)
        running = StepRunStatus(
            retries=0, phase="Running", started_at=NOW, conditions=[_condition("False", "Running")]
        )
        written = await writer.apply(STEP_RUNS, observed, running)
        assert written is not None and written.status is not None
        # metav1.Time is whole seconds on the server; the comparison knows it.
        assert written.status.started_at == NOW.replace(microsecond=0)
        # The cache has not seen our write yet: the same apply on the same version is skipped.
        assert await writer.apply(STEP_RUNS, observed, running) is None
        observed = await _cached(informer, key, rv_not=_rv(observed))
        # ... and so is it once the cache holds our write.
        assert await writer.apply(STEP_RUNS, observed, running) is None

        # The SDK reports success with a merge patch (its own field manager).
        sdk_patch = {"status": {"phase": "Succeeded", "output": {"answer": 42}}}
        await client.merge_patch(
            STEP_RUNS, "s", sdk_patch, namespace, type=StepRun, subresource="status"
        )
        observed = await _cached(informer, key, rv_not=_rv(observed))
        # Our next status (conditions follow the phase) never carries the SDK's fields...
        done = StepRunStatus(
            retries=0, started_at=NOW, conditions=[_condition("True", "Succeeded")]
        )
        written = await writer.apply(STEP_RUNS, observed, done)
        assert written is not None and written.status is not None
        # ... and does not erase them: phase and output stay as the SDK wrote them.
        assert (written.status.phase, written.status.output) == ("Succeeded", {"answer": 42})
        assert [c.reason for c in written.status.conditions or []] == ["Succeeded"]

        # A field we owned and leave out is removed by the apply (so it is not skipped).
        observed = await _cached(informer, key, rv_not=_rv(observed))
        without_start = StepRunStatus(retries=0, conditions=[_condition("True", "Succeeded")])
        assert writer.would_change(observed, without_start)
        written = await writer.apply(STEP_RUNS, observed, without_start)
        assert written is not None and written.status is not None
        assert written.status.started_at is None
        assert written.status.output == {"answer": 42}
        group.cancel_scope.cancel()
    assert created.metadata is not None
    assert (writer.sent, writer.skipped) == (3, 2)
    labels = {"controller": "steprun", "kind": "StepRun"}
    assert (
        registry.get_sample_value(
            "runs_controller_status_writes_total", {**labels, "result": "sent"}
        )
        == 3
    )
    assert (
        registry.get_sample_value(
            "runs_controller_status_writes_total", {**labels, "result": "skipped"}
        )
        == 2
    )


async def test_a_preconditioned_apply_from_an_old_copy_is_refused_and_writes_nothing(
    client: KubeClient, namespace: str
) -> None:
    writer = StatusWriter(client, controller="steprun")
    created = await client.create(STEP_RUNS, _steprun(namespace, "p"), type=StepRun)
    running = StepRunStatus(retries=0, phase="Running")
    observed = await writer.apply(STEP_RUNS, created, running, precondition=True)
    assert observed is not None and observed.status is not None
    # The SDK reports success after our copy was read.
    await client.merge_patch(
        STEP_RUNS,
        "p",
        {"status": {"phase": "Succeeded"}},
        namespace,
        type=StepRun,
        subresource="status",
    )
    # A decision made on the old copy (say, "still Running, Job failed") is refused...
    with pytest.raises(Conflict):
        await writer.apply(
            STEP_RUNS, observed, StepRunStatus(retries=0, phase="Failed"), precondition=True
        )
    fresh = await client.get(STEP_RUNS, "p", namespace, type=StepRun)
    assert fresh.status is not None and fresh.status.phase == "Succeeded"
    # ... and the same decision on the fresh copy goes through.
    written = await writer.apply(
        STEP_RUNS,
        fresh,
        StepRunStatus(retries=0, phase="Succeeded", exit_code=0),
        precondition=True,
    )
    assert written is not None and written.status is not None
    assert (written.status.phase, written.status.exit_code) == ("Succeeded", 0)


async def test_a_status_for_a_deleted_object_does_not_recreate_it(
    client: KubeClient, namespace: str
) -> None:
    writer = StatusWriter(client, controller="steprun")
    gone = await client.create(STEP_RUNS, _steprun(namespace, "gone"), type=StepRun)
    await client.delete(STEP_RUNS, "gone", namespace)
    with pytest.raises(NotFound):
        await writer.apply(STEP_RUNS, gone, StepRunStatus(retries=0, phase="Failed"))
    with pytest.raises(NotFound):
        await client.get(STEP_RUNS, "gone", namespace, type=StepRun)


async def test_children_are_created_once_adopted_when_orphaned_and_never_stolen(
    client: KubeClient, admin_client: HarnessClient, namespace: str
) -> None:
    run = StoryRun(
        metadata=ObjectMeta(name="run", namespace=namespace),
        spec=StoryRunSpec(story_ref=StoryReference(name="story")),
    )
    owner = await client.create(STORY_RUNS, run, type=StoryRun)
    other = await client.create(
        STORY_RUNS,
        StoryRun(metadata=ObjectMeta(name="other", namespace=namespace), spec=run.spec),
        type=StoryRun,
    )
    assert owner.metadata is not None and other.metadata is not None
    children = ChildWriter(client)
    informer = Informer(client, STEP_RUNS, StepRun, options=InformerOptions(namespace))
    cache = CacheReader(STEP_RUNS, {namespace: informer})

    child = await children.create_if_absent(
        STEP_RUNS, _steprun(namespace, "run-fetch"), owner=owner, owner_resource=STORY_RUNS
    )
    assert child.metadata is not None
    (reference,) = child.metadata.owner_references or []
    assert (reference.kind, reference.name, reference.uid) == (
        "StoryRun",
        "run",
        owner.metadata.uid,
    )
    assert reference.controller is True and reference.block_owner_deletion is True

    async with anyio.create_task_group() as group:
        group.start_soon(informer.run)
        await informer.wait_for_sync()
        # A replayed event or a restart creates it again: the existing child comes back.
        again = await children.create_if_absent(
            STEP_RUNS,
            _steprun(namespace, "run-fetch"),
            owner=owner,
            owner_resource=STORY_RUNS,
            cache=cache,
        )
        assert again.metadata is not None
        assert again.metadata.uid == child.metadata.uid
        group.cancel_scope.cancel()

    # An orphan with our deterministic name is adopted.
    await client.create(STEP_RUNS, _steprun(namespace, "run-orphan"), type=StepRun)
    adopted = await children.create_if_absent(
        STEP_RUNS, _steprun(namespace, "run-orphan"), owner=owner, owner_resource=STORY_RUNS
    )
    assert adopted.metadata is not None
    assert [r.uid for r in adopted.metadata.owner_references or []] == [owner.metadata.uid]

    # A child controlled by another run is a terminal conflict, and stays untouched.
    foreign_ref = OwnerReference(
        api_version="runs.bubustack.io/v1alpha1",
        kind="StoryRun",
        name="other",
        uid=other.metadata.uid or "",
        controller=True,
    )
    await client.create(STEP_RUNS, _steprun(namespace, "run-taken", [foreign_ref]), type=StepRun)
    with pytest.raises(ChildConflict) as conflict:
        await children.create_if_absent(
            STEP_RUNS, _steprun(namespace, "run-taken"), owner=owner, owner_resource=STORY_RUNS
        )
    assert conflict.value.reason == CHILD_CONFLICT
    assert f"StepRun {namespace}/run-taken already exists and is controlled by StoryRun other" in (
        conflict.value.message
    )
    taken = admin_client.get(
        f"/apis/runs.bubustack.io/v1alpha1/namespaces/{namespace}/stepruns/run-taken"
    )
    assert [r["name"] for r in taken["metadata"]["ownerReferences"]] == ["other"]
    listed = admin_client.get(f"/apis/runs.bubustack.io/v1alpha1/namespaces/{namespace}/stepruns")
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == [
        "run-fetch",
        "run-orphan",
        "run-taken",
    ]
