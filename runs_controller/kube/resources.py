"""Resource types: where a kind lives on the REST API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from runs_controller.api.bubustack.engram import ENGRAM
from runs_controller.api.bubustack.story import STORY
from runs_controller.api.catalog.engramtemplate import ENGRAM_TEMPLATE
from runs_controller.api.runs.effectclaim import EFFECT_CLAIM
from runs_controller.api.runs.steprun import STEP_RUN
from runs_controller.api.runs.storyrun import STORY_RUN
from runs_controller.api.runs.storytrigger import STORY_TRIGGER

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
SERVICE_ACCOUNTS = ResourceType("", "v1", "serviceaccounts", "ServiceAccount")
ROLES = ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLE_BINDINGS = ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")


def _crd(info: ResourceInfo) -> ResourceType:
    return ResourceType.from_info(info)


STORY_RUNS = _crd(STORY_RUN)
STEP_RUNS = _crd(STEP_RUN)
STORY_TRIGGERS = _crd(STORY_TRIGGER)
EFFECT_CLAIMS = _crd(EFFECT_CLAIM)
STORIES = _crd(STORY)
ENGRAMS = _crd(ENGRAM)
ENGRAM_TEMPLATES = _crd(ENGRAM_TEMPLATE)
