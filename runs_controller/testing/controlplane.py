"""A real local control plane: etcd + kube-apiserver as child processes on loopback.

Everything is fresh per instance: free ports, a data directory, a CA, a serving certificate, an
admin client certificate (O=system:masters), a service-account signing key and a kubeconfig.
Authorization is RBAC, so identities minted with `user_kubeconfig` / `service_account_kubeconfig`
are refused until a Role grants them something, exactly as in a real cluster.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runs_controller.testing.binaries import find_binaries
from runs_controller.testing.certs import CertificateAuthority, service_account_signing_key_pem
from runs_controller.testing.kubeconfig import render_kubeconfig, write_kubeconfig
from runs_controller.testing.process import ManagedProcess
from runs_controller.testing.rest import ApiStatusError, Credentials, HarnessClient
from runs_controller.testing.wait import WaitTimeoutError, poll_until

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
from typing import Any

LOOPBACK = "127.0.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


class ControlPlaneError(RuntimeError):
    """The control plane failed to start or stopped unexpectedly; the message has the log tails."""


def free_port() -> int:
    """A TCP port on loopback that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ControlPlaneConfig:
    """Knobs for a control plane; the defaults suit tests on a 2-core machine."""

    data_dir: Path | None = None
    """Where certificates, etcd data, logs and kubeconfigs go; None means a fresh temp dir
    that is removed on stop."""
    start_timeout: float = 120.0
    """Seconds to wait for etcd and kube-apiserver to report ready."""
    extra_apiserver_args: list[str] = field(default_factory=list)
    keep_data_dir: bool = False
    """Keep a temp data dir after stop (for debugging a failed run)."""


@dataclass(frozen=True)
class _Pki:
    ca_file: Path
    ca_pem: bytes
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path


class ControlPlane:
    """etcd + kube-apiserver for tests and the local `dev` stack. Use as a context manager."""

    def __init__(self, config: ControlPlaneConfig | None = None) -> None:
        self.config = config or ControlPlaneConfig()
        # Find the binaries first: a missing one must not leave an empty temp dir behind.
        self._binaries = find_binaries(["etcd", "kube-apiserver"])
        self._owns_data_dir = self.config.data_dir is None
        self.data_dir = self.config.data_dir or Path(tempfile.mkdtemp(prefix="runs-controller-cp-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._ca = CertificateAuthority()
        self._pki = self._write_pki()
        self.etcd_client_port = free_port()
        self.etcd_peer_port = free_port()
        self.apiserver_port = free_port()
        self.server = f"https://{LOOPBACK}:{self.apiserver_port}"
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        self.etcd = ManagedProcess("etcd", self._etcd_argv(), logs / "etcd.log")
        self.apiserver = ManagedProcess(
            "kube-apiserver", self._apiserver_argv(), logs / "kube-apiserver.log"
        )
        self.kubeconfig_path = write_kubeconfig(
            self.data_dir / "admin.kubeconfig",
            render_kubeconfig(
                server=self.server,
                ca_pem=self._pki.ca_pem,
                user="admin",
                cert_pem=self._pki.admin_cert.read_bytes(),
                key_pem=self._pki.admin_key.read_bytes(),
            ),
        )
        self.admin = HarnessClient(
            self.server,
            self._pki.ca_file,
            Credentials(cert_file=self._pki.admin_cert, key_file=self._pki.admin_key),
        )

    # ---- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
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
        """Start etcd, then kube-apiserver; return when the API serves and `default` exists."""
        try:
            self.start_etcd()
            self.start_apiserver()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop both processes (apiserver first) and remove a temp data dir. Idempotent."""
        self.apiserver.stop()
        self.etcd.stop()
        if self._owns_data_dir and not self.config.keep_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def start_etcd(self) -> None:
        self.etcd.start()
        self._await(self._etcd_healthy, "etcd /health")

    def start_apiserver(self) -> None:
        self.apiserver.start()
        self._await(self._apiserver_ready, "kube-apiserver /readyz")
        self._await(self._default_namespace_exists, "namespace 'default'")

    def stop_apiserver(self) -> None:
        self.apiserver.stop()

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port; etcd (and so all data) stays."""
        self.stop_apiserver()
        self.start_apiserver()

    # ---- identities -------------------------------------------------------------------------

    def user_kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig for a client-certificate user (no permissions until RBAC grants some)."""
        pair = self._ca.issue_client(user, groups)
        return write_kubeconfig(
            self._users_dir() / f"user-{_safe(user)}.kubeconfig",
            render_kubeconfig(
                server=self.server,
                ca_pem=self._pki.ca_pem,
                user=user,
                cert_pem=pair.cert_pem,
                key_pem=pair.key_pem,
            ),
        )

    def service_account_token(
        self, namespace: str, name: str, expiration_seconds: int = 3600
    ) -> str:
        """A bound token for a ServiceAccount (created if missing) via the TokenRequest API."""
        sa_path = f"/api/v1/namespaces/{namespace}/serviceaccounts"
        response = self.admin.request(
            "POST",
            sa_path,
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        )
        if not response.ok and response.status != 409:
            raise ApiStatusError("POST", sa_path, response)
        token_request = self.admin.create(
            f"{sa_path}/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            },
        )
        token: str = token_request["status"]["token"]
        return token

    def service_account_kubeconfig(
        self, namespace: str, name: str, expiration_seconds: int = 3600
    ) -> Path:
        """A kubeconfig that authenticates as system:serviceaccount:<namespace>:<name>."""
        token = self.service_account_token(namespace, name, expiration_seconds)
        return write_kubeconfig(
            self._users_dir() / f"sa-{namespace}-{name}.kubeconfig",
            render_kubeconfig(
                server=self.server,
                ca_pem=self._pki.ca_pem,
                user=f"system:serviceaccount:{namespace}:{name}",
                token=token,
                namespace=namespace,
            ),
        )

    def admin_kubeconfig_via(self, port: int) -> Path:
        """An admin kubeconfig that reaches the apiserver through another loopback port (a
        `TcpProxy`); the serving certificate is valid for 127.0.0.1 on any port."""
        path = self._users_dir() / f"admin-via-{port}.kubeconfig"
        text = self.kubeconfig_path.read_text().replace(self.server, f"https://{LOOPBACK}:{port}")
        return write_kubeconfig_text(path, text)

    def compact_etcd(self) -> int:
        """Compact etcd up to its current revision and return it: every older resourceVersion
        is gone, so a watch from one gets 410 (when the apiserver's watch cache does not serve
        it; start the plane with `--watch-cache=false` for that)."""
        base = f"http://{LOOPBACK}:{self.etcd_client_port}/v3/kv"
        header = _etcd_post(f"{base}/range", {"key": "AA==", "limit": 1})["header"]
        revision = int(header["revision"])
        _etcd_post(f"{base}/compaction", {"revision": revision, "physical": True})
        return revision

    @property
    def ca_file(self) -> Path:
        return self._pki.ca_file

    # ---- namespaces -------------------------------------------------------------------------

    def create_namespace(self, prefix: str = "test") -> str:
        """Create a namespace with a unique generated name and return the name."""
        created = self.admin.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"generateName": f"{prefix}-"}},
        )
        name: str = created["metadata"]["name"]
        return name

    def delete_namespace(self, name: str) -> None:
        """Request deletion. Without kube-controller-manager it stays Terminating, by design."""
        response = self.admin.request("DELETE", f"/api/v1/namespaces/{name}")
        if not response.ok and response.status != 404:
            raise ApiStatusError("DELETE", f"/api/v1/namespaces/{name}", response)

    # ---- internals --------------------------------------------------------------------------

    def _users_dir(self) -> Path:
        directory = self.data_dir / "users"
        directory.mkdir(exist_ok=True)
        return directory

    def _write_pki(self) -> _Pki:
        pki = self.data_dir / "pki"
        pki.mkdir(exist_ok=True)
        ca_file = pki / "ca.crt"
        ca_file.write_bytes(self._ca.cert_pem)
        serving = self._ca.issue_server(
            "kube-apiserver",
            [
                LOOPBACK,
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
        )
        serving_cert, serving_key = serving.write(pki, "apiserver")
        admin_cert, admin_key = self._ca.issue_client("admin", ("system:masters",)).write(
            pki, "admin"
        )
        sa_key = pki / "sa.key"
        sa_key.touch(mode=0o600)
        sa_key.write_bytes(service_account_signing_key_pem())
        return _Pki(
            ca_file=ca_file,
            ca_pem=self._ca.cert_pem,
            serving_cert=serving_cert,
            serving_key=serving_key,
            admin_cert=admin_cert,
            admin_key=admin_key,
            service_account_key=sa_key,
        )

    def _etcd_argv(self) -> list[str]:
        client = f"http://{LOOPBACK}:{self.etcd_client_port}"
        peer = f"http://{LOOPBACK}:{self.etcd_peer_port}"
        return [
            str(self._binaries["etcd"]),
            f"--data-dir={self.data_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_argv(self) -> list[str]:
        pki = self._pki
        return [
            str(self._binaries["kube-apiserver"]),
            f"--etcd-servers=http://{LOOPBACK}:{self.etcd_client_port}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={self.apiserver_port}",
            "--endpoint-reconciler-type=none",
            f"--cert-dir={self.data_dir / 'pki'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_file}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.service_account_key}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--profiling=false",
            *self.config.extra_apiserver_args,
        ]

    def _await(self, probe: Callable[[], bool], what: str) -> None:
        def checked() -> bool | None:
            for process in (self.etcd, self.apiserver):
                if process.returncode is not None:
                    raise ControlPlaneError(
                        f"{process.describe_exit()} while waiting for {what}\n{self.log_tails()}"
                    )
            return True if probe() else None

        try:
            poll_until(checked, timeout=self.config.start_timeout, what=what)
        except WaitTimeoutError as error:
            raise ControlPlaneError(f"{error}\n{self.log_tails()}") from None

    def log_tails(self, lines: int = 30) -> str:
        """The last lines of each component's log, for failure messages."""
        return "\n".join(
            f"--- last {lines} lines of {process.log_path} ---\n{process.log_tail(lines)}"
            for process in (self.etcd, self.apiserver)
        )

    def _etcd_healthy(self) -> bool:
        url = f"http://{LOOPBACK}:{self.etcd_client_port}/health"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=2) as reply:
                return b'"health":"true"' in reply.read()
        except (OSError, urllib.error.URLError):
            return False

    def _apiserver_ready(self) -> bool:
        with contextlib.suppress(OSError):
            return self.admin.request("GET", "/readyz", timeout=5).status == 200
        return False

    def _default_namespace_exists(self) -> bool:
        with contextlib.suppress(OSError):
            return self.admin.request("GET", "/api/v1/namespaces/default", timeout=5).ok
        return False


def _etcd_post(url: str, body: dict[str, object]) -> dict[str, Any]:
    """One call to etcd's JSON gateway (plain HTTP on loopback)."""
    request = urllib.request.Request(  # noqa: S310 - loopback http to our own etcd
        url, data=json.dumps(body).encode(), method="POST"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as reply:
        result: dict[str, Any] = json.loads(reply.read())
        return result


def write_kubeconfig_text(path: Path, text: str) -> Path:
    path.touch(mode=0o600)
    path.write_text(text)
    return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
