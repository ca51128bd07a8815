from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from runs_controller.api.crdgen.diff import (
    AllowEntry,
    Difference,
    diff_crds,
    diff_directories,
    load_allow_list,
    partition,
)
from runs_controller.api.crdgen.generate import crd_document, render
from runs_controller.api.runs.effectclaim import EFFECT_CLAIM, EffectClaim


@pytest.fixture
def crd() -> dict[str, Any]:
    return crd_document(EffectClaim, EFFECT_CLAIM)


def _schema(document: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_identical_crds_have_no_differences(crd: dict[str, Any]) -> None:
    assert diff_crds(crd, copy.deepcopy(crd)) == []


def test_every_validation_aspect_is_reported(crd: dict[str, Any]) -> None:
    theirs = copy.deepcopy(crd)
    spec = _schema(theirs)["properties"]["spec"]
    spec["properties"]["effectKey"]["maxLength"] = 255
    spec["properties"]["effectKey"]["pattern"] = "^x$"
    spec["properties"]["completionStatus"]["enum"] = ["completed"]
    spec["properties"]["leaseDurationSeconds"]["minimum"] = 0
    spec["properties"]["details"].pop("x-kubernetes-preserve-unknown-fields")
    spec["required"].append("holderIdentity")
    spec["properties"]["newField"] = {"type": "string"}
    del spec["properties"]["renewTime"]
    status = _schema(theirs)["properties"]["status"]
    status["x-kubernetes-validations"].append({"rule": "true", "message": "m"})
    status["properties"]["conditions"]["items"]["properties"]["status"]["enum"] = ["True"]
    status["properties"]["conditions"]["x-kubernetes-list-type"] = "atomic"
    theirs["spec"]["names"]["shortNames"] = ["ec"]
    theirs["spec"]["versions"][0]["additionalPrinterColumns"].pop()

    found = {(d.path, d.aspect) for d in diff_crds(crd, theirs)}
    assert found == {
        (".spec.effectKey", "maxLength"),
        (".spec.effectKey", "pattern"),
        (".spec.completionStatus", "enum"),
        (".spec.leaseDurationSeconds", "minimum"),
        (".spec.details", "x-kubernetes-preserve-unknown-fields"),
        (".spec.holderIdentity", "required"),
        (".spec.newField", "field"),
        (".spec.renewTime", "field"),
        (".status", "rule"),
        (".status.conditions[*].status", "enum"),
        (".status.conditions", "x-kubernetes-list-type"),
        ("spec.names.shortNames", "value"),
        ("spec.versions[v1alpha1].additionalPrinterColumns", "value"),
    }


def test_descriptions_and_enum_order_are_ignored(crd: dict[str, Any]) -> None:
    theirs = copy.deepcopy(crd)
    spec = _schema(theirs)["properties"]["spec"]
    spec["description"] = "something else"
    spec["properties"]["completionStatus"]["enum"].reverse()
    assert diff_crds(crd, theirs) == []


def test_directories_are_compared_by_kind(tmp_path: Path, crd: dict[str, Any]) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    (ours / "a.yaml").write_text(render(crd))
    other = copy.deepcopy(crd)
    other["spec"]["names"]["kind"] = "Other"
    (theirs / "b.yaml").write_text(render(crd) + render(other))
    assert diff_directories(ours, theirs) == [Difference("Other", "", "crd", "False", "True")]


def test_allow_list_explains_and_reports_stale_entries(tmp_path: Path) -> None:
    allow = tmp_path / "allow.yaml"
    allow.write_text(
        yaml.safe_dump(
            [
                {"kind": "StoryRun", "path": ".spec", "aspect": "rule", "reason": "immutability"},
                {"kind": "*", "path": ".status.*", "aspect": "enum", "reason": "newer values"},
                {"kind": "Story", "path": ".nothing", "reason": "stale"},
            ]
        )
    )
    entries = load_allow_list(allow)
    differences = [
        Difference("StoryRun", ".spec", "rule", "r", "-"),
        Difference("StepRun", ".status.phase", "enum", "a", "b"),
        Difference("StepRun", ".spec.x", "maxLength", "1", "2"),
    ]
    unexplained, explained, stale = partition(differences, entries)
    assert unexplained == [differences[2]]
    assert explained == differences[:2]
    assert stale == [AllowEntry("Story", ".nothing", "*", "stale")]


def test_allow_list_entries_need_a_reason(tmp_path: Path) -> None:
    allow = tmp_path / "allow.yaml"
    allow.write_text(yaml.safe_dump([{"kind": "Story", "path": ".spec"}]))
    with pytest.raises(ValueError, match="reason"):
        load_allow_list(allow)
