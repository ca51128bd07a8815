"""kwok's stages for the local stack: Job pods complete unless a dev executor runs their image."""

from __future__ import annotations

from typing import Any

import yaml

from runs_controller.testing.kwok import NODE_ANNOTATION, fake_node, stages_yaml


def _stages(images: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
    documents = list(yaml.safe_load_all(stages_yaml(images)))
    return {doc["metadata"]["name"]: doc for doc in documents}


def test_the_four_stages_cover_node_ready_running_completion_and_deletion() -> None:
    stages = _stages()
    assert set(stages) == {"node-ready", "pod-running", "job-pod-succeeded", "pod-deleted"}
    assert all(doc["kind"] == "Stage" for doc in stages.values())
    assert stages["pod-deleted"]["spec"]["next"] == {"delete": True}
    owner = {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job"]}
    assert owner in stages["job-pod-succeeded"]["spec"]["selector"]["matchExpressions"]


def test_pods_of_executor_images_are_left_running_for_the_executor() -> None:
    expressions = _stages(frozenset({"b:1", "a:1"}))["job-pod-succeeded"]["spec"]["selector"][
        "matchExpressions"
    ]
    image = [e for e in expressions if e["key"] == ".spec.containers.[0].image"]
    assert image == [
        {"key": ".spec.containers.[0].image", "operator": "NotIn", "values": ["a:1", "b:1"]}
    ]
    without = _stages()["job-pod-succeeded"]["spec"]["selector"]["matchExpressions"]
    assert not [e for e in without if e["key"] == ".spec.containers.[0].image"]


def test_the_fake_node_is_selected_by_annotation_and_untainted() -> None:
    node = fake_node()
    assert node["metadata"]["annotations"] == {NODE_ANNOTATION: "fake"}
    assert "taints" not in node.get("spec", {})
    assert int(node["status"]["allocatable"]["pods"]) >= 100
