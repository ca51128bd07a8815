"""Which events wake a StepRun: what others change, never our own writes.

A StepRun wakes for its creation, a spec change, the start of its deletion and a change of its
phase (the SDK reporting an outcome: ruling 5 checks it, ruling 6 may retry it). Its Job wakes
it on every status change, its deletion included. An Engram or EngramTemplate wakes the
StepRuns that wait for it when it appears or its spec changes, not on status updates (the
execution counters this controller writes would otherwise wake every StepRun of the Engram).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runs_controller.runtime.informer import Event


def _phase(obj: Any) -> str | None:
    return obj.status.phase if obj.status is not None else None


def _new_spec_or_deletion(event: Event[Any]) -> bool:
    """Anything but an update, a new generation, or the start of a deletion."""
    if event.type != "updated" or event.old is None:
        return True
    new, old = event.obj.metadata, event.old.metadata
    if new is None or old is None or new.generation != old.generation:
        return True
    return new.deletion_timestamp is not None and old.deletion_timestamp is None


def steprun_changed(event: Event[Any]) -> bool:
    old: Any = event.old  # an update's previous version once the first check says no
    return _new_spec_or_deletion(event) or bool(_phase(event.obj) != _phase(old))


def job_changed(event: Event[Any]) -> bool:
    old: Any = event.old
    return _new_spec_or_deletion(event) or bool(event.obj.status != old.status)


def spec_changed(event: Event[Any]) -> bool:
    """Creation, deletion or a new generation; status-only updates do not count."""
    if event.type != "updated" or event.old is None:
        return True
    new, old = event.obj, event.old
    if new.metadata is None or old.metadata is None:
        return True
    return bool(
        new.metadata.generation != old.metadata.generation
        or new.metadata.annotations != old.metadata.annotations
    )


__all__ = ["job_changed", "spec_changed", "steprun_changed"]
