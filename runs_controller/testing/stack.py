"""The full local stack: a `ControlPlane` plus kube-controller-manager, kube-scheduler and kwok.

With these, a Job really gets Pods (the Job controller), the Pods are bound to a fake Node (the
scheduler) and run to completion (kwok's stages, see `testing.kwok`), owner references are
garbage-collected and namespaces finish deleting. There is still no container runtime: a Pod
"runs" no code unless a dev executor (`testing.executor`) runs its image as a local process.
"""

from __future__ import annotations

import contextlib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runs_controller.testing.binaries import find_binaries
from runs_controller.testing.controlplane import (
    LOOPBACK,
    ControlPlane,
    ControlPlaneConfig,
    ControlPlaneError,
    free_port,
)
from runs_controller.testing.kwok import (
    NODE_ANNOTATION,
    NODE_IP,
    NODE_NAME,
    POD_CIDR,
    fake_node,
    stages_yaml,
)
from runs_controller.testing.process import ManagedProcess
from runs_controller.testing.rest import ApiStatusError
from runs_controller.testing.wait import WaitTimeoutError, poll_until

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

STACK_BINARIES = ("kube-controller-manager", "kube-scheduler", "kwok")

CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "ttl-after-finished-controller",
    "root-ca-certificate-publisher-controller",
)
"""The kube-controller-manager controllers the stack runs: Jobs make Pods, owner references
cascade, namespaces delete, every namespace gets its `default` ServiceAccount and CA bundle."""


@dataclass
class StackConfig:
    """Knobs for the full stack on top of the control plane's own."""

    control_plane: ControlPlaneConfig = field(default_factory=ControlPlaneConfig)
    executor_images: frozenset[str] = frozenset()
    """Images a dev executor runs for real; kwok leaves their pods Running for it to finish."""
    start_timeout: float = 120.0


class LocalStack:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok and one fake Node.

    Use as a context manager; `plane` is the underlying `ControlPlane` (kubeconfig, admin
    client, identities)."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        binaries = find_binaries(list(STACK_BINARIES))
        self.plane = ControlPlane(self.config.control_plane)
        data = self.plane.data_dir
        logs = data / "logs"
        kubeconfig = str(self.plane.kubeconfig_path)
        self.controller_manager_port = free_port()
        self.scheduler_port = free_port()
        self.kwok_port = free_port()
        pki = data / "pki"
        self.controller_manager = ManagedProcess(
            "kube-controller-manager",
            [
                str(binaries["kube-controller-manager"]),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--authentication-skip-lookup=true",
                "--leader-elect=false",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--root-ca-file={self.plane.ca_file}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={self.controller_manager_port}",
                f"--cert-dir={data / 'kcm-certs'}",
                "--concurrent-job-syncs=10",
                "--concurrent-gc-syncs=20",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--profiling=false",
            ],
            logs / "kube-controller-manager.log",
        )
        self.scheduler = ManagedProcess(
            "kube-scheduler",
            [
                str(binaries["kube-scheduler"]),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--authentication-skip-lookup=true",
                "--leader-elect=false",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={self.scheduler_port}",
                f"--cert-dir={data / 'scheduler-certs'}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--profiling=false",
            ],
            logs / "kube-scheduler.log",
        )
        stages = data / "kwok-stages.yaml"
        stages.write_text(stages_yaml(self.config.executor_images))
        self.kwok = ManagedProcess(
            "kwok",
            [
                str(binaries["kwok"]),
                f"--kubeconfig={kubeconfig}",
                f"--config={stages}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
                "--manage-nodes-with-label-selector=",
                "--manage-single-node=",
                f"--cidr={POD_CIDR}",
                f"--node-ip={NODE_IP}",
                "--node-lease-duration-seconds=0",
                f"--server-address={LOOPBACK}:{self.kwok_port}",
            ],
            logs / "kwok.log",
        )
        self._processes = (self.controller_manager, self.scheduler, self.kwok)

    # ---- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the control plane, then the three components; return once a Node is Ready
        and the controller manager has given `default` its ServiceAccount."""
        try:
            self.plane.start()
            for process in self._processes:
                process.start()
            self._create_node()
            self._await(lambda: self._healthy(self.controller_manager_port), "kcm /healthz")
            self._await(lambda: self._healthy(self.scheduler_port), "kube-scheduler /healthz")
            self._await(self._node_ready, f"node {NODE_NAME} Ready (kwok)")
            self._await(self._default_service_account, "ServiceAccount default/default (kcm)")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the components, then the control plane. Idempotent."""
        for process in reversed(self._processes):
            process.stop()
        self.plane.stop()

    def log_tails(self, lines: int = 30) -> str:
        tails = [
            f"--- last {lines} lines of {process.log_path} ---\n{process.log_tail(lines)}"
            for process in self._processes
        ]
        return "\n".join([self.plane.log_tails(lines), *tails])

    # ---- internals --------------------------------------------------------------------------

    def _create_node(self) -> None:
        response = self.plane.admin.request("POST", "/api/v1/nodes", fake_node())
        if not response.ok and response.status != 409:
            raise ApiStatusError("POST", "/api/v1/nodes", response)
        # Admission gives a new Node the not-ready taint; the node lifecycle controller would
        # lift it, but that controller also expects kubelet heartbeats and would evict pods
        # without them, so the stack does not run it and lifts the taint itself.
        path = f"/api/v1/nodes/{NODE_NAME}"
        response = self.plane.admin.request(
            "PATCH", path, {"spec": {"taints": None}}, content_type="application/merge-patch+json"
        )
        if not response.ok:
            raise ApiStatusError("PATCH", path, response)

    def _await(self, probe: Callable[[], bool], what: str) -> None:
        def checked() -> bool | None:
            for process in (self.plane.etcd, self.plane.apiserver, *self._processes):
                if process.returncode is not None:
                    raise ControlPlaneError(
                        f"{process.describe_exit()} while waiting for {what}\n{self.log_tails()}"
                    )
            return True if probe() else None

        try:
            poll_until(checked, timeout=self.config.start_timeout, what=what)
        except WaitTimeoutError as error:
            raise ControlPlaneError(f"{error}\n{self.log_tails()}") from None

    def _healthy(self, port: int) -> bool:
        # The components serve a self-signed certificate; /healthz needs no credentials.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        try:
            with opener.open(f"https://{LOOPBACK}:{port}/healthz", timeout=2) as reply:
                return bool(reply.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _node_ready(self) -> bool:
        with contextlib.suppress(OSError):
            response = self.plane.admin.request("GET", f"/api/v1/nodes/{NODE_NAME}", timeout=5)
            if response.ok and isinstance(response.body, dict):
                conditions = response.body.get("status", {}).get("conditions") or []
                return any(
                    c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
                )
        return False

    def _default_service_account(self) -> bool:
        with contextlib.suppress(OSError):
            path = "/api/v1/namespaces/default/serviceaccounts/default"
            return self.plane.admin.request("GET", path, timeout=5).ok
        return False
