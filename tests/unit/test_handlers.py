from __future__ import annotations

from runs_controller.api.meta import ObjectMeta, OwnerReference
from runs_controller.api.refs import StoryRunReference
from runs_controller.api.runs.steprun import StepRun, StepRunSpec
from runs_controller.runtime.handlers import mapped, own_key, owner_key, request_for
from runs_controller.runtime.informer import Event
from runs_controller.runtime.reconciler import Request


def _step(name: str, owners: list[OwnerReference], labels: dict[str, str] | None = None) -> StepRun:
    return StepRun(
        metadata=ObjectMeta(name=name, namespace="ns", owner_references=owners, labels=labels),
        spec=StepRunSpec(story_run_ref=StoryRunReference(name="r"), step_id="s"),
    )


def _owner(
    name: str,
    kind: str = "StoryRun",
    controller: bool = True,
    api_version: str = "runs.bubustack.io/v1alpha1",
) -> OwnerReference:
    return OwnerReference(
        api_version=api_version, kind=kind, name=name, uid=f"u-{name}", controller=controller
    )


def test_own_key() -> None:
    keys: list[Request] = []
    own_key(keys.append)(Event("added", _step("a", [])))
    assert keys == [Request("ns", "a")]


def test_owner_key_follows_controller_owners_of_the_kind_old_and_new() -> None:
    keys: list[Request] = []
    handle = owner_key(keys.append, kind="StoryRun", api_group="runs.bubustack.io")
    new = _step(
        "a",
        [
            _owner("run-2"),
            _owner("x", kind="Job"),
            _owner("y", controller=False),
            _owner("z", api_version="other.io/v1"),
        ],
    )
    old = _step("a", [_owner("run-1")])
    handle(Event("updated", new, old))
    assert keys == [Request("ns", "run-1"), Request("ns", "run-2")]
    keys.clear()
    everyone = owner_key(
        keys.append, kind="StoryRun", api_group="runs.bubustack.io", controller_only=False
    )
    everyone(Event("added", new))
    assert keys == [Request("ns", "run-2"), Request("ns", "y")]


def test_mapped_uses_the_function_on_old_and_new() -> None:
    keys: list[Request] = []
    handle = mapped(keys.append, lambda o: [Request("ns", o.metadata.labels["run"])])
    handle(Event("updated", _step("a", [], {"run": "b"}), _step("a", [], {"run": "a"})))
    assert keys == [Request("ns", "a"), Request("ns", "b")]


def test_predicates_drop_events_before_mapping() -> None:
    keys: list[Request] = []
    status_only = Event("updated", _step("a", [_owner("run")]), _step("a", [_owner("run")]))
    ignore_updates = own_key(keys.append, predicate=lambda event: event.type != "updated")
    ignore_updates(status_only)
    ignore_updates(Event("added", _step("b", [])))
    owner_key(
        keys.append,
        kind="StoryRun",
        api_group="runs.bubustack.io",
        predicate=lambda event: event.type == "deleted",
    )(status_only)
    assert keys == [Request("ns", "b")]


def test_requests_and_keys() -> None:
    assert request_for(_step("a", [])) == Request("ns", "a")
    assert Request("ns", "a").key == "ns/a"
    assert Request("", "cluster-wide").key == "cluster-wide"
    assert Request.from_key("ns/a") == Request("ns", "a")
    assert Request.from_key("cluster-wide") == Request("", "cluster-wide")
    assert sorted([Request("b", "a"), Request("a", "z")]) == [Request("a", "z"), Request("b", "a")]
