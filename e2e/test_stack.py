"""End to end on the full local stack: the chart installed with helm, the controller running as
the chart's ServiceAccount, Jobs that get real Pods (kube-controller-manager, kube-scheduler,
kwok) and the SDK's example Engram computing the outputs (the dev executor).

The tests share one stack and run in file order; the last one reads every controller log of
the session and fails on any refused request.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from e2e.support import tool
from runs_controller.api.k8s import Job, Pod
from runs_controller.api.runs.steprun import StepRun
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.app import DEFAULT_LEADER_ELECTION_ID
from runs_controller.dev import sample
from runs_controller.kube.errors import NotFound
from runs_controller.kube.resources import JOBS, LEASES, PODS, STEP_RUNS, STORY_RUNS
from runs_controller.runtime.informer import Event, Informer, InformerOptions
from runs_controller.testing.wait import poll_until_async, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

    from e2e.support import ControllerProcess, Release
    from runs_controller.kube.client import KubeClient
    from runs_controller.testing.executor import DevExecutor
    from runs_controller.testing.stack import LocalStack

pytestmark = pytest.mark.timeout(240)

ENGRAM_STEPS = ("greet", "reply", "archive")


def _phase(run: StoryRun) -> str | None:
    return run.status.phase if run.status else None


async def _wait_for_run(
    client: KubeClient,
    namespace: str,
    name: str,
    within: float,
    alive: tuple[ControllerProcess, ...] = (),
) -> StoryRun:
    async def finished() -> StoryRun | None:
        for process in alive:
            if process.process.returncode is not None:
                raise AssertionError(
                    f"controller {process.name} {process.process.describe_exit()}:\n"
                    + process.process.log_tail(20)
                )
        run = await client.get(STORY_RUNS, name, namespace, type=StoryRun)
        return run if _phase(run) in ("Succeeded", "Failed", "Canceled", "Timeout") else None

    return await poll_until_async(finished, within=within, what=f"StoryRun {name} to finish")


async def _create_run(
    client: KubeClient, namespace: str, name: str, inputs: dict[str, Any]
) -> None:
    await client.create(
        STORY_RUNS, sample.storyrun(name, inputs, namespace), namespace, type=StoryRun
    )


async def test_the_sample_story_runs_to_succeeded_with_real_jobs_pods_and_sdk_outputs(
    client: KubeClient,
    sample_namespace: str,
    start_controller: Callable[[str], ControllerProcess],
    executor: DevExecutor,
) -> None:
    solo = start_controller("solo")
    namespace = sample_namespace
    await _create_run(client, namespace, "hello-1", {"name": "world"})
    run = await _wait_for_run(client, namespace, "hello-1", within=120, alive=(solo,))

    assert _phase(run) == "Succeeded", run.status
    assert run.status is not None
    # The outputs were computed by the SDK in processes the executor started from the pods.
    assert run.status.output == {"first": "Hello, world!", "second": "Hello, hello!"}
    ran = [r for r in executor.runs if r.namespace == namespace]
    assert len(ran) == 2
    assert all(r.exit_code == 0 for r in ran)
    stepruns = await client.list(STEP_RUNS, namespace, type=StepRun)
    by_step = {s.spec.step_id: s for s in stepruns.items}
    assert set(by_step) == set(ENGRAM_STEPS)
    assert by_step["greet"].status is not None
    assert by_step["greet"].status.output == {
        "greeting": "Hello, world!",
        "story": sample.STORY,
        "sentNow": True,
    }
    # Every engram step ran as a Job whose Pod the scheduler placed on the kwok node and that
    # ended Succeeded: kwok for the plain image, the executor for the SDK's.
    jobs = await client.list(JOBS, namespace, type=Job)
    assert len(jobs.items) == len(ENGRAM_STEPS)
    pods = await client.list(PODS, namespace, type=Pod)
    assert len(pods.items) == len(ENGRAM_STEPS)
    for pod in pods.items:
        assert pod.spec is not None and pod.spec.node_name == "kwok-node-0"
        assert pod.status is not None and pod.status.phase == "Succeeded"


async def test_deleting_a_storyrun_garbage_collects_its_stepruns_jobs_and_pods(
    client: KubeClient,
    sample_namespace: str,
    start_controller: Callable[[str], ControllerProcess],
    executor: DevExecutor,
) -> None:
    gc = start_controller("gc")
    namespace = sample_namespace
    await _create_run(client, namespace, "doomed", {"name": "gc"})
    run = await _wait_for_run(client, namespace, "doomed", within=120, alive=(gc,))
    assert _phase(run) == "Succeeded"
    assert len((await client.list(JOBS, namespace, type=Job)).items) == len(ENGRAM_STEPS)

    await client.delete(STORY_RUNS, "doomed", namespace)

    async def everything_gone() -> bool | None:
        left = [
            len((await client.list(STORY_RUNS, namespace, type=StoryRun)).items),
            len((await client.list(STEP_RUNS, namespace, type=StepRun)).items),
            len((await client.list(JOBS, namespace, type=Job)).items),
            len((await client.list(PODS, namespace, type=Pod)).items),
        ]
        return True if left == [0, 0, 0, 0] else None

    await poll_until_async(
        everything_gone, within=60, what="the StoryRun's StepRuns, Jobs and Pods to be collected"
    )


async def _leader(client: KubeClient, release: Release) -> str | None:
    try:
        lease = await client.get(
            LEASES, DEFAULT_LEADER_ELECTION_ID, release.namespace, type=dict[str, Any]
        )
    except NotFound:
        return None
    holder: str | None = lease.get("spec", {}).get("holderIdentity")
    return holder


async def test_the_leader_killed_mid_run_hands_over_and_the_run_completes_without_duplicates(
    client: KubeClient,
    sample_namespace: str,
    release: Release,
    start_controller: Callable[[str], ControllerProcess],
    executor: DevExecutor,
) -> None:
    namespace = sample_namespace
    replicas = [start_controller("replica-a"), start_controller("replica-b")]

    async def leading() -> ControllerProcess | None:
        holder = await _leader(client, release)
        return next((r for r in replicas if holder and r.identity() == holder), None)

    leader = await poll_until_async(leading, within=60, what="one replica to lead")
    follower = next(r for r in replicas if r is not leader)

    jobs_seen: dict[str, set[str]] = {}

    def on_job(event: Event[Job]) -> None:
        meta = event.obj.metadata
        if meta is not None and meta.name and meta.uid:
            jobs_seen.setdefault(meta.name, set()).add(meta.uid)

    informer = Informer(client, JOBS, Job, options=InformerOptions(namespace=namespace))
    informer.add_handler(on_job)
    async with anyio.create_task_group() as group:
        group.start_soon(informer.run)
        # The first greeting sleeps 3 s inside the SDK: the leader dies while it runs.
        await _create_run(client, namespace, "survivor", {"name": "e2e", "pause": 3})
        await wait_until(lambda: bool(jobs_seen), within=60, what="the first Job")
        leader.process.kill()
        killed_at = time.monotonic()
        run = await _wait_for_run(client, namespace, "survivor", within=120, alive=(follower,))
        group.cancel_scope.cancel()

    assert _phase(run) == "Succeeded", run.status
    assert run.status is not None
    assert run.status.output == {"first": "Hello, e2e!", "second": "Hello, hello!"}
    assert await _leader(client, release) == follower.identity()
    # One Job per engram step, never a second one under the same name or a new name.
    assert sorted(jobs_seen) == sorted(f"survivor-{step}" for step in ENGRAM_STEPS), jobs_seen
    assert all(len(uids) == 1 for uids in jobs_seen.values()), jobs_seen
    assert time.monotonic() - killed_at < 120


async def test_a_namespace_with_finished_runs_deletes_completely(
    client: KubeClient,
    stack: LocalStack,
    start_controller: Callable[[str], ControllerProcess],
    executor: DevExecutor,
) -> None:
    """The StepRun finalizer must not hold a namespace deletion up (the controller removes it)."""
    controller = start_controller("namespace")
    namespace = stack.plane.create_namespace("e2e-gone")
    sample.install(stack.plane.admin, namespace)
    await _create_run(client, namespace, "last", {"name": "bye"})
    run = await _wait_for_run(client, namespace, "last", within=120, alive=(controller,))
    assert _phase(run) == "Succeeded"

    stack.plane.delete_namespace(namespace)

    async def gone() -> bool | None:
        response = stack.plane.admin.request("GET", f"/api/v1/namespaces/{namespace}")
        return True if response.status == 404 else None

    await poll_until_async(gone, within=90, what=f"namespace {namespace} to be deleted")


def test_the_service_account_cannot_read_secrets_or_touch_kinds_it_does_not_manage(
    stack: LocalStack, release: Release
) -> None:
    subject = f"--as=system:serviceaccount:{release.namespace}:{release.service_account}"
    kubeconfig = stack.plane.kubeconfig_path

    def can(*request: str) -> bool:
        answer = tool(
            "kubectl", "auth", "can-i", *request, subject, kubeconfig=kubeconfig, check=False
        )
        return answer.strip() == "yes"

    # What it manages.
    assert can("create", "jobs.batch", "--namespace=default")
    assert can("patch", "stepruns.runs.bubustack.io/status", "--namespace=default")
    assert can("watch", "storyruns.runs.bubustack.io", "--all-namespaces")
    # What it must not do.
    assert not can("get", "secrets", "--all-namespaces")
    assert not can("list", "secrets", "--namespace=default")
    assert not can("create", "deployments.apps", "--namespace=default")
    assert not can("delete", "namespaces")
    assert not can("create", "clusterrolebindings.rbac.authorization.k8s.io")
    assert not can("update", "stories.bubustack.io", "--namespace=default")
    assert not can("delete", "engramtemplates.catalog.bubustack.io")


def test_no_controller_request_was_ever_refused(all_controllers: list[ControllerProcess]) -> None:
    """Runs last: every controller process of the session authenticated as the chart's
    ServiceAccount, so a single 403 in any log means the chart's RBAC is short of a verb."""
    assert all_controllers, "the suite started no controller"
    refused = {c.name: c.forbidden() for c in all_controllers if c.forbidden()}
    assert not refused, refused
