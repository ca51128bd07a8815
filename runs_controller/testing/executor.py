"""A dev executor: plays the kubelet for chosen images by running them as local processes.

The local stack has no container runtime, so kwok only fakes pod status. For the images this
executor knows (`commands`: image -> argv), it waits until kwok has made the pod `Running`, then
starts the command with exactly the pod's environment: plain values, the downward API fields,
`secretKeyRef`/`configMapKeyRef` values read from the cluster, and, in place of the mounted
ServiceAccount token, a kubeconfig holding a token bound to the pod (TokenRequest). When the
process exits, it writes the pod's end (`Succeeded` or `Failed`, with the exit code) as the
kubelet would, and the Job controller takes it from there. A pod deleted while its process runs
gets the process terminated (SIGTERM, then SIGKILL after the pod's grace period).
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from runs_controller.api.k8s import Pod, PodSpec
from runs_controller.engine.keys import LABEL_STEPRUN
from runs_controller.kube.errors import NotFound
from runs_controller.kube.resources import CONFIG_MAPS, PODS, SERVICE_ACCOUNTS, ResourceType
from runs_controller.runtime.informer import Event, Informer, InformerOptions
from runs_controller.testing.kubeconfig import render_kubeconfig, write_kubeconfig

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from anyio.streams.memory import MemoryObjectReceiveStream

    from runs_controller.api.k8s import Container
    from runs_controller.api.meta import ObjectMeta
    from runs_controller.kube.client import KubeClient

log = structlog.get_logger("runs_controller.dev.executor")


class UnresolvableEnvironmentError(LookupError):
    """A Secret or ConfigMap key the pod's environment names does not exist (the kubelet
    reports this as CreateContainerConfigError)."""


def _parts(pod: Pod) -> tuple[ObjectMeta, PodSpec]:
    if pod.metadata is None or pod.spec is None:
        raise ValueError("a pod without metadata or spec")
    return pod.metadata, pod.spec


SECRETS = ResourceType("", "v1", "secrets", "Secret")


@dataclass(frozen=True)
class PodRun:
    """One process the executor ran for a pod."""

    namespace: str
    pod: str
    image: str
    exit_code: int
    log_path: Path


@dataclass
class DevExecutor:
    """Runs the pods of StepRun Jobs whose image is in `commands`; see the module docstring."""

    client: KubeClient
    server: str
    ca_pem: bytes
    commands: Mapping[str, Sequence[str]]
    work_dir: Path
    namespace: str | None = None
    runs: list[PodRun] = field(default_factory=list)
    """Every finished process, in the order they ended (tests and the demo read it)."""
    _started: set[str] = field(default_factory=set)
    _deleted: dict[str, anyio.Event] = field(default_factory=dict)

    async def run(self) -> None:
        """Watch the pods until cancelled."""
        informer = Informer(
            self.client,
            PODS,
            Pod,
            options=InformerOptions(namespace=self.namespace, label_selector=LABEL_STEPRUN),
        )
        send, receive = anyio.create_memory_object_stream[Pod](10_000)

        def on_event(event: Event[Pod]) -> None:
            uid = event.obj.metadata.uid if event.obj.metadata else None
            if event.type == "deleted" or (
                event.obj.metadata and event.obj.metadata.deletion_timestamp
            ):
                if uid in self._deleted:
                    self._deleted[uid].set()
                return
            send.send_nowait(event.obj)

        informer.add_handler(on_event)
        with send, receive:
            await self._serve(informer, receive)

    async def _serve(
        self, informer: Informer[Pod], receive: MemoryObjectReceiveStream[Pod]
    ) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(informer.run)
            async for pod in receive:
                if self._ready_to_start(pod):
                    uid = _parts(pod)[0].uid or ""
                    self._started.add(uid)
                    self._deleted[uid] = anyio.Event()
                    group.start_soon(self._execute, pod)

    def _ready_to_start(self, pod: Pod) -> bool:
        meta, spec, status = pod.metadata, pod.spec, pod.status
        if meta is None or spec is None or not spec.containers or meta.uid in self._started:
            return False
        image = spec.containers[0].image or ""
        return image in self.commands and status is not None and status.phase == "Running"

    async def _execute(self, pod: Pod) -> None:
        meta, spec = _parts(pod)
        namespace, name, uid = meta.namespace or "", meta.name or "", meta.uid or ""
        container = spec.containers[0]
        image = container.image or ""
        pod_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.work_dir))
        log_path = self.work_dir / f"{namespace}_{name}.log"
        try:
            env = await self.pod_environment(pod, container, pod_dir)
        except (NotFound, UnresolvableEnvironmentError) as error:
            log.warning("pod_environment_unresolvable", pod=f"{namespace}/{name}", error=str(error))
            await self._finish(pod, exit_code=1, reason="CreateContainerConfigError")
            return
        log.info("pod_started", pod=f"{namespace}/{name}", image=image)
        grace = spec.termination_grace_period_seconds or 30
        # `async with`: a process still running when the executor is cancelled (Ctrl-C on
        # `dev`) is killed, not left behind.
        with log_path.open("wb") as output:
            async with (
                await anyio.open_process(
                    list(self.commands[image]),
                    env=env,
                    cwd=pod_dir,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                ) as process,
                anyio.create_task_group() as group,
            ):

                async def stop_when_deleted() -> None:
                    await self._deleted[uid].wait()
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(signal.SIGTERM)
                    with anyio.move_on_after(grace):
                        await process.wait()
                        return
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()

                group.start_soon(stop_when_deleted)
                exit_code = await process.wait()
                group.cancel_scope.cancel()
        self.runs.append(PodRun(namespace, name, image, exit_code, log_path))
        log.info("pod_finished", pod=f"{namespace}/{name}", exit_code=exit_code, log=str(log_path))
        if not self._deleted.pop(uid).is_set():
            await self._finish(
                pod, exit_code=exit_code, reason="Completed" if exit_code == 0 else "Error"
            )

    async def _finish(self, pod: Pod, *, exit_code: int, reason: str) -> None:
        """Write the pod's end as the kubelet does: phase and the container's terminated state."""
        meta, spec = _parts(pod)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        started = (
            pod.status.start_time.strftime("%Y-%m-%dT%H:%M:%SZ")
            if pod.status and pod.status.start_time
            else now
        )
        statuses = [
            {
                "name": container.name,
                "image": container.image,
                "ready": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": reason,
                        "startedAt": started,
                        "finishedAt": now,
                    }
                },
            }
            for container in spec.containers
        ]
        patch = {
            "status": {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "containerStatuses": statuses,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "PodCompleted",
                        "lastTransitionTime": now,
                    },
                    {
                        "type": "ContainersReady",
                        "status": "False",
                        "reason": "PodCompleted",
                        "lastTransitionTime": now,
                    },
                ],
            }
        }
        with contextlib.suppress(NotFound):
            await self.client.merge_patch(
                PODS, meta.name or "", patch, meta.namespace, type=Pod, subresource="status"
            )

    # ---- the container's environment -------------------------------------------------------

    async def pod_environment(
        self, pod: Pod, container: Container, pod_dir: Path
    ) -> dict[str, str]:
        """The environment the kubelet would give `container`, plus credentials for the API."""
        meta, spec = _parts(pod)
        namespace = meta.namespace or ""
        env: dict[str, str] = {}
        for source in container.env_from or []:
            env.update(await self._env_from(namespace, source))
        for var in container.env or []:
            if var.value is not None:
                env[var.name] = var.value
            elif var.value_from:
                value = await self._value_from(pod, var.value_from)
                if value is not None:
                    env[var.name] = value
        token = await self._pod_token(pod)
        kubeconfig = write_kubeconfig(
            pod_dir / "kubeconfig",
            render_kubeconfig(
                server=self.server,
                ca_pem=self.ca_pem,
                user=f"system:serviceaccount:{namespace}:{spec.service_account_name or 'default'}",
                token=token,
                namespace=namespace,
            ),
        )
        # The process is a local one: it needs a PATH and somewhere to write, and the
        # kubeconfig stands in for the token file the kubelet would mount.
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(pod_dir),
            "TMPDIR": str(pod_dir),
            "HOSTNAME": meta.name or "",
            **env,
            "KUBECONFIG": str(kubeconfig),
        }

    async def _value_from(self, pod: Pod, source: dict[str, Any]) -> str | None:
        meta, spec = _parts(pod)
        status = pod.status
        if "fieldRef" in source:
            path: str = source["fieldRef"]["fieldPath"]
            fields = {
                "metadata.name": meta.name,
                "metadata.namespace": meta.namespace,
                "metadata.uid": meta.uid,
                "spec.nodeName": spec.node_name,
                "spec.serviceAccountName": spec.service_account_name,
                "status.hostIP": status.host_ip if status else None,
                "status.podIP": status.pod_ip if status else None,
            }
            for prefix, values in (
                ("metadata.labels", meta.labels or {}),
                ("metadata.annotations", meta.annotations or {}),
            ):
                if path.startswith(prefix + "['") and path.endswith("']"):
                    return values.get(path[len(prefix) + 2 : -2], "")
            return fields.get(path) or ""
        for key, resource in (("secretKeyRef", SECRETS), ("configMapKeyRef", CONFIG_MAPS)):
            if key in source:
                ref = source[key]
                data = await self._data(
                    resource, ref["name"], meta.namespace or "", ref.get("optional")
                )
                if ref["key"] in data:
                    return data[ref["key"]]
                if not ref.get("optional"):
                    raise UnresolvableEnvironmentError(
                        f"key {ref['key']!r} not in {resource.kind} {ref['name']!r}"
                    )
                return None
        return None

    async def _env_from(self, namespace: str, source: dict[str, Any]) -> dict[str, str]:
        prefix = source.get("prefix", "")
        for key, resource in (("secretRef", SECRETS), ("configMapRef", CONFIG_MAPS)):
            if key in source:
                ref = source[key]
                data = await self._data(resource, ref["name"], namespace, ref.get("optional"))
                return {prefix + name: value for name, value in data.items()}
        return {}

    async def _data(
        self, resource: ResourceType, name: str, namespace: str, optional: bool | None
    ) -> dict[str, str]:
        try:
            obj = await self.client.get(resource, name, namespace, type=dict[str, Any])
        except NotFound:
            if optional:
                return {}
            raise
        data: dict[str, str] = dict(obj.get("data") or {})
        if resource is SECRETS:
            return {key: base64.b64decode(value).decode() for key, value in data.items()}
        return data

    async def _pod_token(self, pod: Pod) -> str:
        """A ServiceAccount token bound to the pod, as the kubelet's projected volume holds."""
        meta, spec = _parts(pod)
        account = spec.service_account_name or "default"
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 3600,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta.name,
                    "uid": meta.uid,
                },
            },
        }
        created = await self.client.create(
            SERVICE_ACCOUNTS,
            request,
            meta.namespace,
            type=dict[str, Any],
            subresource=(account, "token"),
        )
        token: str = created["status"]["token"]
        return token
