"""The local Kubernetes control plane (etcd + kube-apiserver) for tests and `runs-controller dev`.

Shipped as first-class code: integration tests, benchmarks and the dev stack all start the same
real control plane from binaries built by e2e/controlplane/build.sh.
"""

from __future__ import annotations

from runs_controller.testing.binaries import BinariesNotFoundError, find_binaries, find_binary
from runs_controller.testing.controlplane import (
    ControlPlane,
    ControlPlaneConfig,
    ControlPlaneError,
    free_port,
)
from runs_controller.testing.crds import install_crds, load_crds
from runs_controller.testing.rest import ApiStatusError, Credentials, HarnessClient, Response
from runs_controller.testing.wait import WaitTimeoutError, poll_until

__all__ = [
    "ApiStatusError",
    "BinariesNotFoundError",
    "ControlPlane",
    "ControlPlaneConfig",
    "ControlPlaneError",
    "Credentials",
    "HarnessClient",
    "Response",
    "WaitTimeoutError",
    "find_binaries",
    "find_binary",
    "free_port",
    "install_crds",
    "load_crds",
    "poll_until",
]
