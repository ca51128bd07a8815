"""The reference operator's StoryRun domain metrics (`bobrapet_*`), same names, labels, buckets.

Decision 18 keeps these names so existing dashboards and alerts keep working. Each method says
when the reference records its family; the reconciler decides when to call it. Label values are
passed as given, except where the reference substitutes a placeholder for an empty value.

Cardinality: four families carry a StoryRun *name* label because the reference's do
(`bobrapet_storyrun_queue_depth`, `bobrapet_storyrun_dependents_deleted_total`,
`bobrapet_child_stepruns_created_total`, `bobrapet_resolver_service_account_fallback_total`).
Their series grow with the number of runs, so `forget_run` drops a run's series; the reference
never does, ours must, or a long-lived controller leaks one series set per run.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Reference placeholders for empty label values.
UNKNOWN_LABEL = "(unknown)"
UNKNOWN_RESOURCE = "unknown"

# `window` label values of bobrapet_storyrun_window_seconds.
WINDOW_CHILD_TTL = "child_ttl"
WINDOW_RETENTION = "retention"

# `resource` label values of bobrapet_storyrun_dependents_deleted_total.
DEPENDENT_STEPRUN = "StepRun"
DEPENDENT_STORYRUN = "StoryRun"

# `operation` when the reconcile changed nothing (controller-runtime's OperationResultNone).
RBAC_UNCHANGED = "unchanged"

# The `controller` label the reference's DAG loop uses.
DAG_CONTROLLER = "storyrun-dag"

# Only these phases feed bobrapet_storyruns_total / _duration_seconds in the reference.
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})

RUN_DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0)
DAG_ITERATION_BUCKETS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0)


def _or(value: str, placeholder: str) -> str:
    return value if value else placeholder


@dataclass
class StoryRunMetrics:
    """StoryRun families bound to one registry; `enabled` mirrors `debug.enable-metrics`.

    As in the reference, disabling stops every family except the two steps gauges.
    """

    storyruns_total: Counter
    storyrun_duration: Histogram
    steps_active: Gauge
    steps_completed: Gauge
    window_gauge: Gauge
    queue_age_histogram: Histogram
    queue_depth_gauge: Gauge
    dependents_deleted_total: Counter
    rbac_operations_total: Counter
    child_stepruns_created_total: Counter
    dag_iteration_histogram: Histogram
    substory_refresh_total: Counter
    service_account_fallback_total: Counter
    enabled: bool = True

    @classmethod
    def create(cls, registry: CollectorRegistry) -> StoryRunMetrics:
        return cls(
            storyruns_total=Counter(
                "bobrapet_storyruns_total",
                "Total number of StoryRuns processed",
                ["namespace", "story", "phase"],
                registry=registry,
            ),
            storyrun_duration=Histogram(
                "bobrapet_storyrun_duration_seconds",
                "Duration of StoryRun execution",
                ["namespace", "story", "phase"],
                buckets=RUN_DURATION_BUCKETS,
                registry=registry,
            ),
            steps_active=Gauge(
                "bobrapet_storyrun_steps_active",
                "Number of currently active steps in StoryRuns",
                ["namespace", "story"],
                registry=registry,
            ),
            steps_completed=Gauge(
                "bobrapet_storyrun_steps_completed",
                "Number of completed steps in StoryRuns",
                ["namespace", "story"],
                registry=registry,
            ),
            window_gauge=Gauge(
                "bobrapet_storyrun_window_seconds",
                "Configured child TTL and retention windows applied to StoryRuns",
                ["namespace", "story", "window"],
                registry=registry,
            ),
            queue_age_histogram=Histogram(
                "bobrapet_storyrun_queue_age_seconds",
                "Time StoryRuns spend queued due to scheduling or priority ordering.",
                ["namespace", "queue"],
                buckets=RUN_DURATION_BUCKETS,
                registry=registry,
            ),
            queue_depth_gauge=Gauge(
                "bobrapet_storyrun_queue_depth",
                "Number of steps queued by scheduling limits per queue.",
                ["namespace", "storyrun", "queue"],
                registry=registry,
            ),
            dependents_deleted_total=Counter(
                "bobrapet_storyrun_dependents_deleted_total",
                "Total number of StoryRun dependents deleted during cleanup, partitioned by "
                "resource type.",
                ["namespace", "storyrun", "resource"],
                registry=registry,
            ),
            rbac_operations_total=Counter(
                "bobrapet_storyrun_rbac_operations_total",
                "Number of StoryRun RBAC reconciliation operations by resource and controller "
                "result",
                ["resource", "operation"],
                registry=registry,
            ),
            child_stepruns_created_total=Counter(
                "bobrapet_child_stepruns_created_total",
                "Total number of child StepRuns created per StoryRun/Engram.",
                ["namespace", "storyrun", "engram"],
                registry=registry,
            ),
            dag_iteration_histogram=Histogram(
                "bobrapet_dag_iteration_steps",
                "Ready/skipped step counts per DAG iteration",
                ["controller", "type"],
                buckets=DAG_ITERATION_BUCKETS,
                registry=registry,
            ),
            substory_refresh_total=Counter(
                "bobrapet_substory_refresh_total",
                "Total number of DAG sub-story refreshes triggered by synchronous executeStory "
                "completions",
                ["controller"],
                registry=registry,
            ),
            service_account_fallback_total=Counter(
                "bobrapet_resolver_service_account_fallback_total",
                "Number of times the config resolver defaulted the StepRun ServiceAccount to "
                "the per-StoryRun runner",
                ["storyrun"],
                registry=registry,
            ),
        )

    def run_finished(self, namespace: str, story: str, phase: str, duration_seconds: float) -> None:
        """Once per run, when it first gets `finishedAt` in phase Succeeded or Failed.

        The reference records only if `startedAt` was set; other terminal phases (Timeout,
        Aborted, Canceled, ...) are not counted, so they are ignored here. A non-positive
        duration counts the run without observing the histogram.
        """
        if not self.enabled or phase not in FINISHED_PHASES:
            return
        self.storyruns_total.labels(namespace, story, phase).inc()
        if duration_seconds > 0:
            self.storyrun_duration.labels(namespace, story, phase).observe(duration_seconds)

    def steps_gauges(self, namespace: str, story: str, active: int, completed: int) -> None:
        """Each status summary: active = Running or Paused steps, completed = Succeeded.

        Always recorded (not gated by `enabled`); skipped when the run has no story name.
        The series is per Story, so concurrent runs of one Story overwrite each other.
        """
        if not story:
            return
        self.steps_active.labels(namespace, story).set(active)
        self.steps_completed.labels(namespace, story).set(completed)

    def window_seconds(self, namespace: str, story: str, window: str, seconds: float) -> None:
        """A configured cleanup window (`WINDOW_CHILD_TTL` / `WINDOW_RETENTION`); negative -> 0."""
        if not self.enabled:
            return
        self.window_gauge.labels(namespace, story, window).set(max(seconds, 0.0))

    def retention_windows(
        self, namespace: str, story: str, child_ttl_seconds: float, retention_seconds: float
    ) -> None:
        """Every reconcile of a finished run: both windows, as the reference records them."""
        self.window_seconds(namespace, story, WINDOW_CHILD_TTL, child_ttl_seconds)
        self.window_seconds(namespace, story, WINDOW_RETENTION, retention_seconds)

    def queue_age(self, namespace: str, queue: str, age_seconds: float) -> None:
        """When a queued run is held back by a higher-priority run; age = now - queued-since."""
        if not self.enabled:
            return
        labels = (_or(namespace, UNKNOWN_LABEL), _or(queue, UNKNOWN_LABEL))
        self.queue_age_histogram.labels(*labels).observe(max(age_seconds, 0.0))

    def queue_depth(self, namespace: str, storyrun: str, queue: str, depth: int) -> None:
        """Each DAG pass of a run whose Story resolves: steps held by concurrency/scheduling.

        Per-run series (cardinality): dropped by `forget_run`.
        """
        if not self.enabled:
            return
        labels = (
            _or(namespace, UNKNOWN_LABEL),
            _or(storyrun, UNKNOWN_LABEL),
            _or(queue, UNKNOWN_LABEL),
        )
        self.queue_depth_gauge.labels(*labels).set(max(depth, 0))

    def dependents_deleted(self, namespace: str, storyrun: str, resource: str, count: int) -> None:
        """After a cleanup pass, per resource (`DEPENDENT_STEPRUN` / `DEPENDENT_STORYRUN`).

        A count <= 0 is a no-op. Per-run series (cardinality): dropped by `forget_run`.
        """
        if not self.enabled or count <= 0:
            return
        labels = (
            _or(namespace, UNKNOWN_LABEL),
            _or(storyrun, UNKNOWN_LABEL),
            _or(resource, UNKNOWN_RESOURCE),
        )
        self.dependents_deleted_total.labels(*labels).inc(count)

    def rbac_operation(self, resource: str, operation: str) -> None:
        """Each runner RBAC ensure: resource ServiceAccount / Role / RoleBinding, operation
        controller-runtime's result (`created`, `updated`, ...; empty -> `unchanged`)."""
        if not self.enabled:
            return
        self.rbac_operations_total.labels(resource, _or(operation, RBAC_UNCHANGED)).inc()

    def child_steprun_created(self, namespace: str, storyrun: str, engram: str) -> None:
        """After a child StepRun is created (not when an existing one is patched instead).

        `engram` is the step's engram ref name. Per-run series (cardinality): see `forget_run`.
        """
        if not self.enabled:
            return
        labels = (
            _or(namespace, UNKNOWN_LABEL),
            _or(storyrun, UNKNOWN_LABEL),
            _or(engram, UNKNOWN_LABEL),
        )
        self.child_stepruns_created_total.labels(*labels).inc()

    def dag_iteration(self, ready: int, skipped: int, controller: str = DAG_CONTROLLER) -> None:
        """Each DAG pass: how many steps became ready / skipped. Nothing when both are 0; a
        negative count is left out."""
        if not self.enabled or (ready == 0 and skipped == 0):
            return
        if ready >= 0:
            self.dag_iteration_histogram.labels(controller, "ready").observe(ready)
        if skipped >= 0:
            self.dag_iteration_histogram.labels(controller, "skipped").observe(skipped)

    def substory_refresh(self, controller: str = DAG_CONTROLLER) -> None:
        """When a synchronous executeStory sub-run's completion changed step states."""
        if not self.enabled:
            return
        self.substory_refresh_total.labels(controller).inc()

    def service_account_fallback(self, storyrun: str) -> None:
        """When a StepRun's ServiceAccount defaults to the run's runner ServiceAccount.

        Per-run series (cardinality): see `forget_run`.
        """
        if not self.enabled:
            return
        self.service_account_fallback_total.labels(_or(storyrun, UNKNOWN_LABEL)).inc()

    def forget_run(self, namespace: str, storyrun: str) -> None:
        """Drop every series labelled with this run; call once the StoryRun is gone.

        Call it at least one scrape interval after the run's last cleanup, or its final
        `dependents_deleted` increments are never scraped. The fallback family has no
        namespace label, so a same-named run in another namespace loses its series too.
        Not gated by `enabled`: forgetting must work after metrics were switched off.
        """
        run = {"namespace": _or(namespace, UNKNOWN_LABEL), "storyrun": _or(storyrun, UNKNOWN_LABEL)}
        self.queue_depth_gauge.remove_by_labels(run)
        self.dependents_deleted_total.remove_by_labels(run)
        self.child_stepruns_created_total.remove_by_labels(run)
        self.service_account_fallback_total.remove_by_labels({"storyrun": run["storyrun"]})
