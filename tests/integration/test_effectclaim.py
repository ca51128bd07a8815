"""The EffectClaim controller against the real apiserver (behaviour 40 of §9 and the abandoned
lease): owner references, the status table, deletion of claims that can never be valid, the
deterministic name, and a stale reservation of a finished StepRun marked `abandoned` at the
instant its lease expires. The test plays the SDK (it creates and completes the claims)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from runs_controller.api.runs.effectclaim import EffectClaim
from runs_controller.api.runs.steprun import StepRun
from runs_controller.engine.naming import derive_effectclaim_name
from runs_controller.kube.client import KubeClient
from runs_controller.kube.resources import EFFECT_CLAIMS
from runs_controller.testing.wait import poll_until_async
from tests.integration.steprun_support import (
    manual_steprun,
    phase_of,
    sdk_status,
    wait_for_event,
    wait_for_steprun,
    wait_until_gone,
)
from tests.integration.storyrun_support import (
    create_engram,
    create_run,
    create_story,
    engram_step,
    running_controller,
)

pytestmark = pytest.mark.timeout(180)

RUN = "r1"
STEP = "r1-charge"
HOLDER_SUFFIX = "charge:5f1b"


def _micro(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def _steprun(client: KubeClient, namespace: str, *, finished: bool) -> StepRun:
    """A StepRun of a run whose own step waits for a missing Engram; it names a missing
    Engram too, so the StepRun controller leaves it `Blocked` (not terminal) until the test,
    playing the SDK, reports `Succeeded`."""
    await create_engram(client, namespace)
    await create_story(
        client, namespace, "pay", {"steps": [engram_step("work", ref={"name": "none"})]}
    )
    await create_run(client, namespace, RUN, "pay")
    created = await manual_steprun(client, namespace, RUN, "charge", "missing-engram")
    blocked = await wait_for_steprun(
        client, namespace, STEP, lambda sr: phase_of(sr) == "Blocked", "Blocked"
    )
    assert created.metadata is not None
    return await _finish(client, blocked) if finished else blocked


async def _finish(client: KubeClient, steprun: StepRun) -> StepRun:
    meta = steprun.metadata
    assert meta is not None
    await sdk_status(client, steprun, "Succeeded", retries=0)
    return await wait_for_steprun(
        client, meta.namespace or "", meta.name or "", lambda sr: phase_of(sr) == "Succeeded", "ok"
    )


def _claim_body(
    namespace: str,
    steprun: StepRun | None,
    key: str = "charge",
    *,
    step_name: str = STEP,
    ref: dict[str, Any] | None = None,
    name: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """What the SDK creates: deterministic name, stepRunRef {name, uid}, no owner reference
    (the controller must stamp it)."""
    uid = steprun.metadata.uid if steprun is not None and steprun.metadata else None
    step_ref: dict[str, Any] = ref or {"name": step_name, **({"uid": uid} if uid else {})}
    ref_namespace = step_ref.get("namespace") or namespace
    return {
        "apiVersion": "runs.bubustack.io/v1alpha1",
        "kind": "EffectClaim",
        "metadata": {
            "name": name or derive_effectclaim_name(ref_namespace, step_ref["name"], key),
            "namespace": namespace,
        },
        "spec": {"stepRunRef": step_ref, "effectKey": key, **spec},
    }


def _lease(start: datetime.datetime, seconds: int) -> dict[str, Any]:
    return {
        "holderIdentity": f"holder:{HOLDER_SUFFIX}",
        "acquireTime": _micro(start),
        "renewTime": _micro(start),
        "leaseDurationSeconds": seconds,
    }


async def _create(client: KubeClient, body: dict[str, Any]) -> EffectClaim:
    namespace = body["metadata"]["namespace"]
    created: EffectClaim = await client.create(EFFECT_CLAIMS, body, namespace, type=EffectClaim)
    return created


async def _get(client: KubeClient, namespace: str, name: str) -> EffectClaim:
    claim: EffectClaim = await client.get(EFFECT_CLAIMS, name, namespace, type=EffectClaim)
    return claim


def _conditions(claim: EffectClaim) -> dict[str, tuple[str, str | None]]:
    status = claim.status
    return {c.type: (c.status, c.reason) for c in (status.conditions if status else None) or []}


async def _wait_for_phase(
    client: KubeClient, namespace: str, name: str, phase: str, within: float = 30
) -> EffectClaim:
    async def reached() -> EffectClaim | None:
        claim = await _get(client, namespace, name)
        status, meta = claim.status, claim.metadata
        if status is None or status.phase != phase or meta is None:
            return None
        return claim if status.observed_generation == meta.generation else None

    result: EffectClaim = await poll_until_async(
        reached, within=within, max_interval=0.1, what=f"EffectClaim {name} phase {phase}"
    )
    return result


def _name(body: dict[str, Any]) -> str:
    name: str = body["metadata"]["name"]
    return name


# -- behaviour 40 --------------------------------------------------------------------------------


async def test_the_owner_reference_is_stamped_and_an_active_reservation_is_reserved(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    async with running_controller(client, namespace):
        steprun = await _steprun(client, namespace, finished=False)
        body = _claim_body(namespace, steprun, **_lease(_now(), 600))
        await _create(client, body)
        claim = await _wait_for_phase(client, namespace, _name(body), "Reserved")
    assert claim.metadata is not None and steprun.metadata is not None
    owners = [
        (o.api_version, o.kind, o.name, o.uid, o.controller)
        for o in claim.metadata.owner_references or []
    ]
    assert owners == [("runs.bubustack.io/v1alpha1", "StepRun", STEP, steprun.metadata.uid, None)]
    assert _conditions(claim) == {
        "Ready": ("False", "Reserved"),
        "Progressing": ("True", "Reserved"),
        "Degraded": ("False", "Reserved"),
    }
    assert claim.status is not None and claim.status.conditions is not None
    assert claim.status.conditions[0].message == "EffectClaim reservation is active"


async def test_a_completed_claim_is_completed_and_ready(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    async with running_controller(client, namespace):
        steprun = await _steprun(client, namespace, finished=True)
        start = _now() - datetime.timedelta(seconds=5)
        body = _claim_body(
            namespace,
            steprun,
            **_lease(start, 600),
            completionStatus="completed",
            completedAt=_seconds(_now()),
            details={"chargeId": "ch_1"},
        )
        await _create(client, body)
        claim = await _wait_for_phase(client, namespace, _name(body), "Completed")
    assert _conditions(claim) == {
        "Ready": ("True", "Completed"),
        "Progressing": ("False", "Completed"),
        "Degraded": ("False", "Completed"),
    }
    # Completed stays completed: a finished StepRun and an old lease abandon nothing.
    assert claim.spec.completion_status == "completed"


async def test_a_released_claim_is_released_and_not_degraded(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    async with running_controller(client, namespace):
        steprun = await _steprun(client, namespace, finished=True)
        body = _claim_body(
            namespace, steprun, completionStatus="released", completedAt=_seconds(_now())
        )
        await _create(client, body)
        claim = await _wait_for_phase(client, namespace, _name(body), "Released")
    assert _conditions(claim) == {
        "Ready": ("False", "Released"),
        "Progressing": ("False", "Released"),
        "Degraded": ("False", "Released"),
    }


async def test_a_claim_of_a_missing_steprun_is_deleted_as_an_orphan(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    async with running_controller(client, namespace):
        await _steprun(client, namespace, finished=False)
        body = _claim_body(namespace, None, step_name="r1-ghost", **_lease(_now(), 600))
        await _create(client, body)
        await wait_until_gone(client, EFFECT_CLAIMS, namespace, _name(body), EffectClaim)
        event = await wait_for_event(client, namespace, _name(body), "StepRunMissing")
    assert event.type == "Normal"
    assert f"StepRun {namespace}/r1-ghost no longer exists" in (event.note or "")


async def test_a_claim_made_for_another_steprun_uid_is_deleted(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    async with running_controller(client, namespace):
        await _steprun(client, namespace, finished=False)
        body = _claim_body(namespace, None, ref={"name": STEP, "uid": "uid-of-an-earlier-steprun"})
        await _create(client, body)
        await wait_until_gone(client, EFFECT_CLAIMS, namespace, _name(body), EffectClaim)
        event = await wait_for_event(client, namespace, _name(body), "StepRunUIDDrift")
    assert event.type == "Warning"
    assert "uid-of-an-earlier-steprun" in (event.note or "")


async def test_a_claim_naming_a_steprun_in_another_namespace_is_deleted(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    async with running_controller(client, namespace):
        await _steprun(client, namespace, finished=False)
        body = _claim_body(namespace, None, ref={"name": STEP, "namespace": "elsewhere"})
        await _create(client, body)
        await wait_until_gone(client, EFFECT_CLAIMS, namespace, _name(body), EffectClaim)
        event = await wait_for_event(client, namespace, _name(body), "CrossNamespaceReference")
    assert event.type == "Warning"
    assert f"elsewhere/{STEP}" in (event.note or "")


# -- the deterministic name (what CEL cannot check) ---------------------------------------------


async def test_a_misnamed_claim_is_degraded_with_validation_failed(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    async with running_controller(client, namespace):
        steprun = await _steprun(client, namespace, finished=True)
        body = _claim_body(namespace, steprun, name="my-own-claim", **_lease(_now(), 1))
        expected = derive_effectclaim_name(namespace, STEP, "charge")
        await _create(client, body)
        claim = await _wait_for_phase(client, namespace, "my-own-claim", "Reserved")
        event = await wait_for_event(client, namespace, "my-own-claim", "ValidationFailed")
    assert _conditions(claim)["Degraded"] == ("True", "ValidationFailed")
    assert claim.status is not None and claim.status.conditions is not None
    message = f'metadata.name must be "{expected}" for EffectClaim (got "my-own-claim")'
    assert claim.status.conditions[0].message == message
    assert event.note == message
    # Not a claim the SDK would use: never abandoned, even with its 1 s lease long stale.
    assert claim.spec.completion_status is None


# -- abandoned leases -----------------------------------------------------------------------------


async def test_a_held_lease_of_a_finished_steprun_is_abandoned_when_it_expires(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    async with running_controller(client, namespace):
        steprun = await _steprun(client, namespace, finished=True)
        start = _now()
        expiry = start + datetime.timedelta(seconds=2)
        body = _claim_body(namespace, steprun, **_lease(start, 2))
        name = _name(body)
        await _create(client, body)
        reserved = await _wait_for_phase(client, namespace, name, "Reserved", within=2)
        seen_reserved_at = _now()
        # Nothing but the controller's timer wakes the claim from here on: its StepRun
        # finished before the claim existed and nobody writes to either of them.
        abandoned = await _wait_for_phase(client, namespace, name, "Abandoned", within=15)
        seen_abandoned_at = _now()
        event = await wait_for_event(client, namespace, name, "EffectClaimAbandoned")
    assert seen_reserved_at < expiry, "the claim must be Reserved while its lease is held"
    assert reserved.spec.completion_status is None
    assert abandoned.spec.completion_status == "abandoned"
    completed_at = abandoned.spec.completed_at
    assert completed_at is not None
    # Abandoned at expiry (completedAt is whole seconds), promptly (a timer, not a poll).
    assert completed_at >= expiry.replace(microsecond=0)
    assert seen_abandoned_at - expiry < datetime.timedelta(seconds=5)
    # The holder and lease stay, to show who held it.
    assert abandoned.spec.holder_identity == f"holder:{HOLDER_SUFFIX}"
    assert _conditions(abandoned) == {
        "Ready": ("False", "Abandoned"),
        "Progressing": ("False", "Abandoned"),
        "Degraded": ("True", "Abandoned"),
    }
    assert event.type == "Warning"
    assert f"holder:{HOLDER_SUFFIX}" in (event.note or "")
    assert f"StepRun {namespace}/{STEP} is Succeeded" in (event.note or "")


async def test_a_stale_lease_of_a_running_steprun_is_not_abandoned_until_the_steprun_finishes(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    async with running_controller(client, namespace):
        steprun = await _steprun(client, namespace, finished=False)
        body = _claim_body(namespace, steprun, **_lease(_now() - datetime.timedelta(minutes=1), 2))
        name = _name(body)
        await _create(client, body)
        # The reconcile that wrote this status saw the stale lease and decided (abandoning
        # comes before the status in one reconcile): the step is not finished, so Reserved.
        reserved = await _wait_for_phase(client, namespace, name, "Reserved")
        assert reserved.spec.completion_status is None
        assert _conditions(reserved)["Degraded"] == ("False", "Reserved")
        current = await wait_for_steprun(
            client, namespace, STEP, lambda sr: phase_of(sr) == "Blocked", "still Blocked"
        )
        assert (await _get(client, namespace, name)).spec.completion_status is None
        # The StepRun finishing wakes its claim at once (the watch, no timer is pending).
        await _finish(client, current)
        abandoned = await _wait_for_phase(client, namespace, name, "Abandoned", within=10)
    assert abandoned.spec.completion_status == "abandoned"


async def test_a_deleted_steprun_takes_its_claims_with_it(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    """No garbage collector runs on the test control plane (no kube-controller-manager): the
    StepRun watch wakes the claim, which finds its StepRun gone and deletes it."""
    from runs_controller.kube.resources import STEP_RUNS

    async with running_controller(client, namespace):
        steprun = await _steprun(client, namespace, finished=True)
        body = _claim_body(
            namespace, steprun, completionStatus="completed", completedAt=_seconds(_now())
        )
        name = _name(body)
        await _create(client, body)
        await _wait_for_phase(client, namespace, name, "Completed")
        # The StepRun controller finalizes it (it has no Job) and it is gone.
        await client.delete(STEP_RUNS, STEP, namespace)
        await wait_until_gone(client, STEP_RUNS, namespace, STEP, StepRun)
        await wait_until_gone(client, EFFECT_CLAIMS, namespace, name, EffectClaim)
        await wait_for_event(client, namespace, name, "StepRunMissing")
