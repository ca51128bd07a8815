"""Read-your-writes: a reconcile never decides on an object older than one it wrote itself.

The cache learns of our own writes through the watch, a moment later. A reconcile that runs in
between (woken by a child's event, say) would otherwise decide on the copy from before the
write: repeat it, or worse, compute from a status it already replaced. `WrittenObjects` keeps
the object each write returned until the cache has caught up with it.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _key(obj: Any) -> str:
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else str(meta.name)


def newer(a: Any, b: Any) -> bool:
    """Whether `a` is a later version than `b` of the same object.

    resourceVersions are etcd revisions on every apiserver we run against; when one does not
    parse, the cache is trusted.
    """
    try:
        return int(a.metadata.resource_version or "") > int(b.metadata.resource_version or "")
    except (AttributeError, ValueError):
        return False


class WrittenObjects(Generic[T]):
    """Our last write of each object, until the cache shows it (or a later version)."""

    def __init__(self) -> None:
        self._written: dict[str, T] = {}

    def remember(self, obj: T) -> T:
        if getattr(obj, "metadata", None) is not None:
            self._written[_key(obj)] = obj
        return obj

    def forget(self, key: str) -> None:
        self._written.pop(key, None)

    def freshest(self, cached: T) -> T:
        """`cached`, or our own later write of the same object (same UID)."""
        meta: Any = getattr(cached, "metadata", None)
        if meta is None:
            return cached
        key = _key(cached)
        written = self._written.get(key)
        if written is None:
            return cached
        written_meta: Any = getattr(written, "metadata", None)
        if written_meta is not None and written_meta.uid == meta.uid and newer(written, cached):
            return written
        del self._written[key]
        return cached

    def __len__(self) -> int:
        return len(self._written)


__all__ = ["WrittenObjects", "newer"]
