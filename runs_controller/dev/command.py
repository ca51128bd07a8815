"""`runs-controller dev`: build what is missing, start the full local stack, install the CRDs and
the sample, run the controller and the dev executor, and show the sample StoryRun live.

The stack stays up after the run (other shells can use it through the printed KUBECONFIG) until
Ctrl-C; `--once` stops it when the run ends and exits 0 only if the run Succeeded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from runs_controller.api.runs.steprun import StepRun
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.app import run_controller
from runs_controller.dev import sample
from runs_controller.dev.view import Line, RunView
from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.kube.resources import STEP_RUNS, STORY_RUNS
from runs_controller.runtime.informer import Event, Informer, InformerOptions
from runs_controller.testing.binaries import BUILD_SCRIPT, cache_root, find_binaries
from runs_controller.testing.crds import install_crds
from runs_controller.testing.executor import DevExecutor
from runs_controller.testing.stack import STACK_BINARIES, LocalStack, StackConfig

if TYPE_CHECKING:
    from runs_controller.app import ControllerSettings

log = structlog.get_logger("runs_controller.dev")

DEV_BINARIES = ("etcd", "kube-apiserver", *STACK_BINARIES)


@dataclass(frozen=True)
class DevOptions:
    build: bool = True
    """Build missing binaries (else fail with the command that builds them)."""
    once: bool = False
    """Stop the stack when the demo run ends; exit 0 only if it Succeeded."""
    human: bool = True
    """Sentences (a terminal) or JSON lines (anything else) on stdout."""
    inputs: dict[str, Any] | None = None


def run_dev(settings: ControllerSettings, options: DevOptions) -> int:
    started = time.monotonic()
    if not _binaries_ready(options.build):
        return 1
    say = _printer(options.human)
    say(
        Line(
            "stack_starting",
            "Starting the local stack (etcd, kube-apiserver, "
            "kube-controller-manager, kube-scheduler, kwok)...",
            {},
        )
    )
    config = StackConfig(executor_images=frozenset(sample.EXECUTOR_COMMANDS))
    with LocalStack(config) as stack:
        plane = stack.plane
        with tempfile.TemporaryDirectory(prefix="crds-", dir=plane.data_dir) as crd_dir:
            _write_crds(Path(crd_dir))
            install_crds(plane.admin, [Path(crd_dir)], timeout=120)
        sample.install(plane.admin)
        stable = cache_root() / "dev" / "kubeconfig"
        stable.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plane.kubeconfig_path, stable)
        stable.chmod(0o600)
        say(
            Line(
                "stack_ready",
                f"Stack ready in {time.monotonic() - started:.1f}s at {plane.server}; "
                f"in another shell: export KUBECONFIG={stable}",
                {"server": plane.server, "kubeconfig": str(stable)},
            )
        )
        session = _Session(
            settings=replace(settings, kubeconfig=stable),
            options=options,
            kubeconfig=stable,
            server=plane.server,
            ca_pem=plane.ca_file.read_bytes(),
            work_dir=plane.data_dir / "pods",
            say=say,
            started=started,
        )
        return anyio.run(session.run)


def _binaries_ready(build: bool) -> bool:
    missing = []
    for name in DEV_BINARIES:
        try:
            find_binaries([name])
        except FileNotFoundError:
            missing.append(name)
    if not missing:
        return True
    if not build or not BUILD_SCRIPT.is_file():
        log.error(
            "control_plane_binaries_missing",
            missing=missing,
            hint=f"bash {BUILD_SCRIPT} {' '.join(missing)}",
        )
        return False
    log.warning("building_control_plane", missing=missing, note="first run only: ~5-10 min")
    subprocess.run(["bash", str(BUILD_SCRIPT), *missing], check=True)  # noqa: S603, S607
    return True


def _write_crds(directory: Path) -> None:
    """The CRDs generated from the API types (so an installed wheel works too)."""
    from runs_controller.api.crdgen.generate import write_all
    from runs_controller.api.kinds import ALL_KINDS

    write_all(ALL_KINDS, directory)


def _printer(human: bool) -> Any:
    def say(line: Line) -> None:
        sys.stdout.write(line.render(human=human) + "\n")
        sys.stdout.flush()

    return say


@dataclass
class _Session:
    settings: ControllerSettings
    options: DevOptions
    kubeconfig: Path
    server: str
    ca_pem: bytes
    work_dir: Path
    say: Any
    started: float
    phase: str | None = None

    async def run(self) -> int:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        async with KubeClient(await load_kubeconfig(self.kubeconfig)) as client:
            executor = DevExecutor(
                client, self.server, self.ca_pem, sample.EXECUTOR_COMMANDS, self.work_dir
            )
            async with anyio.create_task_group() as group:

                async def controller() -> None:
                    await run_controller(self.settings)
                    group.cancel_scope.cancel()  # Ctrl-C: the manager stopped gracefully

                group.start_soon(controller)
                group.start_soon(executor.run)
                await self._demo(client)
                if self.options.once:
                    group.cancel_scope.cancel()
                else:
                    self.say(
                        Line(
                            "stack_serving",
                            "The stack keeps running; Ctrl-C stops it.",
                            {"kubeconfig": str(self.kubeconfig)},
                        )
                    )
        return 0 if self.phase == "Succeeded" or not self.options.once else 1

    async def _demo(self, client: KubeClient) -> None:
        name = f"{sample.STORY}-{time.strftime('%H%M%S')}"
        await client.create(
            STORY_RUNS, sample.storyrun(name, self.options.inputs), sample.NAMESPACE, type=StoryRun
        )
        self.say(
            Line(
                "run_created",
                f"Created StoryRun {sample.NAMESPACE}/{name} of Story {sample.STORY}",
                {"run": name, "story": sample.STORY},
            )
        )
        view = RunView(name)
        done = anyio.Event()
        options = InformerOptions(namespace=sample.NAMESPACE)
        runs = Informer(client, STORY_RUNS, StoryRun, options=options)
        steps = Informer(client, STEP_RUNS, StepRun, options=options)

        def show(lines: list[Line]) -> None:
            for line in lines:
                self.say(line)
                if line.event == "run_finished":
                    self.phase = line.fields["phase"]
                    done.set()

        def on_run(event: Event[StoryRun]) -> None:
            if event.type != "deleted":
                show(view.on_storyrun(event.obj))

        def on_step(event: Event[StepRun]) -> None:
            if event.type != "deleted":
                show(view.on_steprun(event.obj))

        steps.add_handler(on_step)
        runs.add_handler(on_run)
        async with anyio.create_task_group() as group:
            group.start_soon(steps.run)
            group.start_soon(runs.run)
            await done.wait()
            group.cancel_scope.cancel()
        self.say(
            Line(
                "demo_finished",
                f"Demo finished {time.monotonic() - self.started:.1f}s after the command started.",
                {"seconds": round(time.monotonic() - self.started, 1), "phase": self.phase},
            )
        )
