"""Go value model over JSON data: kinds, truthiness, comparisons, `%v` printing, json.Marshal.

JSON numbers are float64 in Go, so a Python `int` coming from JSON data is treated as a float
everywhere. Go integers (template literals, `len`, Sprig integer math) are `GoInt`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, Final

from .errors import TemplateError
from .text import Sink, utf8_len

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

__all__ = [
    "NO_VALUE",
    "GoInt",
    "GoTime",
    "NoValue",
    "deep_key",
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
    "write_chunked",
    "write_escaped",
    "write_value",
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
    """Shortest round-trip digits and decimal exponent e with x = d1.d2... x 10^e (x > 0).

    Read off `repr`, which is the shortest round-trip form ("2.5", "1e-07", "1.25e+16").
    """
    mant, _, exp = repr(abs(x)).partition("e")
    ip, _, fp = mant.partition(".")
    e = int(exp) if exp else 0
    if ip != "0":
        return (ip + fp).rstrip("0") or "0", len(ip) - 1 + e
    digits = fp.lstrip("0")
    return digits.rstrip("0") or "0", e - (len(fp) - len(digits)) - 1


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


def print_value(
    v: object,
    *,
    top: bool = True,
    limit: int = 0,
    charge: Callable[[int], None] | None = None,
) -> str:
    """Go `fmt.Sprint` (`%v`); at the top of an action a nil prints `<no value>`.

    With `limit`, a result over `limit` UTF-8 bytes is refused before it is built; `charge`
    is paid a step per piece written (see Sink).
    """
    if isinstance(v, str):
        if limit and utf8_len(v) > limit:
            Sink(limit, "printed value").write(v)
        return v
    sink = Sink(limit, "printed value", charge)
    write_value(sink, v, top=top)
    return sink.getvalue()


def write_value(sink: Sink, v: object, *, top: bool = False) -> None:
    """Write the `%v` form of `v` into `sink` piece by piece (so a limit stops it early)."""
    if isinstance(v, str):
        sink.write(v)
    elif is_nil(v):
        sink.write("<no value>" if top else "<nil>")
    elif isinstance(v, bool):
        sink.write("true" if v else "false")
    elif isinstance(v, GoInt):
        sink.write(str(v.value))
    elif isinstance(v, int) and -1_000_000 < v < 1_000_000:
        sink.write(str(v))  # %v of a float64 below 1e6 in magnitude: its integer digits
    elif isinstance(v, int | float):
        sink.write(format_float(num_float(v)))
    elif isinstance(v, dict):
        sink.write("map[")
        for k, key in enumerate(sorted(v)):
            sink.write(f" {key}:" if k else f"{key}:")
            write_value(sink, v[key])
        sink.write("]")
    elif isinstance(v, list):
        sink.write("[")
        for k, x in enumerate(v):
            if k:
                sink.write(" ")
            write_value(sink, x)
        sink.write("]")
    elif isinstance(v, GoTime):
        sink.write(format_go_time(v.dt))
    else:
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
    if x.is_integer() and -_EXACT_INT < x < _EXACT_INT:
        return str(int(x)) if x or math.copysign(1.0, x) > 0 else "-0"
    return _json_float_slow(x)


def _json_float_slow(x: float) -> str:
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


_HTML_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"))
_SURROGATE = re.compile("[\ud800-\udfff]")
# Escaping a chunk at a time bounds what is allocated past a Sink's limit.
_ESCAPE_CHUNK = 4096


def _json_string(s: str, escape_html: bool) -> str:
    """Go's JSON string form: control characters, U+2028/9 and (optionally) <>& escaped,
    invalid UTF-8 (lone surrogates) replaced by U+FFFD. C-speed via the json module."""
    out = encode_basestring(s)
    if escape_html:
        for ch, esc in _HTML_ESCAPES:
            if ch in out:
                out = out.replace(ch, esc)
    if not out.isascii():
        out = out.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        out = _SURROGATE.sub("\ufffd", out)
    return out


def write_chunked(sink: Sink, s: str, transform: Callable[[str], str], factor: int) -> None:
    """Write `transform(s)` into `sink` without building more than one chunk past its limit.

    `transform` must work code point by code point and grow text at most `factor` times (in
    UTF-8 bytes): when the bound fits, `s` is transformed at once, else chunk by chunk.
    """
    if not sink.limit or sink.size + factor * utf8_len(s) <= sink.limit:
        sink.write(transform(s))
        return
    for k in range(0, len(s), _ESCAPE_CHUNK):
        sink.write(transform(s[k : k + _ESCAPE_CHUNK]))


def write_escaped(sink: Sink, s: str, quote: Callable[[str], str], factor: int) -> None:
    """Write the quoted form `quote(s)` (its body at most `factor` times `s`) through a sink."""
    delim = quote("")
    sink.write(delim[0])
    write_chunked(sink, s, lambda x: quote(x)[1:-1], factor)
    sink.write(delim[-1])


def to_json(
    v: object,
    *,
    escape_html: bool = True,
    indent: str | None = None,
    limit: int = 0,
    charge: Callable[[int], None] | None = None,
) -> str:
    """Go `json.Marshal` (keys sorted, HTML escaping) or `MarshalIndent` with `indent`.

    With `limit`, output over `limit` UTF-8 bytes is refused before it is built (to within
    one small piece; long strings are escaped chunk by chunk); `charge` is paid per piece.
    """
    sink = Sink(limit, "JSON text", charge)
    _JsonEncoder(escape_html, indent, sink).encode(v, 0)
    return sink.getvalue()


class _JsonEncoder:
    """Writes JSON pieces into a Sink, which counts their bytes against its limit."""

    __slots__ = ("add", "escape_html", "indent", "sink")

    def __init__(self, escape_html: bool, indent: str | None, sink: Sink) -> None:
        self.escape_html = escape_html
        self.indent = indent
        self.sink = sink
        self.add = sink.write

    def string(self, s: str) -> None:
        write_escaped(self.sink, s, lambda x: _json_string(x, self.escape_html), 6)

    def encode(self, v: object, level: int) -> None:
        if isinstance(v, str):
            self.string(v)
        elif isinstance(v, dict | list):
            self.container(v, level)
        elif v is None or v is NO_VALUE:
            self.add("null")
        elif isinstance(v, bool):
            self.add("true" if v else "false")
        elif isinstance(v, GoInt):
            self.add(str(v.value))
        elif isinstance(v, int) and -_EXACT_INT < v < _EXACT_INT:
            self.add(str(v))  # a float64 that prints as its integer digits
        elif isinstance(v, int | float):
            self.add(_json_float(num_float(v)))
        elif isinstance(v, GoTime):
            self.string(v.dt.isoformat().replace("+00:00", "Z"))
        else:
            raise TemplateError(f"json: unsupported type {type(v).__name__}")

    def container(self, v: dict[Any, Any] | list[Any], level: int) -> None:
        is_map = isinstance(v, dict)
        if not v:
            self.add("{}" if is_map else "[]")
            return
        pad = "\n" + self.indent * (level + 1) if self.indent is not None else ""
        comma_pad = "," + pad  # one object, appended between every two items
        self.add("{" if is_map else "[")
        if isinstance(v, dict):
            sep = '": ' if self.indent is not None else '":'
            for k, key in enumerate(sorted(v)):
                ks = _json_string(str(key), self.escape_html)
                self.add((comma_pad if k else pad) + ks[:-1] + sep)
                self.encode(v[key], level + 1)
        else:
            for k, x in enumerate(v):
                if k:
                    self.add(comma_pad)
                elif pad:
                    self.add(pad)
                self.encode(x, level + 1)
        if self.indent is not None:
            self.add("\n" + self.indent * level)
        self.add("}" if is_map else "]")


# Python ints below this print the same as the float64 they stand for (no rounding, no exponent).
_EXACT_INT = 2**53


# --- deep equality as a hash key ---------------------------------------------------------------


def deep_key(
    v: object, memo: dict[int, tuple[object, object]], charge: Callable[[int], None]
) -> object:
    """A hashable key with `key(a) == key(b)` exactly when Sprig's deep equality holds.

    JSON numbers (Python int/float) compare by float64 value across int and float; Go integers
    are distinct from JSON numbers and from each other's Go types; bools are not numbers;
    containers must have the same type; anything containing NaN equals nothing, itself
    included, so it gets a fresh key. `memo` (id -> (container, key)) shares the keys of
    aliased containers; `charge(n)` is told about every n nodes visited.
    """
    if isinstance(v, str):
        return v if type(v) is str else (type(v), str(v))
    if isinstance(v, list | dict):
        hit = memo.get(id(v))
        if hit is not None:
            key = hit[1]
            return object() if key is _UNEQUAL else key
        charge(len(v) + 1)  # a step per node
        if isinstance(v, dict):
            items = [(k, deep_key(x, memo, charge)) for k, x in v.items()]
            unequal = any(_is_fresh(x) for _, x in items)
            key = _UNEQUAL if unequal else (type(v), frozenset(items))
        else:
            elems = [deep_key(x, memo, charge) for x in v]
            unequal = any(_is_fresh(x) for x in elems)
            key = _UNEQUAL if unequal else (type(v), tuple(elems))
        memo[id(v)] = (v, key)
        return object() if key is _UNEQUAL else key
    if isinstance(v, bool):
        return (bool, v)
    if isinstance(v, GoInt):
        return (GoInt, v.value, v.gotype)
    if isinstance(v, int | float):
        f = num_float(v)
        return object() if math.isnan(f) else (float, f)
    if v is None:
        return (None,)
    if v is NO_VALUE:
        return (NoValue,)
    if isinstance(v, GoTime):
        return (GoTime, v.dt)
    try:
        hash(v)
    except TypeError:
        return object()
    return (type(v), v)


class _Unequal:
    """Marks a memoised container that contains NaN: each occurrence gets a fresh key."""


_UNEQUAL: Final = _Unequal()


def _is_fresh(key: object) -> bool:
    return type(key) is object


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
