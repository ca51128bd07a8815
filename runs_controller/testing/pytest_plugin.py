"""pytest fixtures for tests against the real local control plane.

Enable with `pytest_plugins = ["runs_controller.testing.pytest_plugin"]` in a conftest.py.
The control plane starts lazily, once per session, the first time a test asks for it. Missing
binaries make those tests FAIL (never skip) with the command that builds them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol, TypeVar

import pytest

from runs_controller.runtime.store import VERIFY_ENV
from runs_controller.testing.binaries import BinariesNotFoundError
from runs_controller.testing.controlplane import ControlPlane, ControlPlaneConfig, ControlPlaneError
from runs_controller.testing.loop_leaks import LeakCheckingEventLoop
from runs_controller.testing.stack import LocalStack, StackConfig

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from runs_controller.testing.rest import HarnessClient


def pytest_configure(config: pytest.Config) -> None:
    """Every informer cache in the test session (and in processes it starts) fingerprints its
    objects, so a test whose code edits a cached object in place fails with CacheMutated."""
    os.environ.setdefault(VERIFY_ENV, "1")


class _Startable(Protocol):
    def start(self) -> None: ...


S = TypeVar("S", bound=_Startable)


def _start_or_fail(make: Callable[[], S], what: str) -> S:
    """Build and start `what`; turn a missing binary or a failed start into a test failure."""
    try:
        started = make()
    except BinariesNotFoundError as error:
        pytest.fail(f"cannot start {what}: {error}", pytrace=False)
    try:
        started.start()
    except ControlPlaneError as error:
        pytest.fail(f"{what} did not start: {error}", pytrace=False)
    return started


def start_control_plane_or_fail(config: ControlPlaneConfig | None = None) -> ControlPlane:
    """Start a control plane; turn a missing binary or a failed start into a test failure."""
    return _start_or_fail(lambda: ControlPlane(config), "the local control plane")


def start_stack_or_fail(config: StackConfig | None = None) -> LocalStack:
    """Start the full local stack, failing the test as `start_control_plane_or_fail` does."""
    return _start_or_fail(lambda: LocalStack(config), "the full local stack")


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


@pytest.hookimpl(optionalhook=True)  # a pytest-asyncio hook: unknown without that plugin
def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test runs on a loop that fails it if it leaves a socket open (see
    `loop_leaks`), instead of a later test failing when the collector finds the socket."""
    return {"leak-checked": LeakCheckingEventLoop}
