"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.testing import HarnessClient, install_crds
from tests.paths import CRD_DIR


@pytest.fixture(scope="module")
def crds(admin_client: HarnessClient) -> list[str]:
    """The project's CRDs, installed (again) per module and Established; their names.

    Per module, not per session: test_control_plane.py installs the reference operator's
    StoryRun CRD over ours on the shared control plane.
    """
    return install_crds(admin_client, [CRD_DIR], timeout=120)


@pytest.fixture
async def client(kubeconfig: Path) -> AsyncIterator[KubeClient]:
    """The product's API client, as an admin (modules may define their own `client`)."""
    async with KubeClient(await load_kubeconfig(kubeconfig)) as kube:
        yield kube
