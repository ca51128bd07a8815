"""Every batch primitive through the running StoryRun controller, the test playing the SDK."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from runs_controller.engine import keys
from runs_controller.kube.client import KubeClient
from tests.integration.storyrun_support import (
    DONE,
    behaviour_by_step,
    create_engram,
    create_run,
    create_story,
    echo_success,
    engram_step,
    fake_sdk,
    list_stepruns,
    merge_patch_run,
    running_controller,
    step_phase,
    wait_for_phase,
    wait_for_run,
)

pytestmark = pytest.mark.timeout(180)


async def test_a_gate_approved_by_a_status_patch_is_acted_on_without_a_poll(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    story = {
        "steps": [{"name": "approve", "type": "gate"}, engram_step("after", needs=["approve"])]
    }
    await create_story(client, namespace, "gated", story)
    async with running_controller(client, namespace), fake_sdk(client, namespace, echo_success):
        await create_run(client, namespace, "g1", "gated")
        paused = await wait_for_run(
            client,
            namespace,
            "g1",
            lambda run: step_phase(run, "approve") == "Paused",
            "the gate to wait for a decision",
        )
        assert paused.status is not None
        assert paused.status.step_states is not None
        assert paused.status.step_states["approve"].message == "Waiting for gate decision."
        decision = {"state": "Approved", "message": "ok", "updatedBy": "alice"}
        await merge_patch_run(
            client, namespace, "g1", {"status": {"gates": {"approve": decision}}}, status=True
        )
        # A gate with no timeout schedules no wake-up: only the status.gates watch can move it.
        run = await wait_for_phase(client, namespace, "g1", DONE, within=30)
    assert run.status is not None and run.status.phase == "Succeeded"
    states = run.status.step_states or {}
    assert states["approve"].phase == "Succeeded"
    assert states["approve"].message == "ok"
    assert (run.status.gates or {})["approve"].updated_by == "alice"  # never erased by us


async def test_a_rejected_gate_fails_the_run(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_story(client, namespace, "gated", {"steps": [{"name": "approve", "type": "gate"}]})
    async with running_controller(client, namespace):
        await create_run(client, namespace, "g2", "gated")
        await wait_for_run(
            client, namespace, "g2", lambda r: step_phase(r, "approve") == "Paused", "the gate"
        )
        await merge_patch_run(
            client,
            namespace,
            "g2",
            {"status": {"gates": {"approve": {"state": "Rejected", "message": "nope"}}}},
            status=True,
        )
        run = await wait_for_phase(client, namespace, "g2", DONE)
    assert run.status is not None
    assert run.status.phase == "Failed"
    assert run.status.message == "Story completed with failed step: approve. nope"
    assert (run.status.step_states or {})["approve"].message == "nope"


def _sleep_until(run: Any) -> str | None:
    raw = ((run.metadata.annotations if run.metadata else None) or {}).get(
        keys.ANNOTATION_STEP_TIMERS
    )
    if not raw:
        return None
    entry: dict[str, Any] = json.loads(raw).get("nap") or {}
    value = entry.get("sleepUntil")
    return value if isinstance(value, str) else None


async def test_a_sleep_keeps_its_deadline_across_a_controller_restart(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    story = {
        "steps": [
            {"name": "nap", "type": "sleep", "with": {"duration": "4s"}},
            engram_step("after", needs=["nap"]),
        ]
    }
    await create_story(client, namespace, "sleepy", story)
    async with running_controller(client, namespace):
        await create_run(client, namespace, "s1", "sleepy")
        first = await wait_for_run(
            client,
            namespace,
            "s1",
            lambda r: _sleep_until(r) is not None and step_phase(r, "nap") == "Paused",
            "the sleep deadline and the sleeping step",
        )
    deadline = _sleep_until(first)
    assert deadline is not None
    async with running_controller(client, namespace), fake_sdk(client, namespace, echo_success):
        run = await wait_for_phase(client, namespace, "s1", DONE, within=60)
    assert run.status is not None and run.status.phase == "Succeeded"
    nap = (run.status.step_states or {})["nap"]
    assert nap.message == "Sleep completed."
    until = datetime.datetime.fromisoformat(deadline.replace("Z", "+00:00"))
    assert nap.finished_at is not None and nap.finished_at >= until
    assert first.status is not None and first.status.step_states is not None
    assert first.status.step_states["nap"].started_at is not None
    assert until == first.status.step_states["nap"].started_at + datetime.timedelta(seconds=4)
    assert _sleep_until(run) is None  # timers of finished steps are pruned


async def test_a_wait_that_times_out_with_on_timeout_skip_lets_the_run_go_on(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    story = {
        "steps": [
            {
                "name": "hold",
                "type": "wait",
                "with": {"until": "{{ inputs.ready }}", "timeout": "2s", "onTimeout": "skip"},
            },
            engram_step("after", needs=["hold"]),
        ]
    }
    await create_story(client, namespace, "waiting", story)
    async with running_controller(client, namespace), fake_sdk(client, namespace, echo_success):
        await create_run(client, namespace, "w1", "waiting", {"ready": False})
        run = await wait_for_phase(client, namespace, "w1", DONE)
    assert run.status is not None and run.status.phase == "Succeeded"
    states = run.status.step_states or {}
    assert states["hold"].phase == "Skipped"
    assert states["hold"].message == "wait step timed out and was skipped."
    assert states["after"].phase == "Succeeded"


async def test_a_stop_step_ends_the_run_as_ruled(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    story = {
        "steps": [
            engram_step("first"),
            {
                "name": "halt",
                "type": "stop",
                "needs": ["first"],
                "with": {"phase": "Failed", "message": "halted by input"},
            },
            engram_step("never", needs=["halt"]),
        ],
        "compensations": [engram_step("undo")],
        "finally": [engram_step("cleanup")],
    }
    await create_story(client, namespace, "stopper", story)
    async with running_controller(client, namespace), fake_sdk(client, namespace, echo_success):
        await create_run(client, namespace, "st1", "stopper")
        run = await wait_for_phase(client, namespace, "st1", DONE)
    assert run.status is not None
    assert run.status.phase == "Failed"
    assert run.status.message == "halted by input"
    states = run.status.step_states or {}
    assert states["never"].phase == "Skipped"
    assert states["undo"].phase == "Skipped"  # ruling 31: no compensations after a stop
    assert states["cleanup"].phase == "Succeeded"  # finally still runs
    assert (run.status.error or {}).get("message") == "halted by input"
    ready = next(c for c in run.status.conditions or [] if c.type == "Ready")
    assert ready.reason == "ExecutionFailed"
    step_ids = sorted(sr.spec.step_id for sr in await list_stepruns(client, namespace))
    assert step_ids == ["cleanup", "first"]


async def test_compensations_then_finally_run_in_order_after_a_failure(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    story = {
        "steps": [engram_step("charge"), engram_step("ship", needs=["charge"])],
        "compensations": [engram_step("refund")],
        "finally": [engram_step("notify")],
    }
    await create_story(client, namespace, "saga", story)
    sdk_behaviour = behaviour_by_step({"ship": "Failed"})
    async with (
        running_controller(client, namespace),
        fake_sdk(client, namespace, sdk_behaviour) as sdk,
    ):
        await create_run(client, namespace, "sg1", "saga")
        run = await wait_for_phase(client, namespace, "sg1", DONE)
    assert run.status is not None
    assert run.status.phase == "Compensated"
    assert run.status.message == "Story failed; compensations completed."
    order = []
    for version in sdk.log.versions:
        step = version.spec.step_id
        if step not in order:
            order.append(step)
    assert order == ["charge", "ship", "refund", "notify"]


async def test_a_skipped_branch_does_not_block_its_join(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    story = {
        "steps": [
            {"name": "check", "type": "condition"},
            engram_step("maybe", needs=["check"], **{"if": "{{ inputs.go }}"}),
            engram_step("join", needs=["maybe"]),
        ]
    }
    await create_story(client, namespace, "branchy", story)
    async with running_controller(client, namespace), fake_sdk(client, namespace, echo_success):
        await create_run(client, namespace, "b1", "branchy", {"go": False})
        run = await wait_for_phase(client, namespace, "b1", DONE)
    assert run.status is not None and run.status.phase == "Succeeded"
    states = run.status.step_states or {}
    assert states["maybe"].phase == "Skipped"
    assert states["maybe"].message == "Skipped due to 'if' condition"
    assert states["join"].phase == "Succeeded"
    assert states["check"].message == "Primitive evaluated and outputs are available."


async def test_a_parallel_step_completes_when_every_branch_is_final(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    story = {
        "steps": [
            {
                "name": "fan",
                "type": "parallel",
                "with": {
                    "steps": [
                        {"name": "a", "ref": {"name": "echo"}, "with": {"n": 1}},
                        {"name": "b", "ref": {"name": "echo"}, "allowFailure": True},
                    ]
                },
            },
            engram_step("after", needs=["fan"]),
        ]
    }
    await create_story(client, namespace, "fanout", story)
    sdk_behaviour = behaviour_by_step({"b": "Failed"})
    async with running_controller(client, namespace), fake_sdk(client, namespace, sdk_behaviour):
        await create_run(client, namespace, "p1", "fanout")
        run = await wait_for_phase(client, namespace, "p1", DONE)
    assert run.status is not None and run.status.phase == "Succeeded"
    states = run.status.step_states or {}
    assert states["fan"].phase == "Succeeded"
    assert states["fan"].message == "Parallel branches completed with allowed failures."
    assert (run.status.primitive_children or {})["fan"] == ["p1-fan-a", "p1-fan-b"]
    assert states["after"].phase == "Succeeded"
    by_name = {sr.metadata.name: sr for sr in await list_stepruns(client, namespace) if sr.metadata}
    labels = (by_name["p1-fan-a"].metadata.labels if by_name["p1-fan-a"].metadata else None) or {}
    assert labels[keys.LABEL_PARENT_STEP] == "fan"


async def test_execute_story_waits_for_the_child_run_and_copies_its_phase(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    await create_story(client, namespace, "child", {"steps": [engram_step("inner")]})
    story = {
        "steps": [
            {
                "name": "sub",
                "type": "executeStory",
                "with": {"storyRef": {"name": "child"}, "with": {"x": "{{ inputs.x }}"}},
            }
        ]
    }
    await create_story(client, namespace, "parent", story)
    async with running_controller(client, namespace), fake_sdk(client, namespace, echo_success):
        await create_run(client, namespace, "e1", "parent", {"x": "hello"})
        run = await wait_for_phase(client, namespace, "e1", DONE)
        child = await wait_for_phase(client, namespace, "e1-sub", DONE)
    assert run.status is not None and run.status.phase == "Succeeded"
    sub = (run.status.step_states or {})["sub"]
    assert sub.phase == "Succeeded"
    assert sub.sub_story_run_name == "e1-sub"
    assert child.spec.inputs == {"x": "hello"}
    assert child.metadata is not None
    assert (child.metadata.labels or {})[keys.LABEL_PARENT_STORYRUN] == "e1"
