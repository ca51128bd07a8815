"""UTF-8 sizes and a size-bounded string builder, shared by the value model and the budgets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import LimitExceeded

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["PIECES_PER_CHARGE", "Sink", "utf8_len"]

# Small pieces are joined (and charged) in batches of this many: memory stays near the text's
# own size instead of one Python object per piece, and the charge is paid as the work goes.
PIECES_PER_CHARGE = 256


def utf8_len(s: str) -> int:
    """UTF-8 size of `s` (lone surrogates count 3 bytes, as `surrogatepass` encodes them)."""
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


class Sink:
    """A string builder that refuses the piece that would take it over `limit` bytes (0: none).

    `charge(n)`, when given, is called with the number of pieces written, every
    PIECES_PER_CHARGE pieces: a serialiser pays a step per piece while it works.
    """

    __slots__ = ("_charge", "_chunks", "_pending", "limit", "refused_at", "size", "what")

    def __init__(self, limit: int, what: str, charge: Callable[[int], None] | None = None) -> None:
        self.limit = limit
        self.what = what
        self._charge = charge
        self._chunks: list[str] = []
        self._pending: list[str] = []
        self.size = 0
        self.refused_at = 0  # the size the refused write would have reached

    @property
    def charge_fn(self) -> Callable[[int], None] | None:
        """What this sink charges (a nested sink for one piece pays the same budget)."""
        return self._charge

    def reserve(self, n: int) -> None:
        """Refuse now if `n` more bytes would not fit (call before building them)."""
        if self.limit and self.size + n > self.limit:
            self.refused_at = self.size + n
            raise LimitExceeded(
                f"template value exceeds max size {self.limit} bytes "
                f"({self.what} would be over {self.size + n} bytes)"
            )

    def write(self, s: str) -> None:
        n = len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))
        if self.limit and self.size + n > self.limit:
            self.reserve(n)
        self.size += n
        pending = self._pending
        pending.append(s)
        if len(pending) >= PIECES_PER_CHARGE:
            self._flush()

    def _flush(self) -> None:
        if self._charge is not None:
            self._charge(len(self._pending))
        self._chunks.append("".join(self._pending))
        self._pending.clear()

    def getvalue(self) -> str:
        if self._pending:
            self._flush()
        if len(self._chunks) == 1:
            return self._chunks[0]
        return "".join(self._chunks)
