"""Operator ConfigMap keys -> settings: defaults, overrides, bad values kept at the default."""

from __future__ import annotations

import dataclasses

import pytest

from runs_controller.engine.operator_config import (
    KEYS,
    QUEUE_FIELDS,
    OperatorConfig,
    QueueConfig,
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
