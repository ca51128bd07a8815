"""Scheduling limits: queue and priority decisions, aging, the hard limits (ruling 27)."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runs_controller.api.bubustack.story import Step, Story, StoryPolicy, StorySpec
from runs_controller.api.meta import ObjectMeta
from runs_controller.api.refs import EngramReference, StoryReference
from runs_controller.api.runs.storyrun import StepState, StoryRun, StoryRunSpec, StoryRunStatus
from runs_controller.dag.limits import (
    QUEUED_PREFIXES,
    LimitOutcome,
    RunDemand,
    SchedulingDecision,
    apply_limits,
    effective_priority,
    higher_priority_waiting,
    is_queued_message,
    is_queued_state,
    priority_from_labels,
    queue_labels,
    queued_since,
    run_demand,
    scheduling_decision,
    story_concurrency_limit,
)
from runs_controller.engine.naming import safe_label_value
from runs_controller.engine.operator_config import OperatorConfig, parse_operator_config

NOW = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC)


def one_each(_: str) -> int:
    return 1


def story(
    queue: str | None = None, priority: int | None = None, concurrency: int | None = None
) -> Story:
    policy = None
    if (queue, priority, concurrency) != (None, None, None):
        policy = StoryPolicy(queue=queue, priority=priority, concurrency=concurrency)
    steps = [
        Step(name="step-a", ref=EngramReference(name="echo")),
        Step(name="step-b", ref=EngramReference(name="echo")),
    ]
    return Story(metadata=ObjectMeta(name="story"), spec=StorySpec(steps=steps, policy=policy))


def limits(
    ready: list[str],
    *,
    story_limit: int = 0,
    story_active: int = 0,
    global_limit: int = 0,
    global_active: int = 0,
    queue_limit: int = 0,
    queue_active: int = 0,
    waiting: bool = False,
    cost: Callable[[str], int] = one_each,
) -> LimitOutcome:
    return apply_limits(
        ready,
        story_limit=story_limit,
        story_active=story_active,
        global_limit=global_limit,
        global_active=global_active,
        queue_limit=queue_limit,
        queue_active=queue_active,
        higher_priority_waiting=waiting,
        slot_cost=cost,
    )


# --- scheduling decision and labels ----------------------------------------------------------


def test_a_story_without_policy_goes_to_the_default_queue_at_its_default_priority() -> None:
    config, _ = parse_operator_config({"storyrun.queue.default.default-priority": "4"})
    assert scheduling_decision(story(), config) == SchedulingDecision("default", 4)
    assert scheduling_decision(story(), OperatorConfig()) == SchedulingDecision("default", 0)


def test_the_queue_is_trimmed_and_lowercased_and_brings_its_default_priority() -> None:
    config, _ = parse_operator_config({"storyrun.queue.batch.default-priority": "7"})
    assert scheduling_decision(story(queue=" Batch "), config) == SchedulingDecision("batch", 7)
    assert scheduling_decision(story(queue="batch", priority=2), config).priority == 2
    assert scheduling_decision(story(queue="  "), config) == SchedulingDecision("default", 0)


def test_a_sub_story_inherits_what_its_story_leaves_unset() -> None:
    config, _ = parse_operator_config({"storyrun.queue.batch.default-priority": "7"})
    parent = SchedulingDecision("urgent", 9)
    assert scheduling_decision(story(), config, parent) == parent
    # Its own priority, the parent's queue.
    assert scheduling_decision(story(priority=1), config, parent) == SchedulingDecision("urgent", 1)
    # Its own queue brings that queue's default priority, not the parent's.
    assert scheduling_decision(story(queue="batch"), config, parent) == SchedulingDecision(
        "batch", 7
    )


def test_queue_labels() -> None:
    assert queue_labels(SchedulingDecision("batch", 7)) == {
        "bubustack.io/queue": "batch",
        "bubustack.io/queue-priority": "7",
    }
    assert queue_labels(SchedulingDecision("", 0))["bubustack.io/queue"] == "default"
    assert queue_labels(SchedulingDecision("Team_A", -3)) == {
        "bubustack.io/queue": "team-a",
        "bubustack.io/queue-priority": "-3",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [  # golden vectors of the reference's SafeLabelValue (spec/conformance/naming.jsonl)
        ("", "resource"),
        ("!!!", "resource"),
        ("Hello World", "hello-world"),
        ("foo-_-bar", "foo-bar"),
        ("ǅemo", "emo"),
        ("İstanbul", "istanbul"),
        ("straße", "stra-e"),
        ("a" * 64, "a" * 52 + "-ffe054fe7a"),
        (
            '6mr"9l99h5313ajxéq01+ltq8ggzvHXvk83upnSheso7i4r_cf5X5ruarq3vm44-2qsiEqlkßrShk09mq',
            "6mr-9l99h5313ajx-q01-ltq8ggzvhxvk83upnsheso7i4r-cf5x-57a52a7b81",
        ),
    ],
)
def test_queue_label_value_matches_the_reference(value: str, expected: str) -> None:
    assert safe_label_value(value) == expected


def test_priority_from_labels_reads_an_int32_or_zero() -> None:
    assert priority_from_labels({"bubustack.io/queue-priority": " 12 "}) == 12
    assert priority_from_labels({"bubustack.io/queue-priority": "-2"}) == -2
    assert priority_from_labels({"bubustack.io/queue-priority": "high"}) == 0
    assert priority_from_labels({"bubustack.io/queue-priority": "2147483648"}) == 0
    assert priority_from_labels(None) == 0


def test_story_concurrency_limit() -> None:
    assert story_concurrency_limit(story(concurrency=3)) == 3
    assert story_concurrency_limit(story(concurrency=-1)) == 0
    assert story_concurrency_limit(story()) == 0


# --- aging and priority ordering -------------------------------------------------------------


def test_effective_priority_gains_a_level_per_full_aging_period() -> None:
    assert effective_priority(1, NOW - datetime.timedelta(seconds=119.9), NOW, 60) == 2
    assert effective_priority(1, NOW - datetime.timedelta(seconds=120), NOW, 60) == 3
    assert effective_priority(1, NOW - datetime.timedelta(seconds=59), NOW, 60) == 1
    assert effective_priority(1, None, NOW, 60) == 1
    assert effective_priority(1, NOW - datetime.timedelta(hours=1), NOW, 0) == 1
    assert effective_priority(1, NOW + datetime.timedelta(hours=1), NOW, 60) == 1


def run(
    name: str,
    priority: int,
    phase: str | None,
    states: dict[str, StepState] | None = None,
) -> StoryRun:
    return StoryRun(
        metadata=ObjectMeta(
            name=name,
            namespace="default",
            labels={"bubustack.io/queue": "default", "bubustack.io/queue-priority": str(priority)},
        ),
        spec=StoryRunSpec(story_ref=StoryReference(name="story")),
        status=StoryRunStatus(phase=phase, step_states=states),
    )


def test_behaviour_17_a_lower_priority_run_waits_for_a_higher_running_one() -> None:
    high = run_demand(run("high", 10, "Running"))
    low = run_demand(run("low", 1, "Pending"))
    assert higher_priority_waiting(low, [high, low], NOW, 60)
    outcome = limits(["step-a", "step-b"], waiting=True)
    assert outcome.launch == ()
    assert dict(outcome.queued) == {
        "step-a": "Queued due to higher-priority work",
        "step-b": "Queued due to higher-priority work",
    }
    assert not higher_priority_waiting(high, [high, low], NOW, 60)


def test_behaviour_18_an_aged_run_is_not_blocked() -> None:
    queued = StepState(
        phase="Pending",
        message="Queued due to higher-priority work",
        started_at=NOW - datetime.timedelta(minutes=2),
    )
    high = run_demand(run("high", 2, "Running"))
    low = run_demand(run("low", 1, "Pending", {"queued": queued}))
    assert low.queued_since == NOW - datetime.timedelta(minutes=2)
    assert not higher_priority_waiting(low, [high], NOW, 60)  # 1 + 2 levels = 3 > 2
    assert higher_priority_waiting(low, [high], NOW, 0)  # without aging it waits


def test_only_other_runs_with_demand_count() -> None:
    own = RunDemand("ns/a", 1, None, True)
    assert not higher_priority_waiting(own, [RunDemand("ns/a", 9, None, True)], NOW, 60)
    assert not higher_priority_waiting(own, [RunDemand("ns/b", 9, None, False)], NOW, 60)
    assert not higher_priority_waiting(own, [RunDemand("ns/b", 1, None, True)], NOW, 60)
    assert higher_priority_waiting(own, [RunDemand("other/a", 2, None, True)], NOW, 60)


def test_run_demand() -> None:
    running = StepState(phase="Running")
    assert run_demand(run("r", 3, "Running")) == RunDemand("default/r", 3, None, True)
    assert not run_demand(run("r", 3, "Succeeded", {"x": running})).has_demand
    assert run_demand(run("r", 3, None, {"x": running})).has_demand
    assert not run_demand(run("r", 3, "Paused", {"x": StepState(phase="Paused")})).has_demand


def test_queued_since_is_the_earliest_queued_step() -> None:
    early, late = NOW - datetime.timedelta(minutes=5), NOW - datetime.timedelta(minutes=1)
    states = {
        "a": StepState(phase="Pending", message=QUEUED_PREFIXES[0] + " (1 running, limit 1)"),
        "b": StepState(phase="Pending", message=QUEUED_PREFIXES[3], started_at=late),
        "c": StepState(phase="Pending", message=QUEUED_PREFIXES[1] + " (x)", started_at=early),
        "d": StepState(
            phase="Running",
            message=QUEUED_PREFIXES[3],
            started_at=early - datetime.timedelta(hours=1),
        ),
    }
    assert queued_since(states) == early
    assert queued_since({}) is None


def test_queued_messages_are_recognised_by_prefix_only() -> None:
    for prefix in QUEUED_PREFIXES:
        assert is_queued_message(prefix + " (2 running, limit 2)")
    assert not is_queued_message("Queued due to scheduling limits")
    assert not is_queued_message("")
    assert not is_queued_message(None)
    assert is_queued_state(StepState(phase="Pending", message=QUEUED_PREFIXES[2]))
    assert not is_queued_state(StepState(phase="Running", message=QUEUED_PREFIXES[2]))


# --- the limits ------------------------------------------------------------------------------


def test_behaviour_15_a_full_story_queues_both_ready_steps() -> None:
    limit = story_concurrency_limit(story(concurrency=1))
    outcome = limits(["step-a", "step-b"], story_limit=limit, story_active=1)
    assert outcome.launch == ()
    message = "Queued due to story concurrency limit (1 running, limit 1)"
    assert dict(outcome.queued) == {"step-a": message, "step-b": message}
    assert len(outcome.queued) == 2


def test_the_story_limit_cuts_in_declaration_order() -> None:
    outcome = limits(["a", "b", "c"], story_limit=3, story_active=1)
    assert outcome.launch == ("a", "b")
    assert dict(outcome.queued) == {
        "c": "Queued due to story concurrency limit (1 running, limit 3)"
    }


def test_no_limits_launch_everything() -> None:
    assert limits(["a", "b"], story_active=50, global_active=50, queue_active=50) == LimitOutcome(
        launch=("a", "b")
    )


def test_the_tighter_of_global_and_queue_names_the_message() -> None:
    outcome = limits(
        ["a", "b", "c"], global_limit=5, global_active=4, queue_limit=4, queue_active=2
    )
    assert outcome.launch == ("a",)
    assert set(outcome.queued.values()) == {
        "Queued due to global concurrency limit (4 running, limit 5)"
    }
    outcome = limits(
        ["a", "b", "c"], global_limit=5, global_active=2, queue_limit=4, queue_active=3
    )
    assert outcome.launch == ("a",)
    assert set(outcome.queued.values()) == {
        "Queued due to queue concurrency limit (3 running, limit 4)"
    }
    # Equal headroom: the global limit is named, as in the reference.
    outcome = limits(["a", "b"], global_limit=2, global_active=1, queue_limit=3, queue_active=2)
    assert set(outcome.queued.values()) == {
        "Queued due to global concurrency limit (1 running, limit 2)"
    }
    outcome = limits(["a", "b"], queue_limit=1, queue_active=1)
    assert set(outcome.queued.values()) == {
        "Queued due to queue concurrency limit (1 running, limit 1)"
    }


def test_each_step_gets_the_message_of_the_check_that_queued_it() -> None:
    outcome = limits(
        ["a", "b", "c", "d"], story_limit=3, story_active=0, global_limit=2, global_active=0
    )
    assert outcome.launch == ("a", "b")
    assert list(outcome.queued.items()) == [
        ("c", "Queued due to global concurrency limit (0 running, limit 2)"),
        ("d", "Queued due to story concurrency limit (0 running, limit 3)"),
    ]


def test_steps_without_stepruns_launch_before_the_cut_and_queue_after_it() -> None:
    costs = {"cond": 0, "eng1": 1, "sleep": 0, "eng2": 1, "gate": 0}
    outcome = limits(list(costs), story_limit=2, story_active=1, cost=costs.__getitem__)
    assert outcome.launch == ("cond", "eng1", "sleep")
    assert list(outcome.queued) == ["eng2", "gate"]
    # With no slot left a leading primitive still runs; it creates no StepRun.
    outcome = limits(list(costs), story_limit=1, story_active=1, cost=costs.__getitem__)
    assert outcome.launch == ("cond",)
    outcome = limits(list(costs), waiting=True, cost=costs.__getitem__)
    assert outcome.launch == ("cond",)
    assert set(outcome.queued.values()) == {"Queued due to higher-priority work"}


def test_a_parallel_step_needs_a_slot_per_branch() -> None:
    costs = {"fan-out": 3, "after": 1}
    assert limits(list(costs), queue_limit=4, queue_active=1, cost=costs.__getitem__).launch == (
        "fan-out",
    )
    # Wider than the headroom: it waits, and nothing after it overtakes it.
    outcome = limits(list(costs), queue_limit=4, queue_active=2, cost=costs.__getitem__)
    assert outcome.launch == ()
    assert list(outcome.queued) == ["fan-out", "after"]


def test_a_negative_cost_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        limits(["a"], cost=lambda _: -1)


# --- properties ------------------------------------------------------------------------------

NAMES = st.lists(st.text("abcdefgh", min_size=1, max_size=3), unique=True, max_size=12)
COUNT = st.integers(min_value=-2, max_value=12)


@given(
    ready=NAMES,
    costs=st.lists(st.integers(0, 3), min_size=12, max_size=12),
    story_limit=COUNT,
    story_active=COUNT,
    global_limit=COUNT,
    global_active=COUNT,
    queue_limit=COUNT,
    queue_active=COUNT,
    waiting=st.booleans(),
)
def test_limits_are_hard_and_keep_declaration_order(
    ready: list[str],
    costs: list[int],
    story_limit: int,
    story_active: int,
    global_limit: int,
    global_active: int,
    queue_limit: int,
    queue_active: int,
    waiting: bool,
) -> None:
    cost = dict(zip(ready, costs, strict=False))
    outcome = limits(
        ready,
        story_limit=story_limit,
        story_active=story_active,
        global_limit=global_limit,
        global_active=global_active,
        queue_limit=queue_limit,
        queue_active=queue_active,
        waiting=waiting,
        cost=cost.__getitem__,
    )
    launched = sum(cost[step] for step in outcome.launch)
    for limit, active in (
        (story_limit, story_active),
        (global_limit, global_active),
        (queue_limit, queue_active),
    ):
        if limit > 0:
            assert launched <= max(limit - active, 0)
    if waiting:
        assert launched == 0
    # Launched steps are the front of the ready list; everything else is queued, in order.
    assert outcome.launch == tuple(ready[: len(outcome.launch)])
    assert list(outcome.queued) == ready[len(outcome.launch) :]
    assert all(is_queued_message(message) for message in outcome.queued.values())


@given(ready=NAMES, active=st.integers(0, 1000), waiting_costs=st.booleans())
def test_a_zero_limit_is_no_limit(ready: list[str], active: int, waiting_costs: bool) -> None:
    outcome = limits(
        ready,
        story_limit=0,
        story_active=active,
        global_limit=0,
        global_active=active,
        queue_limit=0,
        queue_active=active,
        cost=(lambda _: 1) if waiting_costs else (lambda _: 0),
    )
    assert outcome.launch == tuple(ready)
    assert dict(outcome.queued) == {}


@given(ready=NAMES, limit=st.integers(1, 12), active=st.integers(0, 12))
def test_free_slots_are_used(ready: list[str], limit: int, active: int) -> None:
    outcome = limits(ready, story_limit=limit, story_active=active)
    assert len(outcome.launch) == min(len(ready), max(limit - active, 0))
