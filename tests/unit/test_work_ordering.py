"""The StoryRun and StepRun queues' order: the oldest (root) run's work first, with a total,
stable rank, so a burst of runs finishes about in the order it came instead of in lockstep."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec

from runs_controller.api.runs.steprun import StepRun
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import ClusterConfig
from runs_controller.kube.resources import STEP_RUNS, STORY_RUNS
from runs_controller.reconcilers.ordering import FIRST, steprun_rank, storyrun_rank
from runs_controller.runtime.cache import CacheReader
from runs_controller.runtime.informer import Informer, InformerOptions
from runs_controller.runtime.reconciler import Request

T0 = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.UTC)


def _at(seconds: int) -> str:
    return (T0 + datetime.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _run(name: str, created: int, parent: str | None = None) -> StoryRun:
    meta: dict[str, Any] = {"name": name, "namespace": "n", "creationTimestamp": _at(created)}
    if parent is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": "runs.bubustack.io/v1alpha1",
                "kind": "StoryRun",
                "name": parent,
                "uid": f"uid-{parent}",
                "controller": True,
            }
        ]
    return msgspec.convert({"metadata": meta, "spec": {"storyRef": {"name": "s"}}}, StoryRun)


def _step(name: str, run: str, created: int) -> StepRun:
    body = {
        "metadata": {"name": name, "namespace": "n", "creationTimestamp": _at(created)},
        "spec": {"storyRunRef": {"name": run}, "stepId": name},
    }
    return msgspec.convert(body, StepRun)


def _reader(resource: Any, type_: Any, objects: list[Any]) -> CacheReader[Any]:
    client = KubeClient(ClusterConfig(host="https://127.0.0.1:1", ssl_context=None))
    informer = Informer(client, resource, type_, options=InformerOptions("n"))
    for obj in objects:
        informer.store.upsert(obj)
    return CacheReader(resource, {"n": informer})


RUNS = [
    _run("b-old", 100),
    _run("new", 200),
    _run("a-same", 150),
    _run("z-same", 150),
    _run("child", 300, parent="b-old"),
    _run("grandchild", 400, parent="child"),
    _run("loop-1", 50, parent="loop-2"),
    _run("loop-2", 60, parent="loop-1"),
]


def _order(rank: Any, names: list[str]) -> list[str]:
    return sorted(names, key=lambda name: rank(Request("n", name)))


def test_runs_are_ranked_oldest_first_and_by_name_within_a_second() -> None:
    rank = storyrun_rank(_reader(STORY_RUNS, StoryRun, RUNS))
    assert _order(rank, ["new", "z-same", "b-old", "a-same"]) == [
        "b-old",
        "a-same",
        "z-same",
        "new",
    ]


def test_a_sub_run_ranks_as_its_root_run_and_cycles_end() -> None:
    rank = storyrun_rank(_reader(STORY_RUNS, StoryRun, RUNS))
    assert rank(Request("n", "child")) == rank(Request("n", "b-old"))
    assert rank(Request("n", "grandchild")) == rank(Request("n", "b-old"))
    assert rank(Request("n", "grandchild")) < rank(Request("n", "a-same"))
    # An ownership cycle (never made by the controller) still gets a rank.
    assert rank(Request("n", "loop-1"))[1:] in {("n", "loop-1"), ("n", "loop-2")}


def test_a_run_that_is_not_cached_ranks_first() -> None:
    rank = storyrun_rank(_reader(STORY_RUNS, StoryRun, RUNS))
    assert rank(Request("n", "gone")) == FIRST
    assert rank(Request("n", "b-old")) > FIRST


def test_a_steprun_ranks_as_its_run_or_by_itself_when_the_run_is_not_cached() -> None:
    runs = _reader(STORY_RUNS, StoryRun, RUNS)
    steps = _reader(
        STEP_RUNS,
        StepRun,
        [_step("old-s4", "b-old", 900), _step("new-s0", "new", 210), _step("orphan", "x", 120)],
    )
    rank = steprun_rank(steps, runs)
    # The old run's fifth step goes before the new run's first one, though it is younger.
    assert _order(rank, ["new-s0", "old-s4", "orphan"]) == ["old-s4", "orphan", "new-s0"]
    assert rank(Request("n", "old-s4")) == storyrun_rank(runs)(Request("n", "b-old"))
    assert rank(Request("n", "gone")) == FIRST
