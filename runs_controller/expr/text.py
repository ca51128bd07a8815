"""UTF-8 sizes and a size-bounded string builder, shared by the value model and the budgets."""

from __future__ import annotations

from .errors import LimitExceeded

__all__ = ["Sink", "utf8_len"]


def utf8_len(s: str) -> int:
    """UTF-8 size of `s` (lone surrogates count 3 bytes, as `surrogatepass` encodes them)."""
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


class Sink:
    """A string builder that refuses the piece that would take it over `limit` bytes (0: none)."""

    __slots__ = ("limit", "parts", "size", "what")

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self.parts: list[str] = []
        self.size = 0

    def reserve(self, n: int) -> None:
        """Refuse now if `n` more bytes would not fit (call before building them)."""
        if self.limit and self.size + n > self.limit:
            raise LimitExceeded(
                f"template value exceeds max size {self.limit} bytes "
                f"({self.what} would be over {self.size + n} bytes)"
            )

    def write(self, s: str) -> None:
        n = len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))
        if self.limit and self.size + n > self.limit:
            self.reserve(n)
        self.size += n
        self.parts.append(s)

    def getvalue(self) -> str:
        return "".join(self.parts)
