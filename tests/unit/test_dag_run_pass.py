"""One DAG pass of a StoryRun (controller-behaviour §3; rulings 3, 6, 7, 9, 21-27, 31).

`Sim` plays the reconciler around the pure pass: it builds a PassInput from its objects, runs
the pass, writes the result back into the StoryRun (stepStates, primitiveChildren, the timers
annotation), turns launches into StepRuns and sub-StoryRuns, and advances `now`. Tests then mark
StepRuns terminal, as the StepRun controller would, and run the next pass.
"""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runs_controller.api.bubustack.engram import Engram
from runs_controller.api.bubustack.story import Story
from runs_controller.api.catalog.engramtemplate import EngramTemplate
from runs_controller.api.runs.steprun import StepRun, StepRunStatus
from runs_controller.api.runs.storyrun import StepState, StoryRun, StoryRunStatus
from runs_controller.dag.graph import build_graph
from runs_controller.dag.limits import QUEUED_STORY_PREFIX
from runs_controller.dag.run_pass import (
    COMPENSATION_SKIP_MESSAGE,
    FAIL_FAST_MESSAGE,
    IF_SKIP_MESSAGE,
    MissingRef,
    Outcome,
    PassInput,
    PassResult,
    Slots,
    run_pass,
)
from runs_controller.dag.states import RETRY_SCHEDULED_MESSAGE, bucket, is_terminal
from runs_controller.dag.timers import decode_timers, encode_timers
from runs_controller.engine import keys
from runs_controller.engine.finality import is_final
from runs_controller.engine.naming import compose_name, steprun_idempotency_key

NS = "default"
RUN = "run-1"
T0 = datetime.datetime(2025, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
TICK = datetime.timedelta(seconds=3)
ENGRAM_KEY = f"{NS}/worker"
ENGRAM = msgspec.convert(
    {"metadata": {"name": "worker", "namespace": NS}, "spec": {"templateRef": {"name": "tpl"}}},
    Engram,
)
TEMPLATE = msgspec.convert(
    {
        "metadata": {"name": "tpl", "generation": 4},
        "spec": {"version": "1", "supportedModes": ["job"]},
    },
    EngramTemplate,
)


# --- builders ------------------------------------------------------------------------------


def eng(name: str, *needs: str, **fields: Any) -> dict[str, Any]:
    """An engram step (camelCase keys, as in a Story manifest)."""
    step: dict[str, Any] = {"name": name, "ref": {"name": "worker"}, **fields}
    if needs:
        step["needs"] = list(needs)
    return step


def prim(name: str, kind: str, *needs: str, **fields: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"name": name, "type": kind, **fields}
    if needs:
        step["needs"] = list(needs)
    return step


def make_story(
    steps: list[dict[str, Any]],
    *,
    compensations: list[dict[str, Any]] | None = None,
    finally_: list[dict[str, Any]] | None = None,
    policy: dict[str, Any] | None = None,
    name: str = "story",
    **spec_fields: Any,
) -> Story:
    spec: dict[str, Any] = {"steps": steps, **spec_fields}
    if compensations is not None:
        spec["compensations"] = compensations
    if finally_ is not None:
        spec["finally"] = finally_
    if policy is not None:
        spec["policy"] = policy
    meta = {"name": name, "namespace": NS, "uid": f"{name}-uid"}
    return msgspec.convert({"metadata": meta, "spec": spec}, Story)


def continue_on_failure() -> dict[str, Any]:
    return {"retries": {"continueOnStepFailure": True}}


class Sim:
    """The reconciler's side of the pass, in memory."""

    def __init__(
        self,
        story: Story,
        *,
        inputs: dict[str, Any] | None = None,
        status: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None,
        engrams: dict[str, Engram] | None = None,
        templates: dict[str, EngramTemplate] | None = None,
        targets: dict[str, Story] | None = None,
        max_inline_size: int = 4096,
        default_max_retries: int = 3,
        started: datetime.datetime = T0,
    ) -> None:
        self.story = story
        self.now = T0
        self.inputs = inputs or {}
        doc: dict[str, Any] = {
            "metadata": {"name": RUN, "namespace": NS, "uid": "run-uid"},
            "spec": {"storyRef": {"name": "story"}, "inputs": self.inputs},
            "status": {"phase": "Running", "startedAt": started, **(status or {})},
        }
        if annotations:
            doc["metadata"]["annotations"] = annotations
        self.run = msgspec.convert(doc, StoryRun)
        self.engrams = {ENGRAM_KEY: ENGRAM} if engrams is None else engrams
        self.templates = {"tpl": TEMPLATE} if templates is None else templates
        self.targets = targets or {}
        self.max_inline_size = max_inline_size
        self.default_max_retries = default_max_retries
        self.stepruns: dict[str, StepRun] = {}
        """By StepRun name."""
        self.child_runs: dict[str, StoryRun] = {}
        self.launched: list[str] = []
        """StepIds of launched StepRuns, in launch order."""
        self.outcome: Outcome | None = None
        self.stop_requested = False

    # -- the pass --------------------------------------------------------------------------

    def given(self, slots: Slots | None = None) -> PassInput:
        return PassInput(
            run=self.run,
            story=self.story,
            graph=build_graph(self.story.spec),
            stepruns=tuple(self.stepruns.values()),
            child_runs=dict(self.child_runs),
            engrams=self.engrams,
            templates=self.templates,
            inputs=self.inputs,
            now=self.now,
            queue_labels={keys.LABEL_QUEUE: "default", keys.LABEL_QUEUE_PRIORITY: "0"},
            max_inline_size=self.max_inline_size,
            default_max_retries=self.default_max_retries,
            slots=slots or Slots(),
            sub_story_targets=self.targets,
        )

    def step(self, slots: Slots | None = None) -> PassResult:
        """One pass, its result applied, then the clock ticks."""
        result = run_pass(self.given(slots))
        self.apply(result)
        self.now += TICK
        return result

    def apply(self, result: PassResult) -> None:
        assert self.run.status is not None
        status = msgspec.structs.replace(
            self.run.status,
            step_states=dict(result.states),
            primitive_children={k: list(v) for k, v in result.primitive_children.items()} or None,
        )
        meta = self.run.metadata
        assert meta is not None
        annotations = dict(meta.annotations or {})
        encoded = encode_timers(result.timers)
        if encoded is None:
            annotations.pop(keys.ANNOTATION_STEP_TIMERS, None)
        else:
            annotations[keys.ANNOTATION_STEP_TIMERS] = encoded
        meta = msgspec.structs.replace(meta, annotations=annotations or None)
        self.run = msgspec.structs.replace(self.run, metadata=meta, status=status)
        for launch in result.steprun_launches:
            name = launch.steprun.metadata.name if launch.steprun.metadata else None
            assert name, "a launched StepRun has a name"
            assert name not in self.stepruns, f"StepRun {name} launched twice"
            self.stepruns[name] = launch.steprun
            self.launched.append(launch.steprun.spec.step_id)
        for step, sub in result.subrun_launches:
            child = sub.storyrun.metadata.name if sub.storyrun.metadata else None
            assert child
            assert child not in self.child_runs, f"sub-run of {step} launched twice"
            self.child_runs[child] = sub.storyrun
        self.stop_requested |= result.stop_running
        if result.outcome is not None:
            self.outcome = result.outcome

    # -- the StepRun controller's side ----------------------------------------------------

    def steprun(self, step_id: str) -> StepRun:
        found = [sr for sr in self.stepruns.values() if sr.spec.step_id == step_id]
        assert len(found) == 1, f"one StepRun for {step_id}, got {len(found)}"
        return found[0]

    def set_steprun(self, step_id: str, phase: str, **status: Any) -> None:
        steprun = self.steprun(step_id)
        doc = {"phase": phase, "retries": 0, "startedAt": T0, **status}
        if is_terminal(phase):
            doc.setdefault("finishedAt", self.now)
        name = steprun.metadata.name if steprun.metadata else ""
        assert name
        self.stepruns[name] = msgspec.structs.replace(
            steprun, status=msgspec.convert(doc, StepRunStatus)
        )

    def succeed(self, step_id: str, output: dict[str, Any] | None = None) -> None:
        self.set_steprun(step_id, "Succeeded", output=output or {})

    def fail(self, step_id: str, exit_class: str = "terminal", **status: Any) -> None:
        status.setdefault("lastFailureMsg", f"{step_id} broke")
        self.set_steprun(step_id, "Failed", exitClass=exit_class, **status)

    def non_final(self) -> int:
        return sum(not is_final(sr, self.default_max_retries) for sr in self.stepruns.values())

    def state(self, name: str) -> StepState:
        states = (self.run.status.step_states if self.run.status else None) or {}
        return states[name]

    def phase(self, name: str) -> str:
        return self.state(name).phase

    def set_status(self, **fields: Any) -> None:
        assert self.run.status is not None
        extra = msgspec.convert(fields, StoryRunStatus)
        changes = {k: getattr(extra, k) for k in extra.__struct_fields__ if getattr(extra, k)}
        self.run = msgspec.structs.replace(
            self.run, status=msgspec.structs.replace(self.run.status, **changes)
        )

    def set_child(self, name: str, phase: str, message: str | None = None) -> None:
        child = self.child_runs[name]
        status = msgspec.convert({"phase": phase, "message": message}, StoryRunStatus)
        self.child_runs[name] = msgspec.structs.replace(child, status=status)

    def drive(self, outcomes: dict[str, str] | None = None, passes: int = 20) -> Outcome:
        """Passes until the run ends; every new StepRun ends per `outcomes` (else Succeeded)."""
        outcomes = outcomes or {}
        for _ in range(passes):
            self.step()
            if self.outcome is not None:
                return self.outcome
            for steprun in list(self.stepruns.values()):
                if steprun.status is None:
                    step_id = steprun.spec.step_id
                    if outcomes.get(step_id, "Succeeded") == "Succeeded":
                        self.succeed(step_id)
                    else:
                        self.fail(step_id)
        raise AssertionError(f"no outcome after {passes} passes")


# --- §9 behaviours -------------------------------------------------------------------------


def test_running_steprun_overrides_a_pending_state() -> None:
    """§9.10: the StepRun is the truth; the state follows it and the step is not relaunched."""
    sim = Sim(make_story([eng("greet")]))
    sim.step()
    assert sim.launched == ["greet"]
    sim.set_steprun("greet", "Running")
    assert sim.run.status is not None
    pending = {"greet": StepState(phase="Pending")}
    sim.run = msgspec.structs.replace(
        sim.run, status=msgspec.structs.replace(sim.run.status, step_states=pending)
    )
    result = sim.step()
    assert result.states["greet"].phase == "Running"
    assert result.states["greet"].started_at == T0
    assert result.steprun_launches == []


def test_failed_main_step_with_compensations_ends_compensated() -> None:
    """§9.11: compensations run after a main failure, then the run is Compensated."""
    sim = Sim(make_story([eng("a")], compensations=[eng("undo")]))
    sim.step()
    sim.fail("a")
    result = sim.step()
    assert sim.launched == ["a", "undo"]
    assert result.outcome is None
    sim.succeed("undo")
    outcome = sim.step().outcome
    assert outcome == Outcome(
        "Compensated", "Compensated", "Story failed; compensations completed."
    )


def test_failed_main_step_without_compensations_is_dependency_failed() -> None:
    """§9.12: the error names the failure type and lists the failed steps."""
    sim = Sim(make_story([eng("a")]))
    outcome = sim.drive({"a": "Failed"})
    assert outcome.phase == "Failed"
    assert outcome.reason == "DependencyFailed"
    assert _names_first_failed(outcome.message, "a")
    assert outcome.error == {
        "type": "DependencyFailed",
        "message": outcome.message,
        "failedSteps": [{"name": "a", "phase": "Failed", "message": "a broke"}],
    }


def test_story_timeout_times_out_and_stops_running_steps() -> None:
    """§9.13, ruling 11: elapsed >= timeout -> Timeout, running StepRuns are stopped."""
    story = make_story([eng("a"), eng("b", "a")], policy={"timeouts": {"story": "1h"}})
    sim = Sim(story, started=T0 - datetime.timedelta(hours=2))
    result = sim.step()
    assert result.outcome is not None
    assert result.outcome.phase == "Timeout"
    assert result.outcome.reason == "TimedOut"
    assert result.outcome.message == "StoryRun exceeded timeout of 1h0m0s."
    assert result.outcome.error == {"type": "TimedOut", "message": result.outcome.message}
    assert result.stop_running
    assert result.steprun_launches == []


def test_story_timeout_wakes_the_run_at_its_deadline() -> None:
    story = make_story([eng("a")], policy={"timeouts": {"story": "1m"}})
    sim = Sim(story, started=T0 - datetime.timedelta(seconds=20))
    result = sim.step()
    assert result.outcome is None
    assert result.wake_after == 40.0
    sim.now = T0 + datetime.timedelta(seconds=40)
    late = sim.step()
    assert late.outcome is not None and late.outcome.phase == "Timeout"
    assert late.stop_running


def test_condition_with_false_if_is_skipped_and_recorded() -> None:
    """§9.14."""
    sim = Sim(make_story([prim("check", "condition", **{"if": "false"})]))
    result = sim.step()
    state = result.states["check"]
    assert state.phase == "Skipped"
    assert state.message == IF_SKIP_MESSAGE
    assert state.started_at == state.finished_at == T0
    assert result.skipped_count == 1


def test_story_concurrency_limit_queues_every_ready_step() -> None:
    """§9.15, ruling 27: one StepRun of the Story is active and the limit is 1."""
    sim = Sim(make_story([eng("a"), eng("b")], policy={"concurrency": 1}))
    result = sim.step(Slots(story_limit=1, story_active=1))
    assert result.steprun_launches == []
    assert len(result.queued) == 2
    for name in ("a", "b"):
        assert result.states[name].phase == "Pending"
        assert result.states[name].message == f"{QUEUED_STORY_PREFIX} (1 running, limit 1)"
    # Queued steps are not running: once the slot frees, the first one launches.
    again = sim.step(Slots(story_limit=1, story_active=0))
    assert [launch.steprun.spec.step_id for launch in again.steprun_launches] == ["a"]
    assert again.states["a"].phase == "Running"
    assert again.states["a"].started_at == T0
    assert again.states["b"].phase == "Pending"


def test_continue_on_failure_skips_the_dependents_of_a_failed_step() -> None:
    """§9.16."""
    story = make_story(
        [eng("fetch-feed"), eng("extract-items", "fetch-feed")], policy=continue_on_failure()
    )
    sim = Sim(story)
    sim.step()
    sim.fail("fetch-feed")
    result = sim.step()
    assert result.states["extract-items"].phase == "Skipped"
    assert "failed dependency" in (result.states["extract-items"].message or "")
    assert result.outcome is not None and result.outcome.reason == "DependencyFailed"


@pytest.mark.parametrize(
    ("branches", "expected"),
    [
        ({"b1": "Succeeded", "b2": "Succeeded"}, ("Succeeded", "Parallel branches completed.")),
        ({"b1": "Succeeded", "b2": "Failed"}, ("Failed", "Parallel branches failed: b2")),
        ({"b1": "Failed", "b2": "Failed"}, ("Failed", "Parallel branches failed: b1, b2")),
        (
            {"b1": "Succeeded", "soft": "Failed"},
            ("Succeeded", "Parallel branches completed with allowed failures."),
        ),
    ],
)
def test_parallel_step_completes_from_its_branches(
    branches: dict[str, str], expected: tuple[str, str]
) -> None:
    """§9.19, ruling 26: children in primitiveChildren; done when every branch is final."""
    specs = [eng(name, **({"allowFailure": True} if name == "soft" else {})) for name in branches]
    sim = Sim(make_story([prim("p", "parallel", **{"with": {"steps": specs}})]))
    first = sim.step()
    assert sorted(sim.launched) == sorted(branches)
    assert first.states["p"].phase == "Running"
    assert first.states["p"].message == "Parallel block expanded"
    assert first.primitive_children == {"p": sorted(compose_name(RUN, "p", b) for b in branches)}
    assert (
        sim.run.status is not None and sim.run.status.primitive_children == first.primitive_children
    )
    names = list(branches)
    # One branch final is not enough.
    _end(sim, names[0], branches[names[0]])
    assert sim.step().states["p"].phase == "Running"
    _end(sim, names[1], branches[names[1]])
    done = sim.step()
    assert (done.states["p"].phase, done.states["p"].message) == expected
    assert done.outcome is not None
    assert done.outcome.phase == ("Succeeded" if expected[0] == "Succeeded" else "Failed")


def _names_first_failed(message: str, name: str) -> bool:
    """§3.12's DependencyFailed message, which may go on with the step's own message."""
    return message.startswith(f"Story completed with failed step: {name}.")


def _end(sim: Sim, step_id: str, phase: str) -> None:
    if phase == "Succeeded":
        sim.succeed(step_id)
    else:
        sim.fail(step_id)


def test_parallel_step_waits_for_a_branch_whose_retry_is_due() -> None:
    """Ruling 6 inside a parallel step: a retryable failure is not final."""
    specs = [eng("b1"), eng("b2")]
    sim = Sim(make_story([prim("p", "parallel", **{"with": {"steps": specs}})]))
    sim.step()
    sim.succeed("b1")
    sim.fail("b2", exit_class="retry")
    result = sim.step()
    assert result.states["p"].phase == "Running"
    assert result.states["b2"].phase == "Running"
    assert result.outcome is None


def test_parallel_step_wider_than_the_story_limit_fails() -> None:
    specs = [eng("b1"), eng("b2"), eng("b3")]
    sim = Sim(make_story([prim("p", "parallel", **{"with": {"steps": specs}})]))
    result = sim.step(Slots(story_limit=2))
    assert result.steprun_launches == []
    assert result.states["p"].phase == "Failed"
    assert "3 branches" in (result.states["p"].message or "")
    assert "limit of 2" in (result.states["p"].message or "")


def test_parallel_step_launches_all_branches_at_once_or_queues() -> None:
    specs = [eng("b1"), eng("b2")]
    sim = Sim(make_story([prim("p", "parallel", **{"with": {"steps": specs}})]))
    queued = sim.step(Slots(story_limit=2, story_active=1))
    assert queued.steprun_launches == []
    assert queued.states["p"].phase == "Pending"
    launched = sim.step(Slots(story_limit=2, story_active=0))
    assert len(launched.steprun_launches) == 2


def test_buckets() -> None:
    """§9.22: allowFailure + Failed is completed and allowed, Paused is running, states of
    other lists are ignored, a queued Pending is not running."""
    story = make_story(
        [
            eng("soft", allowFailure=True),
            eng("hard"),
            prim("pause", "sleep"),
            eng("queued"),
            eng("blocked"),
            eng("ok"),
        ]
    )
    states = {
        "soft": StepState(phase="Failed"),
        "hard": StepState(phase="Timeout"),
        "pause": StepState(phase="Paused"),
        "queued": StepState(phase="Pending", message=f"{QUEUED_STORY_PREFIX} (1 running, limit 1)"),
        "blocked": StepState(phase="Blocked"),
        "ok": StepState(phase="Skipped"),
        "elsewhere": StepState(phase="Failed"),
    }
    buckets = bucket(story.spec.steps, states)
    assert buckets.completed == {"soft", "ok"}
    assert buckets.allowed_failures == {"soft"}
    assert buckets.failed == {"hard"}
    assert buckets.running == {"pause"}


def test_wait_succeeds_when_its_condition_holds() -> None:
    """§9.24 through the pass."""
    story = make_story([prim("w", "wait", **{"with": {"until": "{{ inputs.ready }}"}})])
    sim = Sim(story, inputs={"ready": True})
    result = sim.step()
    assert result.states["w"].phase == "Succeeded"
    assert result.states["w"].message == "Wait condition satisfied."
    assert result.outcome is not None and result.outcome.phase == "Succeeded"


def test_wait_times_out_and_skips() -> None:
    wait = {"until": "{{ inputs.ready }}", "timeout": "1s", "onTimeout": "skip"}
    story = make_story([prim("w", "wait", **{"with": wait})])
    started = T0 - datetime.timedelta(seconds=2)
    status = {"stepStates": {"w": {"phase": "Paused", "startedAt": started}}}
    sim = Sim(story, inputs={"ready": False}, status=status)
    result = sim.step()
    assert result.states["w"].phase == "Skipped"
    assert "timed out" in (result.states["w"].message or "")
    assert "w" not in result.timers


def test_wait_honours_a_stored_deadline() -> None:
    wait = {"until": "{{ inputs.ready }}", "timeout": "1s", "onTimeout": "skip"}
    story = make_story([prim("w", "wait", **{"with": wait})])
    started = T0 - datetime.timedelta(seconds=2)
    stored = encode_timers(
        {"w": decode_timers('{"w":{"waitTimeoutAt":"2025-01-01T12:00:10Z"}}')["w"]}
    )
    assert stored is not None
    sim = Sim(
        story,
        inputs={"ready": False},
        status={"stepStates": {"w": {"phase": "Paused", "startedAt": started}}},
        annotations={keys.ANNOTATION_STEP_TIMERS: stored},
    )
    result = sim.step()
    assert result.states["w"].phase == "Paused"
    assert result.wake_after == 10.0
    assert result.outcome is None


def test_wait_without_poll_interval_wakes_at_the_default_poll() -> None:
    story = make_story([prim("w", "wait", **{"with": {"until": "{{ inputs.ready }}"}})])
    result = Sim(story, inputs={"ready": False}).step()
    assert result.states["w"].phase == "Paused"
    assert result.wake_after == 5.0


def test_sleep_sets_its_deadline_and_wakes_for_the_remaining_time() -> None:
    """§9.25 through the pass: the deadline is stored, wake_after is what remains, the timer
    is pruned when the sleep ends."""
    sim = Sim(make_story([prim("nap", "sleep", **{"with": {"duration": "10s"}})]))
    first = sim.step()
    assert first.states["nap"].phase == "Paused"
    assert first.timers["nap"].sleep_until == T0 + datetime.timedelta(seconds=10)
    assert first.wake_after == 10.0
    second = sim.step()  # T0 + 3s
    assert second.states["nap"].phase == "Paused"
    assert second.wake_after == 7.0
    sim.now = T0 + datetime.timedelta(seconds=10)
    done = sim.step()
    assert done.states["nap"].phase == "Succeeded"
    assert done.states["nap"].message == "Sleep completed."
    assert done.timers == {}
    meta = sim.run.metadata
    assert meta is not None and keys.ANNOTATION_STEP_TIMERS not in (meta.annotations or {})
    assert done.outcome is not None and done.outcome.phase == "Succeeded"


def test_sleep_honours_a_stored_deadline() -> None:
    stored = '{"nap":{"sleepUntil":"2025-01-01T12:01:40Z"}}'
    sim = Sim(
        make_story([prim("nap", "sleep", **{"with": {"duration": "10s"}})]),
        status={"stepStates": {"nap": {"phase": "Paused", "startedAt": T0}}},
        annotations={keys.ANNOTATION_STEP_TIMERS: stored},
    )
    sim.now = T0 + datetime.timedelta(seconds=20)
    result = sim.step()
    assert result.states["nap"].phase == "Paused"
    assert result.wake_after == 80.0


def test_executestory_merges_target_inputs_under_the_step_inputs() -> None:
    """§9.28 (the merge half; spoof detection is the reconciler's)."""
    target = make_story([eng("x")], name="child", policy={"with": {"a": 1, "b": 1}})
    step = prim(
        "sub",
        "executeStory",
        **{"with": {"storyRef": {"name": "child"}, "with": {"b": "{{ inputs.b }}"}}},
    )
    sim = Sim(make_story([step]), inputs={"b": 2}, targets={"sub": target})
    result = sim.step()
    [(name, launch)] = result.subrun_launches
    assert name == "sub"
    assert launch.storyrun.spec.inputs == {"a": 1, "b": 2}
    assert launch.storyrun.spec.story_ref.name == "child"


def test_steprun_template_generation_and_idempotency_key() -> None:
    """§9.29."""
    keyed = eng(
        "notify", idempotencyKeyTemplate="notify-{{ .inputs.orderId }}-{{ .inputs.customerId }}"
    )
    sim = Sim(
        make_story([keyed, eng("plain")]), inputs={"orderId": "order-42", "customerId": "cust-7"}
    )
    result = sim.step()
    by_step = {launch.steprun.spec.step_id: launch.steprun for launch in result.steprun_launches}
    assert by_step["notify"].spec.template_generation == 4
    assert by_step["notify"].spec.idempotency_key == "notify-order-42-cust-7"
    assert by_step["plain"].spec.idempotency_key == steprun_idempotency_key(NS, RUN, "plain")
    missing_template = Sim(make_story([eng("plain")]), templates={}).step()
    [launch] = missing_template.steprun_launches
    assert launch.steprun.spec.template_generation is None


# --- readiness -----------------------------------------------------------------------------


def test_ready_steps_launch_in_declaration_order() -> None:
    story = make_story([eng("c"), eng("a", "b"), eng("b"), eng("d")])
    sim = Sim(story)
    first = sim.step(Slots(story_limit=2))
    assert [launch.steprun.spec.step_id for launch in first.steprun_launches] == ["c", "b"]
    assert first.states["d"].phase == "Pending"
    assert (first.states["d"].message or "").startswith(QUEUED_STORY_PREFIX)
    assert list(first.queued) == ["d"]
    assert "a" not in first.states  # waiting for b: no state at all
    sim.succeed("c")
    sim.succeed("b")
    second = sim.step(Slots(story_limit=2))
    assert [launch.steprun.spec.step_id for launch in second.steprun_launches] == ["a", "d"]


def test_step_waits_for_a_running_dependency() -> None:
    sim = Sim(make_story([eng("a"), eng("b", "a")]))
    sim.step()
    sim.set_steprun("a", "Running")
    result = sim.step()
    assert result.steprun_launches == []
    assert "b" not in result.states


def test_if_skip_does_not_cascade() -> None:
    """Ruling 21: a step skipped by its own `if` counts as completed; dependents run."""
    for policy in (None, continue_on_failure()):
        story = make_story([eng("a", **{"if": "false"}), eng("b", "a")], policy=policy)
        sim = Sim(story)
        result = sim.step()
        assert result.states["a"].phase == "Skipped"
        assert result.states["a"].message == IF_SKIP_MESSAGE
        assert sim.launched == ["b"]


def test_if_reads_inputs_and_outputs() -> None:
    story = make_story(
        [
            eng("a"),
            eng("yes", **{"if": "{{ eq steps.a.output.ok true }}"}),
            eng("no", **{"if": "{{ inputs.flag }}"}),
        ]
    )
    sim = Sim(story, inputs={"flag": False})
    first = sim.step()
    assert first.states["no"].phase == "Skipped"
    assert "yes" not in first.states  # implicit dependency on a
    sim.succeed("a", {"ok": True})
    sim.step()
    assert sim.launched == ["a", "yes"]


def test_if_with_forbidden_function_fails_the_step() -> None:
    story = make_story([eng("a", **{"if": '{{ env "HOME" }}'})])
    result = Sim(story).step()
    assert result.states["a"].phase == "Failed"
    assert "step 'a'" in (result.states["a"].message or "")
    assert result.steprun_launches == []


@pytest.mark.parametrize(
    "condition",
    [
        '{{ index .inputs "a" "b" 7 }}',  # an execution error
        "{{ range 30000000 }}{{ end }}",  # over the step budget
    ],
)
def test_if_that_cannot_evaluate_fails_the_step_instead_of_waiting_forever(
    condition: str,
) -> None:
    """Nothing the condition reads can change any more: waiting (§3.5) would hang the run
    with no condition saying why (found by the hostile-input suite)."""
    story = make_story([eng("a", **{"if": condition})])
    sim = Sim(story)
    result = sim.step()
    assert result.states["a"].phase == "Failed"
    assert (result.states["a"].message or "").startswith("step 'a': if: ")
    assert result.steprun_launches == []
    outcome = sim.drive()
    assert outcome.phase == "Failed" and "step 'a': if: " in outcome.message


def test_if_erring_on_an_output_not_in_the_snapshot_yet_waits() -> None:
    """The run reads `a` Succeeded but its StepRun (and output) is not in the cache yet: the
    error may be that staleness, so the step waits for the next pass."""
    story = make_story([eng("a"), eng("b", **{"if": "{{ gt steps.a.output.n 3 }}"})])
    sim = Sim(story)
    sim.step()
    sim.stepruns.clear()  # the cache has not caught up with it
    sim.set_status(stepStates={"a": {"phase": "Succeeded", "startedAt": T0, "finishedAt": T0}})
    result = sim.step()
    assert "b" not in result.states
    assert result.outcome is None


def test_fail_fast_skips_what_has_not_started_and_lets_running_steps_finish() -> None:
    story = make_story([eng("a"), eng("c"), eng("b", "a"), eng("d", "c")])
    sim = Sim(story)
    sim.step()
    assert sim.launched == ["a", "c"]
    sim.fail("a")
    sim.set_steprun("c", "Running")
    result = sim.step()
    assert result.states["b"].phase == "Skipped"
    assert result.states["b"].message == FAIL_FAST_MESSAGE
    assert result.states["c"].phase == "Running"
    assert result.outcome is None
    sim.succeed("c")
    result = sim.step()
    assert result.states["d"].phase == "Skipped"
    assert result.states["d"].message == FAIL_FAST_MESSAGE
    assert sim.launched == ["a", "c"]
    assert result.outcome is not None and result.outcome.reason == "DependencyFailed"


def test_continue_on_failure_cascades_transitively() -> None:
    """Ruling 21: the skip of a skipped-by-failure step cascades; independent steps run."""
    story = make_story(
        [
            eng("a"),
            eng("b", "a"),
            eng("c", "b"),
            prim("d", "condition", "c"),
            eng("x"),
            eng("y", "x"),
        ],
        policy=continue_on_failure(),
    )
    sim = Sim(story)
    sim.step()
    sim.fail("a")
    sim.set_steprun("x", "Running")
    result = sim.step()
    assert result.states["b"].message == "Skipped due to failed dependency: a"
    assert result.states["c"].message == "Skipped due to failed dependency: b"
    assert result.states["d"].message == "Skipped due to failed dependency: c"
    assert all(result.states[n].phase == "Skipped" for n in "bcd")
    assert result.outcome is None
    sim.succeed("x")
    sim.step()
    assert sim.launched == ["a", "x", "y"]
    sim.succeed("y")
    outcome = sim.step().outcome
    assert outcome is not None and _names_first_failed(outcome.message, "a")


def test_allow_failure_lets_dependents_run_and_the_story_succeed() -> None:
    story = make_story([eng("a", allowFailure=True), eng("b", "a")])
    sim = Sim(story)
    outcome = sim.drive({"a": "Failed"})
    assert sim.launched == ["a", "b"]
    assert outcome == Outcome("Succeeded", "Completed", "Completed with allowed failures: a.")


def test_retryable_failure_with_budget_does_not_read_terminal() -> None:
    """Rulings 6 and 24: no fail-fast, no skip, the state reads Running."""
    story = make_story([eng("a"), eng("b"), eng("c", "a")])
    sim = Sim(story)
    sim.step()
    sim.fail("a", exit_class="retry", retries=1)
    result = sim.step()
    assert result.states["a"].phase == "Running"
    assert result.states["a"].message == RETRY_SCHEDULED_MESSAGE
    assert "c" not in result.states
    assert result.states["b"].phase == "Running"
    assert result.outcome is None
    # The retry succeeds: the run goes on as if nothing happened.
    sim.set_steprun("a", "Succeeded", retries=2, output={})
    sim.step()
    assert sim.launched == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("exit_class", "retries", "max_retries"),
    [("terminal", 0, 3), ("retry", 3, 3), ("rateLimited", 0, 0)],
)
def test_failure_without_retry_due_is_terminal(
    exit_class: str, retries: int, max_retries: int
) -> None:
    sim = Sim(make_story([eng("a"), eng("b", "a")]), default_max_retries=max_retries)
    sim.step()
    sim.fail("a", exit_class=exit_class, retries=retries)
    result = sim.step()
    assert result.states["a"].phase == "Failed"
    assert result.states["b"].message == FAIL_FAST_MESSAGE


def test_terminal_state_never_goes_back() -> None:
    """Ruling 24: a StepRun seen Running again after it failed does not revive the step."""
    sim = Sim(make_story([eng("a"), eng("z")]))
    sim.step()
    sim.fail("a")
    sim.step()
    sim.set_steprun("a", "Running")
    assert sim.step().states["a"].phase == "Failed"


def test_missing_engram_blocks_the_step() -> None:
    """Ruling 10: a missing reference waits, it does not fail."""
    sim = Sim(make_story([eng("a")]), engrams={})
    result = sim.step()
    assert result.states["a"].phase == "Blocked"
    assert result.states["a"].message == f"Waiting for Engram '{ENGRAM_KEY}' to be created"
    assert result.missing == [MissingRef("a", "Engram", NS, "worker")]
    assert result.steprun_launches == []
    assert result.outcome is None
    sim.engrams = {ENGRAM_KEY: ENGRAM}
    later = sim.step()
    assert later.states["a"].phase == "Running"
    assert later.missing == []
    assert sim.launched == ["a"]


def test_input_over_the_inline_limit_fails_the_step() -> None:
    """Ruling 10: a deterministic launch error is persisted, naming the step."""
    sim = Sim(make_story([eng("big", **{"with": {"blob": "x" * 200}})]), max_inline_size=64)
    result = sim.step()
    state = result.states["big"]
    assert state.phase == "Failed"
    assert "step 'big'" in (state.message or "")
    assert "exceeds the max inline limit of 64 bytes" in (state.message or "")
    assert result.steprun_launches == []
    assert result.outcome is not None and result.outcome.reason == "DependencyFailed"


def test_unsupported_step_type_fails_the_step() -> None:
    story = make_story([{"name": "odd"}])
    result = Sim(story).step()
    assert result.states["odd"].phase == "Failed"
    assert "step 'odd'" in (result.states["odd"].message or "")


# --- compensations and finally ---------------------------------------------------------------


def test_compensations_are_skipped_when_the_story_succeeds() -> None:
    story = make_story([eng("a")], compensations=[eng("undo")], finally_=[eng("tidy")])
    sim = Sim(story)
    outcome = sim.drive()
    assert sim.launched == ["a", "tidy"]
    assert sim.phase("undo") == "Skipped"
    assert sim.state("undo").message == COMPENSATION_SKIP_MESSAGE
    assert outcome == Outcome("Succeeded", "Completed", "All steps completed successfully.")


def test_finally_runs_after_compensations_on_failure() -> None:
    story = make_story([eng("a")], compensations=[eng("undo")], finally_=[eng("tidy")])
    sim = Sim(story)
    sim.step()
    sim.fail("a")
    sim.step()
    assert sim.launched == ["a", "undo"]
    sim.set_steprun("undo", "Running")
    sim.step()
    assert sim.launched == ["a", "undo"]  # finally waits for the compensations
    sim.succeed("undo")
    sim.step()
    assert sim.launched == ["a", "undo", "tidy"]
    sim.succeed("tidy")
    outcome = sim.step().outcome
    assert outcome is not None and outcome.phase == "Compensated"


def test_compensation_and_finally_dependencies_accept_failures() -> None:
    """§3.3: in compensation/finally any terminal dependency satisfies."""
    story = make_story(
        [eng("a")],
        compensations=[eng("u1"), eng("u2", "u1")],
        finally_=[eng("f1"), eng("f2", "f1")],
    )
    sim = Sim(story)
    outcome = sim.drive({"a": "Failed", "u1": "Failed", "f1": "Failed"})
    assert sim.launched == ["a", "u1", "u2", "f1", "f2"]
    assert outcome.reason == "CleanupFailed"


@pytest.mark.parametrize(
    ("failing", "phase", "reason", "message"),
    [
        (
            {"main-b", "undo-z", "undo-c", "fin-y", "fin-x"},
            "Failed",
            "CleanupFailed",
            "Finally step fin-x failed.",
        ),
        (
            {"main-b", "undo-z", "undo-c"},
            "Failed",
            "CompensationFailed",
            "Compensation step undo-c failed.",
        ),
        (
            {"main-b", "main-a"},
            "Compensated",
            "Compensated",
            "Story failed; compensations completed.",
        ),
        (set(), "Succeeded", "Completed", "All steps completed successfully."),
    ],
)
def test_final_phase_precedence(failing: set[str], phase: str, reason: str, message: str) -> None:
    """§3.12 with sorted "first failed" names (ruling 9)."""
    story = make_story(
        [eng("main-b"), eng("main-a")],
        compensations=[eng("undo-z"), eng("undo-c")],
        finally_=[eng("fin-y"), eng("fin-x")],
        policy=continue_on_failure(),
    )
    sim = Sim(story)
    outcome = sim.drive(dict.fromkeys(failing, "Failed"))
    assert (outcome.phase, outcome.reason, outcome.message) == (phase, reason, message)
    if phase == "Failed":
        assert outcome.error is not None
        names = [entry["name"] for entry in outcome.error["failedSteps"]]
        assert names == sorted(failing)


def test_dependency_failed_names_the_smallest_failed_step() -> None:
    story = make_story([eng("zeta"), eng("alpha"), eng("mid")], policy=continue_on_failure())
    outcome = Sim(story).drive({"zeta": "Failed", "alpha": "Failed"})
    assert _names_first_failed(outcome.message, "alpha")
    assert outcome.error is not None
    assert [e["name"] for e in outcome.error["failedSteps"]] == ["alpha", "zeta"]


def test_allowed_failures_message_is_sorted() -> None:
    story = make_story(
        [eng("y", allowFailure=True), eng("x", allowFailure=True), eng("ok")],
        finally_=[eng("fin", allowFailure=True)],
    )
    outcome = Sim(story).drive({"y": "Failed", "x": "Failed", "fin": "Failed"})
    assert outcome == Outcome(
        "Succeeded", "Completed", "Completed with allowed failures: fin, x, y."
    )


# --- output ----------------------------------------------------------------------------------


def test_output_is_rendered_from_step_outputs_and_inputs() -> None:
    story = make_story(
        [eng("a")],
        output={"n": "{{ steps.a.output.n }}", "who": "{{ inputs.who }}", "fixed": 1},
    )
    sim = Sim(story, inputs={"who": "me"})
    sim.step()
    sim.succeed("a", {"n": 3})
    outcome = sim.step().outcome
    assert outcome is not None
    assert outcome.phase == "Succeeded"
    assert outcome.output == {"n": 3, "who": "me", "fixed": 1}


def test_output_failing_its_schema_fails_the_run() -> None:
    story = make_story(
        [eng("a")],
        output={"n": "{{ steps.a.output.n }}"},
        outputsSchema={"type": "object", "required": ["m"]},
    )
    sim = Sim(story)
    sim.step()
    sim.succeed("a", {"n": 3})
    outcome = sim.step().outcome
    assert outcome is not None
    assert (outcome.phase, outcome.reason) == ("Failed", "OutputSchemaFailed")
    assert outcome.message.startswith("Story output failed schema validation")
    assert outcome.error is not None and outcome.error["type"] == "OutputSchemaFailed"
    assert outcome.output is None


def test_output_with_forbidden_function_fails_the_run() -> None:
    story = make_story([prim("c", "condition")], output={"x": '{{ env "HOME" }}'})
    outcome = Sim(story).step().outcome
    assert outcome is not None
    assert (outcome.phase, outcome.reason) == ("Failed", "OutputResolutionFailed")


# --- stop ------------------------------------------------------------------------------------


def _stop_story(phase: str | None) -> Story:
    stop_with: dict[str, Any] = {"message": "enough"}
    if phase is not None:
        stop_with["phase"] = phase
    return make_story(
        [
            eng("a"),
            prim("b", "condition"),
            prim("s", "stop", "b", **{"with": stop_with}),
            eng("c", "s"),
            eng("d", "b"),
        ],
        compensations=[eng("undo")],
        finally_=[eng("tidy")],
    )


def test_stop_skips_main_steps_runs_finally_then_ends_with_its_phase() -> None:
    """Rulings 3 and 22."""
    sim = Sim(_stop_story(None))
    first = sim.step()
    stopped = "Skipped because the story was stopped by step 's'"
    assert first.states["s"].phase == "Succeeded"
    assert first.states["s"].message == "enough"
    for name in ("a", "c", "d"):
        assert first.states[name].phase == "Skipped", name
        assert first.states[name].message == stopped
    assert first.states["undo"].phase == "Skipped"
    assert first.stop_running  # a's StepRun is still running
    assert sim.launched == ["a", "tidy"]
    assert first.outcome is None  # finally still runs
    sim.succeed("a")
    sim.succeed("tidy")
    outcome = sim.step().outcome
    assert outcome == Outcome("Succeeded", "Completed", "enough")
    assert sim.launched == ["a", "tidy"]


def test_stop_with_failed_phase_does_not_start_compensations() -> None:
    """Rulings 22 and 31."""
    sim = Sim(_stop_story("Failed"))
    sim.step()
    sim.fail("a", exit_class="terminal")
    sim.succeed("tidy")
    outcome = sim.step().outcome
    assert sim.launched == ["a", "tidy"]
    assert outcome is not None
    assert (outcome.phase, outcome.reason, outcome.message) == (
        "Failed",
        "ExecutionFailed",
        "enough",
    )
    assert outcome.error is not None
    assert outcome.error["type"] == "ExecutionFailed"
    assert "s" in [entry["name"] for entry in outcome.error["failedSteps"]]


def test_stop_with_invalid_phase_fails_the_step() -> None:
    story = make_story([prim("s", "stop", **{"with": {"phase": "Sideways"}})])
    result = Sim(story).step()
    assert result.states["s"].phase == "Failed"
    assert "step 's'" in (result.states["s"].message or "")
    assert result.outcome is not None and result.outcome.reason == "DependencyFailed"


# --- gate --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "note", "phase", "run_phase"),
    [("Approved", "ok", "Succeeded", "Succeeded"), ("Rejected", "nope", "Failed", "Failed")],
)
def test_gate_follows_its_decision(decision: str, note: str, phase: str, run_phase: str) -> None:
    """§9.23 through the pass."""
    sim = Sim(make_story([prim("g", "gate"), eng("after", "g")]))
    first = sim.step()
    assert first.states["g"].phase == "Paused"
    assert first.states["g"].message == "Waiting for gate decision."
    assert first.wake_after is None  # a gate decision arrives by watch (ruling 8)
    assert sim.step().states["g"].phase == "Paused"
    sim.set_status(gates={"g": {"state": decision, "message": note}})
    result = sim.step()
    assert (result.states["g"].phase, result.states["g"].message) == (phase, note)
    if decision == "Approved":
        assert sim.launched == ["after"]
        sim.succeed("after")
        result = sim.step()
    assert result.outcome is not None and result.outcome.phase == run_phase


# --- executeStory ------------------------------------------------------------------------------


def test_executestory_waits_for_its_child_and_copies_its_phase() -> None:
    target = make_story([eng("x")], name="child")
    step = prim("sub", "executeStory", **{"with": {"storyRef": {"name": "child"}}})
    sim = Sim(make_story([step]), targets={"sub": target})
    first = sim.step()
    child = compose_name(RUN, "sub")
    assert [name for name, _ in first.subrun_launches] == ["sub"]
    assert first.states["sub"].phase == "Running"
    assert first.states["sub"].sub_story_run_name == child
    assert first.states["sub"].message == f"Waiting for sub-story run '{child}' to complete"
    assert child in sim.child_runs
    assert sim.step().subrun_launches == []  # recorded: not launched again
    sim.set_child(child, "Failed", "child broke")
    done = sim.step()
    assert (done.states["sub"].phase, done.states["sub"].message) == ("Failed", "child broke")
    assert done.outcome is not None and done.outcome.reason == "DependencyFailed"


def test_executestory_without_waiting_succeeds_at_launch() -> None:
    target = make_story([eng("x")], name="child")
    step = prim(
        "sub",
        "executeStory",
        **{"with": {"storyRef": {"name": "child"}, "waitForCompletion": False}},
    )
    sim = Sim(make_story([step]), targets={"sub": target})
    result = sim.step()
    child = compose_name(RUN, "sub")
    assert len(result.subrun_launches) == 1
    assert result.states["sub"].phase == "Succeeded"
    assert result.states["sub"].message == f"Launched sub-story run '{child}'"
    assert result.outcome is not None and result.outcome.phase == "Succeeded"


def test_executestory_child_output_feeds_later_steps() -> None:
    target = make_story([eng("x")], name="child")
    step = prim("sub", "executeStory", **{"with": {"storyRef": {"name": "child"}}})
    story = make_story([step], output={"got": "{{ steps.sub.output.v }}"})
    sim = Sim(story, targets={"sub": target})
    sim.step()
    child = compose_name(RUN, "sub")
    sim.set_child(child, "Succeeded", "done")
    sim.child_runs[child] = msgspec.structs.replace(
        sim.child_runs[child],
        status=msgspec.convert({"phase": "Succeeded", "output": {"v": 7}}, StoryRunStatus),
    )
    outcome = sim.step().outcome
    assert outcome is not None and outcome.output == {"got": 7}


def test_executestory_with_a_missing_story_is_blocked() -> None:
    step = prim("sub", "executeStory", **{"with": {"storyRef": {"name": "ghost"}}})
    result = Sim(make_story([step])).step()
    assert result.states["sub"].phase == "Blocked"
    assert result.missing == [MissingRef("sub", "Story", NS, "ghost")]
    assert result.subrun_launches == []


def test_stop_in_the_launching_pass_still_stops_what_it_launched() -> None:
    """Ruling 3: a StepRun launched earlier in the same pass as the stop is canceled too,
    and a step ready alongside the stop (declared after it) is skipped, not launched."""
    story = make_story([eng("a"), prim("s", "stop"), eng("late")])
    result = Sim(story).step()
    assert [launch.steprun.spec.step_id for launch in result.steprun_launches] == ["a"]
    assert result.states["late"].phase == "Skipped"
    assert result.outcome is not None
    assert result.outcome.message == "Story execution stopped by step 's' with phase 'Succeeded'"
    assert result.stop_running


# --- properties: random DAGs played to the end ---------------------------------------------------

ENGRAM_OUTCOMES = ("ok", "ok", "fail", "retry-ok", "retry-fail")
MAIN_KINDS = (
    "engram",
    "engram",
    "engram",
    "condition",
    "sleep",
    "gate",
    "parallel",
    "stop",
    "executeStory",
)
CHILD_STORY = make_story([eng("x")], name="child")


class Plan:
    """A random Story and how each of its StepRuns and gates will end."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}
        self.delays: dict[str, int] = {}
        self.gates: dict[str, str] = {}
        self.children: dict[str, str] = {}
        """executeStory step -> the terminal phase of its sub-run."""
        self.parent: dict[str, str] = {}
        """Parallel branch -> its parallel step."""
        self.story: Story | None = None
        self.limit = 0

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        spec = msgspec.to_builtins(self.story.spec) if self.story else None
        return (
            f"Plan(limit={self.limit}, outcomes={self.outcomes}, gates={self.gates}, spec={spec})"
        )


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    plan = Plan()

    def engram_outcome(name: str) -> None:
        plan.outcomes[name] = draw(st.sampled_from(ENGRAM_OUTCOMES))
        plan.delays[name] = draw(st.integers(0, 2))

    def make(name: str, earlier: list[str], kinds: tuple[str, ...]) -> dict[str, Any]:
        kind = draw(st.sampled_from(kinds))
        step: dict[str, Any] = {"name": name}
        if earlier:
            needs = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3))
            if needs:
                step["needs"] = needs
        if draw(st.integers(0, 4)) == 0:
            step["allowFailure"] = True
        if kind == "engram":
            step["ref"] = {"name": "worker"}
            engram_outcome(name)
            condition = draw(st.sampled_from((None, None, "{{ inputs.go }}", "{{ inputs.halt }}")))
            if condition:
                step["if"] = condition
        elif kind == "condition":
            step["type"] = "condition"
            condition = draw(st.sampled_from((None, "true", "false")))
            if condition:
                step["if"] = condition
        elif kind == "sleep":
            step["type"] = "sleep"
            step["with"] = {"duration": draw(st.sampled_from(("1s", "5s")))}
        elif kind == "gate":
            step["type"] = "gate"
            plan.gates[name] = draw(st.sampled_from(("Approved", "Rejected")))
        elif kind == "parallel":
            branches = []
            for j in range(draw(st.integers(1, 3))):
                branch: dict[str, Any] = {"name": f"{name}b{j}", "ref": {"name": "worker"}}
                if draw(st.booleans()):
                    branch["allowFailure"] = True
                engram_outcome(branch["name"])
                plan.parent[branch["name"]] = name
                branches.append(branch)
            step["type"] = "parallel"
            step["with"] = {"steps": branches}
        elif kind == "executeStory":
            step["type"] = "executeStory"
            wait = draw(st.booleans())
            step["with"] = {"storyRef": {"name": "child"}, "waitForCompletion": wait}
            plan.children[name] = draw(st.sampled_from(("Succeeded", "Failed")))
        else:
            step["type"] = "stop"
            step["with"] = {"phase": draw(st.sampled_from(("Succeeded", "Failed")))}
        return step

    def group(prefix: str, count: int, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = []
        for i in range(count):
            steps.append(make(f"{prefix}{i}", [s["name"] for s in steps], kinds))
        return steps

    main = group("s", draw(st.integers(1, 6)), MAIN_KINDS)
    compensations = group("c", draw(st.integers(0, 2)), ("engram", "condition"))
    final = group("f", draw(st.integers(0, 2)), ("engram", "condition", "sleep"))
    policy: dict[str, Any] = {}
    if draw(st.booleans()):
        policy = continue_on_failure()
    if draw(st.integers(0, 5)) == 0:
        policy["timeouts"] = {"story": "30s"}
    plan.limit = draw(st.integers(0, 3))
    if plan.limit:
        policy["concurrency"] = plan.limit
    plan.story = make_story(
        main, compensations=compensations or None, finally_=final or None, policy=policy or None
    )
    return plan


def _owner(plan: Plan, step_id: str) -> str:
    return plan.parent.get(step_id, step_id)


def _stepruns_final(plan: Plan, given: PassInput, step: str) -> bool:
    """Every StepRun standing for `step` (itself, or its branches) is final in the snapshot."""
    mine = [sr for sr in given.stepruns if _owner(plan, sr.spec.step_id) == step]
    return all(is_final(sr, given.default_max_retries) for sr in mine)


def _check_pass(plan: Plan, given: PassInput, result: PassResult) -> None:
    graph = given.graph
    assert plan.story is not None
    spec = plan.story.spec
    before = (given.run.status.step_states if given.run.status else None) or {}
    for launch in result.steprun_launches:
        step = _owner(plan, launch.steprun.spec.step_id)
        for dep in graph.deps.get(step, ()):
            state = result.states.get(dep)
            assert state is not None and is_terminal(state.phase), f"{step} launched before {dep}"
            assert _stepruns_final(plan, given, dep), f"{step} launched before {dep}'s StepRuns"
        if graph.group_of[step] == "compensation":
            stop = next(
                (
                    s
                    for s in spec.steps
                    if s.type == "stop"
                    and s.name in result.states
                    and not (result.states[s.name].message or "").startswith("Skipped")
                    and is_terminal(result.states[s.name].phase)
                ),
                None,
            )
            assert stop is None, "ruling 31: no compensation after a stop"
    for steprun in given.stepruns:
        status = steprun.status
        terminal_before = steprun.spec.step_id in before and is_terminal(
            before[steprun.spec.step_id].phase
        )
        if status is not None and is_terminal(status.phase) and not is_final(steprun, 3):
            state = result.states[steprun.spec.step_id]
            stopped = (state.message or "").startswith("Skipped because the story was stopped")
            if not terminal_before and not stopped:  # ruling 24: retries are invisible
                assert not is_terminal(state.phase), f"{steprun.spec.step_id} reads {state.phase}"


def _advance(sim: Sim, plan: Plan, ages: dict[str, int]) -> None:
    """The StepRun controller and the gate approvers, one tick."""
    for name, steprun in list(sim.stepruns.items()):
        status = steprun.status
        step_id = steprun.spec.step_id
        if status is None:
            ages[name] = 0
            sim.set_steprun(step_id, "Pending")
            continue
        if is_final(steprun, sim.default_max_retries):
            continue
        if sim.stop_requested:
            sim.set_steprun(step_id, "Canceled", retries=status.retries or 0)
            continue
        ages[name] += 1
        if ages[name] <= plan.delays[step_id]:
            continue
        outcome = plan.outcomes[step_id]
        retries = status.retries or 0
        if status.phase == "Failed":  # a retry was due: the next attempt waits (§9.31)
            sim.set_steprun(step_id, "Pending", retries=retries + 1)
        elif status.phase == "Pending":
            sim.set_steprun(step_id, "Running", retries=retries)
        elif outcome.startswith("retry") and retries == 0:
            sim.fail(step_id, exit_class="retry", retries=0)
        elif outcome.endswith("ok"):
            sim.set_steprun(step_id, "Succeeded", retries=retries, output={"ok": True})
        else:
            sim.fail(step_id, retries=retries)
    for name, child in list(sim.child_runs.items()):
        if child.status is None:
            sim.set_child(name, "Running")
        elif not is_terminal(child.status.phase):
            labels = (child.metadata.labels if child.metadata else None) or {}
            parent = labels.get(keys.LABEL_PARENT_STEP, "")
            sim.set_child(name, plan.children[parent], f"child {name} ended")
    states = (sim.run.status.step_states if sim.run.status else None) or {}
    decisions = {
        name: {"state": verdict, "message": verdict.lower()}
        for name, verdict in plan.gates.items()
        if name in states and states[name].phase == "Paused"
    }
    if decisions:
        sim.set_status(gates=decisions)


def simulate(plan: Plan) -> Sim:
    assert plan.story is not None
    targets = dict.fromkeys(plan.children, CHILD_STORY)
    sim = Sim(plan.story, inputs={"go": True, "halt": False}, targets=targets)
    ages: dict[str, int] = {}
    size = len(plan.story.spec.steps) + len(plan.parent) + 4
    for _ in range(10 * size):
        given = sim.given(Slots(story_limit=plan.limit, story_active=sim.non_final()))
        result = run_pass(given)
        _check_pass(plan, given, result)
        sim.apply(result)  # asserts that no StepRun is launched twice
        sim.now += TICK
        if plan.limit:
            assert sim.non_final() <= plan.limit, "story concurrency limit passed"
        if sim.outcome is not None:
            break
        _advance(sim, plan, ages)
    assert sim.outcome is not None, "the run did not end"
    return sim


PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(plans())
def test_random_runs_end_and_respect_dependencies_and_limits(plan: Plan) -> None:
    sim = simulate(plan)
    assert sim.outcome is not None
    launched = sim.launched
    assert len(launched) == len(set(launched)), "a step was launched twice"
    if not sim.stop_requested:
        assert sim.non_final() == 0, "the run ended with StepRuns still running"


@PROPERTY_SETTINGS
@given(plans())
def test_random_runs_end_in_a_phase_their_states_explain(plan: Plan) -> None:
    sim = simulate(plan)
    outcome = sim.outcome
    assert outcome is not None and plan.story is not None
    spec = plan.story.spec
    states = (sim.run.status.step_states if sim.run.status else None) or {}
    every = [*spec.steps, *(spec.compensations or ()), *(spec.finally_ or ())]
    if outcome.phase == "Timeout":
        assert outcome.reason == "TimedOut" and sim.stop_requested
        return
    unfinished = [s.name for s in every if not is_terminal(states[s.name].phase)]
    assert not unfinished, f"steps left unfinished: {unfinished}"
    stopped = [
        s
        for s in spec.steps
        if s.type == "stop" and not (states[s.name].message or "").startswith("Skipped")
    ]
    hard = sorted(
        s.name
        for s in spec.steps
        if states[s.name].phase not in ("Succeeded", "Skipped") and not s.allow_failure
    )
    fin = [
        s for s in spec.finally_ or () if states[s.name].phase == "Failed" and not s.allow_failure
    ]
    if fin:
        assert outcome.reason == "CleanupFailed"
    elif stopped:
        assert outcome.phase == (((stopped[0].with_ or {}).get("phase")) or "Succeeded")
    elif hard and spec.compensations:
        assert outcome.phase in ("Compensated", "Failed")
    elif hard:
        assert _names_first_failed(outcome.message, hard[0])
    else:
        assert outcome.phase == "Succeeded"


def test_stop_cancels_a_steprun_whose_retry_is_due() -> None:
    """Rulings 3 and 6: a failed StepRun about to be retried is still running work."""
    sim = Sim(make_story([eng("a"), prim("gate", "gate"), prim("s", "stop", "gate")]))
    sim.step()
    sim.fail("a", exit_class="retry")
    assert sim.step().outcome is None
    sim.set_status(gates={"gate": {"state": "Approved"}})
    result = sim.step()
    assert result.outcome is not None and result.outcome.phase == "Succeeded"
    assert result.stop_running


def test_fail_fast_keeps_a_step_whose_steprun_is_pending() -> None:
    """§3.4: Pending (not queued) is running; skipping it would end the run while its
    StepRun still runs, unseen and never canceled."""
    sim = Sim(make_story([eng("a"), prim("g", "gate")]))
    sim.step()
    sim.set_steprun("a", "Pending")
    sim.set_status(gates={"g": {"state": "Rejected"}})
    result = sim.step()
    assert result.states["g"].phase == "Failed"
    assert result.states["a"].phase == "Pending"
    assert result.outcome is None
    sim.succeed("a")
    outcome = sim.step().outcome
    assert outcome is not None and _names_first_failed(outcome.message, "g")
