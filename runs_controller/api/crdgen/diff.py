"""Compare two sets of CRDs, kind by kind, field by field (`runs-controller crd-diff A B`).

Everything that changes what the apiserver accepts, stores or prints is compared: types,
formats, enums, bounds, patterns, defaults, required-ness, nullability, list/map semantics,
preserve-unknown, int-or-string, CEL rules, names, scope, printer columns, selectable fields,
subresources. Descriptions are not (they are documentation).

An allow-list (YAML: a list of {kind, path, aspect, ours, reason}) names intentional
differences; `path`, `aspect` and `ours` (our side's value, e.g. a CEL rule's JSON) may use shell
wildcards (`*`). Entries that match nothing are reported as stale, so
the list cannot rot.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_SCALAR_KEYS = (
    "type",
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "default",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "anyOf",
    "allOf",
    "oneOf",
    "not",
)


@dataclass(frozen=True, order=True)
class Difference:
    kind: str
    path: str
    aspect: str
    ours: str
    theirs: str

    def __str__(self) -> str:
        return f"{self.kind} {self.path}: {self.aspect}: ours={self.ours} reference={self.theirs}"


@dataclass(frozen=True)
class AllowEntry:
    kind: str
    path: str
    aspect: str
    reason: str
    ours: str = "*"

    def matches(self, difference: Difference) -> bool:
        return (
            _glob(self.kind, difference.kind)
            and _glob(self.path, difference.path)
            and _glob(self.aspect, difference.aspect)
            and _glob(self.ours, difference.ours)
        )


def _glob(pattern: str, text: str) -> bool:
    """`*` matches anything; every other character is literal (paths contain `[*]`)."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


def _show(value: Any) -> str:
    if value is None:
        return "-"
    return json.dumps(value, sort_keys=True)


def load_crds(directory: Path) -> dict[str, dict[str, Any]]:
    """kind -> CRD document, for every CRD in the directory's *.yaml files."""
    crds: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                crds[document["spec"]["names"]["kind"]] = document
    return crds


def _rule_key(rule: dict[str, Any]) -> str:
    return json.dumps(rule, sort_keys=True)


def diff_schemas(kind: str, path: str, ours: Any, theirs: Any) -> list[Difference]:
    """Differences between two schema nodes, recursively."""
    found: list[Difference] = []
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        if ours != theirs:
            found.append(Difference(kind, path, "schema", _show(ours), _show(theirs)))
        return found
    for key in _SCALAR_KEYS:
        a, b = ours.get(key), theirs.get(key)
        if a != b:
            found.append(Difference(kind, path, key, _show(a), _show(b)))
    enum_a, enum_b = ours.get("enum"), theirs.get("enum")
    if (enum_a is None) != (enum_b is None) or (
        enum_a is not None and sorted(map(_show, enum_a)) != sorted(map(_show, enum_b or []))
    ):
        found.append(Difference(kind, path, "enum", _show(enum_a), _show(enum_b)))
    rules_a = {_rule_key(r): r for r in ours.get("x-kubernetes-validations", [])}
    rules_b = {_rule_key(r): r for r in theirs.get("x-kubernetes-validations", [])}
    found.extend(
        Difference(kind, path, "rule", key, "-") for key in sorted(rules_a.keys() - rules_b.keys())
    )
    found.extend(
        Difference(kind, path, "rule", "-", key) for key in sorted(rules_b.keys() - rules_a.keys())
    )
    props_a, props_b = ours.get("properties", {}), theirs.get("properties", {})
    required_a, required_b = set(ours.get("required", [])), set(theirs.get("required", []))
    for name in sorted(props_a.keys() | props_b.keys() | required_a | required_b):
        child = f"{path}.{name}"
        if (name in required_a) != (name in required_b):
            ours_required, theirs_required = str(name in required_a), str(name in required_b)
            found.append(Difference(kind, child, "required", ours_required, theirs_required))
        if name not in props_a and name in props_b:
            found.append(Difference(kind, child, "field", "absent", "present"))
        elif name in props_a and name not in props_b:
            found.append(Difference(kind, child, "field", "present", "absent"))
        elif name in props_a:
            found.extend(diff_schemas(kind, child, props_a[name], props_b[name]))
    if "items" in ours or "items" in theirs:
        found.extend(diff_schemas(kind, f"{path}[*]", ours.get("items"), theirs.get("items")))
    extra_a, extra_b = ours.get("additionalProperties"), theirs.get("additionalProperties")
    if extra_a is not None or extra_b is not None:
        found.extend(diff_schemas(kind, f"{path}{{*}}", extra_a, extra_b))
    return found


def _version_index(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {version["name"]: version for version in crd["spec"]["versions"]}


def diff_crds(ours: dict[str, Any], theirs: dict[str, Any]) -> list[Difference]:
    """Differences between two CRDs of the same kind."""
    kind = theirs["spec"]["names"]["kind"]
    found: list[Difference] = []

    def compare(path: str, a: Any, b: Any) -> None:
        if a != b:
            found.append(Difference(kind, path, "value", _show(a), _show(b)))

    compare("metadata.name", ours["metadata"]["name"], theirs["metadata"]["name"])
    compare("spec.group", ours["spec"]["group"], theirs["spec"]["group"])
    compare("spec.scope", ours["spec"]["scope"], theirs["spec"]["scope"])
    names_a, names_b = ours["spec"]["names"], theirs["spec"]["names"]
    for key in sorted(names_a.keys() | names_b.keys()):
        compare(f"spec.names.{key}", names_a.get(key), names_b.get(key))
    versions_a, versions_b = _version_index(ours), _version_index(theirs)
    for name in sorted(versions_a.keys() | versions_b.keys()):
        prefix = f"spec.versions[{name}]"
        a, b = versions_a.get(name), versions_b.get(name)
        if a is None or b is None:
            compare(prefix, a is not None, b is not None)
            continue
        for key in ("served", "storage", "subresources", "selectableFields", "deprecated"):
            compare(f"{prefix}.{key}", a.get(key), b.get(key))
        columns_a = [_column(c) for c in a.get("additionalPrinterColumns", [])]
        columns_b = [_column(c) for c in b.get("additionalPrinterColumns", [])]
        compare(f"{prefix}.additionalPrinterColumns", columns_a, columns_b)
        found.extend(
            diff_schemas(
                kind,
                "",
                a.get("schema", {}).get("openAPIV3Schema"),
                b.get("schema", {}).get("openAPIV3Schema"),
            )
        )
    return found


def _column(column: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in column.items() if key != "description"}


def diff_directories(ours: Path, theirs: Path) -> list[Difference]:
    crds_a, crds_b = load_crds(ours), load_crds(theirs)
    found: list[Difference] = []
    for kind in sorted(crds_a.keys() | crds_b.keys()):
        if kind not in crds_a or kind not in crds_b:
            found.append(Difference(kind, "", "crd", str(kind in crds_a), str(kind in crds_b)))
            continue
        found.extend(diff_crds(crds_a[kind], crds_b[kind]))
    return sorted(found)


def load_allow_list(path: Path) -> list[AllowEntry]:
    entries = yaml.safe_load(path.read_text()) or []
    allowed = []
    for entry in entries:
        if not entry.get("reason"):
            raise ValueError(f"{path}: every entry needs a reason: {entry}")
        allowed.append(
            AllowEntry(
                kind=entry["kind"],
                path=entry.get("path", "*"),
                aspect=entry.get("aspect", "*"),
                reason=entry["reason"],
                ours=entry.get("ours", "*"),
            )
        )
    return allowed


def partition(
    differences: list[Difference], allowed: list[AllowEntry]
) -> tuple[list[Difference], list[Difference], list[AllowEntry]]:
    """(unexplained differences, allowed differences, stale allow-list entries)."""
    unexplained, explained = [], []
    used: set[int] = set()
    for difference in differences:
        hits = [index for index, entry in enumerate(allowed) if entry.matches(difference)]
        if hits:
            explained.append(difference)
            used.update(hits)
        else:
            unexplained.append(difference)
    stale = [entry for index, entry in enumerate(allowed) if index not in used]
    return unexplained, explained, stale
