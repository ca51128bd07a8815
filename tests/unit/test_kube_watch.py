"""Cutting a watch byte stream into events, whatever the chunk boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runs_controller.api.codec import encode
from runs_controller.api.meta import ObjectMeta, Resource
from runs_controller.kube.errors import Gone, ProtocolError, ServerError
from runs_controller.kube.watch import LineSplitter, decode_events, event_error, event_object


class Thing(Resource, kw_only=True, frozen=True):
    data: dict[str, str] | None = None


def line(kind: str, name: str, payload: str = "") -> bytes:
    thing = Thing(metadata=ObjectMeta(name=name), data={"p": payload} if payload else None)
    return encode({"type": kind, "object": thing}) + b"\n"


def split_all(stream: bytes, cuts: list[int], max_line: int = 1 << 30) -> list[bytes]:
    splitter = LineSplitter(max_line)
    blocks = []
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        blocks.append(splitter.feed(stream[start:cut]))
        start = cut
    blocks.append(splitter.flush())
    return [b for block in blocks if block for b in block.split(b"\n")]


STREAM = line("ADDED", "a") + line("MODIFIED", "b", "x" * 300) + line("DELETED", "c")


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_lines_survive_any_chunking(cuts: list[int]) -> None:
    assert split_all(STREAM, cuts) == STREAM.rstrip(b"\n").split(b"\n")


def test_a_multi_megabyte_line_arriving_in_small_chunks() -> None:
    big = line("ADDED", "big", "y" * (8 * 1024 * 1024))
    stream = big + line("DELETED", "after")
    cuts = list(range(0, len(stream), 65536))
    lines = split_all(stream, cuts)
    assert len(lines) == 2
    events = decode_events(b"\n".join(lines))
    assert [event.type for event in events] == ["ADDED", "DELETED"]
    assert (event_object(events[0], Thing).data or {})["p"] == "y" * (8 * 1024 * 1024)


def test_a_line_over_the_limit_is_refused() -> None:
    splitter = LineSplitter(max_line=100)
    assert splitter.feed(b"x" * 60) == b""
    with pytest.raises(ProtocolError, match="exceeds 100 bytes"):
        splitter.feed(b"x" * 60)


def test_a_last_line_without_newline_is_flushed() -> None:
    splitter = LineSplitter()
    assert splitter.feed(line("ADDED", "a") + b'{"type":"DELETED"') == line("ADDED", "a")[:-1]
    assert splitter.feed(b',"object":{}}') == b""
    assert splitter.flush() == b'{"type":"DELETED","object":{}}'
    assert splitter.flush() == b""


def test_events_keep_the_object_raw_until_asked() -> None:
    events = decode_events(STREAM.rstrip(b"\n"))
    assert [event.type for event in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert bytes(events[0].object).startswith(b"{")
    assert [event_object(event, Thing).metadata for event in events] == [
        ObjectMeta(name="a"),
        ObjectMeta(name="b"),
        ObjectMeta(name="c"),
    ]
    assert decode_events(b"\n \n") == []


def test_malformed_lines_raise_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        decode_events(b'{"type":"ADDED","object":{}}\n{"type":')
    with pytest.raises(ProtocolError):
        decode_events(b'{"object":{}}')  # no type


def test_error_events_become_typed_errors() -> None:
    [event] = decode_events(
        b'{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},'
        b'"status":"Failure","message":"too old resource version: 1 (226)",'
        b'"reason":"Expired","code":410}}'
    )
    error = event_error(event, "/apis/x/v1/things")
    assert isinstance(error, Gone)
    assert error.reason == "Expired"
    assert "WATCH /apis/x/v1/things: 410 Expired: too old resource version" in str(error)

    # An ERROR whose object is not a Status is an internal error, as client-go treats it.
    [odd] = decode_events(b'{"type":"ERROR","object":"boom"}')
    assert isinstance(odd_error := event_error(odd), ServerError)
    assert odd_error.code == 500
