"""The live view of a demo run: what changed, in a sentence a person reads, or as a JSON line.

Pure: `RunView` is fed every StoryRun and StepRun version a watch delivers and returns the
lines worth showing (a step that started, finished or failed; the run's end with its output).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datetime

    from runs_controller.api.runs.steprun import StepRun
    from runs_controller.api.runs.storyrun import StoryRun

_TERMINAL = frozenset({"Succeeded", "Failed", "Canceled", "Timeout", "Aborted", "Skipped"})


@dataclass(frozen=True)
class Line:
    event: str
    text: str
    fields: dict[str, Any]

    def render(self, *, human: bool) -> str:
        if human:
            return self.text
        return json.dumps({"event": self.event, **self.fields}, default=str, sort_keys=True)


def _seconds(start: datetime.datetime | None, end: datetime.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 1)


def _compact(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class RunView:
    """Tracks one StoryRun and its StepRuns; each `on_*` returns the new lines to show."""

    run: str
    step_phases: dict[str, str] = field(default_factory=dict)
    run_phase: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    """Engram outputs by step, from the StepRuns (the run's status keeps only phases)."""
    finished: bool = False
    _shown_outputs: set[str] = field(default_factory=set)

    def on_steprun(self, steprun: StepRun) -> list[Line]:
        status = steprun.status
        if steprun.spec.story_run_ref.name != self.run or status is None:
            return []
        step = steprun.spec.step_id
        if status.phase != "Succeeded" or status.output is None or step in self.outputs:
            return []
        self.outputs[step] = status.output
        if self.step_phases.get(step) != "Succeeded" or step in self._shown_outputs:
            return []
        # The run's status said Succeeded before this watch delivered the StepRun's output.
        self._shown_outputs.add(step)
        return [
            Line(
                "step_output",
                f"  step {step}: output {_compact(status.output)}",
                {"run": self.run, "step": step, "output": status.output},
            )
        ]

    def on_storyrun(self, storyrun: StoryRun) -> list[Line]:
        meta, status = storyrun.metadata, storyrun.status
        if meta is None or meta.name != self.run or status is None or self.finished:
            return []
        lines: list[Line] = []
        if status.phase and status.phase != self.run_phase and status.phase not in _TERMINAL:
            lines.append(
                Line(
                    "run_phase",
                    f"StoryRun {meta.namespace}/{self.run} is {status.phase}",
                    {"run": self.run, "phase": status.phase},
                )
            )
        for step, state in sorted(
            (status.step_states or {}).items(),
            key=lambda item: (item[1].started_at is None, item[1].started_at or 0, item[0]),
        ):
            if self.step_phases.get(step) == state.phase:
                continue
            self.step_phases[step] = state.phase
            lines.append(self._step_line(step, state.phase, state))
        if status.phase in _TERMINAL:
            self.finished = True
            took = _seconds(status.started_at, status.finished_at)
            text = f"StoryRun {meta.namespace}/{self.run} {status.phase}"
            if took is not None:
                text += f" in {took}s"
            if status.output:
                text += f"; output {_compact(status.output, 400)}"
            if status.message and status.phase != "Succeeded":
                text += f": {status.message}"
            lines.append(
                Line(
                    "run_finished",
                    text,
                    {
                        "run": self.run,
                        "phase": status.phase,
                        "seconds": took,
                        "output": status.output,
                        "message": status.message,
                    },
                )
            )
        self.run_phase = status.phase
        return lines

    def _step_line(self, step: str, phase: str, state: Any) -> Line:
        took = _seconds(state.started_at, state.finished_at)
        text = f"  step {step}: {phase}"
        if phase in _TERMINAL and took is not None:
            text += f" in {took}s"
        output = self.outputs.get(step)
        if phase == "Succeeded" and output is not None:
            self._shown_outputs.add(step)
            text += f", output {_compact(output)}"
        if state.message and phase not in ("Running", "Succeeded"):
            text += f" ({state.message})"
        return Line(
            "step_phase",
            text,
            {"run": self.run, "step": step, "phase": phase, "seconds": took, "output": output},
        )
