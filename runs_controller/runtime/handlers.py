"""Event handlers that map informer events to workqueue keys.

controller-runtime's EnqueueRequestForObject (own key), EnqueueRequestForOwner (the owner's key,
e.g. a StepRun event wakes its StoryRun) and EnqueueRequestsFromMapFunc (anything else), as
plain functions over `Event`s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from runs_controller.runtime.store import key_of, object_key

if TYPE_CHECKING:
    from runs_controller.runtime.informer import Event

Enqueue = Callable[[str], None]
Mapper = Callable[[Any], Iterable[str]]


def own_key(enqueue: Enqueue) -> Callable[[Event[Any]], None]:
    """Every event enqueues the object's own key."""

    def handle(event: Event[Any]) -> None:
        enqueue(key_of(event.obj))

    return handle


def owner_keys(obj: Any, *, kind: str, api_group: str, controller_only: bool = True) -> list[str]:
    """Keys of the object's owners of one kind (same namespace: owners never cross it)."""
    meta = obj.metadata
    if meta is None:
        return []
    keys = []
    for owner in meta.owner_references or []:
        group = owner.api_version.split("/", 1)[0] if "/" in owner.api_version else ""
        if owner.kind != kind or group != api_group:
            continue
        if controller_only and not owner.controller:
            continue
        keys.append(object_key(meta.namespace, owner.name))
    return keys


def owner_key(
    enqueue: Enqueue, *, kind: str, api_group: str, controller_only: bool = True
) -> Callable[[Event[Any]], None]:
    """Every event enqueues the owner's key (both the old and new owner on an update)."""

    def handle(event: Event[Any]) -> None:
        keys = set(
            owner_keys(event.obj, kind=kind, api_group=api_group, controller_only=controller_only)
        )
        if event.old is not None:
            keys.update(
                owner_keys(
                    event.old, kind=kind, api_group=api_group, controller_only=controller_only
                )
            )
        for key in sorted(keys):
            enqueue(key)

    return handle


def mapped(enqueue: Enqueue, mapper: Mapper) -> Callable[[Event[Any]], None]:
    """Every event enqueues whatever keys `mapper` derives from the object (old and new)."""

    def handle(event: Event[Any]) -> None:
        keys = set(mapper(event.obj))
        if event.old is not None:
            keys.update(mapper(event.old))
        for key in sorted(keys):
            enqueue(key)

    return handle
