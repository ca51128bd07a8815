"""One invalid object per rule of the generated CRDs, rejected by the real apiserver.

Each case names the kind, how the object is written (create, a status update, or a spec update
of an existing object), how it is broken, and the field path and message the apiserver must
report. Every enum, bound, pattern, required field, CEL rule and transition rule is covered.
"""

from __future__ import annotations

import copy
import datetime
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from runs_controller.testing import HarnessClient
from tests.integration.crd_helpers import info_of, resource_path

Obj = dict[str, Any]
NOW = datetime.datetime(2026, 11, 28, 14, 0, 0, tzinfo=datetime.UTC)


def _sec(delta: float = 0) -> str:
    return (NOW + datetime.timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro(delta: float = 0) -> str:
    return (NOW + datetime.timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


BASE_SPECS: dict[str, Obj] = {
    "StoryRun": {"storyRef": {"name": "story"}, "inputs": {"a": 1}},
    "StepRun": {"storyRunRef": {"name": "run"}, "stepId": "step"},
    "StoryTrigger": {"storyRef": {"name": "story"}, "deliveryIdentity": {"submissionId": "s-1"}},
    "EffectClaim": {
        "stepRunRef": {"name": "step"},
        "effectKey": "deliver",
        "holderIdentity": "worker-a",
        "acquireTime": _micro(),
        "renewTime": _micro(1),
    },
    "Story": {"steps": [{"name": "a", "type": "condition"}]},
    "Engram": {"templateRef": {"name": "tpl"}},
    "EngramTemplate": {"version": "1.0.0", "supportedModes": ["job"]},
}

READY = {
    "type": "Ready",
    "status": "True",
    "reason": "Completed",
    "message": "",
    "lastTransitionTime": _sec(),
}


def _valid_status(kind: str) -> Obj:
    if kind == "StoryRun":
        return {"observedGeneration": 1, "phase": "Running", "conditions": [dict(READY)]}
    if kind == "StepRun":
        return {"observedGeneration": 1, "retries": 0, "phase": "Running"}
    return {"observedGeneration": 1}


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    op: Literal["create", "status", "update"]
    breaks: Callable[[Obj], None]
    field: str
    message: str
    before: Callable[[Obj], None] | None = None
    """For `update`: prepares the existing object before the breaking update."""


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    """A mutation that sets (or, with value DELETE, removes) a dotted path; `[n]` indexes lists."""

    def apply(obj: Obj) -> None:
        parts = path.replace("[", ".[").split(".")
        node: Any = obj
        for part in parts[:-1]:
            key: Any = int(part[1:-1]) if part.startswith("[") else part
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
        last = parts[-1]
        last_key: Any = int(last[1:-1]) if last.startswith("[") else last
        if value is DELETE:
            del node[last_key]
        else:
            node[last_key] = copy.deepcopy(value)

    return apply


def _status(**fields: Any) -> Callable[[Obj], None]:
    def apply(obj: Obj) -> None:
        obj["status"].update(copy.deepcopy(fields))

    return apply


def _conditions(**changes: Any) -> Callable[[Obj], None]:
    def apply(obj: Obj) -> None:
        condition = {**READY, **changes}
        for key in [k for k, v in condition.items() if v is DELETE]:
            del condition[key]
        obj["status"]["conditions"] = [condition]

    return apply


DELETE = object()


def _unset_completion(obj: Obj) -> None:
    del obj["spec"]["completedAt"]
    del obj["spec"]["completionStatus"]


BAD_NAME = "Not_A_DNS_Label"
LONG = "a" * 300


CASES = [
    # ---- StoryRun: schema
    Case("storyrun-spec-required", "StoryRun", "create", _set("spec", DELETE), "spec", "Required"),
    Case(
        "storyrun-storyref-required",
        "StoryRun",
        "create",
        _set("spec.storyRef", DELETE),
        "spec.storyRef",
        "Required",
    ),
    Case(
        "storyrun-storyref-name-pattern",
        "StoryRun",
        "create",
        _set("spec.storyRef.name", BAD_NAME),
        "spec.storyRef.name",
        "should match",
    ),
    Case(
        "storyrun-storyref-name-max",
        "StoryRun",
        "create",
        _set("spec.storyRef.name", LONG),
        "spec.storyRef.name",
        "may not be more than 253",
    ),
    Case(
        "storyrun-storyref-name-min",
        "StoryRun",
        "create",
        _set("spec.storyRef.name", ""),
        "spec.storyRef.name",
        "should be at least 1",
    ),
    Case(
        "storyrun-storyref-namespace-max",
        "StoryRun",
        "create",
        _set("spec.storyRef.namespace", "a" * 64),
        "spec.storyRef.namespace",
        "may not be more than 63",
    ),
    Case(
        "storyrun-storyref-version-max",
        "StoryRun",
        "create",
        _set("spec.storyRef.version", "v" * 65),
        "spec.storyRef.version",
        "may not be more than 64",
    ),
    Case(
        "storyrun-inputs-object",
        "StoryRun",
        "create",
        _set("spec.inputs", [1, 2]),
        "spec.inputs",
        "must be of type object",
    ),
    # ---- StoryRun: status
    Case(
        "storyrun-phase-enum",
        "StoryRun",
        "status",
        _status(phase="Done"),
        "status.phase",
        "Unsupported value",
    ),
    Case(
        "storyrun-conditions-need-ready",
        "StoryRun",
        "status",
        _conditions(type="Progressing"),
        "status",
        "status.conditions must include Ready when conditions are set",
    ),
    Case(
        "storyrun-condition-reason-64",
        "StoryRun",
        "status",
        _conditions(reason="R" * 65),
        "status",
        "status.conditions reason field must be <= 64 characters",
    ),
    Case(
        "storyrun-condition-message-2048",
        "StoryRun",
        "status",
        _conditions(message="m" * 2049),
        "status",
        "status.conditions message field must be <= 2048 characters",
    ),
    Case(
        "condition-status-enum",
        "StoryRun",
        "status",
        _conditions(status="Maybe"),
        "status.conditions[0].status",
        "Unsupported value",
    ),
    Case(
        "condition-type-pattern",
        "StoryRun",
        "status",
        _conditions(type="not valid!"),
        "status.conditions[0].type",
        "should match",
    ),
    Case(
        "condition-reason-pattern",
        "StoryRun",
        "status",
        _conditions(reason="1bad"),
        "status.conditions[0].reason",
        "should match",
    ),
    Case(
        "condition-ltt-required",
        "StoryRun",
        "status",
        _conditions(lastTransitionTime=DELETE),
        "status.conditions[0].lastTransitionTime",
        "Required",
    ),
    Case(
        "storyrun-stepstate-phase-required",
        "StoryRun",
        "status",
        _status(stepStates={"a": {"message": "no phase"}}),
        "status.stepStates.a.phase",
        "Required",
    ),
    Case(
        "storyrun-gate-state-enum",
        "StoryRun",
        "status",
        _status(gates={"approve": {"state": "Maybe"}}),
        "status.gates.approve.state",
        "Unsupported value",
    ),
    Case(
        "storyrun-observed-generation-monotonic",
        "StoryRun",
        "status",
        _status(observedGeneration=0),
        "status",
        "status.observedGeneration must not decrease",
    ),
    # ---- StoryRun: transitions
    Case(
        "storyrun-spec-immutable",
        "StoryRun",
        "update",
        _set("spec.storyRef.name", "other"),
        "spec",
        "spec is immutable for StoryRun",
    ),
    Case(
        "storyrun-inputs-immutable",
        "StoryRun",
        "update",
        _set("spec.inputs", {"a": 2}),
        "spec",
        "spec is immutable for StoryRun",
    ),
    Case(
        "storyrun-cancel-cannot-be-undone",
        "StoryRun",
        "update",
        _set("spec.cancelRequested", False),
        "spec",
        "spec is immutable for StoryRun",
        before=_set("spec.cancelRequested", True),
    ),
    # ---- StepRun
    Case(
        "steprun-stepid-pattern",
        "StepRun",
        "create",
        _set("spec.stepId", BAD_NAME),
        "spec.stepId",
        "should match",
    ),
    Case(
        "steprun-stepid-max",
        "StepRun",
        "create",
        _set("spec.stepId", "a" * 64),
        "spec.stepId",
        "may not be more than 63",
    ),
    Case(
        "steprun-idempotency-key-max",
        "StepRun",
        "create",
        _set("spec.idempotencyKey", "k" * 257),
        "spec.idempotencyKey",
        "may not be more than 256",
    ),
    Case(
        "steprun-retry-max-retries-max",
        "StepRun",
        "create",
        _set("spec.retry.maxRetries", 11),
        "spec.retry.maxRetries",
        "should be less than or equal to 10",
    ),
    Case(
        "steprun-retry-jitter-max",
        "StepRun",
        "create",
        _set("spec.retry.jitter", 101),
        "spec.retry.jitter",
        "should be less than or equal to 100",
    ),
    Case(
        "steprun-retry-backoff-enum",
        "StepRun",
        "create",
        _set("spec.retry.backoff", "random"),
        "spec.retry.backoff",
        "Unsupported value",
    ),
    Case(
        "steprun-target-exactly-one",
        "StepRun",
        "create",
        _set(
            "spec.downstreamTargets",
            [{"grpc": {"endpoint": "a:1"}, "terminate": {"stopMode": "success"}}],
        ),
        "spec.downstreamTargets[0]",
        "downstream target must set exactly one of grpc or terminate",
    ),
    Case(
        "steprun-terminate-stopmode-enum",
        "StepRun",
        "create",
        _set("spec.downstreamTargets", [{"terminate": {"stopMode": "explode"}}]),
        "spec.downstreamTargets[0].terminate.stopMode",
        "Unsupported value",
    ),
    Case(
        "steprun-grpc-endpoint-required",
        "StepRun",
        "create",
        _set("spec.downstreamTargets", [{"grpc": {}}]),
        "spec.downstreamTargets[0].grpc.endpoint",
        "Required",
    ),
    Case(
        "steprun-retries-required",
        "StepRun",
        "status",
        _set("status.retries", DELETE),
        "status.retries",
        "Required",
    ),
    Case(
        "steprun-exit-class-enum",
        "StepRun",
        "status",
        _status(exitClass="maybe"),
        "status.exitClass",
        "Unsupported value",
    ),
    Case(
        "steprun-signal-events-max",
        "StepRun",
        "status",
        _status(signalEvents=[{"seq": i, "key": "k"} for i in range(257)]),
        "status.signalEvents",
        "must have at most 256 items",
    ),
    Case(
        "steprun-effect-key-required",
        "StepRun",
        "status",
        _status(effects=[{"seq": 1}]),
        "status.effects[0].key",
        "Required",
    ),
    Case(
        "steprun-handoff-strategy-enum",
        "StepRun",
        "status",
        _status(handoff={"strategy": "yolo"}),
        "status.handoff.strategy",
        "Unsupported value",
    ),
    Case(
        "steprun-error-type-enum",
        "StepRun",
        "status",
        _status(error={"type": "http_error", "message": "m"}),
        "status.error.type",
        "Unsupported value",
    ),
    Case(
        "steprun-error-message-required",
        "StepRun",
        "status",
        _status(error={"type": "timeout"}),
        "status.error.message",
        "Required",
    ),
    Case(
        "steprun-error-version-v1",
        "StepRun",
        "status",
        _status(error={"version": "v2", "type": "timeout", "message": "m"}),
        "status.error",
        "status.error.version must be v1",
    ),
    Case(
        "steprun-error-message-not-empty",
        "StepRun",
        "status",
        _status(error={"type": "timeout", "message": ""}),
        "status.error",
        "status.error.message must not be empty",
    ),
    Case(
        "steprun-error-exit-code-non-negative",
        "StepRun",
        "status",
        _status(error={"type": "timeout", "message": "m", "exitCode": -1}),
        "status.error",
        "status.error.exitCode must be >= 0",
    ),
    Case(
        "steprun-observed-generation-monotonic",
        "StepRun",
        "status",
        _status(observedGeneration=0),
        "status",
        "status.observedGeneration must not decrease",
    ),
    # ---- StoryTrigger
    Case(
        "trigger-delivery-identity-required",
        "StoryTrigger",
        "create",
        _set("spec.deliveryIdentity", DELETE),
        "spec.deliveryIdentity",
        "Required",
    ),
    Case(
        "trigger-submission-id-min",
        "StoryTrigger",
        "create",
        _set("spec.deliveryIdentity.submissionId", ""),
        "spec.deliveryIdentity.submissionId",
        "should be at least 1",
    ),
    Case(
        "trigger-key-max",
        "StoryTrigger",
        "create",
        _set(
            "spec.deliveryIdentity",
            {"submissionId": "s", "mode": "key", "key": "k" * 257, "inputHash": "h"},
        ),
        "spec.deliveryIdentity.key",
        "may not be more than 256",
    ),
    Case(
        "trigger-input-hash-max",
        "StoryTrigger",
        "create",
        _set("spec.deliveryIdentity.inputHash", "h" * 65),
        "spec.deliveryIdentity.inputHash",
        "may not be more than 64",
    ),
    Case(
        "trigger-mode-enum",
        "StoryTrigger",
        "create",
        _set("spec.deliveryIdentity.mode", "maybe"),
        "spec.deliveryIdentity.mode",
        "Unsupported value",
    ),
    Case(
        "trigger-key-with-mode-none",
        "StoryTrigger",
        "create",
        _set(
            "spec.deliveryIdentity",
            {"submissionId": "s", "mode": "none", "key": "k", "inputHash": "h"},
        ),
        "spec.deliveryIdentity",
        "deliveryIdentity.key must be empty when mode is none",
    ),
    Case(
        "trigger-key-required-for-mode-key",
        "StoryTrigger",
        "create",
        _set("spec.deliveryIdentity.mode", "key"),
        "spec.deliveryIdentity",
        "set when mode is token or key",
    ),
    Case(
        "trigger-hash-required-with-key",
        "StoryTrigger",
        "create",
        _set("spec.deliveryIdentity", {"submissionId": "s", "mode": "token", "key": "k"}),
        "spec.deliveryIdentity",
        "deliveryIdentity.inputHash is required",
    ),
    Case(
        "trigger-spec-immutable",
        "StoryTrigger",
        "update",
        _set("spec.inputs", {"changed": True}),
        "spec",
        "spec is immutable for StoryTrigger",
    ),
    Case(
        "trigger-decision-enum",
        "StoryTrigger",
        "status",
        _status(decision="Maybe"),
        "status.decision",
        "Unsupported value",
    ),
    Case(
        "trigger-observed-generation-monotonic",
        "StoryTrigger",
        "status",
        _status(observedGeneration=0),
        "status",
        "status.observedGeneration must not decrease",
    ),
    # ---- EffectClaim
    Case(
        "claim-effect-key-min",
        "EffectClaim",
        "create",
        _set("spec.effectKey", ""),
        "spec.effectKey",
        "should be at least 1",
    ),
    Case(
        "claim-holder-max",
        "EffectClaim",
        "create",
        _set("spec.holderIdentity", LONG),
        "spec.holderIdentity",
        "may not be more than 253",
    ),
    Case(
        "claim-lease-duration-min",
        "EffectClaim",
        "create",
        _set("spec.leaseDurationSeconds", 0),
        "spec.leaseDurationSeconds",
        "should be greater than or equal to 1",
    ),
    Case(
        "claim-lease-transitions-min",
        "EffectClaim",
        "create",
        _set("spec.leaseTransitions", -1),
        "spec.leaseTransitions",
        "should be greater than or equal to 0",
    ),
    Case(
        "claim-completion-status-enum",
        "EffectClaim",
        "create",
        _set("spec.completionStatus", "done"),
        "spec.completionStatus",
        "Unsupported value",
    ),
    Case(
        "claim-completion-pair",
        "EffectClaim",
        "create",
        _set("spec.completedAt", _sec(5)),
        "spec",
        "spec.completionStatus and spec.completedAt must be set together",
    ),
    Case(
        "claim-renew-needs-acquire",
        "EffectClaim",
        "create",
        _set("spec.acquireTime", DELETE),
        "spec",
        "spec.acquireTime is required when spec.renewTime is set",
    ),
    Case(
        "claim-renew-after-acquire",
        "EffectClaim",
        "create",
        _set("spec.renewTime", _micro(-5)),
        "spec",
        "spec.renewTime cannot be before spec.acquireTime",
    ),
    Case(
        "claim-completed-after-acquire",
        "EffectClaim",
        "create",
        lambda o: o["spec"].update(
            renewTime=_micro(), completionStatus="released", completedAt=_sec(-5)
        ),
        "spec",
        "spec.completedAt cannot be before spec.acquireTime",
    ),
    Case(
        "claim-completed-after-renew",
        "EffectClaim",
        "create",
        lambda o: o["spec"].update(
            renewTime=_micro(10), completionStatus="released", completedAt=_sec(5)
        ),
        "spec",
        "spec.completedAt cannot be before spec.renewTime",
    ),
    Case(
        "claim-identity-immutable",
        "EffectClaim",
        "update",
        _set("spec.effectKey", "other"),
        "spec",
        "spec identity fields (stepRunRef, effectKey, idempotencyKey) are immutable",
    ),
    Case(
        "claim-completed-at-not-cleared",
        "EffectClaim",
        "update",
        _unset_completion,
        "spec",
        "spec.completedAt cannot be cleared or moved backward",
        before=lambda o: o["spec"].update(completionStatus="released", completedAt=_sec(5)),
    ),
    Case(
        "claim-completed-is-final",
        "EffectClaim",
        "update",
        _set("spec.holderIdentity", "worker-b"),
        "spec",
        "a completed EffectClaim is final",
        before=lambda o: o["spec"].update(completionStatus="completed", completedAt=_sec(5)),
    ),
    Case(
        "claim-phase-enum",
        "EffectClaim",
        "status",
        _status(phase="Lost"),
        "status.phase",
        "Unsupported value",
    ),
    Case(
        "claim-observed-generation-monotonic",
        "EffectClaim",
        "status",
        _status(observedGeneration=0),
        "status",
        "status.observedGeneration must not decrease",
    ),
    # ---- Story
    Case(
        "story-steps-required",
        "Story",
        "create",
        _set("spec.steps", DELETE),
        "spec.steps",
        "Required",
    ),
    Case(
        "story-steps-min",
        "Story",
        "create",
        _set("spec.steps", []),
        "spec.steps",
        "should have at least 1 items",
    ),
    Case(
        "story-steps-max",
        "Story",
        "create",
        _set("spec.steps", [{"name": f"s{i}", "type": "condition"} for i in range(101)]),
        "spec.steps",
        "must have at most 100 items",
    ),
    Case(
        "story-step-name-pattern",
        "Story",
        "create",
        _set("spec.steps[0].name", BAD_NAME),
        "spec.steps[0].name",
        "should match",
    ),
    Case(
        "story-step-type-enum",
        "Story",
        "create",
        _set("spec.steps[0].type", "loop"),
        "spec.steps[0].type",
        "Unsupported value",
    ),
    Case(
        "story-step-ref-xor-type",
        "Story",
        "create",
        _set("spec.steps[0].ref", {"name": "e"}),
        "spec",
        "each step must set exactly one of ref or type",
    ),
    Case(
        "story-step-names-unique",
        "Story",
        "create",
        _set("spec.steps", [{"name": "a", "type": "condition"}, {"name": "a", "type": "sleep"}]),
        "spec",
        "step names must be unique",
    ),
    Case(
        "story-pattern-enum",
        "Story",
        "create",
        _set("spec.pattern", "stream"),
        "spec.pattern",
        "Unsupported value",
    ),
    Case(
        "story-idempotency-template-max",
        "Story",
        "create",
        _set("spec.steps[0].idempotencyKeyTemplate", "x" * 513),
        "spec.steps[0].idempotencyKeyTemplate",
        "may not be more than 512",
    ),
    Case(
        "story-post-execution-condition-required",
        "Story",
        "create",
        _set("spec.steps[0].postExecution", {"failureMessage": "m"}),
        "spec.steps[0].postExecution.condition",
        "Required",
    ),
    # ---- Engram / EngramTemplate
    Case(
        "engram-template-ref-required",
        "Engram",
        "create",
        _set("spec.templateRef", DELETE),
        "spec.templateRef",
        "Required",
    ),
    Case(
        "engram-mode-enum",
        "Engram",
        "create",
        _set("spec.mode", "daemon"),
        "spec.mode",
        "Unsupported value",
    ),
    Case(
        "template-supported-modes-required",
        "EngramTemplate",
        "create",
        _set("spec.supportedModes", DELETE),
        "spec.supportedModes",
        "Required",
    ),
    Case(
        "template-supported-modes-max",
        "EngramTemplate",
        "create",
        _set("spec.supportedModes", ["job", "deployment", "statefulset", "job"]),
        "spec.supportedModes",
        "must have at most 3 items",
    ),
    Case(
        "template-image-max",
        "EngramTemplate",
        "create",
        _set("spec.image", "i" * 513),
        "spec.image",
        "may not be more than 512",
    ),
]


def _new_object(kind: str) -> Obj:
    info = info_of(kind)
    return {
        "apiVersion": info.api_version,
        "kind": kind,
        "metadata": {"name": f"{kind.lower()}-{secrets.token_hex(4)}"},
        "spec": copy.deepcopy(BASE_SPECS[kind]),
    }


def _rejection(client: HarnessClient, case: Case, namespace: str) -> Obj:
    """Perform the case's write and return the apiserver's answer (expected: 422)."""
    info = info_of(case.kind)
    obj = _new_object(case.kind)
    collection = resource_path(info, namespace)
    if case.op == "create":
        case.breaks(obj)
        response = client.request("POST", collection, obj)
        assert response.status == 422, response.body
        return response.body
    if case.before is not None:
        case.before(obj)
    created = client.create(collection, obj)
    path = resource_path(info, namespace, obj["metadata"]["name"])
    if case.op == "status":
        created["status"] = _valid_status(case.kind)
        current = client.replace(f"{path}/status", created)
        case.breaks(current)
        response = client.request("PUT", f"{path}/status", current)
    else:
        case.breaks(created)
        response = client.request("PUT", path, created)
    assert response.status == 422, response.body
    return response.body


def test_the_table_covers_at_least_forty_rules() -> None:
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_invalid_object_is_rejected_with_field_and_message(
    admin_client: HarnessClient, crds: list[str], namespace: str, case: Case
) -> None:
    body = _rejection(admin_client, case, namespace)
    causes = body.get("details", {}).get("causes", [])
    matching = [c for c in causes if c.get("field") == case.field]
    assert matching, f"no cause for field {case.field!r}: {causes}"
    assert any(case.message in c.get("message", "") for c in matching), matching


@pytest.mark.parametrize(
    "kind", ["StoryRun", "StepRun", "StoryTrigger", "EffectClaim", "Story", "Engram"]
)
def test_the_base_objects_of_the_table_are_valid(
    admin_client: HarnessClient, crds: list[str], namespace: str, kind: str
) -> None:
    """Without this, a case could pass because its base object was already invalid."""
    obj = _new_object(kind)
    created = admin_client.create(resource_path(info_of(kind), namespace), obj)
    created["status"] = _valid_status(kind)
    path = resource_path(info_of(kind), namespace, obj["metadata"]["name"])
    admin_client.replace(f"{path}/status", created)


def test_allowed_transitions_are_accepted(
    admin_client: HarnessClient, crds: list[str], namespace: str
) -> None:
    """The counterpart of the transition rules: what the controllers and the SDK do is allowed."""
    run = _new_object("StoryRun")
    info = info_of("StoryRun")
    created = admin_client.create(resource_path(info, namespace), run)
    created["spec"]["cancelRequested"] = True
    admin_client.replace(resource_path(info, namespace, run["metadata"]["name"]), created)

    claim = _new_object("EffectClaim")
    info = info_of("EffectClaim")
    path = resource_path(info, namespace, claim["metadata"]["name"])
    created = admin_client.create(resource_path(info, namespace), claim)
    created["spec"]["renewTime"] = _micro(2.5)
    renewed = admin_client.replace(path, created)
    # The SDK completes with one instant for renewTime (microseconds) and completedAt (seconds).
    renewed["spec"].update(completionStatus="completed", completedAt=_sec(3), renewTime=_micro(3.7))
    completed = admin_client.replace(path, renewed)
    completed["spec"]["details"] = {"status": 200}
    admin_client.replace(path, completed)
