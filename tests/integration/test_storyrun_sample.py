"""The sample Story of manifests/samples (every batch primitive) runs to its expected phase."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from runs_controller.api.bubustack.engram import Engram
from runs_controller.api.bubustack.story import Story
from runs_controller.api.catalog.engramtemplate import EngramTemplate
from runs_controller.api.runs.steprun import StepRun
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.kube.client import KubeClient
from runs_controller.kube.errors import AlreadyExists
from runs_controller.kube.resources import ENGRAM_TEMPLATES, ENGRAMS, STORIES, STORY_RUNS
from tests.integration.storyrun_support import (
    Decision,
    FakeSdk,
    fake_sdk,
    list_stepruns,
    merge_patch_run,
    resolved_input,
    running_controller,
    step_phase,
    wait_for_phase,
    wait_for_run,
)
from tests.paths import SAMPLES_DIR

pytestmark = pytest.mark.timeout(240)

KINDS: dict[str, tuple[Any, type[Any]]] = {
    "EngramTemplate": (ENGRAM_TEMPLATES, EngramTemplate),
    "Engram": (ENGRAMS, Engram),
    "Story": (STORIES, Story),
}


def _samples(namespace: str) -> list[dict[str, Any]]:
    documents = []
    for path in sorted(SAMPLES_DIR.glob("*.yaml")):
        document: dict[str, Any] = yaml.safe_load(path.read_text())
        if "namespace" in document.get("metadata", {}):
            document["metadata"]["namespace"] = namespace
        documents.append(document)
    return documents


async def _fetcher(sdk: FakeSdk, steprun: StepRun) -> Decision:
    """The sample's http-client Engram: 200 and a body naming the URL it was given."""
    given = await resolved_input(sdk.client, steprun)
    if steprun.spec.step_id == "branch-b":
        return "Failed", None  # allowFailure: the parallel step still succeeds
    return "Succeeded", {"status": 200, "body": f"fetched {given.get('url')}"}


async def test_the_sample_story_runs_every_primitive_to_succeeded(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    documents = _samples(namespace)
    for document in documents:
        if document["kind"] in KINDS:
            resource, kind = KINDS[document["kind"]]
            try:
                await client.create(
                    resource, document, document["metadata"].get("namespace"), type=kind
                )
            except AlreadyExists:
                assert document["kind"] == "EngramTemplate"  # cluster-scoped, shared by tests
    run_document = next(d for d in documents if d["kind"] == "StoryRun")
    name = run_document["metadata"]["name"]
    async with running_controller(client, namespace), fake_sdk(client, namespace, _fetcher):
        await client.create(STORY_RUNS, run_document, namespace, type=StoryRun)
        await wait_for_run(
            client, namespace, name, lambda r: step_phase(r, "approve") == "Paused", "the gate"
        )
        await merge_patch_run(
            client,
            namespace,
            name,
            {"status": {"gates": {"approve": {"state": "Approved", "message": "go"}}}},
            status=True,
        )
        run = await wait_for_phase(
            client, namespace, name, {"Succeeded", "Failed", "Compensated", "Timeout"}, within=120
        )
    assert run.status is not None
    assert run.status.phase == "Succeeded", (run.status.message, run.status.step_states)
    assert run.status.output == {"status": 200}
    states = {k: v.phase for k, v in (run.status.step_states or {}).items()}
    assert states["bail"] == "Skipped"  # proceed defaults to true: the stop's `if` is false
    assert states["undo-report"] == "Skipped"  # the story succeeded: no compensation
    for step in (
        "fetch-feed",
        "ok",
        "approve",
        "wait-ready",
        "pause",
        "fan-out",
        "sub",
        "report",
        "notify",
    ):
        assert states[step] == "Succeeded", step
    assert run.status.steps_total == 11
    steps = sorted(sr.spec.step_id for sr in await list_stepruns(client, namespace))
    assert steps == ["branch-a", "branch-b", "echo-x", "fetch-feed", "notify", "report"]
