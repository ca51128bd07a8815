"""StoryTrigger: a durable, deduplicated request to start a StoryRun."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

from runs_controller.api.bubustack.shared import TriggerDedupeMode
from runs_controller.api.conditions import (
    CONDITION_MESSAGE_LIMIT,
    CONDITION_REASON_LIMIT,
    Conditions,
)
from runs_controller.api.meta import Resource
from runs_controller.api.refs import ImpulseReference, StoryReference, StoryRunReference
from runs_controller.api.runs import CATEGORIES, GROUP
from runs_controller.api.runs.common import OBSERVED_GENERATION_MONOTONIC
from runs_controller.api.schema import F, Int64, PrinterColumn, ResourceInfo, Rule, Struct

DECISIONS = ("Pending", "Created", "Reused", "Rejected")

SPEC_IMMUTABLE = Rule(
    rule="self == oldSelf",
    message=(
        "spec is immutable for StoryTrigger; create a new StoryTrigger for updated trigger requests"
    ),
)


KEY_MATCHES_MODE = Rule(
    rule=(
        "!has(self.mode) || (self.mode == 'none' ? (!has(self.key) || self.key == '') : "
        "(has(self.key) && self.key != ''))"
    ),
    message=(
        "deliveryIdentity.key must be empty when mode is none and set when mode is token or key"
    ),
)
HASH_WITH_KEY = Rule(
    rule="!has(self.key) || self.key == '' || (has(self.inputHash) && self.inputHash != '')",
    message="deliveryIdentity.inputHash is required when deliveryIdentity.key is set",
)


class TriggerDeliveryIdentity(Struct, frozen=True):
    """TriggerDeliveryIdentity is the durable business identity of a trigger submission."""

    __schema__ = F(rules=(KEY_MATCHES_MODE, HASH_WITH_KEY))

    submission_id: Annotated[str, F(min_length=1, max_length=253)]
    """SubmissionID identifies one logical submission; its retries reuse the same value."""
    mode: TriggerDedupeMode | None = None
    """Mode records how the identity was derived (none, token or key)."""
    key: Annotated[str, F(max_length=256)] | None = None
    """Key is the stable business key of the token and key modes."""
    input_hash: Annotated[str, F(max_length=64)] | None = None
    """InputHash is the sha256 of the canonical inputs; required when key is set."""


class StoryTriggerSpec(Struct, frozen=True):
    """StoryTriggerSpec is the requested run and its delivery identity."""

    __schema__ = F(rules=(SPEC_IMMUTABLE,))

    story_ref: StoryReference
    """StoryRef is the Story to run when the trigger is accepted."""
    delivery_identity: TriggerDeliveryIdentity
    """DeliveryIdentity is used for deduplication and retry resolution."""
    impulse_ref: ImpulseReference | None = None
    """ImpulseRef is the Impulse that observed the external event."""
    inputs: dict[str, Any] | None = None
    """Inputs are the resolved Story inputs of the requested run."""


class StoryTriggerStatus(Struct, frozen=True):
    """StoryTriggerStatus is the controller's decision on a trigger."""

    __schema__ = F(
        rules=(CONDITION_REASON_LIMIT, CONDITION_MESSAGE_LIMIT, OBSERVED_GENERATION_MONOTONIC)
    )

    observed_generation: Int64 | None = None
    """ObservedGeneration is the latest generation the controller has seen."""
    decision: Annotated[str, F(enum=DECISIONS)] | None = None
    """Decision is Pending, Created, Reused or Rejected."""
    reason: str | None = None
    """Reason is a stable machine-readable reason for the decision."""
    message: str | None = None
    """Message explains the decision."""
    story_run_ref: StoryRunReference | None = None
    """StoryRunRef is the StoryRun created or reused for this trigger."""
    accepted_at: datetime.datetime | None = None
    """AcceptedAt is when the trigger was first accepted for processing."""
    completed_at: datetime.datetime | None = None
    """CompletedAt is when the controller finished resolving the trigger."""
    conditions: Conditions | None = None
    """Conditions are the standard lifecycle conditions."""


class StoryTrigger(Resource, kw_only=True, frozen=True):
    """StoryTrigger is the Schema for the storytriggers API."""

    spec: StoryTriggerSpec
    """spec defines the desired state of StoryTrigger"""
    status: StoryTriggerStatus | None = None
    """status defines the observed state of StoryTrigger"""


STORY_TRIGGER = ResourceInfo(
    group=GROUP,
    kind="StoryTrigger",
    plural="storytriggers",
    singular="storytrigger",
    short_names=("trig",),
    categories=CATEGORIES,
    printer_columns=(
        PrinterColumn("Story", ".spec.storyRef.name"),
        PrinterColumn("Decision", ".status.decision"),
        PrinterColumn("StoryRun", ".status.storyRunRef.name"),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
)
