"""Reliability scenarios: StoryRuns keep completing, exactly once, while the world misbehaves.

Each scenario runs the workload of `harness.py` (controllers as processes, two replicas) under
one fault and then makes the same checks: every run Succeeded, no StepRun or Job created twice,
no SDK-written terminal phase reverted, bounded reconciles per object. CI runs them small
(RELIABILITY_RUNS=16); `docs/reliability.md` gives the nightly sizes.
"""

from __future__ import annotations

import os
import random
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import pytest

from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.testing import install_crds
from runs_controller.testing.controlplane import ControlPlane, ControlPlaneConfig
from runs_controller.testing.proxy import TcpProxy
from runs_controller.testing.pytest_plugin import start_control_plane_or_fail
from runs_controller.testing.wait import poll_until_async
from tests.paths import CRD_DIR
from tests.reliability.harness import (
    RUNS,
    STEPS,
    Workload,
    assert_clean,
    observing,
    periodically,
    prepare,
    reconciles,
    responses,
    scrape,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator
    from pathlib import Path

pytestmark = pytest.mark.timeout(int(os.environ.get("RELIABILITY_TIMEOUT", "300")))

KILL_INTERVAL = float(os.environ.get("RELIABILITY_KILL_INTERVAL", "4"))
RESTART_RUNS = int(os.environ.get("RELIABILITY_RESTART_RUNS", "20"))
STAGGER = float(os.environ.get("RELIABILITY_STAGGER", "0.4"))
"""Seconds between submissions, so runs are in flight for the whole fault window."""


@pytest.fixture
def private_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """A control plane of the scenario's own (faults restart it or need other flags)."""
    extra: list[str] = getattr(request, "param", [])
    plane = start_control_plane_or_fail(ControlPlaneConfig(extra_apiserver_args=extra))
    try:
        install_crds(plane.admin, [CRD_DIR], timeout=120)
        yield plane
    finally:
        plane.stop()


async def _supervise(workload: Workload, done: anyio.Event) -> None:
    """Play the kubelet for the controller pods: a replica that exited (a lost lease ends the
    process, as in a pod) is replaced by a new one."""

    async def replace_exited() -> None:
        for replica in list(workload.replicas):
            if replica.process.returncode is not None:
                workload.replicas.remove(replica)
                workload.retired.append(replica)
                workload.start_replica()

    await periodically(0.5, replace_exited, done)


async def _scenario(
    plane: ControlPlane,
    fault: Callable[[Workload, anyio.Event], Coroutine[Any, Any, None]],
    *,
    controller_kubeconfig: Path | None = None,
    runs: int = RUNS,
) -> Workload:
    async with KubeClient(await load_kubeconfig(plane.kubeconfig_path)) as client:
        namespace = plane.create_namespace("rel")
        await prepare(client, namespace)
        workload = Workload(
            client,
            namespace,
            controller_kubeconfig or plane.kubeconfig_path,
            plane.data_dir / "logs",
        )
        workload.start_replica()
        workload.start_replica()
        try:
            await workload.leader()
            async with observing(client, namespace) as observed:
                done = anyio.Event()
                async with anyio.create_task_group() as group:
                    group.start_soon(_supervise, workload, done)
                    group.start_soon(fault, workload, done)
                    names = []
                    for i in range(runs):
                        names.extend(await workload.submit(1, prefix=f"run-{i}"))
                        await anyio.sleep(STAGGER)  # pacing the load, not synchronisation
                    phases = await workload.wait_all(names, within=120 + runs * 4.0)
                    done.set()
                assert_clean(workload, observed, phases, objects=runs * (1 + STEPS))
        finally:
            workload.stop()
        return workload


async def test_the_leader_killed_again_and_again_loses_and_duplicates_nothing(
    control_plane: ControlPlane, crds: list[str]
) -> None:
    kills: list[float] = []

    async def kill_the_leader(workload: Workload, done: anyio.Event) -> None:
        # Each leader leads for KILL_INTERVAL seconds, then dies: the handover (lease expiry,
        # a new process, its caches) comes on top, so every leader gets to make progress.
        while not done.is_set():
            leader = await workload.leader()
            with anyio.move_on_after(KILL_INTERVAL):
                await done.wait()
            if not done.is_set():
                workload.kill(leader)
                kills.append(time.monotonic())

    workload = await _scenario(control_plane, kill_the_leader)
    print(f"leaders killed: {len(kills)}")
    assert kills, "the fault never fired: the runs ended before the first kill"
    assert len(workload.retired) >= len(kills)


@pytest.mark.parametrize("private_plane", [[]], indirect=True)
async def test_two_apiserver_restarts_mid_run(private_plane: ControlPlane) -> None:
    restarts: list[float] = []

    async def restart_twice(workload: Workload, done: anyio.Event) -> None:
        # The second restart follows the first closely (the controllers are still relisting):
        # a later one raced fast runs to the finish and sometimes found them all done.
        for delay in (2.0, 0.5):
            with anyio.move_on_after(delay):
                await done.wait()
            if done.is_set():
                return
            await anyio.to_thread.run_sync(private_plane.restart_apiserver)
            restarts.append(time.monotonic())

    await _scenario(private_plane, restart_twice)
    assert len(restarts) == 2, "the runs ended before both restarts"


@pytest.mark.parametrize("private_plane", [["--watch-cache=false"]], indirect=True)
async def test_etcd_compacted_every_second_so_watches_get_410(private_plane: ControlPlane) -> None:
    compactions: list[int] = []

    async def compact(workload: Workload, done: anyio.Event) -> None:
        async def once() -> None:
            compactions.append(await anyio.to_thread.run_sync(private_plane.compact_etcd))

        await periodically(1.0, once, done)

    await _scenario(private_plane, compact)
    print(f"etcd compactions: {len(compactions)}")
    assert len(compactions) >= 3


async def test_a_proxy_that_drops_and_stalls_connections_at_random(
    control_plane: ControlPlane, crds: list[str]
) -> None:
    rng = random.Random(1729)  # noqa: S311 - reproducible chaos, not cryptography
    faults: list[str] = []
    async with TcpProxy(control_plane.apiserver_port) as proxy:

        async def chaos(workload: Workload, done: anyio.Event) -> None:
            async def strike() -> None:
                if rng.random() < 0.5:
                    proxy.cut()
                    faults.append("cut")
                    return
                proxy.stall()
                faults.append("stall")
                with anyio.move_on_after(rng.uniform(0.5, 4.0)):
                    await done.wait()
                proxy.unstall()

            await periodically(1.5, strike, done)

        await _scenario(
            control_plane,
            chaos,
            controller_kubeconfig=control_plane.admin_kubeconfig_via(proxy.port),
        )
    print(f"proxy faults: {faults.count('cut')} cuts, {faults.count('stall')} stalls")
    assert "cut" in faults
    assert "stall" in faults


@pytest.mark.parametrize(
    "private_plane",
    [
        [
            "--enable-priority-and-fairness=false",
            "--max-requests-inflight=1",
            "--max-mutating-requests-inflight=1",
        ]
    ],
    indirect=True,
)
async def test_an_apiserver_answering_429_under_load(private_plane: ControlPlane) -> None:
    # system:masters is exempt from the in-flight limits: the controllers run as a plain user
    # bound to cluster-admin, so they are throttled while the driver (an admin) is not.
    user = "throttled-controller"
    private_plane.admin.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": user},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )

    async def nothing(workload: Workload, done: anyio.Event) -> None:
        await done.wait()

    workload = await _scenario(
        private_plane, nothing, controller_kubeconfig=private_plane.user_kubeconfig(user)
    )
    throttled = sum(
        responses(r.last_samples, "429") for r in [*workload.replicas, *workload.retired]
    )
    print(f"429 responses seen by the controllers: {throttled:.0f}")
    assert throttled > 0, "the apiserver never throttled: the scenario tested nothing"


_WRITES = ("POST", "PUT", "PATCH", "APPLY", "DELETE")
_RUNS_RESOURCES = (
    "storyruns",
    "stepruns",
    "jobs",
    "engrams",
    "effectclaims",
    "storytriggers",
    "serviceaccounts",
    "roles",
    "rolebindings",
    "events",
)


def _apiserver_writes(plane: ControlPlane) -> float:
    """Writes the apiserver served to the kinds a restarted controller could touch."""
    body = plane.admin.request("GET", "/metrics").body  # not JSON: the harness keeps the text
    lines = str(body.get("message", "")).splitlines()
    total = 0.0
    for line in lines:
        if not line.startswith("apiserver_request_total{"):
            continue
        labels, _, value = line.rpartition(" ")
        verb = next((v for v in _WRITES if f'verb="{v}"' in labels), None)
        if verb and any(f'resource="{r}"' in labels for r in _RUNS_RESOURCES):
            total += float(value)
    return total


def _ready(port: int) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


async def test_a_restart_over_finished_runs_writes_nothing_to_them(
    control_plane: ControlPlane, crds: list[str]
) -> None:
    async with KubeClient(await load_kubeconfig(control_plane.kubeconfig_path)) as client:
        namespace = control_plane.create_namespace("quiet")
        await prepare(client, namespace)
        workload = Workload(
            client, namespace, control_plane.kubeconfig_path, control_plane.data_dir / "logs"
        )
        workload.start_replica()
        async with observing(client, namespace):
            names = await workload.submit(RESTART_RUNS)
            phases = await workload.wait_all(names, within=120 + RESTART_RUNS * 2.0)
        assert set(phases.values()) == {"Succeeded"}
        workload.stop()
        workload.retired.extend(workload.replicas)
        workload.replicas.clear()

        before = _apiserver_writes(control_plane)
        started = time.monotonic()
        fresh = workload.start_replica()

        async def ready() -> bool | None:
            return True if _ready(fresh.health_port) else None

        await poll_until_async(ready, within=120, what="the restarted controller to be ready")
        ready_after = time.monotonic() - started

        # Quiet: nothing queued and no reconcile for two seconds in a row.
        last = -1.0
        quiet_since = time.monotonic()

        async def quiet() -> bool | None:
            nonlocal last, quiet_since
            samples = scrape(fresh.metrics_port)
            depth = sum(v for k, v in samples.items() if k.startswith("workqueue_depth{"))
            count = reconciles(samples)
            if depth or count != last:
                last, quiet_since = count, time.monotonic()
                return None
            return True if time.monotonic() - quiet_since >= 2.0 else None

        await poll_until_async(quiet, within=120, interval=0.2, what="the controller to go quiet")
        quiet_after = time.monotonic() - started - 2.0
        writes = _apiserver_writes(control_plane) - before
        print(
            f"restart over {RESTART_RUNS} finished runs: ready after {ready_after:.1f}s, quiet "
            f"after {quiet_after:.1f}s, {last:.0f} reconciles, {writes:.0f} writes"
        )
        workload.stop()
        assert writes == 0
