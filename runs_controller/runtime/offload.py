"""CPU-bound pure work off the event loop: template evaluations and big decisions.

The loop renews the Lease, answers probes and feeds every controller; a long computation on it
stalls all of that. `run_pure(fn, *args)` runs `fn` in a worker thread instead. CPython's GIL
is handed back to the loop thread at least every switch interval (5 ms), so the loop keeps
running while the function does. The function must be pure (read only frozen snapshots, such
as cached objects; write nothing shared) and bounded by its own budget: a thread cannot be
killed, so a cancelled caller stops waiting at once and the function ends by itself when its
budget runs out (the expression evaluator's time budget does exactly that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, TypeVarTuple

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

MAX_THREADS = 2
"""At most this many pure computations at once: with the GIL more threads add no CPU, only
contention with the loop thread."""

_limiter: anyio.CapacityLimiter | None = None


def _capacity() -> anyio.CapacityLimiter:
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(MAX_THREADS)
    return _limiter


async def run_pure(fn: Callable[[*Ts], T], *args: *Ts) -> T:
    """`fn(*args)` in a worker thread; its exceptions propagate unchanged."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=_capacity(), abandon_on_cancel=True)


__all__ = ["MAX_THREADS", "run_pure"]
