"""KubeClient against a scripted loopback HTTP server: what goes on the wire, retries, timeouts.

The real apiserver cannot be made to answer 429/503 or to stall on demand; this server can.
Sleeps between retries go through an injected recorder, so no test waits for a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from runs_controller.api.codec import encode
from runs_controller.api.k8s import ConfigMap
from runs_controller.api.meta import ObjectMeta
from runs_controller.kube.client import ClientOptions, KubeClient
from runs_controller.kube.config import ClusterConfig
from runs_controller.kube.errors import (
    Conflict,
    ServerError,
    TooManyRequests,
    TransportError,
    TransportTimeout,
)
from runs_controller.kube.resources import CONFIG_MAPS
from runs_controller.kube.retry import RetryPolicy
from runs_controller.observability.metrics import RestClientMetrics

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeApi:
    """Answers each request with the next scripted responder (200 + a ConfigMap by default)."""

    script: deque[Responder] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    host: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path_qs, dict(request.headers), body))
        responder = self.script.popleft() if self.script else ok
        return await responder(request)


async def ok(request: web.Request) -> web.StreamResponse:
    return web.Response(body=encode(ConfigMap(metadata=ObjectMeta(name="cm"))))


def status(code: int, reason: str, headers: dict[str, str] | None = None) -> Responder:
    async def respond(request: web.Request) -> web.StreamResponse:
        body = encode({"kind": "Status", "code": code, "reason": reason, "message": reason})
        return web.Response(status=code, body=body, headers=headers)

    return respond


async def reset(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.abort()
    return web.Response()


def stall(api: FakeApi) -> Responder:
    async def respond(request: web.Request) -> web.StreamResponse:
        await api.release.wait()
        return web.Response()

    return respond


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.host = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        fake.release.set()
        await runner.cleanup()


@dataclass
class Harness:
    client: KubeClient
    sleeps: list[float]
    registry: CollectorRegistry

    def retries(self, code: str, verb: str) -> float:
        host = self.client.config.host_label
        labels = {"code": code, "verb": verb, "host": host}
        return self.registry.get_sample_value("rest_client_request_retries_total", labels) or 0.0


@contextlib.asynccontextmanager
async def make_harness(host: str, **options: Any) -> AsyncIterator[Harness]:
    """A client with a fresh registry and a sleep that records instead of waiting."""
    sleeps: list[float] = []
    registry = CollectorRegistry()

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    options.setdefault("retry", RetryPolicy(max_attempts=3, jitter=0.0))
    async with KubeClient(
        ClusterConfig(host=host, ssl_context=None),
        ClientOptions(**options),
        metrics=RestClientMetrics.create(registry),
        sleep=record,
    ) as client:
        yield Harness(client, sleeps, registry)


@pytest.fixture
async def harness(api: FakeApi) -> AsyncIterator[Harness]:
    async with make_harness(api.host) as made:
        yield made


# ---- what goes on the wire -------------------------------------------------------------------


async def test_apply_sends_apply_patch_with_type_meta_and_manager(
    api: FakeApi, harness: Harness
) -> None:
    obj = ConfigMap(metadata=ObjectMeta(name="cm", namespace="ns"), data={"a": "1"})
    await harness.client.apply(CONFIG_MAPS, obj, field_manager="mgr", type=ConfigMap)
    await harness.client.apply(
        CONFIG_MAPS,
        {"metadata": {"name": "cm"}, "status": {}},
        namespace="ns",
        field_manager="mgr",
        force=False,
        subresource="status",
        type=ConfigMap,
    )
    first, second = api.seen
    assert (first.method, first.path_qs) == (
        "PATCH",
        "/api/v1/namespaces/ns/configmaps/cm?fieldManager=mgr&force=true",
    )
    assert first.headers["Content-Type"] == "application/apply-patch+yaml"
    assert msgspec.json.decode(first.body) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "ns"},
        "data": {"a": "1"},
    }
    assert (
        second.path_qs == "/api/v1/namespaces/ns/configmaps/cm/status?fieldManager=mgr&force=false"
    )
    assert msgspec.json.decode(second.body)["kind"] == "ConfigMap"


async def test_other_verbs_on_the_wire(api: FakeApi, harness: Harness) -> None:
    client = harness.client
    await client.merge_patch(CONFIG_MAPS, "cm", {"data": {"a": None}}, "ns", type=ConfigMap)
    await client.delete(CONFIG_MAPS, "cm", "ns", propagation_policy="Background")
    await client.delete(CONFIG_MAPS, "cm", "ns")
    await client.list(CONFIG_MAPS, type=msgspec.Raw, label_selector="a=b", limit=5)
    merge, delete, plain_delete, listing = api.seen
    assert merge.headers["Content-Type"] == "application/merge-patch+json"
    assert merge.body == b'{"data":{"a":null}}'
    assert msgspec.json.decode(delete.body) == {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "propagationPolicy": "Background",
    }
    assert plain_delete.body == b""
    assert listing.path_qs == "/api/v1/configmaps?labelSelector=a%3Db&limit=5"
    assert listing.headers["Accept"] == "application/json"


async def test_token_provider_is_asked_on_every_request(api: FakeApi) -> None:
    tokens = iter(["Bearer one", "Bearer two"])

    async def rotating() -> str | None:
        return next(tokens)

    config = ClusterConfig(host=api.host, ssl_context=None, token_provider=rotating)
    async with KubeClient(config) as client:
        await client.get(CONFIG_MAPS, "cm", "ns", type=ConfigMap)
        await client.get(CONFIG_MAPS, "cm", "ns", type=ConfigMap)
    assert [seen.headers["Authorization"] for seen in api.seen] == ["Bearer one", "Bearer two"]


async def test_proxy_environment_is_ignored(
    api: FakeApi, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With trust_env, aiohttp would send this through the (dead) proxy and fail.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    await harness.client.get(CONFIG_MAPS, "cm", "ns", type=ConfigMap)
    assert len(api.seen) == 1


async def test_namespaced_object_calls_need_a_namespace(api: FakeApi, harness: Harness) -> None:
    with pytest.raises(ValueError, match="namespaced"):
        await harness.client.get(CONFIG_MAPS, "cm", type=ConfigMap)
    assert api.seen == []


# ---- retries ---------------------------------------------------------------------------------


async def test_429_is_retried_for_writes_after_retry_after(api: FakeApi, harness: Harness) -> None:
    api.script.extend([status(429, "TooManyRequests", {"Retry-After": "2"})])
    created = await harness.client.create(
        CONFIG_MAPS, {"metadata": {"name": "cm"}}, "ns", type=ConfigMap
    )
    assert created.metadata == ObjectMeta(name="cm")
    assert [seen.method for seen in api.seen] == ["POST", "POST"]
    assert harness.sleeps == [2.0]
    assert harness.retries("429", "create") == 1


async def test_429_gives_up_after_the_attempt_budget(api: FakeApi, harness: Harness) -> None:
    api.script.extend([status(429, "TooManyRequests", {"Retry-After": "1"})] * 3)
    with pytest.raises(TooManyRequests) as throttled:
        await harness.client.create(CONFIG_MAPS, {"metadata": {"name": "cm"}}, "ns", type=ConfigMap)
    assert throttled.value.retry_after == 1.0
    assert len(api.seen) == 3
    assert harness.sleeps == [1.0, 1.0]


async def test_5xx_is_retried_for_reads_only(api: FakeApi, harness: Harness) -> None:
    api.script.extend([status(503, "ServiceUnavailable")] * 2)
    await harness.client.get(CONFIG_MAPS, "cm", "ns", type=ConfigMap)
    assert len(api.seen) == 3
    assert harness.retries("503", "get") == 2

    api.seen.clear()
    api.script.append(status(503, "ServiceUnavailable"))
    with pytest.raises(ServerError):
        await harness.client.merge_patch(CONFIG_MAPS, "cm", {}, "ns", type=ConfigMap)
    assert len(api.seen) == 1


async def test_other_errors_are_not_retried(api: FakeApi, harness: Harness) -> None:
    api.script.append(status(409, "Conflict"))
    with pytest.raises(Conflict):
        await harness.client.get(CONFIG_MAPS, "cm", "ns", type=ConfigMap)
    assert len(api.seen) == 1
    assert harness.sleeps == []


async def test_a_broken_connection_is_retried_for_reads_but_not_writes(
    api: FakeApi, harness: Harness
) -> None:
    api.script.append(reset)
    await harness.client.get(CONFIG_MAPS, "cm", "ns", type=ConfigMap)
    assert len(api.seen) == 2

    api.seen.clear()
    api.script.append(reset)
    with pytest.raises(TransportError):
        await harness.client.create(CONFIG_MAPS, {"metadata": {"name": "cm"}}, "ns", type=ConfigMap)
    assert len(api.seen) == 1


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connect_failures_are_retried_for_every_verb() -> None:
    async with make_harness(f"http://127.0.0.1:{unused_port()}") as harness:
        with pytest.raises(TransportError) as failed:
            await harness.client.create(
                CONFIG_MAPS, {"metadata": {"name": "x"}}, "ns", type=ConfigMap
            )
        assert not isinstance(failed.value, TransportTimeout)
        assert harness.sleeps == [0.05, 0.1]  # 3 attempts
        assert harness.retries("<error>", "create") == 2


async def test_a_request_past_its_deadline_times_out_without_retry(api: FakeApi) -> None:
    api.script.append(stall(api))
    async with make_harness(api.host, request_timeout=0.2) as harness:
        with pytest.raises(TransportTimeout):
            await harness.client.get(CONFIG_MAPS, "cm", "ns", type=ConfigMap)
        assert harness.sleeps == []


# ---- watches ---------------------------------------------------------------------------------


def event_line(kind: str, name: str, payload: str = "") -> bytes:
    obj = ConfigMap(metadata=ObjectMeta(name=name), data={"p": payload} if payload else None)
    return encode({"type": kind, "object": obj}) + b"\n"


def streaming(api: FakeApi, chunks: list[bytes], *, then_stall: bool) -> Responder:
    async def respond(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
        if then_stall:
            await api.release.wait()
        return response

    return respond


async def test_watch_decodes_a_long_line_sent_in_pieces(api: FakeApi, harness: Harness) -> None:
    big = event_line("ADDED", "big", "z" * (6 * 1024 * 1024))
    stream = big + event_line("DELETED", "after")
    chunks = [stream[i : i + 100_000] for i in range(0, len(stream), 100_000)]
    api.script.append(streaming(api, chunks, then_stall=False))
    async with harness.client.watch(CONFIG_MAPS, "ns", resource_version="5") as watch:
        events = [event async for event in watch]
    assert [event.type for event in events] == ["ADDED", "DELETED"]
    assert len(bytes(events[0].object)) > 6 * 1024 * 1024
    assert api.seen[0].path_qs == (
        "/api/v1/namespaces/ns/configmaps?watch=true&resourceVersion=5&allowWatchBookmarks=true"
    )


async def test_a_silent_watch_ends_with_a_timeout_error(api: FakeApi, harness: Harness) -> None:
    api.script.append(streaming(api, [event_line("ADDED", "a")], then_stall=True))
    async with harness.client.watch(CONFIG_MAPS, "ns", idle_timeout=0.2) as watch:
        first = await anext(watch)
        assert first.type == "ADDED"
        with pytest.raises(TransportTimeout, match="idle"):
            await anext(watch)


async def test_a_watch_that_is_refused_raises_on_open(api: FakeApi, harness: Harness) -> None:
    api.script.append(status(403, "Forbidden"))
    with pytest.raises(Exception, match="403 Forbidden") as refused:
        async with harness.client.watch(CONFIG_MAPS, "ns"):
            pass
    assert type(refused.value).__name__ == "Forbidden"
