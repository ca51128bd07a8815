"""The queue-priority index: the runs that may outrank a run are found by a few index values
instead of a scan of every run of the queue (a scan made every StoryRun pass O(runs) and the
whole burst O(runs^2): 17 % of the controller's CPU with 1,000 runs, docs/performance.md)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import msgspec

from runs_controller.api.runs.storyrun import StoryRun, StoryRunStatus
from runs_controller.engine import keys
from runs_controller.engine.operator_config import QueueConfig
from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import ClusterConfig
from runs_controller.kube.resources import STORY_RUNS
from runs_controller.reconcilers.indexes import (
    QUEUE_PRIORITY_INDEX,
    queue_priority_value,
    storyrun_queue_priority,
)
from runs_controller.reconcilers.storyrun.reconciler import StoryRunReconciler
from runs_controller.runtime.cache import CacheReader
from runs_controller.runtime.informer import Informer, InformerOptions


def _run(namespace: str, name: str, labels: dict[str, str] | None) -> StoryRun:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"storyRef": {"name": "s"}},
    }
    return msgspec.convert(body, StoryRun)


def _queued(namespace: str, name: str, queue: str, priority: str | None = None) -> StoryRun:
    labels = {keys.LABEL_QUEUE: queue}
    if priority is not None:
        labels[keys.LABEL_QUEUE_PRIORITY] = priority
    return _run(namespace, name, labels)


def test_a_run_is_indexed_by_its_queue_and_priority() -> None:
    assert list(storyrun_queue_priority(_queued("n", "a", "default", "7"))) == ["default/7"]
    # Missing or unreadable priority is 0, as the queue logic reads it.
    assert list(storyrun_queue_priority(_queued("n", "b", "default"))) == ["default/0"]
    assert list(storyrun_queue_priority(_queued("n", "c", "default", "x"))) == ["default/0"]
    assert list(storyrun_queue_priority(_queued("n", "d", "q", "-3"))) == ["q/-3"]
    # No queue label: in no queue (as a label selector on the queue would find it nowhere).
    assert list(storyrun_queue_priority(_run("n", "e", None))) == []
    assert queue_priority_value("default", 7) == "default/7"


def test_index_values_span_every_watched_namespace() -> None:
    client = KubeClient(ClusterConfig(host="https://127.0.0.1:1", ssl_context=None))
    informers: dict[str | None, Informer[StoryRun]] = {}
    for namespace in ("a", "b"):
        informer = Informer(client, STORY_RUNS, StoryRun, options=InformerOptions(namespace))
        informer.store.add_indexer(QUEUE_PRIORITY_INDEX, storyrun_queue_priority)
        informers[namespace] = informer
    informers["a"].store.upsert(_queued("a", "r1", "default", "5"))
    informers["a"].store.upsert(_queued("a", "r2", "default"))
    informers["b"].store.upsert(_queued("b", "r3", "default", "5"))
    informers["b"].store.upsert(_queued("b", "r4", "other", "9"))
    reader = CacheReader(STORY_RUNS, informers)
    assert reader.index_values(QUEUE_PRIORITY_INDEX) == ["default/0", "default/5", "other/9"]
    found = reader.by_index(QUEUE_PRIORITY_INDEX, "default/5")
    assert sorted(r.metadata.name or "" for r in found if r.metadata) == ["r1", "r3"]


class NoScan(CacheReader[StoryRun]):
    """A reader that refuses to list: the priority check must not scan the queue."""

    def list(self, *args: Any, **kwargs: Any) -> list[StoryRun]:
        raise AssertionError("the queue was scanned")


@dataclass
class Slots:
    waiting: set[str] = field(default_factory=set)

    def waiting_runs(self) -> set[str]:
        return self.waiting


def _running(run: StoryRun) -> StoryRun:
    return msgspec.structs.replace(run, status=StoryRunStatus(phase="Running"))


def _outranked(runs: list[StoryRun], own: StoryRun, aging: int, waiting: set[str]) -> bool:
    client = KubeClient(ClusterConfig(host="https://127.0.0.1:1", ssl_context=None))
    informer = Informer(client, STORY_RUNS, StoryRun, options=InformerOptions("n"))
    informer.store.add_indexer(QUEUE_PRIORITY_INDEX, storyrun_queue_priority)
    for run in runs:
        informer.store.upsert(run)
    fake = SimpleNamespace(runs=NoScan(STORY_RUNS, {"n": informer}), slots=Slots(waiting))
    now = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    queue = QueueConfig(priority_aging_seconds=aging)
    return bool(StoryRunReconciler._outranked(fake, own, "default", queue, now))  # type: ignore[arg-type]


def test_only_higher_priority_runs_with_demand_of_the_same_queue_outrank() -> None:
    own = _running(_queued("n", "me", "default", "5"))
    low = [_running(_queued("n", f"low{i}", "default", str(i))) for i in range(5)]
    other_queue = _running(_queued("n", "elsewhere", "other", "9"))
    assert not _outranked([own, *low, other_queue], own, 0, set())
    high = _running(_queued("n", "high", "default", "6"))
    assert _outranked([own, *low, high], own, 0, set())
    finished = msgspec.structs.replace(high, status=StoryRunStatus(phase="Succeeded"))
    assert not _outranked([own, finished], own, 0, set())
