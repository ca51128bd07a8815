"""Cache indexes the controllers look objects up by (pure functions of one object)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runs_controller.runtime.store import index_by_label, object_key

if TYPE_CHECKING:
    from collections.abc import Iterable

    from runs_controller.api.bubustack.engram import Engram
    from runs_controller.api.runs.steprun import StepRun
    from runs_controller.api.runs.storyrun import StoryRun

STORYRUN_LABEL = "bubustack.io/storyrun"
STORY_INDEX = "story"
"""StoryRuns by the `namespace/name` of their Story (a run may name a Story elsewhere)."""
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
    "STORYRUN_INDEX",
    "STORYRUN_LABEL",
    "STORY_INDEX",
    "TEMPLATE_INDEX",
    "engram_template",
    "steprun_engram",
    "steprun_storyrun",
    "storyrun_story",
]
