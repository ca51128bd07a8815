"""Go value model over JSON data: kinds, truthiness, comparisons, `%v` printing, json.Marshal.

JSON numbers are float64 in Go, so a Python `int` coming from JSON data is treated as a float
everywhere. Go integers (template literals, `len`, Sprig integer math) are `GoInt`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from .errors import TemplateError

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "NO_VALUE",
    "GoInt",
    "GoTime",
    "NoValue",
    "format_float",
    "go_eq",
    "go_less",
    "go_type_name",
    "is_nil",
    "kind_of",
    "num_float",
    "print_value",
    "to_json",
    "truthy",
]


@dataclass(frozen=True, slots=True)
class GoInt:
    """A Go integer (not a JSON number); `gotype` is the Go type name (`int`, `int64`, `int32`)."""

    value: int
    gotype: str = "int"


@dataclass(frozen=True, slots=True)
class GoTime:
    """A Go `time.Time` (from `now`, `toDate`, `dateModify`)."""

    dt: datetime


class NoValue:
    """Go's invalid `reflect.Value`: a nil that crossed a pipeline boundary ("no value")."""

    _instance: NoValue | None = None

    def __new__(cls) -> NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE: Final = NoValue()


def is_nil(v: object) -> bool:
    """True for JSON null, a missing key and Go's "no value"."""
    return v is None or v is NO_VALUE


def num_float(v: object) -> float:
    """A JSON number as float64 (Python ints from JSON may exceed the float range)."""
    if isinstance(v, float):
        return v
    if not isinstance(v, int):
        raise TemplateError(f"not a number: {type(v).__name__}")
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def kind_of(v: object) -> str:
    """Go basic kind: invalid, nil, bool, int, float, string, map, slice, time."""
    if v is NO_VALUE:
        return "invalid"
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, GoInt):
        return "int"
    if isinstance(v, int | float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "map"
    if isinstance(v, list):
        return "slice"
    if isinstance(v, GoTime):
        return "time"
    raise TemplateError(f"unsupported value of type {type(v).__name__}")


def go_type_name(v: object) -> str:
    """The Go `%T` name of a value as the reference would hold it."""
    k = kind_of(v)
    if k in ("invalid", "nil"):
        return "<nil>"
    if isinstance(v, GoInt):
        return v.gotype
    return {
        "bool": "bool",
        "float": "float64",
        "string": "string",
        "map": "map[string]interface {}",
        "slice": "[]interface {}",
        "time": "time.Time",
    }[k]


def truthy(v: object) -> bool:
    """Go template truth: nil, false, zero, empty string/map/slice are false."""
    if is_nil(v):
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, GoInt):
        return v.value != 0
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str | dict | list):
        return len(v) > 0
    return True


def _shortest_digits(x: float) -> tuple[str, int]:
    """Shortest round-trip digits and decimal exponent e with x = d1.d2... x 10^e."""
    _sign, digits, exp = Decimal(repr(abs(x))).as_tuple()
    ds = "".join(str(d) for d in digits).lstrip("0") or "0"
    if ds == "0":
        return "0", 0
    if not isinstance(exp, int):  # NaN/Inf are handled by the caller
        return "0", 0
    # value = int(all digits) * 10^exp; leading zeros were stripped, trailing zeros may remain
    e = len("".join(str(d) for d in digits).lstrip("0")) - 1 + exp
    return ds.rstrip("0") or "0", e


def format_float(x: float, *, fmt: str = "g") -> str:
    """Go `strconv.FormatFloat(x, fmt, -1, 64)`: 'g' (the `%v` rule, exponent threshold 6),
    'e' (always exponent) or 'f' (never exponent)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    neg = math.copysign(1.0, x) < 0
    ds, e = _shortest_digits(x)
    sign = "-" if neg else ""
    if ds == "0":
        return sign + "0"
    if fmt == "e" or (fmt == "g" and (e < -4 or e >= 6)):
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{sign}{mant}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if e < 0:
        return f"{sign}0.{'0' * (-e - 1)}{ds}"
    if len(ds) <= e + 1:
        return sign + ds + "0" * (e + 1 - len(ds))
    return f"{sign}{ds[: e + 1]}.{ds[e + 1 :]}"


def print_value(v: object, *, top: bool = True) -> str:
    """Go `fmt.Sprint` (`%v`); at the top of an action a nil prints `<no value>`."""
    if is_nil(v):
        return "<no value>" if top else "<nil>"
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, GoInt):
        return str(v.value)
    if isinstance(v, int | float):
        return format_float(num_float(v))
    if isinstance(v, dict):
        inner = " ".join(f"{k}:{print_value(v[k], top=False)}" for k in sorted(v))
        return f"map[{inner}]"
    if isinstance(v, list):
        return "[" + " ".join(print_value(x, top=False) for x in v) + "]"
    if isinstance(v, GoTime):
        return format_go_time(v.dt)
    raise TemplateError(f"cannot print value of type {type(v).__name__}")


def format_go_time(dt: datetime) -> str:
    """Go `time.Time.String()` without the monotonic clock reading."""
    frac = f".{dt.microsecond:06d}".rstrip("0") if dt.microsecond else ""
    off = dt.utcoffset()
    secs = int(off.total_seconds()) if off is not None else 0
    sign = "+" if secs >= 0 else "-"
    secs = abs(secs)
    zone = dt.tzname() or "UTC"
    if zone.startswith("UTC") and secs == 0:
        zone = "UTC"
    base = dt.strftime("%Y-%m-%d %H:%M:%S")
    return f"{base}{frac} {sign}{secs // 3600:02d}{(secs % 3600) // 60:02d} {zone}"


# --- comparisons -------------------------------------------------------------------------------

_BASIC = frozenset({"bool", "int", "float", "string"})


def _num(v: object) -> float | int:
    if isinstance(v, GoInt):
        return v.value
    return num_float(v)


def go_eq(a: object, b: object) -> bool:
    """Go `eq` for two operands. int and float compare numerically (ruling "Expressions")."""
    ka, kb = kind_of(a), kind_of(b)
    na, nb = ka in ("nil", "invalid"), kb in ("nil", "invalid")
    if ka in ("map", "slice") and not nb:
        raise TemplateError("error calling eq: non-comparable type")
    if na or nb:
        if kb in ("map", "slice") and not na:
            raise TemplateError("error calling eq: non-comparable type")
        return na and nb
    if ka == kb:
        if ka in ("int", "float"):
            return _num(a) == _num(b)
        if ka == "time":
            return isinstance(a, GoTime) and isinstance(b, GoTime) and a.dt == b.dt
        return a == b
    if {ka, kb} == {"int", "float"}:
        return _num(a) == _num(b)
    raise TemplateError("error calling eq: incompatible types for comparison")


def go_less(a: object, b: object, name: str) -> bool:
    """Go `lt` on basic kinds; bools and composites are not ordered."""
    ka, kb = kind_of(a), kind_of(b)
    if ka not in _BASIC or kb not in _BASIC:
        raise TemplateError(f"error calling {name}: invalid type for comparison")
    if ka in ("int", "float") and kb in ("int", "float"):
        return _num(a) < _num(b)
    if ka != kb:
        raise TemplateError(f"error calling {name}: incompatible types for comparison")
    if ka == "bool":
        raise TemplateError(f"error calling {name}: invalid type for comparison")
    return str(a).encode("utf-8", "surrogatepass") < str(b).encode("utf-8", "surrogatepass")


# --- json.Marshal ------------------------------------------------------------------------------


def _json_float(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        raise TemplateError(f"json: unsupported value: {format_float(x)}")
    ax = abs(x)
    if ax != 0 and (ax < 1e-6 or ax >= 1e21):
        s = format_float(x, fmt="e")
        # Go writes e-07 as e-7 in JSON
        if "e-0" in s:
            s = s.replace("e-0", "e-")
        return s
    return format_float(x, fmt="f")


def _json_string(s: str, escape_html: bool) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif o < 0x20 or (escape_html and ch in "<>&") or o in (0x2028, 0x2029):
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def to_json(
    v: object, *, escape_html: bool = True, indent: str | None = None, _level: int = 0
) -> str:
    """Go `json.Marshal` (keys sorted, HTML escaping) or `MarshalIndent` with `indent`."""
    if is_nil(v):
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, GoInt):
        return str(v.value)
    if isinstance(v, int | float):
        return _json_float(num_float(v))
    if isinstance(v, str):
        return _json_string(v, escape_html)
    if isinstance(v, GoTime):
        return _json_string(v.dt.isoformat().replace("+00:00", "Z"), escape_html)
    if isinstance(v, dict | list):
        items: list[str]
        if isinstance(v, dict):
            sep = ": " if indent is not None else ":"
            items = [
                _json_string(str(k), escape_html)
                + sep
                + to_json(v[k], escape_html=escape_html, indent=indent, _level=_level + 1)
                for k in sorted(v)
            ]
            open_, close_ = "{", "}"
        else:
            items = [
                to_json(x, escape_html=escape_html, indent=indent, _level=_level + 1) for x in v
            ]
            open_, close_ = "[", "]"
        if not items:
            return open_ + close_
        if indent is None:
            return open_ + ",".join(items) + close_
        pad = "\n" + indent * (_level + 1)
        return open_ + pad + ("," + pad).join(items) + "\n" + indent * _level + close_
    raise TemplateError(f"json: unsupported type {type(v).__name__}")


def plain(v: Any) -> Any:
    """Strip Go wrappers so a value can leave the evaluator as JSON data."""
    if isinstance(v, GoInt):
        return v.value
    if v is NO_VALUE:
        return None
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v
