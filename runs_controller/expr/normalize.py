"""The reference's normalisation pre-pass (§8.3): bare roots get a dot, `x["k"]` becomes index."""

from __future__ import annotations

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


def go_quote(s: str) -> str:
    """Go `strconv.Quote`."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable() and not 0xD800 <= o <= 0xDFFF:
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append(
                {
                    "\a": "\\a",
                    "\b": "\\b",
                    "\f": "\\f",
                    "\n": "\\n",
                    "\r": "\\r",
                    "\t": "\\t",
                    "\v": "\\v",
                }[ch]
            )
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


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


def _receiver_start(body: str, k: int) -> int:
    """Start of the subscript receiver that ends just before index k (k itself if none)."""
    j = k
    while j > 0:
        c = body[j - 1]
        if c in _RECEIVER_CHARS:
            j -= 1
        elif c == ")":
            depth, m = 0, j - 1
            while m >= 0:
                if body[m] == ")":
                    depth += 1
                elif body[m] == "(":
                    depth -= 1
                    if depth == 0:
                        break
                m -= 1
            if m < 0:
                break
            j = m
        else:
            break
    return j


def _subscript_once(body: str) -> str | None:
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c in "\"'`":
            i = _skip_quoted(body, i)
            continue
        if c == "[" and i + 1 < n and body[i + 1] in "\"'`":
            end = _skip_quoted(body, i + 1)
            if end < n and body[end] == "]":
                try:
                    key = go_unquote(body[i + 1 : end])
                except ValueError:
                    key = None
                start = _receiver_start(body, i)
                if key is not None and start < i:
                    recv = body[start:i]
                    return f"{body[:start]}(index {recv} {go_quote(key)}){body[end + 1 :]}"
        i += 1
    return None


def _subscripts(body: str) -> str:
    for _ in range(len(body) + 1):
        nxt = _subscript_once(body)
        if nxt is None:
            return body
        body = nxt
    return body


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
