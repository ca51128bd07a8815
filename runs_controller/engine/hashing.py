"""StoryTrigger input hashes: Go-compatible JSON decoding, canonical re-encoding and sha256.

Admission compares `spec.deliveryIdentity.inputHash` with a hash the reference controller
computed in Go (`json.Unmarshal` into `any`, then `json.Marshal`). Python's `json` module
differs in numbers, escaping, invalid UTF-8 and error text, so both directions are
reimplemented here to reproduce Go's bytes and messages exactly.

Both the decoder and the encoder are iterative: Go accepts nesting up to 10000 levels,
far beyond Python's recursion limit.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import TypeAlias

__all__ = ["JSONValue", "canonical_json", "decode_go_json", "trigger_input_hash"]

JSONValue: TypeAlias = "bool | float | str | list[JSONValue] | dict[str, JSONValue] | None"

# Go's scanner refuses a document once more than this many arrays/objects are open.
_MAX_DEPTH = 10000

_SPACE_RUN = re.compile(rb"[ \t\r\n]*")
_DIGIT_RUN = re.compile(rb"[0-9]*")
_PLAIN_STRING_RUN = re.compile(rb'[^"\\\x00-\x1f]*')
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")
_SPACES = frozenset(b" \t\r\n")
_SIMPLE_ESCAPES = {
    ord('"'): '"',
    ord("\\"): "\\",
    ord("/"): "/",
    ord("b"): "\b",
    ord("f"): "\f",
    ord("n"): "\n",
    ord("r"): "\r",
    ord("t"): "\t",
}
_STRING_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|(.))", re.DOTALL)
# surrogateescape turns each undecodable byte into one of these; Go yields one U+FFFD per byte.
_ESCAPED_BYTES = dict.fromkeys(range(0xDC80, 0xDD00), "\ufffd")
_LITERALS: dict[int, tuple[bytes, JSONValue]] = {
    ord("t"): (b"true", True),
    ord("f"): (b"false", False),
    ord("n"): (b"null", None),
}


_GO_FLOAT = "Go value of type float64"


def _describe_byte(byte: int) -> str:
    """Render a byte as Go's scanner does in messages: the rune U+00XX, Go-quoted in '...'."""
    if byte == ord("'"):
        return "'\\''"
    if byte == ord('"'):
        return "'\"'"
    if byte == ord("\\"):
        return "'\\\\'"
    if 0x20 <= byte < 0x7F or (0xA1 <= byte <= 0xFF and byte != 0xAD):
        return f"'{chr(byte)}'"
    short = {0x07: "a", 0x08: "b", 0x0C: "f", 0x0A: "n", 0x0D: "r", 0x09: "t", 0x0B: "v"}
    if byte in short:
        return f"'\\{short[byte]}'"
    if byte < 0x20 or byte == 0x7F:
        return f"'\\x{byte:02x}'"
    return f"'\\u{byte:04x}'"


def _invalid(byte: int, context: str) -> ValueError:
    return ValueError(f"invalid character {_describe_byte(byte)} {context}")


def _lossy_utf8(raw: bytes) -> str:
    """Decode like Go: each byte that does not start a valid UTF-8 sequence becomes U+FFFD.

    Python's maximal-subpart error ranges only ever span a lead byte plus continuation
    bytes, which Go rejects one at a time, so one replacement per escaped byte matches Go.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape").translate(_ESCAPED_BYTES)


def _surrogate(code: int, body: bytes, pos: int) -> tuple[int, int]:
    """Resolve a surrogate escape ending at `pos`: the pair's code point, or U+FFFD.

    Only a high surrogate immediately followed by a low-surrogate escape forms a pair;
    otherwise Go yields U+FFFD and decodes the following escape on its own.
    """
    low = _STRING_ESCAPE.match(body, pos)
    if code < 0xDC00 and low is not None and low.group(1) is not None:
        low_code = int(low.group(1), 16)
        if 0xDC00 <= low_code < 0xE000:
            return 0x10000 + ((code - 0xD800) << 10) + (low_code - 0xDC00), low.end()
    return 0xFFFD, pos


def _run_end(pattern: re.Pattern[bytes], data: bytes, pos: int) -> int:
    """Where a (possibly empty) run of `pattern` starting at `pos` ends."""
    match = pattern.match(data, pos)
    return pos if match is None else match.end()


def _unquote(body: bytes) -> str:
    """The text of a scanner-validated string body (between the quotes), as Go decodes it."""
    if b"\\" not in body:
        return _lossy_utf8(body)
    parts: list[str] = []
    pos = 0
    while (match := _STRING_ESCAPE.search(body, pos)) is not None:
        parts.append(_lossy_utf8(body[pos : match.start()]))
        pos = match.end()
        if match.group(1) is None:
            parts.append(_SIMPLE_ESCAPES[match.group(2)[0]])
            continue
        code = int(match.group(1), 16)
        if 0xD800 <= code < 0xE000:
            code, pos = _surrogate(code, body, pos)
        parts.append(chr(code))
    parts.append(_lossy_utf8(body[pos:]))
    return "".join(parts)


class _Decoder:
    """One pass over `data` + a virtual trailing space, mirroring Go's scanner at end of input."""

    def __init__(self, data: bytes) -> None:
        self.buf = data + b" "
        self.first_overflow: bytes | None = None

    def at(self, pos: int) -> int:
        if pos >= len(self.buf):
            raise ValueError("unexpected end of JSON input")
        return self.buf[pos]

    def skip_space(self, pos: int) -> int:
        return _run_end(_SPACE_RUN, self.buf, pos)

    def string(self, pos: int) -> tuple[str, int]:
        """Decode the string whose opening quote is at `pos`; return it and the end offset."""
        start = pos + 1
        pos = start
        while True:
            pos = _run_end(_PLAIN_STRING_RUN, self.buf, pos)
            byte = self.at(pos)
            if byte == ord('"'):
                return _unquote(self.buf[start:pos]), pos + 1
            if byte != ord("\\"):
                raise _invalid(byte, "in string literal")
            escape = self.at(pos + 1)
            if escape in _SIMPLE_ESCAPES:
                pos += 2
            elif escape == ord("u"):
                for offset in range(2, 6):
                    digit = self.at(pos + offset)
                    if digit not in _HEX:
                        raise _invalid(digit, "in \\u hexadecimal character escape")
                pos += 6
            else:
                raise _invalid(escape, "in string escape code")

    def number(self, pos: int) -> tuple[float, int]:
        start = pos
        if self.buf[pos] == ord("-"):
            pos += 1
            if self.at(pos) not in _DIGITS:
                raise _invalid(self.at(pos), "in numeric literal")
        pos = pos + 1 if self.buf[pos] == ord("0") else self.digits(pos)
        if self.at(pos) == ord("."):
            pos += 1
            if self.at(pos) not in _DIGITS:
                raise _invalid(self.at(pos), "after decimal point in numeric literal")
            pos = self.digits(pos)
        if self.at(pos) in b"eE":
            pos += 1
            if self.at(pos) in b"+-":
                pos += 1
            if self.at(pos) not in _DIGITS:
                raise _invalid(self.at(pos), "in exponent of numeric literal")
            pos = self.digits(pos)
        literal = self.buf[start:pos]
        value = float(literal)  # correctly rounded, like strconv.ParseFloat
        if math.isinf(value):
            # Go reports this only if the whole document is otherwise valid, first one wins.
            if self.first_overflow is None:
                self.first_overflow = literal
            value = 0.0
        return value, pos

    def digits(self, pos: int) -> int:
        return _run_end(_DIGIT_RUN, self.buf, pos)

    def literal(self, pos: int) -> tuple[JSONValue, int]:
        word, value = _LITERALS[self.buf[pos]]
        kind = word.decode()
        for offset in range(1, len(word)):
            byte = self.at(pos + offset)
            if byte != word[offset]:
                expecting = chr(word[offset])
                raise _invalid(byte, f"in literal {kind} (expecting '{expecting}')")
        return value, pos + len(word)

    def key(self, pos: int) -> tuple[str, int]:
        """An object key starting at `pos` (spaces skipped), through its colon and spaces."""
        byte = self.at(pos)
        if byte != ord('"'):
            raise _invalid(byte, "looking for beginning of object key string")
        key, pos = self.string(pos)
        pos = self.skip_space(pos)
        byte = self.at(pos)
        if byte != ord(":"):
            raise _invalid(byte, "after object key")
        return key, self.skip_space(pos + 1)

    def document(self) -> JSONValue:
        containers: list[list[JSONValue] | dict[str, JSONValue]] = []
        keys: list[str] = []  # the pending key of each open object, innermost last
        pos = self.skip_space(0)
        while True:
            # A value starts at `pos`.
            byte = self.at(pos)
            value: JSONValue
            if byte in b"[{":
                container: list[JSONValue] | dict[str, JSONValue] = [] if byte == ord("[") else {}
                containers.append(container)
                if len(containers) > _MAX_DEPTH:
                    raise _invalid(byte, "exceeded max depth")
                pos = self.skip_space(pos + 1)
                if self.at(pos) != ord("]" if byte == ord("[") else "}"):
                    if isinstance(container, dict):
                        key, pos = self.key(pos)
                        keys.append(key)
                    continue
                pos += 1
                value = containers.pop()
            elif byte == ord('"'):
                value, pos = self.string(pos)
            elif byte == ord("-") or byte in _DIGITS:
                value, pos = self.number(pos)
            elif byte in _LITERALS:
                value, pos = self.literal(pos)
            else:
                raise _invalid(byte, "looking for beginning of value")

            # Store completed values and close every container they complete.
            while containers:
                parent = containers[-1]
                if isinstance(parent, dict):
                    parent[keys.pop()] = value  # a repeated key: the last value wins
                else:
                    parent.append(value)
                pos = self.skip_space(pos)
                byte = self.at(pos)
                if byte == ord(","):
                    pos = self.skip_space(pos + 1)
                    if isinstance(parent, dict):
                        key, pos = self.key(pos)
                        keys.append(key)
                    break
                if isinstance(parent, dict):
                    if byte != ord("}"):
                        raise _invalid(byte, "after object key:value pair")
                elif byte != ord("]"):
                    raise _invalid(byte, "after array element")
                pos += 1
                value = containers.pop()
            else:
                return self.finish(value, pos)

    def finish(self, value: JSONValue, pos: int) -> JSONValue:
        for offset in range(pos, len(self.buf)):
            if self.buf[offset] not in _SPACES:
                raise _invalid(self.buf[offset], "after top-level value")
        if self.first_overflow is not None:
            literal = self.first_overflow.decode()
            raise ValueError(f"json: cannot unmarshal number {literal} into {_GO_FLOAT}")
        return value


def decode_go_json(data: bytes) -> JSONValue:
    """Decode JSON as Go's `json.Unmarshal` into `any` does; errors carry Go's message.

    Numbers become floats, invalid UTF-8 and unpaired surrogate escapes become U+FFFD and
    a repeated object key keeps its last value.
    """
    return _Decoder(data).document()


_NEEDS_ESCAPE = re.compile('[\\x00-\\x1f"\\\\<>&\u2028\u2029\ud800-\udfff]')
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if "\ud800" <= char <= "\udfff":
        # A lone surrogate (e.g. from Python's json module) is what Go decodes as U+FFFD.
        return "\ufffd"
    return f"\\u{ord(char):04x}"


def _quote(text: str) -> str:
    """A JSON string with Go's HTML-safe escaping (`<`, `>`, `&`, U+2028, U+2029)."""
    return f'"{_NEEDS_ESCAPE.sub(_escape, text)}"'


def _format_float(value: float) -> str:
    """Go's float64 JSON form: shortest digits, exponent only below 1e-6 or from 1e21 up."""
    if math.isnan(value) or math.isinf(value):
        name = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
        raise ValueError(f"json: unsupported value: {name}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    # repr gives the shortest round-trip digits, the same digits Go's formatter picks.
    mantissa, _, exponent_text = repr(magnitude).partition("e")
    whole, _, fraction = mantissa.partition(".")
    padded = (whole + fraction).lstrip("0")
    digits = padded.rstrip("0")
    exponent = int(exponent_text or "0") - len(fraction) + len(padded) - len(digits)
    # Now magnitude == int(digits) * 10**exponent, without leading or trailing zeros.
    if magnitude < 1e-6 or magnitude >= 1e21:
        scientific = exponent + len(digits) - 1
        head = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
        # Go writes at least two exponent digits and then trims `e-07` to `e-7`.
        tail = f"e-{-scientific}" if scientific < 0 else f"e+{scientific:02d}"
        return f"{sign}{head}{tail}"
    if exponent >= 0:
        return f"{sign}{digits}{'0' * exponent}"
    point = len(digits) + exponent
    if point > 0:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return f"{sign}0.{'0' * -point}{digits}"


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        try:
            number = float(value)
        except OverflowError:
            message = f"json: cannot unmarshal number {value} into {_GO_FLOAT}"
            raise ValueError(message) from None
        return _format_float(number)
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, str):
        return _quote(value)
    raise TypeError(f"canonical JSON does not support {type(value).__name__} values")


class _Open:
    """An array or object being written: its remaining members and how it closes."""

    __slots__ = ("closer", "first", "ident", "members", "pairs")

    def __init__(self, value: dict[object, object] | list[object] | tuple[object, ...]) -> None:
        self.ident = id(value)
        self.first = True
        self.pairs: list[tuple[str, object]] = []
        self.members: list[object] = []
        if isinstance(value, dict):
            self.closer = "}"
            merged: dict[str, object] = {}
            for key, member in value.items():
                if not isinstance(key, str):
                    raise TypeError(f"canonical JSON object keys must be str, not {key!r}")
                # Go sorts the decoded keys bytewise; code point order is the same order.
                merged[_LONE_SURROGATE.sub("\ufffd", key)] = member
            self.pairs = sorted(merged.items(), key=lambda pair: pair[0], reverse=True)
        else:
            self.closer = "]"
            self.members = list(reversed(value))

    def next_member(self) -> tuple[str, object] | None:
        """The next member as (prefix to write, value), or None when exhausted."""
        separator = "" if self.first else ","
        self.first = False
        if self.pairs:
            key, member = self.pairs.pop()
            return f"{separator}{_quote(key)}:", member
        if self.members:
            return separator, self.members.pop()
        return None


def canonical_json(value: object) -> bytes:
    """Go's `json.Marshal` of a decoded `any`: sorted keys, no spaces, float64 numbers.

    Accepts dicts with str keys, lists/tuples, str, bool, None, int and float; ints are
    rounded to float64 as Go's decoder would have done.
    """
    out: list[str] = []
    open_stack: list[_Open] = []
    open_ids: set[int] = set()
    pending: object = value
    has_pending = True
    while True:
        if has_pending:
            if isinstance(pending, dict | list | tuple):
                if id(pending) in open_ids:
                    raise ValueError("json: unsupported value: encountered a cycle")
                frame = _Open(pending)
                open_stack.append(frame)
                open_ids.add(frame.ident)
                out.append("{" if frame.closer == "}" else "[")
            else:
                out.append(_scalar(pending))
        if not open_stack:
            return "".join(out).encode("utf-8")
        top = open_stack[-1]
        step = top.next_member()
        if step is None:
            out.append(top.closer)
            open_stack.pop()
            open_ids.discard(top.ident)
            has_pending = False
        else:
            prefix, pending = step
            out.append(prefix)
            has_pending = True


_EMPTY_OBJECT_HASH = hashlib.sha256(b"{}").hexdigest()


def trigger_input_hash(raw: bytes | None) -> str:
    """sha256 hex of the canonical JSON of StoryTrigger inputs (`inputHash`).

    None, empty input and a top-level `null` hash as `{}`; anything else that Go's decoder
    refuses raises ValueError("decode trigger inputs: <Go's message>").
    """
    if not raw:
        return _EMPTY_OBJECT_HASH
    try:
        value = decode_go_json(raw)
    except ValueError as exc:
        raise ValueError(f"decode trigger inputs: {exc}") from None
    if value is None:
        return _EMPTY_OBJECT_HASH
    return hashlib.sha256(canonical_json(value)).hexdigest()
