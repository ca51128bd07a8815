"""OpenAPI v3 (CRD structural) schemas from msgspec Structs and their `F(...)` markers."""

from __future__ import annotations

import ast
import datetime
import inspect
import itertools
import textwrap
import types
import typing
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

import msgspec

from runs_controller.api.crdgen.k8s_openapi import structural_schema
from runs_controller.api.schema import UNSET, F, Struct

JSONSchema = dict[str, Any]


def _merge(markers: list[F]) -> F:
    """Fold markers left to right; a later marker's set values win, rules accumulate."""
    merged = F()
    for marker in markers:
        updates: dict[str, Any] = {}
        for spec in dataclass_fields(F):
            value = getattr(marker, spec.name)
            if spec.name == "rules":
                if value:
                    updates["rules"] = merged.rules + value
            elif spec.name == "default":
                if value is not UNSET:
                    updates["default"] = value
            elif value is not None:
                updates[spec.name] = value
        merged = replace(merged, **updates)
    return merged


def _unwrap(tp: Any, markers: list[F]) -> tuple[Any, list[F]]:
    """Strip Annotated and Optional layers, collecting markers (inner ones first)."""
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            base, *extras = get_args(tp)
            inner_markers = [extra for extra in extras if isinstance(extra, F)]
            tp, markers = base, inner_markers + markers
            continue
        if origin in (Union, types.UnionType):
            options = [arg for arg in get_args(tp) if arg is not type(None)]
            if len(options) != 1:
                raise TypeError(f"unions other than Optional are not supported: {tp!r}")
            tp = options[0]
            continue
        return tp, markers


@cache
def attribute_docstrings(cls: type) -> dict[str, str]:
    """Docstrings written under class attributes (`x: int` then `\"\"\"doc\"\"\"`)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    tree = ast.parse(source)
    class_def = tree.body[0]
    if not isinstance(class_def, ast.ClassDef):
        return {}
    docs: dict[str, str] = {}
    body = class_def.body
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _description(cls: type) -> str | None:
    doc = cls.__doc__
    if not doc or doc == Struct.__doc__ or cls.__doc__ == msgspec.Struct.__doc__:
        return None
    return inspect.cleandoc(doc)


def _apply(schema: JSONSchema, marker: F) -> JSONSchema:
    simple = {
        "description": marker.description,
        "format": marker.format,
        "pattern": marker.pattern,
        "minLength": marker.min_length,
        "maxLength": marker.max_length,
        "minimum": marker.minimum,
        "maximum": marker.maximum,
        "exclusiveMinimum": marker.exclusive_minimum,
        "exclusiveMaximum": marker.exclusive_maximum,
        "minItems": marker.min_items,
        "maxItems": marker.max_items,
        "uniqueItems": marker.unique_items,
        "minProperties": marker.min_properties,
        "maxProperties": marker.max_properties,
        "nullable": marker.nullable,
        "type": marker.type,
        "x-kubernetes-preserve-unknown-fields": marker.preserve_unknown,
        "x-kubernetes-embedded-resource": marker.embedded_resource,
        "x-kubernetes-int-or-string": marker.int_or_string,
        "x-kubernetes-list-type": marker.list_type,
        "x-kubernetes-map-type": marker.map_type,
    }
    for key, value in simple.items():
        if value is not None:
            schema[key] = value
    if marker.enum is not None:
        schema["enum"] = list(marker.enum)
    if marker.list_map_keys is not None:
        schema["x-kubernetes-list-map-keys"] = list(marker.list_map_keys)
    if marker.default is not UNSET:
        schema["default"] = marker.default
    if marker.rules:
        schema["x-kubernetes-validations"] = [
            *schema.get("x-kubernetes-validations", []),
            *(rule.to_schema() for rule in marker.rules),
        ]
    return schema


def schema_for(tp: Any, markers: list[F] | None = None) -> JSONSchema:
    """The schema of a Python type (a Struct, a scalar, list, dict), markers applied."""
    base, collected = _unwrap(tp, list(markers or []))
    marker = _merge(collected)
    if marker.schema is not None:
        return _apply(dict(marker.schema), replace(marker, schema=None))
    if marker.core is not None:
        return _apply(structural_schema(marker.core), marker)
    return _apply(_base_schema(base, marker), replace(marker, items=None, values=None))


def _base_schema(tp: Any, marker: F) -> JSONSchema:
    origin = get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return struct_schema(tp)
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if isinstance(tp, type) and issubclass(tp, datetime.datetime):
        return {"type": "string", "format": "date-time"}
    if origin is Literal:
        return {"type": "string", "enum": list(get_args(tp))}
    if origin is list:
        (item,) = get_args(tp)
        item_markers = [marker.items] if marker.items is not None else []
        return {"type": "array", "items": schema_for(item, item_markers)}
    if origin is dict:
        key, value = get_args(tp)
        if key is not str:
            raise TypeError(f"map keys must be str: {tp!r}")
        if value is Any:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        value_markers = [marker.values] if marker.values is not None else []
        return {"type": "object", "additionalProperties": schema_for(value, value_markers)}
    if tp is Any or tp is msgspec.Raw:
        return {"x-kubernetes-preserve-unknown-fields": True}
    raise TypeError(f"no schema for type {tp!r}")


def struct_schema(cls: type[msgspec.Struct]) -> JSONSchema:
    """An object schema: one property per field, required fields listed, class markers applied."""
    hints = typing.get_type_hints(cls, include_extras=True)
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):  # inherited fields keep their docs; subclasses override
        if isinstance(base, type) and issubclass(base, msgspec.Struct):
            docs.update(attribute_docstrings(base))
    properties: dict[str, JSONSchema] = {}
    required: list[str] = []
    for info in msgspec.structs.fields(cls):
        annotation = hints[info.name]
        _, field_markers = _unwrap(annotation, [])
        field_marker = _merge(field_markers)
        field_schema = schema_for(annotation)
        doc = docs.get(info.name)
        if doc is not None and field_marker.description is None:
            field_schema["description"] = doc
        properties[info.encode_name] = field_schema
        is_required = info.required if field_marker.required is None else field_marker.required
        if is_required:
            required.append(info.encode_name)
    schema: JSONSchema = {"type": "object"}
    if properties:
        schema["properties"] = properties
    if required:
        schema["required"] = sorted(required)
    description = _description(cls)
    if description:
        schema["description"] = description
    class_marker = getattr(cls, "__schema__", None)
    if isinstance(class_marker, F):
        schema = _apply(schema, class_marker)
    return schema
