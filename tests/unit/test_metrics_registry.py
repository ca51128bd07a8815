"""The production registry: no `*_created` series, as the Go clients whose names we keep."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from runs_controller.observability.metrics import RestClientMetrics, default_registry


def test_the_production_registry_exposes_no_created_series() -> None:
    registry = default_registry()
    assert default_registry() is registry
    fresh = CollectorRegistry()
    Counter("runs_total", "runs", ["phase"], registry=fresh).labels(phase="Succeeded").inc()
    Histogram("run_seconds", "seconds", registry=fresh).observe(1.5)
    RestClientMetrics.create(fresh).requests.labels(code="200", method="GET", host="h").inc()
    text = generate_latest(fresh).decode()
    assert 'runs_total{phase="Succeeded"} 1.0' in text
    assert "run_seconds_count 1.0" in text
    assert "rest_client_requests_total{" in text
    assert "_created" not in text
