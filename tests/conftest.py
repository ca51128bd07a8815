"""Shared pytest configuration: the local control-plane fixtures and test-path markers."""

from __future__ import annotations

from pathlib import Path

import pytest

_INTEGRATION = Path(__file__).parent / "integration"
_RELIABILITY = Path(__file__).parent / "reliability"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the control plane: mark it so `-m` can select."""
    for item in items:
        if _INTEGRATION in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)
        if _RELIABILITY in Path(item.fspath).parents:
            item.add_marker(pytest.mark.reliability)
