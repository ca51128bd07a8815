"""Connection settings: kubeconfig or in-cluster credentials, as an SSL context and a token source.

kubernetes-asyncio's loaders do the parsing (contexts, exec plugins, token files, certificate
data written to temp files); we read its `Configuration` once, build our own `ssl.SSLContext`
and keep a token provider that the client calls per request. Calling it per request is what
keeps rotated credentials working: the in-cluster hook re-reads the projected service-account
token file (at most once a minute) and an exec plugin is re-run when its credential expires.
"""

from __future__ import annotations

import datetime
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import anyio
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config import kube_config
from kubernetes_asyncio.config import load_incluster_config as _load_incluster_config
from kubernetes_asyncio.config.incluster_config import (
    SERVICE_CERT_FILENAME,
    SERVICE_HOST_ENV_NAME,
    SERVICE_TOKEN_FILENAME,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

SERVICE_NAMESPACE_FILENAME = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# Renew an exec credential this long before it expires (kubernetes-asyncio uses 5 minutes).
EXEC_EXPIRY_SKEW = datetime.timedelta(minutes=5)


class TokenProvider(Protocol):
    """Returns the full Authorization header value ("Bearer ...") or None; called per request."""

    async def __call__(self) -> str | None: ...


@dataclass(frozen=True)
class ClusterConfig:
    """Everything the client needs to reach and authenticate to one apiserver."""

    host: str
    """Base URL, e.g. https://10.0.0.1:443 (no trailing slash)."""
    ssl_context: ssl.SSLContext | None
    """None for a plain-http host."""
    token_provider: TokenProvider | None = None
    """None when the identity is a client certificate (or anonymous)."""
    tls_server_name: str | None = None
    """Override of the name checked against the serving certificate."""
    proxy: str | None = None
    """kubeconfig `proxy-url`; environment proxies are never used."""
    namespace: str | None = None
    """The context's (or the pod's) namespace, when known."""
    source: str = "explicit"
    """Where the settings came from: kubeconfig, in-cluster or explicit."""

    @property
    def host_label(self) -> str:
        """host:port, the `host` label of the rest client metrics."""
        return urlsplit(self.host).netloc


class StaticToken:
    """A token that never changes (kubeconfig `token`, basic auth, test fixtures)."""

    def __init__(self, header: str | None) -> None:
        self._header = header

    async def __call__(self) -> str | None:
        return self._header


class ConfigurationToken:
    """Runs kubernetes-asyncio's refresh hook: the in-cluster loader re-reads the token file."""

    def __init__(self, configuration: Any) -> None:
        self._configuration = configuration

    async def __call__(self) -> str | None:
        value: str | None = await self._configuration.get_api_key_with_prefix("BearerToken")
        return value


class ExecToken:
    """An exec-plugin credential, re-run (once, under a lock) when it is about to expire."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._lock = anyio.Lock()

    def _fresh(self) -> bool:
        expiry: datetime.datetime | None = getattr(self._loader, "exec_plugin_expiry", None)
        if expiry is None:
            return True
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=datetime.UTC)
        return datetime.datetime.now(datetime.UTC) < expiry - EXEC_EXPIRY_SKEW

    async def __call__(self) -> str | None:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():
                    await self._loader.load_from_exec_plugin()
        token: str | None = getattr(self._loader, "token", None)
        return token


def ssl_context_from(configuration: Any) -> ssl.SSLContext | None:
    """Our own SSL context from a loaded Configuration (CA, client cert/key, verify flag)."""
    if not str(configuration.host).startswith("https"):
        return None
    ca_file = configuration.ssl_ca_cert
    context = ssl.create_default_context(cafile=ca_file or None)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def _static_header(configuration: Any) -> str | None:
    value = configuration.api_key.get("BearerToken")
    if not value:
        return None
    prefix = configuration.api_key_prefix.get("BearerToken")
    return f"{prefix} {value}" if prefix else str(value)


async def load_kubeconfig(
    path: str | Path | None = None, context: str | None = None
) -> ClusterConfig:
    """Settings from a kubeconfig file (paths joined by ':' are merged, as kubectl does)."""
    if path is None:
        path = os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config"
    configuration = Configuration()
    loader = await kube_config.load_kube_config(
        config_file=str(path),
        context=context,
        client_configuration=configuration,
        persist_config=False,
    )
    provider: TokenProvider | None
    if hasattr(loader, "exec_plugin_expiry"):
        provider = ExecToken(loader)
    else:
        header = _static_header(configuration)
        provider = StaticToken(header) if header else None
    current = loader.current_context or {}
    namespace = (current.get("context") or {}).get("namespace")
    return ClusterConfig(
        host=str(configuration.host).rstrip("/"),
        ssl_context=ssl_context_from(configuration),
        token_provider=provider,
        tls_server_name=configuration.tls_server_name,
        proxy=configuration.proxy,
        namespace=namespace,
        source="kubeconfig",
    )


def load_incluster(
    *,
    token_file: str | Path = SERVICE_TOKEN_FILENAME,
    ca_file: str | Path = SERVICE_CERT_FILENAME,
    namespace_file: str | Path = SERVICE_NAMESPACE_FILENAME,
    environ: Mapping[str, str] | None = None,
) -> ClusterConfig:
    """Settings from the pod's service account; the token file is re-read as it rotates."""
    configuration = Configuration()
    _load_incluster_config(  # type: ignore[no-untyped-call]
        client_configuration=configuration,
        try_refresh_token=True,
        token_filename=str(token_file),
        cert_filename=str(ca_file),
        environ=dict(os.environ if environ is None else environ),
    )
    namespace_path = Path(namespace_file)
    namespace = namespace_path.read_text().strip() if namespace_path.is_file() else None
    return ClusterConfig(
        host=str(configuration.host).rstrip("/"),
        ssl_context=ssl_context_from(configuration),
        token_provider=ConfigurationToken(configuration),
        namespace=namespace or None,
        source="in-cluster",
    )


async def load_cluster_config(
    kubeconfig: str | Path | None = None, context: str | None = None
) -> ClusterConfig:
    """controller-runtime's order: explicit path, $KUBECONFIG, in-cluster, ~/.kube/config.

    In a pod a stray ~/.kube/config must not win over the service account; an explicit path,
    context or $KUBECONFIG always does.
    """
    if kubeconfig is None:
        kubeconfig = os.environ.get("KUBECONFIG") or None
    if kubeconfig is not None or context is not None:
        return await load_kubeconfig(kubeconfig, context)
    if os.environ.get(SERVICE_HOST_ENV_NAME) and await anyio.Path(SERVICE_TOKEN_FILENAME).is_file():
        return load_incluster()
    return await load_kubeconfig(Path.home() / ".kube" / "config")
