"""What wakes an EffectClaim besides its own events: its StepRun finishing for good, or going
away. Every other StepRun update (the SDK's status writes, its effects list, our conditions)
leaves the claims alone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runs_controller.engine.finality import is_final
from runs_controller.runtime.reconciler import Request

if TYPE_CHECKING:
    from collections.abc import Callable

    from runs_controller.api.runs.effectclaim import EffectClaim
    from runs_controller.api.runs.steprun import StepRun
    from runs_controller.runtime.cache import CacheReader
    from runs_controller.runtime.handlers import Predicate
    from runs_controller.runtime.informer import Event


def steprun_finished(max_retries: Callable[[], int]) -> Predicate:
    """True when a StepRun becomes final (terminal, no retry due, no check pending: a stale
    claim of it can be abandoned now) or is deleted (its claims are orphans). `max_retries`
    reads the operator default at event time."""

    def predicate(event: Event[Any]) -> bool:
        if event.type == "deleted":
            return True
        budget = max_retries()
        final = is_final(event.obj, budget)
        if event.type != "updated" or event.old is None:
            return final
        return final and not is_final(event.old, budget)

    return predicate


def claims_of(claims: CacheReader[EffectClaim], steprun: StepRun) -> list[Request]:
    """The claims with an owner reference to `steprun` (the SDK sets it, the controller
    repairs it)."""
    uid = steprun.metadata.uid if steprun.metadata is not None else None
    if not uid:
        return []
    return [
        Request(claim.metadata.namespace or "", claim.metadata.name)
        for claim in claims.owned_by(uid)
        if claim.metadata is not None and claim.metadata.name
    ]


__all__ = ["claims_of", "steprun_finished"]
