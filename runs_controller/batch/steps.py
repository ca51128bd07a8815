"""Which Story step a StepRun runs: a step of any list, or a branch of a parallel step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runs_controller.dag.launch import parallel_branches
from runs_controller.dag.states import all_steps
from runs_controller.engine import keys

if TYPE_CHECKING:
    from runs_controller.api.bubustack.story import Step, Story
    from runs_controller.api.runs.steprun import StepRun


def story_step(story: Story | None, steprun: StepRun) -> Step | None:
    """The step named by `spec.stepId`; for a parallel branch (label `parent-step`), the
    branch of that parallel step. None when the Story no longer has it."""
    if story is None:
        return None
    steps = {step.name: step for step in all_steps(story.spec)}
    labels = (steprun.metadata.labels if steprun.metadata else None) or {}
    parent = steps.get(labels.get(keys.LABEL_PARENT_STEP, ""))
    if parent is not None and parent.type == "parallel":
        branches = parallel_branches(parent)
        if isinstance(branches, tuple):
            for branch in branches:
                if branch.name == steprun.spec.step_id:
                    return branch
    return steps.get(steprun.spec.step_id)


def dependency_step(steprun: StepRun) -> str:
    """The top-level step whose dependencies gate this StepRun's templates."""
    labels = (steprun.metadata.labels if steprun.metadata else None) or {}
    return labels.get(keys.LABEL_PARENT_STEP) or steprun.spec.step_id


__all__ = ["dependency_step", "story_step"]
