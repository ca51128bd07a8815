"""The StoryRun status the controller applies: one path for every phase change (ruling 4).

Pure functions from the observed status and a decision to the desired status. The body is the
whole subtree the controller owns (server-side apply removes what an owner leaves out); `gates`
belong to whoever approves them and are never in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from runs_controller.api.runs.common import SchemaReference
from runs_controller.api.runs.storyrun import StepState, StoryRun, StoryRunStatus
from runs_controller.dag.states import Counters, default_reason, is_terminal, phase_conditions
from runs_controller.engine.durations import format_go_duration

if TYPE_CHECKING:
    import datetime
    from collections.abc import Mapping

    from runs_controller.api.bubustack.story import Story

# Trigger tokens: which parent counters already counted this run (not secrets).
TRIGGER_STORY = "story"
TRIGGER_IMPULSE = "impulse"
TRIGGER_SUCCESS = "impulse-success"
TRIGGER_FAILED = "impulse-failed"


@dataclass(frozen=True)
class PhaseChange:
    phase: str
    reason: str | None = None
    message: str = ""
    error: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    degraded: bool | None = None


def observed_status(run: StoryRun) -> StoryRunStatus:
    return run.status or StoryRunStatus()


def owned(status: StoryRunStatus) -> StoryRunStatus:
    """The part of a status this controller writes (everything but gate decisions)."""
    return msgspec.structs.replace(status, gates=None)


def _duration(start: datetime.datetime | None, end: datetime.datetime) -> str | None:
    if start is None:
        return None
    seconds = max(0, round((end - start).total_seconds()))
    return format_go_duration(seconds * 1_000_000_000)


def _tokens(existing: list[str] | None, *added: str) -> list[str] | None:
    tokens = list(existing or [])
    for token in added:
        if token not in tokens:
            tokens.append(token)
    return tokens or None


def with_phase(
    run: StoryRun,
    change: PhaseChange,
    *,
    now: datetime.datetime,
    base: StoryRunStatus | None = None,
) -> StoryRunStatus:
    """`base` (default: the observed status) moved to `change.phase` (§1.3, ruling 4)."""
    status = owned(base if base is not None else observed_status(run))
    previous = observed_status(run).phase
    generation = run.metadata.generation if run.metadata else None
    reason = change.reason or default_reason(change.phase)
    updates: dict[str, Any] = {
        "phase": change.phase,
        "message": change.message,
        "observed_generation": generation,
        "conditions": phase_conditions(
            change.phase,
            reason,
            change.message,
            generation=generation,
            now=now,
            previous=status.conditions,
            degraded=change.degraded,
        ),
    }
    if change.error is not None:
        updates["error"] = change.error
    if change.output is not None:
        updates["output"] = change.output
    if change.phase == "Running":
        if previous != "Running":
            updates["attempts"] = (status.attempts or 0) + 1
        started = status.started_at or now
        updates["started_at"] = started
        updates["duration"] = _duration(started, now)
        updates["trigger_tokens"] = _tokens(status.trigger_tokens, TRIGGER_STORY, TRIGGER_IMPULSE)
    elif is_terminal(change.phase):
        finished = status.finished_at or now
        updates["finished_at"] = finished
        if status.finished_at is None or status.duration is None:
            updates["duration"] = _duration(status.started_at, finished)
        if change.phase == "Succeeded":
            updates["trigger_tokens"] = _tokens(status.trigger_tokens, TRIGGER_SUCCESS)
        elif change.phase == "Failed":
            updates["trigger_tokens"] = _tokens(status.trigger_tokens, TRIGGER_FAILED)
    return msgspec.structs.replace(status, **updates)


def with_progress(
    status: StoryRunStatus,
    *,
    states: Mapping[str, StepState],
    counters: Counters,
    primitive_children: Mapping[str, list[str]],
) -> StoryRunStatus:
    """Step states, counters and lists of a pass (ruling 7)."""
    return msgspec.structs.replace(
        status,
        step_states=dict(states) or None,
        primitive_children={k: list(v) for k, v in primitive_children.items()} or None,
        steps_total=counters.steps_total,
        steps_complete=counters.steps_complete,
        steps_failed=counters.steps_failed,
        steps_skipped=counters.steps_skipped,
        active=list(counters.active) or None,
        completed=list(counters.completed) or None,
        allowed_failures=list(counters.allowed_failures) or None,
    )


def with_running_duration(status: StoryRunStatus, now: datetime.datetime) -> StoryRunStatus:
    return msgspec.structs.replace(status, duration=_duration(status.started_at, now))


def schema_refs(run: StoryRun, story: Story, status: StoryRunStatus) -> StoryRunStatus:
    """`inputSchemaRef` / `outputSchemaRef` (§2.2 b)."""
    meta = story.metadata
    namespace = meta.namespace if meta else ""
    name = meta.name if meta else ""
    version = run.spec.story_ref.version or story.spec.version
    inputs = (
        SchemaReference(ref=f"bubu://story/{namespace}/{name}/inputs", version=version)
        if story.spec.inputs_schema
        else None
    )
    output = (
        SchemaReference(ref=f"bubu://story/{namespace}/{name}/output", version=version)
        if story.spec.outputs_schema
        else None
    )
    return msgspec.structs.replace(status, input_schema_ref=inputs, output_schema_ref=output)
