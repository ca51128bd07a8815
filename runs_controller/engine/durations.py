"""Go `time.ParseDuration` and `time.Duration.String`, byte for byte.

Durations in specs (retry delays, timeouts) are parsed and echoed by the reference controller
with Go's rules; status messages and conformance vectors depend on the exact text, including
the error messages, the float64 rounding of fractions and the int64 edge cases.
"""

from __future__ import annotations

__all__ = ["INT64_MAX", "INT64_MIN", "format_go_duration", "parse_go_duration"]

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)

_NANOSECOND = 1
_MICROSECOND = 1_000 * _NANOSECOND
_MILLISECOND = 1_000 * _MICROSECOND
_SECOND = 1_000 * _MILLISECOND
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE

# Go accepts both the micro sign (U+00B5) and the Greek mu (U+03BC) for microseconds.
_UNITS: dict[bytes, int] = {
    b"ns": _NANOSECOND,
    b"us": _MICROSECOND,
    "\u00b5s".encode(): _MICROSECOND,
    "\u03bcs".encode(): _MICROSECOND,
    b"ms": _MILLISECOND,
    b"s": _SECOND,
    b"m": _MINUTE,
    b"h": _HOUR,
}

# Go accumulates the magnitude in a uint64 and allows it to reach 2^63 (for int64 min).
_MAGNITUDE_LIMIT = 1 << 63
_UINT64_MASK = (1 << 64) - 1
# The fraction accumulator stops gaining precision once another digit could pass 2^63.
_FRACTION_STOP = INT64_MAX // 10

_DIGITS = frozenset(b"0123456789")


def _quote(raw: bytes) -> str:
    """Quote like Go's time package: every non-ASCII or control byte becomes `\\xNN`."""
    parts = ['"']
    for byte in raw:
        if byte < 0x20 or byte >= 0x80:
            parts.append(f"\\x{byte:02x}")
        elif byte in b'"\\':
            parts.append("\\" + chr(byte))
        else:
            parts.append(chr(byte))
    parts.append('"')
    return "".join(parts)


def parse_go_duration(text: str) -> int:
    """Parse `[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+` into int64 nanoseconds, as Go does.

    Raises ValueError carrying Go's exact `time.ParseDuration` error message.
    """
    raw = text.encode("utf-8", "surrogatepass")
    quoted = _quote(raw)

    def invalid() -> ValueError:
        return ValueError(f"time: invalid duration {quoted}")

    pos = 0
    negative = False
    if raw[:1] in (b"-", b"+"):
        negative = raw[:1] == b"-"
        pos = 1
    if raw[pos:] == b"0":
        return 0
    if pos == len(raw):
        raise invalid()

    total = 0
    while pos < len(raw):
        if raw[pos] != ord(".") and raw[pos] not in _DIGITS:
            raise invalid()

        whole = 0
        start = pos
        while pos < len(raw) and raw[pos] in _DIGITS:
            whole = whole * 10 + raw[pos] - ord("0")
            if whole > _MAGNITUDE_LIMIT:
                raise invalid()
            pos += 1
        has_whole = pos > start

        fraction = 0
        scale = 1.0  # a float, multiplied step by step, to round exactly as Go does
        has_fraction = False
        if pos < len(raw) and raw[pos] == ord("."):
            pos += 1
            start = pos
            saturated = False
            while pos < len(raw) and raw[pos] in _DIGITS:
                if not saturated:
                    candidate = fraction * 10 + raw[pos] - ord("0")
                    if fraction > _FRACTION_STOP or candidate > _MAGNITUDE_LIMIT:
                        saturated = True
                    else:
                        fraction = candidate
                        scale *= 10
                pos += 1
            has_fraction = pos > start
        if not has_whole and not has_fraction:
            raise invalid()

        start = pos
        while pos < len(raw) and raw[pos] != ord(".") and raw[pos] not in _DIGITS:
            pos += 1
        if pos == start:
            raise ValueError(f"time: missing unit in duration {quoted}")
        unit_text = raw[start:pos]
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise ValueError(f"time: unknown unit {_quote(unit_text)} in duration {quoted}")

        if whole > _MAGNITUDE_LIMIT // unit:
            raise invalid()
        value = whole * unit
        if fraction > 0:
            # Go scales the fraction in float64 and truncates; sub-nanosecond digits vanish.
            value += int(float(fraction) * (float(unit) / scale))
            if value > _MAGNITUDE_LIMIT:
                raise invalid()
        # The uint64 sum can wrap only from 2^63 + 2^63 to 0; Go then carries on, so do we.
        total = (total + value) & _UINT64_MASK
        if total > _MAGNITUDE_LIMIT:
            raise invalid()

    if negative:
        return -total
    if total > INT64_MAX:
        raise invalid()
    return total


def _with_fraction(value: int, digits: int) -> str:
    """`value / 10**digits` in decimal with trailing zeros (and a bare point) dropped."""
    whole, fraction = divmod(value, 10**digits)
    decimals = f"{fraction:0{digits}d}".rstrip("0")
    return f"{whole}.{decimals}" if decimals else str(whole)


def format_go_duration(nanoseconds: int) -> str:
    """Render int64 nanoseconds like Go's `Duration.String()` (`1h0m0s`, `1.5s`, `-100ms`)."""
    if not INT64_MIN <= nanoseconds <= INT64_MAX:
        raise ValueError(f"duration {nanoseconds} is outside the int64 range")
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    magnitude = abs(nanoseconds)
    if magnitude < _MICROSECOND:
        return f"{sign}{magnitude}ns"
    if magnitude < _MILLISECOND:
        return f"{sign}{_with_fraction(magnitude, 3)}\u00b5s"
    if magnitude < _SECOND:
        return f"{sign}{_with_fraction(magnitude, 6)}ms"
    hours, rest = divmod(magnitude, _HOUR)
    minutes, rest = divmod(rest, _MINUTE)
    seconds = _with_fraction(rest, 9)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"
