"""Deterministic names: every golden vector byte for byte, Go rune semantics, invariants."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runs_controller.engine.keys import LABEL_STORYRUN
from runs_controller.engine.naming import (
    compose_name,
    compose_name_with_suffix,
    derive_effectclaim_name,
    derive_storyrun_name,
    derive_storytrigger_name,
    engram_runner_name,
    hash_parts,
    safe_label_value,
    sanitize_dns1123_segment,
    sanitize_label_value,
    sanitize_token_segment,
    short_token_hash,
    steprun_idempotency_key,
    story_trigger_identity,
    storyrun_selector_labels,
)

VECTORS_DIR = Path(__file__).parent.parent / "fixtures" / "conformance"
NAMING_FILE = VECTORS_DIR / "naming.jsonl"
IDENTITY_FILE = VECTORS_DIR / "identity.jsonl"


def _load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


VECTORS = [*_load(NAMING_FILE), *_load(IDENTITY_FILE)]

# Reference function -> ours. Every fn of the two files must be here.
FUNCTIONS: dict[str, Callable[..., object]] = {
    "naming.ComposeDNS1123": compose_name,
    "naming.ComposeDNS1123WithSuffix": compose_name_with_suffix,
    "naming.sanitizeDNS1123Segment": sanitize_dns1123_segment,
    "naming.hashParts": hash_parts,
    "coreidentity.StoryRunEngramRunnerServiceAccount": engram_runner_name,
    "coreidentity.SafeLabelValue": safe_label_value,
    "coreidentity.StoryRunSelectorLabels": storyrun_selector_labels,
    "coreidentity.sanitizeLabelValue": sanitize_label_value,
    "runsidentity.DeriveStoryRunName": derive_storyrun_name,
    "runsidentity.DeriveStoryTriggerName": derive_storytrigger_name,
    "runsidentity.StoryTriggerIdentity": story_trigger_identity,
    "runsidentity.DeriveEffectClaimName": derive_effectclaim_name,
    "runsidentity.StepRunIdempotencyKey": steprun_idempotency_key,
    "runsidentity.ServiceAccountName": engram_runner_name,
    "runsidentity.sanitizeTokenSegment": sanitize_token_segment,
    "runsidentity.shortTokenHash": short_token_hash,
}

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def _go_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def test_the_vector_files_are_complete() -> None:
    assert len(_load(NAMING_FILE)) == 964
    assert len(_load(IDENTITY_FILE)) == 732
    assert {vector["fn"] for vector in VECTORS} == set(FUNCTIONS)
    assert all(vector["error"] is None for vector in VECTORS)
    assert (
        sum("result_b64" in vector for vector in VECTORS) == 12
    )  # README counts 20 in the unpublished full set


@pytest.mark.parametrize(
    "vector",
    [pytest.param(vector, id=f"{index}-{vector['fn']}") for index, vector in enumerate(VECTORS)],
)
def test_vector(vector: dict[str, Any]) -> None:
    result = FUNCTIONS[vector["fn"]](*vector["args"])
    if "result_b64" in vector:
        assert isinstance(result, str)
        assert _go_bytes(result) == base64.b64decode(vector["result_b64"])
    else:
        assert result == vector["result"]


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (compose_name("my-run", "fetch"), "my-run-fetch"),
        (compose_name("My_Run", "Step.One"), "my-run-step-one"),
        (
            compose_name("a" * 40, "step-" + "a" * 40),
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-step-aaaa-83ac4a4c67f7",
        ),
        (engram_runner_name("my-run"), "my-run-engram-runner"),
        (
            derive_storyrun_name("default", "my-story", "order-123"),
            "my-story-order-123-3bf164a59e9be8c0",
        ),
        (
            derive_storyrun_name("default", "my-story", "Order 123!"),
            "my-story-order-123-b2214cc3c14a4a61",
        ),
        (derive_storyrun_name("default", "my-story", "!!!"), "my-story-e4a47aba5f3ad599"),
        (
            derive_storytrigger_name("default", "my-story", "customer-1", ""),
            "my-story-trigger-ecb1df95676a7daa",
        ),
        (
            derive_effectclaim_name("default", "srun-step", "charge"),
            "srun-step-effect-a6cdf0386a637aa7",
        ),
    ],
)
def test_spec_table(result: str, expected: str) -> None:
    """The examples of controller-behaviour.md 1.5."""
    assert result == expected


@pytest.mark.parametrize(
    ("value", "dns_segment", "label"),
    [
        ("café", "café", "caf"),  # Ll outside ASCII survives only the DNS sanitizer
        ("東京", "", ""),  # Lo is not lowercase
        ("\uff13\uff12\uff11", "\uff13\uff12\uff11", ""),  # fullwidth digits are Nd
        ("x²", "x", "x"),  # superscripts are No, not Nd
        ("ªº", "", ""),  # Lo, although Python's islower() says True
        ("İ", "i", "i"),  # simple case mapping: one rune, not i + combining dot
        ("\u0391\u03a3", "\u03b1\u03c3", ""),  # per-rune lowering: no final sigma
        ("\u212a", "k", "k"),  # KELVIN SIGN lowers to ASCII k
        ("ǅ", "ǆ", ""),  # titlecase lowers to Ll
        ("a\u0301", "a", "a"),  # combining marks are Mn
        ("\U0001df25", "\U0001df25", ""),  # Unicode 15 Ll (Latin Extended-G)
        ("\U00011f50\U0001e4f9", "\U00011f50\U0001e4f9", ""),  # Unicode 15 Nd (Kawi, Nag Mundari)
        ("a\udcffb", "a-b", "a-b"),  # an invalid byte is a rejected rune
    ],
)
def test_go_rune_semantics(value: str, dns_segment: str, label: str) -> None:
    assert sanitize_dns1123_segment(value) == dns_segment
    assert sanitize_label_value(value) == label
    assert sanitize_token_segment(value) == label


def test_go_space_set_for_idempotency_keys() -> None:
    # Go trims U+0085 and U+3000 but, unlike Python's str.strip(), not U+001C..U+001F.
    assert steprun_idempotency_key("\x85ns\u3000", "r", "s") == "ns/ns/storyrun/r/step/s"
    assert steprun_idempotency_key("", "\x1cr", "s\x1f") == "storyrun/\x1cr/step/s\x1f"


def test_idempotency_key_counts_bytes() -> None:
    fits = steprun_idempotency_key("", "é" * 119, "s")  # 9 + 238 + 6 = 253 bytes
    assert fits == "storyrun/" + "é" * 119 + "/step/s"
    hashed = steprun_idempotency_key("", "é" * 121, "s")  # 257 bytes, 136 characters
    assert re.fullmatch("sha256:[0-9a-f]{64}", hashed)


def test_cut_characters_round_trip_through_surrogateescape() -> None:
    name = compose_name("a" + "é" * 40)  # 81 bytes: cut at byte 50, inside an é
    raw = _go_bytes(name)
    assert raw[49:50] == b"\xc3"
    assert len(raw) == 63
    assert raw.decode("utf-8", "replace").count("\ufffd") == 1


def test_long_names_hash_the_original_parts() -> None:
    long_a = compose_name("X" * 70)
    long_b = compose_name("x" * 70)
    assert long_a != long_b  # both sanitize to x*70, but the hash covers the raw parts
    assert long_a[:50] == long_b[:50] == "x" * 50


def test_selector_labels_are_a_fresh_dict() -> None:
    first = storyrun_selector_labels("My Run")
    first["extra"] = "x"
    assert storyrun_selector_labels("My Run") == {LABEL_STORYRUN: "my-run"}


def test_lone_surrogates_do_not_raise() -> None:
    # Not valid in a Go string; treated like U+FFFD, which Go substitutes for them.
    assert compose_name("a\ud800b") == "a-b"
    assert short_token_hash("\ud800") == short_token_hash("\ufffd")


# Property tests. Text includes surrogates: invalid bytes must be handled like in Go.
any_text = st.text(st.characters(exclude_categories=()), max_size=120)
ascii_text = st.text(st.characters(max_codepoint=127), max_size=120)
name_parts = st.lists(any_text, max_size=5)


def _shape_ok(name: str) -> bool:
    """<= 63 bytes, no leading, trailing or doubled dash."""
    raw = _go_bytes(name)
    return (
        0 < len(raw) <= 63
        and not raw.startswith(b"-")
        and not raw.endswith(b"-")
        and b"--" not in raw
    )


@given(st.lists(ascii_text, max_size=5))
def test_compose_name_of_ascii_is_a_dns1123_label(parts: list[str]) -> None:
    name = compose_name(*parts)
    assert len(name) <= 63
    assert DNS1123_LABEL.fullmatch(name)
    assert compose_name(name) == name  # idempotent


@given(name_parts)
def test_compose_name_keeps_its_shape_for_any_text(parts: list[str]) -> None:
    # Non-ASCII lowercase letters and digits survive (the reference's rule), so a name is a
    # DNS-1123 label only up to them; the byte limit and the dash structure always hold.
    name = compose_name(*parts)
    assert _shape_ok(name)
    assert DNS1123_LABEL.fullmatch(re.sub(r"[^\x00-\x7f]", "a", name))


@given(any_text, any_text)
def test_compose_name_with_suffix_keeps_its_shape(base: str, suffix: str) -> None:
    assert _shape_ok(compose_name_with_suffix(base, suffix))


@given(any_text)
def test_engram_runner_name_keeps_the_suffix(storyrun: str) -> None:
    name = engram_runner_name(storyrun)
    assert _shape_ok(name)
    assert name.endswith("-engram-runner")


@given(any_text)
def test_safe_label_value_is_always_a_valid_label_value(value: str) -> None:
    label = safe_label_value(value)
    assert 0 < len(label) <= 63
    assert label.isascii()
    assert LABEL_VALUE.fullmatch(label)
    assert safe_label_value(label) == label  # idempotent


@given(any_text, any_text, any_text, any_text)
def test_derived_names_fit_their_limits(ns: str, story: str, key: str, other: str) -> None:
    assert len(_go_bytes(derive_storyrun_name(ns, story, key))) <= 253
    assert len(_go_bytes(derive_storytrigger_name(ns, story, key, other))) <= 253
    assert len(_go_bytes(derive_effectclaim_name(ns, story, key))) <= 253
    assert len(_go_bytes(steprun_idempotency_key(ns, story, key))) <= 256


@given(st.lists(any_text, min_size=4, max_size=4), st.lists(any_text, min_size=4, max_size=4))
def test_results_depend_only_on_the_arguments(first: list[str], second: list[str]) -> None:
    calls: list[Callable[[list[str]], str]] = [
        lambda a: compose_name(*a),
        lambda a: compose_name_with_suffix(a[0], a[1]),
        lambda a: engram_runner_name(a[0]),
        lambda a: safe_label_value(a[0]),
        lambda a: derive_storyrun_name(a[0], a[1], a[2]),
        lambda a: derive_storytrigger_name(a[0], a[1], a[2], a[3]),
        lambda a: derive_effectclaim_name(a[0], a[1], a[2]),
        lambda a: steprun_idempotency_key(a[0], a[1], a[2]),
    ]
    for call in calls:
        before = call(list(first))
        call(second)
        assert call(list(first)) == before
