"""CustomResourceDefinition documents from the registered kinds, and their YAML files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from runs_controller.api.crdgen.structs import JSONSchema, struct_schema
from runs_controller.api.schema import ResourceInfo

GENERATOR_ANNOTATION = "runs.bubustack.io/generated-by"
GENERATOR = "runs-controller manifests (from runs_controller/api)"

_API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object.\n"
    "Servers should convert recognized schemas to the latest internal value, and\n"
    "may reject unrecognized values.\n"
    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
    "api-conventions.md#resources"
)
_KIND_DOC = (
    "Kind is a string value representing the REST resource this object represents.\n"
    "Servers may infer this from the endpoint the client submits requests to.\n"
    "Cannot be updated.\n"
    "In CamelCase.\n"
    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
    "api-conventions.md#types-kinds"
)


def root_schema(root: type) -> JSONSchema:
    """The openAPIV3Schema of a kind: its Struct, with the standard apiVersion/kind/metadata."""
    schema = struct_schema(root)
    properties = schema["properties"]
    properties["apiVersion"] = {"description": _API_VERSION_DOC, "type": "string"}
    properties["kind"] = {"description": _KIND_DOC, "type": "string"}
    properties["metadata"] = {"type": "object"}
    return schema


def crd_document(root: type, info: ResourceInfo) -> dict[str, Any]:
    names: dict[str, Any] = {
        "kind": info.kind,
        "listKind": info.list_kind or f"{info.kind}List",
        "plural": info.plural,
        "singular": info.singular,
    }
    if info.short_names:
        names["shortNames"] = list(info.short_names)
    if info.categories:
        names["categories"] = list(info.categories)
    version: dict[str, Any] = {
        "name": info.version,
        "schema": {"openAPIV3Schema": root_schema(root)},
        "served": True,
        "storage": True,
    }
    if info.printer_columns:
        columns = []
        for column in info.printer_columns:
            entry: dict[str, Any] = {
                "jsonPath": column.json_path,
                "name": column.name,
                "type": column.type,
            }
            if column.description is not None:
                entry["description"] = column.description
            if column.priority is not None:
                entry["priority"] = column.priority
            if column.format is not None:
                entry["format"] = column.format
            columns.append(entry)
        version["additionalPrinterColumns"] = columns
    if info.selectable_fields:
        version["selectableFields"] = [{"jsonPath": path} for path in info.selectable_fields]
    if info.status_subresource:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "annotations": {GENERATOR_ANNOTATION: GENERATOR},
            "name": info.crd_name,
        },
        "spec": {
            "group": info.group,
            "names": names,
            "scope": info.scope,
            "versions": [version],
        },
    }


def file_name(info: ResourceInfo) -> str:
    """Same naming as controller-gen: <group>_<plural>.yaml."""
    return f"{info.group}_{info.plural}.yaml"


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as literal blocks (readable descriptions)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def render(document: dict[str, Any]) -> str:
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=True, width=100, allow_unicode=True)
    return "---\n" + body


def render_all(kinds: list[tuple[type, ResourceInfo]]) -> dict[str, str]:
    """File name -> YAML text for every kind."""
    return {file_name(info): render(crd_document(root, info)) for root, info in kinds}


def write_all(kinds: list[tuple[type, ResourceInfo]], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all(kinds).items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
