"""Go `fmt` verbs for `printf` and `%v` printing of Go-typed values.

Everything is written into a `Sink`, so the result size is checked piece by piece before it is
built (padding before it is allocated): a `printf` can never allocate past the value limit by
more than one argument's own printed form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import LimitExceeded
from .normalize import go_quote
from .text import Sink, utf8_len
from .values import (
    GoInt,
    format_float,
    go_type_name,
    is_nil,
    num_float,
    write_escaped,
    write_value,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["MAX_WIDTH", "go_sprint", "go_sprintf", "go_sprintln"]

MAX_WIDTH = 1_000_000
_FLOAT_VERBS = "eEfFgG"


def _write_bad(sink: Sink, verb: str, v: object) -> None:
    if is_nil(v):
        sink.write(f"%!{verb}(<nil>)")
        return
    sink.write(f"%!{verb}({go_type_name(v)}=")
    write_value(sink, v)
    sink.write(")")


def _fmt_float(x: float, verb: str, prec: int | None, plus: bool) -> str:
    if verb in "gG" and prec is None:
        s = format_float(x, fmt="g")
    elif verb in "eE":
        s = f"{x:.{6 if prec is None else prec}e}"
    elif verb in "fF":
        s = f"{x:.{6 if prec is None else prec}f}"
    else:
        s = f"{x:.{prec}g}" if prec else format_float(x)
    if verb.isupper():
        s = s.upper()
    if plus and not s.startswith("-"):
        s = "+" + s
    return s


def _float_bytes(x: float, verb: str, prec: int | None) -> int:
    """Upper bound of `_fmt_float`'s length: `%f` of 1e308 has 309 integer digits."""
    digits = 330 if verb in "fF" else 30
    return digits + (prec or 0)


def _write_one(sink: Sink, v: object, verb: str, prec: int | None, flags: str) -> None:
    if verb == "v":
        if isinstance(v, float | int) and not isinstance(v, bool | GoInt) and prec is not None:
            sink.reserve(_float_bytes(0.0, "g", prec))
            sink.write(_fmt_float(num_float(v), "g", prec, "+" in flags))
        else:
            write_value(sink, v)
        return
    if verb == "T":
        sink.write(go_type_name(v))
        return
    if isinstance(v, list):
        sink.write("[")
        for k, x in enumerate(v):
            if k:
                sink.write(" ")
            _write_one(sink, x, verb, prec, flags)
        sink.write("]")
        return
    if isinstance(v, dict):
        sink.write("map[")
        for k, key in enumerate(sorted(v)):
            if k:
                sink.write(" ")
            _write_one(sink, key, verb, prec, flags)
            sink.write(":")
            _write_one(sink, v[key], verb, prec, flags)
        sink.write("]")
        return
    if isinstance(v, str):
        _write_str(sink, v, verb, prec, flags)
        return
    if isinstance(v, bool):
        if verb == "t":
            sink.write("true" if v else "false")
        else:
            _write_bad(sink, verb, v)
        return
    if isinstance(v, GoInt):
        s = _int_verb(v.value, verb, flags)
        if s is None:
            _write_bad(sink, verb, v)
        else:
            sink.write(s)
        return
    if isinstance(v, int | float) and verb in _FLOAT_VERBS:
        sink.reserve(_float_bytes(0.0, verb, prec))
        sink.write(_fmt_float(num_float(v), verb, prec, "+" in flags))
        return
    _write_bad(sink, verb, v)


def _write_str(sink: Sink, v: str, verb: str, prec: int | None, flags: str) -> None:
    del flags
    if verb == "s":
        sink.write(v if prec is None else v[:prec])
    elif verb == "q":
        write_escaped(sink, v, go_quote, 4)
    elif verb in "xX":
        sink.reserve(2 * utf8_len(v))
        h = v.encode("utf-8", "surrogatepass").hex()
        sink.write(h.upper() if verb == "X" else h)
    else:
        _write_bad(sink, verb, v)


def _int_verb(n: int, verb: str, flags: str) -> str | None:
    if verb == "d":
        return f"+{n}" if "+" in flags and n >= 0 else str(n)
    if verb in "xX":
        s = format(n, "x" if verb == "x" else "X")
        return "0x" + s if "#" in flags else s
    if verb == "o":
        return format(n, "o")
    if verb == "b":
        return format(n, "b")
    if verb == "c":
        return chr(n) if 0 <= n <= 0x10FFFF else "\ufffd"
    if verb == "q":
        return "'" + (chr(n) if 0 <= n <= 0x10FFFF else "\ufffd") + "'"
    return None


def _pad(s: str, width: int, flags: str) -> str:
    pad = width - len(s)
    if pad <= 0:
        return s
    if "-" in flags:
        return s + " " * pad
    if "0" in flags and (s[:1].isdigit() or s[:1] in "+-"):
        sign = s[0] if s[0] in "+-" else ""
        return sign + "0" * pad + s[len(sign) :]
    return " " * pad + s


def _scan_spec(fmt: str, i: int) -> tuple[str, int, int | None, int]:
    """Flags, width, precision of the verb whose spec starts at fmt[i]; and the verb's index."""
    n = len(fmt)
    j = i
    while j < n and fmt[j] in "+-# 0":
        j += 1
    flags = fmt[i:j]
    k = j
    while k < n and fmt[k].isdigit():
        k += 1
    width = _bounded_int(fmt[j:k])
    prec: int | None = None
    if k < n and fmt[k] == ".":
        m = k + 1
        while m < n and fmt[m].isdigit():
            m += 1
        prec = _bounded_int(fmt[k + 1 : m])
        k = m
    return flags, width, prec, k


def _bounded_int(digits: str) -> int:
    """A width or precision; refused over MAX_WIDTH (checked on the digit count first, so a
    million-digit width is not converted)."""
    if not digits:
        return 0
    if len(digits.lstrip("0")) > len(str(MAX_WIDTH)) or int(digits) > MAX_WIDTH:
        raise LimitExceeded(f"printf width or precision exceeds {MAX_WIDTH}")
    return int(digits)


def write_sprintf(sink: Sink, fmt: str, args: list[object]) -> None:
    """Go `fmt.Sprintf` for the common verbs, with Go's `%!verb(...)` error forms."""
    i, n, argi = 0, len(fmt), 0
    while i < n:
        if fmt[i] != "%":
            j = fmt.find("%", i)
            j = n if j < 0 else j
            sink.write(fmt[i:j])
            i = j
            continue
        flags, width, prec, i = _scan_spec(fmt, i + 1)
        if i >= n:
            sink.write("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            sink.write("%")
            continue
        if argi >= len(args):
            sink.write(f"%!{verb}(MISSING)")
            continue
        piece = Sink(sink.limit - sink.size if sink.limit else 0, sink.what, sink.charge_fn)
        _write_one(piece, args[argi], verb, prec, flags)
        argi += 1
        s = piece.getvalue()
        sink.reserve(utf8_len(s) + max(width - len(s), 0))
        sink.write(_pad(s, width, flags))
    if argi < len(args):
        sink.write("%!(EXTRA ")
        for k, a in enumerate(args[argi:]):
            if k:
                sink.write(", ")
            if is_nil(a):
                sink.write("<nil>")
            else:
                sink.write(f"{go_type_name(a)}=")
                write_value(sink, a)
        sink.write(")")


def go_sprintf(
    fmt: str, args: list[object], *, limit: int = 0, charge: Callable[[int], None] | None = None
) -> str:
    """`fmt.Sprintf` as a string of at most `limit` bytes (0: unbounded), charged per piece."""
    sink = Sink(limit, "printf result", charge)
    write_sprintf(sink, fmt, args)
    return sink.getvalue()


def go_sprint(
    args: list[object], *, limit: int = 0, charge: Callable[[int], None] | None = None
) -> str:
    """Go `fmt.Sprint`: spaces only between operands when neither is a string."""
    sink = Sink(limit, "print result", charge)
    for k, a in enumerate(args):
        if k > 0 and not isinstance(a, str) and not isinstance(args[k - 1], str):
            sink.write(" ")
        write_value(sink, a)
    return sink.getvalue()


def go_sprintln(
    args: list[object], *, limit: int = 0, charge: Callable[[int], None] | None = None
) -> str:
    """Go `fmt.Sprintln`: always spaces, trailing newline."""
    sink = Sink(limit, "println result", charge)
    for k, a in enumerate(args):
        if k:
            sink.write(" ")
        write_value(sink, a)
    sink.write("\n")
    return sink.getvalue()
