from __future__ import annotations

import itertools

import pytest

from runs_controller.testing.wait import WaitTimeoutError, poll_until


def test_returns_the_first_non_none_result() -> None:
    calls = itertools.count()

    def probe() -> int | None:
        n = next(calls)
        return n if n >= 3 else None

    assert poll_until(probe, timeout=5, interval=0.001, what="n >= 3") == 3


def test_falsy_results_other_than_none_count_as_done() -> None:
    assert poll_until(lambda: 0, timeout=1, what="zero") == 0


def test_timeout_names_what_was_awaited_and_the_last_state() -> None:
    with pytest.raises(WaitTimeoutError, match=r"waiting for the moon: still dark"):
        poll_until(
            lambda: None,
            timeout=0.05,
            interval=0.01,
            what="the moon",
            on_timeout=lambda: "still dark",
        )
