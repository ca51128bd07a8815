"""meta/v1 types: ObjectMeta, OwnerReference, Condition, ListMeta, Status, watch events."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Generic, TypeVar

import msgspec

from runs_controller.api.codec import decode
from runs_controller.api.schema import F, Int32, Int64, Struct

T = TypeVar("T")

CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class OwnerReference(Struct, frozen=True):
    """OwnerReference contains enough information to let you identify an owning object."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(Struct, frozen=True):
    """Standard object metadata.

    managedFields stay undecoded JSON bytes (`msgspec.Raw`): they are a large share of every
    object on the wire and the controllers never read them, so decoding them into dicts would
    cost CPU on every watch event (about a fifth of a StepRun's decode time). They re-encode
    byte for byte; `managed_field_entries()` decodes them on demand.
    """

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: datetime.datetime | None = None
    deletion_timestamp: datetime.datetime | None = None
    deletion_grace_period_seconds: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[OwnerReference] | None = None
    finalizers: list[str] | None = None
    managed_fields: msgspec.Raw = msgspec.Raw()

    def managed_field_entries(self) -> list[dict[str, Any]]:
        """The managedFields entries (field manager, operation, subresource, ...)."""
        if not self.managed_fields:
            return []
        return decode(self.managed_fields, list[dict[str, Any]])  # fieldsV1 can be 10,000 deep


class Resource(Struct, kw_only=True, frozen=True):
    """A top-level object: apiVersion, kind and metadata.

    Subclasses add `spec`/`status` and pass `kw_only=True` (msgspec does not inherit it), so a
    required `spec` may follow these optional fields. None of them is defaulted: an object built
    in Python gets apiVersion/kind from its ResourceInfo when it is written.
    """

    api_version: str | None = None
    kind: str | None = None
    metadata: ObjectMeta | None = None


class ListMeta(Struct, frozen=True):
    resource_version: str | None = None
    continue_: str | None = msgspec.field(default=None, name="continue")
    remaining_item_count: int | None = None


class Condition(Struct, frozen=True):
    """Condition contains details for one aspect of the current state of this API Resource."""

    type: Annotated[str, F(max_length=316, pattern=CONDITION_TYPE_PATTERN)]
    """type of condition in CamelCase or in foo.example.com/CamelCase."""
    status: Annotated[str, F(enum=("True", "False", "Unknown"))]
    """status of the condition, one of True, False, Unknown."""
    last_transition_time: datetime.datetime
    """lastTransitionTime is the last time the condition transitioned from one status to
    another."""
    reason: Annotated[str, F(min_length=1, max_length=1024, pattern=CONDITION_REASON_PATTERN)]
    """reason contains a programmatic identifier indicating the reason for the condition's last
    transition."""
    message: Annotated[str, F(max_length=32768)]
    """message is a human readable message indicating details about the transition."""
    observed_generation: Annotated[Int64, F(minimum=0)] | None = None
    """observedGeneration represents the .metadata.generation that the condition was set based
    upon."""


class StatusCause(Struct, frozen=True):
    reason: str | None = None
    message: str | None = None
    field: str | None = None


class StatusDetails(Struct, frozen=True):
    name: str | None = None
    group: str | None = None
    kind: str | None = None
    uid: str | None = None
    causes: list[StatusCause] | None = None
    retry_after_seconds: Int32 | None = None


class Status(Struct, frozen=True):
    """The apiserver's error (and some success) body: kind Status."""

    api_version: str | None = None
    kind: str | None = None
    metadata: ListMeta | None = None
    status: str | None = None
    message: str | None = None
    reason: str | None = None
    details: StatusDetails | None = None
    code: int | None = None


class WatchEvent(Struct, Generic[T], frozen=True):
    """One line of a watch stream. `object` is a Status when type is ERROR, hence left raw."""

    type: str
    object: msgspec.Raw


class TypedList(Struct, Generic[T], frozen=True):
    """A LIST response: `items` decoded as T."""

    api_version: str | None = None
    kind: str | None = None
    metadata: ListMeta = msgspec.field(default_factory=ListMeta)
    items: list[T] = msgspec.field(default_factory=list)
