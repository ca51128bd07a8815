"""Fuzz: random templates and random JSON never crash the evaluator outside its error types."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runs_controller.expr import (
    Limits,
    TemplateError,
    evaluate_condition,
    extract_step_references,
    resolve_template_string,
    validate_template_string,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
ATOMS = [
    "{{",
    "}}",
    "{{-",
    "-}}",
    " ",
    ".",
    "$",
    "inputs",
    "steps",
    "(",
    ")",
    "|",
    '"a"',
    "'b'",
    "`r`",
    "1",
    "2.5",
    "-3",
    "0x1F",
    "nil",
    "true",
    "if",
    "else",
    "end",
    "range",
    "with",
    "break",
    ":=",
    "=",
    ",",
    "$x",
    "index",
    "len",
    "printf",
    '"%v"',
    "eq",
    "and",
    "or",
    "not",
    "default",
    "toJson",
    "upper",
    "add",
    "list",
    "dict",
    "dig",
    "[",
    "]",
    '["k"]',
    "a",
    "items",
    "/*",
    "*/",
    "\n",
    "x",
    "slice",
    "join",
    "fromJson",
    "hash_of",
    "type_of",
]
templates = st.lists(st.sampled_from(ATOMS), max_size=25).map("".join) | st.text(max_size=40)
LIMITS = Limits(timeout_seconds=2.0, max_steps=20_000)


def _vars(data: Any, items: Any) -> dict[str, Any]:
    return {"inputs": {"a": data, "items": items, "k": data}, "steps": {"a": {"output": data}}}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=templates, data=json_values, items=json_values)
def test_random_templates_raise_only_template_errors(text: str, data: Any, items: Any) -> None:
    start = time.monotonic()
    for call in (
        lambda: resolve_template_string(text, _vars(data, items), limits=LIMITS),
        lambda: evaluate_condition(text, _vars(data, items)),
        lambda: validate_template_string(text, roots=["inputs"]),
    ):
        with contextlib.suppress(TemplateError):
            call()
    assert isinstance(extract_step_references(text), set)
    assert time.monotonic() - start < 3 * LIMITS.timeout_seconds + 1


@settings(max_examples=200, deadline=None)
@given(data=json_values)
def test_printing_any_json_value(data: Any) -> None:
    out = resolve_template_string("v={{ .inputs.a }} j={{ toJson .inputs.a }}", _vars(data, []))
    assert isinstance(out, str)
    assert out.startswith("v=")
