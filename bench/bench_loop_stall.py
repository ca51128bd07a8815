"""The worst event-loop stall while hostile templates evaluate, with the leader elector running.

Each template of `bench_expr_hostile.py` is evaluated twice with the default limits: on the
loop (what a reconciler calling the evaluator directly would do) and through
`runtime.offload.run_pure` (a worker thread; what reconcilers do). Meanwhile a ticker task
sleeps 1 ms at a time and records how late it wakes (the stall), and a LeaderElector holds a
real Lease on a local control plane (lease 15 s, renew deadline 10 s, retry 2 s) and counts its
renewals. Per template: evaluation wall time, outcome, worst stall inline and offloaded, and
whether the elector was still the leader.

    .venv/bin/python bench/bench_loop_stall.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_expr_hostile import CASES, build_vars, template_of

from runs_controller.expr import resolve_template_string
from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.runtime.leaderelection import (
    KubeLeaseLock,
    LeaderElectionConfig,
    LeaderElector,
)
from runs_controller.runtime.offload import run_pure
from runs_controller.testing import ControlPlane

if TYPE_CHECKING:
    from runs_controller.api.k8s import Lease

TICK = 0.001


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class CountingLock(KubeLeaseLock):
    renewals = 0

    async def update(self, lease: Lease) -> Lease:
        written = await super().update(lease)
        self.renewals += 1
        return written


@dataclass
class Ticker:
    worst: float = 0.0

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            await anyio.sleep(TICK)
            self.worst = max(self.worst, time.perf_counter() - started - TICK)


def evaluate(text: str, data: Any) -> str:
    try:
        value = resolve_template_string(text, data)
    except Exception as error:  # the outcome is what we report
        public = next(c for c in type(error).__mro__ if not c.__name__.startswith("_"))
        return f"{public.__name__}: {str(error)[:60]}"
    return "ok: " + repr(value)[:40]


async def measure(name: str, ticker: Ticker, *, offload: bool) -> tuple[float, float, str]:
    n = CASES[name][2][0]
    text, data = template_of(name, n), build_vars(CASES[name][1], n)
    await anyio.sleep(0.05)  # let the ticker settle
    ticker.worst = 0.0
    started = time.perf_counter()
    outcome = await run_pure(evaluate, text, data) if offload else evaluate(text, data)
    elapsed = time.perf_counter() - started
    await anyio.sleep(0.01)  # one more tick after a blocking evaluation ends
    return elapsed, ticker.worst, outcome


async def main(names: list[str]) -> None:
    with ControlPlane() as plane:
        async with KubeClient(await load_kubeconfig(plane.kubeconfig_path)) as client:
            lock = CountingLock(client)
            elector = LeaderElector(
                LeaderElectionConfig(name="bench", namespace="default", identity="bench"), lock
            )
            ticker = Ticker()
            async with anyio.create_task_group() as group:
                group.start_soon(ticker.run)
                group.start_soon(elector.run, anyio.sleep_forever)
                await elector.wait_for_leadership()
                _out(
                    f"{'template':24} {'eval s':>7} {'stall inline ms':>16} "
                    f"{'stall offloaded ms':>19} {'leader':>6}  outcome"
                )
                for name in names:
                    inline_s, inline_stall, outcome = await measure(name, ticker, offload=False)
                    _, offloaded_stall, _ = await measure(name, ticker, offload=True)
                    _out(
                        f"{name:24} {inline_s:7.3f} {inline_stall * 1e3:16.1f} "
                        f"{offloaded_stall * 1e3:19.1f} {elector.is_leader!s:>6}  {outcome}"
                    )
                _out(f"lease renewals during the run: {lock.renewals}")
                group.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*")
    arguments = parser.parse_args()
    anyio.run(main, arguments.only or list(CASES))
