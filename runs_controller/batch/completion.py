"""What a finished Job (or an SDK-reported end) means for the StepRun (§4.7, §4.8).

Pure decisions: the checks after a success (ruling 5), the exit code of a failed Job's pods,
whether a failure is retried (ruling 6) and the status that results.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from runs_controller.batch.status import PhaseChange, observed, with_phase
from runs_controller.engine.durations import format_go_duration
from runs_controller.engine.finality import max_retries_of, retry_due
from runs_controller.engine.retry import classify_exit_code, compute_retry_delay, retry_message
from runs_controller.engine.schemas import SchemaError, schema_failure_message, validate_document
from runs_controller.expr.api import evaluate_condition
from runs_controller.expr.errors import TemplateError

if TYPE_CHECKING:
    import random
    from collections.abc import Iterable

    from runs_controller.api.bubustack.story import Step
    from runs_controller.api.catalog.engramtemplate import EngramTemplate
    from runs_controller.api.k8s import Pod
    from runs_controller.api.runs.steprun import StepRun, StepRunStatus

REASON_OUTPUT_SCHEMA_FAILED = "OutputSchemaFailed"
REASON_EXPRESSION_FAILED = "ExpressionFailed"
REASON_RETRY_SCHEDULED = "RetryScheduled"
REASON_COMPLETED = "Completed"
REASON_TIMED_OUT = "TimedOut"
REASON_EXECUTION_FAILED = "ExecutionFailed"

UNKNOWN_EXIT_CODE = -1
TIMEOUT_EXIT_CODE = 124
COMPLETED_BY_CONTROLLER = "StepRun pod completed successfully; final status updated by controller."
TIMEOUT_MESSAGE = "Job execution timed out. Check step timeout configuration and pod logs."
FAILED_MESSAGE = "Job execution failed. Check pod logs for details."


@dataclass(frozen=True)
class CheckFailure:
    reason: str
    message: str


def output_check(steprun: StepRun, template: EngramTemplate) -> CheckFailure | None:
    """The output against the EngramTemplate's `outputSchema`."""
    schema = template.spec.output_schema
    if not schema:
        return None
    name = template.metadata.name if template.metadata else ""
    schema_name = f"EngramTemplate {name} output"
    output = observed(steprun).output
    prefix = "StepRun output failed schema validation"
    if output is None:
        return CheckFailure(
            REASON_OUTPUT_SCHEMA_FAILED,
            f"{prefix}: {schema_name} output is empty but a schema is defined",
        )
    try:
        problems: list[str] | SchemaError = validate_document(schema, output)
    except SchemaError as exc:
        problems = exc
    if not problems:
        return None
    return CheckFailure(
        REASON_OUTPUT_SCHEMA_FAILED, schema_failure_message(prefix, schema_name, problems)
    )


def post_execution_check(
    steprun: StepRun, step: Step | None, *, deterministic: bool = False
) -> CheckFailure | None:
    """The step's `postExecution.condition`, which sees only this step's output (§7.6)."""
    check = step.post_execution if step is not None else None
    if check is None:
        return None
    output = observed(steprun).output or {}
    values = {"steps": {steprun.spec.step_id: {"output": output}}}
    try:
        verdict = evaluate_condition(check.condition, values, deterministic=deterministic)
    except TemplateError as exc:
        detail = f"post-execution condition evaluation error: {exc}"
    else:
        if verdict:
            return None
        detail = check.failure_message or "post-execution condition evaluated to false"
    return CheckFailure(REASON_EXPRESSION_FAILED, f"Post-execution verification failed: {detail}")


def success_failure(
    steprun: StepRun, template: EngramTemplate, step: Step | None, *, deterministic: bool = False
) -> CheckFailure | None:
    """Why a reported success does not stand, if it does not (ruling 5)."""
    return output_check(steprun, template) or post_execution_check(
        steprun, step, deterministic=deterministic
    )


def missing_output_keys(steprun: StepRun, template: EngramTemplate) -> tuple[str, ...]:
    """Declared output keys the output lacks (informational: a Warning event)."""
    declared = template.spec.declared_output_keys or []
    output = observed(steprun).output or {}
    return tuple(sorted(key for key in declared if key not in output))


def failed_status(
    steprun: StepRun, failure: CheckFailure, *, now: datetime.datetime
) -> StepRunStatus:
    """A deterministic failure: exit class `terminal`, no retry."""
    status = with_phase(steprun, PhaseChange("Failed", failure.reason, failure.message), now=now)
    return msgspec.structs.replace(
        status, last_failure_msg=failure.message, exit_class="terminal", next_retry_at=None
    )


def succeeded_status(
    steprun: StepRun, *, now: datetime.datetime, by_controller: bool
) -> StepRunStatus:
    """Succeeded with the conditions of success and `lastOutputAt` stamped once."""
    message = COMPLETED_BY_CONTROLLER if by_controller else _sdk_message(steprun)
    status = with_phase(steprun, PhaseChange("Succeeded", REASON_COMPLETED, message), now=now)
    updates: dict[str, Any] = {"next_retry_at": None}
    if status.output is not None and status.last_output_at is None:
        updates["last_output_at"] = now
    if by_controller:
        updates["exit_code"] = status.exit_code or 0
        updates["exit_class"] = status.exit_class or "success"
    return msgspec.structs.replace(status, **updates)


def _sdk_message(steprun: StepRun) -> str:
    ready = next((c for c in observed(steprun).conditions or () if c.type == "Ready"), None)
    if ready is not None and ready.status == "True" and ready.message:
        return ready.message
    return "Step completed successfully"


def pod_exit_code(pods: Iterable[Pod]) -> int:
    """The first non-zero exit code of a terminated container, scanning the failed pods from
    the end of the list; -1 when there is none (pods gone, never started)."""
    for pod in reversed(list(pods)):
        if pod.status is None or pod.status.phase != "Failed":
            continue
        for container in pod.status.container_statuses or ():
            terminated = container.state.terminated if container.state else None
            if terminated is not None and terminated.exit_code != 0:
                return terminated.exit_code
    return UNKNOWN_EXIT_CODE


@dataclass(frozen=True)
class RetryPlan:
    status: StepRunStatus
    attempt: int
    max_retries: int
    delay_ns: int
    exit_class: str

    @property
    def delay_seconds(self) -> float:
        return self.delay_ns / 1e9


def plan_retry(
    steprun: StepRun,
    *,
    exit_class: str,
    exit_code: int | None,
    failure_message: str,
    default_max_retries: int,
    now: datetime.datetime,
    rng: random.Random | None = None,
) -> RetryPlan | None:
    """The retry of a failed attempt (ruling 6), or None when the class or budget says no."""
    probe = msgspec.structs.replace(
        steprun,
        status=msgspec.structs.replace(observed(steprun), phase="Failed", exit_class=exit_class),
    )
    if not retry_due(probe, default_max_retries):
        return None
    status = observed(steprun)
    attempt = max(0, status.retries or 0) + 1
    budget = max_retries_of(steprun, default_max_retries)
    delay = compute_retry_delay(steprun.spec.retry, attempt, rng=rng)
    message = retry_message(delay, attempt, budget)
    pending = with_phase(
        steprun,
        PhaseChange("Pending", REASON_RETRY_SCHEDULED, message),
        now=now,
        base=msgspec.structs.replace(status, finished_at=None, duration=None),
    )
    pending = msgspec.structs.replace(
        pending,
        retries=attempt,
        next_retry_at=now + datetime.timedelta(microseconds=delay // 1000),
        last_failure_msg=failure_message,
        finished_at=None,
        duration=None,
        exit_class=status.exit_class or exit_class,
        exit_code=exit_code if exit_code else status.exit_code,
    )
    return RetryPlan(pending, attempt, budget, delay, exit_class)


def fallback_failure(steprun: StepRun, *, exit_code: int, now: datetime.datetime) -> StepRunStatus:
    """The status the controller writes when the Job failed and the SDK said nothing."""
    status = observed(steprun)
    message = status.last_failure_msg or (
        TIMEOUT_MESSAGE if exit_code == TIMEOUT_EXIT_CODE else FAILED_MESSAGE
    )
    phase = "Timeout" if exit_code == TIMEOUT_EXIT_CODE else "Failed"
    reason = REASON_TIMED_OUT if phase == "Timeout" else REASON_EXECUTION_FAILED
    result = with_phase(steprun, PhaseChange(phase, reason, message), now=now)
    updates: dict[str, Any] = {"last_failure_msg": message, "next_retry_at": None}
    if exit_code != 0:
        updates["exit_code"] = exit_code
        updates["exit_class"] = status.exit_class or classify_exit_code(exit_code)
    return msgspec.structs.replace(result, **updates)


def format_delay(delay_ns: int) -> str:
    return format_go_duration(delay_ns)


def exit_class_of(steprun: StepRun, exit_code: int) -> str:
    """The SDK's exit class when it wrote one, else the class of the pod's exit code."""
    return observed(steprun).exit_class or classify_exit_code(exit_code)


__all__ = [
    "COMPLETED_BY_CONTROLLER",
    "CheckFailure",
    "RetryPlan",
    "exit_class_of",
    "failed_status",
    "fallback_failure",
    "format_delay",
    "missing_output_keys",
    "output_check",
    "plan_retry",
    "pod_exit_code",
    "post_execution_check",
    "succeeded_status",
    "success_failure",
]
