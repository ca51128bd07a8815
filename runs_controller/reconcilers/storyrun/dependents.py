"""The children of a StoryRun: finding them in the cache, deleting and signalling them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from runs_controller.api.runs.steprun import StepRun
from runs_controller.engine import keys
from runs_controller.kube.errors import NotFound
from runs_controller.kube.resources import STEP_RUNS, STORY_RUNS
from runs_controller.runtime.children import delete_exactly

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

    from runs_controller.api.runs.storyrun import StoryRun
    from runs_controller.kube.client import KubeClient
    from runs_controller.runtime.cache import CacheReader

log = structlog.get_logger("runs_controller.storyrun")


def _uid(obj: Any) -> str:
    return str(obj.metadata.uid or "") if obj.metadata is not None else ""


class Dependents:
    """The StepRuns and child StoryRuns a run controls, read from the cache by owner UID."""

    def __init__(self, stepruns: CacheReader[StepRun], runs: CacheReader[StoryRun]) -> None:
        self.stepruns = stepruns
        self.runs = runs

    def stepruns_of(self, run: StoryRun) -> list[StepRun]:
        uid = _uid(run)
        return sorted(
            (sr for sr in self.stepruns.owned_by(uid) if _controlled_by(sr, uid)),
            key=lambda sr: sr.metadata.name or "" if sr.metadata else "",
        )

    def children_of(self, run: StoryRun) -> list[StoryRun]:
        uid = _uid(run)
        return [child for child in self.runs.owned_by(uid) if _controlled_by(child, uid)]

    def all_of(self, run: StoryRun) -> tuple[list[StepRun], list[StoryRun]]:
        return self.stepruns_of(run), self.children_of(run)


def _controlled_by(obj: Any, uid: str) -> bool:
    meta = obj.metadata
    return meta is not None and any(
        ref.uid == uid and ref.controller for ref in meta.owner_references or []
    )


async def delete_all(
    client: KubeClient, stepruns: Iterable[StepRun], children: Iterable[StoryRun]
) -> int:
    """Delete (background propagation, ruling 28) what is not already being deleted; returns
    how many objects still exist."""
    remaining = 0
    for resource, objects in ((STEP_RUNS, list(stepruns)), (STORY_RUNS, list(children))):
        for obj in objects:
            remaining += 1
            meta = obj.metadata
            if meta is None or meta.deletion_timestamp is not None:
                continue
            if not await delete_exactly(client, resource, obj):
                remaining -= 1
    return remaining


async def signal_cancel(
    client: KubeClient, stepruns: Iterable[StepRun], *, force: bool, final: Collection[str]
) -> int:
    """Annotate every StepRun that is not final with the drain signal; delete them when `force`.
    Returns how many are still not final."""
    pending = 0
    for steprun in stepruns:
        meta = steprun.metadata
        if meta is None or (meta.name or "") in final:
            continue
        pending += 1
        annotations = meta.annotations or {}
        if annotations.get(keys.ANNOTATION_CANCEL_REQUESTED) != "true":
            try:
                await client.merge_patch(
                    STEP_RUNS,
                    meta.name or "",
                    {"metadata": {"annotations": {keys.ANNOTATION_CANCEL_REQUESTED: "true"}}},
                    meta.namespace,
                    type=StepRun,
                )
            except NotFound:
                pending -= 1
                continue
        if (
            force
            and meta.deletion_timestamp is None
            and not await delete_exactly(client, STEP_RUNS, steprun)
        ):
            pending -= 1
    return pending
