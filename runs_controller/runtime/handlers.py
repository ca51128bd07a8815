"""Event handlers that map informer events to reconcile requests.

controller-runtime's EnqueueRequestForObject (own key), EnqueueRequestForOwner (the owner's key,
e.g. a StepRun event wakes its StoryRun) and EnqueueRequestsFromMapFunc (anything else), as
plain functions over `Event`s. An optional `predicate` drops events first (e.g. a StoryRun's own
status writes, which must not wake it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from runs_controller.runtime.reconciler import Request

if TYPE_CHECKING:
    from runs_controller.runtime.informer import Event

Enqueue = Callable[[Request], None]
Mapper = Callable[[Any], Iterable[Request]]
Predicate = Callable[["Event[Any]"], bool]
Handler = Callable[["Event[Any]"], None]


def request_for(obj: Any) -> Request:
    """The request that reconciles `obj` itself."""
    meta = obj.metadata
    if meta is None or not meta.name:
        raise ValueError("object has no metadata.name")
    return Request(meta.namespace or "", meta.name)


def own_key(enqueue: Enqueue, *, predicate: Predicate | None = None) -> Handler:
    """Every event enqueues the object's own request."""

    def handle(event: Event[Any]) -> None:
        if predicate is None or predicate(event):
            enqueue(request_for(event.obj))

    return handle


def owner_requests(
    obj: Any, *, kind: str, api_group: str, controller_only: bool = True
) -> list[Request]:
    """Requests for the object's owners of one kind (same namespace: owners never cross it)."""
    meta = obj.metadata
    if meta is None:
        return []
    requests = []
    for owner in meta.owner_references or []:
        group = owner.api_version.split("/", 1)[0] if "/" in owner.api_version else ""
        if owner.kind != kind or group != api_group:
            continue
        if controller_only and not owner.controller:
            continue
        requests.append(Request(meta.namespace or "", owner.name))
    return requests


def owner_key(
    enqueue: Enqueue,
    *,
    kind: str,
    api_group: str,
    controller_only: bool = True,
    predicate: Predicate | None = None,
) -> Handler:
    """Every event enqueues the owner's request (both the old and new owner on an update)."""

    def mapper(obj: Any) -> list[Request]:
        return owner_requests(obj, kind=kind, api_group=api_group, controller_only=controller_only)

    return mapped(enqueue, mapper, predicate=predicate)


def mapped(enqueue: Enqueue, mapper: Mapper, *, predicate: Predicate | None = None) -> Handler:
    """Every event enqueues whatever requests `mapper` derives from the object (old and new)."""

    def handle(event: Event[Any]) -> None:
        if predicate is not None and not predicate(event):
            return
        requests = set(mapper(event.obj))
        if event.old is not None:
            requests.update(mapper(event.old))
        for request in sorted(requests):
            enqueue(request)

    return handle
