"""A manager process for the process-level tests: one controller over ConfigMaps whose
reconcile logs when it starts and finishes and takes `--reconcile-seconds`.

Run as `python -m tests.integration.manager_app --kubeconfig K --namespace N ...`; it logs JSON
lines on stderr (`reconcile_started`, `reconcile_finished`, the manager's and the elector's
events) and exits 0 after a graceful stop, 1 when it lost its Lease.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anyio
import structlog
from prometheus_client import CollectorRegistry

from runs_controller.api.k8s import ConfigMap
from runs_controller.kube.client import ClientOptions, KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.kube.resources import CONFIG_MAPS
from runs_controller.observability.logging import configure_logging
from runs_controller.observability.metrics import LeaderElectionMetrics
from runs_controller.runtime.builder import ControllerBuilder
from runs_controller.runtime.leaderelection import (
    KubeLeaseLock,
    LeaderElectionConfig,
    LeaderElector,
    LeadershipLost,
)
from runs_controller.runtime.manager import Manager, ManagerOptions
from runs_controller.runtime.reconciler import Request, Result

log = structlog.get_logger("manager_app")


class SlowReconciler:
    """Logs when each reconcile starts and finishes; takes `seconds` in between."""

    def __init__(self, identity: str, seconds: float) -> None:
        self.identity = identity
        self.seconds = seconds

    async def reconcile(self, request: Request) -> Result:
        log.info("reconcile_started", identity=self.identity, object=request.key)
        await anyio.sleep(self.seconds)
        log.info("reconcile_finished", identity=self.identity, object=request.key)
        return Result()


async def main(args: argparse.Namespace) -> int:
    config = await load_kubeconfig(args.kubeconfig)
    registry = CollectorRegistry()
    async with KubeClient(config, ClientOptions(request_timeout=5.0)) as client:
        elector = LeaderElector(
            LeaderElectionConfig(
                name=args.lease,
                namespace=args.namespace,
                identity=args.identity,
                lease_duration=args.lease_duration,
                renew_deadline=args.renew_deadline,
                retry_period=args.retry_period,
            ),
            KubeLeaseLock(client),
            metrics=LeaderElectionMetrics.create(registry),
        )
        manager = Manager(
            client,
            registry,
            elector=elector,
            options=ManagerOptions(
                metrics_address="127.0.0.1:0",
                health_address="127.0.0.1:0",
                graceful_shutdown_timeout=args.graceful_timeout,
                namespaces=(args.namespace,),
                workers=1,
            ),
        )
        builder = ControllerBuilder(manager, "configmaps")
        builder.for_(CONFIG_MAPS, ConfigMap)
        builder.complete(SlowReconciler(args.identity, args.reconcile_seconds))
        lost = False
        try:
            await manager.run()
        except* LeadershipLost:
            log.error("exiting_after_lost_lease", identity=args.identity)
            lost = True
    return 1 if lost else 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--lease", default="manager-app")
    parser.add_argument("--lease-duration", type=float, default=4.0)
    parser.add_argument("--renew-deadline", type=float, default=3.0)
    parser.add_argument("--retry-period", type=float, default=0.5)
    parser.add_argument("--reconcile-seconds", type=float, default=0.0)
    parser.add_argument("--graceful-timeout", type=float, default=30.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    configure_logging("info", "json")
    sys.exit(anyio.run(main, parse(sys.argv[1:])))
