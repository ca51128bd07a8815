"""Operator ConfigMap keys -> settings: defaults, overrides, bad values kept at the default."""

from __future__ import annotations

import dataclasses

from runs_controller.engine.operator_config import KEYS, OperatorConfig, parse_operator_config


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
    assert sorted(field for field, _, _ in KEYS.values()) == sorted(
        f.name for f in dataclasses.fields(OperatorConfig)
    )
