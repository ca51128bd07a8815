"""The SDK's pure parts: reading the pod environment, failure classes, effect details (the
lease arithmetic is `engine.leases`, shared with the EffectClaim controller)."""

from __future__ import annotations

import datetime

import pytest

from runs_controller.sdk import RateLimited, Retryable, StepEnvironment, Terminal
from runs_controller.sdk.effects import MAX_DETAILS_BYTES, _details
from runs_controller.sdk.environment import EnvironmentError_

T0 = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.UTC)


def test_the_environment_contract_is_read_with_its_types() -> None:
    env = StepEnvironment.from_environ(
        {
            "BUBU_STEPRUN_NAME": "r-s",
            "BUBU_STEPRUN_NAMESPACE": "ns",
            "BUBU_TRIGGER_DATA": '{"a": 1}',
            "BUBU_TEMPLATE_CONTEXT": '{"inputs": {}, "steps": {}}',
            "BUBU_STEP_TIMEOUT": "1m30s",
            "BUBU_DEBUG": "true",
            "BUBU_STORY_NAME": "story",
        }
    )
    assert (env.steprun_name, env.namespace, env.inputs) == ("r-s", "ns", {"a": 1})
    assert env.timeout_seconds == 90
    assert env.debug and env.story_name == "story"
    assert env.template_context == {"inputs": {}, "steps": {}}
    assert env.config == {}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "BUBU_STEPRUN_NAME and BUBU_STEPRUN_NAMESPACE are required"),
        (
            {"BUBU_STEPRUN_NAME": "a", "BUBU_STEPRUN_NAMESPACE": "n", "BUBU_TRIGGER_DATA": "["},
            "BUBU_TRIGGER_DATA is not valid JSON",
        ),
        (
            {"BUBU_STEPRUN_NAME": "a", "BUBU_STEPRUN_NAMESPACE": "n", "BUBU_TRIGGER_DATA": "[]"},
            "must be a JSON object",
        ),
        (
            {"BUBU_STEPRUN_NAME": "a", "BUBU_STEPRUN_NAMESPACE": "n", "BUBU_STEP_TIMEOUT": "5x"},
            "not a Go duration",
        ),
    ],
)
def test_a_broken_environment_says_what_is_wrong(environ: dict[str, str], message: str) -> None:
    with pytest.raises(EnvironmentError_, match=message):
        StepEnvironment.from_environ(environ)


def test_failures_carry_the_exit_class_the_controller_retries_by() -> None:
    assert Retryable("x").exit_class == "retry"
    assert RateLimited("x").exit_class == "rateLimited"
    terminal = Terminal("bad", error_type="validation_error", code="E1", details={"f": 1})
    assert (terminal.exit_class, terminal.error_type, terminal.code) == (
        "terminal",
        "validation_error",
        "E1",
    )
    with pytest.raises(ValueError, match="error_type must be one of"):
        Terminal("x", error_type="http_error")


def test_large_effect_details_are_summarised() -> None:
    assert _details({"a": 1}) == {"a": 1}
    summary = _details({"blob": "x" * (MAX_DETAILS_BYTES + 1)})
    assert summary["truncated"] is True
    assert summary["sizeBytes"] > MAX_DETAILS_BYTES
    assert len(summary["sha256"]) == 64
