"""The dev demo's live view: which StoryRun/StepRun changes become lines, and how they read."""

from __future__ import annotations

import json
from typing import Any

from runs_controller.api import codec
from runs_controller.api.runs.steprun import StepRun
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.dev.view import RunView


def _run(phase: str, states: dict[str, dict[str, Any]], **status: Any) -> StoryRun:
    return codec.convert(
        {
            "metadata": {"name": "r", "namespace": "demo"},
            "spec": {"storyRef": {"name": "hello"}},
            "status": {"phase": phase, "stepStates": states, **status},
        },
        StoryRun,
    )


def _step(step: str, phase: str, output: dict[str, Any] | None) -> StepRun:
    return codec.convert(
        {
            "metadata": {"name": f"r-{step}", "namespace": "demo"},
            "spec": {"storyRunRef": {"name": "r"}, "stepId": step},
            "status": {"phase": phase, "output": output},
        },
        StepRun,
    )


def test_each_change_is_shown_once_with_durations_and_outputs() -> None:
    view = RunView("r")
    started = "2026-12-01T10:00:00Z"
    first = view.on_storyrun(_run("Running", {"greet": {"phase": "Running", "startedAt": started}}))
    assert [line.text for line in first] == [
        "StoryRun demo/r is Running",
        "  step greet: Running",
    ]
    assert view.on_storyrun(_run("Running", {"greet": {"phase": "Running"}})) == []
    assert view.on_steprun(_step("greet", "Succeeded", {"greeting": "hi"})) == []
    done = {"phase": "Succeeded", "startedAt": started, "finishedAt": "2026-12-01T10:00:02Z"}
    lines = view.on_storyrun(
        _run(
            "Succeeded",
            {"greet": done},
            startedAt=started,
            finishedAt="2026-12-01T10:00:05Z",
            output={"first": "hi"},
        )
    )
    assert [line.text for line in lines] == [
        '  step greet: Succeeded in 2.0s, output {"greeting": "hi"}',
        'StoryRun demo/r Succeeded in 5.0s; output {"first": "hi"}',
    ]
    assert lines[-1].event == "run_finished"
    assert view.finished
    assert view.on_storyrun(_run("Succeeded", {"greet": done})) == []


def test_an_output_seen_after_the_step_succeeded_gets_its_own_line() -> None:
    view = RunView("r")
    view.on_storyrun(_run("Running", {"greet": {"phase": "Succeeded"}}))
    late = view.on_steprun(_step("greet", "Succeeded", {"greeting": "hi"}))
    assert [line.text for line in late] == ['  step greet: output {"greeting": "hi"}']
    assert view.on_steprun(_step("greet", "Succeeded", {"greeting": "hi"})) == []


def test_other_runs_are_ignored_and_failures_carry_their_message() -> None:
    view = RunView("r")
    assert (
        view.on_steprun(
            codec.convert(
                {
                    "metadata": {"name": "x"},
                    "spec": {"storyRunRef": {"name": "other"}, "stepId": "a"},
                    "status": {"phase": "Succeeded", "output": {}},
                },
                StepRun,
            )
        )
        == []
    )
    lines = view.on_storyrun(
        _run("Failed", {"greet": {"phase": "Failed", "message": "exit code 1"}}, message="boom")
    )
    assert lines[0].text == "  step greet: Failed (exit code 1)"
    assert lines[-1].text == "StoryRun demo/r Failed: boom"


def test_json_lines_carry_the_event_and_its_fields() -> None:
    view = RunView("r")
    (line,) = view.on_storyrun(_run("Succeeded", {}, output={"a": 1}))
    decoded = json.loads(line.render(human=False))
    assert decoded["event"] == "run_finished"
    assert decoded["phase"] == "Succeeded"
    assert decoded["output"] == {"a": 1}
