"""The two entry points a newcomer uses: `runs-controller run` and `runs-controller dev`."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from runs_controller.testing import ControlPlane, HarnessClient, free_port
from runs_controller.testing.binaries import find_binary, read_pinned_versions


def _read_events_until(
    process: subprocess.Popen[bytes], event: str, within: float, *, stdout: bool = False
) -> list[dict[str, Any]]:
    """Collect JSON lines from stderr (or stdout) until one has `event`, or fail after `within`.

    Reads the pipe's file descriptor directly: a buffered readline could hold a second line
    that already arrived while select() waits for more."""
    stream = process.stdout if stdout else process.stderr
    assert stream is not None
    fd = stream.fileno()
    events: list[dict[str, Any]] = []
    pending = b""
    deadline = time.monotonic() + within
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                events.append(json.loads(line))
                if events[-1].get("event") == event:
                    return events
    raise AssertionError(f"no {event!r} log event within {within}s; saw {events}")


LOCAL_PORTS = [
    "--metrics-bind-address",
    "127.0.0.1:0",
    "--health-probe-bind-address",
    "127.0.0.1:0",
]


def _get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as reply:
        body: bytes = reply.read()
        return body.decode()


def _stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    process.send_signal(sig)
    try:
        return process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()


def test_run_connects_logs_json_and_exits_cleanly_on_sigterm(kubeconfig: Path) -> None:
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runs_controller",
            "run",
            "--kubeconfig",
            str(kubeconfig),
            *LOCAL_PORTS,
        ],
        stderr=subprocess.PIPE,
    ) as process:
        try:
            events = _read_events_until(process, "http_serving", within=60)
            serving = events[-1]
            health = _get(f"http://127.0.0.1:{serving['health_port']}/healthz")
            metrics = _get(f"http://127.0.0.1:{serving['metrics_port']}/metrics")
        finally:
            code = _stop(process, signal.SIGTERM)
    assert health == "ok"
    assert "leader_election_master_status" in metrics
    assert "workqueue_adds_total" in metrics
    connected = next(e for e in events if e["event"] == "connected")
    assert connected["server_version"] == read_pinned_versions().kubernetes
    assert connected["level"] == "info"
    assert "timestamp" in connected
    assert code == 0


def _dev_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RUNS_CONTROLLER_CACHE": str(tmp_path / "cache"),
        "RUNS_CONTROLLER_BIN_DIR": str(find_binary("kube-apiserver").parent),
    }


def _assert_port_closed(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def _assert_sample_succeeded(events: list[dict[str, Any]]) -> None:
    finished = next(e for e in events if e["event"] == "run_finished")
    assert finished["phase"] == "Succeeded", finished
    # Computed by the SDK's example Engram, run by the dev executor from the pods' environment.
    assert finished["output"] == {"first": "Hello, dev!", "second": "Hello, hello!"}
    steps = {
        e["step"]: e for e in events if e["event"] == "step_phase" and e["phase"] == "Succeeded"
    }
    assert set(steps) == {"greet", "check", "pause", "reply", "archive"}


@pytest.mark.timeout(240)
def test_dev_shows_the_sample_run_then_serves_until_ctrl_c_and_tears_everything_down(
    tmp_path: Path, control_plane: ControlPlane
) -> None:
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runs_controller",
            "dev",
            "--no-build",
            "--name",
            "dev",
            *LOCAL_PORTS,
        ],
        stdout=subprocess.PIPE,
        env=_dev_env(tmp_path),
    ) as process:
        try:
            events = _read_events_until(process, "stack_serving", within=180, stdout=True)
        finally:
            code = _stop(process, signal.SIGINT)
    ready = next(e for e in events if e["event"] == "stack_ready")
    assert ready["kubeconfig"] == str(tmp_path / "cache" / "dev" / "kubeconfig")
    assert ready["server"] != control_plane.server  # its own stack, not the session's
    _assert_sample_succeeded(events)
    assert code == 0
    # The dev stack's apiserver is gone: its port accepts no connection any more.
    _assert_port_closed(ready["server"])


@pytest.mark.timeout(240)
def test_dev_once_exits_when_the_run_ends_with_its_outcome(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "runs_controller", "dev", "--no-build", "--once"),
            *("--name", "dev", "--output", "json", *LOCAL_PORTS),
        ],
        capture_output=True,
        env=_dev_env(tmp_path),
        timeout=200,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    _assert_sample_succeeded(events)
    assert events[-1]["event"] == "demo_finished"
    _assert_port_closed(next(e for e in events if e["event"] == "stack_ready")["server"])


def test_run_fails_clearly_with_a_missing_kubeconfig(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runs_controller", "run", "--kubeconfig", str(tmp_path / "nope")],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    failure = json.loads(result.stderr.splitlines()[-1])
    assert failure["event"] == "startup_failed"
    assert failure["level"] == "error"
    assert failure["error"] == f"kubeconfig {tmp_path / 'nope'} does not exist or is not a file"


def test_run_fails_clearly_when_the_server_is_unreachable(
    tmp_path: Path, control_plane: ControlPlane
) -> None:
    unreachable = tmp_path / "unreachable.kubeconfig"
    port = free_port()  # nothing listens there
    text = control_plane.kubeconfig_path.read_text().replace(
        control_plane.server, f"https://127.0.0.1:{port}"
    )
    unreachable.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "runs_controller", "run", "--kubeconfig", str(unreachable)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    failure = json.loads(result.stderr.splitlines()[-1])
    assert failure["event"] == "startup_failed"
    assert failure["error"].startswith(f"cannot reach the API server at https://127.0.0.1:{port}")


def _grant_leases(admin: HarnessClient, namespace: str, user: str) -> None:
    """Only what leader election needs: the runs kinds stay forbidden, so no cache syncs."""
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    admin.create(
        f"{rbac}/roles",
        {
            "metadata": {"name": "leases"},
            "rules": [
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["get", "create", "update"],
                }
            ],
        },
    )
    admin.create(
        f"{rbac}/rolebindings",
        {
            "metadata": {"name": "leases"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "leases"},
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )


def test_caches_that_never_sync_exit_1_with_one_line_and_a_released_lease(
    control_plane: ControlPlane, admin_client: HarnessClient, namespace: str
) -> None:
    user = f"no-reads-{namespace}"
    _grant_leases(admin_client, namespace, user)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "runs_controller",
            "run",
            "--kubeconfig",
            str(control_plane.user_kubeconfig(user)),
            "--namespaces",
            namespace,
            "--leader-election-namespace",
            namespace,
            "--cache-sync-timeout",
            "2",
            *LOCAL_PORTS,
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stderr.splitlines()]
    failure = events[-1]
    assert failure["event"] == "cache_sync_failed_exiting"
    assert failure["level"] == "error"
    assert failure["error"].startswith("caches not synced within 2s: ")
    assert f"storyruns.runs.bubustack.io/{namespace}" in failure["informers"]
    assert [e["event"] for e in events].count("cache_sync_failed_exiting") == 1
    assert b"Traceback" not in result.stderr
    assert b"ExceptionGroup" not in result.stderr
    assert "leader_election_released" in [e["event"] for e in events]
    lease = admin_client.get(
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/d3a8b358.bubustack.io"
    )
    assert lease["spec"]["holderIdentity"] == ""
