"""The manager as the controller runs it, in this process, against the real apiserver:
readiness with every informer synced, a cache that never syncs, and leader fencing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import pytest
from prometheus_client import CollectorRegistry

from runs_controller.api.k8s import ConfigMap, Lease
from runs_controller.app import ControllerSettings, build_manager
from runs_controller.kube.client import ClientOptions, KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.kube.errors import WriteFenced
from runs_controller.kube.resources import CONFIG_MAPS, LEASES, ResourceType
from runs_controller.runtime.builder import ControllerBuilder, Kit
from runs_controller.runtime.leaderelection import (
    KubeLeaseLock,
    LeaderElectionConfig,
    LeaderElector,
    LeadershipLost,
)
from runs_controller.runtime.manager import CacheSyncFailed, Manager, ManagerOptions
from runs_controller.runtime.reconciler import Request, Result
from runs_controller.testing import ControlPlane, HarnessClient
from runs_controller.testing.proxy import TcpProxy
from runs_controller.testing.wait import poll_until_async, wait_until

pytestmark = pytest.mark.timeout(120)

RUNS_KINDS = ("storyruns", "stepruns", "storytriggers", "effectclaims")
READ_KINDS = ("stories", "engrams", "jobs")


def _settings(namespace: str, **overrides: Any) -> ControllerSettings:
    values: dict[str, Any] = {
        "leader_election_namespace": namespace,
        "leader_election_id": f"rc-{namespace}",
        "metrics_address": None,
        "health_address": "127.0.0.1:0",
        "handle_signals": False,
        "lease_duration": 4.0,
        "renew_deadline": 3.0,
        "retry_period": 0.5,
        **overrides,
    }
    return ControllerSettings(**values)


async def _readyz(manager: Manager) -> int | None:
    if manager.health_port is None:
        return None
    url = f"http://127.0.0.1:{manager.health_port}/readyz"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status if response.status == 200 else None


async def _lease_holder(client: KubeClient, namespace: str, name: str) -> str | None:
    lease = await client.get(LEASES, name, namespace, type=Lease)
    return lease.spec.holder_identity if lease.spec is not None else None


async def _run_until_ready_then_stop(manager: Manager) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(manager.run)
        await poll_until_async(lambda: _readyz(manager), within=60, what="/readyz to answer 200")
        assert manager.ready_failures() == []
        assert all(informer.has_synced for informer in manager.informers.all())
        manager.stop()


async def test_build_manager_is_ready_once_every_informer_synced(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    settings = _settings(namespace)
    manager = build_manager(settings, client, namespace, CollectorRegistry())
    names = sorted(informer.name for informer in manager.informers.all())
    assert names == sorted(
        [f"{kind}.runs.bubustack.io" for kind in RUNS_KINDS]
        + ["stories.bubustack.io", "engrams.bubustack.io", "jobs.batch"]
        + ["engramtemplates.catalog.bubustack.io", f"configmaps.core/{namespace}"]
    )
    assert [c.name for c in manager.controllers] == [
        "storyrun",
        "steprun",
        "storytrigger",
        "effectclaim",
    ]
    await _run_until_ready_then_stop(manager)
    # A graceful stop releases the Lease for the next replica.
    assert await _lease_holder(client, namespace, settings.leader_election_id) == ""


async def test_build_manager_with_namespaces_watches_each_of_them(
    client: KubeClient, control_plane: ControlPlane, namespace: str, crds: list[str]
) -> None:
    other = control_plane.create_namespace("t")
    try:
        manager = build_manager(
            _settings(namespace, namespaces=(namespace, other)),
            client,
            namespace,
            CollectorRegistry(),
        )
        names = sorted(informer.name for informer in manager.informers.all())
        per_namespace = [
            f"{kind}.{group}/{ns}"
            for kind, group in [
                *((k, "runs.bubustack.io") for k in RUNS_KINDS),
                ("stories", "bubustack.io"),
                ("engrams", "bubustack.io"),
                ("jobs", "batch"),
            ]
            for ns in (namespace, other)
        ]
        assert names == sorted(
            [
                *per_namespace,
                # cluster-scoped: one informer whatever the namespaces
                "engramtemplates.catalog.bubustack.io",
                f"configmaps.core/{namespace}",
            ]
        )
        await _run_until_ready_then_stop(manager)
    finally:
        control_plane.delete_namespace(other)


async def test_caches_that_never_sync_end_the_run_and_release_the_lease(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    settings = _settings(namespace, cache_sync_timeout=1.0)
    manager = build_manager(settings, client, namespace, CollectorRegistry())
    missing = ResourceType("widgets.example.com", "v1", "widgets", "Widget")
    manager.informers.get(missing, ConfigMap, namespace=namespace)  # 404 forever
    with pytest.raises(CacheSyncFailed) as failed:
        with anyio.fail_after(60):
            await manager.run()
    assert failed.value.informers == [f"widgets.widgets.example.com/{namespace}"]
    assert "caches not synced within 1s" in str(failed.value)
    assert await _lease_holder(client, namespace, settings.leader_election_id) == ""


# ---- fencing ----------------------------------------------------------------------------------


@dataclass
class Stubborn:
    """A reconcile that keeps writing, shielded from cancellation, until a write is refused:
    the worst case of "cancellation takes a moment to reach a reconcile"."""

    kit: Kit
    namespace: str
    written: list[int] = field(default_factory=list)
    """resourceVersions of the writes that reached the apiserver."""
    refused: WriteFenced | None = None
    done: anyio.Event = field(default_factory=anyio.Event)

    async def reconcile(self, request: Request) -> Result:
        if request.name != "trigger":
            return Result()
        with anyio.CancelScope(shield=True):
            try:
                for n in range(1, 400):  # at most ~20 s: a missing fence fails, not hangs
                    patch = {"data": {"n": str(n)}}
                    target = await self.kit.client.merge_patch(
                        CONFIG_MAPS, "target", patch, self.namespace, type=ConfigMap
                    )
                    assert target.metadata is not None
                    self.written.append(int(target.metadata.resource_version or 0))
                    await anyio.sleep(0.05)  # pacing, not synchronisation
            except WriteFenced as error:
                self.refused = error
                raise
            finally:
                self.done.set()
        return Result()


class RecordingLock(KubeLeaseLock):
    """Remembers the Leases it wrote: the resourceVersion at which it took the Lease over."""

    def __init__(self, client: KubeClient) -> None:
        super().__init__(client)
        self.written: list[Lease] = []

    async def create(self, lease: Lease) -> Lease:
        self.written.append(await super().create(lease))
        return self.written[-1]

    async def update(self, lease: Lease) -> Lease:
        self.written.append(await super().update(lease))
        return self.written[-1]


def _election(namespace: str, identity: str) -> LeaderElectionConfig:
    return LeaderElectionConfig(
        name="fenced",
        namespace=namespace,
        identity=identity,
        lease_duration=4.0,
        renew_deadline=3.0,
        retry_period=0.5,
    )


async def test_no_write_leaves_once_the_renewal_stalls_past_its_deadline(
    client: KubeClient, control_plane: ControlPlane, admin_client: HarnessClient, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    for name in ("target", "trigger"):
        admin_client.create(path, {"metadata": {"name": name}, "data": {"n": "0"}})
    options = ClientOptions(request_timeout=5.0)
    async with (
        TcpProxy(control_plane.apiserver_port) as proxy,
        KubeClient(
            await load_kubeconfig(control_plane.admin_kubeconfig_via(proxy.port)), options
        ) as lease_client,
    ):
        elector = LeaderElector(_election(namespace, "old"), KubeLeaseLock(lease_client))
        manager = Manager(
            client,
            CollectorRegistry(),
            elector=elector,
            options=ManagerOptions(
                metrics_address=None,
                health_address=None,
                handle_signals=False,
                namespaces=(namespace,),
            ),
        )
        builder = ControllerBuilder(manager, "stubborn")
        builder.for_(CONFIG_MAPS, ConfigMap)
        stubborn = Stubborn(builder.kit, namespace)
        builder.complete(stubborn)

        standby_lock = RecordingLock(client)
        standby = LeaderElector(_election(namespace, "new"), standby_lock)
        standby_leads = anyio.Event()
        outcome: list[str] = []

        async def run_old() -> None:
            try:
                await manager.run()
            except LeadershipLost:
                outcome.append("lost")

        async def lead_new() -> None:
            standby_leads.set()
            await anyio.sleep_forever()

        async with anyio.create_task_group() as group:
            group.start_soon(run_old)
            await wait_until(
                lambda: len(stubborn.written) >= 3,
                within=60,
                what="the leader's first writes",
            )
            group.start_soon(standby.run, lead_new)
            proxy.stall()  # the leader's renewals hang (a half-open connection, not a refusal)
            with anyio.fail_after(30):
                await stubborn.done.wait()
                await standby_leads.wait()
            await wait_until(lambda: outcome == ["lost"], within=30, what="the old leader to stop")
            group.cancel_scope.cancel()
    assert stubborn.refused is not None
    assert "refused" in str(stubborn.refused)
    took_over = standby_lock.written[0].metadata
    assert took_over is not None
    taken_over_at = int(took_over.resource_version or 0)
    # resourceVersions of one etcd are its revisions: comparable here (opaque in general). Every
    # write of the old leader happened before the new leader held the Lease.
    assert stubborn.written and max(stubborn.written) < taken_over_at
    final = admin_client.get(f"{path}/target")
    if "in flight" in str(stubborn.refused):
        # The last write was abandoned at the fence's deadline: it may have been applied (before
        # that deadline, so before the takeover) without its answer reaching us.
        assert final["data"]["n"] in (str(len(stubborn.written)), str(len(stubborn.written) + 1))
    else:
        assert final["data"]["n"] == str(len(stubborn.written))
