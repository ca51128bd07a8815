"""Install CustomResourceDefinitions and wait until they are served.

A CRD is usable when it is `Established` *and* discovery lists its resource for every served
version (envtest waits for the second; clients that discover resources need it).
Objects are created or replaced, never client-side applied: the Story CRD is ~475 KB, too large
for the last-applied annotation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from runs_controller.testing.rest import JSON, ApiStatusError, HarnessClient
from runs_controller.testing.wait import poll_until

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def load_crds(paths: Iterable[Path]) -> list[JSON]:
    """Every CustomResourceDefinition document in the given files or directories (*.yaml)."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    crds: list[JSON] = []
    for file in files:
        documents = yaml.safe_load_all(file.read_text())
        crds.extend(
            document
            for document in documents
            if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition"
        )
    return crds


def _upsert(client: HarnessClient, crd: JSON) -> None:
    name = crd["metadata"]["name"]
    created = client.request("POST", CRD_PATH, crd)
    if created.ok:
        return
    if created.status != 409:
        raise ApiStatusError("POST", CRD_PATH, created)
    current = client.get(f"{CRD_PATH}/{name}")
    replacement: dict[str, Any] = {
        **crd,
        "metadata": {**crd["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
    }
    client.replace(f"{CRD_PATH}/{name}", replacement)


def _condition(crd: JSON, kind: str) -> str | None:
    for condition in (crd.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            status: str = condition.get("status", "")
            return status
    return None


def _served(client: HarnessClient, crd: JSON) -> bool:
    name = crd["metadata"]["name"]
    observed = client.request("GET", f"{CRD_PATH}/{name}")
    if not observed.ok or _condition(observed.body, "Established") != "True":
        return False
    group = crd["spec"]["group"]
    plural = crd["spec"]["names"]["plural"]
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        discovery = client.request("GET", f"/apis/{group}/{version['name']}")
        if not discovery.ok:
            return False
        resources = {resource.get("name") for resource in discovery.body.get("resources") or []}
        if plural not in resources:
            return False
    return True


def install_crds(client: HarnessClient, paths: Iterable[Path], timeout: float = 60.0) -> list[str]:
    """Create or replace every CRD in `paths`, then wait until all are served; return names."""
    crds = load_crds(paths)
    if not crds:
        raise ValueError("no CustomResourceDefinition found in the given paths")
    for crd in crds:
        _upsert(client, crd)
    for crd in crds:
        name = crd["metadata"]["name"]

        def status(crd: JSON = crd) -> str:
            observed = client.request("GET", f"{CRD_PATH}/{crd['metadata']['name']}")
            return f"conditions: {observed.body.get('status', {}).get('conditions')}"

        def served(crd: JSON = crd) -> bool | None:
            return True if _served(client, crd) else None

        poll_until(
            served,
            timeout=timeout,
            what=f"CRD {name} to be Established and discoverable",
            on_timeout=status,
        )
    return [crd["metadata"]["name"] for crd in crds]
