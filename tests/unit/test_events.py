"""Event recorder, the pure parts: keys, names, series math, spam filter, input checks.

Everything that writes runs against the real apiserver (tests/integration/test_events.py)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
import pytest

from runs_controller.api.k8s import Job, ObjectReference
from runs_controller.api.meta import ObjectMeta, Status, StatusDetails
from runs_controller.kube.errors import NotFound
from runs_controller.kube.resources import JOBS
from runs_controller.runtime.events import (
    EventKey,
    EventRecorder,
    Series,
    SeriesCache,
    SpamFilter,
    event_key,
    event_name,
    group_not_served,
    object_reference,
    truncate_utf8,
)
from tests.clocks import T0, ManualClock

pytestmark = pytest.mark.timeout(20)

T = TypeVar("T")
REF = ObjectReference(
    api_version="runs.bubustack.io/v1alpha1",
    kind="StoryRun",
    name="run-1",
    namespace="team",
    uid="uid-1",
    resource_version="7",
)


def not_found(kind: str | None = None) -> NotFound:
    details = StatusDetails(kind=kind, name="x") if kind else None
    return NotFound(404, Status(reason="NotFound", code=404, details=details))


class NoClient:
    """For recordings that must never reach the API."""

    async def create(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no write expected")

    async def merge_patch(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no write expected")


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
    clock = ManualClock()
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
    clock = ManualClock()
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


# ---- the recorder (the cases that write are in tests/integration/test_events.py) ----------


async def test_bad_input_is_dropped_not_raised() -> None:
    rec = EventRecorder(NoClient(), reporting_instance="pod-1")
    rec.record(REF, "Info", "A", "Reconcile")  # type: ignore[arg-type]
    rec.record(ObjectReference(kind="StoryRun"), "Normal", "A", "Reconcile")
    rec.record(REF, "Normal", "", "Reconcile")
    assert rec.stats.invalid == 3
    assert rec.pending == 0
