"""The committed CRDs are generated, current, and every sample round-trips through the Structs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from runs_controller.api.codec import decode, encode
from runs_controller.api.crdgen.generate import render_all
from runs_controller.api.kinds import ALL_KINDS, BY_KIND
from tests.paths import CRD_DIR, SAMPLES_DIR


def test_committed_crds_are_exactly_the_generated_ones() -> None:
    generated = render_all(ALL_KINDS)
    committed = {path.name: path.read_text() for path in CRD_DIR.glob("*.yaml")}
    assert sorted(committed) == sorted(generated)
    stale = [name for name, text in generated.items() if committed[name] != text]
    assert not stale, f"stale CRDs {stale}: regenerate with `uv run runs-controller manifests`"


def _samples() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, document)
        for path in sorted(SAMPLES_DIR.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def test_there_is_a_sample_for_every_kind_but_steprun() -> None:
    kinds = {document["kind"] for _, document in _samples()}
    assert kinds == set(BY_KIND) - {"StepRun"}


@pytest.mark.parametrize(
    "document", [document for _, document in _samples()], ids=lambda d: str(d["kind"])
)
def test_samples_round_trip_through_their_structs(document: dict[str, Any]) -> None:
    root, _ = BY_KIND[document["kind"]]
    raw = json.dumps(document).encode()
    assert json.loads(encode(decode(raw, root))) == document
