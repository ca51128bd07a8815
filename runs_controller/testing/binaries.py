"""Find the control-plane binaries (etcd, kube-apiserver, ...) built by e2e/controlplane/build.sh.

Lookup order for each binary, first hit wins:
1. `TEST_ASSET_<NAME>` (envtest's convention, e.g. TEST_ASSET_KUBE_APISERVER=/path/to/binary);
2. `KUBEBUILDER_ASSETS` or `RUNS_CONTROLLER_BIN_DIR` (a directory holding all of them);
3. the project cache `$RUNS_CONTROLLER_CACHE/bin/<kubernetes version>/` (default cache
   ~/.cache/runs-controller), where build.sh puts them; the version comes from versions.env.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]
CONTROLPLANE_DIR = _REPO_ROOT / "e2e" / "controlplane"
BUILD_SCRIPT = CONTROLPLANE_DIR / "build.sh"
VERSIONS_FILE = CONTROLPLANE_DIR / "versions.env"


class BinariesNotFoundError(FileNotFoundError):
    """A control-plane binary is missing; the message says how to build it."""


@dataclass(frozen=True)
class PinnedVersions:
    kubernetes: str
    etcd: str
    kwok: str
    helm: str
    kubeconform: str


def read_pinned_versions(path: Path = VERSIONS_FILE) -> PinnedVersions:
    """Parse the KEY=VALUE lines of versions.env (the single place versions are pinned)."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return PinnedVersions(
        kubernetes=values["K8S_VERSION"],
        etcd=values["ETCD_VERSION"],
        kwok=values["KWOK_VERSION"],
        helm=values["HELM_VERSION"],
        kubeconform=values["KUBECONFORM_VERSION"],
    )


def cache_root() -> Path:
    configured = os.environ.get("RUNS_CONTROLLER_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "runs-controller"


def default_bin_dir() -> Path | None:
    """The cache directory build.sh writes to, or None outside a source checkout."""
    if not VERSIONS_FILE.is_file():
        return None
    return cache_root() / "bin" / read_pinned_versions().kubernetes


def _env_name(binary: str) -> str:
    return "TEST_ASSET_" + binary.upper().replace("-", "_")


def build_hint(binaries: list[str]) -> str:
    if BUILD_SCRIPT.is_file():
        return f"build them with: bash {BUILD_SCRIPT} {' '.join(binaries)}"
    return (
        "build them with e2e/controlplane/build.sh from a runs-controller source checkout, "
        "or point KUBEBUILDER_ASSETS at a directory that holds them"
    )


def find_binary(name: str) -> Path:
    """Return the path of one control-plane binary or raise BinariesNotFoundError."""
    tried: list[str] = []
    explicit = os.environ.get(_env_name(name))
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    for variable in ("KUBEBUILDER_ASSETS", "RUNS_CONTROLLER_BIN_DIR"):
        directory = os.environ.get(variable)
        if directory:
            candidates.append(Path(directory) / name)
    default = default_bin_dir()
    if default is not None:
        candidates.append(default / name)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
        tried.append(str(candidate))
    looked = ", ".join(tried) if tried else "nowhere (no source checkout, no env vars)"
    raise BinariesNotFoundError(
        f"control-plane binary {name!r} not found (looked in: {looked}); {build_hint([name])}"
    )


def find_binaries(names: list[str]) -> dict[str, Path]:
    """Find several binaries at once, reporting every missing one in a single error."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    messages: list[str] = []
    for name in names:
        try:
            found[name] = find_binary(name)
        except BinariesNotFoundError as error:
            missing.append(name)
            messages.append(str(error).split(";")[0])
    if missing:
        raise BinariesNotFoundError("; ".join(messages) + "; " + build_hint(missing))
    return found
