"""Fixtures of the end-to-end suite: one full local stack per session with the chart installed,
the dev executor running the SDK's example Engram for the sample's pods, and controller
processes that authenticate as the chart's ServiceAccount."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.from_thread
import pytest

from e2e.support import ControllerProcess, Release, install_chart
from runs_controller.dev import sample
from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.testing.controlplane import ControlPlaneConfig
from runs_controller.testing.executor import DevExecutor
from runs_controller.testing.pytest_plugin import start_stack_or_fail
from runs_controller.testing.stack import LocalStack, StackConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    keep = os.environ.get("RUNS_CONTROLLER_KEEP_TEST_DATA") == "1"
    config = StackConfig(
        control_plane=ControlPlaneConfig(keep_data_dir=keep),
        executor_images=frozenset(sample.EXECUTOR_COMMANDS),
    )
    local = start_stack_or_fail(config)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def release(stack: LocalStack) -> Release:
    return install_chart(stack)


@pytest.fixture(scope="session")
def controller_kubeconfig(stack: LocalStack, release: Release) -> Path:
    """Credentials of the chart's ServiceAccount: every request is authorised by its RBAC."""
    return stack.plane.service_account_kubeconfig(release.namespace, release.service_account)


@pytest.fixture(scope="session")
def executor(stack: LocalStack) -> Iterator[DevExecutor]:
    """The dev executor, in a thread with its own event loop for the whole session."""
    plane = stack.plane
    work = plane.data_dir / "pods"
    work.mkdir(exist_ok=True)
    holder: list[DevExecutor] = []

    async def serve(started: Callable[[], None]) -> None:
        async with KubeClient(await load_kubeconfig(plane.kubeconfig_path)) as client:
            holder.append(
                DevExecutor(
                    client,
                    plane.server,
                    plane.ca_file.read_bytes(),
                    sample.EXECUTOR_COMMANDS,
                    work,
                )
            )
            started()
            await holder[0].run()

    with anyio.from_thread.start_blocking_portal() as portal:
        up = threading.Event()
        future = portal.start_task_soon(serve, up.set)
        if not up.wait(30):
            raise RuntimeError("the dev executor did not start")
        try:
            yield holder[0]
        finally:
            future.cancel()


@pytest.fixture(scope="session")
def all_controllers() -> list[ControllerProcess]:
    """Every controller process the session started (the no-403 check reads all their logs)."""
    return []


@pytest.fixture
def start_controller(
    stack: LocalStack,
    release: Release,
    controller_kubeconfig: Path,
    all_controllers: list[ControllerProcess],
) -> Iterator[Callable[[str], ControllerProcess]]:
    started: list[ControllerProcess] = []
    logs = stack.plane.data_dir / "logs"

    def start(name: str) -> ControllerProcess:
        process = ControllerProcess(name, controller_kubeconfig, release, logs).start()
        started.append(process)
        all_controllers.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.process.stop()


@pytest.fixture
def sample_namespace(stack: LocalStack, release: Release) -> Iterator[str]:
    name = stack.plane.create_namespace("e2e")
    sample.install(stack.plane.admin, name)
    try:
        yield name
    finally:
        stack.plane.delete_namespace(name)


@pytest.fixture
async def client(stack: LocalStack) -> AsyncIterator[KubeClient]:
    async with KubeClient(await load_kubeconfig(stack.plane.kubeconfig_path)) as admin:
        yield admin
