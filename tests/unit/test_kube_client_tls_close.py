"""A TLS connection dropped mid-response leaves no socket behind once the client is closed.

The peer here answers a request's headers and then goes silent: it never reads again, so the
close_notify our side sends when it drops the connection is never answered. On Pythons before
3.12.8 the socket under such a connection stayed open until a 30 s TLS shutdown timeout, past the
client's close (and past a test's event loop, where the garbage collector later warned about it
in some other test).
"""

from __future__ import annotations

import asyncio
import ssl
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import ClusterConfig
from runs_controller.kube.resources import CONFIG_MAPS
from runs_controller.testing.certs import CertificateAuthority
from runs_controller.testing.controlplane import LOOPBACK
from runs_controller.testing.loop_leaks import open_socket_transports

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

WATCH_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
)


class SilentPeer:
    """A TLS server that answers the headers of each request (a watch's first event, or
    nothing at all) and then neither reads nor writes until the test ends."""

    def __init__(self, directory: Path, *, answer_watch: bool) -> None:
        self.answer_watch = answer_watch
        self.port = 0
        self.answered = asyncio.Event()
        self._done = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []
        ca = CertificateAuthority()
        pair = ca.issue_server("silent-peer", [LOOPBACK])
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_context.load_cert_chain(*pair.write(directory, "tls"))
        self.client_context = ssl.create_default_context(cadata=ca.cert_pem.decode())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # from now on a close_notify is never read, or answered
        if self.answer_watch:
            event = b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"1"}}}\n'
            writer.write(WATCH_HEAD + f"{len(event):x}\r\n".encode() + event + b"\r\n")
            await writer.drain()
        self.answered.set()
        await self._done.wait()

    async def __aenter__(self) -> SilentPeer:
        self._server = await asyncio.start_server(
            self._handle, LOOPBACK, 0, ssl=self.server_context
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._done.set()
        for writer in self._writers:
            writer.transport.abort()
        self._server.close()
        await self._server.wait_closed()
        await asyncio.sleep(0)  # the aborted sockets close in a callback


def _client_sockets_to(port: int) -> list[asyncio.BaseTransport]:
    """The loop's open socket transports whose peer is `port` (the client's side)."""
    return [
        transport
        for transport in open_socket_transports(asyncio.get_running_loop())
        if (transport.get_extra_info("peername") or (None, None))[1] == port
    ]


@asynccontextmanager
async def _silent_peer_and_client(
    directory: Path, *, answer_watch: bool
) -> AsyncIterator[tuple[SilentPeer, KubeClient]]:
    async with SilentPeer(directory, answer_watch=answer_watch) as peer:
        config = ClusterConfig(
            host=f"https://{LOOPBACK}:{peer.port}", ssl_context=peer.client_context
        )
        yield peer, KubeClient(config)


async def test_an_abandoned_watch_leaves_no_socket_after_close(tmp_path: Path) -> None:
    async with _silent_peer_and_client(tmp_path, answer_watch=True) as (peer, client):
        async with client.watch(CONFIG_MAPS, "default") as stream:
            event = await anext(aiter(stream))
            assert event.type == "BOOKMARK"
            assert len(_client_sockets_to(peer.port)) == 1
        # Left before its end: the connection cannot go back to the pool and closes in the
        # background, waiting for the silent peer's close_notify.
        await client.aclose()
        await asyncio.sleep(0)  # one loop turn: an aborted socket closes in a call_soon callback
        assert _client_sockets_to(peer.port) == []


async def test_a_cancelled_request_leaves_no_socket_after_close(tmp_path: Path) -> None:
    async with _silent_peer_and_client(tmp_path, answer_watch=False) as (peer, client):
        async with anyio.create_task_group() as group:

            async def get() -> None:
                await client.server_version()

            group.start_soon(get)
            await peer.answered.wait()
            assert len(_client_sockets_to(peer.port)) == 1
            group.cancel_scope.cancel()
        await client.aclose()
        await asyncio.sleep(0)  # one loop turn: an aborted socket closes in a call_soon callback
        assert _client_sockets_to(peer.port) == []
