"""StepRun: the execution of one step of a StoryRun."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

from runs_controller.api.bubustack.shared import CachePolicy, PlacementPolicy, RetryPolicy
from runs_controller.api.conditions import (
    CONDITION_MESSAGE_LIMIT,
    CONDITION_REASON_LIMIT,
    Conditions,
)
from runs_controller.api.enums import ExitClass, Phase, StopMode
from runs_controller.api.meta import Resource
from runs_controller.api.refs import DNS_LABEL_PATTERN, EngramReference, StoryRunReference
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
from runs_controller.api.transport import TransportUpgradeStrategy

STRUCTURED_ERROR_VERSION = "v1"
STRUCTURED_ERROR_TYPES = (
    "timeout",
    "storage_error",
    "serialization_error",
    "validation_error",
    "initialization_error",
    "execution_error",
    "unknown",
)
STRUCTURED_ERROR_EXIT_CLASSES = ("success", "retry", "terminal", "rateLimited", "unknown")
HANDOFF_PHASES = ("pending", "draining", "cutover", "ready")

EXACTLY_ONE_TARGET = Rule(
    rule="has(self.grpc) != has(self.terminate)",
    message="downstream target must set exactly one of grpc or terminate",
)
STRUCTURED_ERROR_RULES = (
    Rule(
        rule=f"self.version == '{STRUCTURED_ERROR_VERSION}'",
        message=f"status.error.version must be {STRUCTURED_ERROR_VERSION}",
    ),
    Rule(rule="size(self.message) > 0", message="status.error.message must not be empty"),
    Rule(
        rule="!has(self.exitCode) || self.exitCode >= 0",
        message="status.error.exitCode must be >= 0",
    ),
)


class GRPCTarget(Struct, frozen=True):
    """GRPCTarget is the address of the next Engram in a realtime chain."""

    endpoint: str
    """Endpoint is the downstream address (host:port)."""


class TerminateTarget(Struct, frozen=True):
    """TerminateTarget ends the flow at this step."""

    stop_mode: StopMode
    """StopMode is the final outcome of the StoryRun: success, failure or cancel."""


class DownstreamTarget(Struct, frozen=True):
    """DownstreamTarget is where a realtime Engram sends its output (exactly one field set)."""

    __schema__ = F(rules=(EXACTLY_ONE_TARGET,))

    grpc: GRPCTarget | None = None
    """GRPC sends the output to a downstream gRPC peer."""
    terminate: TerminateTarget | None = None
    """Terminate marks this step as the last of the flow."""


class StepExecutionOverrides(Struct, frozen=True):
    """StepExecutionOverrides are StepRun-level execution settings (highest precedence)."""

    cpu_request: str | None = None
    """CPURequest overrides the CPU request."""
    cpu_limit: str | None = None
    """CPULimit overrides the CPU limit."""
    memory_request: str | None = None
    """MemoryRequest overrides the memory request."""
    memory_limit: str | None = None
    """MemoryLimit overrides the memory limit."""
    placement: PlacementPolicy | None = None
    """Placement overrides pod scheduling constraints."""
    cache: CachePolicy | None = None
    """Cache overrides output caching."""
    debug: bool | None = None
    """Debug turns on component debug logging."""
    backoff_limit: Int32 | None = None
    """BackoffLimit overrides the Job backoff limit."""
    ttl_seconds_after_finished: Int32 | None = None
    """TTLSecondsAfterFinished overrides the Job cleanup delay."""
    restart_policy: str | None = None
    """RestartPolicy overrides the pod restart policy (Never or OnFailure)."""


class StepRunSpec(Struct, frozen=True):
    """StepRunSpec says how to execute one step."""

    story_run_ref: StoryRunReference
    """StoryRunRef is the parent StoryRun."""
    step_id: Annotated[str, F(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
    """StepID is the name of the Story step this StepRun executes."""
    idempotency_key: Annotated[str, F(max_length=256)] | None = None
    """IdempotencyKey is a stable key external systems use to deduplicate side effects."""
    engram_ref: EngramReference | None = None
    """EngramRef is the Engram to run (absent for primitives)."""
    template_generation: Int64 | None = None
    """TemplateGeneration is the EngramTemplate generation when this StepRun was created."""
    input: dict[str, Any] | None = None
    """Input is the step's (still unresolved) input."""
    timeout: str | None = None
    """Timeout is how long the step may run (Go duration)."""
    retry: RetryPolicy | None = None
    """Retry says how the step is retried on failure."""
    execution_overrides: StepExecutionOverrides | None = None
    """ExecutionOverrides are the highest-precedence execution settings."""
    downstream_targets: list[DownstreamTarget] | None = None
    """DownstreamTargets tell a realtime Engram's SDK where its output goes."""


class StructuredError(Struct, frozen=True):
    """StructuredError is the versioned error contract of StepRun.status.error (v1)."""

    __schema__ = F(rules=STRUCTURED_ERROR_RULES)

    type: Annotated[str, F(enum=STRUCTURED_ERROR_TYPES)]
    """Type is the machine-readable error category."""
    message: str
    """Message is the human-readable error message."""
    version: Annotated[str, F(default=STRUCTURED_ERROR_VERSION, required=True)] | None = None
    """Version is the version of this error contract (the apiserver defaults it to v1)."""
    retryable: bool | None = None
    """Retryable tells whether a retry may succeed (informational; absent when unknown)."""
    exit_code: Int32 | None = None
    """ExitCode is the container exit code, when known."""
    exit_class: Annotated[str, F(enum=STRUCTURED_ERROR_EXIT_CLASSES)] | None = None
    """ExitClass is the retry classification of the exit."""
    code: str | None = None
    """Code is an optional component-specific error code."""
    details: dict[str, Any] | None = None
    """Details carries structured debugging data."""


class HandoffStatus(Struct, frozen=True):
    """HandoffStatus is the progress of a streaming upgrade or cutover."""

    strategy: TransportUpgradeStrategy | None = None
    """Strategy is the upgrade strategy in effect."""
    phase: Annotated[str, F(enum=HANDOFF_PHASES)] | None = None
    """Phase is the current handoff stage."""
    message: str | None = None
    """Message explains the current phase."""
    updated_at: datetime.datetime | None = None
    """UpdatedAt is when the handoff status last changed."""


class SignalEvent(Struct, frozen=True):
    """SignalEvent is one emitted signal, kept for replay."""

    seq: Int64
    """Seq is a per-StepRun increasing sequence number."""
    key: str
    """Key is the signal name."""
    emitted_at: datetime.datetime | None = None
    """EmittedAt is when the signal was emitted."""
    payload: dict[str, Any] | None = None
    """Payload is the signal's value."""


class EffectRecord(Struct, frozen=True):
    """EffectRecord is one external side effect, kept for idempotency."""

    seq: Int64
    """Seq is a per-StepRun increasing sequence number."""
    key: str
    """Key identifies the effect (idempotency key or effect ID)."""
    status: str | None = None
    """Status is the outcome (e.g. succeeded, failed)."""
    emitted_at: datetime.datetime | None = None
    """EmittedAt is when the effect was emitted."""
    details: dict[str, Any] | None = None
    """Details carries structured metadata about the effect."""


class StepRunStatus(Struct, frozen=True):
    """StepRunStatus is the observed state of one step execution."""

    __schema__ = F(
        rules=(CONDITION_REASON_LIMIT, CONDITION_MESSAGE_LIMIT, OBSERVED_GENERATION_MONOTONIC)
    )

    retries: Annotated[Int32, F(required=True)] | None = None
    """Retries is the number of retry attempts used (required in every status write; 0 is
    fine)."""
    observed_generation: Int64 | None = None
    """ObservedGeneration is the latest StepRun generation the controller has seen."""
    phase: Phase | None = None
    """Phase is the step's current phase."""
    started_at: datetime.datetime | None = None
    """StartedAt is when the step started."""
    finished_at: datetime.datetime | None = None
    """FinishedAt is when the step finished."""
    duration: str | None = None
    """Duration is how long execution took (Go duration)."""
    last_output_at: datetime.datetime | None = None
    """LastOutputAt is when the output was last written."""
    trace: TraceInfo | None = None
    """Trace is the step's OpenTelemetry trace context."""
    exit_code: Int32 | None = None
    """ExitCode is the container's exit code."""
    exit_class: ExitClass | None = None
    """ExitClass is how the exit is interpreted for retries."""
    pod_name: str | None = None
    """PodName is the pod that executed the step."""
    next_retry_at: datetime.datetime | None = None
    """NextRetryAt is when the next retry is due."""
    last_failure_msg: str | None = None
    """LastFailureMsg is the latest failure message."""
    input_schema_ref: SchemaReference | None = None
    """InputSchemaRef names the schema the resolved inputs were validated against."""
    output_schema_ref: SchemaReference | None = None
    """OutputSchemaRef names the schema the output is expected to match."""
    output: dict[str, Any] | None = None
    """Output is the step's output (or a storage reference when offloaded)."""
    logs: dict[str, Any] | None = None
    """Logs is a storage reference to the step's logs, written by the SDK."""
    error: StructuredError | None = None
    """Error describes why the step failed (StructuredError v1)."""
    conditions: Conditions | None = None
    """Conditions are the standard lifecycle conditions."""
    handoff: HandoffStatus | None = None
    """Handoff is the state of a streaming upgrade or cutover."""
    needs: list[str] | None = None
    """Needs lists StepRuns that must finish before this one starts."""
    signals: dict[str, dict[str, Any]] | None = None
    """Signals are small values emitted by the running Engram, usable in templates."""
    signal_events: Annotated[list[SignalEvent], F(max_items=256)] | None = None
    """SignalEvents is the append-only log of emitted signals."""
    effects: Annotated[list[EffectRecord], F(max_items=256)] | None = None
    """Effects is the append-only ledger of external side effects."""


class StepRun(Resource, kw_only=True, frozen=True):
    """StepRun is the execution of a single step within a StoryRun."""

    spec: StepRunSpec
    """spec defines the desired state of StepRun"""
    status: StepRunStatus | None = None
    """status defines the observed state of StepRun"""


STEP_RUN = ResourceInfo(
    group=GROUP,
    kind="StepRun",
    plural="stepruns",
    singular="steprun",
    short_names=("step",),
    categories=CATEGORIES,
    printer_columns=(
        PrinterColumn("StoryRun", ".spec.storyRunRef.name"),
        PrinterColumn("Step", ".spec.stepId"),
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Retries", ".status.retries", type="integer"),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
    selectable_fields=(".spec.storyRunRef.name", ".spec.stepId", ".status.phase"),
)
