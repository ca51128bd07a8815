"""Step states of a StoryRun: buckets, the sync from StepRuns, counters, the `steps` context.

`status.stepStates` is the run's memory of its steps; the StepRuns are the truth for engram
steps. A sync never turns a terminal state back into a running one (ruling 24) and never reports
a failure the StepRun controller is about to retry (ruling 6, through `engine.finality`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runs_controller.api.enums import TERMINAL_PHASES
from runs_controller.api.runs.storyrun import StepState, StoryRun
from runs_controller.dag.graph import normalize_alias
from runs_controller.dag.limits import is_queued_message
from runs_controller.engine.conditions import ready_progressing_degraded
from runs_controller.engine.finality import is_final, success_unconfirmed

if TYPE_CHECKING:
    import datetime
    from collections.abc import Iterable, Mapping, Sequence

    from runs_controller.api.bubustack.story import Step, StorySpec
    from runs_controller.api.meta import Condition
    from runs_controller.api.runs.steprun import StepRun

RUNNING_PHASES = frozenset({"Running", "Pending", "Paused"})
DEGRADED_PHASES = frozenset({"Failed", "Timeout", "Aborted"})
DEFAULT_REASONS = {
    "Pending": "Pending",
    "Running": "Running",
    "Paused": "Paused",
    "Blocked": "Blocked",
    "Scheduling": "Scheduled",
    "Timeout": "TimedOut",
    "Skipped": "Skipped",
    "Compensated": "Compensated",
    "Canceled": "Canceled",
    "Finished": "Canceled",
    "Aborted": "Canceled",
    "Succeeded": "Completed",
    "Failed": "ExecutionFailed",
}
RETRY_SCHEDULED_MESSAGE = "Retry scheduled after a retryable failure"
VERIFYING_MESSAGE = "Verifying the reported success (output schema, postExecution)"


def is_terminal(phase: str | None) -> bool:
    return phase in TERMINAL_PHASES


def default_reason(phase: str) -> str:
    return DEFAULT_REASONS.get(phase, "Reconciling")


def all_steps(spec: StorySpec) -> tuple[Step, ...]:
    return (*spec.steps, *(spec.compensations or ()), *(spec.finally_ or ()))


@dataclass(frozen=True)
class Buckets:
    """Steps of one list by state (§3.4)."""

    completed: frozenset[str]
    running: frozenset[str]
    failed: frozenset[str]
    allowed_failures: frozenset[str]


def bucket(steps: Sequence[Step], states: Mapping[str, StepState]) -> Buckets:
    completed: set[str] = set()
    running: set[str] = set()
    failed: set[str] = set()
    allowed: set[str] = set()
    for step in steps:
        state = states.get(step.name)
        if state is None:
            continue
        phase = state.phase
        if phase in ("Succeeded", "Skipped"):
            completed.add(step.name)
        elif phase in TERMINAL_PHASES:
            if step.allow_failure:
                completed.add(step.name)
                allowed.add(step.name)
            else:
                failed.add(step.name)
        elif phase in RUNNING_PHASES and not (
            phase == "Pending" and is_queued_message(state.message or "")
        ):
            running.add(step.name)
    return Buckets(frozenset(completed), frozenset(running), frozenset(failed), frozenset(allowed))


def step_phase_from_steprun(steprun: StepRun, default_max_retries: int) -> str | None:
    """The step phase a StepRun stands for; a failure with a retry due reads Running."""
    status = steprun.status
    if status is None or not status.phase:
        return None
    if is_terminal(status.phase) and not is_final(steprun, default_max_retries):
        return "Running"
    return status.phase


def sync_from_stepruns(
    states: Mapping[str, StepState],
    stepruns: Iterable[StepRun],
    *,
    default_max_retries: int,
) -> dict[str, StepState]:
    """States updated from the run's StepRuns (§3.10), keyed by `spec.stepId`."""
    merged = dict(states)
    for steprun in stepruns:
        phase = step_phase_from_steprun(steprun, default_max_retries)
        if phase is None:
            continue
        status = steprun.status
        assert status is not None  # noqa: S101 - phase came from it
        step_id = steprun.spec.step_id
        current = merged.get(step_id)
        if current is not None and is_terminal(current.phase):
            continue  # a terminal state is final for the run (ruling 24): a StepRun stopped
            # after its step was skipped (stop, fail-fast) does not rewrite it
        pending = phase == "Running" and is_terminal(status.phase)
        if pending and success_unconfirmed(steprun):
            message: str | None = VERIFYING_MESSAGE
        elif pending:
            message = RETRY_SCHEDULED_MESSAGE
        elif status.last_failure_msg:
            message = status.last_failure_msg
        else:
            message = current.message if current is not None and current.phase == phase else None
        desired = StepState(
            phase=phase,
            message=message,
            started_at=status.started_at or (current.started_at if current else None),
            finished_at=status.finished_at if is_terminal(phase) else None,
            sub_story_run_name=current.sub_story_run_name if current else None,
        )
        if current is None or _differs(current, desired):
            merged[step_id] = desired
    return merged


def _differs(current: StepState, desired: StepState) -> bool:
    return (
        current.phase != desired.phase
        or (desired.started_at is not None and current.started_at is None)
        or (desired.finished_at is not None and current.finished_at is None)
        or (bool(desired.message) and desired.message != current.message)
    )


def with_phase(
    state: StepState | None, phase: str, message: str | None, now: datetime.datetime
) -> StepState:
    """A state moved to `phase` with the engine's timestamps (started once, finished once)."""
    started = state.started_at if state is not None and state.started_at else now
    finished = None
    if is_terminal(phase):
        finished = state.finished_at if state is not None and state.finished_at else now
    return StepState(
        phase=phase,
        message=message,
        started_at=started,
        finished_at=finished,
        sub_story_run_name=state.sub_story_run_name if state is not None else None,
    )


@dataclass(frozen=True)
class Counters:
    steps_total: int
    steps_complete: int
    steps_failed: int
    steps_skipped: int
    active: tuple[str, ...]
    completed: tuple[str, ...]
    allowed_failures: tuple[str, ...]


def counters(spec: StorySpec, states: Mapping[str, StepState]) -> Counters:
    """Ruling 7: totals over the story's steps; complete/failed/skipped over every state entry."""
    steps = all_steps(spec)
    phases = [state.phase for state in states.values()]
    active = sorted(
        name
        for name, state in states.items()
        if state.phase in ("Running", "Paused", "Pending") and name in {s.name for s in steps}
    )
    completed = sorted(
        name
        for name, state in states.items()
        if state.phase == "Succeeded" and _is_step(steps, name)
    )
    allowed = sorted(
        step.name
        for step in steps
        if step.allow_failure
        and (state := states.get(step.name)) is not None
        and is_terminal(state.phase)
        and state.phase not in ("Succeeded", "Skipped")
    )
    return Counters(
        steps_total=len(steps),
        steps_complete=phases.count("Succeeded"),
        steps_failed=phases.count("Failed"),
        steps_skipped=phases.count("Skipped"),
        active=tuple(active),
        completed=tuple(completed),
        allowed_failures=tuple(allowed),
    )


def _is_step(steps: Sequence[Step], name: str) -> bool:
    return any(step.name == name for step in steps)


def phase_conditions(
    phase: str,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime.datetime,
    previous: Sequence[Condition] | None,
    degraded: bool | None = None,
) -> list[Condition]:
    """Ready/Progressing/Degraded for a phase (§1.2); transition times kept when unchanged."""
    return ready_progressing_degraded(
        phase == "Succeeded",
        not is_terminal(phase),
        phase in DEGRADED_PHASES if degraded is None else degraded,
        reason,
        message,
        generation=generation,
        now=now,
        previous=previous,
    )


def steps_context(
    stepruns: Iterable[StepRun],
    states: Mapping[str, StepState],
    child_outputs: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The `steps` variable of templates (§3.14): outputs, signals and aliases."""
    steps: dict[str, Any] = {}
    for steprun in stepruns:
        status = steprun.status
        if status is None:
            continue
        step_id = steprun.spec.step_id
        if status.phase in ("Succeeded", "Skipped"):
            output = dict(status.output or {}) if status.phase == "Succeeded" else {}
            entry = steps.setdefault(step_id, {})
            entry["output"] = output
            entry["outputs"] = output
        if status.signals:
            entry = steps.setdefault(step_id, {})
            entry["signals"] = _nest_signals(status.signals)
    for name, state in states.items():
        if state.phase == "Succeeded" and state.sub_story_run_name and name not in steps:
            output = dict(child_outputs.get(state.sub_story_run_name) or {})
            steps[name] = {"output": output, "outputs": output}
    for key in list(steps):
        steps.setdefault(normalize_alias(key), steps[key])
    return steps


def _nest_signals(signals: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key in sorted(signals):
        parts = key.split(".")
        node = nested
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = signals[key]
    return nested


def run_state(run: StoryRun) -> dict[str, StepState]:
    status = run.status
    return dict(status.step_states or {}) if status is not None else {}
