"""Every kind whose CRD this project generates, with its root Struct and resource metadata."""

from __future__ import annotations

from runs_controller.api.bubustack.engram import ENGRAM, Engram
from runs_controller.api.bubustack.story import STORY, Story
from runs_controller.api.catalog.engramtemplate import ENGRAM_TEMPLATE, EngramTemplate
from runs_controller.api.runs.effectclaim import EFFECT_CLAIM, EffectClaim
from runs_controller.api.runs.steprun import STEP_RUN, StepRun
from runs_controller.api.runs.storyrun import STORY_RUN, StoryRun
from runs_controller.api.runs.storytrigger import STORY_TRIGGER, StoryTrigger
from runs_controller.api.schema import ResourceInfo

ALL_KINDS: list[tuple[type, ResourceInfo]] = [
    (StoryRun, STORY_RUN),
    (StepRun, STEP_RUN),
    (StoryTrigger, STORY_TRIGGER),
    (EffectClaim, EFFECT_CLAIM),
    (Story, STORY),
    (Engram, ENGRAM),
    (EngramTemplate, ENGRAM_TEMPLATE),
]

BY_KIND: dict[str, tuple[type, ResourceInfo]] = {
    info.kind: (root, info) for root, info in ALL_KINDS
}
