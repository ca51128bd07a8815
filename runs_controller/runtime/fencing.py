"""Leader fencing: no controller write leaves this process once leadership may be gone.

The elector stops the controllers when a renewal misses its deadline, but cancellation takes a
moment to reach every reconcile, and a request can sit in a retry or a rate-limit wait. The
fence is asked right before each attempt of each write (the client calls it); past the renew
deadline of the last good renewal it refuses with `WriteFenced`, which aborts the reconcile.
It also caps the request's own timeout at the time left, so no write is still in flight after
the deadline on our side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runs_controller.kube.errors import WriteFenced

if TYPE_CHECKING:
    from runs_controller.observability.metrics import WriterMetrics
    from runs_controller.runtime.leaderelection import LeaderElector


class LeaderFence:
    """`WriteGuard` for `KubeClient.with_write_guard`: writes only inside the elector's window."""

    def __init__(self, elector: LeaderElector, *, metrics: WriterMetrics | None = None) -> None:
        self._elector = elector
        self._metrics = metrics

    def check_write(self, verb: str, path: str) -> float:
        remaining = self._elector.write_window()
        if remaining > 0:
            return remaining
        if self._metrics is not None:
            self._metrics.fenced_writes.labels(verb).inc()
        state = "past its renew deadline" if self._elector.is_leader else "not the leader"
        raise WriteFenced(f"{verb} {path} refused: this replica is {state}")


__all__ = ["LeaderFence"]
