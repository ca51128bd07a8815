"""Engram: a configured instance of an EngramTemplate, used by Story steps."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

import msgspec

from runs_controller.api.bubustack import GROUP
from runs_controller.api.bubustack.shared import (
    ExecutionOverrides,
    ExecutionPolicy,
    LocalObjectReference,
)
from runs_controller.api.conditions import Conditions
from runs_controller.api.enums import WORKLOAD_MODES, Phase, ValidationStatus
from runs_controller.api.meta import Resource
from runs_controller.api.refs import EngramTemplateReference
from runs_controller.api.schema import F, Int32, Int64, PrinterColumn, ResourceInfo, Struct

CATEGORIES = ("bubu", "ai")

# The mode enum is declared twice upstream (on the WorkloadMode type and on the field), which
# controller-gen renders as two `allOf` branches instead of one `enum`.
_MODE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "allOf": [{"enum": list(WORKLOAD_MODES)}, {"enum": list(WORKLOAD_MODES)}],
}


class EngramTLSSpec(Struct, frozen=True):
    """EngramTLSSpec says where the TLS key pair of hybrid transports comes from."""

    secret_ref: LocalObjectReference | None = None
    """SecretRef names a Secret with tls.key and tls.crt."""
    use_default_tls: bool | None = msgspec.field(default=None, name="useDefaultTLS")
    """UseDefaultTLS asks for the operator's default TLS Secret (true when secretRef is
    unset)."""


class EngramTransportSpec(Struct, frozen=True):
    """EngramTransportSpec holds transport-level overrides of an Engram."""

    tls: EngramTLSSpec | None = None
    """TLS configures TLS secrets for hybrid transports."""


class EngramSpec(Struct, frozen=True):
    """EngramSpec describes the desired behaviour of an Engram."""

    template_ref: EngramTemplateReference
    """TemplateRef names the EngramTemplate providing defaults, validation and the image."""
    version: Annotated[str, F(max_length=64)] | None = None
    """Version identifies this Engram for pinning by Story steps."""
    mode: Annotated[str, F(schema=_MODE_SCHEMA)] | None = None
    """Mode overrides the template's workload kind: job, deployment or statefulset (empty:
    job)."""
    with_: dict[str, Any] | None = msgspec.field(default=None, name="with")
    """With is the template-specific configuration, validated by the template's configSchema;
    step `with` values are merged over it."""
    secrets: dict[str, str] | None = None
    """Secrets maps the template's named secret inputs to Secrets in this namespace."""
    execution_policy: ExecutionPolicy | None = None
    """ExecutionPolicy is the resolved execution policy (template defaults merged in)."""
    overrides: ExecutionOverrides | None = None
    """Overrides adjusts execution for this instance."""
    transport: EngramTransportSpec | None = None
    """Transport holds transport-level overrides such as TLS."""


class EngramStatus(Struct, frozen=True):
    """EngramStatus reports the observed state of an Engram's workload."""

    observed_generation: Int64 | None = None
    """ObservedGeneration is the last generation the controller reconciled."""
    conditions: Conditions | None = None
    """Conditions such as Ready."""
    replicas: Int32 | None = None
    """Replicas of a Deployment or StatefulSet workload (zero for Jobs)."""
    ready_replicas: Int32 | None = None
    """ReadyReplicas of a Deployment or StatefulSet workload (zero for Jobs)."""
    phase: Phase | None = None
    """Phase is the lifecycle summary of the workload."""
    validation_status: ValidationStatus | None = None
    """ValidationStatus says whether the spec passed validation."""
    validation_errors: list[str] | None = None
    """ValidationErrors describes validation failures."""
    usage_count: Int32 | None = None
    """UsageCount is how many Stories reference this Engram."""
    triggers: Int64 | None = None
    """Triggers is how many StepRuns currently reference this Engram."""
    last_execution_time: datetime.datetime | None = None
    """LastExecutionTime is when the latest run completed."""
    total_executions: Int32 | None = None
    """TotalExecutions counts completed runs of Job workloads."""
    failed_executions: Int32 | None = None
    """FailedExecutions counts runs that failed."""


class Engram(Resource, kw_only=True, frozen=True):
    """Engram is the Schema for the engrams API."""

    spec: EngramSpec
    """spec defines the desired state of Engram"""
    status: EngramStatus | None = None
    """status defines the observed state of Engram"""


ENGRAM = ResourceInfo(
    group=GROUP,
    kind="Engram",
    plural="engrams",
    singular="engram",
    short_names=("engram",),
    categories=CATEGORIES,
    printer_columns=(
        PrinterColumn("Template", ".spec.templateRef.name"),
        PrinterColumn("Mode", ".spec.mode"),
        PrinterColumn("Status", ".status.validationStatus"),
        PrinterColumn("Usage", ".status.usageCount", type="integer"),
        PrinterColumn("Triggers", ".status.triggers", type="integer"),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
)
