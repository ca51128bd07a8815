"""TEMPORARY STUB (branch `launch`): child-object naming functions (controller-behaviour.md 1.5).

A minimal implementation of exactly the three functions `dag.launch` needs, so the branch is
testable on its own. The full, conformance-tested module written in parallel replaces this
file at merge; do not extend it here.
"""

from __future__ import annotations

import hashlib
import unicodedata

__all__ = ["compose_name", "safe_label_value", "steprun_idempotency_key"]

_MAX_DNS_LABEL = 63
_DEFAULT_NAME = "resource"
_LABEL_HASH_LEN = 10
_MAX_IDEMPOTENCY_KEY = 256


def _sanitize_segment(value: str) -> str:
    """Lowercase; keep lowercase letters and digits; other runs become one `-`; trim `-`."""
    out: list[str] = []
    last_dash = False
    for raw in value.strip():
        ch = raw.lower()[:1] or raw  # Go lowers rune by rune (no final-sigma rule)
        if unicodedata.category(ch) in ("Ll", "Nd"):
            out.append(ch)
            last_dash = False
        elif out and not last_dash:
            out.append("-")
            last_dash = True
    return "".join(out).strip("-")


def compose_name(*parts: str) -> str:
    """ComposeName: a DNS-1123 label from parts, hash-suffixed when longer than 63."""
    base = "-".join(s for s in (_sanitize_segment(p) for p in parts) if s)
    if not base:
        return _DEFAULT_NAME
    if len(base.encode()) <= _MAX_DNS_LABEL:
        return base
    digest = hashlib.sha256(b"".join(p.encode() + b"\x00" for p in parts)).hexdigest()[:12]
    cut = base.encode()[: _MAX_DNS_LABEL - len(digest) - 1]  # Go slices bytes
    prefix = cut.decode(errors="replace").rstrip("-") or _DEFAULT_NAME
    return f"{prefix}-{digest}"


def safe_label_value(value: str) -> str:
    """SafeLabelValue: `[a-z0-9-]` only, at most 63 chars (hash suffix when longer)."""
    out: list[str] = []
    last_dash = False
    for raw in value.strip():
        ch = raw.lower()[:1] or raw
        if "a" <= ch <= "z" or "0" <= ch <= "9":
            out.append(ch)
            last_dash = False
        elif out and not last_dash:
            out.append("-")
            last_dash = True
    name = "".join(out).strip("-")
    if not name:
        return _DEFAULT_NAME
    if len(name) <= _MAX_DNS_LABEL:
        return name
    suffix = hashlib.sha256(name.encode()).hexdigest()[:_LABEL_HASH_LEN]
    prefix = name[: _MAX_DNS_LABEL - 1 - _LABEL_HASH_LEN].strip("-_.")
    return f"{prefix}-{suffix}" if prefix else suffix


def steprun_idempotency_key(namespace: str, story_run: str, step_id: str) -> str:
    """The default StepRun idempotency key; sha256 form when over 256 bytes."""
    key = f"storyrun/{story_run.strip()}/step/{step_id.strip()}"
    if namespace.strip():
        key = f"ns/{namespace.strip()}/{key}"
    if len(key.encode()) <= _MAX_IDEMPOTENCY_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
