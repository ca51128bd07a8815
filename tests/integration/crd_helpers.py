"""Shared helpers for tests that install the project's CRDs and create objects of them."""

from __future__ import annotations

import copy
import secrets
from pathlib import Path
from typing import Any

import yaml

from runs_controller.api.kinds import BY_KIND
from runs_controller.api.schema import ResourceInfo
from runs_controller.testing import HarnessClient
from tests.paths import SAMPLES_DIR


def resource_path(info: ResourceInfo, namespace: str | None, name: str | None = None) -> str:
    base = f"/apis/{info.group}/{info.version}"
    if info.scope == "Namespaced":
        base += f"/namespaces/{namespace}"
    base += f"/{info.plural}"
    return f"{base}/{name}" if name else base


def info_of(kind: str) -> ResourceInfo:
    return BY_KIND[kind][1]


def sample(kind: str, namespace: str) -> dict[str, Any]:
    """A fresh copy of the kind's sample, moved into `namespace` (cluster kinds get a unique
    name instead, since tests share the cluster)."""
    for path in sorted(SAMPLES_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(Path(path).read_text()):
            if document and document["kind"] == kind:
                fresh: dict[str, Any] = copy.deepcopy(document)
                if info_of(kind).scope == "Namespaced":
                    fresh["metadata"]["namespace"] = namespace
                else:
                    fresh["metadata"]["name"] += "-" + secrets.token_hex(3)
                return fresh
    raise KeyError(f"no sample of kind {kind}")


def create(client: HarnessClient, document: dict[str, Any]) -> dict[str, Any]:
    info = info_of(document["kind"])
    namespace = document["metadata"].get("namespace")
    return client.create(resource_path(info, namespace), document)
