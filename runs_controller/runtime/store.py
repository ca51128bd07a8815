"""The informer's cache: objects keyed `namespace/name`, with secondary indexes.

Reconcilers read from here instead of listing the apiserver. Indexes map an object to zero or
more values (its namespace, a label value, its owners' UIDs, anything a function derives) and
are maintained on every write, so `by_index` is a dictionary lookup.
One event loop owns a store; there is no locking.

Cached objects are shared, not copied (a copy per read costs 20-30 us for a StepRun, a
`deepcopy` ten times that): the API Structs are frozen, so a reconciler cannot assign to a
field, and with `RUNS_CONTROLLER_VERIFY_CACHE=1` (the test suite sets it) every object is
fingerprinted when stored and checked when it is read, replaced or removed, so an in-place edit
of a nested dict or list fails the test that made it with `CacheMutated`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from runs_controller.api.codec import encode

if TYPE_CHECKING:
    from runs_controller.api.meta import ObjectMeta


class HasMetadata(Protocol):
    @property
    def metadata(self) -> ObjectMeta | None: ...


T = TypeVar("T", bound=HasMetadata)
IndexFunc = Callable[[T], Iterable[str]]

NAMESPACE_INDEX = "namespace"
VERIFY_ENV = "RUNS_CONTROLLER_VERIFY_CACHE"
"""Set to 1 to fingerprint cached objects and catch in-place edits (tests do)."""


class CacheMutated(AssertionError):
    """A cached object was changed in place: some code edited what it should only read."""


def verify_by_default() -> bool:
    return os.environ.get(VERIFY_ENV, "") == "1"


def fingerprint(obj: object) -> bytes:
    return hashlib.blake2b(encode(obj), digest_size=16).digest()


def object_key(namespace: str | None, name: str) -> str:
    """client-go's MetaNamespaceKeyFunc: `ns/name`, or `name` for cluster-scoped objects."""
    return f"{namespace}/{name}" if namespace else name


def key_of(obj: HasMetadata) -> str:
    meta = obj.metadata
    if meta is None or not meta.name:
        raise ValueError("object has no metadata.name")
    return object_key(meta.namespace, meta.name)


def index_by_namespace(obj: HasMetadata) -> Iterable[str]:
    meta = obj.metadata
    return [meta.namespace] if meta is not None and meta.namespace else []


def index_by_label(label: str) -> Callable[[HasMetadata], Iterable[str]]:
    """An index on one label's value (objects without the label are not indexed)."""

    def index(obj: HasMetadata) -> Iterable[str]:
        labels = obj.metadata.labels if obj.metadata is not None else None
        value = (labels or {}).get(label)
        return [value] if value is not None else []

    return index


def index_by_owner_uid(obj: HasMetadata) -> Iterable[str]:
    meta = obj.metadata
    owners = meta.owner_references if meta is not None else None
    return [owner.uid for owner in owners or []]


OWNER_UID_INDEX = "owner-uid"


@dataclass(frozen=True)
class Changes(Generic[T]):
    """What a full replace (relist) changed: the informer turns these into events."""

    added: list[T]
    updated: list[tuple[T, T]]
    deleted: list[T]


def resource_version(obj: HasMetadata) -> str | None:
    return obj.metadata.resource_version if obj.metadata is not None else None


class Store(Generic[T]):
    """Objects by key plus indexes; `replace` computes the deltas of a relist."""

    def __init__(
        self, indexers: dict[str, IndexFunc[T]] | None = None, *, verify: bool | None = None
    ) -> None:
        self._items: dict[str, T] = {}
        self.verify = verify_by_default() if verify is None else verify
        self._prints: dict[str, bytes] = {}
        self._indexers: dict[str, IndexFunc[T]] = {NAMESPACE_INDEX: index_by_namespace}
        self._indexers.update(indexers or {})
        self._indexes: dict[str, dict[str, set[str]]] = {name: {} for name in self._indexers}
        self._values: dict[str, dict[str, tuple[str, ...]]] = {name: {} for name in self._indexers}

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        """Keys, like a dict."""
        return iter(list(self._items))

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: str) -> T | None:
        obj = self._items.get(key)
        if self.verify and obj is not None:
            self._check(key, obj)
        return obj

    def keys(self) -> list[str]:
        return list(self._items)

    def objects(self) -> list[T]:
        if self.verify:
            self.check_all()
        return list(self._items.values())

    def by_index(self, index: str, value: str) -> list[T]:
        """Objects whose index function produced `value` (KeyError for an unknown index)."""
        keys = self._indexes[index].get(value, ())
        found = [self._items[key] for key in sorted(keys)]
        if self.verify:
            for key, obj in zip(sorted(keys), found, strict=True):
                self._check(key, obj)
        return found

    def check_all(self) -> None:
        """Raise `CacheMutated` if any cached object changed since it was stored."""
        for key, obj in self._items.items():
            self._check(key, obj)

    def _check(self, key: str, obj: T) -> None:
        if self._prints.get(key) != fingerprint(obj):
            raise CacheMutated(f"cached object {key} was modified in place")

    def index_values(self, index: str) -> list[str]:
        return sorted(self._indexes[index])

    def upsert(self, obj: T) -> T | None:
        """Add or replace an object; returns the previous version, if any."""
        key = key_of(obj)
        old = self._items.get(key)
        if self.verify:
            if old is not None:
                self._check(key, old)
            self._prints[key] = fingerprint(obj)
        self._items[key] = obj
        self._reindex(key, obj)
        return old

    def delete(self, key: str) -> T | None:
        old = self._items.pop(key, None)
        if old is not None:
            if self.verify:
                self._check(key, old)
                del self._prints[key]
            self._reindex(key, None)
        return old

    def replace(self, objects: Iterable[T]) -> Changes[T]:
        """Make the store hold exactly `objects` and report what changed.

        An object counts as updated when its resourceVersion differs from the cached one.
        """
        fresh = {key_of(obj): obj for obj in objects}
        added: list[T] = []
        updated: list[tuple[T, T]] = []
        deleted = [self._items[key] for key in self._items.keys() - fresh.keys()]
        for key in [key_of(obj) for obj in deleted]:
            self.delete(key)
        for obj in fresh.values():
            old = self.upsert(obj)
            if old is None:
                added.append(obj)
            elif resource_version(old) != resource_version(obj):
                updated.append((old, obj))
        return Changes(added=added, updated=updated, deleted=deleted)

    def add_indexer(self, name: str, function: IndexFunc[T]) -> None:
        """Add an index later (a second controller sharing the informer); existing objects are
        indexed at once. Re-adding a name is a no-op."""
        if name in self._indexers:
            return
        self._indexers[name] = function
        self._indexes[name] = {}
        self._values[name] = {}
        for key, obj in self._items.items():
            self._reindex_one(name, function, key, obj)

    def _reindex(self, key: str, obj: T | None) -> None:
        for name, function in self._indexers.items():
            self._reindex_one(name, function, key, obj)

    def _reindex_one(self, name: str, function: IndexFunc[T], key: str, obj: T | None) -> None:
        previous = self._values[name].pop(key, ())
        for value in previous:
            members = self._indexes[name].get(value)
            if members is not None:
                members.discard(key)
                if not members:
                    del self._indexes[name][value]
        if obj is None:
            return
        values = tuple(dict.fromkeys(function(obj)))
        if values:
            self._values[name][key] = values
            for value in values:
                self._indexes[name].setdefault(value, set()).add(key)
