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
    "PARSE_STEPS_PER_CHAR",
    "Analysis",
    "BoundedCache",
    "CacheInfo",
    "Compiled",
    "analyze",
    "cache_info",
    "clear_caches",
    "compile_template",
    "compiled",
    "parse_cost",
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

    def get(self, key: Hashable) -> object:
        """The cached value for `key` (marked recently used), or None."""
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                self._misses += 1
                return None
            self._data.move_to_end(key)
            self._hits += 1
            return hit[0]

    def put(self, key: Hashable, value: object, size: int) -> None:
        """Store `value` unless it is larger than one entry may be."""
        if size <= self.max_item_bytes:
            self._put(key, value, size)

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
    """What the evaluation algorithm needs to know about a template text, computed once.

    `cost` is the steps its analysis and parsing cost (charged on every use, cached or not).
    """

    normalized: str
    trimmed: str
    single_action: bool
    cost: int = 0


# Parsing costs a few evaluator steps per character of action text (bench/bench_expr_steps.py).
PARSE_STEPS_PER_CHAR: Final = 5
_BYTES_PER_STEP: Final = 256


def parse_cost(text: str) -> int:
    """Steps for analysing and parsing `text`, computable before doing it."""
    inside = 0
    i = text.find("{{")
    while i >= 0:
        j = text.find("}}", i + 2)
        end = len(text) if j < 0 else j + 2
        inside += end - i
        i = text.find("{{", end)
    return PARSE_STEPS_PER_CHAR * inside + len(text) // _BYTES_PER_STEP


def _single_action(t: str) -> bool:
    if not (t.startswith("{{") and t.endswith("}}")):
        return False
    try:
        tree = parse(t, BUILTIN_NAMES)
    except TemplateError:
        return False
    return len(tree.nodes) == 1 and isinstance(tree.nodes[0], ActionNode)


def analyze(text: str, charge: Callable[[int], None] | None = None) -> Analysis:
    """Normalise and run the single-action check (parse with Go builtins only), cached.

    With `charge`, the cost is paid first: on a miss, for the raw text before normalising and
    for the normalised text (which may be several times longer) before parsing it.
    """
    key = ("analyze", text)
    hit = _CACHE.get(key)
    if isinstance(hit, Analysis):
        if charge is not None:
            charge(hit.cost)
        return hit
    raw_cost = parse_cost(text)
    if charge is not None:
        charge(raw_cost)
    n = normalize(text)
    parse_steps = parse_cost(n)
    if charge is not None:
        charge(parse_steps)
    t = n.strip()
    a = Analysis(n, t, _single_action(t), raw_cost + parse_steps)
    _CACHE.put(key, a, len(text) + len(n) + NODE_BYTES)
    return a


@dataclass(frozen=True, slots=True)
class Compiled:
    """A parsed tree (or the parse error to raise again) and the step names the text uses."""

    tree: ListNode | TemplateError
    step_refs: tuple[str, ...]


def _compile(text: str, deterministic: bool) -> Compiled:
    try:
        tree: ListNode | TemplateError = parse(
            text, function_names(allow_now=not deterministic, allow_random=not deterministic)
        )
    except TemplateError as exc:
        tree = exc
    return Compiled(tree, tuple(sorted(extract_step_references(text))))


def _compiled_cost(text: str, c: Compiled) -> int:
    refs = sum(map(len, c.step_refs))
    if isinstance(c.tree, TemplateError):
        return len(text) + len(str(c.tree)) + refs + NODE_BYTES
    return len(text) + refs + NODE_BYTES * len(walk(c.tree))


def compiled(text: str, *, deterministic: bool = False) -> Compiled:
    """Tree and step references of an already normalised text (full function map; cached)."""
    return _CACHE.get_or_compute(
        ("compile", text, deterministic),
        lambda: _compile(text, deterministic),
        lambda c: _compiled_cost(text, c),
    )


def compile_template(text: str, *, deterministic: bool = False) -> ListNode:
    """Parsed tree of an already normalised text with the full function map (cached)."""
    res = compiled(text, deterministic=deterministic).tree
    if isinstance(res, TemplateError):
        raise type(res)(*res.args)
    return res


def cache_info() -> CacheInfo:
    """Hits, misses, entries and estimated bytes of the compile cache."""
    return _CACHE.info()


def clear_caches() -> None:
    """Drop all cached parses (tests and benchmarks measure cold paths with it)."""
    _CACHE.clear()
