"""Small types and rules shared by several runs kinds."""

from __future__ import annotations

from runs_controller.api.schema import Rule, Struct

OBSERVED_GENERATION_MONOTONIC = Rule(
    rule=(
        "!has(oldSelf.observedGeneration) || (has(self.observedGeneration) && "
        "self.observedGeneration >= oldSelf.observedGeneration)"
    ),
    message="status.observedGeneration must not decrease",
)
"""Transition rule on a status object (replaces the reference's admission webhook check)."""


class SchemaReference(Struct, frozen=True):
    """SchemaReference names a JSON Schema and, when known, its version."""

    ref: str | None = None
    """Ref is the schema identifier, e.g. bubu://story/<namespace>/<story>/inputs."""
    version: str | None = None
    """Version is the schema version, when known."""


class TraceInfo(Struct, frozen=True):
    """TraceInfo is the OpenTelemetry trace context of a run."""

    trace_id: str | None = None
    """TraceID is the OpenTelemetry trace ID."""
    span_id: str | None = None
    """SpanID is the OpenTelemetry span ID."""
    sampled: bool | None = None
    """Sampled tells whether the trace was sampled."""
