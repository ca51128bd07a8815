"""Per-evaluation budgets: steps, wall time, output bytes, value size, depth (§8.8)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import LimitExceeded

__all__ = ["DEFAULT_LIMITS", "Budget", "Limits", "OutputBuffer"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds for one evaluation; 0 output bytes means unlimited (as in the reference)."""

    max_output_bytes: int = 65536
    timeout_seconds: float = 30.0
    max_steps: int = 1_000_000
    max_value_bytes: int = 4 * 1024 * 1024
    max_depth: int = 64

    def __post_init__(self) -> None:
        for name in (
            "max_output_bytes",
            "timeout_seconds",
            "max_steps",
            "max_value_bytes",
            "max_depth",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


DEFAULT_LIMITS = Limits()


class Budget:
    """Counts evaluation steps and checks the deadline every few hundred steps."""

    __slots__ = ("deadline", "limits", "steps")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.steps = 0
        self.deadline = time.monotonic() + limits.timeout_seconds

    def tick(self, cost: int = 1) -> None:
        self.steps += cost
        if self.steps > self.limits.max_steps:
            raise LimitExceeded(f"template evaluation exceeded max steps {self.limits.max_steps}")
        if self.steps & 0xFF == 0 or cost > 1:
            self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(
                f"template evaluation timed out after {_fmt_seconds(self.limits.timeout_seconds)}"
            )

    def check_size(self, n: int) -> None:
        if n > self.limits.max_value_bytes:
            raise LimitExceeded(
                f"template value exceeds max size {self.limits.max_value_bytes} bytes"
            )


def _fmt_seconds(s: float) -> str:
    return f"{s:g}s"


class OutputBuffer:
    """Rendered text with the reference's byte limit and error text."""

    __slots__ = ("max_bytes", "parts", "size")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.parts: list[str] = []
        self.size = 0

    def write(self, s: str) -> None:
        n = len(s.encode("utf-8", "surrogatepass"))
        if self.max_bytes and self.size + n > self.max_bytes:
            raise LimitExceeded(
                f"template output exceeds max bytes (current={self.size}, writing={n}, "
                f"max={self.max_bytes})"
            )
        self.size += n
        self.parts.append(s)

    def getvalue(self) -> str:
        return "".join(self.parts)
