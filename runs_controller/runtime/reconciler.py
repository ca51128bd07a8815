"""The reconciler seam: what a controller hands a reconciler, and what it gets back.

A reconciler is an object built once with its dependencies (cache readers, writers, the event
recorder, a clock, the operator config) and called with a typed `Request` for one object. It
reads the cache, decides (pure functions, `now` passed in), writes, and returns a `Result`:

* `Result()`: done; the key's backoff is forgotten;
* `Result(requeue_after=s)`: done for now, come back in `s` seconds (timers, deadlines);
* `Result(requeue=True)`: come back with the key's backoff;
* raise `TerminalError`: the object cannot be reconciled as it is (bad input); no retry until
  it changes, and `report_terminal` may write a condition saying why;
* raise anything else: transient; logged and retried with per-key exponential backoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, order=True, slots=True)
class Request:
    """The object to reconcile: namespace ("" for cluster-scoped kinds) and name."""

    namespace: str
    name: str

    @property
    def key(self) -> str:
        """The cache key: `namespace/name`, or `name` for a cluster-scoped object."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @classmethod
    def from_key(cls, key: str) -> Request:
        namespace, _, name = key.rpartition("/")
        return cls(namespace, name)

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class Result:
    requeue: bool = False
    requeue_after: float | None = None


class TerminalError(Exception):
    """Reconciling cannot succeed until the object (or what it refers to) changes.

    `reason` is a stable CamelCase code for a condition; the message says what and where.
    The controller does not retry; a later change of the object enqueues it again.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Reconciler(Protocol):
    """What a controller calls. Implementations are plain classes; see docs/runtime.md."""

    async def reconcile(self, request: Request) -> Result: ...


@runtime_checkable
class ReportsTerminalErrors(Protocol):
    """Optional: a reconciler that records a `TerminalError` on the object (a condition)."""

    async def report_terminal(self, request: Request, error: TerminalError) -> None: ...


__all__ = ["Reconciler", "ReportsTerminalErrors", "Request", "Result", "TerminalError"]
