"""In-process primitives (condition, sleep, wait, gate, stop) and the step-timers annotation.

Behaviours 23-25 of the contract's §9, restarts (a stored deadline wins), onTimeout, invalid
configurations, and the annotation's exact wire format. `now` is always fixed.
"""

from __future__ import annotations

import datetime
import json
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runs_controller.api.bubustack.story import Step
from runs_controller.api.refs import EngramReference
from runs_controller.api.runs.storyrun import GateStatus, StepState
from runs_controller.dag.primitives import (
    PrimitiveConfigError,
    PrimitiveOutcome,
    StopRequest,
    evaluate_gate,
    evaluate_sleep,
    evaluate_wait,
    launch_primitive,
    stop_request,
)
from runs_controller.dag.timers import (
    STEP_TIMERS_SOFT_LIMIT_BYTES,
    StepTimers,
    decode_timers,
    encode_timers,
    exceeds_soft_limit,
    prune_timers,
)
from runs_controller.expr import Limits

UTC = datetime.UTC
NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


def later(seconds: float) -> datetime.datetime:
    return NOW + datetime.timedelta(seconds=seconds)


def step(name: str, kind: str, **with_: Any) -> Step:
    return Step(name=name, type=kind, with_=with_ or None)


def paused(message: str | None, started: datetime.datetime = NOW) -> StepState:
    return StepState(phase="Paused", message=message, started_at=started)


def vars_(**inputs: Any) -> dict[str, Any]:
    return {"inputs": inputs, "steps": {}}


# --- launch ----------------------------------------------------------------------------------


def test_condition_succeeds_at_launch() -> None:
    state = launch_primitive(step("check", "condition"), NOW)
    assert state == StepState(
        phase="Succeeded",
        message="Primitive evaluated and outputs are available.",
        started_at=NOW,
        finished_at=NOW,
    )


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("sleep", "Sleeping."),
        ("wait", "Waiting for condition."),
        ("gate", "Waiting for gate decision."),
    ],
)
def test_sleep_wait_gate_launch_paused(kind: str, message: str) -> None:
    state = launch_primitive(step("p", kind), NOW)
    assert state == StepState(phase="Paused", message=message, started_at=NOW)


def test_launch_timestamps_are_whole_seconds() -> None:
    state = launch_primitive(step("p", "sleep"), NOW + datetime.timedelta(microseconds=999_999))
    assert state.started_at == NOW


def test_launch_stop_takes_the_requested_phase() -> None:
    state = launch_primitive(step("bail", "stop", phase="Failed", message="stopped by input"), NOW)
    assert state == StepState(
        phase="Failed", message="stopped by input", started_at=NOW, finished_at=NOW
    )


def test_launch_stop_with_invalid_phase_fails_the_step() -> None:
    state = launch_primitive(step("bail", "stop", phase="Running"), NOW)
    assert state.phase == "Failed"
    assert state.message is not None
    assert state.message.startswith("step 'bail': with.phase: unsupported phase \"Running\"")
    assert state.finished_at == NOW


def test_launch_unknown_type_fails_with_the_reference_message() -> None:
    state = launch_primitive(Step(name="odd"), NOW)
    assert state.phase == "Failed"
    assert state.message == "step 'odd' has an unsupported type '' or is missing a 'ref'"


@pytest.mark.parametrize(
    "bad",
    [
        Step(name="e", ref=EngramReference(name="fetcher")),
        Step(name="p", type="parallel"),
        Step(name="x", type="executeStory"),
    ],
)
def test_launch_refuses_steps_that_are_not_in_process(bad: Step) -> None:
    with pytest.raises(ValueError, match="not an in-process primitive"):
        launch_primitive(bad, NOW)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        launch_primitive(step("p", "sleep"), NOW.replace(tzinfo=None))


# --- stop ------------------------------------------------------------------------------------


def test_stop_defaults() -> None:
    assert stop_request(step("end", "stop")) == StopRequest(
        "Succeeded", "Story execution stopped by step 'end' with phase 'Succeeded'"
    )


def test_stop_default_message_names_the_phase() -> None:
    assert stop_request(step("end", "stop", phase="Failed")) == StopRequest(
        "Failed", "Story execution stopped by step 'end' with phase 'Failed'"
    )


def test_stop_keys_match_case_insensitively_like_go() -> None:
    assert stop_request(step("end", "stop", Phase="Timeout", MESSAGE="late")) == StopRequest(
        "Timeout", "late"
    )


@pytest.mark.parametrize("phase", ["Running", "Paused", "failed", "Bogus"])
def test_stop_rejects_non_terminal_or_unknown_phases(phase: str) -> None:
    with pytest.raises(PrimitiveConfigError) as info:
        stop_request(step("end", "stop", phase=phase))
    assert str(info.value) == (
        f"step 'end': with.phase: unsupported phase \"{phase}\" (expected one of Aborted, "
        "Canceled, Compensated, Failed, Finished, Skipped, Succeeded, Timeout)"
    )


def test_stop_rejects_a_non_string_message() -> None:
    with pytest.raises(PrimitiveConfigError, match=r"with\.message: must be a string, got number"):
        stop_request(step("end", "stop", message=3))


# --- sleep (behaviour 25) --------------------------------------------------------------------


def test_sleep_first_evaluation_stores_the_deadline() -> None:
    pause = step("pause", "sleep", duration="30s")
    state = launch_primitive(pause, NOW)
    outcome = evaluate_sleep(pause, state, None, NOW)
    assert outcome == PrimitiveOutcome(
        StepState(phase="Paused", message="Sleeping.", started_at=NOW),
        StepTimers(sleep_until=later(30)),
        30.0,
    )


def test_sleep_message_filled_in_when_empty() -> None:
    pause = step("pause", "sleep", duration="1h30m")
    outcome = evaluate_sleep(pause, paused(None), None, later(10))
    assert outcome.state.message == "Sleeping for 1h30m0s."
    assert outcome.wake_after == 90 * 60 - 10


def test_sleep_completes_after_the_duration() -> None:
    pause = step("pause", "sleep", duration="5s")
    timer = StepTimers(sleep_until=later(5))
    before = evaluate_sleep(pause, paused("Sleeping."), timer, later(4.5))
    assert before.state.phase == "Paused"
    assert before.wake_after == pytest.approx(0.5)
    done = evaluate_sleep(pause, paused("Sleeping."), timer, later(5))
    assert done == PrimitiveOutcome(
        StepState(
            phase="Succeeded", message="Sleep completed.", started_at=NOW, finished_at=later(5)
        ),
        None,
        None,
    )


def test_sleep_stored_deadline_wins_over_started_at() -> None:
    pause = step("pause", "sleep", duration="5s")
    state = paused("Sleeping.", started=ago(60))  # startedAt + 5s is long past
    outcome = evaluate_sleep(pause, state, StepTimers(sleep_until=later(20)), NOW)
    assert outcome.state.phase == "Paused"
    assert outcome.timer == StepTimers(sleep_until=later(20))
    assert outcome.wake_after == 20.0


def test_sleep_stored_deadline_in_the_past_completes() -> None:
    pause = step("pause", "sleep", duration="1h")
    outcome = evaluate_sleep(pause, paused("Sleeping."), StepTimers(sleep_until=ago(1)), NOW)
    assert outcome.state.phase == "Succeeded"


def test_sleep_restart_reads_the_deadline_back_from_the_annotation() -> None:
    pause = step("pause", "sleep", duration="10s")
    first = evaluate_sleep(pause, paused("Sleeping."), None, NOW)
    assert first.timer is not None
    annotation = encode_timers({"pause": first.timer})
    assert annotation == '{"pause":{"sleepUntil":"2024-05-01T12:00:10Z"}}'
    # A new process, and a startedAt that moved (e.g. rewritten): the stored deadline holds.
    restored = decode_timers(annotation)["pause"]
    moved = paused("Sleeping.", started=later(8))
    again = evaluate_sleep(pause, moved, restored, later(9))
    assert again.state.phase == "Paused"
    assert again.wake_after == 1.0
    assert evaluate_sleep(pause, moved, restored, later(10)).state.phase == "Succeeded"


@pytest.mark.parametrize("with_", [{}, {"duration": ""}, {"duration": "   "}, {"duration": None}])
def test_sleep_without_duration_completes_at_once(with_: dict[str, Any]) -> None:
    outcome = evaluate_sleep(step("pause", "sleep", **with_), paused("Sleeping."), None, NOW)
    assert outcome.state.phase == "Succeeded"
    assert outcome.state.message == "Sleep completed."
    assert outcome.timer is None


def test_sleep_sub_second_deadline_rounds_up() -> None:
    pause = step("pause", "sleep", duration="500ms")
    outcome = evaluate_sleep(pause, paused("Sleeping."), None, NOW)
    assert outcome.timer == StepTimers(sleep_until=later(1))
    assert outcome.state.phase == "Paused"


@pytest.mark.parametrize(
    ("duration", "message"),
    [
        ("abc", "step 'pause': with.duration: invalid duration \"abc\""),
        ("5", "step 'pause': with.duration: missing unit in duration \"5\""),
        ("5x", 'step \'pause\': with.duration: unknown unit "x" in duration "5x"'),
        ("0s", "step 'pause': with.duration: must be positive, got \"0s\""),
        ("-1s", "step 'pause': with.duration: must be positive, got \"-1s\""),
        (" 5s", "step 'pause': with.duration: invalid duration \" 5s\""),
        (5, "step 'pause': with.duration: must be a string, got number"),
        (True, "step 'pause': with.duration: must be a string, got boolean"),
        (["5s"], "step 'pause': with.duration: must be a string, got array"),
    ],
)
def test_sleep_invalid_duration_fails_keeping_started_at(duration: Any, message: str) -> None:
    state = paused("Sleeping.", started=ago(3))
    outcome = evaluate_sleep(step("pause", "sleep", duration=duration), state, None, NOW)
    assert outcome == PrimitiveOutcome(
        StepState(phase="Failed", message=message, started_at=ago(3), finished_at=NOW), None, None
    )


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Skipped", "Pending", "Blocked"])
def test_sleep_leaves_terminal_and_unlaunched_steps_alone(phase: str) -> None:
    state = StepState(phase=phase, message="queued", started_at=ago(100))
    timer = StepTimers(sleep_until=ago(50))
    outcome = evaluate_sleep(step("pause", "sleep", duration="1s"), state, timer, NOW)
    assert outcome == PrimitiveOutcome(state, timer, None)


def test_sleep_keeps_the_sub_story_run_name_and_fills_started_at() -> None:
    state = StepState(phase="Running", sub_story_run_name="child")
    outcome = evaluate_sleep(step("pause", "sleep", duration="2s"), state, None, NOW)
    assert outcome.state == StepState(
        phase="Paused", message="Sleeping for 2s.", started_at=NOW, sub_story_run_name="child"
    )


def test_evaluating_the_wrong_kind_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="not a sleep step"):
        evaluate_sleep(step("w", "wait"), paused(None), None, NOW)


@given(
    duration_ms=st.integers(min_value=1, max_value=10_000_000),
    elapsed_ms=st.integers(min_value=0, max_value=20_000_000),
)
def test_sleep_ends_exactly_at_the_rounded_up_deadline(duration_ms: int, elapsed_ms: int) -> None:
    pause = step("pause", "sleep", duration=f"{duration_ms}ms")
    now = NOW + datetime.timedelta(milliseconds=elapsed_ms)
    outcome = evaluate_sleep(pause, paused("Sleeping."), None, now)
    deadline_s = -(-duration_ms // 1000)
    if elapsed_ms >= deadline_s * 1000:
        assert outcome.state.phase == "Succeeded"
        assert outcome.wake_after is None
    else:
        assert outcome.state.phase == "Paused"
        assert outcome.timer == StepTimers(sleep_until=later(deadline_s))
        assert outcome.wake_after == pytest.approx(deadline_s - elapsed_ms / 1000)


# --- wait (behaviour 24) ---------------------------------------------------------------------

READY = "{{ inputs.ready }}"


def test_wait_succeeds_when_the_condition_holds() -> None:
    wait = step("w", "wait", until=READY)
    outcome = evaluate_wait(wait, paused("Waiting for condition."), None, vars_(ready=True), NOW)
    assert outcome == PrimitiveOutcome(
        StepState(
            phase="Succeeded",
            message="Wait condition satisfied.",
            started_at=NOW,
            finished_at=NOW,
        ),
        None,
        None,
    )


def test_wait_times_out_and_skips() -> None:
    wait = step("w", "wait", until=READY, timeout="1s", onTimeout="skip")
    state = paused("Waiting for condition.", started=ago(2))
    outcome = evaluate_wait(wait, state, None, vars_(ready=False), NOW)
    assert outcome.state == StepState(
        phase="Skipped",
        message="wait step timed out and was skipped.",
        started_at=ago(2),
        finished_at=NOW,
    )
    assert outcome.timer is None
    assert outcome.wake_after is None


@pytest.mark.parametrize("on_timeout", [None, "fail", " FAIL ", ""])
def test_wait_times_out_and_fails_by_default(on_timeout: str | None) -> None:
    wait = step("w", "wait", until=READY, timeout="1s", onTimeout=on_timeout)
    state = paused("Waiting for condition.", started=ago(2))
    outcome = evaluate_wait(wait, state, None, vars_(ready=False), NOW)
    assert (outcome.state.phase, outcome.state.message) == ("Timeout", "wait step timed out.")


def test_a_wait_that_times_out_says_what_its_condition_kept_failing_with() -> None:
    """A run-time error keeps the wait waiting (as in the reference); at the deadline the
    message says why it never held."""
    wait = step("w", "wait", until='{{ index .inputs "a" "b" 7 }}', timeout="1s")
    state = paused("Waiting for condition.", started=ago(2))
    early = evaluate_wait(wait, paused("Waiting for condition."), None, vars_(), NOW)
    assert early.state.phase == "Paused"
    assert early.state.message == "Waiting for condition."
    outcome = evaluate_wait(wait, state, None, vars_(), NOW)
    assert outcome.state.phase == "Timeout"
    message = outcome.state.message or ""
    assert message.startswith("wait step timed out. The last evaluation of with.until failed: ")
    assert "index of untyped nil" in message


def test_a_wait_for_data_not_there_yet_times_out_with_the_plain_message() -> None:
    wait = step("w", "wait", until="{{ steps.later.output.ok }}", timeout="1s")
    state = paused("Waiting for condition.", started=ago(2))
    outcome = evaluate_wait(wait, state, None, vars_(), NOW)
    assert (outcome.state.phase, outcome.state.message) == ("Timeout", "wait step timed out.")


def test_wait_stored_deadline_wins_over_started_at() -> None:
    wait = step("w", "wait", until=READY, timeout="1s", onTimeout="skip")
    state = paused("Waiting for condition.", started=ago(2))
    timer = StepTimers(wait_timeout_at=later(10))
    outcome = evaluate_wait(wait, state, timer, vars_(ready=False), NOW)
    assert outcome == PrimitiveOutcome(state, timer, 10.0)


def test_wait_first_evaluation_stores_the_deadline_and_wakes_at_the_earliest() -> None:
    wait = step("w", "wait", until=READY, timeout="10m", pollInterval="5s")
    state = paused("Waiting for condition.")
    outcome = evaluate_wait(wait, state, None, vars_(ready=False), NOW)
    assert outcome == PrimitiveOutcome(state, StepTimers(wait_timeout_at=later(600)), 5.0)
    near_end = evaluate_wait(wait, state, outcome.timer, vars_(ready=False), later(598))
    assert near_end.wake_after == 2.0


def test_wait_without_timeout_or_poll_sets_no_deadline() -> None:
    wait = step("w", "wait", until=READY)
    outcome = evaluate_wait(wait, paused(None), None, vars_(ready="no"), NOW)
    assert outcome == PrimitiveOutcome(paused("Waiting for condition."), None, None)


def test_wait_poll_interval_only() -> None:
    wait = step("w", "wait", until=READY, pollInterval="250ms")
    outcome = evaluate_wait(wait, paused("Waiting for condition."), None, vars_(ready=0), NOW)
    assert outcome.wake_after == 0.25
    assert outcome.timer is None


def test_wait_condition_beats_an_expired_deadline() -> None:
    wait = step("w", "wait", until=READY, timeout="1s")
    timer = StepTimers(wait_timeout_at=ago(5))
    outcome = evaluate_wait(wait, paused("Waiting for condition."), timer, vars_(ready=True), NOW)
    assert outcome.state.phase == "Succeeded"


@pytest.mark.parametrize(
    ("until", "variables"),
    [
        ("{{ .steps.fetch.output.ok }}", {"inputs": {}, "steps": {}}),  # blocked: not there yet
        (
            "{{ and .steps.fetch.output.ok true }}",
            {"inputs": {}, "steps": {"fetch": {"output": {"$bubuStorageRef": "s3://x"}}}},
        ),  # offloaded
        ("{{ .inputs.missing }}", {"inputs": {}, "steps": {}}),  # evaluation error
        ('{{ "maybe" }}', {"inputs": {}, "steps": {}}),  # not a boolean
    ],
)
def test_wait_keeps_waiting_while_the_condition_cannot_be_evaluated(
    until: str, variables: dict[str, Any]
) -> None:
    wait = step("w", "wait", until=until, timeout="1m")
    outcome = evaluate_wait(wait, paused("Waiting for condition."), None, variables, NOW)
    assert outcome.state.phase == "Paused"
    assert outcome.wake_after == 60.0


def test_wait_accepts_any_mapping_of_variables() -> None:
    wait = step("w", "wait", until="{{ .inputs.ready }}")
    variables = MappingProxyType({"inputs": {"ready": True}, "steps": {}})
    assert evaluate_wait(wait, paused(None), None, variables, NOW).state.phase == "Succeeded"


def test_wait_honours_the_given_limits() -> None:
    wait = step("w", "wait", until="{{ if .inputs.ready }}true{{ end }}")
    assert evaluate_wait(wait, paused(None), None, vars_(ready=True), NOW).state.phase == (
        "Succeeded"
    )
    tight = Limits(max_steps=1)
    outcome = evaluate_wait(wait, paused(None), None, vars_(ready=True), NOW, limits=tight)
    assert outcome.state.phase == "Failed"
    assert outcome.state.message == (
        "step 'w': with.until: template evaluation exceeded max steps 1"
    )


@pytest.mark.parametrize(
    ("until", "error"),
    [
        ("{{ range 30000000 }}{{ end }}", "template evaluation "),  # steps, or the time budget
        ("{{ if true }}" * 150 + "x" + "{{ end }}" * 150, "template nesting exceeds max depth"),
        ('{{ printf "%900000s" "z" }}', "template output exceeds max bytes"),
    ],
)
def test_wait_over_a_limit_fails_instead_of_paying_for_it_at_every_poll(
    until: str, error: str
) -> None:
    """A hostile `until` would burn its whole budget every 5 s for as long as the wait
    lasts (forever without a timeout), and the step would only ever say it is waiting."""
    wait = step("w", "wait", until=until)
    outcome = evaluate_wait(wait, paused("Waiting for condition."), None, vars_(), NOW)
    assert outcome.state.phase == "Failed"
    assert (outcome.state.message or "").startswith(f"step 'w': with.until: {error}")
    assert outcome.wake_after is None


@pytest.mark.parametrize(
    ("with_", "message"),
    [
        ({}, "step 'w': with.until: required for a wait step"),
        ({"until": "  "}, "step 'w': with.until: required for a wait step"),
        ({"until": True}, "step 'w': with.until: must be a string, got boolean"),
        (
            {"until": '{{ env "HOME" }}'},
            "step 'w': with.until: template expression uses disallowed function 'env'",
        ),
        ({"until": READY, "timeout": "abc"}, "step 'w': with.timeout: invalid duration \"abc\""),
        ({"until": READY, "timeout": "0s"}, "step 'w': with.timeout: must be positive, got \"0s\""),
        ({"until": READY, "timeout": 30}, "step 'w': with.timeout: must be a string, got number"),
        (
            {"until": READY, "pollInterval": "-5s"},
            "step 'w': with.pollInterval: must be positive, got \"-5s\"",
        ),
        (
            {"until": READY, "pollInterval": "1ms"},
            "step 'w': with.pollInterval: must be at least 10ms, got \"1ms\"",
        ),
        (
            {"until": READY, "onTimeout": "abort"},
            "step 'w': with.onTimeout: unsupported value \"abort\" (expected fail or skip)",
        ),
        (
            {"until": READY, "onTimeout": {}},
            "step 'w': with.onTimeout: must be a string, got object",
        ),
    ],
)
def test_wait_invalid_configuration_fails(with_: dict[str, Any], message: str) -> None:
    state = paused("Waiting for condition.", started=ago(7))
    outcome = evaluate_wait(step("w", "wait", **with_), state, None, vars_(ready=False), NOW)
    assert outcome == PrimitiveOutcome(
        StepState(phase="Failed", message=message, started_at=ago(7), finished_at=NOW), None, None
    )


def test_wait_until_that_does_not_parse_fails() -> None:
    wait = step("w", "wait", until="{{ .inputs.ready ")
    outcome = evaluate_wait(wait, paused(None), None, vars_(ready=True), NOW)
    assert outcome.state.phase == "Failed"
    assert outcome.state.message is not None
    assert outcome.state.message.startswith("step 'w': with.until: ")


def test_wait_without_with_block_fails() -> None:
    outcome = evaluate_wait(Step(name="w", type="wait"), paused(None), None, vars_(), NOW)
    assert outcome.state.message == "step 'w': with.until: required for a wait step"


def test_wait_min_poll_interval_is_allowed() -> None:
    wait = step("w", "wait", until=READY, pollInterval="10ms")
    assert evaluate_wait(wait, paused(None), None, vars_(ready=False), NOW).wake_after == 0.01


# --- gate (behaviour 23) ---------------------------------------------------------------------


def gate_state() -> StepState:
    return paused("Waiting for gate decision.", started=ago(30))


@pytest.mark.parametrize(
    ("decision", "phase", "message"),
    [
        (GateStatus(state="Approved", message="ok"), "Succeeded", "ok"),
        (GateStatus(state="Rejected", message="nope"), "Failed", "nope"),
        (GateStatus(state="Approved"), "Succeeded", "Gate approved."),
        (GateStatus(state="Rejected", message=""), "Failed", "Gate rejected."),
    ],
)
def test_gate_follows_the_decision(decision: GateStatus, phase: str, message: str) -> None:
    outcome = evaluate_gate(step("approve", "gate"), gate_state(), None, decision, NOW)
    assert outcome == PrimitiveOutcome(
        StepState(phase=phase, message=message, started_at=ago(30), finished_at=NOW), None, None
    )


@pytest.mark.parametrize(
    "decision", [None, GateStatus(), GateStatus(state="Pending"), GateStatus(state="approved")]
)
def test_gate_without_decision_waits_for_the_watch(decision: GateStatus | None) -> None:
    outcome = evaluate_gate(step("approve", "gate"), gate_state(), None, decision, NOW)
    assert outcome == PrimitiveOutcome(gate_state(), None, None)


def test_gate_fills_in_an_empty_message() -> None:
    outcome = evaluate_gate(step("approve", "gate"), paused(""), None, None, NOW)
    assert outcome.state.message == "Waiting for gate decision."


def test_gate_first_evaluation_stores_the_timeout() -> None:
    gate = step("approve", "gate", timeout="30m", pollInterval="1m")
    outcome = evaluate_gate(gate, gate_state(), None, None, NOW)
    assert outcome.timer == StepTimers(gate_timeout_at=ago(30) + datetime.timedelta(minutes=30))
    assert outcome.wake_after == 60.0
    close = evaluate_gate(gate, gate_state(), outcome.timer, None, later(30 * 60 - 45))
    assert close.wake_after == 15.0


@pytest.mark.parametrize(
    ("on_timeout", "phase", "message"),
    [
        ("fail", "Timeout", "gate step timed out."),
        ("skip", "Skipped", "gate step timed out and was skipped."),
    ],
)
def test_gate_timeout(on_timeout: str, phase: str, message: str) -> None:
    gate = step("approve", "gate", timeout="10s", onTimeout=on_timeout)
    outcome = evaluate_gate(gate, gate_state(), None, GateStatus(state="Pending"), NOW)
    assert outcome.state == StepState(
        phase=phase, message=message, started_at=ago(30), finished_at=NOW
    )
    assert outcome.timer is None


def test_gate_stored_timeout_wins_and_approval_beats_it() -> None:
    gate = step("approve", "gate", timeout="10s")
    timer = StepTimers(gate_timeout_at=later(100))
    waiting = evaluate_gate(gate, gate_state(), timer, None, NOW)
    assert waiting == PrimitiveOutcome(gate_state(), timer, 100.0)
    expired = StepTimers(gate_timeout_at=ago(1))
    approved = evaluate_gate(gate, gate_state(), expired, GateStatus(state="Approved"), NOW)
    assert approved.state.phase == "Succeeded"


def test_gate_timer_keeps_other_fields() -> None:
    gate = step("approve", "gate", timeout="10s")
    timer = StepTimers(sleep_until=ago(100))
    outcome = evaluate_gate(gate, paused("x", started=NOW), timer, None, NOW)
    assert outcome.timer == StepTimers(sleep_until=ago(100), gate_timeout_at=later(10))


@pytest.mark.parametrize(
    ("with_", "message"),
    [
        ({"timeout": "soon"}, "step 'g': with.timeout: invalid duration \"soon\""),
        ({"pollInterval": "0s"}, "step 'g': with.pollInterval: must be positive, got \"0s\""),
        (
            {"onTimeout": "retry"},
            "step 'g': with.onTimeout: unsupported value \"retry\" (expected fail or skip)",
        ),
        ({"timeout": 10}, "step 'g': with.timeout: must be a string, got number"),
    ],
)
def test_gate_invalid_configuration_fails(with_: dict[str, Any], message: str) -> None:
    decision = GateStatus(state="Approved")
    outcome = evaluate_gate(step("g", "gate", **with_), gate_state(), None, decision, NOW)
    assert outcome.state == StepState(
        phase="Failed", message=message, started_at=ago(30), finished_at=NOW
    )


# --- timers annotation (§3.9) ----------------------------------------------------------------


def test_encode_exact_reference_format() -> None:
    timers = {
        "wait-ready": StepTimers(wait_timeout_at=NOW),
        "approve": StepTimers(
            gate_timeout_at=datetime.datetime(
                2024, 5, 1, 14, 0, 0, 999_999, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
            ),
            sleep_until=NOW,
        ),
    }
    assert encode_timers(timers) == (
        '{"approve":{"sleepUntil":"2024-05-01T12:00:00Z","gateTimeoutAt":"2024-05-01T12:00:00Z"},'
        '"wait-ready":{"waitTimeoutAt":"2024-05-01T12:00:00Z"}}'
    )


def test_encode_nothing_gives_none() -> None:
    assert encode_timers({}) is None
    assert encode_timers({"a": StepTimers()}) is None


def test_encode_escapes_like_go() -> None:
    assert encode_timers({"a<&>": StepTimers(sleep_until=NOW)}) == (
        '{"a\\u003c\\u0026\\u003e":{"sleepUntil":"2024-05-01T12:00:00Z"}}'
    )


def test_encode_pads_small_years() -> None:
    early = datetime.datetime(987, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert encode_timers({"a": StepTimers(sleep_until=early)}) == (
        '{"a":{"sleepUntil":"0987-01-02T03:04:05Z"}}'
    )


def test_decode_accepts_what_metav1_time_accepts() -> None:
    raw = json.dumps(
        {
            "a": {"sleepUntil": "2024-05-01T14:00:00+02:00", "unknown": 1},
            "b": {"WaitTimeoutAt": "2024-05-01T12:00:00.5Z", "gateTimeoutAt": None},
            "c": None,
            "d": {"gateTimeoutAt": "0001-01-01T00:00:00Z"},
        }
    )
    assert decode_timers(f"  {raw}\n") == {
        "a": StepTimers(sleep_until=NOW),
        "b": StepTimers(wait_timeout_at=NOW + datetime.timedelta(milliseconds=500)),
        "c": StepTimers(),
        "d": StepTimers(),
    }


def test_decode_last_case_insensitive_key_wins() -> None:
    raw = '{"a":{"sleepUntil":"2024-05-01T12:00:00Z","SLEEPUNTIL":"2024-05-01T12:00:01Z"}}'
    assert decode_timers(raw) == {"a": StepTimers(sleep_until=later(1))}


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "{",
        "[]",
        '"x"',
        "null",
        '{"a": []}',
        '{"a": {"sleepUntil": 5}}',
        '{"a": {"sleepUntil": "yesterday"}}',
        '{"a": {"sleepUntil": "2024-05-01 12:00:00Z"}}',
        '{"a": {"sleepUntil": "2024-05-01t12:00:00z"}}',
        '{"a": {"sleepUntil": "2024-02-30T12:00:00Z"}}',
        '{"a": {"sleepUntil": "2024-05-01T12:00:00+24:00"}}',
        '{"ok": {"sleepUntil": "2024-05-01T12:00:00Z"}, "bad": {"waitTimeoutAt": true}}',
        '{"a": {"x": NaN}}',
    ],
)
def test_decode_unparsable_resets_everything(raw: str | None) -> None:
    assert decode_timers(raw) == {}


def test_prune_drops_terminal_steps() -> None:
    timers = {
        "pause": StepTimers(sleep_until=NOW),
        "w": StepTimers(wait_timeout_at=NOW),
        "g": StepTimers(gate_timeout_at=NOW),
    }
    assert prune_timers(timers, {"pause", "g", "other"}) == {"w": StepTimers(wait_timeout_at=NOW)}
    assert encode_timers(prune_timers(timers, ["pause", "w", "g"])) is None


def test_soft_limit() -> None:
    assert STEP_TIMERS_SOFT_LIMIT_BYTES == 200 * 1024
    assert not exceeds_soft_limit("x" * (200 * 1024 - 1))
    assert exceeds_soft_limit("x" * (200 * 1024))
    assert exceeds_soft_limit("é" * (100 * 1024))  # bytes, not characters


_moments = st.datetimes(
    min_value=datetime.datetime(1, 1, 2),
    max_value=datetime.datetime(9999, 12, 31),
    timezones=st.just(UTC),
).map(lambda moment: moment.replace(microsecond=0))
_entries = st.builds(
    StepTimers,
    st.none() | _moments,
    st.none() | _moments,
    st.none() | _moments,
).filter(lambda entry: not entry.is_empty())
_names = st.text(min_size=1, max_size=20)


@given(st.dictionaries(_names, _entries, max_size=8))
def test_timers_round_trip(timers: dict[str, StepTimers]) -> None:
    encoded = encode_timers(timers)
    if not timers:
        assert encoded is None
        return
    assert encoded is not None
    assert decode_timers(encoded) == timers
    assert encode_timers(decode_timers(encoded)) == encoded
    assert list(json.loads(encoded)) == sorted(timers)
