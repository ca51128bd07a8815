"""Hard scheduling limits across runs (ruling 27): counts that include what was just created.

The launch decision for a Story (and, when a global or queue limit is set, for everything) is
taken under a lock, and StepRuns created under it count until the cache shows them, so no
watcher ever sees one StepRun more than the limit, whatever the number of workers.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from runs_controller.api.enums import TERMINAL_PHASES
from runs_controller.engine import keys
from runs_controller.engine.finality import is_final

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from runs_controller.api.runs.steprun import StepRun
    from runs_controller.api.runs.storyrun import StoryRun
    from runs_controller.runtime.cache import CacheReader
    from runs_controller.runtime.informer import Event
    from runs_controller.runtime.reconciler import Request


@dataclass
class _Inflight:
    names: dict[str, str] = field(default_factory=dict)
    """namespace/name -> story key of StepRuns created but not yet seen in the cache."""


class SlotKeeper:
    def __init__(
        self, stepruns: CacheReader[StepRun], default_max_retries: Callable[[], int]
    ) -> None:
        self._stepruns = stepruns
        self._locks: dict[str, anyio.Lock] = {}
        self._global = anyio.Lock()
        self._inflight = _Inflight()
        self._default_max_retries = default_max_retries
        self._waiting: dict[str, set[Request]] = {}
        """Runs with steps queued by a limit, by the Story key they wait on ("*": a global or
        queue limit): a StepRun of that Story becoming final wakes them (no poll)."""

    def _lock(self, key: str) -> anyio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = anyio.Lock()
        return lock

    @asynccontextmanager
    async def serialised(
        self, story_key: str, *, story_scope: bool, global_scope: bool
    ) -> AsyncIterator[None]:
        """Hold the Story's launch lock when it has a concurrency limit, and the global one when
        a global or queue limit applies. Without limits there is nothing to serialise: runs of
        one Story reconcile in parallel."""
        if global_scope:
            async with self._global, self._lock(story_key):
                yield
        elif story_scope:
            async with self._lock(story_key):
                yield
        else:
            yield

    def wait(self, request: Request, story_key: str, *, global_scope: bool) -> None:
        self.unwait(request)
        self._waiting.setdefault("*" if global_scope else story_key, set()).add(request)

    def waiting_runs(self) -> set[str]:
        """`namespace/name` of every run with steps queued behind a limit or a priority."""
        return {request.key for waiting in self._waiting.values() for request in waiting}

    def unwait(self, request: Request) -> None:
        for key in [k for k, waiting in self._waiting.items() if request in waiting]:
            self._waiting[key].discard(request)
            if not self._waiting[key]:
                del self._waiting[key]

    def waiters(self, steprun: StepRun) -> list[Request]:
        """The runs a StepRun that just became final (or went away) may unblock."""
        meta = steprun.metadata
        labels = (meta.labels if meta else None) or {}
        story = labels.get(keys.LABEL_STORY_NAME)
        keys_ = ["*"]
        if story and meta is not None:
            keys_.append(f"{meta.namespace}/{story}")
        return sorted({r for k in keys_ for r in self._waiting.get(k, ())}, key=lambda r: r.key)

    def waiters_of_run(self, run: StoryRun) -> list[Request]:
        """The runs a run that just ended may unblock (priority ordering counts runs)."""
        meta = run.metadata
        namespace = meta.namespace if meta is not None else None
        story_key = f"{run.spec.story_ref.namespace or namespace}/{run.spec.story_ref.name}"
        found = {r for k in ("*", story_key) for r in self._waiting.get(k, ())}
        return sorted(found, key=lambda r: r.key)

    @staticmethod
    def run_ended(event: Event[StoryRun]) -> bool:
        """Predicate: a run left the set with demand (terminal now, or deleted)."""
        if event.type == "deleted":
            return True
        if event.type != "updated" or event.old is None:
            return False
        new = event.obj.status.phase if event.obj.status else None
        old = event.old.status.phase if event.old.status else None
        return new in TERMINAL_PHASES and old not in TERMINAL_PHASES

    def freed_a_slot(self, event: Event[StepRun]) -> bool:
        """Predicate: a StepRun left the counted set (final now, or deleted)."""
        if event.type == "deleted":
            return True
        if event.type != "updated" or event.old is None:
            return False
        retries = self._default_max_retries()
        return is_final(event.obj, retries) and not is_final(event.old, retries)

    def created(self, namespace: str, name: str, story_key: str) -> None:
        self._inflight.names[f"{namespace}/{name}"] = story_key

    def _active(self, predicate: Callable[[StepRun], bool], story_key: str | None) -> int:
        seen: set[str] = set()
        count = 0
        retries = self._default_max_retries()
        for steprun in self._stepruns.list():
            meta = steprun.metadata
            if meta is None:
                continue
            key = f"{meta.namespace}/{meta.name}"
            seen.add(key)
            if predicate(steprun) and not is_final(steprun, retries):
                count += 1
        for key, owner in list(self._inflight.names.items()):
            if key in seen:
                del self._inflight.names[key]
            elif story_key is None or owner == story_key:
                count += 1
        return count

    def story_active(self, namespace: str, story: str) -> int:
        def of_story(steprun: StepRun) -> bool:
            meta = steprun.metadata
            labels = (meta.labels if meta else None) or {}
            return (meta.namespace if meta else None) == namespace and labels.get(
                keys.LABEL_STORY_NAME
            ) == story

        return self._active(of_story, f"{namespace}/{story}")

    def global_active(self) -> int:
        return self._active(lambda _: True, None)

    def queue_active(self, queue: str) -> int:
        def in_queue(steprun: StepRun) -> bool:
            labels = (steprun.metadata.labels if steprun.metadata else None) or {}
            return labels.get(keys.LABEL_QUEUE, keys.DEFAULT_QUEUE) == queue

        return self._active(in_queue, None)
