"""Would an apply change the object? The decision behind skipped status writes."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from runs_controller.api.codec import MicroTime
from runs_controller.api.meta import Condition
from runs_controller.runtime.ssa import apply_changes, normalize, owned_fields

T0 = datetime.datetime(2026, 12, 1, 10, 0, 0, tzinfo=datetime.UTC)
READY: dict[str, Any] = {
    'k:{"type":"Ready"}': {".": {}, "f:type": {}, "f:status": {}, "f:reason": {}}
}


def owned_status(**fields: Any) -> dict[str, Any]:
    return {"f:status": {".": {}, **fields}}


@pytest.mark.parametrize(
    ("desired", "observed", "owned", "changes"),
    [
        # Same values, and we own exactly what we send: no-op.
        ({"phase": "Running"}, {"phase": "Running"}, {"f:phase": {}}, False),
        # A value differs.
        ({"phase": "Succeeded"}, {"phase": "Running"}, {"f:phase": {}}, True),
        # A field we never set: the apply adds it.
        ({"phase": "Running", "message": "m"}, {"phase": "Running"}, {"f:phase": {}}, True),
        # Fields others wrote (the SDK's output) do not matter.
        (
            {"phase": "Running"},
            {"phase": "Running", "output": {"x": 1}},
            {"f:phase": {}},
            False,
        ),
        # We owned `message` and leave it out now: the apply would remove it.
        (
            {"phase": "Running"},
            {"phase": "Running", "message": "m"},
            {"f:phase": {}, "f:message": {}},
            True,
        ),
        # Numbers compare by value; bools are not numbers.
        ({"count": 1}, {"count": 1.0}, {"f:count": {}}, False),
        ({"flag": True}, {"flag": 1}, {"f:flag": {}}, True),
        # A map we own field by field: extra keys of others are fine, ours must all be there.
        ({"gates": {"a": "ok"}}, {"gates": {"a": "ok", "b": "x"}}, {"f:gates": {"f:a": {}}}, False),
        (
            {"gates": {"a": "ok"}},
            {"gates": {"a": "ok", "b": "x"}},
            {"f:gates": {"f:a": {}, "f:b": {}}},
            True,
        ),
        # An atomic list (owned whole): only an identical list is a no-op.
        ({"active": ["a", "b"]}, {"active": ["a", "b"]}, {"f:active": {}}, False),
        ({"active": ["a"]}, {"active": ["a", "b"]}, {"f:active": {}}, True),
    ],
)
def test_apply_changes(
    desired: dict[str, Any], observed: dict[str, Any], owned: dict[str, Any], changes: bool
) -> None:
    assert (
        apply_changes({"status": desired}, {"status": observed}, owned_status(**owned)) is changes
    )


def test_list_map_elements_are_matched_by_key() -> None:
    desired = {"conditions": [{"type": "Ready", "status": "True", "reason": "Done"}]}
    observed = {
        "conditions": [
            {"type": "Other", "status": "False", "reason": "TheirOwn"},  # another manager's
            {"type": "Ready", "status": "True", "reason": "Done", "message": "sdk"},
        ]
    }
    owned = owned_status(**{"f:conditions": READY})
    assert not apply_changes({"status": desired}, {"status": observed}, owned)
    changed = {"conditions": [{"type": "Ready", "status": "False", "reason": "Done"}]}
    assert apply_changes({"status": changed}, {"status": observed}, owned)
    # A condition we owned and no longer send would be removed.
    two = owned_status(
        **{"f:conditions": {**READY, 'k:{"type":"Degraded"}': {"f:type": {}, "f:status": {}}}}
    )
    assert apply_changes({"status": desired}, {"status": observed}, two)
    # A new condition type is a change.
    more = {"conditions": [*desired["conditions"], {"type": "Degraded", "status": "False"}]}
    assert apply_changes({"status": more}, {"status": observed}, owned)


def test_without_ownership_only_identical_values_are_a_no_op() -> None:
    same = {"status": {"phase": "Running"}}
    assert not apply_changes(same, {"status": {"phase": "Running"}}, None)
    assert apply_changes(same, {"status": {"phase": "Running", "x": 1}}, None)
    assert apply_changes(same, {"status": {}}, {"f:metadata": {}})


def test_normalize_writes_times_as_the_apiserver_stores_them() -> None:
    condition = Condition(
        type="Ready",
        status="True",
        last_transition_time=T0 + datetime.timedelta(microseconds=123456),
        reason="Done",
        message="",
    )
    micro = MicroTime.from_datetime(T0 + datetime.timedelta(microseconds=5))
    assert normalize({"c": condition, "renew": micro}) == {
        "c": {
            "type": "Ready",
            "status": "True",
            "lastTransitionTime": "2026-12-01T10:00:00Z",
            "reason": "Done",
            "message": "",
        },
        "renew": "2026-12-01T10:00:00.000005Z",
    }


def test_owned_fields_picks_our_apply_on_the_subresource() -> None:
    entries = [
        {"manager": "sdk", "operation": "Update", "subresource": "status", "fieldsV1": {"a": 1}},
        {"manager": "runs-controller", "operation": "Apply", "fieldsV1": {"f:spec": {}}},
        {
            "manager": "runs-controller",
            "operation": "Apply",
            "subresource": "status",
            "fieldsV1": {"f:status": {}},
        },
    ]
    assert owned_fields(entries, "runs-controller", "status") == {"f:status": {}}
    assert owned_fields(entries, "runs-controller", "") == {"f:spec": {}}
    assert owned_fields(entries, "other", "status") is None
