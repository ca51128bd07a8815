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
from runs_controller.api.meta import ObjectMeta
from runs_controller.api.refs import StepRunReference
from runs_controller.api.runs import CATEGORIES, GROUP
from runs_controller.api.schema import F, Int32, Int64, PrinterColumn, ResourceInfo, Struct

COMPLETION_STATUSES = ("completed", "released", "abandoned")
PHASES = ("Reserved", "Completed", "Released", "Abandoned")


class EffectClaimSpec(Struct):
    """EffectClaimSpec defines the desired state of EffectClaim."""

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


class EffectClaimStatus(Struct):
    """EffectClaimStatus defines the observed state of EffectClaim."""

    __schema__ = F(rules=(CONDITION_REASON_LIMIT, CONDITION_MESSAGE_LIMIT))

    observed_generation: Int64 | None = None
    """ObservedGeneration is the latest generation observed by the controller."""
    phase: Annotated[str, F(enum=PHASES)] | None = None
    """Phase provides a canonical high-level lifecycle summary for the claim."""
    conditions: Conditions | None = None
    """Conditions provide canonical Kubernetes lifecycle status for the claim."""


class EffectClaim(Struct):
    """EffectClaim is the Schema for the effectclaims API."""

    spec: EffectClaimSpec
    """spec defines the desired state of EffectClaim"""
    api_version: str | None = None
    kind: str | None = None
    metadata: ObjectMeta | None = None
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
