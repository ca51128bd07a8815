"""A watch stream: newline-delimited JSON events decoded as they arrive, never buffered whole.

Lines are cut from the raw byte chunks ourselves (aiohttp's readline caps a line at twice its
read buffer; a watch event can be several MiB) and each batch of complete lines is decoded in
one `decode_lines` call into `WatchEvent`s whose `object` stays raw. The consumer decodes it
into its own type (or into a Status for ERROR events), so a BOOKMARK costs nothing to skip.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import msgspec

from runs_controller.api.codec import decode, decoder
from runs_controller.api.meta import Status, WatchEvent
from runs_controller.kube.errors import (
    ApiError,
    ProtocolError,
    TransportError,
    TransportTimeout,
    error_for,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

T = TypeVar("T")

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
BOOKMARK = "BOOKMARK"
ERROR = "ERROR"
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
"""Annotation on the BOOKMARK that closes the initial events of a sendInitialEvents watch."""

DEFAULT_MAX_LINE = 64 * 1024 * 1024

_events = decoder(WatchEvent[Any])


class LineSplitter:
    """Cuts a byte stream into blocks of complete lines; keeps the unfinished tail."""

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._tail = bytearray()
        self._max_line = max_line

    def feed(self, chunk: bytes) -> bytes:
        """The complete lines now available (newline-separated, last newline cut), or b""."""
        if not self._tail:
            end = chunk.rfind(b"\n")
            if end == -1:
                self._append(chunk)
                return b""
            if end + 1 < len(chunk):
                self._append(chunk[end + 1 :])
            return chunk[:end]
        self._append(chunk)
        end = self._tail.rfind(b"\n")
        if end == -1:
            return b""
        with memoryview(self._tail) as view:
            block = bytes(view[:end])
        del self._tail[: end + 1]
        return block

    def flush(self) -> bytes:
        """What is left at end of stream (a last line without a newline)."""
        block = bytes(self._tail)
        self._tail.clear()
        return block

    def _append(self, data: bytes) -> None:
        self._tail += data
        if len(self._tail) > self._max_line:
            size = len(self._tail)
            self._tail.clear()
            raise ProtocolError(f"watch event line exceeds {self._max_line} bytes ({size} read)")


def decode_events(block: bytes) -> list[WatchEvent[Any]]:
    """Every event in a block of newline-delimited JSON lines."""
    if not block.strip():
        return []
    try:
        return _events.decode_lines(block)
    except msgspec.DecodeError as error:
        raise ProtocolError(f"malformed watch event: {error}") from error


def event_object(event: WatchEvent[Any], target: type[T]) -> T:
    """The event's object decoded as `target`."""
    return decode(event.object, target)


def event_error(event: WatchEvent[Any], path: str = "") -> ApiError:
    """The typed error carried by an ERROR event (410 Gone means: relist)."""
    try:
        status = decode(event.object, Status)
    except msgspec.DecodeError:
        status = Status(message=bytes(event.object).decode("utf-8", errors="replace"))
    return error_for(status.code or 500, status, "WATCH", path)


class WatchStream:
    """`async with client.watch(...) as stream: async for event in stream: ...`.

    Iteration ends when the server closes the stream (its timeoutSeconds, or apiserver
    shutdown); the caller then re-watches from the last resourceVersion it saw. ERROR events
    are yielded, not raised: use `event_error(event)` to get the typed error.
    """

    def __init__(
        self,
        opener: Callable[[], Awaitable[aiohttp.ClientResponse]],
        path: str,
        max_line: int = DEFAULT_MAX_LINE,
        on_abandon: Callable[[aiohttp.ClientResponse], None] | None = None,
    ) -> None:
        """`on_abandon(response)` is told of a stream closed before its end (its connection
        cannot go back to the pool and closes in the background)."""
        self._opener = opener
        self._on_abandon = on_abandon
        self.path = path
        self._splitter = LineSplitter(max_line)
        self._pending: deque[WatchEvent[Any]] = deque()
        self._response: aiohttp.ClientResponse | None = None
        self._eof = False

    async def __aenter__(self) -> WatchStream:
        self._response = await self._opener()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Drop the connection (a half-read stream cannot go back to the pool)."""
        response, self._response = self._response, None
        if response is not None:
            if self._eof:
                response.release()
            else:
                if self._on_abandon is not None:
                    self._on_abandon(response)
                response.close()

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> WatchEvent[Any]:
        while not self._pending:
            if self._eof:
                raise StopAsyncIteration
            await self._fill()
        return self._pending.popleft()

    async def _fill(self) -> None:
        response = self._response
        if response is None:
            raise RuntimeError("use `async with` around a watch before iterating it")
        try:
            chunk = await response.content.readany()
        except TimeoutError as error:
            raise TransportTimeout(f"watch {self.path}: no data within the idle timeout") from error
        except (aiohttp.ClientError, OSError) as error:
            raise TransportError(f"watch {self.path}: {error!r}") from error
        if chunk:
            block = self._splitter.feed(chunk)
        else:
            self._eof = True
            block = self._splitter.flush()
        if block:
            self._pending.extend(decode_events(block))


__all__ = [
    "ADDED",
    "BOOKMARK",
    "DELETED",
    "ERROR",
    "INITIAL_EVENTS_END",
    "MODIFIED",
    "LineSplitter",
    "WatchStream",
    "decode_events",
    "event_error",
    "event_object",
]
