"""The function catalogue (§8.6): Go builtins, the allowed Sprig subset and the custom helpers.

`env`, `expandenv` and `getHostByName` are deliberately absent: naming them is a parse error.

Cost and size: every call is charged for the length of its string and container arguments
before it runs (the work of most functions is linear in them). Functions that can build a
result larger than their input, or that walk values deeply, are `budgeted`: they receive the
evaluation's Budget, charge their real work and check the UTF-8 size of their result before
building it. Any exception inside a function becomes a `FuncError` (or `LimitExceeded`).
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import math
import re
import secrets
import string
import urllib.parse
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runs_controller.engine.durations import format_go_duration, parse_go_duration

from .errors import LimitExceeded, OffloadedData, TemplateError
from .gofmt import MAX_WIDTH, go_sprint, go_sprintf, go_sprintln
from .limits import BYTES_PER_STEP, CHARS_PER_STEP, ITEMS_PER_STEP, Budget
from .normalize import go_quote
from .text import Sink, utf8_len
from .values import (
    NO_VALUE,
    GoInt,
    GoTime,
    deep_key,
    go_eq,
    go_less,
    go_type_name,
    is_nil,
    kind_of,
    num_float,
    print_value,
    to_json,
    truthy,
    write_chunked,
    write_escaped,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "BUILTIN_NAMES",
    "DISALLOWED",
    "FuncError",
    "FuncSpec",
    "function_names",
    "functions",
]

DISALLOWED = ("env", "expandenv", "getHostByName")
_I64 = 2**64


class FuncError(TemplateError):
    """A function failed; the evaluator reports it as "error calling NAME: ..."."""


def _wrap64(n: int) -> int:
    n %= _I64
    return n - _I64 if n >= 2**63 else n


# Exceptions whose own text is the message (as before); anything else is named by its type.
_PLAIN_ERRORS = (
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    ArithmeticError,
    UnicodeError,
)


@dataclass(frozen=True, slots=True)
class FuncSpec:
    """A callable with Go parameter kinds: any, str, int, float, bool, map, time.

    `budgeted`: `fn` takes the evaluation's Budget first (it charges its own deep work and
    checks its result size). `str_rate`: bytes of string arguments per charged step (lower for
    functions that loop over characters in Python).
    """

    name: str
    fn: Callable[..., object]
    params: tuple[str, ...] = ()
    variadic: str | None = None
    budgeted: bool = False
    str_rate: int = BYTES_PER_STEP

    def kind(self, k: int) -> str:
        """Parameter kind of argument k."""
        return self.params[k] if k < len(self.params) else str(self.variadic)

    def arity_error(self, n_args: int, n_in: int) -> str | None:
        """Go's message for a wrong argument count; `n_args` excludes a piped final value."""
        want = len(self.params)
        if self.variadic is not None:
            if n_in < want:
                return f"wrong number of args for {self.name}: want at least {want} got {n_args}"
        elif n_in != want:
            return f"wrong number of args for {self.name}: want {want} got {n_in}"
        return None

    def invoke(self, args: list[object], budget: Budget) -> object:
        """Call with converted arguments; charged first, and only TemplateErrors escape."""
        budget.charge(_argument_cost(args, self.str_rate))
        try:
            return self.fn(budget, *args) if self.budgeted else self.fn(*args)
        except (FuncError, OffloadedData, LimitExceeded):
            raise
        except TemplateError as exc:
            raise FuncError(str(exc)) from exc
        except RecursionError as exc:
            raise LimitExceeded(f"{self.name}: value nested too deeply") from exc
        except MemoryError as exc:
            raise LimitExceeded(f"{self.name}: out of memory") from exc
        except _PLAIN_ERRORS as exc:
            raise FuncError(str(exc) or type(exc).__name__) from exc
        except Exception as exc:
            raise FuncError(f"{type(exc).__name__}: {exc}") from exc


def _argument_cost(args: list[object], str_rate: int) -> int:
    """Steps for work linear in the arguments: their string bytes and container lengths."""
    chars = items = 0
    for a in args:
        if isinstance(a, str):
            chars += len(a)
        elif isinstance(a, list | dict):
            items += len(a)
    return chars // str_rate + items // ITEMS_PER_STEP


def convert_value(v: object, kind: str) -> object:
    """Go's validateType for an evaluated argument: `v` must suit a parameter of `kind`.

    A nil from a map lookup (None) is a nil interface, a nil that crossed a pipeline
    (NO_VALUE) is Go's invalid value; their messages differ as in Go. A whole-number JSON
    number is accepted as an int (ruling "Expressions").
    """
    if kind == "any":
        return None if v is NO_VALUE else v
    if v is NO_VALUE:
        if kind == "map":
            return {}  # a nil map
        raise TemplateError(f"invalid value; expected {_GO_KIND[kind]}")
    if v is None:
        raise TemplateError(f"wrong type for value; expected {_GO_KIND[kind]}; got interface {{}}")
    gt = go_type_name(v)
    if kind == "str" and isinstance(v, str):
        return v
    if kind == "int":
        if isinstance(v, GoInt):
            return v.value
        if isinstance(v, int | float) and not isinstance(v, bool):
            f = num_float(v)
            if f.is_integer() and -(2**63) <= f < 2**63:
                return int(f)
    if kind == "float" and not isinstance(v, bool):
        if isinstance(v, GoInt):
            return float(v.value)
        if isinstance(v, int | float):
            return num_float(v)
    if (
        (kind == "bool" and isinstance(v, bool))
        or (kind == "map" and isinstance(v, dict))
        or (kind == "time" and isinstance(v, GoTime))
    ):
        return v
    raise TemplateError(f"wrong type for value; expected {_GO_KIND[kind]}; got {gt}")


_GO_KIND = {
    "str": "string",
    "int": "int",
    "float": "float64",
    "bool": "bool",
    "map": "map[string]interface {}",
    "time": "time.Time",
}


# --- shared helpers (Sprig conversions) -------------------------------------------------------


def strval(budget: Budget, v: object) -> str:
    """Sprig strval: strings as-is, everything else through `%v` (charged, size-limited)."""
    if isinstance(v, str):
        return v
    return print_value(v, top=False, limit=budget.limits.max_value_bytes, charge=budget.charge)


def to_int64(v: object) -> int:
    """spf13/cast ToInt64 as Sprig uses it: errors become 0."""
    if is_nil(v):
        return 0
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, GoInt):
        return v.value
    if isinstance(v, int | float):
        f = num_float(v)
        if math.isnan(f) or math.isinf(f):
            return -(2**63)
        return _wrap64(int(f))
    if isinstance(v, str):
        s = v.strip()
        try:
            return _wrap64(int(s, 0))
        except ValueError:
            try:
                f = float(s)
                return _wrap64(int(f)) if f.is_integer() else 0
            except (ValueError, OverflowError):
                return 0
    return 0


def to_float64(v: object) -> float:
    """spf13/cast ToFloat64: errors become 0."""
    if is_nil(v):
        return 0.0
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, GoInt):
        return float(v.value)
    if isinstance(v, int | float):
        return num_float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return 0.0
    return 0.0


def empty(v: object) -> bool:
    """Sprig `empty`: Go zero values and empty containers."""
    return not truthy(v) if not isinstance(v, GoTime) else False


def _as_list(v: object, what: str) -> list[Any]:
    if isinstance(v, list):
        return v
    raise FuncError(f"Cannot {what} on type {go_type_name(v)}")


def strslice(budget: Budget, v: object) -> list[str]:
    """Sprig strslice, refusing once the strings together pass the value limit."""
    if is_nil(v):
        return []
    if not isinstance(v, list):
        return [strval(budget, v)]
    budget.charge_items(len(v))
    out: list[str] = []
    total = 0
    for x in v:
        if is_nil(x):
            continue
        s = strval(budget, x)
        total += utf8_len(s) + 1
        budget.check_bytes(total, "list of strings")
        out.append(s)
    return out


def _storage_selector(v: object) -> str | None:
    if isinstance(v, dict) and isinstance(v.get("$bubuStorageRef"), str):
        ref = v["$bubuStorageRef"]
        path = v.get("$bubuStoragePath")
        return f"{ref}.{path}" if isinstance(path, str) and path else ref
    return None


# --- Go builtins --------------------------------------------------------------------------------


def _index(item: object, *keys: object) -> object:
    for key in keys:
        if is_nil(item):
            raise FuncError("index of untyped nil")
        if isinstance(item, dict):
            if not isinstance(key, str):
                raise FuncError(f"value has type {go_type_name(key)}; should be string")
            item = item.get(key)
        elif isinstance(item, list | str):
            if isinstance(key, GoInt):
                k = key.value
            elif (
                isinstance(key, int | float)
                and not isinstance(key, bool)
                and num_float(key).is_integer()
            ):
                k = int(num_float(key))
            elif is_nil(key):
                raise FuncError("cannot index slice/array with nil")
            else:
                raise FuncError(f"cannot index slice/array with type {go_type_name(key)}")
            if k < 0 or k >= len(item):
                raise FuncError(f"index out of range: {k}")
            if isinstance(item, str):
                item = GoInt(item.encode("utf-8", "surrogatepass")[k], "uint8")
            else:
                item = item[k]
        else:
            raise FuncError(f"can't index item of type {go_type_name(item)}")
    return item


def _eq(a: object, *bs: object) -> bool:
    if not bs:
        raise FuncError("missing argument for comparison")
    return any(go_eq(a, b) for b in bs)


def _print_args(budget: Budget, args: tuple[object, ...]) -> str:
    """The text html/js/urlquery escape: a lone string, else `fmt.Sprint` of the arguments."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return go_sprint(list(args), limit=budget.limits.max_value_bytes, charge=budget.charge)


def _escape_into(budget: Budget, s: str, fn: Callable[[str], str], factor: int, what: str) -> str:
    budget.charge_bytes(factor * len(s))
    sink = budget.sink(what)
    write_chunked(sink, s, fn, factor)
    return sink.getvalue()


def _html_escape(s: str) -> str:
    return (
        s.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
        .replace("\x00", "\ufffd")
    )


def _html(budget: Budget, *args: object) -> str:
    return _escape_into(budget, _print_args(budget, args), _html_escape, 5, "html result")


# Go's JSEscape for the ASCII it escapes (a translate table: no Python work per character).
_JS_TABLE = {ord(c): "\\" + c for c in "\\'\""} | {
    c: f"\\u{c:04X}" for c in [*range(0x20), 0x7F, *map(ord, "<>&=")]
}


def _js(budget: Budget, *args: object) -> str:
    def esc(s: str) -> str:
        return s.translate(_JS_TABLE)

    return _escape_into(budget, _print_args(budget, args), esc, 6, "js result")


def _urlquery(budget: Budget, *args: object) -> str:
    def esc(s: str) -> str:
        return urllib.parse.quote_plus(s, safe="-_.~")

    return _escape_into(budget, _print_args(budget, args), esc, 3, "urlquery result")


def _call(*_args: object) -> object:
    raise FuncError("call of a non-function: templates have no function values")


# --- custom helpers ----------------------------------------------------------------------------


def _len(v: object) -> GoInt:
    sel = _storage_selector(v)
    if sel is not None:
        raise OffloadedData(f"len requires hydrated data for {sel}")
    if is_nil(v):
        return GoInt(0)
    if isinstance(v, str):
        return GoInt(len(v.encode("utf-8", "surrogatepass")))
    if isinstance(v, list | dict):
        return GoInt(len(v))
    raise FuncError(f"len: unsupported argument type {go_type_name(v)}")


def _hash_of(v: object) -> str:
    sel = _storage_selector(v)
    if sel is not None:
        raise OffloadedData(f"hash_of requires hydrated data for {sel}")
    if is_nil(v):
        raise FuncError("hash_of: value is null")
    if isinstance(v, str):
        return hashlib.sha256(v.encode("utf-8", "surrogatepass")).hexdigest()
    raise FuncError(f"hash_of: unsupported argument type {go_type_name(v)}")


def _type_of(v: object) -> str:
    sel = _storage_selector(v)
    if sel is not None:
        return f"offloaded({sel})"
    k = kind_of(v)
    return {
        "invalid": "null",
        "nil": "null",
        "map": "object",
        "slice": "array",
        "string": "string",
        "bool": "bool",
        "int": "number",
        "float": "number",
        "time": "string",
    }[k]


def _sample(v: object) -> object:
    sel = _storage_selector(v)
    if sel is not None:
        raise OffloadedData(f"sample requires hydrated data for {sel}")
    return v


# --- strings -----------------------------------------------------------------------------------


def _abbrev(width: int, s: str) -> str:
    if width < 4 or len(s) <= width:
        return s
    return s[: width - 3] + "..."


def _abbrevboth(left: int, right: int, s: str) -> str:
    if right < 4 or (left > 0 and right < 7):
        return s
    if s == "" or len(s) <= right:
        return s
    offset = min(left, len(s))
    if len(s) - offset < right - 3:
        offset = len(s) - (right - 3)
    if offset <= 4:
        return s[: right - 3] + "..."
    if offset + right - 3 < len(s):
        return "..." + _abbrev(right - 3, s[offset:])
    return "..." + s[len(s) - (right - 3) :]


def _trunc(c: int, s: str) -> str:
    if c < 0 and len(s) + c > 0:
        return s[len(s) + c :]
    if c >= 0 and len(s) > c:
        return s[:c]
    return s


def _substr(start: int, end: int, s: str) -> str:
    if start < 0:
        if end > len(s) or end < 0:
            raise FuncError(f"slice bounds out of range [:{end}] with length {len(s)}")
        return s[:end]
    if start > len(s):
        raise FuncError(f"slice bounds out of range [{start}:{len(s)}]")
    if end < 0 or end > len(s):
        return s[start:]
    if start > end:
        raise FuncError(f"slice bounds out of range [{start}:{end}]")
    return s[start:end]


def _title(s: str) -> str:
    out, prev = [], " "
    for ch in s:
        out.append(ch.upper() if not (prev.isalnum() or prev == "_") else ch)
        prev = ch
    return "".join(out)


def _untitle(s: str) -> str:
    out, prev = [], " "
    for ch in s:
        out.append(ch.lower() if prev.isspace() else ch)
        prev = ch
    return "".join(out)


# Zero-width forms of `([a-z0-9])([A-Z])` and `([A-Z]+)([A-Z][a-z])` -> "\1 \2": the same
# insertions, without the backtracking that made a long run of capitals quadratic.
_LOWER_UPPER = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_UPPER_RUN_END = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")


def _words(s: str) -> list[str]:
    s = _LOWER_UPPER.sub(" ", s)
    s = _UPPER_RUN_END.sub(" ", s)
    return [w for w in re.split(r"[^A-Za-z0-9]+", s) if w]


def _snake(s: str) -> str:
    return "_".join(w.lower() for w in _words(s))


def _kebab(s: str) -> str:
    return "-".join(w.lower() for w in _words(s))


def _camel(s: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[_\s-]+", s) if w)


def _initials(s: str) -> str:
    return "".join(w[0] for w in s.split() if w)


class _Lines(list[str]):
    """Lines of a wrap result; refuses once they and their separators pass the value limit."""

    def __init__(self, budget: Budget, sep_bytes: int) -> None:
        super().__init__()
        self.budget = budget
        self.sep_bytes = sep_bytes
        self.size = -sep_bytes

    def append(self, line: str) -> None:
        self.size += utf8_len(line) + self.sep_bytes
        if len(self) % 1024 == 0:
            self.budget.check_bytes(self.size, "wrap result")
        super().append(line)

    def extend(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.append(line)


def _wrap_lines(width: int, s: str, lines: list[str]) -> list[str]:
    """The lines of Sprig's word wrap, appended to `lines`; linear (long words are cut by
    slicing, a line is accumulated as parts) so a width of 1 over a long word is not quadratic."""
    width = max(width, 1)
    for para in s.split("\n"):
        parts: list[str] = []
        size = 0
        for word in para.split(" "):
            if len(word) > width:
                if size:
                    lines.append("".join(parts))
                    parts, size = [], 0
                cut = (len(word) - 1) // width * width
                lines.extend(word[k : k + width] for k in range(0, cut, width))
                word = word[cut:]
            if not size:
                parts, size = [word], len(word)
            elif size + 1 + len(word) <= width:
                parts += (" ", word)
                size += 1 + len(word)
            else:
                lines.append("".join(parts))
                parts, size = [word], len(word)
        lines.append("".join(parts))
    return lines


def _wrap_custom(budget: Budget, width: int, sep: str, s: str) -> str:
    lines = _wrap_lines(width, s, _Lines(budget, utf8_len(sep)))
    assert isinstance(lines, _Lines)  # noqa: S101 - built above
    budget.charge_items(len(lines))
    budget.check_bytes(lines.size, "wrap result")
    return sep.join(lines)


def _indent(budget: Budget, spaces: int, v: str, *, lead: str = "") -> str:
    if spaces > MAX_WIDTH:
        raise LimitExceeded(f"indent exceeds {MAX_WIDTH} spaces")
    n = max(spaces, 0)
    added = n * (v.count("\n") + 1)
    budget.check_bytes(len(lead) + utf8_len(v) + added, "indent result")
    budget.charge_bytes(added)
    pad = " " * n
    return lead + pad + v.replace("\n", "\n" + pad)


def _replace(budget: Budget, old: str, new: str, s: str) -> str:
    count = len(s) + 1 if old == "" else s.count(old)
    size = utf8_len(s) + count * (utf8_len(new) - utf8_len(old))
    budget.check_bytes(size, "replace result")
    budget.charge_bytes(size)
    return s.replace(old, new)


def _quote(budget: Budget, *vs: object) -> str:
    sink = budget.sink("quote result")
    for v in vs:
        if is_nil(v):
            continue
        if sink.size:
            sink.write(" ")
        s = strval(budget, v)
        budget.charge_bytes(4 * len(s))
        write_escaped(sink, s, go_quote, 4)
    return sink.getvalue()


def _squote(budget: Budget, *vs: object) -> str:
    sink = budget.sink("squote result")
    for v in vs:
        if is_nil(v):
            continue
        if sink.size:
            sink.write(" ")
        sink.write(f"'{strval(budget, v)}'")
    return sink.getvalue()


def _cat(budget: Budget, *vs: object) -> str:
    args = [v for v in vs if not is_nil(v)]
    fmt = " ".join(["%v"] * len(args))
    return go_sprintf(fmt, args, limit=budget.limits.max_value_bytes, charge=budget.charge)


def _nospace(s: str) -> str:
    return "".join(s.split())


def _plural(one: str, many: str, count: int) -> str:
    return one if count == 1 else many


def _sum(algo: str) -> Callable[[str], str]:
    def f(s: str) -> str:
        return hashlib.new(algo, s.encode("utf-8", "surrogatepass")).hexdigest()

    return f


def _adler32(s: str) -> str:
    return str(zlib.adler32(s.encode("utf-8", "surrogatepass")))


# --- math --------------------------------------------------------------------------------------


def _atoi(s: str) -> GoInt:
    try:
        return GoInt(_wrap64(int(s.strip() if s.strip() == s else "x", 10)))
    except ValueError:
        return GoInt(0)


def _to_decimal(budget: Budget, v: object) -> GoInt:
    try:
        return GoInt(_wrap64(int(strval(budget, v), 8)), "int64")
    except ValueError:
        return GoInt(0, "int64")


def _idiv(a: object, b: object, mod: bool) -> GoInt:
    x, y = to_int64(a), to_int64(b)
    if y == 0:
        raise FuncError("runtime error: integer divide by zero")
    q = abs(x) // abs(y) * (1 if (x >= 0) == (y >= 0) else -1)
    return GoInt(_wrap64(x - q * y if mod else q), "int64")


def _dec(v: object) -> Decimal:
    f = to_float64(v)
    if math.isnan(f) or math.isinf(f):
        raise FuncError("cannot convert non-finite float to decimal")
    return Decimal(repr(f))


def _decf(op: str) -> Callable[..., float]:
    def f(a: object, *rest: object) -> float:
        with localcontext() as ctx:
            ctx.prec = 34
            acc = _dec(a)
            for r in rest:
                d = _dec(r)
                if op == "+":
                    acc += d
                elif op == "-":
                    acc -= d
                elif op == "*":
                    acc *= d
                else:
                    if d == 0:
                        raise FuncError("decimal division by 0")
                    acc = (acc / d).quantize(Decimal(1).scaleb(-16)) if acc else acc
            return float(acc)

    return f


def _round(a: object, p: int, *r_opt: object) -> float:
    val = to_float64(a)
    round_on = to_float64(r_opt[0]) if r_opt else 0.5
    pw = math.pow(10, p)
    digit = pw * val
    frac = math.modf(digit)[0]
    return (math.ceil(digit) if frac >= round_on else math.floor(digit)) / pw


# --- lists and dicts ---------------------------------------------------------------------------


def _list(budget: Budget, *vs: object) -> list[Any]:
    """`list`/`tuple`: the result's size (aliases expanded) is checked before it exists."""
    budget.check_bytes(2 + sum(map(budget.measure, vs)) + max(len(vs) - 1, 0), "list")
    return list(vs)


def _sort_alpha(budget: Budget, v: object) -> list[str]:
    """Sorted strings, charged n*log2(n) comparisons first: one `sorted` call holds the
    interpreter for its whole length, so its size is bounded by the budget, not only its time."""
    items = strslice(budget, v)
    budget.charge_items(len(items) * max(1, len(items).bit_length()))
    return sorted(items)


def _push(budget: Budget, lst: object, v: object) -> list[Any]:
    items = _as_list(lst, "push")
    budget.check_bytes(budget.measure(items) + budget.measure(v) + 1, "list")
    return [*items, v]


def _prepend(budget: Budget, lst: object, v: object) -> list[Any]:
    items = _as_list(lst, "prepend")
    budget.check_bytes(budget.measure(items) + budget.measure(v) + 1, "list")
    return [v, *items]


def _first(lst: object) -> object:
    items = _as_list(lst, "find first")
    return items[0] if items else None


def _last(lst: object) -> object:
    items = _as_list(lst, "find last")
    return items[-1] if items else None


def _rest(lst: object) -> object:
    items = _as_list(lst, "find rest")
    return items[1:] if items else None


def _initial(lst: object) -> object:
    items = _as_list(lst, "find initial")
    return items[:-1] if items else None


def _reverse(lst: object) -> list[Any]:
    return list(reversed(_as_list(lst, "find reverse")))


class _Keys:
    """Deep-equality keys for one call: aliased containers share their key; nodes are charged."""

    __slots__ = ("budget", "memo")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.memo: dict[int, tuple[object, object]] = {}

    def __call__(self, v: object) -> object:
        return deep_key(v, self.memo, self.budget.charge)


def _deep_equal(budget: Budget, a: object, b: object) -> bool:
    """Sprig's reflect.DeepEqual over template values, linear via hash keys."""
    key = _Keys(budget)
    return key(a) == key(b)


def _uniq(budget: Budget, lst: object) -> list[Any]:
    items = _as_list(lst, "find uniq")
    budget.charge(len(items))
    key = _Keys(budget)
    seen: set[object] = set()
    out: list[Any] = []
    for x in items:
        k = key(x)
        if k not in seen:
            seen.add(k)
            out.append(x)
    return out


def _without(budget: Budget, lst: object, *omit: object) -> list[Any]:
    items = _as_list(lst, "find without")
    budget.charge(len(items) + len(omit))
    key = _Keys(budget)
    dropped = {key(o) for o in omit}
    return [x for x in items if key(x) not in dropped]


def _has(budget: Budget, needle: object, haystack: object) -> bool:
    if is_nil(haystack):
        return False
    items = _as_list(haystack, "find has")
    budget.charge(len(items))
    key = _Keys(budget)
    k = key(needle)
    return any(key(x) == k for x in items)


def _slice(lst: object, *idx: object) -> object:
    if not isinstance(lst, list):
        raise FuncError(f"list should be type of slice or array but {kind_of(lst)}")
    if not lst:
        return None
    start = to_int64(idx[0]) if idx else 0
    end = to_int64(idx[1]) if len(idx) > 1 else len(lst)
    if not 0 <= start <= end <= len(lst):
        raise FuncError(f"slice bounds out of range [{start}:{end}] with capacity {len(lst)}")
    return lst[start:end]


def _concat(budget: Budget, *lists: object) -> list[Any]:
    for x in lists:
        if not isinstance(x, list):
            raise FuncError(f"Cannot concat type {kind_of(x)} as list")
    budget.check_bytes(sum(map(budget.measure, lists)), "list")
    out: list[Any] = []
    for x in lists:
        assert isinstance(x, list)  # noqa: S101 - checked above
        out.extend(x)
    return out


def _compact(lst: object) -> list[Any]:
    return [x for x in _as_list(lst, "compact") if not empty(x)]


def _dict(budget: Budget, *kv: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    size = 5
    for k in range(0, len(kv), 2):
        key = strval(budget, kv[k])
        val = kv[k + 1] if k + 1 < len(kv) else ""
        size += utf8_len(key) + 2 + budget.measure(val)
        budget.check_bytes(size, "dict")
        out[key] = val
    return out


def _get(d: dict[str, Any], key: str) -> object:
    return d.get(key, "")


def _pluck(name: str, *ds: object) -> list[Any]:
    out: list[Any] = []
    for d in ds:
        if not isinstance(d, dict):
            raise FuncError(
                f"wrong type for value; expected map[string]interface {{}}; got {go_type_name(d)}"
            )
        if name in d:
            out.append(d[name])
    return out


def _keys(*ds: object) -> list[Any]:
    out: list[Any] = []
    for d in ds:
        if not isinstance(d, dict):
            raise FuncError(
                f"wrong type for value; expected map[string]interface {{}}; got {go_type_name(d)}"
            )
        out.extend(sorted(d))
    return out


def _pick(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: d[k] for k in keys if k in d}


def _omit(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    dropped = set(keys)
    return {k: v for k, v in d.items() if k not in dropped}


def _values(d: dict[str, Any]) -> list[Any]:
    return [d[k] for k in sorted(d)]


def _dig(*ps: object) -> object:
    if len(ps) < 3:
        raise FuncError("dig needs at least three arguments")
    d, default, keys = ps[-1], ps[-2], ps[:-2]
    if not isinstance(d, dict):
        raise FuncError(
            f"interface conversion: interface {{}} is {go_type_name(d)}, "
            "not map[string]interface {}"
        )
    cur: object = d
    for k in keys:
        if not isinstance(k, str):
            raise FuncError(
                f"interface conversion: interface {{}} is {go_type_name(k)}, not string"
            )
        if not isinstance(cur, dict):
            raise FuncError(
                f"interface conversion: interface {{}} is {go_type_name(cur)}, "
                "not map[string]interface {}"
            )
        if k not in cur:
            return default
        cur = cur[k]
    return cur


def _default(d: object, *given: object) -> object:
    if not given or empty(given[0]):
        return d
    return given[0]


def _coalesce(*vs: object) -> object:
    return next((v for v in vs if not empty(v)), None)


def _ternary(vt: object, vf: object, v: bool) -> object:
    return vt if v else vf


def _fail(msg: str) -> str:
    raise FuncError(msg)


# --- JSON --------------------------------------------------------------------------------------


def _reject_constant(name: str) -> object:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def must_from_json(s: str) -> object:
    return json.loads(s, parse_constant=_reject_constant)


def _from_json(s: str) -> object:
    try:
        return must_from_json(s)
    except (ValueError, RecursionError):
        return None


def _json_encoder(*, escape_html: bool = True, indent: str | None = None, must: bool) -> Any:
    """toJson & co: Go `json.Marshal`, charged and bounded by the value limit; the non-must
    forms turn a marshalling error into "" (never a limit, which is not Go's error)."""

    def encode(budget: Budget, v: object) -> str:
        try:
            return to_json(
                v,
                escape_html=escape_html,
                indent=indent,
                limit=budget.limits.max_value_bytes,
                charge=budget.charge,
            )
        except LimitExceeded:
            raise
        except TemplateError:
            if must:
                raise
            return ""

    return encode


# --- reflection --------------------------------------------------------------------------------

_KIND_NAMES = {
    "invalid": "invalid",
    "nil": "invalid",
    "bool": "bool",
    "float": "float64",
    "string": "string",
    "map": "map",
    "slice": "slice",
    "time": "struct",
}


def _kind_of(v: object) -> str:
    if isinstance(v, GoInt):
        return v.gotype
    return _KIND_NAMES[kind_of(v)]


# --- paths and encodings -----------------------------------------------------------------------


def go_clean(p: str) -> str:
    """Go `path.Clean`."""
    if p == "":
        return "."
    rooted = p.startswith("/")
    parts: list[str] = []
    for seg in p.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(seg)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."


def _base(p: str) -> str:
    if p == "":
        return "."
    p = p.rstrip("/")
    if p == "":
        return "/"
    return p.rsplit("/", 1)[-1]


def _dir(p: str) -> str:
    return go_clean(p[: p.rfind("/") + 1])


def _ext(p: str) -> str:
    k = p.rfind(".")
    return p[k:] if k > p.rfind("/") else ""


def _b64enc(budget: Budget, s: str) -> str:
    budget.check_bytes(4 * ((utf8_len(s) + 2) // 3), "b64enc result")
    return base64.b64encode(s.encode("utf-8", "surrogatepass")).decode()


def _b32enc(budget: Budget, s: str) -> str:
    budget.check_bytes(8 * ((utf8_len(s) + 4) // 5), "b32enc result")
    return base64.b32encode(s.encode("utf-8", "surrogatepass")).decode()


def _b64dec(s: str) -> str:
    try:
        return base64.b64decode(s, validate=True).decode("utf-8", "replace")
    except ValueError as exc:
        return f"illegal base64 data: {exc}"


def _b32dec(s: str) -> str:
    try:
        return base64.b32decode(s).decode("utf-8", "replace")
    except ValueError as exc:
        return f"illegal base32 data: {exc}"


# --- semver ------------------------------------------------------------------------------------

_SEMVER = re.compile(
    r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$"
)


def _parse_semver(v: str) -> tuple[int, int, int, str, str]:
    m = _SEMVER.match(v.strip())
    if not m:
        raise FuncError("Invalid Semantic Version")
    return (int(m[1]), int(m[2] or 0), int(m[3] or 0), m[4] or "", m[5] or "")


def _semver(v: str) -> dict[str, Any]:
    major, minor, patch, pre, meta = _parse_semver(v)
    return {
        "Major": GoInt(major, "uint64"),
        "Minor": GoInt(minor, "uint64"),
        "Patch": GoInt(patch, "uint64"),
        "Prerelease": pre,
        "Metadata": meta,
        "Original": v,
    }


def _pre_key(pre: str) -> tuple[Any, ...]:
    if not pre:
        return (1,)
    parts = [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")]
    return (0, *parts)


def _vkey(v: tuple[int, int, int, str, str]) -> tuple[Any, ...]:
    return (v[0], v[1], v[2], _pre_key(v[3]))


def _constraint_ok(c: str, v: tuple[int, int, int, str, str]) -> bool:
    m = re.match(
        r"^\s*(=|!=|>=|<=|>|<|~>|~|\^)?\s*v?"
        r"([0-9xX*]+(?:\.[0-9xX*]+)*(?:-[0-9A-Za-z.-]+)?)"
        r"(?:\+[0-9A-Za-z.-]+)?\s*$",
        c,
    )
    if not m:
        raise FuncError(f"improper constraint: {c}")
    op, ver = m[1] or "", m[2]
    nums = ver.split("-", 1)[0].split(".")
    wild = [n in ("x", "X", "*") for n in nums]
    pre = ver.split("-", 1)[1] if "-" in ver else ""
    parts = [0 if w else int(n) for n, w in zip(nums, wild, strict=True)] + [0, 0, 0]
    given = len(nums) - (wild.index(True) if any(wild) else 0) if any(wild) else 0
    nfixed = wild.index(True) if any(wild) else len(nums)
    cv = (parts[0], parts[1], parts[2], pre, "")
    if v[3] and not pre:
        return False  # prereleases only match constraints that carry one
    k, ck = _vkey(v), _vkey(cv)
    del given

    def upper(level: int) -> tuple[Any, ...]:
        p = list(parts[:3])
        if level == 0:
            p = [p[0] + 1, 0, 0]
        elif level == 1:
            p = [p[0], p[1] + 1, 0]
        else:
            p = [p[0], p[1], p[2] + 1]
        return (*p, (0,))

    if op in ("", "=") and nfixed < 3:
        return ck <= k < upper(max(nfixed - 1, 0)) if nfixed else True
    if op in ("", "="):
        return k == ck
    if op == "!=":
        return k != ck
    if op == ">":
        return k >= upper(nfixed - 1) if nfixed < 3 else k > ck
    if op == ">=":
        return k >= ck
    if op == "<":
        return k < ck
    if op == "<=":
        return k < upper(nfixed - 1) if nfixed < 3 else k <= ck
    if op in ("~", "~>"):
        return ck <= k < upper(1 if nfixed >= 2 else 0)
    # caret
    level = 0 if parts[0] > 0 or nfixed == 1 else (1 if parts[1] > 0 or nfixed == 2 else 2)
    return ck <= k < upper(level)


# Whitespace before an operator separates terms; matched only at the start of a whitespace run
# (and possessively) so a long run is scanned once, not once per position.
_TERM_SPLIT = re.compile(r"(?<!\s)\s++(?=[<>=!~^])")


def _semver_compare(constraint: str, version: str) -> bool:
    v = _parse_semver(version)
    for alt in constraint.split("||"):
        terms = [t for part in alt.split(",") for t in _TERM_SPLIT.split(part.strip()) if t]
        if terms and all(_constraint_ok(t, v) for t in terms):
            return True
    return False


# --- durations and dates -----------------------------------------------------------------------


def _parse_duration(s: str) -> int:
    """Go `time.ParseDuration` in nanoseconds, with Go's error text."""
    try:
        return parse_go_duration(s)
    except ValueError as error:
        raise FuncError(str(error)) from None


def go_duration_string(ns: int) -> str:
    """Go `time.Duration.String`."""
    return format_go_duration(ns)


def _duration(budget: Budget, sec: object) -> str:
    n = sec.value if isinstance(sec, GoInt) and sec.gotype == "int64" else None
    if n is None:
        try:
            n = int(strval(budget, sec), 10)
        except ValueError:
            n = 0
    return go_duration_string(_wrap64(n * 10**9))


def _duration_round(d: object) -> str:
    if isinstance(d, str):
        try:
            ns = _parse_duration(d)
        except FuncError:
            return ""
    elif isinstance(d, GoInt) and d.gotype == "int64":
        ns = d.value
    elif isinstance(d, GoTime):
        ns = int((datetime.now(UTC) - d.dt).total_seconds() * 1e9)
    else:
        ns = 0
    u, sign = abs(ns), "-" if ns < 0 else ""
    second = 10**9
    for unit, size in (
        ("y", 365 * 86400 * second),
        ("mo", 30 * 86400 * second),
        ("d", 86400 * second),
        ("h", 3600 * second),
        ("m", 60 * second),
        ("s", second),
    ):
        if u > size:
            return f"{sign}{u // size}{unit}"
    return "0s"


_LAYOUT = [
    ("January", "%B"),
    ("Jan", "%b"),
    ("Monday", "%A"),
    ("Mon", "%a"),
    ("2006", "%Y"),
    ("-07:00", "%:z"),
    ("-0700", "%z"),
    ("Z07:00", "%:zZ"),
    ("Z0700", "%zZ"),
    ("MST", "%Z"),
    ("01", "%m"),
    ("02", "%d"),
    ("_2", "%e"),
    ("06", "%y"),
    ("15", "%H"),
    ("03", "%I"),
    ("04", "%M"),
    ("05", "%S"),
    ("PM", "%p"),
    ("pm", "%P"),
    ("1", "%-m"),
    ("2", "%-d"),
    ("3", "%-I"),
    ("4", "%-M"),
    ("5", "%-S"),
]


# A fractional-second element (`.000`, `,999`: a run not followed by another digit, as in Go),
# else the layout elements in the order they are tried at each position.
_LAYOUT_RE = re.compile(
    r"(?P<frac>[.,](?:0++|9++)(?![0-9]))|" + "|".join(re.escape(tok) for tok, _ in _LAYOUT)
)
_LAYOUT_CODES = dict(_LAYOUT)


def go_time_format(dt: datetime, layout: str, sink: Sink | None = None) -> str:
    """Go `time.Time.Format` for the usual layout elements, in one regex scan of the layout.

    With `sink`, the text is written there (bounded) and "" is returned.
    """
    out = sink if sink is not None else Sink(0, "date")
    pos = 0
    for m in _LAYOUT_RE.finditer(layout):
        out.write(layout[pos : m.start()])
        pos = m.end()
        tok = m.group()
        if m.group("frac"):
            digits = f"{dt.microsecond:06d}000"[: len(tok) - 1]
            if tok[1] == "9":
                digits = digits.rstrip("0")
            out.write(tok[0] + digits if digits else "")
        else:
            out.write(_fmt_code(dt, _LAYOUT_CODES[tok]))
    out.write(layout[pos:])
    return "" if sink is not None else out.getvalue()


def _fmt_code(dt: datetime, code: str) -> str:
    off = dt.utcoffset() or timedelta(0)
    secs = int(off.total_seconds())
    sign = "-" if secs < 0 else "+"
    hh, mm = divmod(abs(secs) // 60, 60)
    if code in ("%:zZ", "%zZ"):
        if secs == 0:
            return "Z"
        return f"{sign}{hh:02d}:{mm:02d}" if code == "%:zZ" else f"{sign}{hh:02d}{mm:02d}"
    simple: dict[str, str] = {
        "%:z": f"{sign}{hh:02d}:{mm:02d}",
        "%z": f"{sign}{hh:02d}{mm:02d}",
        "%Z": dt.tzname() or "UTC",
        "%e": f"{dt.day:2d}",
        "%-m": str(dt.month),
        "%-d": str(dt.day),
        "%-I": str(dt.hour % 12 or 12),
        "%-M": str(dt.minute),
        "%-S": str(dt.second),
        "%P": "pm" if dt.hour >= 12 else "am",
        "%p": "PM" if dt.hour >= 12 else "AM",
        "%I": f"{dt.hour % 12 or 12:02d}",
    }
    if code in simple:
        return simple[code]
    if code == "%Y":
        return f"{dt.year:04d}"  # Go pads the year to four digits; strftime may not
    return dt.strftime(code)


# Unix seconds Python's datetime can hold in any zone (years 1 to 9999, a day of margin).
_MIN_UNIX = -62135596800 + 86400
_MAX_UNIX = 253402300799 - 86400


def _to_time(v: object) -> datetime:
    if isinstance(v, GoTime):
        return v.dt
    if isinstance(v, GoInt):
        if not _MIN_UNIX <= v.value <= _MAX_UNIX:
            raise FuncError(f"unix time {v.value} is outside the supported years 1 to 9999")
        return datetime.fromtimestamp(v.value, UTC)
    return datetime.now(UTC)


def _zone(name: str) -> Any:
    try:
        return UTC if name in ("", "UTC", "Local") else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


MAX_LAYOUT_BYTES = 4096
"""Time layouts longer than this are refused. Go layouts are a few dozen bytes; a scan of a
megabyte-long one is a single regex call that holds the interpreter (and so the event loop's
thread) for ~0.1 s."""


def _check_layout(layout: str) -> None:
    size = len(layout.encode("utf-8", "surrogatepass"))
    if size > MAX_LAYOUT_BYTES:
        raise FuncError(f"time layout of {size} bytes exceeds {MAX_LAYOUT_BYTES} bytes")


def _format_time(budget: Budget, dt: datetime, layout: str) -> str:
    _check_layout(layout)
    sink = budget.sink("date result")
    go_time_format(dt, layout, sink)
    return sink.getvalue()


def _date(budget: Budget, fmt: str, d: object) -> str:
    return _format_time(budget, _to_time(d), fmt)


def _date_in_zone(budget: Budget, fmt: str, d: object, zone: str) -> str:
    return _format_time(budget, _to_time(d).astimezone(_zone(zone)), fmt)


def _must_date_modify(fmt: str, d: GoTime) -> GoTime:
    return GoTime(d.dt + timedelta(microseconds=_parse_duration(fmt) // 1000))


def _date_modify(fmt: str, d: GoTime) -> GoTime:
    try:
        return _must_date_modify(fmt, d)
    except FuncError:
        return d


# Layout elements toDate understands, tried in this order at each layout position.
_PARSE_RE = re.compile(r"2006|01|02|15|04|05|Z07:00|-07:00|-0700|MST")
_TWO_DIGITS = {"01": "month", "02": "day", "15": "hour", "04": "minute", "05": "second"}
_MAX_FIELD = {"month": 12, "hour": 23, "minute": 59, "second": 59}


class _TimeParser:
    """Go `time.Parse` for the elements of _PARSE_RE: one pass over layout and value.

    Repeated elements are allowed (the last one wins, as in Go); a fraction of a second may
    follow the seconds; the zone abbreviation is read but, as in Go for unknown zones, means
    UTC. Errors use Go's wording.
    """

    def __init__(self, layout: str, value: str) -> None:
        _check_layout(layout)
        self.layout = layout
        self.value = value
        self.j = 0
        self.fields = {"year": 1, "month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0}
        self.micro = 0
        self.tz: Any = UTC

    def fail(self, elem: str) -> FuncError:
        rest = self.value[self.j :]
        return FuncError(
            f"parsing time {go_quote(self.value)} as {go_quote(self.layout)}: "
            f"cannot parse {go_quote(rest)} as {go_quote(elem)}"
        )

    def digits(self, n: int, elem: str) -> int:
        got = self.value[self.j : self.j + n]
        if len(got) != n or not (got.isascii() and got.isdigit()):
            raise self.fail(elem)
        self.j += n
        return int(got)

    def parse(self) -> datetime:
        pos = 0
        for m in _PARSE_RE.finditer(self.layout):
            self.literal(self.layout[pos : m.start()])
            pos = m.end()
            self.element(m.group())
        self.literal(self.layout[pos:])
        if self.j != len(self.value):
            raise FuncError(
                f"parsing time {go_quote(self.value)}: extra text: {go_quote(self.value[self.j :])}"
            )
        return self.build()

    def literal(self, lit: str) -> None:
        if not self.value.startswith(lit, self.j):
            raise self.fail(lit)
        self.j += len(lit)

    def element(self, elem: str) -> None:
        if elem == "2006":
            self.fields["year"] = self.digits(4, elem) or 1
        elif elem in _TWO_DIGITS:
            self.fields[_TWO_DIGITS[elem]] = self.digits(2, elem)
            if elem == "05":
                self.fraction()
        elif elem == "MST":
            self.zone_name()
        elif elem == "Z07:00" and self.value.startswith("Z", self.j):
            self.j += 1
            self.tz = UTC
        else:
            self.offset(elem)

    def fraction(self) -> None:
        v, j = self.value, self.j
        if j + 1 < len(v) and v[j] in ".," and v[j + 1].isascii() and v[j + 1].isdigit():
            k = j + 1
            while k < len(v) and v[k].isascii() and v[k].isdigit():
                k += 1
            self.micro = int(v[j + 1 : k][:6].ljust(6, "0"))
            self.j = k

    def zone_name(self) -> None:
        v, j = self.value, self.j
        if v.startswith("UTC", j):
            self.j += 3
            return
        n = 0
        while n < 6 and j + n < len(v) and "A" <= v[j + n] <= "Z":
            n += 1
        if n == 3 or (n == 4 and (v[j + 3] == "T" or v[j : j + 4] == "WITA")):
            self.j += n
        elif n == 5 and v[j + 4] == "T":
            self.j += 5
        else:
            raise self.fail("MST")

    def offset(self, elem: str) -> None:
        sign = self.value[self.j : self.j + 1]
        if sign not in ("+", "-"):
            raise self.fail(elem)
        self.j += 1
        hh = self.digits(2, elem)
        if elem != "-0700":
            self.literal(":")
        mm = self.digits(2, elem)
        if hh > 23 or mm > 59:
            raise FuncError(f"parsing time {go_quote(self.value)}: time zone offset out of range")
        delta = timedelta(hours=hh, minutes=mm)
        self.tz = timezone(-delta if sign == "-" else delta)

    def build(self) -> datetime:
        f = self.fields
        for name, top in _MAX_FIELD.items():
            if f[name] > top or (name == "month" and f[name] < 1):
                raise FuncError(f"parsing time {go_quote(self.value)}: {name} out of range")
        if not 1 <= f["day"] <= calendar.monthrange(f["year"], f["month"])[1]:
            raise FuncError(f"parsing time {go_quote(self.value)}: day out of range")
        return datetime(
            f["year"],
            f["month"],
            f["day"],
            f["hour"],
            f["minute"],
            f["second"],
            self.micro,
            tzinfo=self.tz,
        )


def _must_to_date(fmt: str, s: str) -> GoTime:
    return GoTime(_TimeParser(fmt, s).parse())


def _to_date(fmt: str, s: str) -> GoTime:
    try:
        return _must_to_date(fmt, s)
    except FuncError:
        return GoTime(datetime(1, 1, 1, tzinfo=UTC))


def _unix_epoch(d: GoTime) -> str:
    return str(math.floor(d.dt.timestamp()))


# --- random ------------------------------------------------------------------------------------


def _rand(chars: str) -> Callable[[Budget, int], str]:
    def f(budget: Budget, count: int) -> str:
        if count > MAX_WIDTH:
            raise LimitExceeded(f"random string length exceeds {MAX_WIDTH}")
        budget.check_bytes(count, "random string")
        budget.charge_items(count)
        return "".join(secrets.choice(chars) for _ in range(max(count, 0)))

    return f


def _rand_int(lo: int, hi: int) -> GoInt:
    if hi <= lo:
        raise FuncError("invalid argument to Intn")
    return GoInt(lo + secrets.randbelow(hi - lo))


# --- printing, splitting, joining (size checked before the result is built) ---------------


def _print_fn(fmt: Callable[..., str]) -> Callable[..., str]:
    """print/println: charged per argument and bounded by the value limit."""

    def f(budget: Budget, *args: object) -> str:
        return fmt(list(args), limit=budget.limits.max_value_bytes, charge=budget.charge)

    return f


def _printf(budget: Budget, fmt: str, *args: object) -> str:
    budget.charge(fmt.count("%"))  # a step per verb
    return go_sprintf(fmt, list(args), limit=budget.limits.max_value_bytes, charge=budget.charge)


def _split_parts(budget: Budget, sep: str, s: str, n: int = -1) -> list[str]:
    """strings.Split(N): the parts, after checking the list they form fits the value limit."""
    if n == 0:
        return []
    if sep:
        count = s.count(sep) + 1
        if n > 0:
            count = min(count, n)
    else:
        count = len(s) if n < 0 else min(len(s), n)
    budget.check_bytes(utf8_len(s) + 2 * count + 2, "split result")
    budget.charge_items(count)
    if not sep:
        if n < 0 or n >= len(s):
            return list(s)
        return [*s[: n - 1], s[n - 1 :]]
    return s.split(sep, n - 1) if n > 0 else s.split(sep)


def _split_list(budget: Budget, sep: str, s: str) -> list[str]:
    return _split_parts(budget, sep, s)


def _split_map(budget: Budget, sep: str, s: str) -> dict[str, str]:
    parts = _split_parts(budget, sep, s)
    budget.check_bytes(utf8_len(s) + 10 * len(parts) + 5, "split result")
    return {f"_{k}": p for k, p in enumerate(parts)}


def _splitn(budget: Budget, sep: str, n: int, s: str) -> dict[str, str]:
    parts = _split_parts(budget, sep, s, n) if n > 0 else []
    budget.check_bytes(utf8_len(s) + 10 * len(parts) + 5, "splitn result")
    return {f"_{k}": p for k, p in enumerate(parts)}


def _to_strings(budget: Budget, v: object) -> list[str]:
    return strslice(budget, v) if isinstance(v, list) else [strval(budget, v)]


def _join(budget: Budget, sep: str, v: object) -> str:
    parts = strslice(budget, v)
    size = sum(map(utf8_len, parts)) + max(len(parts) - 1, 0) * utf8_len(sep)
    budget.check_bytes(size, "join result")
    budget.charge_bytes(size)
    return sep.join(parts)


# json.loads is C, but builds a Python object per value: a step per this many bytes of text.
_JSON_BYTES_PER_STEP = 4
"""`fromJson` parses in one C call that holds the interpreter: priced so that a budget parses at
most ~1 MB (~50 ms), more than its CPU alone would cost."""


# --- the map -----------------------------------------------------------------------------------


def _mk(
    name: str,
    fn: Callable[..., object],
    params: str = "",
    variadic: str | None = None,
    *,
    budgeted: bool = False,
    str_rate: int = BYTES_PER_STEP,
) -> FuncSpec:
    return FuncSpec(name, fn, tuple(params.split()) if params else (), variadic, budgeted, str_rate)


def _mkb(
    name: str, fn: Callable[..., object], params: str = "", variadic: str | None = None
) -> FuncSpec:
    """A budgeted function: `fn(budget, *args)`."""
    return _mk(name, fn, params, variadic, budgeted=True)


def _mkc(
    name: str, fn: Callable[..., object], params: str = "", variadic: str | None = None
) -> FuncSpec:
    """A function that loops over the characters of its strings in Python (charged per char)."""
    return _mk(name, fn, params, variadic, str_rate=CHARS_PER_STEP)


def _cmp(name: str, pred: Callable[[object, object], bool]) -> FuncSpec:
    return _mk(name, pred, "any any")


_BUILTINS: list[FuncSpec] = [
    _mk("not", lambda v: not truthy(v), "any"),
    _mk("eq", _eq, "any", "any"),
    _cmp("ne", lambda a, b: not go_eq(a, b)),
    _cmp("lt", lambda a, b: go_less(a, b, "lt")),
    _cmp("le", lambda a, b: go_less(a, b, "le") or go_eq(a, b)),
    _cmp("gt", lambda a, b: not (go_less(a, b, "gt") or go_eq(a, b))),
    _cmp("ge", lambda a, b: not go_less(a, b, "ge")),
    _mk("index", _index, "any", "any"),
    _mkb("print", _print_fn(go_sprint), "", "any"),
    _mkb("printf", _printf, "str", "any"),
    _mkb("println", _print_fn(go_sprintln), "", "any"),
    _mkb("html", _html, "", "any"),
    _mkb("js", _js, "", "any"),
    _mkb("urlquery", _urlquery, "", "any"),
    _mk("call", _call, "any", "any"),
    _mk("len", _len, "any"),
    _mk("slice", _slice, "any", "any"),
]
# `and` and `or` short-circuit, so the evaluator runs them itself.
BUILTIN_NAMES = frozenset({s.name for s in _BUILTINS} | {"and", "or"})

_i64 = lambda v: GoInt(to_int64(v), "int64")  # noqa: E731

_SPRIG: list[FuncSpec] = [
    # dates
    _mkb("date", _date, "str any"),
    _mkb("date_in_zone", _date_in_zone, "str any str"),
    _mkb("dateInZone", _date_in_zone, "str any str"),
    _mk("date_modify", _date_modify, "str time"),
    _mk("dateModify", _date_modify, "str time"),
    _mk("must_date_modify", _must_date_modify, "str time"),
    _mk("mustDateModify", _must_date_modify, "str time"),
    _mkb("duration", _duration, "any"),
    _mk("durationRound", _duration_round, "any"),
    _mkb("htmlDate", lambda b, d: _date(b, "2006-01-02", d), "any"),
    _mkb("htmlDateInZone", lambda b, d, z: _date_in_zone(b, "2006-01-02", d, z), "any str"),
    _mkc("toDate", _to_date, "str str"),
    _mkc("mustToDate", _must_to_date, "str str"),
    _mk("unixEpoch", _unix_epoch, "time"),
    # strings
    _mk("abbrev", _abbrev, "int str"),
    _mk("abbrevboth", _abbrevboth, "int int str"),
    _mk("trunc", _trunc, "int str"),
    _mk("trim", lambda s: s.strip(" \t\n\r\v\f\x85\xa0"), "str"),
    _mk("upper", lambda s: s.upper(), "str"),
    _mk("lower", lambda s: s.lower(), "str"),
    _mkc("title", _title, "str"),
    _mkc("untitle", _untitle, "str"),
    _mk("substr", _substr, "int int str"),
    _mk("trimall", lambda a, b: b.strip(a), "str str"),
    _mk("trimAll", lambda a, b: b.strip(a), "str str"),
    _mk("trimSuffix", lambda a, b: b.removesuffix(a), "str str"),
    _mk("trimPrefix", lambda a, b: b.removeprefix(a), "str str"),
    _mk("nospace", _nospace, "str"),
    _mk("initials", _initials, "str"),
    _mkc("snakecase", _snake, "str"),
    _mkc("camelcase", _camel, "str"),
    _mkc("kebabcase", _kebab, "str"),
    _mk(
        "wrap",
        lambda b, n, s: _wrap_custom(b, n, "\n", s),
        "int str",
        budgeted=True,
        str_rate=CHARS_PER_STEP,
    ),
    _mk("wrapWith", _wrap_custom, "int str str", budgeted=True, str_rate=CHARS_PER_STEP),
    _mk("contains", lambda a, b: a in b, "str str"),
    _mk("hasPrefix", lambda a, b: b.startswith(a), "str str"),
    _mk("hasSuffix", lambda a, b: b.endswith(a), "str str"),
    _mkb("quote", _quote, "", "any"),
    _mkb("squote", _squote, "", "any"),
    _mkb("cat", _cat, "", "any"),
    _mkb("indent", _indent, "int str"),
    _mkb("nindent", lambda b, n, s: _indent(b, n, s, lead="\n"), "int str"),
    _mkb("replace", _replace, "str str str"),
    _mk("plural", _plural, "str str int"),
    _mk("sha1sum", _sum("sha1"), "str"),
    _mk("sha256sum", _sum("sha256"), "str"),
    _mk("adler32sum", _adler32, "str"),
    _mkb("toString", strval, "any"),
    # conversion / math
    _mk("atoi", _atoi, "str"),
    _mk("int64", _i64, "any"),
    _mk("int", lambda v: GoInt(to_int64(v)), "any"),
    _mk("float64", to_float64, "any"),
    _mkb("toDecimal", _to_decimal, "any"),
    _mk("add1", lambda v: GoInt(_wrap64(to_int64(v) + 1), "int64"), "any"),
    _mk("add", lambda *v: GoInt(_wrap64(sum(to_int64(x) for x in v)), "int64"), "", "any"),
    _mk("sub", lambda a, b: GoInt(_wrap64(to_int64(a) - to_int64(b)), "int64"), "any any"),
    _mk("div", lambda a, b: _idiv(a, b, False), "any any"),
    _mk("mod", lambda a, b: _idiv(a, b, True), "any any"),
    _mk(
        "mul",
        lambda a, *v: GoInt(_wrap64(math.prod([to_int64(a), *map(to_int64, v)])), "int64"),
        "any",
        "any",
    ),
    _mk("add1f", lambda v: _decf("+")(v, 1.0), "any"),
    _mk("addf", _decf("+"), "", "any"),
    _mk("subf", _decf("-"), "any", "any"),
    _mk("divf", _decf("/"), "any", "any"),
    _mk("mulf", _decf("*"), "any", "any"),
    _mk(
        "biggest", lambda a, *v: GoInt(max([to_int64(a), *map(to_int64, v)]), "int64"), "any", "any"
    ),
    _mk("max", lambda a, *v: GoInt(max([to_int64(a), *map(to_int64, v)]), "int64"), "any", "any"),
    _mk("min", lambda a, *v: GoInt(min([to_int64(a), *map(to_int64, v)]), "int64"), "any", "any"),
    _mk("maxf", lambda a, *v: max([to_float64(a), *map(to_float64, v)]), "any", "any"),
    _mk("minf", lambda a, *v: min([to_float64(a), *map(to_float64, v)]), "any", "any"),
    _mk("ceil", lambda v: float(math.ceil(to_float64(v))), "any"),
    _mk("floor", lambda v: float(math.floor(to_float64(v))), "any"),
    _mk("round", _round, "any int", "any"),
    # lists
    _mkb("split", _split_map, "str str"),
    _mkb("splitList", _split_list, "str str"),
    _mkb("splitn", _splitn, "str int str"),
    _mkb("toStrings", _to_strings, "any"),
    _mkb("join", _join, "str any"),
    _mkb("sortAlpha", _sort_alpha, "any"),
    _mkb("tuple", _list, "", "any"),
    _mkb("list", _list, "", "any"),
    _mkb("append", _push, "any any"),
    _mkb("push", _push, "any any"),
    _mkb("mustAppend", _push, "any any"),
    _mkb("mustPush", _push, "any any"),
    _mkb("prepend", _prepend, "any any"),
    _mkb("mustPrepend", _prepend, "any any"),
    _mk("first", _first, "any"),
    _mk("mustFirst", _first, "any"),
    _mk("rest", _rest, "any"),
    _mk("mustRest", _rest, "any"),
    _mk("last", _last, "any"),
    _mk("mustLast", _last, "any"),
    _mk("initial", _initial, "any"),
    _mk("mustInitial", _initial, "any"),
    _mk("reverse", _reverse, "any"),
    _mk("mustReverse", _reverse, "any"),
    _mkb("uniq", _uniq, "any"),
    _mkb("mustUniq", _uniq, "any"),
    _mkb("without", _without, "any", "any"),
    _mkb("mustWithout", _without, "any", "any"),
    _mkb("has", _has, "any any"),
    _mkb("mustHas", _has, "any any"),
    _mk("slice", _slice, "any", "any"),
    _mk("mustSlice", _slice, "any", "any"),
    _mkb("concat", _concat, "", "any"),
    _mk("compact", _compact, "any"),
    _mk("mustCompact", _compact, "any"),
    # dicts
    _mkb("dict", _dict, "", "any"),
    _mk("get", _get, "map str"),
    _mk("hasKey", lambda d, k: k in d, "map str"),
    _mk("pluck", _pluck, "str", "any"),
    _mk("keys", _keys, "", "any"),
    _mk("pick", _pick, "map", "str"),
    _mk("omit", _omit, "map", "str"),
    _mk("values", _values, "map"),
    _mk("dig", _dig, "", "any"),
    # defaults / flow
    _mk("default", _default, "any", "any"),
    _mk("empty", empty, "any"),
    _mk("coalesce", _coalesce, "", "any"),
    _mk("all", lambda *v: all(not empty(x) for x in v), "", "any"),
    _mk("any", lambda *v: any(not empty(x) for x in v), "", "any"),
    _mk("ternary", _ternary, "any any bool"),
    _mk("fail", _fail, "str"),
    # JSON
    _mk("fromJson", _from_json, "str", str_rate=_JSON_BYTES_PER_STEP),
    _mk("mustFromJson", must_from_json, "str", str_rate=_JSON_BYTES_PER_STEP),
    _mkb("toJson", _json_encoder(must=False), "any"),
    _mkb("toPrettyJson", _json_encoder(indent="  ", must=False), "any"),
    _mkb("toRawJson", _json_encoder(escape_html=False, must=False), "any"),
    _mkb("mustToJson", _json_encoder(must=True), "any"),
    _mkb("mustToPrettyJson", _json_encoder(indent="  ", must=True), "any"),
    _mkb("mustToRawJson", _json_encoder(escape_html=False, must=True), "any"),
    # reflection
    _mk("typeOf", go_type_name, "any"),
    _mk("typeIs", lambda t, v: go_type_name(v) == t, "str any"),
    _mk("typeIsLike", lambda t, v: t in (go_type_name(v), "*" + go_type_name(v)), "str any"),
    _mk("kindOf", _kind_of, "any"),
    _mk("kindIs", lambda t, v: _kind_of(v) == t, "str any"),
    _mkb("deepEqual", _deep_equal, "any any"),
    # paths / encoding
    _mkc("base", _base, "str"),
    _mkc("dir", _dir, "str"),
    _mkc("clean", go_clean, "str"),
    _mk("ext", _ext, "str"),
    _mk("isAbs", lambda p: p.startswith("/"), "str"),
    _mkc("osBase", _base, "str"),
    _mkc("osDir", _dir, "str"),
    _mkc("osClean", go_clean, "str"),
    _mk("osExt", _ext, "str"),
    _mk("osIsAbs", lambda p: p.startswith("/"), "str"),
    _mkb("b64enc", _b64enc, "str"),
    _mk("b64dec", _b64dec, "str"),
    _mkb("b32enc", _b32enc, "str"),
    _mk("b32dec", _b32dec, "str"),
    # semver
    _mkc("semver", _semver, "str"),
    _mkc("semverCompare", _semver_compare, "str str"),
]

_NOW = _mk("now", lambda: GoTime(datetime.now(UTC)))
_RANDOM: list[FuncSpec] = [
    _mkb("randAlpha", _rand(string.ascii_letters), "int"),
    _mkb("randAlphaNum", _rand(string.ascii_letters + string.digits), "int"),
    _mkb("randAscii", _rand("".join(chr(c) for c in range(32, 127))), "int"),
    _mkb("randNumeric", _rand(string.digits), "int"),
    _mk("randInt", _rand_int, "int int"),
    _mk("uuidv4", lambda: str(uuid.uuid4())),
]
_CUSTOM: list[FuncSpec] = [
    _mk("len", _len, "any"),
    _mk("hash_of", _hash_of, "any"),
    _mk("type_of", _type_of, "any"),
    _mk("exists", lambda v: not is_nil(v), "any"),
    _mk("sample", _sample, "any"),
]


@cache
def functions(*, allow_now: bool = True, allow_random: bool = True) -> Mapping[str, FuncSpec]:
    """The function map in the reference's order: builtins, Sprig, now, random, custom."""
    out = {s.name: s for s in _BUILTINS}
    out.update({s.name: s for s in _SPRIG})
    if allow_now:
        out[_NOW.name] = _NOW
    if allow_random:
        out.update({s.name: s for s in _RANDOM})
    out.update({s.name: s for s in _CUSTOM})
    for name in DISALLOWED:
        out.pop(name, None)
    return out


@cache
def function_names(*, allow_now: bool = True, allow_random: bool = True) -> frozenset[str]:
    """Names a template may call (and/or included) for the given scope."""
    return frozenset(functions(allow_now=allow_now, allow_random=allow_random)) | {"and", "or"}
