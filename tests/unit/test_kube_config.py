"""Loading connection settings from kubeconfig files (no server needed)."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

import pytest

from runs_controller.kube.config import ExecToken, StaticToken, load_cluster_config, load_kubeconfig
from runs_controller.testing.certs import CertificateAuthority
from runs_controller.testing.kubeconfig import render_kubeconfig, write_kubeconfig

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


def two_contexts(ca: CertificateAuthority) -> dict[str, Any]:
    document = render_kubeconfig(
        server="https://127.0.0.1:6443/",
        ca_pem=ca.cert_pem,
        user="alice",
        token="alice-token",
        namespace="team-a",
    )
    client = ca.issue_client("bob")
    bob = render_kubeconfig(
        server="https://10.0.0.1:443",
        ca_pem=ca.cert_pem,
        user="bob",
        cert_pem=client.cert_pem,
        key_pem=client.key_pem,
    )
    bob["clusters"][0]["name"] = "other"
    bob["clusters"][0]["cluster"]["tls-server-name"] = "kubernetes.default"
    bob["contexts"][0]["context"]["cluster"] = "other"
    document["clusters"] += bob["clusters"]
    document["users"] += bob["users"]
    document["contexts"] += bob["contexts"]
    return document


async def test_token_context(ca: CertificateAuthority, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", two_contexts(ca))
    config = await load_kubeconfig(path)
    assert config.host == "https://127.0.0.1:6443"
    assert config.host_label == "127.0.0.1:6443"
    assert config.namespace == "team-a"
    assert config.source == "kubeconfig"
    assert isinstance(config.token_provider, StaticToken)
    assert await config.token_provider() == "Bearer alice-token"
    assert isinstance(config.ssl_context, ssl.SSLContext)
    assert config.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert config.ssl_context.check_hostname
    assert len(config.ssl_context.get_ca_certs()) == 1  # only the kubeconfig's CA


async def test_certificate_context_chosen_by_name(ca: CertificateAuthority, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", two_contexts(ca))
    config = await load_kubeconfig(path, context="bob")
    assert config.host == "https://10.0.0.1:443"
    assert config.token_provider is None  # the identity is the client certificate
    assert config.tls_server_name == "kubernetes.default"
    assert config.namespace is None


async def test_insecure_skip_tls_verify(ca: CertificateAuthority, tmp_path: Path) -> None:
    document = two_contexts(ca)
    cluster = document["clusters"][0]["cluster"]
    del cluster["certificate-authority-data"]
    cluster["insecure-skip-tls-verify"] = True
    config = await load_kubeconfig(write_kubeconfig(tmp_path / "config", document))
    assert config.ssl_context is not None
    assert config.ssl_context.verify_mode == ssl.CERT_NONE


async def test_exec_user_gets_a_renewing_provider(ca: CertificateAuthority, tmp_path: Path) -> None:
    document = two_contexts(ca)
    document["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "sh",
            "args": [
                "-c",
                (
                    'echo \'{"apiVersion":"client.authentication.k8s.io/v1",'
                    '"kind":"ExecCredential","status":{"token":"from-plugin",'
                    '"expirationTimestamp":"2999-01-01T00:00:00Z"}}\''
                ),
            ],
        }
    }
    config = await load_kubeconfig(write_kubeconfig(tmp_path / "config", document))
    assert isinstance(config.token_provider, ExecToken)
    assert await config.token_provider() == "Bearer from-plugin"


async def test_load_order_prefers_explicit_then_kubeconfig_env(
    ca: CertificateAuthority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = two_contexts(ca)
    env_path = write_kubeconfig(tmp_path / "env-config", document)
    document["current-context"] = "bob"
    explicit = write_kubeconfig(tmp_path / "explicit", document)
    monkeypatch.setenv("KUBECONFIG", str(env_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")  # $KUBECONFIG still wins
    assert (await load_cluster_config()).host == "https://127.0.0.1:6443"
    assert (await load_cluster_config(explicit)).host == "https://10.0.0.1:443"
    assert (await load_cluster_config(context="bob")).host == "https://10.0.0.1:443"
