from __future__ import annotations

import re
from pathlib import Path

import pytest

from runs_controller.testing import binaries
from runs_controller.testing.binaries import (
    BinariesNotFoundError,
    find_binaries,
    find_binary,
    read_pinned_versions,
)


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for variable in (
        "TEST_ASSET_ETCD",
        "TEST_ASSET_KUBE_APISERVER",
        "KUBEBUILDER_ASSETS",
        "RUNS_CONTROLLER_BIN_DIR",
    ):
        monkeypatch.delenv(variable, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("RUNS_CONTROLLER_CACHE", str(cache))
    return cache


def test_pinned_versions_match_the_go_modules() -> None:
    pinned = read_pinned_versions()
    k8s_mod = (binaries.CONTROLPLANE_DIR / "k8s" / "go.mod").read_text()
    etcd_mod = (binaries.CONTROLPLANE_DIR / "etcd" / "go.mod").read_text()
    assert re.search(rf"k8s\.io/kubernetes {re.escape(pinned.kubernetes)}\b", k8s_mod)
    assert re.search(rf"go\.etcd\.io/etcd/server/v3 {re.escape(pinned.etcd)}\b", etcd_mod)
    staging = "v0." + pinned.kubernetes.removeprefix("v1.")
    replaced = re.findall(r"=> (k8s\.io/\S+) (\S+)", k8s_mod)
    assert replaced, "the k8s consumer module must replace the staging modules"
    assert {version for _, version in replaced} == {staging}


@pytest.mark.parametrize(
    ("module", "path", "attribute"),
    [
        ("kwok", "sigs.k8s.io/kwok", "kwok"),
        ("helm", "helm.sh/helm/v3", "helm"),
        ("kubeconform", "github.com/yannh/kubeconform", "kubeconform"),
    ],
)
def test_tool_versions_match_their_go_modules(module: str, path: str, attribute: str) -> None:
    version = getattr(read_pinned_versions(), attribute)
    go_mod = (binaries.CONTROLPLANE_DIR / module / "go.mod").read_text()
    assert re.search(rf"{re.escape(path)} {re.escape(version)}\b", go_mod)
    assert "\nreplace" not in go_mod, "tool modules need no replace lines"


def test_default_cache_dir_is_keyed_by_kubernetes_version(clean_env: Path) -> None:
    pinned = read_pinned_versions()
    assert binaries.default_bin_dir() == clean_env / "bin" / pinned.kubernetes


def test_lookup_order_env_var_then_asset_dir_then_cache(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = _executable(clean_env / "bin" / read_pinned_versions().kubernetes / "etcd")
    assert find_binary("etcd") == cached
    assets = _executable(tmp_path / "assets" / "etcd")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets.parent))
    assert find_binary("etcd") == assets
    explicit = _executable(tmp_path / "elsewhere" / "my-etcd")
    monkeypatch.setenv("TEST_ASSET_ETCD", str(explicit))
    assert find_binary("etcd") == explicit


def test_non_executable_files_are_ignored(clean_env: Path) -> None:
    path = clean_env / "bin" / read_pinned_versions().kubernetes / "etcd"
    path.parent.mkdir(parents=True)
    path.write_text("not executable")
    with pytest.raises(BinariesNotFoundError):
        find_binary("etcd")


def test_missing_binaries_are_all_named_with_the_build_command(clean_env: Path) -> None:
    with pytest.raises(BinariesNotFoundError) as raised:
        find_binaries(["etcd", "kube-apiserver"])
    message = str(raised.value)
    assert "'etcd' not found" in message
    assert "'kube-apiserver' not found" in message
    assert f"bash {binaries.BUILD_SCRIPT} etcd kube-apiserver" in message
