"""EffectClaim: a lease that makes an external side effect happen at most once."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

from runs_controller.api.codec import MicroTime
from runs_controller.api.conditions import (
    CONDITION_MESSAGE_LIMIT,
    CONDITION_REASON_LIMIT,
    Conditions,
)
from runs_controller.api.meta import Resource
from runs_controller.api.refs import StepRunReference
from runs_controller.api.runs import CATEGORIES, GROUP
from runs_controller.api.runs.common import OBSERVED_GENERATION_MONOTONIC
from runs_controller.api.schema import F, Int32, Int64, PrinterColumn, ResourceInfo, Rule, Struct

COMPLETION_STATUSES = ("completed", "released", "abandoned")
PHASES = ("Reserved", "Completed", "Released", "Abandoned")


def _same(field: str, default: str | None = None) -> str:
    """CEL: an optional field of `self` equals the one of `oldSelf` (absent equals absent, or
    equals `default` when one is given)."""
    if default is None:
        return (
            f"has(self.{field}) == has(oldSelf.{field}) && "
            f"(!has(self.{field}) || self.{field} == oldSelf.{field})"
        )
    return (
        f"(has(self.{field}) ? self.{field} : {default}) == "
        f"(has(oldSelf.{field}) ? oldSelf.{field} : {default})"
    )


# The rules below replace the reference's admission webhook (decisions.md, ruling 15).
# completedAt is a metav1.Time (whole seconds on the wire) while acquireTime and renewTime are
# MicroTimes: the SDK completes a claim with completedAt and renewTime taken from the same
# instant, so completedAt is compared with them at whole-second precision (`int(timestamp)`).
SPEC_RULES = (
    Rule(
        rule="has(self.completionStatus) == has(self.completedAt)",
        message="spec.completionStatus and spec.completedAt must be set together",
    ),
    Rule(
        rule="!has(self.renewTime) || has(self.acquireTime)",
        message="spec.acquireTime is required when spec.renewTime is set",
    ),
    Rule(
        rule=(
            "!has(self.renewTime) || !has(self.acquireTime) || "
            "timestamp(self.renewTime) >= timestamp(self.acquireTime)"
        ),
        message="spec.renewTime cannot be before spec.acquireTime",
    ),
    Rule(
        rule=(
            "!has(self.completedAt) || !has(self.acquireTime) || "
            "int(timestamp(self.completedAt)) >= int(timestamp(self.acquireTime))"
        ),
        message="spec.completedAt cannot be before spec.acquireTime",
    ),
    Rule(
        rule=(
            "!has(self.completedAt) || !has(self.renewTime) || "
            "int(timestamp(self.completedAt)) >= int(timestamp(self.renewTime))"
        ),
        message="spec.completedAt cannot be before spec.renewTime",
    ),
    Rule(
        rule=(
            "self.stepRunRef == oldSelf.stepRunRef && self.effectKey == oldSelf.effectKey && "
            + _same("idempotencyKey", "''")
        ),
        message=(
            "spec identity fields (stepRunRef, effectKey, idempotencyKey) are immutable for "
            "EffectClaim; create a new EffectClaim for a different StepRun/effect identity"
        ),
    ),
    Rule(
        rule=(
            "!has(oldSelf.completedAt) || (has(self.completedAt) && "
            "timestamp(self.completedAt) >= timestamp(oldSelf.completedAt))"
        ),
        message="spec.completedAt cannot be cleared or moved backward",
    ),
    Rule(
        rule=(
            "!has(oldSelf.completionStatus) || oldSelf.completionStatus != 'completed' || ("
            "has(self.completionStatus) && self.completionStatus == 'completed' && "
            + " && ".join(
                f"({_same(name)})"
                for name in (
                    "completedAt",
                    "holderIdentity",
                    "leaseDurationSeconds",
                    "leaseTransitions",
                    "acquireTime",
                    "renewTime",
                )
            )
            + ")"
        ),
        message=(
            "a completed EffectClaim is final: completionStatus, completedAt, holder and lease "
            "fields cannot change"
        ),
    ),
)


class EffectClaimSpec(Struct, frozen=True):
    """EffectClaimSpec defines the desired state of EffectClaim."""

    __schema__ = F(rules=SPEC_RULES)

    step_run_ref: StepRunReference
    """StepRunRef identifies the StepRun that owns this effect claim."""
    effect_key: Annotated[str, F(min_length=1, max_length=256)]
    """EffectKey identifies the stable external effect within the StepRun."""
    idempotency_key: Annotated[str, F(max_length=256)] | None = None
    """IdempotencyKey optionally copies the step-scoped business idempotency key."""
    holder_identity: Annotated[str, F(max_length=253)] | None = None
    """HolderIdentity identifies the current reservation owner."""
    lease_duration_seconds: Annotated[Int32, F(minimum=1)] | None = None
    """LeaseDurationSeconds bounds how long a reservation may remain unrenewed before another
    worker may recover it."""
    acquire_time: MicroTime | None = None
    """AcquireTime records when the current holder first acquired the reservation."""
    renew_time: MicroTime | None = None
    """RenewTime records the latest observed successful renewal by the holder."""
    lease_transitions: Annotated[Int32, F(minimum=0)] | None = None
    """LeaseTransitions counts successful stale-takeover transitions."""
    completion_status: Annotated[str, F(enum=COMPLETION_STATUSES)] | None = None
    """CompletionStatus records the terminal effect outcome once known."""
    completed_at: datetime.datetime | None = None
    """CompletedAt records when the effect entered a terminal completion state."""
    details: dict[str, Any] | None = None
    """Details carries compact structured metadata about the terminal effect outcome."""


class EffectClaimStatus(Struct, frozen=True):
    """EffectClaimStatus defines the observed state of EffectClaim."""

    __schema__ = F(
        rules=(CONDITION_REASON_LIMIT, CONDITION_MESSAGE_LIMIT, OBSERVED_GENERATION_MONOTONIC)
    )

    observed_generation: Int64 | None = None
    """ObservedGeneration is the latest generation observed by the controller."""
    phase: Annotated[str, F(enum=PHASES)] | None = None
    """Phase provides a canonical high-level lifecycle summary for the claim."""
    conditions: Conditions | None = None
    """Conditions provide canonical Kubernetes lifecycle status for the claim."""


class EffectClaim(Resource, kw_only=True, frozen=True):
    """EffectClaim is the Schema for the effectclaims API."""

    spec: EffectClaimSpec
    """spec defines the desired state of EffectClaim"""
    status: EffectClaimStatus | None = None
    """status defines the observed state of EffectClaim"""


EFFECT_CLAIM = ResourceInfo(
    group=GROUP,
    kind="EffectClaim",
    plural="effectclaims",
    singular="effectclaim",
    short_names=("eff",),
    categories=CATEGORIES,
    printer_columns=(
        PrinterColumn("StepRun", ".spec.stepRunRef.name"),
        PrinterColumn("Effect", ".spec.effectKey"),
        PrinterColumn("Holder", ".spec.holderIdentity"),
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
)
