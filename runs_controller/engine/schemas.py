"""JSON Schema handling for Story `inputsSchema`/`outputsSchema` (and template schemas).

The reference controller validates with gojsonschema (drafts 4, 6 and 7) after rewriting
the schema: a property-level `required: true` is lifted into the parent's `required`
list, and every schema node also accepts a template string, a storage-ref map, a
`$bubuConfigMapRef` map or a `$bubuSecretRef` map. Here the lifting is a real rewrite;
the alternatives are a guard on each keyword, which accepts the same documents as the
rewrite without breaking `$ref` pointers. Keywords whose reports differ from
gojsonschema's are reimplemented so messages read like the reference's
(`field: description`, field `(root)` or dotted like `customer.id`).

`$ref` never loads anything: only the built-in meta-schemas and the schema itself resolve.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema import Draft4Validator, Draft6Validator, Draft7Validator, validators
from jsonschema.exceptions import SchemaError as _JsonSchemaError
from jsonschema.exceptions import UnknownType, ValidationError
from jsonschema_specifications import REGISTRY  # type: ignore[import-untyped]

from runs_controller.engine.hashing import canonical_json

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = [
    "DEFAULTS_MAX_DEPTH",
    "MAX_CONDITION_MESSAGE",
    "SchemaError",
    "apply_defaults",
    "encoded_size",
    "inputs_failure_message",
    "output_failure_message",
    "schema_failure_message",
    "scrub_storage_ref_metadata",
    "validate_document",
]

DEFAULTS_MAX_DEPTH: Final = 32
# CRD limit on a condition message (`size(c.message) <= 2048`, counted in code points).
MAX_CONDITION_MESSAGE: Final = 2048
_CACHE_SIZE: Final = 256

_STORAGE_REF: Final = "$bubuStorageRef"
_STORAGE_PATH: Final = "$bubuStoragePath"
_STORAGE_CONTENT_TYPE: Final = "$bubuStorageContentType"
_STORAGE_SCHEMA: Final = "$bubuStorageSchema"
_STORAGE_SCHEMA_VERSION: Final = "$bubuStorageSchemaVersion"
_STORAGE_KEYS: Final = frozenset(
    {_STORAGE_REF, _STORAGE_PATH, _STORAGE_CONTENT_TYPE, _STORAGE_SCHEMA, _STORAGE_SCHEMA_VERSION}
)
_STORAGE_METADATA: Final = frozenset(
    {_STORAGE_CONTENT_TYPE, _STORAGE_SCHEMA, _STORAGE_SCHEMA_VERSION}
)
_CONFIGMAP_REF: Final = "$bubuConfigMapRef"
_SECRET_REF: Final = "$bubuSecretRef"  # noqa: S105 (a key name)
_VALUE_REF_KEYS: Final = frozenset({"name", "key", "namespace", "format"})
_VALUE_REF_FORMATS: Final = frozenset({"auto", "json", "raw"})
# `^\s*\$?\{\{[\s\S]+\}\}\s*$` with RE2's ASCII `\s` and end-of-text `$`.
_TEMPLATE_STRING: Final = re.compile(r"[\t\n\f\r ]*\$?\{\{[\s\S]+\}\}[\t\n\f\r ]*")


class SchemaError(ValueError):
    """The schema itself is unusable: not JSON Schema, bad `$ref`, or not evaluable."""


# --- copying -------------------------------------------------------------------------


def _empty_like(value: object) -> dict[str, Any] | list[Any]:
    return {} if isinstance(value, Mapping) else []


def _clone(value: Any, *, scrub: bool = False) -> Any:
    """Deep-copy a JSON-shaped value (tuples become lists), iteratively for deep data.

    With `scrub`, storage-ref maps lose their content-type/schema metadata keys.
    """
    if not isinstance(value, Mapping | list | tuple):
        return value
    root = _empty_like(value)
    pending: list[tuple[Any, dict[str, Any] | list[Any]]] = [(value, root)]
    while pending:
        source, target = pending.pop()
        if isinstance(source, Mapping) and isinstance(target, dict):
            drop = _STORAGE_METADATA if scrub and _STORAGE_REF in source else frozenset()
            for key, member in source.items():
                if key in drop:
                    continue
                if isinstance(member, Mapping | list | tuple):
                    target[key] = child = _empty_like(member)
                    pending.append((member, child))
                else:
                    target[key] = member
        elif isinstance(target, list):
            for member in source:
                if isinstance(member, Mapping | list | tuple):
                    child = _empty_like(member)
                    target.append(child)
                    pending.append((member, child))
                else:
                    target.append(member)
    return root


def scrub_storage_ref_metadata(value: Any) -> Any:
    """A copy without content-type/schema metadata in storage-ref maps.

    The reference does this to inputs (not outputs) before validating them, so a schema
    describing a storage ref need not declare those keys.
    """
    return _clone(value, scrub=True)


# --- defaults ------------------------------------------------------------------------


def _schemas(entries: object) -> Iterator[Mapping[str, Any]]:
    if isinstance(entries, list | tuple):
        for entry in entries:
            if isinstance(entry, Mapping):
                yield entry


def _has_property_defaults(schema: Mapping[str, Any], depth: int, max_depth: int) -> bool:
    """Whether filling an empty object from `schema` could set anything."""
    if depth > max_depth:
        return False
    kind = schema.get("type")
    if kind is not None and kind != "object":
        return False
    if any(
        _has_property_defaults(sub, depth + 1, max_depth) for sub in _schemas(schema.get("allOf"))
    ):
        return True
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return False
    for prop in properties.values():
        if not isinstance(prop, Mapping):
            continue
        if "default" in prop or _has_property_defaults(prop, depth + 1, max_depth):
            return True
    return False


def _fill(schema: Mapping[str, Any], obj: dict[str, Any], depth: int, max_depth: int) -> bool:
    """Set absent properties' defaults in `obj` (in place); report whether anything changed."""
    if depth > max_depth:
        return False
    changed = False
    for sub in _schemas(schema.get("allOf")):
        changed = _fill(sub, obj, depth + 1, max_depth) or changed
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return changed
    for key, prop in properties.items():
        if not isinstance(prop, Mapping):
            continue
        if key in obj:
            current = obj[key]
            if isinstance(current, dict):
                changed = _fill(prop, current, depth + 1, max_depth) or changed
        elif "default" in prop:
            # An inserted default is not filled further: the reference does not either.
            obj[key] = _clone(prop["default"])
            changed = True
        elif _has_property_defaults(prop, depth + 1, max_depth):
            child: dict[str, Any] = {}
            if _fill(prop, child, depth + 1, max_depth):
                obj[key] = child
                changed = True
    return changed


def apply_defaults(
    schema: Mapping[str, Any] | None, value: Any, *, max_depth: int = DEFAULTS_MAX_DEPTH
) -> Any:
    """A copy of `value` with the schema's `default`s set for absent object properties.

    Follows `properties` and `allOf` only (never arrays, `anyOf`, `$ref`...), like the
    reference. None becomes {}; a non-object value comes back as a plain copy. Nesting
    beyond `max_depth` is silently left alone.
    """
    if schema is not None and not isinstance(schema, Mapping):
        raise SchemaError("failed to read schema: a JSON Schema must be a JSON object")
    result = {} if value is None else _clone(value)
    if schema and isinstance(result, dict):
        _fill(schema, result, 0, max_depth)
    return result


# --- schema rewriting ----------------------------------------------------------------

_SINGLE_SCHEMA_KEYWORDS: Final = (
    "additionalProperties",
    "additionalItems",
    "contains",
    "contentSchema",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "not",
)
_SCHEMA_MAP_KEYWORDS: Final = (
    "patternProperties",
    "dependencies",
    "dependentSchemas",
    "definitions",
    "$defs",
)
_SCHEMA_LIST_KEYWORDS: Final = ("allOf", "anyOf", "oneOf", "prefixItems")


_Slot = tuple[dict[str, Any] | list[Any], str | int]
# Marks a rewritten `false` subschema, so its error keeps the path (jsonschema drops it).
_FALSE_KEYWORD: Final = "$bubu.falseSchema"
_OWN_BOOLEANS: Final = frozenset({"additionalProperties", "additionalItems"})


def _slots(node: dict[str, Any]) -> Iterator[_Slot]:
    """Where `node` holds subschemas, as (container, key), for the keywords the reference
    rewrites."""
    for keyword in ("properties", *_SCHEMA_MAP_KEYWORDS):
        members = node.get(keyword)
        if isinstance(members, dict):
            yield from ((members, name) for name in members)
    items = node.get("items")
    if isinstance(items, list):
        yield from ((items, index) for index in range(len(items)))
    elif "items" in node:
        yield node, "items"
    yield from ((node, keyword) for keyword in _SINGLE_SCHEMA_KEYWORDS if keyword in node)
    for keyword in _SCHEMA_LIST_KEYWORDS:
        members = node.get(keyword)
        if isinstance(members, list):
            yield from ((members, index) for index in range(len(members)))


def _walk(root: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every schema object under `root` (iteratively: schemas may nest deeply)."""
    pending = [root]
    while pending:
        node = pending.pop()
        yield node
        for container, key in _slots(node):
            child = container[key]  # type: ignore[index]
            if isinstance(child, dict):
                pending.append(child)


def _lift_required(node: dict[str, Any]) -> None:
    """Move properties' boolean `required` into the node's `required` list (in place)."""
    properties = node.get("properties")
    if not isinstance(properties, dict):
        return
    lifted: list[str] = []
    for name, prop in properties.items():
        flagged = isinstance(prop, dict) and isinstance(prop.get("required"), bool)
        if flagged and prop.pop("required"):
            lifted.append(name)
    if lifted:
        existing = node.get("required")
        merged = [n for n in existing if isinstance(n, str)] if isinstance(existing, list) else []
        merged.extend(name for name in sorted(lifted) if name not in merged)
        node["required"] = merged


def _normalize(schema: dict[str, Any]) -> None:
    """The reference's `required: true` lifting, in place on a private copy.

    Nested `$schema` keys go too: they would make jsonschema switch to a stock validator
    class without our keyword behaviour (the root's draft has been picked already).
    """
    for node in _walk(schema):
        node.pop("$schema", None)
        _lift_required(node)


def _mark_false_schemas(schema: dict[str, Any]) -> None:
    """Replace `false` subschemas (drafts 6/7) with the marker keyword, in place."""
    for node in list(_walk(schema)):
        for container, key in _slots(node):
            if container is node and key in _OWN_BOOLEANS:
                continue  # those keywords report `false` themselves
            if container[key] is False:  # type: ignore[index]
                container[key] = {_FALSE_KEYWORD: True}  # type: ignore[index]


# --- the alternatives every schema node accepts ----------------------------------------


def _is_string_map(value: Mapping[str, Any], allowed: frozenset[str]) -> bool:
    return all(key in allowed and isinstance(member, str) for key, member in value.items())


def _is_value_ref(value: Mapping[str, Any], key: str) -> bool:
    """`{key: "name"}` or `{key: {name, key, namespace?, format?}}` and nothing else."""
    if len(value) != 1 or key not in value:
        return False
    ref = value[key]
    if isinstance(ref, str):
        return True
    if not isinstance(ref, Mapping) or "name" not in ref or "key" not in ref:
        return False
    return _is_string_map(ref, _VALUE_REF_KEYS) and ref.get("format", "auto") in _VALUE_REF_FORMATS


def _is_alternative(instance: object, *, refs: bool) -> bool:
    if isinstance(instance, str):
        return _TEMPLATE_STRING.fullmatch(instance) is not None
    if not refs or not isinstance(instance, Mapping):
        return False
    if _STORAGE_REF in instance and _is_string_map(instance, _STORAGE_KEYS):
        return True
    return _is_value_ref(instance, _CONFIGMAP_REF) or _is_value_ref(instance, _SECRET_REF)


def _describes_ref(schema: Mapping[str, Any]) -> bool:
    """A node that itself describes a storage/configmap/secret ref is not widened."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return False
    if _CONFIGMAP_REF in properties or _SECRET_REF in properties:
        return True
    if _STORAGE_REF not in properties:
        return False
    extra = schema.get("additionalProperties", True)
    if not isinstance(extra, bool) or not extra:
        return properties.keys() >= _STORAGE_KEYS
    return True


def _accepts_alternative(keyword: str, instance: object, schema: Mapping[str, Any]) -> bool:
    """Whether `keyword` of `schema` lets `instance` through as a template string or ref.

    Mirrors the reference's rewrite: a node with an `anyOf` list only gets alternatives
    appended to that list (its other keywords still apply, and ref alternatives are left
    out when a branch describes a ref); any other node is wrapped as a whole.
    """
    if not schema or _FALSE_KEYWORD in schema or _describes_ref(schema):
        return False
    branches = schema.get("anyOf")
    if isinstance(branches, list | tuple):
        if keyword != "anyOf":
            return False
        refs = not any(_describes_ref(branch) for branch in _schemas(branches))
        return _is_alternative(instance, refs=refs)
    return _is_alternative(instance, refs=True)


def _type_names(declared: object) -> list[str]:
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list | tuple):
        return [name for name in declared if isinstance(name, str)]
    return []


class _Evaluator(Protocol):
    """The part of a jsonschema validator that keyword functions use."""

    def is_type(self, instance: Any, type: str) -> bool: ...

    def descend(
        self,
        instance: Any,
        schema: Any,
        path: str | int | None = None,
        schema_path: str | int | None = None,
    ) -> Iterator[ValidationError]: ...


def _type_matches(validator: _Evaluator, schema: Mapping[str, Any], instance: object) -> bool:
    names = _type_names(schema.get("type"))
    return not names or any(validator.is_type(instance, name) for name in names)


_Keyword = Callable[[_Evaluator, Any, Any, Mapping[str, Any]], Iterable[ValidationError] | None]


def _guarded(keyword: str, check: _Keyword) -> _Keyword:
    """Add the alternatives and gojsonschema's "wrong type: report only that" rule."""

    def guarded(
        validator: _Evaluator, value: Any, instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        if _accepts_alternative(keyword, instance, schema):
            return
        if keyword not in {"type", "$ref"} and not _type_matches(validator, schema, instance):
            return
        yield from check(validator, value, instance, schema) or ()

    return guarded


# --- keywords reported the way gojsonschema reports them -------------------------------

_ANY_OF: Final = "Must validate at least one schema (anyOf)"
_ONE_OF: Final = "Must validate one and only one schema (oneOf)"
_ALL_OF: Final = "Must validate all the schemas (allOf)"
_NOT: Final = "Must not validate the schema (not)"
_THEN: Final = 'Must validate "then" as "if" was valid'
_ELSE: Final = 'Must validate "else" as "if" was not valid'
_CONTAINS: Final = "At least one of the items must match"
_FALSE: Final = "False always fails validation"


def _branch_errors(
    validator: _Evaluator, instance: Any, branches: Any
) -> Iterator[list[ValidationError]]:
    for index, branch in enumerate(branches):
        yield list(validator.descend(instance, branch, schema_path=index))


def _closest(candidates: Iterable[list[ValidationError]]) -> list[ValidationError]:
    """The failing branch with the fewest errors (first on ties), as the likely intent."""
    best: list[ValidationError] | None = None
    for errors in candidates:
        if best is None or len(errors) < len(best):
            best = errors
    return best or []


def _any_of(
    validator: _Evaluator, branches: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    failures: list[list[ValidationError]] = []
    for errors in _branch_errors(validator, instance, branches):
        if not errors:
            return
        failures.append(errors)
    yield ValidationError(_ANY_OF)
    yield from _closest(failures)


def _one_of(
    validator: _Evaluator, branches: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    outcomes = list(_branch_errors(validator, instance, branches))
    passed = sum(1 for errors in outcomes if not errors)
    if passed == 1:
        return
    yield ValidationError(_ONE_OF)
    if passed == 0:
        yield from _closest(outcomes)


def _all_of(
    validator: _Evaluator, branches: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    failed = False
    for errors in _branch_errors(validator, instance, branches):
        failed = failed or bool(errors)
        yield from errors
    if failed:
        yield ValidationError(_ALL_OF)


def _not(
    validator: _Evaluator, negated: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not any(True for _ in validator.descend(instance, negated)):
        yield ValidationError(_NOT)


def _if(
    validator: _Evaluator, condition: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    holds = not any(True for _ in validator.descend(instance, condition, schema_path="if"))
    branch, summary = ("then", _THEN) if holds else ("else", _ELSE)
    if branch not in schema:
        return
    errors = list(validator.descend(instance, schema[branch], schema_path=branch))
    if errors:
        yield ValidationError(summary)
        yield from errors


def _contains(
    validator: _Evaluator, contained: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "array"):
        return
    failures: list[list[ValidationError]] = []
    for index, item in enumerate(instance):
        errors = list(validator.descend(item, contained, path=index))
        if not errors:
            return
        failures.append(errors)
    yield ValidationError(_CONTAINS)
    yield from _closest(failures)


def _property_names(
    validator: _Evaluator, names: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for name in instance:
        errors = list(validator.descend(name, names))
        if errors:
            yield ValidationError(f'Property name of "{name}" does not match')
            yield from errors


def _required(
    validator: _Evaluator, required: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for name in required:
        if name not in instance:
            yield ValidationError(f"{name} is required")


def _dependencies(
    validator: _Evaluator, dependencies: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for name, dependency in dependencies.items():
        if name not in instance:
            continue
        if validator.is_type(dependency, "array"):
            for needed in dependency:
                if needed not in instance:
                    yield ValidationError(f"Has a dependency on {needed}")
        else:
            yield from validator.descend(instance, dependency, schema_path=name)


def _additional_properties(
    validator: _Evaluator, extra: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object") or extra is True:
        return
    declared = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    for name in instance:
        if name in declared or any(re.search(pattern, name) for pattern in patterns):
            continue
        if extra is False:
            yield ValidationError(f"Additional property {name} is not allowed")
        else:
            yield from validator.descend(instance[name], extra, path=name)


def _json_text(value: object) -> str:
    try:
        return canonical_json(value).decode("utf-8")
    except (TypeError, ValueError):
        return repr(value)


def _unique_items(
    validator: _Evaluator, unique: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: dict[str, int] = {}
    for index, item in enumerate(instance):
        text = _json_text(item)
        if text in seen:
            yield ValidationError(f"array items[{seen[text]},{index}] must be unique")
        seen[text] = index


def _exact(number: int | float) -> Fraction:
    # The shortest repr is the literal Go marshals and gojsonschema parses as a rational.
    return Fraction(number) if isinstance(number, int) else Fraction(repr(number))


def _multiple_of(
    validator: _Evaluator, divisor: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "number") or isinstance(instance, bool):
        return
    try:
        whole = (_exact(instance) / _exact(divisor)).denominator == 1
    except (ValueError, ZeroDivisionError, OverflowError):
        whole = False
    if not whole:
        yield ValidationError(f"Must be a multiple of {_go_number(divisor)}")


def _false_schema(
    validator: _Evaluator, marked: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    yield ValidationError(_FALSE)


_OWN_MESSAGES: Final[dict[str, _Keyword]] = {
    "anyOf": _any_of,
    "oneOf": _one_of,
    "allOf": _all_of,
    "not": _not,
    "if": _if,
    "contains": _contains,
    "propertyNames": _property_names,
    "required": _required,
    "dependencies": _dependencies,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
    "multipleOf": _multiple_of,
}


# --- messages ------------------------------------------------------------------------


def _go_number(value: object) -> str:
    """A number as gojsonschema prints a limit: Go's shortest `%g` (`1e+06`, `0.5`)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    exact = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    if exact == 0:
        return "0"
    sign, digits, exponent = exact.normalize().as_tuple()
    if not isinstance(exponent, int):
        return str(value)
    magnitude = len(digits) + exponent - 1
    head = "-" if sign else ""
    text = "".join(map(str, digits))
    if magnitude < -4 or magnitude >= 6:
        mantissa = text[0] + (f".{text[1:]}" if len(text) > 1 else "")
        return f"{head}{mantissa}e{'-' if magnitude < 0 else '+'}{abs(magnitude):02d}"
    return f"{head}{abs(exact.normalize()):f}"


def _given_type(instance: object) -> str:
    if instance is None:
        return "null"
    if isinstance(instance, bool):
        return "boolean"
    if isinstance(instance, int):
        return "integer"
    if isinstance(instance, float):
        return "integer" if instance.is_integer() else "number"
    if isinstance(instance, str):
        return "string"
    if isinstance(instance, list | tuple):
        return "array"
    return "object"


def _field(error: ValidationError) -> str:
    path = error.absolute_path
    return ".".join(str(part) for part in path) if path else "(root)"


def _describe(error: ValidationError, field: str) -> str:
    """gojsonschema's wording for one violation (jsonschema's for anything unusual)."""
    keyword: object = error.validator
    limit = error.validator_value
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if keyword is None or keyword == _FALSE_KEYWORD:
        return _FALSE
    if keyword in _OWN_MESSAGES:
        return error.message
    if keyword == "type":
        names = _type_names(limit)
        expected = names[0] if len(names) == 1 else f"[{','.join(names)}]"
        return f"Invalid type. Expected: {expected}, given: {_given_type(error.instance)}"
    simple = {
        "minLength": "String length must be greater than or equal to {}",
        "maxLength": "String length must be less than or equal to {}",
        "minItems": "Array must have at least {} items",
        "maxItems": "Array must have at most {} items",
        "minProperties": "Must have at least {} properties",
        "maxProperties": "Must have at most {} properties",
        "exclusiveMaximum": "Must be less than {}",
        "exclusiveMinimum": "Must be greater than {}",
    }
    if keyword in simple:
        return simple[keyword].format(_go_number(limit))
    if keyword == "maximum":
        strict = schema.get("exclusiveMaximum") is True  # draft 4
        return f"Must be less than{'' if strict else ' or equal to'} {_go_number(limit)}"
    if keyword == "minimum":
        strict = schema.get("exclusiveMinimum") is True
        return f"Must be greater than{'' if strict else ' or equal to'} {_go_number(limit)}"
    if keyword == "enum" and isinstance(limit, list | tuple):
        allowed = ", ".join(_json_text(option) for option in limit)
        return f"{field} must be one of the following: {allowed}"
    if keyword == "const":
        return f"{field} does not match: {_json_text(limit)}"
    if keyword == "pattern":
        return f"Does not match pattern '{limit}'"
    if keyword == "format":
        return f"Does not match format '{limit}'"
    if keyword == "additionalItems":
        return "No additional items allowed on array"
    return error.message


def _format_error(error: ValidationError) -> str:
    field = _field(error)
    return f"{field}: {_describe(error, field)}"


# --- compiling -----------------------------------------------------------------------


def _is_integer(_checker: object, instance: object) -> bool:
    """gojsonschema (every draft): any number without a fractional part is an integer."""
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and instance.is_integer())


def _extend(base: type[Validator]) -> type[Validator]:
    keywords = {
        keyword: _guarded(keyword, _OWN_MESSAGES.get(keyword) or cast("_Keyword", check))
        for keyword, check in base.VALIDATORS.items()
    }
    keywords[_FALSE_KEYWORD] = _false_schema
    extended = validators.extend(  # type: ignore[no-untyped-call]
        base,
        validators=keywords,
        type_checker=base.TYPE_CHECKER.redefine("integer", _is_integer),
    )
    return cast("type[Validator]", extended)


_DRAFTS: Final[
    dict[str, tuple[type[Validator], type[Validator], referencing.Specification[Any]]]
] = {
    "http://json-schema.org/draft-04/schema": (
        Draft4Validator,
        _extend(Draft4Validator),
        referencing.jsonschema.DRAFT4,
    ),
    "http://json-schema.org/draft-06/schema": (
        Draft6Validator,
        _extend(Draft6Validator),
        referencing.jsonschema.DRAFT6,
    ),
    "http://json-schema.org/draft-07/schema": (
        Draft7Validator,
        _extend(Draft7Validator),
        referencing.jsonschema.DRAFT7,
    ),
}
# gojsonschema's "hybrid" default for schemas without (or with another) `$schema`.
_DEFAULT_DRAFT: Final = "http://json-schema.org/draft-07/schema"


def _refuse(uri: str) -> referencing.Resource[Any]:
    """Nothing is fetched: no network, no files."""
    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]


_META_SCHEMAS: Final[referencing.Registry[Any]] = REGISTRY
_REGISTRY: Final[referencing.Registry[Any]] = referencing.Registry(retrieve=_refuse)  # type: ignore[call-arg]


def _unresolvable(ref: str) -> SchemaError:
    note = "" if ref.startswith("#") else " (remote references are never loaded)"
    return SchemaError(f"cannot resolve $ref {ref!r}{note}")


def _schema_location(path: Iterable[object]) -> str:
    return "#" + "".join(f"/{part}" for part in path)


def _refs(node: Any) -> Iterator[str]:
    """Every `$ref` reachable from the root without crossing a nested `$id`/`id`."""
    pending = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, list):
            pending.extend(current)
            continue
        if not isinstance(current, dict):
            continue
        ref = current.get("$ref")
        if isinstance(ref, str):
            yield ref
        for key, member in current.items():
            if key in {"enum", "const", "default", "examples"}:
                continue
            if isinstance(member, dict) and ("$id" in member or "id" in member):
                continue
            pending.append(member)


class _Compiled:
    """A ready validator for one schema (compiled once, shared by every run)."""

    __slots__ = ("validator",)

    def __init__(self, validator: Validator) -> None:
        self.validator = validator


@lru_cache(maxsize=_CACHE_SIZE)
def _compile(key: bytes) -> _Compiled | SchemaError:
    """Compile the schema whose canonical JSON is `key`; errors are cached too."""
    try:
        return _build(key)
    except RecursionError:
        return SchemaError("schema is nested too deeply")


def _build(key: bytes) -> _Compiled | SchemaError:
    raw = json.loads(key)
    if not isinstance(raw, dict):
        return SchemaError("a JSON Schema must be a JSON object")
    dialect = raw.get("$schema", _DEFAULT_DRAFT)
    if not isinstance(dialect, str):
        return SchemaError("$schema must be of type string")
    base, extended, specification = _DRAFTS.get(dialect.rstrip("#"), _DRAFTS[_DEFAULT_DRAFT])
    schema = raw
    _normalize(schema)
    try:
        base.check_schema(schema)
    except _JsonSchemaError as exc:
        return SchemaError(f"invalid schema at {_schema_location(exc.path)}: {exc.message}")
    if base is not Draft4Validator:
        _mark_false_schemas(schema)
    resolver = _META_SCHEMAS.combine(_REGISTRY).resolver_with_root(
        specification.create_resource(schema)
    )
    for ref in _refs(schema):
        try:
            resolver.lookup(ref)
        except referencing.exceptions.Unresolvable:
            return _unresolvable(ref)
    validator = extended(schema, registry=_REGISTRY, format_checker=base.FORMAT_CHECKER)
    return _Compiled(validator)


def _compiled(schema: Mapping[str, Any]) -> _Compiled:
    if not isinstance(schema, Mapping):
        raise SchemaError("a JSON Schema must be a JSON object")
    try:
        key = canonical_json(schema)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"schema is not JSON: {exc}") from None
    outcome = _compile(key)
    if isinstance(outcome, SchemaError):
        raise SchemaError(str(outcome))
    return outcome


def validate_document(schema: Mapping[str, Any], value: Any) -> list[str]:
    """Every violation of `value` against `schema`, as sorted unique messages; [] if valid.

    Messages read `field: description` as in the reference, e.g. `(root): customer is
    required` or `customer.id: Invalid type. Expected: string, given: integer`. Raises
    only SchemaError, when the schema cannot be used.
    """
    compiled = _compiled(schema)
    try:
        errors = list(compiled.validator.iter_errors(value))
    except referencing.exceptions.Unresolvable as exc:
        raise _unresolvable(str(getattr(exc, "ref", "?"))) from None
    except (re.error, UnknownType, _JsonSchemaError) as exc:
        raise SchemaError(f"schema cannot be evaluated: {exc}") from None
    except RecursionError:
        raise SchemaError("schema cannot be evaluated: recursion too deep (cyclic $ref?)") from None
    return sorted({_format_error(error) for error in errors})


# --- condition messages ----------------------------------------------------------------


def _cap(message: str, limit: int) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def schema_failure_message(
    prefix: str,
    schema_name: str,
    problem: Sequence[str] | SchemaError,
    *,
    limit: int = MAX_CONDITION_MESSAGE,
) -> str:
    """`<prefix>: object is invalid against <schema_name> schema: [e1 e2]`, <= `limit` chars.

    The reference's wording (`%v` of a Go string slice); errors that do not fit are
    counted instead. A SchemaError reads `<prefix>: error validating against ... schema: ...`.
    """
    if isinstance(problem, SchemaError):
        return _cap(f"{prefix}: error validating against {schema_name} schema: {problem}", limit)
    head = f"{prefix}: object is invalid against {schema_name} schema: ["
    shown: list[str] = []
    for index, error in enumerate(problem):
        rest = len(problem) - index - 1
        tail = f" ... and {rest} more]" if rest else "]"
        candidate = " ".join([*shown, error])
        if len(head) + len(candidate) + len(tail) > limit:
            break
        shown.append(error)
    else:
        return f"{head}{' '.join(shown)}]"
    if not shown:  # the first error alone is too long: cut it
        rest = len(problem) - 1
        tail = f" ... and {rest} more]" if rest else "]"
        return _cap(f"{head}{problem[0]}", limit - len(tail)) + tail
    return f"{head}{' '.join(shown)} ... and {len(problem) - len(shown)} more]"


def inputs_failure_message(problem: Sequence[str] | SchemaError) -> str:
    """The `InputSchemaFailed` message of a StoryRun."""
    return schema_failure_message(
        "StoryRun inputs failed schema validation", "Story inputs", problem
    )


def output_failure_message(problem: Sequence[str] | SchemaError) -> str:
    """The `OutputSchemaFailed` message of a StoryRun."""
    return schema_failure_message("Story output failed schema validation", "Story outputs", problem)


def encoded_size(value: Any) -> int:
    """Bytes of `value` as Go's `json.Marshal` writes it (compact, HTML-escaped).

    For the 1 MiB limit on a stored Story output. Raises ValueError for NaN/Inf.
    """
    return len(canonical_json(value))
