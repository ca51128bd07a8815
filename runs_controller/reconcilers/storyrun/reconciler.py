"""The StoryRun reconciler: thin glue between the cache, one pure DAG pass and the writes.

Order (controller-behaviour.md §2.2 with rulings 1, 2, 8-11, 21-24): deletion, input size,
reference policy, finalizer and labels, redrive, terminal handling, cancel, the Story, the graph,
inputs, then one DAG pass whose decisions are written: children created, one status apply.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import structlog

from runs_controller.api.codec import encode
from runs_controller.api.runs.storyrun import StoryRun, StoryRunStatus
from runs_controller.dag import launch as launching
from runs_controller.dag.graph import build_graph, validate_graph
from runs_controller.dag.limits import (
    higher_priority_waiting,
    priority_from_labels,
    queue_labels,
    run_demand,
    scheduling_decision,
)
from runs_controller.dag.run_pass import PassInput, PassResult, Slots, run_pass
from runs_controller.dag.states import all_steps, counters, is_terminal
from runs_controller.dag.states import with_phase as step_with_phase
from runs_controller.dag.timers import encode_timers
from runs_controller.engine import keys
from runs_controller.engine.naming import safe_label_value
from runs_controller.engine.nesting import MAX_INPUTS_DEPTH, deeper_than
from runs_controller.engine.references import cross_namespace_refusal
from runs_controller.engine.schemas import (
    SchemaError,
    apply_defaults,
    inputs_failure_message,
    validate_document,
)
from runs_controller.engine.triggers import trigger_token_refusal
from runs_controller.kube.errors import NotFound
from runs_controller.kube.resources import STEP_RUNS, STORY_RUNS
from runs_controller.reconcilers.indexes import QUEUE_PRIORITY_INDEX
from runs_controller.reconcilers.storyrun import cleanup, rbac
from runs_controller.reconcilers.storyrun.dependents import Dependents
from runs_controller.reconcilers.storyrun.slots import SlotKeeper
from runs_controller.reconcilers.storyrun.transitions import (
    PhaseChange,
    observed_status,
    owned,
    schema_refs,
    with_phase,
    with_progress,
    with_running_duration,
)
from runs_controller.runtime.children import ChildConflict
from runs_controller.runtime.offload import run_pure
from runs_controller.runtime.reconciler import Request, Result
from runs_controller.runtime.store import key_of
from runs_controller.runtime.written import WrittenObjects

if TYPE_CHECKING:
    import datetime
    from collections.abc import Mapping, Sequence

    from runs_controller.api.bubustack.engram import Engram
    from runs_controller.api.bubustack.story import Step, Story
    from runs_controller.api.catalog.engramtemplate import EngramTemplate
    from runs_controller.api.runs.steprun import StepRun
    from runs_controller.engine.operator_config import OperatorConfig, QueueConfig
    from runs_controller.observability.storyrun_metrics import StoryRunMetrics
    from runs_controller.runtime.builder import Kit
    from runs_controller.runtime.cache import CacheReader

log = structlog.get_logger("runs_controller.storyrun")

ACTION = "Reconcile"
CREATE_CONCURRENCY = 8
"""StepRun creates of one pass in flight at once (a fan-out's steps are independent): the
number of round trips a wide pass costs, not the apiserver's load, which the workers bound."""


def _now(kit: Kit) -> datetime.datetime:
    return kit.clock.now().replace(microsecond=0)


def _name(obj: Any) -> str:
    return str(obj.metadata.name or "") if obj.metadata is not None else ""


def _inputs_refusal(run: StoryRun, config: OperatorConfig) -> str | None:
    """Why the run's inputs cannot be used at all: over the inline size limit (contract 2.2 step 2),
    or nested deeper than the controller's walks can follow (`engine.nesting`)."""
    inputs = run.spec.inputs
    if inputs is None:
        return None
    size = len(encode(inputs))
    if size > config.max_inline_inputs_size:
        return f"spec.inputs size {size} bytes exceeds maximum of {config.max_inline_inputs_size}"
    if deeper_than(inputs, MAX_INPUTS_DEPTH):
        return f"spec.inputs nesting exceeds maximum depth of {MAX_INPUTS_DEPTH}"
    return None


class StoryRunReconciler:
    """Reconciles one StoryRun per call; every decision comes from `dag.run_pass`."""

    def __init__(
        self,
        kit: Kit,
        *,
        runs: CacheReader[StoryRun],
        stepruns: CacheReader[StepRun],
        stories: CacheReader[Story],
        engrams: CacheReader[Engram],
        templates: CacheReader[EngramTemplate],
        metrics: StoryRunMetrics | None = None,
    ) -> None:
        self.kit = kit
        self.metrics = metrics
        self.runs = runs
        self.stepruns = stepruns
        self.stories = stories
        self.engrams = engrams
        self.templates = templates
        self.dependents = Dependents(stepruns, runs)
        self._ended: set[str] = set()
        """Runs this reconcile moved to a terminal phase."""
        self._written: WrittenObjects[StoryRun] = WrittenObjects()
        """Our last write of each run, until the cache shows it (read-your-writes)."""
        self.slots = SlotKeeper(stepruns, lambda: self.kit.config.current().max_retries)

    # -- helpers ----------------------------------------------------------------------------

    def _event(self, run: StoryRun, type_: str, reason: str, note: str) -> None:
        recorder = self.kit.recorder
        if recorder is not None:
            recorder.record(run, type_, reason, ACTION, note, resource=STORY_RUNS)  # type: ignore[arg-type]

    def _remember(self, run: StoryRun) -> StoryRun:
        return self._written.remember(run)

    async def _apply(self, run: StoryRun, status: StoryRunStatus) -> StoryRun:
        written = await self.kit.status.apply(STORY_RUNS, run, owned(status))
        if written is None:
            return run
        before = run.status.phase if run.status else None
        if is_terminal(status.phase) and not is_terminal(before):
            self._finished(run, status)
            meta = run.metadata
            if meta is not None:
                self._ended.add(f"{meta.namespace}/{meta.name}")
        return self._remember(written)

    def _finished(self, run: StoryRun, status: StoryRunStatus) -> None:
        if self.metrics is None or run.metadata is None:
            return
        duration = 0.0
        if status.started_at is not None and status.finished_at is not None:
            duration = (status.finished_at - status.started_at).total_seconds()
        self.metrics.run_finished(
            run.metadata.namespace or "", run.spec.story_ref.name, status.phase or "", duration
        )

    async def _set_phase(
        self, run: StoryRun, change: PhaseChange, now: datetime.datetime
    ) -> StoryRun:
        return await self._apply(run, with_phase(run, change, now=now))

    async def _patch_metadata(self, run: StoryRun, metadata: Mapping[str, Any]) -> StoryRun:
        meta = run.metadata
        assert meta is not None  # noqa: S101 - cached objects have metadata
        patch = {"metadata": {"resourceVersion": meta.resource_version, **metadata}}
        result: StoryRun = await self.kit.client.merge_patch(
            STORY_RUNS, meta.name or "", patch, meta.namespace, type=StoryRun
        )
        return self._remember(result)

    # -- the reconcile ----------------------------------------------------------------------

    async def reconcile(self, request: Request) -> Result:
        result = await self._reconcile(request)
        if request.key in self._ended:
            # Our own status writes do not wake the run: its cleanup (child TTL, retention)
            # is scheduled by the next reconcile, now.
            self._ended.discard(request.key)
            return Result(requeue=True)
        return result

    async def _reconcile(self, request: Request) -> Result:
        cached = self.runs.get(request.namespace, request.name)
        if cached is None or cached.metadata is None:
            self._written.forget(request.key)
            return Result()
        run = self._written.freshest(cached)
        assert run.metadata is not None  # noqa: S101 - checked above
        now = _now(self.kit)
        config = self.kit.config.current()
        meta = run.metadata
        if meta.deletion_timestamp is not None:
            return await self._finalize_deletion(run)
        status = observed_status(run)

        message = _inputs_refusal(run, config) if not is_terminal(status.phase) else None
        if message is not None:
            await self._set_phase(
                run,
                PhaseChange(
                    "Failed", "InputTooLarge", message, error=_error("InputTooLarge", message)
                ),
                now,
            )
            return Result()

        refused = trigger_token_refusal(run) if not is_terminal(status.phase) else None
        if refused is not None:
            # Ruling 15: what the reference's admission webhook checked for trigger tokens.
            await self._set_phase(
                run,
                PhaseChange(
                    "Failed", "ValidationFailed", refused, error=_error("ValidationFailed", refused)
                ),
                now,
            )
            return Result()

        story_namespace = run.spec.story_ref.namespace or meta.namespace or ""
        if story_namespace != meta.namespace and not is_terminal(status.phase):
            refusal = cross_namespace_refusal(
                config.cross_namespace_policy, meta.namespace or "", story_namespace, "Story"
            )
            if refusal is not None:
                self._event(run, "Warning", "StoryReferenceInvalid", refusal)
                await self._set_phase(
                    run,
                    PhaseChange(
                        "Failed",
                        "StoryReferenceInvalid",
                        refusal,
                        error=_error("StoryReferenceInvalid", refusal),
                    ),
                    now,
                )
                return Result()

        story = self.stories.get(story_namespace, run.spec.story_ref.name)
        run = await self._ensure_metadata(run, story, config)

        redrive = await cleanup.redrive(self, run, story, now)
        if redrive is not None:
            return redrive

        if is_terminal(status.phase):
            return await cleanup.terminal(self, run, story, config, now)  # ruling 2: before cancel
        if run.spec.cancel_requested:
            return await cleanup.cancel(self, run, story, config, now)

        if story is None:
            return await self._wait_for_story(run, story_namespace, now)
        return await self._execute(run, story, config, now)

    async def _ensure_metadata(
        self, run: StoryRun, story: Story | None, config: OperatorConfig
    ) -> StoryRun:
        """Finalizer, correlation and queue labels in one merge patch, only when missing."""
        meta = run.metadata
        assert meta is not None  # noqa: S101
        labels = dict(meta.labels or {})
        wanted: dict[str, str] = {}
        correlation = (meta.annotations or {}).get(keys.ANNOTATION_CORRELATION_ID)
        if correlation:
            wanted[keys.LABEL_CORRELATION_ID] = safe_label_value(correlation)
        if story is not None:
            wanted.update(queue_labels(scheduling_decision(story, config)))
        label_patch = {k: v for k, v in wanted.items() if labels.get(k) != v}
        finalizers = list(meta.finalizers or [])
        patch: dict[str, Any] = {}
        if keys.FINALIZER_STORYRUN not in finalizers and not is_terminal(
            observed_status(run).phase
        ):
            patch["finalizers"] = [*finalizers, keys.FINALIZER_STORYRUN]
        if label_patch:
            patch["labels"] = label_patch
        if not patch:
            return run
        return await self._patch_metadata(run, patch)

    async def _wait_for_story(
        self, run: StoryRun, namespace: str, now: datetime.datetime
    ) -> Result:
        name = run.spec.story_ref.name
        message = f"Waiting for Story '{namespace}/{name}' to be created"
        status = observed_status(run)
        if status.phase != "Pending" or status.message != message:
            self._event(run, "Warning", "StoryNotFound", message)
            await self._set_phase(run, PhaseChange("Pending", "StoryNotFound", message), now)
        return Result()  # woken by the Story watch when it appears (ruling 10)

    # -- execution --------------------------------------------------------------------------

    async def _execute(
        self, run: StoryRun, story: Story, config: OperatorConfig, now: datetime.datetime
    ) -> Result:
        status = observed_status(run)
        meta = run.metadata
        assert meta is not None  # noqa: S101
        problem = validate_graph(story.spec)
        if problem is not None:
            await self._set_phase(
                run,
                PhaseChange(
                    "Failed",
                    "InvalidConfiguration",
                    problem,
                    error=_error("InvalidConfiguration", problem),
                ),
                now,
            )
            return Result()
        if story.spec.pattern == "realtime":
            message = (
                "realtime stories (spec.pattern: realtime) are not supported by this controller"
            )
            await self._set_phase(
                run,
                PhaseChange(
                    "Failed",
                    "UnsupportedFeature",
                    message,
                    error=_error("UnsupportedFeature", message),
                ),
                now,
            )
            return Result()
        inputs = dict(run.spec.inputs or {})
        schema = story.spec.inputs_schema
        if schema:
            try:
                inputs = apply_defaults(schema, inputs)
                problems = validate_document(schema, inputs)
            except SchemaError as error:
                problems = [str(error)]
            if problems:
                message = inputs_failure_message(problems)
                await self._set_phase(
                    run,
                    PhaseChange(
                        "Failed",
                        "InputSchemaFailed",
                        message,
                        error=_error("InputSchemaFailed", message),
                    ),
                    now,
                )
                return Result()

        base = schema_refs(run, story, status)
        if status.phase != "Running":  # "" or Pending (ruling 1): start like a new run
            refusal = await rbac.provision(self, run, story)
            if refusal is not None:
                await self._set_phase(
                    run,
                    PhaseChange(
                        "Failed",
                        "ValidationFailed",
                        refusal,
                        error=_error("ValidationFailed", refusal),
                    ),
                    now,
                )
                return Result()
            base = with_phase(
                run,
                PhaseChange("Running", "StartingExecution", "Starting StoryRun execution"),
                now=now,
                base=base,
            )
        # The pass sees the run as started; the status writer compares with what is stored.
        observed = run
        view = msgspec.structs.replace(run, status=base)

        decision = scheduling_decision(story, config)
        story_key = f"{(story.metadata.namespace if story.metadata else '')}/{_name(story)}"
        global_scope = bool(config.global_concurrency) or bool(
            config.queue_config(decision.queue).concurrency
        )
        story_scope = bool(story.spec.policy and story.spec.policy.concurrency)
        async with self.slots.serialised(
            story_key, story_scope=story_scope, global_scope=global_scope
        ):
            given = self._pass_input(view, story, config, inputs, now, decision)
            result = await run_pure(run_pass, given)
            await self._create_children(view, story, result)
        self._record_pass(view, story, decision.queue, result)
        request = Request(meta.namespace or "", meta.name or "")
        outranked = given.slots.higher_priority_waiting
        if result.queued:
            self.slots.wait(request, story_key, global_scope=global_scope or outranked)
        else:
            self.slots.unwait(request)
        aging = config.queue_config(decision.queue).priority_aging_seconds
        if outranked and result.queued and aging > 0:
            # Waiting ages the run's priority: look again when it gains a level.
            wakes = [w for w in (result.wake_after, float(aging)) if w is not None]
            result.wake_after = min(wakes)
        return await self._write(observed, story, result, config, now, base)

    def _outranked(
        self, run: StoryRun, queue_name: str, queue: QueueConfig, now: datetime.datetime
    ) -> bool:
        """Another run of the queue with demand has a strictly higher effective priority
        (§3.6, priority with aging).

        Only two kinds of peer can outrank this run: one with a higher priority label (found
        through the queue-priority index: a few values, not a scan of the queue), and one whose
        queued steps have aged (the slot keeper knows the runs with queued steps). The others
        are not looked at, so a pass stays cheap with many runs in the queue."""
        meta = run.metadata
        own_priority = priority_from_labels(meta.labels if meta else None)
        own_key = f"{meta.namespace}/{meta.name}" if meta else ""
        peers: dict[str, StoryRun] = {}
        # Higher priority labels of the queue: a few index values, not one entry per run.
        for value in self.runs.index_values(QUEUE_PRIORITY_INDEX):
            peer_queue, _, priority = value.rpartition("/")
            if peer_queue == queue_name and int(priority) > own_priority:
                for peer in self.runs.by_index(QUEUE_PRIORITY_INDEX, value):
                    peers[key_of(peer)] = peer
        if queue.priority_aging_seconds > 0:
            for key in self.slots.waiting_runs():
                peer_namespace, _, peer_name = key.partition("/")
                waiting = self.runs.get(peer_namespace, peer_name)
                labels = (waiting.metadata.labels if waiting and waiting.metadata else None) or {}
                if waiting is not None and labels.get(keys.LABEL_QUEUE) == queue_name:
                    peers[key] = waiting
        peers.pop(own_key, None)
        candidates = [run_demand(peer) for peer in peers.values()]
        if not candidates:
            return False
        return higher_priority_waiting(
            run_demand(run), candidates, now, queue.priority_aging_seconds
        )

    def _record_pass(self, run: StoryRun, story: Story, queue: str, result: PassResult) -> None:
        if self.metrics is None or run.metadata is None:
            return
        namespace = run.metadata.namespace or ""
        self.metrics.dag_iteration(result.ready_count, result.skipped_count)
        self.metrics.queue_depth(namespace, _name(run), queue, len(result.queued))
        active = sum(1 for s in result.states.values() if s.phase in ("Running", "Paused"))
        completed = sum(1 for s in result.states.values() if s.phase == "Succeeded")
        self.metrics.steps_gauges(namespace, _name(story), active, completed)

    def _pass_input(
        self,
        run: StoryRun,
        story: Story,
        config: OperatorConfig,
        inputs: dict[str, Any],
        now: datetime.datetime,
        decision: Any,
    ) -> PassInput:
        meta = run.metadata
        namespace = (meta.namespace if meta else None) or ""
        stepruns = self.dependents.stepruns_of(run)
        children = {_name(child): child for child in self.dependents.children_of(run)}
        engrams: dict[str, Engram] = {}
        templates: dict[str, EngramTemplate] = {}
        targets: dict[str, Story] = {}
        for step in all_steps(story.spec):
            for ref_step in (step, *_branch_steps(step)):
                ref = ref_step.ref
                if ref is None:
                    continue
                engram = self.engrams.get(ref.namespace or namespace, ref.name)
                if engram is None:
                    continue
                engrams[f"{ref.namespace or namespace}/{ref.name}"] = engram
                template = self.templates.get("", engram.spec.template_ref.name)
                if template is not None:
                    templates[engram.spec.template_ref.name] = template
            if step.type == "executeStory":
                target = _target_story(step, namespace)
                if target is not None:
                    found = self.stories.get(*target)
                    if found is not None:
                        targets[step.name] = found
        queue = config.queue_config(decision.queue)
        slots = Slots(
            story_limit=(story.spec.policy.concurrency or 0) if story.spec.policy else 0,
            story_active=self.slots.story_active(namespace, _name(story))
            if story.spec.policy and story.spec.policy.concurrency
            else 0,
            global_limit=config.global_concurrency,
            global_active=self.slots.global_active() if config.global_concurrency else 0,
            queue_limit=queue.concurrency,
            queue_active=self.slots.queue_active(decision.queue) if queue.concurrency else 0,
            higher_priority_waiting=self._outranked(run, decision.queue, queue, now),
        )
        return PassInput(
            run=run,
            story=story,
            graph=build_graph(story.spec),
            stepruns=tuple(stepruns),
            child_runs=children,
            engrams=engrams,
            templates=templates,
            inputs=inputs,
            now=now,
            queue_labels=queue_labels(decision),
            max_inline_size=config.engram_default_max_inline_size,
            default_max_retries=config.max_retries,
            slots=slots,
            sub_story_targets=targets,
            deterministic=config.templating_deterministic,
        )

    async def _create_children(self, run: StoryRun, story: Story, result: PassResult) -> None:
        meta = run.metadata
        assert meta is not None  # noqa: S101
        story_key = f"{meta.namespace}/{_name(story)}"
        launches = result.steprun_launches
        if len(launches) == 1:
            await self._create_steprun(run, launches[0], result, story_key)
        elif launches:
            await self._create_stepruns(run, launches, result, story_key)
        for step_name, sub in result.subrun_launches:
            try:
                created_run = await self.kit.children.create_if_absent(
                    STORY_RUNS, sub.storyrun, owner=run, owner_resource=STORY_RUNS, cache=self.runs
                )
            except ChildConflict as conflict:
                self._fail_step(result, step_name, str(conflict))
                continue
            spoof = launching.sub_storyrun_spoofed(created_run, sub.storyrun, meta.uid or "")
            if spoof is not None:
                self._event(run, "Warning", "SubStoryRunSpoofed", spoof)
                self._fail_step(result, step_name, spoof)
        for missing in result.missing:
            self._event(
                run,
                "Warning",
                "ReferenceNotFound",
                f"Step {missing.step} waits for {missing.kind} {missing.namespace}/{missing.name}",
            )

    async def _create_stepruns(
        self,
        run: StoryRun,
        launches: Sequence[launching.StepRunLaunch],
        result: PassResult,
        story_key: str,
    ) -> None:
        """The StepRuns one pass launches are independent: create them concurrently (at most
        CREATE_CONCURRENCY in flight), so a fan-out costs about one round trip, not one per
        step. Every create runs to its end; then the first error, in launch order, is raised
        as a sequential loop would (the retry finds the created ones by name)."""
        limiter = anyio.CapacityLimiter(CREATE_CONCURRENCY)
        errors: list[Exception | None] = [None] * len(launches)

        async def create(index: int, launch: launching.StepRunLaunch) -> None:
            async with limiter:
                try:
                    await self._create_steprun(run, launch, result, story_key)
                except Exception as error:  # re-raised below, after the others finished
                    errors[index] = error

        async with anyio.create_task_group() as group:
            for index, launch in enumerate(launches):
                group.start_soon(create, index, launch)
        first = next((error for error in errors if error is not None), None)
        if first is not None:
            raise first

    async def _create_steprun(
        self, run: StoryRun, launch: launching.StepRunLaunch, result: PassResult, story_key: str
    ) -> None:
        meta = run.metadata
        assert meta is not None  # noqa: S101
        name = _name(launch.steprun)
        fresh = self.stepruns.get(meta.namespace or "", name) is None
        try:
            created = await self.kit.children.create_if_absent(
                STEP_RUNS,
                launch.steprun,
                owner=run,
                owner_resource=STORY_RUNS,
                cache=self.stepruns,
            )
        except ChildConflict as conflict:
            self._fail_step(result, launch.steprun.spec.step_id, str(conflict))
            return
        drift = launching.steprun_drift(created, launch.steprun)
        if drift is not None:
            self._event(run, "Warning", "ChildStepRunDrift", drift)
            self._fail_step(result, launch.steprun.spec.step_id, drift)
            return
        self.slots.created(meta.namespace or "", name, story_key)
        if launch.near_limit:
            self._event(
                run,
                "Warning",
                "StepInputNearLimit",
                f"Input of step {launch.steprun.spec.step_id} is {launch.input_bytes} bytes, "
                "near the max inline limit",
            )
        ref = launch.steprun.spec.engram_ref
        if fresh:
            if self.metrics is not None:
                self.metrics.child_steprun_created(
                    meta.namespace or "", _name(run), ref.name if ref else ""
                )
            self._event(
                run,
                "Normal",
                "ChildStepRunCreated",
                f"Created StepRun {name} for Engram "
                f"{(ref.namespace or meta.namespace) if ref else ''}/{ref.name if ref else ''}",
            )

    def _fail_step(self, result: PassResult, step: str, message: str) -> None:
        result.states[step] = step_with_phase(
            result.states.get(step), "Failed", message, self.kit.clock.now().replace(microsecond=0)
        )

    async def _write(
        self,
        run: StoryRun,
        story: Story,
        result: PassResult,
        config: OperatorConfig,
        now: datetime.datetime,
        base: StoryRunStatus,
    ) -> Result:
        encoded = encode_timers(result.timers)
        meta = run.metadata
        assert meta is not None  # noqa: S101
        current = (meta.annotations or {}).get(keys.ANNOTATION_STEP_TIMERS)
        if encoded != current:
            run = await self._patch_metadata(
                run, {"annotations": {keys.ANNOTATION_STEP_TIMERS: encoded}}
            )
        status = with_progress(
            base,
            states=result.states,
            counters=counters(story.spec, result.states),
            primitive_children=result.primitive_children,
        )
        drain_wake = None
        if result.stop_running:
            drain_wake = await cleanup.stop_stepruns(self, run, story, config, now)
        if result.outcome is not None:
            outcome = result.outcome
            status = with_phase(
                run,
                PhaseChange(
                    outcome.phase,
                    outcome.reason,
                    outcome.message,
                    error=outcome.error,
                    output=outcome.output,
                    degraded=outcome.degraded,
                ),
                now=now,
                base=status,
            )
            await self._apply(run, status)
            return Result(requeue_after=drain_wake) if drain_wake is not None else Result()
        status = with_running_duration(status, now) if status.started_at else status
        # The duration of a running run is written with real changes only, never on its own.
        observed = run.status or StoryRunStatus()
        if msgspec.structs.replace(status, duration=observed.duration) == owned(observed):
            status = msgspec.structs.replace(status, duration=observed.duration)
        await self._apply(run, status)
        wakes = [w for w in (drain_wake, result.wake_after) if w is not None]
        return Result(requeue_after=max(0.01, min(wakes))) if wakes else Result()

    # -- deletion ---------------------------------------------------------------------------

    async def _finalize_deletion(self, run: StoryRun) -> Result:
        meta = run.metadata
        assert meta is not None  # noqa: S101
        if keys.FINALIZER_STORYRUN not in (meta.finalizers or []):
            return Result()
        stepruns, children = self.dependents.all_of(run)
        remaining = await cleanup.delete_dependents(self, stepruns, children)
        if remaining:
            return Result()  # each child's deletion event wakes the run again
        finalizers = [f for f in meta.finalizers or [] if f != keys.FINALIZER_STORYRUN]
        with contextlib.suppress(NotFound):
            await self._patch_metadata(run, {"finalizers": finalizers})
        return Result()


def _error(reason: str, message: str) -> dict[str, Any]:
    return {"type": reason, "message": message}


def _branch_steps(step: Step) -> tuple[Step, ...]:
    if step.type != "parallel":
        return ()
    branches = launching.parallel_branches(step)
    return () if isinstance(branches, launching.LaunchError) else branches


def _target_story(step: Step, namespace: str) -> tuple[str, str] | None:
    config = launching.parse_execute_story(step)
    if isinstance(config, launching.LaunchError):
        return None
    return (config.story_ref.namespace or namespace, config.story_ref.name)
