"""Engram execution counters (§1.3, ruling 13): `totalExecutions`, `failedExecutions`,
`lastExecutionTime` on the Engram's status.

Counted once per StepRun: the reconciler calls `count` only after its own apply that first
records the StepRun's terminal phase (the conditions that follow the phase are the marker), so
a replayed event, a resync or a restart never counts the same StepRun twice.

Writes are coalesced per Engram: while one status patch of an Engram is in flight, the
executions that end meanwhile are added up and go out together in the next patch, so a busy
Engram costs one patch per round trip, not one per step, and concurrent workers never race each
other into conflicts. The counters are informational: an Engram that cannot be updated (gone,
forbidden) is logged, never retried forever, and never holds up a StepRun; executions still
pending when the process ends are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from runs_controller.api.bubustack.engram import Engram
from runs_controller.kube.errors import Conflict, KubeError, NotFound
from runs_controller.kube.resources import ENGRAMS
from runs_controller.runtime.written import WrittenObjects

if TYPE_CHECKING:
    import datetime

    from runs_controller.kube.client import KubeClient
    from runs_controller.runtime.cache import CacheReader

log = structlog.get_logger("runs_controller.steprun")

ATTEMPTS = 5


def _timestamp(now: datetime.datetime) -> str:
    return now.replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class _Pending:
    total: int = 0
    failed: int = 0
    last: datetime.datetime | None = None
    flushing: bool = False


class EngramCounters:
    def __init__(self, client: KubeClient, engrams: CacheReader[Engram]) -> None:
        self._client = client
        self._engrams = engrams
        self._written: WrittenObjects[Engram] = WrittenObjects()
        self._pending: dict[tuple[str, str], _Pending] = {}
        self.patches = 0
        """Status patches sent (a benchmark reads it)."""

    async def count(
        self, namespace: str, name: str, *, failed: bool, now: datetime.datetime
    ) -> None:
        """Add one execution (and one failure when `failed`). The caller that finds no patch
        of this Engram in flight sends it, with whatever else has piled up meanwhile."""
        key = (namespace, name)
        pending = self._pending.setdefault(key, _Pending())
        pending.total += 1
        pending.failed += 1 if failed else 0
        pending.last = now if pending.last is None else max(pending.last, now)
        if pending.flushing:
            return
        pending.flushing = True
        try:
            while pending.total:
                total, failures, last = pending.total, pending.failed, pending.last
                pending.total, pending.failed, pending.last = 0, 0, None
                assert last is not None  # noqa: S101 - set with every increment
                if not await self._add(namespace, name, total, failures, last):
                    break
        finally:
            pending.flushing = False
            if not pending.total:
                self._pending.pop(key, None)

    async def _add(
        self, namespace: str, name: str, total: int, failures: int, last: datetime.datetime
    ) -> bool:
        """One patch adding `total` / `failures`: on the cached copy (or our own later
        write), preconditioned on its resourceVersion; on a conflict, again on a fresh read.
        False when the Engram cannot be updated (the counts are dropped)."""
        cached = self._engrams.get(namespace, name)
        engram = self._written.freshest(cached) if cached is not None else None
        for _ in range(ATTEMPTS):
            try:
                if engram is None:
                    engram = await self._client.get(ENGRAMS, name, namespace, type=Engram)
                status = engram.status
                patch = {
                    "metadata": {
                        "resourceVersion": engram.metadata.resource_version
                        if engram.metadata
                        else None
                    },
                    "status": {
                        "totalExecutions": ((status.total_executions if status else None) or 0)
                        + total,
                        "failedExecutions": ((status.failed_executions if status else None) or 0)
                        + failures,
                        "lastExecutionTime": _timestamp(last),
                    },
                }
                self.patches += 1
                written = await self._client.merge_patch(
                    ENGRAMS, name, patch, namespace, type=Engram, subresource="status"
                )
                self._written.remember(written)
                return True
            except Conflict:
                engram = None
            except NotFound:
                return False
            except KubeError as error:
                log.warning(
                    "engram_counters_failed", engram=f"{namespace}/{name}", error=str(error)
                )
                return False
        log.warning("engram_counters_conflicted", engram=f"{namespace}/{name}", attempts=ATTEMPTS)
        return False


__all__ = ["EngramCounters"]
