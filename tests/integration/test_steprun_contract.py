"""The StepRun controller's contract, behaviour by behaviour (controller-behaviour.md §9 items
30-38), plus the execution-config precedence, the Engram counters and the domain metrics.
The test plays the kubelet, the Job controller and the SDK (`steprun_support`)."""

from __future__ import annotations

import contextlib
import datetime
from typing import Any

import pytest

from runs_controller.api.bubustack.engram import Engram
from runs_controller.api.catalog.engramtemplate import EngramTemplate
from runs_controller.api.k8s import ConfigMap, Job, Pod
from runs_controller.api.runs.steprun import StepRun
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.kube.client import KubeClient
from runs_controller.kube.errors import NotFound
from runs_controller.kube.resources import (
    CONFIG_MAPS,
    ENGRAM_TEMPLATES,
    ENGRAMS,
    JOBS,
    PODS,
    STORY_RUNS,
)
from runs_controller.runtime.operator_config import DEFAULT_CONFIG_NAME
from runs_controller.testing.wait import poll_until_async
from tests.integration.steprun_support import (
    VANISH,
    Attempt,
    crash,
    echo,
    fake_kubelet,
    get_steprun,
    manual_steprun,
    phase_of,
    scripted,
    sdk_status,
    succeed,
    wait_for_event,
    wait_for_job,
    wait_for_steprun,
    watching_stepruns,
)
from tests.integration.storyrun_support import (
    create,
    create_engram,
    create_run,
    create_story,
    engram_step,
    running_controller,
    storyrun_reconciles,
    wait_for_phase,
)

pytestmark = pytest.mark.timeout(180)

FAST_RETRY = {"maxRetries": 2, "delay": "300ms", "backoff": "constant"}
DONE = {"Succeeded", "Failed", "Timeout", "Compensated"}


def _ready(steprun: StepRun) -> tuple[str | None, str | None]:
    status = steprun.status
    ready = next(
        (c for c in (status.conditions if status else None) or [] if c.type == "Ready"), None
    )
    return (ready.reason, ready.message) if ready is not None else (None, None)


async def _template(client: KubeClient, name: str, **spec: Any) -> None:
    body = {
        "apiVersion": "catalog.bubustack.io/v1alpha1",
        "kind": "EngramTemplate",
        "metadata": {"name": name},
        "spec": {
            "version": "1.0.0",
            "supportedModes": ["job"],
            "image": f"example/{name}:1",
            **spec,
        },
    }
    with contextlib.suppress(NotFound):
        await client.delete(ENGRAM_TEMPLATES, name)  # cluster-scoped: left by an earlier run
    await create(client, ENGRAM_TEMPLATES, body, EngramTemplate)


async def _engram(
    client: KubeClient, namespace: str, name: str, template: str, **spec: Any
) -> None:
    body = {
        "apiVersion": "bubustack.io/v1alpha1",
        "kind": "Engram",
        "metadata": {"name": name, "namespace": namespace, **spec.pop("metadata", {})},
        "spec": {"templateRef": {"name": template}, **spec},
    }
    await create(client, ENGRAMS, body, Engram)


async def _operator_config(client: KubeClient, namespace: str, data: dict[str, str]) -> None:
    body = {"metadata": {"name": DEFAULT_CONFIG_NAME, "namespace": namespace}, "data": data}
    await create(client, CONFIG_MAPS, body, ConfigMap)


# -- 30 and 32: never a second Job while a pod of the first lives; a due retry replaces the Job --


async def test_a_vanished_job_is_not_recreated_while_its_pod_lives_then_restarts(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await _operator_config(
        client,
        namespace,
        {"controller.requeue-base-delay": "100ms", "controller.requeue-max-delay": "200ms"},
    )
    await create_engram(client, namespace)
    await create_story(client, namespace, "vanish", {"steps": [engram_step("work")]})
    async with running_controller(client, namespace) as manager:
        await create_run(client, namespace, "v1", "vanish")
        job = await wait_for_job(client, namespace, "v1-work")
        await wait_for_steprun(
            client, namespace, "v1-work", lambda sr: phase_of(sr) == "Running", "Running"
        )
        assert job.metadata is not None
        pod_body = {
            "metadata": {
                "name": "v1-work-pod",
                "namespace": namespace,
                "labels": {"job-name": "v1-work"},
            },
            "spec": {"restartPolicy": "Never", "containers": [{"name": "engram", "image": "x"}]},
        }
        await create(client, PODS, pod_body, Pod)
        await client.merge_patch(
            PODS,
            "v1-work-pod",
            {"status": {"phase": "Running"}},
            namespace,
            type=Pod,
            subresource="status",
        )
        # The Job goes; its pod stays (no garbage collector on this control plane).
        await client.delete(JOBS, "v1-work", namespace, propagation_policy="Background")
        before = storyrun_reconciles(manager.registry, "steprun")

        async def reconciled_a_few_times() -> bool | None:
            return True if storyrun_reconciles(manager.registry, "steprun") >= before + 3 else None

        await poll_until_async(reconciled_a_few_times, within=30, what="a few StepRun reconciles")
        with pytest.raises(NotFound):
            await client.get(JOBS, "v1-work", namespace, type=Job)
        # The pod ends: the next look creates a fresh Job and records the restart.
        await client.merge_patch(
            PODS,
            "v1-work-pod",
            {"status": {"phase": "Failed"}},
            namespace,
            type=Pod,
            subresource="status",
        )
        fresh = await wait_for_job(client, namespace, "v1-work", not_uid=job.metadata.uid)
        restarted = await wait_for_steprun(
            client,
            namespace,
            "v1-work",
            lambda sr: bool(
                sr.metadata
                and (sr.metadata.annotations or {}).get("runs.bubustack.io/restart-count")
            ),
            "the restart to be recorded",
        )
    assert fresh.metadata is not None and fresh.metadata.uid != job.metadata.uid
    assert restarted.metadata is not None
    assert (restarted.metadata.annotations or {})["runs.bubustack.io/restart-count"] == "1"
    assert phase_of(restarted) == "Running"
    event = await wait_for_event(client, namespace, "v1-work", "JobRestarted")
    assert event.type == "Warning" and "went missing" in (event.note or "")


async def test_a_due_retry_waits_for_the_old_job_to_be_gone_then_starts_a_fresh_one(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    spec = {"steps": [engram_step("work", execution={"retry": FAST_RETRY})]}
    await create_story(client, namespace, "due", spec)
    async with running_controller(client, namespace) as manager:
        await create_run(client, namespace, "u1", "due")
        job = await wait_for_job(client, namespace, "u1-work")
        assert job.metadata is not None
        # Something holds the old Job back once its deletion starts.
        await client.merge_patch(
            JOBS,
            "u1-work",
            {"metadata": {"finalizers": ["test.bubustack.io/hold"]}},
            namespace,
            type=Job,
        )
        steprun = await wait_for_steprun(
            client, namespace, "u1-work", lambda sr: phase_of(sr) == "Running", "Running"
        )
        await sdk_status(client, steprun, "Failed", exitClass="retry", retries=0)
        deleting = await poll_until_async(
            lambda: _deleting(client, namespace), within=30, what="the old Job's deletion"
        )
        scheduled = await get_steprun(client, namespace, "u1-work")
        assert scheduled.status is not None and scheduled.status.next_retry_at is not None
        due = scheduled.status.next_retry_at
        before = storyrun_reconciles(manager.registry, "steprun")

        async def looked_after_due() -> bool | None:
            now = datetime.datetime.now(datetime.UTC)
            return (
                True
                if now > due and storyrun_reconciles(manager.registry, "steprun") > before
                else None
            )

        await poll_until_async(
            looked_after_due, within=30, what="a reconcile after the retry is due"
        )
        still = await client.get(JOBS, "u1-work", namespace, type=Job)
        assert still.metadata is not None and still.metadata.uid == job.metadata.uid
        await client.merge_patch(
            JOBS, "u1-work", {"metadata": {"finalizers": None}}, namespace, type=Job
        )
        fresh = await wait_for_job(client, namespace, "u1-work", not_uid=job.metadata.uid)
        running = await wait_for_steprun(
            client,
            namespace,
            "u1-work",
            lambda sr: (
                phase_of(sr) == "Running"
                and sr.status is not None
                and sr.status.next_retry_at is None
            ),
            "the fresh attempt to run",
        )
    assert deleting.metadata is not None and deleting.metadata.deletion_timestamp is not None
    assert fresh.metadata is not None and fresh.metadata.uid != job.metadata.uid
    assert running.status is not None and running.status.retries == 1


async def _deleting(client: KubeClient, namespace: str) -> Job | None:
    job = await client.get(JOBS, "u1-work", namespace, type=Job)
    return job if job.metadata is not None and job.metadata.deletion_timestamp is not None else None


# -- 31 and 34: the retry bookkeeping, and an unknown exit that consumes the budget ------------


async def test_a_failed_job_schedules_a_retry_with_the_bookkeeping_of_the_contract(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    spec = {"steps": [engram_step("work", execution={"retry": FAST_RETRY})]}
    await create_story(client, namespace, "book", spec)
    async with (
        watching_stepruns(client, namespace) as versions,
        running_controller(client, namespace),
        fake_kubelet(client, namespace, scripted({"work": [VANISH, succeed()]})) as kubelet,
    ):
        await create_run(client, namespace, "k1", "book")
        run = await wait_for_phase(client, namespace, "k1", DONE)
    assert run.status is not None and run.status.phase == "Succeeded"
    scheduled = [
        v
        for v in versions.of("k1-work")
        if v.status is not None and v.status.next_retry_at is not None
    ]
    assert scheduled, "no version with nextRetryAt was seen"
    first = scheduled[0].status
    assert first is not None
    assert (first.phase, first.retries, first.exit_code, first.exit_class) == (
        "Pending",
        1,
        -1,
        "unknown",
    )
    assert _ready(scheduled[0]) == ("RetryScheduled", "Retrying in 300ms (attempt 1/2)")
    assert first.finished_at is None
    assert len(kubelet.jobs.uids["k1-work"]) == 2


# -- 35: what the SDK wrote is kept; a silent failure gets the fallback ------------------------


async def test_a_failed_job_never_overrides_what_the_sdk_reported(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    spec = {
        "policy": {"retries": {"continueOnStepFailure": True}},
        "steps": [engram_step("ok"), engram_step("bad"), engram_step("silent")],
    }
    await create_story(client, namespace, "sdk", spec)
    attempts = {
        "ok": [Attempt("Succeeded", {"v": 1}, None, "failed", 2)],
        "bad": [Attempt("Failed", None, "terminal", "failed", 3)],
        "silent": [crash(4)],
    }
    async with (
        watching_stepruns(client, namespace) as versions,
        running_controller(client, namespace),
        fake_kubelet(client, namespace, scripted(attempts)),
    ):
        await create_run(client, namespace, "s1", "sdk")
        await wait_for_phase(client, namespace, "s1", DONE)
        silent = await wait_for_steprun(
            client, namespace, "s1-silent", lambda sr: phase_of(sr) == "Failed", "fallback"
        )
    ok = await get_steprun(client, namespace, "s1-ok")
    bad = await get_steprun(client, namespace, "s1-bad")
    assert ok.status is not None and (ok.status.phase, ok.status.output) == ("Succeeded", {"v": 1})
    assert bad.status is not None and (bad.status.phase, bad.status.exit_class) == (
        "Failed",
        "terminal",
    )
    assert silent.status is not None and (silent.status.exit_code, silent.status.exit_class) == (
        4,
        "terminal",
    )
    # The SDK's terminal phases never went back (ruling 29).
    for name in ("s1-ok", "s1-bad"):
        phases = [phase_of(v) for v in versions.of(name)]
        reported = phases.index("Succeeded" if name == "s1-ok" else "Failed")
        assert set(phases[reported:]) == {phases[reported]}, phases


# -- 36: checks after a success -----------------------------------------------------------------


async def test_an_output_against_the_schema_or_a_false_post_execution_fails_the_step(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await _template(
        client,
        "strict",
        outputSchema={"type": "object", "required": ["rows"]},
        declaredOutputKeys=["rows"],
    )
    await _engram(client, namespace, "strict", "strict")
    await create_engram(client, namespace)
    schema_story = {
        "steps": [{"name": "load", "ref": {"name": "strict"}}, engram_step("after", needs=["load"])]
    }
    check_story = {
        "steps": [
            engram_step(
                "count",
                postExecution={
                    "condition": "{{ gt (len steps.count.output.items) 1 }}",
                    "failureMessage": "need two items",
                },
            )
        ]
    }
    await create_story(client, namespace, "schema", schema_story)
    await create_story(client, namespace, "check", check_story)
    attempts = {"load": [succeed({"other": 1})], "count": [succeed({"items": [1]})]}
    async with (
        running_controller(client, namespace),
        fake_kubelet(client, namespace, scripted(attempts)),
    ):
        await create_run(client, namespace, "o1", "schema")
        await create_run(client, namespace, "p1", "check")
        schema_run = await wait_for_phase(client, namespace, "o1", DONE)
        check_run = await wait_for_phase(client, namespace, "p1", DONE)
    load = await get_steprun(client, namespace, "o1-load")
    assert load.status is not None and load.status.phase == "Failed"
    reason, message = _ready(load)
    assert reason == "OutputSchemaFailed" and message is not None and "rows" in message
    assert load.status.exit_class == "terminal"
    # The run did not take the reported success for final: the dependent never started.
    assert schema_run.status is not None and schema_run.status.phase == "Failed"
    with pytest.raises(NotFound):
        await get_steprun(client, namespace, "o1-after")
    count = await get_steprun(client, namespace, "p1-count")
    assert _ready(count) == (
        "ExpressionFailed",
        "Post-execution verification failed: need two items",
    )
    assert check_run.status is not None and check_run.status.phase == "Failed"


# -- 37: requires and the input schema ----------------------------------------------------------


async def test_a_nil_requirement_or_inputs_against_the_schema_fail_before_any_job(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await _template(client, "typed", inputSchema={"type": "object", "required": ["url"]})
    await _engram(client, namespace, "typed", "typed")
    await create_engram(client, namespace)
    spec = {
        "policy": {"retries": {"continueOnStepFailure": True}},
        "steps": [
            engram_step("first"),
            engram_step("needy", needs=["first"], requires=["steps.first.output.rows"]),
            {"name": "typed", "ref": {"name": "typed"}, "with": {"other": 1}},
        ],
    }
    await create_story(client, namespace, "req", spec)
    async with (
        running_controller(client, namespace),
        fake_kubelet(client, namespace, echo({"no": "rows"})),
    ):
        await create_run(client, namespace, "q1", "req")
        await wait_for_phase(client, namespace, "q1", DONE)
    needy = await get_steprun(client, namespace, "q1-needy")
    assert needy.status is not None and needy.status.phase == "Failed"
    nil = (
        "required context 'steps.first.output.rows' is nil — upstream step produced no output "
        "for this key"
    )
    assert _ready(needy) == ("DependencyFailed", nil)
    typed = await get_steprun(client, namespace, "q1-typed")
    reason, message = _ready(typed)
    assert reason == "InputSchemaFailed" and message is not None and "url" in message
    assert typed.status is not None and typed.status.input_schema_ref is not None
    assert typed.status.input_schema_ref.ref == f"bubu://engram/{namespace}/typed/input"
    for name in ("q1-needy", "q1-typed"):
        with pytest.raises(NotFound):
            await client.get(JOBS, name, namespace, type=Job)


# -- 38: unsupported features are said clearly (ruling 17) --------------------------------------


async def test_tls_and_storage_needs_are_refused_with_unsupported_feature(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    await _engram(
        client,
        namespace,
        "tls",
        "echo",
        metadata={"annotations": {"engram.bubustack.io/tls-secret": "s"}},
    )
    await create_story(client, namespace, "tls", {"steps": [{"name": "t", "ref": {"name": "tls"}}]})
    storage = {"policy": {"storage": {"file": {"path": "/data"}}}, "steps": [engram_step("s")]}
    await create_story(client, namespace, "store", storage)
    async with running_controller(client, namespace):
        await create_run(client, namespace, "t1", "tls")
        await create_run(client, namespace, "f1", "store")
        tls = await wait_for_steprun(
            client, namespace, "t1-t", lambda sr: phase_of(sr) == "Blocked", "Blocked"
        )
        stored = await wait_for_steprun(
            client, namespace, "f1-s", lambda sr: phase_of(sr) == "Failed", "Failed"
        )
    reason, message = _ready(tls)
    assert reason == "UnsupportedFeature" and message is not None and "TLS" in message
    reason, message = _ready(stored)
    assert reason == "UnsupportedFeature" and message is not None and "storage" in message


# -- the precedence chain -----------------------------------------------------------------------


async def test_each_level_of_the_execution_config_wins_over_the_level_below(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await _operator_config(
        client,
        namespace,
        {
            "images.pull-policy": "Never",
            "resources.default.cpu-request": "10m",
            "resources.default.memory-request": "16Mi",
            "resources.default.cpu-limit": "100m",
            "job.backoff-limit": "1",
            "security.run-as-non-root": "true",
            "security.read-only-root-filesystem": "true",
            "security.run-as-user": "1000",
        },
    )
    await _template(
        client,
        "layered",
        execution={
            "images": {"pullPolicy": "Always"},
            "resources": {"recommendedMemoryRequest": "32Mi", "recommendedCpuLimit": "200m"},
        },
        secretSchema={
            "api": {"mountType": "env"},
            "certs": {"mountType": "file", "mountPath": "/certs"},
        },
    )
    await _engram(
        client,
        namespace,
        "layered",
        "layered",
        executionPolicy={"resources": {"memoryRequest": "64Mi", "cpuLimit": "300m"}},
        secrets={"api": "api-prod", "certs": "certs-prod"},
    )
    spec = {
        "policy": {"execution": {"resources": {"cpuLimit": "400m"}, "job": {"backoffLimit": 2}}},
        "steps": [{"name": "work", "ref": {"name": "layered"}, "execution": {"debug": True}}],
    }
    await create_story(client, namespace, "layers", spec)
    async with running_controller(client, namespace):
        await create_run(client, namespace, "y1", "layers")
        job = await wait_for_job(client, namespace, "y1-work")
    assert job.spec is not None
    container = job.spec.template.spec.containers[0]
    resources = container.resources
    assert resources is not None
    assert container.image_pull_policy == "Always"  # template over operator
    assert (resources.requests or {})["cpu"] == "10m"  # operator default, nobody overrides
    assert (resources.requests or {})["memory"] == "64Mi"  # engram over template
    assert (resources.limits or {})["cpu"] == "400m"  # story over engram
    assert job.spec.backoff_limit == 2  # story over operator
    env = {var.name: var.value for var in container.env or []}
    assert env["BUBU_DEBUG"] == "true"  # the step's execution
    # The restricted security context the operator config asks for.
    pod = job.spec.template.spec
    assert pod.security_context == {"runAsNonRoot": True, "runAsUser": 1000}
    security = container.security_context
    assert security is not None
    assert security.read_only_root_filesystem is True
    assert security.allow_privilege_escalation is False
    assert security.capabilities == {"drop": ["ALL"]}
    # Secrets: env with the default prefix, file at the template's mount path.
    assert container.env_from == [{"prefix": "api_", "secretRef": {"name": "api-prod"}}]
    assert env["BUBU_SECRET_api"] == "env:api_"
    assert env["BUBU_SECRET_certs"] == "file:/certs"
    volumes = {v["name"]: v.get("secret", {}).get("secretName") for v in pod.volumes or []}
    assert volumes == {"secret-certs": "certs-prod"}


# -- ruling 13 and the domain metrics ------------------------------------------------------------


async def test_engram_counters_and_metrics_count_each_steprun_once(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await create_engram(client, namespace)
    spec = {
        "policy": {"retries": {"continueOnStepFailure": True}},
        "steps": [engram_step("a"), engram_step("b"), engram_step("c")],
    }
    await create_story(client, namespace, "count", spec)
    attempts = {"c": [crash(1)]}
    async with (
        running_controller(client, namespace) as manager,
        fake_kubelet(client, namespace, scripted(attempts)),
    ):
        await create_run(client, namespace, "n1", "count")
        await wait_for_phase(client, namespace, "n1", DONE)

        async def counted() -> Engram | None:
            engram = await client.get(ENGRAMS, "echo", namespace, type=Engram)
            return (
                engram
                if engram.status is not None and engram.status.total_executions == 3
                else None
            )

        engram = await poll_until_async(counted, within=30, what="three executions counted")
        registry = manager.registry
        applies = registry.get_sample_value(
            "runs_controller_status_writes_total",
            {"controller": "steprun", "kind": "StepRun", "result": "sent"},
        )
        assert applies is not None and applies >= 6  # Running and the end, per StepRun
        succeeded = registry.get_sample_value(
            "bobrapet_stepruns_total",
            {"namespace": namespace, "engram": "echo", "phase": "Succeeded"},
        )
        failed = registry.get_sample_value(
            "bobrapet_stepruns_total", {"namespace": namespace, "engram": "echo", "phase": "Failed"}
        )
    assert engram.status is not None
    assert (engram.status.total_executions, engram.status.failed_executions) == (3, 1)
    assert engram.status.last_execution_time is not None
    assert (succeeded, failed) == (2.0, 1.0)
    # A restarted controller sees the same finished StepRuns and counts nothing again.
    async with running_controller(client, namespace) as manager:

        async def looked_at_all() -> bool | None:
            # A fresh registry: every reconcile since this start counts.
            return True if storyrun_reconciles(manager.registry, "steprun") >= 3 else None

        await poll_until_async(looked_at_all, within=30, what="the StepRuns to be reconciled")
        sent = manager.registry.get_sample_value(
            "runs_controller_status_writes_total",
            {"controller": "steprun", "kind": "StepRun", "result": "sent"},
        )
    assert not sent, f"{sent} status applies to StepRuns that had not changed"
    again = await client.get(ENGRAMS, "echo", namespace, type=Engram)
    assert again.status is not None and again.status.total_executions == 3
    run = await client.get(STORY_RUNS, "n1", namespace, type=StoryRun)
    assert run.status is not None


async def test_an_unmapped_required_secret_or_a_template_that_never_resolves_fails_the_step(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await _template(client, "needs-key", secretSchema={"key": {"required": True}})
    await _engram(client, namespace, "needs-key", "needs-key")
    await create_engram(client, namespace)
    await create_story(
        client, namespace, "broken", {"steps": [{"name": "keyed", "ref": {"name": "needs-key"}}]}
    )
    await create_run(client, namespace, "z1", "broken")
    # A StepRun whose template names a step the run does not have: it can never resolve.
    await manual_steprun(
        client, namespace, "z1", "ghost", "echo", input={"x": "{{ steps.nowhere.output.x }}"}
    )
    async with running_controller(client, namespace):
        await wait_for_phase(client, namespace, "z1", DONE)
        await wait_for_steprun(
            client, namespace, "z1-ghost", lambda sr: phase_of(sr) == "Failed", "Failed"
        )
    keyed = await get_steprun(client, namespace, "z1-keyed")
    reason, message = _ready(keyed)
    assert reason == "InvalidConfiguration" and message is not None and "'key'" in message
    ghost = await get_steprun(client, namespace, "z1-ghost")
    reason, message = _ready(ghost)
    assert reason == "ExpressionFailed"
    assert message is not None
    assert message.startswith("Input resolution failed after dependencies completed")
