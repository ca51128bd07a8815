"""The committed core-type schemas are exactly what the pinned kube-apiserver serves."""

from __future__ import annotations

import json

from runs_controller.api.crdgen import k8s_openapi
from runs_controller.testing import HarnessClient


def test_snapshot_matches_the_live_apiserver(admin_client: HarnessClient) -> None:
    live = k8s_openapi.snapshot_from_server(admin_client)
    committed = json.loads(k8s_openapi.SNAPSHOT.read_text())
    assert live["source"] == committed["source"]
    assert sorted(live["schemas"]) == sorted(committed["schemas"])
    for name, schema in live["schemas"].items():
        assert committed["schemas"][name] == schema, (
            f"{name} changed; refresh with `runs-controller manifests --refresh-core-schemas`"
        )
    assert k8s_openapi.render_snapshot(live) == k8s_openapi.SNAPSHOT.read_text()
