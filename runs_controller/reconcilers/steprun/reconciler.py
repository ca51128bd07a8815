"""The StepRun reconciler: an Engram step as a Kubernetes Job (controller-behaviour.md §4).

Order: deletion, finalizer and labels, terminal handling (checks after a success, retries of
SDK-reported failures, conditions that follow the phase), reference checks, the Engram and
its template, then the Job lifecycle of §4.3: wait for a due retry, create (or adopt) the Job,
follow its status. Every status write is one server-side apply of the controller's fields,
preconditioned on the copy it was computed from (rulings 19 and 29).
"""

from __future__ import annotations

import contextlib
import functools
import random
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from runs_controller.api.k8s import Pod
from runs_controller.api.runs.steprun import StepRun, StepRunStatus
from runs_controller.batch import completion, inputs
from runs_controller.batch.status import (
    PhaseChange,
    condition_message,
    condition_reason,
    conditions_follow_phase,
    observed,
    owned,
    schema_refs,
    with_phase,
)
from runs_controller.batch.steps import dependency_step, story_step
from runs_controller.dag.states import is_terminal
from runs_controller.engine import keys
from runs_controller.engine.finality import retry_due
from runs_controller.engine.references import cross_namespace_refusal
from runs_controller.engine.retry import jittered_requeue_delay
from runs_controller.kube.errors import Conflict, NotFound
from runs_controller.kube.resources import PODS, STEP_RUNS
from runs_controller.reconcilers.steprun.counters import EngramCounters
from runs_controller.reconcilers.steprun.jobs import JobLauncher, LaunchOutcome
from runs_controller.runtime.children import CHILD_CONFLICT, controller_of
from runs_controller.runtime.offload import run_pure
from runs_controller.runtime.reconciler import Request, Result
from runs_controller.runtime.written import WrittenObjects

if TYPE_CHECKING:
    import datetime

    from runs_controller.api.bubustack.engram import Engram
    from runs_controller.api.bubustack.story import Story
    from runs_controller.api.catalog.engramtemplate import EngramTemplate
    from runs_controller.api.k8s import Job
    from runs_controller.api.runs.storyrun import StoryRun
    from runs_controller.engine.operator_config import OperatorConfig
    from runs_controller.observability.steprun_metrics import StepRunMetrics
    from runs_controller.runtime.builder import Kit
    from runs_controller.runtime.cache import CacheReader

log = structlog.get_logger("runs_controller.steprun")

ACTION = "Reconcile"
EXECUTION_CONFIG_SKIPPED = "ExecutionConfigSkipped"
"""Warning event: settings that did not parse were left out of the Job (the reference only logs)."""
ALIVE_POD_PHASES = frozenset({"Pending", "Running", "Unknown"})
TLS_ANNOTATIONS = ("engram.bubustack.io/tls-secret", "bubustack.io/tls-secret")


def _now(kit: Kit) -> datetime.datetime:
    return kit.clock.now().replace(microsecond=0)


class StepRunReconciler:
    """Reconciles one StepRun per call."""

    def __init__(
        self,
        kit: Kit,
        *,
        steps: CacheReader[StepRun],
        jobs: CacheReader[Job],
        runs: CacheReader[StoryRun],
        stories: CacheReader[Story],
        engrams: CacheReader[Engram],
        templates: CacheReader[EngramTemplate],
        storyrun_steps: CacheReader[StepRun] | None = None,
        metrics: StepRunMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.kit = kit
        self.steps = steps
        self.jobs = jobs
        self.runs = runs
        self.stories = stories
        self.engrams = engrams
        self.templates = templates
        self.metrics = metrics
        self.rng = rng or random.Random()  # noqa: S311 - spreading retries, not security
        self._written: WrittenObjects[StepRun] = WrittenObjects()
        self.launcher = JobLauncher(kit, jobs, steps=storyrun_steps or steps, runs=runs)
        self.counters = EngramCounters(kit.client, engrams)

    # -- helpers ----------------------------------------------------------------------------

    def _event(self, step: StepRun, type_: str, reason: str, note: str) -> None:
        recorder = self.kit.recorder
        if recorder is not None:
            recorder.record(step, type_, reason, ACTION, note, resource=STEP_RUNS)  # type: ignore[arg-type]

    def _waiting(self, config: OperatorConfig) -> Result:
        delay = jittered_requeue_delay(
            config.requeue_base_delay_seconds, config.requeue_max_delay_seconds, rng=self.rng
        )
        return Result(requeue_after=delay)

    async def _apply(self, step: StepRun, status: StepRunStatus) -> StepRun | None:
        """One preconditioned apply of the controller's fields; the written StepRun, or None
        when nothing would change."""
        written = await self.kit.status.apply(STEP_RUNS, step, owned(status), precondition=True)
        if written is None:
            return None
        self._written.remember(written)
        before = observed(step)
        if is_terminal(status.phase) and not (
            is_terminal(before.phase) and conditions_follow_phase(before)
        ):
            await self._finished(step, status)
        return written

    async def _finished(self, step: StepRun, status: StepRunStatus) -> None:
        """First time the controller records this terminal phase: metrics and counters."""
        meta = step.metadata
        ref = step.spec.engram_ref
        namespace = meta.namespace or "" if meta else ""
        engram = ref.name if ref is not None else ""
        if self.metrics is not None:
            seconds = 0.0
            if status.started_at is not None and status.finished_at is not None:
                seconds = (status.finished_at - status.started_at).total_seconds()
            self.metrics.steprun_finished(namespace, engram, status.phase or "", seconds)
        if ref is not None:
            await self.counters.count(
                ref.namespace or namespace,
                ref.name,
                failed=status.phase == "Failed",
                now=_now(self.kit),
            )

    async def _set_phase(self, step: StepRun, change: PhaseChange, now: datetime.datetime) -> None:
        await self._apply(step, with_phase(step, change, now=now))

    async def _fail(
        self, step: StepRun, reason: str, message: str, now: datetime.datetime
    ) -> Result:
        """A deterministic failure (ruling 10): terminal, exit class `terminal`, no retry."""
        status = completion.failed_status(step, completion.CheckFailure(reason, message), now=now)
        await self._apply(step, status)
        return Result()

    async def _block(
        self, step: StepRun, reason: str, message: str, now: datetime.datetime
    ) -> Result:
        """Waiting for something to appear: Blocked, a Warning event, no requeue (a watch
        wakes the StepRun, ruling 10)."""
        status = observed(step)
        if status.phase != "Blocked" or condition_message(status) != message:
            self._event(step, "Warning", reason, message)
        await self._set_phase(step, PhaseChange("Blocked", reason, message), now)
        return Result()

    async def _patch_metadata(self, step: StepRun, metadata: dict[str, Any]) -> StepRun:
        meta = step.metadata
        assert meta is not None  # noqa: S101 - cached objects have metadata
        patch = {"metadata": {"resourceVersion": meta.resource_version, **metadata}}
        written: StepRun = await self.kit.client.merge_patch(
            STEP_RUNS, meta.name or "", patch, meta.namespace, type=StepRun
        )
        return self._written.remember(written)

    # -- the reconcile ----------------------------------------------------------------------

    async def reconcile(self, request: Request) -> Result:
        try:
            return await self._reconcile(request)
        except Conflict:
            # The StepRun (or the Engram) changed since the copy we decided on: decide again
            # on the fresh one, never write from the old one (ruling 29).
            return Result(requeue=True)

    async def _reconcile(self, request: Request) -> Result:
        cached = self.steps.get(request.namespace, request.name)
        if cached is None or cached.metadata is None:
            self._written.forget(request.key)
            self.launcher.forget(request.key)
            return Result()
        step = self._written.freshest(cached)
        meta = step.metadata
        assert meta is not None  # noqa: S101 - checked above
        if meta.deletion_timestamp is not None:
            return await self._finalize_deletion(step)
        config = self.kit.config.current()
        now = _now(self.kit)
        run = self.runs.get(
            step.spec.story_run_ref.namespace or meta.namespace or "",
            step.spec.story_run_ref.name,
        )
        step = await self._ensure_metadata(step, run)
        if is_terminal(observed(step).phase):
            return await self._terminal(step, run, config, now)
        return await self._active(step, run, config, now)

    async def _ensure_metadata(self, step: StepRun, run: StoryRun | None) -> StepRun:
        """Finalizer and `story-name` label in one merge patch, only when missing (StepRuns
        the StoryRun controller creates are born with both)."""
        meta = step.metadata
        assert meta is not None  # noqa: S101
        patch: dict[str, Any] = {}
        finalizers = list(meta.finalizers or [])
        if keys.FINALIZER_STEPRUN not in finalizers:
            patch["finalizers"] = [*finalizers, keys.FINALIZER_STEPRUN]
        story_name = run.spec.story_ref.name if run is not None else None
        if story_name and (meta.labels or {}).get(keys.LABEL_STORY_NAME) != story_name:
            patch["labels"] = {keys.LABEL_STORY_NAME: story_name}
        if not patch:
            return step
        return await self._patch_metadata(step, patch)

    # -- terminal StepRuns ------------------------------------------------------------------

    async def _terminal(
        self, step: StepRun, run: StoryRun | None, config: OperatorConfig, now: datetime.datetime
    ) -> Result:
        status = observed(step)
        job = self.launcher.job_of(step)
        if retry_due(step, config.max_retries):
            # An SDK-reported failure with a retryable class and budget left (ruling 6).
            message = (
                status.last_failure_msg or condition_message(status) or (completion.FAILED_MESSAGE)
            )
            return await self._schedule_retry(
                step,
                job,
                exit_class=status.exit_class or "unknown",
                exit_code=status.exit_code,
                message=message,
                now=now,
            )
        if conditions_follow_phase(status):
            return await self._fill_exit_code(step, job, now)
        if status.phase == "Succeeded":
            return await self._confirm_success(step, run, config, now, by_controller=False)
        # Another terminal phase written by someone else: the conditions follow it (ruling 30).
        reason = condition_reason(status) or None
        message = status.last_failure_msg or condition_message(status)
        desired = with_phase(step, PhaseChange(status.phase or "Failed", reason, message), now=now)
        if job is not None and _job_failed(job) and not status.exit_code:
            desired = await self._with_pod_exit_code(step, desired)
        await self._apply(step, desired)
        return Result()

    async def _fill_exit_code(
        self, step: StepRun, job: Job | None, now: datetime.datetime
    ) -> Result:
        """The SDK wrote a failure without an exit code and the Job failed: take the pod's."""
        status = observed(step)
        if job is None or not _job_failed(job) or status.exit_code or status.phase == "Succeeded":
            return Result()
        desired = await self._with_pod_exit_code(step, status)
        if desired.exit_code:
            await self._apply(step, desired)
        return Result()

    async def _with_pod_exit_code(self, step: StepRun, status: StepRunStatus) -> StepRunStatus:
        code = completion.pod_exit_code(await self._pods(step))
        if code == 0:
            return status
        return msgspec.structs.replace(
            status,
            exit_code=code,
            exit_class=status.exit_class or completion.exit_class_of(step, code),
        )

    async def _confirm_success(
        self,
        step: StepRun,
        run: StoryRun | None,
        config: OperatorConfig,
        now: datetime.datetime,
        *,
        by_controller: bool,
    ) -> Result:
        """The checks after a success, whoever reported it (ruling 5)."""
        template = self._template_of(step)
        story = self._story_of(run)
        failure = None
        if template is not None:
            check = functools.partial(
                completion.success_failure, deterministic=config.templating_deterministic
            )
            failure = await run_pure(check, step, template, story_step(story, step))
        if failure is not None:
            self._event(step, "Warning", failure.reason, failure.message)
            return await self._fail(step, failure.reason, failure.message, now)
        desired = completion.succeeded_status(step, now=now, by_controller=by_controller)
        written = await self._apply(step, desired)
        if written is not None:
            if by_controller:
                self._event(
                    step,
                    "Normal",
                    "JobStatusPatched",
                    "StepRun job succeeded; controller patched status to Succeeded",
                )
                self._event(step, "Normal", "JobCompleted", "Job completed successfully")
            missing = completion.missing_output_keys(step, template) if template else ()
            if missing:
                self._event(
                    step,
                    "Warning",
                    "OutputKeyMismatch",
                    f"output lacks declared keys: {', '.join(missing)}",
                )
        return Result()

    # -- active StepRuns --------------------------------------------------------------------

    async def _active(
        self, step: StepRun, run: StoryRun | None, config: OperatorConfig, now: datetime.datetime
    ) -> Result:
        meta = step.metadata
        assert meta is not None  # noqa: S101
        namespace = meta.namespace or ""
        run_namespace = step.spec.story_run_ref.namespace or namespace
        refusal = cross_namespace_refusal(
            config.cross_namespace_policy, namespace, run_namespace, "StoryRun"
        )
        if refusal is not None:
            self._event(step, "Warning", "StoryReferenceInvalid", refusal)
            return await self._fail(step, "StoryReferenceInvalid", refusal, now)
        ref = step.spec.engram_ref
        if ref is None:
            message = f"StepRun '{meta.name}' has no engramRef: it cannot run as a Job"
            return await self._fail(step, inputs.REASON_INVALID_CONFIGURATION, message, now)
        refusal = cross_namespace_refusal(
            config.cross_namespace_policy, namespace, ref.namespace or namespace, "Engram"
        )
        if refusal is not None:
            self._event(step, "Warning", "EngramReferenceInvalid", refusal)
            return await self._fail(step, "EngramReferenceInvalid", refusal, now)
        if run is None:
            return self._waiting(config)  # the parent is not in the cache yet (or is going)

        engram = self.engrams.get(ref.namespace or namespace, ref.name)
        if engram is None:
            return await self._block(
                step, "ReferenceNotFound", f"Engram '{ref.name}' not found", now
            )
        mode = engram.spec.mode or "job"
        if mode != "job":
            message = (
                f"Engram '{ref.name}' runs in mode '{mode}': deployment and statefulset "
                "engrams are not supported by this controller"
            )
            return await self._block(step, "UnsupportedFeature", message, now)
        annotations = (engram.metadata.annotations if engram.metadata else None) or {}
        tls = next((key for key in TLS_ANNOTATIONS if annotations.get(key)), None)
        if tls is not None:
            message = (
                f"Engram '{ref.name}' asks for a TLS secret ({tls}) for hybrid transports, "
                "which this controller does not support"
            )
            return await self._block(step, "UnsupportedFeature", message, now)
        template_name = engram.spec.template_ref.name
        template = self.templates.get("", template_name)
        if template is None:
            return await self._block(
                step, "TemplateNotFound", f"EngramTemplate '{template_name}' not found", now
            )
        input_ref, output_ref = schema_refs(step, template, engram.spec.version)
        base = msgspec.structs.replace(
            observed(step), input_schema_ref=input_ref, output_schema_ref=output_ref
        )
        return await self._lifecycle(step, run, engram, template, base, config, now)

    async def _lifecycle(
        self,
        step: StepRun,
        run: StoryRun,
        engram: Engram,
        template: EngramTemplate,
        base: StepRunStatus,
        config: OperatorConfig,
        now: datetime.datetime,
    ) -> Result:
        """§4.3: a due retry, the Job's creation or adoption, its status."""
        retry_at = base.next_retry_at
        if retry_at is not None and retry_at > now:
            if base.phase != "Pending":
                await self._apply(
                    step,
                    with_phase(
                        step,
                        PhaseChange("Pending", "RetryScheduled", condition_message(base)),
                        now=now,
                        base=base,
                    ),
                )
            return Result(requeue_after=max(0.01, (retry_at - now).total_seconds()))
        retry_is_due = retry_at is not None
        job = self.launcher.job_of(step)
        if job is not None:
            return await self._with_job(step, run, job, base, config, now, retry_is_due)
        # A Job existed before: never start a second while a pod of the first is alive.
        if (retry_is_due or base.phase == "Running") and any(
            _alive(pod) for pod in await self._pods(step)
        ):
            return self._waiting(config)
        story = self._story_of(run)
        outcome = await self.launcher.launch(
            step, run, story, engram, template, config=config, now=now
        )
        return await self._launched(step, run, outcome, base, config, now, retry_is_due)

    async def _launched(
        self,
        step: StepRun,
        run: StoryRun,
        outcome: LaunchOutcome,
        base: StepRunStatus,
        config: OperatorConfig,
        now: datetime.datetime,
        retry_is_due: bool,
    ) -> Result:
        if outcome.failure is not None:
            reason, message = outcome.failure
            if outcome.event is not None:
                self._event(step, "Warning", outcome.event, message)
            status = completion.failed_status(
                step, completion.CheckFailure(reason, message), now=now
            )
            await self._apply(
                step,
                msgspec.structs.replace(
                    status,
                    input_schema_ref=base.input_schema_ref,
                    output_schema_ref=base.output_schema_ref,
                ),
            )
            return Result()
        if outcome.blocked is not None:
            if inputs.dependencies_finished(run, self._story_of(run), dependency_step(step)):
                message = f"Input resolution failed after dependencies completed: {outcome.blocked}"
                return await self._fail(step, inputs.REASON_EXPRESSION_FAILED, message, now)
            self._event(step, "Normal", "JobTemplateBlocked", outcome.blocked)
            if base.phase not in ("Pending",):
                await self._apply(
                    step,
                    with_phase(
                        step,
                        PhaseChange("Pending", "Pending", "Waiting for step inputs"),
                        now=now,
                        base=base,
                    ),
                )
            return self._waiting(config)
        job = outcome.job
        assert job is not None  # noqa: S101 - neither failed nor blocked
        if outcome.existing:
            # The name was taken: ours from before (a restart, a lost cache event): adopt it.
            return await self._with_job(step, run, job, base, config, now, retry_is_due)
        if outcome.skipped:
            self._event(step, "Warning", EXECUTION_CONFIG_SKIPPED, "; ".join(outcome.skipped))
        if base.phase == "Running" and not retry_is_due:
            await self._record_restart(step, now)
        running = with_phase(
            step, PhaseChange("Running", "Scheduled", "Job created for StepRun"), now=now, base=base
        )
        await self._apply(step, msgspec.structs.replace(running, next_retry_at=None))
        return Result()

    async def _record_restart(self, step: StepRun, now: datetime.datetime) -> None:
        """The Job of a running StepRun vanished and a new one was created."""
        meta = step.metadata
        assert meta is not None  # noqa: S101
        annotations = meta.annotations or {}
        try:
            count = int(annotations.get(keys.ANNOTATION_RESTART_COUNT, "0")) + 1
        except ValueError:
            count = 1
        self._event(
            step,
            "Warning",
            "JobRestarted",
            f"Restarting StepRun after Job went missing (restart {count})",
        )
        with contextlib.suppress(NotFound):
            await self._patch_metadata(
                step,
                {
                    "annotations": {
                        keys.ANNOTATION_RESTART_COUNT: str(count),
                        keys.ANNOTATION_RESTARTED_AT: now.isoformat().replace("+00:00", "Z"),
                    }
                },
            )

    async def _with_job(
        self,
        step: StepRun,
        run: StoryRun,
        job: Job,
        base: StepRunStatus,
        config: OperatorConfig,
        now: datetime.datetime,
        retry_is_due: bool,
    ) -> Result:
        meta = step.metadata
        assert meta is not None  # noqa: S101
        job_meta = job.metadata
        if job_meta is not None and job_meta.deletion_timestamp is not None:
            return Result()  # its deletion event wakes the StepRun
        owner = controller_of(job)
        if owner is None or owner.kind != "StepRun":
            message = (
                f"Job '{meta.name}' exists and is not controlled by a StepRun: "
                "it cannot be adopted (delete it to let the step run)"
            )
            self._event(step, "Warning", CHILD_CONFLICT, message)
            return await self._fail(step, CHILD_CONFLICT, message, now)
        if owner.uid != meta.uid:
            # A Job of an earlier StepRun of the same name: its garbage collection frees the
            # name; meanwhile nothing of it is ours to follow.
            return self._waiting(config)
        if retry_is_due:
            await self.launcher.delete(job)
            return Result()
        if _job_succeeded(job):
            return await self._confirm_success(step, run, config, now, by_controller=True)
        if _job_failed(job):
            return await self._job_failed(step, job, config, now)
        if base.phase != "Running":
            message = (
                "Job exists; resuming StepRun monitoring"
                if base.phase == "Pending"
                else "Job created for StepRun"
            )
            reason = "Running" if base.phase == "Pending" else "Scheduled"
            running = with_phase(step, PhaseChange("Running", reason, message), now=now, base=base)
            await self._apply(step, msgspec.structs.replace(running, next_retry_at=None))
        else:
            await self._apply(step, base)  # schema refs, once
        return Result()

    async def _job_failed(
        self, step: StepRun, job: Job, config: OperatorConfig, now: datetime.datetime
    ) -> Result:
        """§4.7 "Job failed" for a StepRun the SDK did not finish (crash, OOM, deadline)."""
        code = completion.pod_exit_code(await self._pods(step))
        exit_class = completion.exit_class_of(step, code)
        status = observed(step)
        message = status.last_failure_msg or (
            completion.TIMEOUT_MESSAGE
            if code == completion.TIMEOUT_EXIT_CODE
            else completion.FAILED_MESSAGE
        )
        plan = completion.plan_retry(
            step,
            exit_class=exit_class,
            exit_code=code,
            failure_message=message,
            default_max_retries=config.max_retries,
            now=now,
            rng=self.rng,
        )
        if plan is not None:
            return await self._scheduled(step, job, plan)
        fallback = completion.fallback_failure(step, exit_code=code, now=now)
        written = await self._apply(step, fallback)
        if written is not None:
            self._event(
                step,
                "Warning",
                "JobStatusFallback",
                f"StepRun job failed (exit={code}); controller patched status to {fallback.phase}",
            )
        return Result()

    async def _schedule_retry(
        self,
        step: StepRun,
        job: Job | None,
        *,
        exit_class: str,
        exit_code: int | None,
        message: str,
        now: datetime.datetime,
    ) -> Result:
        plan = completion.plan_retry(
            step,
            exit_class=exit_class,
            exit_code=exit_code,
            failure_message=message,
            default_max_retries=self.kit.config.current().max_retries,
            now=now,
            rng=self.rng,
        )
        if plan is None:
            return Result()
        return await self._scheduled(step, job, plan)

    async def _scheduled(
        self, step: StepRun, job: Job | None, plan: completion.RetryPlan
    ) -> Result:
        written = await self._apply(step, plan.status)
        if written is not None:
            meta = step.metadata
            ref = step.spec.engram_ref
            if self.metrics is not None and meta is not None:
                self.metrics.retry_scheduled(
                    meta.namespace or "", ref.name if ref else "", plan.exit_class
                )
            self._event(
                step,
                "Warning",
                "JobRetryScheduled",
                f"Scheduled retry {plan.attempt}/{plan.max_retries} in "
                f"{completion.format_delay(plan.delay_ns)}",
            )
        if job is not None:
            await self.launcher.delete(job)
        return Result(requeue_after=max(0.01, plan.delay_seconds))

    # -- lookups ----------------------------------------------------------------------------

    def _story_of(self, run: StoryRun | None) -> Story | None:
        if run is None or run.metadata is None:
            return None
        ref = run.spec.story_ref
        return self.stories.get(ref.namespace or run.metadata.namespace or "", ref.name)

    def _template_of(self, step: StepRun) -> EngramTemplate | None:
        """The EngramTemplate of the StepRun's Engram, from the caches."""
        ref = step.spec.engram_ref
        meta = step.metadata
        if ref is None or meta is None:
            return None
        engram = self.engrams.get(ref.namespace or meta.namespace or "", ref.name)
        if engram is None:
            return None
        return self.templates.get("", engram.spec.template_ref.name)

    async def _pods(self, step: StepRun) -> list[Pod]:
        """The pods of the StepRun's Job: a fresh read, only on the rare paths that need it
        (a failed Job's exit code, a vanished Job's leftovers)."""
        meta = step.metadata
        assert meta is not None  # noqa: S101
        pods = await self.kit.client.list(
            PODS, meta.namespace, type=Pod, label_selector=f"job-name={meta.name}"
        )
        return list(pods.items)

    # -- deletion ---------------------------------------------------------------------------

    async def _finalize_deletion(self, step: StepRun) -> Result:
        """§4.10: the Job goes first (background propagation, ruling 28), then the finalizer."""
        meta = step.metadata
        assert meta is not None  # noqa: S101
        if keys.FINALIZER_STEPRUN not in (meta.finalizers or []):
            return Result()
        job = self.launcher.job_of(step)
        owner = controller_of(job) if job is not None else None
        if job is not None and owner is not None and owner.uid == meta.uid:
            if job.metadata is None or job.metadata.deletion_timestamp is None:
                await self.launcher.delete(job)
            return Result()  # the Job's deletion event wakes the StepRun
        finalizers = [f for f in meta.finalizers or [] if f != keys.FINALIZER_STEPRUN]
        with contextlib.suppress(NotFound):
            await self._patch_metadata(step, {"finalizers": finalizers})
        return Result()


def _job_succeeded(job: Job) -> bool:
    return job.status is not None and (job.status.succeeded or 0) > 0


def _job_failed(job: Job) -> bool:
    return job.status is not None and (job.status.failed or 0) > 0


def _alive(pod: Pod) -> bool:
    return pod.status is not None and (pod.status.phase or "Pending") in ALIVE_POD_PHASES


__all__ = ["StepRunReconciler"]
