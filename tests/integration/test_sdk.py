"""The Python SDK against the real apiserver: the example Engram run as a local process with
the environment of its Job, failures the controller retries, and `execute_once` under races
and a dead holder (controller-behaviour.md §4.6 and §5)."""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from runs_controller.api.codec import MicroTime
from runs_controller.api.k8s import Job
from runs_controller.api.runs.effectclaim import EffectClaim
from runs_controller.api.runs.steprun import StepRun
from runs_controller.engine.naming import derive_effectclaim_name
from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.kube.errors import Forbidden
from runs_controller.kube.resources import EFFECT_CLAIMS, STEP_RUNS
from runs_controller.sdk import StepEnvironment, execute_once
from runs_controller.testing import ControlPlane
from runs_controller.testing.wait import poll_until_async
from tests.integration.steprun_support import (
    get_steprun,
    manual_steprun,
    phase_of,
    wait_for_job,
    wait_for_steprun,
    write_job_status,
)
from tests.integration.storyrun_support import (
    create,
    create_engram,
    create_run,
    create_story,
    engram_step,
    running_controller,
    wait_for_phase,
)

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
FAST_RETRY = {"maxRetries": 2, "delay": "200ms", "backoff": "constant"}


def pod_environment(job: Job, kubeconfig: Path, pod: str) -> dict[str, str]:
    """The environment the kubelet gives the Job's container: its plain values, the
    downward-API ones resolved, and credentials (a kubeconfig stands in for the token)."""
    assert job.spec is not None and job.metadata is not None
    spec = job.spec.template.spec
    container = next(c for c in spec.containers if c.name == "engram")
    fields = {
        "metadata.name": pod,
        "metadata.namespace": job.metadata.namespace or "",
        "spec.serviceAccountName": spec.service_account_name or "",
    }
    env: dict[str, str] = {}
    for var in container.env or []:
        if var.value is not None:
            env[var.name] = var.value
        elif var.value_from and "fieldRef" in var.value_from:
            env[var.name] = fields[var.value_from["fieldRef"]["fieldPath"]]
    return {"PATH": os.environ.get("PATH", ""), "KUBECONFIG": str(kubeconfig), **env}


async def run_engram(env: dict[str, str]) -> int:
    process = await anyio.run_process(
        [sys.executable, "-m", "runs_controller.sdk.examples.greet"],
        env={**env, "PYTHONPATH": str(REPO)},
        check=False,
    )
    return process.returncode


async def _runner_credentials(control_plane: ControlPlane, namespace: str, run: str) -> Path:
    """A kubeconfig with a token of the run's engram-runner ServiceAccount (what the Job's pod
    mounts), once the authorizer honours its RoleBinding."""
    path = control_plane.service_account_kubeconfig(namespace, f"{run}-engram-runner")

    async def authorised() -> bool | None:
        async with KubeClient(await load_kubeconfig(path)) as runner:
            try:
                await runner.get(STEP_RUNS, f"{run}-hello", namespace, type=StepRun)
            except Forbidden:
                return None
        return True

    await poll_until_async(authorised, within=30, what="the runner's RoleBinding to apply")
    return path


async def test_the_example_engram_completes_a_real_steprun_from_its_jobs_environment(
    client: KubeClient, control_plane: ControlPlane, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    spec = {"steps": [engram_step("hello", **{"with": {"name": "{{ inputs.who }}"}})]}
    await create_story(client, namespace, "greeting", spec)
    async with running_controller(client, namespace):
        await create_run(client, namespace, "h1", "greeting", {"who": "Ada"})
        job = await wait_for_job(client, namespace, "h1-hello")
        # The Engram runs with exactly the rights of the Job's ServiceAccount (its Role).
        credentials = await _runner_credentials(control_plane, namespace, "h1")
        code = await run_engram(pod_environment(job, credentials, "h1-hello-pod"))
        await write_job_status(client, job, succeeded=1)  # the kubelet saw it exit 0
        run = await wait_for_phase(client, namespace, "h1", {"Succeeded", "Failed"})
    assert code == 0
    assert run.status is not None and run.status.phase == "Succeeded", run.status
    steprun = await get_steprun(client, namespace, "h1-hello")
    status = steprun.status
    assert status is not None
    assert status.output == {"greeting": "Hello, Ada!", "story": "greeting", "sentNow": True}
    assert (status.exit_code, status.exit_class) == (0, "success")
    assert status.finished_at is not None and status.duration
    assert [(e.key, e.status) for e in status.effects or []] == [("greet-Ada", "succeeded")]
    claim = await client.get(
        EFFECT_CLAIMS,
        derive_effectclaim_name(namespace, "h1-hello", "greet-Ada"),
        namespace,
        type=EffectClaim,
    )
    assert claim.spec.completion_status == "completed"
    assert claim.spec.details == {"sent": "Hello, Ada!"}


async def test_a_retryable_failure_reported_by_the_sdk_is_retried_by_the_controller(
    client: KubeClient, control_plane: ControlPlane, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    step = engram_step(
        "hello", execution={"retry": FAST_RETRY}, **{"with": {"name": "x", "fail": "retry"}}
    )
    await create_story(client, namespace, "flaky", {"steps": [step]})
    async with running_controller(client, namespace):
        await create_run(client, namespace, "f1", "flaky")
        job = await wait_for_job(client, namespace, "f1-hello")
        credentials = await _runner_credentials(control_plane, namespace, "f1")
        code = await run_engram(pod_environment(job, credentials, "f1-hello-pod"))
        retried = await wait_for_steprun(
            client,
            namespace,
            "f1-hello",
            lambda sr: sr.status is not None and sr.status.retries == 1,
            "the retry",
        )
        assert job.metadata is not None
        second = await wait_for_job(client, namespace, "f1-hello", not_uid=job.metadata.uid)
    assert code == 75
    assert retried.status is not None
    error = retried.status.error
    assert error is not None and (error.type, error.exit_class) == ("execution_error", "retry")
    assert second.metadata is not None


async def _steprun_env(client: KubeClient, namespace: str) -> StepEnvironment:
    await create_engram(client, namespace)
    await create_story(client, namespace, "fx", {"steps": [engram_step("a", ref={"name": "none"})]})
    await create_run(client, namespace, "e1", "fx")
    await manual_steprun(client, namespace, "e1", "pay", "echo")
    return StepEnvironment.from_environ(
        {"BUBU_STEPRUN_NAME": "e1-pay", "BUBU_STEPRUN_NAMESPACE": namespace, "BUBU_POD_NAME": "p"}
    )


async def test_twenty_workers_racing_on_one_effect_run_it_once_and_all_see_its_outcome(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    env = await _steprun_env(client, namespace)
    runs: list[int] = []
    outcomes: list[Any] = []

    async def effect() -> dict[str, Any]:
        runs.append(1)
        await anyio.sleep(0.3)  # the effect takes a while: the others must wait, not run it
        return {"charged": 42}

    async def worker() -> None:
        outcome = await execute_once(client, env, "charge", effect, lease_seconds=30)
        outcomes.append(outcome)

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(worker)
    assert len(runs) == 1
    assert sorted(o.executed for o in outcomes) == [False] * 19 + [True]
    assert {str(o.details) for o in outcomes} == {str({"charged": 42})}
    steprun = await get_steprun(client, namespace, "e1-pay")
    assert [e.key for e in (steprun.status.effects if steprun.status else None) or []] == ["charge"]


async def test_a_holder_that_stopped_renewing_is_taken_over_once_its_lease_expires(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    env = await _steprun_env(client, namespace)
    steprun = await get_steprun(client, namespace, "e1-pay")
    assert steprun.metadata is not None
    name = derive_effectclaim_name(namespace, "e1-pay", "mail")
    now = datetime.datetime.now(datetime.UTC)
    dead = {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "stepRunRef": {"name": "e1-pay", "uid": steprun.metadata.uid},
            "effectKey": "mail",
            "holderIdentity": "dead-pod",
            "acquireTime": MicroTime.from_datetime(now).to_wire(),
            "renewTime": MicroTime.from_datetime(now).to_wire(),
            "leaseDurationSeconds": 2,
        },
    }
    await create(client, EFFECT_CLAIMS, dead, EffectClaim)
    ran_at: list[datetime.datetime] = []

    async def effect() -> str:
        ran_at.append(datetime.datetime.now(datetime.UTC))
        return "sent"

    outcome = await execute_once(client, env, "mail", effect, lease_seconds=30)
    claim = await client.get(EFFECT_CLAIMS, name, namespace, type=EffectClaim)
    assert outcome.executed and outcome.details == "sent"
    assert ran_at and ran_at[0] >= now + datetime.timedelta(seconds=2)
    assert claim.spec.lease_transitions == 1
    assert claim.spec.completion_status == "completed"
    assert claim.spec.holder_identity != "dead-pod"


async def test_a_step_past_its_timeout_reports_timeout_and_sigterm_reports_canceled(
    client: KubeClient, kubeconfig: Path, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    await create_story(
        client, namespace, "slow", {"steps": [engram_step("a", ref={"name": "none"})]}
    )
    await create_run(client, namespace, "s1", "slow")
    base = {"KUBECONFIG": str(kubeconfig), "PATH": os.environ.get("PATH", "")}
    for step in ("late", "stopped"):
        await manual_steprun(client, namespace, "s1", step, "echo")
    late = {
        **base,
        "BUBU_STEPRUN_NAME": "s1-late",
        "BUBU_STEPRUN_NAMESPACE": namespace,
        "BUBU_TRIGGER_DATA": '{"name": "x", "sleep": 30}',
        "BUBU_STEP_TIMEOUT": "300ms",
    }
    assert await run_engram(late) == 124
    stopped = {
        **late,
        "BUBU_STEPRUN_NAME": "s1-stopped",
        "BUBU_STEP_TIMEOUT": "1m",
    }
    async with await anyio.open_process(
        [sys.executable, "-m", "runs_controller.sdk.examples.greet"],
        env={**stopped, "PYTHONPATH": str(REPO)},
    ) as process:
        await wait_for_steprun(
            client, namespace, "s1-stopped", lambda sr: phase_of(sr) == "Running", "Running"
        )
        process.terminate()
        code = await process.wait()
    assert code == 143
    timed_out = await get_steprun(client, namespace, "s1-late")
    canceled = await get_steprun(client, namespace, "s1-stopped")
    assert timed_out.status is not None and canceled.status is not None
    assert (timed_out.status.phase, timed_out.status.exit_code, timed_out.status.exit_class) == (
        "Timeout",
        124,
        "retry",
    )
    assert timed_out.status.error is not None and timed_out.status.error.type == "timeout"
    assert (canceled.status.phase, canceled.status.exit_code) == ("Canceled", 143)


async def test_a_long_effect_keeps_its_short_lease_renewed_so_nobody_takes_it_over(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    env = await _steprun_env(client, namespace)
    runs: list[int] = []
    started = anyio.Event()

    async def slow_effect() -> str:
        runs.append(1)
        started.set()
        await anyio.sleep(5)  # well past the 2 s lease: only renewals keep it
        return "done"

    async def late_worker() -> Any:
        await started.wait()
        await anyio.sleep(3)  # the lease would be stale by now without renewals
        return await execute_once(client, env, "long", slow_effect, lease_seconds=2)

    results: list[Any] = []

    async def first() -> None:
        results.append(await execute_once(client, env, "long", slow_effect, lease_seconds=2))

    async def second() -> None:
        results.append(await late_worker())

    async with anyio.create_task_group() as group:
        group.start_soon(first)
        group.start_soon(second)
    assert len(runs) == 1
    assert sorted(r.executed for r in results) == [False, True]
    claim = await client.get(
        EFFECT_CLAIMS,
        derive_effectclaim_name(namespace, "e1-pay", "long"),
        namespace,
        type=EffectClaim,
    )
    assert claim.spec.lease_transitions in (None, 0)  # never taken over
