"""JSON encoding and decoding of API Structs, straight from and to wire bytes.

Times: `datetime` fields are metav1.Time (RFC 3339, whole seconds, `Z`), which msgspec handles
natively. `MicroTime` (leases, EffectClaim) always prints six fractional digits, as Go's
metav1.MicroTime does, so a decoded value re-encodes byte for byte.
"""

from __future__ import annotations

import datetime
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


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


def encode(value: Any) -> bytes:
    """Encode a Struct (or any JSON-able value) to JSON bytes."""
    return _encoder.encode(value)


_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def decoder(target: type[T]) -> msgspec.json.Decoder[T]:
    """A cached decoder for `target` (building one is costly; using one is not)."""
    cached = _decoders.get(target)
    if cached is None:
        cached = _decoders[target] = msgspec.json.Decoder(target, dec_hook=_dec_hook)
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
