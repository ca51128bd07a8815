"""The event recorder against the real apiserver: series, distinct events, spam, queue bounds,
expired events, missing namespaces, unreachable servers, core/v1 fallback."""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from runs_controller.api.k8s import CoreEvent, Event, ObjectReference
from runs_controller.api.meta import Resource
from runs_controller.kube.client import ClientOptions, KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.kube.resources import CONFIG_MAPS, CORE_EVENTS, EVENTS
from runs_controller.runtime.events import EventRecorder, RecorderOptions
from runs_controller.testing import ControlPlane, ControlPlaneConfig
from runs_controller.testing.proxy import TcpProxy
from runs_controller.testing.pytest_plugin import start_control_plane_or_fail
from runs_controller.testing.wait import poll_until_async
from tests.clocks import T0, ManualClock

pytestmark = pytest.mark.timeout(120)


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
    clock = ManualClock()
    async with KubeClient(await load_kubeconfig(plane.kubeconfig_path)) as client:
        subject = await make_object(client, namespace)
        rec = clocked(client, clock)
        rec.record(subject, "Warning", "Synced", "Reconcile", "x" * 2000, resource=CONFIG_MAPS)
        await drain(rec)
        clock.now += 1
        rec.record(subject, "Warning", "Synced", "Reconcile", "x" * 2000, resource=CONFIG_MAPS)
        rec.record(subject, "Normal", "Other", "Reconcile", resource=CONFIG_MAPS)
        await drain(rec)
        assert rec.api == "core"
        assert rec.stats.failed == 0
        items = (await client.list(CORE_EVENTS, namespace, type=CoreEvent)).items
    counts = {e.reason: e.count for e in items}
    assert counts == {"Synced": 2, "Other": 1}
    (synced,) = [e for e in items if e.reason == "Synced"]
    assert synced.message == "x" * 1024
    assert synced.source is not None
    assert (synced.source.component, synced.source.host) == ("runs-controller", "pod-1")
    assert synced.first_timestamp == T0 + datetime.timedelta(seconds=1000)
    assert synced.last_timestamp == T0 + datetime.timedelta(seconds=1001)


# ---- the recorder's own rules, on the real apiserver, with the recorder's clocks set -----------


def clocked(client: KubeClient, clock: ManualClock, **kwargs: Any) -> EventRecorder:
    return EventRecorder(client, reporting_instance="pod-1", clock=clock, now=clock.wall, **kwargs)


async def drain(rec: EventRecorder) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(rec.run)
        with anyio.fail_after(15):
            await rec.flush()
        tg.cancel_scope.cancel()


def by_reason(items: list[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for event in items:
        out.setdefault(event.reason or "", []).append(event)
    return out


async def test_a_series_carries_the_recorders_times_and_a_first_write_may_be_one(
    client: KubeClient, namespace: str
) -> None:
    subject = await make_object(client, namespace)
    clock = ManualClock()
    rec = clocked(client, clock)
    for _ in range(3):  # before the writer runs: one create that already carries count 3
        rec.record(subject, "Warning", "Failed", "Reconcile", "boom", resource=CONFIG_MAPS)
    rec.record(subject, "Normal", "Started", "Reconcile", "run started", resource=CONFIG_MAPS)
    await drain(rec)
    for _ in range(9):
        clock.now += 1
        rec.record(subject, "Normal", "Started", "Reconcile", "run started", resource=CONFIG_MAPS)
    await drain(rec)
    events = by_reason(await events_in(client, namespace))
    (failed,) = events["Failed"]
    assert failed.series is not None and failed.series.count == 3
    (started,) = events["Started"]
    assert started.event_time == T0 + datetime.timedelta(seconds=1000)
    assert started.series is not None and started.series.count == 10
    assert started.series.last_observed_time == T0 + datetime.timedelta(seconds=1009)
    assert rec.stats.recorded == 13
    assert rec.stats.written == 3  # two creates, one patch for the nine repeats


async def test_an_old_series_starts_a_new_event(client: KubeClient, namespace: str) -> None:
    subject = await make_object(client, namespace)
    clock = ManualClock()
    rec = clocked(client, clock)
    rec.record(subject, "Normal", "A", "Reconcile", resource=CONFIG_MAPS)
    await drain(rec)
    clock.now += 361  # past the 6-minute series window
    rec.record(subject, "Normal", "A", "Reconcile", resource=CONFIG_MAPS)
    await drain(rec)
    (first, second) = sorted(by_reason(await events_in(client, namespace))["A"],
                             key=lambda e: e.event_time)  # fmt: skip
    assert first.series is None and second.series is None
    assert second.event_time - first.event_time == datetime.timedelta(seconds=361)


async def test_the_spam_filter_refills_one_event_per_five_minutes(
    client: KubeClient, namespace: str
) -> None:
    subject = await make_object(client, namespace)
    clock = ManualClock()
    rec = clocked(client, clock)
    for i in range(30):
        rec.record(subject, "Normal", f"Reason{i}", "Reconcile", resource=CONFIG_MAPS)
    await drain(rec)
    clock.now += 300
    rec.record(subject, "Normal", "Late", "Reconcile", resource=CONFIG_MAPS)
    rec.record(subject, "Normal", "TooLate", "Reconcile", resource=CONFIG_MAPS)
    await drain(rec)
    reasons = set(by_reason(await events_in(client, namespace)))
    assert reasons == {f"Reason{i}" for i in range(25)} | {"Late"}
    assert rec.stats.spam_dropped == 6


async def test_a_full_queue_drops_the_oldest_and_its_count_is_not_lost(
    client: KubeClient, namespace: str
) -> None:
    subject = await make_object(client, namespace)
    clock = ManualClock()
    rec = clocked(client, clock, options=RecorderOptions(queue_size=2))
    for reason in ("A", "B", "C"):
        rec.record(subject, "Normal", reason, "Reconcile", resource=CONFIG_MAPS)
    assert (rec.stats.overflow_dropped, rec.pending) == (1, 2)
    await drain(rec)
    assert set(by_reason(await events_in(client, namespace))) == {"B", "C"}
    rec.record(subject, "Normal", "A", "Reconcile", resource=CONFIG_MAPS)
    await drain(rec)
    (again,) = by_reason(await events_in(client, namespace))["A"]
    assert again.series is not None and again.series.count == 2


async def test_an_expired_event_is_recreated_under_a_new_name(
    client: KubeClient, namespace: str
) -> None:
    subject = await make_object(client, namespace)
    clock = ManualClock()
    rec = clocked(client, clock)
    rec.record(subject, "Normal", "A", "Reconcile", resource=CONFIG_MAPS)
    await drain(rec)
    (first,) = await events_in(client, namespace)
    assert first.metadata is not None and first.metadata.name
    await client.delete(EVENTS, first.metadata.name, namespace)  # what the event TTL does
    clock.now += 1
    rec.record(subject, "Normal", "A", "Reconcile", resource=CONFIG_MAPS)
    await drain(rec)
    (second,) = await events_in(client, namespace)
    assert second.metadata is not None and second.metadata.name != first.metadata.name
    assert second.series is not None and second.series.count == 2
    assert rec.stats.failed == 0


async def test_a_missing_namespace_is_not_taken_for_an_unserved_group(
    client: KubeClient, namespace: str
) -> None:
    rec = EventRecorder(client, reporting_instance="pod-1")
    elsewhere = ObjectReference(
        api_version="v1", kind="ConfigMap", name="x", namespace=f"{namespace}-gone", uid="u1"
    )
    rec.record(elsewhere, "Normal", "A", "Reconcile")
    await drain(rec)
    assert rec.api == "events.k8s.io"  # a 404 for the namespace is no reason to fall back
    assert rec.stats.failed == 1
    rec.record(await make_object(client, namespace), "Normal", "B", "Reconcile",
               resource=CONFIG_MAPS)  # fmt: skip
    await drain(rec)
    assert [e.reason for e in await events_in(client, namespace)] == ["B"]


async def test_cluster_scoped_objects_get_events_in_default(client: KubeClient) -> None:
    rec = EventRecorder(client, reporting_instance="pod-1")
    name = f"cluster-{secrets.token_hex(4)}"
    rec.record(
        ObjectReference(api_version="v1", kind="Namespace", name=name, uid=name),
        "Normal",
        "Noticed",
        "Reconcile",
    )
    await drain(rec)
    items = await events_in(client, "default")
    assert [e.reason for e in items if e.regarding and e.regarding.name == name] == ["Noticed"]


async def test_write_errors_are_logged_and_the_writer_goes_on(
    control_plane: ControlPlane, namespace: str
) -> None:
    options = ClientOptions(connect_timeout=1.0, request_timeout=2.0)
    async with TcpProxy(control_plane.apiserver_port) as proxy:
        config = await load_kubeconfig(control_plane.admin_kubeconfig_via(proxy.port))
        async with KubeClient(config, options) as client:
            subject = await make_object(client, namespace)
            clock = ManualClock()
            rec = clocked(client, clock)
            proxy.cut()
            proxy.block()  # the apiserver is unreachable for a moment
            rec.record(subject, "Normal", "A", "Reconcile", resource=CONFIG_MAPS)
            await drain(rec)
            assert rec.stats.failed == 1
            proxy.unblock()
            rec.record(subject, "Normal", "B", "Reconcile", resource=CONFIG_MAPS)
            await drain(rec)
            # The failed event is written on its next occurrence, with the full count.
            rec.record(subject, "Normal", "A", "Reconcile", resource=CONFIG_MAPS)
            await drain(rec)
            events = by_reason(await events_in(client, namespace))
    assert set(events) == {"A", "B"}
    (a,) = events["A"]
    assert a.series is not None and a.series.count == 2
