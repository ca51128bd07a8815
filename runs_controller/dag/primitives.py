"""The in-process primitives of a StoryRun: condition, sleep, wait, gate and stop (§3.7).

They run without a StepRun: launching one gives it a state, and every DAG pass re-evaluates the
Paused ones (sleep, wait, gate) from their current state, stored deadline and `now`. The
functions are pure; the pass stores the returned state and timer and wakes the run after
`wake_after` seconds.

Deviations from the reference, on purpose: a configuration error fails the step with a message
naming the step and the `with` field (ruling 10), keeping `startedAt`; an `until` that does not
parse, or a `pollInterval` under 10ms, fails the step (the reference's admission webhook rejects
such a Story; we have no webhook, ruling 15); so does an `until` over an evaluation limit (the
reference would pay for it again at every poll); a step Pending (queued by the scheduling limits)
is not launched yet and is left alone (the reference would start it past the queue); a wait
with a timeout wakes at its deadline, not only at its poll interval; deadlines are rounded up to
whole seconds, so a sleep never ends early.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

import msgspec

from runs_controller.api.enums import TERMINAL_PHASES
from runs_controller.api.runs.storyrun import StepState
from runs_controller.engine.durations import format_go_duration, parse_go_duration
from runs_controller.expr import (
    EvaluationBlocked,
    InvalidLimits,
    LimitExceeded,
    OffloadedData,
    TemplateError,
    TemplateSafetyError,
    TemplateSyntaxError,
    check_template_safety,
    evaluate_condition,
)

from .timers import StepTimers

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runs_controller.api.bubustack.story import Step
    from runs_controller.api.enums import Phase
    from runs_controller.api.runs.storyrun import GateStatus
    from runs_controller.expr import Limits

__all__ = [
    "MIN_POLL_INTERVAL_NS",
    "PrimitiveConfigError",
    "PrimitiveOutcome",
    "StopRequest",
    "evaluate_gate",
    "evaluate_sleep",
    "evaluate_wait",
    "launch_primitive",
    "stop_request",
]

MIN_POLL_INTERVAL_NS: Final = 10_000_000
"""The reference's minimum requeue delay (10ms); a shorter pollInterval is refused."""

CONDITION_DONE: Final = "Primitive evaluated and outputs are available."
SLEEPING: Final = "Sleeping."
SLEEP_DONE: Final = "Sleep completed."
WAITING: Final = "Waiting for condition."
WAIT_DONE: Final = "Wait condition satisfied."
GATE_WAITING: Final = "Waiting for gate decision."
GATE_APPROVED: Final = "Gate approved."
GATE_REJECTED: Final = "Gate rejected."

# Only a launched step is evaluated: launch gives Paused; Running is accepted as the reference does.
_IN_PROGRESS = frozenset({"Paused", "Running"})
_STOP_PHASES = tuple(sorted(TERMINAL_PHASES))
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_NS_PER_SECOND = 1_000_000_000


class PrimitiveConfigError(ValueError):
    """A primitive's `with` block is invalid; the message names the step and the field."""


@dataclass(frozen=True)
class PrimitiveOutcome:
    """One evaluation of a Paused primitive.

    `timer` is the step's timers entry to keep (None: drop it). `wake_after` is how many seconds
    until the step needs another look (its deadline or poll interval), None when it sets no
    deadline of its own (terminal, or a wait/gate with neither timeout nor pollInterval: it is
    woken by a watch, or by the pass's usual requeue).
    """

    state: StepState
    timer: StepTimers | None
    wake_after: float | None


@dataclass(frozen=True)
class StopRequest:
    """What a `stop` step asks of the run: its terminal phase and message (rulings 3, 22, 31)."""

    phase: Phase
    message: str


@dataclass(frozen=True)
class _WaitConfig:
    until: str
    timeout_ns: int | None
    poll_ns: int | None
    on_timeout: str


@dataclass(frozen=True)
class _GateConfig:
    timeout_ns: int | None
    poll_ns: int | None
    on_timeout: str


# --- time ------------------------------------------------------------------------------------


def _utc(now: datetime.datetime) -> datetime.datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(datetime.UTC)


def _whole_seconds(moment: datetime.datetime) -> datetime.datetime:
    """A metav1.Time value: the fraction dropped, as the apiserver round trip does."""
    return moment.replace(microsecond=0)


def _deadline(start: datetime.datetime, duration_ns: int) -> datetime.datetime:
    """`start + duration`, rounded up to a whole second (metav1.Time cannot hold less)."""
    start_us = (_utc(start) - _EPOCH) // datetime.timedelta(microseconds=1)
    total_ns = start_us * 1_000 + duration_ns
    seconds = -(-total_ns // _NS_PER_SECOND)
    try:
        return _EPOCH + datetime.timedelta(seconds=seconds)
    except OverflowError:
        return datetime.datetime.max.replace(tzinfo=datetime.UTC)


def _seconds_until(deadline: datetime.datetime, now: datetime.datetime) -> float:
    return (deadline - now).total_seconds()


# --- state helpers ---------------------------------------------------------------------------


def _started(state: StepState, now: datetime.datetime) -> datetime.datetime:
    return state.started_at if state.started_at is not None else _whole_seconds(now)


def _with_phase(state: StepState, phase: str, message: str, now: datetime.datetime) -> StepState:
    """`state` moved to `phase`: startedAt set once, finishedAt set once on a terminal phase."""
    finished = state.finished_at
    if phase in TERMINAL_PHASES and finished is None:
        finished = _whole_seconds(now)
    return msgspec.structs.replace(
        state, phase=phase, message=message, started_at=_started(state, now), finished_at=finished
    )


def _terminal(
    state: StepState, phase: str, message: str, now: datetime.datetime
) -> PrimitiveOutcome:
    return PrimitiveOutcome(_with_phase(state, phase, message, now), None, None)


def _unchanged(state: StepState, timer: StepTimers | None) -> PrimitiveOutcome:
    return PrimitiveOutcome(state, timer, None)


def _timed_out(kind: str, on_timeout: str) -> tuple[str, str]:
    if on_timeout == "skip":
        return "Skipped", f"{kind} step timed out and was skipped."
    return "Timeout", f"{kind} step timed out."


# --- configuration ---------------------------------------------------------------------------


def _config_error(step: Step, field: str, cause: str) -> PrimitiveConfigError:
    return PrimitiveConfigError(f"step '{step.name}': with.{field}: {cause}")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _string_field(step: Step, field: str) -> str:
    """`with.<field>` as Go's encoding/json reads it into a string: null or absent is empty,
    keys match case-insensitively (the last match wins), any other type is an error."""
    folded = field.casefold()
    value: Any = None
    for key, item in (step.with_ or {}).items():
        if key == field or key.casefold() == folded:
            value = item
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _config_error(step, field, f"must be a string, got {_json_type(value)}")
    return value


def _positive_duration(step: Step, field: str, text: str) -> int:
    try:
        nanoseconds = parse_go_duration(text)
    except ValueError as exc:
        raise _config_error(step, field, str(exc).removeprefix("time: ")) from None
    if nanoseconds <= 0:
        raise _config_error(step, field, f"must be positive, got {json.dumps(text)}")
    return nanoseconds


def _optional_duration(step: Step, field: str) -> int | None:
    text = _string_field(step, field)
    return None if text == "" else _positive_duration(step, field, text)


def _poll_interval(step: Step) -> int | None:
    poll = _optional_duration(step, "pollInterval")
    if poll is not None and poll < MIN_POLL_INTERVAL_NS:
        text = json.dumps(_string_field(step, "pollInterval"))
        raise _config_error(step, "pollInterval", f"must be at least 10ms, got {text}")
    return poll


def _on_timeout(step: Step) -> str:
    raw = _string_field(step, "onTimeout")
    action = raw.strip().lower()
    if action in ("", "fail"):
        return "fail"
    if action == "skip":
        return "skip"
    raise _config_error(
        step, "onTimeout", f"unsupported value {json.dumps(raw)} (expected fail or skip)"
    )


def _sleep_duration(step: Step) -> int | None:
    """The sleep's duration in nanoseconds; None when unset or blank (no sleep at all)."""
    text = _string_field(step, "duration")
    if text.strip() == "":
        return None
    return _positive_duration(step, "duration", text)


def _wait_config(step: Step) -> _WaitConfig:
    until = _string_field(step, "until")
    if until.strip() == "":
        raise _config_error(step, "until", "required for a wait step")
    timeout = _optional_duration(step, "timeout")
    poll = _poll_interval(step)
    return _WaitConfig(until, timeout, poll, _on_timeout(step))


def _gate_config(step: Step) -> _GateConfig:
    timeout = _optional_duration(step, "timeout")
    poll = _poll_interval(step)
    return _GateConfig(timeout, poll, _on_timeout(step))


def _require_type(step: Step, kind: str) -> None:
    if step.type != kind or step.ref is not None:
        raise ValueError(f"step '{step.name}' is not a {kind} step")


# --- launch ----------------------------------------------------------------------------------


def launch_primitive(step: Step, now: datetime.datetime) -> StepState:
    """The state a condition, sleep, wait, gate or stop step gets when it becomes ready.

    Configuration is checked when the step is evaluated, not here (as in the reference), except
    for stop, which finishes at launch. An unknown type, or neither type nor ref, fails the step
    (ruling 10); engram, parallel and executeStory steps are not launched here (ValueError).
    """
    stamp = _whole_seconds(_utc(now))
    state = StepState(phase="Pending")
    if step.ref is not None or step.type in ("parallel", "executeStory"):
        raise ValueError(f"step '{step.name}' is not an in-process primitive")
    match step.type:
        case "condition":
            return _with_phase(state, "Succeeded", CONDITION_DONE, stamp)
        case "sleep":
            return _with_phase(state, "Paused", SLEEPING, stamp)
        case "wait":
            return _with_phase(state, "Paused", WAITING, stamp)
        case "gate":
            return _with_phase(state, "Paused", GATE_WAITING, stamp)
        case "stop":
            try:
                request = stop_request(step)
            except PrimitiveConfigError as exc:
                return _with_phase(state, "Failed", str(exc), stamp)
            return _with_phase(state, request.phase, request.message, stamp)
        case _:
            message = (
                f"step '{step.name}' has an unsupported type '{step.type or ''}' "
                "or is missing a 'ref'"
            )
            return _with_phase(state, "Failed", message, stamp)


def stop_request(step: Step) -> StopRequest:
    """The phase and message a stop step ends the run with.

    `with.phase` defaults to Succeeded and must be a terminal phase (the run ends with it; the
    reference copies any string and the CRD enum may then reject the status write).
    """
    _require_type(step, "stop")
    phase = _string_field(step, "phase") or "Succeeded"
    if phase not in TERMINAL_PHASES:
        expected = ", ".join(_STOP_PHASES)
        raise _config_error(
            step, "phase", f"unsupported phase {json.dumps(phase)} (expected one of {expected})"
        )
    message = _string_field(step, "message")
    if message == "":
        message = f"Story execution stopped by step '{step.name}' with phase '{phase}'"
    return StopRequest(phase, message)


# --- evaluation ------------------------------------------------------------------------------


def evaluate_sleep(
    step: Step, state: StepState, timer: StepTimers | None, now: datetime.datetime
) -> PrimitiveOutcome:
    """Succeeded once `sleepUntil` (stored, else startedAt + duration) has passed."""
    _require_type(step, "sleep")
    now = _utc(now)
    if state.phase not in _IN_PROGRESS:
        return _unchanged(state, timer)
    try:
        duration = _sleep_duration(step)
    except PrimitiveConfigError as exc:
        return _terminal(state, "Failed", str(exc), now)
    if duration is None:
        return _terminal(state, "Succeeded", SLEEP_DONE, now)

    entry = timer or StepTimers()
    until = entry.sleep_until
    if until is None:  # the first evaluation stores the deadline; a stored one wins
        until = _deadline(_started(state, now), duration)
        entry = replace(entry, sleep_until=until)
    remaining = _seconds_until(until, now)
    if remaining <= 0:
        return _terminal(state, "Succeeded", SLEEP_DONE, now)

    message = state.message
    if not message or message == SLEEP_DONE:
        message = f"Sleeping for {format_go_duration(duration)}."
    return PrimitiveOutcome(_with_phase(state, "Paused", message, now), entry, remaining)


def _timeout_deadline(
    entry: StepTimers, field: str, started: datetime.datetime, timeout_ns: int
) -> tuple[StepTimers, datetime.datetime]:
    """The stored `field` deadline if any, else startedAt + timeout, stored into the entry."""
    stored: datetime.datetime | None = getattr(entry, field)
    if stored is not None:
        return entry, stored
    deadline = _deadline(started, timeout_ns)
    return replace(entry, **{field: deadline}), deadline


def _earliest(*delays: float | None) -> float | None:
    present = [delay for delay in delays if delay is not None]
    return min(present) if present else None


def _poll_seconds(poll_ns: int | None) -> float | None:
    return None if poll_ns is None else poll_ns / _NS_PER_SECOND


def _condition_holds(
    until: str, variables: Mapping[str, Any], limits: Limits | None
) -> tuple[bool, str | None]:
    """(the `until` result, why it could not be evaluated): False while it cannot be evaluated
    yet or errs at run time; the error text only for a run-time error, not for data that is
    not there (or not inline) yet.

    Syntax errors are configuration errors and propagate, as does a caller's InvalidLimits.
    So does a limit (steps, time, size, nesting): a condition over its budget is refused, not
    paid for again at every poll for as long as the wait lasts (hostile-input suite).
    """
    vars_ = variables if isinstance(variables, dict) else dict(variables)
    try:
        return evaluate_condition(until, vars_, limits=limits), None
    except (TemplateSyntaxError, LimitExceeded, InvalidLimits):
        raise
    except (EvaluationBlocked, OffloadedData):
        return False, None
    except TemplateError as exc:
        # A run-time error (`index` of a missing key): the reference keeps waiting, and the
        # timeout still applies; the timeout's message then says what kept failing.
        return False, str(exc)


def evaluate_wait(
    step: Step,
    state: StepState,
    timer: StepTimers | None,
    variables: Mapping[str, Any],
    now: datetime.datetime,
    *,
    limits: Limits | None = None,
) -> PrimitiveOutcome:
    """Succeeded when `with.until` holds; Timeout or Skipped (onTimeout) at the deadline."""
    _require_type(step, "wait")
    now = _utc(now)
    if state.phase not in _IN_PROGRESS:
        return _unchanged(state, timer)
    try:
        config = _wait_config(step)
    except PrimitiveConfigError as exc:
        return _terminal(state, "Failed", str(exc), now)
    try:
        check_template_safety(config.until)
        satisfied, failing = _condition_holds(config.until, variables, limits)
    except (TemplateSafetyError, TemplateSyntaxError, LimitExceeded) as exc:
        return _terminal(state, "Failed", str(_config_error(step, "until", str(exc))), now)
    if satisfied:
        return _terminal(state, "Succeeded", WAIT_DONE, now)

    message = state.message
    if not message or message == WAIT_DONE:
        message = WAITING
    remaining: float | None = None
    entry = timer
    if config.timeout_ns is not None:
        entry, deadline = _timeout_deadline(
            timer or StepTimers(), "wait_timeout_at", _started(state, now), config.timeout_ns
        )
        remaining = _seconds_until(deadline, now)
        if remaining <= 0:
            phase, text = _timed_out("wait", config.on_timeout)
            if failing is not None:
                text += f" The last evaluation of with.until failed: {failing}"
            return _terminal(state, phase, text, now)
    paused = _with_phase(state, "Paused", message, now)
    return PrimitiveOutcome(paused, entry, _earliest(remaining, _poll_seconds(config.poll_ns)))


def evaluate_gate(
    step: Step,
    state: StepState,
    timer: StepTimers | None,
    decision: GateStatus | None,
    now: datetime.datetime,
) -> PrimitiveOutcome:
    """Follows `status.gates[<step>]`: Approved succeeds, Rejected fails, else the timeout."""
    _require_type(step, "gate")
    now = _utc(now)
    if state.phase not in _IN_PROGRESS:
        return _unchanged(state, timer)
    try:
        config = _gate_config(step)
    except PrimitiveConfigError as exc:
        return _terminal(state, "Failed", str(exc), now)

    verdict = decision.state if decision is not None else None
    note = decision.message if decision is not None else None
    if verdict == "Approved":
        return _terminal(state, "Succeeded", note or GATE_APPROVED, now)
    if verdict == "Rejected":
        return _terminal(state, "Failed", note or GATE_REJECTED, now)

    message = state.message or GATE_WAITING
    remaining: float | None = None
    entry = timer
    if config.timeout_ns is not None:
        entry, deadline = _timeout_deadline(
            timer or StepTimers(), "gate_timeout_at", _started(state, now), config.timeout_ns
        )
        remaining = _seconds_until(deadline, now)
        if remaining <= 0:
            phase, text = _timed_out("gate", config.on_timeout)
            return _terminal(state, phase, text, now)
    paused = _with_phase(state, "Paused", message, now)
    return PrimitiveOutcome(paused, entry, _earliest(remaining, _poll_seconds(config.poll_ns)))
