"""The Job of a batch step, field by field; secrets mapping; the encoded manifest."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from runs_controller.api import codec
from runs_controller.api.k8s import EnvVar, Job, VolumeMount
from runs_controller.api.meta import OwnerReference
from runs_controller.batch.environment import StepContext, engram_environment
from runs_controller.batch.job import (
    MissingRequiredSecretError,
    active_deadline_seconds,
    build_job,
    missing_required_secrets,
)
from runs_controller.engine.naming import safe_label_value
from tests.batch_objects import RUNNER_SA, T0, Layers

OWNER = OwnerReference(
    api_version="runs.bubustack.io/v1alpha1", kind="StepRun", name="run-1-notify", uid="uid-1"
)


def make_job(layers: Layers) -> Job:
    resolved = layers.resolve()
    steprun = layers.steprun()
    step = StepContext(
        steprun=steprun,
        story_name="welcome",
        story_version="v2",
        engram_name="mailer",
        engram_version="1.0",
        trigger_data={},
        step_config={},
        template_context=None,
        started_at=T0,
    )
    env = engram_environment(step, resolved, layers.operator_config())
    return build_job(steprun, template=layers.template(), resolved=resolved, env=env, owner=OWNER)


def env_of(job: Job) -> list[EnvVar]:
    assert job.spec is not None
    env = job.spec.template.spec.containers[0].env
    assert env is not None
    return env


def test_job_shape_field_by_field() -> None:
    layers = Layers()
    layers.config.update({"security.run-as-non-root": "true", "security.run-as-user": "1000"})
    layers.execution["probes"] = {"readiness": {"exec": {"command": ["true"]}}}
    layers.steprun_overrides.update(
        {"placement": {"nodeSelector": {"pool": "batch"}}, "backoffLimit": 2}
    )
    layers.steprun_spec["timeout"] = "10m"
    job = make_job(layers)

    assert (job.api_version, job.kind) == ("batch/v1", "Job")
    assert job.metadata is not None
    assert (job.metadata.name, job.metadata.namespace) == ("run-1-notify", "team-a")
    assert job.metadata.labels == {
        "app.kubernetes.io/name": "bobrapet",
        "app.kubernetes.io/component": "engram",
        "bubustack.io/steprun": "run-1-notify",
    }
    assert job.metadata.owner_references == [
        OwnerReference(
            api_version="runs.bubustack.io/v1alpha1",
            kind="StepRun",
            name="run-1-notify",
            uid="uid-1",
            controller=True,
            block_owner_deletion=True,
        )
    ]
    spec = job.spec
    assert spec is not None
    assert spec.active_deadline_seconds == 600 + 120
    assert (spec.backoff_limit, spec.ttl_seconds_after_finished) == (2, 3600)
    assert (spec.parallelism, spec.completions, spec.selector) == (None, None, None)
    template = spec.template
    assert template.metadata is not None
    assert template.metadata.labels == {"bubustack.io/steprun": "run-1-notify"}
    pod = template.spec
    assert pod.service_account_name == RUNNER_SA
    assert pod.automount_service_account_token is True
    assert pod.restart_policy == "Never"
    assert pod.termination_grace_period_seconds == 30
    assert pod.security_context == {"runAsNonRoot": True, "runAsUser": 1000}
    assert pod.node_selector == {"pool": "batch"}
    assert (pod.tolerations, pod.affinity, pod.volumes) == (None, None, None)
    assert len(pod.containers) == 1
    container = pod.containers[0]
    assert container.name == "engram"
    assert container.image == "ghcr.io/acme/mailer:1.2.3"
    assert container.image_pull_policy == "IfNotPresent"
    assert container.resources == layers.resolve().resources
    assert container.security_context == layers.resolve().container_security_context
    assert container.readiness_probe == {"exec": {"command": ["true"]}}
    assert (container.liveness_probe, container.startup_probe) == (None, None)
    assert (container.env_from, container.volume_mounts, container.ports) == (None, None, None)
    assert [var.name for var in env_of(job)][:2] == ["BUBU_STORY_NAME", "BUBU_STORY_VERSION"]


def test_service_account_token_is_always_mounted() -> None:
    layers = Layers()
    layers.config["security.automount-service-account-token"] = "false"
    layers.overrides["automountServiceAccountToken"] = False
    job = make_job(layers)
    assert job.spec is not None
    assert job.spec.template.spec.automount_service_account_token is True


def test_long_steprun_names_keep_a_valid_label() -> None:
    layers = Layers()
    layers.steprun_name = "a-very-long-storyrun-name-" * 3 + "step"
    job = make_job(layers)
    assert job.metadata is not None and job.metadata.labels is not None
    label = job.metadata.labels["bubustack.io/steprun"]
    assert label == safe_label_value(layers.steprun_name)
    assert len(label) <= 63
    assert job.metadata.name == layers.steprun_name


def test_active_deadline_truncates_like_go() -> None:
    assert active_deadline_seconds(1_500_000_000) == 121
    assert active_deadline_seconds(30 * 60 * 10**9) == 1920


def with_secrets(schema: dict[str, Any], mapping: dict[str, str]) -> Layers:
    layers = Layers()
    layers.template_spec["secretSchema"] = schema
    layers.engram_spec["secrets"] = mapping
    return layers


def test_env_secret_with_a_prefix() -> None:
    job = make_job(with_secrets({"smtp": {"mountType": "env"}}, {"smtp": "smtp-prod"}))
    assert job.spec is not None
    container = job.spec.template.spec.containers[0]
    assert container.env_from == [{"prefix": "smtp_", "secretRef": {"name": "smtp-prod"}}]
    names = [var.name for var in env_of(job)]
    at = names.index("BUBU_SECRET_smtp")
    # The reference puts the secret variables right before BUBU_ENGRAM_NAME.
    assert names[at : at + 3] == ["BUBU_SECRET_smtp", "BUBU_SECRET_smtp_NAME", "BUBU_ENGRAM_NAME"]
    env = {var.name: var.value for var in env_of(job)}
    assert (env["BUBU_SECRET_smtp"], env["BUBU_SECRET_smtp_NAME"]) == ("env:smtp_", "smtp-prod")
    assert job.spec.template.spec.volumes is None


def test_env_secret_with_expected_keys() -> None:
    schema = {"api": {"envPrefix": "API_", "expectedKeys": ["token", "url"]}}
    job = make_job(with_secrets(schema, {"api": "api-creds"}))
    assert job.spec is not None
    assert job.spec.template.spec.containers[0].env_from is None
    secret_vars = [var for var in env_of(job) if "API_" in var.name or "SECRET" in var.name]
    assert secret_vars == [
        EnvVar(
            name="API_token", value_from={"secretKeyRef": {"name": "api-creds", "key": "token"}}
        ),
        EnvVar(name="API_url", value_from={"secretKeyRef": {"name": "api-creds", "key": "url"}}),
        EnvVar(name="BUBU_SECRET_api", value="env:API_"),
        EnvVar(name="BUBU_SECRET_api_NAME", value="api-creds"),
    ]


def test_file_secret_default_and_custom_path() -> None:
    schema = {"tls": {"mountType": "file"}, "ca": {"mountType": "file", "mountPath": "/ca"}}
    job = make_job(with_secrets(schema, {"tls": "tls-secret", "ca": "ca-secret"}))
    assert job.spec is not None
    pod = job.spec.template.spec
    assert pod.volumes == [
        {"name": "secret-ca", "secret": {"secretName": "ca-secret"}},
        {"name": "secret-tls", "secret": {"secretName": "tls-secret"}},
    ]
    assert pod.containers[0].volume_mounts == [
        VolumeMount(name="secret-ca", mount_path="/ca", read_only=True),
        VolumeMount(name="secret-tls", mount_path="/etc/bubu/secrets/tls", read_only=True),
    ]
    env = {var.name: var.value for var in env_of(job)}
    assert (env["BUBU_SECRET_ca"], env["BUBU_SECRET_tls"]) == (
        "file:/ca",
        "file:/etc/bubu/secrets/tls",
    )
    assert "BUBU_SECRET_tls_NAME" not in env
    assert pod.containers[0].env_from is None


def test_both_mounts_the_file_and_exposes_env() -> None:
    schema = {
        "db": {"mountType": "both"},
        "keys": {"mountType": "both", "expectedKeys": ["k"], "envPrefix": "K_"},
    }
    job = make_job(with_secrets(schema, {"db": "db-secret", "keys": "keys-secret"}))
    assert job.spec is not None
    pod = job.spec.template.spec
    assert [volume["name"] for volume in pod.volumes or []] == ["secret-db", "secret-keys"]
    assert pod.containers[0].env_from == [{"prefix": "db_", "secretRef": {"name": "db-secret"}}]
    secret_vars = [(v.name, v.value) for v in env_of(job) if "SECRET" in v.name or v.name == "K_k"]
    # The later of two same-named variables wins in Kubernetes, so only `env:` is written; the
    # Secret's name is exposed for the prefix form only (the reference's rule for `both`).
    assert secret_vars == [
        ("BUBU_SECRET_db", "env:db_"),
        ("BUBU_SECRET_db_NAME", "db-secret"),
        ("K_k", None),
        ("BUBU_SECRET_keys", "env:K_"),
    ]


def test_undeclared_or_empty_mappings_are_ignored() -> None:
    job = make_job(with_secrets({"smtp": {}}, {"other": "x", "smtp": ""}))
    assert job.spec is not None
    assert job.spec.template.spec.containers[0].env_from is None
    assert not [var for var in env_of(job) if var.name.startswith("BUBU_SECRET_")]


def test_a_required_secret_without_mapping_is_reported() -> None:
    schema = {"smtp": {"required": True}, "api": {"required": True}, "opt": {}}
    layers = with_secrets(schema, {"api": "api-creds"})
    assert missing_required_secrets(layers.template(), layers.resolve().secrets) == ["smtp"]
    with pytest.raises(MissingRequiredSecretError) as raised:
        make_job(layers)
    assert raised.value.names == ("smtp",)
    assert str(raised.value) == (
        "EngramTemplate 'tpl' requires secret 'smtp', which neither the Engram nor the step "
        "maps (spec.secrets)"
    )
    # The step's mapping counts too.
    assert layers.step is not None
    layers.step["secrets"] = {"smtp": "smtp-prod"}
    make_job(layers)


def _keys(value: Any, skip: frozenset[str]) -> list[str]:
    if isinstance(value, dict):
        found = []
        for key, member in value.items():
            found.append(key)
            if key not in skip:
                found += _keys(member, skip)
        return found
    if isinstance(value, list):
        return [key for member in value for key in _keys(member, skip)]
    return []


def test_the_encoded_job_is_camel_case_json() -> None:
    layers = with_secrets({"smtp": {"mountType": "both"}}, {"smtp": "smtp-prod"})
    layers.config["security.run-as-user"] = "1000"
    layers.execution["probes"] = {"liveness": {"httpGet": {"path": "/", "port": 80}}}
    document = json.loads(codec.encode(make_job(layers)))
    spec = document["spec"]
    assert spec["activeDeadlineSeconds"] == 1920
    assert spec["ttlSecondsAfterFinished"] == 3600
    assert spec["backoffLimit"] == 0
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == RUNNER_SA
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["securityContext"] == {"runAsNonRoot": False, "runAsUser": 1000}
    container = pod["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["volumeMounts"] == [
        {"name": "secret-smtp", "mountPath": "/etc/bubu/secrets/smtp", "readOnly": True}
    ]
    assert container["livenessProbe"] == {"httpGet": {"path": "/", "port": 80}}
    assert {"name": "BUBU_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in (
        container["env"]
    )
    assert document["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True
    snake = [
        key for key in _keys(document, frozenset({"labels"})) if re.search(r"[a-z]_[a-z]", key)
    ]
    assert snake == []
    # Decoding the manifest gives the same Job back.
    assert codec.decode(codec.encode(make_job(layers)), Job) == make_job(layers)
