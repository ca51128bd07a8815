"""The event recorder against the real apiserver: series, distinct events, spam, core/v1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from runs_controller.api.k8s import CoreEvent, Event
from runs_controller.api.meta import Resource
from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.kube.resources import CONFIG_MAPS, CORE_EVENTS, EVENTS
from runs_controller.runtime.events import EventRecorder
from runs_controller.testing import ControlPlane, ControlPlaneConfig
from runs_controller.testing.pytest_plugin import start_control_plane_or_fail
from runs_controller.testing.wait import poll_until_async

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def client(kubeconfig: Path) -> AsyncIterator[KubeClient]:
    async with KubeClient(await load_kubeconfig(kubeconfig)) as kube:
        yield kube


async def make_object(client: KubeClient, namespace: str, name: str = "subject") -> Resource:
    """A real object (a ConfigMap) for events to be about."""
    body = {"metadata": {"name": name, "namespace": namespace}, "data": {"k": "v"}}
    return await client.create(CONFIG_MAPS, body, type=Resource)


async def events_in(client: KubeClient, namespace: str) -> list[Event]:
    return (await client.list(EVENTS, namespace, type=Event)).items


async def wait_for_events(client: KubeClient, namespace: str, count: int, what: str) -> list[Event]:
    async def probe() -> list[Event] | None:
        items = await events_in(client, namespace)
        return items if len(items) == count else None

    return await poll_until_async(probe, within=15, what=what)


async def test_the_same_event_ten_times_is_one_event_with_series_count_ten(
    client: KubeClient, namespace: str
) -> None:
    subject = await make_object(client, namespace)
    assert subject.metadata is not None
    rec = EventRecorder(client, reporting_instance="pod-a")
    async with anyio.create_task_group() as tg:
        tg.start_soon(rec.run)
        # Interleave flushes so both the create and the series patches reach the API.
        for batch in (1, 4, 5):
            for _ in range(batch):
                rec.record(
                    subject, "Normal", "Synced", "Reconcile", "all good", resource=CONFIG_MAPS
                )
            await rec.flush()

        async def series_of_ten() -> Event | None:
            items = await events_in(client, namespace)
            assert len(items) == 1, [e.metadata.name for e in items if e.metadata]
            event = items[0]
            return event if event.series is not None and event.series.count == 10 else None

        event = await poll_until_async(series_of_ten, within=15, what="series count 10")
        tg.cancel_scope.cancel()
    assert event.metadata is not None and event.metadata.name is not None
    assert event.metadata.name.startswith("subject.")
    assert event.regarding is not None
    assert (event.regarding.kind, event.regarding.name, event.regarding.uid) == (
        "ConfigMap",
        "subject",
        subject.metadata.uid,
    )
    assert (event.type, event.reason, event.action, event.note) == (
        "Normal",
        "Synced",
        "Reconcile",
        "all good",
    )
    assert (event.reporting_controller, event.reporting_instance) == ("runs-controller", "pod-a")
    assert event.series is not None
    assert event.series.last_observed_time >= event.event_time
    assert rec.stats.failed == 0


async def test_different_reasons_make_different_events(client: KubeClient, namespace: str) -> None:
    subject = await make_object(client, namespace)
    rec = EventRecorder(client, reporting_instance="pod-a")
    async with anyio.create_task_group() as tg:
        tg.start_soon(rec.run)
        rec.record(subject, "Normal", "Started", "Reconcile", resource=CONFIG_MAPS)
        rec.record(subject, "Warning", "Failed", "Reconcile", "x" * 3000, resource=CONFIG_MAPS)
        rec.record(subject, "Normal", "Started", "Reconcile", resource=CONFIG_MAPS)
        items = await wait_for_events(client, namespace, 2, "two events")
        tg.cancel_scope.cancel()
    by_reason = {e.reason: e for e in items}
    assert set(by_reason) == {"Started", "Failed"}
    started_series = by_reason["Started"].series
    assert started_series is not None and started_series.count == 2
    assert by_reason["Failed"].series is None
    assert by_reason["Failed"].note == "x" * 1024


async def test_the_spam_filter_drops_beyond_the_burst(client: KubeClient, namespace: str) -> None:
    hot = await make_object(client, namespace, "hot")
    calm = await make_object(client, namespace, "calm")
    rec = EventRecorder(client, reporting_instance="pod-a")
    async with anyio.create_task_group() as tg:
        tg.start_soon(rec.run)
        for i in range(40):
            rec.record(hot, "Warning", f"Reason{i}", "Reconcile", resource=CONFIG_MAPS)
        rec.record(calm, "Normal", "Reason0", "Reconcile", resource=CONFIG_MAPS)
        await rec.flush()
        items = await wait_for_events(client, namespace, 26, "25 + 1 events")
        tg.cancel_scope.cancel()
    about = [e.regarding.name for e in items if e.regarding is not None]
    assert about.count("hot") == 25
    assert about.count("calm") == 1
    assert rec.stats.spam_dropped == 15
    assert {e.reason for e in items if e.regarding and e.regarding.name == "hot"} == {
        f"Reason{i}" for i in range(25)
    }


async def test_core_v1_events_count_repeats(client: KubeClient, namespace: str) -> None:
    subject = await make_object(client, namespace)
    rec = EventRecorder(client, reporting_instance="pod-a", api="core")
    async with anyio.create_task_group() as tg:
        tg.start_soon(rec.run)
        for batch in (1, 2):
            for _ in range(batch):
                rec.record(subject, "Warning", "Failed", "Reconcile", "boom", resource=CONFIG_MAPS)
            await rec.flush()

        async def counted() -> CoreEvent | None:
            items = (await client.list(CORE_EVENTS, namespace, type=CoreEvent)).items
            assert len(items) == 1
            return items[0] if items[0].count == 3 else None

        event = await poll_until_async(counted, within=15, what="core event count 3")
        tg.cancel_scope.cancel()
    assert event.involved_object.name == "subject"
    assert event.source is not None and event.source.component == "runs-controller"
    assert (event.reason, event.message, event.type) == ("Failed", "boom", "Warning")
    assert event.first_timestamp is not None and event.last_timestamp is not None
    assert event.last_timestamp >= event.first_timestamp


@pytest.fixture
def plane_without_events_api() -> Iterator[ControlPlane]:
    plane = start_control_plane_or_fail(
        ControlPlaneConfig(extra_apiserver_args=["--runtime-config=events.k8s.io/v1=false"])
    )
    try:
        yield plane
    finally:
        plane.stop()


async def test_falls_back_to_core_v1_when_events_k8s_io_is_not_served(
    plane_without_events_api: ControlPlane,
) -> None:
    plane = plane_without_events_api
    namespace = plane.create_namespace("events")
    async with KubeClient(await load_kubeconfig(plane.kubeconfig_path)) as client:
        subject = await make_object(client, namespace)
        rec = EventRecorder(client, reporting_instance="pod-a")
        async with anyio.create_task_group() as tg:
            tg.start_soon(rec.run)
            rec.record(subject, "Normal", "Synced", "Reconcile", resource=CONFIG_MAPS)
            await rec.flush()
            rec.record(subject, "Normal", "Synced", "Reconcile", resource=CONFIG_MAPS)
            rec.record(subject, "Normal", "Other", "Reconcile", resource=CONFIG_MAPS)
            await rec.flush()
            tg.cancel_scope.cancel()
        assert rec.api == "core"
        assert rec.stats.failed == 0
        items = (await client.list(CORE_EVENTS, namespace, type=CoreEvent)).items
    counts = {e.reason: e.count for e in items}
    assert counts == {"Synced": 2, "Other": 1}
