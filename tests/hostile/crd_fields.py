"""Every field of a kind's spec, read from our generated CRDs, so that the wrong-type and limit
mutations cover the whole schema (a field added to the API is fuzzed without touching the tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from tests.paths import CRD_DIR

CRD_FILES = {
    "Story": "bubustack.io_stories.yaml",
    "StoryRun": "runs.bubustack.io_storyruns.yaml",
    "StoryTrigger": "runs.bubustack.io_storytriggers.yaml",
    "EngramTemplate": "catalog.bubustack.io_engramtemplates.yaml",
}

Path = tuple[str | int, ...]
"""A field path below `spec`: keys, 0 for the first item of a list."""

MAP_KEY = "k"
"""The key used to reach the values of a map (additionalProperties)."""


@dataclass(frozen=True)
class Field:
    """One node of the spec schema, reachable from a minimal object."""

    path: Path
    schema: dict[str, Any]
    creatable: bool
    """Every object created on the way to it has no required fields (so setting a valid value
    there keeps the object valid, except for CEL rules)."""

    @property
    def dotted(self) -> str:
        """The path as the apiserver prints it: spec.steps[0].name."""
        out = "spec"
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else f".{part}"
        return out


@cache
def spec_schema(kind: str) -> dict[str, Any]:
    document = yaml.safe_load((CRD_DIR / CRD_FILES[kind]).read_text())
    version = document["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def _walk(schema: dict[str, Any], path: Path, creatable: bool, out: list[Field]) -> None:
    out.append(Field(path, schema, creatable))
    if len(path) > 12:  # pod-spec recursion is deep enough by then
        return
    required = set(schema.get("required") or ())
    for key, sub in (schema.get("properties") or {}).items():
        _walk(sub, (*path, key), creatable and not required - {key}, out)
    items = schema.get("items")
    if isinstance(items, dict):
        _walk(items, (*path, 0), creatable, out)
    values = schema.get("additionalProperties")
    if isinstance(values, dict):
        _walk(values, (*path, MAP_KEY), creatable, out)


@cache
def fields(kind: str) -> tuple[Field, ...]:
    """Every field of the kind's spec (the spec itself excluded)."""
    out: list[Field] = []
    _walk(spec_schema(kind), (), True, out)
    return tuple(f for f in out if f.path)


def json_type(schema: dict[str, Any]) -> str | None:
    """The JSON type the schema demands, None when anything goes."""
    if schema.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    kind = schema.get("type")
    return str(kind) if kind else None


WRONG_VALUES: dict[str, tuple[Any, ...]] = {
    "string": (7, True, ["x"], {"a": "b"}),
    "integer": ("seven", 1.5, True, ["1"], {"n": 1}),
    "number": ("seven", True, [1], {"n": 1}),
    "boolean": ("yes", 1, ["true"], {"b": True}),
    "object": ("an object", 3, ["a"], True),
    "array": ("a list", 3, {"0": "a"}, False),
    "int-or-string": (True, ["1"], {"n": 1}),
}


def wrong_values(schema: dict[str, Any]) -> tuple[Any, ...]:
    """Values of a JSON type the schema refuses (empty when it accepts any type)."""
    kind = json_type(schema)
    return WRONG_VALUES.get(kind, ()) if kind is not None else ()


def set_path(root: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    """`root` with `value` at `path`, creating the objects and one-item lists on the way."""
    if not path:
        raise ValueError("an empty path")
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        raise ValueError("a path below spec starts with a key")
    out = dict(root)
    if not rest:
        out[head] = value
        return out
    child = out.get(head)
    out[head] = _set_below(child, rest, value)
    return out


def _set_below(node: Any, path: Path, value: Any) -> Any:
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(node) if isinstance(node, list) and node else [{}]
        items[0] = value if not rest else _set_below(items[0], rest, value)
        return items
    mapping = dict(node) if isinstance(node, dict) else {}
    mapping[head] = value if not rest else _set_below(mapping.get(head), rest, value)
    return mapping


def related(cause_field: str, dotted: str) -> bool:
    """A 422 cause names the field: the same path, a path inside it, or an object above it
    (the apiserver reports some errors, e.g. required siblings or CEL rules, on the parent)."""
    cause = cause_field.strip()
    if dotted == "spec":  # anywhere in the spec
        return cause.startswith("spec")
    if not cause.startswith("spec.") or not dotted.startswith("spec."):
        return False
    if cause == dotted or cause.startswith((dotted + ".", dotted + "[")):
        return True
    return dotted.startswith((cause + ".", cause + "["))
