"""Offline JSON schemas for kubeconform, from the pinned kube-apiserver's own OpenAPI v3.

Why: kubeconform downloads its schemas from GitHub by default, and CI has no internet. The
local control plane serves the exact OpenAPI of the Kubernetes version we pin, so the schemas
come from there: one file per kind (`<kind>-<group>-<version>.json`, kubeconform's
`{{ .ResourceKind }}{{ .KindSuffix }}` naming), each self-contained (its closure under
`definitions`), IntOrString and Quantity spelled out as JSON Schema (OpenAPI says `string`),
and every object with properties closed (`additionalProperties: false`, as openapi2jsonschema's
strict schemas), so a misspelled field fails instead of passing unnoticed.

    python -m runs_controller.testing.kubeconform_schemas DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from runs_controller.testing.controlplane import ControlPlane

GROUP_VERSIONS = (
    "api/v1",
    "apis/apps/v1",
    "apis/batch/v1",
    "apis/policy/v1",
    "apis/rbac.authorization.k8s.io/v1",
    "apis/coordination.k8s.io/v1",
    "apis/apiextensions.k8s.io/v1",
)
"""The group-versions whose kinds the chart renders (or may render)."""

_REF = "#/components/schemas/"
_INT_OR_STRING = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
_SPECIAL: dict[str, dict[str, Any]] = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": _INT_OR_STRING,
    "io.k8s.apimachinery.pkg.api.resource.Quantity": _INT_OR_STRING,
}


def _rewrite(node: Any) -> Any:
    """`#/components/schemas/X` -> `#/definitions/X`, the special types inlined, objects closed."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            name = ref.removeprefix(_REF)
            if name in _SPECIAL:
                return dict(_SPECIAL[name])
            return {**{k: _rewrite(v) for k, v in node.items()}, "$ref": f"#/definitions/{name}"}
        out = {key: _rewrite(value) for key, value in node.items()}
        if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
            out["additionalProperties"] = False  # strict: a misspelled field is an error
        return out
    if isinstance(node, list):
        return [_rewrite(value) for value in node]
    return node


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        own = {ref.removeprefix(_REF)} if isinstance(ref, str) else set()
        return own.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def _closure(schemas: dict[str, Any], root: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    pending = [root]
    while pending:
        name = pending.pop()
        if name in found or name in _SPECIAL:
            continue
        found[name] = schemas[name]
        pending.extend(_refs(schemas[name]))
    return found


def file_name(group: str, version: str, kind: str) -> str:
    """kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json`: `deployment-apps-v1.json`,
    `clusterrole-rbac-v1.json` (the group's first label), `service-v1.json` (core)."""
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def kind_schemas(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """File name -> schema for every kind of one /openapi/v3 group-version document."""
    schemas: dict[str, Any] = document["components"]["schemas"]
    out: dict[str, dict[str, Any]] = {}
    for name, schema in schemas.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            definitions = {key: _rewrite(value) for key, value in _closure(schemas, name).items()}
            out[file_name(gvk["group"], gvk["version"], gvk["kind"])] = {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "$ref": f"#/definitions/{name}",
                "definitions": definitions,
            }
    return out


def write_schemas(directory: Path) -> list[Path]:
    """Start a control plane, read its OpenAPI and write one schema file per kind."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with ControlPlane() as plane:
        for group_version in GROUP_VERSIONS:
            document = plane.admin.get(f"/openapi/v3/{group_version}")
            for name, schema in kind_schemas(document).items():
                path = directory / name
                path.write_text(json.dumps(schema, sort_keys=True) + "\n")
                written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m runs_controller.testing.kubeconform_schemas DIR\n")
        return 2
    written = write_schemas(Path(args[0]))
    sys.stdout.write(f"wrote {len(written)} schemas to {args[0]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
