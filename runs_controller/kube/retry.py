"""When a failed request may be sent again, and after how long.

The rule is "never send a write twice unless the server provably did not act on it":
- a connect failure (nothing was sent) is retried for every verb;
- 429 is retried for every verb: the apiserver's priority-and-fairness filter rejects the request
  before any handler runs, and it says how long to wait (Retry-After);
- 5xx and broken connections are retried only for reads (GET/LIST), which are idempotent;
- a timeout is never retried: the caller's time budget is already spent; nor is a TLS failure.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class Failure(enum.Enum):
    """What went wrong with one attempt."""

    CONNECT = "connect"
    """The connection could not be opened: the request never left this process."""
    BROKEN = "broken"
    """The connection failed after the request may have been sent (reset, disconnect)."""
    TIMEOUT = "timeout"
    """The request's deadline passed."""
    TLS = "tls"
    """The TLS handshake failed (untrusted or mismatched certificate): retrying cannot help."""
    STATUS = "status"
    """The server answered with an HTTP error status."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded, jittered exponential backoff (client-go's rest client retries up to 10 times)."""

    max_attempts: int = 5
    """Total attempts, the first one included; 1 disables retries."""
    base_delay: float = 0.05
    max_delay: float = 5.0
    jitter: float = 0.2
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""
    max_retry_after: float = 30.0
    """Upper bound on a server-requested Retry-After wait."""


def backoff(policy: RetryPolicy, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """The jittered delay after failed attempt number `attempt` (1-based)."""
    delay = min(policy.max_delay, policy.base_delay * 2.0 ** (attempt - 1))
    return delay * (1 - policy.jitter + 2 * policy.jitter * rand())


def retry_delay(
    policy: RetryPolicy,
    *,
    attempt: int,
    failure: Failure,
    idempotent: bool,
    code: int | None = None,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before the next attempt, or None when the failure must be surfaced."""
    if attempt >= policy.max_attempts:
        return None
    if failure is Failure.CONNECT:
        return backoff(policy, attempt, rand)
    if failure is Failure.BROKEN:
        return backoff(policy, attempt, rand) if idempotent else None
    if failure is Failure.STATUS and code is not None:
        if code == 429:
            if retry_after is not None and retry_after >= 0:
                return min(retry_after, policy.max_retry_after)
            return backoff(policy, attempt, rand)
        if code >= 500 and idempotent:
            if retry_after is not None and retry_after >= 0:
                return min(retry_after, policy.max_retry_after)
            return backoff(policy, attempt, rand)
    return None
