"""Lexer for Go text/template; error texts follow Go's so messages stay familiar."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

__all__ = ["Tok", "Token", "lex"]


class Tok(Enum):
    TEXT = auto()
    LEFT = auto()
    RIGHT = auto()
    SPACE = auto()
    IDENT = auto()
    FIELD = auto()
    VARIABLE = auto()
    DOT = auto()
    STRING = auto()
    RAW = auto()
    CHAR = auto()
    NUMBER = auto()
    BOOL = auto()
    NIL = auto()
    PIPE = auto()
    LPAREN = auto()
    RPAREN = auto()
    DECLARE = auto()
    ASSIGN = auto()
    COMMA = auto()
    OTHER = auto()  # a printable ASCII character with no meaning of its own
    KEYWORD = auto()
    EOF = auto()
    ERROR = auto()


KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
)
_SPACE = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Token:
    typ: Tok
    val: str
    pos: int
    line: int


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or c.isdigit()


def char_desc(c: str) -> str:
    """Go `%#U` of a rune."""
    o = ord(c)
    return f"U+{o:04X} '{c}'" if c.isprintable() else f"U+{o:04X}"


class _Lexer:
    def __init__(self, text: str) -> None:
        self.s = text
        self.n = len(text)
        self.toks: list[Token] = []
        self.paren = 0
        self._line_pos = 0  # newlines before _line_pos are counted in _newlines
        self._newlines = 0

    def line_at(self, pos: int) -> int:
        """1-based line of `pos`; tokens come in order, so counting is incremental (linear)."""
        if pos < self._line_pos:
            self._line_pos, self._newlines = 0, 0
        self._newlines += self.s.count("\n", self._line_pos, pos)
        self._line_pos = pos
        return self._newlines + 1

    def emit(self, typ: Tok, start: int, end: int) -> None:
        self.toks.append(Token(typ, self.s[start:end], start, self.line_at(start)))

    def error(self, msg: str, pos: int) -> None:
        self.toks.append(Token(Tok.ERROR, msg, pos, self.line_at(pos)))

    def run(self) -> list[Token]:
        s, i = self.s, 0
        while True:
            j = s.find("{{", i)
            if j < 0:
                if i < self.n:
                    self.emit(Tok.TEXT, i, self.n)
                self.toks.append(Token(Tok.EOF, "", self.n, self.line_at(self.n)))
                return self.toks
            trim = s.startswith("{{-", j) and j + 3 < self.n and s[j + 3] in _SPACE
            text_end = j
            if trim:
                while text_end > i and s[text_end - 1] in _SPACE:
                    text_end -= 1
            if text_end > i:
                self.emit(Tok.TEXT, i, text_end)
            k = j + (4 if trim else 2)
            # comment
            p = k
            if s.startswith("/*", p):
                end = s.find("*/", p + 2)
                if end < 0:
                    self.error("unclosed comment", j)
                    return self.toks
                q = end + 2
                rtrim = s.startswith(" -}}", q) or (
                    q < self.n and s[q] in _SPACE and s.startswith("-}}", q + 1)
                )
                if s.startswith("}}", q):
                    i = q + 2
                elif rtrim:
                    i = q + 4
                    while i < self.n and s[i] in _SPACE:
                        i += 1
                else:
                    self.error("comment ends before closing delimiter", j)
                    return self.toks
                continue
            self.emit(Tok.LEFT, j, k)
            i = self.inside(k)
            if i < 0:
                return self.toks

    def at_right(self, i: int) -> tuple[bool, bool]:
        s = self.s
        if i < self.n and s[i] in _SPACE and s.startswith("-}}", i + 1):
            return True, True
        return s.startswith("}}", i), False

    def at_terminator(self, i: int) -> bool:
        if i >= self.n:
            return True
        c = self.s[i]
        if c in _SPACE or c in ".,|:()":
            return True
        return self.s.startswith("}}", i)

    def inside(self, i: int) -> int:
        s, n = self.s, self.n
        while True:
            right, trim = self.at_right(i)
            if right:
                if self.paren:
                    self.error("unclosed left paren", i)
                    return -1
                end = i + (4 if trim else 2)
                self.emit(Tok.RIGHT, i, end)
                if trim:
                    while end < n and s[end] in _SPACE:
                        end += 1
                return end
            if i >= n:
                self.error("unclosed action", i)
                return -1
            c = s[i]
            if c in _SPACE:
                j = i
                while j < n and s[j] in _SPACE and not self.at_right(j)[1]:
                    j += 1
                if j == i:  # " -}}" starts here
                    j += 1
                self.emit(Tok.SPACE, i, j)
                i = j
            elif c == "=":
                self.emit(Tok.ASSIGN, i, i + 1)
                i += 1
            elif c == ":":
                if not s.startswith(":=", i):
                    self.error("expected :=", i)
                    return -1
                self.emit(Tok.DECLARE, i, i + 2)
                i += 2
            elif c == "|":
                self.emit(Tok.PIPE, i, i + 1)
                i += 1
            elif c == '"' or c == "'":
                j = i + 1
                while True:
                    if j >= n or s[j] == "\n":
                        self.error(
                            "unterminated quoted string"
                            if c == '"'
                            else "unterminated character constant",
                            i,
                        )
                        return -1
                    if s[j] == "\\":
                        j += 2
                        continue
                    if s[j] == c:
                        break
                    j += 1
                self.emit(Tok.STRING if c == '"' else Tok.CHAR, i, j + 1)
                i = j + 1
            elif c == "`":
                j = s.find("`", i + 1)
                if j < 0:
                    self.error("unterminated raw quoted string", i)
                    return -1
                self.emit(Tok.RAW, i, j + 1)
                i = j + 1
            elif c == "$" or (c == "." and not (i + 1 < n and s[i + 1].isdigit())):
                j = i + 1
                while j < n and _is_alnum(s[j]):
                    j += 1
                if not self.at_terminator(j):
                    self.error(f"bad character {char_desc(s[j])}", j)
                    return -1
                typ = Tok.VARIABLE if c == "$" else (Tok.FIELD if j > i + 1 else Tok.DOT)
                self.emit(typ, i, j)
                i = j
            elif c in "+-." or c.isdigit():
                j = self.scan_number(i)
                if j < 0:
                    return -1
                self.emit(Tok.NUMBER, i, j)
                i = j
            elif _is_alnum(c):
                j = i
                while j < n and _is_alnum(s[j]):
                    j += 1
                if not self.at_terminator(j):
                    self.error(f"bad character {char_desc(s[j])}", j)
                    return -1
                word = s[i:j]
                if word in KEYWORDS:
                    typ = Tok.KEYWORD
                elif word in ("true", "false"):
                    typ = Tok.BOOL
                elif word == "nil":
                    typ = Tok.NIL
                else:
                    typ = Tok.IDENT
                self.emit(typ, i, j)
                i = j
            elif c == "(":
                self.paren += 1
                self.emit(Tok.LPAREN, i, i + 1)
                i += 1
            elif c == ")":
                self.paren -= 1
                if self.paren < 0:
                    self.error("unexpected right paren", i)
                    return -1
                self.emit(Tok.RPAREN, i, i + 1)
                i += 1
            elif c == ",":
                self.emit(Tok.COMMA, i, i + 1)
                i += 1
            elif c.isascii() and c.isprintable():
                self.emit(Tok.OTHER, i, i + 1)
                i += 1
            else:
                self.error(f"bad character {char_desc(c)}", i)
                return -1

    def scan_number(self, i: int) -> int:
        s, n = self.s, self.n
        j = i
        if j < n and s[j] in "+-":
            j += 1
        digits = "0123456789_"
        if s.startswith(("0x", "0X"), j):
            j += 2
            digits = "0123456789abcdefABCDEF_"
        elif s.startswith(("0o", "0O"), j):
            j += 2
            digits = "01234567_"
        elif s.startswith(("0b", "0B"), j):
            j += 2
            digits = "01_"
        while j < n and s[j] in digits:
            j += 1
        if j < n and s[j] == ".":
            j += 1
            while j < n and s[j] in digits:
                j += 1
        exp = "pP" if digits.startswith("0123456789abcdef") else "eE"
        if j < n and s[j] in exp:
            j += 1
            if j < n and s[j] in "+-":
                j += 1
            while j < n and s[j] in "0123456789_":
                j += 1
        if j < n and s[j] == "i":
            j += 1
        if j < n and _is_alnum(s[j]):
            self.error(f"bad number syntax: {s[i : j + 1]!r}", i)
            return -1
        return j


def lex(text: str) -> list[Token]:
    """Tokens of `text`; a lexical error is the last token before nothing (Go stops there)."""
    return _Lexer(text).run()
