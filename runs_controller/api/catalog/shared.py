"""Template parts shared by the catalog kinds: the package definition, its recommended execution
settings, secret contracts and the template status."""

from __future__ import annotations

from typing import Annotated, Any

from runs_controller.api.bubustack.shared import (
    EmptyDirVolumeSource,
    LocalObjectReference,
    PolicyRule,
)
from runs_controller.api.conditions import Conditions
from runs_controller.api.enums import SecretMountType, ValidationStatus, WorkloadMode
from runs_controller.api.schema import F, Int32, Int64, Struct

Probe = Annotated[dict[str, Any], F(core="io.k8s.api.core.v1.Probe")]
"""A core/v1 Probe: raw JSON for Python, the apiserver's schema for the CRD."""


class TemplateImagePolicy(Struct, frozen=True):
    """Image handling the template author recommends."""

    pull_policy: str | None = None
    """Image pull policy to use by default (Always, Never, IfNotPresent)."""


class TemplateResourcePolicy(Struct, frozen=True):
    """CPU and memory the template typically needs."""

    recommended_cpu_request: str | None = None
    """Suggested CPU request."""
    recommended_cpu_limit: str | None = None
    """Suggested CPU limit."""
    recommended_memory_request: str | None = None
    """Suggested memory request."""
    recommended_memory_limit: str | None = None
    """Suggested memory limit."""
    min_cpu_request: str | None = None
    """Lowest CPU request the template works with."""
    min_memory_request: str | None = None
    """Lowest memory request the template works with."""


class TemplateSecurityPolicy(Struct, frozen=True):
    """Security requirements and recommendations of the template."""

    requires_non_root: bool | None = None
    """The workload must run as a non-root user."""
    requires_read_only_root: bool | None = None
    """The workload must run with a read-only root filesystem."""
    requires_no_privilege_escalation: bool | None = None
    """The workload must not allow privilege escalation."""
    recommended_run_as_user: Int64 | None = None
    """Suggested user ID to run as."""


class TemplateJobPolicy(Struct, frozen=True):
    """Job settings recommended for templates that run as Jobs."""

    recommended_backoff_limit: Int32 | None = None
    """Suggested Job backoff limit."""
    recommended_ttl_seconds_after_finished: Int32 | None = None
    """Suggested time to keep a finished Job."""
    recommended_restart_policy: str | None = None
    """Suggested pod restart policy."""


class TemplateRetryPolicy(Struct, frozen=True):
    """Retry behaviour recommended by the template; fills gaps in a step's retry policy."""

    recommended_max_retries: int | None = None
    """Suggested maximum number of retries."""
    recommended_backoff: str | None = None
    """Suggested backoff strategy."""
    recommended_base_delay: str | None = None
    """Suggested initial retry delay (duration)."""
    recommended_max_delay: str | None = None
    """Suggested upper bound for the retry delay (duration)."""


class TemplateServicePort(Struct, frozen=True):
    """One Service port and the container port it forwards to."""

    port: Int32
    """Port exposed by the Service."""
    target_port: Int32
    """Container port the traffic goes to."""
    name: str | None = None
    """Name of the port."""
    protocol: str | None = None
    """Protocol of the port."""


class TemplateServicePolicy(Struct, frozen=True):
    """Service exposure defaults for realtime components and impulses."""

    ports: list[TemplateServicePort] | None = None
    """Service ports and their target container ports."""


class TemplateProbePolicy(Struct, frozen=True):
    """Health probes recommended by the template, in the standard Kubernetes format."""

    liveness: Probe | None = None
    """Restarts the container when it fails."""
    readiness: Probe | None = None
    """Removes the pod from service endpoints when it fails."""
    startup: Probe | None = None
    """Holds the other probes back until the application has started."""


class TemplateS3Authentication(Struct, frozen=True):
    """How a template's workloads authenticate to S3."""

    service_account_annotations: dict[str, str] | None = None
    """Annotations for the ServiceAccount (e.g. workload identity)."""
    secret_ref: LocalObjectReference | None = None
    """Secret holding static S3 credentials."""


class TemplateS3StorageProvider(Struct, frozen=True):
    """S3 storage recommended by the template."""

    bucket: str
    """Bucket name."""
    authentication: TemplateS3Authentication
    """Credentials to use."""
    region: str | None = None
    """Bucket region."""
    endpoint: str | None = None
    """Custom endpoint for S3-compatible stores."""
    use_path_style: bool | None = None
    """Use path-style addressing (S3-compatible stores)."""


class TemplateFileStorageProvider(Struct, frozen=True):
    """File storage recommended by the template."""

    path: str | None = None
    """Mount path of the storage."""
    volume_claim_name: str | None = None
    """PersistentVolumeClaim backing the storage."""
    empty_dir: EmptyDirVolumeSource | None = None
    """Use an emptyDir volume instead of a claim."""


class TemplateStoragePolicy(Struct, frozen=True):
    """Storage recommended for offloading large inputs and outputs."""

    s3: TemplateS3StorageProvider | None = None
    """S3 storage."""
    file: TemplateFileStorageProvider | None = None
    """File storage."""
    timeout_seconds: int | None = None
    """Timeout of storage operations, in seconds."""


class TemplateRBACPolicy(Struct, frozen=True):
    """Extra RBAC for the ServiceAccount generated for workloads of this template."""

    rules: list[PolicyRule] | None = None
    """Role rules appended to the default policy."""


class TemplateExecutionPolicy(Struct, frozen=True):
    """The template author's recommended execution settings; users may override them."""

    images: TemplateImagePolicy | None = None
    """Image handling recommendations."""
    resources: TemplateResourcePolicy | None = None
    """Resource recommendations."""
    security: TemplateSecurityPolicy | None = None
    """Security requirements and recommendations."""
    job: TemplateJobPolicy | None = None
    """Recommendations for Job workloads."""
    retry: TemplateRetryPolicy | None = None
    """Retry recommendations."""
    timeout: str | None = None
    """Recommended timeout (duration)."""
    service: TemplateServicePolicy | None = None
    """Service exposure defaults."""
    probes: TemplateProbePolicy | None = None
    """Health probes."""
    storage: TemplateStoragePolicy | None = None
    """Storage recommendations."""
    rbac: TemplateRBACPolicy | None = None
    """RBAC rules for the generated ServiceAccount."""


class SecretDefinition(Struct, frozen=True):
    """A secret the template expects: whether it is required and how it is mounted."""

    required: bool | None = None
    """The template cannot work without this secret."""
    description: str | None = None
    """What the secret is used for."""
    mount_type: SecretMountType | None = None
    """Expose the secret as environment variables, files, or both."""
    env_prefix: str | None = None
    """Prefix of the environment variables (default: the secret name in upper case)."""
    mount_path: str | None = None
    """Directory where the secret files are mounted."""
    expected_keys: list[str] | None = None
    """Keys the secret should contain."""


class TemplateSpec(Struct, frozen=True):
    """The package definition common to all templates: version, modes, image, contracts."""

    version: str
    """Version of the template (semantic versioning)."""
    supported_modes: Annotated[list[WorkloadMode], F(min_items=1, max_items=3)]
    """Workload kinds this template can run as."""
    description: str | None = None
    """What the template does."""
    config_schema: dict[str, Any] | None = None
    """JSON Schema for the `with` configuration of Engrams and Impulses using the template."""
    secret_schema: dict[str, SecretDefinition] | None = None
    """Secrets the template expects, by name."""
    image: Annotated[str, F(max_length=512)] | None = None
    """Container image implementing the template."""
    execution: TemplateExecutionPolicy | None = None
    """Recommended execution settings."""


class TemplateStatus(Struct, frozen=True):
    """Observed state and usage of a template."""

    observed_generation: Int64 | None = None
    """Latest generation of the template seen by the controller."""
    conditions: Conditions | None = None
    """Standard Kubernetes conditions."""
    usage_count: Int32 | None = None
    """How many Engrams or Impulses use this template."""
    validation_status: ValidationStatus | None = None
    """Outcome of the template's validation."""
    validation_errors: list[str] | None = None
    """Validation failures, when there are any."""
