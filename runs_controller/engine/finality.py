"""Is this StepRun final? One answer for both controllers (ruling 6).

A StepRun that failed with a retryable exit class and retry budget left is not final: the StepRun
controller will retry it, so the StoryRun must not treat the step as failed (fail-fast would skip
its siblings, and a persisted terminal step state never goes back, ruling 24). Likewise a
reported success whose checks (ruling 5) have not run yet: they may still fail it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runs_controller.api.enums import TERMINAL_PHASES
from runs_controller.engine.keys import ANNOTATION_VERIFY_SUCCESS

if TYPE_CHECKING:
    from runs_controller.api.runs.steprun import StepRun

RETRYABLE_EXIT_CLASSES = frozenset({"retry", "rateLimited", "unknown"})
DEFAULT_MAX_RETRIES = 3


def max_retries_of(steprun: StepRun, default: int = DEFAULT_MAX_RETRIES) -> int:
    """The retry budget of a StepRun: its spec's policy, else the operator default."""
    retry = steprun.spec.retry
    if retry is not None and retry.max_retries is not None:
        return max(0, retry.max_retries)
    return max(0, default)


def retry_due(steprun: StepRun, default_max_retries: int = DEFAULT_MAX_RETRIES) -> bool:
    """A failure the StepRun controller will retry: retryable class and budget left."""
    status = steprun.status
    if status is None or status.phase != "Failed":
        return False
    if status.exit_class not in RETRYABLE_EXIT_CLASSES:
        return False
    used = max(0, status.retries or 0)
    return used < max_retries_of(steprun, default_max_retries)


def success_unconfirmed(steprun: StepRun) -> bool:
    """A reported success that checks still have to confirm (ruling 5): the StepRun carries
    the verify-success annotation and the StepRun controller has not yet written the
    conditions of the terminal phase (Progressing False; the SDK writes only Ready)."""
    status = steprun.status
    if status is None or status.phase != "Succeeded":
        return False
    annotations = (steprun.metadata.annotations if steprun.metadata else None) or {}
    if annotations.get(ANNOTATION_VERIFY_SUCCESS) != "true":
        return False
    progressing = next((c for c in status.conditions or () if c.type == "Progressing"), None)
    return progressing is None or progressing.status != "False"


def is_final(steprun: StepRun, default_max_retries: int = DEFAULT_MAX_RETRIES) -> bool:
    """Terminal phase, no retry due and no check pending."""
    status = steprun.status
    if status is None or status.phase not in TERMINAL_PHASES:
        return False
    return not retry_due(steprun, default_max_retries) and not success_unconfirmed(steprun)
