"""The three conditions every runs kind carries (controller-behaviour.md §1.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runs_controller.api.meta import Condition

if TYPE_CHECKING:
    import datetime
    from collections.abc import Sequence

REASON_LIMIT = 64
MESSAGE_LIMIT = 2048
"""The CRDs' CEL caps on a condition's reason and message."""


def ready_progressing_degraded(
    ready: bool,
    progressing: bool,
    degraded: bool,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime.datetime,
    previous: Sequence[Condition] | None,
) -> list[Condition]:
    """Ready, Progressing and Degraded with one reason and message; a condition's transition
    time is kept while its status stays the same."""
    by_type = {c.type: c for c in previous or ()}
    out = []
    for type_, flag in (("Ready", ready), ("Progressing", progressing), ("Degraded", degraded)):
        status = "True" if flag else "False"
        old = by_type.get(type_)
        since = old.last_transition_time if old is not None and old.status == status else now
        out.append(
            Condition(
                type=type_,
                status=status,
                last_transition_time=since,
                reason=reason[:REASON_LIMIT],
                message=message[:MESSAGE_LIMIT],
                observed_generation=generation,
            )
        )
    return out


__all__ = ["MESSAGE_LIMIT", "REASON_LIMIT", "ready_progressing_degraded"]
