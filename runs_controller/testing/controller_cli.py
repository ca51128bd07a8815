"""The `runs-controller run` command line that test and benchmark harnesses start.

One place for the flags a harness-started controller needs (its kubeconfig, the namespace it
keeps its Lease and configuration in, loopback-only probe ports), so the reliability suite, the
end-to-end tests and the benchmark start the same controller.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

FAST_LEASE = ("--lease-duration=4", "--renew-deadline=3", "--retry-period=0.5")
"""Short leases, so a killed leader is replaced within seconds."""


def controller_run_argv(
    *,
    kubeconfig: Path,
    home_namespace: str,
    metrics_port: int,
    health_port: int,
    namespaces: str | None = None,
    lease_id: str | None = None,
    fast_lease: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """`python -m runs_controller run ...` with this interpreter.

    `home_namespace` holds the leader-election Lease and the configuration; `namespaces`
    (comma-separated) limits what the controller watches (all namespaces when None).
    """
    argv = [sys.executable, "-m", "runs_controller", "run", f"--kubeconfig={kubeconfig}"]
    if namespaces is not None:
        argv.append(f"--namespaces={namespaces}")
    argv += [
        f"--leader-election-namespace={home_namespace}",
        f"--config-namespace={home_namespace}",
    ]
    if lease_id is not None:
        argv.append(f"--leader-election-id={lease_id}")
    argv += [
        f"--metrics-bind-address=127.0.0.1:{metrics_port}",
        f"--health-probe-bind-address=127.0.0.1:{health_port}",
    ]
    if fast_lease:
        argv += FAST_LEASE
    argv += extra
    return argv
