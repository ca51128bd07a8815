"""The manager: informers, controllers, leader election and HTTP endpoints in one task group.

Lifecycle (controller-runtime's, on anyio):
* every replica serves /healthz, /readyz and /metrics and runs the shared informers, so a
  standby's caches are warm when it takes over; /readyz is green once the caches are synced,
  on leaders and standbys alike;
* only the leader runs the controllers, and only after the caches have synced;
* SIGTERM/SIGINT (or `stop()`): controllers stop taking keys and in-flight reconciles get up to
  `graceful_shutdown_timeout` to finish; then the Lease is released so a standby takes over at
  once; `run()` returns normally (exit 0);
* a lost Lease cancels every reconcile at once and `run()` raises `LeadershipLost` without
  draining or releasing: another replica may already be acting.
"""

from __future__ import annotations

import contextlib
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import structlog

from runs_controller.observability.http import HealthChecks, HttpServer, build_app
from runs_controller.runtime.informer import SharedInformers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from prometheus_client import CollectorRegistry

    from runs_controller.kube.client import KubeClient
    from runs_controller.runtime.controller import Controller
    from runs_controller.runtime.events import EventRecorder
    from runs_controller.runtime.leaderelection import LeaderElector

log = structlog.get_logger("runs_controller.manager")

EVENT_FLUSH_TIMEOUT = 5.0


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


class Manager:
    """Wires the parts together; `await manager.run()` blocks until stopped."""

    def __init__(
        self,
        client: KubeClient,
        registry: CollectorRegistry,
        *,
        elector: LeaderElector | None = None,
        recorder: EventRecorder | None = None,
        options: ManagerOptions | None = None,
    ) -> None:
        self.client = client
        self.registry = registry
        self.options = options or ManagerOptions()
        self.informers = SharedInformers(client)
        self.controllers: list[Controller] = []
        self._elector = elector
        self.recorder = recorder
        """Reconcilers record Kubernetes Events through it; written in the background."""
        self._stop = anyio.Event()
        self.metrics_port: int | None = None
        self.health_port: int | None = None

    def add_controller(self, controller: Controller) -> None:
        self.controllers.append(controller)

    def stop(self) -> None:
        """Request a graceful shutdown (what SIGTERM does)."""
        self._stop.set()

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
            try:
                async with anyio.create_task_group() as group:
                    if signals is not None:
                        group.start_soon(self._watch_signals, signals)
                    group.start_soon(self.informers.run)
                    if self.recorder is not None:
                        group.start_soon(self.recorder.run)
                    await self._run_until_stopped()
                    if self.recorder is not None:
                        # Events of the last reconciles are worth a short wait, not a hang.
                        with anyio.move_on_after(EVENT_FLUSH_TIMEOUT):
                            await self.recorder.flush()
                    group.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    for server in servers.values():
                        await server.stop()
        log.info("manager_stopped")

    async def _run_until_stopped(self) -> None:
        lead_finished = anyio.Event()

        async def lead() -> None:
            await self._run_controllers()

        async def elect() -> None:
            try:
                if self._elector is None:
                    await lead()
                else:
                    await self._elector.run(lead)
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
            if self._stop.is_set():
                await self._drain(group)
        if self._elector is not None:
            await self._elector.release()

    async def _drain(self, group: anyio.abc.TaskGroup) -> None:
        """Stop intake, give in-flight reconciles their deadline, then cancel what is left."""
        log.info("manager_stopping", timeout=self.options.graceful_shutdown_timeout)
        leading = self._elector is None or self._elector.is_leader
        if leading:
            with anyio.move_on_after(self.options.graceful_shutdown_timeout) as scope:
                async with anyio.create_task_group() as drains:
                    for controller in self.controllers:
                        drains.start_soon(controller.shutdown)
            if scope.cancelled_caught:
                log.warning("manager_drain_timed_out")
        group.cancel_scope.cancel()

    async def _run_controllers(self) -> None:
        with anyio.fail_after(self.options.cache_sync_timeout):
            for informer in self.informers.all():
                await informer.wait_for_sync()
        log.info("controllers_starting", controllers=[c.name for c in self.controllers])
        async with anyio.create_task_group() as group:
            for controller in self.controllers:
                group.start_soon(controller.run)

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
