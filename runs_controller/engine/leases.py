"""EffectClaim leases: when a reservation counts as held, and the instant it goes stale.

The SDK's own rule (controller-behaviour.md §5), so the controller never calls stale a lease
the SDK would still respect: a lease is stale once `now >= base + leaseDurationSeconds`, where
`base` is `renewTime`, else `acquireTime`, else the claim's creationTimestamp, and a missing
or non-positive duration means the SDK's default of ten minutes.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runs_controller.api.runs.effectclaim import EffectClaim

DEFAULT_LEASE_SECONDS = 600
"""The SDK's lease duration when the claim names none."""


def lease_seconds(claim: EffectClaim) -> int:
    duration = claim.spec.lease_duration_seconds
    return duration if duration is not None and duration > 0 else DEFAULT_LEASE_SECONDS


def holder(claim: EffectClaim) -> str:
    """The current holder, "" when nobody holds the reservation (released)."""
    return (claim.spec.holder_identity or "").strip()


def is_held(claim: EffectClaim) -> bool:
    """A reservation with a holder and no recorded outcome: the effect may be under way."""
    return claim.spec.completion_status is None and holder(claim) != ""


def stale_at(claim: EffectClaim) -> datetime.datetime | None:
    """The instant the lease goes stale; None when the claim carries no time at all."""
    spec = claim.spec
    created = claim.metadata.creation_timestamp if claim.metadata is not None else None
    base = spec.renew_time or spec.acquire_time or created
    if base is None:
        return None
    if base.tzinfo is None:
        base = base.replace(tzinfo=datetime.UTC)
    return base + datetime.timedelta(seconds=lease_seconds(claim))


def is_stale(claim: EffectClaim, now: datetime.datetime) -> bool:
    expiry = stale_at(claim)
    return expiry is not None and now >= expiry


def seconds_until_stale(claim: EffectClaim, now: datetime.datetime) -> float | None:
    """How long until the lease goes stale; None when it already is (or has no time)."""
    expiry = stale_at(claim)
    if expiry is None or now >= expiry:
        return None
    return (expiry - now).total_seconds()


__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "holder",
    "is_held",
    "is_stale",
    "lease_seconds",
    "seconds_until_stale",
    "stale_at",
]
