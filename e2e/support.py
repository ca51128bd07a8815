"""Helpers of the end-to-end suite: helm and kubectl from the pinned builds, controller
processes that authenticate as the chart's ServiceAccount, and waits on real objects."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runs_controller.testing.binaries import find_binary
from runs_controller.testing.controller_cli import controller_run_argv
from runs_controller.testing.controlplane import free_port
from runs_controller.testing.process import ManagedProcess

if TYPE_CHECKING:
    from runs_controller.testing.stack import LocalStack

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "runs-controller"
RELEASE = "runs"
RELEASE_NAMESPACE = "runs-system"


def tool(name: str, *args: str, kubeconfig: Path, check: bool = True) -> str:
    """Run helm or kubectl (the pinned builds) against the stack; return stdout."""
    completed = subprocess.run(
        [str(find_binary(name)), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if check and completed.returncode != 0:
        raise AssertionError(
            f"{name} {' '.join(args)} exited {completed.returncode}:\n{completed.stderr}"
        )
    return completed.stdout


@dataclass(frozen=True)
class Release:
    namespace: str
    service_account: str
    config_map: str
    objects: list[dict[str, Any]]
    """Every object the release rendered (from `helm get manifest`)."""


def manifest_objects(text: str) -> list[dict[str, Any]]:
    import yaml

    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]


def install_chart(stack: LocalStack) -> Release:
    """`helm install` the chart as a cluster admin would; the controller itself runs locally."""
    kubeconfig = stack.plane.kubeconfig_path
    tool(
        "helm",
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        f"--namespace={RELEASE_NAMESPACE}",
        "--create-namespace",
        "--wait=false",
        kubeconfig=kubeconfig,
    )
    objects = manifest_objects(
        tool(
            "helm",
            "get",
            "manifest",
            RELEASE,
            f"--namespace={RELEASE_NAMESPACE}",
            kubeconfig=kubeconfig,
        )
    )
    accounts = [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"]
    maps = [o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"]
    assert len(accounts) == 1, f"the chart should render one ServiceAccount, got {accounts}"
    return Release(RELEASE_NAMESPACE, accounts[0], maps[0] if maps else "", objects)


@dataclass
class ControllerProcess:
    """`runs-controller run` as a separate process with the chart ServiceAccount's token."""

    name: str
    kubeconfig: Path
    release: Release
    log_dir: Path
    extra: tuple[str, ...] = ()
    process: ManagedProcess = field(init=False)

    def __post_init__(self) -> None:
        argv = controller_run_argv(
            kubeconfig=self.kubeconfig,
            home_namespace=self.release.namespace,
            metrics_port=free_port(),
            health_port=free_port(),
            fast_lease=True,
            extra=["--leader-elect", "--log-format=json", "--log-level=info", *self.extra],
        )
        if self.release.config_map:
            argv.append(f"--config-name={self.release.config_map}")
        self.process = ManagedProcess(self.name, argv, self.log_dir / f"{self.name}.log")

    def start(self) -> ControllerProcess:
        self.process.start()
        return self

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        path = self.process.log_path
        for raw in path.read_text().splitlines() if path.exists() else []:
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                lines.append({"event": "unparsed", "line": raw})
        return lines

    def identity(self) -> str | None:
        for line in self.log_lines():
            if line.get("event") == "leader_election_acquiring":
                identity: str = line["identity"]
                return identity
        return None

    def forbidden(self) -> list[str]:
        """Log lines that report a refused request: the client's errors read `403 Forbidden`,
        the apiserver's messages `... is forbidden: ...`."""
        text = self.process.log_path.read_text() if self.process.log_path.exists() else ""
        markers = ("403 Forbidden", '"error_type":"Forbidden"', "is forbidden")
        return [line for line in text.splitlines() if any(m in line for m in markers)]
