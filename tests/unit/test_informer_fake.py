"""The informer against a scripted apiserver, for what the real one cannot be made to do: close
every watch at once, or end a watch with an ERROR event other than 410.

Sleeps go through a recorder, so the backoff is observed, never waited for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel
import pytest
from aiohttp import web

from runs_controller.api.codec import encode
from runs_controller.api.k8s import ConfigMap
from runs_controller.kube.client import ClientOptions, KubeClient
from runs_controller.kube.config import ClusterConfig
from runs_controller.kube.resources import CONFIG_MAPS
from runs_controller.kube.retry import RetryPolicy
from runs_controller.runtime.backoff import Backoff
from runs_controller.runtime.informer import Informer, InformerOptions

TOO_LARGE = {
    "type": "ERROR",
    "object": {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": 504,
        "reason": "Timeout",
        "message": "Too large resource version: 99, current: 5",
        "details": {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large"}]},
    },
}


@dataclass
class FakeServer:
    """LIST answers one ConfigMap at a growing resourceVersion; WATCH follows `watch_mode`."""

    watch_mode: str = "close"
    lists: int = 0
    watches: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            self.lists += 1
            items = [{"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "5"}}]
            body = {"kind": "ConfigMapList", "metadata": {"resourceVersion": "5"}, "items": items}
            return web.Response(body=encode(body), content_type="application/json")
        self.watches.append(request.query.get("resourceVersion", ""))
        response = web.StreamResponse()
        await response.prepare(request)
        if self.watch_mode == "error" and len(self.watches) == 1:
            await response.write(encode(TOO_LARGE) + b"\n")
        return response  # otherwise the stream ends at once, without an event


@pytest.fixture
async def server() -> AsyncIterator[tuple[FakeServer, str]]:
    fake = FakeServer()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield fake, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class Sleeps:
    """Records each backoff the informer asks for and lets the loop go on at once."""

    def __init__(self, stop_after: int) -> None:
        self.delays: list[float] = []
        self.stop_after = stop_after
        self.enough = anyio.Event()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if len(self.delays) >= self.stop_after:
            self.enough.set()
            await anyio.sleep_forever()
        await anyio.lowlevel.checkpoint()


def _informer(host: str, sleeps: Sleeps) -> tuple[KubeClient, Informer[ConfigMap]]:
    client = KubeClient(
        ClusterConfig(host=host, ssl_context=None),
        ClientOptions(retry=RetryPolicy(max_attempts=1)),
    )
    informer = Informer(
        client,
        CONFIG_MAPS,
        ConfigMap,
        options=InformerOptions(namespace="ns", backoff=Backoff(jitter=0.0)),
        sleep=sleeps,
    )
    return client, informer


async def test_watches_that_end_at_once_are_retried_with_backoff(
    server: tuple[FakeServer, str],
) -> None:
    fake, host = server
    sleeps = Sleeps(stop_after=6)
    client, informer = _informer(host, sleeps)
    async with client, anyio.create_task_group() as group:
        group.start_soon(informer.run)
        with anyio.fail_after(30):
            await sleeps.enough.wait()
        group.cancel_scope.cancel()
    # Every empty, instant watch was followed by a backoff that doubles (0.8 s, 1.6 s, ...),
    # not by another watch at once: a server that closes every watch sees ~0.2 opens/s.
    assert len(fake.watches) == len(sleeps.delays) == 6
    assert sleeps.delays == [0.8 * 2**n for n in range(6)]
    assert fake.lists == 1  # resumed from the list's resourceVersion each time
    assert set(fake.watches) == {"5"}


async def test_a_watch_error_other_than_gone_relists(server: tuple[FakeServer, str]) -> None:
    fake, host = server
    fake.watch_mode = "error"
    sleeps = Sleeps(stop_after=2)  # after the error, and after the relisted (instant) watch
    client, informer = _informer(host, sleeps)
    async with client, anyio.create_task_group() as group:
        group.start_soon(informer.run)
        with anyio.fail_after(30):
            await sleeps.enough.wait()
        group.cancel_scope.cancel()
    # "Too large resource version" cannot be cured by watching from the same version again:
    # after a backoff the informer lists afresh (a consistent read) and watches from there.
    assert fake.lists == 2
    assert informer.lists == 2
    assert len(fake.watches) == 2
    assert sleeps.delays == [0.8, 1.6]
    assert informer.store.keys() == ["ns/a"]
