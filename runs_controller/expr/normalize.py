"""The reference's normalisation pre-pass (§8.3): bare roots get a dot, `x["k"]` becomes index."""

from __future__ import annotations

import re

from .parser import go_unquote

__all__ = ["ROOTS", "find_action_end", "go_quote", "normalize"]

ROOTS = frozenset({"inputs", "steps", "packet"})
_RECEIVER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def _is_ident(c: str) -> bool:
    return c == "_" or c.isalnum()


def _skip_quoted(s: str, i: int) -> int:
    """Index just past the quoted literal starting at s[i] (or len(s) when unterminated)."""
    q = s[i]
    j = i + 1
    while j < len(s):
        if s[j] == "\\" and q != "`":
            j += 2
            continue
        if s[j] == q:
            return j + 1
        j += 1
    return len(s)


def find_action_end(s: str, i: int) -> int:
    """Position of the `}}` closing the action whose body starts at i, quote aware; -1 if none."""
    while i < len(s):
        c = s[i]
        if c in "\"'`":
            i = _skip_quoted(s, i)
            continue
        if s.startswith("}}", i):
            return i
        i += 1
    return -1


# strconv.Quote's escapes of ASCII, as a translate table; other non-printable characters are
# found by a regex over the (rare) non-ASCII ones only.
_QUOTE_ASCII = {
    **{c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]},
    **{ord(k): v for k, v in {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n"}.items()},
    **{ord(k): v for k, v in {"\r": "\\r", "\t": "\\t", "\v": "\\v"}.items()},
    ord('"'): '\\"',
    ord("\\"): "\\\\",
}
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _quote_non_ascii(m: re.Match[str]) -> str:
    ch = m.group()
    o = ord(ch)
    if 0xD800 <= o <= 0xDFFF:
        return "\\ufffd"
    if ch.isprintable():
        return ch
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def go_quote(s: str) -> str:
    """Go `strconv.Quote` (C-speed for ASCII; only non-ASCII characters are visited)."""
    body = s.translate(_QUOTE_ASCII)
    if not body.isascii():
        body = _NON_ASCII.sub(_quote_non_ascii, body)
    return '"' + body + '"'


def _dot_roots(body: str) -> str:
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c in "\"'`":
            j = _skip_quoted(body, i)
            out.append(body[i:j])
            i = j
            continue
        if _is_ident(c) and not c.isdigit():
            j = i
            while j < n and _is_ident(body[j]):
                j += 1
            word = body[i:j]
            prev = body[i - 1] if i > 0 else ""
            if word in ROOTS and not (prev in ".$" or (prev and _is_ident(prev))):
                out.append(".")
            out.append(word)
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _unquote_or_none(lit: str) -> str | None:
    try:
        return go_unquote(lit)
    except ValueError:
        return None


def _subscripts(body: str) -> str:
    """Rewrite every `RECV["k"]` into `(index RECV "k")` in one left-to-right pass.

    Same result as the reference's "rewrite the first match until nothing changes" (a rewrite
    never changes what an earlier `[` sees), in linear time. RECV is the longest run of
    `[A-Za-z0-9_.-]` characters and balanced `( ... )` groups before the `[`; like the
    reference's backward scan, parentheses count even inside quoted literals. `out` holds one
    element per source character (or rewrite suffix); `recv` is the index where the current run
    starts, `opens` the run start saved at each unmatched `(`, and `prefixes` how many
    `(index ` go before an element.
    """
    if "[" not in body:
        return body
    out: list[str] = []
    prefixes: dict[int, int] = {}
    opens: list[int] = []
    recv = 0
    lit_end = 0
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if i >= lit_end and c == "[" and i + 1 < n and body[i + 1] in "\"'`":
            end = _skip_quoted(body, i + 1)
            key = _unquote_or_none(body[i + 1 : end]) if end < n and body[end] == "]" else None
            if key is not None and recv < len(out):
                prefixes[recv] = prefixes.get(recv, 0) + 1
                out.append(f" {go_quote(key)})")
                i = end + 1
                continue
        if i >= lit_end and c in "\"'`":
            lit_end = _skip_quoted(body, i)
        k = len(out)
        out.append(c)
        if c == "(":
            opens.append(recv)
            recv = k + 1
        elif c == ")":
            recv = opens.pop() if opens else k + 1
        elif c not in _RECEIVER_CHARS:
            recv = k + 1
        i += 1
    if not prefixes:
        return body
    return "".join("(index " * prefixes[k] + e if k in prefixes else e for k, e in enumerate(out))


def normalize(s: str) -> str:
    """Apply root dotting and subscript rewriting inside every `{{ ... }}` action."""
    out: list[str] = []
    i = 0
    while True:
        j = s.find("{{", i)
        if j < 0:
            out.append(s[i:])
            break
        out.append(s[i:j])
        end = find_action_end(s, j + 2)
        if end < 0:
            out.append(s[j:])
            break
        body = s[j + 2 : end]
        if not body.strip().startswith("/*"):
            body = _subscripts(_dot_roots(body))
        out.append("{{" + body + "}}")
        i = end + 2
    return "".join(out)
