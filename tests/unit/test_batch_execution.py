"""Execution-config precedence: every layer overrides the one below, bad values are skipped,
security errors fail, untrusted identity overrides are ignored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from runs_controller.api.k8s import ResourceRequirements, SecurityContext
from runs_controller.batch.execution import ResolvedExecution
from tests.batch_objects import RUNNER_SA, Layers

Step = Callable[[Layers], None]


def ladder(steps: list[tuple[Step, Any]], read: Callable[[ResolvedExecution], Any]) -> None:
    """Apply each layer's setting in turn (lowest first): after each, its value must win."""
    layers = Layers()
    for set_layer, expected in steps:
        set_layer(layers)
        assert read(layers.resolve()) == expected


def test_operator_defaults() -> None:
    resolved = Layers().resolve()
    assert resolved.image == "ghcr.io/acme/mailer:1.2.3"
    assert resolved.image_pull_policy == "IfNotPresent"
    assert resolved.resources == ResourceRequirements(
        limits={"cpu": "500m", "memory": "512Mi"}, requests={"cpu": "100m", "memory": "128Mi"}
    )
    assert (resolved.node_selector, resolved.tolerations, resolved.affinity) == (None, None, None)
    assert resolved.pod_security_context == {"runAsNonRoot": False}
    assert resolved.container_security_context == SecurityContext(
        read_only_root_filesystem=False,
        allow_privilege_escalation=False,
        capabilities={"drop": ["ALL"]},
    )
    assert (resolved.liveness_probe, resolved.readiness_probe, resolved.startup_probe) == (
        None,
        None,
        None,
    )
    assert (resolved.backoff_limit, resolved.ttl_seconds_after_finished) == (0, 3600)
    assert resolved.restart_policy == "Never"
    assert resolved.step_timeout_ns == 30 * 60 * 10**9
    assert resolved.debug is False
    assert (resolved.max_inline_size, resolved.max_recursion_depth) == (4096, 32)
    assert resolved.storage_timeout_seconds == 300
    assert resolved.termination_grace_period_seconds == 30
    assert dict(resolved.secrets) == {}
    assert resolved.service_account_name == RUNNER_SA
    assert resolved.storage is None
    assert resolved.warnings == ()


def test_image_pull_policy_precedence() -> None:
    ladder(
        [
            (lambda x: x.config.update({"images.pull-policy": "Always"}), "Always"),
            (lambda x: x.execution.update({"images": {"pullPolicy": "Never"}}), "Never"),
            (lambda x: x.overrides.update({"imagePullPolicy": "IfNotPresent"}), "IfNotPresent"),
            (lambda x: x.step_execution.update({"imagePullPolicy": "Always"}), "Always"),
        ],
        lambda r: r.image_pull_policy,
    )


def test_resources_precedence() -> None:
    def cpu_request(value: str) -> dict[str, Any]:
        return {"resources": {"cpuRequest": value}}

    ladder(
        [
            (lambda x: x.config.update({"resources.default.cpu-request": "101m"}), "101m"),
            (lambda x: x.config.update({"resources.engram.cpu-request": "102m"}), "102m"),
            (
                lambda x: x.execution.update({"resources": {"recommendedCpuRequest": "103m"}}),
                "103m",
            ),
            (lambda x: x.engram_spec.update({"executionPolicy": cpu_request("104m")}), "104m"),
            (lambda x: x.story_execution.update(cpu_request("105m")), "105m"),
            (lambda x: x.steprun_overrides.update({"cpuRequest": "106m"}), "106m"),
        ],
        lambda r: r.resources.requests["cpu"] if r.resources.requests else None,
    )


def test_every_request_and_limit_has_its_field_at_each_layer() -> None:
    layers = Layers()
    layers.execution["resources"] = {
        "recommendedCpuRequest": "1",
        "recommendedCpuLimit": "2",
        "recommendedMemoryRequest": "1Gi",
        "recommendedMemoryLimit": "2Gi",
    }
    assert layers.resolve().resources == ResourceRequirements(
        limits={"cpu": "2", "memory": "2Gi"}, requests={"cpu": "1", "memory": "1Gi"}
    )
    layers.story_execution["resources"] = {"cpuLimit": "3", "memoryRequest": "3Gi"}
    layers.steprun_overrides.update({"memoryLimit": "4Gi", "cpuRequest": "4"})
    assert layers.resolve().resources == ResourceRequirements(
        limits={"cpu": "3", "memory": "4Gi"}, requests={"cpu": "4", "memory": "3Gi"}
    )


def test_invalid_quantities_are_skipped_with_a_warning() -> None:
    layers = Layers()
    layers.execution["resources"] = {"recommendedCpuRequest": "lots", "recommendedCpuLimit": "1"}
    layers.steprun_overrides["memoryLimit"] = "1 Gi"
    resolved = layers.resolve()
    assert resolved.resources.requests == {"cpu": "100m", "memory": "128Mi"}
    assert resolved.resources.limits == {"cpu": "1", "memory": "512Mi"}
    assert resolved.warnings == (
        (
            "EngramTemplate 'tpl' execution.resources.recommendedCpuRequest 'lots' is not a valid "
            "quantity; ignored"
        ),
        (
            "StepRun 'run-1-notify' executionOverrides.memoryLimit '1 Gi' is not a valid quantity; "
            "ignored"
        ),
    )


def test_placement_precedence_merges_selectors_and_replaces_the_rest() -> None:
    def placement(level: int) -> dict[str, Any]:
        return {
            "placement": {
                "nodeSelector": {"zone": f"z{level}", f"level{level}": "yes"},
                "tolerations": [{"key": f"t{level}", "operator": "Exists"}],
                "affinity": {"nodeAffinity": {"level": level}},
            }
        }

    def read(r: ResolvedExecution) -> Any:
        return r.node_selector, r.tolerations, r.affinity

    expected: list[Any] = []
    for level in range(1, 6):
        selector = {"zone": f"z{level}", **{f"level{n}": "yes" for n in range(1, level + 1)}}
        expected.append(
            (
                selector,
                [{"key": f"t{level}", "operator": "Exists"}],
                {"nodeAffinity": {"level": level}},
            )
        )
    ladder(
        [
            (lambda x: x.engram_spec.update({"executionPolicy": placement(1)}), expected[0]),
            (lambda x: x.overrides.update(placement(2)), expected[1]),
            (lambda x: x.story_execution.update(placement(3)), expected[2]),
            (lambda x: x.step_execution.update(placement(4)), expected[3]),
            (lambda x: x.steprun_overrides.update(placement(5)), expected[4]),
        ],
        read,
    )


def test_run_as_user_precedence() -> None:
    def security(uid: int) -> dict[str, Any]:
        return {"security": {"runAsUser": uid}}

    ladder(
        [
            (lambda x: x.config.update({"security.run-as-user": "1000"}), 1000),
            (lambda x: x.execution.update({"security": {"recommendedRunAsUser": 1001}}), 1001),
            (lambda x: x.overrides.update(security(1002)), 1002),
            (lambda x: x.story_execution.update(security(1003)), 1003),
            (lambda x: x.step_execution.update(security(1004)), 1004),
        ],
        lambda r: r.pod_security_context and r.pod_security_context.get("runAsUser"),
    )


def test_security_flags_precedence() -> None:
    def flags(value: bool) -> dict[str, Any]:
        return {
            "security": {
                "runAsNonRoot": value,
                "readOnlyRootFilesystem": value,
                "allowPrivilegeEscalation": not value,
            }
        }

    def read(r: ResolvedExecution) -> tuple[Any, ...]:
        pod, container = r.pod_security_context or {}, r.container_security_context
        assert container is not None
        return (
            pod["runAsNonRoot"],
            container.read_only_root_filesystem,
            container.allow_privilege_escalation,
        )

    template_flags = {
        "requiresNonRoot": False,
        "requiresReadOnlyRoot": False,
        "requiresNoPrivilegeEscalation": False,
    }
    ladder(
        [
            (
                lambda x: x.config.update(
                    {
                        "security.run-as-non-root": "true",
                        "security.read-only-root-filesystem": "true",
                        "security.allow-privilege-escalation": "false",
                    }
                ),
                (True, True, False),
            ),
            # The reference assigns the template's flags (false turns a default off).
            (lambda x: x.execution.update({"security": template_flags}), (False, False, True)),
            (lambda x: x.overrides.update(flags(True)), (True, True, False)),
            (lambda x: x.story_execution.update(flags(False)), (False, False, True)),
            (lambda x: x.step_execution.update(flags(True)), (True, True, False)),
        ],
        read,
    )


def test_restricted_security_from_the_operator_config() -> None:
    layers = Layers()
    layers.config.update(
        {
            "security.run-as-non-root": "true",
            "security.read-only-root-filesystem": "true",
            "security.allow-privilege-escalation": "false",
            "security.run-as-user": "1000",
            "security.drop-capabilities": "net_raw, SYS_ADMIN,",
        }
    )
    resolved = layers.resolve()
    assert resolved.pod_security_context == {"runAsNonRoot": True, "runAsUser": 1000}
    assert resolved.container_security_context == SecurityContext(
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        capabilities={"drop": ["NET_RAW", "SYS_ADMIN"]},
    )


def test_template_requirements_force_restricted_settings_on() -> None:
    layers = Layers()
    layers.config["security.allow-privilege-escalation"] = "true"
    layers.execution["security"] = {
        "requiresNonRoot": True,
        "requiresReadOnlyRoot": True,
        "requiresNoPrivilegeEscalation": True,
    }
    resolved = layers.resolve()
    assert resolved.pod_security_context == {"runAsNonRoot": True}
    assert resolved.container_security_context == SecurityContext(
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        capabilities={"drop": ["ALL"]},
    )


def test_probes_come_from_the_template_and_layers_can_only_disable_them() -> None:
    liveness = {"httpGet": {"path": "/live", "port": 8080}}
    readiness = {"exec": {"command": ["true"]}}
    startup = {"tcpSocket": {"port": 8080}}

    def read(r: ResolvedExecution) -> tuple[Any, ...]:
        return r.liveness_probe, r.readiness_probe, r.startup_probe

    probes = {"liveness": liveness, "readiness": readiness, "startup": startup}
    ladder(
        [
            (lambda x: x.execution.update({"probes": probes}), (liveness, readiness, startup)),
            (
                lambda x: x.overrides.update({"probes": {"disableLiveness": True}}),
                (None, readiness, startup),
            ),
            (
                lambda x: x.step_execution.update({"probes": {"disableStartup": True}}),
                (None, readiness, None),
            ),
        ],
        read,
    )


def test_backoff_limit_precedence() -> None:
    ladder(
        [
            (lambda x: x.config.update({"job.backoff-limit": "1"}), 1),
            (lambda x: x.execution.update({"job": {"recommendedBackoffLimit": 2}}), 2),
            (lambda x: x.story_execution.update({"job": {"backoffLimit": 3}}), 3),
            (lambda x: x.steprun_overrides.update({"backoffLimit": 4}), 4),
        ],
        lambda r: r.backoff_limit,
    )


def test_ttl_precedence() -> None:
    ladder(
        [
            (lambda x: x.config.update({"job.ttl-seconds-after-finished": "100"}), 100),
            (
                lambda x: x.execution.update({"job": {"recommendedTtlSecondsAfterFinished": 200}}),
                200,
            ),
            (lambda x: x.story_execution.update({"job": {"ttlSecondsAfterFinished": 300}}), 300),
            (lambda x: x.steprun_overrides.update({"ttlSecondsAfterFinished": 0}), 0),
        ],
        lambda r: r.ttl_seconds_after_finished,
    )


def test_restart_policy_precedence() -> None:
    ladder(
        [
            (lambda x: x.config.update({"job.restart-policy": "OnFailure"}), "OnFailure"),
            (lambda x: x.execution.update({"job": {"recommendedRestartPolicy": "Never"}}), "Never"),
            (
                lambda x: x.story_execution.update({"job": {"restartPolicy": "OnFailure"}}),
                "OnFailure",
            ),
            (lambda x: x.steprun_overrides.update({"restartPolicy": "Never"}), "Never"),
        ],
        lambda r: r.restart_policy,
    )


def test_invalid_restart_and_pull_policies_are_skipped() -> None:
    layers = Layers()
    layers.execution["job"] = {"recommendedRestartPolicy": "Always"}
    layers.overrides["imagePullPolicy"] = "always"
    layers.steprun_overrides["restartPolicy"] = "Sometimes"
    resolved = layers.resolve()
    assert (resolved.restart_policy, resolved.image_pull_policy) == ("Never", "IfNotPresent")
    assert resolved.warnings == (
        (
            "EngramTemplate 'tpl' execution.job.recommendedRestartPolicy 'Always' is not one of "
            "Never, OnFailure; ignored"
        ),
        (
            "Engram 'mailer' overrides.imagePullPolicy 'always' is not one of Always, Never, "
            "IfNotPresent; ignored"
        ),
        (
            "StepRun 'run-1-notify' executionOverrides.restartPolicy 'Sometimes' is not one of "
            "Never, OnFailure; ignored"
        ),
    )


def test_step_timeout_precedence() -> None:
    minute = 60 * 10**9
    ladder(
        [
            (lambda x: x.config.update({"timeout.default-step": "5m"}), 5 * minute),
            # Timeouts of the other layers never reach the Job (controller-behaviour 4.9).
            (lambda x: x.execution.update({"timeout": "1h"}), 5 * minute),
            (lambda x: x.overrides.update({"timeout": "2h"}), 5 * minute),
            (lambda x: x.story_execution.update({"timeout": "3h"}), 5 * minute),
            (lambda x: x.step_execution.update({"timeout": "4h"}), 5 * minute),
            (lambda x: x.story_policy.update({"timeouts": {"step": "7m"}}), 7 * minute),
            (lambda x: x.steprun_spec.update({"timeout": "1m30s"}), 90 * 10**9),
        ],
        lambda r: r.step_timeout_ns,
    )


def test_invalid_step_timeouts_fall_through_to_the_next_source() -> None:
    layers = Layers()
    layers.steprun_spec["timeout"] = "0s"
    layers.story_policy["timeouts"] = {"step": "soon"}
    resolved = layers.resolve()
    assert resolved.step_timeout_ns == 30 * 60 * 10**9
    assert resolved.warnings == (
        "StepRun 'run-1-notify' timeout '0s' must be positive; ignored",
        (
            "Story 'welcome' policy.timeouts.step 'soon' is invalid "
            '(time: invalid duration "soon"); ignored'
        ),
    )


def test_debug_precedence() -> None:
    ladder(
        [
            (lambda x: x.overrides.update({"debug": True}), True),
            (lambda x: x.step_execution.update({"debug": False}), False),
            (lambda x: x.steprun_overrides.update({"debug": True}), True),
        ],
        lambda r: r.debug,
    )


def test_max_inline_size_and_recursion_depth() -> None:
    ladder(
        [
            (lambda x: x.config.update({"engram.default-max-inline-size": "100"}), 100),
            (lambda x: x.overrides.update({"maxInlineSize": 200}), 200),
            (lambda x: x.step_execution.update({"maxInlineSize": 0}), 0),
        ],
        lambda r: r.max_inline_size,
    )
    ladder(
        [
            (lambda x: x.config.update({"engram.default-max-recursion-depth": "10"}), 10),
            (lambda x: x.story_execution.update({"maxRecursionDepth": 12}), 12),
        ],
        lambda r: r.max_recursion_depth,
    )


def test_secrets_merge_engram_then_step() -> None:
    layers = Layers()
    layers.engram_spec["secrets"] = {"smtp": "smtp-prod", "api": "api-prod"}
    assert layers.step is not None
    layers.step["secrets"] = {"api": "api-staging"}
    assert dict(layers.resolve().secrets) == {"smtp": "smtp-prod", "api": "api-staging"}


def test_untrusted_service_account_overrides_are_ignored_everywhere() -> None:
    layers = Layers()
    layers.overrides.update(
        {"serviceAccountName": "cluster-admin", "automountServiceAccountToken": False}
    )
    layers.story_execution["serviceAccountName"] = "cluster-admin"
    layers.step_execution["serviceAccountName"] = "cluster-admin"
    resolved = layers.resolve()
    assert resolved.service_account_name == RUNNER_SA
    assert resolved.warnings == (
        "Engram 'mailer' overrides.serviceAccountName is ignored (untrusted)",
        "Engram 'mailer' overrides.automountServiceAccountToken is ignored (untrusted)",
        "Story 'welcome' policy.execution.serviceAccountName is ignored (untrusted)",
        "Story 'welcome' step 'notify' execution.serviceAccountName is ignored (untrusted)",
    )
    layers.config["security.service-account-name"] = "engram-pods"
    assert layers.resolve().service_account_name == "engram-pods"


def test_missing_image_fails() -> None:
    layers = Layers()
    del layers.template_spec["image"]
    assert layers.failure() == "EngramTemplate 'tpl' has no spec.image"


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("UPPER CASE", "is not a valid image reference"),
        (" spaced image ", "has leading or trailing whitespace"),
    ],
)
def test_an_image_the_kubelet_cannot_parse_fails(image: str, problem: str) -> None:
    layers = Layers()
    layers.template_spec["image"] = image
    assert layers.failure() == f"EngramTemplate 'tpl' spec.image '{image}' {problem}"


@pytest.mark.parametrize(
    ("set_layer", "message"),
    [
        (
            lambda x: x.execution.update({"security": {"recommendedRunAsUser": 0}}),
            "EngramTemplate 'tpl' execution.security.recommendedRunAsUser must be > 0",
        ),
        (
            lambda x: x.overrides.update({"security": {"runAsUser": -1}}),
            "Engram 'mailer' overrides.security.runAsUser must be > 0",
        ),
        (
            lambda x: x.story_execution.update({"security": {"runAsUser": 0}}),
            "Story 'welcome' policy.execution.security.runAsUser must be > 0",
        ),
        (
            lambda x: x.step_execution.update({"security": {"runAsUser": 0}}),
            "Story 'welcome' step 'notify' execution.security.runAsUser must be > 0",
        ),
    ],
)
def test_run_as_user_not_positive_fails(set_layer: Step, message: str) -> None:
    layers = Layers()
    set_layer(layers)
    assert layers.failure() == message


def test_storage_is_resolved_for_the_caller_to_refuse() -> None:
    layers = Layers()
    layers.execution["storage"] = {
        "s3": {"bucket": " results ", "authentication": {"secretRef": {"name": "s3-creds"}}},
        "timeoutSeconds": 60,
    }
    storage = layers.resolve().storage
    assert storage is not None and storage.s3 is not None
    assert (storage.s3.bucket, storage.s3.authentication.secret_ref) == (
        "results",
        {"name": "s3-creds"},
    )
    assert storage.timeout_seconds == 60

    layers.execution["storage"]["s3"]["bucket"] = "Not_A_Bucket"
    resolved = layers.resolve()
    assert resolved.storage is None
    assert resolved.warnings == (
        (
            "EngramTemplate 'tpl' execution.storage: s3.bucket 'Not_A_Bucket' is not a DNS-1123 "
            "subdomain; ignored"
        ),
    )

    # The Story's policy.storage is applied last, after the step's overrides.
    layers.step_execution["storage"] = {"file": {"path": "/step"}}
    storage = layers.resolve().storage
    assert storage is not None and storage.file is not None
    assert storage.file.path == "/step"
    layers.story_policy["storage"] = {"file": {"path": "/story"}}
    storage = layers.resolve().storage
    assert storage is not None and storage.file is not None
    assert storage.file.path == "/story"


def test_without_story_or_step_only_the_other_layers_apply() -> None:
    layers = Layers()
    layers.story_spec = None
    layers.step = None
    layers.overrides["debug"] = True
    resolved = layers.resolve()
    assert resolved.debug is True
    assert resolved.max_recursion_depth == 32
