"""A placeholder reconciler: reads its object from the cache and does nothing else yet.

It lets everything around the reconcilers (caches, indexes, leader election, fencing,
shutdown, metrics) run as in production until each kind's logic lands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from runs_controller.runtime.reconciler import Request, Result

if TYPE_CHECKING:
    from runs_controller.runtime.builder import Kit
    from runs_controller.runtime.cache import CacheReader

log = structlog.get_logger("runs_controller.reconcilers")


class ObservingReconciler:
    def __init__(self, kind: str, objects: CacheReader[Any], kit: Kit) -> None:
        self.kind = kind
        self.objects = objects
        self.kit = kit

    async def reconcile(self, request: Request) -> Result:
        obj = self.objects.get(request.namespace, request.name)
        log.debug("reconcile_observed", kind=self.kind, exists=obj is not None)
        return Result()
