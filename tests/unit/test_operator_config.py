"""Operator ConfigMap keys -> settings: defaults, overrides, bad values kept at the default."""

from __future__ import annotations

import dataclasses

import pytest

from runs_controller.engine.operator_config import (
    KEYS,
    QUEUE_FIELDS,
    OperatorConfig,
    QueueConfig,
    is_quantity,
    parse_operator_config,
)


def test_no_configmap_means_the_reference_defaults() -> None:
    config, problems = parse_operator_config(None)
    assert problems == []
    assert config == OperatorConfig()
    assert (config.max_inline_inputs_size, config.child_ttl_seconds) == (1024, 3600)
    assert (config.storyrun_retention_seconds, config.default_step_timeout_seconds) == (
        86400,
        1800.0,
    )
    assert (config.max_retries, config.graceful_shutdown_seconds) == (3, 20)
    assert config.cross_namespace_policy == "deny"
    assert (config.global_concurrency, config.job_backoff_limit) == (0, 0)
    assert dict(config.queues) == {"default": QueueConfig(0, 0, 60)}
    assert (config.requeue_base_delay_seconds, config.requeue_max_delay_seconds) == (5.0, 30.0)
    assert config.engram_default_max_inline_size == 4096
    assert config.storyrun_max_concurrent_reconciles == 8


def test_values_override_and_unknown_keys_are_ignored() -> None:
    config, problems = parse_operator_config(
        {
            "storyrun.max-inline-inputs-size": "2048",
            "timeout.default-step": "5m",
            "controller.reconcile-timeout": "1m30s",
            "templating.deterministic": "true",
            "references.cross-namespace-policy": "Allow",
            "streaming.ttl-seconds-after-finished": "10",  # another controller's key
        }
    )
    assert problems == []
    assert config.max_inline_inputs_size == 2048
    assert config.default_step_timeout_seconds == 300.0
    assert config.reconcile_timeout_seconds == 90.0
    assert config.templating_deterministic is True
    assert config.cross_namespace_policy == "allow"


def test_zero_means_the_default_where_the_reference_says_so() -> None:
    config, _ = parse_operator_config(
        {"storyrun.retention-seconds": "0", "timeout.default-step": "0s", "retry.max-retries": "0"}
    )
    assert config.storyrun_retention_seconds == 86400
    assert config.default_step_timeout_seconds == 1800.0
    assert config.max_retries == 0  # a literal 0: no retries


def test_bad_values_keep_the_default_and_say_why() -> None:
    config, problems = parse_operator_config(
        {
            "retry.max-retries": "-1",
            "timeout.default-step": "5 minutes",
            "templating.deterministic": "maybe",
            "references.cross-namespace-policy": "sometimes",
            "job.ttl-seconds-after-finished": "7",
        }
    )
    assert config == dataclasses.replace(OperatorConfig(), child_ttl_seconds=7)
    assert [p.split(":")[0] for p in problems] == [
        "references.cross-namespace-policy",
        "retry.max-retries",
        "templating.deterministic",
        "timeout.default-step",
    ]
    assert "must not be negative" in problems[1]
    assert 'time: unknown unit " minutes" in duration "5 minutes"' in problems[3]


def test_every_setting_has_a_key() -> None:
    # `queues` is read from the open-ended storyrun.queue.<name>.<field> keys.
    assert sorted([field for field, _, _ in KEYS.values()] + ["queues"]) == sorted(
        f.name for f in dataclasses.fields(OperatorConfig)
    )
    assert sorted(QUEUE_FIELDS.values()) == sorted(f.name for f in dataclasses.fields(QueueConfig))


def test_storyrun_and_controller_keys() -> None:
    config, problems = parse_operator_config(
        {
            "storyrun.global-concurrency": "20",
            "controller.requeue-base-delay": "2s",
            "controller.requeue-max-delay": "1m",
            "engram.default-max-inline-size": "8192",
            "job.backoff-limit": "3",
            "storyrun.max-concurrent-reconciles": "4",
        }
    )
    assert problems == []
    assert config.global_concurrency == 20
    assert (config.requeue_base_delay_seconds, config.requeue_max_delay_seconds) == (2.0, 60.0)
    assert config.engram_default_max_inline_size == 8192
    assert config.job_backoff_limit == 3
    assert config.storyrun_max_concurrent_reconciles == 4


def test_queues_are_read_by_normalized_name() -> None:
    config, problems = parse_operator_config(
        {
            "storyrun.queue.default.concurrency": "5",
            "storyrun.queue.Batch.concurrency": "2",
            "storyrun.queue.batch.default-priority": "7",
            "storyrun.queue. urgent .priority-aging-seconds": "30",
        }
    )
    assert problems == []
    # The default queue keeps its aging when only its limit is set; other queues do not age.
    assert config.queue_config("default") == QueueConfig(5, 0, 60)
    assert config.queue_config("") == QueueConfig(5, 0, 60)
    assert config.queue_config(" BATCH ") == QueueConfig(2, 7, 0)
    assert config.queue_config("urgent") == QueueConfig(0, 0, 30)
    assert config.queue_config("unknown") == QueueConfig(0, 0, 0)
    assert OperatorConfig().queue_config("default").priority_aging_seconds == 60
    with pytest.raises(TypeError):
        config.queues["x"] = QueueConfig()  # type: ignore[index]


def test_bad_queue_keys_are_refused_one_by_one() -> None:
    config, problems = parse_operator_config(
        {
            "storyrun.queue.batch.concurrency": "-1",
            "storyrun.queue.batch.default-priority": "3",
            "storyrun.queue.bad_name.concurrency": "1",
            "storyrun.queue.batch.limit": "1",
            "storyrun.queue.batch": "1",
            "storyrun.queue.big.concurrency": "2147483648",
        }
    )
    assert dict(config.queues) == {
        "default": QueueConfig(0, 0, 60),
        "batch": QueueConfig(0, 3, 0),
    }
    assert [p.split(":")[0] for p in problems] == [
        "storyrun.queue.bad_name.concurrency",
        "storyrun.queue.batch",
        "storyrun.queue.batch.concurrency",
        "storyrun.queue.batch.limit",
        "storyrun.queue.big.concurrency",
    ]
    assert "DNS-1123" in problems[0]
    assert "unknown queue setting" in problems[1]
    assert "must not be negative" in problems[2]
    assert "at most 2147483647" in problems[4]


def test_requeue_delays() -> None:
    config, problems = parse_operator_config(
        {"controller.requeue-base-delay": "0", "controller.requeue-max-delay": "0s"}
    )
    assert problems == []
    assert (config.requeue_base_delay_seconds, config.requeue_max_delay_seconds) == (5.0, 30.0)

    config, problems = parse_operator_config(
        {"controller.requeue-base-delay": "5ms", "controller.requeue-max-delay": "5ms"}
    )
    assert (config.requeue_base_delay_seconds, config.requeue_max_delay_seconds) == (5.0, 0.005)
    assert problems == [
        "controller.requeue-base-delay: '5ms': must be 0 or at least 10ms; using the default"
    ]

    config, problems = parse_operator_config(
        {"controller.requeue-base-delay": "1m", "controller.requeue-max-delay": "2s"}
    )
    assert (config.requeue_base_delay_seconds, config.requeue_max_delay_seconds) == (5.0, 30.0)
    assert len(problems) == 1
    assert "exceeds controller.requeue-max-delay" in problems[0]

    # Only the max set: nothing to compare (the consumer raises max to base, as the reference).
    config, problems = parse_operator_config({"controller.requeue-max-delay": "1s"})
    assert (problems, config.requeue_max_delay_seconds) == ([], 1.0)


def test_integers_are_read_like_go() -> None:
    config, problems = parse_operator_config(
        {
            "engram.default-max-inline-size": "0",
            "storyrun.max-concurrent-reconciles": "1_0",
            "storyrun.global-concurrency": "+3",
        }
    )
    assert config.engram_default_max_inline_size == 4096
    assert config.storyrun_max_concurrent_reconciles == 8
    assert config.global_concurrency == 3
    assert [p.split(":")[0] for p in problems] == [
        "engram.default-max-inline-size",
        "storyrun.max-concurrent-reconciles",
    ]
    assert "must be positive" in problems[0]
    assert "must be an integer" in problems[1]


def test_engram_job_defaults_are_the_reference_compiled_defaults() -> None:
    config = OperatorConfig()
    assert config.image_pull_policy == "IfNotPresent"
    assert (config.default_cpu_request, config.default_cpu_limit) == ("100m", "500m")
    assert (config.default_memory_request, config.default_memory_limit) == ("128Mi", "512Mi")
    assert (config.engram_cpu_request, config.engram_memory_limit) == ("", "")
    assert (config.run_as_non_root, config.read_only_root_filesystem) == (False, False)
    assert (config.allow_privilege_escalation, config.run_as_user) == (False, 0)
    assert (config.automount_service_account_token, config.service_account_name) == (False, "")
    assert config.drop_capabilities == ("ALL",)
    assert config.job_restart_policy == "Never"
    assert config.engram_default_max_recursion_depth == 32
    assert config.engram_default_grpc_port == 50051
    assert config.engram_default_storage_timeout_seconds == 300
    assert config.engram_default_termination_grace_period_seconds == 30
    assert config.engram_default_max_recv_msg_bytes == config.engram_default_max_send_msg_bytes
    assert config.engram_default_max_recv_msg_bytes == 10 * 1024 * 1024
    assert (
        config.engram_default_dial_timeout_seconds,
        config.engram_default_channel_buffer_size,
    ) == (
        10,
        16,
    )
    assert config.engram_default_reconnect_max_retries == 10
    assert config.engram_default_reconnect_base_backoff_millis == 500
    assert config.engram_default_reconnect_max_backoff_seconds == 30
    assert config.engram_default_hang_timeout_seconds == 0
    assert config.engram_default_message_timeout_seconds == 30
    assert config.verbose_logging is False


def test_engram_job_keys_override_the_defaults() -> None:
    config, problems = parse_operator_config(
        {
            "images.pull-policy": "Always",
            "resources.default.cpu-request": "0.5",
            "resources.default.memory-limit": "1Gi",
            "resources.engram.cpu-limit": "1",
            "resources.engram.memory-request": "",
            "security.run-as-non-root": "true",
            "security.read-only-root-filesystem": "TRUE",
            "security.allow-privilege-escalation": "false",
            "security.run-as-user": "1000",
            "security.automount-service-account-token": "true",
            "security.service-account-name": "engram-pods",
            "security.drop-capabilities": "net_raw, sys_admin",
            "job.restart-policy": "OnFailure",
            "engram.default-max-recursion-depth": "16",
            "engram.default-grpc-port": "9000",
            "engram.default-storage-timeout-seconds": "60",
            "engram.default-termination-grace-period-seconds": "5",
            "engram.default-max-recv-msg-bytes": "1024",
            "engram.default-max-send-msg-bytes": "2048",
            "engram.default-dial-timeout-seconds": "3",
            "engram.default-channel-buffer-size": "4",
            "engram.default-reconnect-max-retries": "0",
            "engram.default-reconnect-base-backoff-millis": "100",
            "engram.default-reconnect-max-backoff-seconds": "7",
            "engram.default-hang-timeout-seconds": "8",
            "engram.default-message-timeout-seconds": "9",
            "debug.enable-verbose-logging": "true",
        }
    )
    assert problems == []
    assert config.image_pull_policy == "Always"
    assert (config.default_cpu_request, config.default_memory_limit) == ("0.5", "1Gi")
    assert (config.engram_cpu_limit, config.engram_memory_request) == ("1", "")
    assert (config.run_as_non_root, config.read_only_root_filesystem) == (True, True)
    assert (config.allow_privilege_escalation, config.run_as_user) == (False, 1000)
    assert config.automount_service_account_token is True
    assert config.service_account_name == "engram-pods"
    assert config.drop_capabilities == ("NET_RAW", "SYS_ADMIN")
    assert config.job_restart_policy == "OnFailure"
    assert config.engram_default_max_recursion_depth == 16
    assert config.engram_default_grpc_port == 9000
    assert config.engram_default_storage_timeout_seconds == 60
    assert config.engram_default_termination_grace_period_seconds == 5
    assert (config.engram_default_max_recv_msg_bytes, config.engram_default_max_send_msg_bytes) == (
        1024,
        2048,
    )
    assert (
        config.engram_default_dial_timeout_seconds,
        config.engram_default_channel_buffer_size,
    ) == (
        3,
        4,
    )
    assert config.engram_default_reconnect_max_retries == 0
    assert config.engram_default_reconnect_base_backoff_millis == 100
    assert config.engram_default_reconnect_max_backoff_seconds == 7
    assert config.engram_default_hang_timeout_seconds == 8
    assert config.engram_default_message_timeout_seconds == 9
    assert config.verbose_logging is True


def test_bad_engram_job_values_are_refused_one_by_one() -> None:
    config, problems = parse_operator_config(
        {
            "images.pull-policy": "always",
            "resources.default.cpu-request": "half",
            "resources.engram.memory-limit": " 1Gi",
            "security.run-as-user": "0",
            "security.run-as-non-root": "sure",
            "security.drop-capabilities": " , ",
            "job.restart-policy": "Sometimes",
            "engram.default-hang-timeout-seconds": "0",
            "engram.default-reconnect-max-retries": "-1",
        }
    )
    assert config == dataclasses.replace(OperatorConfig(), drop_capabilities=("ALL",))
    assert [p.split(":")[0] for p in problems] == [
        "engram.default-hang-timeout-seconds",
        "engram.default-reconnect-max-retries",
        "images.pull-policy",
        "job.restart-policy",
        "resources.default.cpu-request",
        "resources.engram.memory-limit",
        "security.run-as-non-root",
        "security.run-as-user",
    ]
    assert "must be one of Always, Never, IfNotPresent" in problems[2]
    assert "must be a resource quantity" in problems[4]
    assert "must be positive" in problems[7]


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("100m", True),
        ("0.5", True),
        ("1", True),
        ("+1.5Gi", True),
        ("512Mi", True),
        ("1e3", True),
        ("1E-2", True),
        (".5", True),
        ("1.", True),
        ("-1", True),
        ("", False),
        ("1K", False),
        ("1ki", False),
        ("1 Gi", False),
        (" 1", False),
        ("1e.5", False),
        ("abc", False),
        ("1Gib", False),
    ],
)
def test_quantities_are_read_like_go(text: str, valid: bool) -> None:
    assert is_quantity(text) is valid
