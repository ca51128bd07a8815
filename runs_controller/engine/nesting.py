"""How deep a decoded JSON value nests, counted without recursion.

The apiserver stores values nested 10,000 levels deep; the controller's own walks (template
evaluation, JSON Schema validation, merges) recurse, a few Python frames per level, under a
recursion limit of 1,000. A run whose inputs nest deeper than they can follow is refused up
front with a message that says so, instead of failing somewhere inside with RecursionError.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["MAX_INPUTS_DEPTH", "deeper_than"]

MAX_INPUTS_DEPTH: Final = 100
"""Levels of objects and arrays the inputs of a StoryRun (or StoryTrigger) may nest. A
self-referencing `inputsSchema` (a tree type) follows a value ~160 levels down before
jsonschema's recursion runs out; 100 leaves room for the frames of the reconcile around it."""


def deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests objects/arrays more than `limit` levels (a scalar is level 0,
    `{}` level 1); stops at the first path that goes past the limit."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False
