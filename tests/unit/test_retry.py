"""Retry decisions: every golden vector, the reference's own examples, and properties."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from runs_controller.api.bubustack.shared import RetryPolicy
from runs_controller.engine.durations import INT64_MAX, format_go_duration, parse_go_duration
from runs_controller.engine.finality import RETRYABLE_EXIT_CLASSES
from runs_controller.engine.retry import (
    DEFAULT_RETRY_DELAY_NS,
    MIN_RETRY_DELAY_NS,
    classify_exit_code,
    compute_retry_delay,
    is_retryable_exit_class,
    retry_message,
)
from tests.unit.vectors import load_vectors

CLASSIFY = "runs.classifyExitCode"
RETRYABLE = "runs.retryableExitClass"
DELAY = "runs.computeRetryDelay"

EXIT_VECTORS = load_vectors("exitclass.jsonl")
DELAY_VECTORS = load_vectors("retrydelay.jsonl")

MS = 1_000_000
S = 1_000 * MS
INT32_MAX = (1 << 31) - 1


def _params(vectors: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(v, id=f"{i}-{v['kind']}") for i, v in enumerate(vectors)]


def _policy(raw: dict[str, Any] | None) -> RetryPolicy | None:
    """A vector's policy object (Go field names; null = nil pointer) as our struct."""
    if raw is None:
        return None
    return RetryPolicy(
        delay=raw["delay"], max_delay=raw["maxDelay"], jitter=raw["jitter"], backoff=raw["backoff"]
    )


class FixedDraw(random.Random):
    """An rng whose every draw is `value`, to pin jitter."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return self.value


# --- golden vectors -----------------------------------------------------------------------------


def test_vector_files_are_complete() -> None:
    assert len(EXIT_VECTORS) == 155
    assert {v["fn"] for v in EXIT_VECTORS} == {CLASSIFY, RETRYABLE}
    assert len(DELAY_VECTORS) == 536
    assert {v["fn"] for v in DELAY_VECTORS} == {DELAY}
    assert all(v["error"] is None for v in [*EXIT_VECTORS, *DELAY_VECTORS])


@pytest.mark.parametrize("vector", _params(EXIT_VECTORS))
def test_exit_class_vector(vector: dict[str, Any]) -> None:
    (arg,) = vector["args"]
    if vector["fn"] == CLASSIFY:
        assert classify_exit_code(arg) == vector["result"]
    else:
        assert is_retryable_exit_class(arg) is vector["result"]


@pytest.mark.parametrize("vector", _params(DELAY_VECTORS))
def test_retry_delay_vector(vector: dict[str, Any]) -> None:
    args = vector["args"]
    # The vectors never enable jitter, so no draw may happen.
    rng = FixedDraw(0.999)
    delay = compute_retry_delay(_policy(args["policy"]), args["attempt"], rng=rng)
    assert delay == vector["result"]["ns"]
    assert format_go_duration(delay) == vector["result"]["string"]
    assert rng.draws == 0


# --- exit classes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (-1, "unknown"),
        (0, "success"),
        (1, "terminal"),
        (124, "retry"),
        (125, "terminal"),
        (126, "terminal"),
        (127, "terminal"),
        (128, "retry"),
        (137, "retry"),
        (143, "retry"),
        (255, "retry"),
        (256, "terminal"),
        (429, "rateLimited"),
        (-2, "terminal"),
        (1 << 40, "terminal"),
    ],
)
def test_classify_exit_code_table(code: int, expected: str) -> None:
    assert classify_exit_code(code) == expected


@pytest.mark.parametrize(
    ("exit_class", "expected"),
    [
        ("retry", True),
        ("rateLimited", True),
        ("unknown", True),
        ("terminal", False),
        ("success", False),
        ("", False),
        (None, False),
        ("Retry", False),
    ],
)
def test_is_retryable_exit_class(exit_class: str | None, expected: bool) -> None:
    assert is_retryable_exit_class(exit_class) is expected


@given(st.integers(min_value=-(1 << 64), max_value=1 << 64))
def test_classified_codes_are_retryable_exactly_by_the_shared_set(code: int) -> None:
    exit_class = classify_exit_code(code)
    assert exit_class in {"success", "retry", "terminal", "rateLimited", "unknown"}
    assert is_retryable_exit_class(exit_class) is (exit_class in RETRYABLE_EXIT_CLASSES)
    retryable = code in (-1, 124, 429) or 128 <= code <= 255
    assert is_retryable_exit_class(exit_class) is retryable


# --- the reference's own examples (behaviour 33) -------------------------------------------------


def test_exponential_one_second_doubles() -> None:
    policy = RetryPolicy(delay="1s", backoff="exponential")
    assert compute_retry_delay(policy, 1) == 1 * S
    assert compute_retry_delay(policy, 2) == 2 * S


def test_linear_attempt_three() -> None:
    assert compute_retry_delay(RetryPolicy(delay="1s", backoff="linear"), 3) == 3 * S


def test_constant_stays() -> None:
    policy = RetryPolicy(delay="1s", backoff="constant")
    assert [compute_retry_delay(policy, n) for n in (1, 2, 7)] == [S, S, S]


def test_max_delay_caps_attempt_two() -> None:
    policy = RetryPolicy(delay="1s", max_delay="1500ms", backoff="exponential")
    assert compute_retry_delay(policy, 2) == 1500 * MS


def test_jitter_fifty_percent_on_two_seconds_stays_within_bounds() -> None:
    policy = RetryPolicy(delay="2s", backoff="constant", jitter=50)
    rng = random.Random(33)  # noqa: S311 - reproducible draws, not crypto
    delays = [compute_retry_delay(policy, 1, rng=rng) for _ in range(2000)]
    assert all(2 * S <= d <= 3 * S for d in delays)
    assert len(set(delays)) > 1000  # the draws actually move it
    assert max(delays) > 2900 * MS and min(delays) < 2100 * MS


def test_jitter_uses_the_module_rng_by_default() -> None:
    policy = RetryPolicy(delay="2s", backoff="constant", jitter=50)
    delays = {compute_retry_delay(policy, 1) for _ in range(50)}
    assert all(2 * S <= d <= 3 * S for d in delays)
    assert len(delays) > 1


# --- defaults and edge rules ---------------------------------------------------------------------


def test_no_policy_is_one_second_exponential() -> None:
    assert [compute_retry_delay(None, n) for n in (0, 1, 2, 3)] == [S, S, 2 * S, 4 * S]


@pytest.mark.parametrize("delay", [None, "", "bogus", "0s", "-1s", "5"])
def test_invalid_base_falls_back_to_one_second(delay: str | None) -> None:
    assert compute_retry_delay(RetryPolicy(delay=delay, backoff="linear"), 2) == 2 * S


@pytest.mark.parametrize("max_delay", ["", "bogus", "0s", "-3s"])
def test_invalid_max_delay_is_ignored(max_delay: str) -> None:
    policy = RetryPolicy(delay="1s", max_delay=max_delay)
    assert compute_retry_delay(policy, 4) == 8 * S


def test_tiny_max_delay_is_raised_to_the_floor() -> None:
    policy = RetryPolicy(delay="1s", max_delay="1ms")
    assert compute_retry_delay(policy, 3) == MIN_RETRY_DELAY_NS


def test_tiny_base_is_floored() -> None:
    assert compute_retry_delay(RetryPolicy(delay="1ms", backoff="constant"), 1) == 10 * MS


@pytest.mark.parametrize("backoff", ["bogus", "Exponential", "Linear", ""])
def test_unknown_backoff_is_exponential(backoff: str) -> None:
    assert compute_retry_delay(RetryPolicy(delay="1s", backoff=backoff), 3) == 4 * S


def test_exponential_overflow_wraps_like_go() -> None:
    policy = RetryPolicy(delay="1s")
    # 1s * 2^37 overflows int64 and wraps to a positive value (the reference's attempt 38).
    assert format_go_duration(compute_retry_delay(policy, 38)) == "2308818h2m36.033138688s"
    # past 63 bits the shift is 0 in Go, then the floor applies
    assert compute_retry_delay(policy, 65) == MIN_RETRY_DELAY_NS


def test_attempt_is_a_go_int32() -> None:
    policy = RetryPolicy(delay="1s", backoff="linear")
    assert compute_retry_delay(policy, 1 << 31) == S  # wraps to int32 min, then counts as 1
    assert compute_retry_delay(policy, (1 << 32) + 3) == 3 * S


def test_jitter_draws_scale_the_delay_and_are_recapped() -> None:
    policy = RetryPolicy(delay="2s", backoff="constant", jitter=50)
    assert compute_retry_delay(policy, 1, rng=FixedDraw(0.0)) == 2 * S
    assert compute_retry_delay(policy, 1, rng=FixedDraw(0.5)) == 2500 * MS
    capped = RetryPolicy(delay="2s", backoff="constant", jitter=50, max_delay="2200ms")
    assert compute_retry_delay(capped, 1, rng=FixedDraw(0.5)) == 2200 * MS


@pytest.mark.parametrize(("jitter", "expected"), [(-5, 2 * S), (0, 2 * S), (250, 3 * S)])
def test_jitter_percent_is_clamped(jitter: int, expected: int) -> None:
    policy = RetryPolicy(delay="2s", backoff="constant", jitter=jitter)
    rng = FixedDraw(0.5)
    assert compute_retry_delay(policy, 1, rng=rng) == expected
    assert rng.draws == (1 if jitter > 0 else 0)


# --- message -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "attempt", "max_retries", "expected"),
    [
        (2 * S, 2, 3, "Retrying in 2s (attempt 2/3)"),
        (1500 * MS, 1, 5, "Retrying in 1.5s (attempt 1/5)"),
        (10 * MS, 3, 3, "Retrying in 10ms (attempt 3/3)"),
        (3600 * S, 1, 10, "Retrying in 1h0m0s (attempt 1/10)"),
    ],
)
def test_retry_message(delay: int, attempt: int, max_retries: int, expected: str) -> None:
    assert retry_message(delay, attempt, max_retries) == expected


# --- properties ----------------------------------------------------------------------------------

_valid_durations = st.integers(min_value=1, max_value=INT64_MAX).map(format_go_duration)
_durations = st.none() | st.sampled_from(["", "bogus", "0s", "-1s", "1e3s"]) | _valid_durations
_backoffs = st.sampled_from([None, "exponential", "linear", "constant", "bogus"])
_attempts = st.integers(min_value=-(1 << 33), max_value=1 << 33)
_draws = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@st.composite
def _policies(draw: st.DrawFn) -> RetryPolicy:
    return RetryPolicy(
        delay=draw(_durations),
        max_delay=draw(_durations),
        jitter=draw(st.none() | st.integers(min_value=-200, max_value=200)),
        backoff=draw(_backoffs),
    )


def _cap(policy: RetryPolicy) -> int | None:
    """The effective maxDelay of a policy, or None when it has no valid one."""
    try:
        parsed = parse_go_duration(policy.max_delay or "")
    except ValueError:
        return None
    return max(parsed, MIN_RETRY_DELAY_NS) if parsed > 0 else None


@given(st.none() | _policies(), _attempts, _draws)
def test_delay_is_never_below_the_floor(
    policy: RetryPolicy | None, attempt: int, value: float
) -> None:
    assert compute_retry_delay(policy, attempt, rng=FixedDraw(value)) >= MIN_RETRY_DELAY_NS


@given(_policies(), _attempts, _draws)
def test_delay_never_exceeds_a_valid_max_delay(
    policy: RetryPolicy, attempt: int, value: float
) -> None:
    cap = _cap(policy)
    delay = compute_retry_delay(policy, attempt, rng=FixedDraw(value))
    if cap is not None:
        assert delay <= cap


@given(
    st.integers(min_value=1, max_value=10 * S),
    st.sampled_from(["exponential", "linear"]),
    st.none() | st.integers(min_value=1, max_value=INT64_MAX),
    st.integers(min_value=1, max_value=70) | st.integers(min_value=1, max_value=INT32_MAX - 1),
)
def test_delay_is_monotone_in_attempt_without_overflow(
    base: int, backoff: str, max_delay: int | None, attempt: int
) -> None:
    # Only where the next attempt does not overflow int64 (the reference wraps there).
    if backoff == "exponential":
        assume(attempt < 63 and base << attempt <= INT64_MAX)
    else:
        assume(base * (attempt + 1) <= INT64_MAX)
    policy = RetryPolicy(
        delay=format_go_duration(base),
        backoff=backoff,
        max_delay=None if max_delay is None else format_go_duration(max_delay),
    )
    assert compute_retry_delay(policy, attempt) <= compute_retry_delay(policy, attempt + 1)


def _exact_backoff(policy: RetryPolicy, attempt: int) -> int:
    """The un-jittered, uncapped delay in exact arithmetic (no int64 wrap)."""
    try:
        base = parse_go_duration(policy.delay or "")
    except ValueError:
        base = 0
    base = base if base > 0 else DEFAULT_RETRY_DELAY_NS
    if policy.backoff == "linear":
        return base * attempt
    if policy.backoff == "constant":
        return base
    return base << (attempt - 1)


@given(_policies(), st.integers(min_value=1, max_value=40), _draws)
# Found by a random run: the exponential backoff wraps to a negative delay, the plain delay is
# then the 10 ms floor, and the jitter added to the negative value wraps again, to ~9.2e18 ns.
@example(
    RetryPolicy(delay="40031h59m48.075855872s", max_delay=None, jitter=1, backoff=None), 7, 0.5
)
def test_jitter_stays_between_the_plain_delay_and_its_percentage(
    policy: RetryPolicy, attempt: int, value: float
) -> None:
    # Where the backoff or the jitter overflows int64 the delay wraps as the reference's does
    # (the golden vectors pin that); the bound holds where nothing wraps.
    assume(_exact_backoff(policy, attempt) <= INT64_MAX // 2)
    plain = compute_retry_delay(
        RetryPolicy(delay=policy.delay, max_delay=policy.max_delay, backoff=policy.backoff),
        attempt,
    )
    jittered = compute_retry_delay(policy, attempt, rng=FixedDraw(value))
    percent = min(max(policy.jitter or 0, 0), 100)
    # slack for the float64 rounding of the product (relative error below 2^-50)
    upper = plain + plain * percent // 100 + (plain >> 50) + 1
    cap = _cap(policy)
    if cap is not None:
        upper = min(upper, cap)
    assert plain <= jittered <= max(upper, plain)


@given(_policies(), _attempts)
def test_jitter_draw_of_zero_changes_nothing(policy: RetryPolicy, attempt: int) -> None:
    plain = RetryPolicy(delay=policy.delay, max_delay=policy.max_delay, backoff=policy.backoff)
    assert compute_retry_delay(policy, attempt, rng=FixedDraw(0.0)) == compute_retry_delay(
        plain, attempt
    )


def test_default_delay_constant_is_one_second() -> None:
    assert DEFAULT_RETRY_DELAY_NS == S
    assert MIN_RETRY_DELAY_NS == 10 * MS
