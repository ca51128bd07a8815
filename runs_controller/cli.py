"""Command line: `runs-controller run` (the controller) and `runs-controller dev` (local stack)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import structlog

from runs_controller import __version__
from runs_controller.app import ControllerSettings, StartupError, run_controller
from runs_controller.observability.logging import configure_logging

log = structlog.get_logger("runs_controller")


def _add_logging_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default=os.environ.get("RUNS_CONTROLLER_LOG_LEVEL", "info"),
        help="debug, info, warning or error (env RUNS_CONTROLLER_LOG_LEVEL; default info)",
    )
    parser.add_argument(
        "--log-format",
        choices=["json", "console"],
        default=os.environ.get("RUNS_CONTROLLER_LOG_FORMAT", "json"),
        help="json (default) or console (env RUNS_CONTROLLER_LOG_FORMAT)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runs-controller",
        description="Kubernetes controller for runs.bubustack.io (StoryRun, StepRun, ...).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the controller against a cluster")
    run.add_argument(
        "--kubeconfig",
        type=Path,
        default=os.environ.get("KUBECONFIG") or None,
        help="kubeconfig file (env KUBECONFIG); omitted: in-cluster credentials",
    )
    _add_logging_flags(run)

    dev = commands.add_parser(
        "dev",
        help="start a local etcd + kube-apiserver (building them on first use) and run the "
        "controller against it until Ctrl-C",
    )
    dev.add_argument(
        "--no-build",
        action="store_true",
        help="fail instead of building missing control-plane binaries",
    )
    _add_logging_flags(dev)

    manifests = commands.add_parser(
        "manifests", help="write the CRDs generated from runs_controller/api to a directory"
    )
    manifests.add_argument("--output", type=Path, default=Path("manifests/crds"))
    manifests.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the files in --output differ from what would be generated",
    )
    manifests.add_argument(
        "--refresh-core-schemas",
        action="store_true",
        help="first re-read the embedded Kubernetes core schemas from a local kube-apiserver of "
        "the pinned version (started for the purpose)",
    )

    crd_diff = commands.add_parser(
        "crd-diff",
        help="compare two directories of CRDs kind by kind (ours first, then the reference)",
    )
    crd_diff.add_argument("ours", type=Path)
    crd_diff.add_argument("theirs", type=Path)
    crd_diff.add_argument(
        "--allow", type=Path, help="YAML allow-list of intentional differences, with reasons"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "manifests":
        if args.refresh_core_schemas:
            _refresh_core_schemas()
        return _manifests(args.output, check=args.check)
    if args.command == "crd-diff":
        return _crd_diff(args.ours, args.theirs, args.allow)
    configure_logging(args.log_level, args.log_format)
    try:
        if args.command == "run":
            anyio.run(run_controller, ControllerSettings(kubeconfig=args.kubeconfig))
            return 0
        return _dev(build=not args.no_build)
    except StartupError as error:
        log.error("startup_failed", error=str(error))
        return 1


def _manifests(output: Path, *, check: bool) -> int:
    from runs_controller.api.crdgen.generate import render_all, write_all
    from runs_controller.api.kinds import ALL_KINDS

    if not check:
        for path in write_all(ALL_KINDS, output):
            sys.stdout.write(f"wrote {path}\n")
        return 0
    stale = [
        name
        for name, text in render_all(ALL_KINDS).items()
        if not (output / name).is_file() or (output / name).read_text() != text
    ]
    for name in stale:
        sys.stdout.write(f"stale: {output / name}\n")
    if stale:
        sys.stdout.write("regenerate with: runs-controller manifests\n")
    return 1 if stale else 0


def _refresh_core_schemas() -> None:
    from runs_controller.api.crdgen.k8s_openapi import refresh_snapshot
    from runs_controller.testing import ControlPlane

    with ControlPlane() as plane:
        path = refresh_snapshot(plane.admin)
    sys.stdout.write(f"wrote {path}\n")


def _crd_diff(ours: Path, theirs: Path, allow: Path | None) -> int:
    from runs_controller.api.crdgen.diff import diff_directories, load_allow_list, partition

    differences = diff_directories(ours, theirs)
    entries = load_allow_list(allow) if allow is not None else []
    unexplained, explained, stale = partition(differences, entries)
    for difference in unexplained:
        sys.stdout.write(f"{difference}\n")
    for entry in stale:
        sys.stdout.write(
            f"stale allow-list entry (matches nothing): {entry.kind} {entry.path} {entry.aspect}\n"
        )
    sys.stdout.write(
        f"{len(unexplained)} unexplained differences, {len(explained)} allowed, "
        f"{len(stale)} stale allow-list entries\n"
    )
    return 1 if unexplained or stale else 0


def _dev(*, build: bool) -> int:
    # Imported here: the control plane harness (and its cryptography dependency) is a
    # development tool, not part of the controller image.
    from runs_controller.testing import BinariesNotFoundError, ControlPlane, find_binaries
    from runs_controller.testing.binaries import BUILD_SCRIPT, cache_root

    try:
        find_binaries(["etcd", "kube-apiserver"])
    except BinariesNotFoundError as error:
        if not build or not BUILD_SCRIPT.is_file():
            log.error("control_plane_binaries_missing", error=str(error))
            return 1
        log.info("building_control_plane", script=str(BUILD_SCRIPT), note="first run: 10-30 min")
        subprocess.run(["bash", str(BUILD_SCRIPT)], check=True)  # noqa: S603, S607

    with ControlPlane() as plane:
        stable = cache_root() / "dev" / "kubeconfig"
        stable.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plane.kubeconfig_path, stable)
        stable.chmod(0o600)
        log.info(
            "control_plane_ready",
            server=plane.server,
            kubeconfig=str(stable),
            hint=f"export KUBECONFIG={stable}",
        )
        anyio.run(run_controller, ControllerSettings(kubeconfig=stable))
    return 0


if __name__ == "__main__":
    sys.exit(main())
