"""StepRun domain metrics: the reference's families (ruling 18) and what each method moves."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runs_controller.observability.metrics import RuntimeMetrics
from runs_controller.observability.steprun_metrics import StepRunMetrics

STEP_BUCKETS = ("0.1", "0.5", "1.0", "5.0", "15.0", "30.0", "60.0", "300.0", "+Inf")

# name -> (type, help, labels, buckets), written from the reference's pkg/metrics.
EXPECTED: dict[str, tuple[str, str, set[str], tuple[str, ...] | None]] = {
    "bobrapet_stepruns_total": (
        "counter",
        "Total number of StepRuns processed",
        {"namespace", "engram", "phase"},
        None,
    ),
    "bobrapet_steprun_duration_seconds": (
        "histogram",
        "Duration of StepRun execution",
        {"namespace", "engram", "phase"},
        STEP_BUCKETS,
    ),
    "bobrapet_steprun_retries_total": (
        "counter",
        "Total number of StepRun retries",
        {"namespace", "engram", "reason"},
        None,
    ),
}

TERMINAL = ["Succeeded", "Failed", "Finished", "Canceled", "Compensated", "Timeout", "Aborted"]
TERMINAL += ["Skipped"]


def _new() -> tuple[CollectorRegistry, StepRunMetrics]:
    registry = CollectorRegistry()
    return registry, StepRunMetrics.create(registry)


def _type_and_help_lines(registry: CollectorRegistry) -> tuple[dict[str, str], dict[str, str]]:
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.removeprefix("# TYPE ").split(" ", 1)
            types[name] = kind
        elif line.startswith("# HELP "):
            name, text = line.removeprefix("# HELP ").split(" ", 1)
            helps[name] = text
    return types, helps


def _samples(registry: CollectorRegistry, family: str) -> list[tuple[str, dict[str, str], float]]:
    """Scraped samples of one family, by its exposition name (counters keep `_total`)."""
    base = family.removesuffix("_total")
    out: list[tuple[str, dict[str, str], float]] = []
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        if fam.name == base:
            out.extend(
                (s.name, dict(s.labels), s.value)
                for s in fam.samples
                if not s.name.endswith("_created")
            )
    return out


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_every_family_is_registered_with_exact_name_type_and_help() -> None:
    registry, _ = _new()
    types, helps = _type_and_help_lines(registry)
    for name, (kind, help_text, _, _) in EXPECTED.items():
        assert types.get(name) == kind, name
        assert helps.get(name) == help_text, name
    domain = {n for n in types if n.startswith("bobrapet_") and not n.endswith("_created")}
    assert domain == set(EXPECTED)


def test_every_family_has_exact_labels_and_buckets() -> None:
    registry, m = _new()
    m.steprun_finished("ns", "engram", "Succeeded", 3.0)
    m.retry_scheduled("ns", "engram", "retry")
    for name, (kind, _, labels, buckets) in EXPECTED.items():
        samples = _samples(registry, name)
        assert samples, name
        for _, sample_labels, _ in samples:
            assert set(sample_labels) - {"le"} == labels, name
        if kind == "histogram":
            les = [lab["le"] for sname, lab, _ in samples if sname.endswith("_bucket")]
            assert tuple(les) == buckets, name


@pytest.mark.parametrize("phase", TERMINAL)
def test_steprun_finished_counts_every_terminal_phase(phase: str) -> None:
    registry, m = _new()
    m.steprun_finished("ns", "e", phase, 2.0)
    labels = {"namespace": "ns", "engram": "e", "phase": phase}
    assert _value(registry, "bobrapet_stepruns_total", **labels) == 1
    assert _value(registry, "bobrapet_steprun_duration_seconds_sum", **labels) == 2


@pytest.mark.parametrize("phase", ["Pending", "Running", "Paused", "Blocked", "Scheduling", ""])
def test_steprun_finished_ignores_non_terminal_phases(phase: str) -> None:
    registry, m = _new()
    m.steprun_finished("ns", "e", phase, 5.0)
    assert _samples(registry, "bobrapet_stepruns_total") == []
    assert _samples(registry, "bobrapet_steprun_duration_seconds") == []


def test_steprun_finished_buckets_and_zero_duration() -> None:
    registry, m = _new()
    m.steprun_finished("ns", "e", "Succeeded", 0.3)
    m.steprun_finished("ns", "e", "Succeeded", 0.0)
    m.steprun_finished("ns", "e", "Succeeded", -1.0)
    labels = {"namespace": "ns", "engram": "e", "phase": "Succeeded"}
    assert _value(registry, "bobrapet_stepruns_total", **labels) == 3
    # non-positive durations count the StepRun but are not observed
    assert _value(registry, "bobrapet_steprun_duration_seconds_count", **labels) == 1
    bucket = "bobrapet_steprun_duration_seconds_bucket"
    assert _value(registry, bucket, **labels, le="0.1") == 0
    assert _value(registry, bucket, **labels, le="0.5") == 1


def test_empty_engram_becomes_unknown() -> None:
    registry, m = _new()
    m.steprun_finished("ns", "", "Failed", 1.0)
    m.retry_scheduled("ns", "", "unknown")
    unknown = {"namespace": "ns", "engram": "(unknown)"}
    assert _value(registry, "bobrapet_stepruns_total", **unknown, phase="Failed") == 1
    assert _value(registry, "bobrapet_steprun_retries_total", **unknown, reason="unknown") == 1
    assert (
        _value(registry, "bobrapet_stepruns_total", namespace="ns", engram="", phase="Failed")
        is None
    )


def test_retry_scheduled_counts_per_reason() -> None:
    registry, m = _new()
    m.retry_scheduled("ns", "e", "retry")
    m.retry_scheduled("ns", "e", "retry")
    m.retry_scheduled("ns", "e", "rateLimited")
    name = "bobrapet_steprun_retries_total"
    assert _value(registry, name, namespace="ns", engram="e", reason="retry") == 2
    assert _value(registry, name, namespace="ns", engram="e", reason="rateLimited") == 1


def test_disabled_records_only_retries() -> None:
    registry, m = _new()
    m.enabled = False
    m.steprun_finished("ns", "e", "Succeeded", 1.0)
    m.retry_scheduled("ns", "e", "retry")
    assert _samples(registry, "bobrapet_stepruns_total") == []
    assert _samples(registry, "bobrapet_steprun_duration_seconds") == []
    name = "bobrapet_steprun_retries_total"
    assert _value(registry, name, namespace="ns", engram="e", reason="retry") == 1


def test_registries_are_independent() -> None:
    first_registry, first = _new()
    second_registry, _ = _new()
    first.retry_scheduled("ns", "e", "retry")
    labels = {"namespace": "ns", "engram": "e", "reason": "retry"}
    assert _value(first_registry, "bobrapet_steprun_retries_total", **labels) == 1
    assert _value(second_registry, "bobrapet_steprun_retries_total", **labels) is None
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        StepRunMetrics.create(first_registry)


def test_runtime_metrics_carries_the_steprun_families() -> None:
    registry = CollectorRegistry()
    runtime = RuntimeMetrics.create(registry)
    runtime.steprun.retry_scheduled("ns", "e", "retry")
    labels = {"namespace": "ns", "engram": "e", "reason": "retry"}
    assert _value(registry, "bobrapet_steprun_retries_total", **labels) == 1
