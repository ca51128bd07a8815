"""The StepRun's Job: rendered inputs, the Job's shape, create-or-adopt and deletion.

The Job is named like the StepRun and controlled by it, so a create that finds the name taken
adopts the Job of an earlier attempt at the same StepRun (a restart, an event the cache missed)
instead of making a second one. Jobs we created are remembered until the cache shows them, so
a reconcile in between (a deletion, say) never misses one.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from runs_controller.api import codec
from runs_controller.api.k8s import Job
from runs_controller.batch import inputs
from runs_controller.batch.environment import StepContext, engram_environment, step_started_at
from runs_controller.batch.execution import ConfigFailure, resolve_execution
from runs_controller.batch.job import MissingRequiredSecretError, build_job
from runs_controller.batch.steps import story_step
from runs_controller.engine.naming import engram_runner_name
from runs_controller.kube.errors import AlreadyExists, ApiError, Conflict, Invalid, NotFound
from runs_controller.kube.resources import JOBS, STEP_RUNS
from runs_controller.runtime.children import controller_reference, delete_exactly
from runs_controller.runtime.offload import run_pure

if TYPE_CHECKING:
    import datetime

    from runs_controller.api.bubustack.engram import Engram
    from runs_controller.api.bubustack.story import Story
    from runs_controller.api.catalog.engramtemplate import EngramTemplate
    from runs_controller.api.runs.steprun import StepRun
    from runs_controller.api.runs.storyrun import StoryRun
    from runs_controller.engine.operator_config import OperatorConfig
    from runs_controller.runtime.builder import Kit
    from runs_controller.runtime.cache import CacheReader

log = structlog.get_logger("runs_controller.steprun")

REQUEST_ENTITY_TOO_LARGE = 413
MAX_JOB_BYTES = 1_572_864
"""etcd's default request limit (1.5 MiB): a larger Job cannot be stored. The apiserver does
not say so clearly (it answers 422 about selector labels), so the size is checked first."""


@dataclass(frozen=True)
class LaunchOutcome:
    """What an attempt to start the StepRun's Job came to: exactly one field says it."""

    job: Job | None = None
    existing: bool = False
    """The name was taken: `job` is the Job found under it."""
    failure: tuple[str, str] | None = None
    """(reason, message) of a deterministic failure: the StepRun fails."""
    event: str | None = None
    """The Warning event reason that goes with `failure`, when it has its own."""
    blocked: str | None = None
    """A template waits for an output that is not there yet."""
    skipped: tuple[str, ...] = ()
    """Settings of the created Job's layers that did not parse and were left out (4.5 "log and
    skip"): the reconciler says so in one Warning event."""


def _key(obj: Any) -> str:
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}"


def _uid(obj: Any) -> str | None:
    return obj.metadata.uid if obj.metadata is not None else None


class JobLauncher:
    def __init__(
        self,
        kit: Kit,
        jobs: CacheReader[Job],
        *,
        steps: CacheReader[StepRun],
        runs: CacheReader[StoryRun],
    ) -> None:
        self.kit = kit
        self.jobs = jobs
        self.steps = steps
        self.runs = runs
        self._created: dict[str, Job] = {}

    def job_of(self, step: StepRun) -> Job | None:
        """The StepRun's Job from the cache, or the one we just created if the cache has
        not seen it yet."""
        meta = step.metadata
        assert meta is not None  # noqa: S101
        key = _key(step)
        cached = self.jobs.get(meta.namespace or "", meta.name or "")
        created = self._created.get(key)
        if cached is None:
            return created
        if created is not None and _uid(cached) == _uid(created):
            del self._created[key]  # the cache has caught up
        return cached

    def forget(self, key: str) -> None:
        self._created.pop(key, None)

    async def delete(self, job: Job) -> None:
        """Delete `job` (this very one: UID precondition) and its pods in the background
        (ruling 28)."""
        self._created.pop(_key(job), None)
        with contextlib.suppress(Conflict):
            await delete_exactly(self.kit.client, JOBS, job)

    def _stepruns_of(self, run: StoryRun) -> list[StepRun]:
        uid = run.metadata.uid if run.metadata else None
        return [
            sr
            for sr in self.steps.owned_by(uid or "")
            if sr.metadata is not None
            and any(ref.uid == uid and ref.controller for ref in sr.metadata.owner_references or [])
        ]

    def _child_outputs(self, run: StoryRun) -> dict[str, Any]:
        """Outputs of the run's finished sub-StoryRuns (executeStory steps)."""
        outputs: dict[str, Any] = {}
        status = run.status
        namespace = run.metadata.namespace if run.metadata else ""
        for state in ((status.step_states or {}) if status else {}).values():
            name = state.sub_story_run_name
            if not name:
                continue
            child = self.runs.get(namespace or "", name)
            if child is not None and child.status is not None and child.status.output:
                outputs[name] = child.status.output
        return outputs

    async def launch(
        self,
        step: StepRun,
        run: StoryRun,
        story: Story | None,
        engram: Engram,
        template: EngramTemplate,
        *,
        config: OperatorConfig,
        now: datetime.datetime,
    ) -> LaunchOutcome:
        """Render the inputs, shape the Job and create it (or find the one already there)."""
        meta = step.metadata
        assert meta is not None  # noqa: S101
        step_def = story_step(story, step)
        values = inputs.variables(run, story, self._stepruns_of(run), self._child_outputs(run))
        render = functools.partial(
            inputs.render,
            step=step_def,
            template=template,
            deterministic=config.templating_deterministic,
            max_output_bytes=config.templating_max_output_bytes,
        )
        rendered = await run_pure(render, step.spec.input, values)
        if isinstance(rendered, inputs.InputFailure):
            return LaunchOutcome(failure=(rendered.reason, rendered.message))
        if isinstance(rendered, inputs.InputBlocked):
            return LaunchOutcome(blocked=rendered.message)
        run_name = run.metadata.name if run.metadata else ""
        resolved = resolve_execution(
            config=config,
            template=template,
            engram=engram,
            story=story,
            step=step_def,
            steprun=step,
            runner_service_account=engram_runner_name(run_name or ""),
        )
        if isinstance(resolved, ConfigFailure):
            return LaunchOutcome(failure=(inputs.REASON_INVALID_CONFIGURATION, resolved.message))
        if resolved.storage is not None:
            return LaunchOutcome(
                failure=(
                    inputs.REASON_UNSUPPORTED_FEATURE,
                    "offloaded storage (storage policy) is not supported by this controller",
                )
            )
        for warning in resolved.warnings:
            log.warning("execution_config_skipped", steprun=_key(step), problem=warning)
        context = StepContext(
            steprun=step,
            story_name=run.spec.story_ref.name,
            story_version=(story.spec.version if story is not None else None) or "",
            engram_name=(engram.metadata.name if engram.metadata else None) or "",
            engram_version=(step.spec.engram_ref.version if step.spec.engram_ref else None)
            or engram.spec.version
            or "",
            trigger_data=rendered.inputs,
            step_config=rendered.inputs,
            template_context=values,
            started_at=step_started_at(step, now),
        )
        env = engram_environment(context, resolved, config)
        try:
            desired = build_job(
                step,
                template=template,
                resolved=resolved,
                env=env,
                owner=controller_reference(step, STEP_RUNS),
            )
        except MissingRequiredSecretError as missing:
            return LaunchOutcome(failure=(inputs.REASON_INVALID_CONFIGURATION, str(missing)))
        return await self._create(step, desired, resolved.warnings)

    async def _create(
        self, step: StepRun, desired: Job, skipped: tuple[str, ...] = ()
    ) -> LaunchOutcome:
        meta = step.metadata
        assert meta is not None  # noqa: S101
        size = len(codec.encode(desired))
        if size > MAX_JOB_BYTES:
            return _too_large(
                f"the Job for StepRun '{meta.name}' is {size} bytes, more than the "
                f"{MAX_JOB_BYTES} an object can have: reduce the step's inputs"
            )
        client = self.kit.client
        try:
            created: Job = await client.create(JOBS, desired, meta.namespace, type=Job)
        except AlreadyExists as taken:
            try:
                existing: Job = await client.get(JOBS, meta.name or "", meta.namespace, type=Job)
            except NotFound:
                raise taken from None  # gone again in between: a transient error, decide anew
            return LaunchOutcome(job=existing, existing=True)
        except Invalid as error:
            return LaunchOutcome(
                failure=(
                    inputs.REASON_INVALID_CONFIGURATION,
                    f"the Job for StepRun '{meta.name}' was rejected by the apiserver: {error}",
                )
            )
        except ApiError as error:
            if error.code != REQUEST_ENTITY_TOO_LARGE:
                raise
            return _too_large(
                f"the Job for StepRun '{meta.name}' is too large for the apiserver "
                "(request entity too large): reduce the step's inputs"
            )
        self._created[_key(step)] = created
        return LaunchOutcome(job=created, skipped=skipped)


def _too_large(message: str) -> LaunchOutcome:
    return LaunchOutcome(failure=("InputTooLarge", message), event="JobCreateTooLarge")


__all__ = ["MAX_JOB_BYTES", "JobLauncher", "LaunchOutcome"]
