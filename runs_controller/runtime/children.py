"""Child objects: controller owner references and create-if-absent under deterministic names.

A controller names its children deterministically (the naming functions of the engine), so a
create that finds the name taken is the normal case after a restart, a lost lease or a replayed
event, not an error: the existing object is ours if its controller reference points at the
owner's UID, an orphan (no controller reference) is adopted, and one controlled by something
else is a `ChildConflict`, a terminal error with a message naming both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from runs_controller.api.meta import ObjectMeta, OwnerReference, Resource
from runs_controller.kube.errors import AlreadyExists, NotFound
from runs_controller.runtime.informer import FIELD_MANAGER
from runs_controller.runtime.reconciler import TerminalError

if TYPE_CHECKING:
    from runs_controller.kube.client import KubeClient
    from runs_controller.kube.resources import ResourceType
    from runs_controller.runtime.cache import CacheReader

T = TypeVar("T", bound=Resource)

CHILD_CONFLICT = "ChildConflict"
BACKGROUND = "Background"


class ChildConflict(TerminalError):
    """The child's name is taken by an object another controller owns."""

    def __init__(self, message: str) -> None:
        super().__init__(CHILD_CONFLICT, message)


def controller_reference(owner: Any, resource: ResourceType) -> OwnerReference:
    """An owner reference that makes `owner` the child's controller and blocks the owner's
    foreground deletion until the child is gone."""
    meta = owner.metadata
    if meta is None or not meta.name or not meta.uid:
        raise ValueError(f"{resource.kind} owner needs metadata.name and metadata.uid")
    return OwnerReference(
        api_version=resource.api_version,
        kind=resource.kind,
        name=meta.name,
        uid=meta.uid,
        controller=True,
        block_owner_deletion=True,
    )


async def delete_exactly(client: KubeClient, resource: ResourceType, obj: Any) -> bool:
    """Delete `obj` itself (a UID precondition: a successor under the same name is spared)
    with background propagation, so its own dependents never wait on orphan finalizers
    (ruling 28). False when it is gone already; `Conflict` when the name holds another object.
    """
    meta = obj.metadata
    try:
        await client.delete(
            resource,
            meta.name or "",
            meta.namespace,
            propagation_policy=BACKGROUND,
            preconditions_uid=meta.uid,
        )
    except NotFound:
        return False
    return True


def controller_of(obj: Any) -> OwnerReference | None:
    meta = obj.metadata
    return next((ref for ref in (meta.owner_references or []) if ref.controller), None)


def with_owner(child: T, reference: OwnerReference) -> T:
    """`child` with `reference` as its controller reference (others are kept)."""
    child_any: Any = child
    meta: ObjectMeta = child_any.metadata or ObjectMeta()
    others = [ref for ref in meta.owner_references or [] if ref.uid != reference.uid]
    if any(ref.controller for ref in others):
        raise ValueError("the child already names another controller")
    updated = msgspec.structs.replace(meta, owner_references=[*others, reference])
    result: T = msgspec.structs.replace(child_any, metadata=updated)
    return result


class ChildWriter:
    """Creates children for one controller (through the fenced client)."""

    def __init__(self, client: KubeClient, *, field_manager: str = FIELD_MANAGER) -> None:
        self._client = client
        self._field_manager = field_manager

    async def create_if_absent(
        self,
        resource: ResourceType,
        child: T,
        *,
        owner: Any,
        owner_resource: ResourceType,
        cache: CacheReader[T] | None = None,
    ) -> T:
        """Create `child` controlled by `owner`, or return the existing one if it is ours (or an
        orphan, which is adopted). Raises `ChildConflict` if another controller owns the name."""
        reference = controller_reference(owner, owner_resource)
        child = with_owner(child, reference)
        child_any: Any = child
        meta: ObjectMeta = child_any.metadata
        if not meta.name or not meta.namespace:
            raise ValueError(f"{resource.kind} child needs a deterministic name and a namespace")
        kind: type[T] = type(child)
        try:
            return await self._client.create(
                resource, child, meta.namespace, type=kind, field_manager=self._field_manager
            )
        except AlreadyExists:
            pass
        existing = cache.get(meta.namespace, meta.name) if cache is not None else None
        if existing is None:
            # Not in the cache yet (just created by someone else): read it once from the server.
            existing = await self._client.get(resource, meta.name, meta.namespace, type=kind)
        return await self._claim(resource, existing, reference)

    async def _claim(self, resource: ResourceType, existing: T, reference: OwnerReference) -> T:
        current = controller_of(existing)
        existing_any: Any = existing
        meta: ObjectMeta = existing_any.metadata
        if current is not None and current.uid == reference.uid:
            return existing
        where = f"{resource.kind} {meta.namespace}/{meta.name}"
        if current is not None:
            raise ChildConflict(
                f"{where} already exists and is controlled by {current.kind} {current.name} "
                f"(uid {current.uid}), not by {reference.kind} {reference.name} "
                f"(uid {reference.uid})"
            )
        # An orphan: adopt it. The resourceVersion makes the patch fail if it changed meanwhile.
        references = [*(meta.owner_references or []), reference]
        patch = {
            "metadata": {
                "resourceVersion": meta.resource_version,
                "ownerReferences": msgspec.to_builtins(references),
            }
        }
        adopted: T = await self._client.merge_patch(
            resource,
            meta.name or "",
            patch,
            meta.namespace,
            type=type(existing),
            field_manager=self._field_manager,
        )
        return adopted


__all__ = [
    "CHILD_CONFLICT",
    "ChildConflict",
    "ChildWriter",
    "controller_of",
    "controller_reference",
    "with_owner",
]
