"""The order in which the StoryRun and StepRun controllers take ready work: oldest run first.

First come, first served makes a burst advance in lockstep: a run whose step just finished is
queued behind every other run's work, so K runs submitted together all finish at the end,
together, and a hop waits for a whole cycle of the queue. Ranking every key by the age of its
run (the root run for a sub-run, whose parent waits on it) hands the workers the oldest run's
ready work first: runs finish about in the order they came and the early ones early, while the
throughput stays the same (the same work, in another order). A later run still gets all the
capacity that older runs cannot use while they wait (on Jobs, sleeps, gates, limits).

The rank is (creation time, namespace, name): total and stable, so two runs created in the
same second never take turns. A key whose object is not cached (deleted, not seen yet) ranks
first: its reconcile is a cheap cleanup or no-op. Ranks are read from the caches when a key
becomes ready and never raise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from runs_controller.api.runs.steprun import StepRun
    from runs_controller.api.runs.storyrun import StoryRun
    from runs_controller.runtime.cache import CacheReader
    from runs_controller.runtime.reconciler import Request

Rank = tuple[float, str, str]
FIRST: Rank = (float("-inf"), "", "")
MAX_DEPTH = 16
"""Sub-run nesting followed to the root; deeper (or a cycle) ranks by the deepest run reached."""


def _parent_run(run: StoryRun) -> str | None:
    """The name of the StoryRun that controls `run` (a sub-run's parent), if any."""
    meta = run.metadata
    for ref in (meta.owner_references if meta is not None else None) or ():
        if ref.controller and ref.kind == "StoryRun" and ref.name:
            return ref.name
    return None


def _own_rank(namespace: str, name: str, created: float | None) -> Rank:
    return (created if created is not None else float("-inf"), namespace, name)


def root_rank(runs: CacheReader[StoryRun], namespace: str, name: str) -> Rank | None:
    """The rank of the run `namespace/name` by its root run; None when it is not cached."""
    run = runs.get(namespace, name)
    if run is None:
        return None
    for _ in range(MAX_DEPTH):
        parent_name = _parent_run(run)
        parent = runs.get(namespace, parent_name) if parent_name else None
        if parent is None:
            break
        run = parent
    meta = run.metadata
    created = meta.creation_timestamp if meta is not None else None
    return _own_rank(
        namespace,
        (meta.name if meta is not None else None) or name,
        created.timestamp() if created is not None else None,
    )


def storyrun_rank(runs: CacheReader[StoryRun]) -> Callable[[Request], Rank]:
    def rank(request: Request) -> Rank:
        return root_rank(runs, request.namespace, request.name) or FIRST

    return rank


def steprun_rank(
    steps: CacheReader[StepRun], runs: CacheReader[StoryRun]
) -> Callable[[Request], Rank]:
    """A StepRun ranks as its StoryRun; as itself when the run is not cached."""

    def rank(request: Request) -> Rank:
        step = steps.get(request.namespace, request.name)
        if step is None:
            return FIRST
        run_name = step.spec.story_run_ref.name
        by_run = root_rank(runs, request.namespace, run_name) if run_name else None
        if by_run is not None:
            return by_run
        meta = step.metadata
        created = meta.creation_timestamp if meta is not None else None
        return _own_rank(
            request.namespace, request.name, created.timestamp() if created is not None else None
        )

    return rank


__all__ = ["FIRST", "Rank", "root_rank", "steprun_rank", "storyrun_rank"]
