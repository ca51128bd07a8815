"""An event loop that fails the test whose loop closes with a socket still open.

A transport still open when its loop closes is only noticed when the garbage collector finds
it, in whatever test runs then: `ResourceWarning: unclosed transport` (an error under
`filterwarnings = error`) blames an innocent test and comes and goes with GC timing. This loop
checks at `close()`, while the test that opened the socket is still the one tearing down:
it closes what is left (so nothing reaches the collector) and raises, naming each peer.
"""

from __future__ import annotations

import asyncio
from typing import Any


class TransportLeakError(AssertionError):
    """The test (or a fixture) left sockets open when its event loop closed."""


def _describe(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    local = transport.get_extra_info("sockname")
    state = "closing" if transport.is_closing() else "open"
    return f"{type(transport).__name__} {state} local={local} peer={peer}"


def open_socket_transports(loop: asyncio.AbstractEventLoop) -> list[asyncio.BaseTransport]:
    """The socket transports of a selector loop whose sockets are still open.

    The selector loop registers every socket transport by fd (a TLS connection through the
    socket transport under it); the registry is private, so a loop or Python without it
    yields nothing rather than failing every test.
    """
    registry: Any = getattr(loop, "_transports", None)
    if registry is None:
        return []
    return [
        transport
        for transport in list(registry.values())
        if getattr(transport, "_sock", None) is not None
    ]


class LeakCheckingEventLoop(asyncio.SelectorEventLoop):
    """`asyncio.SelectorEventLoop` whose `close()` raises `TransportLeakError` for open sockets."""

    def close(self) -> None:
        leaked = [] if self.is_running() or self.is_closed() else open_socket_transports(self)
        described = [_describe(transport) for transport in leaked]
        for transport in leaked:
            if isinstance(transport, asyncio.Transport):
                transport.abort()
        if leaked:
            # abort() releases the socket in a callback: run it, so the collector finds
            # nothing to warn about in a later test.
            self.run_until_complete(asyncio.sleep(0))
        super().close()
        if leaked:
            listing = "; ".join(described)
            raise TransportLeakError(
                f"{len(leaked)} socket(s) still open when the test's event loop closed "
                f"(close the client, response or stream that opened them): {listing}"
            )
