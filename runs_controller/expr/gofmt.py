"""Go `fmt` verbs for `printf` and `%v` printing of Go-typed values."""

from __future__ import annotations

from .values import GoInt, format_float, go_type_name, is_nil, num_float, print_value

__all__ = ["MAX_WIDTH", "go_sprint", "go_sprintf", "go_sprintln"]

MAX_WIDTH = 1_000_000
_FLOAT_VERBS = "eEfFgG"


def _bad(verb: str, v: object) -> str:
    if is_nil(v):
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type_name(v)}={print_value(v, top=False)})"


def _quote(s: str) -> str:
    from .normalize import go_quote

    return go_quote(s)


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


def _one(v: object, verb: str, prec: int | None, flags: str) -> str:
    if verb == "v":
        if isinstance(v, float | int) and not isinstance(v, bool) and prec is not None:
            return _fmt_float(num_float(v), "g", prec, "+" in flags)
        return print_value(v, top=False)
    if verb == "T":
        return go_type_name(v)
    if isinstance(v, list):
        return "[" + " ".join(_one(x, verb, prec, flags) for x in v) + "]"
    if isinstance(v, dict):
        inner = " ".join(
            f"{_one(k, verb, prec, flags)}:{_one(v[k], verb, prec, flags)}" for k in sorted(v)
        )
        return f"map[{inner}]"
    if isinstance(v, str):
        if verb == "s":
            return v if prec is None else v[:prec]
        if verb == "q":
            return _quote(v)
        if verb in "xX":
            h = v.encode("utf-8", "surrogatepass").hex()
            return h.upper() if verb == "X" else h
        return _bad(verb, v)
    if isinstance(v, bool):
        return ("true" if v else "false") if verb == "t" else _bad(verb, v)
    if isinstance(v, GoInt):
        n = v.value
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
        return _bad(verb, v)
    if isinstance(v, int | float):
        x = num_float(v)
        if verb in _FLOAT_VERBS:
            return _fmt_float(x, verb, prec, "+" in flags)
        return _bad(verb, v)
    return _bad(verb, v)


def go_sprintf(fmt: str, args: list[object]) -> str:
    """Go `fmt.Sprintf` for the common verbs, with Go's `%!verb(...)` error forms."""
    out: list[str] = []
    i, n, argi = 0, len(fmt), 0
    while i < n:
        c = fmt[i]
        if c != "%":
            j = fmt.find("%", i)
            j = n if j < 0 else j
            out.append(fmt[i:j])
            i = j
            continue
        i += 1
        flags = ""
        while i < n and fmt[i] in "+-# 0":
            flags += fmt[i]
            i += 1
        width_s = ""
        while i < n and fmt[i].isdigit():
            width_s += fmt[i]
            i += 1
        prec: int | None = None
        if i < n and fmt[i] == ".":
            i += 1
            p = ""
            while i < n and fmt[i].isdigit():
                p += fmt[i]
                i += 1
            prec = int(p) if p else 0
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        width = int(width_s) if width_s else 0
        if width > MAX_WIDTH or (prec is not None and prec > MAX_WIDTH):
            from .errors import LimitExceeded

            raise LimitExceeded(f"printf width or precision exceeds {MAX_WIDTH}")
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        s = _one(args[argi], verb, prec, flags)
        argi += 1
        if len(s) < width:
            pad = width - len(s)
            if "-" in flags:
                s = s + " " * pad
            elif "0" in flags and (s[:1].isdigit() or s[:1] in "+-"):
                sign = s[0] if s[0] in "+-" else ""
                s = sign + "0" * pad + s[len(sign) :]
            else:
                s = " " * pad + s
        out.append(s)
    if argi < len(args):
        extra = ", ".join(
            "<nil>" if is_nil(a) else f"{go_type_name(a)}={print_value(a, top=False)}"
            for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def go_sprint(args: list[object]) -> str:
    """Go `fmt.Sprint`: spaces only between operands when neither is a string."""
    out: list[str] = []
    for k, a in enumerate(args):
        if k > 0 and not isinstance(a, str) and not isinstance(args[k - 1], str):
            out.append(" ")
        out.append(print_value(a, top=False))
    return "".join(out)


def go_sprintln(args: list[object]) -> str:
    """Go `fmt.Sprintln`: always spaces, trailing newline."""
    return " ".join(print_value(a, top=False) for a in args) + "\n"
