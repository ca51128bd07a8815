from __future__ import annotations

import datetime
from typing import Annotated, Any

import msgspec

from runs_controller.api.codec import MicroTime
from runs_controller.api.crdgen.k8s_openapi import structural_schema
from runs_controller.api.crdgen.structs import schema_for, struct_schema
from runs_controller.api.schema import F, Int32, Int64, Rule, Struct


class Inner(Struct, frozen=True):
    """Inner is documented by its class docstring."""

    name: Annotated[str, F(min_length=1, pattern="^[a-z]+$")]
    """The name, documented by an attribute docstring."""


class Outer(Struct, frozen=True):
    """Outer has every kind of field."""

    __schema__ = F(rules=(Rule(rule="has(self.inner)", message="inner is required"),))

    inner: Inner
    """Field docs win over the type's docs."""
    count: Annotated[Int32, F(minimum=0, maximum=10, default=3)] | None = None
    big: Int64 | None = None
    plain: int | None = None
    ratio: float | None = None
    flag: bool | None = None
    when: datetime.datetime | None = None
    micro: MicroTime | None = None
    tags: Annotated[list[str], F(max_items=5, items=F(max_length=8))] | None = None
    labels: Annotated[dict[str, str], F(values=F(max_length=63))] | None = None
    payload: dict[str, Any] | None = None
    payloads: dict[str, dict[str, Any]] | None = None
    forced: Annotated[str | None, F(required=True)] = None
    if_: str | None = msgspec.field(default=None, name="if")
    raw: Annotated[dict[str, Any], F(schema={"type": "string", "format": "byte"})] | None = None
    toleration: Annotated[dict[str, Any], F(core="io.k8s.api.core.v1.Toleration")] | None = None


def test_required_fields_are_the_ones_without_defaults_plus_forced_ones() -> None:
    schema = struct_schema(Outer)
    assert schema["required"] == ["forced", "inner"]
    assert schema["type"] == "object"


def test_descriptions_come_from_docstrings() -> None:
    schema = struct_schema(Outer)
    assert schema["description"] == "Outer has every kind of field."
    inner = schema["properties"]["inner"]
    assert inner["description"] == "Field docs win over the type's docs."
    assert inner["properties"]["name"]["description"] == (
        "The name, documented by an attribute docstring."
    )


def test_scalar_types_and_formats() -> None:
    props = struct_schema(Outer)["properties"]
    assert props["count"] == {
        "type": "integer",
        "format": "int32",
        "minimum": 0,
        "maximum": 10,
        "default": 3,
    }
    assert props["big"] == {"type": "integer", "format": "int64"}
    assert props["plain"] == {"type": "integer"}
    assert props["ratio"] == {"type": "number"}
    assert props["flag"] == {"type": "boolean"}
    assert props["when"] == {"type": "string", "format": "date-time"}
    assert props["micro"] == {"type": "string", "format": "date-time"}


def test_lists_maps_and_free_form_objects() -> None:
    props = struct_schema(Outer)["properties"]
    assert props["tags"] == {
        "type": "array",
        "maxItems": 5,
        "items": {"type": "string", "maxLength": 8},
    }
    assert props["labels"] == {
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": 63},
    }
    preserved = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert props["payload"] == preserved
    assert props["payloads"] == {"type": "object", "additionalProperties": preserved}


def test_renamed_fields_use_their_wire_names() -> None:
    props = struct_schema(Outer)["properties"]
    assert "if" in props and "if_" not in props and "ifField" not in props


def test_verbatim_and_core_schemas() -> None:
    props = struct_schema(Outer)["properties"]
    assert props["raw"] == {"type": "string", "format": "byte"}
    assert props["toleration"] == structural_schema("io.k8s.api.core.v1.Toleration")


def test_class_rules_become_validations() -> None:
    assert struct_schema(Outer)["x-kubernetes-validations"] == [
        {"rule": "has(self.inner)", "message": "inner is required"}
    ]


def test_markers_merge_outer_over_inner_and_rules_accumulate() -> None:
    annotated = Annotated[
        Annotated[str, F(max_length=5, rules=(Rule("a"),))],
        F(max_length=3, rules=(Rule("b"),)),
    ]
    assert schema_for(annotated) == {
        "type": "string",
        "maxLength": 3,
        "x-kubernetes-validations": [{"rule": "a"}, {"rule": "b"}],
    }


def test_core_schemas_are_structural() -> None:
    affinity = structural_schema("io.k8s.api.core.v1.Affinity")
    text = repr(affinity)
    assert "$ref" not in text and "allOf" not in text
    assert "x-kubernetes-patch-strategy" not in text
    assert "enum" not in text
    term = affinity["properties"]["podAffinity"]["properties"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["type"] == "array"
    assert term["x-kubernetes-list-type"] == "atomic"
    assert "labelSelector" in term["items"]["properties"]


def test_int_or_string_is_spelled_out() -> None:
    probe = structural_schema("io.k8s.api.core.v1.Probe")
    port = probe["properties"]["httpGet"]["properties"]["port"]
    assert port["x-kubernetes-int-or-string"] is True
    assert port["anyOf"] == [{"type": "integer"}, {"type": "string"}]
