"""EffectClaim decisions: leases, the §5 status table, deletions, owner references, the name
rule and abandoning (engine/leases.py, batch/effects.py)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runs_controller.api import codec
from runs_controller.api.meta import Condition
from runs_controller.api.runs.effectclaim import EffectClaim
from runs_controller.api.runs.steprun import StepRun
from runs_controller.batch import effects
from runs_controller.engine import leases
from runs_controller.engine.naming import derive_effectclaim_name

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
NS = "default"
STEP = "run-1-charge"
STEP_UID = "uid-step"


def _micro(value: datetime.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def claim(
    *,
    name: str | None = None,
    effect_key: str = "charge",
    ref: dict[str, Any] | None = None,
    created: datetime.datetime = T0,
    owners: list[dict[str, Any]] | None = None,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> EffectClaim:
    body: dict[str, Any] = {
        "metadata": {
            "name": name or derive_effectclaim_name(NS, STEP, effect_key),
            "namespace": NS,
            "uid": "uid-claim",
            "resourceVersion": "42",
            "generation": 3,
            "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "spec": {"stepRunRef": ref or {"name": STEP}, "effectKey": effect_key, **spec},
    }
    if owners is not None:
        body["metadata"]["ownerReferences"] = owners
    if status is not None:
        body["status"] = status
    return codec.convert(body, EffectClaim)


def held(renewed: datetime.datetime = T0, seconds: int = 10, **extra: Any) -> EffectClaim:
    return claim(
        holderIdentity="default:run-1-charge:charge:abc",
        acquireTime=_micro(T0),
        renewTime=_micro(renewed),
        leaseDurationSeconds=seconds,
        **extra,
    )


def steprun(phase: str | None = "Succeeded", uid: str = STEP_UID, **status: Any) -> StepRun:
    body: dict[str, Any] = {
        "metadata": {"name": STEP, "namespace": NS, "uid": uid},
        "spec": {"storyRunRef": {"name": "run-1"}, "stepId": "charge"},
    }
    if phase is not None:
        body["status"] = {"phase": phase, **status}
    return codec.convert(body, StepRun)


# -- leases ----------------------------------------------------------------------------------


def test_the_lease_runs_from_renew_time_then_acquire_time_then_creation() -> None:
    renewed = T0 + datetime.timedelta(seconds=5)
    assert leases.stale_at(held(renewed)) == renewed + datetime.timedelta(seconds=10)
    acquired_only = claim(holderIdentity="h", acquireTime=_micro(T0), leaseDurationSeconds=10)
    assert leases.stale_at(acquired_only) == T0 + datetime.timedelta(seconds=10)
    created = T0 - datetime.timedelta(seconds=3)
    bare = claim(holderIdentity="h", leaseDurationSeconds=10, created=created)
    assert leases.stale_at(bare) == created + datetime.timedelta(seconds=10)


def test_a_claim_without_a_duration_gets_the_sdk_default_of_ten_minutes() -> None:
    no_duration = claim(holderIdentity="h", acquireTime=_micro(T0))
    assert leases.lease_seconds(no_duration) == 600
    assert leases.stale_at(no_duration) == T0 + datetime.timedelta(minutes=10)


def test_stale_exactly_at_the_expiry_instant_not_before() -> None:
    lease = held(seconds=2)
    expiry = T0 + datetime.timedelta(seconds=2)
    assert not leases.is_stale(lease, expiry - datetime.timedelta(microseconds=1))
    assert leases.is_stale(lease, expiry)
    assert leases.seconds_until_stale(lease, T0) == 2.0
    assert leases.seconds_until_stale(lease, expiry) is None


def test_held_means_a_holder_and_no_outcome() -> None:
    assert leases.is_held(held())
    assert not leases.is_held(claim(holderIdentity="  "))
    assert not leases.is_held(
        held(completionStatus="completed", completedAt="2026-01-01T12:00:05Z")
    )


@given(renew=st.integers(0, 10_000), duration=st.integers(1, 10_000), at=st.integers(0, 30_000))
def test_the_timer_lands_exactly_on_the_instant_the_lease_goes_stale(
    renew: int, duration: int, at: int
) -> None:
    lease = held(T0 + datetime.timedelta(seconds=renew), seconds=duration)
    now = T0 + datetime.timedelta(seconds=at)
    delay = effects.requeue_after(lease, now)
    if leases.is_stale(lease, now):
        assert delay is None
    else:
        assert delay is not None
        assert leases.is_stale(lease, now + datetime.timedelta(seconds=delay))
        assert delay == max(renew + duration - at, effects.MIN_REQUEUE_SECONDS)


def test_the_timer_never_spins_on_a_lease_a_hair_from_expiry() -> None:
    lease = held(seconds=1)
    almost = T0 + datetime.timedelta(seconds=1) - datetime.timedelta(microseconds=5)
    assert effects.requeue_after(lease, almost) == effects.MIN_REQUEUE_SECONDS


def test_no_timer_without_a_held_lease() -> None:
    assert effects.requeue_after(claim(), T0) is None
    released = claim(completionStatus="released", completedAt="2026-01-01T12:00:01Z")
    assert effects.requeue_after(released, T0) is None


# -- status ----------------------------------------------------------------------------------


def _table(status: Any) -> tuple[str, dict[str, tuple[str, str, str]]]:
    return status.phase, {c.type: (c.status, c.reason, c.message) for c in status.conditions or []}


@pytest.mark.parametrize(
    ("completion", "phase", "ready", "progressing", "degraded", "reason", "message"),
    [
        (None, "Reserved", "False", "True", "False", "Reserved", "reservation is active"),
        ("completed", "Completed", "True", "False", "False", "Completed", "completed and will"),
        ("released", "Released", "False", "False", "False", "Released", "released for retry"),
        ("abandoned", "Abandoned", "False", "False", "True", "Abandoned", "abandoned and will"),
    ],
)
def test_the_status_follows_the_completion_status_table(
    completion: str | None,
    phase: str,
    ready: str,
    progressing: str,
    degraded: str,
    reason: str,
    message: str,
) -> None:
    subject = (
        claim(completionStatus=completion, completedAt="2026-01-01T12:00:01Z")
        if completion
        else claim()
    )
    status = effects.claim_status(subject, T0)
    got_phase, conditions = _table(status)
    assert got_phase == phase
    assert status.observed_generation == 3
    assert {k: v[:2] for k, v in conditions.items()} == {
        "Ready": (ready, reason),
        "Progressing": (progressing, reason),
        "Degraded": (degraded, reason),
    }
    assert all(message in v[2] for v in conditions.values())
    assert all(c.observed_generation == 3 for c in status.conditions or [])


def test_transition_times_are_kept_while_a_condition_keeps_its_status() -> None:
    earlier = T0 - datetime.timedelta(hours=1)
    previous = [
        Condition(
            type=type_, status=flag, last_transition_time=earlier, reason="Reserved", message="m"
        )
        for type_, flag in (("Ready", "False"), ("Progressing", "True"), ("Degraded", "False"))
    ]
    done = effects.conditions(
        effects.lifecycle("completed"), generation=3, now=T0, previous=previous
    )
    assert [(c.type, c.last_transition_time) for c in done] == [
        ("Ready", T0),
        ("Progressing", T0),
        ("Degraded", earlier),
    ]


def test_a_misnamed_claim_keeps_its_phase_and_reports_validation_failed() -> None:
    subject = claim(name="my-claim")
    message = effects.name_violation(subject)
    expected = derive_effectclaim_name(NS, STEP, "charge")
    assert message == f'metadata.name must be "{expected}" for EffectClaim (got "my-claim")'
    phase, conditions = _table(effects.claim_status(subject, T0, invalid=message))
    assert phase == "Reserved"
    assert conditions["Degraded"] == ("True", "ValidationFailed", message)
    assert conditions["Ready"][0] == conditions["Progressing"][0] == "False"
    assert effects.name_violation(claim()) is None


# -- deletions -------------------------------------------------------------------------------


def test_a_steprun_in_another_namespace_deletes_the_claim() -> None:
    elsewhere = claim(ref={"name": STEP, "namespace": "other"})
    gone = effects.cross_namespace(elsewhere)
    assert gone is not None
    assert (gone.type, gone.reason) == ("Warning", "CrossNamespaceReference")
    assert "other/run-1-charge" in gone.message
    assert effects.cross_namespace(claim(ref={"name": STEP, "namespace": NS})) is None
    assert effects.cross_namespace(claim()) is None


def test_a_missing_steprun_makes_an_orphan() -> None:
    gone = effects.orphaned(claim())
    assert (gone.type, gone.reason) == ("Normal", "StepRunMissing")
    assert "default/run-1-charge no longer exists" in gone.message


def test_a_steprun_with_another_uid_is_drift_and_no_uid_is_no_drift() -> None:
    pinned = claim(ref={"name": STEP, "uid": "uid-old"})
    gone = effects.drifted(pinned, steprun())
    assert gone is not None
    assert (gone.type, gone.reason) == ("Warning", "StepRunUIDDrift")
    assert "uid-step" in gone.message and "uid-old" in gone.message
    assert effects.drifted(claim(ref={"name": STEP, "uid": STEP_UID}), steprun()) is None
    assert effects.drifted(claim(), steprun()) is None


# -- owner reference -------------------------------------------------------------------------


def _owner(uid: str = STEP_UID, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "runs.bubustack.io/v1alpha1", "kind": "StepRun", "name": STEP, "uid": uid}


def test_a_missing_owner_reference_is_added_as_a_non_controller_one() -> None:
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u"}
    refs = effects.owner_references(claim(owners=[other]), steprun())
    assert refs is not None
    assert [(r.kind, r.name, r.uid, r.controller) for r in refs] == [
        ("ConfigMap", "x", "u", None),
        ("StepRun", STEP, STEP_UID, None),
    ]


def test_a_present_owner_reference_needs_nothing_and_a_stale_one_is_replaced() -> None:
    assert effects.owner_references(claim(owners=[_owner()]), steprun()) is None
    refs = effects.owner_references(claim(owners=[_owner("uid-old")]), steprun())
    assert refs is not None
    assert [(r.name, r.uid) for r in refs] == [(STEP, STEP_UID)]


# -- abandoning ------------------------------------------------------------------------------

AFTER = T0 + datetime.timedelta(seconds=11)


def test_a_stale_held_claim_of_a_finished_steprun_is_abandoned() -> None:
    assert effects.should_abandon(held(), steprun("Succeeded"), AFTER)
    assert effects.should_abandon(held(), steprun("Failed", exitClass="terminal"), AFTER)


@pytest.mark.parametrize(
    ("subject", "step", "now"),
    [
        (held(), steprun("Succeeded"), T0 + datetime.timedelta(seconds=9)),  # not stale yet
        (held(), steprun("Running"), AFTER),  # the step is still running
        (held(), steprun(None), AFTER),  # no status at all
        (held(), steprun("Failed", exitClass="retry", retries=0), AFTER),  # a retry is due
        (claim(holderIdentity="", acquireTime=_micro(T0)), steprun(), AFTER),  # nobody holds it
        (
            held(completionStatus="completed", completedAt="2026-01-01T12:00:05Z"),
            steprun(),
            AFTER,
        ),
    ],
)
def test_no_abandoning_unless_held_stale_and_final(
    subject: EffectClaim, step: StepRun, now: datetime.datetime
) -> None:
    assert not effects.should_abandon(subject, step, now)


def test_a_spent_retry_budget_counts_as_final() -> None:
    failed = steprun("Failed", exitClass="retry", retries=3)
    assert effects.should_abandon(held(), failed, AFTER, max_retries=3)
    assert not effects.should_abandon(held(), failed, AFTER, max_retries=4)


def test_the_abandon_patch_pairs_completed_at_and_keeps_the_version() -> None:
    now = AFTER + datetime.timedelta(microseconds=654_321)
    assert effects.abandon_patch(held(), now) == {
        "metadata": {"resourceVersion": "42"},
        "spec": {"completionStatus": "abandoned", "completedAt": "2026-01-01T12:00:11Z"},
    }


@given(renew=st.integers(0, 100_000), micro=st.integers(0, 999_999), late=st.integers(0, 10**6))
def test_the_abandon_instant_satisfies_the_crd_time_rules(
    renew: int, micro: int, late: int
) -> None:
    """CEL: int(completedAt) >= int(acquireTime) and >= int(renewTime) (whole seconds)."""
    renewed = T0 + datetime.timedelta(seconds=renew, microseconds=micro)
    lease = held(renewed, seconds=1)
    expiry = leases.stale_at(lease)
    assert expiry is not None
    now = expiry + datetime.timedelta(microseconds=late)
    assert effects.should_abandon(lease, steprun(), now)
    completed_at = datetime.datetime.strptime(
        effects.abandon_patch(lease, now)["spec"]["completedAt"], "%Y-%m-%dT%H:%M:%SZ"
    ).replace(tzinfo=datetime.UTC)
    assert int(completed_at.timestamp()) >= int(renewed.timestamp()) >= int(T0.timestamp())


def test_the_abandon_message_names_holder_steprun_and_effect() -> None:
    message = effects.abandon_message(held(), steprun("Succeeded"))
    assert "default:run-1-charge:charge:abc" in message
    assert "StepRun default/run-1-charge is Succeeded" in message
    assert "2026-01-01T12:00:10Z" in message
    assert "'charge'" in message


# -- wake-ups --------------------------------------------------------------------------------


def test_a_steprun_wakes_its_claims_only_when_it_becomes_final_or_goes_away() -> None:
    from runs_controller.reconcilers.effectclaim.watches import steprun_finished
    from runs_controller.runtime.informer import Event

    finished = steprun_finished(lambda: 3)
    running, done = steprun("Running"), steprun("Succeeded")
    retrying = steprun("Failed", exitClass="retry", retries=0)
    assert finished(Event("updated", done, old=running))
    assert finished(Event("updated", steprun("Failed", exitClass="retry", retries=3), old=retrying))
    assert not finished(Event("updated", done, old=done))  # e.g. the SDK appending an effect
    assert not finished(Event("updated", retrying, old=running))  # a retry is coming
    assert not finished(Event("updated", running, old=done))
    assert finished(Event("added", done))
    assert not finished(Event("added", running))
    assert finished(Event("deleted", running))
