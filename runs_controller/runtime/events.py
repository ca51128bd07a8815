"""An event recorder: events.k8s.io/v1 (core/v1 fallback), de-duplicated and rate limited.

What it takes from client-go's broadcaster and correlator:

* the same (object, type, reason, action, note) seen again within `series_window` is one Event
  object whose `series.count` / `series.lastObservedTime` (core/v1: `count` / `lastTimestamp`)
  is updated, not a new object; recent events live in a bounded LRU;
* a per-object token bucket (burst 25, one more every 5 minutes) drops the excess of a hot
  object, so it cannot flood the apiserver (the spam filter);
* names are `<object name>.<hex nanoseconds>`; reportingController is `runs-controller`.

Recording never blocks or fails the caller: `record()` only updates memory and queues the Event;
one background task (`run()`) writes. The queue is bounded and coalesces: an Event already
waiting is written once, with its latest count. When it is full the oldest entry is dropped
(its count is not lost: the next occurrence writes it). Write errors are logged and counted.
"""

from __future__ import annotations

import datetime
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TypeVar

import anyio
import msgspec
import structlog

from runs_controller.api.codec import MicroTime
from runs_controller.api.k8s import CoreEvent, Event, EventSeries, EventSource, ObjectReference
from runs_controller.api.meta import ObjectMeta
from runs_controller.kube.errors import Forbidden, NotFound
from runs_controller.kube.resources import CORE_EVENTS, EVENTS

if TYPE_CHECKING:
    from collections.abc import Callable

    from runs_controller.kube.client import Body
    from runs_controller.kube.resources import ResourceType

log = structlog.get_logger("runs_controller.events")

T = TypeVar("T")

EventType = Literal["Normal", "Warning"]
Api = Literal["events.k8s.io", "core"]

REPORTING_CONTROLLER = "runs-controller"
NOTE_LIMIT = 1024
"""events.k8s.io rejects a note over 1 KiB (bytes, as Go counts)."""
REPORTING_INSTANCE_LIMIT = 128
NAME_LIMIT = 253
DEFAULT_NAMESPACE = "default"
"""Where events about cluster-scoped objects go (client-go's choice)."""


@dataclass(frozen=True)
class RecorderOptions:
    """Bounds and windows; the defaults are client-go's."""

    queue_size: int = 1000
    """Events waiting to be written; beyond it the oldest is dropped."""
    cache_size: int = 4096
    """Recent events remembered for de-duplication (client-go `maxLruCacheEntries`)."""
    series_window: float = 360.0
    """A repeat within this long (since the last occurrence) joins the series; later, a new
    Event starts (client-go's events library finishes a series after 6 minutes)."""
    spam_burst: int = 25
    spam_qps: float = 1 / 300
    """Per object: `spam_burst` events at once, then one more every 1/spam_qps seconds."""


@dataclass
class RecorderStats:
    """Counters for tests and logs: what was recorded, written, dropped and why."""

    recorded: int = 0
    written: int = 0
    spam_dropped: int = 0
    overflow_dropped: int = 0
    failed: int = 0
    invalid: int = 0


class HasObjectMeta(Protocol):
    """An API object: anything with apiVersion, kind and metadata (every `Resource`)."""

    @property
    def api_version(self) -> str | None: ...

    @property
    def kind(self) -> str | None: ...

    @property
    def metadata(self) -> ObjectMeta | None: ...


class EventClient(Protocol):
    """The two calls the recorder makes; `KubeClient` provides them."""

    async def create(
        self,
        rt: ResourceType,
        obj: Body,
        namespace: str | None = None,
        *,
        type: type[T],
        field_manager: str | None = None,
    ) -> T: ...

    async def merge_patch(
        self,
        rt: ResourceType,
        name: str,
        patch: Body,
        namespace: str | None = None,
        *,
        type: type[T],
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> T: ...


# ---- pure parts -----------------------------------------------------------------------------


class EventKey(NamedTuple):
    """What makes two events "the same" (resourceVersion left out: it changes every write)."""

    uid: str
    api_version: str
    kind: str
    namespace: str
    name: str
    field_path: str
    type: str
    reason: str
    action: str
    note: str


def event_key(ref: ObjectReference, type: str, reason: str, action: str, note: str) -> EventKey:
    return EventKey(
        ref.uid or "",
        ref.api_version or "",
        ref.kind or "",
        ref.namespace or "",
        ref.name or "",
        ref.field_path or "",
        type,
        reason,
        action,
        note,
    )


def spam_key(ref: ObjectReference) -> tuple[str, str, str, str]:
    """The spam filter's key: the object alone, whatever it is told about."""
    return (ref.uid or "", ref.kind or "", ref.namespace or "", ref.name or "")


def truncate_utf8(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes, cut on a character boundary."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore")


def event_name(object_name: str, unique: int) -> str:
    """`<object name>.<hex>` as client-go names events, kept within 253 characters."""
    suffix = f".{unique:x}"
    return object_name[: NAME_LIMIT - len(suffix)] + suffix


def object_reference(obj: HasObjectMeta, resource: ResourceType | None = None) -> ObjectReference:
    """A reference to `obj`; `resource` supplies apiVersion/kind when the object lacks them."""
    meta = obj.metadata or ObjectMeta()
    return ObjectReference(
        api_version=resource.api_version if resource is not None else obj.api_version,
        kind=resource.kind if resource is not None else obj.kind,
        name=meta.name,
        namespace=meta.namespace,
        uid=meta.uid,
        resource_version=meta.resource_version,
    )


def group_not_served(error: NotFound) -> bool:
    """A 404 for the API path itself (no details), not for a missing namespace or object."""
    details = error.status.details
    return details is None or not details.kind


class SpamFilter:
    """Per-key token buckets in a bounded LRU (client-go `EventSourceObjectSpamFilter`)."""

    def __init__(self, burst: int, qps: float, size: int, clock: Callable[[], float]) -> None:
        if burst < 1 or qps <= 0 or size < 1:
            raise ValueError("spam filter needs burst >= 1, qps > 0 and size >= 1")
        self.burst = burst
        self.qps = qps
        self.size = size
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, ...], tuple[float, float]] = OrderedDict()

    def allow(self, key: tuple[str, ...]) -> bool:
        """Take a token for `key` if one is there."""
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.qps)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.size:
            self._buckets.popitem(last=False)
        return allowed


@dataclass(eq=False)
class Series:
    """One Event object and the occurrences folded into it."""

    key: EventKey
    regarding: ObjectReference
    related: ObjectReference | None
    namespace: str
    name: str
    first_time: datetime.datetime
    last_time: datetime.datetime
    last_seen: float
    """Local monotonic time of the last occurrence (the window counts from here)."""
    count: int = 1
    written: int = 0
    """The count the API holds (0: not created yet)."""
    api: Api | None = None
    queued: bool = False


class SeriesCache:
    """Bounded LRU of recent series; `observe` folds an occurrence into one or starts one."""

    def __init__(self, size: int, window: float) -> None:
        self.size = size
        self.window = window
        self._entries: OrderedDict[EventKey, Series] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def observe(
        self, key: EventKey, mono: float, now: datetime.datetime, new: Callable[[], Series]
    ) -> Series:
        entry = self._entries.pop(key, None)
        if entry is None or mono - entry.last_seen > self.window:
            entry = new()
        else:
            entry.count += 1
            entry.last_time = now
            entry.last_seen = mono
        self._entries[key] = entry
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return entry


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class EventRecorder:
    """Records events about objects; run `run()` in a task group to write them."""

    def __init__(
        self,
        client: EventClient,
        *,
        reporting_instance: str,
        reporting_controller: str = REPORTING_CONTROLLER,
        options: RecorderOptions | None = None,
        api: Api | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime.datetime] = _utc_now,
    ) -> None:
        """`api` forces one API; None (the default) tries events.k8s.io, then core/v1 for good
        on the first 404 that says the group is not served."""
        self.options = options = options or RecorderOptions()
        if options.queue_size < 1 or options.cache_size < 1:
            raise ValueError("queue_size and cache_size must be >= 1")
        self._client = client
        self.reporting_instance = truncate_utf8(reporting_instance, REPORTING_INSTANCE_LIMIT)
        self.reporting_controller = reporting_controller
        self.api: Api = api or "events.k8s.io"
        self._detect = api is None
        self._clock = clock
        self._now = now
        self._spam = SpamFilter(options.spam_burst, options.spam_qps, options.cache_size, clock)
        self._cache = SeriesCache(options.cache_size, options.series_window)
        self._queue: deque[Series] = deque()
        self._wakeup: anyio.Event | None = None
        self._idle: anyio.Event | None = None
        self._writing = False
        self._running = False
        self._last_unique = 0
        self.stats = RecorderStats()

    # ---- recording (sync, never raises) -------------------------------------------------

    def record(
        self,
        regarding: ObjectReference | HasObjectMeta,
        type: EventType,
        reason: str,
        action: str,
        note: str = "",
        *,
        resource: ResourceType | None = None,
        related: ObjectReference | None = None,
    ) -> None:
        """Queue an event about `regarding` (a reference, or an object plus its ResourceType)."""
        try:
            self._record(regarding, type, reason, action, note, resource, related)
        except Exception:
            self.stats.invalid += 1
            log.exception("event_record_failed", reason=reason, action=action)

    def _record(
        self,
        regarding: ObjectReference | HasObjectMeta,
        type: str,
        reason: str,
        action: str,
        note: str,
        resource: ResourceType | None,
        related: ObjectReference | None,
    ) -> None:
        if isinstance(regarding, ObjectReference):
            ref = regarding
        else:
            ref = object_reference(regarding, resource)
        if type not in ("Normal", "Warning") or not ref.name or not reason or not action:
            self.stats.invalid += 1
            log.error("event_invalid", type=type, reason=reason, action=action, name=ref.name)
            return
        self.stats.recorded += 1
        if not self._spam.allow(spam_key(ref)):
            self.stats.spam_dropped += 1
            log.debug("event_spam_dropped", name=ref.name, kind=ref.kind, reason=reason)
            return
        note = truncate_utf8(note, NOTE_LIMIT)
        key = event_key(ref, type, reason, action, note)
        mono, now = self._clock(), self._now()
        regarding_ref: ObjectReference = ref

        def new() -> Series:
            return Series(
                key=key,
                regarding=regarding_ref,
                related=related,
                namespace=regarding_ref.namespace or DEFAULT_NAMESPACE,
                name=event_name(regarding_ref.name or "", self._unique()),
                first_time=now,
                last_time=now,
                last_seen=mono,
            )

        self._enqueue(self._cache.observe(key, mono, now, new))

    def _unique(self) -> int:
        self._last_unique = max(time.time_ns(), self._last_unique + 1)
        return self._last_unique

    def _enqueue(self, entry: Series) -> None:
        if entry.queued:
            return  # already waiting: it is written once, with its latest count
        if len(self._queue) >= self.options.queue_size:
            oldest = self._queue.popleft()
            oldest.queued = False
            self.stats.overflow_dropped += 1
            log.warning("event_queue_full", dropped=oldest.name)
        entry.queued = True
        self._queue.append(entry)
        if self._wakeup is not None:
            self._wakeup.set()

    @property
    def pending(self) -> int:
        """Events waiting to be written, plus the one being written."""
        return len(self._queue) + (1 if self._writing else 0)

    # ---- writing ------------------------------------------------------------------------

    async def run(self) -> None:
        """Write queued events until cancelled (one at a time: events are not urgent)."""
        if self._running:
            raise RuntimeError("EventRecorder.run() is already running")
        self._running = True
        try:
            await self._write_forever()
        finally:
            self._running = False

    async def _write_forever(self) -> None:
        while True:
            if not self._queue:
                if self._idle is not None:
                    self._idle.set()
                    self._idle = None
                self._wakeup = anyio.Event()
                await self._wakeup.wait()
                continue
            entry = self._queue.popleft()
            entry.queued = False
            self._writing = True
            try:
                await self._write(entry)
            finally:
                self._writing = False

    async def flush(self) -> None:
        """Wait until everything queued so far is written (needs `run()` running)."""
        while self.pending:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    async def _write(self, entry: Series) -> None:
        try:
            if entry.api is None:
                await self._create(entry)
            else:
                try:
                    await self._update(entry)
                except NotFound:
                    # Expired (event TTL) or deleted: start a new object with the count so far.
                    entry.name = event_name(entry.regarding.name or "", self._unique())
                    entry.api = None
                    await self._create(entry)
            self.stats.written += 1
        except Exception as error:  # never let one bad write stop the writer
            self.stats.failed += 1
            if isinstance(error, Forbidden) and error.namespace_terminating:
                # The namespace is going away with the object the event is about.
                log.debug("event_dropped_namespace_terminating", namespace=entry.namespace)
                return
            log.warning(
                "event_write_failed",
                event_name=entry.name,
                namespace=entry.namespace,
                reason=entry.key.reason,
                error=str(error),
                error_type=type(error).__name__,
            )

    async def _create(self, entry: Series) -> None:
        count = entry.count
        if self.api == "events.k8s.io":
            try:
                await self._client.create(
                    EVENTS, self._new_event(entry, count), entry.namespace, type=msgspec.Raw
                )
            except NotFound as error:
                if not (self._detect and group_not_served(error)):
                    raise
                log.info("events_api_fallback", reason="events.k8s.io/v1 is not served")
                self.api = "core"
            else:
                entry.api, entry.written = "events.k8s.io", count
                return
        await self._client.create(
            CORE_EVENTS, self._new_core_event(entry, count), entry.namespace, type=msgspec.Raw
        )
        entry.api, entry.written = "core", count

    async def _update(self, entry: Series) -> None:
        count = entry.count
        if count == entry.written:
            return
        patch: dict[str, Any]
        if entry.api == "events.k8s.io":
            patch = {"series": EventSeries(count, MicroTime.from_datetime(entry.last_time))}
            rt = EVENTS
        else:
            patch = {"count": count, "lastTimestamp": _seconds(entry.last_time)}
            rt = CORE_EVENTS
        await self._client.merge_patch(rt, entry.name, patch, entry.namespace, type=msgspec.Raw)
        entry.written = count

    def _new_event(self, entry: Series, count: int) -> Event:
        key = entry.key
        series = None
        if count > 1:
            series = EventSeries(count, MicroTime.from_datetime(entry.last_time))
        return Event(
            metadata=ObjectMeta(name=entry.name, namespace=entry.namespace),
            event_time=MicroTime.from_datetime(entry.first_time),
            series=series,
            reporting_controller=self.reporting_controller,
            reporting_instance=self.reporting_instance,
            action=key.action,
            reason=key.reason,
            regarding=entry.regarding,
            related=entry.related,
            note=key.note,
            type=key.type,
        )

    def _new_core_event(self, entry: Series, count: int) -> CoreEvent:
        key = entry.key
        return CoreEvent(
            metadata=ObjectMeta(name=entry.name, namespace=entry.namespace),
            involved_object=entry.regarding,
            reason=key.reason,
            message=key.note,
            source=EventSource(component=self.reporting_controller, host=self.reporting_instance),
            first_timestamp=_seconds(entry.first_time),
            last_timestamp=_seconds(entry.last_time),
            count=count,
            type=key.type,
            action=key.action,
            reporting_component=self.reporting_controller,
            reporting_instance=self.reporting_instance,
        )


def _seconds(value: datetime.datetime) -> datetime.datetime:
    """core/v1 timestamps are metav1.Time: whole seconds."""
    return value.replace(microsecond=0)


__all__ = [
    "DEFAULT_NAMESPACE",
    "NOTE_LIMIT",
    "REPORTING_CONTROLLER",
    "Api",
    "EventClient",
    "EventKey",
    "EventRecorder",
    "EventType",
    "HasObjectMeta",
    "RecorderOptions",
    "RecorderStats",
    "Series",
    "SeriesCache",
    "SpamFilter",
    "event_key",
    "event_name",
    "group_not_served",
    "object_reference",
    "spam_key",
    "truncate_utf8",
]
