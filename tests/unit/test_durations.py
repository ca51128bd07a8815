"""Go duration parsing and printing: every golden vector, extra edge cases, a round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runs_controller.engine.durations import (
    INT64_MAX,
    INT64_MIN,
    format_go_duration,
    parse_go_duration,
)

VECTORS_FILE = Path(__file__).parent.parent / "fixtures" / "conformance" / "durations.jsonl"
VECTORS: list[dict[str, Any]] = [
    json.loads(line) for line in VECTORS_FILE.read_text(encoding="utf-8").splitlines() if line
]
PARSE = "time.ParseDuration"
FROM_SECONDS = "time.Duration(n*time.Second).String"
FROM_NANOSECONDS = "time.Duration(ns).String"


def _by_fn(fn: str) -> list[Any]:
    return [
        pytest.param(vector, id=f"{index}-{json.dumps(vector['args'], ensure_ascii=False)}")
        for index, vector in enumerate(VECTORS)
        if vector["fn"] == fn
    ]


def _wrap_int64(value: int) -> int:
    """Two's-complement wrap, as Go's `n * time.Second` does on overflow."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value > INT64_MAX else value


def test_the_vector_file_is_complete() -> None:
    counts = {fn: sum(vector["fn"] == fn for vector in VECTORS) for fn in (PARSE, FROM_SECONDS)}
    assert len(VECTORS) == 352
    assert counts[PARSE] > 100
    assert counts[FROM_SECONDS] > 100
    assert {vector["fn"] for vector in VECTORS} == {PARSE, FROM_SECONDS, FROM_NANOSECONDS}


@pytest.mark.parametrize("vector", _by_fn(PARSE))
def test_parse_vector(vector: dict[str, Any]) -> None:
    (text,) = vector["args"]
    if vector["error"] is not None:
        with pytest.raises(ValueError) as caught:
            parse_go_duration(text)
        assert str(caught.value) == vector["error"]
        return
    nanoseconds = parse_go_duration(text)
    assert {"ns": nanoseconds, "string": format_go_duration(nanoseconds)} == vector["result"]


@pytest.mark.parametrize("vector", _by_fn(FROM_SECONDS))
def test_seconds_string_vector(vector: dict[str, Any]) -> None:
    (seconds,) = vector["args"]
    assert vector["error"] is None
    assert format_go_duration(_wrap_int64(seconds * 1_000_000_000)) == vector["result"]


@pytest.mark.parametrize("vector", _by_fn(FROM_NANOSECONDS))
def test_nanoseconds_string_vector(vector: dict[str, Any]) -> None:
    (nanoseconds,) = vector["args"]
    assert vector["error"] is None
    assert format_go_duration(nanoseconds) == vector["result"]


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        (INT64_MIN, "-2562047h47m16.854775808s"),
        (-1, "-1ns"),
        (1_000, "1\u00b5s"),
        (1_500, "1.5\u00b5s"),
        (60_000_000_000, "1m0s"),
        (59_999_999_999, "59.999999999s"),
        (3_600_000_000_000 - 1, "59m59.999999999s"),
    ],
)
def test_format_edges(nanoseconds: int, text: str) -> None:
    assert format_go_duration(nanoseconds) == text


@pytest.mark.parametrize("nanoseconds", [INT64_MAX + 1, INT64_MIN - 1])
def test_format_rejects_values_outside_int64(nanoseconds: int) -> None:
    with pytest.raises(ValueError, match="int64"):
        format_go_duration(nanoseconds)


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("-0", 0),
        ("1us", 1_000),
        ("1\u00b5s", 1_000),  # micro sign
        ("1\u03bcs", 1_000),  # Greek mu
        ("9223372036854775807ns", INT64_MAX),
        ("2562047h47m16.854775807s", INT64_MAX),
        # Fraction digits past 2^63 are dropped, and float64 scaling rounds up to 1s (Go: 1s).
        ("0.99999999999999999999999999s", 1_000_000_000),
        ("1.1234567890123456789h", 4_044_444_440_444),
        # Go's uint64 sum wraps from 2^63 + 2^63 to 0 and is then accepted.
        ("9223372036854775808ns9223372036854775808ns", 0),
    ],
)
def test_parse_edges(text: str, nanoseconds: int) -> None:
    assert parse_go_duration(text) == nanoseconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("00", 'time: missing unit in duration "00"'),
        ("-", 'time: invalid duration "-"'),
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ("9223372036854775807ns1ns", 'time: invalid duration "9223372036854775807ns1ns"'),
        ('1"\\', 'time: unknown unit "\\"\\\\" in duration "1\\"\\\\"'),
        ("1\x00", 'time: unknown unit "\\x00" in duration "1\\x00"'),
        ("1\x7f", 'time: unknown unit "\x7f" in duration "1\x7f"'),
        ("1\ud800", 'time: unknown unit "\\xed\\xa0\\x80" in duration "1\\xed\\xa0\\x80"'),
        ("1" + "0" * 5000 + "s", f'time: invalid duration "1{"0" * 5000}s"'),
    ],
)
def test_parse_error_edges(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_go_duration(text)
    assert str(caught.value) == message


@given(st.integers(min_value=INT64_MIN, max_value=INT64_MAX))
def test_format_then_parse_round_trips(nanoseconds: int) -> None:
    assert parse_go_duration(format_go_duration(nanoseconds)) == nanoseconds
