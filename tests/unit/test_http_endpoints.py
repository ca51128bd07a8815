from __future__ import annotations

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter

from runs_controller.observability.http import HealthChecks, HttpServer, build_app, parse_address


def test_parse_address() -> None:
    assert parse_address(":8080") == ("0.0.0.0", 8080)  # noqa: S104
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0)
    with pytest.raises(ValueError, match="host:port"):
        parse_address("nope")


async def test_endpoints_serve_health_readiness_and_metrics() -> None:
    registry = CollectorRegistry()
    Counter("demo_total", "demo", registry=registry).inc(3)
    failing: list[str] = ["informers-synced"]
    server = HttpServer(
        build_app(registry, HealthChecks(ready=lambda: list(failing))), "127.0.0.1:0"
    )
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/healthz") as reply:
                assert reply.status == 200
            async with session.get(f"{base}/readyz") as reply:
                assert reply.status == 503
                assert "[-]informers-synced failed" in await reply.text()
            failing.clear()
            async with session.get(f"{base}/readyz") as reply:
                assert reply.status == 200
            async with session.get(f"{base}/metrics") as reply:
                assert reply.status == 200
                assert "demo_total 3.0" in await reply.text()
    finally:
        await server.stop()
