"""Declaring a controller: what it reconciles, what wakes it, what it reads (controller-runtime's
builder: For / Owns / Watches).

    builder = ControllerBuilder(manager, "storyrun")
    runs = builder.for_(STORY_RUNS, StoryRun, indexers={"story": story_of})
    steps = builder.owns(STEP_RUNS, StepRun)
    stories = builder.watches(STORIES, Story, lambda s: requests_for_story(runs, s))
    engrams = builder.reads(ENGRAMS, Engram)
    controller = builder.complete(StoryRunReconciler(runs, steps, stories, engrams, builder.kit))

Each call registers the informers (one per watched namespace) and their indexers in the
manager's shared cache and returns a typed reader; `complete` attaches the event handlers, so an
event can never reach a controller that does not exist yet. `kit` carries the dependencies a
reconciler writes and decides with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runs_controller.runtime.children import ChildWriter
from runs_controller.runtime.controller import Controller
from runs_controller.runtime.handlers import mapped, own_key, owner_key
from runs_controller.runtime.status import StatusWriter

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from runs_controller.kube.client import KubeClient
    from runs_controller.kube.resources import ResourceType
    from runs_controller.runtime.cache import CacheReader
    from runs_controller.runtime.clock import Clock
    from runs_controller.runtime.events import EventRecorder
    from runs_controller.runtime.handlers import Enqueue, Handler, Predicate
    from runs_controller.runtime.manager import Manager
    from runs_controller.runtime.operator_config import OperatorConfigSource
    from runs_controller.runtime.reconciler import Reconciler, Request
    from runs_controller.runtime.store import IndexFunc, T


@dataclass(frozen=True)
class Kit:
    """What a reconciler writes and decides with, besides its cache readers."""

    client: KubeClient
    """The API client for writes (fenced by leadership) and rare fresh reads."""
    status: StatusWriter
    children: ChildWriter
    recorder: EventRecorder | None
    clock: Clock
    config: OperatorConfigSource


DEFAULT_WORKERS = 2


class ControllerBuilder:
    def __init__(
        self,
        manager: Manager,
        name: str,
        *,
        workers: int | None = None,
        reconcile_timeout: float | None = None,
    ) -> None:
        self._manager = manager
        self.name = name
        self._workers = manager.options.workers or workers or DEFAULT_WORKERS
        self._timeout = reconcile_timeout or manager.options.reconcile_timeout
        self._for: ResourceType | None = None
        self._order: Callable[[Request], Any] | None = None
        self._pending: list[tuple[CacheReader[Any], Callable[[Enqueue], Handler]]] = []
        """(reader, handler factory) pairs, attached to the informers by `complete()`."""
        client = manager.write_client
        self.kit = Kit(
            client=client,
            status=StatusWriter(client, controller=name, metrics=manager.metrics.writer),
            children=ChildWriter(client),
            recorder=manager.recorder,
            clock=manager.clock,
            config=manager.operator_config,
        )

    def for_(
        self,
        resource: ResourceType,
        type: type[T],
        *,
        predicate: Predicate | None = None,
        indexers: Mapping[str, IndexFunc[T]] | None = None,
    ) -> CacheReader[T]:
        """The kind this controller reconciles: each event enqueues the object itself."""
        if self._for is not None:
            raise ValueError(f"controller {self.name}: for_() was already called")
        self._for = resource
        reader = self._manager.cache.reader(resource, type, indexers=indexers)
        self._pending.append((reader, lambda enqueue: own_key(enqueue, predicate=predicate)))
        return reader

    def owns(
        self,
        resource: ResourceType,
        type: type[T],
        *,
        predicate: Predicate | None = None,
        indexers: Mapping[str, IndexFunc[T]] | None = None,
        label_selector: str | None = None,
    ) -> CacheReader[T]:
        """Children this controller creates: each event enqueues their controlling owner.
        `label_selector` keeps the cache to our children (our Jobs, not every Job)."""
        owner = self._require_for("owns")
        reader = self._manager.cache.reader(
            resource, type, indexers=indexers, label_selector=label_selector
        )
        self._pending.append(
            (
                reader,
                lambda enqueue: owner_key(
                    enqueue, kind=owner.kind, api_group=owner.group, predicate=predicate
                ),
            )
        )
        return reader

    def watches(
        self,
        resource: ResourceType,
        type: type[T],
        map_to: Callable[[T], Iterable[Request]],
        *,
        predicate: Predicate | None = None,
        indexers: Mapping[str, IndexFunc[T]] | None = None,
    ) -> CacheReader[T]:
        """Another kind whose events enqueue whatever `map_to` derives (e.g. a Story wakes its
        waiting runs, found through an index of the `for_` reader)."""
        reader = self._manager.cache.reader(resource, type, indexers=indexers)
        self._pending.append((reader, lambda enqueue: mapped(enqueue, map_to, predicate=predicate)))
        return reader

    def reads(
        self,
        resource: ResourceType,
        type: type[T],
        *,
        indexers: Mapping[str, IndexFunc[T]] | None = None,
        label_selector: str | None = None,
    ) -> CacheReader[T]:
        """A kind the reconciler only reads: cached and indexed, its events wake nothing.
        `label_selector` keeps the cache to the objects that matter (pods of our Jobs)."""
        return self._manager.cache.reader(
            resource, type, indexers=indexers, label_selector=label_selector
        )

    def order_by(self, rank: Callable[[Request], Any]) -> None:
        """Hand out ready keys lowest `rank` first instead of first come, first served (the
        rank is taken when a key becomes ready; it must not raise)."""
        self._order = rank

    def complete(self, reconciler: Reconciler) -> Controller:
        """Build the controller, attach its handlers and register it with the manager."""
        self._require_for("complete")
        metrics = self._manager.metrics
        controller = Controller(
            self.name,
            reconciler,
            workers=self._workers,
            reconcile_timeout=self._timeout,
            metrics=metrics.controller,
            queue_metrics=metrics.workqueue,
            order=self._order,
        )
        for reader, make_handler in self._pending:
            handler = make_handler(controller.enqueue)
            for informer in reader.informers:
                informer.add_handler(handler)
        self._pending.clear()
        self._manager.add_controller(controller)
        return controller

    def _require_for(self, what: str) -> ResourceType:
        if self._for is None:
            raise ValueError(f"controller {self.name}: call for_() before {what}()")
        return self._for


__all__ = ["ControllerBuilder", "Kit"]
