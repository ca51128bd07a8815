"""Running an Engram handler as a batch step: status in, outcome out, like the reference SDK.

The StepRun status is written with merge patches on the status subresource (the SDK's own
field manager, never the controller's): `Running` when the handler starts, then `Succeeded`
with the output, or `Failed` / `Timeout` / `Canceled` with exit code, exit class and a v1
StructuredError. A write is refused when the StepRun names another pod (`status.podName`: a
zombie pod must not report for its successor) or is already final. The process exit code
says the same thing to Kubernetes.
"""

from __future__ import annotations

import datetime
import inspect
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import structlog

from runs_controller.api.runs.steprun import StepRun
from runs_controller.engine.durations import format_go_duration
from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import load_cluster_config
from runs_controller.kube.resources import STEP_RUNS
from runs_controller.sdk.effects import DEFAULT_LEASE_SECONDS, EffectOutcome, execute_once
from runs_controller.sdk.environment import StepEnvironment
from runs_controller.sdk.errors import StepFailure

if TYPE_CHECKING:
    from collections.abc import Mapping

log = structlog.get_logger("runs_controller.sdk")

EXIT_TIMEOUT = 124
EXIT_CANCELED = 143
FINAL_PHASES = frozenset({"Succeeded", "Canceled", "Timeout", "Aborted", "Skipped", "Finished"})


@dataclass
class StepContext:
    """What a handler gets besides its inputs."""

    env: StepEnvironment
    client: KubeClient

    async def execute_once(
        self,
        key: str,
        fn: Callable[[], Awaitable[Any]],
        *,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> EffectOutcome:
        """Run the side effect `fn` at most once for this step (see `sdk.effects`)."""
        return await execute_once(self.client, self.env, key, fn, lease_seconds=lease_seconds)


Handler = Callable[[dict[str, Any], StepContext], Any]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _stamp(value: datetime.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class StatusReporter:
    def __init__(self, client: KubeClient, env: StepEnvironment) -> None:
        self.client = client
        self.env = env
        self.started = _now()

    async def _current(self) -> StepRun:
        found: StepRun = await self.client.get(
            STEP_RUNS, self.env.steprun_name, self.env.namespace, type=StepRun
        )
        return found

    async def write(self, status: dict[str, Any]) -> bool:
        """Merge `status` into the StepRun's; False when this pod may not report."""
        current = await self._current()
        observed = current.status
        pod = observed.pod_name if observed else None
        if pod and self.env.pod_name and pod != self.env.pod_name:
            log.warning("sdk_status_refused", reason="another pod owns the StepRun", pod=pod)
            return False
        phase = observed.phase if observed else None
        if phase in FINAL_PHASES:
            log.warning("sdk_status_refused", reason="the StepRun is final", phase=phase)
            return False
        body = dict(status)
        if observed is None or observed.retries is None:
            body["retries"] = 0  # required by the CRD once a status exists
        if observed is not None and observed.started_at is not None:
            self.started = observed.started_at
        await self.client.merge_patch(
            STEP_RUNS,
            self.env.steprun_name,
            {"status": body},
            self.env.namespace,
            type=StepRun,
            subresource="status",
        )
        return True

    async def running(self) -> None:
        await self.write({"phase": "Running"})

    def _ended(self) -> dict[str, Any]:
        finished = _now()
        seconds = max(0, round((finished - self.started).total_seconds()))
        return {"finishedAt": _stamp(finished), "duration": format_go_duration(seconds * 10**9)}

    async def succeeded(self, output: dict[str, Any] | None) -> None:
        status: dict[str, Any] = {"phase": "Succeeded", "exitCode": 0, "exitClass": "success"}
        if output is not None:
            status["output"] = output
        await self.write({**status, **self._ended()})

    async def failed(
        self,
        phase: str,
        *,
        message: str,
        exit_code: int,
        exit_class: str,
        error_type: str,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        error: dict[str, Any] = {
            "version": "v1",
            "type": error_type,
            "message": message[:2048] or error_type,
            "retryable": exit_class in ("retry", "rateLimited"),
            "exitCode": exit_code,
            "exitClass": exit_class,
        }
        if code:
            error["code"] = code
        if details:
            error["details"] = details
        status = {
            "phase": phase,
            "exitCode": exit_code,
            "exitClass": exit_class,
            "lastFailureMsg": message[:2048],
            "error": error,
        }
        await self.write({**status, **self._ended()})


async def _call(handler: Handler, inputs: dict[str, Any], context: StepContext) -> Any:
    if inspect.iscoroutinefunction(handler):
        return await handler(inputs, context)
    result = await anyio.to_thread.run_sync(handler, inputs, context)
    if inspect.isawaitable(result):
        return await result
    return result


async def run_step(
    handler: Handler,
    *,
    environ: Mapping[str, str] | None = None,
    client: KubeClient | None = None,
) -> int:
    """Run `handler` as the step the environment describes; the process exit code."""
    env = StepEnvironment.from_environ(environ)
    if client is None:
        async with KubeClient(await load_cluster_config()) as own:
            return await _run(handler, env, own)
    return await _run(handler, env, client)


async def _run(handler: Handler, env: StepEnvironment, client: KubeClient) -> int:
    reporter = StatusReporter(client, env)
    context = StepContext(env, client)
    await reporter.running()
    canceled = False
    outcome: Any = None
    failure: BaseException | None = None
    async with anyio.create_task_group() as group:

        async def on_sigterm(scope: anyio.CancelScope) -> None:
            nonlocal canceled
            with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    canceled = True
                    scope.cancel()
                    return

        with anyio.move_on_after(env.timeout_seconds or float("inf")) as deadline:
            group.start_soon(on_sigterm, deadline)
            try:
                outcome = await _call(handler, dict(env.inputs), context)
            except Exception as error:
                failure = error
        group.cancel_scope.cancel()
    if canceled:
        await reporter.failed(
            "Canceled",
            message="the step was canceled (SIGTERM)",
            exit_code=EXIT_CANCELED,
            exit_class="terminal",
            error_type="execution_error",
        )
        return EXIT_CANCELED
    if deadline.cancelled_caught:
        await reporter.failed(
            "Timeout",
            message=f"the step exceeded its timeout ({env.timeout_seconds:g}s)",
            exit_code=EXIT_TIMEOUT,
            exit_class="retry",
            error_type="timeout",
        )
        return EXIT_TIMEOUT
    if isinstance(failure, StepFailure):
        await reporter.failed(
            "Failed",
            message=failure.message,
            exit_code=failure.exit_code,
            exit_class=failure.exit_class,
            error_type=failure.error_type,
            code=failure.code,
            details=failure.details,
        )
        return failure.exit_code
    if failure is not None:
        await reporter.failed(
            "Failed",
            message=f"{type(failure).__name__}: {failure}",
            exit_code=1,
            exit_class="terminal",
            error_type="execution_error",
        )
        return 1
    if outcome is not None and not isinstance(outcome, dict):
        outcome = {"value": outcome}
    await reporter.succeeded(outcome)
    return 0


def run(handler: Handler) -> NoReturn:
    """The Engram's entry point: run the step, exit with its code."""
    sys.exit(anyio.run(lambda: run_step(handler)))


__all__ = ["Handler", "StatusReporter", "StepContext", "run", "run_step"]
