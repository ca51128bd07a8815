"""The operator's HTTP endpoints: /metrics, /healthz and /readyz, on the event loop.

One aiohttp app instead of prometheus-client's threaded server: readiness reads in-loop state
(caches synced) without locks, and /healthz answering at all proves the loop is not blocked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry


@dataclass(frozen=True)
class HealthChecks:
    """`ready()` returns the names of checks that are failing (empty = ready)."""

    ready: Callable[[], list[str]]


def build_app(registry: CollectorRegistry, checks: HealthChecks) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        failing = checks.ready()
        if failing:
            body = "".join(f"[-]{name} failed\n" for name in failing) + "readyz check failed\n"
            return web.Response(status=503, text=body)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    return app


def parse_address(address: str) -> tuple[str, int]:
    """`host:port`, `:port` (all interfaces) or `0` (disabled -> port 0 is refused by callers)."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"invalid address {address!r}: expected host:port or :port")
    return host or "0.0.0.0", int(port)  # noqa: S104 - a pod serves probes on all interfaces


class HttpServer:
    """Runs the app on one address until stopped; `port` is known after start (port 0 works)."""

    def __init__(self, app: web.Application, address: str) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self._host, self._port = parse_address(address)
        self.port: int | None = None

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        await site.start()
        server = site._server  # aiohttp has no public accessor for the bound socket
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        await self._runner.cleanup()
