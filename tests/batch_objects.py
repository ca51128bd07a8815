"""Builders for the batch-step tests: the objects a StepRun's Job is resolved from, as dicts
first (so a test can set one field at one layer) and then decoded into the API Structs."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from runs_controller.api import codec
from runs_controller.api.bubustack.engram import Engram
from runs_controller.api.bubustack.story import Step, Story
from runs_controller.api.catalog.engramtemplate import EngramTemplate
from runs_controller.api.runs.steprun import StepRun
from runs_controller.batch.execution import ConfigFailure, ResolvedExecution, resolve_execution
from runs_controller.engine.operator_config import OperatorConfig, parse_operator_config

RUNNER_SA = "run-1-engram-runner"
T0 = datetime.datetime(2025, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)


def _child(parent: dict[str, Any], key: str) -> dict[str, Any]:
    child: dict[str, Any] = parent.setdefault(key, {})
    return child


@dataclass
class Layers:
    """One dict per layer; tests fill in what they need."""

    config: dict[str, str] = field(default_factory=dict)
    template_spec: dict[str, Any] = field(
        default_factory=lambda: {
            "version": "1.0.0",
            "supportedModes": ["job"],
            "image": "ghcr.io/acme/mailer:1.2.3",
        }
    )
    engram_spec: dict[str, Any] = field(default_factory=lambda: {"templateRef": {"name": "tpl"}})
    story_spec: dict[str, Any] | None = field(
        default_factory=lambda: {"version": " v2 ", "steps": [{"name": "notify"}]}
    )
    step: dict[str, Any] | None = field(default_factory=lambda: {"name": "notify"})
    steprun_spec: dict[str, Any] = field(
        default_factory=lambda: {"storyRunRef": {"name": "run-1"}, "stepId": "notify"}
    )
    steprun_name: str = "run-1-notify"

    @property
    def execution(self) -> dict[str, Any]:
        """The template's spec.execution (created on first use)."""
        return _child(self.template_spec, "execution")

    @property
    def overrides(self) -> dict[str, Any]:
        """The Engram's spec.overrides."""
        return _child(self.engram_spec, "overrides")

    @property
    def story_execution(self) -> dict[str, Any]:
        """The Story's spec.policy.execution."""
        return _child(self.story_policy, "execution")

    @property
    def story_policy(self) -> dict[str, Any]:
        """The Story's spec.policy."""
        assert self.story_spec is not None
        return _child(self.story_spec, "policy")

    @property
    def step_execution(self) -> dict[str, Any]:
        """The Story step's execution overrides."""
        assert self.step is not None
        return _child(self.step, "execution")

    @property
    def steprun_overrides(self) -> dict[str, Any]:
        return _child(self.steprun_spec, "executionOverrides")

    def operator_config(self) -> OperatorConfig:
        config, problems = parse_operator_config(self.config)
        assert problems == []
        return config

    def template(self) -> EngramTemplate:
        return codec.convert(
            {"metadata": {"name": "tpl"}, "spec": self.template_spec}, EngramTemplate
        )

    def engram(self) -> Engram:
        meta = {"name": "mailer", "namespace": "team-a"}
        return codec.convert({"metadata": meta, "spec": self.engram_spec}, Engram)

    def story(self) -> Story | None:
        if self.story_spec is None:
            return None
        meta = {"name": "welcome", "namespace": "team-a"}
        return codec.convert({"metadata": meta, "spec": self.story_spec}, Story)

    def story_step(self) -> Step | None:
        return None if self.step is None else codec.convert(self.step, Step)

    def steprun(self) -> StepRun:
        meta = {
            "name": self.steprun_name,
            "namespace": "team-a",
            "uid": "steprun-uid",
            "creationTimestamp": "2025-03-04T05:06:00Z",
        }
        return codec.convert({"metadata": meta, "spec": self.steprun_spec}, StepRun)

    def outcome(self) -> ResolvedExecution | ConfigFailure:
        return resolve_execution(
            config=self.operator_config(),
            template=self.template(),
            engram=self.engram(),
            story=self.story(),
            step=self.story_step(),
            steprun=self.steprun(),
            runner_service_account=RUNNER_SA,
        )

    def resolve(self) -> ResolvedExecution:
        resolved = self.outcome()
        assert isinstance(resolved, ResolvedExecution), resolved
        return resolved

    def failure(self) -> str:
        failure = self.outcome()
        assert isinstance(failure, ConfigFailure), failure
        return failure.message
