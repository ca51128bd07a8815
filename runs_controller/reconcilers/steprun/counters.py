"""Engram execution counters (§1.3, ruling 13): `totalExecutions`, `failedExecutions`,
`lastExecutionTime` on the Engram's status.

Counted once per StepRun: the reconciler calls `count` only after its own apply that first
records the StepRun's terminal phase (the conditions that follow the phase are the marker), so
a replayed event, a resync or a restart never counts the same StepRun twice. The counters are
informational: an Engram that cannot be updated (gone, forbidden) is logged, never retried
forever, and never holds up the StepRun.
"""

from __future__ import annotations

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


class EngramCounters:
    def __init__(self, client: KubeClient, engrams: CacheReader[Engram]) -> None:
        self._client = client
        self._engrams = engrams
        self._written: WrittenObjects[Engram] = WrittenObjects()

    async def count(
        self, namespace: str, name: str, *, failed: bool, now: datetime.datetime
    ) -> None:
        """Add one execution (and one failure when `failed`): a merge patch of the status on
        the cached copy (or our own later write), preconditioned on its resourceVersion; on a
        conflict, again on a fresh read."""
        cached = self._engrams.get(namespace, name)
        engram = self._written.freshest(cached) if cached is not None else None
        for _ in range(ATTEMPTS):
            try:
                if engram is None:
                    engram = await self._client.get(ENGRAMS, name, namespace, type=Engram)
                status = engram.status
                total = (status.total_executions if status else None) or 0
                failures = (status.failed_executions if status else None) or 0
                patch = {
                    "metadata": {
                        "resourceVersion": engram.metadata.resource_version
                        if engram.metadata
                        else None
                    },
                    "status": {
                        "totalExecutions": total + 1,
                        "failedExecutions": failures + (1 if failed else 0),
                        "lastExecutionTime": _timestamp(now),
                    },
                }
                written = await self._client.merge_patch(
                    ENGRAMS, name, patch, namespace, type=Engram, subresource="status"
                )
                self._written.remember(written)
                return
            except Conflict:
                engram = None
                continue
            except NotFound:
                return
            except KubeError as error:
                log.warning(
                    "engram_counters_failed", engram=f"{namespace}/{name}", error=str(error)
                )
                return
        log.warning("engram_counters_conflicted", engram=f"{namespace}/{name}", attempts=ATTEMPTS)


__all__ = ["EngramCounters"]
