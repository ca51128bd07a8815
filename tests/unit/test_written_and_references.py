"""Read-your-writes memo, the cross-namespace policy and the StepRun event predicates."""

from __future__ import annotations

from typing import Any

from runs_controller.api import codec
from runs_controller.api.runs.steprun import StepRun
from runs_controller.engine.references import cross_namespace_refusal
from runs_controller.reconcilers.steprun.predicates import (
    job_changed,
    spec_changed,
    steprun_changed,
)
from runs_controller.runtime.informer import Event
from runs_controller.runtime.written import WrittenObjects, newer


def steprun(rv: str, uid: str = "u", **status: Any) -> StepRun:
    body: dict[str, Any] = {
        "metadata": {
            "name": "s",
            "namespace": "ns",
            "uid": uid,
            "resourceVersion": rv,
            "generation": 1,
        },
        "spec": {"storyRunRef": {"name": "r"}, "stepId": "s"},
    }
    if status:
        body["status"] = status
    return codec.convert(body, StepRun)


def test_a_write_newer_than_the_cache_wins_until_the_cache_catches_up() -> None:
    memo: WrittenObjects[StepRun] = WrittenObjects()
    cached = steprun("10")
    written = memo.remember(steprun("12", phase="Running"))
    assert memo.freshest(cached) is written
    caught_up = steprun("12", phase="Running")
    assert memo.freshest(caught_up) is caught_up
    assert len(memo) == 0
    memo.remember(steprun("20"))
    assert memo.freshest(steprun("5", uid="other")).metadata.uid == "other"  # type: ignore[union-attr]
    assert not newer(steprun("x"), steprun("1"))


def test_cross_namespace_references_follow_the_policy() -> None:
    assert cross_namespace_refusal("deny", "a", "a", "Engram") is None
    assert cross_namespace_refusal("deny", "a", "", "Engram") is None
    assert cross_namespace_refusal("allow", "a", "b", "Engram") is None
    assert cross_namespace_refusal("deny", "a", "b", "Engram") == (
        "cross-namespace reference from a to Engram in b is denied by policy"
    )
    grant = cross_namespace_refusal("grant", "a", "b", "StoryRun")
    assert grant is not None and "ReferenceGrant" in grant


def _update(old: Any, new: Any) -> Event[Any]:
    return Event("updated", new, old)


def test_a_steprun_wakes_for_phase_changes_not_for_other_status_writes() -> None:
    running = steprun("1", phase="Running")
    assert steprun_changed(Event("added", running))
    assert steprun_changed(_update(running, steprun("2", phase="Succeeded")))
    assert not steprun_changed(_update(running, steprun("2", phase="Running", retries=0)))


def test_a_job_wakes_its_steprun_for_status_changes_and_templates_only_for_spec() -> None:
    from runs_controller.api.k8s import Job

    def job(rv: str, **status: Any) -> Job:
        body = {
            "metadata": {"name": "j", "resourceVersion": rv, "generation": 1},
            "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}},
            "status": status,
        }
        return codec.convert(body, Job)

    assert job_changed(_update(job("1"), job("2", failed=1)))
    assert not job_changed(_update(job("1", active=1), job("2", active=1)))
    assert not spec_changed(_update(steprun("1"), steprun("2", phase="Running")))
