"""The StepRun status the controller applies, as pure functions of the observed status.

The status is shared: the SDK in the step's pod merge-patches phase, output, error, exit
details and a Ready condition; the controller applies (server-side, ruling 19) only the fields
below. Every apply carries the controller's whole view of them, computed from the freshest copy
and sent with a resourceVersion precondition, so a decision made on a stale copy is refused by
the apiserver instead of overwriting what the SDK wrote (ruling 29).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from runs_controller.api.runs.common import SchemaReference
from runs_controller.api.runs.steprun import StepRun, StepRunStatus
from runs_controller.dag.states import default_reason, is_terminal, phase_conditions
from runs_controller.engine.durations import format_go_duration

if TYPE_CHECKING:
    import datetime

    from runs_controller.api.catalog.engramtemplate import EngramTemplate

CONTROLLER_FIELDS = (
    "retries",
    "observed_generation",
    "phase",
    "started_at",
    "finished_at",
    "duration",
    "last_output_at",
    "exit_code",
    "exit_class",
    "next_retry_at",
    "last_failure_msg",
    "input_schema_ref",
    "output_schema_ref",
    "conditions",
)
"""What the controller writes; output, error, signals, effects, logs, trace, needs and the
pod name are the SDK's and never in an apply."""


@dataclass(frozen=True)
class PhaseChange:
    phase: str
    reason: str | None = None
    message: str = ""


def observed(steprun: StepRun) -> StepRunStatus:
    return steprun.status or StepRunStatus()


def owned(status: StepRunStatus) -> StepRunStatus:
    """Only the controller's fields of `status` (the body of an apply)."""
    return StepRunStatus(**{name: getattr(status, name) for name in CONTROLLER_FIELDS})


def _duration(start: datetime.datetime | None, end: datetime.datetime) -> str | None:
    if start is None:
        return None
    seconds = max(0, round((end - start).total_seconds()))
    return format_go_duration(seconds * 1_000_000_000)


def with_phase(
    steprun: StepRun,
    change: PhaseChange,
    *,
    now: datetime.datetime,
    base: StepRunStatus | None = None,
) -> StepRunStatus:
    """`base` (default: the observed status) moved to `change.phase` (§1.3 for StepRuns).

    Negative retries read 0; Pending, Running or an end starts the clock when nothing did;
    Blocked keeps its message in `lastFailureMsg` (cleared when it is unblocked); a terminal
    phase stamps finishedAt and duration once; the three conditions follow the phase
    (ruling 30).
    """
    status = base if base is not None else observed(steprun)
    generation = steprun.metadata.generation if steprun.metadata else None
    reason = change.reason or default_reason(change.phase)
    updates: dict[str, Any] = {
        "phase": change.phase,
        "retries": max(0, status.retries or 0),
        "observed_generation": generation,
        "conditions": phase_conditions(
            change.phase,
            reason,
            change.message,
            generation=generation,
            now=now,
            previous=status.conditions,
        ),
    }
    if status.started_at is None and (
        change.phase in ("Pending", "Running") or is_terminal(change.phase)
    ):
        # A StepRun the SDK finished before our Running apply landed still gets a start.
        updates["started_at"] = now
    if change.phase == "Blocked":
        updates["last_failure_msg"] = change.message
    elif status.phase == "Blocked":
        updates["last_failure_msg"] = None  # what blocked it is resolved
    if is_terminal(change.phase):
        finished = status.finished_at or now
        updates["finished_at"] = finished
        if status.finished_at is None or not status.duration:
            updates["duration"] = _duration(updates.get("started_at", status.started_at), finished)
    return msgspec.structs.replace(status, **updates)


def conditions_follow_phase(status: StepRunStatus) -> bool:
    """Whether the controller has written the conditions of the current phase: Progressing
    says False exactly when the phase is terminal (the SDK writes only Ready)."""
    progressing = next((c for c in status.conditions or () if c.type == "Progressing"), None)
    if progressing is None:
        return False
    return (progressing.status == "False") == is_terminal(status.phase)


def condition_message(status: StepRunStatus, type_: str = "Ready") -> str:
    condition = next((c for c in status.conditions or () if c.type == type_), None)
    return (condition.message or "") if condition is not None else ""


def condition_reason(status: StepRunStatus, type_: str = "Ready") -> str:
    condition = next((c for c in status.conditions or () if c.type == type_), None)
    return (condition.reason or "") if condition is not None else ""


def schema_refs(
    steprun: StepRun, template: EngramTemplate, engram_version: str | None
) -> tuple[SchemaReference | None, SchemaReference | None]:
    """`inputSchemaRef` / `outputSchemaRef` (§4.2 item 12), when the template has schemas."""
    ref = steprun.spec.engram_ref
    meta = steprun.metadata
    if ref is None or meta is None:
        return None, None
    namespace = ref.namespace or meta.namespace or ""
    version = ref.version or engram_version
    base = f"bubu://engram/{namespace}/{ref.name}"
    inputs = (
        SchemaReference(ref=f"{base}/input", version=version)
        if template.spec.input_schema
        else None
    )
    output = (
        SchemaReference(ref=f"{base}/output", version=version)
        if template.spec.output_schema
        else None
    )
    return inputs, output


__all__ = [
    "CONTROLLER_FIELDS",
    "PhaseChange",
    "condition_message",
    "condition_reason",
    "conditions_follow_phase",
    "observed",
    "owned",
    "schema_refs",
    "with_phase",
]
