"""The reference operator's StepRun domain metrics (`bobrapet_*`), same names, labels, buckets.

Decision 18 keeps these names so existing dashboards and alerts keep working. Each method says
when the reference records its family; the reconciler decides when to call it. An empty engram
label becomes `(unknown)`, the reference's placeholder.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

UNKNOWN_LABEL = "(unknown)"

# The reference counts a StepRun when it first gets `finishedAt` in any terminal phase.
TERMINAL_PHASES = frozenset(
    {"Succeeded", "Failed", "Finished", "Canceled", "Compensated", "Timeout", "Aborted", "Skipped"}
)

STEP_DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0)


def _engram(engram: str) -> str:
    return engram if engram else UNKNOWN_LABEL


@dataclass
class StepRunMetrics:
    """StepRun families bound to one registry; `enabled` mirrors `debug.enable-metrics`.

    As in the reference, disabling stops the run counter and histogram but not the retry
    counter, which the reference increments without consulting the switch.
    """

    stepruns_total: Counter
    steprun_duration: Histogram
    retries_total: Counter
    enabled: bool = True

    @classmethod
    def create(cls, registry: CollectorRegistry) -> StepRunMetrics:
        return cls(
            stepruns_total=Counter(
                "bobrapet_stepruns_total",
                "Total number of StepRuns processed",
                ["namespace", "engram", "phase"],
                registry=registry,
            ),
            steprun_duration=Histogram(
                "bobrapet_steprun_duration_seconds",
                "Duration of StepRun execution",
                ["namespace", "engram", "phase"],
                buckets=STEP_DURATION_BUCKETS,
                registry=registry,
            ),
            retries_total=Counter(
                "bobrapet_steprun_retries_total",
                "Total number of StepRun retries",
                ["namespace", "engram", "reason"],
                registry=registry,
            ),
        )

    def steprun_finished(
        self, namespace: str, engram: str, phase: str, duration_seconds: float
    ) -> None:
        """Once per StepRun, when it first gets `finishedAt` in a terminal phase.

        The reference records only if `startedAt` was set (the caller's check) and only for
        terminal phases; others are ignored here. A non-positive duration counts the StepRun
        without observing the histogram.
        """
        if not self.enabled or phase not in TERMINAL_PHASES:
            return
        labels = (namespace, _engram(engram), phase)
        self.stepruns_total.labels(*labels).inc()
        if duration_seconds > 0:
            self.steprun_duration.labels(*labels).observe(duration_seconds)

    def retry_scheduled(self, namespace: str, engram: str, reason: str) -> None:
        """After a retry is scheduled and the failed Job deleted; reason = the exit class.

        Not gated by `enabled`, as in the reference.
        """
        self.retries_total.labels(namespace, _engram(engram), reason).inc()
