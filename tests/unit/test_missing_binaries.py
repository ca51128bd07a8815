"""Without control-plane binaries, integration tests must fail loudly, never skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.paths import REPO_ROOT


def test_integration_tests_fail_with_the_build_command_when_binaries_are_missing(
    tmp_path: Path,
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TEST_ASSET_")
        and key not in {"KUBEBUILDER_ASSETS", "RUNS_CONTROLLER_BIN_DIR"}
    }
    env["RUNS_CONTROLLER_CACHE"] = str(tmp_path / "empty-cache")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env["TMPDIR"] = str(scratch)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "tests/integration/test_control_plane.py::test_apiserver_reports_the_pinned_version",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "cannot start the local control plane" in output
    assert "e2e/controlplane/build.sh etcd kube-apiserver" in output
    assert "skipped" not in output
    assert "1 error" in output
    assert not list(scratch.glob("runs-controller-cp-*")), "a failed start left a data dir"
