"""Kubernetes' own schemas for the core types our CRDs embed (Affinity, Toleration, Probe, ...).

They come from the pinned kube-apiserver's `/openapi/v3` and are kept, as served, in a snapshot
file next to this module (only the closure of the types we embed). `refresh_snapshot` rewrites
it from a running apiserver; an integration test fails when the snapshot is stale.

`structural_schema(name)` turns one definition into what controller-gen would inline into a CRD:
references resolved, `IntOrString`/`Quantity`/`Time` spelled out, and everything a CRD schema
may not carry (patch strategies, GVK extensions) dropped. Enums are dropped too: controller-gen
does not emit the `+enum` values of k8s.io/api types, so the reference CRDs accept any string
there, and so must ours.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Protocol


class JsonGetter(Protocol):
    """Anything that GETs an apiserver path and returns the decoded JSON (the test harness's
    REST client does); the API layer itself does no I/O."""

    def get(self, path: str) -> Any: ...


KUBERNETES_VERSION = "v1.36.3"
SNAPSHOT = Path(__file__).with_name(f"k8s-openapi-{KUBERNETES_VERSION}.json")

# The k8s.io/api types that the bubustack API embeds.
ROOTS: dict[str, str] = {
    "io.k8s.api.core.v1.Affinity": "/openapi/v3/api/v1",
    "io.k8s.api.core.v1.EmptyDirVolumeSource": "/openapi/v3/api/v1",
    "io.k8s.api.core.v1.LocalObjectReference": "/openapi/v3/api/v1",
    "io.k8s.api.core.v1.Probe": "/openapi/v3/api/v1",
    "io.k8s.api.core.v1.Toleration": "/openapi/v3/api/v1",
    "io.k8s.api.rbac.v1.PolicyRule": "/openapi/v3/apis/rbac.authorization.k8s.io/v1",
}

_REF_PREFIX = "#/components/schemas/"
_QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?"
    r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_SPECIAL: dict[str, dict[str, Any]] = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": _QUANTITY_PATTERN,
        "x-kubernetes-int-or-string": True,
    },
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": {"type": "string", "format": "date-time"},
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": {"type": "string", "format": "date-time"},
    "io.k8s.apimachinery.pkg.runtime.RawExtension": {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    },
}
# Keys a CRD structural schema may carry (apiextensions JSONSchemaProps), minus enum (see above).
_ALLOWED_KEYS = {
    "description",
    "type",
    "format",
    "properties",
    "additionalProperties",
    "items",
    "required",
    "default",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "nullable",
    "anyOf",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
}
_ENUM_NOTE = re.compile(r"\n\nPossible enum values:.*\Z", re.DOTALL)


def _ref_name(ref: str) -> str:
    if not ref.startswith(_REF_PREFIX):
        raise ValueError(f"unsupported $ref {ref!r}")
    return ref[len(_REF_PREFIX) :]


def _closure(schemas: dict[str, Any], roots: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in found or name in _SPECIAL:
            continue
        definition = schemas[name]
        found[name] = definition
        pending.extend(_ref_name(ref) for ref in _refs(definition))
    return dict(sorted(found.items()))


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def snapshot_from_server(client: JsonGetter) -> dict[str, Any]:
    """The snapshot document, read from a running apiserver."""
    version = client.get("/version")["gitVersion"]
    schemas: dict[str, Any] = {}
    for path in sorted(set(ROOTS.values())):
        schemas.update(client.get(path)["components"]["schemas"])
    paths = ", ".join(sorted(set(ROOTS.values())))
    return {
        "source": f"kube-apiserver {version} /openapi/v3 ({paths})",
        "schemas": _closure(schemas, sorted(ROOTS)),
    }


def render_snapshot(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def refresh_snapshot(client: JsonGetter, path: Path = SNAPSHOT) -> Path:
    """Rewrite the snapshot file from a running apiserver of the pinned version."""
    document = snapshot_from_server(client)
    if KUBERNETES_VERSION not in document["source"]:
        raise ValueError(f"expected kube-apiserver {KUBERNETES_VERSION}: {document['source']}")
    path.write_text(render_snapshot(document))
    return path


@cache
def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = json.loads(SNAPSHOT.read_text())["schemas"]
    return schemas


def structural_schema(name: str) -> dict[str, Any]:
    """The CRD-ready schema of one Kubernetes definition, references inlined."""
    return _convert({"$ref": _REF_PREFIX + name})


def _is_zero_default(value: Any) -> bool:
    return not isinstance(value, bool) and value in ("", 0)


def _convert(node: dict[str, Any], implicit: bool = False) -> dict[str, Any]:
    """`implicit`: the node is a list item, a map value or a required property, whose Go
    zero value openapi-gen writes as `default` although no `+default` marker asks for it."""
    node = dict(node)
    if "$ref" in node or (
        "allOf" in node and len(node["allOf"]) == 1 and "$ref" in node["allOf"][0]
    ):
        ref = node.pop("$ref", None) or node.pop("allOf")[0]["$ref"]
        name = _ref_name(ref)
        target = copy.deepcopy(_SPECIAL[name]) if name in _SPECIAL else _convert(_schemas()[name])
        # A struct reached through a field: the field's description wins; the `default: {}`
        # that openapi-gen adds for non-pointer struct fields is not something controller-gen
        # emits.
        if node.get("default") == {}:
            node.pop("default")
        target.update({key: value for key, value in node.items() if key in _ALLOWED_KEYS})
        node = target
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _ALLOWED_KEYS:
            continue
        if key == "default" and implicit and _is_zero_default(value):
            # Not a `+default` marker (which controller-gen would honour), so not emitted.
            continue
        if key == "properties":
            required = set(node.get("required", []))
            out[key] = {prop: _convert(schema, prop in required) for prop, schema in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _convert(value, implicit=True)
        elif key == "anyOf":
            out[key] = [_convert(option) for option in value]
        elif key == "description":
            out[key] = _ENUM_NOTE.sub("", value)
        else:
            out[key] = copy.deepcopy(value)
    return out
