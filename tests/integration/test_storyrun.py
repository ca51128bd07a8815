"""The StoryRun controller against the real apiserver, with the test playing the Engram SDK."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from runs_controller.api.k8s import Role, RoleBinding, ServiceAccount
from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.kube.resources import (
    ROLE_BINDINGS,
    ROLES,
    SERVICE_ACCOUNTS,
    STEP_RUNS,
    ResourceType,
)
from tests.integration.storyrun_support import (
    DONE,
    create_engram,
    create_run,
    create_story,
    echo_success,
    engram_step,
    fake_sdk,
    get_run,
    list_stepruns,
    running_controller,
    wait_for_phase,
)

pytestmark = pytest.mark.timeout(180)


DIAMOND = {
    "steps": [
        engram_step("fetch", **{"with": {"value": "{{ inputs.seed }}"}}),
        engram_step("left", **{"with": {"got": "{{ steps.fetch.output.value }}-l"}}),
        engram_step("right", **{"with": {"got": '{{ (index .steps "fetch").output.value }}-r'}}),
        engram_step(
            "join",
            needs=["left", "right"],
            **{"with": {"both": "{{ steps.left.output.got }}+{{ steps.right.output.got }}"}},
        ),
    ],
    "output": {"result": "{{ steps.join.output.both }}"},
}


async def test_a_diamond_runs_to_succeeded_with_outputs_flowing_through_with(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    await create_story(client, namespace, "diamond", DIAMOND)
    async with running_controller(client, namespace), fake_sdk(client, namespace, echo_success):
        await create_run(client, namespace, "d1", "diamond", {"seed": "s"})
        run = await wait_for_phase(client, namespace, "d1", {"Succeeded", "Failed"})
    assert run.status is not None
    assert run.status.phase == "Succeeded", run.status
    assert run.status.output == {"result": "s-l+s-r"}
    states = run.status.step_states or {}
    assert {name: state.phase for name, state in states.items()} == {
        "fetch": "Succeeded",
        "left": "Succeeded",
        "right": "Succeeded",
        "join": "Succeeded",
    }
    assert run.status.steps_total == 4
    assert run.status.steps_complete == 4
    conditions = {c.type: c.status for c in run.status.conditions or []}
    assert conditions == {"Ready": "True", "Progressing": "False", "Degraded": "False"}
    stepruns = await list_stepruns(client, namespace)
    assert sorted(sr.spec.step_id for sr in stepruns) == ["fetch", "join", "left", "right"]
    for resource, kind in (
        (SERVICE_ACCOUNTS, ServiceAccount),
        (ROLES, Role),
        (ROLE_BINDINGS, RoleBinding),
    ):
        runner = await client.get(resource, "d1-engram-runner", namespace, type=kind)
        owners = runner.metadata.owner_references if runner.metadata else None
        assert [(o.kind, o.name) for o in owners or []] == [("StoryRun", "d1")]
    role = await client.get(ROLES, "d1-engram-runner", namespace, type=Role)
    assert any("stepruns" in (rule.resources or []) for rule in role.rules or [])
    join = next(sr for sr in stepruns if sr.spec.step_id == "join")
    # Templates are resolved by the StepRun side: the StepRun carries the raw `with`.
    assert join.spec.input == {"both": "{{ steps.left.output.got }}+{{ steps.right.output.got }}"}


async def test_a_cycle_and_an_unknown_dependency_fail_with_the_contract_messages(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_story(
        client,
        namespace,
        "cycle",
        {"steps": [engram_step("a", needs=["b"]), engram_step("b", needs=["a"])]},
    )
    await create_story(client, namespace, "unknown", {"steps": [engram_step("a", needs=["ghost"])]})
    async with running_controller(client, namespace):
        await create_run(client, namespace, "c1", "cycle")
        await create_run(client, namespace, "u1", "unknown")
        cycle = await wait_for_phase(client, namespace, "c1", "Failed")
        unknown = await wait_for_phase(client, namespace, "u1", "Failed")
    assert cycle.status is not None and unknown.status is not None
    assert cycle.status.message == (
        "Invalid story dependency graph: dependency cycle detected involving step(s): a, b"
    )
    assert unknown.status.message == (
        "Invalid story dependency graph: unknown step dependencies: a->ghost"
    )
    assert (unknown.status.error or {}).get("type") == "InvalidConfiguration"
    ready = next(c for c in unknown.status.conditions or [] if c.type == "Ready")
    assert ready.reason == "InvalidConfiguration"


async def test_a_run_waits_pending_for_its_story_then_runs(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    async with running_controller(client, namespace), fake_sdk(client, namespace, echo_success):
        await create_run(client, namespace, "early", "later")
        pending = await wait_for_phase(client, namespace, "early", "Pending")
        assert pending.status is not None
        assert pending.status.message == f"Waiting for Story '{namespace}/later' to be created"
        await create_story(client, namespace, "later", {"steps": [engram_step("only")]})
        done = await wait_for_phase(client, namespace, "early", "Succeeded")
    assert done.status is not None and done.status.started_at is not None
    assert done.status.attempts == 1
    run = await get_run(client, namespace, "early")
    assert run.metadata is not None


async def test_a_run_refuses_an_engram_runner_service_account_it_does_not_own(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    await create_story(client, namespace, "plain", {"steps": [engram_step("only")]})
    foreign = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "sa1-engram-runner"},
    }
    await client.create(SERVICE_ACCOUNTS, foreign, namespace, type=ServiceAccount)
    async with running_controller(client, namespace):
        await create_run(client, namespace, "sa1", "plain")
        run = await wait_for_phase(client, namespace, "sa1", "Failed")
    assert run.status is not None
    assert run.status.message == (
        f"ServiceAccount {namespace}/sa1-engram-runner already exists and is not owned by "
        "StoryRun sa1: refusing to run its steps under it"
    )
    assert await list_stepruns(client, namespace) == []


async def test_an_if_that_cannot_be_evaluated_fails_its_step_instead_of_hanging_the_run(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    # An evaluation error (not a syntax error) once everything the condition reads is there:
    # §3.5 would keep the step waiting forever with nothing saying why (the hostile-input
    # suite found it, docs/reliability.md); the step fails naming its `if`, and no StepRun.
    guarded = engram_step("guarded", **{"if": "{{ .inputs.missing.deeper }}"})
    await create_story(client, namespace, "undecided", {"steps": [guarded]})
    async with running_controller(client, namespace):
        await create_run(client, namespace, "u1", "undecided")
        run = await wait_for_phase(client, namespace, "u1", DONE)
    assert run.status is not None and run.status.phase == "Failed"
    assert run.status.attempts == 1 and run.status.started_at is not None
    states = run.status.step_states or {}
    assert states["guarded"].phase == "Failed"
    assert states["guarded"].message == "step 'guarded': if: missing key at inputs.missing"
    assert (run.status.message or "").startswith("Story completed with failed step: guarded.")
    assert await list_stepruns(client, namespace) == []


@dataclass
class Overlap:
    """Shared by the client and the fenced views the controller makes of it (copies)."""

    expected: int
    in_flight: int = 0
    most: int = 0
    reached: anyio.Event = field(default_factory=anyio.Event)


class OverlapProbe(KubeClient):
    """The controller's client; each StepRun create waits (up to a deadline) until
    `overlap.expected` creates are in flight at once, and the largest overlap is kept."""

    overlap: Overlap

    async def create(self, rt: ResourceType, obj: Any, *args: Any, **kwargs: Any) -> Any:
        if rt is not STEP_RUNS:
            return await super().create(rt, obj, *args, **kwargs)
        overlap = self.overlap
        overlap.in_flight += 1
        overlap.most = max(overlap.most, overlap.in_flight)
        if overlap.in_flight >= overlap.expected:
            overlap.reached.set()
        try:
            with anyio.move_on_after(10):  # a deadline: creates made one by one never overlap
                await overlap.reached.wait()
            return await super().create(rt, obj, *args, **kwargs)
        finally:
            overlap.in_flight -= 1


async def test_the_stepruns_of_one_pass_are_created_concurrently(
    client: KubeClient, kubeconfig: Path, namespace: str, crds: list[str]
) -> None:
    """A fan-out costs about one create round trip per pass, not one per step."""
    await create_engram(client, namespace)
    overlap = Overlap(expected=3)
    fanout = {"steps": [engram_step(f"f{i}") for i in range(overlap.expected)]}
    await create_story(client, namespace, "fanout", fanout)
    probe = OverlapProbe(await load_kubeconfig(kubeconfig))
    probe.overlap = overlap
    async with (
        probe,
        running_controller(probe, namespace),
        fake_sdk(client, namespace, echo_success),
    ):
        await create_run(client, namespace, "f1", "fanout")
        run = await wait_for_phase(client, namespace, "f1", {"Succeeded", "Failed"})
    assert run.status is not None
    assert run.status.phase == "Succeeded", run.status
    assert overlap.most == overlap.expected
