"""Story: a workflow of Engram and primitive steps, the template every StoryRun executes."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from runs_controller.api.bubustack import GROUP
from runs_controller.api.bubustack.shared import (
    ExecutionOverrides,
    ExecutionPolicy,
    RetryPolicy,
    StoragePolicy,
)
from runs_controller.api.conditions import Conditions
from runs_controller.api.enums import StepType, TransportMode, ValidationStatus
from runs_controller.api.meta import Resource
from runs_controller.api.refs import DNS_LABEL_PATTERN, EngramReference
from runs_controller.api.schema import (
    F,
    Int32,
    Int64,
    PrinterColumn,
    ResourceInfo,
    Rule,
    Struct,
)
from runs_controller.api.transport import TransportStreamingSettings

STORY_PATTERNS = ("batch", "realtime")
CONCURRENCY_MODES = ("serial", "cancelPrevious", "parallel")
CONCURRENCY_SCOPES = ("storyrun", "participant")

StepName = Annotated[str, F(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]

ONE_OF_REF_OR_TYPE = Rule(
    rule="self.steps.all(step, has(step.ref) != has(step.type))",
    message="each step must set exactly one of ref or type",
)
UNIQUE_STEP_NAMES = Rule(
    rule="self.steps.all(step, self.steps.exists_one(other, other.name == step.name))",
    message="step names must be unique",
)


class RealtimeConcurrency(Struct, frozen=True):
    """How the hub treats overlapping pipeline cycles of a realtime story."""

    mode: Annotated[str, F(enum=CONCURRENCY_MODES, default="parallel")] | None = None
    """serial queues cycles, cancelPrevious cancels the running one, parallel runs all."""
    scope: Annotated[str, F(enum=CONCURRENCY_SCOPES, default="storyrun")] | None = None
    """Granularity at which cycles are tracked."""


class PostExecutionCheck(Struct, frozen=True):
    """A check evaluated against a step's output after the step succeeded."""

    condition: Annotated[str, F(min_length=1)]
    """Template that must render "true" for the step to count as succeeded."""
    failure_message: str | None = None
    """Message used when the condition is false."""


class Step(Struct, frozen=True):
    """A node of the workflow graph: an Engram (ref) or a built-in primitive (type)."""

    name: StepName
    """Unique step name; dependencies, outputs and StepRuns refer to the step by it."""
    id: Annotated[str, F(max_length=63, pattern=DNS_LABEL_PATTERN)] | None = None
    """Optional stable identifier besides the name (not used by the controllers)."""
    needs: list[str] | None = None
    """Names of the steps that must finish before this one starts."""
    type: StepType | None = None
    """Built-in primitive to run; omitted for Engram steps (which set ref)."""
    if_: str | None = msgspec.field(default=None, name="if")
    """Template condition; the step is skipped when it is false."""
    allow_failure: bool | None = None
    """A failure of this step does not fail the StoryRun."""
    side_effects: bool | None = None
    """The step mutates external systems; without an explicit retry policy it is not retried."""
    requires: list[str] | None = None
    """Paths ("steps.<name>.output.<key>") that must be non-nil before the step is scheduled."""
    idempotency_key_template: Annotated[str, F(max_length=512)] | None = None
    """Template for a business-level idempotency key replacing the generated one."""
    ref: EngramReference | None = None
    """The Engram this step runs."""
    with_: dict[str, Any] | None = msgspec.field(default=None, name="with")
    """Step configuration and inputs, templated (evaluated at start for batch steps, once at
    deployment for realtime steps)."""
    runtime: dict[str, Any] | None = None
    """Per-packet configuration of realtime steps, evaluated by the hub for every packet."""
    transport: Annotated[str, F(pattern=DNS_LABEL_PATTERN)] | None = None
    """Name of a transport declared in spec.transports."""
    secrets: dict[str, str] | None = None
    """Overrides of the template's secret bindings."""
    execution: ExecutionOverrides | None = None
    """Per-step execution overrides."""
    post_execution: PostExecutionCheck | None = None
    """Verification of the step's output after it succeeded."""


class StoryTimeouts(Struct, frozen=True):
    """Story-wide timeouts (duration strings)."""

    story: str | None = None
    """Limit for the whole run."""
    step: str | None = None
    """Default limit for each step."""
    graceful_shutdown_timeout: str | None = None
    """How long a cancelled run waits for its steps to finish (30s when unset)."""


class StoryRetries(Struct, frozen=True):
    """Story-wide retry behaviour."""

    step_retry_policy: RetryPolicy | None = None
    """Retry policy of steps that set none themselves."""
    continue_on_step_failure: Annotated[bool, F(default=False)] | None = None
    """Keep running the story after a step failed."""


class StoryPolicy(Struct, frozen=True):
    """Defaults that apply across the whole Story."""

    timeouts: StoryTimeouts | None = None
    """Run and step timeouts."""
    with_: dict[str, Any] | None = msgspec.field(default=None, name="with")
    """Default inputs when the story runs as a sub-story (like a step's with)."""
    retries: StoryRetries | None = None
    """Retry behaviour."""
    concurrency: Int32 | None = None
    """Most running StepRuns across all runs of this story (0 or unset: no limit)."""
    queue: Annotated[str, F(max_length=63, pattern=DNS_LABEL_PATTERN)] | None = None
    """Scheduling queue of the story's runs."""
    priority: Annotated[Int32, F(minimum=0)] | None = None
    """Order within the queue; higher runs first."""
    storage: StoragePolicy | None = None
    """Storage of offloaded payloads."""
    execution: ExecutionPolicy | None = None
    """Default execution settings; steps may override them."""


class StoryTransport(Struct, frozen=True):
    """A named transport that steps can publish to or subscribe from."""

    name: Annotated[str, F(pattern=DNS_LABEL_PATTERN)]
    """Name steps use to select the transport."""
    transport_ref: Annotated[str, F(min_length=1)]
    """Name of the Transport resource providing it."""
    description: str | None = None
    """Free-text note."""
    streaming: TransportStreamingSettings | None = None
    """Streaming policies (backpressure, flow control, delivery, ...)."""
    settings: dict[str, Any] | None = None
    """Provider-specific overrides, evaluated per StoryRun."""


class StorySpec(Struct, frozen=True):
    """StorySpec: the workflow graph and its policies."""

    __schema__ = F(rules=(ONE_OF_REF_OR_TYPE, UNIQUE_STEP_NAMES))

    steps: Annotated[list[Step], F(min_items=1, max_items=100)]
    """The main workflow graph."""
    version: Annotated[str, F(max_length=64)] | None = None
    """Version label that references can pin."""
    pattern: Annotated[str, F(enum=STORY_PATTERNS, default="batch")] | None = None
    """Execution model: batch (short-lived StoryRuns) or realtime (long-lived topology)."""
    concurrency: RealtimeConcurrency | None = None
    """Handling of overlapping cycles; realtime stories only."""
    inputs_schema: dict[str, Any] | None = None
    """JSON Schema of the StoryRun inputs; its defaults are applied at run time."""
    outputs_schema: dict[str, Any] | None = None
    """JSON Schema of the story's output."""
    output: dict[str, Any] | None = None
    """Template of the run's final output, evaluated on success into StoryRun status.output."""
    compensations: Annotated[list[Step], F(max_items=50)] | None = None
    """Steps run when the story failed, after the main steps and before finally."""
    finally_: Annotated[list[Step], F(max_items=50)] | None = msgspec.field(
        default=None, name="finally"
    )
    """Steps that always run at the end, after compensations."""
    policy: StoryPolicy | None = None
    """Story-wide defaults (timeouts, retries, storage, execution)."""
    transports: list[StoryTransport] | None = None
    """Named stream transports available to steps."""


class StoryTransportStatus(Struct, frozen=True):
    """A declared transport and the mode the controller chose for it."""

    name: str
    transport_ref: str
    mode: TransportMode | None = None
    mode_reason: str | None = None
    """Why the controller chose this mode."""


class StoryStatus(Struct, frozen=True):
    """StoryStatus: validation result and usage counters, written by the Story controller."""

    observed_generation: Int64 | None = None
    """Latest generation the controller observed."""
    conditions: Conditions | None = None
    """Standard conditions (e.g. Ready, Validated)."""
    steps_total: Int32 | None = None
    """Number of steps in spec.steps."""
    transports: list[StoryTransportStatus] | None = None
    """The declared transports with their effective mode."""
    validation_status: ValidationStatus | None = None
    """Whether the spec passed validation."""
    validation_errors: list[str] | None = None
    """Validation problems, when any."""
    validation_warnings: list[str] | None = None
    """Non-fatal validation findings."""
    usage_count: Int32 | None = None
    """Number of Impulses referencing this Story."""
    triggers: Int64 | None = None
    """Number of StoryRuns referencing this Story."""


class Story(Resource, kw_only=True, frozen=True):
    """Story is the Schema for the stories API."""

    spec: StorySpec
    """spec defines the desired state of Story"""
    status: StoryStatus | None = None
    """status defines the observed state of Story"""


STORY = ResourceInfo(
    group=GROUP,
    kind="Story",
    plural="stories",
    singular="story",
    short_names=("story",),
    categories=("bubu", "ai", "workflows"),
    printer_columns=(
        PrinterColumn("Steps", ".status.stepsTotal", type="integer"),
        PrinterColumn("Status", ".status.validationStatus"),
        PrinterColumn("Usage", ".status.usageCount", type="integer"),
        PrinterColumn("Triggers", ".status.triggers", type="integer"),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
)
