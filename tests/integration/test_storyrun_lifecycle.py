"""Cancel, redrive, story timeout, bad Stories, concurrency limits and restarts of the StoryRun
controller, against the real apiserver, with the test playing the SDK."""

from __future__ import annotations

import anyio
import pytest

from runs_controller.api.runs.steprun import StepRun
from runs_controller.engine import keys
from runs_controller.engine.nesting import MAX_INPUTS_DEPTH
from runs_controller.kube.client import KubeClient
from runs_controller.kube.resources import STORY_RUNS
from runs_controller.testing.wait import poll_until_async
from tests.integration.storyrun_support import (
    DONE,
    TERMINAL,
    FakeSdk,
    behaviour_by_step,
    create_engram,
    create_run,
    create_story,
    echo_success,
    engram_step,
    fake_sdk,
    get_run,
    list_stepruns,
    merge_patch_run,
    nested_value,
    running_controller,
    step_phase,
    storyrun_reconciles,
    wait_for_phase,
    wait_for_run,
    wait_until_deleted,
)

pytestmark = pytest.mark.timeout(240)


async def _steprun(client: KubeClient, namespace: str, step: str) -> StepRun | None:
    for steprun in await list_stepruns(client, namespace):
        if steprun.spec.step_id == step:
            return steprun
    return None


async def test_cancel_during_a_running_step_signals_then_deletes_it_and_finishes(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    story = {
        "steps": [engram_step("slow"), engram_step("next", needs=["slow"])],
        "policy": {"timeouts": {"gracefulShutdownTimeout": "1s"}},
    }
    await create_story(client, namespace, "cancelable", story)
    sdk_behaviour = behaviour_by_step({"slow": "hold"})
    async with (
        running_controller(client, namespace),
        fake_sdk(client, namespace, sdk_behaviour) as sdk,
    ):
        await create_run(client, namespace, "c1", "cancelable")
        await poll_until_async(
            lambda: _steprun(client, namespace, "slow"), within=30, what="the slow StepRun"
        )
        await merge_patch_run(client, namespace, "c1", {"spec": {"cancelRequested": True}})
        run = await wait_for_phase(client, namespace, "c1", DONE)
        annotated = [
            v
            for v in sdk.log.versions
            if ((v.metadata.annotations if v.metadata else None) or {}).get(
                keys.ANNOTATION_CANCEL_REQUESTED
            )
            == "true"
        ]
    assert run.status is not None
    assert run.status.phase == "Finished"
    assert run.status.message == "StoryRun gracefully canceled"
    assert annotated, "the running StepRun got the drain signal first"
    assert await list_stepruns(client, namespace) == []  # deleted after the drain window
    assert run.metadata is not None
    assert keys.ANNOTATION_GRACEFUL_CANCEL_OBSERVED_AT in (run.metadata.annotations or {})
    assert (run.status.step_states or {}).get("next") is None  # nothing new was scheduled


async def test_cancel_of_a_finished_run_changes_nothing(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    await create_story(client, namespace, "quick", {"steps": [engram_step("one")]})
    async with (
        running_controller(client, namespace) as manager,
        fake_sdk(client, namespace, echo_success),
    ):
        await create_run(client, namespace, "q1", "quick")
        done = await wait_for_phase(client, namespace, "q1", DONE)
        before = storyrun_reconciles(manager.registry)
        # The cancel bumps the generation and wakes the run: wait for that reconcile to end.
        await merge_patch_run(client, namespace, "q1", {"spec": {"cancelRequested": True}})

        async def reconciled() -> bool | None:
            return True if storyrun_reconciles(manager.registry) > before else None

        await poll_until_async(reconciled, within=30, what="the cancel to be reconciled")
        after = await wait_for_phase(client, namespace, "q1", DONE)
    assert done.status is not None and after.status is not None
    assert after.status.phase == "Succeeded"
    assert after.status.finished_at == done.status.finished_at


async def test_redrive_from_a_middle_step_reruns_exactly_it_and_its_dependents(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    story = {
        "steps": [engram_step("a"), engram_step("b", needs=["a"]), engram_step("c", needs=["b"])]
    }
    await create_story(client, namespace, "chain", story)
    async with (
        running_controller(client, namespace),
        fake_sdk(client, namespace, echo_success) as sdk,
    ):
        await create_run(client, namespace, "r1", "chain")
        await wait_for_phase(client, namespace, "r1", "Succeeded")
        before = {
            sr.spec.step_id: sr.metadata.uid
            for sr in await list_stepruns(client, namespace)
            if sr.metadata
        }
        await merge_patch_run(
            client,
            namespace,
            "r1",
            {"metadata": {"annotations": {keys.ANNOTATION_REDRIVE_FROM_STEP: "b:t1"}}},
        )
        run = await wait_for_run(
            client,
            namespace,
            "r1",
            lambda r: (
                r.metadata is not None
                and (r.metadata.annotations or {}).get(keys.ANNOTATION_REDRIVE_FROM_STEP_OBSERVED)
                == "b:t1"
                and r.status is not None
                and r.status.phase == "Succeeded"
            ),
            "the redriven run to succeed again",
        )
        after = {
            sr.spec.step_id: sr.metadata.uid
            for sr in await list_stepruns(client, namespace)
            if sr.metadata
        }
    assert after["a"] == before["a"]
    assert after["b"] != before["b"] and after["c"] != before["c"]
    assert run.status is not None and run.status.phase == "Succeeded"
    created = {v.metadata.uid for v in sdk.log.versions if v.metadata}
    assert len(created) == 5  # a once, b and c twice


async def test_the_story_timeout_times_the_run_out_and_stops_its_steprun(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    story = {
        "steps": [engram_step("forever")],
        "policy": {"timeouts": {"story": "2s", "gracefulShutdownTimeout": "1s"}},
    }
    await create_story(client, namespace, "bounded", story)
    async with (
        running_controller(client, namespace),
        fake_sdk(client, namespace, behaviour_by_step({"forever": "hold"})),
    ):
        await create_run(client, namespace, "t1", "bounded")
        run = await wait_for_phase(client, namespace, "t1", DONE)

        async def gone() -> bool | None:
            return True if await list_stepruns(client, namespace) == [] else None

        await poll_until_async(gone, within=30, what="the timed-out StepRun to be deleted")
    assert run.status is not None
    assert run.status.phase == "Timeout"
    assert run.status.message == "StoryRun exceeded timeout of 2s."
    degraded = next(c for c in run.status.conditions or [] if c.type == "Degraded")
    assert degraded.status == "True" and degraded.reason == "TimedOut"


async def test_an_invalid_story_fails_its_run_naming_step_and_field_while_others_go_on(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    await create_story(
        client,
        namespace,
        "bad-duration",
        {"steps": [{"name": "nap", "type": "sleep", "with": {"duration": "soon"}}]},
    )
    await create_story(
        client,
        namespace,
        "bad-template",
        {"steps": [engram_step("guarded", **{"if": "{{ nosuchfunc .inputs }}"})]},
    )
    await create_story(client, namespace, "fine", {"steps": [engram_step("ok")]})
    async with running_controller(client, namespace), fake_sdk(client, namespace, echo_success):
        await create_run(client, namespace, "bad1", "bad-duration")
        await create_run(client, namespace, "bad2", "bad-template")
        await create_run(client, namespace, "good", "fine")
        bad1 = await wait_for_phase(client, namespace, "bad1", DONE)
        bad2 = await wait_for_phase(client, namespace, "bad2", DONE)
        good = await wait_for_phase(client, namespace, "good", DONE)
    assert good.status is not None and good.status.phase == "Succeeded"
    for run, step, field in ((bad1, "nap", "with.duration"), (bad2, "guarded", "if")):
        assert run.status is not None
        assert run.status.phase == "Failed"
        ready = next(c for c in run.status.conditions or [] if c.type == "Ready")
        assert f"'{step}'" in ready.message and field in ready.message, ready.message


async def test_inputs_as_deep_as_allowed_run_through_a_tree_schema_and_deeper_ones_fail(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    """`spec.inputs` may nest MAX_INPUTS_DEPTH levels: such a run validates against a
    self-referencing schema and hands the value to its step. One level more fails at once,
    naming the limit, instead of a RecursionError somewhere inside every reconcile."""
    await create_engram(client, namespace)
    tree = {"type": ["object", "string"], "properties": {"n": {"$ref": "#/$defs/tree"}}}
    story = {
        "inputsSchema": {
            "type": "object",
            "$defs": {"tree": tree},
            "properties": {"x": {"$ref": "#/$defs/tree"}},
        },
        "steps": [engram_step("carry", **{"with": {"v": "{{ inputs.x }}"}})],
    }
    await create_story(client, namespace, "deep", story)
    async with running_controller(client, namespace), fake_sdk(client, namespace, echo_success):
        await create_run(
            client, namespace, "at-limit", "deep", {"x": nested_value(MAX_INPUTS_DEPTH - 1)}
        )
        await create_run(client, namespace, "over", "deep", {"x": nested_value(MAX_INPUTS_DEPTH)})
        at_limit = await wait_for_phase(client, namespace, "at-limit", DONE)
        over = await wait_for_phase(client, namespace, "over", DONE)
    assert at_limit.status is not None and at_limit.status.phase == "Succeeded", at_limit.status
    carried = await _steprun(client, namespace, "carry")
    assert carried is not None and carried.status is not None
    assert carried.status.output is not None  # the fake SDK echoes the resolved input
    assert carried.status.output["v"] == nested_value(MAX_INPUTS_DEPTH - 1)
    assert over.status is not None and over.status.phase == "Failed"
    ready = next(c for c in over.status.conditions or [] if c.type == "Ready")
    assert ready.reason == "InputTooLarge"
    assert ready.message == f"spec.inputs nesting exceeds maximum depth of {MAX_INPUTS_DEPTH}"


async def test_fifty_runs_with_concurrency_three_never_show_more_than_three_active_stepruns(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    story = {
        "steps": [engram_step("one"), engram_step("two", needs=["one"])],
        "policy": {"concurrency": 3},
    }
    await create_story(client, namespace, "limited", story)
    async with (
        running_controller(client, namespace, workers=4),
        fake_sdk(client, namespace, echo_success) as sdk,
    ):
        async with anyio.create_task_group() as group:
            for i in range(50):
                group.start_soon(create_run, client, namespace, f"run-{i:02d}", "limited")
        for i in range(50):
            await wait_for_phase(client, namespace, f"run-{i:02d}", DONE, within=180)
    peak = _peak_active(sdk)
    assert len({v.metadata.uid for v in sdk.log.versions if v.metadata}) == 100
    assert 0 < peak <= 3, peak


def _peak_active(sdk: FakeSdk) -> int:
    """The most StepRuns not yet terminal at any point of the watch history."""
    latest: dict[str, str | None] = {}
    peak = 0
    for version in sdk.log.versions:
        name = version.metadata.name if version.metadata else ""
        latest[name or ""] = version.status.phase if version.status else None
        peak = max(peak, sum(1 for phase in latest.values() if phase not in TERMINAL))
    return peak


async def test_a_restart_mid_run_creates_no_duplicate_and_loses_no_decision(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    story = {
        "steps": [
            engram_step("a"),
            {"name": "approve", "type": "gate", "needs": ["a"]},
            engram_step("b", needs=["approve"]),
        ]
    }
    await create_story(client, namespace, "restartable", story)
    async with fake_sdk(client, namespace, echo_success) as sdk:
        async with running_controller(client, namespace):
            await create_run(client, namespace, "m1", "restartable")
            await wait_for_run(
                client, namespace, "m1", lambda r: step_phase(r, "approve") == "Paused", "the gate"
            )
        # Decided while no controller runs: the next leader must act on it.
        await merge_patch_run(
            client,
            namespace,
            "m1",
            {"status": {"gates": {"approve": {"state": "Approved"}}}},
            status=True,
        )
        async with running_controller(client, namespace):
            run = await wait_for_phase(client, namespace, "m1", DONE)
        uids = sdk.log.uids
    assert run.status is not None and run.status.phase == "Succeeded"
    assert sorted(uids) == ["m1-a", "m1-b"]
    assert all(len(ids) == 1 for ids in uids.values()), uids


async def test_a_lower_priority_run_waits_for_higher_priority_work_of_its_queue(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    await create_story(
        client,
        namespace,
        "urgent",
        {"steps": [engram_step("hot")], "policy": {"queue": "shared", "priority": 10}},
    )
    await create_story(
        client,
        namespace,
        "relaxed",
        {"steps": [engram_step("cold")], "policy": {"queue": "shared", "priority": 1}},
    )
    held = {"hot": "hold"}
    async with (
        running_controller(client, namespace),
        fake_sdk(client, namespace, behaviour_by_step(held)) as sdk,
    ):
        await create_run(client, namespace, "hi", "urgent")
        hot = await poll_until_async(
            lambda: _steprun(client, namespace, "hot"), within=30, what="the urgent StepRun"
        )
        await create_run(client, namespace, "lo", "relaxed")
        queued = await wait_for_run(
            client,
            namespace,
            "lo",
            lambda r: r.status is not None and (r.status.step_states or {}).get("cold") is not None,
            "the relaxed run's step to be queued",
        )
        assert queued.status is not None and queued.status.step_states is not None
        assert queued.status.step_states["cold"].message == "Queued due to higher-priority work"
        assert await _steprun(client, namespace, "cold") is None
        held.clear()  # the urgent step completes: the relaxed run is woken and goes on
        sdk.retrigger(hot)
        done = await wait_for_phase(client, namespace, "lo", DONE)
    assert done.status is not None and done.status.phase == "Succeeded"


async def test_a_full_redrive_deletes_every_child_and_runs_again(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    await create_story(
        client, namespace, "twice", {"steps": [engram_step("a"), engram_step("b", needs=["a"])]}
    )
    async with (
        running_controller(client, namespace),
        fake_sdk(client, namespace, echo_success) as sdk,
    ):
        await create_run(client, namespace, "fr", "twice")
        first = await wait_for_phase(client, namespace, "fr", "Succeeded")
        await merge_patch_run(
            client,
            namespace,
            "fr",
            {"metadata": {"annotations": {keys.ANNOTATION_REDRIVE_TOKEN: "again"}}},
        )
        again = await wait_for_run(
            client,
            namespace,
            "fr",
            lambda r: (
                r.metadata is not None
                and (r.metadata.annotations or {}).get(keys.ANNOTATION_REDRIVE_OBSERVED) == "again"
                and r.status is not None
                and r.status.phase == "Succeeded"
            ),
            "the redriven run to succeed again",
        )
    assert first.status is not None and again.status is not None
    assert first.status.attempts == 1 and again.status.attempts == 2
    assert len({v.metadata.uid for v in sdk.log.versions if v.metadata}) == 4


async def test_children_go_after_the_ttl_and_the_run_after_its_retention(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    policy = {"execution": {"job": {"ttlSecondsAfterFinished": 1, "storyRunRetentionSeconds": 3}}}
    await create_story(
        client, namespace, "short-lived", {"steps": [engram_step("a")], "policy": policy}
    )
    async with running_controller(client, namespace), fake_sdk(client, namespace, echo_success):
        await create_run(client, namespace, "tmp", "short-lived")
        done = await wait_for_phase(client, namespace, "tmp", "Succeeded")
        cleaned = await wait_for_run(
            client,
            namespace,
            "tmp",
            lambda r: r.status is not None and r.status.children_cleaned_at is not None,
            "the children to be cleaned after the TTL",
        )
        assert await list_stepruns(client, namespace) == []

        await wait_until_deleted(client, namespace, "tmp", "the run to be deleted after retention")
    assert done.status is not None and cleaned.status is not None
    assert done.status.finished_at is not None and cleaned.status.children_cleaned_at is not None
    assert cleaned.status.children_cleaned_at >= done.status.finished_at


async def test_deleting_a_run_deletes_its_children_first_then_releases_the_finalizer(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    await create_story(client, namespace, "deletable", {"steps": [engram_step("held")]})
    async with (
        running_controller(client, namespace),
        fake_sdk(client, namespace, behaviour_by_step({"held": "hold"})),
    ):
        await create_run(client, namespace, "del", "deletable")
        await poll_until_async(
            lambda: _steprun(client, namespace, "held"), within=30, what="the StepRun"
        )
        run = await get_run(client, namespace, "del")
        assert run.metadata is not None
        assert keys.FINALIZER_STORYRUN in (run.metadata.finalizers or [])
        await client.delete(STORY_RUNS, "del", namespace)

        await wait_until_deleted(client, namespace, "del", "the run to be deleted")
    assert await list_stepruns(client, namespace) == []
