"""Static validation for a scope (§8.9), the templatesafety scan and step-reference extraction."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .errors import TemplateError, TemplateSafetyError
from .functions import DISALLOWED, function_names
from .nodes import (
    CommandNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    ListNode,
    Node,
    RangeNode,
    StringNode,
    TemplateNode,
    WithNode,
    children,
    walk,
)
from .normalize import normalize
from .parser import parse

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

__all__ = [
    "check_template_safety",
    "check_value_safety",
    "extract_step_references",
    "extract_step_references_strict",
    "validate_template_string",
]

_DISALLOWED_RE = re.compile(r"\b(" + "|".join(DISALLOWED) + r")\b")


def check_template_safety(text: str) -> None:
    """Reject `env`, `expandenv`, `getHostByName` as a word anywhere inside `{{ ... }}`."""
    i = 0
    while True:
        j = text.find("{{", i)
        if j < 0:
            return
        k = text.find("}}", j + 2)
        body = text[j + 2 : k if k >= 0 else len(text)].strip("-")
        m = _DISALLOWED_RE.search(body)
        if m:
            raise TemplateSafetyError(
                f"template expression uses disallowed function '{m.group(1)}'"
            )
        if k < 0:
            return
        i = k + 2


def check_value_safety(value: Any) -> None:
    """`check_template_safety` on every string of a JSON value, object keys included (the
    reference screens the value's JSON text, keys and all)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            check_template_safety(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _root_dot_nodes(tree: ListNode) -> list[Node]:
    """Nodes evaluated with the root data as dot (bodies of `with`/`range` rebind dot)."""
    out: list[Node] = []
    stack: list[Node | None] = [tree]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        if isinstance(n, WithNode | RangeNode):
            stack.extend([n.pipe, n.else_body])
            continue
        out.append(n)
        stack.extend(children(n))
    return out


def _roots_used(tree: ListNode) -> list[str]:
    roots: list[str] = []
    for n in _root_dot_nodes(tree):
        if isinstance(n, FieldNode):
            roots.append(n.idents[0])
        elif isinstance(n, CommandNode) and n.args and isinstance(n.args[0], IdentifierNode):
            fn, args = n.args[0].name, n.args[1:]
            if fn in ("index", "get") and len(args) >= 1:
                first = args[0]
                if isinstance(first, FieldNode):
                    roots.append(first.idents[0])
                elif (
                    isinstance(first, DotNode)
                    and len(args) >= 2
                    and isinstance(args[1], StringNode)
                ):
                    roots.append(args[1].value)
            elif (
                fn == "dig"
                and len(args) >= 3
                and isinstance(args[-1], DotNode)
                and isinstance(args[0], StringNode)
            ):
                roots.append(args[0].value)
    return roots


def validate_template_string(
    text: str,
    *,
    roots: Collection[str],
    allow_now: bool = False,
    allow_random: bool = False,
    allow_range: bool = False,
    name: str = "",
    scope: str | None = None,
) -> None:
    """Raise TemplateError when `text` is not valid for the scope; return None when it is.

    `scope` is the scope's name as the reference prints it ("... for SCOPE templates"); `name`
    (a field such as `idempotencyKeyTemplate`) prefixes every message. Without `scope`, the
    label is `name`, or "test".
    """
    label = scope if scope is not None else (name or "test")
    prefix = f"{name}: " if name else ""
    if not isinstance(text, str):
        raise TemplateError(f"{prefix}template must be a string, got {type(text).__name__}")
    try:
        check_template_safety(text)
        tree = parse(
            normalize(text),
            function_names(allow_now=allow_now, allow_random=allow_random),
            name="validate",
        )
    except TemplateError as exc:
        raise type(exc)(prefix + str(exc)) from exc
    problems: list[str] = []
    for root in _roots_used(tree):
        if root in roots:
            continue
        if root in ("inputs", "steps", "packet"):
            problems.append(f"context '{root}' is not allowed for {label} templates")
        else:
            problems.append(f"unknown context '{root}' is not allowed for {label} templates")
    for n in walk(tree):
        if isinstance(n, RangeNode) and not allow_range:
            problems.append(f"range is not allowed for {label} templates")
        elif isinstance(n, TemplateNode):
            problems.append(f"template inclusion is not supported ({n.name})")
    if problems:
        raise TemplateError(prefix + "; ".join(problems))


class _AnyName:
    """A function set that contains every name (reference extraction parses permissively)."""

    def __contains__(self, item: object) -> bool:
        return True

    def __iter__(self) -> Iterable[str]:  # pragma: no cover - Collection protocol only
        return iter(())

    def __len__(self) -> int:  # pragma: no cover
        return 0


_ANY = _AnyName()


def step_refs_of_tree(tree: ListNode) -> set[str]:
    """Step names under `.steps.NAME`, `index .steps "NAME"` and `(index .steps "NAME").x`."""
    refs: set[str] = set()
    for n in walk(tree):
        if isinstance(n, FieldNode) and len(n.idents) >= 2 and n.idents[0] == "steps":
            refs.add(n.idents[1])
        elif (
            isinstance(n, CommandNode)
            and len(n.args) >= 3
            and isinstance(n.args[0], IdentifierNode)
            and n.args[0].name == "index"
        ):
            recv, key = n.args[1], n.args[2]
            if (
                isinstance(recv, FieldNode)
                and recv.idents == ("steps",)
                and isinstance(key, StringNode)
            ):
                refs.add(key.value)
    return refs


def extract_step_references_strict(text: str) -> set[str]:
    """Like extract_step_references, but a parse error is raised (for diagnostics)."""
    if not isinstance(text, str):
        raise TemplateError(f"template must be a string, got {type(text).__name__}")
    return step_refs_of_tree(parse(text, _ANY, name="refs"))  # type: ignore[arg-type]


def extract_step_references(text: str) -> set[str]:
    """Referenced step names of the raw (not normalised) text; a parse error gives none."""
    try:
        return extract_step_references_strict(text)
    except TemplateError:
        return set()
