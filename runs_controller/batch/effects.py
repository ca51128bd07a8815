"""What the EffectClaim controller decides, as pure functions of a claim, its StepRun and `now`.

The SDK owns the lease protocol (controller-behaviour.md §5); the controller keeps claims
honest: it deletes the ones that can never be valid (cross-namespace reference, StepRun gone,
StepRun replaced), repairs the owner reference that ties a claim's life to its StepRun, checks
the deterministic name CEL cannot (ruling 15), derives phase and conditions from
`spec.completionStatus`, and marks `abandoned` a reservation whose holder stopped renewing while
its StepRun is finished, so a side effect that may have happened without a recorded outcome is
visible.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from runs_controller.api.meta import Condition, OwnerReference
from runs_controller.api.runs.effectclaim import EffectClaimStatus
from runs_controller.engine import leases
from runs_controller.engine.conditions import ready_progressing_degraded
from runs_controller.engine.finality import DEFAULT_MAX_RETRIES, is_final
from runs_controller.engine.naming import derive_effectclaim_name

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runs_controller.api.runs.effectclaim import EffectClaim
    from runs_controller.api.runs.steprun import StepRun

STEPRUN_API_VERSION: Final = "runs.bubustack.io/v1alpha1"
ABANDONED: Final = "abandoned"
VALIDATION_FAILED: Final = "ValidationFailed"
MIN_REQUEUE_SECONDS: Final = 0.01
"""A lease a hair from expiry still waits a little: never a zero-delay spin."""

REASON_STEPRUN_MISSING: Final = "StepRunMissing"
REASON_STEPRUN_UID_DRIFT: Final = "StepRunUIDDrift"
REASON_CROSS_NAMESPACE: Final = "CrossNamespaceReference"
REASON_ABANDONED_EVENT: Final = "EffectClaimAbandoned"


@dataclass(frozen=True)
class Lifecycle:
    """Phase and the three conditions (§5 table); all three share reason and message."""

    phase: str
    reason: str
    message: str
    ready: bool
    progressing: bool
    degraded: bool


RESERVED = Lifecycle(
    "Reserved", "Reserved", "EffectClaim reservation is active", False, True, False
)
LIFECYCLES: Final[dict[str, Lifecycle]] = {
    "completed": Lifecycle(
        "Completed",
        "Completed",
        "EffectClaim completed and will be retained until the owning StepRun is cleaned up",
        True,
        False,
        False,
    ),
    "released": Lifecycle(
        "Released",
        "Released",
        "EffectClaim released for retry and will be retained until the owning StepRun is "
        "cleaned up",
        False,
        False,
        False,
    ),
    ABANDONED: Lifecycle(
        "Abandoned",
        "Abandoned",
        "EffectClaim abandoned and will be retained until the owning StepRun is cleaned up",
        False,
        False,
        True,
    ),
}


def lifecycle(completion_status: str | None) -> Lifecycle:
    """The §5 row for `spec.completionStatus` (empty or unknown: Reserved)."""
    return LIFECYCLES.get(completion_status or "", RESERVED)


def conditions(
    life: Lifecycle,
    *,
    generation: int | None,
    now: datetime.datetime,
    previous: Sequence[Condition] | None,
) -> list[Condition]:
    """Ready/Progressing/Degraded; a transition time is kept while the status stays."""
    return ready_progressing_degraded(
        life.ready,
        life.progressing,
        life.degraded,
        life.reason,
        life.message,
        generation=generation,
        now=now,
        previous=previous,
    )


def claim_status(
    claim: EffectClaim, now: datetime.datetime, *, invalid: str | None = None
) -> EffectClaimStatus:
    """The whole status the controller applies. `invalid` (a name violation) keeps the phase
    of the completionStatus but reports `ValidationFailed`, Degraded, in the conditions."""
    life = lifecycle(claim.spec.completion_status)
    if invalid is not None:
        life = Lifecycle(life.phase, VALIDATION_FAILED, invalid, False, False, True)
    generation = claim.metadata.generation if claim.metadata is not None else None
    previous = claim.status.conditions if claim.status is not None else None
    return EffectClaimStatus(
        observed_generation=generation,
        phase=life.phase,
        conditions=conditions(life, generation=generation, now=now, previous=previous),
    )


# -- deletion -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deletion:
    """Why a claim is deleted: the event that says so."""

    type: str
    reason: str
    message: str


def _namespace(claim: EffectClaim) -> str:
    return (claim.metadata.namespace if claim.metadata is not None else None) or ""


def steprun_key(claim: EffectClaim) -> tuple[str, str]:
    """`(namespace, name)` of the referenced StepRun (namespace defaults to the claim's)."""
    ref = claim.spec.step_run_ref
    return ref.namespace or _namespace(claim), ref.name


def cross_namespace(claim: EffectClaim) -> Deletion | None:
    """A StepRun elsewhere is never valid, whatever the policy (§7.4 rule 5)."""
    namespace, name = steprun_key(claim)
    if namespace == _namespace(claim):
        return None
    return Deletion(
        "Warning",
        REASON_CROSS_NAMESPACE,
        f"Deleting EffectClaim: spec.stepRunRef names StepRun {namespace}/{name} in another "
        "namespace; an EffectClaim must be in the namespace of its StepRun",
    )


def orphaned(claim: EffectClaim) -> Deletion:
    """The StepRun is gone (the cache and an uncached read agree)."""
    namespace, name = steprun_key(claim)
    return Deletion(
        "Normal",
        REASON_STEPRUN_MISSING,
        f"Deleting orphan EffectClaim: StepRun {namespace}/{name} no longer exists",
    )


def drifted(claim: EffectClaim, steprun: StepRun) -> Deletion | None:
    """The StepRun is another one than the claim was made for (`stepRunRef.uid` differs)."""
    if not uid_mismatch(claim, steprun):
        return None
    namespace, name = steprun_key(claim)
    actual = steprun.metadata.uid if steprun.metadata is not None else None
    return Deletion(
        "Warning",
        REASON_STEPRUN_UID_DRIFT,
        f"Deleting drifted EffectClaim: StepRun {namespace}/{name} has UID {actual}, the "
        f"claim was made for UID {claim.spec.step_run_ref.uid}",
    )


def uid_mismatch(claim: EffectClaim, steprun: StepRun) -> bool:
    """The claim names a UID and `steprun` (maybe a stale cached copy) has another."""
    expected = claim.spec.step_run_ref.uid
    actual = steprun.metadata.uid if steprun.metadata is not None else None
    return bool(expected) and expected != actual


# -- owner reference ------------------------------------------------------------------------


def _is_steprun_ref(ref: OwnerReference, name: str) -> bool:
    group = ref.api_version.split("/", 1)[0]
    return ref.kind == "StepRun" and group == "runs.bubustack.io" and ref.name == name


def owner_references(claim: EffectClaim, steprun: StepRun) -> list[OwnerReference] | None:
    """The claim's owner references with a (non-controller) one to `steprun`, or None when it
    is already there. A reference to an earlier StepRun of the same name is replaced."""
    meta = steprun.metadata
    if meta is None or not meta.name or not meta.uid:
        return None
    current = list((claim.metadata.owner_references if claim.metadata else None) or [])
    if any(
        ref.api_version == STEPRUN_API_VERSION
        and ref.kind == "StepRun"
        and ref.name == meta.name
        and ref.uid == meta.uid
        for ref in current
    ):
        return None
    kept = [ref for ref in current if not _is_steprun_ref(ref, meta.name)]
    owner = OwnerReference(
        api_version=STEPRUN_API_VERSION, kind="StepRun", name=meta.name, uid=meta.uid
    )
    return [*kept, owner]


# -- the name CEL cannot check ----------------------------------------------------------------


def name_violation(claim: EffectClaim) -> str | None:
    """The §7.4 rule 4 message when the claim is not named `<stepRun>-effect-<hash>`."""
    namespace, name = steprun_key(claim)
    expected = derive_effectclaim_name(namespace, name, claim.spec.effect_key)
    got = (claim.metadata.name if claim.metadata is not None else None) or ""
    if got == expected:
        return None
    return f'metadata.name must be "{expected}" for EffectClaim (got "{got}")'


# -- abandoning -----------------------------------------------------------------------------


def should_abandon(
    claim: EffectClaim,
    steprun: StepRun,
    now: datetime.datetime,
    *,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> bool:
    """Held, no outcome, lease stale, and the StepRun finished for good (no retry coming,
    no check pending): nobody will ever record what became of the effect."""
    return leases.is_held(claim) and leases.is_stale(claim, now) and is_final(steprun, max_retries)


def _wire_time(value: datetime.datetime) -> str:
    utc = value.astimezone(datetime.UTC) if value.tzinfo is not None else value
    return utc.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def abandon_patch(claim: EffectClaim, now: datetime.datetime) -> dict[str, Any]:
    """The merge patch that abandons `claim`: completionStatus with the completedAt the CRD
    requires alongside it (`now`: after renewTime and acquireTime, since the lease is stale),
    on the resourceVersion it was judged stale on. Holder and lease fields stay, to show who
    held it."""
    meta = claim.metadata
    version = meta.resource_version if meta is not None else None
    return {
        "metadata": {"resourceVersion": version},
        "spec": {"completionStatus": ABANDONED, "completedAt": _wire_time(now)},
    }


def abandon_message(claim: EffectClaim, steprun: StepRun) -> str:
    namespace, name = steprun_key(claim)
    phase = steprun.status.phase if steprun.status is not None else None
    expiry = leases.stale_at(claim)
    since = f" at {_wire_time(expiry)}" if expiry is not None else ""
    return (
        f"EffectClaim abandoned: the lease of holder {leases.holder(claim)} expired{since} "
        f"and StepRun {namespace}/{name} is {phase}; effect {claim.spec.effect_key!r} may "
        "have happened without a recorded outcome"
    )


def requeue_after(claim: EffectClaim, now: datetime.datetime) -> float | None:
    """The timer: a held lease is looked at again exactly when it would go stale."""
    if not leases.is_held(claim):
        return None
    seconds = leases.seconds_until_stale(claim, now)
    if seconds is None:
        return None
    return max(seconds, MIN_REQUEUE_SECONDS)


__all__ = [
    "ABANDONED",
    "LIFECYCLES",
    "REASON_ABANDONED_EVENT",
    "REASON_CROSS_NAMESPACE",
    "REASON_STEPRUN_MISSING",
    "REASON_STEPRUN_UID_DRIFT",
    "RESERVED",
    "STEPRUN_API_VERSION",
    "VALIDATION_FAILED",
    "Deletion",
    "Lifecycle",
    "abandon_message",
    "abandon_patch",
    "claim_status",
    "conditions",
    "cross_namespace",
    "drifted",
    "lifecycle",
    "name_violation",
    "orphaned",
    "owner_references",
    "requeue_after",
    "should_abandon",
    "steprun_key",
    "uid_mismatch",
]
