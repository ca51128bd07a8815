"""StepRun retry decisions: exit-code classes and the delay before the next attempt.

The delay must equal the reference controller's to the nanosecond (status messages, `nextRetryAt`
and conformance vectors depend on it), so the arithmetic is Go's: time.Duration is int64 and the
reference does not guard against overflow, so huge attempts wrap exactly as they do there.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from runs_controller.engine.durations import format_go_duration, parse_go_duration
from runs_controller.engine.finality import RETRYABLE_EXIT_CLASSES

if TYPE_CHECKING:
    from runs_controller.api.bubustack.shared import RetryPolicy

__all__ = [
    "DEFAULT_RETRY_DELAY_NS",
    "MIN_RETRY_DELAY_NS",
    "classify_exit_code",
    "compute_retry_delay",
    "is_retryable_exit_class",
    "jittered_requeue_delay",
    "retry_message",
]

_MILLISECOND = 1_000_000
_SECOND = 1_000 * _MILLISECOND

DEFAULT_RETRY_DELAY_NS = _SECOND
"""Base delay when the policy has none, or one that does not parse as a positive duration."""
MIN_RETRY_DELAY_NS = 10 * _MILLISECOND
"""Floor of every delay, and of a maxDelay cap (the reference's minimum requeue delay)."""

# Exit codes with a fixed class; everything else is decided by range.
_SPECIAL_EXIT_CODES: dict[int, str] = {
    -1: "unknown",  # sentinel: the pod or its exit code could not be found
    0: "success",
    124: "retry",  # GNU timeout; the SDK exits with it on BUBU_STEP_TIMEOUT
    125: "terminal",  # the command could not run / was not found / not executable
    126: "terminal",
    127: "terminal",
    137: "retry",  # SIGKILL: OOM kill or eviction
    143: "retry",  # SIGTERM
    429: "rateLimited",  # HTTP-style; impossible as a POSIX exit status but kept for parity
}

_RNG = random.Random()  # noqa: S311 - spreading retries, not security


def classify_exit_code(code: int) -> str:
    """The ExitClass of a container exit code; drives whether a failure is retried."""
    special = _SPECIAL_EXIT_CODES.get(code)
    if special is not None:
        return special
    if 128 <= code <= 255:
        return "retry"  # killed by a signal: usually transient
    return "terminal"  # application errors (1..127) and anything out of range


def is_retryable_exit_class(exit_class: str | None) -> bool:
    """Whether a failure of this class may be retried (budget permitting)."""
    return exit_class in RETRYABLE_EXIT_CLASSES


def _int64(value: int) -> int:
    """Wrap to Go int64 two's complement."""
    return ((value + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63)


def _int32(value: int) -> int:
    """Wrap to Go int32 two's complement (the reference's attempt parameter type)."""
    return ((value + (1 << 31)) & ((1 << 32) - 1)) - (1 << 31)


def _positive_duration(text: str | None) -> int | None:
    """A non-empty Go duration that parses and is > 0, else None (the reference then falls back)."""
    if not text:
        return None
    try:
        parsed = parse_go_duration(text)
    except ValueError:
        return None
    return parsed if parsed > 0 else None


def _backoff(base: int, attempt: int, strategy: str | None) -> int:
    """Base delay grown by the strategy; an unknown or missing strategy is exponential."""
    if strategy == "linear":
        return _int64(base * attempt)
    if strategy == "constant":
        return base
    shift = attempt - 1
    multiplier = _int64(1 << shift) if shift < 64 else 0  # Go: shifting past 63 bits gives 0
    return _int64(base * multiplier)


def compute_retry_delay(
    policy: RetryPolicy | None, attempt: int, *, rng: random.Random | None = None
) -> int:
    """Nanoseconds to wait before retry `attempt` (1-based; values < 1 count as 1).

    `attempt` is taken as a Go int32 (wrapped), like the reference's parameter. Jitter draws
    `rng.random()` once, and only when the policy's jitter is positive.
    """
    base = DEFAULT_RETRY_DELAY_NS
    max_delay = 0
    jitter = 0.0
    strategy: str | None = None
    if policy is not None:
        base = _positive_duration(policy.delay) or DEFAULT_RETRY_DELAY_NS
        max_delay = _positive_duration(policy.max_delay) or 0
        if policy.jitter is not None:
            jitter = min(max(policy.jitter, 0), 100) / 100.0
        strategy = policy.backoff
    if 0 < max_delay < MIN_RETRY_DELAY_NS:
        max_delay = MIN_RETRY_DELAY_NS

    delay = _backoff(base, max(_int32(attempt), 1), strategy)
    if max_delay > 0 and delay > max_delay:
        delay = max_delay
    if jitter > 0:
        draw = (rng if rng is not None else _RNG).random()
        # Go: d + Duration(rand*factor*float64(d)); the float product truncates toward zero.
        delay = _int64(delay + int(draw * jitter * float(delay)))
        if max_delay > 0 and delay > max_delay:
            delay = max_delay
    return max(delay, MIN_RETRY_DELAY_NS)


def retry_message(delay_ns: int, attempt: int, max_retries: int) -> str:
    """The StepRun status message of a scheduled retry, e.g. `Retrying in 2s (attempt 2/3)`."""
    return f"Retrying in {format_go_duration(delay_ns)} (attempt {attempt}/{max_retries})"


def jittered_requeue_delay(
    base_seconds: float, max_seconds: float, *, rng: random.Random | None = None
) -> float:
    """The "check again later" delay of a waiting reconcile (§1.4): `base` plus up to half of
    it at random, capped at `max`, at least 10 ms."""
    draw = (rng or _RNG).random()
    return max(MIN_RETRY_DELAY_NS / 1e9, min(base_seconds + draw * 0.5 * base_seconds, max_seconds))
