"""Command line: `runs-controller run` (the controller) and `runs-controller dev` (local stack)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import anyio
import structlog

from runs_controller import __version__
from runs_controller.app import (
    DEFAULT_LEADER_ELECTION_ID,
    ControllerSettings,
    StartupError,
    render_rbac,
    run_controller,
)
from runs_controller.observability.logging import configure_logging
from runs_controller.runtime.controller import DEFAULT_RECONCILE_TIMEOUT
from runs_controller.runtime.leaderelection import LeadershipLost
from runs_controller.runtime.manager import CacheSyncFailed
from runs_controller.runtime.operator_config import DEFAULT_CONFIG_NAME

log = structlog.get_logger("runs_controller")

CHART_RBAC_FILE = Path("charts/runs-controller/files/rbac.yaml")
"""The chart's committed copy of `runs-controller rbac`, relative to the checkout."""


def _add_logging_flags(
    parser: argparse.ArgumentParser, level: str = "info", fmt: str = "json"
) -> None:
    parser.add_argument(
        "--log-level",
        default=os.environ.get("RUNS_CONTROLLER_LOG_LEVEL", level),
        help=f"debug, info, warning or error (env RUNS_CONTROLLER_LOG_LEVEL; default {level})",
    )
    parser.add_argument(
        "--log-format",
        choices=["json", "console"],
        default=os.environ.get("RUNS_CONTROLLER_LOG_FORMAT", fmt),
        help=f"json or console (env RUNS_CONTROLLER_LOG_FORMAT; default {fmt})",
    )


def _env(name: str, default: str) -> str:
    return os.environ.get(f"RUNS_CONTROLLER_{name}", default)


def _add_controller_flags(parser: argparse.ArgumentParser) -> None:
    """Every flag has an environment variable RUNS_CONTROLLER_<NAME> (shown in --help)."""
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=os.environ.get("KUBECONFIG") or None,
        help="kubeconfig file (env KUBECONFIG); omitted: in-cluster credentials",
    )
    parser.add_argument("--context", default=_env("CONTEXT", "") or None, help="kubeconfig context")
    parser.add_argument(
        "--namespaces",
        default=_env("NAMESPACES", ""),
        help="comma-separated namespaces to watch; empty (default) = all (env NAMESPACES)",
    )
    parser.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=_env("LEADER_ELECT", "true").lower() not in ("false", "0", "no"),
        help="compete for a Lease; only the leader reconciles (default on; env LEADER_ELECT)",
    )
    parser.add_argument(
        "--leader-election-id",
        default=_env("LEADER_ELECTION_ID", DEFAULT_LEADER_ELECTION_ID),
        help=f"Lease name (default {DEFAULT_LEADER_ELECTION_ID}; env LEADER_ELECTION_ID)",
    )
    parser.add_argument(
        "--leader-election-namespace",
        default=_env("LEADER_ELECTION_NAMESPACE", "") or os.environ.get("POD_NAMESPACE") or None,
        help="Lease namespace (default: the pod's / kubeconfig's namespace, else `default`)",
    )
    parser.add_argument("--lease-duration", type=float, default=float(_env("LEASE_DURATION", "15")))
    parser.add_argument("--renew-deadline", type=float, default=float(_env("RENEW_DEADLINE", "10")))
    parser.add_argument("--retry-period", type=float, default=float(_env("RETRY_PERIOD", "2")))
    parser.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", "0")) or None,
        help="concurrent reconciles of every controller (default: StoryRun 8, StepRun 15, "
        "StoryTrigger and EffectClaim 10, as the reference; env WORKERS)",
    )
    parser.add_argument(
        "--metrics-bind-address",
        default=_env("METRICS_BIND_ADDRESS", ":8080"),
        help="host:port for /metrics, or 0 to disable (default :8080)",
    )
    parser.add_argument(
        "--health-probe-bind-address",
        default=_env("HEALTH_PROBE_BIND_ADDRESS", ":8081"),
        help="host:port for /healthz and /readyz, or 0 to disable (default :8081)",
    )
    parser.add_argument(
        "--graceful-shutdown-timeout",
        type=float,
        default=float(_env("GRACEFUL_SHUTDOWN_TIMEOUT", "30")),
        help="seconds in-flight reconciles get after SIGTERM (default 30)",
    )
    parser.add_argument(
        "--reconcile-timeout",
        type=float,
        default=float(_env("RECONCILE_TIMEOUT", str(DEFAULT_RECONCILE_TIMEOUT))),
        help=f"seconds one reconcile may take before it is cancelled and retried "
        f"(default {DEFAULT_RECONCILE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--cache-sync-timeout",
        type=float,
        default=float(_env("CACHE_SYNC_TIMEOUT", "120")),
        help="seconds the leader waits for its caches before it exits 1 (default 120)",
    )
    parser.add_argument(
        "--config-namespace",
        default=_env("CONFIG_NAMESPACE", "") or None,
        help="namespace of the operator ConfigMap (default: the controller's own)",
    )
    parser.add_argument(
        "--config-name",
        default=_env("CONFIG_NAME", DEFAULT_CONFIG_NAME),
        help=f"name of the operator ConfigMap; empty = compiled defaults only "
        f"(default {DEFAULT_CONFIG_NAME})",
    )
    parser.add_argument(
        "--qps",
        type=float,
        default=float(_env("QPS", "0")) or None,
        help="client-side request rate limit; 0 (default) = off",
    )
    parser.add_argument("--burst", type=int, default=int(_env("BURST", "10")))


def _settings(args: argparse.Namespace, kubeconfig: Path | None = None) -> ControllerSettings:
    def address(value: str) -> str | None:
        return None if value in ("", "0") else value

    return ControllerSettings(
        kubeconfig=kubeconfig or args.kubeconfig,
        context=args.context,
        namespaces=tuple(n.strip() for n in args.namespaces.split(",") if n.strip()),
        leader_elect=args.leader_elect,
        leader_election_id=args.leader_election_id,
        leader_election_namespace=args.leader_election_namespace,
        lease_duration=args.lease_duration,
        renew_deadline=args.renew_deadline,
        retry_period=args.retry_period,
        workers=args.workers,
        metrics_address=address(args.metrics_bind_address),
        health_address=address(args.health_probe_bind_address),
        graceful_shutdown_timeout=args.graceful_shutdown_timeout,
        reconcile_timeout=args.reconcile_timeout,
        cache_sync_timeout=args.cache_sync_timeout,
        config_namespace=args.config_namespace,
        config_name=args.config_name,
        qps=args.qps,
        burst=args.burst,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runs-controller",
        description="Kubernetes controller for runs.bubustack.io (StoryRun, StepRun, ...).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the controller against a cluster")
    _add_controller_flags(run)
    _add_logging_flags(run)

    dev = commands.add_parser(
        "dev",
        help="start the full local stack (building it on first use), install the sample Story, "
        "run the controller and show a sample StoryRun live; the stack stays up until Ctrl-C",
    )
    dev.add_argument(
        "--no-build",
        action="store_true",
        help="fail instead of building missing control-plane binaries",
    )
    dev.add_argument(
        "--once", action="store_true", help="stop when the sample run ends (exit 0 if Succeeded)"
    )
    dev.add_argument("--name", default="world", help="the sample Story's input (default world)")
    dev.add_argument(
        "--output",
        choices=["auto", "text", "json"],
        default="auto",
        help="the run's progress on stdout: sentences (auto on a terminal) or JSON lines",
    )
    _add_controller_flags(dev)
    _add_logging_flags(dev, level="warning", fmt="console" if sys.stderr.isatty() else "json")

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

    rbac = commands.add_parser(
        "rbac",
        help="print the RBAC rules the controller needs (derived from its informers and client "
        "calls), as the chart reads them",
    )
    rbac.add_argument(
        "--output",
        type=Path,
        default=CHART_RBAC_FILE,
        help=f"the chart's copy, written with --write and compared with --check "
        f"(default {CHART_RBAC_FILE})",
    )
    mode = rbac.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write --output instead of printing")
    mode.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if --output differs from the generated rules",
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
    if args.command == "rbac":
        return _rbac(args.output, write=args.write, check=args.check)
    if args.command == "crd-diff":
        return _crd_diff(args.ours, args.theirs, args.allow)
    configure_logging(args.log_level, args.log_format)
    try:
        if args.command == "run":
            return _run(_settings(args))
        return _dev(args)
    except StartupError as error:
        log.error("startup_failed", error=str(error))
        return 1


def _run(settings: ControllerSettings) -> int:
    """Exit 0 after a graceful stop; 1 when the Lease was lost (the pod restarts, as with
    controller-runtime: another replica may already be leading) or the caches never synced."""
    try:
        anyio.run(run_controller, settings)
    except LeadershipLost as lost:
        log.error("leadership_lost_exiting", error=str(lost))
        return 1
    except CacheSyncFailed as failed:
        log.error(
            "cache_sync_failed_exiting",
            error=str(failed),
            informers=failed.informers,
            timeout=failed.timeout,
        )
        return 1
    return 0


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


def _rbac(output: Path, *, write: bool, check: bool) -> int:
    text = render_rbac()
    if check:
        if output.is_file() and output.read_text() == text:
            return 0
        sys.stdout.write(f"stale: {output}\nregenerate with: runs-controller rbac --write\n")
        return 1
    if write:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        sys.stdout.write(f"wrote {output}\n")
        return 0
    sys.stdout.write(text)
    return 0


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


def _dev(args: argparse.Namespace) -> int:
    # Imported here: the local stack (and its cryptography dependency) is a development tool,
    # not part of the controller image.
    from runs_controller.dev.command import DevOptions, run_dev

    options = DevOptions(
        build=not args.no_build,
        once=args.once,
        human=sys.stdout.isatty() if args.output == "auto" else args.output == "text",
        inputs={"name": args.name},
    )
    return run_dev(_settings(args), options)


if __name__ == "__main__":
    sys.exit(main())
