"""Compile cache keyed by template text, bounded in entries and bytes, safe across threads (§8.8).

Reconciles evaluate the same templates again and again; caching the analysis (normalisation and
single-action check), the parsed tree and the step references avoids re-parsing. Evaluations run
in worker threads, so the cache is guarded by a lock; two threads missing the same key both
compute it (harmless: the results are equal) and the later insert wins.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

from .errors import TemplateError
from .functions import BUILTIN_NAMES, function_names
from .nodes import ActionNode, ListNode, walk
from .normalize import normalize
from .parser import parse
from .validate import extract_step_references

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

__all__ = [
    "CACHE_BYTES",
    "CACHE_SIZE",
    "MAX_CACHED_BYTES",
    "Analysis",
    "BoundedCache",
    "CacheInfo",
    "analyze",
    "cache_info",
    "clear_caches",
    "compile_template",
    "normalized",
    "step_refs",
]

CACHE_SIZE: Final = 1000
CACHE_BYTES: Final = 8 * 1024 * 1024
# One entry may take at most this much; a larger template is parsed on every use.
MAX_CACHED_BYTES: Final = 1024 * 1024
# Estimated memory of one parsed node (a slotted dataclass plus its strings and lists).
NODE_BYTES: Final = 200

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CacheInfo:
    hits: int
    misses: int
    entries: int
    bytes: int
    max_entries: int
    max_bytes: int


class BoundedCache:
    """LRU bounded in entries and in estimated bytes; values over `max_item_bytes` are not kept."""

    def __init__(self, max_entries: int, max_bytes: int, max_item_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_item_bytes = max_item_bytes
        self._lock = threading.Lock()
        self._data: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0

    def get_or_compute(
        self, key: Hashable, compute: Callable[[], T], cost: Callable[[T], int]
    ) -> T:
        """The cached value for `key`, else `compute()` (outside the lock), stored if it fits."""
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                self._hits += 1
                return hit[0]  # type: ignore[return-value]
            self._misses += 1
        value = compute()
        size = cost(value)
        if size <= self.max_item_bytes:
            self._put(key, value, size)
        return value

    def _put(self, key: Hashable, value: object, size: int) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._data[key] = (value, size)
            self._bytes += size
            while self._data and (
                len(self._data) > self.max_entries or self._bytes > self.max_bytes
            ):
                _, (_, freed) = self._data.popitem(last=False)
                self._bytes -= freed

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = self._hits = self._misses = 0

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(
                self._hits,
                self._misses,
                len(self._data),
                self._bytes,
                self.max_entries,
                self.max_bytes,
            )


_CACHE = BoundedCache(CACHE_SIZE, CACHE_BYTES, MAX_CACHED_BYTES)


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the evaluation algorithm needs to know about a template text, computed once."""

    normalized: str
    trimmed: str
    single_action: bool


def normalized(text: str) -> str:
    """The normalised text (cached: the evaluator charges its parse cost before parsing)."""
    return _CACHE.get_or_compute(("normalize", text), lambda: normalize(text), lambda n: 2 * len(n))


def _analyze(text: str) -> Analysis:
    n = normalized(text)
    t = n.strip()
    single = False
    if t.startswith("{{") and t.endswith("}}"):
        try:
            tree = parse(t, BUILTIN_NAMES)
        except TemplateError:
            tree = None
        single = tree is not None and len(tree.nodes) == 1 and isinstance(tree.nodes[0], ActionNode)
    return Analysis(n, t, single)


def analyze(text: str) -> Analysis:
    """Normalise and run the single-action check (parse with Go builtins only)."""
    return _CACHE.get_or_compute(
        ("analyze", text),
        lambda: _analyze(text),
        lambda a: len(text) + len(a.normalized) + NODE_BYTES,
    )


def _parse_full(text: str, deterministic: bool) -> ListNode | TemplateError:
    try:
        return parse(
            text, function_names(allow_now=not deterministic, allow_random=not deterministic)
        )
    except TemplateError as exc:
        return exc


def _tree_cost(text: str, res: ListNode | TemplateError) -> int:
    if isinstance(res, TemplateError):
        return len(text) + len(str(res)) + NODE_BYTES
    return len(text) + NODE_BYTES * len(walk(res))


def compile_template(text: str, *, deterministic: bool = False) -> ListNode:
    """Parsed tree of an already normalised text with the full function map (cached)."""
    res = _CACHE.get_or_compute(
        ("compile", text, deterministic),
        lambda: _parse_full(text, deterministic),
        lambda r: _tree_cost(text, r),
    )
    if isinstance(res, TemplateError):
        raise type(res)(*res.args)
    return res


def step_refs(normalized: str) -> tuple[str, ...]:
    """Sorted step names a normalised template references (for the offload guard)."""
    return _CACHE.get_or_compute(
        ("refs", normalized),
        lambda: tuple(sorted(extract_step_references(normalized))),
        lambda refs: len(normalized) + sum(map(len, refs)) + NODE_BYTES,
    )


def cache_info() -> CacheInfo:
    """Hits, misses, entries and estimated bytes of the compile cache."""
    return _CACHE.info()


def clear_caches() -> None:
    """Drop all cached parses (tests and benchmarks measure cold paths with it)."""
    _CACHE.clear()
