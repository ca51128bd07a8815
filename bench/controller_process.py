"""The controller as a separate process (`python -m runs_controller run`), so its CPU seconds and
RSS can be read from /proc/<pid> and its /metrics scraped without the driver's work mixed in.
Optionally sampled by py-spy (attached by pid, non-blocking) for a profile.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp
import anyio

from bench.report import Sample, parse_metrics, sum_by
from runs_controller.testing.controller_cli import controller_run_argv
from runs_controller.testing.controlplane import free_port

REPO = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = 1024  # /proc/<pid>/status reports kB


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid` (fields 14 and 15 of /proc/<pid>/stat)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak RSS since start) in MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * PAGE / 2**20
    return out


@dataclass
class Sampler:
    """RSS, CPU and workqueue depth over time (the chart and the peaks come from it)."""

    points: list[dict[str, float]] = field(default_factory=list)

    def peak_depth(self) -> float:
        return max((p["queue_depth"] for p in self.points if "queue_depth" in p), default=0.0)


class ControllerProcess:
    """One `runs-controller run` process watching `namespace` (comma-separated for several;
    the Lease and the operator config live in the first)."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        log_path: Path,
        *,
        workers: int | None = None,
        lease_id: str = "bench",
    ) -> None:
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.namespace = namespace
        home = namespace.split(",", 1)[0]
        self.log_path = log_path
        argv = controller_run_argv(
            kubeconfig=kubeconfig,
            home_namespace=home,
            namespaces=namespace,
            lease_id=lease_id,
            metrics_port=self.metrics_port,
            health_port=self.health_port,
        )
        if workers is not None:
            argv.append(f"--workers={workers}")
        self.argv = argv
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._profiler: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the controller process was not started")
        return self.proc.pid

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "RUNS_CONTROLLER_VERIFY_CACHE"}
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.argv, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    async def scrape(self, session: aiohttp.ClientSession) -> list[Sample]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        async with session.get(url) as reply:
            return parse_metrics(await reply.text())

    async def wait_leading(self, session: aiohttp.ClientSession, within: float = 120) -> None:
        """Ready (caches synced), leading and the controllers started: polled with a
        deadline (the process shows no other sign)."""
        deadline = time.monotonic() + within
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"controller exited; see {self.log_path}")
            try:
                samples = await self.scrape(session)
                url = f"http://127.0.0.1:{self.health_port}/readyz"
                async with session.get(url) as reply:
                    ready = reply.status == 200
            except aiohttp.ClientError:
                samples, ready = [], False
            leading = sum(sum_by(samples, "leader_election_master_status", []).values()) >= 1
            started = sum_by(
                samples, "controller_runtime_max_concurrent_reconciles", ["controller"]
            )
            if ready and leading and {"storyrun", "steprun"} <= set(started):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"controller not leading within {within} s; {self.log_path}")
            await anyio.sleep(0.2)

    async def sample(
        self,
        session: aiohttp.ClientSession,
        sampler: Sampler,
        t0: float,
        every: float = 1.0,
        scrape_every: int = 5,
    ) -> None:
        """Until cancelled: RSS and CPU from /proc every `every` s, the workqueue depth from
        /metrics every `scrape_every` samples (a scrape costs the controller CPU: with 1,000
        runs' series, once a second was a quarter of its CPU)."""
        depth: dict[str, float] = {}
        tick = 0
        while True:
            point: dict[str, float] = {"t": time.perf_counter() - t0}
            point.update(proc_memory(self.pid))
            point["cpu"] = proc_cpu_seconds(self.pid)
            if tick % scrape_every == 0:
                try:
                    depth = sum_by(await self.scrape(session), "workqueue_depth", ["name"])
                except aiohttp.ClientError:
                    depth = {}
                point["queue_depth"] = sum(depth.values())
                for name, value in depth.items():
                    point[f"queue_depth:{name}"] = value
            sampler.points.append(point)
            tick += 1
            await anyio.sleep(every)

    def start_profiler(self, output: Path, rate: int = 100) -> None:
        """py-spy record attached to the running process (collapsed stacks, non-blocking)."""
        py_spy = Path(sys.executable).with_name("py-spy")
        self._profiler = subprocess.Popen(  # noqa: S603 - the bench group's py-spy
            [
                str(py_spy),
                "record",
                f"--pid={self.pid}",
                f"--rate={rate}",
                "--nonblocking",
                "--format=raw",
                f"--output={output}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=output.with_suffix(".log").open("wb"),
        )

    def stop_profiler(self) -> None:
        if self._profiler is not None:
            self._profiler.send_signal(signal.SIGINT)
            self._profiler.wait(timeout=60)
            self._profiler = None

    def stop(self) -> int:
        """SIGTERM (graceful), then SIGKILL after 30 s; the exit code."""
        self.stop_profiler()
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
        return self.proc.returncode
