"""pytest fixtures for tests against the real local control plane.

Enable with `pytest_plugins = ["runs_controller.testing.pytest_plugin"]` in a conftest.py.
The control plane starts lazily, once per session, the first time a test asks for it. Missing
binaries make those tests FAIL (never skip) with the command that builds them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from runs_controller.runtime.store import VERIFY_ENV
from runs_controller.testing.binaries import BinariesNotFoundError
from runs_controller.testing.controlplane import ControlPlane, ControlPlaneConfig, ControlPlaneError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from runs_controller.testing.rest import HarnessClient


def pytest_configure(config: pytest.Config) -> None:
    """Every informer cache in the test session (and in processes it starts) fingerprints its
    objects, so a test whose code edits a cached object in place fails with CacheMutated."""
    os.environ.setdefault(VERIFY_ENV, "1")


def start_control_plane_or_fail(config: ControlPlaneConfig | None = None) -> ControlPlane:
    """Start a control plane; turn a missing binary or a failed start into a test failure."""
    try:
        plane = ControlPlane(config)
    except BinariesNotFoundError as error:
        pytest.fail(f"cannot start the local control plane: {error}", pytrace=False)
    try:
        plane.start()
    except ControlPlaneError as error:
        pytest.fail(f"the local control plane did not start: {error}", pytrace=False)
    return plane


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """One etcd + kube-apiserver for the whole test session.

    Set RUNS_CONTROLLER_KEEP_TEST_DATA=1 to keep its data dir (logs, kubeconfig) afterwards.
    """
    keep = os.environ.get("RUNS_CONTROLLER_KEEP_TEST_DATA") == "1"
    plane = start_control_plane_or_fail(ControlPlaneConfig(keep_data_dir=keep))
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    """Path of an admin (system:masters) kubeconfig for the session control plane."""
    return control_plane.kubeconfig_path


@pytest.fixture(scope="session")
def admin_client(control_plane: ControlPlane) -> HarnessClient:
    """The harness's own admin REST client (independent of the product's API client)."""
    return control_plane.admin


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    name = control_plane.create_namespace("t")
    try:
        yield name
    finally:
        control_plane.delete_namespace(name)
