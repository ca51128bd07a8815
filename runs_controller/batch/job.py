"""The batch/v1 Job of an Engram step (controller-behaviour.md 4.4).

One container named `engram`, the resolved execution settings, the environment of
`batch.environment` plus the template's secrets, and the hard stop `activeDeadlineSeconds =
step timeout + 2 minutes` (the SDK enforces the timeout itself and exits 124).

Secrets: each logical secret of the template's `secretSchema` that the Engram or the step maps
to a Secret is exposed as the schema says: `env` (envFrom with a prefix, or one variable per
expected key), `file` (a read-only secret volume) or `both`, plus `BUBU_SECRET_<logical>`
telling the SDK where to look and `BUBU_SECRET_<logical>_NAME`. Secrets are added in the
order of their logical names (the reference iterates a Go map: any order is its order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from runs_controller.api.k8s import (
    Container,
    EnvVar,
    Job,
    JobSpec,
    PodSpec,
    PodTemplateSpec,
    VolumeMount,
)
from runs_controller.api.meta import ObjectMeta, OwnerReference
from runs_controller.batch.environment import ENGRAM_NAME_ENV, SECRET_ENV_PREFIX
from runs_controller.engine import keys
from runs_controller.engine.naming import safe_label_value
from runs_controller.engine.operator_config import NANOSECONDS

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runs_controller.api.catalog.engramtemplate import EngramTemplate
    from runs_controller.api.catalog.shared import SecretDefinition
    from runs_controller.api.runs.steprun import StepRun
    from runs_controller.batch.execution import ResolvedExecution

CONTAINER_NAME = "engram"
DEADLINE_GRACE_SECONDS = 120
"""The Job outlives the step timeout by two minutes before Kubernetes kills it."""
SECRET_MOUNT_ROOT = "/etc/bubu/secrets"  # noqa: S105
APP_NAME = "bobrapet"
APP_COMPONENT = "engram"


class MissingRequiredSecretError(ValueError):
    """The template requires secrets that neither the Engram nor the step maps."""

    def __init__(self, template: str | None, names: Sequence[str]) -> None:
        self.names = tuple(names)
        listed = ", ".join(f"'{name}'" for name in self.names)
        noun = "secret" if len(self.names) == 1 else "secrets"
        super().__init__(
            f"EngramTemplate '{template}' requires {noun} {listed}, "
            "which neither the Engram nor the step maps (spec.secrets)"
        )


@dataclass
class SecretArtifacts:
    """What the mapped secrets add to the pod."""

    env: list[EnvVar] = field(default_factory=list)
    env_from: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[VolumeMount] = field(default_factory=list)


def missing_required_secrets(template: EngramTemplate, secrets: Mapping[str, str]) -> list[str]:
    """Logical names the template marks required that have no (non-empty) mapping."""
    schema = template.spec.secret_schema or {}
    return sorted(
        name for name, definition in schema.items() if definition.required and not secrets.get(name)
    )


def _file_secret(out: SecretArtifacts, logical: str, secret: str, d: SecretDefinition) -> None:
    volume = f"secret-{logical}"
    path = d.mount_path or f"{SECRET_MOUNT_ROOT}/{logical}"
    out.volumes.append({"name": volume, "secret": {"secretName": secret}})
    out.volume_mounts.append(VolumeMount(name=volume, mount_path=path, read_only=True))
    out.env.append(EnvVar(name=f"{SECRET_ENV_PREFIX}{logical}", value=f"file:{path}"))


def _env_secret(
    out: SecretArtifacts, logical: str, secret: str, d: SecretDefinition, *, both: bool
) -> None:
    prefix = d.env_prefix or f"{logical}_"
    if d.expected_keys:
        for key in d.expected_keys:
            selector = {"secretKeyRef": {"name": secret, "key": key}}
            out.env.append(EnvVar(name=prefix + key, value_from=selector))
    else:
        out.env_from.append({"prefix": prefix, "secretRef": {"name": secret}})
    sdk = f"{SECRET_ENV_PREFIX}{logical}"
    # With `both`, the file variable written first is shadowed by this one (the later of two
    # same-named variables wins in Kubernetes): keep only the one that takes effect.
    out.env[:] = [var for var in out.env if var.name != sdk]
    out.env.append(EnvVar(name=sdk, value=f"env:{prefix}"))
    # The reference names the Secret for explicit keys only in `env` mode.
    if not d.expected_keys or not both:
        out.env.append(EnvVar(name=f"{sdk}_NAME", value=secret))


def secret_artifacts(template: EngramTemplate, secrets: Mapping[str, str]) -> SecretArtifacts:
    """Env, envFrom, volumes and mounts for the mapped secrets the template declares.

    Mappings the schema does not declare, and empty ones, are ignored. Raises
    MissingRequiredSecretError when a required secret is not mapped.
    """
    missing = missing_required_secrets(template, secrets)
    if missing:
        name = template.metadata.name if template.metadata else None
        raise MissingRequiredSecretError(name, missing)
    schema = template.spec.secret_schema or {}
    out = SecretArtifacts()
    for logical in sorted(secrets):
        definition, secret = schema.get(logical), secrets[logical]
        if definition is None or not secret:
            continue
        mode = definition.mount_type or "env"
        if mode in ("file", "both"):
            _file_secret(out, logical, secret, definition)
        if mode != "file":
            _env_secret(out, logical, secret, definition, both=mode == "both")
    return out


def _with_secret_env(env: list[EnvVar], secret_env: list[EnvVar]) -> list[EnvVar]:
    """Secret variables go where the reference puts them: just before BUBU_ENGRAM_NAME."""
    at = next((i for i, var in enumerate(env) if var.name == ENGRAM_NAME_ENV), len(env))
    return [*env[:at], *secret_env, *env[at:]]


def active_deadline_seconds(step_timeout_ns: int) -> int:
    """Whole seconds of the step timeout plus the grace (Go truncates the float)."""
    return step_timeout_ns // NANOSECONDS + DEADLINE_GRACE_SECONDS


def build_job(
    steprun: StepRun,
    *,
    template: EngramTemplate,
    resolved: ResolvedExecution,
    env: list[EnvVar],
    owner: OwnerReference,
) -> Job:
    """The Job for `steprun`; raises MissingRequiredSecretError (see `secret_artifacts`)."""
    meta = steprun.metadata or ObjectMeta()
    label = safe_label_value(meta.name or "")
    secrets = secret_artifacts(template, resolved.secrets)
    container = Container(
        name=CONTAINER_NAME,
        image=resolved.image,
        image_pull_policy=resolved.image_pull_policy or None,
        env=_with_secret_env(env, secrets.env) or None,
        env_from=secrets.env_from or None,
        resources=resolved.resources,
        volume_mounts=secrets.volume_mounts or None,
        liveness_probe=resolved.liveness_probe,
        readiness_probe=resolved.readiness_probe,
        startup_probe=resolved.startup_probe,
        security_context=resolved.container_security_context,
    )
    grace = resolved.termination_grace_period_seconds
    pod = PodSpec(
        containers=[container],
        restart_policy=resolved.restart_policy or None,
        service_account_name=resolved.service_account_name,
        # Forced for batch pods: the SDK patches the StepRun's status with this token.
        automount_service_account_token=True,
        node_selector=dict(resolved.node_selector) if resolved.node_selector else None,
        tolerations=list(resolved.tolerations) if resolved.tolerations else None,
        affinity=resolved.affinity,
        volumes=secrets.volumes or None,
        security_context=resolved.pod_security_context,
        termination_grace_period_seconds=grace if grace > 0 else None,
    )
    controller = msgspec.structs.replace(owner, controller=True, block_owner_deletion=True)
    return Job(
        api_version="batch/v1",
        kind="Job",
        metadata=ObjectMeta(
            name=meta.name,
            namespace=meta.namespace,
            labels={
                keys.LABEL_APP_NAME: APP_NAME,
                keys.LABEL_APP_COMPONENT: APP_COMPONENT,
                keys.LABEL_STEPRUN: label,
            },
            owner_references=[controller],
        ),
        spec=JobSpec(
            template=PodTemplateSpec(
                metadata=ObjectMeta(labels={keys.LABEL_STEPRUN: label}), spec=pod
            ),
            backoff_limit=resolved.backoff_limit,
            active_deadline_seconds=active_deadline_seconds(resolved.step_timeout_ns),
            ttl_seconds_after_finished=resolved.ttl_seconds_after_finished,
        ),
    )


__all__ = [
    "CONTAINER_NAME",
    "DEADLINE_GRACE_SECONDS",
    "MissingRequiredSecretError",
    "SecretArtifacts",
    "active_deadline_seconds",
    "build_job",
    "missing_required_secrets",
    "secret_artifacts",
]
