"""Story/template JSON Schema handling: defaults, validation messages, refusal of remote refs."""

from __future__ import annotations

import builtins
import copy
import socket
import urllib.request
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runs_controller.engine import schemas
from runs_controller.engine.schemas import (
    MAX_CONDITION_MESSAGE,
    SchemaError,
    apply_defaults,
    encoded_size,
    inputs_failure_message,
    output_failure_message,
    schema_failure_message,
    scrub_storage_ref_metadata,
    validate_document,
)

# The reference's own defaults test (pkg/runs/inputs defaults_test, conformance U30).
REFERENCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "region": {"type": "string", "default": "us-east-1"},
        "nested": {
            "type": "object",
            "properties": {"enabled": {"type": "boolean", "default": True}},
        },
    },
}


# --- apply_defaults ------------------------------------------------------------------


def test_reference_vector_fills_scalars_and_nested_objects() -> None:
    assert apply_defaults(REFERENCE_SCHEMA, {}) == {
        "region": "us-east-1",
        "nested": {"enabled": True},
    }


def test_present_values_win_over_defaults() -> None:
    resolved = apply_defaults(REFERENCE_SCHEMA, {"region": "eu", "nested": {"enabled": False}})
    assert resolved == {"region": "eu", "nested": {"enabled": False}}


def test_none_value_becomes_an_object() -> None:
    assert apply_defaults(REFERENCE_SCHEMA, None)["region"] == "us-east-1"
    assert apply_defaults(None, None) == {}
    assert apply_defaults({}, None) == {}


def test_defaults_through_all_of_at_root_and_nested() -> None:
    schema = {
        "allOf": [
            {"properties": {"a": {"default": 1}}},
            {
                "properties": {
                    "inner": {
                        "allOf": [{"properties": {"b": {"default": "x"}}}],
                        "properties": {"c": {"default": [1, 2]}},
                    }
                }
            },
        ],
        "properties": {"a": {"default": 2}},
    }
    # allOf entries come first, so their default for `a` wins.
    assert apply_defaults(schema, {}) == {"a": 1, "inner": {"b": "x", "c": [1, 2]}}


def test_existing_nested_objects_are_filled() -> None:
    schema = {"properties": {"n": {"type": "string", "properties": {"x": {"default": 1}}}}}
    # No type check when the object is already there (the reference does none either).
    assert apply_defaults(schema, {"n": {}}) == {"n": {"x": 1}}


def test_absent_objects_are_created_only_when_something_is_set() -> None:
    schema = {
        "properties": {
            "empty": {"type": "object", "properties": {"x": {"type": "string"}}},
            "typed": {"type": "string", "properties": {"x": {"default": 1}}},
            "nullable": {"type": ["object", "null"], "properties": {"x": {"default": 1}}},
            "untyped": {"properties": {"x": {"default": 1}}},
        }
    }
    assert apply_defaults(schema, {}) == {"untyped": {"x": 1}}


def test_arrays_null_and_scalars_are_not_descended() -> None:
    schema = {
        "properties": {
            "list": {"type": "array", "items": {"properties": {"x": {"default": 1}}}},
            "gone": {"properties": {"x": {"default": 1}}},
        }
    }
    value = {"list": [{}, {"y": 2}], "gone": None}
    assert apply_defaults(schema, value) == value


def test_an_inserted_object_default_is_not_filled_further() -> None:
    # The reference copies a default in and moves on, so this is not idempotent.
    schema = {"properties": {"a": {"default": {}, "properties": {"b": {"default": 1}}}}}
    once = apply_defaults(schema, {})
    assert once == {"a": {}}
    assert apply_defaults(schema, once) == {"a": {"b": 1}}


def test_null_default_is_applied() -> None:
    assert apply_defaults({"properties": {"a": {"default": None}}}, {}) == {"a": None}


def test_non_object_values_come_back_as_copies() -> None:
    value = [{"a": 1}]
    result = apply_defaults(REFERENCE_SCHEMA, value)
    assert result == value
    assert result is not value
    assert result[0] is not value[0]


def test_nothing_is_shared_or_mutated() -> None:
    schema = {"properties": {"d": {"default": {"deep": [1]}}, "keep": {"type": "object"}}}
    value = {"keep": {"inner": [1, {"x": 2}]}}
    schema_before, value_before = copy.deepcopy(schema), copy.deepcopy(value)
    result = apply_defaults(schema, value)
    result["d"]["deep"].append(2)
    result["keep"]["inner"][1]["x"] = 3
    assert schema == schema_before
    assert value == value_before


def _chain(levels: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A schema with a default at every level of `n` nesting, and a value `levels` deep."""
    schema: dict[str, Any] = {"properties": {"d": {"default": 0}}}
    node = schema
    for _ in range(levels):
        child: dict[str, Any] = {"properties": {"d": {"default": 0}}}
        node["properties"]["n"] = child
        node = child
    value: dict[str, Any] = {}
    cursor = value
    for _ in range(levels):
        cursor["n"] = {}
        cursor = cursor["n"]
    return schema, value


def _levels_with_default(value: dict[str, Any]) -> int:
    count = 0
    while "d" in value:
        count += 1
        value = value.get("n", {})
    return count


@pytest.mark.parametrize(("max_depth", "filled"), [(0, 1), (1, 2), (32, 33)])
def test_max_depth_stops_filling_silently(max_depth: int, filled: int) -> None:
    schema, value = _chain(40)
    resolved = apply_defaults(schema, value, max_depth=max_depth)
    assert _levels_with_default(resolved) == filled


def test_default_max_depth_is_the_references_32() -> None:
    schema, value = _chain(40)
    assert _levels_with_default(apply_defaults(schema, value)) == 33


def test_deep_values_are_copied_without_recursion_limits() -> None:
    value: dict[str, Any] = {}
    cursor = value
    for _ in range(5000):
        cursor["n"] = {}
        cursor = cursor["n"]
    result = apply_defaults(REFERENCE_SCHEMA, value)
    assert result["region"] == "us-east-1"


def test_a_non_object_schema_is_a_schema_error() -> None:
    with pytest.raises(SchemaError):
        apply_defaults(["not", "a", "schema"], {})  # type: ignore[arg-type]


_SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3)
_KEYS = st.sampled_from(["a", "b", "c"])
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)


def _schema_strategy(defaults: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    def node(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["object", "string", ["object", "null"]]),
                "default": defaults,
                "properties": st.dictionaries(_KEYS, children, max_size=3),
                "allOf": st.lists(children, max_size=2),
            },
        )

    return st.recursive(st.just({}), node, max_leaves=10)


@settings(max_examples=200, deadline=None)
@given(_schema_strategy(_SCALARS | st.lists(_SCALARS, max_size=2)), _VALUES)
def test_apply_defaults_is_idempotent_without_object_defaults(
    schema: dict[str, Any], value: Any
) -> None:
    once = apply_defaults(schema, value)
    assert apply_defaults(schema, once) == once


def _assert_kept(before: Any, after: Any) -> None:
    if isinstance(before, dict):
        assert isinstance(after, dict)
        for key, member in before.items():
            assert key in after
            _assert_kept(member, after[key])
    else:
        assert after == before


@settings(max_examples=200, deadline=None)
@given(_schema_strategy(_VALUES), _VALUES)
def test_apply_defaults_never_removes_or_changes_anything(
    schema: dict[str, Any], value: Any
) -> None:
    schema_before, value_before = copy.deepcopy(schema), copy.deepcopy(value)
    result = apply_defaults(schema, value)
    assert schema == schema_before
    assert value == value_before
    _assert_kept({} if value is None else value, result)


# --- validate_document: messages ---------------------------------------------------------

CUSTOMER: dict[str, Any] = {
    "type": "object",
    "required": ["customer"],
    "properties": {
        "customer": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "required": True},
                "age": {"type": "integer", "minimum": 0},
                "tier": {"enum": ["gold", "silver"]},
            },
        },
        "tags": {"type": "array", "items": {"type": "string"}},
        "note": {"type": ["string", "null"]},
    },
}


def test_a_valid_document_has_no_errors() -> None:
    doc = {"customer": {"id": "c1", "age": 3.0, "tier": "gold"}, "tags": ["a"], "note": None}
    assert validate_document(CUSTOMER, doc) == []


def test_required_is_reported_on_the_parent_object() -> None:
    assert validate_document(CUSTOMER, {}) == ["(root): customer is required"]
    # `required: true` on a property is lifted into the parent's list, as upstream does.
    assert validate_document(CUSTOMER, {"customer": {}}) == ["customer: id is required"]


def test_type_errors_name_the_path_and_go_type_names() -> None:
    doc = {"customer": {"id": 7, "age": 2.5}, "tags": ["a", 1], "note": 1}
    assert validate_document(CUSTOMER, doc) == [
        "customer.age: Invalid type. Expected: integer, given: number",
        "customer.id: Invalid type. Expected: string, given: integer",
        "note: Invalid type. Expected: [string,null], given: integer",
        "tags.1: Invalid type. Expected: string, given: integer",
    ]


def test_enum_and_limits_read_like_gojsonschema() -> None:
    doc = {"customer": {"id": "c", "age": -1, "tier": "bronze"}}
    assert validate_document(CUSTOMER, doc) == [
        "customer.age: Must be greater than or equal to 0",
        'customer.tier: customer.tier must be one of the following: "gold", "silver"',
    ]


def test_a_wrong_type_hides_the_nodes_other_keywords() -> None:
    schema = {"type": "string", "minLength": 3, "enum": ["abc"]}
    expected = ["(root): Invalid type. Expected: string, given: integer"]
    assert validate_document(schema, 5) == expected


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [
        ({"maximum": 1000000}, 2e6, ["(root): Must be less than or equal to 1e+06"]),
        ({"exclusiveMinimum": 0.5}, 0.5, ["(root): Must be greater than 0.5"]),
        ({"multipleOf": 0.1}, 0.3, []),
        ({"multipleOf": 0.1}, 0.35, ["(root): Must be a multiple of 0.1"]),
        ({"maxLength": 2}, "abc", ["(root): String length must be less than or equal to 2"]),
        ({"minItems": 2}, [1], ["(root): Array must have at least 2 items"]),
        ({"maxProperties": 0}, {"a": 1}, ["(root): Must have at most 0 properties"]),
        ({"pattern": "^a"}, "b", ["(root): Does not match pattern '^a'"]),
        ({"format": "email"}, "nope", ["(root): Does not match format 'email'"]),
        ({"const": {"k": [1]}}, {}, ['(root): (root) does not match: {"k":[1]}']),
        ({"uniqueItems": True}, [1, 2, 1.0], ["(root): array items[0,2] must be unique"]),
        (
            {"properties": {"a": {}}, "additionalProperties": False},
            {"a": 1, "b": 2, "c": 3},
            [
                "(root): Additional property b is not allowed",
                "(root): Additional property c is not allowed",
            ],
        ),
        ({"dependencies": {"a": ["b"]}}, {"a": 1}, ["(root): Has a dependency on b"]),
        ({"properties": {"a": False}}, {"a": 1}, ["a: False always fails validation"]),
        ({"not": {"type": "string"}}, "x", ["(root): Must not validate the schema (not)"]),
        (
            {"items": [{"type": "string"}], "additionalItems": False},
            ["a", 1],
            ["(root): No additional items allowed on array"],
        ),
        (
            {"oneOf": [{"type": "integer"}, {"type": "number"}]},
            1,
            ["(root): Must validate one and only one schema (oneOf)"],
        ),
        (
            {"anyOf": [{"type": "string"}, {"required": ["a", "b"]}]},
            {},
            [
                "(root): Invalid type. Expected: string, given: object",
                "(root): Must validate at least one schema (anyOf)",
            ],
        ),
        (
            {"allOf": [{"required": ["a"]}, {}]},
            {},
            ["(root): Must validate all the schemas (allOf)", "(root): a is required"],
        ),
        (
            {"if": {"required": ["k"]}, "then": {"required": ["z"]}},
            {"k": 1},
            ['(root): Must validate "then" as "if" was valid', "(root): z is required"],
        ),
        (
            {"contains": {"type": "string"}},
            [1],
            [
                "(root): At least one of the items must match",
                "0: Invalid type. Expected: string, given: integer",
            ],
        ),
        (
            {"propertyNames": {"maxLength": 1}},
            {"ab": 1},
            [
                '(root): Property name of "ab" does not match',
                "(root): String length must be less than or equal to 1",
            ],
        ),
    ],
)
def test_keyword_messages(schema: dict[str, Any], value: Any, expected: list[str]) -> None:
    assert validate_document(schema, value) == expected


def test_draft4_boolean_exclusive_maximum() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "integer",
        "maximum": 5,
        "exclusiveMaximum": True,
    }
    assert validate_document(schema, 5.0) == ["(root): Must be less than 5"]
    # gojsonschema counts 4.0 as an integer in every draft.
    assert validate_document(schema, 4.0) == []


def test_errors_are_sorted_and_unique() -> None:
    schema = {"allOf": [{"required": ["a"]}, {"required": ["a"]}], "required": ["b"]}
    errors = validate_document(schema, {})
    assert errors == sorted(set(errors))
    assert errors == [
        "(root): Must validate all the schemas (allOf)",
        "(root): a is required",
        "(root): b is required",
    ]


def test_local_refs_and_recursion_work() -> None:
    schema = {
        "definitions": {
            "node": {
                "type": "object",
                "properties": {"v": {"type": "integer"}, "next": {"$ref": "#/definitions/node"}},
            }
        },
        "$ref": "#/definitions/node",
    }
    assert validate_document(schema, {"next": {"next": {"v": 1}}}) == []
    assert validate_document(schema, {"next": {"next": {"v": "x"}}}) == [
        "next.next.v: Invalid type. Expected: integer, given: string"
    ]


def test_the_schema_is_not_mutated() -> None:
    schema = copy.deepcopy(CUSTOMER)
    validate_document(schema, {"customer": {}})
    assert schema == CUSTOMER


# --- validate_document: the reference's alternatives ---------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "{{ .inputs.age }}",
        "  ${{ steps.a.output }}\n",
        {"$bubuStorageRef": "runs/x/out.json", "$bubuStoragePath": "a"},
        {"$bubuConfigMapRef": "cm/key"},
        {"$bubuSecretRef": {"name": "s", "key": "k", "format": "raw"}},
    ],
)
def test_template_strings_and_refs_stand_in_for_any_value(value: Any) -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}}
    assert validate_document(schema, {"age": value}) == []
    assert validate_document(schema, value) == []


@pytest.mark.parametrize(
    "value",
    [
        "{{ unclosed",
        "x {{ a }}",
        {"$bubuStorageRef": "x", "other": 1},
        {"$bubuStorageRef": 5},
        {"$bubuConfigMapRef": {"name": "n"}},
        {"$bubuSecretRef": {"name": "n", "key": "k", "format": "yaml"}},
        {"$bubuSecretRef": "s", "extra": "x"},
    ],
)
def test_near_misses_are_not_alternatives(value: Any) -> None:
    assert validate_document({"properties": {"age": {"type": "integer"}}}, {"age": value}) != []


def test_a_schema_describing_a_ref_is_not_widened() -> None:
    schema = {
        "type": "object",
        "properties": {"$bubuStorageRef": {"type": "string", "minLength": 3}},
        "required": ["$bubuStorageRef"],
    }
    assert validate_document(schema, {"$bubuStorageRef": "ab"}) == [
        "$bubuStorageRef: String length must be greater than or equal to 3"
    ]
    assert validate_document(schema, "{{ x }}") != []


def test_an_any_of_node_keeps_its_other_keywords() -> None:
    schema = {"type": "object", "anyOf": [{"required": ["a"]}]}
    assert validate_document(schema, {"$bubuSecretRef": "s"}) == []
    assert validate_document(schema, "{{ x }}") == [
        "(root): Invalid type. Expected: object, given: string"
    ]


def test_false_schemas_accept_nothing() -> None:
    assert validate_document({"properties": {"a": False}}, {"a": "{{ x }}"}) == [
        "a: False always fails validation"
    ]


# --- validate_document: unusable schemas ---------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": "strin"}, "#/type"),
        ({"required": "a"}, "#/required"),
        ({"properties": {"a": {"pattern": "("}}}, "#/properties/a/pattern"),
        ({"properties": {"a": {"minimum": "1"}}}, "#/properties/a/minimum"),
        ({"$schema": 7}, "$schema"),
        ({"$ref": "#/definitions/missing"}, "#/definitions/missing"),
        ({"const": float("nan")}, "not JSON"),
        ({"definitions": {"a": {"$ref": "#/definitions/a"}}, "$ref": "#/definitions/a"}, "deep"),
    ],
)
def test_invalid_schemas_raise_schema_error(schema: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SchemaError) as caught:
        validate_document(schema, {"a": "x"})
    assert fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_non_object_schema_raises_schema_error() -> None:
    with pytest.raises(SchemaError):
        validate_document([{"type": "string"}], "x")  # type: ignore[arg-type]


def test_an_absurdly_nested_schema_raises_schema_error() -> None:
    schema: dict[str, Any] = {}
    for _ in range(3000):
        schema = {"properties": {"a": schema}}
    with pytest.raises(SchemaError, match="nested too deeply"):
        validate_document(schema, {})


@pytest.fixture
def no_io(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and block) any network or file access."""
    attempts: list[str] = []
    real_open = builtins.open

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args))
        raise AssertionError("no I/O allowed")

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if "passwd" in str(file) or "schema.json" in str(file):
            return refuse(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(builtins, "open", guarded_open)
    return attempts


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "https://example.com/schema.json"},
        {"properties": {"a": {"$ref": "http://example.com/schema.json#/definitions/x"}}},
        {"$ref": "file:///etc/passwd"},
        {"$id": "https://example.com/root.json", "$ref": "other/schema.json"},
        # Resolved only while validating, below a nested `$id`.
        {"properties": {"a": {"$id": "https://example.com/a/", "$ref": "schema.json"}}},
    ],
)
def test_remote_refs_fail_cleanly_without_io(schema: dict[str, Any], no_io: list[str]) -> None:
    with pytest.raises(SchemaError, match="remote references are never loaded"):
        validate_document(schema, {"a": 1})
    assert no_io == []


def test_meta_schema_refs_resolve_offline(no_io: list[str]) -> None:
    schema = {"$ref": "http://json-schema.org/draft-07/schema#"}
    assert validate_document(schema, {"type": "string"}) == []
    assert validate_document(schema, {"type": 5}) != []
    assert no_io == []


def test_compiled_validators_are_cached_by_content() -> None:
    schemas._compile.cache_clear()
    first = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {}}}
    reordered = {"properties": {"b": {}, "a": {"type": "integer"}}, "type": "object"}
    validate_document(first, {"a": 1})
    validate_document(reordered, {"a": "x"})
    info = schemas._compile.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (1, 1, 256)


def test_invalid_schemas_are_cached_too() -> None:
    schemas._compile.cache_clear()
    for _ in range(2):
        with pytest.raises(SchemaError):
            validate_document({"type": "strin"}, 1)
    assert schemas._compile.cache_info().hits == 1


# --- messages ----------------------------------------------------------------------


def test_failure_messages_use_the_references_wording() -> None:
    errors = ["(root): a is required", "b: Invalid type. Expected: string, given: integer"]
    assert inputs_failure_message(errors) == (
        "StoryRun inputs failed schema validation: object is invalid against Story inputs "
        "schema: [(root): a is required b: Invalid type. Expected: string, given: integer]"
    )
    assert output_failure_message(errors[:1]) == (
        "Story output failed schema validation: object is invalid against Story outputs "
        "schema: [(root): a is required]"
    )
    assert output_failure_message(SchemaError("bad")) == (
        "Story output failed schema validation: error validating against Story outputs schema: bad"
    )


def test_long_messages_are_capped_and_count_what_was_left_out() -> None:
    errors = [f"field{index:04d}: field{index:04d} is required" for index in range(500)]
    message = inputs_failure_message(errors)
    assert len(message) <= MAX_CONDITION_MESSAGE
    assert errors[0] in message
    shown = sum(1 for error in errors if error in message)
    assert message.endswith(f" ... and {500 - shown} more]")


def test_a_single_huge_error_is_cut() -> None:
    message = output_failure_message(["x" * 5000])
    assert len(message) == MAX_CONDITION_MESSAGE
    assert message.endswith("xxx...]")
    message = output_failure_message(["x" * 5000, "(root): a is required"])
    assert len(message) == MAX_CONDITION_MESSAGE
    assert message.endswith("xxx... ... and 1 more]")
    assert len(inputs_failure_message(SchemaError("y" * 5000))) == MAX_CONDITION_MESSAGE


def test_a_message_that_fits_exactly_is_kept_whole() -> None:
    head = "P: object is invalid against S schema: ["
    error = "e" * (100 - len(head) - 1)
    message = schema_failure_message("P", "S", [error], limit=100)
    assert message == f"{head}{error}]"
    assert len(message) == 100


# --- sizes and scrubbing -----------------------------------------------------------------


def test_encoded_size_is_gos_compact_html_safe_json() -> None:
    value = {"b": [1, 2.5, True, None], "a": "<é>"}
    assert encoded_size(value) == len('{"a":"\\u003cé\\u003e","b":[1,2.5,true,null]}'.encode())
    assert encoded_size({}) == 2
    with pytest.raises(ValueError, match="NaN"):
        encoded_size({"x": float("nan")})


def test_scrub_storage_ref_metadata_only_touches_storage_refs() -> None:
    value = {
        "ref": {
            "$bubuStorageRef": "p",
            "$bubuStoragePath": "q",
            "$bubuStorageContentType": "application/json",
            "$bubuStorageSchema": "s",
            "$bubuStorageSchemaVersion": "v1",
        },
        "list": [{"$bubuStorageRef": "p", "$bubuStorageSchema": "s"}],
        "plain": {"$bubuStorageSchema": "kept"},
    }
    before = copy.deepcopy(value)
    assert scrub_storage_ref_metadata(value) == {
        "ref": {"$bubuStorageRef": "p", "$bubuStoragePath": "q"},
        "list": [{"$bubuStorageRef": "p"}],
        "plain": {"$bubuStorageSchema": "kept"},
    }
    assert value == before
