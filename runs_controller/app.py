"""The controller process: connect to the API server and run until SIGTERM/SIGINT.

For now it proves the connection (server version) and waits; the manager with informers,
workqueues, reconcilers and leader election replaces the body of `run_controller`.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import anyio
import structlog
from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException

if TYPE_CHECKING:
    from pathlib import Path

log = structlog.get_logger("runs_controller")


class StartupError(RuntimeError):
    """The controller cannot start (bad credentials, unreachable server); the message says why."""


@dataclass(frozen=True)
class ControllerSettings:
    kubeconfig: Path | None
    """None: in-cluster credentials (the ServiceAccount token mounted in the pod)."""


async def _load_configuration(kubeconfig: Path | None) -> client.Configuration:
    configuration = client.Configuration()
    try:
        if kubeconfig is None:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        elif not await anyio.Path(kubeconfig).is_file():
            raise StartupError(f"kubeconfig {kubeconfig} does not exist or is not a file")
        else:
            await config.load_kube_config(
                config_file=str(kubeconfig), client_configuration=configuration
            )
    except ConfigException as error:
        source = f"kubeconfig {kubeconfig}" if kubeconfig else "in-cluster credentials"
        raise StartupError(f"cannot load {source}: {error}") from error
    return configuration


async def _server_version(settings: ControllerSettings) -> str:
    configuration = await _load_configuration(settings.kubeconfig)
    try:
        async with client.ApiClient(configuration) as api:
            info = await client.VersionApi(api).get_code()
    except (aiohttp.ClientError, OSError) as error:
        raise StartupError(
            f"cannot reach the API server at {configuration.host}: {error}"
        ) from error
    return str(info.git_version)


async def run_controller(settings: ControllerSettings) -> None:
    """Connect, log the server version, then wait for SIGTERM or SIGINT and return."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        version = await _server_version(settings)
        log.info("connected", server_version=version, kubeconfig=str(settings.kubeconfig))
        async for received in signals:
            log.info("shutting_down", signal=signal.Signals(received).name)
            return
