"""Naming stub: only the engram-runner name (controller-behaviour.md 1.5), to be replaced."""

from __future__ import annotations

import hashlib
import unicodedata

_MAX = 63
_SUFFIX = "engram-runner"


def _sanitize(value: str) -> str:
    """Lowercase; keep lowercase letters and digits; any other run becomes one `-`."""
    out: list[str] = []
    for ch in value.strip().lower():
        if unicodedata.category(ch) in ("Ll", "Nd"):
            out.append(ch)
        elif out and out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-")


def engram_runner_name(storyrun: str) -> str:
    """ServiceAccount/Role/RoleBinding name of a StoryRun's engram runner (DNS-1123, <= 63)."""
    base = _sanitize(storyrun) or "resource"
    name = f"{base}-{_SUFFIX}"
    if len(name.encode()) <= _MAX:
        return name
    digest = hashlib.sha256(base.encode() + b"\0" + _SUFFIX.encode() + b"\0").hexdigest()[:12]
    max_base = _MAX - len(_SUFFIX) - 1 - len(digest) - 1
    prefix = base.encode()[:max_base].decode(errors="ignore").rstrip("-") or "resource"
    return f"{prefix}-{digest}-{_SUFFIX}"
