"""Event recorder: keys, series math, spam filter, queue and fallback, on a fake client."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import msgspec
import pytest

from runs_controller.api.codec import decode, encode
from runs_controller.api.k8s import Job, ObjectReference
from runs_controller.api.meta import ObjectMeta, Status, StatusDetails
from runs_controller.kube.client import Body
from runs_controller.kube.errors import KubeError, NotFound, TransportError
from runs_controller.kube.resources import CORE_EVENTS, EVENTS, JOBS, ResourceType
from runs_controller.runtime.events import (
    EventKey,
    EventRecorder,
    RecorderOptions,
    Series,
    SeriesCache,
    SpamFilter,
    event_key,
    event_name,
    group_not_served,
    object_reference,
    truncate_utf8,
)

pytestmark = pytest.mark.timeout(20)

T = TypeVar("T")
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
REF = ObjectReference(
    api_version="runs.bubustack.io/v1alpha1",
    kind="StoryRun",
    name="run-1",
    namespace="team",
    uid="uid-1",
    resource_version="7",
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime.datetime:
        return T0 + datetime.timedelta(seconds=self.now)


def not_found(kind: str | None = None) -> NotFound:
    details = StatusDetails(kind=kind, name="x") if kind else None
    return NotFound(404, Status(reason="NotFound", code=404, details=details))


class FakeClient:
    """Records writes as JSON-like dicts; `errors` are raised (in order) by the next calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str, dict[str, Any]]] = []
        self.errors: list[KubeError | None] = []
        self.fail_creates_on: dict[str, KubeError] = {}

    def _next_error(self, verb: str, rt: ResourceType) -> None:
        if verb == "create" and rt.group in self.fail_creates_on:
            raise self.fail_creates_on[rt.group]
        if self.errors:
            error = self.errors.pop(0)
            if error is not None:
                raise error

    async def create(
        self,
        rt: ResourceType,
        obj: Body,
        namespace: str | None = None,
        *,
        type: type[T],
        field_manager: str | None = None,
    ) -> T:
        await anyio.lowlevel.checkpoint()
        self._next_error("create", rt)
        body = msgspec.json.decode(encode(obj))
        self.calls.append(("create", rt.group, namespace or "", body["metadata"]["name"], body))
        return decode(b"{}", type)

    async def merge_patch(
        self,
        rt: ResourceType,
        name: str,
        patch: Body,
        namespace: str | None = None,
        *,
        type: type[T],
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> T:
        await anyio.lowlevel.checkpoint()
        self._next_error("patch", rt)
        body = msgspec.json.decode(encode(patch))
        self.calls.append(("patch", rt.group, namespace or "", name, body))
        return decode(b"{}", type)


def recorder(
    client: FakeClient, clock: Clock, options: RecorderOptions | None = None, **kwargs: Any
) -> EventRecorder:
    return EventRecorder(
        client,
        reporting_instance="pod-1",
        options=options,
        clock=clock,
        now=clock.wall,
        **kwargs,
    )


async def drain(rec: EventRecorder) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(rec.run)
        with anyio.fail_after(5):
            await rec.flush()
        tg.cancel_scope.cancel()


# ---- pure parts -----------------------------------------------------------------------------


def test_truncate_counts_bytes_and_keeps_characters_whole() -> None:
    assert truncate_utf8("abc", 3) == "abc"
    assert truncate_utf8("abcd", 3) == "abc"
    assert truncate_utf8("aé", 2) == "a"  # é is two bytes: never cut in half
    assert len(truncate_utf8("é" * 1000, 1024).encode()) == 1024


def test_event_names_are_object_name_dot_hex_within_253() -> None:
    assert event_name("run-1", 255) == "run-1.ff"
    long = event_name("x" * 253, 2**62)
    assert len(long) == 253
    assert long.endswith(f".{2**62:x}")


def test_the_key_ignores_resource_version() -> None:
    newer = msgspec.structs.replace(REF, resource_version="8")
    assert event_key(REF, "Normal", "R", "A", "n") == event_key(newer, "Normal", "R", "A", "n")
    assert event_key(REF, "Normal", "R", "A", "n") != event_key(REF, "Warning", "R", "A", "n")
    assert event_key(REF, "Normal", "R", "A", "n") != event_key(REF, "Normal", "R", "A", "m")


def test_object_reference_from_an_object_and_its_resource_type() -> None:
    job = Job(metadata=ObjectMeta(name="j", namespace="ns", uid="u", resource_version="3"))
    ref = object_reference(job, JOBS)
    assert ref == ObjectReference(
        api_version="batch/v1", kind="Job", name="j", namespace="ns", uid="u", resource_version="3"
    )


def test_group_not_served_only_for_a_404_without_details() -> None:
    assert group_not_served(not_found())
    assert not group_not_served(not_found("namespaces"))


def test_spam_filter_burst_then_refill() -> None:
    clock = Clock()
    spam = SpamFilter(burst=25, qps=1 / 300, size=10, clock=clock)
    assert all(spam.allow(("a",)) for _ in range(25))
    assert not spam.allow(("a",))
    assert spam.allow(("b",))  # per object
    clock.now += 299
    assert not spam.allow(("a",))
    clock.now += 2
    assert spam.allow(("a",))
    assert not spam.allow(("a",))


def test_spam_filter_forgets_the_least_recent_object() -> None:
    clock = Clock()
    spam = SpamFilter(burst=1, qps=1e-9, size=2, clock=clock)
    assert spam.allow(("a",))
    assert spam.allow(("b",))
    assert spam.allow(("c",))  # evicts a
    assert spam.allow(("a",))  # a starts over with a full bucket


def series(key: EventKey, mono: float) -> Callable[[], Series]:
    def new() -> Series:
        return Series(key, REF, None, "team", "run-1.1", T0, T0, mono)

    return new


def no_new_series() -> Series:
    raise AssertionError("unexpected new series")


def test_series_within_the_window_then_a_new_one() -> None:
    cache = SeriesCache(size=10, window=360)
    key = event_key(REF, "Normal", "R", "A", "n")
    first = cache.observe(key, 0.0, T0, series(key, 0.0))
    later = T0 + datetime.timedelta(seconds=90)
    for i in range(1, 10):
        assert cache.observe(key, 10.0 * i, later, no_new_series) is first
    assert (first.count, first.last_seen, first.last_time, first.first_time) == (
        10,
        90.0,
        later,
        T0,
    )
    # 360 s since the *last* occurrence is still the same series; more is a new one.
    assert cache.observe(key, 450.0, T0, no_new_series) is first
    fresh = cache.observe(key, 811.0, T0, series(key, 811.0))
    assert fresh is not first
    assert fresh.count == 1


def test_series_cache_is_bounded() -> None:
    cache = SeriesCache(size=2, window=360)
    keys = [event_key(REF, "Normal", f"R{i}", "A", "") for i in range(3)]
    entries = [cache.observe(key, 0.0, T0, series(key, 0.0)) for key in keys]
    assert len(cache) == 2
    assert cache.observe(keys[2], 1.0, T0, no_new_series) is entries[2]
    again = cache.observe(keys[0], 1.0, T0, series(keys[0], 1.0))
    assert again is not entries[0]  # evicted: it started over


# ---- the recorder ---------------------------------------------------------------------------


async def test_repeats_become_one_event_with_a_series() -> None:
    client, clock = FakeClient(), Clock()
    rec = recorder(client, clock)
    rec.record(REF, "Normal", "Started", "Reconcile", "run started")
    await drain(rec)
    for _ in range(9):
        clock.now += 1
        rec.record(REF, "Normal", "Started", "Reconcile", "run started")
    await drain(rec)
    verbs = [call[0] for call in client.calls]
    assert verbs == ["create", "patch"]  # the nine repeats were coalesced into one write
    _, group, namespace, name, body = client.calls[0]
    assert (group, namespace) == ("events.k8s.io", "team")
    assert name.startswith("run-1.")
    assert body["reportingController"] == "runs-controller"
    assert body["reportingInstance"] == "pod-1"
    assert body["regarding"]["uid"] == "uid-1"
    assert (body["type"], body["reason"], body["action"], body["note"]) == (
        "Normal",
        "Started",
        "Reconcile",
        "run started",
    )
    assert "series" not in body
    patch = client.calls[1]
    assert patch[3] == name
    assert patch[4] == {"series": {"count": 10, "lastObservedTime": "2026-01-01T00:16:49.000000Z"}}
    assert rec.stats.recorded == 10


async def test_a_first_write_can_already_carry_a_series() -> None:
    client, clock = FakeClient(), Clock()
    rec = recorder(client, clock)
    for _ in range(3):
        rec.record(REF, "Warning", "Failed", "Reconcile", "boom")
    await drain(rec)
    assert len(client.calls) == 1
    assert client.calls[0][4]["series"]["count"] == 3


async def test_different_reasons_or_an_old_series_make_new_events() -> None:
    client, clock = FakeClient(), Clock()
    rec = recorder(client, clock)
    rec.record(REF, "Normal", "A", "Reconcile")
    rec.record(REF, "Normal", "B", "Reconcile")
    clock.now += 361
    rec.record(REF, "Normal", "A", "Reconcile")
    await drain(rec)
    names = [call[3] for call in client.calls]
    assert [call[0] for call in client.calls] == ["create"] * 3
    assert len(set(names)) == 3


async def test_the_spam_filter_drops_beyond_the_burst() -> None:
    client, clock = FakeClient(), Clock()
    rec = recorder(client, clock)
    for i in range(30):
        rec.record(REF, "Normal", f"Reason{i}", "Reconcile")
    other = msgspec.structs.replace(REF, name="run-2", uid="uid-2")
    rec.record(other, "Normal", "Reason0", "Reconcile")
    await drain(rec)
    assert len(client.calls) == 26
    assert rec.stats.spam_dropped == 5
    clock.now += 300
    rec.record(REF, "Normal", "Late", "Reconcile")
    rec.record(REF, "Normal", "TooLate", "Reconcile")
    await drain(rec)
    assert len(client.calls) == 27
    assert rec.stats.spam_dropped == 6


async def test_a_full_queue_drops_the_oldest() -> None:
    client, clock = FakeClient(), Clock()
    rec = recorder(client, clock, RecorderOptions(queue_size=2))
    for reason in ("A", "B", "C"):
        rec.record(REF, "Normal", reason, "Reconcile")
    assert rec.stats.overflow_dropped == 1
    assert rec.pending == 2
    await drain(rec)
    assert [call[4]["reason"] for call in client.calls] == ["B", "C"]
    # The dropped event is written with its full count when it happens again.
    rec.record(REF, "Normal", "A", "Reconcile")
    await drain(rec)
    assert client.calls[-1][4]["reason"] == "A"
    assert client.calls[-1][4]["series"]["count"] == 2


async def test_write_errors_are_swallowed_and_the_writer_goes_on() -> None:
    client, clock = FakeClient(), Clock()
    rec = recorder(client, clock)
    client.errors = [TransportError("down")]
    rec.record(REF, "Normal", "A", "Reconcile")
    rec.record(REF, "Normal", "B", "Reconcile")
    await drain(rec)
    assert rec.stats.failed == 1
    assert [call[4]["reason"] for call in client.calls] == ["B"]
    # The failed event is created on its next occurrence, with the full count.
    rec.record(REF, "Normal", "A", "Reconcile")
    await drain(rec)
    assert client.calls[-1][0] == "create"
    assert client.calls[-1][4]["series"]["count"] == 2


async def test_an_expired_event_is_recreated_under_a_new_name() -> None:
    client, clock = FakeClient(), Clock()
    rec = recorder(client, clock)
    rec.record(REF, "Normal", "A", "Reconcile")
    await drain(rec)
    client.errors = [not_found("events")]
    rec.record(REF, "Normal", "A", "Reconcile")
    await drain(rec)
    assert [call[0] for call in client.calls] == ["create", "create"]
    assert client.calls[0][3] != client.calls[1][3]
    assert client.calls[1][4]["series"]["count"] == 2


async def test_falls_back_to_core_events_once_when_the_group_is_not_served() -> None:
    client, clock = FakeClient(), Clock()
    client.fail_creates_on["events.k8s.io"] = not_found()
    rec = recorder(client, clock)
    rec.record(REF, "Warning", "Failed", "Reconcile", "x" * 2000)
    await drain(rec)
    assert rec.api == "core"
    clock.now += 1
    rec.record(REF, "Warning", "Failed", "Reconcile", "x" * 2000)
    rec.record(REF, "Normal", "Other", "Reconcile")
    await drain(rec)
    assert [(call[0], call[1]) for call in client.calls] == [
        ("create", ""),
        ("patch", ""),
        ("create", ""),
    ]
    body = client.calls[0][4]
    assert body["involvedObject"]["name"] == "run-1"
    assert body["source"] == {"component": "runs-controller", "host": "pod-1"}
    assert (body["count"], body["type"], body["reason"]) == (1, "Warning", "Failed")
    assert len(body["message"]) == 1024
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-01-01T00:16:40Z"
    assert client.calls[1][4] == {"count": 2, "lastTimestamp": "2026-01-01T00:16:41Z"}


async def test_a_missing_namespace_is_not_taken_for_an_unserved_group() -> None:
    client, clock = FakeClient(), Clock()
    client.fail_creates_on["events.k8s.io"] = not_found("namespaces")
    rec = recorder(client, clock)
    rec.record(REF, "Normal", "A", "Reconcile")
    await drain(rec)
    assert rec.api == "events.k8s.io"
    assert rec.stats.failed == 1
    assert client.calls == []


async def test_a_forced_api_never_switches() -> None:
    client, clock = FakeClient(), Clock()
    client.fail_creates_on["events.k8s.io"] = not_found()
    rec = recorder(client, clock, api="events.k8s.io")
    rec.record(REF, "Normal", "A", "Reconcile")
    await drain(rec)
    assert rec.api == "events.k8s.io"
    assert rec.stats.failed == 1


async def test_bad_input_is_dropped_not_raised() -> None:
    client, clock = FakeClient(), Clock()
    rec = recorder(client, clock)
    rec.record(REF, "Info", "A", "Reconcile")  # type: ignore[arg-type]
    rec.record(ObjectReference(kind="StoryRun"), "Normal", "A", "Reconcile")
    rec.record(REF, "Normal", "", "Reconcile")
    assert rec.stats.invalid == 3
    assert rec.pending == 0


async def test_cluster_scoped_objects_get_events_in_default() -> None:
    client, clock = FakeClient(), Clock()
    rec = recorder(client, clock)
    namespace_ref = ObjectReference(api_version="v1", kind="Namespace", name="team", uid="n1")
    rec.record(namespace_ref, "Normal", "A", "Reconcile")
    await drain(rec)
    assert client.calls[0][2] == "default"


def test_resources_used() -> None:
    assert (EVENTS.group, CORE_EVENTS.group) == ("events.k8s.io", "")
