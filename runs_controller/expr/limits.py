"""Per-evaluation budgets: steps, wall time, output bytes, value size, depth (§8.8).

Every budget is enforced *before* the work it pays for: functions that can amplify compute the
UTF-8 size of their result and call `Budget.check_bytes` before allocating it, work proportional
to an input is charged with `Budget.charge` before it is done, and serialisers write into a
`Sink` that refuses the piece that would cross the limit. A Budget belongs to one evaluation (one
public API call) and is never shared between threads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NoReturn

from .errors import InvalidLimits, LimitExceeded, TemplateError
from .text import Sink, utf8_len
from .values import GoInt, GoTime

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "BYTES_PER_STEP",
    "CHARS_PER_STEP",
    "DEFAULT_LIMITS",
    "ITEMS_PER_STEP",
    "TIME_CHECK_INTERVAL",
    "Budget",
    "Limits",
    "OutputBuffer",
]

# Cost model, calibrated with bench/bench_expr_steps.py (see docs/expressions.md): one step is
# one node visit of the tree walker (about 1-2 microseconds). Printing, encoding or hashing a
# value costs a step per value node; C-speed string work a step per BYTES_PER_STEP bytes;
# Python loops over characters a step per CHARS_PER_STEP; light work over container items
# (copying, sorting, measuring) a step per ITEMS_PER_STEP.
BYTES_PER_STEP: Final = 256
CHARS_PER_STEP: Final = 8
ITEMS_PER_STEP: Final = 4
# The deadline is read every this many single steps (and on every larger charge).
TIME_CHECK_INTERVAL: Final = 256

# Size estimates of scalars in their `%v` form (upper bounds of the printed length).
_NUMBER_BYTES: Final = 24
_NIL_BYTES: Final = 5
_TIME_BYTES: Final = 40


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds for one evaluation; 0 output bytes means unlimited (as in the reference).

    The defaults keep one evaluation under about one second of CPU (measured, see
    docs/expressions.md), well inside the leader-election renew deadline.
    """

    max_output_bytes: int = 65536
    timeout_seconds: float = 1.0
    max_steps: int = 250_000
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
                raise InvalidLimits(f"{name} must not be negative")


DEFAULT_LIMITS = Limits()


def _fmt_seconds(s: float) -> str:
    return f"{s:g}s"


class Budget:
    """Steps, deadline and value-size accounting of one evaluation.

    `clock` is injectable so tests can drive the deadline without sleeping.
    """

    __slots__ = ("_byte_carry", "_clock", "_item_carry", "_sizes", "deadline", "limits", "steps")

    def __init__(self, limits: Limits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.steps = 0
        self._byte_carry = 0
        self._item_carry = 0
        self._clock = clock
        self.deadline = clock() + limits.timeout_seconds
        # id(container) -> (container, estimated bytes, expanded nodes); holding the container
        # keeps its id unique for the evaluation
        self._sizes: dict[int, tuple[object, int, int]] = {}

    def tick(self) -> None:
        """One evaluator step; the deadline is read every TIME_CHECK_INTERVAL steps."""
        self.steps += 1
        if self.steps > self.limits.max_steps:
            self._over_steps()
        if self.steps % TIME_CHECK_INTERVAL == 0:
            self.check_time()

    def charge(self, cost: int) -> None:
        """Pay `cost` steps before doing work of that size; refuses when the budget is short.

        The deadline is read when the count crosses a multiple of TIME_CHECK_INTERVAL, and for
        any charge of at least that size (work that long is not started after the deadline).
        """
        if cost <= 0:
            return
        before = self.steps
        self.steps += cost
        if self.steps > self.limits.max_steps:
            self._over_steps()
        if (
            cost >= TIME_CHECK_INTERVAL
            or self.steps // TIME_CHECK_INTERVAL != before // TIME_CHECK_INTERVAL
        ):
            self.check_time()

    def charge_bytes(self, n: int) -> None:
        """Charge C-speed work over `n` bytes (fractions of a step carry over)."""
        q, self._byte_carry = divmod(self._byte_carry + n, BYTES_PER_STEP)
        self.charge(q)

    def charge_items(self, n: int) -> None:
        """Charge light work over `n` container items (fractions of a step carry over)."""
        q, self._item_carry = divmod(self._item_carry + n, ITEMS_PER_STEP)
        self.charge(q)

    def _over_steps(self) -> None:
        raise LimitExceeded(f"template evaluation exceeded max steps {self.limits.max_steps}")

    def check_time(self) -> None:
        if self._clock() >= self.deadline:
            raise LimitExceeded(
                f"template evaluation timed out after {_fmt_seconds(self.limits.timeout_seconds)}"
            )

    def check_bytes(self, n: int, what: str = "value") -> None:
        """Refuse a value of `n` bytes before it is built."""
        if n > self.limits.max_value_bytes:
            raise LimitExceeded(
                f"template value exceeds max size {self.limits.max_value_bytes} bytes "
                f"({what} would be {n} bytes)"
            )

    def sink(self, what: str) -> Sink:
        """A string builder bounded by the value-size limit."""
        return Sink(self.limits.max_value_bytes, what, self.charge)

    def measure(self, v: object) -> int:
        """Estimated `%v` size of `v` in bytes, counting shared sub-values once per occurrence.

        Containers are memoised by identity for this evaluation, so a value built by aliasing
        (`list $x $x`) is measured in time proportional to its distinct nodes while its size
        reflects the expanded form. The walk is charged per node; a cycle is an error.
        """
        return self._measured(v)[0]

    def _measured(self, v: object) -> tuple[int, int]:
        if isinstance(v, str):
            return utf8_len(v), 1
        if not isinstance(v, list | dict):
            return _scalar_size(v), 1
        hit = self._sizes.get(id(v))
        if hit is None:
            self._measure_tree(v)
            hit = self._sizes[id(v)]
        return hit[1], hit[2]

    def _measure_tree(self, root: list[object] | dict[str, object]) -> None:
        sizes = self._sizes
        open_: set[int] = set()
        stack: list[tuple[list[object] | dict[str, object], bool]] = [(root, False)]
        pending = 0
        while stack:
            x, done = stack.pop()
            k = id(x)
            if done:
                open_.discard(k)
                sizes[k] = (x, *self._container_size(x))
                continue
            if k in sizes:
                continue
            if k in open_:
                raise TemplateError("cyclic template value detected")
            open_.add(k)
            stack.append((x, True))
            children = x.values() if isinstance(x, dict) else x
            stack.extend(
                (c, False) for c in children if isinstance(c, list | dict) and id(c) not in sizes
            )
            pending += len(x) + 1
            if pending >= 1024:
                self.charge_items(pending)
                pending = 0
        self.charge_items(pending)

    def _container_size(self, x: list[object] | dict[str, object]) -> tuple[int, int]:
        """(bytes, nodes) of a container whose container children are already measured."""
        sizes = self._sizes
        total, nodes = 0, 1
        children = x.values() if isinstance(x, dict) else x
        for c in children:
            if isinstance(c, str):
                total += utf8_len(c)
                nodes += 1
            elif isinstance(c, list | dict):
                _, size, count = sizes[id(c)]
                total += size
                nodes += count
            else:
                total += _scalar_size(c)
                nodes += 1
        if isinstance(x, dict):
            total += 5 + sum(utf8_len(str(key)) + 1 for key in x)
        else:
            total += 2
        return total + max(len(x) - 1, 0), nodes


def _scalar_size(v: object) -> int:
    if v is None or isinstance(v, bool):
        return _NIL_BYTES
    if isinstance(v, GoInt):
        return len(str(v.value))
    if isinstance(v, GoTime):
        return _TIME_BYTES
    return _NUMBER_BYTES


class OutputBuffer:
    """Rendered text with the reference's byte limit and error text."""

    __slots__ = ("max_bytes", "parts", "size")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.parts: list[str] = []
        self.size = 0

    def refuse(self, n: int) -> NoReturn:
        """Raise the reference's error for a write of `n` bytes that does not fit."""
        raise LimitExceeded(
            f"template output exceeds max bytes (current={self.size}, writing={n}, "
            f"max={self.max_bytes})"
        )

    def write(self, s: str) -> None:
        n = utf8_len(s)
        if self.max_bytes and self.size + n > self.max_bytes:
            self.refuse(n)
        self.size += n
        self.parts.append(s)

    def getvalue(self) -> str:
        return "".join(self.parts)
