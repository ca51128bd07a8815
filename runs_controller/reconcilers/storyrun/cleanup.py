"""Redrive, cancel, stop and the two-phase cleanup of finished runs (§2.4-2.6, rulings 2, 11, 23).

Deadlines (drain window, child TTL, retention) are met with `requeue_after` at the exact instant;
a deleted child's watch event wakes the run, so nothing here polls.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from runs_controller.api.runs.storyrun import StoryRun, StoryRunStatus
from runs_controller.dag.graph import build_graph
from runs_controller.dag.states import counters, is_terminal
from runs_controller.engine import keys
from runs_controller.engine.durations import parse_go_duration
from runs_controller.engine.finality import is_final
from runs_controller.kube.resources import STORY_RUNS
from runs_controller.reconcilers.storyrun.dependents import delete_all, signal_cancel
from runs_controller.reconcilers.storyrun.transitions import PhaseChange, observed_status
from runs_controller.runtime.children import delete_exactly
from runs_controller.runtime.reconciler import Result, TerminalError

if TYPE_CHECKING:
    from runs_controller.api.bubustack.story import Story
    from runs_controller.api.runs.steprun import StepRun
    from runs_controller.engine.operator_config import OperatorConfig
    from runs_controller.reconcilers.storyrun.reconciler import StoryRunReconciler

CANCELED_MESSAGE = "StoryRun gracefully canceled"


def _annotations(run: StoryRun) -> dict[str, str]:
    return dict((run.metadata.annotations if run.metadata else None) or {})


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


async def delete_dependents(
    rec: StoryRunReconciler, stepruns: list[StepRun], children: list[StoryRun]
) -> int:
    return await delete_all(rec.kit.client, stepruns, children)


# -- drain window ------------------------------------------------------------------------------


def drain_seconds(story: Story | None, config: OperatorConfig) -> float:
    """`policy.timeouts.gracefulShutdownTimeout` if > 0, else the operator default (ruling 23)."""
    policy = story.spec.policy if story is not None else None
    raw = policy.timeouts.graceful_shutdown_timeout if policy and policy.timeouts else None
    if raw:
        try:
            nanos = parse_go_duration(raw)
        except ValueError:
            nanos = 0
        if nanos > 0:
            return nanos / 1e9
    return float(config.graceful_shutdown_seconds)


async def _drain(
    rec: StoryRunReconciler,
    run: StoryRun,
    story: Story | None,
    config: OperatorConfig,
    now: datetime.datetime,
) -> tuple[int, float | None, StoryRun]:
    """Signal (then, after the window, delete) the run's non-final StepRuns. Returns how many
    are left, when to look again, and the run (annotated with the drain start)."""
    annotations = _annotations(run)
    observed_at = _parse_time(annotations.get(keys.ANNOTATION_GRACEFUL_CANCEL_OBSERVED_AT))
    if observed_at is None:
        observed_at = now
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        run = await rec._patch_metadata(
            run, {"annotations": {keys.ANNOTATION_GRACEFUL_CANCEL_OBSERVED_AT: stamp}}
        )
    window = drain_seconds(story, config)
    deadline = observed_at + datetime.timedelta(seconds=window)
    force = window <= 0 or now >= deadline
    stepruns = rec.dependents.stepruns_of(run)
    final = {
        sr.metadata.name or ""
        for sr in stepruns
        if sr.metadata is not None and is_final(sr, config.max_retries)
    }
    pending = await signal_cancel(rec.kit.client, stepruns, force=force, final=final)
    wake = None if force else max(0.01, (deadline - now).total_seconds())
    return pending, wake, run


async def _drain_if_running(
    rec: StoryRunReconciler,
    run: StoryRun,
    story: Story | None,
    config: OperatorConfig,
    now: datetime.datetime,
) -> tuple[int, float | None, StoryRun]:
    retries = config.max_retries
    if all(is_final(sr, retries) for sr in rec.dependents.stepruns_of(run)):
        return 0, None, run
    return await _drain(rec, run, story, config, now)


async def cancel(
    rec: StoryRunReconciler,
    run: StoryRun,
    story: Story | None,
    config: OperatorConfig,
    now: datetime.datetime,
) -> Result:
    """Graceful cancel (§2.4): drain, then `Finished` once every StepRun is final or gone."""
    pending, wake, run = await _drain(rec, run, story, config, now)
    if pending:
        return Result(requeue_after=wake) if wake is not None else Result()
    await rec._set_phase(run, PhaseChange("Finished", "Canceled", CANCELED_MESSAGE), now)
    return Result()


async def stop_stepruns(
    rec: StoryRunReconciler,
    run: StoryRun,
    story: Story,
    config: OperatorConfig,
    now: datetime.datetime,
) -> float | None:
    """A stop step or the story timeout stops what runs, with the same drain (ruling 11, 23)."""
    _, wake, _ = await _drain(rec, run, story, config, now)
    return wake


# -- terminal runs -----------------------------------------------------------------------------


def child_ttl(story: Story | None, config: OperatorConfig) -> int:
    policy = story.spec.policy if story is not None else None
    job = policy.execution.job if policy and policy.execution else None
    ttl = getattr(job, "ttl_seconds_after_finished", None) if job is not None else None
    if ttl:
        return int(ttl)
    return config.child_ttl_seconds or 3600


def retention(story: Story | None, config: OperatorConfig) -> int:
    policy = story.spec.policy if story is not None else None
    job = policy.execution.job if policy and policy.execution else None
    value = getattr(job, "story_run_retention_seconds", None) if job is not None else None
    if value:
        return int(value)
    return config.storyrun_retention_seconds if config.storyrun_retention_seconds > 0 else 86400


async def terminal(
    rec: StoryRunReconciler,
    run: StoryRun,
    story: Story | None,
    config: OperatorConfig,
    now: datetime.datetime,
) -> Result:
    """Children after the TTL, the run itself after the retention (§2.6)."""
    status = observed_status(run)
    finished = status.finished_at
    if finished is None:
        return Result()
    # A run that ended with work still running (story timeout, stop) drains it first
    # (rulings 11, 23): signal, then delete after the window.
    pending, wake, run = await _drain_if_running(rec, run, story, config, now)
    if pending:
        return Result(requeue_after=wake) if wake is not None else Result()
    ttl = child_ttl(story, config)
    keep = retention(story, config)
    if rec.metrics is not None and run.metadata is not None:
        rec.metrics.retention_windows(
            run.metadata.namespace or "", run.spec.story_ref.name, ttl, keep
        )
    stepruns, children = rec.dependents.all_of(run)
    if status.children_cleaned_at is None:
        expiry = finished + datetime.timedelta(seconds=ttl)
        if ttl > 0 and now < expiry:
            return Result(requeue_after=(expiry - now).total_seconds())
        remaining = await delete_dependents(rec, stepruns, children)
        if remaining:
            return Result()  # their deletion events wake the run
        cleaned = msgspec.structs.replace(status, children_cleaned_at=now)
        run = await rec._apply(run, cleaned)
    if keep == 0:
        return Result()
    expiry = finished + datetime.timedelta(seconds=max(keep, 0))
    if keep > 0 and now < expiry:
        return Result(requeue_after=(expiry - now).total_seconds())
    await delete_exactly(rec.kit.client, STORY_RUNS, run)
    return Result()


# -- redrive -----------------------------------------------------------------------------------


async def redrive(
    rec: StoryRunReconciler, run: StoryRun, story: Story | None, now: datetime.datetime
) -> Result | None:
    """Full redrive or redrive-from-step when requested by annotation (§2.5); None when not."""
    annotations = _annotations(run)
    from_step = (annotations.get(keys.ANNOTATION_REDRIVE_FROM_STEP) or "").strip()
    if from_step and from_step != annotations.get(keys.ANNOTATION_REDRIVE_FROM_STEP_OBSERVED):
        return await _redrive_from_step(rec, run, story, from_step, now)
    token = annotations.get(keys.ANNOTATION_REDRIVE_TOKEN) or ""
    if token and token != annotations.get(keys.ANNOTATION_REDRIVE_OBSERVED):
        return await _redrive_all(rec, run, token)
    return None


async def _redrive_all(rec: StoryRunReconciler, run: StoryRun, token: str) -> Result:
    stepruns, children = rec.dependents.all_of(run)
    if await delete_dependents(rec, stepruns, children):
        return Result()
    status = observed_status(run)
    # observedGeneration is kept (the reference zeroes it): the CRD refuses a decrease.
    reset = StoryRunStatus(
        attempts=status.attempts,
        trigger_tokens=status.trigger_tokens,
        observed_generation=status.observed_generation,
    )
    run = await rec._apply(run, reset)
    await _clear_gates(rec, run, set((status.gates or {}).keys()))
    await rec._patch_metadata(
        run,
        {
            "annotations": {
                keys.ANNOTATION_REDRIVE_OBSERVED: token,
                keys.ANNOTATION_GRACEFUL_CANCEL_OBSERVED_AT: None,
                keys.ANNOTATION_STEP_TIMERS: None,
            }
        },
    )
    return Result(requeue=True)


async def _redrive_from_step(
    rec: StoryRunReconciler,
    run: StoryRun,
    story: Story | None,
    value: str,
    now: datetime.datetime,
) -> Result:
    step, sep, token = value.partition(":")
    step, token = step.strip(), token.strip()
    if not sep or not step or not token:
        raise TerminalError(
            "InvalidRedrive",
            f"annotation {keys.ANNOTATION_REDRIVE_FROM_STEP} must be '<step>:<token>', "
            f"got {value!r}",
        )
    if story is None:
        return Result()  # the Story watch wakes the run
    graph = build_graph(story.spec)
    if step not in graph.group_of:
        raise TerminalError("InvalidRedrive", f"redrive-from-step names unknown step {step!r}")
    affected = graph.closure(step)
    status = observed_status(run)
    children_of = status.primitive_children or {}
    names = {child for name in affected for child in children_of.get(name, [])}
    stepruns = [
        sr
        for sr in rec.dependents.stepruns_of(run)
        if sr.spec.step_id in affected or (sr.metadata and sr.metadata.name in names)
    ]
    children = [
        child
        for child in rec.dependents.children_of(run)
        if ((child.metadata.labels if child.metadata else None) or {}).get(keys.LABEL_PARENT_STEP)
        in affected
    ]
    if await delete_dependents(rec, stepruns, children):
        return Result()
    states = {k: v for k, v in (status.step_states or {}).items() if k not in affected}
    was_terminal = is_terminal(status.phase)
    counts = counters(story.spec, states)
    reset: dict[str, Any] = {
        "step_states": states or None,
        "primitive_children": {k: v for k, v in children_of.items() if k not in affected} or None,
        "active": None
        if was_terminal
        else [a for a in status.active or [] if a not in affected] or None,
        "completed": None
        if was_terminal
        else [c for c in status.completed or [] if c not in affected] or None,
        "allowed_failures": [a for a in status.allowed_failures or [] if a not in affected] or None,
        "error": None,
        "output": None,
        "message": None,
        "conditions": None,
        "children_cleaned_at": None,
        "finished_at": None,
        "duration": None,
        "steps_complete": counts.steps_complete,
        "steps_failed": counts.steps_failed,
        "steps_skipped": counts.steps_skipped,
    }
    if was_terminal:
        reset["phase"] = None
    rewritten = msgspec.structs.replace(status, **reset)
    run = await rec._apply(run, rewritten)
    await _clear_gates(rec, run, affected)
    await rec._patch_metadata(
        run,
        {
            "annotations": {
                keys.ANNOTATION_REDRIVE_FROM_STEP_OBSERVED: value,
                keys.ANNOTATION_GRACEFUL_CANCEL_OBSERVED_AT: None,
                keys.ANNOTATION_STEP_TIMERS: None,
            }
        },
    )
    rec._event(run, "Normal", "StoryRunRedriveFromStep", f"Requested rerun from step {step}")
    return Result(requeue=True)


async def _clear_gates(
    rec: StoryRunReconciler, run: StoryRun, steps: set[str] | frozenset[str]
) -> None:
    """Gate decisions belong to whoever approved them (a merge patch of theirs): a redrive
    removes them with a merge patch too, key by key."""
    gates = observed_status(run).gates or {}
    doomed = {name: None for name in steps if name in gates}
    meta = run.metadata
    if not doomed or meta is None:
        return
    await rec.kit.client.merge_patch(
        STORY_RUNS,
        meta.name or "",
        {"status": {"gates": doomed}},
        meta.namespace,
        type=StoryRun,
        subresource="status",
    )
