"""Load the reference's golden vectors committed under tests/fixtures/conformance/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS_DIR = Path(__file__).parent.parent / "fixtures" / "conformance"


def load_vectors(name: str) -> list[dict[str, Any]]:
    """Every line of one vector file (e.g. `retrydelay.jsonl`), parsed, in file order."""
    text = (VECTORS_DIR / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line]
