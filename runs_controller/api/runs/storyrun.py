"""StoryRun: one execution of a Story."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

from runs_controller.api.conditions import (
    CONDITION_MESSAGE_LIMIT,
    CONDITION_REASON_LIMIT,
    Conditions,
)
from runs_controller.api.enums import Phase
from runs_controller.api.meta import Resource
from runs_controller.api.refs import ImpulseReference, StoryReference
from runs_controller.api.runs import CATEGORIES, GROUP
from runs_controller.api.runs.common import (
    OBSERVED_GENERATION_MONOTONIC,
    SchemaReference,
    TraceInfo,
)
from runs_controller.api.schema import (
    F,
    Int32,
    Int64,
    PrinterColumn,
    ResourceInfo,
    Rule,
    Struct,
)

GATE_DECISION_STATES = ("Pending", "Approved", "Rejected")

SPEC_IMMUTABLE_EXCEPT_CANCEL = Rule(
    rule=(
        "self == oldSelf || ("
        "(has(self.cancelRequested) && self.cancelRequested) && "
        "!(has(oldSelf.cancelRequested) && oldSelf.cancelRequested) && "
        "self.storyRef == oldSelf.storyRef && "
        "has(self.impulseRef) == has(oldSelf.impulseRef) && "
        "(!has(self.impulseRef) || self.impulseRef == oldSelf.impulseRef) && "
        "has(self.inputs) == has(oldSelf.inputs) && "
        "(!has(self.inputs) || self.inputs == oldSelf.inputs))"
    ),
    message=(
        "spec is immutable for StoryRun (only cancelRequested may be set to true); create a "
        "new StoryRun for updated inputs or references"
    ),
)
CONDITIONS_INCLUDE_READY = Rule(
    rule="!has(self.conditions) || self.conditions.exists(c, c.type == 'Ready')",
    message="status.conditions must include Ready when conditions are set",
)
CONDITIONS_HAVE_TRANSITION_TIME = Rule(
    rule="!has(self.conditions) || self.conditions.all(c, has(c.lastTransitionTime))",
    message="status.conditions entries must set lastTransitionTime",
)


class StoryRunSpec(Struct, frozen=True):
    """StoryRunSpec names the Story to run and its inputs."""

    __schema__ = F(rules=(SPEC_IMMUTABLE_EXCEPT_CANCEL,))

    story_ref: StoryReference
    """StoryRef is the Story to execute (same namespace unless a namespace is given)."""
    impulse_ref: ImpulseReference | None = None
    """ImpulseRef is the Impulse that triggered this run, for the audit trail."""
    inputs: dict[str, Any] | None = None
    """Inputs of this run, validated against the Story's inputsSchema."""
    cancel_requested: bool | None = None
    """CancelRequested asks for a graceful cancel: no new steps are scheduled, running steps are
    signalled, and the run ends Finished after the grace period."""


class StepState(Struct, frozen=True):
    """StepState is the status of one step within a StoryRun."""

    phase: Phase
    """Phase is the step's current phase."""
    message: str | None = None
    """Message summarises the step's status."""
    started_at: datetime.datetime | None = None
    """StartedAt is when the step first got a phase."""
    finished_at: datetime.datetime | None = None
    """FinishedAt is when the step reached a terminal phase."""
    sub_story_run_name: str | None = None
    """SubStoryRunName is the child StoryRun of an executeStory step."""


class GateStatus(Struct, frozen=True):
    """GateStatus records the decision taken for a gate step."""

    state: Annotated[str, F(enum=GATE_DECISION_STATES)] | None = None
    """State is Pending, Approved or Rejected."""
    message: str | None = None
    """Message gives human context for the decision."""
    updated_at: datetime.datetime | None = None
    """UpdatedAt is when the decision last changed."""
    updated_by: str | None = None
    """UpdatedBy names who or what changed the decision."""


class StoryRunStatus(Struct, frozen=True):
    """StoryRunStatus is the observed progress and result of a StoryRun."""

    __schema__ = F(
        rules=(
            CONDITIONS_INCLUDE_READY,
            CONDITIONS_HAVE_TRANSITION_TIME,
            CONDITION_REASON_LIMIT,
            CONDITION_MESSAGE_LIMIT,
            OBSERVED_GENERATION_MONOTONIC,
        )
    )

    observed_generation: Int64 | None = None
    """ObservedGeneration is the latest StoryRun generation the controller has seen."""
    phase: Phase | None = None
    """Phase is the run's current phase."""
    message: str | None = None
    """Message summarises the run's status."""
    active: list[str] | None = None
    """Active lists the steps executing now."""
    completed: list[str] | None = None
    """Completed lists the steps that finished successfully."""
    primitive_children: dict[str, list[str]] | None = None
    """PrimitiveChildren maps a primitive step (e.g. parallel) to the child StepRuns it made."""
    started_at: datetime.datetime | None = None
    """StartedAt is when the run started."""
    finished_at: datetime.datetime | None = None
    """FinishedAt is when the run finished."""
    children_cleaned_at: datetime.datetime | None = None
    """ChildrenCleanedAt is when the child StepRuns and pods were cleaned up."""
    duration: str | None = None
    """Duration is how long the run took (Go duration)."""
    trace: TraceInfo | None = None
    """Trace is the run's OpenTelemetry trace context."""
    attempts: Int32 | None = None
    """Attempts counts the transitions into Running."""
    input_schema_ref: SchemaReference | None = None
    """InputSchemaRef names the schema the inputs were validated against."""
    output_schema_ref: SchemaReference | None = None
    """OutputSchemaRef names the schema the output is expected to match."""
    output: dict[str, Any] | None = None
    """Output is the evaluated Story output."""
    step_states: dict[str, StepState] | None = None
    """StepStates holds the status of each step, keyed by step name."""
    gates: dict[str, GateStatus] | None = None
    """Gates holds manual gate decisions, keyed by step name."""
    error: dict[str, Any] | None = None
    """Error describes why the run failed."""
    conditions: Conditions | None = None
    """Conditions are the standard lifecycle conditions (Ready is always present)."""
    steps_total: Int32 | None = None
    """StepsTotal is the number of steps in the Story."""
    steps_complete: Int32 | None = None
    """StepsComplete is the number of steps that succeeded."""
    steps_failed: Int32 | None = None
    """StepsFailed is the number of steps that failed."""
    steps_skipped: Int32 | None = None
    """StepsSkipped is the number of skipped steps."""
    allowed_failures: list[str] | None = None
    """AllowedFailures lists failed steps that were allowed to fail."""
    trigger_tokens: list[str] | None = None
    """TriggerTokens records which parent counters already counted this run."""


class StoryRun(Resource, kw_only=True, frozen=True):
    """StoryRun is one execution of a Story."""

    spec: StoryRunSpec
    """spec defines the desired state of StoryRun"""
    status: StoryRunStatus | None = None
    """status defines the observed state of StoryRun"""


STORY_RUN = ResourceInfo(
    group=GROUP,
    kind="StoryRun",
    plural="storyruns",
    singular="storyrun",
    short_names=("srun",),
    categories=CATEGORIES,
    printer_columns=(
        PrinterColumn("Story", ".spec.storyRef.name"),
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Duration", ".status.duration"),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
    selectable_fields=(".spec.storyRef.name", ".status.phase"),
)
