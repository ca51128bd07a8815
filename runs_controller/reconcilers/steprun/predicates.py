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


def steprun_changed(event: Event[Any]) -> bool:
    if event.type != "updated" or event.old is None:
        return True
    new, old = event.obj, event.old
    if new.metadata is None or old.metadata is None:
        return True
    if new.metadata.generation != old.metadata.generation:
        return True
    if new.metadata.deletion_timestamp is not None and old.metadata.deletion_timestamp is None:
        return True
    return bool(_phase(new) != _phase(old))


def job_changed(event: Event[Any]) -> bool:
    if event.type != "updated" or event.old is None:
        return True
    new, old = event.obj, event.old
    if new.metadata is None or old.metadata is None:
        return True
    if new.metadata.generation != old.metadata.generation:
        return True
    if new.metadata.deletion_timestamp is not None and old.metadata.deletion_timestamp is None:
        return True
    return bool(new.status != old.status)


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
