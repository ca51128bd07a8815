"""The StepRun controller against the real apiserver: Jobs, the pod contract, completion,
retries, blocking references, deletion and adoption. The test plays the kubelet, the Job
controller and the Engram SDK (`steprun_support.FakeKubelet`)."""

from __future__ import annotations

import datetime
import json
from typing import Any

import anyio
import pytest

from runs_controller.api.k8s import Job
from runs_controller.api.runs.steprun import StepRun
from runs_controller.kube.client import KubeClient
from runs_controller.kube.errors import NotFound
from runs_controller.kube.resources import JOBS, STEP_RUNS
from runs_controller.runtime.informer import Event, Informer, InformerOptions
from tests.integration.steprun_support import (
    Attempt,
    crash,
    echo,
    fake_kubelet,
    get_steprun,
    job_env,
    manual_steprun,
    phase_of,
    scripted,
    succeed,
    trigger_data,
    wait_for_event,
    wait_for_job,
    wait_for_steprun,
    wait_until_gone,
)
from tests.integration.storyrun_support import (
    create_engram,
    create_run,
    create_story,
    engram_step,
    running_controller,
    wait_for_phase,
)

pytestmark = pytest.mark.timeout(180)

FAST_RETRY = {"maxRetries": 2, "delay": "200ms", "backoff": "constant"}


def _conditions(steprun: StepRun) -> dict[str, tuple[str, str | None]]:
    status = steprun.status
    return {c.type: (c.status, c.reason) for c in (status.conditions if status else None) or []}


class StoryRunWatch:
    """Every phase a StoryRun was seen in, in order (a watch, not a poll)."""

    def __init__(self, client: KubeClient, namespace: str, name: str) -> None:
        from runs_controller.api.runs.storyrun import StoryRun
        from runs_controller.kube.resources import STORY_RUNS

        self.name = name
        self.phases: list[str | None] = []
        self.informer = Informer(client, STORY_RUNS, StoryRun, options=InformerOptions(namespace))
        self.informer.add_handler(self._seen)

    def _seen(self, event: Event[Any]) -> None:
        obj = event.obj
        if obj.metadata is not None and obj.metadata.name == self.name:
            phase = obj.status.phase if obj.status else None
            if not self.phases or self.phases[-1] != phase:
                self.phases.append(phase)


async def test_a_chain_of_engram_steps_runs_jobs_and_passes_outputs_through_the_environment(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    spec = {
        "steps": [
            engram_step("fetch", **{"with": {"url": "{{ inputs.url }}"}}),
            engram_step("parse", **{"with": {"from": "{{ steps.fetch.output.url }}/x"}}),
            engram_step("store", needs=["parse"], **{"with": {"n": 3}}),
        ],
        "output": {"stored": "{{ steps.parse.output.from }}"},
    }
    await create_story(client, namespace, "chain", spec)
    async with (
        running_controller(client, namespace),
        fake_kubelet(client, namespace, echo()) as kubelet,
    ):
        await create_run(client, namespace, "c1", "chain", {"url": "http://a"})
        run = await wait_for_phase(client, namespace, "c1", {"Succeeded", "Failed"})
    assert run.status is not None and run.status.phase == "Succeeded", run.status
    assert run.status.output == {"stored": "http://a/x"}
    # One Job per step, named like its StepRun, never a second one.
    assert {name: len(uids) for name, uids in kubelet.jobs.uids.items()} == {
        "c1-fetch": 1,
        "c1-parse": 1,
        "c1-store": 1,
    }
    parse = await get_steprun(client, namespace, "c1-parse")
    assert parse.status is not None
    assert parse.status.phase == "Succeeded"
    assert parse.status.output == {"from": "http://a/x", "step": "parse"}
    # Conditions follow the SDK's Succeeded (ruling 30), lastOutputAt is stamped (ruling 5).
    assert _conditions(parse) == {
        "Ready": ("True", "Completed"),
        "Progressing": ("False", "Completed"),
        "Degraded": ("False", "Completed"),
    }
    assert parse.status.last_output_at is not None
    # The rendered inputs travel in the Job only; the StepRun keeps the raw template.
    assert parse.spec.input == {"from": "{{ steps.fetch.output.url }}/x"}
    job = await client.get(JOBS, "c1-parse", namespace, type=Job)
    assert trigger_data(job) == {"from": "http://a/x"}
    assert job.spec is not None
    pod = job.spec.template.spec
    assert pod.automount_service_account_token is True
    assert pod.service_account_name == "c1-engram-runner"
    assert [c.name for c in pod.containers] == ["engram"]
    assert pod.containers[0].image == "example/echo:1"
    owners = job.metadata.owner_references if job.metadata else None
    assert [(o.kind, o.name, o.controller) for o in owners or []] == [("StepRun", "c1-parse", True)]


async def test_a_fan_out_and_join_completes_when_every_job_completes(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    branches = [engram_step(f"b{i}", **{"with": {"i": i}}) for i in range(4)]
    spec = {
        "steps": [
            *branches,
            engram_step(
                "join",
                needs=[f"b{i}" for i in range(4)],
                **{"with": {"sum": "{{ add steps.b0.output.i steps.b3.output.i }}"}},
            ),
        ]
    }
    await create_story(client, namespace, "fan", spec)
    async with running_controller(client, namespace), fake_kubelet(client, namespace, echo()):
        await create_run(client, namespace, "f1", "fan")
        run = await wait_for_phase(client, namespace, "f1", {"Succeeded", "Failed"})
    assert run.status is not None and run.status.phase == "Succeeded", run.status
    join = await get_steprun(client, namespace, "f1-join")
    assert join.status is not None and join.status.output == {"sum": "3", "step": "join"}


async def test_exit_137_is_retried_with_a_new_job_after_the_delay_and_then_succeeds(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    spec = {"steps": [engram_step("work", execution={"retry": FAST_RETRY})]}
    await create_story(client, namespace, "oom", spec)
    behaviour = scripted({"work": [crash(137), succeed()]})
    async with (
        running_controller(client, namespace) as manager,
        fake_kubelet(client, namespace, behaviour) as kubelet,
    ):
        await create_run(client, namespace, "o1", "oom")
        retrying = await wait_for_steprun(
            client,
            namespace,
            "o1-work",
            lambda sr: sr.status is not None and (sr.status.retries or 0) == 1,
            "the retry to be scheduled",
        )
        run = await wait_for_phase(client, namespace, "o1", {"Succeeded", "Failed"})
        retries = manager.registry.get_sample_value(
            "bobrapet_steprun_retries_total",
            {"namespace": namespace, "engram": "echo", "reason": "retry"},
        )
    assert retries == 1.0
    event = await wait_for_event(client, namespace, "o1-work", "JobRetryScheduled")
    assert event.note == "Scheduled retry 1/2 in 200ms"
    assert retrying.status is not None
    assert retrying.status.exit_code == 137
    assert retrying.status.exit_class == "retry"
    assert run.status is not None and run.status.phase == "Succeeded", run.status
    # Two attempts, two Jobs under the same name (the first deleted before the second).
    assert len(kubelet.jobs.uids["o1-work"]) == 2
    work = await get_steprun(client, namespace, "o1-work")
    assert work.status is not None
    assert (work.status.phase, work.status.retries) == ("Succeeded", 1)
    assert work.status.next_retry_at is None


async def test_exit_1_is_terminal_and_never_retried(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    spec = {"steps": [engram_step("work", execution={"retry": FAST_RETRY})]}
    await create_story(client, namespace, "bug", spec)
    async with (
        running_controller(client, namespace),
        fake_kubelet(client, namespace, scripted({"work": [crash(1)]})) as kubelet,
    ):
        await create_run(client, namespace, "b1", "bug")
        run = await wait_for_phase(client, namespace, "b1", {"Succeeded", "Failed"})
    assert run.status is not None and run.status.phase == "Failed"
    work = await get_steprun(client, namespace, "b1-work")
    assert work.status is not None
    assert (work.status.phase, work.status.exit_code, work.status.exit_class) == (
        "Failed",
        1,
        "terminal",
    )
    assert (work.status.retries or 0) == 0
    assert work.status.last_failure_msg == "Job execution failed. Check pod logs for details."
    assert _conditions(work)["Degraded"] == ("True", "ExecutionFailed")
    assert len(kubelet.jobs.uids["b1-work"]) == 1


async def test_an_sdk_reported_rate_limited_failure_is_retried_and_the_run_never_fails(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    spec = {"steps": [engram_step("call", execution={"retry": FAST_RETRY})]}
    await create_story(client, namespace, "limited", spec)
    limited = Attempt("Failed", None, "rateLimited", "failed", 1)
    watch = StoryRunWatch(client, namespace, "r1")
    async with anyio.create_task_group() as group:
        group.start_soon(watch.informer.run)
        async with (
            running_controller(client, namespace),
            fake_kubelet(client, namespace, scripted({"call": [limited, succeed()]})) as kubelet,
        ):
            await create_run(client, namespace, "r1", "limited")
            run = await wait_for_phase(client, namespace, "r1", {"Succeeded", "Failed"})
        group.cancel_scope.cancel()
    assert run.status is not None and run.status.phase == "Succeeded", run.status
    assert "Failed" not in watch.phases, watch.phases
    call = await get_steprun(client, namespace, "r1-call")
    assert call.status is not None and call.status.retries == 1
    assert len(kubelet.jobs.uids["r1-call"]) == 2


async def test_a_missing_engram_blocks_the_steprun_until_the_engram_is_created(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)  # the template, and an Engram for the run's story
    await create_story(client, namespace, "late", {"steps": [engram_step("work")]})
    await create_run(client, namespace, "l1", "late")
    await manual_steprun(client, namespace, "l1", "extra", "late-engram")
    async with running_controller(client, namespace):
        blocked = await wait_for_steprun(
            client, namespace, "l1-extra", lambda sr: phase_of(sr) == "Blocked", "Blocked"
        )
        assert _conditions(blocked)["Ready"] == ("False", "ReferenceNotFound")
        assert blocked.status is not None
        assert blocked.status.last_failure_msg == "Engram 'late-engram' not found"
        with pytest.raises(NotFound):
            await client.get(JOBS, "l1-extra", namespace, type=Job)
        await create_engram(client, namespace, "late-engram")
        await wait_for_job(client, namespace, "l1-extra")
        running = await wait_for_steprun(
            client, namespace, "l1-extra", lambda sr: phase_of(sr) == "Running", "Running"
        )
    assert _conditions(running)["Ready"] == ("False", "Scheduled")
    assert running.status is not None and running.status.last_failure_msg is None


async def test_a_job_too_large_to_store_fails_the_step_with_input_too_large(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    await create_story(
        client, namespace, "big", {"steps": [engram_step("work", ref={"name": "none"})]}
    )
    await create_run(client, namespace, "g1", "big")
    # The StepRun fits in etcd; its Job carries the input twice (BUBU_TRIGGER_DATA and
    # BUBU_STEP_CONFIG) and does not. (The run's own step waits for a missing Engram.)
    await manual_steprun(client, namespace, "g1", "huge", "echo", input={"blob": "x" * 1_000_000})
    async with running_controller(client, namespace):
        failed = await wait_for_steprun(
            client, namespace, "g1-huge", lambda sr: phase_of(sr) == "Failed", "Failed"
        )
    assert _conditions(failed)["Ready"][1] == "InputTooLarge"
    assert failed.status is not None and failed.status.last_failure_msg is not None
    assert "reduce the step's inputs" in failed.status.last_failure_msg
    with pytest.raises(NotFound):
        await client.get(JOBS, "g1-huge", namespace, type=Job)


async def test_a_setting_that_does_not_parse_is_left_out_of_the_job_with_a_warning_event(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    """Contract 4.5: an invalid quantity is logged and skipped, and the step runs. The
    reference only logs it; the Warning event shows it where `kubectl describe` looks."""
    await create_engram(client, namespace)
    await create_story(
        client, namespace, "odd", {"steps": [engram_step("work", ref={"name": "none"})]}
    )
    await create_run(client, namespace, "q1", "odd")
    await manual_steprun(
        client, namespace, "q1", "odd", "echo", executionOverrides={"cpuRequest": "lots"}
    )
    async with running_controller(client, namespace):
        event = await wait_for_event(client, namespace, "q1-odd", "ExecutionConfigSkipped")
        job = await wait_for_job(client, namespace, "q1-odd")
    assert event.type == "Warning"
    assert "executionOverrides.cpuRequest 'lots' is not a valid quantity" in (event.note or "")
    assert job.spec is not None and job.spec.template.spec is not None
    container = job.spec.template.spec.containers[0]
    assert container.resources is not None and container.resources.requests is not None
    assert container.resources.requests["cpu"] == "100m"  # the operator default, not 'lots'


async def test_a_foreign_job_under_the_steprun_name_fails_the_step_and_is_left_alone(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    await create_story(client, namespace, "taken", {"steps": [engram_step("work")]})
    foreign = {
        "metadata": {"name": "x1-work", "namespace": namespace},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}
            }
        },
    }
    before = await client.create(JOBS, foreign, namespace, type=Job)
    async with running_controller(client, namespace):
        await create_run(client, namespace, "x1", "taken")
        failed = await wait_for_steprun(
            client, namespace, "x1-work", lambda sr: phase_of(sr) == "Failed", "Failed"
        )
        assert _conditions(failed)["Ready"][1] == "ChildConflict"
        # Deleting the StepRun does not delete a Job it does not control.
        await client.delete(STEP_RUNS, "x1-work", namespace)
        await wait_until_gone(client, STEP_RUNS, namespace, "x1-work", StepRun)
    after = await client.get(JOBS, "x1-work", namespace, type=Job)
    assert after.metadata is not None and before.metadata is not None
    assert after.metadata.uid == before.metadata.uid
    assert after.metadata.deletion_timestamp is None


async def test_a_deleted_steprun_takes_its_job_with_it(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    await create_story(client, namespace, "del", {"steps": [engram_step("work")]})
    async with running_controller(client, namespace):
        await create_run(client, namespace, "d1", "del")
        job = await wait_for_job(client, namespace, "d1-work")
        await client.delete(STEP_RUNS, "d1-work", namespace)
        await wait_until_gone(client, JOBS, namespace, "d1-work", Job)
        await wait_until_gone(client, STEP_RUNS, namespace, "d1-work", StepRun)
    assert job.metadata is not None


async def test_a_restarted_controller_adopts_the_running_job_and_creates_no_second_one(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    await create_story(client, namespace, "adopt", {"steps": [engram_step("work")]})
    async with running_controller(client, namespace):
        await create_run(client, namespace, "a1", "adopt")
        job = await wait_for_job(client, namespace, "a1-work")
        await wait_for_steprun(
            client, namespace, "a1-work", lambda sr: phase_of(sr) == "Running", "Running"
        )
    assert job.metadata is not None
    async with (
        running_controller(client, namespace),
        fake_kubelet(client, namespace, echo()) as kubelet,
    ):
        # The kubelet finishes the Job that was there before the restart.
        await kubelet.play(job, await get_steprun(client, namespace, "a1-work"), succeed({"ok": 1}))
        run = await wait_for_phase(client, namespace, "a1", {"Succeeded", "Failed"})
    assert run.status is not None and run.status.phase == "Succeeded"
    current = await client.get(JOBS, "a1-work", namespace, type=Job)
    assert current.metadata is not None and current.metadata.uid == job.metadata.uid
    assert set(kubelet.jobs.uids) == {"a1-work"}
    assert kubelet.jobs.uids["a1-work"] == [job.metadata.uid]


async def test_the_job_environment_carries_the_contract_variables(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    spec = {
        "version": "2.1.0",
        "steps": [
            engram_step("first", **{"with": {"greeting": "hi {{ inputs.name }}"}}),
            engram_step("second", **{"with": {"echo": "{{ steps.first.output.greeting }}!"}}),
        ],
    }
    await create_story(client, namespace, "env", spec)
    async with running_controller(client, namespace), fake_kubelet(client, namespace, echo()):
        await create_run(client, namespace, "e1", "env", {"name": "ada"})
        await wait_for_phase(client, namespace, "e1", {"Succeeded", "Failed"})
    job = await client.get(JOBS, "e1-second", namespace, type=Job)
    steprun = await get_steprun(client, namespace, "e1-second")
    env = job_env(job)
    assert json.loads(env["BUBU_TRIGGER_DATA"]) == {"echo": "hi ada!"}
    assert json.loads(env["BUBU_STEP_CONFIG"]) == {"echo": "hi ada!"}
    context = json.loads(env["BUBU_TEMPLATE_CONTEXT"])
    assert context["inputs"] == {"name": "ada"}
    assert context["steps"]["first"]["output"] == {"greeting": "hi ada", "step": "first"}
    assert env["BUBU_STORY_NAME"] == "env"
    assert env["BUBU_STORY_VERSION"] == "2.1.0"
    assert env["BUBU_STORYRUN_ID"] == "e1"
    assert env["BUBU_STEP_NAME"] == "second"
    assert env["BUBU_STEPRUN_NAME"] == "e1-second"
    assert env["BUBU_STEPRUN_NAMESPACE"] == namespace
    assert env["BUBU_ENGRAM_NAME"] == "echo"
    assert env["BUBU_EXECUTION_MODE"] == "batch"
    assert env["BUBU_STEP_TIMEOUT"] == "30m0s"
    assert env["BUBU_MAX_INLINE_SIZE"] == "4096"
    assert env["BUBU_MAX_RECURSION_DEPTH"] == "32"
    assert env["BUBU_DEBUG"] == "false"
    assert steprun.status is not None and steprun.status.started_at is not None
    # The Job was built on the StepRun's first look, before any start: its creation time.
    assert steprun.metadata is not None and steprun.metadata.creation_timestamp is not None
    started = datetime.datetime.fromisoformat(env["BUBU_STARTED_AT"].replace("Z", "+00:00"))
    assert started == steprun.metadata.creation_timestamp
    assert job.spec is not None
    assert job.spec.active_deadline_seconds == 30 * 60 + 120
    assert job.spec is not None and job.spec.template.spec is not None
    container = job.spec.template.spec.containers[0]
    downward = {
        var.name: (var.value_from or {}).get("fieldRef", {}).get("fieldPath")
        for var in container.env or []
        if var.value_from
    }
    assert downward == {
        "BUBU_POD_NAME": "metadata.name",
        "BUBU_POD_NAMESPACE": "metadata.namespace",
        "BUBU_SERVICE_ACCOUNT_NAME": "spec.serviceAccountName",
    }
