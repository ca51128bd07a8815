"""Deterministic object names, label values and idempotency keys (controller-behaviour.md 1.5).

The reference operator and its SDK derive the same names independently (the SDK creates a
StoryRun or EffectClaim by name, the controller finds it by name), so every function here
must give the reference's bytes exactly, quirks included.

Go strings are bytes: lengths are counted and names cut in UTF-8 bytes, and a cut may split
a character. Such a result is returned decoded with `errors="surrogateescape"`, so
`result.encode("utf-8", "surrogateescape")` gives the reference's exact bytes. Character
classes follow Go's `unicode` package (Unicode 15.0, one-rune simple case mapping), not
Python's `str` methods, which differ on `İ`, `ª`, `²` and the like.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import TYPE_CHECKING, Final

from runs_controller.engine.keys import LABEL_STORYRUN

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "compose_name",
    "compose_name_with_suffix",
    "derive_effectclaim_name",
    "derive_storyrun_name",
    "derive_storytrigger_name",
    "engram_runner_name",
    "hash_parts",
    "safe_label_value",
    "sanitize_dns1123_segment",
    "sanitize_label_value",
    "sanitize_token_segment",
    "short_token_hash",
    "steprun_idempotency_key",
    "story_trigger_identity",
    "storyrun_selector_labels",
]

DNS1123_LABEL_MAX: Final = 63
LABEL_VALUE_MAX: Final = 63
OBJECT_NAME_MAX: Final = 253
"""Limit of the identity-derived names (StoryRun, StoryTrigger, EffectClaim)."""
IDEMPOTENCY_KEY_MAX: Final = 256
DEFAULT_NAME: Final = "resource"
ENGRAM_RUNNER_SUFFIX: Final = "engram-runner"

_HASH_PARTS_HEX: Final = 12
_LABEL_HASH_HEX: Final = 10

# Go's unicode.IsSpace: Latin-1 spaces plus the White_Space property. Python's str.isspace
# also counts U+001C..U+001F, which Go does not trim.
_GO_SPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)

# Go's tables are Unicode 15.0, Python 3.11's are 14.0. These are the code points whose Go
# category (Ll / Nd) the older tables lack: Latin Extended-G letters, Kawi and Nag Mundari
# digits. No case mapping changed between the two versions.
_UNICODE15_LOWER: Final = frozenset(chr(c) for c in range(0x1DF25, 0x1DF2B))
_UNICODE15_DIGIT: Final = frozenset(
    chr(c) for c in (*range(0x11F50, 0x11F5A), *range(0x1E4F0, 0x1E4FA))
)


def _go_bytes(text: str) -> bytes:
    """The bytes Go would hold: surrogate escapes back to raw bytes, other surrogates U+FFFD."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        repaired = "".join(
            "\ufffd" if "\ud800" <= ch < "\udc80" or "\udd00" <= ch <= "\udfff" else ch
            for ch in text
        )
        return repaired.encode("utf-8", "surrogateescape")


def _text(raw: bytes) -> str:
    """Go bytes back to a str, losslessly, even when a cut split a character."""
    return raw.decode("utf-8", "surrogateescape")


def _go_lower(ch: str) -> str:
    """unicode.ToLower: the one-rune simple mapping (Python's `İ`.lower() is two runes)."""
    if ch == "\u0130":
        return "i"
    lowered = ch.lower()
    return lowered if len(lowered) == 1 else ch


def _is_go_lower_or_digit(ch: str) -> bool:
    """unicode.IsLower or unicode.IsDigit: general category Ll or Nd (never a surrogate)."""
    category = unicodedata.category(ch)
    return category in ("Ll", "Nd") or ch in _UNICODE15_LOWER or ch in _UNICODE15_DIGIT


def _is_ascii_alnum(ch: str) -> bool:
    return "a" <= ch <= "z" or "0" <= ch <= "9"


def _sanitize(value: str, keep: Callable[[str], bool]) -> str:
    """Lowercase, keep the runes `keep` accepts, join their runs with single dashes.

    The reference's TrimSpace and its separate case for `-_.` and spaces change nothing:
    every rejected rune becomes the same dash, leading dashes are never written and trailing
    ones are trimmed. Invalid UTF-8 (a surrogate escape here) is rejected like any rune.
    """
    runs: list[str] = []
    current: list[str] = []
    for ch in value:
        lowered = _go_lower(ch)
        if keep(lowered):
            current.append(lowered)
        elif current:
            runs.append("".join(current))
            current = []
    if current:
        runs.append("".join(current))
    return "-".join(runs)


def sanitize_dns1123_segment(value: str) -> str:
    """One part of a composed name: Unicode lowercase letters and digits survive (`café`)."""
    return _sanitize(value, _is_go_lower_or_digit)


def sanitize_label_value(value: str) -> str:
    """The label sanitizer before length handling: ASCII `[a-z0-9]` runs joined by `-`."""
    return _sanitize(value, _is_ascii_alnum)


def sanitize_token_segment(token: str) -> str:
    """The trigger-token part of a StoryRun name; same rule as the label sanitizer."""
    return _sanitize(token, _is_ascii_alnum)


def hash_parts(*parts: str) -> str:
    """12 hex chars of sha256 over each part's bytes followed by a NUL."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(_go_bytes(part))
        digest.update(b"\x00")
    return digest.hexdigest()[:_HASH_PARTS_HEX]


def short_token_hash(seed: str) -> str:
    """The first 8 bytes of sha1(seed) as 16 hex chars."""
    return hashlib.sha1(_go_bytes(seed), usedforsecurity=False).digest()[:8].hex()


def compose_name(*parts: str) -> str:
    """A DNS-1123 label (<= 63 bytes) from name parts, hashed when too long.

    The hash covers the original parts, so two long names that sanitize alike still differ.
    """
    base = _go_bytes("-".join(s for s in map(sanitize_dns1123_segment, parts) if s))
    if not base:
        return DEFAULT_NAME
    if len(base) <= DNS1123_LABEL_MAX:
        return _text(base)
    suffix = hash_parts(*parts)
    # The base never starts with or doubles a dash, so the prefix is never empty, and
    # prefix + "-" + suffix is exactly within the limit: the reference's fallbacks never run.
    prefix = base[: DNS1123_LABEL_MAX - len(suffix) - 1].removesuffix(b"-")
    return _text(prefix) + "-" + suffix


def compose_name_with_suffix(base: str, suffix: str) -> str:
    """`<base>-<suffix>` as a DNS-1123 label; when too long, the suffix is kept whole."""
    base_b = _go_bytes(sanitize_dns1123_segment(base))
    suffix_s = sanitize_dns1123_segment(suffix)
    if not suffix_s:
        return compose_name(_text(base_b))
    suffix_b = _go_bytes(suffix_s)
    if not base_b:
        base_b = DEFAULT_NAME.encode()
    name = base_b + b"-" + suffix_b
    if len(name) <= DNS1123_LABEL_MAX:
        return _text(name)
    digest = hash_parts(_text(base_b), suffix_s)
    max_base = DNS1123_LABEL_MAX - len(suffix_b) - 1 - len(digest) - 1
    if max_base < 1:
        return compose_name(suffix_s, digest)
    # A sanitized base starts with a kept rune, so the cut prefix is never empty.
    prefix = base_b[:max_base].removesuffix(b"-")
    return _text(prefix + b"-" + digest.encode() + b"-" + suffix_b)


def engram_runner_name(storyrun: str) -> str:
    """ServiceAccount, Role and RoleBinding name for a StoryRun's engram pods."""
    return compose_name_with_suffix(storyrun, ENGRAM_RUNNER_SUFFIX)


def safe_label_value(value: str) -> str:
    """A valid label value (<= 63, `[a-z0-9-]`) for a name, e.g. `bubustack.io/storyrun`."""
    name = sanitize_label_value(value)
    if not name:
        return DEFAULT_NAME
    if len(name) <= LABEL_VALUE_MAX:
        return name
    suffix = hashlib.sha256(name.encode()).hexdigest()[:_LABEL_HASH_HEX]
    # ASCII alphanumerics first, so the stripped prefix is never empty.
    prefix = name[: LABEL_VALUE_MAX - 1 - _LABEL_HASH_HEX].strip("-_.")
    return prefix + "-" + suffix


def storyrun_selector_labels(storyrun: str) -> dict[str, str]:
    """The labels that select a StoryRun's children (a fresh dict each call)."""
    return {LABEL_STORYRUN: safe_label_value(storyrun)}


def _with_cut_prefix(name: bytes, tail: bytes, limit: int, *, trim_both: bool) -> str:
    """`name + tail`, or, when over `limit` bytes, `name` cut so the whole fits (`s` if empty)."""
    if len(name) + len(tail) <= limit:
        return _text(name + tail)
    prefix = name[: max(limit - len(tail), 1)]
    prefix = prefix.strip(b"-") if trim_both else prefix.rstrip(b"-")
    return _text((prefix or b"s") + tail)


def derive_storyrun_name(story_namespace: str, story_name: str, token: str) -> str:
    """The StoryRun name for a trigger token (the SDK derives the same one).

    The story name is used as is; the hash is appended unless the namespace is empty and the
    token was already clean. An overlong name drops the token part and keeps only the hash.
    """
    token_b = _go_bytes(token)
    sanitized = sanitize_token_segment(token).encode()
    hashed = short_token_hash(f"{story_namespace}/{story_name}/{token}").encode()
    if not sanitized:
        token_part = hashed
    elif sanitized != token_b or story_namespace != "":
        token_part = sanitized + b"-" + hashed
    else:
        token_part = sanitized
    story_b = _go_bytes(story_name)
    base = story_b + b"-" + token_part
    if len(base) <= OBJECT_NAME_MAX:
        return _text(base)
    return _with_cut_prefix(story_b, b"-" + hashed, OBJECT_NAME_MAX, trim_both=True)


def story_trigger_identity(key: str, submission_id: str) -> str:
    """The durable identity of a trigger request: its key, else its submission id."""
    return key if key != "" else submission_id


def derive_storytrigger_name(
    story_namespace: str, story_name: str, key: str, submission_id: str
) -> str:
    """`<story>-trigger-<hash>`; empty when the request has neither key nor submission id."""
    identity = story_trigger_identity(key, submission_id)
    if identity == "":
        return ""
    hashed = short_token_hash(f"{story_namespace}/{story_name}/{identity}")
    tail = b"-trigger-" + hashed.encode()
    return _with_cut_prefix(_go_bytes(story_name), tail, OBJECT_NAME_MAX, trim_both=False)


def derive_effectclaim_name(namespace: str, steprun_name: str, effect_key: str) -> str:
    """`<steprun>-effect-<hash>`; empty for an empty effect key."""
    if effect_key == "":
        return ""
    hashed = short_token_hash(f"{namespace}/{steprun_name}/{effect_key}")
    tail = b"-effect-" + hashed.encode()
    return _with_cut_prefix(_go_bytes(steprun_name), tail, OBJECT_NAME_MAX, trim_both=False)


def steprun_idempotency_key(namespace: str, storyrun_name: str, step_id: str) -> str:
    """The default `spec.idempotencyKey` of a StepRun; `sha256:<hex>` when over 256 bytes."""
    namespace = namespace.strip(_GO_SPACE)
    key = f"storyrun/{storyrun_name.strip(_GO_SPACE)}/step/{step_id.strip(_GO_SPACE)}"
    if namespace:
        key = f"ns/{namespace}/{key}"
    raw = _go_bytes(key)
    if len(raw) <= IDEMPOTENCY_KEY_MAX:
        return _text(raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()
