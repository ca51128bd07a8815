"""Each runs controller declared on the builder: For / Owns / Watches / Reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runs_controller.api.bubustack.engram import Engram
from runs_controller.api.bubustack.story import Story
from runs_controller.api.catalog.engramtemplate import EngramTemplate
from runs_controller.api.k8s import Job
from runs_controller.api.runs.effectclaim import EffectClaim
from runs_controller.api.runs.steprun import StepRun
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.api.runs.storytrigger import StoryTrigger
from runs_controller.dag.states import is_terminal
from runs_controller.engine import keys
from runs_controller.kube.resources import (
    EFFECT_CLAIMS,
    ENGRAM_TEMPLATES,
    ENGRAMS,
    JOBS,
    STEP_RUNS,
    STORIES,
    STORY_RUNS,
    STORY_TRIGGERS,
)
from runs_controller.reconcilers.effectclaim.reconciler import EffectClaimReconciler
from runs_controller.reconcilers.effectclaim.watches import claims_of, steprun_finished
from runs_controller.reconcilers.indexes import (
    ENGRAM_INDEX,
    QUEUE_PRIORITY_INDEX,
    STORY_INDEX,
    STORYRUN_INDEX,
    TEMPLATE_INDEX,
    engram_template,
    steprun_engram,
    steprun_storyrun,
    storyrun_queue_priority,
    storyrun_story,
)
from runs_controller.reconcilers.ordering import steprun_rank, storyrun_rank
from runs_controller.reconcilers.steprun.predicates import (
    job_changed,
    spec_changed,
    steprun_changed,
)
from runs_controller.reconcilers.steprun.reconciler import StepRunReconciler
from runs_controller.reconcilers.storyrun.predicates import child_run_changed, storyrun_changed
from runs_controller.reconcilers.storyrun.reconciler import StoryRunReconciler
from runs_controller.reconcilers.storytrigger.reconciler import StoryTriggerReconciler
from runs_controller.runtime.builder import ControllerBuilder
from runs_controller.runtime.reconciler import Request
from runs_controller.runtime.store import object_key

if TYPE_CHECKING:
    from runs_controller.runtime.cache import CacheReader
    from runs_controller.runtime.controller import Controller
    from runs_controller.runtime.manager import Manager


def runs_of_story(runs: CacheReader[StoryRun], story: Story) -> list[Request]:
    """A Story event wakes the runs that name it (one waiting for it to appear, say)."""
    meta = story.metadata
    if meta is None or not meta.name:
        return []
    return [
        Request(run.metadata.namespace or "", run.metadata.name or "")
        for run in runs.by_index(STORY_INDEX, object_key(meta.namespace, meta.name))
        if run.metadata is not None
    ]


def runs_waiting_in(runs: CacheReader[StoryRun], obj: Any) -> list[Request]:
    """An Engram event wakes the unfinished runs of its namespace that have a blocked step."""
    meta = obj.metadata
    if meta is None:
        return []
    return [
        Request(run.metadata.namespace or "", run.metadata.name or "")
        for run in runs.list(meta.namespace)
        if run.metadata is not None
        and run.status is not None
        and any(state.phase == "Blocked" for state in (run.status.step_states or {}).values())
    ]


def stepruns_waiting_for(steps: CacheReader[StepRun], engram: Engram) -> list[Request]:
    """An Engram event wakes its unfinished StepRuns (one Blocked waiting for it, say)."""
    meta = engram.metadata
    if meta is None or not meta.name:
        return []
    return [
        Request(step.metadata.namespace or "", step.metadata.name or "")
        for step in steps.by_index(ENGRAM_INDEX, object_key(meta.namespace, meta.name))
        if step.metadata is not None and not is_terminal(step.status.phase if step.status else None)
    ]


def stepruns_of_template(
    engrams: CacheReader[Engram], steps: CacheReader[StepRun], template: EngramTemplate
) -> list[Request]:
    """An EngramTemplate event wakes the unfinished StepRuns of the Engrams that use it."""
    meta = template.metadata
    if meta is None or not meta.name:
        return []
    requests: list[Request] = []
    for engram in engrams.by_index(TEMPLATE_INDEX, meta.name):
        requests.extend(stepruns_waiting_for(steps, engram))
    return requests


def _storyrun(manager: Manager) -> Controller:
    builder = ControllerBuilder(manager, "storyrun", workers=8)
    runs = builder.for_(
        STORY_RUNS,
        StoryRun,
        predicate=storyrun_changed,
        indexers={STORY_INDEX: storyrun_story, QUEUE_PRIORITY_INDEX: storyrun_queue_priority},
    )
    stepruns = builder.owns(STEP_RUNS, StepRun, indexers={STORYRUN_INDEX: steprun_storyrun})
    builder.owns(STORY_RUNS, StoryRun, predicate=child_run_changed)
    stories = builder.watches(STORIES, Story, lambda story: runs_of_story(runs, story))
    engrams = builder.watches(
        ENGRAMS, Engram, lambda engram: runs_waiting_in(runs, engram), predicate=spec_changed
    )
    templates = builder.reads(ENGRAM_TEMPLATES, EngramTemplate)
    builder.order_by(storyrun_rank(runs))
    reconciler = StoryRunReconciler(
        builder.kit,
        runs=runs,
        stepruns=stepruns,
        stories=stories,
        engrams=engrams,
        templates=templates,
        metrics=manager.metrics.storyrun,
    )
    # A StepRun that frees a concurrency slot wakes the runs queued behind that limit.
    builder.watches(
        STEP_RUNS, StepRun, reconciler.slots.waiters, predicate=reconciler.slots.freed_a_slot
    )
    # A run that ends stops outranking the runs of its queue waiting behind it.
    builder.watches(
        STORY_RUNS, StoryRun, reconciler.slots.waiters_of_run, predicate=reconciler.slots.run_ended
    )
    return builder.complete(reconciler)


def _steprun(manager: Manager) -> Controller:
    builder = ControllerBuilder(manager, "steprun", workers=15)
    steps = builder.for_(
        STEP_RUNS,
        StepRun,
        predicate=steprun_changed,
        indexers={ENGRAM_INDEX: steprun_engram, STORYRUN_INDEX: steprun_storyrun},
    )
    jobs = builder.owns(JOBS, Job, predicate=job_changed, label_selector=keys.LABEL_STEPRUN)
    runs = builder.reads(STORY_RUNS, StoryRun)
    stories = builder.reads(STORIES, Story)
    engrams = builder.watches(
        ENGRAMS,
        Engram,
        lambda engram: stepruns_waiting_for(steps, engram),
        predicate=spec_changed,
        indexers={TEMPLATE_INDEX: engram_template},
    )
    templates = builder.watches(
        ENGRAM_TEMPLATES,
        EngramTemplate,
        lambda template: stepruns_of_template(engrams, steps, template),
        predicate=spec_changed,
    )
    builder.order_by(steprun_rank(steps, runs))
    reconciler = StepRunReconciler(
        builder.kit,
        steps=steps,
        jobs=jobs,
        runs=runs,
        stories=stories,
        engrams=engrams,
        templates=templates,
        metrics=manager.metrics.steprun,
    )
    return builder.complete(reconciler)


def _storytrigger(manager: Manager) -> Controller:
    builder = ControllerBuilder(manager, "storytrigger", workers=10)
    triggers = builder.for_(STORY_TRIGGERS, StoryTrigger)
    # Stories and StoryRuns are read fresh when a trigger is decided (§6): no caches needed.
    return builder.complete(StoryTriggerReconciler(builder.kit, triggers_=triggers))


def _effectclaim(manager: Manager) -> Controller:
    builder = ControllerBuilder(manager, "effectclaim", workers=10)
    claims = builder.for_(EFFECT_CLAIMS, EffectClaim)
    config = builder.kit.config
    # A StepRun that finishes for good (or goes away) wakes its claims, found by owner UID:
    # a stale reservation of a finished StepRun is abandoned at once, an orphan deleted.
    steps = builder.watches(
        STEP_RUNS,
        StepRun,
        lambda steprun: claims_of(claims, steprun),
        predicate=steprun_finished(lambda: config.current().max_retries),
    )
    return builder.complete(EffectClaimReconciler(builder.kit, claims=claims, steps=steps))


def register_controllers(manager: Manager) -> list[Controller]:
    """Declare the four runs controllers on `manager`."""
    return [setup(manager) for setup in (_storyrun, _steprun, _storytrigger, _effectclaim)]
