"""Two electors in one process competing for a Lease on the real apiserver.

Short timings (lease 3 s, renew 2 s, retry 0.5 s). Waits are polls with deadlines; assertions
are about order and the Lease's recorded state. Time comparisons use the timestamps written
into the Lease by this same process (one clock), never the test's own sleeps.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import anyio
import pytest

from runs_controller.api.codec import MicroTime
from runs_controller.api.k8s import Lease, LeaseSpec
from runs_controller.api.meta import ObjectMeta
from runs_controller.kube.client import ClientOptions, KubeClient
from runs_controller.kube.config import ClusterConfig
from runs_controller.kube.resources import LEASES
from runs_controller.runtime.leaderelection import (
    KubeLeaseLock,
    LeaderElectionConfig,
    LeaderElector,
    LeadershipLost,
)
from runs_controller.testing.controlplane import free_port
from runs_controller.testing.wait import poll_until_async

pytestmark = pytest.mark.timeout(60)

LEASE = "runs-controller-leader"


class RecordingLock(KubeLeaseLock):
    """The real lock, remembering every Lease it read (what the standby saw)."""

    def __init__(self, client: KubeClient) -> None:
        super().__init__(client)
        self.seen: list[Lease] = []

    async def get(self, namespace: str, name: str) -> Lease:
        lease = await super().get(namespace, name)
        self.seen.append(lease)
        return lease


@dataclass
class Candidate:
    """An elector running `run(lead)` in its own cancel scope, logging into a shared list."""

    identity: str
    elector: LeaderElector
    lock: RecordingLock
    log: list[tuple[str, str]]
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stop_lead: anyio.Event = field(default_factory=anyio.Event)
    outcome: str = "running"
    lost: LeadershipLost | None = None
    done: anyio.Event = field(default_factory=anyio.Event)

    async def lead(self) -> None:
        self.log.append(("started", self.identity))
        try:
            await self.stop_lead.wait()
        except anyio.get_cancelled_exc_class():
            self.log.append(("cancelled", self.identity))
            raise
        self.log.append(("returned", self.identity))

    async def run(self) -> None:
        try:
            with self.scope:
                try:
                    await self.elector.run(self.lead)
                    self.outcome = "returned"
                except LeadershipLost as error:
                    self.outcome, self.lost = "lost", error
            if self.scope.cancelled_caught:
                self.outcome = "cancelled"
        finally:
            self.done.set()


def make_candidate(
    client: KubeClient,
    namespace: str,
    identity: str,
    log: list[tuple[str, str]],
    *,
    lease_duration: float = 3,
) -> Candidate:
    config = LeaderElectionConfig(
        name=LEASE,
        namespace=namespace,
        identity=identity,
        lease_duration=lease_duration,
        renew_deadline=2,
        retry_period=0.5,
    )
    lock = RecordingLock(client)
    return Candidate(identity, LeaderElector(config, lock), lock, log)


async def read_lease(client: KubeClient, namespace: str) -> LeaseSpec:
    lease = await client.get(LEASES, LEASE, namespace, type=Lease)
    assert lease.spec is not None
    return lease.spec


async def wait_for_leader(candidates: list[Candidate], what: str) -> Candidate:
    async def probe() -> Candidate | None:
        leading = [c for c in candidates if c.elector.is_leader]
        assert len(leading) <= 1, f"two leaders: {[c.identity for c in leading]}"
        return leading[0] if leading else None

    return await poll_until_async(probe, within=20, what=what)


def other(candidates: list[Candidate], one: Candidate) -> Candidate:
    return next(c for c in candidates if c is not one)


async def test_exactly_one_of_two_leads(client: KubeClient, namespace: str) -> None:
    log: list[tuple[str, str]] = []
    pair = [make_candidate(client, namespace, name, log) for name in ("a", "b")]
    async with anyio.create_task_group() as tg:
        for candidate in pair:
            tg.start_soon(candidate.run)
        leader = await wait_for_leader(pair, "a leader")
        standby = other(pair, leader)
        # Let the standby try several times while the leader keeps renewing.
        reads = len(standby.lock.seen)

        async def standby_tried_more() -> bool | None:
            assert not standby.elector.is_leader
            return True if len(standby.lock.seen) >= reads + 4 else None

        await poll_until_async(standby_tried_more, within=20, what="standby retries")
        spec = await read_lease(client, namespace)
        assert spec.holder_identity == leader.identity
        assert spec.lease_transitions == 0
        assert spec.lease_duration_seconds == 3
        assert standby.elector.observed_holder == leader.identity
        assert log == [("started", leader.identity)]
        tg.cancel_scope.cancel()


async def test_crashed_leader_is_replaced_after_the_lease_expires(
    client: KubeClient, namespace: str
) -> None:
    log: list[tuple[str, str]] = []
    pair = [make_candidate(client, namespace, name, log) for name in ("a", "b")]
    async with anyio.create_task_group() as tg:
        for candidate in pair:
            tg.start_soon(candidate.run)
        leader = await wait_for_leader(pair, "a first leader")
        standby = other(pair, leader)
        leader.scope.cancel()  # a crash: no release
        await leader.done.wait()
        assert leader.outcome == "cancelled"
        assert (await read_lease(client, namespace)).holder_identity == leader.identity

        new = await wait_for_leader(pair, "the standby to take over")
        assert new is standby
        spec = await read_lease(client, namespace)
        assert spec.holder_identity == standby.identity
        assert spec.lease_transitions == 1
        # The standby waited out the whole lease after the last renewal it saw (both stamps
        # come from this process's clock).
        last_seen = [s.spec for s in standby.lock.seen if s.spec is not None]
        old = [s for s in last_seen if s.holder_identity == leader.identity][-1]
        assert old.renew_time is not None and spec.acquire_time is not None
        assert spec.acquire_time - old.renew_time >= datetime.timedelta(seconds=3)
        assert log == [
            ("started", leader.identity),
            ("cancelled", leader.identity),
            ("started", standby.identity),
        ]
        tg.cancel_scope.cancel()


async def test_release_hands_over_without_waiting_for_expiry(
    client: KubeClient, namespace: str
) -> None:
    log: list[tuple[str, str]] = []
    # A long lease: taking over well before it ends proves the release was used.
    pair = [make_candidate(client, namespace, name, log, lease_duration=30) for name in "ab"]
    async with anyio.create_task_group() as tg:
        for candidate in pair:
            tg.start_soon(candidate.run)
        leader = await wait_for_leader(pair, "a first leader")
        standby = other(pair, leader)
        leader.stop_lead.set()  # graceful shutdown: the guarded work drains and returns
        await leader.done.wait()
        assert leader.outcome == "returned"
        assert await leader.elector.release()
        released = await read_lease(client, namespace)
        released_at = released.renew_time
        if released.holder_identity == "":  # the standby may already have taken it
            assert released.lease_duration_seconds == 1

        new = await wait_for_leader(pair, "the standby to take over")
        assert new is standby
        spec = await read_lease(client, namespace)
        assert spec.holder_identity == standby.identity
        assert spec.lease_transitions == 1
        assert spec.acquire_time is not None and released_at is not None
        assert spec.acquire_time - released_at < datetime.timedelta(seconds=30)
        assert log == [
            ("started", leader.identity),
            ("returned", leader.identity),
            ("started", standby.identity),
        ]
        tg.cancel_scope.cancel()


def unreachable(port: int) -> ClusterConfig:
    return ClusterConfig(host=f"http://127.0.0.1:{port}", ssl_context=None)


async def test_leader_that_cannot_renew_stops_before_a_standby_takes_over(
    client: KubeClient, namespace: str
) -> None:
    log: list[tuple[str, str]] = []
    pair = [make_candidate(client, namespace, name, log) for name in ("a", "b")]
    options = ClientOptions(connect_timeout=0.5, request_timeout=1.0)
    async with (
        KubeClient(unreachable(free_port()), options) as broken,
        anyio.create_task_group() as tg,
    ):
        for candidate in pair:
            tg.start_soon(candidate.run)
        leader = await wait_for_leader(pair, "a first leader")
        standby = other(pair, leader)
        leader.lock.client = broken  # the apiserver becomes unreachable for the leader

        await poll_until_async(
            lambda: _done(leader), within=20, what="the leader to give up leadership"
        )
        assert leader.outcome == "lost"
        assert leader.lost is not None and "no successful renewal" in str(leader.lost)
        new = await wait_for_leader(pair, "the standby to take over")
        assert new is standby
        # The old leader's work was cancelled before the new leader's work started.
        assert log == [
            ("started", leader.identity),
            ("cancelled", leader.identity),
            ("started", standby.identity),
        ]
        spec = await read_lease(client, namespace)
        assert spec.lease_transitions == 1
        tg.cancel_scope.cancel()


async def _done(candidate: Candidate) -> bool | None:
    return True if candidate.done.is_set() else None


async def test_leader_stops_at_once_when_the_lease_is_taken_from_it(
    client: KubeClient, namespace: str
) -> None:
    log: list[tuple[str, str]] = []
    leader = make_candidate(client, namespace, "a", log)
    async with anyio.create_task_group() as tg:
        tg.start_soon(leader.run)
        await wait_for_leader([leader], "the leader")
        # Delete and recreate the Lease with another, fresh holder.
        await client.delete(LEASES, LEASE, namespace)
        stamp = MicroTime.from_datetime(datetime.datetime.now(datetime.UTC))
        intruder = LeaseSpec(
            holder_identity="intruder",
            lease_duration_seconds=30,
            acquire_time=stamp,
            renew_time=stamp,
            lease_transitions=7,
        )
        await client.create(
            LEASES,
            Lease(metadata=ObjectMeta(name=LEASE, namespace=namespace), spec=intruder),
            type=Lease,
        )
        await poll_until_async(lambda: _done(leader), within=20, what="the leader to step down")
        assert leader.outcome == "lost"
        assert leader.lost is not None and "held by 'intruder'" in str(leader.lost)
        assert log == [("started", "a"), ("cancelled", "a")]
        spec = await read_lease(client, namespace)
        assert (spec.holder_identity, spec.lease_transitions) == ("intruder", 7)
        assert spec.renew_time == stamp  # never overwritten by the old leader
        tg.cancel_scope.cancel()
