"""The StoryTrigger controller against the real apiserver (controller-behaviour.md §6, behaviour
39 of §9): exactly-once admission of StoryRuns, and the trigger-token rules for StoryRuns
(ruling 15)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from runs_controller.api import codec
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.api.runs.storytrigger import StoryTrigger
from runs_controller.engine.hashing import trigger_input_hash
from runs_controller.engine.naming import derive_storyrun_name, derive_storytrigger_name
from runs_controller.engine.nesting import MAX_INPUTS_DEPTH
from runs_controller.kube.client import KubeClient
from runs_controller.kube.errors import AlreadyExists
from runs_controller.kube.resources import STORY_RUNS, STORY_TRIGGERS
from runs_controller.testing.wait import poll_until_async
from tests.integration.storyrun_support import (
    create,
    create_engram,
    create_story,
    engram_step,
    list_stepruns,
    nested_value,
    running_controller,
    wait_for_phase,
)

pytestmark = pytest.mark.timeout(180)


def _hash(inputs: dict[str, Any] | None) -> str:
    return trigger_input_hash(codec.encode(inputs) if inputs is not None else None)


def trigger_body(
    namespace: str,
    story: str,
    *,
    submission: str = "sub-1",
    key: str | None = None,
    inputs: dict[str, Any] | None = None,
    input_hash: str | None = None,
    story_namespace: str | None = None,
    name: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    identity: dict[str, Any] = {"submissionId": submission}
    if key is not None:
        identity.update(mode="key", key=key, inputHash=input_hash or _hash(inputs))
    elif input_hash is not None:
        identity["inputHash"] = input_hash
    story_ref: dict[str, Any] = {"name": story}
    if story_namespace is not None:
        story_ref["namespace"] = story_namespace
    derived = derive_storytrigger_name(story_namespace or namespace, story, key or "", submission)
    body: dict[str, Any] = {
        "metadata": {"name": name or derived, "namespace": namespace},
        "spec": {"storyRef": story_ref, "deliveryIdentity": identity, **spec},
    }
    if inputs is not None:
        body["spec"]["inputs"] = inputs
    return body


async def submit(client: KubeClient, body: dict[str, Any]) -> StoryTrigger:
    created: StoryTrigger = await create(client, STORY_TRIGGERS, body, StoryTrigger)
    return created


async def decision(client: KubeClient, namespace: str, name: str) -> StoryTrigger:
    async def decided() -> StoryTrigger | None:
        trigger = await client.get(STORY_TRIGGERS, name, namespace, type=StoryTrigger)
        status = trigger.status
        if status is None or status.decision not in ("Created", "Reused", "Rejected"):
            return None
        meta = trigger.metadata
        if meta is None or status.observed_generation != meta.generation:
            return None
        return trigger

    result: StoryTrigger = await poll_until_async(decided, within=60, what=f"a decision on {name}")
    return result


def _conditions(trigger: StoryTrigger) -> dict[str, str]:
    status = trigger.status
    return {c.type: c.status for c in (status.conditions if status else None) or []}


def _name(body: dict[str, Any]) -> str:
    return str(body["metadata"]["name"])


async def _setup(client: KubeClient, namespace: str) -> None:
    await create_engram(client, namespace)
    await create_story(client, namespace, "greet", {"version": "1", "steps": [engram_step("a")]})


async def test_a_new_trigger_creates_its_storyrun_which_runs(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await _setup(client, namespace)
    inputs = {"who": "ada"}
    body = trigger_body(namespace, "greet", key="order-42", inputs=inputs)
    async with running_controller(client, namespace):
        await submit(client, body)
        trigger = await decision(client, namespace, _name(body))
        status = trigger.status
        assert status is not None
        assert (status.decision, status.reason) == ("Created", "StoryRunCreated")
        run_name = derive_storyrun_name(namespace, "greet", "order-42")
        assert status.message == f'created StoryRun "{namespace}/{run_name}"'
        assert status.story_run_ref is not None and status.story_run_ref.name == run_name
        assert status.accepted_at is not None and status.completed_at is not None
        assert _conditions(trigger) == {
            "Ready": "True",
            "Progressing": "False",
            "Degraded": "False",
        }
        run = await client.get(STORY_RUNS, run_name, namespace, type=StoryRun)
        annotations = (run.metadata.annotations if run.metadata else None) or {}
        assert annotations["storyrun.bubustack.io/trigger-token"] == "order-42"
        assert annotations["storyrun.bubustack.io/trigger-input-hash"] == _hash(inputs)
        assert annotations["storyrun.bubustack.io/trigger-request-name"] == _name(body)
        assert run.spec.inputs == inputs
        # The run is a normal run: it starts (its step waits for an SDK that is not here).
        started = await wait_for_phase(client, namespace, run_name, "Running")
    assert started.status is not None
    assert [sr.spec.step_id for sr in await list_stepruns(client, namespace)] == ["a"]


async def test_two_concurrent_identical_triggers_make_one_trigger_and_one_storyrun(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await _setup(client, namespace)
    body = trigger_body(namespace, "greet", key="k", inputs={"n": 1})
    outcomes: list[str] = []

    async def attempt() -> None:
        try:
            await submit(client, body)
            outcomes.append("created")
        except AlreadyExists:
            outcomes.append("exists")

    async with running_controller(client, namespace):
        async with anyio.create_task_group() as group:
            group.start_soon(attempt)
            group.start_soon(attempt)
        trigger = await decision(client, namespace, _name(body))
    assert sorted(outcomes) == ["created", "exists"]
    assert trigger.status is not None and trigger.status.decision == "Created"
    runs, _ = await client.list_all(STORY_RUNS, namespace, type=StoryRun)
    assert len(runs) == 1


async def test_a_matching_existing_storyrun_is_reused_and_our_own_is_recovered(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await _setup(client, namespace)
    inputs = {"n": 1}
    # Someone already made the StoryRun this submission derives (same story and inputs).
    run_name = derive_storyrun_name(namespace, "greet", "sub-9")
    existing = {
        "metadata": {"name": run_name, "namespace": namespace},
        "spec": {"storyRef": {"name": "greet"}, "inputs": inputs},
    }
    await create(client, STORY_RUNS, existing, StoryRun)
    body = trigger_body(namespace, "greet", submission="sub-9", inputs=inputs)
    own = trigger_body(namespace, "greet", submission="sub-10", inputs=inputs)
    async with running_controller(client, namespace):
        await submit(client, body)
        reused = await decision(client, namespace, _name(body))
        await submit(client, own)
        created = await decision(client, namespace, _name(own))
        # A decision that is not one any more (CEL keeps observedGeneration from going
        # back, so `Pending` stands in for a stale one) is made again: the StoryRun is ours.
        await client.merge_patch(
            STORY_TRIGGERS,
            _name(own),
            {"status": {"decision": "Pending"}},
            namespace,
            type=StoryTrigger,
            subresource="status",
        )
        recovered = await decision(client, namespace, _name(own))
    assert reused.status is not None
    assert (reused.status.decision, reused.status.reason) == ("Reused", "StoryRunReused")
    assert reused.status.message == f'reused existing StoryRun "{namespace}/{run_name}"'
    assert created.status is not None and created.status.decision == "Created"
    assert recovered.status is not None and recovered.status.decision == "Created"
    assert (recovered.status.message or "").startswith("recovered previously created StoryRun")


async def test_a_storyrun_with_other_inputs_or_impulse_under_the_name_is_a_conflict(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await _setup(client, namespace)
    for submission, spec in (
        ("sub-a", {"inputs": {"n": 2}}),
        ("sub-b", {"inputs": {"n": 1}, "impulseRef": {"name": "webhook"}}),
    ):
        name = derive_storyrun_name(namespace, "greet", submission)
        body = {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"storyRef": {"name": "greet"}, **spec},
        }
        await create(client, STORY_RUNS, body, StoryRun)
    async with running_controller(client, namespace):
        for submission in ("sub-a", "sub-b"):
            body = trigger_body(namespace, "greet", submission=submission, inputs={"n": 1})
            await submit(client, body)
            trigger = await decision(client, namespace, _name(body))
            status = trigger.status
            assert status is not None
            assert (status.decision, status.reason) == ("Rejected", "StoryRunConflict")
            assert status.story_run_ref is None
            assert "does not match StoryTrigger storyRef and inputs" in (status.message or "")
            assert _conditions(trigger) == {
                "Ready": "False",
                "Progressing": "False",
                "Degraded": "True",
            }


async def test_the_same_key_with_other_inputs_is_rejected(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await _setup(client, namespace)
    lying = trigger_body(namespace, "greet", key="k1", inputs={"n": 1}, input_hash=_hash({"n": 2}))
    first = trigger_body(namespace, "greet", key="k2", inputs={"n": 1})
    second = trigger_body(namespace, "greet", key="k2", submission="sub-2", inputs={"n": 2})
    async with running_controller(client, namespace):
        await submit(client, lying)
        mismatch = await decision(client, namespace, _name(lying))
        await submit(client, first)
        await decision(client, namespace, _name(first))
        # The same key names the same trigger: a second submission lands once the first is
        # gone, and its StoryRun name is taken by the first's run with other inputs.
        await client.delete(STORY_TRIGGERS, _name(first), namespace)
        await _wait_gone(client, namespace, _name(first))
        await submit(client, second)
        conflict = await decision(client, namespace, _name(second))
    assert mismatch.status is not None
    assert (mismatch.status.decision, mismatch.status.reason) == ("Rejected", "InputHashMismatch")
    assert mismatch.status.message == "spec.deliveryIdentity.inputHash does not match spec.inputs"
    assert conflict.status is not None and conflict.status.reason == "StoryRunConflict"


async def _wait_gone(client: KubeClient, namespace: str, name: str) -> None:
    from runs_controller.kube.errors import NotFound

    async def gone() -> bool | None:
        try:
            await client.get(STORY_TRIGGERS, name, namespace, type=StoryTrigger)
        except NotFound:
            return True
        return None

    await poll_until_async(gone, within=30, what=f"{name} to be deleted")


@pytest.mark.parametrize(
    ("case", "reason", "message"),
    [
        (
            "cross-namespace",
            "ValidationFailed",
            "cross-namespace StoryRef references are not allowed",
        ),
        ("wrong-name", "ValidationFailed", "metadata.name must be"),
        ("no-story", "StoryNotFound", "referenced Story"),
        ("version", "StoryVersionMismatch", 'has version "1", expected "2"'),
        ("oversized", "ValidationFailed", "storyrun.max-inline-inputs-size"),
        ("too-deep", "ValidationFailed", f"nesting exceeds maximum depth of {MAX_INPUTS_DEPTH}"),
    ],
)
async def test_invalid_triggers_are_rejected_with_the_cause(
    client: KubeClient, namespace: str, crds: list[str], case: str, reason: str, message: str
) -> None:
    await _setup(client, namespace)
    body = {
        "cross-namespace": trigger_body(namespace, "greet", story_namespace="elsewhere"),
        "wrong-name": trigger_body(namespace, "greet", name="my-trigger"),
        "no-story": trigger_body(namespace, "absent"),
        "version": trigger_body(namespace, "greet", storyRef=None)
        | {
            "spec": {
                "storyRef": {"name": "greet", "version": "2"},
                "deliveryIdentity": {"submissionId": "sub-1"},
            }
        },
        "oversized": trigger_body(namespace, "greet", inputs={"blob": "x" * 2000}),
        "too-deep": trigger_body(namespace, "greet", inputs={"x": nested_value(MAX_INPUTS_DEPTH)}),
    }[case]
    async with running_controller(client, namespace):
        await submit(client, body)
        trigger = await decision(client, namespace, _name(body))
    status = trigger.status
    assert status is not None and status.decision == "Rejected"
    assert status.reason == reason
    assert message in (status.message or "")
    runs, _ = await client.list_all(STORY_RUNS, namespace, type=StoryRun)
    assert runs == []


async def test_a_storyrun_with_a_trigger_token_needs_the_derived_name_and_hash(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await _setup(client, namespace)
    good_name = derive_storyrun_name(namespace, "greet", "tok")
    cases = {
        "bad-name": ("not-derived", _hash({"n": 1})),
        good_name: (good_name, _hash({"n": 2})),
    }
    for name, (run_name, hash_) in cases.items():
        body = {
            "metadata": {
                "name": run_name,
                "namespace": namespace,
                "annotations": {
                    "storyrun.bubustack.io/trigger-token": "tok",
                    "storyrun.bubustack.io/trigger-input-hash": hash_,
                },
            },
            "spec": {"storyRef": {"name": "greet"}, "inputs": {"n": 1}},
        }
        del name
        await create(client, STORY_RUNS, body, StoryRun)
    async with running_controller(client, namespace):
        bad_name = await wait_for_phase(client, namespace, "not-derived", "Failed")
        bad_hash = await wait_for_phase(client, namespace, good_name, "Failed")
    for run, text in ((bad_name, "must be named"), (bad_hash, "does not match spec.inputs")):
        assert run.status is not None
        ready = next(c for c in run.status.conditions or [] if c.type == "Ready")
        assert ready.reason == "ValidationFailed"
        assert text in (ready.message or "")
