"""Would a server-side apply change anything? Decided from the observed object alone.

An apply under our field manager sets every field in the applied body and removes every field
this manager owned before but leaves out now (unless another manager owns it too). So it is a
no-op exactly when (a) every applied value is already there and (b) nothing we own is missing
from the body. What we own comes from the object's managedFields (`fieldsV1`, kept in the
cache for our manager only): `f:<name>` for map keys, `k:{...}` for elements of a list keyed by
fields (`x-kubernetes-list-type: map`, e.g. conditions by type), and a leaf `{}` for a value
owned whole (scalars, atomic lists and maps). Without ownership information the answer is
conservative: the body must equal the observed value exactly. A wrong "changes" costs one
redundant write; a wrong "no-op" would lose one, so every doubt answers "changes".
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import msgspec

from runs_controller.api.codec import MicroTime

Owned = dict[str, Any]
"""A fieldsV1 node: `f:`/`k:`/`v:`/`i:` keys mapping to child nodes, `.` for the node itself."""


def normalize(value: Any) -> Any:
    """A Struct (or builtins) in the form the apiserver stores and hands back.

    Times become RFC 3339 strings: metav1.Time is whole seconds (the apiserver drops any
    fraction we send), MicroTime keeps six digits. Structs drop unset fields (omit_defaults).
    """
    return _times(
        msgspec.to_builtins(value, builtin_types=(datetime.datetime,), enc_hook=_micro_time)
    )


def _micro_time(value: Any) -> Any:
    if isinstance(value, MicroTime):
        return value.to_wire()
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _times(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _times(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_times(item) for item in value]
    if isinstance(value, datetime.datetime):
        utc = value.astimezone(datetime.UTC) if value.tzinfo is not None else value
        return utc.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def owned_fields(entries: list[dict[str, Any]], manager: str, subresource: str) -> Owned | None:
    """The fieldsV1 set `manager` owns through Apply on `subresource` ("" for the main one)."""
    for entry in entries:
        if (
            entry.get("manager") == manager
            and entry.get("operation") == "Apply"
            and (entry.get("subresource") or "") == subresource
        ):
            fields = entry.get("fieldsV1")
            return fields if isinstance(fields, dict) else None
    return None


def apply_changes(desired: Any, observed: Any, owned: Owned | None) -> bool:
    """True when applying `desired` over `observed` would change the stored object.

    `desired` and `observed` are normalized builtins of the same path; `owned` is our fieldsV1
    node for that path (None: we own nothing there, or do not know).
    """
    if owned is None or not _has_children(owned):
        # Nothing known below this path (or owned whole): only an identical value is a no-op.
        return not _same(desired, observed)
    if isinstance(desired, dict):
        return _map_changes(desired, observed, owned)
    if isinstance(desired, list):
        return _list_changes(desired, observed, owned)
    return not _same(desired, observed)


def _map_changes(desired: dict[str, Any], observed: Any, owned: Owned) -> bool:
    if not isinstance(observed, dict):
        return True
    for key, value in desired.items():
        if key not in observed:
            return True
        if apply_changes(value, observed[key], owned.get(f"f:{key}")):
            return True
    # A field we own and leave out now would be removed.
    return any(name.startswith("f:") and name[2:] not in desired for name in owned if name != ".")


def _list_changes(desired: list[Any], observed: Any, owned: Owned) -> bool:
    element_keys = [name for name in owned if name.startswith("k:")]
    if not element_keys or not isinstance(observed, list):
        return not _same(desired, observed)
    keys = {name: json.loads(name[2:]) for name in element_keys}
    matched: set[str] = set()
    for element in desired:
        name = _element_key(element, keys)
        if name is None or name in matched:
            return True
        current = next((item for item in observed if _matches(item, keys[name])), None)
        if current is None or apply_changes(element, current, owned[name]):
            return True
        matched.add(name)
    # An element we own and leave out now would be removed.
    return matched != set(element_keys)


def _element_key(element: Any, keys: dict[str, dict[str, Any]]) -> str | None:
    for name, fields in keys.items():
        if _matches(element, fields):
            return name
    return None


def _matches(element: Any, fields: dict[str, Any]) -> bool:
    return isinstance(element, dict) and all(
        _same(element.get(field), value) for field, value in fields.items()
    )


def _has_children(owned: Owned) -> bool:
    return any(name != "." for name in owned)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (1 == 1.0), but bools are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


__all__ = ["Owned", "apply_changes", "normalize", "owned_fields"]
