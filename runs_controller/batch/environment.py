"""The environment contract of a batch Engram pod (controller-behaviour.md 4.4, env table).

Names, values and order are the reference's, so an SDK written for it reads the same settings.
JSON values are Go's `json.Marshal` bytes (sorted keys, HTML-safe escaping, float64 numbers)
and durations Go's `Duration.String()`. Batch mode only: no storage, TLS, transport or hybrid
variables (ruling 17); the secret variables come with the Job (`batch.job`).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runs_controller.api.k8s import EnvVar
from runs_controller.engine.durations import format_go_duration
from runs_controller.engine.hashing import canonical_json

if TYPE_CHECKING:
    from runs_controller.api.runs.steprun import StepRun
    from runs_controller.batch.execution import ResolvedExecution
    from runs_controller.engine.operator_config import OperatorConfig

TEMPLATE_CONTEXT_MAX_VALUE_BYTES = 64 * 1024
"""A value of BUBU_TEMPLATE_CONTEXT whose JSON is larger is replaced by a summary."""
STORAGE_REF = "$bubuStorageRef"
_STORAGE_REF_KEYS = (
    STORAGE_REF,
    "$bubuStoragePath",
    "$bubuStorageContentType",
    "$bubuStorageSchema",
    "$bubuStorageSchemaVersion",
)
_CONTAINS_KEY_MAX_DEPTH = 8
DEFAULT_RECONNECT_MAX_RETRIES = 10
"""The reference exports this when `engram.default-reconnect-max-retries` is 0."""

ENGRAM_NAME_ENV = "BUBU_ENGRAM_NAME"
SECRET_ENV_PREFIX = "BUBU_SECRET_"  # noqa: S105


@dataclass(frozen=True)
class StepContext:
    """What the environment says about the step, beyond the resolved configuration."""

    steprun: StepRun
    story_name: str
    story_version: str
    engram_name: str
    engram_version: str
    trigger_data: Any
    """The resolved step inputs (already rendered by the caller): BUBU_TRIGGER_DATA."""
    step_config: Any
    """BUBU_STEP_CONFIG (the same rendered inputs); None is written as `{}`."""
    template_context: Mapping[str, Any] | None
    """`{"inputs": ..., "steps": ...}` for SDK-side templates; None omits the variable."""
    started_at: datetime.datetime


def step_started_at(steprun: StepRun, now: datetime.datetime) -> datetime.datetime:
    """BUBU_STARTED_AT's instant: `status.startedAt`, else the creation time, else `now`."""
    if steprun.status is not None and steprun.status.started_at is not None:
        return steprun.status.started_at
    if steprun.metadata is not None and steprun.metadata.creation_timestamp is not None:
        return steprun.metadata.creation_timestamp
    return now


def format_rfc3339_nano(instant: datetime.datetime) -> str:
    """Go's `time.RFC3339Nano` of a UTC instant: trailing fraction zeros dropped, `Z`."""
    if instant.tzinfo is not None:
        instant = instant.astimezone(datetime.UTC)
    fraction = f"{instant.microsecond:06d}".rstrip("0")
    return instant.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def _json(value: Any) -> str:
    return canonical_json(value).decode("utf-8")


# ---- BUBU_TEMPLATE_CONTEXT -------------------------------------------------------------------


def _contains_key(value: Any, key: str, depth: int = 0) -> bool:
    if depth > _CONTAINS_KEY_MAX_DEPTH or value is None:
        return False
    if isinstance(value, Mapping):
        if key in value:
            return True
        return any(_contains_key(entry, key, depth + 1) for entry in value.values())
    if isinstance(value, list | tuple):
        return any(_contains_key(entry, key, depth + 1) for entry in value)
    return False


def _summary(kind: str, size: int, value: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "$bubuOmitted": True,
        "reason": "template_context_size_limit",
        "type": kind,
        "sizeBytes": size,
    }
    if kind == "map":
        summary["hasStorageRef"] = _contains_key(value, STORAGE_REF)
    return summary


def _container_size(value: Any, child_sizes: list[int]) -> int:
    """Bytes of a container's JSON from its members' sizes (no re-encoding)."""
    if not child_sizes:
        return 2
    keys = sum(len(canonical_json(key)) + 1 for key in value) if isinstance(value, dict) else 0
    return 2 + keys + sum(child_sizes) + len(child_sizes) - 1


def _shrink(root: Any, limit: int) -> Any:
    """The reference's pruning of one template-context value, bottom-up and iterative.

    A storage-ref map keeps only its `$bubuStorage*` keys; any other map or array whose JSON
    is over `limit` bytes becomes a summary; everything else is kept, its members pruned.
    Sizes are those of the value as given, before any of its members was pruned.
    """
    results: list[tuple[Any, int]] = []
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        value, expanded = stack.pop()
        is_map = isinstance(value, dict)
        if is_map and STORAGE_REF in value:
            trimmed = {key: value[key] for key in _STORAGE_REF_KEYS if key in value}
            results.append((trimmed, len(canonical_json(value))))
            continue
        if not (is_map or isinstance(value, list | tuple)):
            results.append((value, len(canonical_json(value))))
            continue
        members = list(value.values()) if is_map else list(value)
        if not expanded:
            stack.append((value, True))
            stack.extend((member, False) for member in reversed(members))
            continue
        done = results[len(results) - len(members) :]
        del results[len(results) - len(members) :]
        size = _container_size(value, [member_size for _, member_size in done])
        if size > limit:
            results.append((_summary("map" if is_map else "array", size, value), size))
        elif is_map:
            results.append((dict(zip(value, (pruned for pruned, _ in done), strict=True)), size))
        else:
            results.append(([pruned for pruned, _ in done], size))
    return results[0][0]


def template_context_json(context: Mapping[str, Any]) -> str:
    """BUBU_TEMPLATE_CONTEXT: each value of the context pruned (64 KiB rule), as Go JSON.

    The context object itself is never summarized, only its values (`inputs`, `steps`) and
    what they contain.
    """
    limit = TEMPLATE_CONTEXT_MAX_VALUE_BYTES
    return _json({key: _shrink(value, limit) for key, value in context.items()})


# ---- the variables -----------------------------------------------------------------------------


def _downward(name: str, field_path: str) -> EnvVar:
    return EnvVar(name=name, value_from={"fieldRef": {"fieldPath": field_path}})


def grpc_tuning_environment(config: OperatorConfig) -> list[EnvVar]:
    """The gRPC tuning variables every runtime gets (`engram.default-*`)."""
    retries = config.engram_default_reconnect_max_retries or DEFAULT_RECONNECT_MAX_RETRIES
    pairs = (
        ("BUBU_GRPC_MAX_RECV_BYTES", str(config.engram_default_max_recv_msg_bytes)),
        ("BUBU_GRPC_MAX_SEND_BYTES", str(config.engram_default_max_send_msg_bytes)),
        ("BUBU_GRPC_CLIENT_MAX_RECV_BYTES", str(config.engram_default_max_recv_msg_bytes)),
        ("BUBU_GRPC_CLIENT_MAX_SEND_BYTES", str(config.engram_default_max_send_msg_bytes)),
        ("BUBU_GRPC_DIAL_TIMEOUT", f"{config.engram_default_dial_timeout_seconds}s"),
        ("BUBU_GRPC_CHANNEL_BUFFER_SIZE", str(config.engram_default_channel_buffer_size)),
        ("BUBU_GRPC_RECONNECT_MAX_RETRIES", str(retries)),
        (
            "BUBU_GRPC_RECONNECT_BASE_BACKOFF",
            f"{config.engram_default_reconnect_base_backoff_millis}ms",
        ),
        (
            "BUBU_GRPC_RECONNECT_MAX_BACKOFF",
            f"{config.engram_default_reconnect_max_backoff_seconds}s",
        ),
        ("BUBU_GRPC_HANG_TIMEOUT", f"{config.engram_default_hang_timeout_seconds}s"),
        ("BUBU_GRPC_MESSAGE_TIMEOUT", f"{config.engram_default_message_timeout_seconds}s"),
        ("BUBU_GRPC_CHANNEL_SEND_TIMEOUT", f"{config.engram_default_message_timeout_seconds}s"),
    )
    return [EnvVar(name=name, value=value) for name, value in pairs]


def engram_environment(
    step: StepContext, resolved: ResolvedExecution, config: OperatorConfig
) -> list[EnvVar]:
    """The batch pod's environment, in the reference's order (secret variables excluded)."""
    steprun = step.steprun
    meta = steprun.metadata
    pairs = (
        ("BUBU_STORY_NAME", step.story_name),
        ("BUBU_STORY_VERSION", step.story_version.strip()),
        ("BUBU_STORYRUN_ID", steprun.spec.story_run_ref.name),
        ("BUBU_STEP_NAME", steprun.spec.step_id),
        ("BUBU_STEPRUN_NAME", (meta.name if meta else None) or ""),
        ("BUBU_STEPRUN_NAMESPACE", (meta.namespace if meta else None) or ""),
        ("BUBU_TRIGGER_DATA", _json(step.trigger_data)),
        ("BUBU_EXECUTION_MODE", "batch"),
        ("BUBU_HYBRID_BRIDGE", "false"),
        ("BUBU_GRPC_PORT", str(config.engram_default_grpc_port)),
        ("BUBU_MAX_INLINE_SIZE", str(resolved.max_inline_size)),
        ("BUBU_STORAGE_TIMEOUT", f"{resolved.storage_timeout_seconds}s"),
        ("BUBU_STEP_TIMEOUT", format_go_duration(resolved.step_timeout_ns)),
        ("BUBU_MAX_RECURSION_DEPTH", str(resolved.max_recursion_depth)),
        ("BUBU_DEBUG", "true" if resolved.debug else "false"),
    )
    env = [EnvVar(name=name, value=value) for name, value in pairs]
    env += [
        _downward("BUBU_POD_NAME", "metadata.name"),
        _downward("BUBU_POD_NAMESPACE", "metadata.namespace"),
        _downward("BUBU_SERVICE_ACCOUNT_NAME", "spec.serviceAccountName"),
    ]
    env += grpc_tuning_environment(config)
    env += [
        EnvVar(name=ENGRAM_NAME_ENV, value=step.engram_name),
        EnvVar(name="BUBU_ENGRAM_VERSION", value=step.engram_version.strip()),
        EnvVar(name="BUBU_STARTED_AT", value=format_rfc3339_nano(step.started_at)),
        EnvVar(
            name="BUBU_STEP_CONFIG",
            value="{}" if step.step_config is None else _json(step.step_config),
        ),
    ]
    if step.template_context is not None:
        env.append(
            EnvVar(name="BUBU_TEMPLATE_CONTEXT", value=template_context_json(step.template_context))
        )
    return env


__all__ = [
    "ENGRAM_NAME_ENV",
    "SECRET_ENV_PREFIX",
    "TEMPLATE_CONTEXT_MAX_VALUE_BYTES",
    "StepContext",
    "engram_environment",
    "format_rfc3339_nano",
    "grpc_tuning_environment",
    "step_started_at",
    "template_context_json",
]
