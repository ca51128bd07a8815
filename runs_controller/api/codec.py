"""JSON encoding and decoding of API Structs, straight from and to wire bytes.

Times: `datetime` fields are metav1.Time (RFC 3339, whole seconds, `Z`), which msgspec handles
natively. `MicroTime` (leases, EffectClaim) always prints six fractional digits, as Go's
metav1.MicroTime does, so a decoded value re-encodes byte for byte.
"""

from __future__ import annotations

import datetime
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")

APISERVER_MAX_DEPTH = 10_000
"""kube-apiserver stores JSON nested up to this many levels (deeper: 400 "exceeded max depth");
a LIST page and a watch event wrap an object in two more."""

_WRAPPING_LEVELS = 16  # a LIST page or watch event around the object, and slack
_deep_lock = threading.RLock()


class MicroTime(datetime.datetime):
    """metav1.MicroTime: a timestamp that always carries microseconds on the wire."""

    @classmethod
    def from_datetime(cls, value: datetime.datetime) -> MicroTime:
        return cls(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tzinfo=value.tzinfo,
        )

    def to_wire(self) -> str:
        utc = self.astimezone(datetime.UTC) if self.tzinfo is not None else self
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _enc_hook(value: Any) -> Any:
    if isinstance(value, MicroTime):
        return value.to_wire()
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _dec_hook(target: type, value: Any) -> Any:
    if target is MicroTime:
        return MicroTime.from_datetime(msgspec.convert(value, datetime.datetime))
    raise NotImplementedError(f"cannot decode {target!r}")


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


@contextmanager
def deep_recursion() -> Iterator[None]:
    """Python's recursion limit raised far enough for a document as deep as the apiserver stores.

    msgspec counts each nesting level against the limit (1,000 by default), even when it only
    skips a value as `Raw`: without this, one deeply nested object made a whole LIST page
    undecodable and its informer never synced. The limit is process-wide and every recursive
    Python function relies on it to protect the C stack, so it is raised only around one call
    into C, and only after that call failed at the normal limit. msgspec runs no Python code
    during it (bar the MicroTime hooks, which do not recurse), so another thread gets the GIL
    only in the few instructions around it. The lock keeps two threads from raising and
    restoring the limit over each other. msgspec needs under 400 bytes of C stack per level,
    4 MiB at 10,000 levels; a thread's default stack on Linux is 8 MiB.
    """
    with _deep_lock:
        normal = sys.getrecursionlimit()
        sys.setrecursionlimit(normal + APISERVER_MAX_DEPTH + _WRAPPING_LEVELS)
        try:
            yield
        finally:
            sys.setrecursionlimit(normal)


def _deep_enough(call: Callable[[A], R], argument: A) -> R:
    """`call(argument)`, once more with `deep_recursion` if the normal limit was too low."""
    try:
        return call(argument)
    except RecursionError:
        pass
    with deep_recursion():
        return call(argument)


class Decoder(Generic[T]):
    """msgspec's JSON decoder for one type, which also reads the deepest objects the apiserver
    stores (see `deep_recursion`); the common case pays one `try`."""

    __slots__ = ("_decoder",)

    def __init__(self, target: type[T]) -> None:
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(target, dec_hook=_dec_hook)

    def decode(self, data: bytes | str | msgspec.Raw) -> T:
        return _deep_enough(self._decoder.decode, data)

    def decode_lines(self, data: bytes | str) -> list[T]:
        """Newline-delimited JSON (a watch stream's block of events)."""
        return _deep_enough(self._decoder.decode_lines, data)


def encode(value: Any) -> bytes:
    """Encode a Struct (or any JSON-able value) to JSON bytes; as deep as the apiserver
    stores, like the decoder."""
    return _deep_enough(_encoder.encode, value)


_decoders: dict[Any, Decoder[Any]] = {}


def decoder(target: type[T]) -> Decoder[T]:
    """A cached decoder for `target` (building one is costly; using one is not)."""
    cached = _decoders.get(target)
    if cached is None:
        cached = _decoders[target] = Decoder(target)
    return cached


def decode(data: bytes | str, target: type[T]) -> T:
    """Decode JSON bytes into `target`."""
    return decoder(target).decode(data)


def convert(value: Any, target: type[T]) -> T:
    """Convert already-parsed JSON (dicts, lists) into `target`."""
    return msgspec.convert(value, target, dec_hook=_dec_hook)


def to_builtins(value: Any) -> Any:
    """A Struct as plain dicts/lists, with the same field names and omissions as `encode`."""
    return msgspec.to_builtins(value, enc_hook=_enc_hook)
