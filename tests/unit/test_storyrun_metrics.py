"""StoryRun domain metrics: the reference's families (ruling 18) and what each method moves."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runs_controller.observability.storyrun_metrics import StoryRunMetrics

RUN_BUCKETS = ("1.0", "5.0", "15.0", "30.0", "60.0", "300.0", "600.0", "1800.0", "3600.0", "+Inf")
DAG_BUCKETS = ("0.0", "1.0", "2.0", "5.0", "10.0", "20.0", "40.0", "+Inf")

# name -> (type, help, labels, buckets), written from the reference's pkg/metrics.
EXPECTED: dict[str, tuple[str, str, set[str], tuple[str, ...] | None]] = {
    "bobrapet_storyruns_total": (
        "counter",
        "Total number of StoryRuns processed",
        {"namespace", "story", "phase"},
        None,
    ),
    "bobrapet_storyrun_duration_seconds": (
        "histogram",
        "Duration of StoryRun execution",
        {"namespace", "story", "phase"},
        RUN_BUCKETS,
    ),
    "bobrapet_storyrun_steps_active": (
        "gauge",
        "Number of currently active steps in StoryRuns",
        {"namespace", "story"},
        None,
    ),
    "bobrapet_storyrun_steps_completed": (
        "gauge",
        "Number of completed steps in StoryRuns",
        {"namespace", "story"},
        None,
    ),
    "bobrapet_storyrun_window_seconds": (
        "gauge",
        "Configured child TTL and retention windows applied to StoryRuns",
        {"namespace", "story", "window"},
        None,
    ),
    "bobrapet_storyrun_queue_age_seconds": (
        "histogram",
        "Time StoryRuns spend queued due to scheduling or priority ordering.",
        {"namespace", "queue"},
        RUN_BUCKETS,
    ),
    "bobrapet_storyrun_queue_depth": (
        "gauge",
        "Number of steps queued by scheduling limits per queue.",
        {"namespace", "storyrun", "queue"},
        None,
    ),
    "bobrapet_storyrun_dependents_deleted_total": (
        "counter",
        "Total number of StoryRun dependents deleted during cleanup, partitioned by resource type.",
        {"namespace", "storyrun", "resource"},
        None,
    ),
    "bobrapet_storyrun_rbac_operations_total": (
        "counter",
        "Number of StoryRun RBAC reconciliation operations by resource and controller result",
        {"resource", "operation"},
        None,
    ),
    "bobrapet_child_stepruns_created_total": (
        "counter",
        "Total number of child StepRuns created per StoryRun/Engram.",
        {"namespace", "storyrun", "engram"},
        None,
    ),
    "bobrapet_dag_iteration_steps": (
        "histogram",
        "Ready/skipped step counts per DAG iteration",
        {"controller", "type"},
        DAG_BUCKETS,
    ),
    "bobrapet_substory_refresh_total": (
        "counter",
        "Total number of DAG sub-story refreshes triggered by synchronous executeStory completions",
        {"controller"},
        None,
    ),
    "bobrapet_resolver_service_account_fallback_total": (
        "counter",
        (
            "Number of times the config resolver defaulted the StepRun ServiceAccount to the "
            "per-StoryRun runner"
        ),
        {"storyrun"},
        None,
    ),
}


def _new() -> tuple[CollectorRegistry, StoryRunMetrics]:
    registry = CollectorRegistry()
    return registry, StoryRunMetrics.create(registry)


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
            out.extend((s.name, dict(s.labels), s.value) for s in fam.samples)
    return out


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def _exercise_all(m: StoryRunMetrics) -> None:
    m.run_finished("ns", "story", "Succeeded", 12.0)
    m.steps_gauges("ns", "story", 2, 3)
    m.retention_windows("ns", "story", 60, 3600)
    m.queue_age("ns", "q", 7.0)
    m.queue_depth("ns", "run-1", "q", 4)
    m.dependents_deleted("ns", "run-1", "StepRun", 2)
    m.rbac_operation("Role", "created")
    m.child_steprun_created("ns", "run-1", "engram-a")
    m.dag_iteration(3, 1)
    m.substory_refresh()
    m.service_account_fallback("run-1")


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
    _exercise_all(m)
    for name, (kind, _, labels, buckets) in EXPECTED.items():
        samples = [s for s in _samples(registry, name) if not s[0].endswith("_created")]
        assert samples, name
        for _, sample_labels, _ in samples:
            assert set(sample_labels) - {"le"} == labels, name
        if kind == "histogram":
            by_series: dict[tuple[tuple[str, str], ...], list[str]] = {}
            for sname, lab, _ in samples:
                if sname.endswith("_bucket"):
                    key = tuple(sorted((k, v) for k, v in lab.items() if k != "le"))
                    by_series.setdefault(key, []).append(lab["le"])
            assert by_series, name
            for les in by_series.values():
                assert tuple(les) == buckets, name


def test_run_finished_counts_succeeded_and_failed_and_observes_duration() -> None:
    registry, m = _new()
    m.run_finished("ns", "s", "Succeeded", 20.0)
    m.run_finished("ns", "s", "Failed", 2.0)
    m.run_finished("ns", "s", "Failed", 0.0)
    labels = {"namespace": "ns", "story": "s"}
    assert _value(registry, "bobrapet_storyruns_total", **labels, phase="Succeeded") == 1
    assert _value(registry, "bobrapet_storyruns_total", **labels, phase="Failed") == 2
    assert (
        _value(registry, "bobrapet_storyrun_duration_seconds_sum", **labels, phase="Succeeded")
        == 20
    )
    # the zero duration counts the run but is not observed
    assert (
        _value(registry, "bobrapet_storyrun_duration_seconds_count", **labels, phase="Failed") == 1
    )
    assert (
        _value(
            registry,
            "bobrapet_storyrun_duration_seconds_bucket",
            **labels,
            phase="Succeeded",
            le="15.0",
        )
        == 0
    )
    assert (
        _value(
            registry,
            "bobrapet_storyrun_duration_seconds_bucket",
            **labels,
            phase="Succeeded",
            le="30.0",
        )
        == 1
    )


@pytest.mark.parametrize("phase", ["Timeout", "Aborted", "Canceled", "Running", "Blocked"])
def test_run_finished_ignores_phases_the_reference_does_not_count(phase: str) -> None:
    registry, m = _new()
    m.run_finished("ns", "s", phase, 5.0)
    assert _samples(registry, "bobrapet_storyruns_total") == []
    assert _samples(registry, "bobrapet_storyrun_duration_seconds") == []


def test_steps_gauges_set_and_overwrite_and_skip_empty_story() -> None:
    registry, m = _new()
    m.steps_gauges("ns", "s", 4, 1)
    m.steps_gauges("ns", "s", 1, 5)
    m.steps_gauges("ns", "", 9, 9)
    assert _value(registry, "bobrapet_storyrun_steps_active", namespace="ns", story="s") == 1
    assert _value(registry, "bobrapet_storyrun_steps_completed", namespace="ns", story="s") == 5
    assert _value(registry, "bobrapet_storyrun_steps_active", namespace="ns", story="") is None


def test_windows_are_set_and_negative_is_clamped() -> None:
    registry, m = _new()
    m.retention_windows("ns", "s", 300, 86400)
    m.window_seconds("ns", "t", "retention", -5)
    labels = {"namespace": "ns", "story": "s"}
    assert _value(registry, "bobrapet_storyrun_window_seconds", **labels, window="child_ttl") == 300
    assert (
        _value(registry, "bobrapet_storyrun_window_seconds", **labels, window="retention") == 86400
    )
    assert (
        _value(
            registry,
            "bobrapet_storyrun_window_seconds",
            namespace="ns",
            story="t",
            window="retention",
        )
        == 0
    )


def test_queue_age_observes_with_placeholders_and_clamps() -> None:
    registry, m = _new()
    m.queue_age("", "", -3.0)
    m.queue_age("ns", "gpu", 100.0)
    unknown = {"namespace": "(unknown)", "queue": "(unknown)"}
    assert _value(registry, "bobrapet_storyrun_queue_age_seconds_count", **unknown) == 1
    assert _value(registry, "bobrapet_storyrun_queue_age_seconds_sum", **unknown) == 0
    assert _value(registry, "bobrapet_storyrun_queue_age_seconds_bucket", **unknown, le="1.0") == 1
    gpu = {"namespace": "ns", "queue": "gpu"}
    assert _value(registry, "bobrapet_storyrun_queue_age_seconds_bucket", **gpu, le="60.0") == 0
    assert _value(registry, "bobrapet_storyrun_queue_age_seconds_bucket", **gpu, le="300.0") == 1


def test_queue_depth_sets_overwrites_and_clamps() -> None:
    registry, m = _new()
    m.queue_depth("ns", "run", "q", 5)
    m.queue_depth("ns", "run", "q", 2)
    m.queue_depth("ns", "", "", -1)
    assert (
        _value(registry, "bobrapet_storyrun_queue_depth", namespace="ns", storyrun="run", queue="q")
        == 2
    )
    assert (
        _value(
            registry,
            "bobrapet_storyrun_queue_depth",
            namespace="ns",
            storyrun="(unknown)",
            queue="(unknown)",
        )
        == 0
    )


def test_dependents_deleted_adds_count_and_ignores_non_positive() -> None:
    registry, m = _new()
    m.dependents_deleted("ns", "run", "StepRun", 3)
    m.dependents_deleted("ns", "run", "StepRun", 2)
    m.dependents_deleted("ns", "run", "StoryRun", 0)
    m.dependents_deleted("ns", "run", "", 1)
    name = "bobrapet_storyrun_dependents_deleted_total"
    assert _value(registry, name, namespace="ns", storyrun="run", resource="StepRun") == 5
    assert _value(registry, name, namespace="ns", storyrun="run", resource="StoryRun") is None
    assert _value(registry, name, namespace="ns", storyrun="run", resource="unknown") == 1


def test_rbac_operation_counts_and_defaults_to_unchanged() -> None:
    registry, m = _new()
    m.rbac_operation("ServiceAccount", "created")
    m.rbac_operation("ServiceAccount", "")
    m.rbac_operation("ServiceAccount", "unchanged")
    name = "bobrapet_storyrun_rbac_operations_total"
    assert _value(registry, name, resource="ServiceAccount", operation="created") == 1
    assert _value(registry, name, resource="ServiceAccount", operation="unchanged") == 2


def test_child_steprun_created_counts_per_run_and_engram() -> None:
    registry, m = _new()
    m.child_steprun_created("ns", "run", "e1")
    m.child_steprun_created("ns", "run", "e1")
    m.child_steprun_created("ns", "run", "")
    name = "bobrapet_child_stepruns_created_total"
    assert _value(registry, name, namespace="ns", storyrun="run", engram="e1") == 2
    assert _value(registry, name, namespace="ns", storyrun="run", engram="(unknown)") == 1


def test_dag_iteration_observes_ready_and_skipped() -> None:
    registry, m = _new()
    m.dag_iteration(0, 0)
    assert _samples(registry, "bobrapet_dag_iteration_steps") == []
    m.dag_iteration(3, 0)
    m.dag_iteration(-1, 2)
    name = "bobrapet_dag_iteration_steps"
    ready = {"controller": "storyrun-dag", "type": "ready"}
    skipped = {"controller": "storyrun-dag", "type": "skipped"}
    assert _value(registry, f"{name}_count", **ready) == 1
    assert _value(registry, f"{name}_sum", **ready) == 3
    assert _value(registry, f"{name}_bucket", **ready, le="2.0") == 0
    assert _value(registry, f"{name}_bucket", **ready, le="5.0") == 1
    assert _value(registry, f"{name}_count", **skipped) == 2
    assert _value(registry, f"{name}_bucket", **skipped, le="0.0") == 1


def test_substory_refresh_and_service_account_fallback_count() -> None:
    registry, m = _new()
    m.substory_refresh()
    m.substory_refresh("other")
    m.service_account_fallback("run")
    m.service_account_fallback("")
    assert _value(registry, "bobrapet_substory_refresh_total", controller="storyrun-dag") == 1
    assert _value(registry, "bobrapet_substory_refresh_total", controller="other") == 1
    name = "bobrapet_resolver_service_account_fallback_total"
    assert _value(registry, name, storyrun="run") == 1
    assert _value(registry, name, storyrun="(unknown)") == 1


def test_disabled_records_nothing_but_the_steps_gauges() -> None:
    registry, m = _new()
    m.enabled = False
    _exercise_all(m)
    for name in EXPECTED:
        recorded = [s for s in _samples(registry, name) if not s[0].endswith("_created")]
        if name.startswith("bobrapet_storyrun_steps_"):
            assert recorded, name
        else:
            assert recorded == [], name


def test_forget_run_drops_only_that_runs_series() -> None:
    registry, m = _new()
    for ns, run in (("ns", "run-1"), ("ns", "run-2"), ("other", "run-3")):
        m.queue_depth(ns, run, "q", 1)
        m.dependents_deleted(ns, run, "StepRun", 1)
        m.child_steprun_created(ns, run, "e")
        m.service_account_fallback(run)
    m.steps_gauges("ns", "story", 1, 1)
    m.forget_run("ns", "run-1")
    run_families = (
        "bobrapet_storyrun_queue_depth",
        "bobrapet_storyrun_dependents_deleted_total",
        "bobrapet_child_stepruns_created_total",
        "bobrapet_resolver_service_account_fallback_total",
    )
    for name in run_families:
        runs = {lab["storyrun"] for _, lab, _ in _samples(registry, name)}
        assert runs == {"run-2", "run-3"}, name
    assert _value(registry, "bobrapet_storyrun_steps_active", namespace="ns", story="story") == 1


def test_forget_run_keeps_a_same_named_run_in_another_namespace() -> None:
    registry, m = _new()
    m.queue_depth("a", "run", "q", 1)
    m.queue_depth("b", "run", "q", 1)
    m.forget_run("a", "run")
    name = "bobrapet_storyrun_queue_depth"
    assert _value(registry, name, namespace="a", storyrun="run", queue="q") is None
    assert _value(registry, name, namespace="b", storyrun="run", queue="q") == 1


def test_registries_are_independent() -> None:
    first_registry, first = _new()
    second_registry, _ = _new()
    first.substory_refresh()
    assert _value(first_registry, "bobrapet_substory_refresh_total", controller="storyrun-dag") == 1
    assert (
        _value(second_registry, "bobrapet_substory_refresh_total", controller="storyrun-dag")
        is None
    )
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        StoryRunMetrics.create(first_registry)
