"""Lease-based leader election with client-go's semantics (`tools/leaderelection`).

One elector per process competes for a coordination.k8s.io/v1 Lease:

* a standby tries every `retry_period` (jittered) and takes the Lease when it is free, or when
  the holder's record has not changed for `leaseDurationSeconds` of *local monotonic* time, so
  clock skew between nodes cannot make a live leader look expired;
* the leader renews every `retry_period`: first an optimistic PUT from its cached Lease (no
  GET, the fast path), then GET + PUT (the slow path); the resourceVersion makes every write a
  compare-and-swap, so a lost race is a Conflict, never two holders;
* if no renewal succeeds within `renew_deadline` of the last good one, the guarded work is
  cancelled at once: another replica may take over as soon as the Lease expires.

Leadership alone is not fencing (client-go says so too). `write_window()` tells how long this
replica may still write (until the renew deadline of its last good renewal); `fencing.LeaderFence`
puts it in front of every controller write. Writes that must not happen twice still need their
own preconditions (resourceVersion, EffectClaim leases).

Usage, with the shutdown order of runtime-notes §6.6::

    elector = LeaderElector(config, KubeLeaseLock(client))
    await elector.run(lead)   # lead() drains and returns on SIGTERM; LeadershipLost on loss
    await elector.release()   # only after lead() stopped: a standby takes over in ~1 retry
"""

from __future__ import annotations

import datetime
import random
import socket
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import anyio
import msgspec
import structlog

from runs_controller.api.codec import MicroTime
from runs_controller.api.k8s import Lease, LeaseSpec
from runs_controller.api.meta import ObjectMeta
from runs_controller.kube.errors import AlreadyExists, Conflict, KubeError, NotFound
from runs_controller.kube.resources import LEASES

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from runs_controller.kube.client import KubeClient
    from runs_controller.observability.metrics import LeaderElectionMetrics

log = structlog.get_logger("runs_controller.leaderelection")

JITTER_FACTOR = 1.2
"""client-go's `JitterFactor`: an acquire attempt waits retry_period x [1, 2.2)."""

RELEASED_LEASE_SECONDS = 1
"""leaseDurationSeconds written on release, so a standby does not wait out the full lease."""

AttemptPath = Literal["fast", "slow"]
"""Which way an attempt went: PUT from the cached Lease, or GET then PUT."""


class LeadershipLost(Exception):
    """The Lease could not be renewed in time (or another holder took it): the lead work was
    cancelled. Exit or start over; do not drain, another leader may already be acting."""


@dataclass(frozen=True)
class LeaderElectionConfig:
    """Which Lease, who we are, and the timings (client-go / controller-runtime defaults)."""

    name: str
    """The Lease's name; also the `name` label of the leader election metrics."""
    namespace: str
    identity: str
    """Unique per process (`default_identity()`): a restarted pod must not inherit a lease."""
    lease_duration: float = 15.0
    """How long a standby waits, after the record last changed, before taking over. Whole
    seconds: the Lease stores an integer."""
    renew_deadline: float = 10.0
    """The leader stops leading if no renewal succeeded for this long."""
    retry_period: float = 2.0
    """Interval between acquire attempts (jittered) and between renewals."""
    jitter_factor: float = JITTER_FACTOR
    """Acquire attempts wait retry_period x [1, 1 + jitter_factor). The validation rule
    (renew_deadline > 1.2 x retry_period) always uses client-go's 1.2."""

    def __post_init__(self) -> None:
        for field_name in ("name", "namespace", "identity"):
            if not getattr(self, field_name):
                raise ValueError(f"{field_name} must not be empty")
        if self.lease_duration < 1 or self.lease_duration != int(self.lease_duration):
            raise ValueError(
                f"lease_duration must be a whole number of seconds >= 1, got {self.lease_duration}"
            )
        if self.renew_deadline <= 0 or self.retry_period <= 0:
            raise ValueError("renew_deadline and retry_period must be greater than zero")
        if self.jitter_factor < 0:
            raise ValueError(f"jitter_factor must be >= 0, got {self.jitter_factor}")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError(f"renew_deadline must be greater than retry_period x {JITTER_FACTOR}")


def default_identity() -> str:
    """`<hostname>_<uuid>`, as controller-runtime does: unique even across pod restarts."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


# ---- pure decisions (unit-tested with a fake clock) ------------------------------------------


def jittered(period: float, factor: float, rand: float) -> float:
    """client-go `wait.Jitter`: period + rand x factor x period, with rand in [0, 1)."""
    if factor <= 0:
        return period
    return period + rand * factor * period


def lease_valid(observed_at: float, duration_seconds: int | None, now: float) -> bool:
    """Whether a record first seen (in its current form) at `observed_at` still holds at `now`.

    Both times are local monotonic readings: the holder's renewTime is never compared with our
    clock, so skew between nodes does not matter.
    """
    return observed_at + (duration_seconds or 0) > now


def choose_path(
    observed: LeaseSpec | None, identity: str, observed_at: float, now: float, *, cached: bool
) -> AttemptPath:
    """Fast path (PUT from the cache) only for a leader whose own lease has not expired."""
    if (
        cached
        and observed is not None
        and observed.holder_identity == identity
        and lease_valid(observed_at, observed.lease_duration_seconds, now)
    ):
        return "fast"
    return "slow"


def plan_update(
    current: LeaseSpec, identity: str, *, valid: bool, desired: LeaseSpec
) -> LeaseSpec | None:
    """What to write after a GET, or None while another holder's lease is still valid.

    Renewing keeps acquireTime and leaseTransitions; taking over (from another holder, or an
    empty holder after a release) counts one more transition.
    """
    holder = current.holder_identity or ""
    if holder and holder != identity and valid:
        return None
    if holder == identity:
        return msgspec.structs.replace(
            desired,
            acquire_time=current.acquire_time,
            lease_transitions=current.lease_transitions or 0,
        )
    return msgspec.structs.replace(desired, lease_transitions=(current.lease_transitions or 0) + 1)


# ---- the Lease behind a small interface, so the elector can be tested without an apiserver ---


class LeaseLock(Protocol):
    """Reads and compare-and-swap writes of one Lease (client-go's `resourcelock.Interface`)."""

    async def get(self, namespace: str, name: str) -> Lease: ...

    async def create(self, lease: Lease) -> Lease: ...

    async def update(self, lease: Lease) -> Lease:
        """PUT; the lease's resourceVersion makes it fail with Conflict if it changed."""
        ...


class KubeLeaseLock:
    """`LeaseLock` on the API client. `client` is public so a test can swap in a broken one."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def get(self, namespace: str, name: str) -> Lease:
        return await self.client.get(LEASES, name, namespace, type=Lease)

    async def create(self, lease: Lease) -> Lease:
        return await self.client.create(LEASES, lease, type=Lease)

    async def update(self, lease: Lease) -> Lease:
        return await self.client.replace(LEASES, lease, type=Lease)


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LeaderElector:
    """Competes for one Lease; `run(lead)` runs `lead()` only while this process holds it."""

    def __init__(
        self,
        config: LeaderElectionConfig,
        lock: LeaseLock,
        *,
        metrics: LeaderElectionMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime.datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._lock = lock
        self._metrics = metrics
        self._clock = clock
        self._now = now
        self._sleep = sleep
        self._rand = rand
        self._lease: Lease | None = None
        """The last Lease object read or written: its resourceVersion guards the next PUT."""
        self._observed: LeaseSpec | None = None
        self._observed_at = 0.0
        """Local monotonic time when `_observed` last changed (or we last wrote it)."""
        self._renewed_at = 0.0
        """Start of the last successful acquire/renew attempt: the renew deadline counts from
        here, which is never later than when others saw the write."""
        self._running = False
        self._leading = False
        self._leading_event: anyio.Event | None = None
        self._lost_reason: str | None = None
        self._taken_from = ""
        """The holder in the record this elector last took over ("" if free or released)."""
        self.last_path: AttemptPath | None = None
        """Which path the last attempt took (for tests and debugging)."""
        if metrics is not None:
            metrics.master_status.labels(name=config.name).set(0)

    # ---- public state -------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """True while `lead()` may run: from acquisition until loss or the end of `run()`."""
        return self._leading

    def write_window(self) -> float:
        """Seconds from now during which this replica may still write as the leader.

        Counted from the start of the last successful renewal plus the renew deadline: before
        any other replica can consider the Lease expired (leaseDuration > renewDeadline, both on
        local clocks). 0 when not leading.
        """
        if not self._leading:
            return 0.0
        return self._renewed_at + self.config.renew_deadline - self._clock()

    @property
    def observed_holder(self) -> str | None:
        """The holder in the last record seen ("" after a release, None before any read)."""
        return None if self._observed is None else self._observed.holder_identity

    async def wait_for_leadership(self) -> None:
        """Return once this elector leads (at once if it does already)."""
        if self._leading:
            return
        await self._event().wait()

    # ---- run / release ------------------------------------------------------------------

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Acquire the Lease, then run `lead()` while renewing it.

        Returns when `lead()` returns (renewal stops; the Lease stays held until `release()` or
        expiry). Raises `LeadershipLost` after cancelling `lead()` when renewal fails. If this
        call is cancelled, `lead()` is cancelled with it and nothing is released (like a crash).
        An exception from `lead()` propagates unchanged.
        """
        if self._running:
            raise RuntimeError("LeaderElector.run() is already running")
        self._running = True
        try:
            await self._acquire()
            await self._lead(lead)
        finally:
            self._running = False

    async def release(self) -> bool:
        """Give the Lease up: empty holder, leaseDurationSeconds=1 (client-go ReleaseOnCancel).

        Only call it once the guarded work has stopped (after `run()` returned or raised).
        Returns True when the Lease is not ours anymore (released now, or never held), False
        when the write failed; the Lease then simply expires. Shielded from cancellation and
        bounded by `renew_deadline`, so it can run in a shutdown path.
        """
        if self._leading:
            raise RuntimeError("release() while leading: stop the guarded work first")
        cfg = self.config
        if self._lease is None or self.observed_holder != cfg.identity:
            return True
        stamp = MicroTime.from_datetime(self._now())
        spec = LeaseSpec(
            holder_identity="",
            lease_duration_seconds=RELEASED_LEASE_SECONDS,
            acquire_time=stamp,
            renew_time=stamp,
            lease_transitions=self._observed.lease_transitions if self._observed else 0,
        )
        released: Lease | None = None
        with anyio.CancelScope(shield=True), anyio.move_on_after(cfg.renew_deadline):
            try:
                released = await self._write_release(self._lease, spec)
            except KubeError as error:
                log.warning("leader_election_release_failed", lease=cfg.name, error=str(error))
                return False
        if released is None:
            log.warning("leader_election_release_failed", lease=cfg.name, error="timed out")
            return False
        self._remember(released)
        log.info("leader_election_released", lease=cfg.name, holder=self.observed_holder)
        return True

    async def _write_release(self, cached: Lease, spec: LeaseSpec) -> Lease:
        try:
            return await self._lock.update(_with_spec(cached, spec))
        except Conflict:
            pass
        # The cached resourceVersion is stale: a renewal cut off by cancellation may have been
        # applied. Release from a fresh read, but only if the Lease is still ours.
        current = await self._lock.get(self.config.namespace, self.config.name)
        if (current.spec or LeaseSpec()).holder_identity != self.config.identity:
            self._remember(current)
            return current
        return await self._lock.update(_with_spec(current, spec))

    # ---- acquire and renew --------------------------------------------------------------

    async def _acquire(self) -> None:
        cfg = self.config
        log.info("leader_election_acquiring", lease=cfg.name, identity=cfg.identity)
        while True:
            started = self._clock()
            acquired = False
            with anyio.move_on_after(cfg.renew_deadline):
                acquired = await self.try_acquire_or_renew()
            if acquired:
                self._renewed_at = started
                return
            await self._sleep(jittered(cfg.retry_period, cfg.jitter_factor, self._rand()))

    async def _lead(self, lead: Callable[[], Awaitable[None]]) -> None:
        self._start_leading()
        lead_scope = anyio.CancelScope()
        error: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._renew_until_lost, lead_scope)
                try:
                    with lead_scope:
                        await lead()
                except Exception as exc:
                    error = exc  # re-raised below, outside the task group (no ExceptionGroup)
                tg.cancel_scope.cancel()
        finally:
            self._stop_leading()
        if self._lost_reason is not None:
            raise LeadershipLost(self._lost_reason) from error
        if error is not None:
            raise error

    async def _renew_until_lost(self, lead_scope: anyio.CancelScope) -> None:
        """Renew every retry_period; on failure cancel `lead_scope` and return."""
        while True:
            await self._sleep(self.config.retry_period)
            reason = await self._renew()
            if reason is not None:
                self._lose(reason, lead_scope)
                return

    async def _renew(self) -> str | None:
        """Retry until renewed (None) or the renew deadline passed (the reason it is lost)."""
        cfg = self.config
        deadline = self._renewed_at + cfg.renew_deadline
        while True:
            started = self._clock()
            if started >= deadline:
                return f"no successful renewal within {cfg.renew_deadline}s"
            renewed = False
            with anyio.move_on_after(deadline - started):
                renewed = await self.try_acquire_or_renew()
            if renewed:
                self._renewed_at = started
                return None
            holder = self.observed_holder
            if holder and holder != cfg.identity:
                # Another holder's valid record: waiting out the deadline cannot win it back.
                return f"the lease is held by {holder!r}"
            remaining = deadline - self._clock()
            if remaining <= 0:
                return f"no successful renewal within {cfg.renew_deadline}s"
            await self._sleep(min(cfg.retry_period, remaining))

    async def try_acquire_or_renew(self) -> bool:
        """One attempt (client-go `tryAcquireOrRenew`): True when we hold the Lease after it."""
        cfg = self.config
        mono_now = self._clock()
        stamp = MicroTime.from_datetime(self._now())
        desired = LeaseSpec(
            holder_identity=cfg.identity,
            lease_duration_seconds=int(cfg.lease_duration),
            acquire_time=stamp,
            renew_time=stamp,
            lease_transitions=0,
        )
        path = choose_path(
            self._observed,
            cfg.identity,
            self._observed_at,
            mono_now,
            cached=self._lease is not None,
        )
        self.last_path = path
        if path == "fast" and self._lease is not None and self._observed is not None:
            spec = msgspec.structs.replace(
                desired,
                acquire_time=self._observed.acquire_time,
                lease_transitions=self._observed.lease_transitions or 0,
            )
            try:
                lease = await self._lock.update(_with_spec(self._lease, spec))
            except KubeError as error:
                log.info("leader_election_fast_path_failed", lease=cfg.name, error=str(error))
            else:
                self._remember(lease)
                return True
            self.last_path = "slow"
        return await self._slow_path(desired, mono_now)

    async def _slow_path(self, desired: LeaseSpec, mono_now: float) -> bool:
        cfg = self.config
        try:
            current = await self._lock.get(cfg.namespace, cfg.name)
        except NotFound:
            return await self._create(desired)
        except KubeError as error:
            log.warning("leader_election_get_failed", lease=cfg.name, error=str(error))
            return False
        self._lease = current
        record = current.spec or LeaseSpec()
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock()
        valid = lease_valid(self._observed_at, record.lease_duration_seconds, mono_now)
        spec = plan_update(record, cfg.identity, valid=valid, desired=desired)
        if spec is None:
            log.debug("leader_election_held", lease=cfg.name, holder=record.holder_identity)
            return False
        if record.holder_identity == cfg.identity and self._metrics is not None:
            self._metrics.slowpath_total.labels(name=cfg.name).inc()
        try:
            lease = await self._lock.update(_with_spec(current, spec))
        except Conflict:
            log.debug("leader_election_update_conflict", lease=cfg.name)
            return False
        except KubeError as error:
            log.warning("leader_election_update_failed", lease=cfg.name, error=str(error))
            return False
        self._remember(lease)
        self._taken_from = record.holder_identity or ""
        return True

    async def _create(self, desired: LeaseSpec) -> bool:
        cfg = self.config
        lease = Lease(metadata=ObjectMeta(name=cfg.name, namespace=cfg.namespace), spec=desired)
        try:
            created = await self._lock.create(lease)
            self._taken_from = ""
        except AlreadyExists:
            log.debug("leader_election_create_race", lease=cfg.name)
            return False
        except KubeError as error:
            log.warning("leader_election_create_failed", lease=cfg.name, error=str(error))
            return False
        self._remember(created)
        return True

    # ---- state changes ------------------------------------------------------------------

    def _remember(self, lease: Lease) -> None:
        self._lease = lease
        self._observed = lease.spec or LeaseSpec()
        self._observed_at = self._clock()

    def _event(self) -> anyio.Event:
        if self._leading_event is None:
            self._leading_event = anyio.Event()
        return self._leading_event

    def _start_leading(self) -> None:
        self._leading = True
        self._lost_reason = None
        if self._metrics is not None:
            self._metrics.master_status.labels(name=self.config.name).set(1)
        self._event().set()
        log.info(
            "leader_election_acquired",
            lease=self.config.name,
            identity=self.config.identity,
            previous_holder=self._taken_from,
        )

    def _lose(self, reason: str, lead_scope: anyio.CancelScope) -> None:
        self._leading = False
        self._lost_reason = reason
        if self._metrics is not None:
            self._metrics.master_status.labels(name=self.config.name).set(0)
        log.warning("leader_election_lost", lease=self.config.name, reason=reason)
        lead_scope.cancel()

    def _stop_leading(self) -> None:
        self._leading = False
        self._leading_event = None  # later waiters wait for the next term
        if self._metrics is not None:
            self._metrics.master_status.labels(name=self.config.name).set(0)


def _with_spec(lease: Lease, spec: LeaseSpec) -> Lease:
    return msgspec.structs.replace(lease, spec=spec)


__all__ = [
    "JITTER_FACTOR",
    "AttemptPath",
    "KubeLeaseLock",
    "LeaderElectionConfig",
    "LeaderElector",
    "LeadershipLost",
    "LeaseLock",
    "choose_path",
    "default_identity",
    "jittered",
    "lease_valid",
    "plan_update",
]
