"""Resource types: where a kind lives on the REST API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runs_controller.api.schema import ResourceInfo


@dataclass(frozen=True)
class ResourceType:
    """A REST resource: group ("" for core), version, plural, kind and scope."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path; a namespaced type without `namespace` addresses all namespaces."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base

    @classmethod
    def from_info(cls, info: ResourceInfo) -> ResourceType:
        return cls(
            group=info.group,
            version=info.version,
            plural=info.plural,
            kind=info.kind,
            namespaced=info.scope == "Namespaced",
        )


NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", namespaced=False)
CONFIG_MAPS = ResourceType("", "v1", "configmaps", "ConfigMap")
PODS = ResourceType("", "v1", "pods", "Pod")
CORE_EVENTS = ResourceType("", "v1", "events", "Event")
EVENTS = ResourceType("events.k8s.io", "v1", "events", "Event")
JOBS = ResourceType("batch", "v1", "jobs", "Job")
LEASES = ResourceType("coordination.k8s.io", "v1", "leases", "Lease")
