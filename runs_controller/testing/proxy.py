"""A loopback TCP proxy whose connections a test can cut, block or stall.

Put it between a client and kube-apiserver (TLS passes through untouched; the serving cert is
valid for 127.0.0.1 on any port) to simulate what networks do to controllers: a dropped
connection (`cut`), an apiserver that cannot be reached (`block`), or a half-open connection
that stays up but carries nothing (`stall`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
from anyio.abc import SocketAttribute, SocketStream, TaskGroup

from runs_controller.testing.controlplane import LOOPBACK

if TYPE_CHECKING:
    from types import TracebackType


class TcpProxy:
    """`async with TcpProxy(target_port) as proxy:` then connect to `proxy.port`."""

    def __init__(self, target_port: int, target_host: str = LOOPBACK) -> None:
        self._target = (target_host, target_port)
        self.port = 0
        self.connections_accepted = 0
        self._blocked = False
        self._stalled = False
        self._resumed = anyio.Event()
        self._scopes: set[anyio.CancelScope] = set()
        # Every stream the proxy opened, until it is closed: a stream whose task was cancelled
        # before it could close it is closed at exit, never left to the garbage collector.
        self._streams: set[SocketStream] = set()
        self._group: TaskGroup | None = None

    async def __aenter__(self) -> TcpProxy:
        listeners = await anyio.create_tcp_listener(local_host=LOOPBACK, local_port=0)
        (listener,) = listeners.listeners  # one address: a listener with accept()
        assert isinstance(listener, anyio.abc.SocketListener)  # noqa: S101 - anyio's contract
        self.port = listener.extra(SocketAttribute.local_port)  # noqa: S610 - not Django
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._serve, listener)
        return self

    async def _serve(self, listener: anyio.abc.SocketListener) -> None:
        async with listener, anyio.create_task_group() as handlers:
            while True:
                client = await listener.accept()
                self._streams.add(client)
                handlers.start_soon(self._handle, client)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group, self._group = self._group, None
        if group is not None:
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)
        for stream in list(self._streams):
            await stream.aclose()
        self._streams.clear()
        # Closed transports release their sockets in a callback on the next loop iteration:
        # give it one, so a test that ends right after the proxy leaves no socket behind.
        await anyio.lowlevel.checkpoint()

    @property
    def open_connections(self) -> int:
        return len(self._scopes)

    def cut(self) -> None:
        """Drop every open connection now (new ones are still accepted)."""
        for scope in list(self._scopes):
            scope.cancel()

    def block(self) -> None:
        """Drop every open connection and refuse new ones until `unblock`."""
        self._blocked = True
        self.cut()

    def unblock(self) -> None:
        self._blocked = False

    def stall(self) -> None:
        """Keep connections open but forward nothing (a half-open TCP connection)."""
        self._stalled = True
        self._resumed = anyio.Event()

    def unstall(self) -> None:
        self._stalled = False
        self._resumed.set()

    async def _handle(self, client: SocketStream) -> None:
        try:
            await self._forward(client)
        finally:
            self._streams.discard(client)

    async def _forward(self, client: SocketStream) -> None:
        async with client:
            if self._blocked:
                return
            self.connections_accepted += 1
            with anyio.CancelScope() as scope:
                self._scopes.add(scope)
                try:
                    # Shielded: a `cut()` that lands while anyio's connect_tcp is finishing
                    # would lose the new socket (it is never returned, never closed). The
                    # connection is to loopback; the next checkpoint honours the cut.
                    with anyio.CancelScope(shield=True), anyio.fail_after(10):
                        upstream = await anyio.connect_tcp(*self._target)
                        self._streams.add(upstream)
                    try:
                        async with upstream, anyio.create_task_group() as pumps:
                            pumps.start_soon(self._pump, client, upstream, pumps.cancel_scope)
                            pumps.start_soon(self._pump, upstream, client, pumps.cancel_scope)
                    finally:
                        self._streams.discard(upstream)
                finally:
                    self._scopes.discard(scope)

    async def _pump(
        self, source: SocketStream, sink: SocketStream, scope: anyio.CancelScope
    ) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            async for chunk in source:
                while self._stalled:
                    await self._resumed.wait()
                await sink.send(chunk)
        scope.cancel()
