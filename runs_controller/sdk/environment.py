"""The environment contract of a batch step's pod (controller-behaviour.md §4.4), read once."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runs_controller.engine.durations import parse_go_duration

if TYPE_CHECKING:
    from collections.abc import Mapping


class EnvironmentError_(ValueError):
    """The pod's environment does not carry what the contract promises."""


def _json(environ: Mapping[str, str], name: str, default: Any) -> Any:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise EnvironmentError_(f"{name} is not valid JSON: {error}") from None


@dataclass(frozen=True)
class StepEnvironment:
    steprun_name: str
    namespace: str
    step_name: str
    storyrun: str
    story_name: str
    story_version: str
    engram_name: str
    engram_version: str
    pod_name: str
    inputs: dict[str, Any]
    """BUBU_TRIGGER_DATA: the step's inputs, rendered by the controller."""
    config: dict[str, Any]
    """BUBU_STEP_CONFIG."""
    template_context: dict[str, Any]
    """BUBU_TEMPLATE_CONTEXT: `{inputs, steps}` for templates the Engram evaluates itself."""
    timeout_seconds: float | None
    """BUBU_STEP_TIMEOUT; None when absent or zero."""
    debug: bool

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> StepEnvironment:
        env = os.environ if environ is None else environ
        name = env.get("BUBU_STEPRUN_NAME", "").strip()
        namespace = (
            env.get("BUBU_STEPRUN_NAMESPACE", "").strip()
            or env.get("BUBU_POD_NAMESPACE", "").strip()
        )
        if not name or not namespace:
            raise EnvironmentError_(
                "BUBU_STEPRUN_NAME and BUBU_STEPRUN_NAMESPACE are required: this process is not "
                "running as a StepRun's pod"
            )
        inputs = _json(env, "BUBU_TRIGGER_DATA", {})
        if not isinstance(inputs, dict):
            raise EnvironmentError_("BUBU_TRIGGER_DATA must be a JSON object")
        timeout_text = env.get("BUBU_STEP_TIMEOUT", "").strip()
        timeout: float | None = None
        if timeout_text:
            try:
                timeout = parse_go_duration(timeout_text) / 1e9 or None
            except ValueError:
                raise EnvironmentError_(
                    f"BUBU_STEP_TIMEOUT {timeout_text!r} is not a Go duration"
                ) from None
        config = _json(env, "BUBU_STEP_CONFIG", {})
        context = _json(env, "BUBU_TEMPLATE_CONTEXT", {})
        return cls(
            steprun_name=name,
            namespace=namespace,
            step_name=env.get("BUBU_STEP_NAME", ""),
            storyrun=env.get("BUBU_STORYRUN_ID", ""),
            story_name=env.get("BUBU_STORY_NAME", ""),
            story_version=env.get("BUBU_STORY_VERSION", ""),
            engram_name=env.get("BUBU_ENGRAM_NAME", ""),
            engram_version=env.get("BUBU_ENGRAM_VERSION", ""),
            pod_name=env.get("BUBU_POD_NAME", ""),
            inputs=inputs,
            config=config if isinstance(config, dict) else {},
            template_context=context if isinstance(context, dict) else {},
            timeout_seconds=timeout,
            debug=env.get("BUBU_DEBUG", "").strip().lower() == "true",
        )


__all__ = ["EnvironmentError_", "StepEnvironment"]
