"""EngramTemplate: a cluster-wide, reusable worker component (what an Engram can do)."""

from __future__ import annotations

from typing import Any

from runs_controller.api.catalog import GROUP
from runs_controller.api.catalog.shared import TemplateSpec, TemplateStatus
from runs_controller.api.meta import Resource
from runs_controller.api.schema import PrinterColumn, ResourceInfo

CATEGORIES = ("bubu", "ai", "catalog")


class EngramTemplateSpec(TemplateSpec, frozen=True):
    """EngramTemplateSpec defines the capabilities and data contract of a worker component."""

    input_schema: dict[str, Any] | None = None
    """JSON Schema of the resolved step inputs; its defaults are applied to them."""
    output_schema: dict[str, Any] | None = None
    """JSON Schema of the output the engram produces."""
    declared_output_keys: list[str] | None = None
    """Top-level output keys the engram is expected to produce (docs and static checks)."""


class EngramTemplateStatus(TemplateStatus, frozen=True):
    """EngramTemplateStatus defines the observed state of EngramTemplate."""


class EngramTemplate(Resource, kw_only=True, frozen=True):
    """EngramTemplate is a cluster-scoped, reusable worker component that Engrams configure."""

    spec: EngramTemplateSpec
    """spec defines the desired state of EngramTemplate"""
    status: EngramTemplateStatus | None = None
    """status defines the observed state of EngramTemplate"""


ENGRAM_TEMPLATE = ResourceInfo(
    group=GROUP,
    kind="EngramTemplate",
    plural="engramtemplates",
    singular="engramtemplate",
    scope="Cluster",
    short_names=("etpl",),
    categories=CATEGORIES,
    printer_columns=(
        PrinterColumn("Description", ".spec.description"),
        PrinterColumn("Version", ".spec.version"),
        PrinterColumn("Usage", ".status.usageCount", type="integer"),
        PrinterColumn("Status", ".status.validationStatus"),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
)
