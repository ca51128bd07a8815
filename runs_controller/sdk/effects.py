"""`execute_once(key, fn)`: a side effect at most once per step, across retries and pods.

The EffectClaim lease protocol of controller-behaviour.md §5, with optimistic concurrency on
resourceVersion throughout:

1. The effect recorded in `StepRun.status.effects` already: done, nothing runs.
2. Create the claim under its deterministic name (`<steprun>-effect-<hash>`), holding the
   lease. A claim that exists is read: `completed` returns its recorded outcome; a lease that
   went stale (`now >= renewTime + leaseDurationSeconds`) is taken over with `leaseTransitions`
   + 1; a released claim (its holder's effect failed) is deleted at its exact version and
   created afresh, because the CRD's rules freeze `completedAt` once set; a live lease of
   another holder is waited on until it completes, is released or goes stale.
3. While `fn` runs, the lease is renewed every `min(lease/3, 30 s)`; a lost lease cancels `fn`.
4. Success: the claim is completed with the result as `details` (at most 8 KiB, else a
   summary), then the effect is appended to `StepRun.status.effects`. Failure: the claim is
   released and the exception propagates.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from runs_controller.api.codec import MicroTime, encode, to_builtins
from runs_controller.api.runs.effectclaim import EffectClaim
from runs_controller.api.runs.steprun import StepRun
from runs_controller.engine.leases import DEFAULT_LEASE_SECONDS, stale_at
from runs_controller.engine.naming import derive_effectclaim_name
from runs_controller.kube.errors import AlreadyExists, Conflict, NotFound
from runs_controller.kube.resources import EFFECT_CLAIMS, STEP_RUNS

if TYPE_CHECKING:
    from runs_controller.kube.client import KubeClient
    from runs_controller.sdk.environment import StepEnvironment

MAX_DETAILS_BYTES = 8 * 1024
WAIT_INTERVAL = 0.2
"""How often a worker waiting on another holder's live lease looks again (seconds)."""

Effect = Callable[[], Awaitable[Any]]


class EffectError(Exception):
    """The effect could not be run or recorded under the lease protocol."""


class LeaseLost(EffectError):
    """Another holder took the lease over while the effect ran (it was cancelled)."""


@dataclass(frozen=True)
class EffectOutcome:
    executed: bool
    """True for the one call that ran the effect."""
    details: Any
    """The effect's result (or what was recorded for it)."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _micro(value: datetime.datetime) -> str:
    return MicroTime.from_datetime(value).to_wire()


def _details(result: Any) -> Any:
    """The result as recorded: JSON, at most 8 KiB, else a summary with its size and hash."""
    if result is None:
        return None
    raw = json.dumps(result, separators=(",", ":"), default=str).encode()
    if len(raw) <= MAX_DETAILS_BYTES:
        return json.loads(raw)
    return {
        "truncated": True,
        "sizeBytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "type": type(result).__name__,
    }


class _Effects:
    def __init__(
        self, client: KubeClient, env: StepEnvironment, key: str, lease_seconds: int
    ) -> None:
        self.client = client
        self.env = env
        self.key = key
        self.lease_seconds = lease_seconds
        self.name = derive_effectclaim_name(env.namespace, env.steprun_name, key)
        self.holder = f"{env.namespace}:{env.steprun_name}:{key}:{uuid.uuid4()}"
        self.lost = False
        """The lease was taken over while the effect ran."""
        self.latest: EffectClaim | None = None
        """The claim as our last renewal wrote it."""

    async def steprun(self) -> StepRun:
        found: StepRun = await self.client.get(
            STEP_RUNS, self.env.steprun_name, self.env.namespace, type=StepRun
        )
        return found

    def recorded(self, steprun: StepRun) -> EffectOutcome | None:
        for effect in (steprun.status.effects if steprun.status else None) or []:
            if effect.key == self.key:
                return EffectOutcome(False, effect.details)
        return None

    def fresh_claim(self, steprun: StepRun) -> dict[str, Any]:
        meta = steprun.metadata
        assert meta is not None  # noqa: S101 - read from the API
        now = _micro(_now())
        spec: dict[str, Any] = {
            "stepRunRef": {"name": meta.name, "uid": meta.uid},
            "effectKey": self.key,
            "holderIdentity": self.holder,
            "acquireTime": now,
            "renewTime": now,
            "leaseDurationSeconds": self.lease_seconds,
        }
        if steprun.spec.idempotency_key:
            spec["idempotencyKey"] = steprun.spec.idempotency_key
        return {
            "apiVersion": "runs.bubustack.io/v1alpha1",
            "kind": "EffectClaim",
            "metadata": {
                "name": self.name,
                "namespace": self.env.namespace,
                "ownerReferences": [
                    {
                        "apiVersion": "runs.bubustack.io/v1alpha1",
                        "kind": "StepRun",
                        "name": meta.name,
                        "uid": meta.uid,
                    }
                ],
            },
            "spec": spec,
        }

    async def patch(self, claim: EffectClaim, spec: dict[str, Any]) -> EffectClaim:
        """`claim` with `spec` changed (None removes a field), written back whole (an update:
        the engram-runner Role grants `update` on claims, not `patch`); its resourceVersion
        makes the write a compare-and-swap."""
        body: dict[str, Any] = json.loads(encode(claim))
        body.pop("status", None)
        body.get("metadata", {}).pop("managedFields", None)  # omitted: left as they are
        fields = body.setdefault("spec", {})
        for key, value in spec.items():
            if value is None:
                fields.pop(key, None)
            else:
                fields[key] = value
        written: EffectClaim = await self.client.replace(
            EFFECT_CLAIMS, body, self.name, self.env.namespace, type=EffectClaim
        )
        return written

    async def acquire(self, steprun: StepRun) -> EffectClaim | EffectOutcome:
        """The claim, held by us; or the recorded outcome of the holder that completed it."""
        while True:
            try:
                created: EffectClaim = await self.client.create(
                    EFFECT_CLAIMS, self.fresh_claim(steprun), self.env.namespace, type=EffectClaim
                )
                return created
            except AlreadyExists:
                pass
            try:
                claim = await self.client.get(
                    EFFECT_CLAIMS, self.name, self.env.namespace, type=EffectClaim
                )
            except NotFound:
                continue  # deleted in between: create again
            outcome = await self.settle(claim)
            if outcome is not None:
                return outcome

    async def settle(self, claim: EffectClaim) -> EffectClaim | EffectOutcome | None:
        """What an existing claim means for us; None: look again."""
        spec = claim.spec
        if spec.completion_status == "completed":
            return EffectOutcome(False, spec.details)
        if spec.completion_status in ("released", "abandoned") or not spec.holder_identity:
            meta = claim.metadata
            assert meta is not None  # noqa: S101
            with contextlib.suppress(NotFound, Conflict):
                await self.client.delete(
                    EFFECT_CLAIMS,
                    self.name,
                    self.env.namespace,
                    preconditions_uid=meta.uid,
                    preconditions_resource_version=meta.resource_version,
                )
            return None
        expiry = stale_at(claim)
        now = _now()
        if expiry is not None and now >= expiry:
            try:
                return await self.patch(
                    claim,
                    {
                        "holderIdentity": self.holder,
                        "acquireTime": _micro(now),
                        "renewTime": _micro(now),
                        "leaseDurationSeconds": self.lease_seconds,
                        "leaseTransitions": (spec.lease_transitions or 0) + 1,
                    },
                )
            except Conflict:
                return None
        wait = WAIT_INTERVAL
        if expiry is not None:
            wait = max(0.01, min(WAIT_INTERVAL, (expiry - now).total_seconds()))
        await anyio.sleep(wait)  # another holder's live lease: wait for it to end
        return None

    async def renew(self, claim: EffectClaim, scope: anyio.CancelScope) -> None:
        """Renew until cancelled; a lost lease cancels `scope` (the effect)."""
        interval = max(0.1, min(self.lease_seconds / 3, 30.0))
        current = claim
        while True:
            await anyio.sleep(interval)
            try:
                current = await self.patch(current, {"renewTime": _micro(_now())})
            except (Conflict, NotFound):
                try:
                    current = await self.client.get(
                        EFFECT_CLAIMS, self.name, self.env.namespace, type=EffectClaim
                    )
                except NotFound:
                    self.lost = True
                    scope.cancel()
                    return
                if current.spec.holder_identity != self.holder:
                    self.lost = True
                    scope.cancel()
                    return
            self.latest = current

    async def complete(self, claim: EffectClaim, result: Any) -> None:
        now = _micro(_now())
        details = _details(result)
        spec: dict[str, Any] = {
            "completionStatus": "completed",
            "completedAt": now,
            "renewTime": now,
        }
        if details is not None:
            spec["details"] = details if isinstance(details, dict) else {"value": details}
        await self._write_fresh(claim, spec)
        await self.record(details)

    async def release(self, claim: EffectClaim) -> None:
        # completedAt pairs with completionStatus and can never be cleared (the CRD's
        # rules): a released claim is deleted and created afresh by the next taker.
        now = _micro(_now())
        spec = {
            "completionStatus": "released",
            "completedAt": now,
            "holderIdentity": None,
            "acquireTime": None,
            "renewTime": None,
            "details": None,
        }
        with contextlib.suppress(NotFound, EffectError):
            await self._write_fresh(claim, spec)

    async def _write_fresh(self, claim: EffectClaim, spec: dict[str, Any]) -> None:
        current = claim
        for _ in range(5):
            try:
                await self.patch(current, spec)
                return
            except Conflict:
                current = await self.client.get(
                    EFFECT_CLAIMS, self.name, self.env.namespace, type=EffectClaim
                )
                if current.spec.holder_identity != self.holder:
                    raise LeaseLost(f"effect {self.key!r}: the lease was taken over") from None
        raise EffectError(f"effect {self.key!r}: the claim kept changing")

    async def record(self, details: Any) -> None:
        """Append the effect to `StepRun.status.effects` (a list: read, append, write with a
        resourceVersion precondition)."""
        for _ in range(10):
            steprun = await self.steprun()
            if self.recorded(steprun) is not None:
                return
            effects = [
                {k: v for k, v in _builtins(e).items() if v is not None}
                for e in (steprun.status.effects if steprun.status else None) or []
            ]
            seq = max((int(e.get("seq", 0)) for e in effects), default=0) + 1
            entry: dict[str, Any] = {
                "seq": seq,
                "key": self.key,
                "status": "succeeded",
                "emittedAt": _now().replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            }
            if details is not None:
                entry["details"] = details if isinstance(details, dict) else {"value": details}
            meta = steprun.metadata
            assert meta is not None  # noqa: S101
            status: dict[str, Any] = {"effects": [*effects, entry]}
            if steprun.status is None or steprun.status.retries is None:
                status["retries"] = 0  # required by the CRD once a status exists
            body = {"metadata": {"resourceVersion": meta.resource_version}, "status": status}
            try:
                await self.client.merge_patch(
                    STEP_RUNS,
                    meta.name or "",
                    body,
                    meta.namespace,
                    type=StepRun,
                    subresource="status",
                )
                return
            except Conflict:
                continue
        raise EffectError(f"effect {self.key!r} ran but could not be recorded on the StepRun")


def _builtins(value: Any) -> dict[str, Any]:
    result: dict[str, Any] = to_builtins(value)
    return result


async def execute_once(
    client: KubeClient,
    env: StepEnvironment,
    key: str,
    fn: Effect,
    *,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
) -> EffectOutcome:
    """Run `fn` unless the effect `key` of this step already ran (see the module doc)."""
    key = key.strip()
    if not key:
        raise ValueError("an effect key is required")
    effects = _Effects(client, env, key, lease_seconds)
    steprun = await effects.steprun()
    done = effects.recorded(steprun)
    if done is not None:
        return done
    held = await effects.acquire(steprun)
    if isinstance(held, EffectOutcome):
        return held
    result: Any = None
    try:
        async with anyio.create_task_group() as group:
            effect_scope = anyio.CancelScope()
            group.start_soon(effects.renew, held, effect_scope)
            with effect_scope:
                result = await fn()
            group.cancel_scope.cancel()
        if effects.lost:
            raise LeaseLost(f"effect {key!r}: the lease was taken over while it ran")
    except BaseException:
        with anyio.CancelScope(shield=True):
            await effects.release(effects.latest or held)
        raise
    await effects.complete(effects.latest or held, result)
    return EffectOutcome(True, result)


__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "EffectError",
    "EffectOutcome",
    "LeaseLost",
    "execute_once",
]
