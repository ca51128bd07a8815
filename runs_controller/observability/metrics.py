"""Prometheus metrics with client-go / controller-runtime names, labels and buckets.

Reusing the upstream names lets existing dashboards and alerts work unchanged. Each group of
metrics is a small class bound to a `CollectorRegistry`: production uses one process-wide
registry (`default_registry()`), tests pass a fresh one so they never share counters.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from runs_controller.observability.steprun_metrics import StepRunMetrics
from runs_controller.observability.storyrun_metrics import StoryRunMetrics

# controller-runtime reconcile_time buckets: 5 ms ... 60 s.
RECONCILE_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8,
    0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30,
    40, 50, 60,
)  # fmt: skip
# client-go workqueue buckets: 1e-8 s x 10^k, 12 buckets (to 1000 s).
WORKQUEUE_BUCKETS = tuple(1e-8 * 10**k for k in range(12))
# client-go rest client latency buckets: 5 ms ... 60 s.
REST_LATENCY_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)

_default: CollectorRegistry | None = None


def default_registry() -> CollectorRegistry:
    """The process-wide registry served on /metrics.

    Also turns off prometheus_client's `*_created` series, process-wide: the Go clients whose
    names we keep never expose them, and they doubled the series of every counter and histogram,
    so building /metrics with 1,000 live runs cost twice the CPU (the benchmark's profile)."""
    global _default
    if _default is None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        _default = CollectorRegistry(auto_describe=True)
    return _default


@dataclass(frozen=True)
class RestClientMetrics:
    requests: Counter
    duration: Histogram
    rate_limiter_duration: Histogram
    retries: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> RestClientMetrics:
        return cls(
            requests=Counter(
                "rest_client_requests_total",
                "Number of HTTP requests, partitioned by status code, method, and host.",
                ["code", "method", "host"],
                registry=registry,
            ),
            duration=Histogram(
                "rest_client_request_duration_seconds",
                "Request latency in seconds. Broken down by verb, and host.",
                ["verb", "host"],
                buckets=REST_LATENCY_BUCKETS,
                registry=registry,
            ),
            rate_limiter_duration=Histogram(
                "rest_client_rate_limiter_duration_seconds",
                "Client side rate limiter latency in seconds. Broken down by verb, and host.",
                ["verb", "host"],
                buckets=REST_LATENCY_BUCKETS,
                registry=registry,
            ),
            retries=Counter(
                "rest_client_request_retries_total",
                "Number of request retries, partitioned by status code, verb, and host.",
                ["code", "verb", "host"],
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class WorkqueueMetrics:
    depth: Gauge
    adds: Counter
    queue_duration: Histogram
    work_duration: Histogram
    unfinished_work: Gauge
    longest_running_processor: Gauge
    retries: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> WorkqueueMetrics:
        labels = ["name", "controller"]
        return cls(
            depth=Gauge("workqueue_depth", "Current depth of workqueue", labels, registry=registry),
            adds=Counter(
                "workqueue_adds_total",
                "Total number of adds handled by workqueue",
                labels,
                registry=registry,
            ),
            queue_duration=Histogram(
                "workqueue_queue_duration_seconds",
                "How long in seconds an item stays in workqueue before being requested",
                labels,
                buckets=WORKQUEUE_BUCKETS,
                registry=registry,
            ),
            work_duration=Histogram(
                "workqueue_work_duration_seconds",
                "How long in seconds processing an item from workqueue takes.",
                labels,
                buckets=WORKQUEUE_BUCKETS,
                registry=registry,
            ),
            unfinished_work=Gauge(
                "workqueue_unfinished_work_seconds",
                "How many seconds of work has been done that is in progress and hasn't been "
                "observed by work_duration. Large values indicate stuck threads.",
                labels,
                registry=registry,
            ),
            longest_running_processor=Gauge(
                "workqueue_longest_running_processor_seconds",
                "How many seconds has the longest running processor for workqueue been running.",
                labels,
                registry=registry,
            ),
            retries=Counter(
                "workqueue_retries_total",
                "Total number of retries handled by workqueue",
                labels,
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class ControllerMetrics:
    reconcile_total: Counter
    reconcile_errors: Counter
    terminal_errors: Counter
    timeouts: Counter
    reconcile_time: Histogram
    active_workers: Gauge
    max_concurrent_reconciles: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ControllerMetrics:
        return cls(
            reconcile_total=Counter(
                "controller_runtime_reconcile_total",
                "Total number of reconciliations per controller",
                ["controller", "result"],
                registry=registry,
            ),
            reconcile_errors=Counter(
                "controller_runtime_reconcile_errors_total",
                "Total number of reconciliation errors per controller",
                ["controller"],
                registry=registry,
            ),
            terminal_errors=Counter(
                "controller_runtime_terminal_reconcile_errors_total",
                "Total number of terminal reconciliation errors per controller",
                ["controller"],
                registry=registry,
            ),
            timeouts=Counter(
                "controller_runtime_reconcile_timeouts_total",
                "Total number of reconciliation timeouts per controller",
                ["controller"],
                registry=registry,
            ),
            reconcile_time=Histogram(
                "controller_runtime_reconcile_time_seconds",
                "Length of time per reconciliation per controller",
                ["controller"],
                buckets=RECONCILE_BUCKETS,
                registry=registry,
            ),
            active_workers=Gauge(
                "controller_runtime_active_workers",
                "Number of currently used workers per controller",
                ["controller"],
                registry=registry,
            ),
            max_concurrent_reconciles=Gauge(
                "controller_runtime_max_concurrent_reconciles",
                "Maximum number of concurrent reconciles per controller",
                ["controller"],
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class LeaderElectionMetrics:
    master_status: Gauge
    slowpath_total: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> LeaderElectionMetrics:
        return cls(
            master_status=Gauge(
                "leader_election_master_status",
                "Gauge of if the reporting system is master of the relevant lease, 0 indicates "
                "backup, 1 indicates master. 'name' is the string used to identify the lease.",
                ["name"],
                registry=registry,
            ),
            slowpath_total=Counter(
                "leader_election_slowpath_total",
                "Total number of slow path exercised in renewing leader leases.",
                ["name"],
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class InformerMetrics:
    decode_errors: Counter
    undecodable: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> InformerMetrics:
        return cls(
            decode_errors=Counter(
                "runs_controller_informer_decode_errors_total",
                "Objects (versions) left out of an informer's cache because they do not decode "
                "into the controller's types.",
                ["informer"],
                registry=registry,
            ),
            undecodable=Gauge(
                "runs_controller_informer_undecodable_objects",
                "Objects currently left out of an informer's cache because they do not decode.",
                ["informer"],
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class WriterMetrics:
    status_writes: Counter
    fenced_writes: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> WriterMetrics:
        return cls(
            status_writes=Counter(
                "runs_controller_status_writes_total",
                "Status applies by kind and result: sent, or skipped because the observed status "
                "already equals the desired one.",
                ["controller", "kind", "result"],
                registry=registry,
            ),
            fenced_writes=Counter(
                "runs_controller_fenced_writes_total",
                "Writes refused because this replica is no longer (safely) the leader.",
                ["verb"],
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class RuntimeMetrics:
    """Every runtime metric group, created once per registry."""

    controller: ControllerMetrics
    workqueue: WorkqueueMetrics
    informer: InformerMetrics
    writer: WriterMetrics
    storyrun: StoryRunMetrics
    steprun: StepRunMetrics

    @classmethod
    def create(cls, registry: CollectorRegistry) -> RuntimeMetrics:
        return cls(
            controller=ControllerMetrics.create(registry),
            workqueue=WorkqueueMetrics.create(registry),
            informer=InformerMetrics.create(registry),
            writer=WriterMetrics.create(registry),
            storyrun=StoryRunMetrics.create(registry),
            steprun=StepRunMetrics.create(registry),
        )
