"""The function catalogue (§8.6): Go builtins, the allowed Sprig subset and the custom helpers.

`env`, `expandenv` and `getHostByName` are deliberately absent: naming them is a parse error.
"""

from __future__ import annotations

import base64
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
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runs_controller.engine.durations import format_go_duration, parse_go_duration

from .errors import LimitExceeded, OffloadedData, TemplateError
from .gofmt import MAX_WIDTH, go_sprint, go_sprintf, go_sprintln
from .values import (
    NO_VALUE,
    GoInt,
    GoTime,
    go_eq,
    go_less,
    go_type_name,
    is_nil,
    kind_of,
    num_float,
    print_value,
    to_json,
    truthy,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

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


@dataclass(frozen=True, slots=True)
class FuncSpec:
    """A callable with Go parameter kinds: any, str, int, float, bool, map, time."""

    name: str
    fn: Callable[..., object]
    params: tuple[str, ...] = ()
    variadic: str | None = None

    def invoke(self, args: list[object]) -> object:
        n, want = len(args), len(self.params)
        if (self.variadic is None and n != want) or n < want:
            at_least = "at least " if self.variadic is not None else ""
            raise TemplateError(
                f"wrong number of args for {self.name}: want {at_least}{want} got {n}"
            )
        conv = [
            _convert(a, self.params[k] if k < want else str(self.variadic))
            for k, a in enumerate(args)
        ]
        try:
            return self.fn(*conv)
        except (FuncError, OffloadedData, LimitExceeded):
            raise
        except TemplateError as exc:
            raise FuncError(str(exc)) from exc
        except (
            ValueError,
            TypeError,
            IndexError,
            KeyError,
            ZeroDivisionError,
            OverflowError,
            ArithmeticError,
            UnicodeError,
        ) as exc:
            raise FuncError(str(exc) or type(exc).__name__) from exc


def _convert(v: object, kind: str) -> object:
    if v is NO_VALUE:
        v = None
    if kind == "any":
        return v
    gt = go_type_name(v)
    if v is None:
        raise TemplateError(f"invalid value; expected {_GO_KIND[kind]}")
    if kind == "str" and isinstance(v, str):
        return v
    if kind == "int":
        if isinstance(v, GoInt):
            return v.value
        if isinstance(v, int | float) and not isinstance(v, bool):
            f = num_float(v)
            if f.is_integer():
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


def strval(v: object) -> str:
    """Sprig strval: strings as-is, everything else through `%v`."""
    if isinstance(v, str):
        return v
    return print_value(v, top=False)


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


def strslice(v: object) -> list[str]:
    if isinstance(v, list):
        return [strval(x) for x in v if not is_nil(x)]
    if is_nil(v):
        return []
    return [strval(v)]


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


def _html(*args: object) -> str:
    s = args[0] if len(args) == 1 and isinstance(args[0], str) else go_sprint(list(args))
    return (
        s.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
        .replace("\x00", "\ufffd")
    )


def _js(*args: object) -> str:
    s = args[0] if len(args) == 1 and isinstance(args[0], str) else go_sprint(list(args))
    out: list[str] = []
    for ch in s:
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=" or (not ch.isprintable() and ord(ch) < 0x80):
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _urlquery(*args: object) -> str:
    s = args[0] if len(args) == 1 and isinstance(args[0], str) else go_sprint(list(args))
    return urllib.parse.quote_plus(s, safe="-_.~")


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


def _words(s: str) -> list[str]:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", s)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", s)
    return [w for w in re.split(r"[^A-Za-z0-9]+", s) if w]


def _snake(s: str) -> str:
    return "_".join(w.lower() for w in _words(s))


def _kebab(s: str) -> str:
    return "-".join(w.lower() for w in _words(s))


def _camel(s: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[_\s-]+", s) if w)


def _initials(s: str) -> str:
    return "".join(w[0] for w in s.split() if w)


def _wrap_custom(width: int, sep: str, s: str) -> str:
    width = max(width, 1)
    lines: list[str] = []
    for para in s.split("\n"):
        cur = ""
        for word in para.split(" "):
            while len(word) > width:
                if cur:
                    lines.append(cur)
                    cur = ""
                lines.append(word[:width])
                word = word[width:]
            if not cur:
                cur = word
            elif len(cur) + 1 + len(word) <= width:
                cur += " " + word
            else:
                lines.append(cur)
                cur = word
        lines.append(cur)
    return sep.join(lines)


def _indent(spaces: int, v: str) -> str:
    if spaces > MAX_WIDTH:
        raise LimitExceeded(f"indent exceeds {MAX_WIDTH} spaces")
    pad = " " * max(spaces, 0)
    return pad + v.replace("\n", "\n" + pad)


def _quote(*vs: object) -> str:
    from .normalize import go_quote

    return " ".join(go_quote(strval(v)) for v in vs if not is_nil(v))


def _squote(*vs: object) -> str:
    return " ".join(f"'{strval(v)}'" for v in vs if not is_nil(v))


def _cat(*vs: object) -> str:
    return go_sprintf(
        " ".join(["%v"] * sum(1 for v in vs if not is_nil(v))), [v for v in vs if not is_nil(v)]
    )


def _nospace(s: str) -> str:
    return "".join(ch for ch in s if not ch.isspace())


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


def _to_decimal(v: object) -> GoInt:
    try:
        return GoInt(_wrap64(int(strval(v), 8)), "int64")
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


def _push(lst: object, v: object) -> list[Any]:
    return [*_as_list(lst, "push"), v]


def _prepend(lst: object, v: object) -> list[Any]:
    return [v, *_as_list(lst, "prepend")]


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


def _deep_equal(a: object, b: object) -> bool:
    if type(a) is not type(b) and not (
        isinstance(a, int | float)
        and isinstance(b, int | float)
        and not isinstance(a, bool | GoInt)
        and not isinstance(b, bool | GoInt)
    ):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and not isinstance(a, bool | GoInt):
        return num_float(a) == num_float(b)
    return a == b


def _uniq(lst: object) -> list[Any]:
    out: list[Any] = []
    for x in _as_list(lst, "find uniq"):
        if not any(_deep_equal(x, y) for y in out):
            out.append(x)
    return out


def _without(lst: object, *omit: object) -> list[Any]:
    return [x for x in _as_list(lst, "find without") if not any(_deep_equal(x, o) for o in omit)]


def _has(needle: object, haystack: object) -> bool:
    if is_nil(haystack):
        return False
    return any(_deep_equal(needle, x) for x in _as_list(haystack, "find has"))


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


def _concat(*lists: object) -> list[Any]:
    out: list[Any] = []
    for x in lists:
        if not isinstance(x, list):
            raise FuncError(f"Cannot concat type {kind_of(x)} as list")
        out.extend(x)
    return out


def _compact(lst: object) -> list[Any]:
    return [x for x in _as_list(lst, "compact") if not empty(x)]


def _dict(*kv: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in range(0, len(kv), 2):
        out[strval(kv[k])] = kv[k + 1] if k + 1 < len(kv) else ""
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
    return {k: v for k, v in d.items() if k not in keys}


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


def _to_json(v: object) -> str:
    try:
        return to_json(v)
    except TemplateError:
        return ""


def _to_pretty(v: object) -> str:
    try:
        return to_json(v, indent="  ")
    except TemplateError:
        return ""


def _to_raw(v: object) -> str:
    try:
        return to_json(v, escape_html=False)
    except TemplateError:
        return ""


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
    for k in range(len(p) - 1, -1, -1):
        if p[k] == "/":
            break
        if p[k] == ".":
            return p[k:]
    return ""


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


def _semver_compare(constraint: str, version: str) -> bool:
    v = _parse_semver(version)
    for alt in constraint.split("||"):
        terms = [t for t in re.split(r"\s*,\s*|\s+(?=[<>=!~^])", alt.strip()) if t]
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


def _duration(sec: object) -> str:
    n = sec.value if isinstance(sec, GoInt) and sec.gotype == "int64" else None
    if n is None:
        try:
            n = int(strval(sec), 10)
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


def go_time_format(dt: datetime, layout: str) -> str:
    """Go `time.Time.Format` for the usual layout elements."""
    out: list[str] = []
    i = 0
    while i < len(layout):
        frac = re.match(r"[.,](0+|9+)", layout[i:])
        if frac and (i == 0 or not layout[i - 1].isdigit()):
            width = len(frac[1])
            digits = f"{dt.microsecond:06d}000"[:width]
            if frac[1][0] == "9":
                digits = digits.rstrip("0")
            out.append(layout[i] + digits if digits else "")
            i += frac.end()
            continue
        for tok, code in _LAYOUT:
            if layout.startswith(tok, i):
                out.append(_fmt_code(dt, code))
                i += len(tok)
                break
        else:
            out.append(layout[i])
            i += 1
    return "".join(out)


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
    return dt.strftime(code)


def _to_time(v: object) -> datetime:
    if isinstance(v, GoTime):
        return v.dt
    if isinstance(v, GoInt):
        return datetime.fromtimestamp(v.value, UTC)
    return datetime.now(UTC)


def _zone(name: str) -> Any:
    try:
        return UTC if name in ("", "UTC", "Local") else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _date(fmt: str, d: object) -> str:
    return go_time_format(_to_time(d), fmt)


def _date_in_zone(fmt: str, d: object, zone: str) -> str:
    return go_time_format(_to_time(d).astimezone(_zone(zone)), fmt)


def _must_date_modify(fmt: str, d: GoTime) -> GoTime:
    return GoTime(d.dt + timedelta(microseconds=_parse_duration(fmt) // 1000))


def _date_modify(fmt: str, d: GoTime) -> GoTime:
    try:
        return _must_date_modify(fmt, d)
    except FuncError:
        return d


def _layout_regex(layout: str) -> str:
    pats = {
        "2006": r"(?P<Y>\d{4})",
        "01": r"(?P<m>\d{2})",
        "02": r"(?P<d>\d{2})",
        "15": r"(?P<H>\d{2})",
        "04": r"(?P<M>\d{2})",
        "05": r"(?P<S>\d{2})",
        "Z07:00": r"(?P<z>Z|[+-]\d{2}:\d{2})",
        "-07:00": r"(?P<z>[+-]\d{2}:\d{2})",
        "-0700": r"(?P<z>[+-]\d{4})",
        "MST": r"(?P<Z>[A-Z]{3,4})",
    }
    out, i = [], 0
    while i < len(layout):
        for tok, pat in pats.items():
            if layout.startswith(tok, i):
                out.append(pat)
                i += len(tok)
                break
        else:
            out.append(re.escape(layout[i]))
            i += 1
    return "".join(out) + r"(?P<f>\.\d+)?$"


def _must_to_date(fmt: str, s: str) -> GoTime:
    m = re.match(_layout_regex(fmt), s)
    if not m:
        raise FuncError(f'parsing time "{s}" as "{fmt}": cannot parse')
    g = m.groupdict()
    tz: Any = UTC
    if g.get("z") and g["z"] != "Z":
        z = g["z"].replace(":", "")
        tz = datetime.strptime(z, "%z").tzinfo
    micro = int((g.get("f") or ".0")[1:7].ljust(6, "0"))
    return GoTime(
        datetime(
            int(g.get("Y") or 0) or 1,
            int(g.get("m") or 1),
            int(g.get("d") or 1),
            int(g.get("H") or 0),
            int(g.get("M") or 0),
            int(g.get("S") or 0),
            micro,
            tzinfo=tz,
        )
    )


def _to_date(fmt: str, s: str) -> GoTime:
    try:
        return _must_to_date(fmt, s)
    except (FuncError, ValueError):
        return GoTime(datetime(1, 1, 1, tzinfo=UTC))


def _unix_epoch(d: GoTime) -> str:
    return str(math.floor(d.dt.timestamp()))


# --- random ------------------------------------------------------------------------------------


def _rand(chars: str) -> Callable[[int], str]:
    def f(count: int) -> str:
        if count > MAX_WIDTH:
            raise LimitExceeded(f"random string length exceeds {MAX_WIDTH}")
        return "".join(secrets.choice(chars) for _ in range(max(count, 0)))

    return f


def _rand_int(lo: int, hi: int) -> GoInt:
    if hi <= lo:
        raise FuncError("invalid argument to Intn")
    return GoInt(lo + secrets.randbelow(hi - lo))


# --- the map -----------------------------------------------------------------------------------


def _mk(
    name: str,
    fn: Callable[..., object],
    params: str = "",
    variadic: str | None = None,
) -> FuncSpec:
    return FuncSpec(name, fn, tuple(params.split()) if params else (), variadic)


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
    _mk("print", lambda *a: go_sprint(list(a)), "", "any"),
    _mk("printf", lambda f, *a: go_sprintf(f, list(a)), "str", "any"),
    _mk("println", lambda *a: go_sprintln(list(a)), "", "any"),
    _mk("html", _html, "", "any"),
    _mk("js", _js, "", "any"),
    _mk("urlquery", _urlquery, "", "any"),
    _mk("call", _call, "any", "any"),
    _mk("len", _len, "any"),
    _mk("slice", _slice, "any", "any"),
]
# `and` and `or` short-circuit, so the evaluator runs them itself.
BUILTIN_NAMES = frozenset({s.name for s in _BUILTINS} | {"and", "or"})

_i64 = lambda v: GoInt(to_int64(v), "int64")  # noqa: E731

_SPRIG: list[FuncSpec] = [
    # dates
    _mk("date", _date, "str any"),
    _mk("date_in_zone", _date_in_zone, "str any str"),
    _mk("dateInZone", _date_in_zone, "str any str"),
    _mk("date_modify", _date_modify, "str time"),
    _mk("dateModify", _date_modify, "str time"),
    _mk("must_date_modify", _must_date_modify, "str time"),
    _mk("mustDateModify", _must_date_modify, "str time"),
    _mk("duration", _duration, "any"),
    _mk("durationRound", _duration_round, "any"),
    _mk("htmlDate", lambda d: _date("2006-01-02", d), "any"),
    _mk("htmlDateInZone", lambda d, z: _date_in_zone("2006-01-02", d, z), "any str"),
    _mk("toDate", _to_date, "str str"),
    _mk("mustToDate", _must_to_date, "str str"),
    _mk("unixEpoch", _unix_epoch, "time"),
    # strings
    _mk("abbrev", _abbrev, "int str"),
    _mk("abbrevboth", _abbrevboth, "int int str"),
    _mk("trunc", _trunc, "int str"),
    _mk("trim", lambda s: s.strip(" \t\n\r\v\f\x85\xa0"), "str"),
    _mk("upper", lambda s: s.upper(), "str"),
    _mk("lower", lambda s: s.lower(), "str"),
    _mk("title", _title, "str"),
    _mk("untitle", _untitle, "str"),
    _mk("substr", _substr, "int int str"),
    _mk("trimall", lambda a, b: b.strip(a), "str str"),
    _mk("trimAll", lambda a, b: b.strip(a), "str str"),
    _mk("trimSuffix", lambda a, b: b.removesuffix(a), "str str"),
    _mk("trimPrefix", lambda a, b: b.removeprefix(a), "str str"),
    _mk("nospace", _nospace, "str"),
    _mk("initials", _initials, "str"),
    _mk("snakecase", _snake, "str"),
    _mk("camelcase", _camel, "str"),
    _mk("kebabcase", _kebab, "str"),
    _mk("wrap", lambda n, s: _wrap_custom(n, "\n", s), "int str"),
    _mk("wrapWith", _wrap_custom, "int str str"),
    _mk("contains", lambda a, b: a in b, "str str"),
    _mk("hasPrefix", lambda a, b: b.startswith(a), "str str"),
    _mk("hasSuffix", lambda a, b: b.endswith(a), "str str"),
    _mk("quote", _quote, "", "any"),
    _mk("squote", _squote, "", "any"),
    _mk("cat", _cat, "", "any"),
    _mk("indent", _indent, "int str"),
    _mk("nindent", lambda n, s: "\n" + _indent(n, s), "int str"),
    _mk("replace", lambda o, n, s: s.replace(o, n), "str str str"),
    _mk("plural", _plural, "str str int"),
    _mk("sha1sum", _sum("sha1"), "str"),
    _mk("sha256sum", _sum("sha256"), "str"),
    _mk("adler32sum", _adler32, "str"),
    _mk("toString", strval, "any"),
    # conversion / math
    _mk("atoi", _atoi, "str"),
    _mk("int64", _i64, "any"),
    _mk("int", lambda v: GoInt(to_int64(v)), "any"),
    _mk("float64", to_float64, "any"),
    _mk("toDecimal", _to_decimal, "any"),
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
    _mk(
        "split",
        lambda sep, s: {f"_{k}": p for k, p in enumerate(s.split(sep) if sep else list(s))},
        "str str",
    ),
    _mk("splitList", lambda sep, s: s.split(sep) if sep else list(s), "str str"),
    _mk(
        "splitn",
        lambda sep, n, s: {f"_{k}": p for k, p in enumerate(s.split(sep, n - 1) if n > 0 else [])},
        "str int str",
    ),
    _mk("toStrings", lambda v: strslice(v) if isinstance(v, list) else [strval(v)], "any"),
    _mk("join", lambda sep, v: sep.join(strslice(v)), "str any"),
    _mk("sortAlpha", lambda v: sorted(strslice(v)), "any"),
    _mk("tuple", lambda *v: list(v), "", "any"),
    _mk("list", lambda *v: list(v), "", "any"),
    _mk("append", _push, "any any"),
    _mk("push", _push, "any any"),
    _mk("mustAppend", _push, "any any"),
    _mk("mustPush", _push, "any any"),
    _mk("prepend", _prepend, "any any"),
    _mk("mustPrepend", _prepend, "any any"),
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
    _mk("uniq", _uniq, "any"),
    _mk("mustUniq", _uniq, "any"),
    _mk("without", _without, "any", "any"),
    _mk("mustWithout", _without, "any", "any"),
    _mk("has", _has, "any any"),
    _mk("mustHas", _has, "any any"),
    _mk("slice", _slice, "any", "any"),
    _mk("mustSlice", _slice, "any", "any"),
    _mk("concat", _concat, "", "any"),
    _mk("compact", _compact, "any"),
    _mk("mustCompact", _compact, "any"),
    # dicts
    _mk("dict", _dict, "", "any"),
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
    _mk("fromJson", _from_json, "str"),
    _mk("mustFromJson", must_from_json, "str"),
    _mk("toJson", _to_json, "any"),
    _mk("toPrettyJson", _to_pretty, "any"),
    _mk("toRawJson", _to_raw, "any"),
    _mk("mustToJson", to_json, "any"),
    _mk("mustToPrettyJson", lambda v: to_json(v, indent="  "), "any"),
    _mk("mustToRawJson", lambda v: to_json(v, escape_html=False), "any"),
    # reflection
    _mk("typeOf", go_type_name, "any"),
    _mk("typeIs", lambda t, v: go_type_name(v) == t, "str any"),
    _mk("typeIsLike", lambda t, v: t in (go_type_name(v), "*" + go_type_name(v)), "str any"),
    _mk("kindOf", _kind_of, "any"),
    _mk("kindIs", lambda t, v: _kind_of(v) == t, "str any"),
    _mk("deepEqual", _deep_equal, "any any"),
    # paths / encoding
    _mk("base", _base, "str"),
    _mk("dir", _dir, "str"),
    _mk("clean", go_clean, "str"),
    _mk("ext", _ext, "str"),
    _mk("isAbs", lambda p: p.startswith("/"), "str"),
    _mk("osBase", _base, "str"),
    _mk("osDir", _dir, "str"),
    _mk("osClean", go_clean, "str"),
    _mk("osExt", _ext, "str"),
    _mk("osIsAbs", lambda p: p.startswith("/"), "str"),
    _mk("b64enc", lambda s: base64.b64encode(s.encode("utf-8", "surrogatepass")).decode(), "str"),
    _mk("b64dec", _b64dec, "str"),
    _mk("b32enc", lambda s: base64.b32encode(s.encode("utf-8", "surrogatepass")).decode(), "str"),
    _mk("b32dec", _b32dec, "str"),
    # semver
    _mk("semver", _semver, "str"),
    _mk("semverCompare", _semver_compare, "str str"),
]

_NOW = _mk("now", lambda: GoTime(datetime.now(UTC)))
_RANDOM: list[FuncSpec] = [
    _mk("randAlpha", _rand(string.ascii_letters), "int"),
    _mk("randAlphaNum", _rand(string.ascii_letters + string.digits), "int"),
    _mk("randAscii", _rand("".join(chr(c) for c in range(32, 127))), "int"),
    _mk("randNumeric", _rand(string.digits), "int"),
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
