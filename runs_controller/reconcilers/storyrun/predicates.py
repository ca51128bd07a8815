"""Which StoryRun events wake a run (ruling 8): what others change, never our own writes.

A run wakes for its creation and deletion, a spec change (cancelRequested bumps the generation),
the start of its deletion, a new redrive request, and a change of `status.gates` (a gate
decision). Our own status applies and metadata patches change none of these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runs_controller.engine import keys

if TYPE_CHECKING:
    from runs_controller.api.runs.storyrun import StoryRun
    from runs_controller.runtime.informer import Event

REDRIVE_KEYS = (keys.ANNOTATION_REDRIVE_TOKEN, keys.ANNOTATION_REDRIVE_FROM_STEP)


def _annotation(run: StoryRun, key: str) -> str | None:
    meta = run.metadata
    return ((meta.annotations if meta else None) or {}).get(key)


def _gates(run: StoryRun) -> Any:
    return run.status.gates if run.status is not None else None


def storyrun_changed(event: Event[Any]) -> bool:
    if event.type != "updated" or event.old is None:
        return True
    new: StoryRun = event.obj
    old: StoryRun = event.old
    new_meta, old_meta = new.metadata, old.metadata
    if new_meta is None or old_meta is None:
        return True
    if new_meta.generation != old_meta.generation:
        return True
    if new_meta.deletion_timestamp is not None and old_meta.deletion_timestamp is None:
        return True
    if any(
        _annotation(new, key) and _annotation(new, key) != _annotation(old, key)
        for key in REDRIVE_KEYS
    ):
        return True
    return bool(_gates(new) != _gates(old))


def child_run_changed(event: Event[Any]) -> bool:
    """A child StoryRun wakes its parent when its phase (or existence) changes."""
    if event.type != "updated" or event.old is None:
        return True
    new: StoryRun = event.obj
    old: StoryRun = event.old
    new_phase = new.status.phase if new.status else None
    old_phase = old.status.phase if old.status else None
    return new_phase != old_phase or (
        new.metadata is not None
        and new.metadata.deletion_timestamp is not None
        and (old.metadata is None or old.metadata.deletion_timestamp is None)
    )
