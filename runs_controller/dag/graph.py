"""The step dependency graph of a Story (controller-behaviour §3.1, rulings 21 and 25).

Edges come from explicit `needs` and from step references inside `if` (every step) and inside
`with` (Engram steps, i.e. `ref` set, and `executeStory` steps), read from the decoded strings
(ruling 25): the `if` text and every string value nested anywhere in `with` (keys are not
templates and are not scanned).

Two detectors find references, and they differ in how unknown names are treated:

* the contract's regex (`steps.NAME.`, `steps["NAME"]` / `steps['NAME']`,
  `(index .steps "NAME")`, names of `[A-Za-z0-9_-]`). Like the reference, a name it finds that
  is not a step (nor a step's alias) is a dependency on an unknown step, so the graph is
  invalid;
* the template parser on the normalised text (what evaluation sees), which also finds forms the
  regex misses (`{{ .steps.a }}`, `index .steps "a"` without parentheses). The reference does not
  see these, so they only add ordering edges to real steps; unknown names are ignored rather
  than turning a Story the reference accepts into a failed run.

Explicit `needs` are taken verbatim (no alias mapping, as in the reference); unknown ones are
errors. A name referenced in one list may be a step of another list (a `finally` step reading a
main step's output): names and aliases resolve across all three lists, and validation runs over
all of them together. Should a name appear in several lists, the first one (main, compensation,
finally) defines its group and the dependencies of all of them are merged under that name.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from runs_controller.expr import extract_step_references
from runs_controller.expr.normalize import normalize

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from runs_controller.api.bubustack.story import Step, StorySpec

__all__ = [
    "GRAPH_ERROR_PREFIX",
    "GROUPS",
    "StepGraph",
    "build_graph",
    "cycle_members",
    "normalize_alias",
    "step_references",
    "string_values",
    "topological_order",
    "unknown_dependencies",
    "validate_graph",
]

GROUPS = ("main", "compensation", "finally")
GRAPH_ERROR_PREFIX = "Invalid story dependency graph: "
EXECUTE_STORY = "executeStory"

_NON_ALIAS = re.compile(r"[^A-Za-z0-9_]")
_REF = r"([A-Za-z0-9_\-]+)"
_WS = r"[\t\n\f\r ]"  # Go RE2's \s (ASCII, without \v)
_REF_RE = re.compile(
    rf"steps\.{_REF}\."
    rf"|steps{_WS}*\[{_WS}*['\"]{_REF}['\"]{_WS}*\]"
    rf"|\(index{_WS}+\.steps{_WS}+[\"']{_REF}[\"']\)"
)


def normalize_alias(name: str) -> str:
    """The template-safe identifier of a step name: every non-[A-Za-z0-9_] character -> `_`."""
    return _NON_ALIAS.sub("_", name)


def step_references(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """(names the contract's regex finds, names only the template parser finds) in `text`.

    A text that does not parse as a template (e.g. `.steps.a-b.x`) yields only the regex's names.
    """
    strict = frozenset(g for m in _REF_RE.finditer(text) for g in m.groups() if g)
    parsed = extract_step_references(normalize(text)) | extract_step_references(text)
    return strict, frozenset(parsed - strict)


def string_values(value: Any) -> Iterator[str]:
    """Every string value nested in a decoded JSON value (dict values, list items), in order.

    Iterative: the apiserver stores values nested 10,000 deep, ten times Python's recursion
    limit."""
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(reversed(item.values()))
        elif isinstance(item, list):
            pending.extend(reversed(item))


def _template_texts(step: Step) -> Iterator[str]:
    """The decoded strings of the step that may reference other steps."""
    if step.if_:
        yield step.if_
    if step.with_ is not None and (step.ref is not None or step.type == EXECUTE_STORY):
        yield from string_values(step.with_)


def _group_lists(spec: StorySpec) -> dict[str, tuple[Step, ...]]:
    return {
        "main": tuple(spec.steps),
        "compensation": tuple(spec.compensations or ()),
        "finally": tuple(spec.finally_ or ()),
    }


@dataclass(frozen=True)
class StepGraph:
    """The dependency graph over all three step lists of a Story.

    `deps` maps each step to its sorted dependency names; they are real step names (possibly of
    another list), except on an invalid graph, where unknown names found by `needs` or the regex
    stay in so that `unknown_dependencies` can report them.
    """

    steps: Mapping[str, tuple[Step, ...]]
    deps: Mapping[str, tuple[str, ...]]
    group_of: Mapping[str, str]
    rdeps: Mapping[str, tuple[str, ...]]

    def dependents(self, name: str) -> tuple[str, ...]:
        """The steps (any list) that depend directly on `name`, sorted."""
        return self.rdeps.get(name, ())

    def closure(self, name: str) -> frozenset[str]:
        """`name` plus its transitive dependents within its own list (redrive-from-step, §2.5).

        Raises KeyError for a name that is not a step.
        """
        group = self.group_of[name]
        seen = {name}
        queue = deque([name])
        while queue:
            for dep in self.dependents(queue.popleft()):
                if dep not in seen and self.group_of.get(dep) == group:
                    seen.add(dep)
                    queue.append(dep)
        return frozenset(seen)


def build_graph(spec: StorySpec) -> StepGraph:
    """The graph of explicit and implicit dependencies of every step of `spec`."""
    lists = _group_lists(spec)
    group_of: dict[str, str] = {}
    for group, steps in lists.items():
        for step in steps:
            group_of.setdefault(step.name, group)
    alias_to_real: dict[str, str] = {}
    for name in group_of:
        alias_to_real.setdefault(normalize_alias(name), name)

    def resolve(ref: str) -> str:
        return ref if ref in group_of else alias_to_real.get(ref, ref)

    deps: dict[str, set[str]] = {name: set() for name in group_of}
    for steps in lists.values():
        for step in steps:
            mine = deps[step.name]
            mine.update(step.needs or ())
            for text in _template_texts(step):
                strict, parsed = step_references(text)
                mine.update(resolve(r) for r in strict)
                mine.update(r for r in map(resolve, parsed) if r in group_of)
    rdeps: dict[str, set[str]] = {}
    for name, ds in deps.items():
        for d in ds:
            rdeps.setdefault(d, set()).add(name)
    return StepGraph(
        steps=MappingProxyType(lists),
        deps=MappingProxyType({k: tuple(sorted(v)) for k, v in deps.items()}),
        group_of=MappingProxyType(group_of),
        rdeps=MappingProxyType({k: tuple(sorted(v)) for k, v in rdeps.items()}),
    )


def unknown_dependencies(graph: StepGraph) -> tuple[str, ...]:
    """Sorted `step->dep` pairs whose dependency is not a step of any list."""
    return tuple(
        sorted(
            f"{name}->{dep}"
            for name, ds in graph.deps.items()
            for dep in ds
            if dep not in graph.group_of
        )
    )


def cycle_members(graph: StepGraph) -> tuple[str, ...]:
    """Sorted steps Kahn's algorithm cannot order: those on a cycle and those downstream of one.

    Assumes every dependency is a known step (check `unknown_dependencies` first).
    """
    indegree = {name: len(ds) for name, ds in graph.deps.items()}
    ready = deque(name for name, n in indegree.items() if n == 0)
    while ready:
        for dependent in graph.dependents(ready.popleft()):
            indegree[dependent] -= 1
            if indegree[dependent] == 0:
                ready.append(dependent)
    return tuple(sorted(name for name, n in indegree.items() if n > 0))


def validate_graph(spec: StorySpec) -> str | None:
    """None for a valid graph, else the run's failure message (unknown names, then cycles)."""
    graph = build_graph(spec)
    unknown = unknown_dependencies(graph)
    if unknown:
        return f"{GRAPH_ERROR_PREFIX}unknown step dependencies: {', '.join(unknown)}"
    blocked = cycle_members(graph)
    if blocked:
        cycle = ", ".join(blocked)
        return f"{GRAPH_ERROR_PREFIX}dependency cycle detected involving step(s): {cycle}"
    return None


def topological_order(graph: StepGraph, group: str) -> tuple[str, ...]:
    """The steps of `group` level by level (each level in declaration order), deps first.

    Dependencies on steps of other lists are ignored (they belong to an earlier phase or are
    policy-checked at readiness). Raises ValueError when the group's steps form a cycle.
    """
    names = list(dict.fromkeys(s.name for s in graph.steps[group]))
    members = set(names)
    pending = {n: {d for d in graph.deps[n] if d in members} for n in names}
    order: list[str] = []
    while pending:
        ready = [n for n in names if n in pending and not pending[n]]
        if not ready:
            raise ValueError(f"dependency cycle among steps: {', '.join(sorted(pending))}")
        for n in ready:
            del pending[n]
            order.append(n)
        for ds in pending.values():
            ds.difference_update(ready)
    return tuple(order)
