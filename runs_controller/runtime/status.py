"""The status writer: server-side apply on the status subresource, skipped when it would not
change anything.

Every controller writes status the same way (ruling 19): an apply of the whole status subtree
it owns, under the one field manager `runs-controller`, forced, on `/status`. Fields written by
others (the SDK's merge patches) are never in the body and so never touched. An apply to the
status of an object that is gone fails with NotFound (it never creates one). The status
subresource ignores metadata other than the resourceVersion precondition (optional, see
`apply`), so a UID in the body would not stop an apply that races with a delete and re-create
under the same name: the runs kinds carry finalizers, so their controllers
see the deletion (deletionTimestamp) before a successor can exist.

Before sending, the writer asks `ssa.apply_changes` whether the apply would change the cached
object (values and the fields we own); if not, it is skipped. It also remembers the last body it
applied on top of each observed resourceVersion, so a reconcile that runs again before the
watch delivered our own write does not send the same apply twice.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from runs_controller.api.codec import encode
from runs_controller.runtime.informer import FIELD_MANAGER
from runs_controller.runtime.ssa import apply_changes, normalize, owned_fields

if TYPE_CHECKING:
    from runs_controller.kube.client import KubeClient
    from runs_controller.kube.resources import ResourceType
    from runs_controller.observability.metrics import WriterMetrics

log = structlog.get_logger("runs_controller.status")

T = TypeVar("T")

MEMO_SIZE = 10_000


class StatusWriter:
    """`await writer.apply(resource, observed, status)` for the objects of one controller."""

    def __init__(
        self,
        client: KubeClient,
        *,
        controller: str,
        field_manager: str = FIELD_MANAGER,
        metrics: WriterMetrics | None = None,
    ) -> None:
        self._client = client
        self._controller = controller
        self._field_manager = field_manager
        self._metrics = metrics
        self._memo: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self.sent = 0
        self.skipped = 0

    def would_change(self, observed: Any, status: Any) -> bool:
        """Whether applying `status` over the cached `observed` object changes it."""
        meta = observed.metadata
        owned = owned_fields(
            meta.managed_field_entries() if meta is not None else [], self._field_manager, "status"
        )
        return apply_changes(
            {"status": normalize(status)},
            {"status": normalize(observed.status) if observed.status is not None else {}},
            owned,
        )

    async def apply(
        self, resource: ResourceType, observed: T, status: Any, *, precondition: bool = False
    ) -> T | None:
        """Apply `status` to `observed`'s status subresource; returns the written object, or
        None when the write was skipped because nothing would change.

        With `precondition`, the apply carries `observed`'s resourceVersion and fails with
        `Conflict` when the object changed since: for a status shared with another writer
        (the SDK's StepRun status), a decision made on an old copy is never written.
        """
        meta: Any = getattr(observed, "metadata", None)
        if meta is None or not meta.name:
            raise ValueError("the observed object has no metadata.name")
        metadata: dict[str, Any] = {"name": meta.name, "namespace": meta.namespace}
        if precondition:
            if not meta.resource_version:
                raise ValueError("a preconditioned apply needs the observed resourceVersion")
            metadata["resourceVersion"] = meta.resource_version
        body = encode(
            {
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": metadata,
                "status": normalize(status),
            }
        )
        key = f"{resource.plural}/{meta.namespace}/{meta.name}"
        version = meta.resource_version or ""
        if self._memo.get(key) == (version, body) or not self.would_change(observed, status):
            self._count("skipped", resource)
            return None
        written: T = await self._client.apply(
            resource,
            body,
            meta.name,
            meta.namespace,
            type=type(observed),
            field_manager=self._field_manager,
            force=True,
            subresource="status",
        )
        self._remember(key, version, body)
        self._count("sent", resource)
        return written

    def _remember(self, key: str, version: str, body: bytes) -> None:
        self._memo[key] = (version, body)
        self._memo.move_to_end(key)
        if len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)

    def _count(self, result: str, resource: ResourceType) -> None:
        if result == "sent":
            self.sent += 1
        else:
            self.skipped += 1
        if self._metrics is not None:
            self._metrics.status_writes.labels(self._controller, resource.kind, result).inc()


__all__ = ["StatusWriter"]
