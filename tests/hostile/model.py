"""A hostile case: the objects to submit and what the system must make of them.

Names are placeholders (`STORY`, `ENGRAM`, `TEMPLATE`, `NAMESPACE`) that the harness replaces
with per-case names, so one corpus runs in any namespace, batch after batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from runs_controller.api.codec import encode

STORY = "<<story>>"
ENGRAM = "<<engram>>"
TEMPLATE = "<<template>>"
NAMESPACE = "<<ns>>"

Refusal = Literal["must", "may", "never"]


@dataclass(frozen=True)
class Expect:
    """What a case must end in.

    `refused`: must the apiserver refuse it ("must"), may it ("may"), or must it accept it
    ("never")? A refusal is a 422 with a cause naming one of `fields` (a prefix relation, see
    `crd_fields.related`); `forbidden_causes` are cause texts a refusal must not contain (an
    at-limit value refused as too long means the limit is off by one).
    An accepted case must settle (terminal, or waiting with a reason) in one of `phases` (empty:
    any), with a reason among `reasons` (empty: any non-empty), and its outcome text must
    contain every string of `mentions` and, when given, one of `any_of` (case-insensitive).
    """

    refused: Refusal = "never"
    fields: tuple[str, ...] = ()
    forbidden_causes: tuple[str, ...] = ()
    phases: frozenset[str] = frozenset()
    reasons: frozenset[str] = frozenset()
    mentions: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    """One generated hostile submission.

    `kind` is the kind carrying the hostile input. `story` is a Story spec (None: a valid
    one-step Story), `template` an EngramTemplate spec (then an Engram ENGRAM uses it; else
    ENGRAM is the shared valid `echo` Engram), `run` a StoryRun spec, `trigger` a StoryTrigger
    spec (then the trigger's decision is judged, else the run's outcome).
    """

    category: str
    kind: str
    expect: Expect
    story: dict[str, Any] | None = None
    template: dict[str, Any] | None = None
    run: dict[str, Any] | None = None
    run_annotations: dict[str, str] = field(default_factory=dict)
    trigger: dict[str, Any] | None = None

    def describe(self) -> str:
        """What the case is, for failure messages (long values cut)."""
        parts = [f"{self.category} ({self.kind})"]
        for name in ("story", "template", "run", "trigger"):
            value = getattr(self, name)
            if value is not None:
                text = encode(value).decode()  # repr recurses; the corpus nests past its limit
                parts.append(f"{name}={text[:600]}{'...' if len(text) > 600 else ''}")
        if self.run_annotations:
            parts.append(f"annotations={self.run_annotations!r}"[:600])
        return " ".join(parts)


def _substituted_string(text: str, names: dict[str, str]) -> str:
    for token, name in names.items():
        if token in text:
            text = text.replace(token, name)
    return text


def substitute(value: Any, names: dict[str, str]) -> Any:
    """`value` with every placeholder replaced in every string (keys included).

    Iterative: the corpus nests values deeper than Python's recursion limit on purpose.
    """
    if isinstance(value, str):
        return _substituted_string(value, names)
    if not isinstance(value, (dict, list)):
        return value
    root: dict[Any, Any] | list[Any] = {} if isinstance(value, dict) else []
    pending: list[tuple[Any, dict[Any, Any] | list[Any]]] = [(value, root)]
    while pending:
        source, target = pending.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, (dict, list)):
                copy: dict[Any, Any] | list[Any] = {} if isinstance(item, dict) else []
                pending.append((item, copy))
                item = copy
            elif isinstance(item, str):
                item = _substituted_string(item, names)
            if isinstance(target, dict):
                target[_substituted_string(key, names) if isinstance(key, str) else key] = item
            else:
                target.append(item)
    return root
