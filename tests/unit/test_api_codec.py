from __future__ import annotations

import datetime
import json
import sys
from typing import Any

import msgspec
import pytest

from runs_controller.api.codec import (
    APISERVER_MAX_DEPTH,
    MicroTime,
    convert,
    decode,
    decoder,
    deep_recursion,
    encode,
    to_builtins,
)
from runs_controller.api.k8s import Event, Job, Lease, Pod
from runs_controller.api.meta import Condition, ObjectMeta, Status, TypedList
from runs_controller.api.runs.effectclaim import EffectClaim

_DEFAULT_LIMIT = sys.getrecursionlimit()


def _roundtrip(raw: dict[str, Any], target: type[Any]) -> dict[str, Any]:
    decoded = decode(json.dumps(raw).encode(), target)
    result: dict[str, Any] = json.loads(encode(decoded))
    return result


def test_microtime_keeps_six_fractional_digits_even_when_zero() -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "l", "namespace": "ns"},
        "spec": {
            "holderIdentity": "me",
            "leaseDurationSeconds": 15,
            "acquireTime": "2026-11-28T14:00:00.000000Z",
            "renewTime": "2026-11-28T14:00:05.120300Z",
            "leaseTransitions": 2,
        },
    }
    assert _roundtrip(lease, Lease) == lease
    decoded = decode(json.dumps(lease).encode(), Lease)
    assert decoded.spec is not None and isinstance(decoded.spec.renew_time, MicroTime)
    assert decoded.spec.renew_time.microsecond == 120300


def test_microtime_from_a_non_utc_offset_is_written_in_utc() -> None:
    offset = datetime.timezone(datetime.timedelta(hours=2))
    value = MicroTime(2026, 1, 1, 2, 0, 0, 5, tzinfo=offset)
    assert encode(value) == b'"2026-01-01T00:00:00.000005Z"'


def test_time_round_trips_in_whole_seconds() -> None:
    condition = {
        "type": "Ready",
        "status": "True",
        "lastTransitionTime": "2026-11-28T14:00:00Z",
        "reason": "Completed",
        "message": "",
        "observedGeneration": 3,
    }
    assert _roundtrip(condition, Condition) == condition


def test_unknown_fields_are_tolerated_and_defaults_omitted() -> None:
    meta = decode(b'{"name":"x","futureField":{"a":1},"labels":{"k":"v"}}', ObjectMeta)
    assert meta.name == "x"
    assert encode(meta) == b'{"name":"x","labels":{"k":"v"}}'


def test_preserved_payloads_keep_every_unknown_field() -> None:
    claim = {
        "apiVersion": "runs.bubustack.io/v1alpha1",
        "kind": "EffectClaim",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {
            "stepRunRef": {"name": "step", "uid": "u-1"},
            "effectKey": "deliver",
            "details": {"http": {"status": 200, "headers": {"x": ["a", "b"]}}, "ratio": 0.5},
        },
    }
    assert _roundtrip(claim, EffectClaim) == claim


def test_error_status_decodes_with_causes() -> None:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": "bad",
        "reason": "Invalid",
        "details": {
            "name": "x",
            "kind": "StoryRun",
            "causes": [{"reason": "FieldValueRequired", "message": "Required", "field": "spec"}],
        },
        "code": 422,
    }
    status = decode(json.dumps(body).encode(), Status)
    assert status.details is not None and status.details.causes is not None
    assert status.details.causes[0].field == "spec"
    assert json.loads(encode(status)) == body


def test_typed_list_decodes_items() -> None:
    body = {
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": "42", "continue": "tok"},
        "items": [{"metadata": {"name": "p"}, "status": {"phase": "Running"}}],
    }
    pods = decode(json.dumps(body).encode(), TypedList[Pod])
    assert pods.metadata.continue_ == "tok"
    assert pods.items[0].status is not None and pods.items[0].status.phase == "Running"


def test_job_round_trip_keeps_pass_through_pod_fields() -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "ns", "labels": {"a": "b"}},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "engram",
                            "image": "example/engram:1",
                            "env": [{"name": "A", "value": "1"}],
                            "resources": {"limits": {"cpu": "1"}},
                            "livenessProbe": {"httpGet": {"path": "/", "port": 8080}},
                        }
                    ],
                    "tolerations": [{"key": "k", "operator": "Exists"}],
                    "affinity": {"nodeAffinity": {"x": {"y": 1}}},
                },
            },
        },
        "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]},
    }
    assert _roundtrip(job, Job) == job


def test_event_requires_event_time() -> None:
    with pytest.raises(msgspec.ValidationError, match="eventTime"):
        decode(b'{"metadata":{"name":"e"}}', Event)


def test_convert_and_to_builtins_agree_with_encode() -> None:
    raw = {
        "type": "Ready",
        "status": "False",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "reason": "Pending",
        "message": "waiting",
    }
    condition = convert(raw, Condition)
    assert to_builtins(condition) == raw == json.loads(encode(condition))


def _nested_json(depth: int) -> bytes:
    return b'{"n":' * depth + b'"leaf"' + b"}" * depth


def test_a_list_page_with_an_object_as_deep_as_the_apiserver_stores_decodes() -> None:
    """msgspec counts every level against Python's recursion limit, even when only skipping a
    value as Raw; without the fallback this page raised RecursionError."""
    deep = b'{"metadata":{"name":"deep"},"spec":' + _nested_json(APISERVER_MAX_DEPTH - 3) + b"}"
    page = b'{"metadata":{"resourceVersion":"7"},"items":[' + deep + b',{"a":1}]}'
    decoded = decode(page, TypedList[msgspec.Raw])
    assert [bytes(item) for item in decoded.items] == [deep, b'{"a":1}']
    assert encode(decode(deep, dict[str, Any])) == deep
    assert sys.getrecursionlimit() == _DEFAULT_LIMIT


def test_a_watch_block_with_a_deep_event_decodes_line_by_line() -> None:
    line = b'{"type":"ADDED","object":' + _nested_json(APISERVER_MAX_DEPTH) + b"}"
    events = decoder(dict[str, Any]).decode_lines(line + b"\n" + b'{"type":"DELETED"}\n')
    assert [event["type"] for event in events] == ["ADDED", "DELETED"]
    assert sys.getrecursionlimit() == _DEFAULT_LIMIT


def test_deeper_than_the_apiserver_stores_is_still_refused_and_the_limit_restored() -> None:
    """The raised limit is bounded: a document no apiserver returns is a RecursionError, not a
    stack overflow."""
    too_deep = _nested_json(3 * APISERVER_MAX_DEPTH)
    with pytest.raises(RecursionError):
        decode(too_deep, Any)
    assert sys.getrecursionlimit() == _DEFAULT_LIMIT
    with deep_recursion():
        assert sys.getrecursionlimit() > APISERVER_MAX_DEPTH
    assert sys.getrecursionlimit() == _DEFAULT_LIMIT


def test_managed_fields_as_deep_as_the_object_they_describe_are_read() -> None:
    """The creator's fieldsV1 mirrors a deep spec (`f:n` per level); the status writer reads
    the entries to find its own."""
    fields = _nested_json(APISERVER_MAX_DEPTH - 5).replace(b'"n"', b'"f:n"')
    raw = b'{"name":"x","managedFields":[{"manager":"kubectl","fieldsV1":' + fields + b"}]}"
    meta = decode(raw, ObjectMeta)
    assert [entry["manager"] for entry in meta.managed_field_entries()] == ["kubectl"]
