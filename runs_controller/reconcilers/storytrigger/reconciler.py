"""The StoryTrigger reconciler: exactly-once admission of a StoryRun (controller-behaviour.md §6).

A decision (Created, Reused, Rejected) is sticky for the generation it was made for. The Story
is read fresh (a trigger must not be rejected because the cache has not seen a Story created a
moment before it); the StoryRun is created under its derived name, and a name already taken is
resolved into Created (ours, from an earlier attempt), Reused (the same request) or Rejected
(a conflict). One status apply records the decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from runs_controller.api import codec
from runs_controller.api.bubustack.story import Story
from runs_controller.api.refs import StoryRunReference
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.api.runs.storytrigger import StoryTrigger, StoryTriggerStatus
from runs_controller.dag.states import phase_conditions
from runs_controller.engine import triggers
from runs_controller.engine.nesting import MAX_INPUTS_DEPTH, deeper_than
from runs_controller.kube.errors import AlreadyExists, Invalid, NotFound
from runs_controller.kube.resources import STORIES, STORY_RUNS, STORY_TRIGGERS
from runs_controller.runtime.reconciler import Request, Result

if TYPE_CHECKING:
    import datetime

    from runs_controller.runtime.builder import Kit
    from runs_controller.runtime.cache import CacheReader

log = structlog.get_logger("runs_controller.storytrigger")


class StoryTriggerReconciler:
    def __init__(self, kit: Kit, *, triggers_: CacheReader[StoryTrigger]) -> None:
        self.kit = kit
        self.triggers = triggers_

    async def reconcile(self, request: Request) -> Result:
        trigger = self.triggers.get(request.namespace, request.name)
        if trigger is None or trigger.metadata is None:
            return Result()
        if trigger.metadata.deletion_timestamp is not None or triggers.decided(trigger):
            return Result()
        config = self.kit.config.current()
        problem = triggers.validation_error(trigger, config.cross_namespace_policy)
        if problem is not None:
            return await self._reject(trigger, triggers.REASON_VALIDATION_FAILED, problem)
        story_namespace = triggers.story_namespace(trigger)
        key = f"{story_namespace}/{trigger.spec.story_ref.name}"
        try:
            story = await self.kit.client.get(
                STORIES, trigger.spec.story_ref.name, story_namespace, type=Story
            )
        except NotFound:
            return await self._reject(
                trigger, triggers.REASON_STORY_NOT_FOUND, f'referenced Story "{key}" was not found'
            )
        expected = (trigger.spec.story_ref.version or "").strip()
        actual = (story.spec.version or "").strip()
        if expected and actual != expected:
            message = (
                f'referenced Story "{key}" has version "{story.spec.version or ""}", '
                f'expected "{expected}"'
            )
            return await self._reject(trigger, triggers.REASON_STORY_VERSION_MISMATCH, message)
        try:
            hash_ = triggers.input_hash(trigger)
        except ValueError as error:
            message = f"failed to compute trigger input hash: {error}"
            return await self._reject(trigger, triggers.REASON_INPUT_HASH_MISMATCH, message)
        if hash_ is None:
            message = "spec.deliveryIdentity.inputHash does not match spec.inputs"
            return await self._reject(trigger, triggers.REASON_INPUT_HASH_MISMATCH, message)
        inputs = trigger.spec.inputs
        size = len(codec.encode(inputs)) if inputs is not None else 0
        if size > config.max_inline_inputs_size:
            message = (
                f"StoryTrigger inputs are {size} bytes, more than storyrun.max-inline-inputs-size "
                f"({config.max_inline_inputs_size}); offloading them to shared storage is not "
                "supported by this controller"
            )
            return await self._reject(trigger, triggers.REASON_VALIDATION_FAILED, message)
        if inputs is not None and deeper_than(inputs, MAX_INPUTS_DEPTH):
            # The StoryRun would fail on it at once (engine.nesting): refuse it here instead.
            message = f"StoryTrigger inputs nesting exceeds maximum depth of {MAX_INPUTS_DEPTH}"
            return await self._reject(trigger, triggers.REASON_VALIDATION_FAILED, message)
        return await self._create(trigger, triggers.desired_storyrun(trigger, hash_), hash_)

    async def _create(self, trigger: StoryTrigger, desired: StoryRun, hash_: str) -> Result:
        meta = desired.metadata
        assert meta is not None  # noqa: S101 - built with one
        run_key = f"{meta.namespace}/{meta.name}"
        try:
            created: StoryRun = await self.kit.client.create(
                STORY_RUNS, desired, meta.namespace, type=StoryRun
            )
        except AlreadyExists as taken:
            try:
                existing: StoryRun = await self.kit.client.get(
                    STORY_RUNS, meta.name or "", meta.namespace, type=StoryRun
                )
            except NotFound:
                raise taken from None  # deleted in between: decide again
            if not triggers.storyrun_matches(existing, trigger, hash_):
                message = (
                    f'existing StoryRun "{run_key}" does not match StoryTrigger storyRef and inputs'
                )
                return await self._reject(trigger, triggers.REASON_STORYRUN_CONFLICT, message)
            if triggers.created_by(existing, trigger):
                message = f'recovered previously created StoryRun "{run_key}"'
                return await self._resolve(
                    trigger, "Created", triggers.REASON_STORYRUN_CREATED, message, existing
                )
            message = f'reused existing StoryRun "{run_key}"'
            return await self._resolve(
                trigger, "Reused", triggers.REASON_STORYRUN_REUSED, message, existing
            )
        except Invalid as error:
            message = f"StoryRun admission rejected the request: {error}"
            return await self._reject(trigger, triggers.REASON_VALIDATION_FAILED, message)
        message = f'created StoryRun "{run_key}"'
        return await self._resolve(
            trigger, "Created", triggers.REASON_STORYRUN_CREATED, message, created
        )

    async def _resolve(
        self, trigger: StoryTrigger, decision: str, reason: str, message: str, run: StoryRun
    ) -> Result:
        meta = run.metadata
        ref = StoryRunReference(
            name=(meta.name if meta else None) or "",
            namespace=meta.namespace if meta else None,
            uid=meta.uid if meta else None,
        )
        await self._write(trigger, decision, reason, message, ref)
        return Result()

    async def _reject(self, trigger: StoryTrigger, reason: str, message: str) -> Result:
        await self._write(trigger, "Rejected", reason, message, None)
        return Result()

    async def _write(
        self,
        trigger: StoryTrigger,
        decision: str,
        reason: str,
        message: str,
        ref: StoryRunReference | None,
    ) -> None:
        now = self.kit.clock.now().replace(microsecond=0)
        status = decision_status(trigger, decision, reason, message, ref, now=now)
        await self.kit.status.apply(STORY_TRIGGERS, trigger, status)
        log.info(
            "storytrigger_decided",
            trigger=f"{trigger.metadata.namespace}/{trigger.metadata.name}"
            if trigger.metadata
            else "",
            decision=decision,
            reason=reason,
        )


def decision_status(
    trigger: StoryTrigger,
    decision: str,
    reason: str,
    message: str,
    ref: StoryRunReference | None,
    *,
    now: datetime.datetime,
) -> StoryTriggerStatus:
    """The resolved (or rejected) status of §6 step 7: Ready for Created/Reused, Degraded for
    Rejected, never Progressing; acceptedAt the first time only."""
    previous = trigger.status or StoryTriggerStatus()
    generation = trigger.metadata.generation if trigger.metadata else None
    rejected = decision == "Rejected"
    conditions = phase_conditions(
        "Succeeded" if not rejected else "Failed",
        reason,
        message,
        generation=generation,
        now=now,
        previous=previous.conditions,
        degraded=rejected,
    )
    return StoryTriggerStatus(
        observed_generation=generation,
        decision=decision,
        reason=reason,
        message=message,
        story_run_ref=None if rejected else ref,
        accepted_at=previous.accepted_at or now,
        completed_at=now,
        conditions=conditions,
    )


__all__ = ["StoryTriggerReconciler", "decision_status"]
