"""Server-side-apply PATCH latency and throughput: KubeClient vs kubernetes-asyncio's CoreV1Api.

Starts its own local control plane (etcd + kube-apiserver, runs_controller.testing), then applies
ConfigMaps (64 names per client, data changing on every request, so each call is a real write)
sequentially and with N requests in flight, both clients in the same process and event loop.

    .venv/bin/python bench/bench_requests.py [--requests 1000] [--concurrency 16] [--rounds 2]

kubernetes-asyncio is called as a correct SSA needs (runtime-notes §3.2): a dict body,
`_content_type="application/apply-patch+yaml"`, `field_manager`, `force=True`; its answer is
deserialised into V1ConfigMap as usual. Ours decodes the answer into a ConfigMap Struct.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
from typing import TYPE_CHECKING

from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from runs_controller.api.k8s import ConfigMap
from runs_controller.api.meta import ObjectMeta
from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.kube.resources import CONFIG_MAPS
from runs_controller.testing import ControlPlane

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    Apply = Callable[[int], Awaitable[object]]

NAMES = 64
APPLY = "application/apply-patch+yaml"


def report(line: str) -> None:
    print(line)  # noqa: T201 - a benchmark reports on stdout


async def run(apply: Apply, requests: int, concurrency: int) -> tuple[list[float], float]:
    """Latencies (s) of `requests` applies with `concurrency` in flight, and the wall time."""
    latencies: list[float] = []
    counter = itertools.count()

    async def worker() -> None:
        while (index := next(counter)) < requests:
            started = time.perf_counter()
            await apply(index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def bench(kubeconfig: Path, namespace: str, args: argparse.Namespace) -> None:
    ours_config = await load_kubeconfig(kubeconfig)
    theirs_config = k8s_client.Configuration()
    await k8s_config.load_kube_config(
        config_file=str(kubeconfig), client_configuration=theirs_config
    )
    async with KubeClient(ours_config) as ours, k8s_client.ApiClient(theirs_config) as api:
        core = k8s_client.CoreV1Api(api)

        async def apply_ours(index: int) -> object:
            body = ConfigMap(
                metadata=ObjectMeta(name=f"ours-{index % NAMES}"), data={"i": str(index)}
            )
            return await ours.apply(
                CONFIG_MAPS, body, namespace=namespace, field_manager="bench-ours", type=ConfigMap
            )

        async def apply_theirs(index: int) -> object:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"theirs-{index % NAMES}"},
                "data": {"i": str(index)},
            }
            return await core.patch_namespaced_config_map(  # type: ignore[call-arg]
                f"theirs-{index % NAMES}",
                namespace,
                body,
                field_manager="bench-theirs",
                force=True,
                _content_type=APPLY,
            )

        clients: dict[str, Apply] = {"KubeClient": apply_ours, "kubernetes-asyncio": apply_theirs}
        for apply in clients.values():  # warm up: objects exist, pools hold their connections
            await run(apply, args.warmup, 1)
            await run(apply, args.warmup, args.concurrency)

        results: dict[tuple[str, int], list[tuple[list[float], float]]] = {}
        for _ in range(args.rounds):  # alternate, so drift hits both alike
            for concurrency in (1, args.concurrency):
                for name, apply in clients.items():
                    outcome = await run(apply, args.requests, concurrency)
                    results.setdefault((name, concurrency), []).append(outcome)

    report(f"\n{'client':<20} {'in flight':>9} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8}")
    for (name, concurrency), outcomes in results.items():
        latencies = [value for lat, _ in outcomes for value in lat]
        throughput = statistics.median(len(lat) / wall for lat, wall in outcomes)
        report(
            f"{name:<20} {concurrency:>9} {percentile(latencies, 0.5) * 1e3:>8.2f} "
            f"{percentile(latencies, 0.95) * 1e3:>8.2f} {throughput:>8.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="per client, mode and round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with ControlPlane() as plane:
        namespace = plane.create_namespace("bench")
        report(f"control plane at {plane.server}, namespace {namespace}")
        asyncio.run(bench(plane.kubeconfig_path, namespace, args))


if __name__ == "__main__":
    main()
