"""The reference evaluator's conformance corpus: every case must pass (§8.11.3)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from runs_controller.expr import (
    EvaluationBlocked,
    OffloadedData,
    TemplateError,
    evaluate_condition,
    extract_step_references_strict,
    resolve_template_string,
    resolve_value,
    validate_template_string,
)

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "conformance" / "templating.jsonl"
CASES: list[dict[str, Any]] = [
    json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()
]


def same_json(a: Any, b: Any) -> bool:
    """JSON equality where numbers compare by value (Go float64 3 == Python int 3)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=0.0)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def run_case(case: dict[str, Any]) -> Any:
    op, vars_ = case["op"], case.get("vars") or {}
    if op == "resolve_template_string":
        return resolve_template_string(
            case["expr"],
            vars_,
            max_output_bytes=case.get("max_output_bytes"),
            deterministic=bool(case.get("deterministic", False)),
        )
    if op == "evaluate_condition":
        return evaluate_condition(case["expr"], vars_)
    if op == "resolve_value":
        return resolve_value(case["value"], vars_)
    if op == "validate_template_string":
        scope = case["scope"]
        validate_template_string(
            case["expr"],
            roots=scope["roots"],
            allow_now=scope["allow_now"],
            allow_random=scope["allow_random"],
            allow_range=scope["allow_range"],
            scope=scope["name"],
        )
        return "ok"
    if op == "extract_step_references":
        return sorted(extract_step_references_strict(case["expr"]))
    raise AssertionError(f"unknown op {op}")


KINDS: dict[str, type[TemplateError]] = {"blocked": EvaluationBlocked, "offloaded": OffloadedData}


def test_corpus_is_complete() -> None:
    assert len(CASES) == 120
    assert len({c["id"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_conformance(case: dict[str, Any]) -> None:
    expect = case["expect"]
    if "error" in expect:
        with pytest.raises(TemplateError) as info:
            run_case(case)
        kind = expect["error"]
        if kind in KINDS:
            assert isinstance(info.value, KINDS[kind]), str(info.value)
        else:
            assert not isinstance(info.value, EvaluationBlocked | OffloadedData), str(info.value)
        if "message" in expect:  # the text users read in Failed conditions: byte for byte
            assert str(info.value) == expect["message"]
        return
    got = run_case(case)
    assert same_json(got, expect["result"]), f"{got!r} != {expect['result']!r}"
    if expect.get("go_type") == "string":
        assert isinstance(got, str)
