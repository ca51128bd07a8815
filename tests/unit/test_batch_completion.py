"""The StepRun status decisions: phases and conditions, checks after a success, exit codes of
failed pods, retries and the fallback failure (controller-behaviour.md §4.7-4.8, rulings 5, 6,
19, 30)."""

from __future__ import annotations

import datetime
import random
from typing import Any

import pytest

from runs_controller.api import codec
from runs_controller.api.bubustack.story import Step, Story
from runs_controller.api.catalog.engramtemplate import EngramTemplate
from runs_controller.api.k8s import Pod
from runs_controller.api.runs.steprun import StepRun
from runs_controller.batch import completion
from runs_controller.batch.status import (
    CONTROLLER_FIELDS,
    PhaseChange,
    conditions_follow_phase,
    owned,
    schema_refs,
    with_phase,
)
from runs_controller.batch.steps import dependency_step, story_step

NOW = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.UTC)


def steprun(status: dict[str, Any] | None = None, **spec: Any) -> StepRun:
    body: dict[str, Any] = {
        "metadata": {"name": "run-work", "namespace": "ns", "generation": 2, "uid": "u1"},
        "spec": {
            "storyRunRef": {"name": "run"},
            "stepId": "work",
            "engramRef": {"name": "echo"},
            **spec,
        },
    }
    if status is not None:
        body["status"] = status
    return codec.convert(body, StepRun)


def template(**spec: Any) -> EngramTemplate:
    body = {
        "metadata": {"name": "tpl"},
        "spec": {"version": "1", "supportedModes": ["job"], "image": "x", **spec},
    }
    return codec.convert(body, EngramTemplate)


def step(**fields: Any) -> Step:
    return codec.convert({"name": "work", **fields}, Step)


def pod(phase: str, *codes: int) -> Pod:
    statuses = [
        {"name": f"c{i}", "state": {"terminated": {"exitCode": code}}}
        for i, code in enumerate(codes)
    ]
    body = {"metadata": {"name": "p"}, "status": {"phase": phase, "containerStatuses": statuses}}
    return codec.convert(body, Pod)


# -- phases and conditions ----------------------------------------------------------------------


def test_pending_starts_the_clock_and_conditions_follow_the_phase() -> None:
    status = with_phase(steprun(), PhaseChange("Pending", message="waiting"), now=NOW)
    assert status.started_at == NOW
    assert status.retries == 0
    assert status.observed_generation == 2
    assert {c.type: c.status for c in status.conditions or []} == {
        "Ready": "False",
        "Progressing": "True",
        "Degraded": "False",
    }
    assert not conditions_follow_phase(steprun({"phase": "Succeeded"}).status)  # type: ignore[arg-type]
    assert conditions_follow_phase(status)


def test_a_terminal_phase_stamps_finished_and_duration_once() -> None:
    started = NOW - datetime.timedelta(seconds=65)
    before = steprun({"phase": "Running", "startedAt": started.isoformat()})
    failed = with_phase(before, PhaseChange("Failed", "ExecutionFailed", "boom"), now=NOW)
    assert (failed.finished_at, failed.duration) == (NOW, "1m5s")
    assert {c.type: (c.status, c.reason) for c in failed.conditions or []}["Degraded"] == (
        "True",
        "ExecutionFailed",
    )
    later = with_phase(
        steprun(codec.to_builtins(failed)),
        PhaseChange("Failed", "ExecutionFailed", "boom"),
        now=NOW + datetime.timedelta(hours=1),
    )
    assert (later.finished_at, later.duration) == (NOW, "1m5s")


def test_an_end_without_a_start_gets_one() -> None:
    status = with_phase(steprun({"phase": "Succeeded"}), PhaseChange("Succeeded"), now=NOW)
    assert (status.started_at, status.finished_at, status.duration) == (NOW, NOW, "0s")
    blocked = with_phase(steprun(), PhaseChange("Blocked", "ReferenceNotFound", "x"), now=NOW)
    assert blocked.started_at is None


def test_blocked_keeps_its_message_in_last_failure_msg_until_unblocked() -> None:
    status = with_phase(steprun(), PhaseChange("Blocked", "ReferenceNotFound", "no"), now=NOW)
    assert status.last_failure_msg == "no"
    unblocked = with_phase(
        steprun(codec.to_builtins(status)), PhaseChange("Running", "Scheduled"), now=NOW
    )
    assert unblocked.last_failure_msg is None


def test_the_apply_body_never_carries_the_sdks_fields() -> None:
    sdk = {
        "phase": "Succeeded",
        "output": {"a": 1},
        "error": {"type": "unknown", "message": "m", "version": "v1"},
        "signals": {"s": {"seq": 1}},
        "podName": "p",
        "retries": 0,
    }
    body = codec.to_builtins(owned(steprun(sdk).status))  # type: ignore[arg-type]
    assert body == {"phase": "Succeeded", "retries": 0}
    assert "output" not in CONTROLLER_FIELDS


def test_schema_refs_name_the_engram_and_its_version() -> None:
    tpl = template(inputSchema={"type": "object"}, outputSchema={"type": "object"})
    inputs, output = schema_refs(steprun(), tpl, "1.2")
    assert inputs is not None and output is not None
    assert (inputs.ref, inputs.version) == ("bubu://engram/ns/echo/input", "1.2")
    assert output.ref == "bubu://engram/ns/echo/output"
    assert schema_refs(steprun(), template(), "1.2") == (None, None)


# -- checks after a success (ruling 5) ----------------------------------------------------------


def test_output_violating_the_template_schema_fails_the_step() -> None:
    tpl = template(outputSchema={"type": "object", "required": ["answer"]})
    bad = steprun({"phase": "Succeeded", "output": {"other": 1}})
    failure = completion.success_failure(bad, tpl, None)
    assert failure is not None
    assert failure.reason == "OutputSchemaFailed"
    assert failure.message.startswith("StepRun output failed schema validation: ")
    assert "answer" in failure.message
    good = steprun({"phase": "Succeeded", "output": {"answer": 42}})
    assert completion.success_failure(good, tpl, None) is None
    empty = completion.success_failure(steprun({"phase": "Succeeded"}), tpl, None)
    assert empty is not None and "output is empty but a schema is defined" in empty.message


def test_post_execution_sees_only_this_steps_output() -> None:
    check = step(postExecution={"condition": "{{ gt steps.work.output.n 2 }}"})
    assert completion.post_execution_check(steprun({"output": {"n": 3}}), check) is None
    failed = completion.post_execution_check(steprun({"output": {"n": 1}}), check)
    assert failed is not None and failed.reason == "ExpressionFailed"
    assert failed.message == (
        "Post-execution verification failed: post-execution condition evaluated to false"
    )
    custom = step(postExecution={"condition": "false", "failureMessage": "too few rows"})
    message = completion.post_execution_check(steprun({"output": {}}), custom)
    assert message is not None
    assert message.message == "Post-execution verification failed: too few rows"
    broken = step(postExecution={"condition": "{{ inputs.x.y }}"})
    error = completion.post_execution_check(steprun({"output": {}}), broken)
    assert error is not None and "post-execution condition evaluation error" in error.message


def test_success_confirmed_by_the_controller_stamps_last_output_once() -> None:
    done = completion.succeeded_status(
        steprun({"phase": "Running", "output": {"a": 1}}), now=NOW, by_controller=True
    )
    assert (done.phase, done.last_output_at, done.exit_code, done.exit_class) == (
        "Succeeded",
        NOW,
        0,
        "success",
    )
    ready = next(c for c in done.conditions or [] if c.type == "Ready")
    assert ready.message == completion.COMPLETED_BY_CONTROLLER
    again = completion.succeeded_status(
        steprun(codec.to_builtins(done) | {"output": {"a": 1}}),
        now=NOW + datetime.timedelta(minutes=1),
        by_controller=False,
    )
    assert again.last_output_at == NOW


def test_declared_output_keys_missing_from_the_output() -> None:
    tpl = template(declaredOutputKeys=["a", "b", "c"])
    assert completion.missing_output_keys(steprun({"output": {"b": 1}}), tpl) == ("a", "c")


# -- exit codes, retries, fallback ---------------------------------------------------------------


def test_the_exit_code_is_the_first_non_zero_of_the_failed_pods_from_the_end() -> None:
    pods = [pod("Failed", 2), pod("Running", 9), pod("Failed", 0, 137), pod("Succeeded", 5)]
    assert completion.pod_exit_code(pods) == 137
    assert completion.pod_exit_code([pod("Failed", 0)]) == -1
    assert completion.pod_exit_code([]) == -1


def test_a_retryable_failure_with_budget_left_is_planned_with_the_policy_delay() -> None:
    retry = {"maxRetries": 2, "delay": "2s", "backoff": "exponential"}
    running = steprun({"phase": "Running", "retries": 1}, retry=retry)
    plan = completion.plan_retry(
        running,
        exit_class="retry",
        exit_code=137,
        failure_message="oom",
        default_max_retries=3,
        now=NOW,
        rng=random.Random(1),  # noqa: S311 - a seeded draw, not security
    )
    assert plan is not None
    assert (plan.attempt, plan.max_retries, plan.delay_ns) == (2, 2, 4_000_000_000)
    status = plan.status
    assert (status.phase, status.retries, status.exit_code, status.exit_class) == (
        "Pending",
        2,
        137,
        "retry",
    )
    assert status.next_retry_at == NOW + datetime.timedelta(seconds=4)
    assert status.finished_at is None and status.duration is None
    ready = next(c for c in status.conditions or [] if c.type == "Ready")
    assert (ready.reason, ready.message) == ("RetryScheduled", "Retrying in 4s (attempt 2/2)")


@pytest.mark.parametrize(
    ("exit_class", "retries", "max_retries"),
    [("terminal", 0, 3), ("retry", 2, 2), ("unknown", 0, 0), ("success", 0, 3)],
)
def test_no_retry_for_terminal_classes_or_an_exhausted_budget(
    exit_class: str, retries: int, max_retries: int
) -> None:
    failed = steprun({"phase": "Running", "retries": retries}, retry={"maxRetries": max_retries})
    plan = completion.plan_retry(
        failed,
        exit_class=exit_class,
        exit_code=1,
        failure_message="x",
        default_max_retries=3,
        now=NOW,
    )
    assert plan is None


def test_the_fallback_failure_reads_timeout_for_124_and_keeps_the_sdks_message() -> None:
    timed_out = completion.fallback_failure(steprun({"phase": "Running"}), exit_code=124, now=NOW)
    assert (timed_out.phase, timed_out.exit_code, timed_out.exit_class) == ("Timeout", 124, "retry")
    assert timed_out.last_failure_msg == completion.TIMEOUT_MESSAGE
    unknown = completion.fallback_failure(
        steprun({"phase": "Running", "lastFailureMsg": "disk full"}), exit_code=-1, now=NOW
    )
    assert (unknown.phase, unknown.exit_code, unknown.exit_class) == ("Failed", -1, "unknown")
    assert unknown.last_failure_msg == "disk full"


def test_the_sdks_exit_class_wins_over_the_pods_exit_code() -> None:
    assert completion.exit_class_of(steprun({"exitClass": "rateLimited"}), 1) == "rateLimited"
    assert completion.exit_class_of(steprun(), 143) == "retry"


# -- which step a StepRun runs -------------------------------------------------------------------


def test_a_parallel_branch_finds_its_branch_and_waits_on_the_parallel_step() -> None:
    story = codec.convert(
        (
            {
                "metadata": {"name": "s"},
                "spec": {
                    "steps": [
                        {"name": "work", "ref": {"name": "echo"}},
                        {
                            "name": "fan",
                            "type": "parallel",
                            "with": {"steps": [{"name": "b1", "ref": {"name": "echo"}}]},
                        },
                    ]
                },
            }
        ),
        Story,
    )
    plain = steprun()
    assert story_step(story, plain) is not None
    assert story_step(story, plain).name == "work"  # type: ignore[union-attr]
    branch = codec.convert(
        (
            {
                "metadata": {"name": "run-fan-b1", "labels": {"bubustack.io/parent-step": "fan"}},
                "spec": {"storyRunRef": {"name": "run"}, "stepId": "b1"},
            }
        ),
        StepRun,
    )
    found = story_step(story, branch)
    assert found is not None and found.name == "b1"
    assert dependency_step(branch) == "fan"
    assert dependency_step(plain) == "work"
    assert story_step(None, plain) is None
