"""List-then-watch informer: keeps a Store in step with the apiserver and tells handlers.

The reflector loop (client-go's): LIST (paged, consistent read), replace the store and emit the
add/update/delete deltas, then WATCH from the list's resourceVersion with bookmarks on and a
random server-side timeout of 5-10 minutes. A watch that ends is resumed from the last seen
resourceVersion; a broken connection is retried with jittered backoff; a 410 Gone (the
resourceVersion was compacted) triggers a relist whose deltas include every delete that
happened meanwhile, so no change is ever lost. A watch that stays silent past the idle timeout
(half-open TCP) is treated as broken. Handlers run synchronously on the loop: they should only
map the event to keys and enqueue them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal

import anyio
import msgspec
import structlog

from runs_controller.api.codec import decode
from runs_controller.kube.errors import ApiError, Gone, KubeError
from runs_controller.kube.watch import ADDED, BOOKMARK, DELETED, ERROR, MODIFIED, event_error
from runs_controller.runtime.backoff import Backoff
from runs_controller.runtime.store import IndexFunc, Store, T, key_of

if TYPE_CHECKING:
    from runs_controller.kube.client import KubeClient
    from runs_controller.kube.resources import ResourceType

log = structlog.get_logger("runs_controller.informer")

EventType = Literal["added", "updated", "deleted"]


@dataclass(frozen=True)
class Event(Generic[T]):
    """One change seen by the informer. `initial` marks adds from the first list."""

    type: EventType
    obj: T
    old: T | None = None
    initial: bool = False


Handler = Callable[[Event[T]], None]


class _Meta(msgspec.Struct):
    resource_version: str | None = msgspec.field(default=None, name="resourceVersion")


class _Bookmark(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)


@dataclass
class InformerOptions:
    namespace: str | None = None
    """One namespace, or None for all namespaces."""
    label_selector: str | None = None
    field_selector: str | None = None
    page_size: int = 500
    watch_timeout: tuple[int, int] = (300, 600)
    """Server-side watch timeout, drawn at random in this range (spreads reconnects)."""
    idle_timeout: float | None = None
    """No byte for this long ends the watch as broken; None uses the client's default."""
    strip_managed_fields: bool = True
    """managedFields are large and never read by controllers: drop them from the cache (this
    also lets go of the watch buffer their undecoded bytes point into)."""
    backoff: Backoff = field(default_factory=Backoff)


class Informer(Generic[T]):
    """One kind (in one namespace or all), cached and watched. Start it with `run()`."""

    def __init__(
        self,
        client: KubeClient,
        resource: ResourceType,
        type: type[T],
        *,
        indexers: dict[str, IndexFunc[T]] | None = None,
        options: InformerOptions | None = None,
    ) -> None:
        self._client = client
        self.resource = resource
        self._type = type
        self.options = options or InformerOptions()
        self.store: Store[T] = Store(indexers)
        self._handlers: list[Handler[T]] = []
        self._synced = anyio.Event()
        self.resource_version = ""
        self.lists = 0
        """How many LISTs were done (1 + relists); tests and metrics read it."""
        self.name = f"{resource.plural}.{resource.group or 'core'}"
        if self.options.namespace:
            self.name += f"/{self.options.namespace}"

    def add_handler(self, handler: Handler[T]) -> None:
        """Register a handler; objects already cached are replayed to it as initial adds."""
        self._handlers.append(handler)
        for obj in self.store.objects():
            self._call(handler, Event("added", obj, initial=True))

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_for_sync(self) -> None:
        await self._synced.wait()

    async def run(self) -> None:
        """List and watch until cancelled. Never returns on its own; errors are retried."""
        backoff = self.options.backoff
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch()
                backoff.reset()
            except Gone:
                log.info("watch_expired_relisting", informer=self.name)
                need_list = True
            except (KubeError, OSError) as error:
                if isinstance(error, ApiError) and error.code in (401, 403, 404):
                    log.error("informer_request_refused", informer=self.name, error=str(error))
                else:
                    log.warning("informer_retrying", informer=self.name, error=str(error))
                await anyio.sleep(backoff.next_delay(anyio.current_time()))

    async def _list(self) -> None:
        opts = self.options
        items, resource_version = await self._client.list_all(
            self.resource,
            opts.namespace,
            type=self._type,
            label_selector=opts.label_selector,
            field_selector=opts.field_selector,
            page_size=opts.page_size,
        )
        for item in items:
            self._strip(item)
        initial = not self.has_synced
        changes = self.store.replace(items)
        self.resource_version = resource_version
        self.lists += 1
        for obj in changes.deleted:
            self._dispatch(Event("deleted", obj))
        for old, new in changes.updated:
            self._dispatch(Event("updated", new, old))
        for obj in changes.added:
            self._dispatch(Event("added", obj, initial=initial))
        self._synced.set()

    async def _watch(self) -> None:
        opts = self.options
        low, high = opts.watch_timeout
        stream = self._client.watch(
            self.resource,
            opts.namespace,
            resource_version=self.resource_version,
            allow_bookmarks=True,
            timeout_seconds=random.randint(low, high),  # noqa: S311 - spreading, not security
            label_selector=opts.label_selector,
            field_selector=opts.field_selector,
            idle_timeout=opts.idle_timeout,
        )
        async with stream:
            async for event in stream:
                if event.type == ERROR:
                    raise event_error(event, stream.path)
                if event.type == BOOKMARK:
                    bookmark = decode(event.object, _Bookmark)
                    if bookmark.metadata.resource_version:
                        self.resource_version = bookmark.metadata.resource_version
                    continue
                obj = decode(event.object, self._type)
                self._strip(obj)
                self._apply(event.type, obj)

    def _apply(self, kind: str, obj: T) -> None:
        meta = obj.metadata
        if meta is not None and meta.resource_version:
            self.resource_version = meta.resource_version
        if kind in (ADDED, MODIFIED):
            old = self.store.upsert(obj)
            if old is None:
                self._dispatch(Event("added", obj))
            else:
                self._dispatch(Event("updated", obj, old))
        elif kind == DELETED:
            self.store.delete(key_of(obj))
            self._dispatch(Event("deleted", obj))

    def _strip(self, obj: Any) -> None:
        if self.options.strip_managed_fields and obj.metadata is not None:
            obj.metadata.managed_fields = msgspec.Raw()

    def _dispatch(self, event: Event[T]) -> None:
        for handler in self._handlers:
            self._call(handler, event)

    def _call(self, handler: Handler[T], event: Event[T]) -> None:
        try:
            handler(event)
        except Exception:
            # A broken handler must not stop the cache from following the apiserver.
            log.exception("informer_handler_failed", informer=self.name, change=event.type)


class SharedInformers:
    """One informer per (resource, namespace, selectors), however many controllers ask."""

    def __init__(self, client: KubeClient) -> None:
        self._client = client
        self._informers: dict[tuple[Any, ...], Informer[Any]] = {}

    def get(
        self,
        resource: ResourceType,
        type: type[T],
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        indexers: dict[str, IndexFunc[T]] | None = None,
    ) -> Informer[T]:
        key = (resource, namespace, label_selector)
        existing = self._informers.get(key)
        if existing is not None:
            for name, function in (indexers or {}).items():
                existing.store.add_indexer(name, function)
            informer: Informer[T] = existing
            return informer
        created = Informer(
            self._client,
            resource,
            type,
            indexers=indexers,
            options=InformerOptions(namespace=namespace, label_selector=label_selector),
        )
        self._informers[key] = created
        return created

    def all(self) -> list[Informer[Any]]:
        return list(self._informers.values())

    async def run(self) -> None:
        """Run every informer until cancelled."""
        async with anyio.create_task_group() as group:
            for informer in self._informers.values():
                group.start_soon(informer.run)
