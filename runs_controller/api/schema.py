"""Schema markers: what kubebuilder markers are to Go types, `F(...)` is to our Structs.

A field is declared once, as a msgspec Struct attribute, and annotated with `F(...)` for what
only the CRD needs (bounds, patterns, enums, CEL rules, list semantics, defaults). msgspec ignores
these annotations when decoding (objects on the wire were already validated by the apiserver,
and a controller must be able to read whatever the server stored); `runs_controller.api.crdgen`
reads them to write the CRD schemas. The attribute docstring becomes the field description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import msgspec

ListType = Literal["atomic", "set", "map"]
MapType = Literal["atomic", "granular"]


class _Unset:
    """Sentinel for "no default" (None is a legal default in a schema)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class Rule:
    """One CEL rule (`x-kubernetes-validations` entry)."""

    rule: str
    message: str | None = None
    message_expression: str | None = None
    reason: str | None = None
    field_path: str | None = None
    optional_old_self: bool | None = None

    def to_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule}
        if self.message is not None:
            out["message"] = self.message
        if self.message_expression is not None:
            out["messageExpression"] = self.message_expression
        if self.reason is not None:
            out["reason"] = self.reason
        if self.field_path is not None:
            out["fieldPath"] = self.field_path
        if self.optional_old_self is not None:
            out["optionalOldSelf"] = self.optional_old_self
        return out


@dataclass(frozen=True, kw_only=True, eq=False)  # eq=False: hash by identity (dict values)
class F:
    """CRD schema markers for one field (or, as `__schema__`, for a whole Struct)."""

    description: str | None = None
    enum: tuple[Any, ...] | None = None
    format: str | None = None
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    exclusive_minimum: bool | None = None
    exclusive_maximum: bool | None = None
    min_items: int | None = None
    max_items: int | None = None
    unique_items: bool | None = None
    min_properties: int | None = None
    max_properties: int | None = None
    default: Any = UNSET
    nullable: bool | None = None
    required: bool | None = None
    """Override required-ness (e.g. a Go field without omitempty that Python leaves optional)."""
    preserve_unknown: bool | None = None
    embedded_resource: bool | None = None
    int_or_string: bool | None = None
    list_type: ListType | None = None
    list_map_keys: tuple[str, ...] | None = None
    map_type: MapType | None = None
    rules: tuple[Rule, ...] = ()
    core: str | None = None
    """Inline this Kubernetes OpenAPI definition (e.g. "io.k8s.api.core.v1.Affinity")."""
    schema: dict[str, Any] | None = None
    """Use this schema verbatim (escape hatch for shapes the type system cannot express)."""
    items: F | None = None
    """Markers for the items of a list (e.g. a pattern on each string)."""
    values: F | None = None
    """Markers for the values of a map."""
    type: str | None = None
    """Override the JSON type (e.g. "object" for a free-form payload)."""


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    description: str | None = None
    priority: int | None = None
    format: str | None = None


@dataclass(frozen=True)
class ResourceInfo:
    """Kind-level CRD metadata (kubebuilder's resource/printcolumn/selectablefield markers)."""

    group: str
    kind: str
    plural: str
    singular: str
    scope: Literal["Namespaced", "Cluster"] = "Namespaced"
    version: str = "v1alpha1"
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = ()
    selectable_fields: tuple[str, ...] = ()
    status_subresource: bool = True
    list_kind: str = field(default="")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"


class Struct(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    """Base of every API Struct: camelCase JSON names, defaults omitted, unknown fields ignored.

    `omit_defaults` makes an encoded object carry only the fields we set, which is exactly what a
    server-side apply should send. Subclasses may set `__schema__` for object-level markers.
    (msgspec does not inherit `kw_only`, so subclasses list required fields first.)
    """

    __schema__: ClassVar[F | None] = None


# Integer widths matter to the CRD (format int32 / int64), not to Python.
Int32 = Annotated[int, F(format="int32")]
Int64 = Annotated[int, F(format="int64")]
