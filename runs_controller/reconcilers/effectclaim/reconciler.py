"""The EffectClaim reconciler (controller-behaviour.md §5 and §7.4, decisions in
`batch/effects.py`).

Order: deleting claims are left alone; a claim that can never be valid is deleted
(cross-namespace StepRun, StepRun gone, StepRun replaced), each with an event saying why; the
owner reference to the StepRun is repaired; a held reservation whose lease went stale while
its StepRun is finished is marked `abandoned`; then the status follows
`spec.completionStatus`. A held lease that is not stale yet is looked at again exactly when it
would go stale (a timer); nothing else requeues: a StepRun that finishes wakes its claims.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import structlog

from runs_controller.api.codec import to_builtins
from runs_controller.api.runs.effectclaim import EffectClaim, EffectClaimStatus
from runs_controller.api.runs.steprun import StepRun
from runs_controller.batch import effects
from runs_controller.kube.errors import Conflict, NotFound
from runs_controller.kube.resources import EFFECT_CLAIMS, STEP_RUNS
from runs_controller.runtime.children import delete_exactly
from runs_controller.runtime.reconciler import Request, Result
from runs_controller.runtime.written import WrittenObjects

if TYPE_CHECKING:
    import datetime
    from collections.abc import Mapping

    from runs_controller.runtime.builder import Kit
    from runs_controller.runtime.cache import CacheReader

log = structlog.get_logger("runs_controller.effectclaim")

ACTION = "Reconcile"


class EffectClaimReconciler:
    """Reconciles one EffectClaim per call."""

    def __init__(
        self, kit: Kit, *, claims: CacheReader[EffectClaim], steps: CacheReader[StepRun]
    ) -> None:
        self.kit = kit
        self.claims = claims
        self.steps = steps
        self._written: WrittenObjects[EffectClaim] = WrittenObjects()

    # -- helpers ----------------------------------------------------------------------------

    def _event(self, claim: EffectClaim, type_: str, reason: str, note: str) -> None:
        recorder = self.kit.recorder
        if recorder is not None:
            recorder.record(claim, type_, reason, ACTION, note, resource=EFFECT_CLAIMS)  # type: ignore[arg-type]

    async def _steprun(self, claim: EffectClaim) -> StepRun | None:
        """The referenced StepRun from the cache; a miss, or a copy with another UID than the
        claim names (maybe a cache behind a re-create), is confirmed by one uncached GET."""
        namespace, name = effects.steprun_key(claim)
        cached = self.steps.get(namespace, name)
        if cached is not None and not effects.uid_mismatch(claim, cached):
            return cached
        try:
            fresh: StepRun = await self.kit.client.get(STEP_RUNS, name, namespace, type=StepRun)
        except NotFound:
            return None
        return fresh

    async def _delete(self, claim: EffectClaim, why: effects.Deletion) -> Result:
        meta = claim.metadata
        assert meta is not None  # noqa: S101 - checked by the caller
        log.info(
            "effectclaim_deleted",
            namespace=meta.namespace,
            name=meta.name,
            reason=why.reason,
            message=why.message,
        )
        self._event(claim, why.type, why.reason, why.message)
        # This very claim (UID precondition): a successor under the same name is not ours to
        # judge on this copy. Gone already, or replaced: nothing to do.
        with contextlib.suppress(Conflict):
            await delete_exactly(self.kit.client, EFFECT_CLAIMS, claim)
        self._written.forget(f"{meta.namespace}/{meta.name}")
        return Result()

    async def _patch(self, claim: EffectClaim, patch: Mapping[str, Any]) -> EffectClaim:
        meta = claim.metadata
        assert meta is not None  # noqa: S101 - cached objects have metadata
        written: EffectClaim = await self.kit.client.merge_patch(
            EFFECT_CLAIMS, meta.name or "", patch, meta.namespace, type=EffectClaim
        )
        return self._written.remember(written)

    async def _ensure_owner(self, claim: EffectClaim, steprun: StepRun) -> EffectClaim:
        """The non-controller owner reference the SDK normally sets, only when missing (the
        list is replaced whole, so the patch carries the claim's resourceVersion)."""
        refs = effects.owner_references(claim, steprun)
        if refs is None:
            return claim
        meta = claim.metadata
        assert meta is not None  # noqa: S101
        patch = {
            "metadata": {
                "resourceVersion": meta.resource_version,
                "ownerReferences": [to_builtins(ref) for ref in refs],
            }
        }
        return await self._patch(claim, patch)

    async def _abandon(
        self, claim: EffectClaim, steprun: StepRun, now: datetime.datetime
    ) -> EffectClaim:
        written = await self._patch(claim, effects.abandon_patch(claim, now))
        message = effects.abandon_message(claim, steprun)
        meta = claim.metadata
        log.warning(
            "effectclaim_abandoned",
            namespace=meta.namespace if meta else None,
            name=meta.name if meta else None,
            holder=claim.spec.holder_identity,
        )
        self._event(written, "Warning", effects.REASON_ABANDONED_EVENT, message)
        return written

    async def _apply(self, claim: EffectClaim, status: EffectClaimStatus) -> None:
        """The whole status (the controller is its only writer); skipped when unchanged."""
        written = await self.kit.status.apply(EFFECT_CLAIMS, claim, status)
        if written is not None:
            self._written.remember(written)

    def _report_invalid(self, claim: EffectClaim, message: str) -> None:
        """One Warning per new violation (not on every reconcile of the same one)."""
        status = claim.status
        degraded = next(
            (c for c in (status.conditions if status else None) or () if c.type == "Degraded"),
            None,
        )
        if (
            degraded is None
            or degraded.reason != effects.VALIDATION_FAILED
            or degraded.message != message
        ):
            self._event(claim, "Warning", effects.VALIDATION_FAILED, message)

    # -- the reconcile ----------------------------------------------------------------------

    async def reconcile(self, request: Request) -> Result:
        try:
            return await self._reconcile(request)
        except Conflict:
            # The claim changed since the copy we decided on (the SDK renewed or completed
            # it): decide again on the fresh one.
            return Result(requeue=True)

    async def _reconcile(self, request: Request) -> Result:
        cached = self.claims.get(request.namespace, request.name)
        if cached is None or cached.metadata is None:
            self._written.forget(request.key)
            return Result()
        claim = self._written.freshest(cached)
        meta = claim.metadata
        assert meta is not None  # noqa: S101 - checked above
        if meta.deletion_timestamp is not None:
            return Result()
        elsewhere = effects.cross_namespace(claim)
        if elsewhere is not None:
            return await self._delete(claim, elsewhere)
        steprun = await self._steprun(claim)
        if steprun is None:
            return await self._delete(claim, effects.orphaned(claim))
        drift = effects.drifted(claim, steprun)
        if drift is not None:
            return await self._delete(claim, drift)
        claim = await self._ensure_owner(claim, steprun)
        now = self.kit.clock.now()
        invalid_name = effects.name_violation(claim)
        if invalid_name is not None:
            # Not a claim the SDK would ever use (it derives the name): reported, never
            # abandoned, no timer.
            self._report_invalid(claim, invalid_name)
            await self._apply(claim, effects.claim_status(claim, now, invalid=invalid_name))
            return Result()
        max_retries = self.kit.config.current().max_retries
        if effects.should_abandon(claim, steprun, now, max_retries=max_retries):
            claim = await self._abandon(claim, steprun, now)
        await self._apply(claim, effects.claim_status(claim, now))
        delay = effects.requeue_after(claim, now)
        return Result(requeue_after=delay) if delay is not None else Result()


__all__ = ["EffectClaimReconciler"]
