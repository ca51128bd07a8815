"""The operator configuration: the reference's compiled defaults, overridable by the keys of its
operator ConfigMap (ruling 14). Pure: parsing a ConfigMap's `data` into a frozen value.

A key with a value that does not parse keeps its default and is reported (key, value, why), so
one typo never stops the controller or silently changes another setting. Keys this controller
does not use are ignored: the reference's ConfigMap carries many for other controllers. Where
the reference refuses the whole ConfigMap (a negative queue limit, an invalid queue name, a
requeue base delay under 10ms, a `security.run-as-user` that is not a positive integer), only
that key is refused here. Booleans read true/false/1/0/yes/no in any case (the reference takes
only the exact `true` as true for `security.*` and `debug.*` and everything else as false).

Scheduling queues are open-ended keys, `storyrun.queue.<queue>.<field>`; the queue name is
trimmed and lowercased as the reference does, and a queue the ConfigMap does not name has no
limit, priority 0 and no aging (only `default` ages, every 60s, unless configured).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from runs_controller.engine.durations import parse_go_duration
from runs_controller.engine.keys import DEFAULT_QUEUE

NANOSECONDS = 1_000_000_000
CROSS_NAMESPACE_POLICIES = ("deny", "allow", "grant")
INT32_MAX = (1 << 31) - 1
MIN_REQUEUE_DELAY_SECONDS = 0.01
"""The reference refuses a requeue base delay between 0 and 10ms."""
QUEUE_KEY_PREFIX = "storyrun.queue."

_DECIMAL = re.compile(r"[+-]?[0-9]+")
# resource.ParseQuantity: a signed decimal, then a binary-SI, decimal-SI or integer-exponent suffix.
_QUANTITY = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?")
PULL_POLICIES = ("Always", "Never", "IfNotPresent")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
INT64_MAX = (1 << 63) - 1
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class QueueConfig:
    """One scheduling queue: `storyrun.queue.<name>.*`; zero means no limit / no aging."""

    concurrency: int = 0
    """`concurrency`: most non-terminal StepRuns labeled with the queue (ruling 27)."""
    default_priority: int = 0
    """`default-priority`: the priority of a Story in this queue that sets none."""
    priority_aging_seconds: int = 0
    """`priority-aging-seconds`: a waiting run gains one priority level per this many seconds."""


DEFAULT_QUEUES: Mapping[str, QueueConfig] = MappingProxyType(
    {DEFAULT_QUEUE: QueueConfig(priority_aging_seconds=60)}
)
_UNCONFIGURED_QUEUE = QueueConfig()


def normalize_queue_name(name: str) -> str:
    """A queue name as the reference compares it: trimmed and lowercased (may be empty)."""
    return name.strip().lower()


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
    global_concurrency: int = 0
    """`storyrun.global-concurrency` (0: none): most non-terminal StepRuns in the cluster."""
    queues: Mapping[str, QueueConfig] = field(default_factory=lambda: DEFAULT_QUEUES, hash=False)
    """`storyrun.queue.<name>.*`, by normalized name (read-only); read through `queue_config`."""
    requeue_base_delay_seconds: float = 5.0
    """`controller.requeue-base-delay` (Go duration; 0 means the default, 5s)."""
    requeue_max_delay_seconds: float = 30.0
    """`controller.requeue-max-delay` (Go duration; 0 means the default, 30s)."""
    engram_default_max_inline_size: int = 4096
    """`engram.default-max-inline-size`: bytes of a step's input kept inline in the StepRun."""
    job_backoff_limit: int = 0
    """`job.backoff-limit`: the Job's own pod retries (StepRun retries are separate)."""
    storyrun_max_concurrent_reconciles: int = 8
    """`storyrun.max-concurrent-reconciles`: StoryRun workers."""

    # ---- Engram Jobs: image, resources, security, pod settings (controller-behaviour 4.4/4.5)
    image_pull_policy: str = "IfNotPresent"
    """`images.pull-policy`: Always, Never or IfNotPresent."""
    default_cpu_request: str = "100m"
    """`resources.default.cpu-request` (a resource quantity)."""
    default_cpu_limit: str = "500m"
    """`resources.default.cpu-limit`."""
    default_memory_request: str = "128Mi"
    """`resources.default.memory-request`."""
    default_memory_limit: str = "512Mi"
    """`resources.default.memory-limit`."""
    engram_cpu_request: str = ""
    """`resources.engram.cpu-request` (empty: unset); wins over `resources.default.*`."""
    engram_cpu_limit: str = ""
    """`resources.engram.cpu-limit`."""
    engram_memory_request: str = ""
    """`resources.engram.memory-request`."""
    engram_memory_limit: str = ""
    """`resources.engram.memory-limit`."""
    run_as_non_root: bool = False
    """`security.run-as-non-root`: pod securityContext.runAsNonRoot of Engram pods."""
    read_only_root_filesystem: bool = False
    """`security.read-only-root-filesystem`."""
    allow_privilege_escalation: bool = False
    """`security.allow-privilege-escalation`."""
    run_as_user: int = 0
    """`security.run-as-user` (0: unset; a set value must be positive)."""
    automount_service_account_token: bool = False
    """`security.automount-service-account-token` (batch pods force it on regardless)."""
    service_account_name: str = ""
    """`security.service-account-name`: the trusted ServiceAccount of every Engram pod
    (empty: the per-StoryRun engram-runner)."""
    drop_capabilities: tuple[str, ...] = ("ALL",)
    """`security.drop-capabilities`: comma-separated, upper-cased; none given means ALL."""
    job_restart_policy: str = "Never"
    """`job.restart-policy`: Always, OnFailure or Never."""
    engram_default_max_recursion_depth: int = 32
    """`engram.default-max-recursion-depth`: BUBU_MAX_RECURSION_DEPTH unless the Story sets one."""
    engram_default_grpc_port: int = 50051
    """`engram.default-grpc-port`: BUBU_GRPC_PORT."""
    engram_default_storage_timeout_seconds: int = 300
    """`engram.default-storage-timeout-seconds`: BUBU_STORAGE_TIMEOUT."""
    engram_default_termination_grace_period_seconds: int = 30
    """`engram.default-termination-grace-period-seconds`: the pod's grace period."""
    engram_default_max_recv_msg_bytes: int = 10 * 1024 * 1024
    """`engram.default-max-recv-msg-bytes`: BUBU_GRPC_(CLIENT_)MAX_RECV_BYTES."""
    engram_default_max_send_msg_bytes: int = 10 * 1024 * 1024
    """`engram.default-max-send-msg-bytes`: BUBU_GRPC_(CLIENT_)MAX_SEND_BYTES."""
    engram_default_dial_timeout_seconds: int = 10
    """`engram.default-dial-timeout-seconds`: BUBU_GRPC_DIAL_TIMEOUT."""
    engram_default_channel_buffer_size: int = 16
    """`engram.default-channel-buffer-size`: BUBU_GRPC_CHANNEL_BUFFER_SIZE."""
    engram_default_reconnect_max_retries: int = 10
    """`engram.default-reconnect-max-retries` (0 is accepted but exported as 10, as the
    reference does): BUBU_GRPC_RECONNECT_MAX_RETRIES."""
    engram_default_reconnect_base_backoff_millis: int = 500
    """`engram.default-reconnect-base-backoff-millis`: BUBU_GRPC_RECONNECT_BASE_BACKOFF."""
    engram_default_reconnect_max_backoff_seconds: int = 30
    """`engram.default-reconnect-max-backoff-seconds`: BUBU_GRPC_RECONNECT_MAX_BACKOFF."""
    engram_default_hang_timeout_seconds: int = 0
    """`engram.default-hang-timeout-seconds` (a set value must be positive):
    BUBU_GRPC_HANG_TIMEOUT."""
    engram_default_message_timeout_seconds: int = 30
    """`engram.default-message-timeout-seconds`: BUBU_GRPC_MESSAGE_TIMEOUT and
    BUBU_GRPC_CHANNEL_SEND_TIMEOUT."""
    verbose_logging: bool = False
    """`debug.enable-verbose-logging` (the controller's own logs; it does not set BUBU_DEBUG)."""

    def queue_config(self, queue: str) -> QueueConfig:
        """A queue's settings by any spelling of its name (empty: the default queue)."""
        name = normalize_queue_name(queue) or DEFAULT_QUEUE
        return self.queues.get(name, _UNCONFIGURED_QUEUE)


Parser = Callable[[str], Any]


def _decimal(text: str) -> int:
    """A base-10 integer as Go's strconv reads it (no `_` separators, unlike Python's int)."""
    value = text.strip()
    if not _DECIMAL.fullmatch(value):
        raise ValueError("must be an integer")
    return int(value, 10)


def _non_negative_int(text: str) -> int:
    value = _decimal(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _non_negative_int32(text: str) -> int:
    value = _non_negative_int(text)
    if value > INT32_MAX:
        raise ValueError(f"must be at most {INT32_MAX}")
    return value


def _positive_int(text: str) -> int:
    value = _decimal(text)
    if value <= 0:
        raise ValueError("must be positive")
    return value


def _seconds(text: str) -> float:
    nanoseconds = parse_go_duration(text.strip())
    if nanoseconds < 0:
        raise ValueError("must not be negative")
    return nanoseconds / NANOSECONDS


def _requeue_delay(text: str) -> float:
    value = _seconds(text)
    if 0 < value < MIN_REQUEUE_DELAY_SECONDS:
        raise ValueError("must be 0 or at least 10ms")
    return value


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ValueError("must be true or false")


def is_quantity(text: str) -> bool:
    """Whether Go's `resource.ParseQuantity` accepts `text` (no surrounding spaces allowed)."""
    return _QUANTITY.fullmatch(text) is not None


def _quantity(text: str) -> str:
    if not is_quantity(text):
        raise ValueError("must be a resource quantity (e.g. 100m, 1, 512Mi)")
    return text


def _optional_quantity(text: str) -> str:
    """A `resources.engram.*` value: the reference trims it, and empty means unset."""
    return "" if not text.strip() else _quantity(text)


def _one_of(choices: tuple[str, ...]) -> Parser:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


def _run_as_user(text: str) -> int:
    value = _positive_int(text)
    if value > INT64_MAX:
        raise ValueError(f"must be at most {INT64_MAX}")
    return value


def _capabilities(text: str) -> tuple[str, ...]:
    """Comma-separated capability names, trimmed and upper-cased; none left means ALL."""
    names = tuple(part.strip().upper() for part in text.split(",") if part.strip())
    return names or ("ALL",)


def _text(text: str) -> str:
    return text


def _policy(text: str) -> str:
    value = text.strip().lower()
    if value not in CROSS_NAMESPACE_POLICIES:
        raise ValueError(f"must be one of {', '.join(CROSS_NAMESPACE_POLICIES)}")
    return value


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
    "storyrun.global-concurrency": ("global_concurrency", _non_negative_int32, None),
    "controller.requeue-base-delay": (
        "requeue_base_delay_seconds",
        _requeue_delay,
        _DEFAULTS.requeue_base_delay_seconds,
    ),
    "controller.requeue-max-delay": (
        "requeue_max_delay_seconds",
        _seconds,
        _DEFAULTS.requeue_max_delay_seconds,
    ),
    "engram.default-max-inline-size": ("engram_default_max_inline_size", _positive_int, None),
    "job.backoff-limit": ("job_backoff_limit", _non_negative_int32, None),
    "storyrun.max-concurrent-reconciles": (
        "storyrun_max_concurrent_reconciles",
        _positive_int,
        None,
    ),
    "images.pull-policy": ("image_pull_policy", _one_of(PULL_POLICIES), None),
    "resources.default.cpu-request": ("default_cpu_request", _quantity, None),
    "resources.default.cpu-limit": ("default_cpu_limit", _quantity, None),
    "resources.default.memory-request": ("default_memory_request", _quantity, None),
    "resources.default.memory-limit": ("default_memory_limit", _quantity, None),
    "resources.engram.cpu-request": ("engram_cpu_request", _optional_quantity, None),
    "resources.engram.cpu-limit": ("engram_cpu_limit", _optional_quantity, None),
    "resources.engram.memory-request": ("engram_memory_request", _optional_quantity, None),
    "resources.engram.memory-limit": ("engram_memory_limit", _optional_quantity, None),
    "security.run-as-non-root": ("run_as_non_root", _bool, None),
    "security.read-only-root-filesystem": ("read_only_root_filesystem", _bool, None),
    "security.allow-privilege-escalation": ("allow_privilege_escalation", _bool, None),
    "security.run-as-user": ("run_as_user", _run_as_user, None),
    "security.automount-service-account-token": ("automount_service_account_token", _bool, None),
    "security.service-account-name": ("service_account_name", _text, None),
    "security.drop-capabilities": ("drop_capabilities", _capabilities, None),
    "job.restart-policy": ("job_restart_policy", _one_of(RESTART_POLICIES), None),
    "engram.default-max-recursion-depth": (
        "engram_default_max_recursion_depth",
        _positive_int,
        None,
    ),
    "engram.default-grpc-port": ("engram_default_grpc_port", _positive_int, None),
    "engram.default-storage-timeout-seconds": (
        "engram_default_storage_timeout_seconds",
        _positive_int,
        None,
    ),
    "engram.default-termination-grace-period-seconds": (
        "engram_default_termination_grace_period_seconds",
        _positive_int,
        None,
    ),
    "engram.default-max-recv-msg-bytes": ("engram_default_max_recv_msg_bytes", _positive_int, None),
    "engram.default-max-send-msg-bytes": ("engram_default_max_send_msg_bytes", _positive_int, None),
    "engram.default-dial-timeout-seconds": (
        "engram_default_dial_timeout_seconds",
        _positive_int,
        None,
    ),
    "engram.default-channel-buffer-size": (
        "engram_default_channel_buffer_size",
        _positive_int,
        None,
    ),
    "engram.default-reconnect-max-retries": (
        "engram_default_reconnect_max_retries",
        _non_negative_int,
        None,
    ),
    "engram.default-reconnect-base-backoff-millis": (
        "engram_default_reconnect_base_backoff_millis",
        _positive_int,
        None,
    ),
    "engram.default-reconnect-max-backoff-seconds": (
        "engram_default_reconnect_max_backoff_seconds",
        _positive_int,
        None,
    ),
    "engram.default-hang-timeout-seconds": (
        "engram_default_hang_timeout_seconds",
        _positive_int,
        None,
    ),
    "engram.default-message-timeout-seconds": (
        "engram_default_message_timeout_seconds",
        _positive_int,
        None,
    ),
    "debug.enable-verbose-logging": ("verbose_logging", _bool, None),
}

# storyrun.queue.<name>.<suffix> -> QueueConfig field
QUEUE_FIELDS: dict[str, str] = {
    "concurrency": "concurrency",
    "default-priority": "default_priority",
    "priority-aging-seconds": "priority_aging_seconds",
}


def _queue_setting(key: str, text: str, queues: dict[str, QueueConfig]) -> None:
    """Apply one `storyrun.queue.<name>.<field>` key to `queues`; ValueError says why not."""
    name, dot, suffix = key.removeprefix(QUEUE_KEY_PREFIX).partition(".")
    name = normalize_queue_name(name)
    target = QUEUE_FIELDS.get(suffix.strip()) if dot else None
    if target is None:
        raise ValueError(f"unknown queue setting; expected {QUEUE_KEY_PREFIX}<queue>.<field>")
    if len(name) > 63 or not _DNS_LABEL.fullmatch(name):
        raise ValueError("queue name must be a DNS-1123 label")
    value = _non_negative_int32(text)
    queues[name] = replace(queues.get(name, _UNCONFIGURED_QUEUE), **{target: value})


def _check_requeue_delays(parsed: Mapping[str, Any], data: Mapping[str, str]) -> list[str]:
    """The reference refuses a base delay above the max delay when both are set (not 0)."""
    base_key, max_key = "controller.requeue-base-delay", "controller.requeue-max-delay"
    base, maximum = parsed.get(base_key, 0), parsed.get(max_key, 0)
    if base <= 0 or maximum <= 0 or base <= maximum:
        return []
    problem = f"{base_key}: {data[base_key]!r}: exceeds {max_key} {data[max_key]!r}"
    return [f"{problem}; using the defaults for both"]


def parse_operator_config(data: Mapping[str, str] | None) -> tuple[OperatorConfig, list[str]]:
    """The configuration from a ConfigMap's data, and one message per value that was refused."""
    data = data or {}
    parsed: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    queues = dict(DEFAULT_QUEUES)
    problems: list[str] = []
    for key in sorted(data):
        text = data[key]
        if key.startswith(QUEUE_KEY_PREFIX):
            try:
                _queue_setting(key, text, queues)
            except ValueError as error:
                problems.append(f"{key}: {text!r}: {error}; using the default")
            continue
        spec = KEYS.get(key)
        if spec is None:
            continue
        name, parse, zero_means = spec
        try:
            value = parse(text)
        except ValueError as error:
            problems.append(f"{key}: {text!r}: {error}; using the default")
            continue
        parsed[key] = value
        changes[name] = zero_means if zero_means is not None and value == 0 else value
    config = replace(_DEFAULTS, queues=MappingProxyType(queues), **changes)
    delay_problems = _check_requeue_delays(parsed, data)
    if delay_problems:
        config = replace(
            config,
            requeue_base_delay_seconds=_DEFAULTS.requeue_base_delay_seconds,
            requeue_max_delay_seconds=_DEFAULTS.requeue_max_delay_seconds,
        )
    return config, problems + delay_problems


__all__ = [
    "DEFAULT_QUEUES",
    "KEYS",
    "PULL_POLICIES",
    "QUEUE_FIELDS",
    "QUEUE_KEY_PREFIX",
    "RESTART_POLICIES",
    "OperatorConfig",
    "QueueConfig",
    "is_quantity",
    "normalize_queue_name",
    "parse_operator_config",
]
