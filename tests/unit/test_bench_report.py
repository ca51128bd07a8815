"""The pure parts of the benchmark report (bench/report.py): the benchmark itself needs a
control plane and minutes, so CI checks only that the numbers it prints are computed right."""

from __future__ import annotations

import datetime
import json

import pytest

from bench import report as rpt


def test_percentiles_interpolate_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert rpt.percentile(values, 0.0) == 1.0
    assert rpt.percentile(values, 1.0) == 4.0
    assert rpt.percentile(values, 0.5) == pytest.approx(2.5)
    assert rpt.percentile(list(map(float, range(1, 101))), 0.99) == pytest.approx(99.01)
    assert rpt.percentile([7.0], 0.99) == 7.0


def test_an_empty_series_has_no_percentile_and_reads_as_missing() -> None:
    assert rpt.percentile([], 0.5) is None
    assert rpt.summary_ms([]) == {
        "n": 0,
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
        "max_ms": None,
    }
    with pytest.raises(ValueError, match="outside"):
        rpt.percentile([1.0], 1.5)


def test_summary_is_in_milliseconds() -> None:
    summary = rpt.summary_ms([0.1, 0.2, 0.3])
    assert summary["n"] == 3
    assert summary["p50_ms"] == 200.0
    assert summary["max_ms"] == 300.0


def test_per_step_division_and_subtraction() -> None:
    counts = {"POST stepruns": 500.0, "APPLY storyruns/status": 1234.0}
    assert rpt.per_unit(counts, 500) == {"APPLY storyruns/status": 2.468, "POST stepruns": 1.0}
    with pytest.raises(ValueError, match="zero"):
        rpt.per_unit(counts, 0)
    after = {"a": 5.0, "b": 2.0, "c": 1.0}
    assert rpt.subtract(after, {"a": 1.0, "b": 2.0}) == {"a": 4.0, "c": 1.0}


RUNS = "/apis/runs.bubustack.io/v1alpha1/namespaces/n"
BATCH = "/apis/batch/v1/namespaces/n"
MERGE, APPLY = "application/merge-patch+json", "application/apply-patch+yaml"


@pytest.mark.parametrize(
    ("method", "path", "content_type", "expected"),
    [
        ("GET", f"{RUNS}/stepruns/x", None, ("GET", "stepruns")),
        ("GET", f"{RUNS}/stepruns?limit=500", None, ("LIST", "stepruns")),
        ("GET", f"{BATCH}/jobs?watch=1&resourceVersion=5", None, ("WATCH", "jobs")),
        ("PATCH", f"{BATCH}/jobs/j/status", MERGE, ("PATCH", "jobs/status")),
        (
            "PATCH",
            f"{RUNS}/storyruns/r/status?fieldManager=m",
            APPLY,
            ("APPLY", "storyruns/status"),
        ),
        ("POST", "/api/v1/namespaces/n/events", "application/json", ("POST", "events")),
        ("GET", "/api/v1/namespaces/n", None, ("GET", "namespaces")),
        ("GET", "/version", None, ("LIST", "nonresource")),
    ],
)
def test_client_requests_are_named_as_the_apiserver_names_them(
    method: str, path: str, content_type: str | None, expected: tuple[str, str]
) -> None:
    assert rpt.classify_request(method, path, content_type) == expected


def _audit(user: str, verb: str, stage: str, at: str, **ref: str) -> str:
    uri = "/x?fieldManager=runs-controller&force=true" if verb == "apply" else "/x"
    return json.dumps(
        {
            "stage": stage,
            "verb": verb.replace("apply", "patch"),
            "user": {"username": user, "groups": ["bench:controller"]},
            "requestReceivedTimestamp": at,
            "requestURI": uri,
            "objectRef": ref,
        }
    )


def test_audit_counts_each_request_of_the_user_once_in_the_window() -> None:
    since = datetime.datetime(2026, 12, 1, 10, 0, 0, tzinfo=datetime.UTC)
    until = since + datetime.timedelta(minutes=1)
    inside, before = "2026-12-01T10:00:30.123456Z", "2026-12-01T09:59:59.000000Z"
    done = "ResponseComplete"
    lines = [
        _audit("ctl", "create", "ResponseComplete", inside, resource="stepruns"),
        _audit("ctl", "apply", done, inside, resource="storyruns", subresource="status"),
        _audit("ctl", "patch", done, inside, resource="engrams", subresource="status"),
        _audit("ctl", "update", "ResponseComplete", inside, resource="leases"),
        _audit("ctl", "watch", "ResponseStarted", inside, resource="jobs"),
        _audit("ctl", "watch", "ResponseComplete", inside, resource="jobs"),  # same watch, ended
        _audit("ctl", "create", "ResponseComplete", before, resource="stepruns"),  # too early
        _audit("ctl", "create", "ResponseComplete", "2026-12-01T10:01:00Z", resource="jobs"),
        _audit("driver", "create", "ResponseComplete", inside, resource="storyruns"),
        "",
        '{"stage": "ResponseComplete", "verb": "cre\ufffd',  # cut short
    ]  # fmt: skip
    assert rpt.audit_counts(lines, "ctl", since, until) == {
        "POST stepruns": 1,
        "APPLY storyruns/status": 1,
        "PATCH engrams/status": 1,
        "PUT leases": 1,
        "WATCH jobs": 1,
    }


def _request_total(code: str, group: str, resource: str, sub: str, verb: str, value: int) -> str:
    labels = (
        f'code="{code}",component="apiserver",group="{group}",resource="{resource}",'
        f'scope="resource",subresource="{sub}",verb="{verb}",version="v1"'
    )
    return f"apiserver_request_total{{{labels}}} {value}"


METRICS = "\n".join(
    [
        "# TYPE apiserver_request_total counter",
        _request_total("201", "runs.bubustack.io", "stepruns", "", "POST", 10),
        _request_total("200", "runs.bubustack.io", "stepruns", "status", "APPLY", 4),
        _request_total("409", "runs.bubustack.io", "stepruns", "status", "APPLY", 1),
        _request_total("200", "apiregistration.k8s.io", "apiservices", "", "LIST", 3),
        "# TYPE workqueue_depth gauge",
        'workqueue_depth{controller="storyrun",name="storyrun"} 3',
        'workqueue_depth{controller="steprun",name="steprun"} 4',
        "",
    ]
)


def test_prometheus_text_is_summed_by_labels() -> None:
    samples = rpt.parse_metrics(METRICS)
    assert rpt.apiserver_requests(samples, ["runs.bubustack.io"]) == {
        "POST stepruns": 10.0,
        "APPLY stepruns/status": 5.0,  # every code counts
    }
    assert rpt.sum_by(samples, "workqueue_depth", ["name"]) == {"storyrun": 3.0, "steprun": 4.0}
    assert rpt.sum_by(samples, "workqueue_depth", [], controller="steprun") == {"": 4.0}


def test_markdown_table_aligns_numbers_and_marks_missing_values() -> None:
    table = rpt.markdown_table(
        ("shape", "K", "p99 ms"), [["chain", 50, 12.25], ["fanout", 500, None]]
    )
    assert table.splitlines() == [
        "| shape | K | p99 ms |",
        "|---|---:|---:|",
        "| chain | 50 | 12.25 |",
        "| fanout | 500 | - |",
    ]
    with pytest.raises(ValueError, match="cells"):
        rpt.markdown_table(("a", "b"), [["only one"]])


def test_summary_row_reads_a_scenario_of_report_json() -> None:
    lat = {"p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0}
    scenario = {
        "shape": "diamond",
        "runs": 50,
        "workers": None,
        "runs_per_s": 2.345,
        "steps_per_s": 9.38,
        "latency": {"run_create_to_terminal": lat, "hop": lat, "gate_to_next": lat},
        "requests": {"controller_per_step": 8.7, "controller_writes_per_step": 8.6},
        "reconciles_per_object": {"storyrun": 14.2, "steprun": 4.35},
        "controller_process": {"cpu_seconds": 12.34, "peak_rss_mib": 140.27},
        "workqueue_depth_peak": 17.0,
        "machine_load": {"start_1m": 1.5},
    }
    row = rpt.summary_row(scenario)
    assert len(row) == len(rpt.SUMMARY_HEADERS)
    assert row[:4] == ["diamond", 50, "default", 2.35]
    assert rpt.summary_table([scenario]).count("\n") == 3


def test_profile_top_shares_self_and_inclusive_samples() -> None:
    lines = [
        "run (a/loop.py:10);reconcile (b/storyrun.py:5);decode (c/json.py:1) 6",
        "run (a/loop.py:10);reconcile (b/storyrun.py:7) 2",
        "run (a/loop.py:11);select (d/selectors.py:3) 2",
        "garbage line",
    ]
    top = rpt.profile_top(lines, n=2)
    assert top["self"] == [("decode (json.py)", 60.0), ("reconcile (storyrun.py)", 20.0)]
    assert top["inclusive"] == [("run (loop.py)", 100.0), ("reconcile (storyrun.py)", 80.0)]
    assert rpt.profile_top([]) == {"self": [], "inclusive": []}


def test_hops_start_at_the_last_dependency_written_and_end_at_seen_or_started() -> None:
    from bench.driver import Timeline, hop_latencies

    timeline = Timeline()
    # diamond: left and right need top; join needs nap (not an engram edge, so no hop).
    timeline.step_written.update({("r", "top"): 10.0, ("r", "left"): 11.0})
    timeline.step_seen.update({("r", "left"): 10.25, ("r", "right"): 10.5, ("r", "join"): 20.0})
    timeline.step_started.update({("r", "left"): 10.75})
    assert sorted(hop_latencies("diamond", timeline)) == [0.25, 0.5]
    assert hop_latencies("diamond", timeline, to_started=True) == [0.75]
    # chain: s1 waits on s0, which was never written: no hop.
    timeline.step_seen[("c", "s1")] = 1.0
    assert sorted(hop_latencies("chain", timeline)) == []
