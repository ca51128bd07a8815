from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
import yaml

from runs_controller.testing.kubeconfig import render_kubeconfig, write_kubeconfig


def test_certificate_kubeconfig_embeds_everything(tmp_path: Path) -> None:
    config = render_kubeconfig(
        server="https://127.0.0.1:6443",
        ca_pem=b"CA",
        user="admin",
        cert_pem=b"CERT",
        key_pem=b"KEY",
    )
    path = write_kubeconfig(tmp_path / "kc" / "admin.kubeconfig", config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = yaml.safe_load(path.read_text())
    cluster = loaded["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == b"CA"
    user = loaded["users"][0]["user"]
    assert base64.b64decode(user["client-certificate-data"]) == b"CERT"
    assert base64.b64decode(user["client-key-data"]) == b"KEY"
    assert loaded["current-context"] == "admin"


def test_token_kubeconfig_sets_namespace() -> None:
    config = render_kubeconfig(
        server="https://x", ca_pem=b"CA", user="sa", token="t0k", namespace="ns1"
    )
    assert config["users"][0]["user"] == {"token": "t0k"}
    assert config["contexts"][0]["context"]["namespace"] == "ns1"


def test_a_kubeconfig_needs_credentials() -> None:
    with pytest.raises(ValueError, match="certificate or a token"):
        render_kubeconfig(server="https://x", ca_pem=b"CA", user="nobody")
