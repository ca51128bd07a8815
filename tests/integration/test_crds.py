"""The generated CRDs on a real apiserver: installed, samples accepted, columns, field selectors."""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from runs_controller.api.codec import decode, encode
from runs_controller.api.kinds import ALL_KINDS, BY_KIND
from runs_controller.testing import HarnessClient, find_binary
from tests.integration.crd_helpers import create, info_of, resource_path, sample

NOW = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_every_generated_crd_is_established(crds: list[str]) -> None:
    assert sorted(crds) == sorted(info.crd_name for _, info in ALL_KINDS)


@pytest.mark.parametrize(
    "kind",
    ["EngramTemplate", "Engram", "Story", "StoryRun", "StoryTrigger", "EffectClaim"],
)
def test_every_sample_is_accepted_and_reads_back(
    admin_client: HarnessClient, crds: list[str], namespace: str, kind: str
) -> None:
    document = sample(kind, namespace)
    created = create(admin_client, document)
    info = info_of(kind)
    read = admin_client.get(
        resource_path(info, created["metadata"].get("namespace"), created["metadata"]["name"])
    )
    assert read["spec"] == _with_defaults(kind, document["spec"], read["spec"])
    # What the apiserver stores (uid, managedFields, defaults, ...) survives our Structs intact.
    root, _ = BY_KIND[kind]
    assert json.loads(encode(decode(json.dumps(read).encode(), root))) == read


def _with_defaults(kind: str, sent: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """What the apiserver stores: what we sent plus the CRD's defaults (only the Story has
    defaulted fields among the samples)."""
    expected = dict(sent)
    if kind == "Story":
        expected.setdefault("pattern", "batch")
    for key in stored.keys() - expected.keys():
        pytest.fail(f"{kind}: unexpected stored field spec.{key}={stored[key]!r}")
    return expected


def _set_status(
    client: HarnessClient, kind: str, namespace: str, name: str, status: dict[str, Any]
) -> dict[str, Any]:
    path = resource_path(info_of(kind), namespace, name)
    current = client.get(path)
    current["status"] = status
    return client.replace(f"{path}/status", current)


def _storyrun(namespace: str, name: str, story: str) -> dict[str, Any]:
    document = sample("StoryRun", namespace)
    document["metadata"]["name"] = name
    document["spec"]["storyRef"] = {"name": story}
    return document


def _running(phase: str) -> dict[str, Any]:
    return {
        "phase": phase,
        "duration": "1m5s",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": phase,
                "message": "",
                "lastTransitionTime": NOW,
            }
        ],
    }


def _kubectl(kubeconfig: Path, *args: str) -> list[list[str]]:
    result = subprocess.run(
        [str(find_binary("kubectl")), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line.split() for line in result.stdout.splitlines()]


def test_kubectl_prints_the_printer_columns(
    admin_client: HarnessClient, crds: list[str], namespace: str, kubeconfig: Path
) -> None:
    create(admin_client, _storyrun(namespace, "run-a", "story-a"))
    _set_status(admin_client, "StoryRun", namespace, "run-a", _running("Running"))
    for resource in ("storyruns", "srun", "storyrun.runs.bubustack.io"):
        rows = _kubectl(kubeconfig, "get", resource, "-n", namespace)
        assert rows[0] == ["NAME", "STORY", "PHASE", "DURATION", "AGE"]
        assert rows[1][:4] == ["run-a", "story-a", "Running", "1m5s"]


def test_the_bubu_category_lists_every_kind_in_it(
    admin_client: HarnessClient, crds: list[str], namespace: str, kubeconfig: Path
) -> None:
    create(admin_client, _storyrun(namespace, "run-b", "story-b"))
    create(admin_client, sample("EffectClaim", namespace))
    rows = _kubectl(kubeconfig, "get", "bubu", "-n", namespace, "-o", "name")
    # Cluster-scoped EngramTemplates (bubu too) of other tests show up as well: ignore them.
    names = {row[0] for row in rows if not row[0].startswith("engramtemplate.")}
    assert names == {
        "storyrun.runs.bubustack.io/run-b",
        "effectclaim.runs.bubustack.io/example-step-effect-f593b593cad9418d",
    }


def test_field_selectors_on_selectable_fields(
    admin_client: HarnessClient, crds: list[str], namespace: str
) -> None:
    for name, story, phase in (
        ("r1", "alpha", "Running"),
        ("r2", "alpha", "Succeeded"),
        ("r3", "beta", "Running"),
    ):
        create(admin_client, _storyrun(namespace, name, story))
        _set_status(admin_client, "StoryRun", namespace, name, _running(phase))
    path = resource_path(info_of("StoryRun"), namespace)

    def names(selector: str) -> list[str]:
        listed = admin_client.get(path, query={"fieldSelector": selector})
        return sorted(item["metadata"]["name"] for item in listed["items"])

    assert names("spec.storyRef.name=alpha") == ["r1", "r2"]
    assert names("status.phase=Running") == ["r1", "r3"]
    assert names("spec.storyRef.name=alpha,status.phase=Running") == ["r1"]
    refused = admin_client.request("GET", path, query={"fieldSelector": "spec.inputs.url=x"})
    assert refused.status == 400


def test_steprun_field_selectors(
    admin_client: HarnessClient, crds: list[str], namespace: str
) -> None:
    info = info_of("StepRun")
    for name, run, step in (
        ("s1", "run-1", "fetch"),
        ("s2", "run-1", "report"),
        ("s3", "run-2", "fetch"),
    ):
        admin_client.create(
            resource_path(info, namespace),
            {
                "apiVersion": info.api_version,
                "kind": "StepRun",
                "metadata": {"name": name},
                "spec": {"storyRunRef": {"name": run}, "stepId": step},
            },
        )
    path = resource_path(info, namespace)

    def names(selector: str) -> list[str]:
        listed = admin_client.get(path, query={"fieldSelector": selector})
        return sorted(item["metadata"]["name"] for item in listed["items"])

    assert names("spec.storyRunRef.name=run-1") == ["s1", "s2"]
    assert names("spec.stepId=fetch") == ["s1", "s3"]
