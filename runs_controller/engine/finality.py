"""Is this StepRun final? One answer for both controllers (ruling 6).

A StepRun that failed with a retryable exit class and retry budget left is not final: the StepRun
controller will retry it, so the StoryRun must not treat the step as failed (fail-fast would skip
its siblings, and a persisted terminal step state never goes back, ruling 24).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runs_controller.api.enums import TERMINAL_PHASES

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


def is_final(steprun: StepRun, default_max_retries: int = DEFAULT_MAX_RETRIES) -> bool:
    """Terminal phase and no retry due."""
    status = steprun.status
    if status is None or status.phase not in TERMINAL_PHASES:
        return False
    return not retry_due(steprun, default_max_retries)
