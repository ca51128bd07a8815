"""The manager: informers, controllers, leader election and HTTP endpoints in one task group.

Lifecycle (controller-runtime's, on anyio):
* every replica serves /healthz, /readyz and /metrics and runs the shared informers, so a
  standby's caches are warm when it takes over; /readyz is green once the caches are synced,
  on leaders and standbys alike;
* only the leader runs the controllers, and only after the caches have synced; caches that do
  not sync within `cache_sync_timeout` end `run()` with `CacheSyncFailed` after the Lease is
  released (the process exits 1 and restarts);
* SIGTERM/SIGINT (or `stop()`): controllers start no queued key any more and in-flight
  reconciles get up to `graceful_shutdown_timeout` to finish; the events they recorded are
  written; then the Lease is released so a standby takes over at once; `run()` returns (exit 0);
* a lost Lease cancels every reconcile at once and `run()` raises `LeadershipLost` without
  draining or releasing: another replica may already be acting. Writes are fenced (see
  `fencing.py`), so none leaves the process once the renew deadline has passed.
"""

from __future__ import annotations

import contextlib
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import structlog

from runs_controller.api.k8s import ConfigMap
from runs_controller.kube.resources import CONFIG_MAPS
from runs_controller.observability.http import HealthChecks, HttpServer, build_app
from runs_controller.observability.metrics import RuntimeMetrics
from runs_controller.runtime.cache import Cache, CacheReader
from runs_controller.runtime.clock import SystemClock
from runs_controller.runtime.controller import DEFAULT_RECONCILE_TIMEOUT
from runs_controller.runtime.events import EventRecorder
from runs_controller.runtime.fencing import LeaderFence
from runs_controller.runtime.informer import SharedInformers
from runs_controller.runtime.leaderelection import LeadershipLost
from runs_controller.runtime.operator_config import OperatorConfigSource

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from prometheus_client import CollectorRegistry

    from runs_controller.kube.client import KubeClient
    from runs_controller.runtime.clock import Clock
    from runs_controller.runtime.controller import Controller
    from runs_controller.runtime.leaderelection import LeaderElector

log = structlog.get_logger("runs_controller.manager")

EVENT_FLUSH_TIMEOUT = 5.0


class CacheSyncFailed(Exception):
    """Some informers did not sync in time; the controllers never started."""

    def __init__(self, timeout: float, informers: list[str]) -> None:
        self.timeout = timeout
        self.informers = informers
        super().__init__(f"caches not synced within {timeout:g}s: {', '.join(informers)}")


@dataclass(frozen=True)
class ManagerOptions:
    metrics_address: str | None = ":8080"
    """`host:port` for /metrics; None disables it."""
    health_address: str | None = ":8081"
    """`host:port` for /healthz and /readyz; None disables it."""
    graceful_shutdown_timeout: float = 30.0
    """How long in-flight reconciles may run after a stop request."""
    cache_sync_timeout: float = 120.0
    handle_signals: bool = True
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means all."""
    workers: int | None = None
    """Workers of every controller; None: each controller's own default."""
    reconcile_timeout: float = DEFAULT_RECONCILE_TIMEOUT
    """Default deadline of one reconcile."""
    config_namespace: str = ""
    config_name: str = ""
    """The operator ConfigMap; empty: compiled defaults only."""


class Manager:
    """Wires the parts together; `await manager.run()` blocks until stopped."""

    def __init__(
        self,
        client: KubeClient,
        registry: CollectorRegistry,
        *,
        elector: LeaderElector | None = None,
        reporting_instance: str | None = None,
        options: ManagerOptions | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.registry = registry
        self.options = options = options or ManagerOptions()
        self.metrics = RuntimeMetrics.create(registry)
        self.informers = SharedInformers(client, metrics=self.metrics.informer)
        self.cache = Cache(self.informers, options.namespaces)
        self.write_client = (
            client
            if elector is None
            else client.with_write_guard(LeaderFence(elector, metrics=self.metrics.writer))
        )
        """The client controllers write through: fenced by leadership when electing."""
        self.clock: Clock = clock or SystemClock()
        self.operator_config = OperatorConfigSource.defaults()
        if options.config_namespace and options.config_name:
            reader = self.informers.get(
                CONFIG_MAPS,
                ConfigMap,
                namespace=options.config_namespace,
                field_selector=f"metadata.name={options.config_name}",
            )
            self.operator_config = OperatorConfigSource(
                CacheReader(CONFIG_MAPS, {options.config_namespace: reader}),
                options.config_namespace,
                options.config_name,
            )
        self.controllers: list[Controller] = []
        self._elector = elector
        self.recorder = (
            EventRecorder(self.write_client, reporting_instance=reporting_instance)
            if reporting_instance
            else None
        )
        """Reconcilers record Kubernetes Events through it (written in the background, fenced
        like every controller write); None without a `reporting_instance`."""
        self._stop = anyio.Event()
        self._controllers_started = False
        self.metrics_port: int | None = None
        self.health_port: int | None = None

    def add_controller(self, controller: Controller) -> None:
        self.controllers.append(controller)

    def stop(self) -> None:
        """Request a graceful shutdown (what SIGTERM does)."""
        self._stop.set()

    @property
    def controllers_started(self) -> bool:
        """This replica leads, its caches synced and its controllers run."""
        return self._controllers_started

    def ready_failures(self) -> list[str]:
        """Names of failing readiness checks: unsynced informers."""
        return [f"informer {i.name}" for i in self.informers.all() if not i.has_synced]

    async def run(self) -> None:
        with contextlib.ExitStack() as stack:
            # Install the handlers before anything else: a SIGTERM from here on always means
            # a graceful stop, never Python's default abrupt exit.
            signals = (
                stack.enter_context(anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT))
                if self.options.handle_signals
                else None
            )
            servers = self._servers()
            for server in servers.values():
                await server.start()
            self.metrics_port = servers["metrics"].port if "metrics" in servers else None
            self.health_port = servers["health"].port if "health" in servers else None
            log.info("http_serving", metrics_port=self.metrics_port, health_port=self.health_port)
            failure: Exception | None = None
            try:
                async with anyio.create_task_group() as group:
                    if signals is not None:
                        group.start_soon(self._watch_signals, signals)
                    group.start_soon(self.informers.run)
                    if self.recorder is not None:
                        group.start_soon(self.recorder.run)
                    try:
                        await self._run_until_stopped()
                    except (CacheSyncFailed, LeadershipLost) as error:
                        failure = error  # raised below, not wrapped in an ExceptionGroup
                    finally:
                        group.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    for server in servers.values():
                        await server.stop()
        if failure is not None:
            raise failure
        log.info("manager_stopped")

    async def _run_until_stopped(self) -> None:
        lead_finished = anyio.Event()
        failure: Exception | None = None

        async def elect() -> None:
            nonlocal failure
            try:
                if self._elector is None:
                    await self._lead()
                else:
                    await self._elector.run(self._lead)
            except (CacheSyncFailed, LeadershipLost) as error:
                failure = error
            finally:
                lead_finished.set()

        async with anyio.create_task_group() as group:
            group.start_soon(elect)
            async with anyio.create_task_group() as waiter:

                async def wait_stop() -> None:
                    await self._stop.wait()
                    waiter.cancel_scope.cancel()

                async def wait_lead() -> None:
                    await lead_finished.wait()
                    waiter.cancel_scope.cancel()

                waiter.start_soon(wait_stop)
                waiter.start_soon(wait_lead)
            if not lead_finished.is_set():
                await self._drain(lead_finished)
            group.cancel_scope.cancel()
        if isinstance(failure, LeadershipLost):
            raise failure
        if self._elector is not None:
            await self._elector.release()
        if failure is not None:
            raise failure

    async def _lead(self) -> None:
        """What the leader runs: wait for the caches, run the controllers until they are shut
        down, then write the events they recorded (while the Lease is still ours)."""
        timeout = self.options.cache_sync_timeout
        with anyio.move_on_after(timeout):
            for informer in self.informers.all():
                await informer.wait_for_sync()
        unsynced = [i.name for i in self.informers.all() if not i.has_synced]
        if unsynced:
            raise CacheSyncFailed(timeout, unsynced)
        if self._stop.is_set():
            return
        log.info("controllers_starting", controllers=[c.name for c in self.controllers])
        self._controllers_started = True
        async with anyio.create_task_group() as group:
            for controller in self.controllers:
                group.start_soon(controller.run)
        if self.recorder is not None:
            with anyio.move_on_after(EVENT_FLUSH_TIMEOUT):
                await self.recorder.flush()

    async def _drain(self, lead_finished: anyio.Event) -> None:
        """Stop intake, give in-flight reconciles their deadline, let the leader flush events."""
        log.info("manager_stopping", timeout=self.options.graceful_shutdown_timeout)
        if not self._controllers_started:
            return  # still waiting for the Lease or the caches: nothing to drain
        with anyio.move_on_after(self.options.graceful_shutdown_timeout) as scope:
            async with anyio.create_task_group() as drains:
                for controller in self.controllers:
                    drains.start_soon(controller.shutdown)
        if scope.cancelled_caught:
            log.warning("manager_drain_timed_out")
            return
        with anyio.move_on_after(EVENT_FLUSH_TIMEOUT + 1):
            await lead_finished.wait()

    async def _watch_signals(self, signals: AsyncIterator[int]) -> None:
        async for received in signals:
            log.info("signal_received", signal=signal.Signals(received).name)
            self.stop()

    def _servers(self) -> dict[str, HttpServer]:
        checks = HealthChecks(ready=self.ready_failures)
        servers: dict[str, HttpServer] = {}
        if self.options.metrics_address:
            servers["metrics"] = HttpServer(
                build_app(self.registry, checks), self.options.metrics_address
            )
        if self.options.health_address:
            servers["health"] = HttpServer(
                build_app(self.registry, checks), self.options.health_address
            )
        return servers
