"""The `runs.bubustack.io/step-timers` annotation: absolute deadlines of sleep/wait/gate steps.

Deadlines are stored rather than recomputed from `startedAt` so that they survive controller
restarts and a rewritten `startedAt` (contract §3.9). The JSON is the reference's: a map from
step name to `{sleepUntil, waitTimeoutAt, gateTimeoutAt}` (absent fields omitted), times as
metav1.Time (RFC 3339, whole seconds, UTC `Z`), keys sorted. A value the reference could not
parse is ignored as a whole, so the timers restart from `startedAt`.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

__all__ = [
    "STEP_TIMERS_SOFT_LIMIT_BYTES",
    "StepTimers",
    "decode_timers",
    "encode_timers",
    "exceeds_soft_limit",
    "prune_timers",
]

STEP_TIMERS_SOFT_LIMIT_BYTES = 200 * 1024
"""At or above this many bytes the reconciler logs a warning (annotations total 256 KiB)."""

_FIELDS = ("sleepUntil", "waitTimeoutAt", "gateTimeoutAt")
# Go's encoding/json matches struct fields case-insensitively (an exact match is not preferred
# over a later folded one: each key overwrites in document order).
_FOLDED = {name.casefold(): index for index, name in enumerate(_FIELDS)}

# time.Parse(time.RFC3339, ...): upper-case T and Z, an optional fraction (Go also accepts a comma).
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:\d{2})",
    re.ASCII,
)
# metav1.Time's zero value means "unset" (the reference's `IsZero()` checks).
_ZERO_TIME = datetime.datetime(1, 1, 1, tzinfo=datetime.UTC)


@dataclass(frozen=True)
class StepTimers:
    """The stored deadlines of one step (each None when not set)."""

    sleep_until: datetime.datetime | None = None
    wait_timeout_at: datetime.datetime | None = None
    gate_timeout_at: datetime.datetime | None = None

    def is_empty(self) -> bool:
        """True when the entry holds no deadline (it is then not worth storing)."""
        return (
            self.sleep_until is None
            and self.wait_timeout_at is None
            and (self.gate_timeout_at is None)
        )


class _Unparsable(ValueError):
    """The annotation is not what the reference would accept."""


def _reject_constant(name: str) -> Any:
    raise _Unparsable(f"invalid JSON constant {name}")


def _parse_time(value: Any) -> datetime.datetime | None:
    """metav1.Time.UnmarshalJSON: null or an RFC 3339 string; the zero time means unset."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Unparsable("timestamp is not a string")
    m = _RFC3339.fullmatch(value)
    if m is None:
        raise _Unparsable(f"timestamp {value!r} is not RFC 3339")
    year, month, day, hour, minute, second = (int(m[i]) for i in range(1, 7))
    micros = int((m[7] or "0")[:6].ljust(6, "0"))
    zone = m[8]
    if zone == "Z":
        tz = datetime.UTC
    else:
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours >= 24 or minutes >= 60:
            raise _Unparsable(f"timestamp {value!r} has an invalid offset")
        offset = datetime.timedelta(hours=hours, minutes=minutes)
        tz = datetime.timezone(-offset if zone[0] == "-" else offset)
    try:
        parsed = datetime.datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
        utc = parsed.astimezone(datetime.UTC)
    except (ValueError, OverflowError) as exc:
        raise _Unparsable(f"timestamp {value!r} is out of range") from exc
    return None if utc == _ZERO_TIME else utc


def _parse_entry(value: Any) -> StepTimers:
    if value is None:
        return StepTimers()
    if not isinstance(value, dict):
        raise _Unparsable("timer entry is not an object")
    fields: list[datetime.datetime | None] = [None, None, None]
    for key, item in value.items():
        index = _FOLDED.get(key.casefold())
        if index is not None:
            fields[index] = _parse_time(item)
    return StepTimers(*fields)


def decode_timers(raw: str | None) -> dict[str, StepTimers]:
    """The timers in the annotation value; missing, blank or unparsable gives {}."""
    if raw is None or not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
        if not isinstance(data, dict):
            return {}
        return {name: _parse_entry(entry) for name, entry in data.items()}
    except (ValueError, RecursionError):
        return {}


def _format_time(value: datetime.datetime) -> str:
    """metav1.Time.MarshalJSON: UTC, RFC 3339, the fraction dropped (not rounded)."""
    if value.tzinfo is None:
        raise ValueError("timer timestamps must be timezone-aware")
    utc = value.astimezone(datetime.UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
    )


def _go_json_string(text: str) -> str:
    """A JSON string as Go's encoder writes it (HTML characters and U+2028/9 escaped)."""
    out = json.dumps(text, ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        out = out.replace(char, escaped)
    return out


def encode_timers(timers: Mapping[str, StepTimers]) -> str | None:
    """The annotation value for `timers` (keys sorted, compact), None when nothing is stored.

    None tells the reconciler to remove the annotation. Entries without a deadline are left
    out: they carry nothing.
    """
    parts: list[str] = []
    for name in sorted(timers):
        entry = timers[name]
        values = (entry.sleep_until, entry.wait_timeout_at, entry.gate_timeout_at)
        fields = [
            f'"{field}":"{_format_time(value)}"'
            for field, value in zip(_FIELDS, values, strict=True)
            if value is not None
        ]
        if fields:
            parts.append(f"{_go_json_string(name)}:{{{','.join(fields)}}}")
    if not parts:
        return None
    return "{" + ",".join(parts) + "}"


def prune_timers(
    timers: Mapping[str, StepTimers], terminal: Collection[str]
) -> dict[str, StepTimers]:
    """The timers without the entries of steps that reached a terminal phase."""
    return {name: entry for name, entry in timers.items() if name not in terminal}


def exceeds_soft_limit(payload: str) -> bool:
    """Whether an encoded annotation is large enough to warn about (the reference's `>=`)."""
    return len(payload.encode("utf-8")) >= STEP_TIMERS_SOFT_LIMIT_BYTES
