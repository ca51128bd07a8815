"""Identities minted by the harness are subject to RBAC, exactly as in a real cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from runs_controller.testing import ControlPlane, Credentials, HarnessClient
from runs_controller.testing.wait import poll_until_async


async def _list_configmaps_status(kubeconfig: Path, namespace: str) -> int:
    """HTTP status of `list configmaps` in `namespace`, through a standard client + kubeconfig."""
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    async with client.ApiClient(configuration) as api:
        try:
            await client.CoreV1Api(api).list_namespaced_config_map(namespace)
        except ApiException as error:
            return int(error.status)
    return 200


def _grant_configmap_reader(admin: HarnessClient, namespace: str, subject: dict[str, str]) -> None:
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    admin.create(
        f"{rbac}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "configmap-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
    )
    admin.create(
        f"{rbac}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "configmap-reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "configmap-reader",
            },
            "subjects": [subject],
        },
    )


async def _await_status(kubeconfig: Path, namespace: str, expected: int) -> None:
    async def probe() -> bool | None:
        return True if await _list_configmaps_status(kubeconfig, namespace) == expected else None

    await poll_until_async(probe, within=30, what=f"list configmaps to answer {expected}")


@pytest.mark.parametrize("kind", ["User", "ServiceAccount"])
async def test_identity_is_refused_until_a_role_binding_grants_it(
    control_plane: ControlPlane, namespace: str, kind: str
) -> None:
    if kind == "User":
        kubeconfig = control_plane.user_kubeconfig("alice", ("developers",))
        subject = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}
    else:
        kubeconfig = control_plane.service_account_kubeconfig(namespace, "robot")
        subject = {"kind": "ServiceAccount", "name": "robot", "namespace": namespace}

    assert await _list_configmaps_status(kubeconfig, namespace) == 403
    _grant_configmap_reader(control_plane.admin, namespace, subject)
    # The RBAC authorizer reads from an informer: the grant takes effect within moments.
    await _await_status(kubeconfig, namespace, 200)
    # Only what was granted: another namespace is still refused.
    assert await _list_configmaps_status(kubeconfig, "default") == 403


def test_anonymous_requests_are_refused_but_health_is_public(control_plane: ControlPlane) -> None:
    anonymous = HarnessClient(control_plane.server, control_plane.ca_file, Credentials())
    assert anonymous.request("GET", "/api/v1/namespaces").status in {401, 403}
    assert anonymous.request("GET", "/readyz").status == 200
