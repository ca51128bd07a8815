"""Leader election decisions and loops against an in-memory Lease, on a fake clock."""

from __future__ import annotations

import datetime
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import pytest
from prometheus_client import CollectorRegistry

from runs_controller.api.codec import MicroTime
from runs_controller.api.k8s import Lease, LeaseSpec
from runs_controller.api.meta import ObjectMeta, Status
from runs_controller.kube.errors import (
    AlreadyExists,
    Conflict,
    KubeError,
    NotFound,
    TransportError,
)
from runs_controller.observability.metrics import LeaderElectionMetrics
from runs_controller.runtime.leaderelection import (
    LeaderElectionConfig,
    LeaderElector,
    LeadershipLost,
    choose_path,
    jittered,
    lease_valid,
    plan_update,
)

pytestmark = pytest.mark.timeout(20)

NS = "ns"
NAME = "lock"
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _status(reason: str, code: int) -> Status:
    return Status(reason=reason, code=code, message=reason)


class FakeClock:
    """Monotonic and wall time that only move when something sleeps (or the test advances)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime.datetime:
        return T0 + datetime.timedelta(seconds=self.now)

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await anyio.lowlevel.checkpoint()


class MemoryLeases:
    """One Lease with apiserver semantics: resourceVersion compare-and-swap, typed errors."""

    def __init__(self) -> None:
        self.lease: Lease | None = None
        self._rv = 0
        self.calls: list[str] = []
        self.fail: KubeError | None = None

    def _store(self, lease: Lease) -> Lease:
        self._rv += 1
        meta = msgspec.structs.replace(
            lease.metadata or ObjectMeta(), resource_version=str(self._rv)
        )
        self.lease = msgspec.structs.replace(lease, metadata=meta)
        return self.lease

    def _check(self, verb: str) -> None:
        self.calls.append(verb)
        if self.fail is not None:
            raise self.fail

    async def get(self, namespace: str, name: str) -> Lease:
        self._check("get")
        if self.lease is None:
            raise NotFound(404, _status("NotFound", 404))
        return self.lease

    async def create(self, lease: Lease) -> Lease:
        self._check("create")
        if self.lease is not None:
            raise AlreadyExists(409, _status("AlreadyExists", 409))
        return self._store(lease)

    async def update(self, lease: Lease) -> Lease:
        self._check("update")
        current = self.lease
        if current is None:
            raise NotFound(404, _status("NotFound", 404))
        assert lease.metadata is not None and current.metadata is not None
        if lease.metadata.resource_version != current.metadata.resource_version:
            raise Conflict(409, _status("Conflict", 409))
        return self._store(lease)

    def set_holder(self, holder: str, *, renew: datetime.datetime, transitions: int = 0) -> None:
        """Another process writes the Lease."""
        stamp = MicroTime.from_datetime(renew)
        spec = LeaseSpec(
            holder_identity=holder,
            lease_duration_seconds=15,
            acquire_time=stamp,
            renew_time=stamp,
            lease_transitions=transitions,
        )
        self._store(Lease(metadata=ObjectMeta(name=NAME, namespace=NS), spec=spec))


def config(identity: str = "me", **timings: Any) -> LeaderElectionConfig:
    return LeaderElectionConfig(name=NAME, namespace=NS, identity=identity, **timings)


def elector(
    leases: MemoryLeases,
    clock: FakeClock,
    identity: str = "me",
    metrics: LeaderElectionMetrics | None = None,
) -> LeaderElector:
    return LeaderElector(
        config(identity),
        leases,
        metrics=metrics,
        clock=clock,
        now=clock.wall,
        sleep=clock.sleep,
        rand=lambda: 0.5,
    )


# ---- config ---------------------------------------------------------------------------------


def test_defaults_are_client_gos() -> None:
    cfg = config()
    assert (cfg.lease_duration, cfg.renew_deadline, cfg.retry_period) == (15, 10, 2)
    assert cfg.jitter_factor == 1.2


@pytest.mark.parametrize(
    ("timings", "message"),
    [
        ({"lease_duration": 10, "renew_deadline": 10}, "lease_duration must be greater"),
        ({"renew_deadline": 2.4, "retry_period": 2}, "renew_deadline must be greater"),
        ({"lease_duration": 3.5, "renew_deadline": 2, "retry_period": 0.5}, "whole number"),
        ({"lease_duration": 0}, "whole number"),
        ({"retry_period": 0}, "greater than zero"),
        ({"renew_deadline": -1}, "greater than zero"),
        ({"jitter_factor": -0.1}, "jitter_factor"),
    ],
)
def test_config_validation(timings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**timings)


def test_short_test_timings_are_valid() -> None:
    config(lease_duration=3, renew_deadline=2, retry_period=0.5)


@pytest.mark.parametrize("field_name", ["name", "namespace", "identity"])
def test_config_needs_names(field_name: str) -> None:
    values: dict[str, Any] = {"name": NAME, "namespace": NS, "identity": "me", field_name: ""}
    with pytest.raises(ValueError, match=field_name):
        LeaderElectionConfig(**values)


# ---- pure decisions -------------------------------------------------------------------------


def test_jitter_range() -> None:
    assert jittered(2.0, 1.2, 0.0) == 2.0
    assert jittered(2.0, 1.2, 0.999) == pytest.approx(2.0 + 0.999 * 2.4)
    assert jittered(2.0, 0.0, 0.7) == 2.0


def test_lease_validity_is_local_time_since_observed() -> None:
    assert lease_valid(100.0, 15, 114.9)
    assert not lease_valid(100.0, 15, 115.0)
    assert not lease_valid(100.0, None, 100.0)


def _spec(holder: str, *, transitions: int = 3, duration: int = 15) -> LeaseSpec:
    stamp = MicroTime.from_datetime(T0)
    return LeaseSpec(
        holder_identity=holder,
        lease_duration_seconds=duration,
        acquire_time=stamp,
        renew_time=stamp,
        lease_transitions=transitions,
    )


def test_fast_path_only_for_a_valid_own_lease_with_a_cache() -> None:
    mine, theirs = _spec("me"), _spec("other")
    assert choose_path(mine, "me", 100.0, 110.0, cached=True) == "fast"
    assert choose_path(mine, "me", 100.0, 110.0, cached=False) == "slow"
    assert choose_path(mine, "me", 100.0, 116.0, cached=True) == "slow"
    assert choose_path(theirs, "me", 100.0, 110.0, cached=True) == "slow"
    assert choose_path(None, "me", 0.0, 0.0, cached=False) == "slow"


def test_plan_update() -> None:
    later = MicroTime.from_datetime(T0 + datetime.timedelta(seconds=30))
    desired = LeaseSpec(
        holder_identity="me",
        lease_duration_seconds=15,
        acquire_time=later,
        renew_time=later,
        lease_transitions=0,
    )
    # Another holder, still valid: keep off.
    assert plan_update(_spec("other"), "me", valid=True, desired=desired) is None
    # Expired: take over, one more transition, a new acquireTime.
    taken = plan_update(_spec("other"), "me", valid=False, desired=desired)
    assert taken is not None
    assert (taken.holder_identity, taken.lease_transitions, taken.acquire_time) == ("me", 4, later)
    # Released (empty holder) is free even while "valid".
    free = plan_update(_spec("", duration=1), "me", valid=True, desired=desired)
    assert free is not None
    assert free.lease_transitions == 4
    # Our own: renew keeps acquireTime and transitions.
    renewed = plan_update(_spec("me"), "me", valid=True, desired=desired)
    assert renewed is not None
    assert renewed.acquire_time == MicroTime.from_datetime(T0)
    assert (renewed.lease_transitions, renewed.renew_time) == (3, later)


# ---- attempts against the in-memory Lease ---------------------------------------------------


async def test_creates_a_missing_lease_then_renews_on_the_fast_path() -> None:
    leases, clock = MemoryLeases(), FakeClock()
    me = elector(leases, clock)
    assert await me.try_acquire_or_renew()
    assert leases.calls == ["get", "create"]
    assert leases.lease is not None and leases.lease.spec is not None
    assert leases.lease.spec.holder_identity == "me"
    assert leases.lease.spec.lease_transitions == 0
    assert leases.lease.spec.lease_duration_seconds == 15
    acquired = leases.lease.spec.acquire_time

    leases.calls.clear()
    clock.now += 2
    assert await me.try_acquire_or_renew()
    assert me.last_path == "fast"
    assert leases.calls == ["update"]
    assert leases.lease.spec.acquire_time == acquired
    assert leases.lease.spec.renew_time == MicroTime.from_datetime(clock.wall())


async def test_fast_path_conflict_falls_back_to_the_slow_path() -> None:
    leases, clock = MemoryLeases(), FakeClock()
    registry = CollectorRegistry()
    metrics = LeaderElectionMetrics.create(registry)
    me = elector(leases, clock, metrics=metrics)
    assert await me.try_acquire_or_renew()
    # Someone bumps the resourceVersion without taking the lease (e.g. a label edit).
    assert leases.lease is not None
    leases._store(leases.lease)
    leases.calls.clear()
    assert await me.try_acquire_or_renew()
    assert leases.calls == ["update", "get", "update"]
    assert me.last_path == "slow"
    assert registry.get_sample_value("leader_election_slowpath_total", {"name": NAME}) == 1


async def test_a_lost_create_race_is_not_an_error() -> None:
    class RacingLeases(MemoryLeases):
        async def create(self, lease: Lease) -> Lease:
            self.set_holder("other", renew=T0)  # someone else creates it first
            return await super().create(lease)

    leases, clock = RacingLeases(), FakeClock()
    me = elector(leases, clock)
    assert not await me.try_acquire_or_renew()
    assert leases.calls == ["get", "create"]
    assert leases.lease is not None and leases.lease.spec is not None
    assert leases.lease.spec.holder_identity == "other"


async def test_expiry_is_judged_by_local_time_not_the_holders_timestamps() -> None:
    leases, clock = MemoryLeases(), FakeClock()
    # The holder's clock is far behind ours: its renewTime looks ancient, yet it is alive.
    leases.set_holder("other", renew=T0 - datetime.timedelta(days=365), transitions=2)
    me = elector(leases, clock)
    assert not await me.try_acquire_or_renew()
    assert me.observed_holder == "other"
    clock.now += 14.9
    assert not await me.try_acquire_or_renew()
    # The holder renews (record changes): seen 10 s later, 24.9 s after the first sighting,
    # it is not expired: the local timer restarts from the change.
    leases.set_holder("other", renew=T0 - datetime.timedelta(days=364), transitions=2)
    clock.now += 10
    assert not await me.try_acquire_or_renew()
    clock.now += 14.9
    assert not await me.try_acquire_or_renew()
    clock.now += 0.2
    assert await me.try_acquire_or_renew()
    assert leases.lease is not None and leases.lease.spec is not None
    assert leases.lease.spec.holder_identity == "me"
    assert leases.lease.spec.lease_transitions == 3
    assert leases.lease.spec.acquire_time == MicroTime.from_datetime(clock.wall())


async def test_a_clock_far_ahead_does_not_steal_a_live_lease() -> None:
    leases, clock = MemoryLeases(), FakeClock()
    leases.set_holder("other", renew=T0)
    clock.now += 10 * 365 * 86400.0  # our wall clock is ten years ahead
    me = elector(leases, clock)
    assert not await me.try_acquire_or_renew()


# ---- run / release --------------------------------------------------------------------------


async def test_run_cancels_lead_when_renewals_fail_before_the_lease_expires() -> None:
    leases, clock = MemoryLeases(), FakeClock()
    registry = CollectorRegistry()
    me = elector(leases, clock, metrics=LeaderElectionMetrics.create(registry))
    lead_cancelled_at: list[float] = []
    acquired_at: list[float] = []

    async def lead() -> None:
        acquired_at.append(clock.now)
        assert me.is_leader
        assert registry.get_sample_value("leader_election_master_status", {"name": NAME}) == 1
        # Break the API after a few good renewals.
        while len([c for c in leases.calls if c == "update"]) < 3:
            await anyio.lowlevel.checkpoint()
        leases.fail = TransportError("apiserver unreachable")
        last_good = clock.now
        try:
            await anyio.sleep_forever()
        finally:
            lead_cancelled_at.append(clock.now - last_good)

    with pytest.raises(LeadershipLost, match="no successful renewal within 10"):
        await me.run(lead)
    assert not me.is_leader
    assert registry.get_sample_value("leader_election_master_status", {"name": NAME}) == 0
    # Cancelled within renew_deadline (10 s) of the last good renewal, before 15 s expiry.
    assert lead_cancelled_at
    assert 10.0 - 2.0 <= lead_cancelled_at[0] <= 10.0


async def test_run_stops_at_once_when_another_holder_has_the_lease() -> None:
    leases, clock = MemoryLeases(), FakeClock()
    me = elector(leases, clock)
    cancelled = anyio.Event()

    async def lead() -> None:
        # Someone deletes and recreates the Lease with another, valid holder.
        leases.lease = None
        leases.set_holder("intruder", renew=clock.wall())
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with pytest.raises(LeadershipLost, match="held by 'intruder'"):
        await me.run(lead)
    assert cancelled.is_set()
    assert leases.lease is not None and leases.lease.spec is not None
    assert leases.lease.spec.holder_identity == "intruder"
    # Acquire (GET, create), then one renewal: fast-path conflict, GET, and give up at once.
    assert leases.calls == ["get", "create", "update", "get"]


async def test_lead_returning_ends_run_and_release_hands_the_lease_over() -> None:
    leases, clock = MemoryLeases(), FakeClock()
    me = elector(leases, clock)
    entered = False

    async def lead() -> None:
        nonlocal entered
        entered = True
        with pytest.raises(RuntimeError, match="release"):
            await me.release()

    await me.run(lead)
    assert entered
    assert not me.is_leader
    assert await me.release()
    assert leases.lease is not None and leases.lease.spec is not None
    spec = leases.lease.spec
    assert (spec.holder_identity, spec.lease_duration_seconds, spec.lease_transitions) == ("", 1, 0)
    # Releasing again (not ours anymore) is a no-op.
    calls = len(leases.calls)
    assert await me.release()
    assert len(leases.calls) == calls

    # A standby takes the released lease at once, counting a transition.
    standby = elector(leases, clock, identity="standby")
    assert await standby.try_acquire_or_renew()
    assert leases.lease.spec is not None
    assert (leases.lease.spec.holder_identity, leases.lease.spec.lease_transitions) == (
        "standby",
        1,
    )


async def test_release_with_a_stale_cache_rereads_and_releases_only_its_own_lease() -> None:
    leases, clock = MemoryLeases(), FakeClock()
    me = elector(leases, clock)
    assert await me.try_acquire_or_renew()
    assert leases.lease is not None
    leases._store(leases.lease)  # e.g. a renewal applied whose answer was cut off
    assert await me.release()
    assert leases.lease.spec is not None and leases.lease.spec.holder_identity == ""

    assert await me.try_acquire_or_renew()
    leases.set_holder("other", renew=clock.wall())
    assert await me.release()  # not ours anymore: nothing written
    assert leases.lease.spec is not None and leases.lease.spec.holder_identity == "other"


async def test_release_failure_returns_false() -> None:
    leases, clock = MemoryLeases(), FakeClock()
    me = elector(leases, clock)
    assert await me.try_acquire_or_renew()
    leases.fail = TransportError("down")
    assert not await me.release()


async def test_wait_for_leadership_and_errors_from_lead_propagate() -> None:
    leases, clock = MemoryLeases(), FakeClock()
    leases.set_holder("other", renew=clock.wall())
    me = elector(leases, clock)
    order: list[str] = []

    async def lead() -> None:
        order.append("lead")
        raise ValueError("boom")

    async def waiter() -> None:
        await me.wait_for_leadership()
        order.append("woken")

    async def run() -> None:
        with pytest.raises(ValueError, match="boom"):
            await me.run(lead)
        order.append("run done")

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        tg.start_soon(run)
    # The other holder's lease expired in fake time (the acquire loop's sleeps advance it).
    assert sorted(order) == ["lead", "run done", "woken"]
    assert order.index("lead") < order.index("run done")
    assert clock.now >= 100.0 + 15


async def test_run_twice_at_once_is_refused() -> None:
    leases, clock = MemoryLeases(), FakeClock()
    me = elector(leases, clock)
    started = anyio.Event()

    async def lead() -> None:
        started.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(me.run, lead)
        await started.wait()
        with pytest.raises(RuntimeError, match="already running"):
            await me.run(lead)
        tg.cancel_scope.cancel()
    assert not me.is_leader
