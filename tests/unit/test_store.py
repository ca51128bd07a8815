from __future__ import annotations

import pytest

from runs_controller.api.meta import ObjectMeta, OwnerReference
from runs_controller.api.refs import StoryRunReference
from runs_controller.api.runs.steprun import StepRun, StepRunSpec
from runs_controller.runtime.store import (
    NAMESPACE_INDEX,
    OWNER_UID_INDEX,
    VERIFY_ENV,
    CacheMutated,
    Store,
    index_by_label,
    index_by_owner_uid,
    key_of,
    object_key,
)


def _step(
    name: str, ns: str = "ns", rv: str = "1", run: str | None = "run-a", owner: str | None = None
) -> StepRun:
    labels = {"bubustack.io/storyrun": run} if run else None
    owners = (
        [OwnerReference(api_version="v", kind="StoryRun", name="o", uid=owner)] if owner else None
    )
    return StepRun(
        metadata=ObjectMeta(
            name=name, namespace=ns, resource_version=rv, labels=labels, owner_references=owners
        ),
        spec=StepRunSpec(story_run_ref=StoryRunReference(name=run or "x"), step_id="s"),
    )


def _store() -> Store[StepRun]:
    return Store(
        {"storyrun": index_by_label("bubustack.io/storyrun"), OWNER_UID_INDEX: index_by_owner_uid}
    )


def test_keys_are_namespace_slash_name() -> None:
    assert object_key("ns", "a") == "ns/a"
    assert object_key(None, "a") == "a"
    assert key_of(_step("a")) == "ns/a"
    with pytest.raises(ValueError, match=r"metadata\.name"):
        key_of(StepRun(spec=_step("a").spec))


def test_upsert_get_delete() -> None:
    store = _store()
    assert store.upsert(_step("a")) is None
    previous = store.upsert(_step("a", rv="2"))
    assert previous is not None and previous.metadata is not None
    assert previous.metadata.resource_version == "1"
    assert "ns/a" in store and len(store) == 1
    deleted = store.delete("ns/a")
    assert deleted is not None
    assert store.get("ns/a") is None and store.delete("ns/a") is None


def test_indexes_follow_updates_and_deletes() -> None:
    store = _store()
    store.upsert(_step("a", run="r1", owner="u1"))
    store.upsert(_step("b", run="r1", owner="u1"))
    store.upsert(_step("c", ns="other", run="r2"))
    assert [key_of(o) for o in store.by_index("storyrun", "r1")] == ["ns/a", "ns/b"]
    assert [key_of(o) for o in store.by_index(NAMESPACE_INDEX, "other")] == ["other/c"]
    assert [key_of(o) for o in store.by_index(OWNER_UID_INDEX, "u1")] == ["ns/a", "ns/b"]
    store.upsert(_step("a", run="r2", rv="2"))  # label changed, owner dropped
    assert [key_of(o) for o in store.by_index("storyrun", "r1")] == ["ns/b"]
    assert [key_of(o) for o in store.by_index("storyrun", "r2")] == ["ns/a", "other/c"]
    assert [key_of(o) for o in store.by_index(OWNER_UID_INDEX, "u1")] == ["ns/b"]
    store.delete("ns/b")
    assert store.by_index("storyrun", "r1") == []
    assert store.index_values("storyrun") == ["r2"]
    assert store.index_values(OWNER_UID_INDEX) == []
    with pytest.raises(KeyError):
        store.by_index("nope", "x")


def test_replace_reports_added_updated_deleted() -> None:
    store = _store()
    store.upsert(_step("keep"))
    store.upsert(_step("change", rv="1"))
    store.upsert(_step("gone"))
    changes = store.replace([_step("keep"), _step("change", rv="5"), _step("new")])
    assert [key_of(o) for o in changes.added] == ["ns/new"]
    assert [(key_of(old), key_of(new)) for old, new in changes.updated] == [
        ("ns/change", "ns/change")
    ]
    assert [key_of(o) for o in changes.deleted] == ["ns/gone"]
    assert sorted(store.keys()) == ["ns/change", "ns/keep", "ns/new"]
    assert store.by_index("storyrun", "run-a") == store.by_index(NAMESPACE_INDEX, "ns")


def test_cached_structs_are_frozen() -> None:
    step = _step("a")
    with pytest.raises(AttributeError):
        step.metadata = None  # type: ignore[misc]
    assert step.metadata is not None
    with pytest.raises(AttributeError):
        step.metadata.name = "b"  # type: ignore[misc]


def test_verify_mode_catches_in_place_edits_of_nested_values() -> None:
    store = Store[StepRun](verify=True)
    store.upsert(_step("a"))
    cached = store.get("ns/a")
    assert cached is not None and cached.metadata is not None and cached.metadata.labels
    cached.metadata.labels["bubustack.io/storyrun"] = "someone-else"  # a reconciler's bug
    with pytest.raises(CacheMutated, match="ns/a"):
        store.get("ns/a")
    with pytest.raises(CacheMutated):
        store.by_index(NAMESPACE_INDEX, "ns")
    with pytest.raises(CacheMutated):
        store.upsert(_step("a", rv="2"))


def test_verify_mode_accepts_honest_replacements_and_deletes() -> None:
    store = Store[StepRun](verify=True)
    store.upsert(_step("a"))
    store.upsert(_step("a", rv="2"))
    store.replace([_step("b")])
    assert store.keys() == ["ns/b"]
    assert store.delete("ns/b") is not None
    store.check_all()


def test_verify_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VERIFY_ENV, "1")
    assert Store[StepRun]().verify
    monkeypatch.setenv(VERIFY_ENV, "0")
    assert not Store[StepRun]().verify
