"""The chart's RBAC, applied to a real apiserver, is enough for the controller and no more.

The Roles and bindings `helm template` renders (watching one namespace) are applied; the four
controllers run in this process as the chart's ServiceAccount through a StoryRun of engram steps,
a StoryTrigger and EffectClaims, and no request of theirs may be refused. The apiserver here
also enforces OwnerReferencesPermissionEnforcement (as OpenShift does), so the `finalizers` rules
are exercised too. SubjectAccessReviews then show what the identity cannot do.
"""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runs_controller.api.runs.effectclaim import EffectClaim
from runs_controller.api.runs.storytrigger import StoryTrigger
from runs_controller.engine.naming import derive_effectclaim_name, derive_storytrigger_name
from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.kube.errors import Forbidden, NotFound
from runs_controller.kube.resources import EFFECT_CLAIMS, STORY_TRIGGERS
from runs_controller.testing import ControlPlane, ControlPlaneConfig, install_crds
from runs_controller.testing.binaries import find_binary
from runs_controller.testing.wait import poll_until_async
from tests.integration.steprun_support import echo, fake_kubelet, get_steprun
from tests.integration.storyrun_support import (
    create_engram,
    create_run,
    create_story,
    engram_step,
    running_controller,
    wait_for_phase,
)
from tests.paths import CRD_DIR, REPO_ROOT

pytestmark = pytest.mark.timeout(240)

CHART = REPO_ROOT / "charts" / "runs-controller"
LEASE = "rc-chart-test"
CONFIG = "rc-operator-config"


class RecordingClient(KubeClient):
    """The controller's client; every request the apiserver refused is noted."""

    requests: list[str]
    forbidden: list[str]

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        self.requests.append(f"{method} {path}")
        try:
            return await super()._call(method, path, **kwargs)
        except Forbidden:
            self.forbidden.append(f"{method} {path}")
            raise


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    """A control plane of its own: the shared one does not enforce owner-reference rights."""
    config = ControlPlaneConfig(
        extra_apiserver_args=["--enable-admission-plugins=OwnerReferencesPermissionEnforcement"]
    )
    with ControlPlane(config) as control_plane:
        install_crds(control_plane.admin, [CRD_DIR], timeout=120)
        yield control_plane


def _render(release_namespace: str, watched: str) -> list[dict[str, Any]]:
    """The chart as installed in `release_namespace` (also the release's name, so the
    cluster-scoped objects of two tests do not collide), watching `watched`."""
    argv = [
        str(find_binary("helm")),
        "template",
        release_namespace,
        str(CHART),
        "--namespace",
        release_namespace,
        "--set",
        f"watchNamespaces={{{watched}}}",
        "--set",
        f"leaderElection.id={LEASE}",
        "--set",
        f"operatorConfig.name={CONFIG}",
        "--set-string",
        "operatorConfig.data.retry\\.max-retries=2",
    ]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


PATHS = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
}


def _service_account(release_namespace: str) -> str:
    return f"{release_namespace}-runs-controller"


@pytest.fixture
def release(plane: ControlPlane) -> Iterator[tuple[str, str]]:
    """(release namespace, watched namespace) with the chart's identity and RBAC applied."""
    release_ns = plane.create_namespace("rel")
    watched = plane.create_namespace("work")
    applied = []
    for obj in _render(release_ns, watched):
        if obj["kind"] not in PATHS:
            continue  # the Deployment and Service: the controller runs in this process
        namespace = obj["metadata"].get("namespace", "")
        plane.admin.create(PATHS[obj["kind"]].format(ns=namespace), obj)
        applied.append(obj["kind"])
    assert sorted(set(applied)) == sorted(PATHS)
    try:
        yield release_ns, watched
    finally:
        for name in (release_ns, watched):
            plane.delete_namespace(name)


@pytest.fixture
async def controller_client(
    plane: ControlPlane, release: tuple[str, str]
) -> AsyncIterator[RecordingClient]:
    kubeconfig: Path = plane.service_account_kubeconfig(release[0], _service_account(release[0]))
    client = RecordingClient(await load_kubeconfig(kubeconfig))
    client.requests, client.forbidden = [], []
    async with client:
        yield client


@pytest.fixture
async def admin(plane: ControlPlane) -> AsyncIterator[KubeClient]:
    async with KubeClient(await load_kubeconfig(plane.kubeconfig_path)) as client:
        yield client


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _trigger(admin: KubeClient, namespace: str) -> StoryTrigger:
    name = derive_storytrigger_name(namespace, "chain", "", "sub-1")
    body = {
        "apiVersion": "runs.bubustack.io/v1alpha1",
        "kind": "StoryTrigger",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"storyRef": {"name": "chain"}, "deliveryIdentity": {"submissionId": "sub-1"}},
    }
    await admin.create(STORY_TRIGGERS, body, namespace, type=StoryTrigger)

    async def decided() -> StoryTrigger | None:
        trigger = await admin.get(STORY_TRIGGERS, name, namespace, type=StoryTrigger)
        return trigger if trigger.status and trigger.status.decision == "Created" else None

    result: StoryTrigger = await poll_until_async(decided, within=60, what="the trigger")
    return result


def _claim(namespace: str, step: str, uid: str | None, key: str) -> dict[str, Any]:
    ref = {"name": step, **({"uid": uid} if uid else {})}
    return {
        "apiVersion": "runs.bubustack.io/v1alpha1",
        "kind": "EffectClaim",
        "metadata": {"name": derive_effectclaim_name(namespace, step, key), "namespace": namespace},
        "spec": {
            "stepRunRef": ref,
            "effectKey": key,
            "holderIdentity": "holder:chart",
            "acquireTime": _now().replace("Z", ".000000Z"),
            "renewTime": _now().replace("Z", ".000000Z"),
            "leaseDurationSeconds": 600,
            "completionStatus": "completed",
            "completedAt": _now(),
        },
    }


async def _claims(admin: KubeClient, namespace: str, steprun_uid: str | None) -> None:
    """A completed claim of a real StepRun is completed; one of a missing StepRun is deleted."""
    done = _claim(namespace, "c1-fetch", steprun_uid, "charge")
    orphan = _claim(namespace, "gone", None, "refund")
    for body in (done, orphan):
        await admin.create(EFFECT_CLAIMS, body, namespace, type=EffectClaim)

    async def settled() -> bool | None:
        claim = await admin.get(
            EFFECT_CLAIMS, done["metadata"]["name"], namespace, type=EffectClaim
        )
        if claim.status is None or claim.status.phase != "Completed":
            return None
        try:
            await admin.get(EFFECT_CLAIMS, orphan["metadata"]["name"], namespace, type=EffectClaim)
        except NotFound:
            return True
        return None

    await poll_until_async(settled, within=60, what="the claims to settle")


async def test_the_chart_rbac_lets_the_controllers_run_everything(
    admin: KubeClient, controller_client: RecordingClient, release: tuple[str, str]
) -> None:
    release_ns, namespace = release
    await create_engram(admin, namespace)
    spec = {"steps": [engram_step("fetch"), engram_step("store", needs=["fetch"])]}
    await create_story(admin, namespace, "chain", spec)
    overrides: dict[str, Any] = {
        "leader_election_namespace": release_ns,
        "leader_election_id": LEASE,
        "config_namespace": release_ns,
        "config_name": CONFIG,
    }
    async with (
        running_controller(controller_client, namespace, **overrides) as manager,
        fake_kubelet(admin, namespace, echo()),
    ):
        await create_run(admin, namespace, "c1", "chain", {"n": 1})
        run = await wait_for_phase(admin, namespace, "c1", {"Succeeded", "Failed"})
        assert run.status is not None and run.status.phase == "Succeeded", run.status
        fetch = await get_steprun(admin, namespace, "c1-fetch")
        await _claims(admin, namespace, fetch.metadata.uid if fetch.metadata else None)
        trigger = await _trigger(admin, namespace)
        assert trigger.status is not None and trigger.status.story_run_ref is not None
        triggered = trigger.status.story_run_ref.name
        second = await wait_for_phase(admin, namespace, triggered, {"Succeeded", "Failed"})
        assert second.status is not None and second.status.phase == "Succeeded"
        # The operator ConfigMap was read through its by-name rule.
        assert manager.operator_config.current().max_retries == 2
    assert controller_client.forbidden == []
    verbs = {request.split(" ")[0] for request in controller_client.requests}
    assert {"GET", "POST", "PATCH", "PUT", "DELETE"} <= verbs  # every kind of write ran


def _allowed(plane: ControlPlane, user: str, **attributes: str) -> bool:
    review = plane.admin.create(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "resourceAttributes": attributes},
        },
    )
    return bool(review["status"].get("allowed"))


def test_the_chart_identity_can_do_nothing_else(
    plane: ControlPlane, release: tuple[str, str]
) -> None:
    release_ns, watched = release
    user = f"system:serviceaccount:{release_ns}:{_service_account(release_ns)}"

    def can(verb: str, resource: str, namespace: str = "", **more: str) -> bool:
        return _allowed(plane, user, verb=verb, resource=resource, namespace=namespace, **more)

    # What it needs (the reviews answer as the authorizer would).
    assert can("create", "jobs", watched, group="batch")
    assert can("list", "stepruns", watched, group="runs.bubustack.io")
    assert can("watch", "engramtemplates", group="catalog.bubustack.io")
    assert can("update", "leases", release_ns, group="coordination.k8s.io", name=LEASE)
    assert can("watch", "configmaps", release_ns, name=CONFIG)
    # Secrets: nowhere, not even in the namespaces it watches.
    for namespace in ("", watched, release_ns):
        assert not can("list", "secrets", namespace)
        assert not can("get", "secrets", namespace, name="anything")
    # ConfigMaps: only the operator's, only in the release namespace, only list/watch.
    assert not can("list", "configmaps")
    assert not can("list", "configmaps", watched)
    assert not can("get", "configmaps", release_ns, name="other")
    assert not can("update", "configmaps", release_ns, name=CONFIG)
    # Other workloads, other namespaces, other Leases, escalation.
    assert not can("create", "deployments", watched, group="apps")
    assert not can("create", "pods", watched)
    assert not can("delete", "pods", watched)
    assert not can("list", "stepruns", "default", group="runs.bubustack.io")
    assert not can("list", "stepruns", "", group="runs.bubustack.io")
    assert not can("create", "jobs", "default", group="batch")
    assert not can("update", "leases", release_ns, group="coordination.k8s.io", name="other")
    assert not can("escalate", "roles", watched, group="rbac.authorization.k8s.io")
    assert not can("bind", "clusterroles", "", group="rbac.authorization.k8s.io")
    assert not can("impersonate", "serviceaccounts", watched)
