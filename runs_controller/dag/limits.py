"""Scheduling limits of a StoryRun's ready steps: queue, priority, concurrency (contract 3.6).

Pure decisions over counts the reconciler gathers. Ruling 27 makes every limit hard: the counts
are the non-terminal StepRuns (any phase, also one created a moment ago) of the Story, the
queue or the cluster, and the reconciler serialises launch decisions per Story and per queue,
so `active + launched` never passes a limit. The messages keep the reference's wording
("R running") although R counts every non-terminal StepRun.

Which ready steps use a slot: a slot is one StepRun. An engram step creates one, a parallel
step one per branch (all branches start together), every other primitive none; the caller
says so through `slot_cost`. The ready list is cut at the first step whose StepRuns do not fit,
so launching keeps declaration order; steps that need no slot launch when they come before
the cut and are queued after it, as in the reference. (The reference cuts after N ready steps,
primitives included, and so queues a leading primitive when no slot is free; here it runs,
since it creates no StepRun.) A step needing more slots than a limit allows at all, such as a
parallel step wider than `policy.concurrency`, stays queued: the limit is never passed.
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from runs_controller.api.enums import TERMINAL_PHASES
from runs_controller.engine.keys import DEFAULT_QUEUE, LABEL_QUEUE, LABEL_QUEUE_PRIORITY
from runs_controller.engine.naming import safe_label_value
from runs_controller.engine.operator_config import normalize_queue_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from runs_controller.api.bubustack.story import Story
    from runs_controller.api.runs.storyrun import StepState, StoryRun
    from runs_controller.engine.operator_config import OperatorConfig

QUEUED_STORY_PREFIX = "Queued due to story concurrency limit"
QUEUED_QUEUE_PREFIX = "Queued due to queue concurrency limit"
QUEUED_GLOBAL_PREFIX = "Queued due to global concurrency limit"
QUEUED_PRIORITY_PREFIX = "Queued due to higher-priority work"
QUEUED_PREFIXES = (
    QUEUED_STORY_PREFIX,
    QUEUED_QUEUE_PREFIX,
    QUEUED_GLOBAL_PREFIX,
    QUEUED_PRIORITY_PREFIX,
)
"""A Pending step whose message starts with one of these is queued, not running (3.4)."""

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
_DECIMAL = re.compile(r"[+-]?[0-9]+")
_ONE_SECOND = datetime.timedelta(seconds=1)


@dataclass(frozen=True)
class SchedulingDecision:
    """The queue a run's StepRuns count against and its priority within that queue."""

    queue: str
    """Normalized queue name (trimmed, lowercased), the key of the operator config."""
    priority: int


@dataclass(frozen=True)
class LimitOutcome:
    """The ready steps to launch now and the others, each with its queued message."""

    launch: tuple[str, ...]
    queued: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class RunDemand:
    """What priority ordering needs to know about one StoryRun of the queue."""

    name: str
    """Identity of the run, `namespace/name` (queues span namespaces)."""
    priority: int
    """Its `bubustack.io/queue-priority` label."""
    queued_since: datetime.datetime | None
    """Earliest start of its queued steps; None when nothing is queued."""
    has_demand: bool
    """Non-terminal and Pending/Running, or a step Running or queued."""


def scheduling_decision(
    story: Story, config: OperatorConfig, parent: SchedulingDecision | None = None
) -> SchedulingDecision:
    """The Story's queue and priority; a sub-story run takes what its Story leaves unset from
    `parent` (the parent run's decision), except that a queue of its own brings that queue's
    default priority."""
    policy = story.spec.policy
    queue = normalize_queue_name(policy.queue or "") if policy else ""
    priority = policy.priority if policy else None
    if not queue:
        queue = (normalize_queue_name(parent.queue) if parent else "") or DEFAULT_QUEUE
        if priority is None and parent is not None:
            priority = parent.priority
    if priority is None:
        priority = config.queue_config(queue).default_priority
    return SchedulingDecision(queue=queue, priority=priority)


def queue_labels(decision: SchedulingDecision) -> dict[str, str]:
    """The queue labels written on StoryRuns, StepRuns and sub-StoryRuns."""
    queue = normalize_queue_name(decision.queue) or DEFAULT_QUEUE
    return {LABEL_QUEUE: safe_label_value(queue), LABEL_QUEUE_PRIORITY: str(decision.priority)}


def priority_from_labels(labels: Mapping[str, str] | None) -> int:
    """The priority label as an int32; missing or unreadable is 0, as in the reference."""
    raw = (labels or {}).get(LABEL_QUEUE_PRIORITY, "").strip()
    if not _DECIMAL.fullmatch(raw):
        return 0
    value = int(raw, 10)
    return value if INT32_MIN <= value <= INT32_MAX else 0


def story_concurrency_limit(story: Story) -> int:
    """`policy.concurrency`; 0 (or anything not positive) means no story limit."""
    policy = story.spec.policy
    return max(policy.concurrency or 0, 0) if policy else 0


def effective_priority(
    priority: int,
    queued_since: datetime.datetime | None,
    now: datetime.datetime,
    aging_seconds: int,
) -> int:
    """Priority plus one level per full `aging_seconds` waited, so low priority never starves."""
    if queued_since is None or aging_seconds <= 0:
        return priority
    waited = now - queued_since
    if waited <= datetime.timedelta(0):
        return priority
    return priority + (waited // _ONE_SECOND) // aging_seconds


def is_queued_message(message: str | None) -> bool:
    """Whether a step message says the step waits for a scheduling limit."""
    return bool(message) and str(message).startswith(QUEUED_PREFIXES)


def is_queued_state(state: StepState) -> bool:
    """A queued step: Pending with a queued message (it does not count as running)."""
    return state.phase == "Pending" and is_queued_message(state.message)


def queued_since(step_states: Mapping[str, StepState] | None) -> datetime.datetime | None:
    """Earliest `startedAt` of the queued steps: how long the run has waited for a slot."""
    starts = [
        state.started_at
        for state in (step_states or {}).values()
        if is_queued_state(state) and state.started_at is not None
    ]
    return min(starts, default=None)


def run_demand(run: StoryRun) -> RunDemand:
    """A StoryRun of the queue as priority ordering sees it."""
    meta = run.metadata
    status = run.status
    phase = status.phase if status else None
    states = (status.step_states if status else None) or {}
    active = phase in ("Running", "Pending") or any(
        state.phase == "Running" or is_queued_state(state) for state in states.values()
    )
    return RunDemand(
        name=f"{meta.namespace or ''}/{meta.name or ''}" if meta else "/",
        priority=priority_from_labels(meta.labels if meta else None),
        queued_since=queued_since(states),
        has_demand=phase not in TERMINAL_PHASES and active,
    )


def higher_priority_waiting(
    own: RunDemand,
    others: Iterable[RunDemand],
    now: datetime.datetime,
    aging_seconds: int,
) -> bool:
    """Whether another run of the queue with demand has a strictly higher effective priority."""
    mine = effective_priority(own.priority, own.queued_since, now, aging_seconds)
    return any(
        other.name != own.name
        and other.has_demand
        and effective_priority(other.priority, other.queued_since, now, aging_seconds) > mine
        for other in others
    )


def _free(limit: int, active: int) -> float:
    """Slots a limit leaves; a limit of 0 or less is no limit."""
    return math.inf if limit <= 0 else max(limit - active, 0)


def _cut(
    ready: Sequence[str], free: float, slot_cost: Callable[[str], int]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split `ready` before the first step whose StepRuns do not fit into `free` slots."""
    for index, step in enumerate(ready):
        cost = slot_cost(step)
        if cost < 0:
            raise ValueError(f"slot cost of step {step!r} is negative: {cost}")
        if cost > free:
            return tuple(ready[:index]), tuple(ready[index:])
        free -= cost
    return tuple(ready), ()


def apply_limits(
    ready: Sequence[str],
    *,
    story_limit: int,
    story_active: int,
    global_limit: int,
    global_active: int,
    queue_limit: int,
    queue_active: int,
    higher_priority_waiting: bool,
    slot_cost: Callable[[str], int],
) -> LimitOutcome:
    """Which ready steps (declaration order) launch now, and why the others are queued.

    Checks in the contract's order: the story limit, then priority ordering (a waiting
    higher-priority run leaves no slot), then the tighter of the global and queue limits.
    A limit <= 0 is no limit. `slot_cost(step)` is the number of StepRuns launching the step
    creates now (see the module docstring); `*_active` count non-terminal StepRuns.
    """
    queued: dict[str, str] = {}

    launch, rest = _cut(ready, _free(story_limit, story_active), slot_cost)
    message = f"{QUEUED_STORY_PREFIX} ({story_active} running, limit {story_limit})"
    queued.update(dict.fromkeys(rest, message))

    if higher_priority_waiting:
        launch, rest = _cut(launch, 0, slot_cost)
        queued.update(dict.fromkeys(rest, QUEUED_PRIORITY_PREFIX))

    global_free = _free(global_limit, global_active)
    queue_free = _free(queue_limit, queue_active)
    launch, rest = _cut(launch, min(global_free, queue_free), slot_cost)
    if global_limit > 0 and (queue_limit <= 0 or global_free <= queue_free):
        message = f"{QUEUED_GLOBAL_PREFIX} ({global_active} running, limit {global_limit})"
    else:
        message = f"{QUEUED_QUEUE_PREFIX} ({queue_active} running, limit {queue_limit})"
    queued.update(dict.fromkeys(rest, message))

    order = {step: index for index, step in enumerate(ready)}
    ordered = dict(sorted(queued.items(), key=lambda item: order[item[0]]))
    return LimitOutcome(launch=launch, queued=MappingProxyType(ordered))


__all__ = [
    "QUEUED_GLOBAL_PREFIX",
    "QUEUED_PREFIXES",
    "QUEUED_PRIORITY_PREFIX",
    "QUEUED_QUEUE_PREFIX",
    "QUEUED_STORY_PREFIX",
    "LimitOutcome",
    "RunDemand",
    "SchedulingDecision",
    "apply_limits",
    "effective_priority",
    "higher_priority_waiting",
    "is_queued_message",
    "is_queued_state",
    "priority_from_labels",
    "queue_labels",
    "queued_since",
    "run_demand",
    "scheduling_decision",
    "story_concurrency_limit",
]
