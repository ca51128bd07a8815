"""Leader election and shutdown across real processes (tests/integration/manager_app.py)."""

from __future__ import annotations

import datetime
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from runs_controller.testing import ControlPlane, HarnessClient
from runs_controller.testing.proxy import TcpProxy
from runs_controller.testing.wait import wait_until
from tests.paths import REPO_ROOT

LEASE_DURATION = 4.0
RENEW_DEADLINE = 3.0
RETRY_PERIOD = 0.5


@dataclass
class App:
    identity: str
    process: subprocess.Popen[bytes]
    events: list[dict[str, Any]] = field(default_factory=list)

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("event") == event]

    def has(self, event: str) -> bool:
        return bool(self.logged(event))


def _reader(app: App) -> None:
    assert app.process.stderr is not None
    for line in app.process.stderr:
        try:
            app.events.append(json.loads(line))
        except ValueError:
            app.events.append({"event": "raw", "line": line.decode(errors="replace")})


@contextmanager
def _apps(*specs: tuple[str, Path, dict[str, str]]) -> Iterator[list[App]]:
    apps: list[App] = []
    try:
        for identity, kubeconfig, extra in specs:
            argv = [
                sys.executable,
                "-m",
                "tests.integration.manager_app",
                "--kubeconfig",
                str(kubeconfig),
                "--identity",
                identity,
                "--lease-duration",
                str(LEASE_DURATION),
                "--renew-deadline",
                str(RENEW_DEADLINE),
                "--retry-period",
                str(RETRY_PERIOD),
            ]
            for key, value in extra.items():
                argv += [f"--{key}", value]
            process = subprocess.Popen(argv, cwd=REPO_ROOT, stderr=subprocess.PIPE)
            app = App(identity, process)
            threading.Thread(target=_reader, args=(app,), daemon=True).start()
            apps.append(app)
        yield apps
    finally:
        for app in apps:
            if app.process.poll() is None:
                app.process.kill()
            app.process.wait(timeout=30)
            if app.process.stderr is not None:
                app.process.stderr.close()


def _holder(admin: HarnessClient, namespace: str) -> str | None:
    response = admin.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/manager-app"
    )
    if not response.ok:
        return None
    holder: str | None = response.body.get("spec", {}).get("holderIdentity")
    return holder


def _log_time(event: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(event["timestamp"])


async def _leader_of(apps: list[App], admin: HarnessClient, namespace: str) -> App:
    for app in apps:  # a crashed app would otherwise only show up as a timeout
        assert app.process.poll() is None, (app.identity, app.events)
    await wait_until(
        lambda: any(a.has("controllers_starting") for a in apps), within=60, what="one app to lead"
    )
    leaders = [a for a in apps if a.has("controllers_starting")]
    assert len(leaders) == 1, [a.identity for a in leaders]
    assert _holder(admin, namespace) == leaders[0].identity
    return leaders[0]


def _create_configmap(admin: HarnessClient, namespace: str, name: str) -> None:
    admin.create(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}},
    )


def _ns_args(namespace: str) -> dict[str, str]:
    return {"namespace": namespace}


async def test_exactly_one_leads_and_a_killed_leader_is_replaced(
    control_plane: ControlPlane, admin_client: HarnessClient, namespace: str
) -> None:
    kubeconfig = control_plane.kubeconfig_path
    with _apps(
        ("a", kubeconfig, _ns_args(namespace)), ("b", kubeconfig, _ns_args(namespace))
    ) as apps:
        leader = await _leader_of(apps, admin_client, namespace)
        standby = next(a for a in apps if a is not leader)
        _create_configmap(admin_client, namespace, "work")
        await wait_until(
            lambda: leader.has("reconcile_finished"), within=30, what="the leader to reconcile"
        )
        await wait_until(
            lambda: standby.has("leader_election_acquiring"),
            within=30,
            what="the standby to compete",
        )
        assert not standby.has("reconcile_started")
        assert not standby.has("controllers_starting")

        leader.process.kill()
        await wait_until(
            lambda: standby.has("controllers_starting"),
            within=60,
            what="the standby to take over after the lease expires",
        )
        assert _holder(admin_client, namespace) == standby.identity
        # Taken over from the dead leader's (expired) record, not from a released one.
        acquired = standby.logged("leader_election_acquired")[0]
        assert acquired["previous_holder"] == leader.identity


async def test_sigterm_releases_the_lease_for_a_fast_takeover(
    control_plane: ControlPlane, admin_client: HarnessClient, namespace: str
) -> None:
    kubeconfig = control_plane.kubeconfig_path
    with _apps(
        ("a", kubeconfig, _ns_args(namespace)), ("b", kubeconfig, _ns_args(namespace))
    ) as apps:
        leader = await _leader_of(apps, admin_client, namespace)
        standby = next(a for a in apps if a is not leader)
        leader.process.send_signal(signal.SIGTERM)
        await wait_until(
            lambda: leader.process.poll() is not None, within=30, what="the leader to exit"
        )
        assert leader.process.returncode == 0
        assert leader.has("leader_election_released")
        await wait_until(
            lambda: standby.has("controllers_starting"), within=60, what="the standby to take over"
        )
        # The release handed over: the standby took a Lease with no holder, it did not wait for
        # the leader's record to expire.
        acquired = standby.logged("leader_election_acquired")[0]
        assert acquired["previous_holder"] == ""
        assert _log_time(leader.logged("leader_election_released")[0]) < _log_time(acquired)


async def test_graceful_shutdown_finishes_the_in_flight_reconcile(
    control_plane: ControlPlane, admin_client: HarnessClient, namespace: str
) -> None:
    kubeconfig = control_plane.kubeconfig_path
    extra = {**_ns_args(namespace), "reconcile-seconds": "2"}
    with _apps(("solo", kubeconfig, extra)) as apps:
        (app,) = apps
        await _leader_of(apps, admin_client, namespace)
        _create_configmap(admin_client, namespace, "slow")
        await wait_until(
            lambda: app.has("reconcile_started"), within=30, what="the reconcile to start"
        )
        app.process.send_signal(signal.SIGTERM)
        await wait_until(lambda: app.process.poll() is not None, within=30, what="the app to exit")
        assert app.process.returncode == 0
        names = [e["event"] for e in app.events]
        assert names.index("signal_received") < names.index("reconcile_finished")
        assert _holder(admin_client, namespace) == ""


async def test_a_leader_cut_off_from_the_apiserver_stops_before_its_lease_expires(
    control_plane: ControlPlane, admin_client: HarnessClient, namespace: str
) -> None:
    async with TcpProxy(control_plane.apiserver_port) as proxy:
        isolated = control_plane.admin_kubeconfig_via(proxy.port)
        with _apps(("isolated", isolated, _ns_args(namespace))) as first:
            (leader,) = first
            await _leader_of(first, admin_client, namespace)
            with _apps(("standby", control_plane.kubeconfig_path, _ns_args(namespace))) as second:
                (standby,) = second
                await wait_until(
                    lambda: standby.has("leader_election_acquiring"),
                    within=30,
                    what="the standby to be waiting",
                )
                proxy.block()
                await wait_until(
                    lambda: leader.has("leader_election_lost"),
                    within=30,
                    what="the isolated leader to give up",
                )
                await wait_until(
                    lambda: standby.has("controllers_starting"),
                    within=30,
                    what="the standby to take over",
                )
                lost = leader.logged("leader_election_lost")[0]["timestamp"]
                acquired = standby.logged("leader_election_acquired")[0]["timestamp"]
                # The old leader stopped before anyone else could lead: no overlap.
                assert lost < acquired
                await wait_until(
                    lambda: leader.process.poll() is not None,
                    within=30,
                    what="the isolated leader to exit",
                )
                assert leader.process.returncode == 1
                await anyio.lowlevel.checkpoint()
