"""The retry decision: which failures are sent again, after how long, and how often."""

from __future__ import annotations

import pytest

from runs_controller.kube.retry import Failure, RetryPolicy, backoff, retry_delay

POLICY = RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=1.0, jitter=0.0)


def middle() -> float:
    return 0.5


@pytest.mark.parametrize(
    ("failure", "code", "idempotent", "retried"),
    [
        (Failure.CONNECT, None, False, True),  # nothing was sent: any verb
        (Failure.CONNECT, None, True, True),
        (Failure.BROKEN, None, True, True),  # a read may be repeated
        (Failure.BROKEN, None, False, False),  # a write may have reached the server
        (Failure.TIMEOUT, None, True, False),
        (Failure.TLS, None, True, False),
        (Failure.STATUS, 429, False, True),  # rejected before any handler ran
        (Failure.STATUS, 500, True, True),
        (Failure.STATUS, 503, True, True),
        (Failure.STATUS, 500, False, False),
        (Failure.STATUS, 503, False, False),
        (Failure.STATUS, 404, True, False),
        (Failure.STATUS, 409, False, False),
        (Failure.STATUS, 410, True, False),
    ],
)
def test_what_is_retried(
    failure: Failure, code: int | None, idempotent: bool, retried: bool
) -> None:
    delay = retry_delay(POLICY, attempt=1, failure=failure, idempotent=idempotent, code=code)
    assert (delay is not None) is retried


def test_attempts_are_bounded() -> None:
    delays = [
        retry_delay(POLICY, attempt=attempt, failure=Failure.CONNECT, idempotent=True)
        for attempt in range(1, 6)
    ]
    assert delays == [0.1, 0.2, 0.4, None, None]


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(max_retry_after=10.0, jitter=0.0)

    def delay(code: int, idempotent: bool, retry_after: float | None) -> float | None:
        return retry_delay(
            policy,
            attempt=1,
            failure=Failure.STATUS,
            idempotent=idempotent,
            code=code,
            retry_after=retry_after,
        )

    assert delay(429, False, 3.0) == 3.0
    assert delay(429, False, 120.0) == 10.0
    assert delay(429, False, None) == policy.base_delay
    assert delay(503, True, 2.0) == 2.0
    assert delay(503, False, 2.0) is None  # the hint does not make a write safe


def test_backoff_doubles_caps_and_jitters() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=0.5, jitter=0.2)
    assert [backoff(policy, n, middle) for n in (1, 2, 3, 4, 5)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.5, 0.5]
    )
    assert backoff(policy, 1, lambda: 0.0) == pytest.approx(0.08)
    assert backoff(policy, 1, lambda: 1.0) == pytest.approx(0.12)


def test_single_attempt_policy_never_retries() -> None:
    policy = RetryPolicy(max_attempts=1)
    assert retry_delay(policy, attempt=1, failure=Failure.CONNECT, idempotent=True) is None
