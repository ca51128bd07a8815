"""Policy and workload types shared by Story, Engram, Impulse and the runs kinds."""

from __future__ import annotations

from typing import Annotated, Any

from runs_controller.api.enums import BackoffStrategy, UpdateStrategyType, WorkloadMode
from runs_controller.api.refs import DNS_LABEL_PATTERN
from runs_controller.api.schema import F, Int32, Int64, Struct

TRIGGER_DEDUPE_MODES = ("none", "token", "key")
CACHE_MODES = ("read", "write", "readWrite")

TriggerDedupeMode = Annotated[str, F(enum=TRIGGER_DEDUPE_MODES)]

Toleration = Annotated[dict[str, Any], F(core="io.k8s.api.core.v1.Toleration")]
Affinity = Annotated[dict[str, Any], F(core="io.k8s.api.core.v1.Affinity")]
PolicyRule = Annotated[dict[str, Any], F(core="io.k8s.api.rbac.v1.PolicyRule")]
EmptyDirVolumeSource = Annotated[dict[str, Any], F(core="io.k8s.api.core.v1.EmptyDirVolumeSource")]
LocalObjectReference = Annotated[dict[str, Any], F(core="io.k8s.api.core.v1.LocalObjectReference")]


class JobWorkloadConfig(Struct, frozen=True):
    """JobWorkloadConfig holds settings copied onto the batch/v1 Job spec."""

    parallelism: Int32 | None = None
    """Parallelism is copied to the Job's spec.parallelism."""
    completions: Int32 | None = None
    """Completions is copied to the Job's spec.completions."""
    backoff_limit: Int32 | None = None
    """BackoffLimit is copied to the Job's spec.backoffLimit."""
    active_deadline_seconds: Int64 | None = None
    """ActiveDeadlineSeconds is copied to the Job's spec.activeDeadlineSeconds."""
    ttl_seconds_after_finished: Int32 | None = None
    """TTLSecondsAfterFinished is copied to the Job's spec.ttlSecondsAfterFinished."""


class StatefulSetWorkloadConfig(Struct, frozen=True):
    """StatefulSetWorkloadConfig is the supported subset of StatefulSet settings."""

    service_name: str
    """ServiceName names the headless Service giving pods stable network identities."""
    pod_management_policy: str | None = None
    """PodManagementPolicy is copied to the StatefulSet's spec.podManagementPolicy."""


class ResourceRequests(Struct, frozen=True):
    """ResourceRequests lists the minimum resources a workload needs."""

    cpu: str | None = None
    memory: str | None = None
    ephemeral_storage: str | None = None


class ResourceLimits(Struct, frozen=True):
    """ResourceLimits lists the maximum resources a workload may use."""

    cpu: str | None = None
    memory: str | None = None
    ephemeral_storage: str | None = None


class PlacementPolicy(Struct, frozen=True):
    """PlacementPolicy holds pod scheduling constraints."""

    node_selector: dict[str, str] | None = None
    """NodeSelector limits scheduling to nodes carrying these labels."""
    tolerations: list[Toleration] | None = None
    """Tolerations let pods be scheduled onto tainted nodes."""
    affinity: Affinity | None = None
    """Affinity holds node and pod affinity rules."""


class WorkloadResources(Struct, frozen=True):
    """WorkloadResources holds resource requirements and placement of a workload."""

    requests: ResourceRequests | None = None
    """Requests are the guaranteed resources."""
    limits: ResourceLimits | None = None
    """Limits are the resource ceilings."""
    placement: PlacementPolicy | None = None
    """Placement holds pod scheduling constraints."""


class RollingUpdateConfig(Struct, frozen=True):
    """RollingUpdateConfig holds rolling update parameters."""

    max_unavailable: str | None = None
    """MaxUnavailable is how many pods (or what percentage) may be unavailable during an
    update."""
    max_surge: str | None = None
    """MaxSurge is how many extra pods may be created during an update (Deployments only)."""


class UpdateStrategy(Struct, frozen=True):
    """UpdateStrategy says how a workload rolls out changes."""

    type: UpdateStrategyType | None = None
    """Type is RollingUpdate or Recreate."""
    rolling_update: RollingUpdateConfig | None = None
    """RollingUpdate parameters, used when type is RollingUpdate."""


class WorkloadSpec(Struct, frozen=True):
    """WorkloadSpec describes the kind of workload that backs a component."""

    mode: Annotated[WorkloadMode, F(default="job")] | None = None
    """Mode picks the workload controller: job, deployment or statefulset."""
    job: JobWorkloadConfig | None = None
    """Job settings, used when mode is job."""
    stateful_set: StatefulSetWorkloadConfig | None = None
    """StatefulSet settings, used when mode is statefulset."""
    resources: WorkloadResources | None = None
    """Resources are the pod-level resource requests and limits."""
    update_strategy: UpdateStrategy | None = None
    """UpdateStrategy says how changes are rolled out."""


class ServiceExposure(Struct, frozen=True):
    """ServiceExposure customises the Service generated for a workload."""

    type: str | None = None
    """Type is the Service type (ClusterIP, NodePort, LoadBalancer)."""
    labels: dict[str, str] | None = None
    """Labels added to the Service metadata."""
    annotations: dict[str, str] | None = None
    """Annotations added to the Service metadata."""


class RetryPolicy(Struct, frozen=True):
    """RetryPolicy says how failed executions are retried."""

    max_retries: Annotated[Int32, F(default=3, minimum=0, maximum=10)] | None = None
    """MaxRetries is the maximum number of retry attempts."""
    delay: Annotated[str, F(default="1s")] | None = None
    """Delay is the base delay between retries (Go duration)."""
    max_delay: str | None = None
    """MaxDelay caps the delay after backoff is applied (Go duration)."""
    jitter: Annotated[Int32, F(minimum=0, maximum=100)] | None = None
    """Jitter is a percentage by which the delay may grow at random (0 disables it)."""
    backoff: BackoffStrategy | None = None
    """Backoff is how the delay grows: exponential, linear or constant."""


class WorkloadSecurity(Struct, frozen=True):
    """WorkloadSecurity holds pod security settings."""

    run_as_non_root: bool | None = None
    """RunAsNonRoot requires a non-root user."""
    allow_privilege_escalation: bool | None = None
    """AllowPrivilegeEscalation allows privilege escalation."""
    read_only_root_filesystem: bool | None = None
    """ReadOnlyRootFilesystem mounts the root filesystem read-only."""
    run_as_user: Int64 | None = None
    """RunAsUser is the user ID to run as."""
    required_secrets: list[str] | None = None
    """RequiredSecrets lists secrets the workload needs."""


class ProbeOverrides(Struct, frozen=True):
    """ProbeOverrides turns off probes the template defines, per instance."""

    disable_liveness: bool | None = None
    """DisableLiveness turns off the liveness probe."""
    disable_readiness: bool | None = None
    """DisableReadiness turns off the readiness probe."""
    disable_startup: bool | None = None
    """DisableStartup turns off the startup probe."""


class RBACRuleOverrides(Struct, frozen=True):
    """RBACRuleOverrides adds RBAC rules to the generated ServiceAccount."""

    rules: list[PolicyRule] | None = None
    """Rules are appended to the default Role."""


class S3Authentication(Struct, frozen=True):
    """S3Authentication says how a workload authenticates to S3 (set one field)."""

    service_account_annotations: dict[str, str] | None = None
    """ServiceAccountAnnotations are added to the generated ServiceAccount (e.g. for IRSA)."""
    secret_ref: LocalObjectReference | None = None
    """SecretRef names a Secret with accessKeyID and secretAccessKey keys."""


class S3StorageProvider(Struct, frozen=True):
    """S3StorageProvider configures an S3 (or S3-compatible) object store."""

    bucket: str
    """Bucket is the S3 bucket name."""
    authentication: S3Authentication
    """Authentication says how the workload authenticates."""
    region: str | None = None
    """Region is the bucket's region."""
    endpoint: str | None = None
    """Endpoint is the S3 endpoint URL (e.g. for MinIO)."""
    use_path_style: bool | None = None
    """UsePathStyle forces path-style addressing."""


class FileStorageProvider(Struct, frozen=True):
    """FileStorageProvider configures a filesystem-backed store."""

    path: str | None = None
    """Path is the directory the storage backend writes to (default /var/run/bubu/storage)."""
    volume_claim_name: str | None = None
    """VolumeClaimName names an existing PersistentVolumeClaim to mount."""
    empty_dir: EmptyDirVolumeSource | None = None
    """EmptyDir is an ephemeral volume used when no claim is named."""


class StoragePolicy(Struct, frozen=True):
    """StoragePolicy configures object storage access."""

    s3: S3StorageProvider | None = None
    """S3 configures an S3-compatible store."""
    file: FileStorageProvider | None = None
    """File configures a filesystem-backed store."""
    timeout_seconds: int | None = None
    """TimeoutSeconds bounds storage operations."""


class CachePolicy(Struct, frozen=True):
    """CachePolicy controls caching of step outputs."""

    enabled: bool | None = None
    """Enabled turns caching on (true when the policy is set)."""
    key: str | None = None
    """Key is the cache key template; the resolved inputs are hashed when empty."""
    salt: str | None = None
    """Salt is mixed into keys; changing it invalidates earlier entries."""
    mode: Annotated[str, F(enum=CACHE_MODES)] | None = None
    """Mode is read, write or readWrite."""
    ttl_seconds: Int32 | None = None
    """TTLSeconds is how long entries stay valid (zero or less: forever)."""


class ExecutionOverrides(Struct, frozen=True):
    """ExecutionOverrides tunes execution of one instance over template and controller
    defaults."""

    timeout: str | None = None
    """Timeout overrides the execution timeout (Go duration)."""
    retry: RetryPolicy | None = None
    """Retry overrides the retry policy."""
    debug: bool | None = None
    """Debug turns on verbose component logging."""
    security: WorkloadSecurity | None = None
    """Security overrides pod security settings."""
    placement: PlacementPolicy | None = None
    """Placement overrides pod scheduling constraints."""
    image_pull_policy: str | None = None
    """ImagePullPolicy overrides the container image pull policy."""
    max_inline_size: int | None = None
    """MaxInlineSize overrides the inline payload limit in bytes (0: always offload)."""
    service_account_name: (
        Annotated[str, F(min_length=1, max_length=253, pattern=DNS_LABEL_PATTERN)] | None
    ) = None
    """ServiceAccountName overrides the ServiceAccount of workload pods."""
    automount_service_account_token: bool | None = None
    """AutomountServiceAccountToken sets automountServiceAccountToken on the pod."""
    probes: ProbeOverrides | None = None
    """Probes turns off template-defined probes."""
    storage: StoragePolicy | None = None
    """Storage overrides the storage policy."""
    cache: CachePolicy | None = None
    """Cache overrides output caching."""
    rbac: RBACRuleOverrides | None = None
    """RBAC adds rules to the generated ServiceAccount's Role."""


class ResourcePolicy(Struct, frozen=True):
    """ResourcePolicy holds concrete pod resource settings."""

    cpu_request: str | None = None
    """CPURequest is the CPU request."""
    memory_request: str | None = None
    """MemoryRequest is the memory request."""
    cpu_limit: str | None = None
    """CPULimit is the CPU limit."""
    memory_limit: str | None = None
    """MemoryLimit is the memory limit."""


class SecurityPolicy(Struct, frozen=True):
    """SecurityPolicy holds concrete pod security settings."""

    run_as_non_root: bool | None = None
    """RunAsNonRoot requires a non-root user."""
    allow_privilege_escalation: bool | None = None
    """AllowPrivilegeEscalation allows privilege escalation."""
    read_only_root_filesystem: bool | None = None
    """ReadOnlyRootFilesystem mounts the root filesystem read-only."""
    run_as_user: Int64 | None = None
    """RunAsUser is the user ID to run as."""


class JobPolicy(Struct, frozen=True):
    """JobPolicy holds Job and run-retention settings."""

    backoff_limit: Int32 | None = None
    """BackoffLimit is the Job backoff limit."""
    ttl_seconds_after_finished: Int32 | None = None
    """TTLSecondsAfterFinished is how long child resources are kept after the run finishes
    (default 3600)."""
    story_run_retention_seconds: Int32 | None = None
    """StoryRunRetentionSeconds is how long a finished StoryRun is kept (default 86400; 0 keeps
    it forever; -1 deletes it right after child cleanup)."""
    restart_policy: str | None = None
    """RestartPolicy is the pod restart policy."""


class RealtimePolicy(Struct, frozen=True):
    """RealtimePolicy holds realtime-only execution settings."""

    ttl_seconds_after_finished: Int32 | None = None
    """TTLSecondsAfterFinished is how long realtime resources remain after finishing (0: delete
    at once; negative: keep)."""


class ExecutionPolicy(Struct, frozen=True):
    """ExecutionPolicy is the execution policy after hierarchical resolution."""

    resources: ResourcePolicy | None = None
    """Resources are the pod resource settings."""
    security: SecurityPolicy | None = None
    """Security holds the pod security settings."""
    placement: PlacementPolicy | None = None
    """Placement holds pod scheduling constraints."""
    job: JobPolicy | None = None
    """Job holds Job controller settings."""
    retry: RetryPolicy | None = None
    """Retry is the retry policy."""
    timeout: str | None = None
    """Timeout is the execution deadline (Go duration)."""
    max_recursion_depth: Annotated[int, F(minimum=1)] | None = None
    """MaxRecursionDepth bounds nesting when hydrating or dehydrating structured data."""
    service_account_name: str | None = None
    """ServiceAccountName is the ServiceAccount of derived workloads."""
    storage: StoragePolicy | None = None
    """Storage is the storage policy."""
    cache: CachePolicy | None = None
    """Cache is the output caching policy."""
    realtime: RealtimePolicy | None = None
    """Realtime holds realtime-only settings."""


class TriggerDedupePolicy(Struct, frozen=True):
    """TriggerDedupePolicy configures deduplication of triggers."""

    mode: TriggerDedupeMode | None = None
    """Mode is none, token (caller token) or key (derived from keyTemplate)."""
    key_template: str | None = None
    """KeyTemplate derives the dedupe key when mode is key."""


class TriggerRetryPolicy(Struct, frozen=True):
    """TriggerRetryPolicy configures retries of trigger delivery."""

    max_attempts: Annotated[Int32, F(minimum=0)] | None = None
    """MaxAttempts caps the attempts, the first included."""
    base_delay: str | None = None
    """BaseDelay is the first retry delay (Go duration)."""
    max_delay: str | None = None
    """MaxDelay caps the retry delay (Go duration)."""
    backoff: BackoffStrategy | None = None
    """Backoff is how the delay grows."""


class TriggerDeliveryPolicy(Struct, frozen=True):
    """TriggerDeliveryPolicy controls how Impulses deliver triggers to Stories."""

    dedupe: TriggerDedupePolicy | None = None
    """Dedupe configures deduplication."""
    retry: TriggerRetryPolicy | None = None
    """Retry configures retries on transient failures."""


class TriggerThrottlePolicy(Struct, frozen=True):
    """TriggerThrottlePolicy throttles trigger submission (enforced by the SDK)."""

    max_in_flight: Int32 | None = None
    """MaxInFlight caps concurrent submissions (zero or less: no limit)."""
    rate_per_second: Int32 | None = None
    """RatePerSecond is the token bucket rate (zero or less: no limit)."""
    burst: Int32 | None = None
    """Burst is the token bucket capacity (defaults to ratePerSecond)."""
