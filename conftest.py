"""Root pytest configuration: the local control-plane fixtures for tests/ and e2e/."""

from __future__ import annotations

pytest_plugins = ["runs_controller.testing.pytest_plugin"]
