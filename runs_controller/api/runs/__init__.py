"""runs.bubustack.io/v1alpha1: StoryRun, StepRun, StoryTrigger, EffectClaim."""

from __future__ import annotations

GROUP = "runs.bubustack.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORIES = ("bubu", "ai", "runs")
