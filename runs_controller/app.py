"""The controller process: settings -> API client -> manager with informers and controllers.

The four runs controllers are registered with their informers, workqueues and workers; their
reconcilers are placeholders that only observe the cached object until the reconcile logic
lands (issues 6 and later), so everything around them (caches, leader election, shutdown,
metrics) already runs as in production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from runs_controller.api.kinds import ALL_KINDS
from runs_controller.kube.client import ClientOptions, KubeClient
from runs_controller.kube.config import load_cluster_config
from runs_controller.kube.errors import KubeError
from runs_controller.kube.resources import ResourceType
from runs_controller.observability.metrics import (
    ControllerMetrics,
    LeaderElectionMetrics,
    RestClientMetrics,
    WorkqueueMetrics,
    default_registry,
)
from runs_controller.runtime.controller import Controller, Result
from runs_controller.runtime.events import EventRecorder
from runs_controller.runtime.handlers import own_key
from runs_controller.runtime.leaderelection import (
    KubeLeaseLock,
    LeaderElectionConfig,
    LeaderElector,
    default_identity,
)
from runs_controller.runtime.manager import Manager, ManagerOptions

if TYPE_CHECKING:
    from pathlib import Path

    from runs_controller.runtime.informer import Informer


log = structlog.get_logger("runs_controller")

RECONCILED_KINDS = ("StoryRun", "StepRun", "EffectClaim", "StoryTrigger")
DEFAULT_LEADER_ELECTION_ID = "d3a8b358.bubustack.io"


class StartupError(RuntimeError):
    """The controller cannot start (bad credentials, unreachable server); the message says why."""


@dataclass(frozen=True)
class ControllerSettings:
    kubeconfig: Path | None = None
    """None: $KUBECONFIG, else in-cluster credentials, else ~/.kube/config."""
    context: str | None = None
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means all."""
    leader_elect: bool = True
    leader_election_id: str = DEFAULT_LEADER_ELECTION_ID
    leader_election_namespace: str | None = None
    """None: the pod's namespace (in-cluster), the kubeconfig context's, else `default`."""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    workers: int = 2
    """Workers per controller."""
    metrics_address: str | None = ":8080"
    health_address: str | None = ":8081"
    graceful_shutdown_timeout: float = 30.0
    qps: float | None = None
    burst: int = 10
    identity: str = field(default_factory=default_identity)


def _observe(kind: str, informers: dict[str, Informer[Any]]) -> Any:
    async def reconcile(key: str) -> Result:
        namespace = key.split("/", 1)[0] if "/" in key else ""
        informer = informers.get(namespace) or informers.get("")
        obj = informer.store.get(key) if informer is not None else None
        log.debug("reconcile_observed", kind=kind, exists=obj is not None)
        return Result()

    return reconcile


def build_manager(settings: ControllerSettings, client: KubeClient, namespace: str) -> Manager:
    """The manager with one informer per (kind, namespace) and one controller per runs kind."""
    registry = default_registry()
    elector = None
    if settings.leader_elect:
        elector = LeaderElector(
            LeaderElectionConfig(
                name=settings.leader_election_id,
                namespace=settings.leader_election_namespace or namespace,
                identity=settings.identity,
                lease_duration=settings.lease_duration,
                renew_deadline=settings.renew_deadline,
                retry_period=settings.retry_period,
            ),
            KubeLeaseLock(client),
            metrics=LeaderElectionMetrics.create(registry),
        )
    manager = Manager(
        client,
        registry,
        elector=elector,
        recorder=EventRecorder(client, reporting_instance=settings.identity),
        options=ManagerOptions(
            metrics_address=settings.metrics_address,
            health_address=settings.health_address,
            graceful_shutdown_timeout=settings.graceful_shutdown_timeout,
        ),
    )
    controller_metrics = ControllerMetrics.create(registry)
    queue_metrics = WorkqueueMetrics.create(registry)
    scopes = settings.namespaces or ("",)
    for root, info in ALL_KINDS:
        if info.kind not in RECONCILED_KINDS:
            continue
        resource = ResourceType.from_info(info)
        informers: dict[str, Informer[Any]] = {
            scope: manager.informers.get(resource, root, namespace=scope or None)
            for scope in scopes
        }
        controller = Controller(
            info.plural.removesuffix("s"),
            _observe(info.kind, informers),
            workers=settings.workers,
            metrics=controller_metrics,
            queue_metrics=queue_metrics,
        )

        for informer in informers.values():
            informer.add_handler(own_key(controller.enqueue))
        manager.add_controller(controller)
    return manager


async def run_controller(settings: ControllerSettings) -> None:
    """Connect, then run the manager until SIGTERM/SIGINT (returns) or a lost lease (raises)."""
    path = settings.kubeconfig
    if path is not None and not await anyio.Path(path).is_file():
        raise StartupError(f"kubeconfig {path} does not exist or is not a file")
    try:
        config = await load_cluster_config(path, settings.context)
    except Exception as error:  # the loaders raise several unrelated types (ConfigException...)
        source = f"kubeconfig {path}" if path else "the default kubeconfig / in-cluster credentials"
        raise StartupError(f"cannot load {source}: {error}") from error
    options = ClientOptions(qps=settings.qps, burst=settings.burst)
    metrics = RestClientMetrics.create(default_registry())
    async with KubeClient(config, options, metrics=metrics) as client:
        try:
            version = await client.server_version()
        except KubeError as error:
            raise StartupError(f"cannot reach the API server at {config.host}: {error}") from error
        log.info("connected", server_version=version, host=config.host, identity=settings.identity)
        manager = build_manager(settings, client, config.namespace or "default")
        await manager.run()
