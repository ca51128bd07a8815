"""Execution-config precedence for a batch step (controller-behaviour.md 4.5, 4.9, 2.8).

Layers, lowest first, each overriding what it sets: operator defaults -> EngramTemplate
(`spec.image`, `spec.execution`) -> Engram (`secrets`, `executionPolicy.resources/placement`,
`overrides`) -> Story (`policy.execution`, then the step's `execution` and `secrets`, then
`policy.storage`) -> StepRun (`spec.executionOverrides`).

As in the reference, a value that does not parse (a quantity, a pull or restart policy) is
skipped and reported in `warnings`; a security error (`runAsUser <= 0`) or a template without
an image fails the whole resolution. Unlike the reference, so does an image the kubelet cannot
parse (`engine.images`): its pod would wait in InvalidImageName until the step timed out.
`serviceAccountName` and `automountServiceAccountToken`
overrides are untrusted and ignored at every layer: the pod runs as the operator's
`security.service-account-name`, else the per-StoryRun engram-runner.

The step timeout follows 4.9, not the layers: StepRun `spec.timeout`, else the Story's
`policy.timeouts.step`, else `timeout.default-step`. The reference resolves a timeout through
the layers too but never uses it for the Job, so `execution.timeout` of templates, Engrams and
Stories has no effect here either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from runs_controller.api import codec
from runs_controller.api.bubustack.shared import (
    ExecutionOverrides,
    PlacementPolicy,
    ResourcePolicy,
    SecurityPolicy,
    StoragePolicy,
    WorkloadSecurity,
)
from runs_controller.api.k8s import ResourceRequirements, SecurityContext
from runs_controller.engine.durations import parse_go_duration
from runs_controller.engine.images import image_reference_problem
from runs_controller.engine.operator_config import (
    NANOSECONDS,
    PULL_POLICIES,
    OperatorConfig,
    is_quantity,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runs_controller.api.bubustack.engram import Engram
    from runs_controller.api.bubustack.story import Step, Story
    from runs_controller.api.catalog.engramtemplate import EngramTemplate
    from runs_controller.api.catalog.shared import TemplateStoragePolicy
    from runs_controller.api.runs.steprun import StepRun

DEFAULT_STEP_TIMEOUT_NS = 30 * 60 * NANOSECONDS
"""`timeout.default-step` 0 means 30m in the reference."""
JOB_RESTART_POLICIES = ("Never", "OnFailure")
"""What a template or a StepRun may ask for (a Job pod cannot restart Always)."""
STORY_RESTART_POLICIES = ("Never", "OnFailure", "Always")
"""What the reference takes from a Story's `policy.execution.job` (others silently ignored)."""
CPU, MEMORY = "cpu", "memory"

_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class ResolvedExecution:
    """Everything the Job of one batch step takes from configuration."""

    image: str
    image_pull_policy: str
    resources: ResourceRequirements
    node_selector: dict[str, str] | None
    tolerations: list[dict[str, Any]] | None
    affinity: dict[str, Any] | None
    pod_security_context: dict[str, Any] | None
    container_security_context: SecurityContext | None
    liveness_probe: dict[str, Any] | None
    readiness_probe: dict[str, Any] | None
    startup_probe: dict[str, Any] | None
    backoff_limit: int
    ttl_seconds_after_finished: int
    restart_policy: str
    step_timeout_ns: int
    debug: bool
    max_inline_size: int
    max_recursion_depth: int
    storage_timeout_seconds: int
    termination_grace_period_seconds: int
    secrets: Mapping[str, str]
    """The template's logical secret name -> the Secret in the StepRun's namespace."""
    service_account_name: str
    storage: StoragePolicy | None
    """Resolved offload storage; the caller refuses a step that has one (ruling 17)."""
    warnings: tuple[str, ...] = ()
    """Values skipped as invalid or untrusted, one sentence each, for logs and events."""


@dataclass(frozen=True)
class ConfigFailure:
    """The configuration cannot run: the message names the layer and the field."""

    message: str


class _Failed(Exception):
    """Internal: a fail-fast stage refused its layer."""


@dataclass
class _Draft:
    """The configuration being resolved: mutable while the layers apply, frozen at the end."""

    image: str
    image_pull_policy: str
    requests: dict[str, str]
    limits: dict[str, str]
    run_as_non_root: bool
    read_only_root_filesystem: bool
    allow_privilege_escalation: bool
    run_as_user: int
    drop_capabilities: tuple[str, ...]
    backoff_limit: int
    ttl_seconds_after_finished: int
    restart_policy: str
    max_inline_size: int
    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    affinity: dict[str, Any] | None = None
    liveness_probe: dict[str, Any] | None = None
    readiness_probe: dict[str, Any] | None = None
    startup_probe: dict[str, Any] | None = None
    debug: bool = False
    secrets: dict[str, str] = field(default_factory=dict)
    storage: StoragePolicy | None = None
    warnings: list[str] = field(default_factory=list)

    def quantity(self, target: dict[str, str], key: str, value: str | None, where: str) -> None:
        """Set one request or limit; an invalid quantity is reported and skipped."""
        if value is None:
            return
        if is_quantity(value):
            target[key] = value
        else:
            self.warnings.append(f"{where} {value!r} is not a valid quantity; ignored")

    def placement(self, placement: PlacementPolicy | None) -> None:
        """Node selector keys merge; tolerations and affinity replace (the reference's rule)."""
        if placement is None:
            return
        if placement.node_selector is not None:
            self.node_selector = {**(self.node_selector or {}), **placement.node_selector}
        if placement.tolerations is not None:
            self.tolerations = [dict(t) for t in placement.tolerations]
        if placement.affinity is not None:
            self.affinity = dict(placement.affinity)

    def run_as(self, value: int | None, where: str) -> None:
        if value is not None:
            _check_run_as(value, where)
            self.run_as_user = value

    def security(self, security: WorkloadSecurity | SecurityPolicy | None, where: str) -> None:
        """The settings a layer's security block sets (`where` names the block)."""
        if security is None:
            return
        if security.run_as_non_root is not None:
            self.run_as_non_root = security.run_as_non_root
        if security.read_only_root_filesystem is not None:
            self.read_only_root_filesystem = security.read_only_root_filesystem
        if security.allow_privilege_escalation is not None:
            self.allow_privilege_escalation = security.allow_privilege_escalation
        self.run_as(security.run_as_user, f"{where}.runAsUser")


def _check_run_as(value: int | None, where: str) -> None:
    """`runAsUser <= 0` fails the resolution (stage "fail fast")."""
    if value is not None and value <= 0:
        raise _Failed(f"{where} must be > 0")


def _defaults(config: OperatorConfig) -> _Draft:
    draft = _Draft(
        image="",
        image_pull_policy=config.image_pull_policy,
        requests={CPU: config.default_cpu_request, MEMORY: config.default_memory_request},
        limits={CPU: config.default_cpu_limit, MEMORY: config.default_memory_limit},
        run_as_non_root=config.run_as_non_root,
        read_only_root_filesystem=config.read_only_root_filesystem,
        allow_privilege_escalation=config.allow_privilege_escalation,
        run_as_user=config.run_as_user,
        drop_capabilities=config.drop_capabilities or ("ALL",),
        backoff_limit=config.job_backoff_limit,
        ttl_seconds_after_finished=config.child_ttl_seconds,
        restart_policy=config.job_restart_policy,
        max_inline_size=config.engram_default_max_inline_size,
    )
    # resources.engram.* (validated when the ConfigMap was read) win over resources.default.*.
    for target, key, value in (
        (draft.requests, CPU, config.engram_cpu_request),
        (draft.limits, CPU, config.engram_cpu_limit),
        (draft.requests, MEMORY, config.engram_memory_request),
        (draft.limits, MEMORY, config.engram_memory_limit),
    ):
        if value.strip():
            target[key] = value.strip()
    return draft


# ---- EngramTemplate ------------------------------------------------------------------------


def _apply_template(draft: _Draft, template: EngramTemplate) -> None:
    name = template.metadata.name if template.metadata else None
    where = f"EngramTemplate '{name}' execution"
    execution = template.spec.execution
    if execution is None:
        return
    if execution.images is not None and execution.images.pull_policy is not None:
        _pull_policy(draft, execution.images.pull_policy, f"{where}.images.pullPolicy")
    resources = execution.resources
    if resources is not None:
        res = f"{where}.resources"
        draft.quantity(
            draft.requests, CPU, resources.recommended_cpu_request, f"{res}.recommendedCpuRequest"
        )
        draft.quantity(
            draft.limits, CPU, resources.recommended_cpu_limit, f"{res}.recommendedCpuLimit"
        )
        draft.quantity(
            draft.requests,
            MEMORY,
            resources.recommended_memory_request,
            f"{res}.recommendedMemoryRequest",
        )
        draft.quantity(
            draft.limits,
            MEMORY,
            resources.recommended_memory_limit,
            f"{res}.recommendedMemoryLimit",
        )
    security = execution.security
    if security is not None:
        if security.requires_non_root is not None:
            draft.run_as_non_root = security.requires_non_root
        if security.requires_read_only_root is not None:
            draft.read_only_root_filesystem = security.requires_read_only_root
        if security.requires_no_privilege_escalation is not None:
            draft.allow_privilege_escalation = not security.requires_no_privilege_escalation
        draft.run_as(security.recommended_run_as_user, f"{where}.security.recommendedRunAsUser")
    job = execution.job
    if job is not None:
        if job.recommended_backoff_limit is not None:
            draft.backoff_limit = job.recommended_backoff_limit
        if job.recommended_ttl_seconds_after_finished is not None:
            draft.ttl_seconds_after_finished = job.recommended_ttl_seconds_after_finished
        if job.recommended_restart_policy is not None:
            _restart_policy(
                draft,
                job.recommended_restart_policy,
                JOB_RESTART_POLICIES,
                f"{where}.job.recommendedRestartPolicy",
            )
    probes = execution.probes
    if probes is not None:
        if probes.liveness is not None:
            draft.liveness_probe = dict(probes.liveness)
        if probes.readiness is not None:
            draft.readiness_probe = dict(probes.readiness)
        if probes.startup is not None:
            draft.startup_probe = dict(probes.startup)
    if execution.storage is not None:
        _template_storage(draft, execution.storage, f"{where}.storage")


def _is_subdomain(value: str) -> bool:
    return len(value) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(value) is not None


def _template_storage(draft: _Draft, storage: TemplateStoragePolicy, where: str) -> None:
    """A template's storage recommendation, refused whole when its bucket or secret is bad."""
    problems: list[str] = []
    s3: dict[str, Any] | None = None
    if storage.s3 is not None:
        bucket = storage.s3.bucket.strip()
        if not _is_subdomain(bucket):
            problems.append(f"s3.bucket {bucket!r} is not a DNS-1123 subdomain")
        else:
            auth = storage.s3.authentication
            authentication: dict[str, Any] = {
                "serviceAccountAnnotations": dict(auth.service_account_annotations or {})
            }
            if auth.secret_ref is not None:
                secret = str(auth.secret_ref.get("name") or "").strip()
                if _is_subdomain(secret):
                    authentication["secretRef"] = {"name": secret}
                else:
                    problems.append(f"s3 secret name {secret!r} is not a DNS-1123 subdomain")
            s3 = {
                "bucket": bucket,
                "region": (storage.s3.region or "").strip() or None,
                "endpoint": (storage.s3.endpoint or "").strip() or None,
                "usePathStyle": storage.s3.use_path_style,
                "authentication": authentication,
            }
    if problems:
        draft.warnings.append(f"{where}: {'; '.join(problems)}; ignored")
        return
    file = codec.to_builtins(storage.file) if storage.file is not None else None
    doc = {"s3": s3, "file": file, "timeoutSeconds": storage.timeout_seconds}
    draft.storage = codec.convert(
        {key: value for key, value in doc.items() if value is not None}, StoragePolicy
    )


# ---- shared rules ------------------------------------------------------------------------------


def _pull_policy(draft: _Draft, value: str, where: str) -> None:
    if value in PULL_POLICIES:
        draft.image_pull_policy = value
    else:
        draft.warnings.append(
            f"{where} {value!r} is not one of {', '.join(PULL_POLICIES)}; ignored"
        )


def _restart_policy(draft: _Draft, value: str, allowed: tuple[str, ...], where: str) -> None:
    if value in allowed:
        draft.restart_policy = value
    else:
        draft.warnings.append(f"{where} {value!r} is not one of {', '.join(allowed)}; ignored")


def _resource_policy(draft: _Draft, resources: ResourcePolicy | None, where: str) -> None:
    if resources is None:
        return
    draft.quantity(draft.requests, CPU, resources.cpu_request, f"{where}.cpuRequest")
    draft.quantity(draft.requests, MEMORY, resources.memory_request, f"{where}.memoryRequest")
    draft.quantity(draft.limits, CPU, resources.cpu_limit, f"{where}.cpuLimit")
    draft.quantity(draft.limits, MEMORY, resources.memory_limit, f"{where}.memoryLimit")


def _untrusted(draft: _Draft, where: str, **fields: object) -> None:
    for name, value in fields.items():
        if value is not None and (not isinstance(value, str) or value.strip()):
            draft.warnings.append(f"{where}.{name} is ignored (untrusted)")


def _apply_overrides(draft: _Draft, overrides: ExecutionOverrides | None, where: str) -> None:
    """Engram `overrides` and a Story step's `execution` (ExecutionOverrides)."""
    if overrides is None:
        return
    _untrusted(
        draft,
        where,
        serviceAccountName=overrides.service_account_name,
        automountServiceAccountToken=overrides.automount_service_account_token,
    )
    if overrides.debug is not None:
        draft.debug = overrides.debug
    if overrides.max_inline_size is not None:
        draft.max_inline_size = overrides.max_inline_size
    draft.security(overrides.security, f"{where}.security")
    draft.placement(overrides.placement)
    if overrides.image_pull_policy is not None:
        _pull_policy(draft, overrides.image_pull_policy, f"{where}.imagePullPolicy")
    probes = overrides.probes
    if probes is not None:
        if probes.disable_liveness:
            draft.liveness_probe = None
        if probes.disable_readiness:
            draft.readiness_probe = None
        if probes.disable_startup:
            draft.startup_probe = None
    if overrides.storage is not None:
        draft.storage = overrides.storage


# ---- Engram, Story, StepRun ------------------------------------------------------------------


def _apply_engram(draft: _Draft, engram: Engram) -> None:
    name = engram.metadata.name if engram.metadata else None
    where = f"Engram '{name}'"
    draft.secrets.update(engram.spec.secrets or {})
    policy = engram.spec.execution_policy
    if policy is not None:
        _resource_policy(draft, policy.resources, f"{where} executionPolicy.resources")
        draft.placement(policy.placement)
    _apply_overrides(draft, engram.spec.overrides, f"{where} overrides")


def _apply_story(draft: _Draft, story: Story | None, step: Step | None) -> None:
    story_name = story.metadata.name if story is not None and story.metadata else None
    where = f"Story '{story_name}'"
    policy = story.spec.policy if story is not None else None
    execution = policy.execution if policy is not None else None
    step_where = f"{where} step '{step.name}' execution" if step is not None else where
    # The reference checks both runAsUser values before it applies anything of the Story.
    if execution is not None and execution.security is not None:
        _check_run_as(
            execution.security.run_as_user, f"{where} policy.execution.security.runAsUser"
        )
    if step is not None and step.execution is not None and step.execution.security is not None:
        _check_run_as(step.execution.security.run_as_user, f"{step_where}.security.runAsUser")
    if step is not None:
        draft.secrets.update(step.secrets or {})
    if execution is not None:
        pe = f"{where} policy.execution"
        _resource_policy(draft, execution.resources, f"{pe}.resources")
        draft.security(execution.security, f"{pe}.security")
        draft.placement(execution.placement)
        job = execution.job
        if job is not None:
            if job.backoff_limit is not None:
                draft.backoff_limit = job.backoff_limit
            if job.ttl_seconds_after_finished is not None:
                draft.ttl_seconds_after_finished = job.ttl_seconds_after_finished
            if job.restart_policy is not None:
                _restart_policy(
                    draft, job.restart_policy, STORY_RESTART_POLICIES, f"{pe}.job.restartPolicy"
                )
        _untrusted(draft, pe, serviceAccountName=execution.service_account_name)
        if execution.storage is not None:
            draft.storage = execution.storage
    if step is not None:
        _apply_overrides(draft, step.execution, step_where)
    if policy is not None and policy.storage is not None:
        draft.storage = policy.storage


def _apply_steprun(draft: _Draft, steprun: StepRun) -> None:
    overrides = steprun.spec.execution_overrides
    if overrides is None:
        return
    name = steprun.metadata.name if steprun.metadata else None
    where = f"StepRun '{name}' executionOverrides"
    draft.quantity(draft.requests, CPU, overrides.cpu_request, f"{where}.cpuRequest")
    draft.quantity(draft.limits, CPU, overrides.cpu_limit, f"{where}.cpuLimit")
    draft.quantity(draft.requests, MEMORY, overrides.memory_request, f"{where}.memoryRequest")
    draft.quantity(draft.limits, MEMORY, overrides.memory_limit, f"{where}.memoryLimit")
    draft.placement(overrides.placement)
    if overrides.debug is not None:
        draft.debug = overrides.debug
    if overrides.backoff_limit is not None:
        draft.backoff_limit = overrides.backoff_limit
    if overrides.ttl_seconds_after_finished is not None:
        draft.ttl_seconds_after_finished = overrides.ttl_seconds_after_finished
    if overrides.restart_policy is not None:
        _restart_policy(
            draft, overrides.restart_policy, JOB_RESTART_POLICIES, f"{where}.restartPolicy"
        )


# ---- timeout, recursion depth ------------------------------------------------------------------


def _positive_duration(text: str, where: str, warnings: list[str]) -> int | None:
    try:
        value = parse_go_duration(text)
    except ValueError as error:
        warnings.append(f"{where} {text!r} is invalid ({error}); ignored")
        return None
    if value <= 0:
        warnings.append(f"{where} {text!r} must be positive; ignored")
        return None
    return value


def step_timeout_ns(
    config: OperatorConfig, story: Story | None, steprun: StepRun, warnings: list[str]
) -> int:
    """4.9: StepRun `spec.timeout`, else Story `policy.timeouts.step`, else the default."""
    if steprun.spec.timeout:
        name = steprun.metadata.name if steprun.metadata else None
        value = _positive_duration(steprun.spec.timeout, f"StepRun '{name}' timeout", warnings)
        if value is not None:
            return value
    policy = story.spec.policy if story is not None else None
    if policy is not None and policy.timeouts is not None and policy.timeouts.step is not None:
        name = story.metadata.name if story is not None and story.metadata else None
        where = f"Story '{name}' policy.timeouts.step"
        value = _positive_duration(policy.timeouts.step, where, warnings)
        if value is not None:
            return value
    return round(config.default_step_timeout_seconds * NANOSECONDS) or DEFAULT_STEP_TIMEOUT_NS


def _max_recursion_depth(config: OperatorConfig, story: Story | None) -> int:
    policy = story.spec.policy if story is not None else None
    depth = policy.execution.max_recursion_depth if policy and policy.execution else None
    if depth is not None and depth > 0:
        return depth
    return config.engram_default_max_recursion_depth


# ---- the whole chain -----------------------------------------------------------------------


def resolve_execution(
    *,
    config: OperatorConfig,
    template: EngramTemplate,
    engram: Engram,
    story: Story | None,
    step: Step | None,
    steprun: StepRun,
    runner_service_account: str,
) -> ResolvedExecution | ConfigFailure:
    """The execution settings of one batch StepRun, or why it cannot run.

    `step` is the Story step the StepRun executes (main, compensation or finally; None: only
    Story-wide policy applies). `runner_service_account` is the StoryRun's engram-runner SA.
    """
    image = template.spec.image or ""
    if not image.strip():
        name = template.metadata.name if template.metadata else None
        return ConfigFailure(f"EngramTemplate '{name}' has no spec.image")
    problem = image_reference_problem(image)
    if problem is not None:
        name = template.metadata.name if template.metadata else None
        return ConfigFailure(f"EngramTemplate '{name}' spec.image '{image}' {problem}")
    draft = _defaults(config)
    draft.image = image
    try:
        _apply_template(draft, template)
        _apply_engram(draft, engram)
        _apply_story(draft, story, step)
    except _Failed as failure:
        return ConfigFailure(str(failure))
    _apply_steprun(draft, steprun)
    timeout = step_timeout_ns(config, story, steprun, draft.warnings)
    pod_security: dict[str, Any] = {"runAsNonRoot": draft.run_as_non_root}
    if draft.run_as_user > 0:
        pod_security["runAsUser"] = draft.run_as_user
    return ResolvedExecution(
        image=draft.image,
        image_pull_policy=draft.image_pull_policy,
        resources=ResourceRequirements(limits=dict(draft.limits), requests=dict(draft.requests)),
        node_selector=draft.node_selector,
        tolerations=draft.tolerations,
        affinity=draft.affinity,
        pod_security_context=pod_security,
        container_security_context=SecurityContext(
            read_only_root_filesystem=draft.read_only_root_filesystem,
            allow_privilege_escalation=draft.allow_privilege_escalation,
            capabilities={"drop": list(draft.drop_capabilities)},
        ),
        liveness_probe=draft.liveness_probe,
        readiness_probe=draft.readiness_probe,
        startup_probe=draft.startup_probe,
        backoff_limit=draft.backoff_limit,
        ttl_seconds_after_finished=draft.ttl_seconds_after_finished,
        restart_policy=draft.restart_policy,
        step_timeout_ns=timeout,
        debug=draft.debug,
        max_inline_size=draft.max_inline_size,
        max_recursion_depth=_max_recursion_depth(config, story),
        storage_timeout_seconds=config.engram_default_storage_timeout_seconds,
        termination_grace_period_seconds=config.engram_default_termination_grace_period_seconds,
        secrets=MappingProxyType(dict(draft.secrets)),
        service_account_name=config.service_account_name or runner_service_account,
        storage=draft.storage,
        warnings=tuple(draft.warnings),
    )


__all__ = [
    "DEFAULT_STEP_TIMEOUT_NS",
    "ConfigFailure",
    "ResolvedExecution",
    "resolve_execution",
    "step_timeout_ns",
]
