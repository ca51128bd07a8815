"""KubeClient: one aiohttp session per apiserver, msgspec on both sides of the wire.

Why not kubernetes-asyncio's generated API: it hard-codes `trust_env=True` (a netrc lookup in a
thread on every request), re-serialises bodies with `json.dumps`, refuses bytes bodies and sets
no timeouts (runtime-notes §3.4). Here a request is: optional token-bucket wait, one
`session.request` with connect + total timeouts, bytes in, bytes out, `decoder(T)` straight
into the caller's Struct. Watches get a per-read inactivity timeout instead of a total one.
"""

from __future__ import annotations

import asyncio
import copy
import io
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import aiohttp
import anyio
import msgspec

from runs_controller.api.codec import decoder, encode
from runs_controller.api.meta import Resource, TypedList
from runs_controller.kube.errors import (
    Gone,
    ProtocolError,
    TransportError,
    TransportTimeout,
    WriteFenced,
)
from runs_controller.kube.request import (
    APPLY_PATCH,
    JSON,
    MERGE_PATCH,
    api_error,
    build_query,
    delete_body,
    list_query,
    retry_after_of,
    watch_query,
)
from runs_controller.kube.retry import Failure, RetryPolicy, retry_delay
from runs_controller.kube.throttle import TokenBucket
from runs_controller.kube.watch import DEFAULT_MAX_LINE, WatchStream

if TYPE_CHECKING:
    import builtins
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from runs_controller.kube.config import ClusterConfig
    from runs_controller.kube.resources import ResourceType
    from runs_controller.observability.metrics import RestClientMetrics

T = TypeVar("T")

Body = msgspec.Struct | Mapping[str, Any] | bytes
"""A request body: a Struct or dict (encoded with msgspec) or ready JSON bytes."""

TRANSPORT_ERROR_CODE = "<error>"
"""The `code` label of a request that got no HTTP answer (client-go's value)."""


class ServerVersion(msgspec.Struct, rename="camel"):
    """The part of GET /version we use."""

    git_version: str = ""


class RequestLimiter(Protocol):
    """A client-side limiter: `acquire` waits for permission and returns the seconds waited."""

    async def acquire(self) -> float: ...


class WriteGuard(Protocol):
    """Fencing for writes: asked before every attempt of every non-GET request."""

    def check_write(self, verb: str, path: str) -> float:
        """The seconds a write may still take, or raise `WriteFenced` to refuse it."""
        ...


@dataclass(frozen=True)
class ClientOptions:
    """Connection pool, timeouts, rate limit and retry settings."""

    connection_limit: int = 100
    """Pool size shared by requests and watches (each open watch holds one connection)."""
    connect_timeout: float = 5.0
    request_timeout: float = 30.0
    """Total deadline of a non-watch request, body included."""
    watch_idle_timeout: float = 90.0
    """A watch that receives nothing for this long is treated as dead (half-open TCP). With
    bookmarks on, the apiserver sends one about every minute, so a healthy quiet watch is
    never idle for longer."""
    qps: float | None = None
    """Client-side rate limit (requests/s); None means off, as in controller-runtime."""
    burst: int = 10
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    user_agent: str = "runs-controller/0.1.0"
    max_watch_line: int = DEFAULT_MAX_LINE


def classify(error: BaseException) -> Failure:
    """Which retry rule applies to a transport-level exception."""
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return Failure.CONNECT
    if isinstance(error, TimeoutError):
        return Failure.TIMEOUT
    if isinstance(error, aiohttp.ClientSSLError):
        return Failure.TLS
    if isinstance(error, aiohttp.ClientConnectorError):
        return Failure.CONNECT
    return Failure.BROKEN


def with_type_meta(rt: ResourceType, obj: Body) -> Body:
    """`obj` with apiVersion and kind filled in from `rt` where it lacks them (apply needs them)."""
    if isinstance(obj, Resource):
        if obj.api_version is None or obj.kind is None:
            return msgspec.structs.replace(
                obj, api_version=obj.api_version or rt.api_version, kind=obj.kind or rt.kind
            )
        return obj
    if isinstance(obj, Mapping) and (not obj.get("apiVersion") or not obj.get("kind")):
        return {
            **obj,
            "apiVersion": obj.get("apiVersion") or rt.api_version,
            "kind": obj.get("kind") or rt.kind,
        }
    return obj


def _encode(obj: Body) -> bytes:
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj)
    return encode(obj)


def _name_namespace(obj: Body) -> tuple[str | None, str | None]:
    if isinstance(obj, Mapping):
        meta = obj.get("metadata") or {}
        return meta.get("name"), meta.get("namespace")
    meta = getattr(obj, "metadata", None)
    if meta is None:
        return None, None
    return meta.name, meta.namespace


class KubeClient:
    """An async Kubernetes API client. Use `async with KubeClient(config) as client:`."""

    def __init__(
        self,
        config: ClusterConfig,
        options: ClientOptions | None = None,
        *,
        metrics: RestClientMetrics | None = None,
        rate_limiter: RequestLimiter | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.config = config
        self.options = options = options or ClientOptions()
        self._metrics = metrics
        if rate_limiter is None and options.qps is not None:
            rate_limiter = TokenBucket(options.qps, options.burst)
        self._limiter = rate_limiter
        self._sleep = sleep
        self._host = config.host_label
        self._base = config.host
        self._connection = _Connection(config, options)
        self._request_timeout = aiohttp.ClientTimeout(
            total=options.request_timeout, sock_connect=options.connect_timeout
        )
        self._base_headers = {"Accept": JSON, "User-Agent": options.user_agent}
        self._guard: WriteGuard | None = None

    def with_write_guard(self, guard: WriteGuard) -> KubeClient:
        """A view of this client whose writes `guard` must allow first (leader fencing).

        The view shares the connection pool, limiter and metrics; close the original client,
        not the view. Reads are never guarded.
        """
        view = copy.copy(self)
        view._guard = guard
        return view

    # ---- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> KubeClient:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._connection.close()

    def _open(self) -> aiohttp.ClientSession:
        return self._connection.session(self._request_timeout)

    # ---- reads --------------------------------------------------------------------------

    async def server_version(self) -> str:
        """The apiserver's gitVersion (e.g. "v1.36.3"): a cheap authenticated connectivity probe."""
        data = await self._call("GET", "/version", verb="get")
        return _decode(data, ServerVersion, "/version").git_version

    async def get(
        self, rt: ResourceType, name: str, namespace: str | None = None, *, type: type[T]
    ) -> T:
        path = rt.path(_namespace(rt, namespace), name)
        return _decode(await self._call("GET", path, verb="get"), type, path)

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        type: type[T],
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> TypedList[T]:
        """One page; `metadata.continue_` is set when there are more."""
        path = rt.path(namespace)
        query = list_query(
            label_selector=label_selector,
            field_selector=field_selector,
            limit=limit,
            continue_=continue_,
            resource_version=resource_version,
            resource_version_match=resource_version_match,
        )
        data = await self._call("GET", path, verb="list", query=query)
        return _decode(data, TypedList[type], path)  # type: ignore[valid-type]

    async def list_all(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        type: type[T],
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int | None = 500,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> tuple[builtins.list[T], str]:
        """Every page; returns (items, the list's resourceVersion) to start a watch from.

        If a continue token expires mid-way (410), the list restarts once without paging,
        as client-go's pager does.
        """
        items: builtins.list[T] = []
        token: str | None = None
        limit = page_size
        while True:
            try:
                page = await self.list(
                    rt,
                    namespace,
                    type=type,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    limit=limit,
                    continue_=token,
                    resource_version=None if token else resource_version,
                    resource_version_match=None if token else resource_version_match,
                )
            except Gone:
                if token is None or limit is None:
                    raise
                items, token, limit = [], None, None
                continue
            items.extend(page.items)
            token = page.metadata.continue_
            if not token:
                return items, page.metadata.resource_version or ""

    # ---- writes -------------------------------------------------------------------------

    async def create(
        self,
        rt: ResourceType,
        obj: Body,
        namespace: str | None = None,
        *,
        type: type[T],
        field_manager: str | None = None,
        subresource: tuple[str, str] | None = None,
    ) -> T:
        """POST `obj`; with `subresource=(name, sub)` to that subresource of one object instead
        (a ServiceAccount's `token`, say), where `obj` carries its own apiVersion and kind."""
        if namespace is None:
            namespace = _name_namespace(obj)[1]
        if subresource is not None:
            path = rt.path(_namespace(rt, namespace), subresource[0], subresource[1])
        else:
            path = rt.path(_namespace(rt, namespace))
        query = build_query({"fieldManager": field_manager})
        body = _encode(with_type_meta(rt, obj))
        data = await self._call("POST", path, verb="create", query=query, body=body)
        return _decode(data, type, path)

    async def replace(
        self,
        rt: ResourceType,
        obj: Body,
        name: str | None = None,
        namespace: str | None = None,
        *,
        type: type[T],
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> T:
        """PUT. The body's metadata.resourceVersion makes it a compare-and-swap (409 if stale)."""
        path = self._object_path(rt, obj, name, namespace, subresource)
        query = build_query({"fieldManager": field_manager})
        body = _encode(with_type_meta(rt, obj))
        data = await self._call("PUT", path, verb="update", query=query, body=body)
        return _decode(data, type, path)

    async def apply(
        self,
        rt: ResourceType,
        obj: Body,
        name: str | None = None,
        namespace: str | None = None,
        *,
        type: type[T],
        field_manager: str,
        force: bool = True,
        subresource: str | None = None,
    ) -> T:
        """Server-side apply (creates the object if missing). Send every field you own:
        a field this manager applied before and leaves out now is removed."""
        path = self._object_path(rt, obj, name, namespace, subresource)
        query = build_query({"fieldManager": field_manager, "force": force})
        body = _encode(with_type_meta(rt, obj))
        data = await self._call(
            "PATCH", path, verb="patch", query=query, body=body, content_type=APPLY_PATCH
        )
        return _decode(data, type, path)

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
    ) -> T:
        """JSON merge patch (RFC 7386): maps merge, lists are replaced, null deletes a key."""
        path = rt.path(_namespace(rt, namespace), name, subresource)
        query = build_query({"fieldManager": field_manager})
        data = await self._call(
            "PATCH", path, verb="patch", query=query, body=_encode(patch), content_type=MERGE_PATCH
        )
        return _decode(data, type, path)

    async def delete(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        preconditions_uid: str | None = None,
        preconditions_resource_version: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> None:
        """Request deletion; raises NotFound if already gone (the caller decides if that's ok)."""
        path = rt.path(_namespace(rt, namespace), name)
        options = delete_body(
            propagation_policy=propagation_policy,
            preconditions_uid=preconditions_uid,
            preconditions_resource_version=preconditions_resource_version,
            grace_period_seconds=grace_period_seconds,
        )
        body = None if options is None else encode(options)
        await self._call("DELETE", path, verb="delete", body=body)

    # ---- watch --------------------------------------------------------------------------

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        send_initial_events: bool | None = None,
        idle_timeout: float | None = None,
    ) -> WatchStream:
        """A watch stream of `WatchEvent`s (raw `object`); open it with `async with`.

        A too-old resourceVersion ends as an ERROR event with code 410 (or, from some
        storage paths, as `Gone` raised on open): either way the caller must relist.
        """
        path = rt.path(namespace)
        query = watch_query(
            resource_version=resource_version,
            allow_bookmarks=allow_bookmarks,
            timeout_seconds=timeout_seconds,
            label_selector=label_selector,
            field_selector=field_selector,
            send_initial_events=send_initial_events,
        )
        # No total deadline: a healthy watch lasts as long as the server keeps it. `connect`
        # bounds the wait for a pooled connection, `sock_read` is the inactivity timeout.
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.options.request_timeout,
            sock_connect=self.options.connect_timeout,
            sock_read=idle_timeout or self.options.watch_idle_timeout,
        )

        async def open_stream() -> aiohttp.ClientResponse:
            response, _ = await self._send(
                "GET", path, verb="watch", query=query, stream_timeout=timeout
            )
            return response

        return WatchStream(
            open_stream, path, self.options.max_watch_line, self._connection.track_close
        )

    # ---- plumbing -----------------------------------------------------------------------

    def _object_path(
        self,
        rt: ResourceType,
        obj: Body,
        name: str | None,
        namespace: str | None,
        subresource: str | None,
    ) -> str:
        own_name, own_namespace = _name_namespace(obj)
        name = name or own_name
        if not name:
            raise ValueError(f"{rt.kind}: no name given and none in metadata")
        return rt.path(_namespace(rt, namespace or own_namespace), name, subresource)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        query: str = "",
        body: bytes | None = None,
        content_type: str = JSON,
    ) -> bytes:
        _, data = await self._send(
            method, path, verb=verb, query=query, body=body, content_type=content_type
        )
        return data

    async def _send(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        query: str = "",
        body: bytes | None = None,
        content_type: str = JSON,
        stream_timeout: aiohttp.ClientTimeout | None = None,
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """Send with retries; return the response and its body.

        A stream (watch) response with a 2xx status comes back unread, with an empty body.
        """
        session = self._open()
        url = f"{self._base}{path}?{query}" if query else f"{self._base}{path}"
        idempotent = method == "GET"
        timeout = stream_timeout or self._request_timeout
        policy = self.options.retry
        attempt = 0
        while True:
            attempt += 1
            if self._limiter is not None and stream_timeout is None:
                await self._throttle(verb)
            headers = await self._headers(content_type if body is not None else None)
            fenced_deadline = False
            if self._guard is not None and not idempotent:
                # Asked last, right before the request leaves: no wait can come after it.
                allowed = self._guard.check_write(verb, path)
                fenced_deadline = allowed < self.options.request_timeout
                timeout = aiohttp.ClientTimeout(
                    total=min(self.options.request_timeout, allowed),
                    sock_connect=self.options.connect_timeout,
                )
            started = time.perf_counter()
            try:
                response = await session.request(
                    method,
                    url,
                    data=_payload(body),
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                    server_hostname=self.config.tls_server_name,
                    proxy=self.config.proxy,
                )
                data = b""
                if stream_timeout is None or response.status >= 300:
                    try:
                        data = await response.read()
                    finally:
                        response.release()
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                self._observe(verb, method, TRANSPORT_ERROR_CODE, started)
                if fenced_deadline and isinstance(error, TimeoutError):
                    # The write window closed while the request was in flight: abandoned at
                    # the deadline the fence set, so it is fenced, never retried.
                    raise WriteFenced(
                        f"{verb} {path} refused: the write window closed while it was in flight"
                    ) from error
                failure = classify(error)
                delay = retry_delay(policy, attempt=attempt, failure=failure, idempotent=idempotent)
                if delay is None:
                    raise _transport_error(failure, method, path, error) from error
                await self._retry(verb, TRANSPORT_ERROR_CODE, delay)
                continue
            code = response.status
            self._observe(verb, method, str(code), started)
            if code < 300:
                return response, data
            api = api_error(
                code,
                data,
                method=method,
                path=path,
                reason_phrase=response.reason or "",
                retry_after_header=response.headers.get("Retry-After"),
            )
            delay = retry_delay(
                policy,
                attempt=attempt,
                failure=Failure.STATUS,
                idempotent=idempotent,
                code=code,
                retry_after=retry_after_of(api),
            )
            if delay is None:
                raise api
            await self._retry(verb, str(code), delay)

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = dict(self._base_headers)
        provider = self.config.token_provider
        if provider is not None:
            token = await provider()
            if token:
                headers["Authorization"] = token
        if content_type is not None:
            headers["Content-Type"] = content_type
        return headers

    async def _throttle(self, verb: str) -> None:
        assert self._limiter is not None  # noqa: S101 - checked by the caller
        waited = await self._limiter.acquire()
        if self._metrics is not None:
            self._metrics.rate_limiter_duration.labels(verb=verb, host=self._host).observe(waited)

    def _observe(self, verb: str, method: str, code: str, started: float) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        metrics.duration.labels(verb=verb, host=self._host).observe(time.perf_counter() - started)
        metrics.requests.labels(code=code, method=method, host=self._host).inc()

    async def _retry(self, verb: str, code: str, delay: float) -> None:
        if self._metrics is not None:
            self._metrics.retries.labels(code=code, verb=verb, host=self._host).inc()
        await self._sleep(delay)


class _Connection:
    """The aiohttp session (connection pool) behind a client and its guarded views.

    `close()` also waits (briefly) for the connections of watches that were closed before
    their end: they are out of the pool, and their sockets are released only once the
    transport reports the connection lost, a loop iteration or two later.
    """

    CLOSE_WAIT = 10.0
    """Bounded, and normally a loop iteration or two; a TLS close waits for the peer's reply,
    which on a loaded machine can take seconds (2 s let a socket outlive its client in CI)."""

    def __init__(self, config: ClusterConfig, options: ClientOptions) -> None:
        self._config = config
        self._options = options
        self._session: aiohttp.ClientSession | None = None
        self._closing: set[asyncio.Future[None]] = set()

    def track_close(self, response: aiohttp.ClientResponse) -> None:
        connection = response.connection
        protocol = connection.protocol if connection is not None else None
        closed = protocol.closed if protocol is not None else None
        if closed is not None and not closed.done():
            self._closing.add(closed)
            closed.add_done_callback(self._closed)

    def _closed(self, future: asyncio.Future[None]) -> None:
        self._closing.discard(future)
        if not future.cancelled():
            future.exception()  # a connection lost with an error is still just closed

    def session(self, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            ssl_setting: Any = self._config.ssl_context if self._config.ssl_context else True
            connector = aiohttp.TCPConnector(
                limit=self._options.connection_limit,
                ssl=ssl_setting,
                enable_cleanup_closed=_TLS_CLOSE_CAN_LEAK,
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, timeout=timeout
            )
        return session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        if self._closing:
            with anyio.move_on_after(self.CLOSE_WAIT):
                await asyncio.wait(list(self._closing))


_TLS_CLOSE_CAN_LEAK: bool = getattr(aiohttp.connector, "NEEDS_CLEANUP_CLOSED", False)
"""Pythons before 3.12.8 (fixed by CPython PR 118960) can keep the socket under a TLS
connection open after its close: a connection dropped mid-response (an abandoned watch, a
cancelled request) sends close_notify and waits for an answer that may never come. On those,
the connector aborts such connections every 2 s and when it closes (on a fixed Python aiohttp
warns when asked to)."""


LARGE_BODY = 1 << 20
"""aiohttp streams a body this large from a file-like object instead of writing it at once."""


def _payload(body: bytes | None) -> bytes | io.BytesIO | None:
    """The request body; a large one as a fresh stream per attempt (aiohttp refuses to send
    raw bytes of a megabyte or more in one write, which would hold the event loop)."""
    if body is not None and len(body) >= LARGE_BODY:
        return io.BytesIO(body)
    return body


def _namespace(rt: ResourceType, namespace: str | None) -> str | None:
    if rt.namespaced and not namespace:
        raise ValueError(f"{rt.kind} is namespaced: a namespace is required")
    return namespace if rt.namespaced else None


def _decode(data: bytes, target: type[T], path: str) -> T:
    try:
        return decoder(target).decode(data)
    except msgspec.DecodeError as error:
        raise ProtocolError(f"{path}: cannot decode the answer as {target}: {error}") from error


def _transport_error(
    failure: Failure, method: str, path: str, error: BaseException
) -> TransportError:
    message = f"{method} {path}: {type(error).__name__}: {error}"
    if failure is Failure.TIMEOUT:
        return TransportTimeout(message)
    return TransportError(message)


__all__ = [
    "Body",
    "ClientOptions",
    "KubeClient",
    "RequestLimiter",
    "WriteGuard",
    "classify",
    "with_type_meta",
]
