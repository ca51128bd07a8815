"""Cache indexes the controllers look objects up by (pure functions of one object)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runs_controller.dag.limits import priority_from_labels
from runs_controller.engine import keys
from runs_controller.runtime.store import index_by_label, object_key

if TYPE_CHECKING:
    from collections.abc import Iterable

    from runs_controller.api.bubustack.engram import Engram
    from runs_controller.api.runs.steprun import StepRun
    from runs_controller.api.runs.storyrun import StoryRun

STORYRUN_LABEL = "bubustack.io/storyrun"
STORY_INDEX = "story"
"""StoryRuns by the `namespace/name` of their Story (a run may name a Story elsewhere)."""
QUEUE_PRIORITY_INDEX = "queue-priority"
"""StoryRuns by `<queue>/<priority>` (their queue label and the priority label's value), so the
runs that may outrank one are found without scanning the whole queue."""
STORYRUN_INDEX = "storyrun"
"""StepRuns by the StoryRun label."""
ENGRAM_INDEX = "engram"
"""StepRuns by the `namespace/name` of their Engram."""
TEMPLATE_INDEX = "template"
"""Engrams by the name of their EngramTemplate (cluster-scoped)."""


def storyrun_story(run: StoryRun) -> Iterable[str]:
    meta = run.metadata
    namespace = run.spec.story_ref.namespace or (meta.namespace if meta is not None else None)
    return [object_key(namespace, run.spec.story_ref.name)]


def queue_priority_value(queue: str, priority: int) -> str:
    return f"{queue}/{priority}"


def storyrun_queue_priority(run: StoryRun) -> Iterable[str]:
    """A run without the queue label is in no queue (as for a label selector)."""
    labels = (run.metadata.labels if run.metadata is not None else None) or {}
    queue = labels.get(keys.LABEL_QUEUE)
    if queue is None:
        return []
    return [queue_priority_value(queue, priority_from_labels(labels))]


def steprun_engram(step: StepRun) -> Iterable[str]:
    ref = step.spec.engram_ref
    if ref is None:
        return []
    meta = step.metadata
    return [object_key(ref.namespace or (meta.namespace if meta is not None else None), ref.name)]


def engram_template(engram: Engram) -> Iterable[str]:
    return [engram.spec.template_ref.name]


steprun_storyrun = index_by_label(STORYRUN_LABEL)

__all__ = [
    "ENGRAM_INDEX",
    "QUEUE_PRIORITY_INDEX",
    "STORYRUN_INDEX",
    "STORYRUN_LABEL",
    "STORY_INDEX",
    "TEMPLATE_INDEX",
    "engram_template",
    "queue_priority_value",
    "steprun_engram",
    "steprun_storyrun",
    "storyrun_queue_priority",
    "storyrun_story",
]
