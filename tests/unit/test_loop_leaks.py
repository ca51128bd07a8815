"""The leak-checking event loop: a socket left open fails the test that opened it."""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings

import pytest

from runs_controller.testing.loop_leaks import LeakCheckingEventLoop, TransportLeakError


async def _connect(listener: socket.socket, *, close: bool) -> asyncio.StreamWriter:
    """A connection to a listener that never accepts (the kernel completes the handshake)."""
    _, writer = await asyncio.open_connection(*listener.getsockname())
    if close:
        writer.close()
        await writer.wait_closed()
    return writer


def test_a_socket_left_open_fails_at_close_and_reaches_no_collector() -> None:
    loop = LeakCheckingEventLoop()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        writer = loop.run_until_complete(_connect(listener, close=False))
        port = listener.getsockname()[1]
        with pytest.raises(
            TransportLeakError, match=rf"1 socket.* open local=.* peer=\('127.0.0.1', {port}\)"
        ):
            loop.close()
    assert loop.is_closed()
    assert writer.transport.is_closing()
    del writer
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_a_loop_whose_sockets_are_closed_closes_quietly() -> None:
    loop = LeakCheckingEventLoop()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        loop.run_until_complete(_connect(listener, close=True))
    loop.close()
    assert loop.is_closed()


def test_async_tests_run_on_the_leak_checking_loop() -> None:
    async def running() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    loop = LeakCheckingEventLoop()
    try:
        assert isinstance(loop.run_until_complete(running()), LeakCheckingEventLoop)
    finally:
        loop.close()


async def test_this_test_itself_runs_on_the_leak_checking_loop() -> None:
    assert isinstance(asyncio.get_running_loop(), LeakCheckingEventLoop)
