"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from runs_controller.testing import HarnessClient, install_crds
from tests.paths import CRD_DIR


@pytest.fixture(scope="session")
def crds(admin_client: HarnessClient) -> list[str]:
    """The project's CRDs, installed once per session and Established; their names."""
    return install_crds(admin_client, [CRD_DIR], timeout=120)
