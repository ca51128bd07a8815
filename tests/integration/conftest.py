"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from runs_controller.testing import HarnessClient, install_crds
from tests.paths import CRD_DIR


@pytest.fixture(scope="module")
def crds(admin_client: HarnessClient) -> list[str]:
    """The project's CRDs, installed (again) per module and Established; their names.

    Per module, not per session: test_control_plane.py installs the reference operator's
    StoryRun CRD over ours on the shared control plane.
    """
    return install_crds(admin_client, [CRD_DIR], timeout=120)
