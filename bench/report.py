"""The pure parts of the benchmark report: percentiles, per-step division, request
classification (client side and audit log), Prometheus text parsing and the Markdown tables.

Kept apart from the driver so a unit test (`tests/unit/test_bench_report.py`) covers them
without a cluster; the benchmark itself is not run in CI.
"""

from __future__ import annotations

import datetime
import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

WATCH_VERBS = frozenset({"WATCH", "WATCHLIST"})


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) with linear interpolation between ranks (numpy's default);
    None for no values, so an empty series never reads as a measured 0."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside 0..1")
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max of latencies given in seconds, reported in milliseconds."""

    def ms(value: float | None) -> float | None:
        return None if value is None else round(1000 * value, 1)

    return {
        "n": len(values),
        "p50_ms": ms(percentile(values, 0.50)),
        "p95_ms": ms(percentile(values, 0.95)),
        "p99_ms": ms(percentile(values, 0.99)),
        "max_ms": ms(max(values) if values else None),
    }


def per_unit(counts: Mapping[str, float], units: int, digits: int = 3) -> dict[str, float]:
    """Each count divided by `units` (requests per step, reconciles per object), rounded;
    zero units is an error, not a silent infinity."""
    if units <= 0:
        raise ValueError("cannot divide by zero units")
    return {key: round(value / units, digits) for key, value in sorted(counts.items())}


def subtract(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    """`after - before` per key, dropping keys whose difference is 0."""
    out = {key: value - before.get(key, 0.0) for key, value in after.items()}
    return {key: value for key, value in out.items() if value}


# -- requests ----------------------------------------------------------------------------------


def _resource_parts(path: str) -> tuple[str, str, bool]:
    """(group, resource[/subresource], names an object) of an API path."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return "", "nonresource", False
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    if len(rest) >= 2 and rest[0] == "namespaces":
        if len(rest) == 2:  # the namespace object itself
            return group, "namespaces", True
        rest = rest[2:]
    if not rest:
        return group, "?", False
    resource = rest[0]
    if len(rest) >= 3:
        resource = f"{resource}/{rest[2]}"
    return group, resource, len(rest) >= 2


def classify_request(method: str, path: str, content_type: str | None = None) -> tuple[str, str]:
    """The apiserver's verb (GET, LIST, WATCH, POST, PATCH, APPLY, PUT, DELETE) and the
    `resource[/subresource]` of a client request, as `apiserver_request_total` and the audit
    log name them, so counts from either side can be compared."""
    method = method.upper()
    _, resource, named = _resource_parts(path)
    query = parse_qs(path.split("?", 1)[1]) if "?" in path else {}
    if method == "GET":
        if query.get("watch", [""])[0] in ("1", "true"):
            verb = "WATCH"
        else:
            verb = "GET" if named else "LIST"
    elif method == "PATCH" and content_type == "application/apply-patch+yaml":
        verb = "APPLY"
    elif method == "POST":
        verb = "POST"
    else:
        verb = method
    return verb, resource


def label_key(verb: str, resource: str) -> str:
    return f"{verb} {resource}"


def audit_counts(
    lines: Iterable[str],
    user: str,
    since: datetime.datetime,
    until: datetime.datetime | None = None,
) -> Counter[str]:
    """Requests made by `user` received in [since, until), by "VERB resource[/sub]", from
    kube-apiserver audit log lines (JSON, one event a line; others are skipped). A request is
    counted once: at `ResponseStarted` for watches (they may still be open), at
    `ResponseComplete` otherwise."""
    counts: Counter[str] = Counter()
    for line in lines:
        try:
            event: dict[str, Any] = json.loads(line)
        except ValueError:  # blank, or a line cut short by the apiserver's exit
            continue
        if event.get("user", {}).get("username") != user:
            continue
        received = datetime.datetime.fromisoformat(
            event["requestReceivedTimestamp"].replace("Z", "+00:00")
        )
        if received < since or (until is not None and received >= until):
            continue
        verb = str(event.get("verb", "")).upper()
        watch = verb in WATCH_VERBS
        stage = event.get("stage")
        if stage != ("ResponseStarted" if watch else "ResponseComplete"):
            continue
        ref = event.get("objectRef") or {}
        resource = ref.get("resource") or "nonresource"
        if ref.get("subresource"):
            resource = f"{resource}/{ref['subresource']}"
        if verb == "CREATE":
            verb = "POST"
        elif verb == "UPDATE":
            verb = "PUT"
        elif verb == "PATCH" and _is_apply(event):
            verb = "APPLY"
        counts[label_key(verb, resource)] += 1
    return counts


def _is_apply(event: Mapping[str, Any]) -> bool:
    uri = str(event.get("requestURI", ""))
    return "fieldManager=" in uri and "force=" in uri


# -- Prometheus text ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def parse_metrics(text: str) -> list[Sample]:
    """Every sample of a /metrics page (counters keep their `_total` suffix)."""
    return [
        Sample(sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def sum_by(
    samples: Iterable[Sample], name: str, by: Sequence[str], **where: str
) -> dict[str, float]:
    """Values of metric `name` whose labels match `where`, summed by the labels `by`
    (joined with a space)."""
    out: dict[str, float] = {}
    for sample in samples:
        if sample.name != name or any(sample.labels.get(k) != v for k, v in where.items()):
            continue
        key = " ".join(sample.labels.get(label, "") for label in by)
        out[key] = out.get(key, 0.0) + sample.value
    return out


def apiserver_requests(samples: Iterable[Sample], groups: Iterable[str]) -> dict[str, float]:
    """`apiserver_request_total` by "VERB resource[/sub]" for the API groups given ("" is
    core), so the apiserver's own traffic (its leases, discovery) stays out."""
    wanted = set(groups)
    out: dict[str, float] = {}
    for sample in samples:
        if sample.name != "apiserver_request_total":
            continue
        labels = sample.labels
        if labels.get("group", "") not in wanted:
            continue
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource = f"{resource}/{labels['subresource']}"
        key = label_key(labels.get("verb", ""), resource)
        out[key] = out.get(key, 0.0) + sample.value
    return out


# -- Markdown ----------------------------------------------------------------------------------


def fmt(value: object) -> str:
    """A table cell: `-` for missing, floats as rounded by the caller (no exponent below a
    million), plain everything else."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub Markdown table; numbers right-aligned."""
    body = [[fmt(cell) for cell in row] for row in rows]
    for row in body:
        if len(row) != len(headers):
            raise ValueError(f"row {row} has {len(row)} cells for {len(headers)} headers")
    align = [
        "---:" if body and _numeric(r[i] for r in body) else "---" for i in range(len(headers))
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _numeric(cells: Iterable[str]) -> bool:
    def number(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return cell == "-"
        return True

    return all(number(cell) for cell in cells)


SUMMARY_HEADERS = (
    "shape",
    "K",
    "workers",
    "runs/s",
    "steps/s",
    "run p50 ms",
    "run p95 ms",
    "run p99 ms",
    "hop p50 ms",
    "hop p99 ms",
    "hop->Running p50 ms",
    "hop->Running p99 ms",
    "gate p50 ms",
    "gate p99 ms",
    "req/step",
    "writes/step",
    "reconciles/StoryRun",
    "reconciles/StepRun",
    "CPU s",
    "peak RSS MiB",
    "queue peak",
    "load 1m",
)


def summary_row(scenario: Mapping[str, Any]) -> list[object]:
    """One row of the summary table from one scenario of report.json."""
    lat = scenario["latency"]
    req = scenario["requests"]
    rec = scenario["reconciles_per_object"]
    proc = scenario["controller_process"]
    return [
        scenario["shape"],
        scenario["runs"],
        scenario["workers"] or "default",
        round(scenario["runs_per_s"], 2),
        round(scenario["steps_per_s"], 1),
        lat["run_create_to_terminal"]["p50_ms"],
        lat["run_create_to_terminal"]["p95_ms"],
        lat["run_create_to_terminal"]["p99_ms"],
        lat["hop"]["p50_ms"],
        lat["hop"]["p99_ms"],
        lat.get("hop_to_started", {}).get("p50_ms"),
        lat.get("hop_to_started", {}).get("p99_ms"),
        lat["gate_to_next"]["p50_ms"],
        lat["gate_to_next"]["p99_ms"],
        round(req["controller_per_step"], 2),
        round(req["controller_writes_per_step"], 2),
        round(rec.get("storyrun", 0.0), 2),
        round(rec.get("steprun", 0.0), 2),
        round(proc["cpu_seconds"], 1),
        round(proc["peak_rss_mib"], 1),
        scenario["workqueue_depth_peak"],
        scenario["machine_load"]["start_1m"],
    ]


def summary_table(scenarios: Iterable[Mapping[str, Any]]) -> str:
    return markdown_table(SUMMARY_HEADERS, (summary_row(s) for s in scenarios))


def requests_table(scenario: Mapping[str, Any]) -> str:
    """Requests per engram step by verb and resource: the controller (audit log, filtered by
    its identity) beside the apiserver's counters minus the driver's own requests."""
    req = scenario["requests"]
    audit: Mapping[str, float] = req["audit_per_step"]
    derived: Mapping[str, float] = req["apiserver_minus_driver_per_step"]
    keys = sorted(set(audit) | set(derived))
    return markdown_table(
        ("verb resource", "controller (audit)", "apiserver_request_total - driver"),
        ([key, _r(audit.get(key)), _r(derived.get(key))] for key in keys),
    )


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- profiles ----------------------------------------------------------------------------------


def _frame(frame: str) -> str:
    """`func (path/file.py:123)` -> `func (file.py)`: lines of one function add up."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0].rsplit("/", 1)[-1]
    return f"{name} ({where})" if where else name


def profile_top(lines: Iterable[str], n: int = 15) -> dict[str, list[tuple[str, float]]]:
    """From py-spy's raw (collapsed) stacks, `frame;frame;... count`: the functions with the
    largest share of samples on top of the stack (self) and anywhere in it (inclusive)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return {"self": [], "inclusive": []}
    return {
        "self": [(f, round(100 * c / total, 1)) for f, c in own.most_common(n)],
        "inclusive": [(f, round(100 * c / total, 1)) for f, c in inclusive.most_common(n)],
    }
