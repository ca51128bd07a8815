"""Typed cross-resource references (bobrapet `pkg/refs`)."""

from __future__ import annotations

from typing import Annotated

from runs_controller.api.schema import F, Struct

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

Name = Annotated[str, F(min_length=1, max_length=253, pattern=DNS_LABEL_PATTERN)]
Namespace = Annotated[str, F(max_length=63, pattern=DNS_LABEL_PATTERN)]
Version = Annotated[str, F(max_length=64)]


class ObjectReference(Struct, frozen=True):
    """ObjectReference represents a typed reference to a Kubernetes object."""

    name: Name
    """Name of the referenced object. Must be a valid DNS-1123 label."""
    namespace: Namespace | None = None
    """Namespace of the referenced object. If empty, defaults to same namespace as the
    referencing object."""


class StoryReference(ObjectReference, frozen=True):
    """StoryReference represents a reference to a Story resource."""

    version: Version | None = None
    """Version pins the reference to a specific Story version."""
    uid: str | None = None
    """UID of the referenced Story for drift detection. Set by controllers."""


class EngramReference(ObjectReference, frozen=True):
    """EngramReference provides a structured reference to an Engram."""

    version: Version | None = None
    """Version pins the reference to a specific Engram version."""
    uid: str | None = None


class ImpulseReference(ObjectReference, frozen=True):
    """ImpulseReference provides a structured reference to an Impulse."""

    version: Version | None = None
    """Version pins the reference to a specific Impulse version."""
    uid: str | None = None


class StoryRunReference(ObjectReference, frozen=True):
    """StoryRunReference provides a structured reference to a StoryRun."""

    uid: str | None = None
    """UID of the referenced StoryRun for drift detection. Set by controllers."""


class StepRunReference(ObjectReference, frozen=True):
    """StepRunReference provides a structured reference to a StepRun."""

    uid: str | None = None
    """UID of the referenced StepRun for drift detection."""


class EngramTemplateReference(Struct, frozen=True):
    """EngramTemplateReference references a cluster-scoped EngramTemplate (no namespace)."""

    name: Annotated[str, F(min_length=1, max_length=253)]
    """Name of the referenced EngramTemplate."""
    version: Version | None = None
    """Version pins the reference to a specific EngramTemplate version."""
    uid: str | None = None
    """UID of the referenced EngramTemplate for drift detection."""


class ImpulseTemplateReference(Struct, frozen=True):
    """ImpulseTemplateReference references a cluster-scoped ImpulseTemplate (no namespace)."""

    name: Annotated[str, F(min_length=1, max_length=253)]
    version: Version | None = None
    uid: str | None = None


class TemplateReference(Struct, frozen=True):
    """TemplateReference represents a reference to a cluster-scoped template."""

    name: Name
    uid: str | None = None
