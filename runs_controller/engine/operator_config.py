"""The operator configuration: the reference's compiled defaults, overridable by the keys of its
operator ConfigMap (ruling 14). Pure: parsing a ConfigMap's `data` into a frozen value.

A key with a value that does not parse keeps its default and is reported (key, value, why), so
one typo never stops the controller or silently changes another setting. Keys this controller
does not use are ignored: the reference's ConfigMap carries many for other controllers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from runs_controller.engine.durations import parse_go_duration

NANOSECONDS = 1_000_000_000
CROSS_NAMESPACE_POLICIES = ("deny", "allow", "grant")


@dataclass(frozen=True)
class OperatorConfig:
    """Settings the runs controllers read; each field names its ConfigMap key."""

    max_inline_inputs_size: int = 1024
    """`storyrun.max-inline-inputs-size`: bytes of a StoryRun's inputs kept inline."""
    storyrun_retention_seconds: int = 86400
    """`storyrun.retention-seconds` (0 means the default): how long finished runs are kept."""
    child_ttl_seconds: int = 3600
    """`job.ttl-seconds-after-finished`: how long a finished Job (and its pods) is kept."""
    default_step_timeout_seconds: float = 1800.0
    """`timeout.default-step` (Go duration; 0 means the default, 30m)."""
    max_retries: int = 3
    """`retry.max-retries`: attempts after the first, when the step says nothing."""
    graceful_shutdown_seconds: int = 20
    """`engram.default-graceful-shutdown-timeout-seconds`: the drain window for cancellation."""
    cross_namespace_policy: str = "deny"
    """`references.cross-namespace-policy`: deny, allow or grant."""
    reconcile_timeout_seconds: float = 30.0
    """`controller.reconcile-timeout` (Go duration)."""
    templating_max_output_bytes: int = 65536
    """`templating.max-output-bytes`."""
    templating_deterministic: bool = False
    """`templating.deterministic`: refuse `now` and the random functions."""


def _non_negative_int(text: str) -> int:
    value = int(text.strip(), 10)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _seconds(text: str) -> float:
    nanoseconds = parse_go_duration(text.strip())
    if nanoseconds < 0:
        raise ValueError("must not be negative")
    return nanoseconds / NANOSECONDS


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ValueError("must be true or false")


def _policy(text: str) -> str:
    value = text.strip().lower()
    if value not in CROSS_NAMESPACE_POLICIES:
        raise ValueError(f"must be one of {', '.join(CROSS_NAMESPACE_POLICIES)}")
    return value


Parser = Callable[[str], Any]
_DEFAULTS = OperatorConfig()

# key -> (field, parser, what 0 means: None keeps a literal 0)
KEYS: dict[str, tuple[str, Parser, Any]] = {
    "storyrun.max-inline-inputs-size": ("max_inline_inputs_size", _non_negative_int, None),
    "storyrun.retention-seconds": (
        "storyrun_retention_seconds",
        _non_negative_int,
        _DEFAULTS.storyrun_retention_seconds,
    ),
    "job.ttl-seconds-after-finished": ("child_ttl_seconds", _non_negative_int, None),
    "timeout.default-step": (
        "default_step_timeout_seconds",
        _seconds,
        _DEFAULTS.default_step_timeout_seconds,
    ),
    "retry.max-retries": ("max_retries", _non_negative_int, None),
    "engram.default-graceful-shutdown-timeout-seconds": (
        "graceful_shutdown_seconds",
        _non_negative_int,
        None,
    ),
    "references.cross-namespace-policy": ("cross_namespace_policy", _policy, None),
    "controller.reconcile-timeout": (
        "reconcile_timeout_seconds",
        _seconds,
        _DEFAULTS.reconcile_timeout_seconds,
    ),
    "templating.max-output-bytes": ("templating_max_output_bytes", _non_negative_int, None),
    "templating.deterministic": ("templating_deterministic", _bool, None),
}


def parse_operator_config(data: Mapping[str, str] | None) -> tuple[OperatorConfig, list[str]]:
    """The configuration from a ConfigMap's data, and one message per value that was refused."""
    changes: dict[str, Any] = {}
    problems: list[str] = []
    for key in sorted(data or {}):
        spec = KEYS.get(key)
        if spec is None:
            continue
        field, parse, zero_means = spec
        text = (data or {})[key]
        try:
            value = parse(text)
        except ValueError as error:
            problems.append(f"{key}: {text!r}: {error}; using the default")
            continue
        changes[field] = zero_means if zero_means is not None and value == 0 else value
    return replace(_DEFAULTS, **changes), problems


__all__ = ["KEYS", "OperatorConfig", "parse_operator_config"]
