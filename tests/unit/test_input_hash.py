"""StoryTrigger input hash: every golden vector, Go JSON edge cases and encoder properties."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runs_controller.engine.hashing import (
    JSONValue,
    canonical_json,
    decode_go_json,
    trigger_input_hash,
)

VECTORS_FILE = Path(__file__).parent.parent / "fixtures" / "conformance" / "inputhash.jsonl"
VECTORS: list[dict[str, Any]] = [
    json.loads(line) for line in VECTORS_FILE.read_text(encoding="utf-8").splitlines() if line
]
EMPTY_OBJECT_HASH = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def _raw(vector: dict[str, Any]) -> bytes | None:
    """The exact input bytes; the RawExtension(nil) variant passes no bytes at all."""
    if vector["fn"].endswith("FromRawExtension"):
        return None
    return base64.b64decode(vector["args"]["raw_b64"])


def _canonical_of(raw: bytes | None) -> bytes:
    value = decode_go_json(raw) if raw else None
    return canonical_json({} if value is None else value)


PARAMS = [
    pytest.param(vector, id=f"{index}-{vector['kind']}") for index, vector in enumerate(VECTORS)
]


def test_the_vector_file_is_complete() -> None:
    assert len(VECTORS) == 169
    assert sum(vector["error"] is not None for vector in VECTORS) > 20
    assert all(
        vector["fn"].startswith("runsidentity.ComputeTriggerInputHash") for vector in VECTORS
    )


@pytest.mark.parametrize("vector", PARAMS)
def test_hash_vector(vector: dict[str, Any]) -> None:
    raw = _raw(vector)
    if vector["error"] is not None:
        with pytest.raises(ValueError) as caught:
            trigger_input_hash(raw)
        assert str(caught.value) == vector["error"]
        return
    assert trigger_input_hash(raw) == vector["result"]
    extra = vector.get("extra") or {}
    canonical = _canonical_of(raw)
    if "canonical" in extra:
        assert canonical.decode("utf-8") == extra["canonical"]
    else:
        assert len(canonical) == extra["canonical_len"]


@pytest.mark.parametrize(
    ("inputs", "canonical", "digest"),
    [
        ("{}", "{}", EMPTY_OBJECT_HASH),
        (
            '{"event":{"type":"sample"}}',
            '{"event":{"type":"sample"}}',
            "e7ebf010d6194f00078bc62d4c515d460fcff36aeb19366722d546f213262ace",
        ),
        (
            '{"b":1,"a":[3.0,2.5,1e21,1e-7,"<&>"]}',
            '{"a":[3,2.5,1e+21,1e-7,"\\u003c\\u0026\\u003e"],"b":1}',
            "87e19e201397fdaab99d3e9bf498330680a5e397613b50e75da4f1be291d14c4",
        ),
    ],
)
def test_spec_table(inputs: str, canonical: str, digest: str) -> None:
    assert canonical_json(decode_go_json(inputs.encode())) == canonical.encode()
    assert trigger_input_hash(inputs.encode()) == digest


@pytest.mark.parametrize("raw", [None, b"", b"null", b" null\n"])
def test_absent_inputs_hash_as_an_empty_object(raw: bytes | None) -> None:
    assert trigger_input_hash(raw) == EMPTY_OBJECT_HASH


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.000001, "0.000001"),
        (9.99e-7, "9.99e-7"),
        (1e-10, "1e-10"),
        (-2.5e-7, "-2.5e-7"),
        (5e-324, "5e-324"),
        (999999999999999900000.0, "999999999999999900000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (-0.0, "-0"),
        (0.1, "0.1"),
        (123456789.125, "123456789.125"),
        (3, "3"),
        (2**53 + 1, "9007199254740992"),
        (10**30, "1e+30"),
        (True, "true"),
        (None, "null"),
    ],
)
def test_scalar_formatting(value: object, text: str) -> None:
    assert canonical_json(value) == text.encode()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("\x00\x1f\x7f", '"\\u0000\\u001f\x7f"'),
        ('\b\f\n\r\t"\\/', '"\\b\\f\\n\\r\\t\\"\\\\/"'),
        ("\u2028\u2029\u2027", '"\\u2028\\u2029\u2027"'),
        ("<a href='x'>&amp;</a>", "\"\\u003ca href='x'\\u003e\\u0026amp;\\u003c/a\\u003e\""),
        # A lone surrogate (as Python's json module produces) is what Go decodes as U+FFFD.
        ("a\ud800b", '"a\ufffdb"'),
        (
            {"b": [], "a": {}, "\U0001f600": (1, 2), "\uffff": 0},
            '{"a":{},"b":[],"\uffff":0,"\U0001f600":[1,2]}',
        ),
    ],
)
def test_string_and_container_encoding(value: object, text: str) -> None:
    assert canonical_json(value) == text.encode("utf-8")


def test_encoding_errors() -> None:
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="cycle"):
        canonical_json(cyclic)
    with pytest.raises(ValueError, match=r"^json: unsupported value: NaN$"):
        canonical_json([math.nan])
    with pytest.raises(ValueError, match=r"^json: unsupported value: -Inf$"):
        canonical_json({"x": -math.inf})
    with pytest.raises(ValueError, match="cannot unmarshal number 1000"):
        canonical_json(10**400)
    with pytest.raises(TypeError):
        canonical_json({1: "x"})
    with pytest.raises(TypeError):
        canonical_json(b"bytes")


def test_shared_values_are_not_cycles() -> None:
    shared = [1]
    assert canonical_json({"a": shared, "b": [shared, shared]}) == b'{"a":[1],"b":[[1],[1]]}'


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # Every number is range-checked only after the whole document is known to parse.
        (b"[1e400, x]", "invalid character 'x' looking for beginning of value"),
        (b"[1e400, -1e500]", "json: cannot unmarshal number 1e400 into Go value of type float64"),
        (b'"\\u12', "invalid character ' ' in \\u hexadecimal character escape"),
        (b'"\\', "invalid character ' ' in string escape code"),
        (b"tru", "invalid character ' ' in literal true (expecting 'e')"),
        (b"-", "invalid character ' ' in numeric literal"),
        (b"[1 2]", "invalid character '2' after array element"),
        (b"\x80", "invalid character '\\u0080' looking for beginning of value"),
        (b"\xa0", "invalid character '\\u00a0' looking for beginning of value"),
        (b"\\", "invalid character '\\\\' looking for beginning of value"),
        (b"\x07", "invalid character '\\a' looking for beginning of value"),
        (b"[" * 10001, "invalid character '[' exceeded max depth"),
        (b'{"a":' * 10000 + b"{", "invalid character '{' exceeded max depth"),
    ],
)
def test_decode_errors(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        decode_go_json(raw)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'"\\ud83d\\ude00"', "\U0001f600"),
        (b'"\\ude00\\ud83d"', "\ufffd\ufffd"),
        (b'"\\ud83d\\u0041"', "\ufffdA"),
        (b'"\\ud83d\\n"', "\ufffd\n"),
        (b'"\xe2\x80A"', "\ufffd\ufffdA"),
        (b'"\xc0\x80"', "\ufffd\ufffd"),
        (b'"\xef\xbf\xbd"', "\ufffd"),
        (b'{"a":1,"a":[2]}', {"a": [2.0]}),
        (b"-1e-400", -0.0),
        (b" 12345678901234567890 ", 12345678901234567890.0),
    ],
)
def test_decode_values(raw: bytes, value: JSONValue) -> None:
    decoded = decode_go_json(raw)
    assert decoded == value
    assert repr(decoded) == repr(value)  # tells -0.0 from 0.0 and 1.0 from 1


def test_the_deepest_accepted_nesting_decodes_and_encodes() -> None:
    """10000 open containers are fine in Go; Python recursion would fail long before."""
    decoded = decode_go_json(b"[" * 10000 + b"]" * 10000)
    depth = 0
    while isinstance(decoded, list) and decoded:
        decoded = decoded[0]
        depth += 1
    assert (depth, decoded) == (9999, [])
    raw = b'{"a":' * 9999 + b"[]" + b"}" * 9999
    assert canonical_json(decode_go_json(raw)) == raw


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(JSON_VALUES)
def test_canonical_json_is_json_for_an_equal_value(value: Any) -> None:
    canonical = canonical_json(value)
    assert json.loads(canonical, parse_int=float) == _as_float64(value)
    assert canonical_json(decode_go_json(canonical)) == canonical


@given(JSON_VALUES, st.booleans())
def test_hash_ignores_layout(value: Any, ascii_only: bool) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only, indent=1).encode()
    expected = canonical_json({} if value is None else value)
    assert trigger_input_hash(raw) == hashlib.sha256(expected).hexdigest()


def _as_float64(value: Any) -> Any:
    """What Go's decoder would hold for `value`: every number a float64."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [_as_float64(item) for item in value]
    return {key: _as_float64(item) for key, item in value.items()}
