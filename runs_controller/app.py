"""The controller process: settings -> API client -> manager with informers and controllers.

The four runs controllers are declared in `runs_controller.reconcilers`; their reconcilers are
placeholders that only observe the cached object until the reconcile logic lands, so
everything around them (caches, leader election, fencing, shutdown, metrics) already runs as in
production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import structlog

from runs_controller.kube.client import ClientOptions, KubeClient
from runs_controller.kube.config import load_cluster_config
from runs_controller.kube.errors import KubeError
from runs_controller.observability.metrics import (
    LeaderElectionMetrics,
    RestClientMetrics,
    default_registry,
)
from runs_controller.reconcilers import register_controllers
from runs_controller.reconcilers.permissions import render_rbac
from runs_controller.runtime.controller import DEFAULT_RECONCILE_TIMEOUT
from runs_controller.runtime.leaderelection import (
    KubeLeaseLock,
    LeaderElectionConfig,
    LeaderElector,
    default_identity,
)
from runs_controller.runtime.manager import Manager, ManagerOptions
from runs_controller.runtime.operator_config import DEFAULT_CONFIG_NAME

if TYPE_CHECKING:
    from pathlib import Path

    from prometheus_client import CollectorRegistry


log = structlog.get_logger("runs_controller")

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
    workers: int | None = None
    """Workers of every controller; None: each its own default (the reference's: StoryRun 8,
    StepRun 15, StoryTrigger and EffectClaim 10)."""
    metrics_address: str | None = ":8080"
    health_address: str | None = ":8081"
    graceful_shutdown_timeout: float = 30.0
    handle_signals: bool = True
    """SIGTERM/SIGINT stop the manager gracefully (off when embedded, e.g. in tests)."""
    reconcile_timeout: float = DEFAULT_RECONCILE_TIMEOUT
    cache_sync_timeout: float = 120.0
    config_namespace: str | None = None
    """Namespace of the operator ConfigMap; None: the controller's own namespace."""
    config_name: str = DEFAULT_CONFIG_NAME
    """The operator ConfigMap's name; empty: compiled defaults only."""
    qps: float | None = None
    burst: int = 10
    identity: str = field(default_factory=default_identity)


def build_manager(
    settings: ControllerSettings,
    client: KubeClient,
    namespace: str,
    registry: CollectorRegistry | None = None,
) -> Manager:
    """The manager with the four runs controllers and the informers they need."""
    registry = registry if registry is not None else default_registry()
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
        reporting_instance=settings.identity,
        options=ManagerOptions(
            metrics_address=settings.metrics_address,
            health_address=settings.health_address,
            graceful_shutdown_timeout=settings.graceful_shutdown_timeout,
            handle_signals=settings.handle_signals,
            cache_sync_timeout=settings.cache_sync_timeout,
            namespaces=settings.namespaces,
            workers=settings.workers,
            reconcile_timeout=settings.reconcile_timeout,
            config_namespace=settings.config_namespace or namespace,
            config_name=settings.config_name,
        ),
    )
    register_controllers(manager)
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
    registry = default_registry()
    metrics = RestClientMetrics.create(registry)
    async with KubeClient(config, options, metrics=metrics) as client:
        try:
            version = await client.server_version()
        except KubeError as error:
            raise StartupError(f"cannot reach the API server at {config.host}: {error}") from error
        log.info("connected", server_version=version, host=config.host, identity=settings.identity)
        manager = build_manager(settings, client, config.namespace or "default", registry)
        await manager.run()


__all__ = [
    "DEFAULT_LEADER_ELECTION_ID",
    "ControllerSettings",
    "StartupError",
    "build_manager",
    "render_rbac",
    "run_controller",
]
