"""Polling with a deadline: the harness's only way to wait for something to become true."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TypeVar

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

T = TypeVar("T")


class WaitTimeoutError(TimeoutError):
    """A condition did not hold before its deadline; the message says what was awaited."""


def poll_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.1,
    max_interval: float = 1.0,
    what: str,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Call `probe` until it returns something other than None, or raise after `timeout` seconds.

    The interval doubles up to `max_interval`, so a fast condition is seen fast and a slow one
    does not spin. `on_timeout` may add context (e.g. the last observed state) to the error.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        result = probe()
        if result is not None:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            detail = f": {on_timeout()}" if on_timeout is not None else ""
            raise WaitTimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, max_interval)


async def poll_until_async(
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float,
    interval: float = 0.05,
    max_interval: float = 1.0,
    what: str,
) -> T:
    """`poll_until` for coroutines: await `probe` until it returns non-None, for `within` s."""
    delay = interval
    try:
        with anyio.fail_after(within):
            while True:
                result = await probe()
                if result is not None:
                    return result
                await anyio.sleep(delay)
                delay = min(delay * 2, max_interval)
    except TimeoutError:
        raise WaitTimeoutError(f"timed out after {within:.0f}s waiting for {what}") from None


async def wait_until(condition: Callable[[], bool], *, within: float, what: str) -> None:
    """`poll_until_async` for a plain predicate (state the test reads, no I/O)."""

    async def probe() -> bool | None:
        return True if condition() else None

    await poll_until_async(probe, within=within, what=what)
