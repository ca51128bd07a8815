"""The batch pod's environment: exact names, values and order; Go JSON; context pruning."""

from __future__ import annotations

import datetime
import json
from typing import Any

from runs_controller.api import codec
from runs_controller.api.k8s import EnvVar
from runs_controller.api.runs.steprun import StepRun
from runs_controller.batch.environment import (
    TEMPLATE_CONTEXT_MAX_VALUE_BYTES,
    StepContext,
    engram_environment,
    format_rfc3339_nano,
    step_started_at,
    template_context_json,
)
from runs_controller.engine.hashing import canonical_json
from runs_controller.engine.operator_config import parse_operator_config
from tests.batch_objects import T0, Layers


def context(layers: Layers, **fields: Any) -> StepContext:
    values: dict[str, Any] = {
        "steprun": layers.steprun(),
        "story_name": "welcome",
        "story_version": " v2 ",
        "engram_name": "mailer",
        "engram_version": "1.0 ",
        "trigger_data": {"to": "a@b.c", "n": 3},
        "step_config": {"to": "a@b.c", "n": 3},
        "template_context": {"inputs": {"user": "ann"}, "steps": {}},
        "started_at": T0,
    }
    values.update(fields)
    return StepContext(**values)


def as_pairs(env: list[EnvVar]) -> list[tuple[str, Any]]:
    return [(var.name, var.value if var.value_from is None else var.value_from) for var in env]


def test_the_exact_environment_of_a_sample_step() -> None:
    layers = Layers()
    layers.steprun_spec["timeout"] = "90s"
    layers.overrides["debug"] = True
    env = engram_environment(context(layers), layers.resolve(), layers.operator_config())
    assert as_pairs(env) == [
        ("BUBU_STORY_NAME", "welcome"),
        ("BUBU_STORY_VERSION", "v2"),
        ("BUBU_STORYRUN_ID", "run-1"),
        ("BUBU_STEP_NAME", "notify"),
        ("BUBU_STEPRUN_NAME", "run-1-notify"),
        ("BUBU_STEPRUN_NAMESPACE", "team-a"),
        ("BUBU_TRIGGER_DATA", '{"n":3,"to":"a@b.c"}'),
        ("BUBU_EXECUTION_MODE", "batch"),
        ("BUBU_HYBRID_BRIDGE", "false"),
        ("BUBU_GRPC_PORT", "50051"),
        ("BUBU_MAX_INLINE_SIZE", "4096"),
        ("BUBU_STORAGE_TIMEOUT", "300s"),
        ("BUBU_STEP_TIMEOUT", "1m30s"),
        ("BUBU_MAX_RECURSION_DEPTH", "32"),
        ("BUBU_DEBUG", "true"),
        ("BUBU_POD_NAME", {"fieldRef": {"fieldPath": "metadata.name"}}),
        ("BUBU_POD_NAMESPACE", {"fieldRef": {"fieldPath": "metadata.namespace"}}),
        ("BUBU_SERVICE_ACCOUNT_NAME", {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}),
        ("BUBU_GRPC_MAX_RECV_BYTES", "10485760"),
        ("BUBU_GRPC_MAX_SEND_BYTES", "10485760"),
        ("BUBU_GRPC_CLIENT_MAX_RECV_BYTES", "10485760"),
        ("BUBU_GRPC_CLIENT_MAX_SEND_BYTES", "10485760"),
        ("BUBU_GRPC_DIAL_TIMEOUT", "10s"),
        ("BUBU_GRPC_CHANNEL_BUFFER_SIZE", "16"),
        ("BUBU_GRPC_RECONNECT_MAX_RETRIES", "10"),
        ("BUBU_GRPC_RECONNECT_BASE_BACKOFF", "500ms"),
        ("BUBU_GRPC_RECONNECT_MAX_BACKOFF", "30s"),
        ("BUBU_GRPC_HANG_TIMEOUT", "0s"),
        ("BUBU_GRPC_MESSAGE_TIMEOUT", "30s"),
        ("BUBU_GRPC_CHANNEL_SEND_TIMEOUT", "30s"),
        ("BUBU_ENGRAM_NAME", "mailer"),
        ("BUBU_ENGRAM_VERSION", "1.0"),
        ("BUBU_STARTED_AT", "2025-03-04T05:06:07Z"),
        ("BUBU_STEP_CONFIG", '{"n":3,"to":"a@b.c"}'),
        ("BUBU_TEMPLATE_CONTEXT", '{"inputs":{"user":"ann"},"steps":{}}'),
    ]


def test_operator_settings_reach_the_environment() -> None:
    layers = Layers()
    layers.config.update(
        {
            "engram.default-grpc-port": "9000",
            "engram.default-storage-timeout-seconds": "60",
            "engram.default-max-recv-msg-bytes": "1024",
            "engram.default-dial-timeout-seconds": "3",
            "engram.default-reconnect-max-retries": "0",  # exported as the default, 10
            "engram.default-hang-timeout-seconds": "7",
            "engram.default-message-timeout-seconds": "9",
        }
    )
    env = dict(
        as_pairs(engram_environment(context(layers), layers.resolve(), layers.operator_config()))
    )
    assert env["BUBU_GRPC_PORT"] == "9000"
    assert env["BUBU_STORAGE_TIMEOUT"] == "60s"
    assert (env["BUBU_GRPC_MAX_RECV_BYTES"], env["BUBU_GRPC_CLIENT_MAX_RECV_BYTES"]) == (
        "1024",
        "1024",
    )
    assert env["BUBU_GRPC_DIAL_TIMEOUT"] == "3s"
    assert env["BUBU_GRPC_RECONNECT_MAX_RETRIES"] == "10"
    assert env["BUBU_GRPC_HANG_TIMEOUT"] == "7s"
    assert (env["BUBU_GRPC_MESSAGE_TIMEOUT"], env["BUBU_GRPC_CHANNEL_SEND_TIMEOUT"]) == (
        "9s",
        "9s",
    )


def test_json_values_are_go_json() -> None:
    layers = Layers()
    data = {"html": "<a href='x'>&</a>", "big": 1e21, "small": 1e-7, "z": [1.5, None, True]}
    step = context(layers, trigger_data=data, step_config=None, template_context=None)
    env = dict(as_pairs(engram_environment(step, layers.resolve(), layers.operator_config())))
    assert env["BUBU_TRIGGER_DATA"] == (
        '{"big":1e+21,"html":"\\u003ca href=\'x\'\\u003e\\u0026\\u003c/a\\u003e",'
        '"small":1e-7,"z":[1.5,null,true]}'
    )
    assert env["BUBU_STEP_CONFIG"] == "{}"
    assert "BUBU_TEMPLATE_CONTEXT" not in env


def test_started_at_is_rfc3339_nano() -> None:
    assert format_rfc3339_nano(T0) == "2025-03-04T05:06:07Z"
    assert format_rfc3339_nano(T0.replace(microsecond=120000)) == "2025-03-04T05:06:07.12Z"
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    assert format_rfc3339_nano(T0.astimezone(plus_two)) == "2025-03-04T05:06:07Z"


def test_started_at_is_the_status_then_the_creation_then_now() -> None:
    doc = codec.to_builtins(Layers().steprun())
    doc["status"] = {"startedAt": "2025-03-04T05:06:30Z"}
    steprun = codec.convert(doc, StepRun)
    assert step_started_at(steprun, T0) == datetime.datetime(
        2025, 3, 4, 5, 6, 30, tzinfo=datetime.UTC
    )
    del doc["status"]
    assert step_started_at(codec.convert(doc, StepRun), T0) == datetime.datetime(
        2025, 3, 4, 5, 6, 0, tzinfo=datetime.UTC
    )
    del doc["metadata"]["creationTimestamp"]
    assert step_started_at(codec.convert(doc, StepRun), T0) == T0


# ---- BUBU_TEMPLATE_CONTEXT ---------------------------------------------------------------


def big_string(size: int) -> str:
    return "x" * size


def test_a_small_context_is_kept_whole_except_storage_refs() -> None:
    ref = {
        "$bubuStorageRef": "s3://b/k",
        "$bubuStoragePath": "out.json",
        "preview": "first bytes",
    }
    value = {"inputs": {"a": [1, 2]}, "steps": {"fetch": {"output": ref}}}
    assert json.loads(template_context_json(value)) == {
        "inputs": {"a": [1, 2]},
        "steps": {
            "fetch": {"output": {"$bubuStorageRef": "s3://b/k", "$bubuStoragePath": "out.json"}}
        },
    }


def test_values_over_64_kib_become_summaries() -> None:
    limit = TEMPLATE_CONTEXT_MAX_VALUE_BYTES
    steps = {
        "fetch": {"output": {"body": big_string(limit)}},
        "ref": {"output": {"$bubuStorageRef": "s3://b/k"}},
    }
    items = [big_string(limit)]
    value = {"inputs": {"user": "ann"}, "steps": steps, "list": items}
    result = json.loads(template_context_json(value))
    assert result["inputs"] == {"user": "ann"}
    assert result["steps"] == {
        "$bubuOmitted": True,
        "reason": "template_context_size_limit",
        "type": "map",
        "sizeBytes": len(canonical_json(steps)),
        "hasStorageRef": True,
    }
    assert result["list"] == {
        "$bubuOmitted": True,
        "reason": "template_context_size_limit",
        "type": "array",
        "sizeBytes": len(canonical_json(items)),
    }


def test_a_value_of_exactly_64_kib_is_kept() -> None:
    limit = TEMPLATE_CONTEXT_MAX_VALUE_BYTES
    body = big_string(limit - len('{"k":""}'))
    value = {"inputs": {"k": body}}
    assert len(canonical_json(value["inputs"])) == limit
    assert json.loads(template_context_json(value)) == value
    value = {"inputs": {"k": body + "é"}}  # two UTF-8 bytes: one over
    assert json.loads(template_context_json(value))["inputs"]["$bubuOmitted"] is True


def test_sizes_count_go_escapes_and_utf8_bytes() -> None:
    limit = TEMPLATE_CONTEXT_MAX_VALUE_BYTES
    # Each "<" is six bytes once escaped: 11000 of them are over the limit.
    value = {"inputs": ["<" * 11000]}
    result = json.loads(template_context_json(value))
    assert result["inputs"]["sizeBytes"] == 6 * 11000 + 4
    assert limit < 6 * 11000 + 4


def test_deep_nesting_does_not_overflow_the_stack() -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = {"a": [deep]}
    out = template_context_json({"inputs": deep})
    assert out.startswith('{"inputs":{"a":[{"a":[') and out.endswith("]}]}}")


def test_operator_config_is_parsed_for_the_environment() -> None:
    config, problems = parse_operator_config({"engram.default-grpc-port": "0"})
    assert config.engram_default_grpc_port == 50051
    assert problems and problems[0].startswith("engram.default-grpc-port")
