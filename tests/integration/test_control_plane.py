"""The session control plane: version, namespaces, CRDs, objects."""

from __future__ import annotations

from runs_controller.testing import ControlPlane, HarnessClient, install_crds
from runs_controller.testing.binaries import read_pinned_versions
from tests.paths import reference_crd

STORYRUN_CRD = "runs.bubustack.io_storyruns.yaml"


def test_apiserver_reports_the_pinned_version(admin_client: HarnessClient) -> None:
    version = admin_client.get("/version")
    assert version["gitVersion"] == read_pinned_versions().kubernetes
    assert version["major"] == "1"
    assert version["minor"] == read_pinned_versions().kubernetes.split(".")[1]


def test_readyz_reports_every_check_ok(admin_client: HarnessClient) -> None:
    response = admin_client.request("GET", "/readyz", query={"verbose": "1"})
    assert response.status == 200
    text = response.body["message"]
    assert "readyz check passed" in text
    assert "[+]etcd ok" in text


def test_namespace_is_created_and_deleted(control_plane: ControlPlane) -> None:
    name = control_plane.create_namespace("lifecycle")
    created = control_plane.admin.get(f"/api/v1/namespaces/{name}")
    assert created["status"]["phase"] == "Active"
    control_plane.delete_namespace(name)
    # Without kube-controller-manager nobody finalizes the namespace: it stays Terminating.
    deleted = control_plane.admin.get(f"/api/v1/namespaces/{name}")
    assert deleted["status"]["phase"] == "Terminating"
    assert "deletionTimestamp" in deleted["metadata"]


def test_namespace_fixture_gives_a_fresh_active_namespace(
    admin_client: HarnessClient, namespace: str
) -> None:
    assert admin_client.get(f"/api/v1/namespaces/{namespace}")["status"]["phase"] == "Active"
    configmaps = admin_client.get(f"/api/v1/namespaces/{namespace}/configmaps")
    assert configmaps["items"] == []


def test_crd_is_established_and_its_objects_round_trip(
    admin_client: HarnessClient, namespace: str
) -> None:
    names = install_crds(admin_client, [reference_crd(STORYRUN_CRD)])
    assert names == ["storyruns.runs.bubustack.io"]
    crd = admin_client.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{names[0]}")
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"

    path = f"/apis/runs.bubustack.io/v1alpha1/namespaces/{namespace}/storyruns"
    run = {
        "apiVersion": "runs.bubustack.io/v1alpha1",
        "kind": "StoryRun",
        "metadata": {"name": "hello", "labels": {"app": "demo"}},
        "spec": {"storyRef": {"name": "greeter"}, "inputs": {"who": "world", "n": 3}},
    }
    created = admin_client.create(path, run)
    assert created["metadata"]["uid"]
    read = admin_client.get(f"{path}/hello")
    assert read["spec"]["storyRef"] == {"name": "greeter"}
    assert read["spec"]["inputs"] == {"who": "world", "n": 3}
    assert read["metadata"]["labels"] == {"app": "demo"}
    listed = admin_client.get(path, query={"labelSelector": "app=demo"})
    assert [item["metadata"]["name"] for item in listed["items"]] == ["hello"]


def test_installing_the_same_crd_again_is_idempotent(admin_client: HarnessClient) -> None:
    first = install_crds(admin_client, [reference_crd(STORYRUN_CRD)])
    second = install_crds(admin_client, [reference_crd(STORYRUN_CRD)])
    assert first == second


def test_crd_schema_is_enforced(admin_client: HarnessClient, namespace: str) -> None:
    install_crds(admin_client, [reference_crd(STORYRUN_CRD)])
    path = f"/apis/runs.bubustack.io/v1alpha1/namespaces/{namespace}/storyruns"
    invalid = {
        "apiVersion": "runs.bubustack.io/v1alpha1",
        "kind": "StoryRun",
        "metadata": {"name": "no-story-ref"},
        "spec": {},
    }
    response = admin_client.request("POST", path, invalid)
    assert response.status == 422, response.body
    assert "storyRef" in response.body["message"]
