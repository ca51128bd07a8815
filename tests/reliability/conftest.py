"""The reliability scenarios run on the shared control plane or on one of their own; both get
the project's CRDs first."""

from __future__ import annotations

import pytest

from runs_controller.testing import HarnessClient, install_crds
from tests.paths import CRD_DIR


@pytest.fixture(scope="module")
def crds(admin_client: HarnessClient) -> list[str]:
    return install_crds(admin_client, [CRD_DIR], timeout=120)
