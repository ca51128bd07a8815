"""Bounded LRU compile cache keyed by template text, so reconciles do not re-parse (§8.8)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .errors import TemplateError
from .functions import BUILTIN_NAMES, function_names
from .nodes import ActionNode, ListNode
from .normalize import normalize
from .parser import parse

__all__ = ["CACHE_SIZE", "Analysis", "analyze", "clear_caches", "compile_template"]

CACHE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the evaluation algorithm needs to know about a template text, computed once."""

    normalized: str
    trimmed: str
    single_action: bool


@lru_cache(maxsize=CACHE_SIZE)
def analyze(text: str) -> Analysis:
    """Normalise and run the single-action check (parse with Go builtins only)."""
    n = normalize(text)
    t = n.strip()
    single = False
    if t.startswith("{{") and t.endswith("}}"):
        try:
            tree = parse(t, BUILTIN_NAMES)
        except TemplateError:
            tree = None
        single = tree is not None and len(tree.nodes) == 1 and isinstance(tree.nodes[0], ActionNode)
    return Analysis(n, t, single)


@lru_cache(maxsize=CACHE_SIZE)
def _compile(text: str, deterministic: bool) -> ListNode | TemplateError:
    try:
        return parse(
            text, function_names(allow_now=not deterministic, allow_random=not deterministic)
        )
    except TemplateError as exc:
        return exc


def compile_template(text: str, *, deterministic: bool = False) -> ListNode:
    """Parsed tree of an already normalised text with the full function map (cached)."""
    res = _compile(text, deterministic)
    if isinstance(res, TemplateError):
        raise type(res)(*res.args)
    return res


def clear_caches() -> None:
    """Drop all cached parses (tests and benchmarks measure cold paths with it)."""
    analyze.cache_clear()
    _compile.cache_clear()
