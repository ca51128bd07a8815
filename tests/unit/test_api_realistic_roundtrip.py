"""Realistic objects, as the apiserver would hand them to us, survive decode -> encode unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runs_controller.api.codec import decode, encode
from runs_controller.api.kinds import BY_KIND

META = {
    "name": "fetch-and-report-1",
    "namespace": "default",
    "uid": "3c1f2a9e-1111-2222-3333-444455556666",
    "resourceVersion": "48213",
    "generation": 2,
    "creationTimestamp": "2026-11-28T14:00:00Z",
    "labels": {"bubustack.io/story-name": "fetch-and-report"},
    "annotations": {
        "runs.bubustack.io/step-timers": '{"pause":{"sleepUntil":"2026-11-28T14:01:00Z"}}'
    },
    "finalizers": ["runs.bubustack.io/storyrun-cleanup"],
    "ownerReferences": [
        {
            "apiVersion": "runs.bubustack.io/v1alpha1",
            "kind": "StoryTrigger",
            "name": "t",
            "uid": "u-t",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ],
    "managedFields": [
        {
            "manager": "runs-controller",
            "operation": "Apply",
            "apiVersion": "runs.bubustack.io/v1alpha1",
            "time": "2026-11-28T14:00:01Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {"f:phase": {}}},
            "subresource": "status",
        }
    ],
}
CONDITION = {
    "type": "Ready",
    "status": "False",
    "observedGeneration": 2,
    "lastTransitionTime": "2026-11-28T14:00:01Z",
    "reason": "Running",
    "message": "2 of 9 steps complete",
}

STORY_RUN = {
    "apiVersion": "runs.bubustack.io/v1alpha1",
    "kind": "StoryRun",
    "metadata": META,
    "spec": {
        "storyRef": {"name": "fetch-and-report", "version": "1", "uid": "u-s"},
        "impulseRef": {"name": "webhook", "namespace": "default"},
        "inputs": {"url": "https://example.com", "n": 3, "ratio": 0.25, "tags": ["a", None]},
    },
    "status": {
        "observedGeneration": 2,
        "phase": "Running",
        "message": "Executing steps",
        "active": ["fan-out"],
        "completed": ["fetch-feed", "ok"],
        "primitiveChildren": {"fan-out": ["fetch-and-report-1-fan-out-branch-a"]},
        "startedAt": "2026-11-28T14:00:01Z",
        "duration": "1m5s",
        "trace": {"traceId": "abc", "spanId": "def", "sampled": True},
        "attempts": 1,
        "inputSchemaRef": {"ref": "bubu://story/default/fetch-and-report/inputs", "version": "1"},
        "output": {"status": 200},
        "stepStates": {
            "fetch-feed": {
                "phase": "Succeeded",
                "message": "done",
                "startedAt": "2026-11-28T14:00:01Z",
                "finishedAt": "2026-11-28T14:00:30Z",
            },
            "sub": {"phase": "Running", "subStoryRunName": "child-1"},
        },
        "gates": {
            "approve": {
                "state": "Approved",
                "message": "ok",
                "updatedAt": "2026-11-28T14:00:40Z",
                "updatedBy": "alice",
            }
        },
        "error": {"type": "StepFailed", "message": "x", "failedSteps": ["a"]},
        "conditions": [CONDITION],
        "stepsTotal": 11,
        "stepsComplete": 2,
        "stepsFailed": 0,
        "stepsSkipped": 0,
        "allowedFailures": ["branch-b"],
        "triggerTokens": ["story", "impulse"],
    },
}

STEP_RUN = {
    "apiVersion": "runs.bubustack.io/v1alpha1",
    "kind": "StepRun",
    "metadata": {**META, "name": "fetch-and-report-1-fetch-feed"},
    "spec": {
        "storyRunRef": {"name": "fetch-and-report-1", "uid": "u-r"},
        "stepId": "fetch-feed",
        "idempotencyKey": "ns/default/storyrun/fetch-and-report-1/step/fetch-feed",
        "engramRef": {"name": "fetcher", "version": "2"},
        "templateGeneration": 1,
        "input": {"method": "GET", "url": "{{ inputs.url }}"},
        "timeout": "2m",
        "retry": {"maxRetries": 2, "delay": "2s", "backoff": "exponential", "jitter": 10},
        "executionOverrides": {
            "cpuRequest": "100m",
            "memoryLimit": "256Mi",
            "debug": True,
            "backoffLimit": 0,
            "restartPolicy": "Never",
            "placement": {
                "nodeSelector": {"pool": "batch"},
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            },
        },
        "downstreamTargets": [{"terminate": {"stopMode": "success"}}],
    },
    "status": {
        "observedGeneration": 2,
        "phase": "Failed",
        "startedAt": "2026-11-28T14:00:01Z",
        "finishedAt": "2026-11-28T14:00:30Z",
        "duration": "29s",
        "lastOutputAt": "2026-11-28T14:00:29Z",
        "exitCode": 1,
        "exitClass": "terminal",
        "podName": "fetch-and-report-1-fetch-feed-x7k2p",
        "retries": 2,
        "nextRetryAt": "2026-11-28T14:00:40Z",
        "lastFailureMsg": "boom",
        "output": {"status": 500, "body": "error"},
        "logs": {"$bubuStorageRef": "s3://bucket/logs"},
        "error": {
            "version": "v1",
            "type": "execution_error",
            "message": "boom",
            "retryable": False,
            "exitCode": 1,
            "exitClass": "terminal",
            "code": "E1",
            "details": {"trace": ["a", "b"]},
        },
        "conditions": [CONDITION],
        "needs": ["fetch-and-report-1-a"],
        "signals": {"progress": {"pct": 50}},
        "signalEvents": [
            {"seq": 1, "key": "progress", "emittedAt": "2026-11-28T14:00:10Z", "payload": {"p": 1}}
        ],
        "effects": [
            {
                "seq": 1,
                "key": "deliver",
                "status": "succeeded",
                "emittedAt": "2026-11-28T14:00:20Z",
                "details": {"http": 200},
            }
        ],
        "handoff": {"strategy": "rolling", "phase": "ready", "updatedAt": "2026-11-28T14:00:21Z"},
    },
}


@pytest.mark.parametrize("document", [STORY_RUN, STEP_RUN], ids=["StoryRun", "StepRun"])
def test_full_objects_round_trip(document: dict[str, Any]) -> None:
    root, _ = BY_KIND[document["kind"]]
    assert json.loads(encode(decode(json.dumps(document).encode(), root))) == document


def test_steprun_status_fields_are_typed() -> None:
    root, _ = BY_KIND["StepRun"]
    step_run: Any = decode(json.dumps(STEP_RUN).encode(), root)
    assert step_run.status.retries == 2
    assert step_run.status.error.exit_class == "terminal"
    assert step_run.status.effects[0].key == "deliver"
    assert step_run.spec.execution_overrides.placement.tolerations[0]["key"] == "k"
