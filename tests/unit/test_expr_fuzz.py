"""Fuzz: random templates over random JSON never escape the evaluator's error types or budgets.

The vocabulary is built from the function catalogue itself (a test checks none is missing),
with int64 extremes, huge and empty strings, deep nesting and non-ASCII text (a lone surrogate
included). Outcomes are asserted, never time: only TemplateError subclasses escape (and never
InternalError, which would be a bug), and no budget runs past its step limit by more than the
largest single charge made.
"""

from __future__ import annotations

import contextlib
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runs_controller.expr import (
    InternalError,
    Limits,
    TemplateError,
    api,
    evaluate_condition,
    extract_step_references,
    resolve_template_string,
    resolve_value,
    validate_template_string,
)
from runs_controller.expr.functions import function_names
from runs_controller.expr.limits import Budget

CATALOGUE = sorted(function_names(allow_now=True, allow_random=True))
EXTREME_NUMBERS = [
    "9223372036854775807",
    "-9223372036854775808",
    str(2**64),
    "1e308",
    "-1e308",
    "-0.0",
    "0",
    "0x7fffffffffffffff",
    "1.5",
    "'é'",
]
STRINGS = ['""', '"a"', '"é"', '"日本"', '"😀"', '"\\ud800"', "`r`", '"%v%q%x%1000000s"']
STRINGS += ['"' + "a" * 5000 + '"', '"2006-01-02"', '"\\n"', '"<&>"', '"1.2.3"', '","']
SYNTAX = ["{{", "}}", "{{-", "-}}", " ", " ", ".", "$", "$x", "$y", "(", ")", "|", ":=", "="]
SYNTAX += [",", "[", "]", '["k"]', "/*", "*/", "\n", "nil", "true", "false"]
KEYWORDS = ["if", "else", "end", "range", "with", "break", "continue", "template"]
FIELDS = ["inputs", "steps", ".inputs.a", ".inputs.items", ".inputs.s", ".steps.a.output", "x"]
RAW_TEXT = ["é", "日本", "😀", "\ud800", "\x00", "\u2028"]  # raw characters, outside literals
ATOMS = CATALOGUE + EXTREME_NUMBERS + STRINGS + SYNTAX + KEYWORDS + FIELDS + RAW_TEXT

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.sampled_from([2**64, -(2**64), 2**63, 1e308, -1e308, -0.0, 0.0, 5e-324])
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["", "é", "日本", "😀", "\ud800", "a" * 10_000, "2006-01-02T15:04:05Z"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


def _nested(depth: int, kind: str) -> str:
    if kind == "parens":
        return "{{ " + "(" * depth + "len .inputs.items" + ")" * depth + " }}"
    opener = {"range": "{{ range $.inputs.items }}", "if": "{{ if . }}", "with": "{{ with . }}"}
    return opener[kind] * depth + "{{ . }}" + "{{ end }}" * depth


templates = (
    st.lists(st.sampled_from(ATOMS), max_size=25).map(" ".join)
    | st.lists(st.sampled_from(ATOMS), max_size=25).map("".join)
    | st.builds(
        lambda fn, args: "{{ " + fn + " " + " ".join(args) + " }}",
        st.sampled_from(CATALOGUE),
        st.lists(st.sampled_from(EXTREME_NUMBERS + STRINGS + FIELDS[2:]), max_size=4),
    )
    | st.builds(_nested, st.integers(0, 130), st.sampled_from(["parens", "range", "if", "with"]))
    | st.text(max_size=40)
)
LIMITS = Limits(timeout_seconds=5.0, max_steps=20_000, max_value_bytes=256 * 1024)


class RecordingBudget(Budget):
    """A Budget that remembers every instance and the largest single charge made to it."""

    made: list[RecordingBudget] = []  # noqa: RUF012 - reset by each example

    def __init__(self, limits: Limits) -> None:
        super().__init__(limits)
        self.largest = 1
        RecordingBudget.made.append(self)

    def charge(self, cost: int) -> None:
        self.largest = max(self.largest, cost)
        super().charge(cost)


def _vars(data: Any, items: Any) -> dict[str, Any]:
    return {"inputs": {"a": data, "items": items, "s": "é日本😀"}, "steps": {"a": {"output": data}}}


def test_vocabulary_reaches_every_catalogue_function() -> None:
    every = function_names(allow_now=True, allow_random=True)
    assert every - set(ATOMS) == set()
    assert {"printf", "uniq", "toJson", "len", "and", "or"} <= set(ATOMS)


@settings(
    max_examples=1200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=templates, data=json_values, items=json_values)
def test_random_templates_raise_only_template_errors(text: str, data: Any, items: Any) -> None:
    RecordingBudget.made.clear()
    vars_ = _vars(data, items)
    with mock.patch.object(api, "Budget", RecordingBudget):
        for call in (
            lambda: resolve_template_string(text, vars_, limits=LIMITS),
            lambda: resolve_template_string(text, vars_, limits=LIMITS, deterministic=True),
            lambda: evaluate_condition(text, vars_, limits=LIMITS),
            lambda: resolve_value({"k": [text, {"$bubuTemplate": text}]}, vars_, limits=LIMITS),
            lambda: validate_template_string(text, roots=["inputs"], allow_range=True),
        ):
            try:
                call()
            except TemplateError as exc:
                assert not isinstance(exc, InternalError), str(exc)
    assert isinstance(extract_step_references(text), set)
    for budget in RecordingBudget.made:
        assert budget.steps <= budget.limits.max_steps + budget.largest


@settings(max_examples=200, deadline=None)
@given(data=json_values)
def test_printing_any_json_value(data: Any) -> None:
    out = resolve_template_string(
        "v={{ .inputs.a }} j={{ toJson .inputs.a }}", _vars(data, []), max_output_bytes=0
    )
    assert isinstance(out, str)
    assert out.startswith("v=")


EXTREME_ARGS = [
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e308",
    "-0.0",
    '""',
    '"20062006"',
    '"é日本😀\\ud800"',
    ".inputs.a",
    "nil",
    "(list 1 (list 2.5) (dict))",
    '(dict "a" 1e308)',
]
SWEEP_DATA = _vars(["a" * 100_000, {"k": [9223372036854775807, -0.0, None]}], [])


def test_every_function_with_every_pair_of_extreme_arguments() -> None:
    """Exhaustive: each function, each argument tuple of length 0 to 2 from EXTREME_ARGS."""
    tuples: list[tuple[str, ...]] = [()]
    tuples += [(a,) for a in EXTREME_ARGS]
    tuples += [(a, b) for a in EXTREME_ARGS for b in EXTREME_ARGS]
    for fn in CATALOGUE:
        for args in tuples:
            text = "{{ " + " ".join((fn, *args)) + " }}"
            try:
                resolve_template_string(text, SWEEP_DATA, limits=LIMITS)
            except TemplateError as exc:
                assert not isinstance(exc, InternalError), f"{text}: {exc}"


@settings(max_examples=600, deadline=None)
@given(data=json_values, fn=st.sampled_from(CATALOGUE))
def test_every_function_over_any_value(data: Any, fn: str) -> None:
    """Each catalogue function applied to arbitrary data, alone and with extreme arguments."""
    for text in (
        f"{{{{ {fn} .inputs.a }}}}",
        f"{{{{ {fn} .inputs.a .inputs.a }}}}",
        f"{{{{ .inputs.a | {fn} 9223372036854775807 }}}}",
        f'{{{{ {fn} "" .inputs.a -9223372036854775808 }}}}',
    ):
        with contextlib.suppress(TemplateError):
            resolve_template_string(text, _vars(data, []), limits=LIMITS)
