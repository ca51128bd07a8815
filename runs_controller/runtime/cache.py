"""Typed cache readers: one kind across every watched namespace, by name, label or index.

The manager watches either all namespaces (one informer per kind) or a list of them (one
informer per kind and namespace); a `CacheReader` hides which. Cluster-scoped kinds always have
one informer. Reads are dictionary lookups on the informers' stores; nothing here talks to the
apiserver. An object the informer could not decode is absent (see `informer.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic

from runs_controller.runtime.store import (
    NAMESPACE_INDEX,
    OWNER_UID_INDEX,
    IndexFunc,
    T,
    index_by_owner_uid,
    object_key,
)

if TYPE_CHECKING:
    import builtins
    from collections.abc import Mapping

    from runs_controller.kube.resources import ResourceType
    from runs_controller.runtime.informer import Informer, SharedInformers


class CacheReader(Generic[T]):
    """Reads of one kind from the informer caches."""

    def __init__(self, resource: ResourceType, informers: Mapping[str | None, Informer[T]]) -> None:
        """`informers` maps a namespace (None: all namespaces) to the informer watching it."""
        self.resource = resource
        self._informers = dict(informers)
        self._everywhere = self._informers.get(None)

    @property
    def informers(self) -> builtins.list[Informer[T]]:
        return list(self._informers.values())

    @property
    def has_synced(self) -> bool:
        return all(informer.has_synced for informer in self._informers.values())

    def watches(self, namespace: str) -> bool:
        """Whether objects in `namespace` are cached at all."""
        return self._everywhere is not None or namespace in self._informers

    def get(self, namespace: str, name: str) -> T | None:
        informer = self._for(namespace)
        if informer is None:
            return None
        key = object_key(namespace if self.resource.namespaced else None, name)
        return informer.store.get(key)

    def list(
        self, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> builtins.list[T]:
        """Objects in `namespace` (None: every watched one) whose labels include `labels`."""
        if namespace is None or not self.resource.namespaced:
            found = [obj for informer in self.informers for obj in informer.store.objects()]
        else:
            informer = self._for(namespace)
            found = informer.store.by_index(NAMESPACE_INDEX, namespace) if informer else []
        if labels:
            found = [obj for obj in found if _has_labels(obj, labels)]
        return found

    def by_index(self, index: str, value: str) -> builtins.list[T]:
        """Objects whose index function produced `value`, from every watched namespace."""
        return [obj for informer in self.informers for obj in informer.store.by_index(index, value)]

    def index_values(self, index: str) -> builtins.list[str]:
        """Every value the index function produced, over every watched namespace (sorted)."""
        return sorted(
            {v for informer in self.informers for v in informer.store.index_values(index)}
        )

    def owned_by(self, uid: str) -> builtins.list[T]:
        """Objects with an owner reference to `uid` (needs the owner index: `Cache.reader`
        adds it)."""
        return self.by_index(OWNER_UID_INDEX, uid)

    def _for(self, namespace: str) -> Informer[T] | None:
        if self._everywhere is not None:
            return self._everywhere
        if not self.resource.namespaced:
            return next(iter(self._informers.values()), None)
        return self._informers.get(namespace)


def _has_labels(obj: Any, labels: Mapping[str, str]) -> bool:
    have = (obj.metadata.labels if obj.metadata is not None else None) or {}
    return all(have.get(key) == value for key, value in labels.items())


class Cache:
    """Hands out readers, creating the informers behind them in the manager's shared set."""

    def __init__(self, informers: SharedInformers, namespaces: tuple[str, ...] = ()) -> None:
        """`namespaces`: the namespaces to watch; empty means all."""
        self.informers = informers
        self.namespaces = namespaces

    def reader(
        self,
        resource: ResourceType,
        type: type[T],
        *,
        indexers: Mapping[str, IndexFunc[T]] | None = None,
        label_selector: str | None = None,
    ) -> CacheReader[T]:
        """A reader for `type`; every reader also indexes owners' UIDs. `label_selector` caches
        only the matching objects (e.g. the pods of our Jobs, not every pod of the cluster)."""
        all_indexers: dict[str, IndexFunc[T]] = {OWNER_UID_INDEX: index_by_owner_uid}
        all_indexers.update(indexers or {})
        scopes: tuple[str | None, ...] = (
            self.namespaces if self.namespaces and resource.namespaced else (None,)
        )
        return CacheReader(
            resource,
            {
                scope: self.informers.get(
                    resource,
                    type,
                    namespace=scope,
                    label_selector=label_selector,
                    indexers=all_indexers,
                )
                for scope in scopes
            },
        )


__all__ = ["Cache", "CacheReader"]
