"""The subset of built-in Kubernetes kinds the controllers read or write.

batch/v1 Job (created for Engram steps), core/v1 Pod status (exit codes), coordination/v1 Lease
(leader election), events.k8s.io/v1 Event and core/v1 Event (the recorder), and the per-StoryRun
engram-runner ServiceAccount, Role and RoleBinding. Only the fields we
use are typed; pod-spec parts we pass through untouched (affinity, tolerations, volumes, probes)
stay raw JSON so nothing is lost in a round trip.
"""

from __future__ import annotations

import datetime
from typing import Any

import msgspec

from runs_controller.api.codec import MicroTime
from runs_controller.api.meta import ObjectMeta, Resource
from runs_controller.api.schema import Struct

# ---- core/v1 pod template parts ------------------------------------------------------------


class EnvVar(Struct, frozen=True):
    name: str
    value: str | None = None
    value_from: dict[str, Any] | None = None


class ResourceRequirements(Struct, frozen=True):
    limits: dict[str, str] | None = None
    requests: dict[str, str] | None = None


class ContainerPort(Struct, frozen=True):
    container_port: int
    name: str | None = None
    protocol: str | None = None


class VolumeMount(Struct, frozen=True):
    name: str
    mount_path: str
    read_only: bool | None = None
    sub_path: str | None = None


class SecurityContext(Struct, frozen=True):
    run_as_non_root: bool | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    allow_privilege_escalation: bool | None = None
    read_only_root_filesystem: bool | None = None
    privileged: bool | None = None
    capabilities: dict[str, Any] | None = None
    seccomp_profile: dict[str, Any] | None = None


class Container(Struct, frozen=True):
    name: str
    image: str | None = None
    image_pull_policy: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[EnvVar] | None = None
    env_from: list[dict[str, Any]] | None = None
    ports: list[ContainerPort] | None = None
    resources: ResourceRequirements | None = None
    volume_mounts: list[VolumeMount] | None = None
    liveness_probe: dict[str, Any] | None = None
    readiness_probe: dict[str, Any] | None = None
    startup_probe: dict[str, Any] | None = None
    security_context: SecurityContext | None = None
    termination_message_policy: str | None = None


class PodSpec(Struct, frozen=True):
    containers: list[Container]
    init_containers: list[Container] | None = None
    restart_policy: str | None = None
    service_account_name: str | None = None
    automount_service_account_token: bool | None = None
    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    affinity: dict[str, Any] | None = None
    volumes: list[dict[str, Any]] | None = None
    security_context: dict[str, Any] | None = None
    termination_grace_period_seconds: int | None = None
    active_deadline_seconds: int | None = None
    image_pull_secrets: list[dict[str, Any]] | None = None
    node_name: str | None = None


class PodTemplateSpec(Struct, frozen=True):
    spec: PodSpec
    metadata: ObjectMeta | None = None


# ---- core/v1 Pod (status only matters) -----------------------------------------------------


class ContainerStateTerminated(Struct, frozen=True):
    exit_code: int
    signal: int | None = None
    reason: str | None = None
    message: str | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    container_id: str | None = msgspec.field(default=None, name="containerID")


class ContainerState(Struct, frozen=True):
    waiting: dict[str, Any] | None = None
    running: dict[str, Any] | None = None
    terminated: ContainerStateTerminated | None = None


class ContainerStatus(Struct, frozen=True):
    name: str
    ready: bool = False
    restart_count: int = 0
    state: ContainerState | None = None
    last_state: ContainerState | None = None
    image: str | None = None


class PodStatus(Struct, frozen=True):
    phase: str | None = None
    reason: str | None = None
    message: str | None = None
    start_time: datetime.datetime | None = None
    container_statuses: list[ContainerStatus] | None = None
    init_container_statuses: list[ContainerStatus] | None = None
    conditions: list[dict[str, Any]] | None = None
    host_ip: str | None = None
    pod_ip: str | None = None


class Pod(Resource, kw_only=True, frozen=True):
    spec: PodSpec | None = None
    status: PodStatus | None = None


# ---- core/v1 ConfigMap (tests, benchmarks, and later the operator's own configuration) ------


class ConfigMap(Resource, kw_only=True, frozen=True):
    data: dict[str, str] | None = None
    binary_data: dict[str, str] | None = None


# ---- core/v1 ServiceAccount and rbac.authorization.k8s.io/v1 Role, RoleBinding -------------


class ServiceAccount(Resource, kw_only=True, frozen=True):
    """core/v1 ServiceAccount; we write only metadata, the rest is kept raw for round trips."""

    secrets: list[dict[str, Any]] | None = None
    image_pull_secrets: list[dict[str, Any]] | None = None
    automount_service_account_token: bool | None = None


class PolicyRule(Struct, frozen=True):
    """rbac/v1 PolicyRule as a Role carries it (typed, so a decoded Role compares field by field).

    Inside our CRD specs the same schema stays raw JSON (`api.bubustack.shared.PolicyRule`).
    """

    verbs: list[str] = msgspec.field(default_factory=list)
    api_groups: list[str] | None = None
    resources: list[str] | None = None
    resource_names: list[str] | None = None
    non_resource_urls: list[str] | None = msgspec.field(default=None, name="nonResourceURLs")


class Role(Resource, kw_only=True, frozen=True):
    rules: list[PolicyRule] | None = None


class RoleRef(Struct, frozen=True):
    api_group: str
    kind: str
    name: str


class Subject(Struct, frozen=True):
    kind: str
    name: str
    api_group: str | None = None
    namespace: str | None = None


class RoleBinding(Resource, kw_only=True, frozen=True):
    role_ref: RoleRef
    subjects: list[Subject] | None = None


# ---- batch/v1 Job ----------------------------------------------------------------------------


class JobSpec(Struct, frozen=True):
    template: PodTemplateSpec
    parallelism: int | None = None
    completions: int | None = None
    backoff_limit: int | None = None
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None
    suspend: bool | None = None
    selector: dict[str, Any] | None = None
    manual_selector: bool | None = None
    pod_failure_policy: dict[str, Any] | None = None
    completion_mode: str | None = None


class JobCondition(Struct, frozen=True):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    last_probe_time: datetime.datetime | None = None
    last_transition_time: datetime.datetime | None = None


class JobStatus(Struct, frozen=True):
    conditions: list[JobCondition] | None = None
    start_time: datetime.datetime | None = None
    completion_time: datetime.datetime | None = None
    active: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    terminating: int | None = None
    ready: int | None = None


class Job(Resource, kw_only=True, frozen=True):
    spec: JobSpec | None = None
    status: JobStatus | None = None


# ---- coordination/v1 Lease -------------------------------------------------------------------


class LeaseSpec(Struct, frozen=True):
    holder_identity: str | None = None
    lease_duration_seconds: int | None = None
    acquire_time: MicroTime | None = None
    renew_time: MicroTime | None = None
    lease_transitions: int | None = None


class Lease(Resource, kw_only=True, frozen=True):
    spec: LeaseSpec | None = None


# ---- events ---------------------------------------------------------------------------------


class ObjectReference(Struct, frozen=True):
    """core/v1 ObjectReference, the `regarding`/`involvedObject` of an event."""

    api_version: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    field_path: str | None = None


class EventSeries(Struct, frozen=True):
    count: int
    last_observed_time: MicroTime


class Event(Resource, kw_only=True, frozen=True):
    """events.k8s.io/v1 Event."""

    event_time: MicroTime
    series: EventSeries | None = None
    reporting_controller: str | None = None
    reporting_instance: str | None = None
    action: str | None = None
    reason: str | None = None
    regarding: ObjectReference | None = None
    related: ObjectReference | None = None
    note: str | None = None
    type: str | None = None
    deprecated_count: int | None = None


class EventSource(Struct, frozen=True):
    component: str | None = None
    host: str | None = None


class CoreEvent(Resource, kw_only=True, frozen=True):
    """core/v1 Event (the fallback when events.k8s.io is not served)."""

    involved_object: ObjectReference
    reason: str | None = None
    message: str | None = None
    source: EventSource | None = None
    first_timestamp: datetime.datetime | None = None
    last_timestamp: datetime.datetime | None = None
    count: int | None = None
    type: str | None = None
    event_time: MicroTime | None = None
    action: str | None = None
    reporting_component: str | None = None
    reporting_instance: str | None = None
