"""Restarts and failures of the control plane itself (each test starts a private one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runs_controller.testing import ControlPlane, ControlPlaneConfig, ControlPlaneError
from runs_controller.testing.pytest_plugin import start_control_plane_or_fail


@pytest.fixture
def private_plane() -> Iterator[ControlPlane]:
    plane = start_control_plane_or_fail()
    try:
        yield plane
    finally:
        plane.stop()


def _configmap(name: str, value: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"v": value},
    }


def test_objects_survive_an_apiserver_restart(private_plane: ControlPlane) -> None:
    namespace = private_plane.create_namespace("restart")
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    before = private_plane.admin.create(path, _configmap("kept", "1"))
    old_pid = private_plane.apiserver.pid
    etcd_pid = private_plane.etcd.pid

    private_plane.restart_apiserver()

    assert private_plane.apiserver.pid != old_pid
    assert private_plane.etcd.pid == etcd_pid
    after = private_plane.admin.get(f"{path}/kept")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["data"] == {"v": "1"}
    # The restarted apiserver accepts writes, and resourceVersions keep increasing.
    newer = private_plane.admin.create(path, _configmap("new", "2"))
    assert int(newer["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])


def test_stop_reaps_both_processes_and_removes_the_data_dir(private_plane: ControlPlane) -> None:
    pids = [private_plane.apiserver.pid, private_plane.etcd.pid]
    data_dir = private_plane.data_dir
    private_plane.stop()
    for pid in pids:
        assert pid is not None
        assert not Path(f"/proc/{pid}").exists()
    assert not data_dir.exists()
    private_plane.stop()  # idempotent


def test_a_failed_start_reports_the_apiserver_log(tmp_path: Path) -> None:
    plane = ControlPlane(
        ControlPlaneConfig(data_dir=tmp_path / "cp", extra_apiserver_args=["--no-such-flag"])
    )
    with pytest.raises(ControlPlaneError) as raised:
        plane.start()
    message = str(raised.value)
    assert "kube-apiserver exited with code" in message
    assert "unknown flag: --no-such-flag" in message
    assert "kube-apiserver.log" in message
    assert not plane.etcd.running and not plane.apiserver.running
