"""List-then-watch informer: keeps a Store in step with the apiserver and tells handlers.

The reflector loop (client-go's): LIST (paged, consistent read), replace the store and emit the
add/update/delete deltas, then WATCH from the list's resourceVersion with bookmarks on and a
random server-side timeout of 5-10 minutes. A watch that ends is resumed from the last seen
resourceVersion; a broken connection is retried with jittered backoff; a 410 Gone (the
resourceVersion was compacted) triggers a relist whose deltas include every delete that
happened meanwhile, so no change is ever lost. Any other error the watch reports (an ERROR
event such as "too large resource version", or a refused watch request) is followed, after the
backoff, by a relist from a consistent read. A watch that stays silent past the idle timeout
(half-open TCP) is treated as broken, and one that the server ends within a second without a
single event counts as a failure too (client-go's "very short watch"), so a server that closes
every watch at once is retried with backoff, not in a hot loop.

Objects that do not decode into the informer's Struct (a ConfigMap whose data holds a number, a
StoryRun written under a newer CRD) are left out of the cache: one log line and a metric per
bad version, and if an older version was cached it is removed and handlers get a `deleted`
event, so no reconciler acts on a copy that no longer says what the object says. Reconcilers see
such a key as absent; `undecodable` lists them with the decode error.

Handlers run synchronously on the loop: they should only map the event to keys and enqueue
them.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal

import anyio
import anyio.abc
import msgspec
import structlog

from runs_controller.api.codec import decode, decoder
from runs_controller.kube.errors import ApiError, Gone, KubeError, TooManyRequests
from runs_controller.kube.watch import ADDED, BOOKMARK, DELETED, ERROR, MODIFIED, event_error
from runs_controller.runtime.backoff import Backoff
from runs_controller.runtime.store import IndexFunc, Store, T, key_of, object_key

if TYPE_CHECKING:
    from runs_controller.api.meta import ObjectMeta
    from runs_controller.kube.client import KubeClient
    from runs_controller.kube.resources import ResourceType
    from runs_controller.observability.metrics import InformerMetrics

log = structlog.get_logger("runs_controller.informer")

EventType = Literal["added", "updated", "deleted"]

FIELD_MANAGER = "runs-controller"
"""The one field manager every write of this controller uses (server-side apply)."""

SHORT_WATCH_SECONDS = 1.0
"""A watch that ends sooner than this without delivering an event counts as a failure."""


@dataclass(frozen=True)
class Event(Generic[T]):
    """One change seen by the informer. `initial` marks adds from the first list."""

    type: EventType
    obj: T
    old: T | None = None
    initial: bool = False


Handler = Callable[[Event[T]], None]


class _Meta(msgspec.Struct):
    name: str | None = None
    namespace: str | None = None
    resource_version: str | None = msgspec.field(default=None, name="resourceVersion")


class _Bookmark(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)


class ManagedFieldsEntry(msgspec.Struct, rename="camel", omit_defaults=True):
    """One managedFields entry; `fields_v1` stays raw until someone reads it."""

    manager: str | None = None
    operation: str | None = None
    api_version: str | None = None
    time: str | None = None
    fields_type: str | None = None
    fields_v1: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw, name="fieldsV1")
    subresource: str | None = None


_entries = decoder(list[ManagedFieldsEntry])


def keep_managed_fields(raw: msgspec.Raw, managers: frozenset[str]) -> msgspec.Raw:
    """Only the managedFields entries of `managers` (ours): the status writer reads them to know
    which fields a server-side apply would remove; everyone else's are dropped from the cache."""
    if not raw or not managers:
        return msgspec.Raw()
    data = bytes(raw)
    if not any(manager.encode() in data for manager in managers):
        return msgspec.Raw()
    kept = [entry for entry in _entries.decode(data) if entry.manager in managers]
    return msgspec.Raw(msgspec.json.encode(kept)) if kept else msgspec.Raw()


@dataclass(frozen=True)
class Undecodable:
    """An object that does not decode into the informer's Struct."""

    key: str
    resource_version: str | None
    error: str


def _undecodable(raw: msgspec.Raw, error: str) -> Undecodable:
    try:
        meta = decode(raw, _Bookmark).metadata
    except msgspec.DecodeError:
        return Undecodable("<unreadable>", None, error)
    return Undecodable(
        object_key(meta.namespace, meta.name or "<unnamed>"), meta.resource_version, error
    )


class VeryShortWatch(KubeError):
    """The server ended a watch at once without an event: back off before the next one."""


class WatchFailed(KubeError):
    """The watch reported an error other than 410 (an ERROR event or a refused request): relist."""


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
    keep_managers: frozenset[str] = frozenset({FIELD_MANAGER})
    """managedFields are large and read only for our own writes: the cache keeps the entries of
    these managers and drops the rest (this also lets go of the watch buffer they point into)."""
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
        metrics: InformerMetrics | None = None,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._client = client
        self.resource = resource
        self.type = type
        self.options = options or InformerOptions()
        self.store: Store[T] = Store(indexers)
        self._handlers: list[Handler[T]] = []
        self._synced = anyio.Event()
        self._clock = clock
        self._sleep = sleep
        self.resource_version = ""
        self.lists = 0
        """How many LISTs were done (1 + relists); tests and metrics read it."""
        self.watches = 0
        """How many watches were opened."""
        self.undecodable: dict[str, str] = {}
        """Keys of objects left out of the cache because they do not decode, with the error."""
        self.name = f"{resource.plural}.{resource.group or 'core'}"
        if self.options.namespace:
            self.name += f"/{self.options.namespace}"
        self._metrics = metrics
        if metrics is not None:
            metrics.decode_errors.labels(self.name)
            metrics.undecodable.labels(self.name).set(0)

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
                continue
            except Gone:
                log.info("watch_expired_relisting", informer=self.name)
                need_list = True
                continue
            except WatchFailed as error:
                log.warning("watch_failed_relisting", informer=self.name, error=str(error))
                need_list = True
            except VeryShortWatch as error:
                log.info("watch_very_short", informer=self.name, error=str(error))
            except (KubeError, OSError) as error:
                if isinstance(error, ApiError) and error.code in (401, 403, 404):
                    log.error("informer_request_refused", informer=self.name, error=str(error))
                else:
                    log.warning("informer_retrying", informer=self.name, error=str(error))
            await self._sleep(backoff.next_delay(self._clock()))

    async def _list(self) -> None:
        opts = self.options
        raw_items, resource_version = await self._client.list_all(
            self.resource,
            opts.namespace,
            type=msgspec.Raw,
            label_selector=opts.label_selector,
            field_selector=opts.field_selector,
            page_size=opts.page_size,
        )
        items: list[T] = []
        bad: dict[str, str] = {}
        for raw in raw_items:
            obj = self._decode(raw)
            if isinstance(obj, Undecodable):
                bad[obj.key] = obj.error
            else:
                items.append(obj)
        initial = not self.has_synced
        changes = self.store.replace(items)
        self.resource_version = resource_version
        self.lists += 1
        self.undecodable = bad
        self._count_undecodable()
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
        started = self._clock()
        events = 0
        self.watches += 1
        try:
            async with stream:
                async for event in stream:
                    events += 1
                    if event.type == ERROR:
                        error = event_error(event, stream.path)
                        if isinstance(error, Gone):
                            raise error
                        raise WatchFailed(str(error)) from error
                    if event.type == BOOKMARK:
                        bookmark = decode(event.object, _Bookmark)
                        if bookmark.metadata.resource_version:
                            self.resource_version = bookmark.metadata.resource_version
                        continue
                    self._apply(event.type, event.object)
        except ApiError as error:
            if isinstance(error, Gone | TooManyRequests):
                raise
            # The server refused the watch itself (e.g. "too large resource version", 504):
            # resuming from the same resourceVersion would be refused again.
            raise WatchFailed(f"watch refused: {error}") from error
        elapsed = self._clock() - started
        if events == 0 and elapsed < SHORT_WATCH_SECONDS:
            raise VeryShortWatch(f"watch {stream.path} ended after {elapsed:.3f}s without an event")

    def _apply(self, kind: str, raw: msgspec.Raw) -> None:
        obj = self._decode(raw)
        if isinstance(obj, Undecodable):
            key = obj.key
            if obj.resource_version:
                self.resource_version = obj.resource_version
            if kind == DELETED:
                self.undecodable.pop(key, None)
            else:
                self.undecodable[key] = obj.error
            self._count_undecodable()
            removed = self.store.delete(key)
            if removed is not None:
                self._dispatch(Event("deleted", removed))
            return
        meta = obj.metadata
        if meta is not None and meta.resource_version:
            self.resource_version = meta.resource_version
        key = key_of(obj)
        if self.undecodable.pop(key, None) is not None:
            self._count_undecodable()
        if kind in (ADDED, MODIFIED):
            old = self.store.upsert(obj)
            if old is None:
                self._dispatch(Event("added", obj))
            else:
                self._dispatch(Event("updated", obj, old))
        elif kind == DELETED:
            self.store.delete(key)
            self._dispatch(Event("deleted", obj))

    def _decode(self, raw: msgspec.Raw) -> T | Undecodable:
        """The object as the informer's Struct, or why it does not fit (logged and counted)."""
        try:
            obj = decoder(self.type).decode(raw)
        except msgspec.DecodeError as error:
            bad = _undecodable(raw, str(error))
            if self._metrics is not None:
                self._metrics.decode_errors.labels(self.name).inc()
            log.error(
                "informer_object_undecodable",
                informer=self.name,
                kind=self.resource.kind,
                key=bad.key,
                resource_version=bad.resource_version,
                error=bad.error,
            )
            return bad
        return self._strip(obj)

    def _strip(self, obj: T) -> T:
        meta: ObjectMeta | None = obj.metadata
        if meta is None or not meta.managed_fields:
            return obj
        kept = keep_managed_fields(meta.managed_fields, self.options.keep_managers)
        stripped: T = msgspec.structs.replace(  # type: ignore[type-var]
            obj, metadata=msgspec.structs.replace(meta, managed_fields=kept)
        )
        return stripped

    def _count_undecodable(self) -> None:
        if self._metrics is not None:
            self._metrics.undecodable.labels(self.name).set(len(self.undecodable))

    def _dispatch(self, event: Event[T]) -> None:
        for handler in self._handlers:
            self._call(handler, event)

    def _call(self, handler: Handler[T], event: Event[T]) -> None:
        try:
            handler(event)
        except Exception:
            # A broken handler must not stop the cache from following the apiserver.
            log.exception("informer_handler_failed", informer=self.name, change=event.type)


InformerKey = tuple["ResourceType", type, str | None, str | None, str | None]


class SharedInformers:
    """One informer per (resource, Struct type, namespace, selectors), however many ask.

    Informers asked for after `run()` started are started at once, so a late registration is
    never left unsynced while readiness waits for it.
    """

    def __init__(self, client: KubeClient, *, metrics: InformerMetrics | None = None) -> None:
        self._client = client
        self._metrics = metrics
        self._informers: dict[InformerKey, Informer[Any]] = {}
        self._group: anyio.abc.TaskGroup | None = None

    def get(
        self,
        resource: ResourceType,
        type: type[T],
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        indexers: dict[str, IndexFunc[T]] | None = None,
    ) -> Informer[T]:
        key: InformerKey = (resource, type, namespace, label_selector, field_selector)
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
            options=InformerOptions(
                namespace=namespace, label_selector=label_selector, field_selector=field_selector
            ),
            metrics=self._metrics,
        )
        self._informers[key] = created
        if self._group is not None:
            self._group.start_soon(created.run, name=f"informer {created.name}")
        return created

    def all(self) -> list[Informer[Any]]:
        return list(self._informers.values())

    async def run(self) -> None:
        """Run every informer (and any added later) until cancelled."""
        async with anyio.create_task_group() as group:
            for informer in self._informers.values():
                group.start_soon(informer.run, name=f"informer {informer.name}")
            self._group = group
            try:
                await anyio.sleep_forever()
            finally:
                self._group = None
