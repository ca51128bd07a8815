"""Exceptions an Engram handler raises to say how its step failed.

The exit class decides what the StepRun controller does next (ruling 6): `retry` and
`rateLimited` are retried while the step's retry budget lasts, `terminal` never is. Any other
exception is `terminal` with error type `execution_error` (a bug does not get better by
running it again); a step that runs out of time is `Timeout` with exit code 124 (`retry`).
"""

from __future__ import annotations

from typing import Any

ERROR_TYPES = (
    "timeout",
    "storage_error",
    "serialization_error",
    "validation_error",
    "initialization_error",
    "execution_error",
    "unknown",
)


class StepFailure(Exception):
    """A failure with an exit class, a StructuredError type and optional details."""

    exit_class = "terminal"
    exit_code = 1
    error_type = "execution_error"

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message or type(self).__name__
        if error_type is not None:
            if error_type not in ERROR_TYPES:
                raise ValueError(f"error_type must be one of {', '.join(ERROR_TYPES)}")
            self.error_type = error_type
        self.code = code
        self.details = details


class Terminal(StepFailure):
    """Running again will not help (bad input, a refused request)."""


class Retryable(StepFailure):
    """A transient failure: the step is retried with the Story's retry policy."""

    exit_class = "retry"
    exit_code = 75  # EX_TEMPFAIL; the exit class the SDK writes is what counts


class RateLimited(StepFailure):
    """An upstream said "slow down": retried like `Retryable`, counted apart."""

    exit_class = "rateLimited"
    exit_code = 75


__all__ = ["ERROR_TYPES", "RateLimited", "Retryable", "StepFailure", "Terminal"]
