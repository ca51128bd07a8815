"""One DAG pass over a StoryRun (§3.2): a pure function from a snapshot to decisions.

The pass syncs step states from the run's StepRuns, advances the primitives, skips what
fail-fast, `if` or a failed dependency skip, launches ready steps within the scheduling limits
(as descriptions of children to create), and finalises the run when no group is pending.
Primitives complete in-process, so a chain of them advances several levels in one pass.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runs_controller.api.runs.storyrun import StepState, StoryRun
from runs_controller.dag import launch as launching
from runs_controller.dag.graph import StepGraph, normalize_alias, step_references, string_values
from runs_controller.dag.limits import LimitOutcome, apply_limits, is_queued_state
from runs_controller.dag.primitives import (
    PrimitiveOutcome,
    evaluate_gate,
    evaluate_sleep,
    evaluate_wait,
    launch_primitive,
    stop_request,
)
from runs_controller.dag.states import (
    RUNNING_PHASES,
    Buckets,
    all_steps,
    bucket,
    default_reason,
    is_terminal,
    run_state,
    steps_context,
    sync_from_stepruns,
    with_phase,
)
from runs_controller.dag.timers import StepTimers, decode_timers, prune_timers
from runs_controller.engine import keys
from runs_controller.engine.durations import format_go_duration, parse_go_duration
from runs_controller.engine.finality import is_final
from runs_controller.engine.schemas import (
    SchemaError,
    encoded_size,
    output_failure_message,
    validate_document,
)
from runs_controller.expr import (
    EvaluationBlocked,
    OffloadedData,
    TemplateError,
    TemplateSafetyError,
    TemplateSyntaxError,
    check_template_safety,
    evaluate_condition,
    resolve_value,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runs_controller.api.bubustack.engram import Engram
    from runs_controller.api.bubustack.story import Step, Story
    from runs_controller.api.catalog.engramtemplate import EngramTemplate
    from runs_controller.api.runs.steprun import StepRun

OUTPUT_LIMIT_BYTES = 1 << 20
DEFAULT_WAIT_POLL_SECONDS = 5.0
"""A wait without pollInterval re-evaluates its condition this often (the reference's
running requeue); a gate needs no poll: its decision arrives by watch (ruling 8)."""
FAIL_FAST_MESSAGE = "Skipped due to fail-fast policy"
IF_SKIP_MESSAGE = "Skipped due to 'if' condition"
COMPENSATION_SKIP_MESSAGE = "Skipped because story succeeded"


@dataclass(frozen=True)
class Slots:
    """What the scheduling limits count right now (non-terminal StepRuns, ruling 27)."""

    story_limit: int = 0
    story_active: int = 0
    global_limit: int = 0
    global_active: int = 0
    queue_limit: int = 0
    queue_active: int = 0
    higher_priority_waiting: bool = False


@dataclass(frozen=True)
class PassInput:
    run: StoryRun
    story: Story
    graph: StepGraph
    stepruns: Sequence[StepRun]
    child_runs: Mapping[str, StoryRun]
    engrams: Mapping[str, Engram]
    """By "namespace/name"."""
    templates: Mapping[str, EngramTemplate]
    """By name (cluster-scoped)."""
    inputs: Mapping[str, Any]
    now: datetime.datetime
    queue_labels: Mapping[str, str]
    max_inline_size: int
    default_max_retries: int
    slots: Slots = Slots()
    sub_story_targets: Mapping[str, Story] = field(default_factory=dict)
    """The target Story of each executeStory step, by step name (absent: not found)."""
    deterministic: bool = False


@dataclass(frozen=True)
class Outcome:
    """The run's terminal phase, decided by this pass."""

    phase: str
    reason: str
    message: str
    error: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    degraded: bool | None = None
    """Overrides the phase's Degraded rule (a success whose output was too large)."""


@dataclass(frozen=True)
class MissingRef:
    step: str
    kind: str
    namespace: str
    name: str


@dataclass
class PassResult:
    states: dict[str, StepState]
    timers: dict[str, StepTimers]
    primitive_children: dict[str, list[str]]
    steprun_launches: list[launching.StepRunLaunch] = field(default_factory=list)
    subrun_launches: list[tuple[str, launching.SubRunLaunch]] = field(default_factory=list)
    missing: list[MissingRef] = field(default_factory=list)
    outcome: Outcome | None = None
    stop_running: bool = False
    """Cancel the run's non-terminal StepRuns (stop step, story timeout)."""
    wake_after: float | None = None
    ready_count: int = 0
    skipped_count: int = 0
    queued: dict[str, str] = field(default_factory=dict)


def _engram_key(namespace: str, step: Step) -> str:
    ref = step.ref
    assert ref is not None  # noqa: S101 - engram steps have a ref
    return f"{ref.namespace or namespace}/{ref.name}"


def _stop_step(states: Mapping[str, StepState], steps: Sequence[Step]) -> Step | None:
    for step in steps:
        state = states.get(step.name)
        if (
            step.type == "stop"
            and state is not None
            and is_terminal(state.phase)
            and not (state.message or "").startswith("Skipped")
            and _valid_stop(step)
        ):
            return step
    return None


def _valid_stop(step: Step) -> bool:
    """A stop step whose `with` is invalid failed at launch: it is a failed step, not a stop."""
    try:
        stop_request(step)
    except ValueError:
        return False
    return True


class _Pass:
    def __init__(self, given: PassInput) -> None:
        self.given = given
        self.run = given.run
        self.spec = given.story.spec
        self.namespace = given.run.metadata.namespace or "" if given.run.metadata else ""
        self.now = given.now
        status = given.run.status
        states = run_state(given.run)
        self.states = sync_from_stepruns(
            states, given.stepruns, default_max_retries=given.default_max_retries
        )
        annotations = (given.run.metadata.annotations if given.run.metadata else None) or {}
        self.timers = decode_timers(annotations.get(keys.ANNOTATION_STEP_TIMERS))
        self.children = {
            k: list(v) for k, v in ((status.primitive_children if status else None) or {}).items()
        }
        self.result = PassResult(self.states, self.timers, self.children)
        self.wakes: list[float] = []
        self.by_name = {step.name: step for step in all_steps(self.spec)}
        self.aliases = {normalize_alias(name): name for name in self.by_name}
        self.stopped_by: Step | None = None

    # -- variables --------------------------------------------------------------------------

    def variables(self) -> dict[str, Any]:
        outputs = {
            name: dict(run.status.output or {})
            for name, run in self.given.child_runs.items()
            if run.status is not None
        }
        steps = steps_context(self.given.stepruns, self.states, outputs)
        return {"inputs": dict(self.given.inputs), "steps": steps}

    # -- the pass ---------------------------------------------------------------------------

    def execute(self) -> PassResult:
        if self._timed_out():
            return self._done()
        self._refresh_children()
        for _ in range(len(self.by_name) + 1):
            if self._timed_out():
                break
            changed = self._advance_primitives()
            main = self.spec.steps
            main_b = bucket(main, self.states)
            self.stopped_by = self.stopped_by or _stop_step(self.states, main)
            changed |= self._skip_main(main, main_b)
            main_b = bucket(main, self.states)
            main_done = all(
                step.name in self.states and is_terminal(self.states[step.name].phase)
                for step in main
            )
            compensations = self.spec.compensations or ()
            if main_done and compensations and (not main_b.failed or self.stopped_by):
                changed |= self._skip_all(
                    compensations, self._compensation_skip_message(), keep_running=True
                )
            group = self._group(main_done, main_b)
            if group is None:
                self._finalize(main_b)
                break
            launched = self._launch_ready(group)
            if not launched and not changed:
                break
        return self._done()

    def _done(self) -> PassResult:
        terminal = {name for name, state in self.states.items() if is_terminal(state.phase)}
        self.result.timers = prune_timers(self.timers, terminal)
        if self.result.outcome is None:
            deadline = self._timeout_deadline()
            if deadline is not None:
                self.wakes.append(max(0.0, (deadline - self.now).total_seconds()))
            self.result.wake_after = min(self.wakes) if self.wakes else None
        return self.result

    # -- timeout ----------------------------------------------------------------------------

    def _story_timeout(self) -> float | None:
        policy = self.spec.policy
        raw = policy.timeouts.story if policy and policy.timeouts else None
        if not raw:
            return None
        try:
            nanos = parse_go_duration(raw)
        except ValueError:
            return None
        return nanos / 1e9 if nanos > 0 else None

    def _timeout_deadline(self) -> datetime.datetime | None:
        timeout = self._story_timeout()
        started = self.run.status.started_at if self.run.status else None
        if timeout is None or started is None:
            return None
        return started + datetime.timedelta(seconds=timeout)

    def _timed_out(self) -> bool:
        if self.result.outcome is not None:
            return True
        deadline = self._timeout_deadline()
        if deadline is None or self.now < deadline:
            return False
        timeout = self._story_timeout()
        assert timeout is not None  # noqa: S101 - a deadline needs a timeout
        text = format_go_duration(round(timeout) * 1_000_000_000)
        message = f"StoryRun exceeded timeout of {text}."
        self.result.outcome = Outcome(
            "Timeout", "TimedOut", message, error={"type": "TimedOut", "message": message}
        )
        self.result.stop_running = True
        return True

    # -- children of executeStory and parallel ----------------------------------------------

    def _refresh_children(self) -> None:
        for name, state in list(self.states.items()):
            step = self.by_name.get(name)
            if step is None or is_terminal(state.phase):
                continue
            if step.type == "executeStory" and state.sub_story_run_name:
                child = self.given.child_runs.get(state.sub_story_run_name)
                phase = child.status.phase if child is not None and child.status else None
                if child is not None and is_terminal(phase):
                    assert child.status is not None  # noqa: S101
                    self._set(name, str(phase), child.status.message)
            elif step.type == "parallel" and name in self.children:
                self._complete_parallel(step, self.children[name])

    def _complete_parallel(self, step: Step, names: Sequence[str]) -> None:
        by_name = {sr.metadata.name: sr for sr in self.given.stepruns if sr.metadata is not None}
        branches = {b.name: b for b in _branch_steps(step)}
        failed: list[str] = []
        allowed = False
        for child in names:
            steprun = by_name.get(child)
            if steprun is None or not is_final(steprun, self.given.default_max_retries):
                return
            assert steprun.status is not None  # noqa: S101 - final means a status
            if steprun.status.phase not in ("Succeeded", "Skipped"):
                branch = branches.get(steprun.spec.step_id)
                if branch is not None and branch.allow_failure:
                    allowed = True
                else:
                    failed.append(steprun.spec.step_id)
        if failed:
            self._set(step.name, "Failed", "Parallel branches failed: " + ", ".join(sorted(failed)))
        elif allowed:
            self._set(step.name, "Succeeded", "Parallel branches completed with allowed failures.")
        else:
            self._set(step.name, "Succeeded", "Parallel branches completed.")

    # -- primitives -------------------------------------------------------------------------

    def _advance_primitives(self) -> bool:
        changed = False
        status = self.run.status
        gates = (status.gates if status else None) or {}
        variables: dict[str, Any] | None = None
        for name, state in list(self.states.items()):
            step = self.by_name.get(name)
            if (
                step is None
                or is_terminal(state.phase)
                or step.type
                not in (
                    "gate",
                    "sleep",
                    "wait",
                )
            ):
                continue
            timer = self.timers.get(name)
            outcome: PrimitiveOutcome
            if step.type == "gate":
                outcome = evaluate_gate(step, state, timer, gates.get(name), self.now)
            elif step.type == "sleep":
                outcome = evaluate_sleep(step, state, timer, self.now)
            else:
                variables = variables or self.variables()
                outcome = evaluate_wait(step, state, timer, variables, self.now)
            if outcome.timer is not None:
                self.timers[name] = outcome.timer
            if not is_terminal(outcome.state.phase):
                if outcome.wake_after is not None:
                    self.wakes.append(outcome.wake_after)
                elif step.type == "wait":
                    self.wakes.append(DEFAULT_WAIT_POLL_SECONDS)
            if outcome.state != state:
                self.states[name] = outcome.state
                changed = True
        return changed

    # -- skipping ---------------------------------------------------------------------------

    def _compensation_skip_message(self) -> str:
        if self.stopped_by is not None:
            return f"Skipped because the story was stopped by step '{self.stopped_by.name}'"
        return COMPENSATION_SKIP_MESSAGE

    def _skip_main(self, main: Sequence[Step], buckets: Buckets) -> bool:
        if self.stopped_by is not None:
            changed = self._skip_all(
                main, f"Skipped because the story was stopped by step '{self.stopped_by.name}'"
            )
            self.result.stop_running = self.result.stop_running or self._has_running_stepruns()
            return changed
        policy = self.spec.policy
        continue_on_failure = bool(
            policy and policy.retries and policy.retries.continue_on_step_failure
        )
        if buckets.failed and not continue_on_failure:
            return self._skip_all(main, FAIL_FAST_MESSAGE, keep_running=True)
        return False

    def _has_running_stepruns(self) -> bool:
        if self.result.steprun_launches:
            return True  # created after this pass, before anyone could cancel them
        # A failure with a retry due is not final (ruling 6): it would run again unseen.
        return any(not is_final(sr, self.given.default_max_retries) for sr in self.given.stepruns)

    def _skip_all(self, steps: Sequence[Step], message: str, *, keep_running: bool = False) -> bool:
        changed = False
        for step in steps:
            state = self.states.get(step.name)
            if state is not None and is_terminal(state.phase):
                continue
            if keep_running and state is not None and _running(state):
                continue
            self.states[step.name] = with_phase(state, "Skipped", message, self.now)
            self.result.skipped_count += 1
            changed = True
        return changed

    # -- groups -----------------------------------------------------------------------------

    def _group(self, main_done: bool, main_b: Buckets) -> str | None:
        if not main_done:
            return "main"
        compensations = self.spec.compensations or ()
        if main_b.failed and compensations and not self._all_terminal(compensations):
            return "compensation"
        final = self.spec.finally_ or ()
        if final and not self._all_terminal(final):
            return "finally"
        return None

    def _all_terminal(self, steps: Sequence[Step]) -> bool:
        return all(s.name in self.states and is_terminal(self.states[s.name].phase) for s in steps)

    def _group_steps(self, group: str) -> Sequence[Step]:
        if group == "main":
            return self.spec.steps
        if group == "compensation":
            return self.spec.compensations or ()
        return self.spec.finally_ or ()

    # -- readiness and launch ---------------------------------------------------------------

    def _launch_ready(self, group: str) -> bool:
        steps = self._group_steps(group)
        buckets = bucket(steps, self.states)
        policy = self.spec.policy
        continue_on_failure = bool(
            policy and policy.retries and policy.retries.continue_on_step_failure
        )
        variables = self.variables()
        ready: list[Step] = []
        progressed = False
        for step in steps:
            state = self.states.get(step.name)
            if step.name in buckets.completed or step.name in buckets.running:
                continue
            if state is not None and is_terminal(state.phase):
                continue
            blocked_by = self._unsatisfied(step, group, continue_on_failure)
            if isinstance(blocked_by, str):
                self.states[step.name] = with_phase(
                    state, "Skipped", f"Skipped due to failed dependency: {blocked_by}", self.now
                )
                self.result.skipped_count += 1
                progressed = True
                continue
            if not blocked_by:
                continue
            verdict = self._condition(step, variables)
            if verdict is None:
                continue
            if verdict is False:
                self.states[step.name] = with_phase(state, "Skipped", IF_SKIP_MESSAGE, self.now)
                self.result.skipped_count += 1
                progressed = True
                continue
            if isinstance(verdict, str):
                self.states[step.name] = with_phase(state, "Failed", verdict, self.now)
                progressed = True
                continue
            if self._stale_with(step, variables):
                continue
            ready.append(step)
        ready = [step for step in ready if not self._wider_than_limits(step)]
        if not ready:
            return True if progressed else bool(self.result.queued)
        outcome = self._limit(ready)
        self.result.ready_count += len(outcome.launch)
        for name, message in outcome.queued.items():
            prior = self.states.get(name)
            if prior is None or prior.message != message or prior.phase != "Pending":
                self.states[name] = with_phase(prior, "Pending", message, self.now)
            self.result.queued[name] = message
        for name in outcome.launch:
            if self.stopped_by is not None and group == "main":
                break  # a stop launched just now: the rest of main is skipped, not started
            progressed |= self._launch(self.by_name[name], variables)
        return progressed

    def _wider_than_limits(self, step: Step) -> bool:
        """A parallel step needs all its branch slots at once: wider than a limit, it could
        never start, so it fails with a message that says why (the limit is a hard one)."""
        cost = _slot_cost(step)
        slots = self.given.slots
        limits = [
            (name, limit)
            for name, limit in (
                ("story concurrency", slots.story_limit),
                ("global concurrency", slots.global_limit),
                ("queue concurrency", slots.queue_limit),
            )
            if limit > 0 and cost > limit
        ]
        if step.type != "parallel" or not limits:
            return False
        name, limit = limits[0]
        message = (
            f"parallel step '{step.name}' has {cost} branches, more than the {name} limit "
            f"of {limit}: it could never start"
        )
        self.states[step.name] = with_phase(self.states.get(step.name), "Failed", message, self.now)
        return True

    def _limit(self, ready: Sequence[Step]) -> LimitOutcome:
        slots = self.given.slots
        launched_now = len(self.result.steprun_launches)
        return apply_limits(
            [step.name for step in ready],
            story_limit=slots.story_limit,
            story_active=slots.story_active + launched_now,
            global_limit=slots.global_limit,
            global_active=slots.global_active + launched_now,
            queue_limit=slots.queue_limit,
            queue_active=slots.queue_active + launched_now,
            higher_priority_waiting=slots.higher_priority_waiting,
            slot_cost=lambda name: _slot_cost(self.by_name[name]),
        )

    def _unsatisfied(self, step: Step, group: str, continue_on_failure: bool) -> bool | str:
        """True when every dependency allows the step; False to wait; a name to skip it."""
        for dep in self.given.graph.deps.get(step.name, ()):
            state = self.states.get(dep)
            phase = state.phase if state is not None else None
            dep_step = self.by_name.get(dep)
            if phase in ("Succeeded", "Skipped"):
                if (
                    phase == "Skipped"
                    and group == "main"
                    and continue_on_failure
                    and state is not None
                    and (state.message or "").startswith("Skipped due to failed dependency")
                ):
                    return dep  # ruling 21: a skip caused by failure cascades
                continue
            if is_terminal(phase):
                if dep_step is not None and dep_step.allow_failure:
                    continue
                if group != "main":
                    continue
                if continue_on_failure:
                    return dep
                return False
            return False
        return True

    def _condition(self, step: Step, variables: Mapping[str, Any]) -> bool | str | None:
        """True, False (skip), None (wait), or a failure message."""
        text = step.if_
        if not text or not text.strip():
            return True
        try:
            check_template_safety(text)
        except TemplateSafetyError as error:
            return f"step '{step.name}': if: {error}"
        try:
            verdict = evaluate_condition(text, variables, deterministic=self.given.deterministic)
        except (EvaluationBlocked, OffloadedData):
            return None
        except TemplateSyntaxError as error:
            return f"step '{step.name}': if: {error}"  # deterministic: waiting cannot fix it
        except TemplateError as error:
            # §3.5 keeps the step waiting, for an output the snapshot may not show yet. Once
            # every output the condition reads is there, nothing can change its verdict: the
            # reference would wait forever, with no condition saying why (hostile-input suite).
            if self._references_empty_output([text], variables):
                return None
            return f"step '{step.name}': if: {error}"
        if not verdict and self._references_empty_output([text], variables):
            return None
        return verdict

    def _referenced_steps(self, texts: Sequence[str]) -> set[str]:
        names = set()
        for text in texts:
            strict, parsed = step_references(text)  # every form, bare `steps.a` too (ruling 25)
            for ref in strict | parsed:
                name = ref if ref in self.by_name else self.aliases.get(ref)
                if name is not None:
                    names.add(name)
        return names

    def _references_empty_output(self, texts: Sequence[str], variables: Mapping[str, Any]) -> bool:
        """A referenced engram step reads Succeeded but its StepRun (and so its output) is not
        in the snapshot yet: wait instead of deciding on missing data (§3.5). A step whose
        StepRun is visible and has no output really has none: no wait."""
        seen = {sr.spec.step_id for sr in self.given.stepruns}
        for name in self._referenced_steps(texts):
            state = self.states.get(name)
            dep = self.by_name[name]
            if state is None or state.phase != "Succeeded" or dep.ref is None:
                continue
            if name not in seen:
                return True
        return False

    def _stale_with(self, step: Step, variables: Mapping[str, Any]) -> bool:
        if not step.with_ or step.ref is None:
            return False
        return self._references_empty_output(list(string_values(step.with_)), variables)

    def _launch(self, step: Step, variables: Mapping[str, Any]) -> bool:
        state = self.states.get(step.name)
        if step.ref is not None:
            return self._launch_engram(step, state, variables)
        kind = step.type
        if kind in ("condition", "sleep", "wait", "gate"):
            self.states[step.name] = launch_primitive(step, self.now)
            return True
        if kind == "stop":
            try:
                request = stop_request(step)
            except ValueError as error:
                self.states[step.name] = with_phase(state, "Failed", str(error), self.now)
                return True
            self.states[step.name] = with_phase(state, request.phase, request.message, self.now)
            self.stopped_by = step
            return True
        if kind == "parallel":
            return self._launch_parallel(step, state, variables)
        if kind == "executeStory":
            return self._launch_subrun(step, state, variables)
        message = f"step '{step.name}' has an unsupported type '{kind or ''}' or is missing a 'ref'"
        self.states[step.name] = with_phase(state, "Failed", message, self.now)
        return True

    def _launch_engram(
        self, step: Step, state: StepState | None, variables: Mapping[str, Any]
    ) -> bool:
        key = _engram_key(self.namespace, step)
        engram = self.given.engrams.get(key)
        template = None
        if engram is not None and engram.spec.template_ref is not None:
            template = self.given.templates.get(engram.spec.template_ref.name)
        outcome = launching.build_engram_steprun(
            self.run,
            self.given.story,
            step,
            engram,
            template,
            queue_labels=self.given.queue_labels,
            max_inline_size=self.given.max_inline_size,
            variables=variables,
        )
        return self._take(step, state, outcome)

    def _take(self, step: Step, state: StepState | None, outcome: object) -> bool:
        if isinstance(outcome, launching.LaunchBlocked):
            return False  # a template waits for output not visible yet: a later pass
        if isinstance(outcome, launching.MissingReference):
            missing = MissingRef(step.name, outcome.kind, outcome.namespace, outcome.name)
            if missing not in self.result.missing:  # a step is re-offered on every iteration
                self.result.missing.append(missing)
            message = (
                f"Waiting for {outcome.kind} '{outcome.namespace}/{outcome.name}' to be created"
            )
            if state is None or state.phase != "Blocked" or state.message != message:
                self.states[step.name] = with_phase(state, "Blocked", message, self.now)
                return True
            return False
        if isinstance(outcome, launching.LaunchError):
            self.states[step.name] = with_phase(state, "Failed", outcome.message, self.now)
            return True
        assert isinstance(outcome, launching.StepRunLaunch)  # noqa: S101
        self.result.steprun_launches.append(outcome)
        self.states[step.name] = with_phase(state, "Running", None, self.now)
        return True

    def _launch_parallel(
        self, step: Step, state: StepState | None, variables: Mapping[str, Any]
    ) -> bool:
        outcome = launching.build_branch_stepruns(
            self.run,
            self.given.story,
            step,
            self.given.engrams,
            self.given.templates,
            queue_labels=self.given.queue_labels,
            max_inline_size=self.given.max_inline_size,
            variables=variables,
        )
        if not isinstance(outcome, tuple):
            return self._take(step, state, outcome)
        self.result.steprun_launches.extend(outcome)
        self.children[step.name] = [
            launch.steprun.metadata.name or "" for launch in outcome if launch.steprun.metadata
        ]
        self.states[step.name] = with_phase(state, "Running", "Parallel block expanded", self.now)
        return True

    def _launch_subrun(
        self, step: Step, state: StepState | None, variables: Mapping[str, Any]
    ) -> bool:
        target = self.given.sub_story_targets.get(step.name)
        if target is None:
            config = launching.parse_execute_story(step)
            if isinstance(config, launching.LaunchError):
                return self._take(step, state, config)
            ref = config.story_ref
            missing = launching.MissingReference("Story", ref.namespace or self.namespace, ref.name)
            return self._take(step, state, missing)
        outcome = launching.build_sub_storyrun(
            self.run, step, target, queue_labels=self.given.queue_labels, variables=variables
        )
        if not isinstance(outcome, launching.SubRunLaunch):
            return self._take(step, state, outcome)
        self.result.subrun_launches.append((step.name, outcome))
        name = outcome.storyrun.metadata.name if outcome.storyrun.metadata else None
        if outcome.wait_for_completion:
            new = with_phase(
                state, "Running", f"Waiting for sub-story run '{name}' to complete", self.now
            )
        else:
            new = with_phase(state, "Succeeded", f"Launched sub-story run '{name}'", self.now)
        self.states[step.name] = StepState(
            phase=new.phase,
            message=new.message,
            started_at=new.started_at,
            finished_at=new.finished_at,
            sub_story_run_name=name,
        )
        return True

    # -- finalization -----------------------------------------------------------------------

    def _finalize(self, main_b: Buckets) -> None:
        if self.stopped_by is not None:
            self._finalize_stopped()
            return
        final = self.spec.finally_ or ()
        compensations = self.spec.compensations or ()
        final_failed = sorted(bucket(final, self.states).failed)
        comp_failed = sorted(bucket(compensations, self.states).failed)
        main_failed = sorted(main_b.failed)
        if final_failed:
            self._fail("CleanupFailed", f"Finally step {final_failed[0]} failed.")
        elif comp_failed:
            self._fail("CompensationFailed", f"Compensation step {comp_failed[0]} failed.")
        elif main_failed and compensations:
            self.result.outcome = Outcome(
                "Compensated", "Compensated", "Story failed; compensations completed."
            )
        elif main_failed:
            first = main_failed[0]
            message = f"Story completed with failed step: {first}."
            detail = self.states[first].message
            if detail:  # says what and where (the step's own message names its field)
                message = f"{message} {detail}"
            self._fail("DependencyFailed", message)
        else:
            self._succeed()

    def _failed_steps(self) -> list[dict[str, Any]]:
        out = []
        for name in sorted(self.states):
            state = self.states[name]
            if is_terminal(state.phase) and state.phase not in ("Succeeded", "Skipped"):
                step = self.by_name.get(name)
                if step is not None and step.allow_failure:
                    continue
                entry: dict[str, Any] = {"name": name, "phase": state.phase}
                if state.message:
                    entry["message"] = state.message
                out.append(entry)
        return out

    def _fail(self, reason: str, message: str) -> None:
        error: dict[str, Any] = {"type": reason, "message": message}
        failed = self._failed_steps()
        if failed:
            error["failedSteps"] = failed
        self.result.outcome = Outcome("Failed", reason, message, error=error)

    def _finalize_stopped(self) -> None:
        step = self.stopped_by
        assert step is not None  # noqa: S101
        request = stop_request(step)
        if request.phase == "Failed":
            reason = "ExecutionFailed"
            self._fail(reason, request.message)
            return
        self.result.outcome = Outcome(request.phase, default_reason(request.phase), request.message)

    def _allowed_message(self) -> str:
        allowed = sorted(
            step.name
            for step in all_steps(self.spec)
            if step.allow_failure
            and step.name in self.states
            and self.states[step.name].phase not in ("Succeeded", "Skipped")
            and is_terminal(self.states[step.name].phase)
        )
        if allowed:
            return "Completed with allowed failures: " + ", ".join(allowed) + "."
        return "All steps completed successfully."

    def _succeed(self) -> None:
        message = self._allowed_message()
        template = self.spec.output
        if not template:
            self.result.outcome = Outcome("Succeeded", "Completed", message)
            return
        try:
            for text in string_values(template):
                check_template_safety(text)
            rendered = resolve_value(
                template, self.variables(), deterministic=self.given.deterministic
            )
        except (EvaluationBlocked, OffloadedData):
            return  # outputs not visible yet: the next pass renders it
        except TemplateError as error:
            self._fail_output("Failed to evaluate final output template.", str(error))
            return
        if not isinstance(rendered, dict):
            self._fail_output("Failed to evaluate final output template.", "not an object")
            return
        schema = self.spec.outputs_schema
        if schema:
            try:
                problems = validate_document(schema, rendered)
            except SchemaError as error:
                problems = [str(error)]
            if problems:
                text = output_failure_message(problems)
                self.result.outcome = Outcome(
                    "Failed",
                    "OutputSchemaFailed",
                    text,
                    error={"type": "OutputSchemaFailed", "message": text},
                )
                return
        if encoded_size(rendered) > OUTPUT_LIMIT_BYTES:
            self.result.outcome = Outcome(
                "Succeeded",
                "OutputResolutionFailed",
                message.rstrip(".") + ", but the final output was too large to store.",
                degraded=True,
            )
            return
        self.result.outcome = Outcome("Succeeded", "Completed", message, output=rendered)

    def _fail_output(self, message: str, detail: str) -> None:
        self.result.outcome = Outcome(
            "Failed",
            "OutputResolutionFailed",
            message,
            error={"type": "OutputResolutionFailed", "message": f"{message} {detail}"},
        )

    # -- helpers ----------------------------------------------------------------------------

    def _set(self, name: str, phase: str, message: str | None) -> None:
        self.states[name] = with_phase(self.states.get(name), phase, message, self.now)


def _running(state: StepState) -> bool:
    """Started work (a StepRun Pending its pod or a retry counts), not a step queued by limits."""
    return state.phase in RUNNING_PHASES and not is_queued_state(state)


def _branch_steps(step: Step) -> tuple[Step, ...]:
    branches = launching.parallel_branches(step)
    return () if isinstance(branches, launching.LaunchError) else branches


def _slot_cost(step: Step) -> int:
    """StepRuns that launching the step creates (what the concurrency limits count)."""
    if step.ref is not None:
        return 1
    if step.type == "parallel":
        return len(_branch_steps(step))
    return 0


def run_pass(given: PassInput) -> PassResult:
    """One DAG pass; pure (evaluates templates, so run it with `runtime.offload.run_pure`)."""
    return _Pass(given).execute()


__all__ = ["MissingRef", "Outcome", "PassInput", "PassResult", "Slots", "run_pass"]
