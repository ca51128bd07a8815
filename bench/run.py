"""The end-to-end benchmark: throughput, latency, API cost, CPU and memory of the controller.

    uv run --group bench python bench/run.py --runs 50 --shapes chain,fanout,diamond \\
        --out bench/results/<name> [--workers 1,4,16] [--memory] [--profile]

Starts a local control plane (etcd + kube-apiserver, `runs_controller.testing.ControlPlane`,
with an audit log of the controller's requests), then for every shape x K x workers: a fresh
namespace, the controller as a separate process (`python -m runs_controller run`), K StoryRuns
submitted at once, and a stand-in for the Engram SDK + Job controller that writes the StepRun's
`Succeeded` (merge patch on /status, as the SDK does) and the Job's status as soon as a Job
appears; a diamond's gate is approved by writing `status.gates` as soon as it is Paused.
Writes report.json, report.md and report.png into --out. Prints progress; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import anyio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import report as rpt  # noqa: E402
from bench.controller_process import (  # noqa: E402
    ControllerProcess,
    Sampler,
    proc_cpu_seconds,
    proc_memory,
)
from bench.driver import (  # noqa: E402
    SHAPES,
    CountingClient,
    TimedKubelet,
    Timeline,
    Watches,
    engram_steps,
    gate_latencies,
    hop_latencies,
    run_latencies,
    start_latencies,
    submit,
)
from runs_controller.kube.config import load_kubeconfig  # noqa: E402
from runs_controller.testing import ControlPlane, ControlPlaneConfig, install_crds  # noqa: E402
from tests.integration.storyrun_support import create_engram, create_story  # noqa: E402

AUDIT_GROUP = "bench:controller"
API_GROUPS = (
    "",
    "runs.bubustack.io",
    "bubustack.io",
    "catalog.bubustack.io",
    "batch",
    "coordination.k8s.io",
    "events.k8s.io",
    "rbac.authorization.k8s.io",
)
READS = ("GET", "LIST", "WATCH")
MEMORY_HEADERS = (
    "StepRuns (+Jobs)",
    "StoryRuns",
    "RSS empty MiB",
    "RSS loaded MiB",
    "peak RSS loaded MiB",
    "MiB per 1,000 StepRuns",
    "synced + quiet after s",
    "load 1m",
)
AUDIT_POLICY = f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  userGroups: ["{AUDIT_GROUP}"]
- level: None
"""


def log(text: str) -> None:
    sys.stdout.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
    sys.stdout.flush()


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def machine() -> dict[str, Any]:
    def cmd(*argv: str) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        return done.stdout.strip()

    return {
        "nproc": cmd("nproc"),
        "kernel": cmd("uname", "-r"),
        "python": platform.python_version(),
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "?",
        ),
        "loadavg_at_start": load(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


class Bench:
    """One control plane, shared by every scenario of the invocation."""

    def __init__(
        self,
        plane: ControlPlane,
        out: Path,
        audit_log: Path,
        profile: bool,
        apiserver_profile_s: int = 0,
    ) -> None:
        self.plane = plane
        self.out = out
        self.audit_log = audit_log
        self.profile = profile
        self.apiserver_profile_s = apiserver_profile_s

    def apiserver_profile(self, output: Path) -> None:
        """A Go CPU profile of kube-apiserver for `apiserver_profile_s` seconds (pprof), and its
        top functions as text next to it (`go tool pprof -top`)."""
        seconds = str(self.apiserver_profile_s)
        body = self.plane.admin.get_bytes(
            "/debug/pprof/profile", {"seconds": seconds}, timeout=self.apiserver_profile_s + 60
        )
        output.write_bytes(body)
        for flag, suffix in (("-top", ".top.txt"), ("-top -cum", ".cum.txt")):
            text = subprocess.run(  # noqa: S603 - the Go toolchain that built the binaries
                ["go", "tool", "pprof", *flag.split(), "-nodecount=40", str(output)],  # noqa: S607
                capture_output=True,
                text=True,
                check=False,
            )
            output.with_suffix(suffix).write_text(text.stdout + text.stderr)

    def controller_identity(self, namespace: str) -> tuple[str, Path]:
        user = f"bench-controller-{namespace}"
        return user, self.plane.user_kubeconfig(user, ("system:masters", AUDIT_GROUP))

    def apiserver_requests(self) -> dict[str, float]:
        text = self.plane.admin.request("GET", "/metrics", timeout=60).body.get("message", "")
        return rpt.apiserver_requests(rpt.parse_metrics(str(text)), API_GROUPS)

    def audit(
        self, user: str, since: datetime.datetime, until: datetime.datetime
    ) -> dict[str, float]:
        with self.audit_log.open(errors="replace") as lines:
            return dict(rpt.audit_counts(lines, user, since, until))

    async def scenario(
        self, shape: str, runs: int, workers: int | None, within: float
    ) -> dict[str, Any]:
        name = f"{shape}-k{runs}-w{workers or 0}"
        namespace = self.plane.create_namespace(f"b-{shape}-{runs}-w{workers or 0}")
        user, kubeconfig = self.controller_identity(namespace)
        config = await load_kubeconfig(self.plane.kubeconfig_path)
        client = CountingClient(config)
        client.counts = Counter()
        controller = ControllerProcess(
            kubeconfig, namespace, self.out / f"controller-{name}.log", workers=workers
        )
        timeline = Timeline()
        sampler = Sampler()
        async with client, aiohttp.ClientSession() as session:
            await create_engram(client, namespace)
            await create_story(client, namespace, shape, {"steps": SHAPES[shape]})
            controller.start()
            try:
                await controller.wait_leading(session)
                watches = Watches(client, namespace, timeline, runs)
                async with anyio.create_task_group() as group:
                    await group.start(watches.run)
                    kubelet = TimedKubelet(client, namespace, timeline)
                    await group.start(kubelet.run)
                    result = await self._measure(
                        name, shape, runs, workers, within, user, client, controller,
                        session, watches, timeline, sampler, group,
                    )  # fmt: skip
                    group.cancel_scope.cancel()
            finally:
                code = controller.stop()
        result["controller_exit_code"] = code
        result["namespace"] = namespace
        return result

    async def _measure(
        self,
        name: str,
        shape: str,
        runs: int,
        workers: int | None,
        within: float,
        user: str,
        client: CountingClient,
        controller: ControllerProcess,
        session: aiohttp.ClientSession,
        watches: Watches,
        timeline: Timeline,
        sampler: Sampler,
        group: Any,
    ) -> dict[str, Any]:
        steps = runs * len(engram_steps(shape))
        before_metrics = await controller.scrape(session)
        before_api = await anyio.to_thread.run_sync(self.apiserver_requests)
        client.counts.clear()
        since = datetime.datetime.now(datetime.UTC)
        load_start = load()
        cpu0 = proc_cpu_seconds(controller.pid)
        driver_cpu0 = time.process_time()
        t0 = time.perf_counter()
        profile = self.out / f"profile-{name}.txt" if self.profile else None
        if profile is not None:
            controller.start_profiler(profile)
        with anyio.CancelScope() as sampling:
            group.start_soon(controller.sample, session, sampler, t0)
            if self.apiserver_profile_s:
                group.start_soon(
                    anyio.to_thread.run_sync,
                    self.apiserver_profile,
                    self.out / f"apiserver-{name}.pprof",
                )
            log(f"{name}: submitting {runs} runs ({steps} engram steps)")
            await submit(client, controller.namespace, shape, runs, timeline)
            log(f"{name}: submitted in {time.perf_counter() - t0:.1f} s; waiting")
            with anyio.move_on_after(within) as waited:
                await watches.all_done.wait()
            elapsed = time.perf_counter() - t0
            cpu = proc_cpu_seconds(controller.pid) - cpu0
            driver_cpu = time.process_time() - driver_cpu0
            load_end = load()
            until = datetime.datetime.now(datetime.UTC)
            memory = proc_memory(controller.pid)
            controller.stop_profiler()
            after_metrics = await controller.scrape(session)
            after_api = await anyio.to_thread.run_sync(self.apiserver_requests)
            driver_counts = dict(client.counts)
            sampling.cancel()
        timed_out = waited.cancelled_caught
        log(
            f"{name}: {len(timeline.done)}/{runs} done in {elapsed:.1f} s"
            + (" (TIMED OUT)" if timed_out else "")
        )
        audit = await anyio.to_thread.run_sync(self.audit, user, since, until)
        return self._result(
            name=name, shape=shape, runs=runs, workers=workers, steps=steps, elapsed=elapsed,
            timed_out=timed_out, timeline=timeline, cpu=cpu, driver_cpu=driver_cpu,
            memory=memory, sampler=sampler, before=before_metrics, after=after_metrics,
            api=rpt.subtract(after_api, before_api), driver=driver_counts, audit=audit,
            load=(load_start, load_end), t0=t0, profile=profile,
        )  # fmt: skip

    def _result(self, **m: Any) -> dict[str, Any]:
        steps, runs, timeline = m["steps"], m["runs"], m["timeline"]
        before, after = m["before"], m["after"]

        def delta(metric: str, by: list[str], **where: str) -> dict[str, float]:
            return rpt.subtract(
                rpt.sum_by(after, metric, by, **where), rpt.sum_by(before, metric, by, **where)
            )

        def mean(metric: str, by: str) -> dict[str, float]:
            sums, counts = delta(f"{metric}_sum", [by]), delta(f"{metric}_count", [by])
            return {k: round(1000 * sums.get(k, 0.0) / n, 1) for k, n in counts.items() if n}

        rest = delta("rest_client_requests_total", ["method"])
        reconciles = delta("controller_runtime_reconcile_total", ["controller"])
        status_writes = delta("runs_controller_status_writes_total", ["controller", "result"])
        derived = rpt.subtract(m["api"], {k: float(v) for k, v in m["driver"].items()})
        audit = m["audit"]
        audit_total = sum(audit.values())
        writes = sum(v for k, v in audit.items() if k.split(" ", 1)[0] not in READS)
        completed = list(timeline.done.values())
        samples = m["sampler"].points
        phases = Counter(timeline.phases.values())
        result: dict[str, Any] = {
            "name": m["name"],
            "shape": m["shape"],
            "runs": runs,
            "workers": m["workers"],
            "engram_steps": steps,
            "completed": len(completed),
            "phases": dict(phases),
            "timed_out": m["timed_out"],
            "elapsed_s": round(m["elapsed"], 2),
            "runs_per_s": len(completed) / m["elapsed"],
            "steps_per_s": steps * len(completed) / runs / m["elapsed"],
            "latency": {
                "run_create_to_terminal": rpt.summary_ms(run_latencies(timeline)),
                "run_create_to_first_steprun": rpt.summary_ms(
                    start_latencies(m["shape"], timeline)
                ),
                "hop": rpt.summary_ms(hop_latencies(m["shape"], timeline)),
                "hop_to_started": rpt.summary_ms(
                    hop_latencies(m["shape"], timeline, to_started=True)
                ),
                "gate_to_next": rpt.summary_ms(gate_latencies(m["shape"], timeline)),
            },
            "requests": {
                "controller_rest_client_by_method": rest,
                "controller_rest_client_per_step": rpt.per_unit(rest, steps),
                "audit_total": audit_total,
                "controller_per_step": audit_total / steps,
                "controller_writes_per_step": writes / steps,
                "audit_per_step": rpt.per_unit(audit, steps),
                "apiserver_minus_driver_per_step": rpt.per_unit(derived, steps),
                "driver_per_step": rpt.per_unit(
                    {k: float(v) for k, v in m["driver"].items()}, steps
                ),
            },
            "reconciles": reconciles,
            "reconciles_per_object": {
                "storyrun": reconciles.get("storyrun", 0.0) / runs,
                "steprun": reconciles.get("steprun", 0.0) / steps,
            },
            "status_writes": status_writes,
            "mean_ms": {
                "rest_request_by_verb": mean("rest_client_request_duration_seconds", "verb"),
                "reconcile": mean("controller_runtime_reconcile_time_seconds", "controller"),
                "queue_wait": mean("workqueue_queue_duration_seconds", "name"),
            },
            "controller_process": {
                "cpu_seconds": m["cpu"],
                "cpu_per_step_ms": 1000 * m["cpu"] / steps,
                "cpu_utilisation": m["cpu"] / m["elapsed"],
                "peak_rss_mib": max(
                    [m["memory"].get("VmHWM", 0.0)] + [p.get("VmRSS", 0.0) for p in samples]
                ),
                "rss_end_mib": m["memory"].get("VmRSS", 0.0),
            },
            "driver_cpu_seconds": m["driver_cpu"],
            "workqueue_depth_peak": m["sampler"].peak_depth(),
            "machine_load": {
                "start_1m": m["load"][0][0],
                "start": m["load"][0],
                "end": m["load"][1],
            },
            "gate_approve_errors": timeline.approve_errors,
            "profile": str(m["profile"]) if m["profile"] else None,
            "series": {
                "done_at": [round(t - m["t0"], 3) for t in completed],
                "run_latency": [round(v, 4) for v in run_latencies(timeline)],
                "samples": samples,
            },
        }
        if m["profile"] is not None and Path(m["profile"]).exists():
            with Path(m["profile"]).open(errors="replace") as lines:
                result["profile_top"] = rpt.profile_top(lines)
        return result

    async def memory(self, steprun_count: int, done: list[dict[str, Any]]) -> dict[str, Any]:
        """RSS per 1,000 terminal StepRuns (with their Jobs and StoryRuns) cached: a fresh
        controller on an empty namespace, then one watching the namespaces of the scenarios
        already run (all their runs finished), topped up with fan-out runs (10 StepRuns each:
        the fastest fill) to `steprun_count`."""
        empty_ns = self.plane.create_namespace("b-mem-empty")
        empty = await self._quiet_rss(empty_ns, "mem-empty")
        log(f"memory: empty namespace {empty['VmRSS']:.1f} MiB")
        filled = [(s["namespace"], s["engram_steps"], s["runs"]) for s in done if s["completed"]]
        missing = steprun_count - sum(steps for _, steps, _ in filled)
        fill_run: dict[str, Any] | None = None
        if missing > 0:
            runs = -(-missing // len(engram_steps("fanout")))
            top_up = await self.scenario("fanout", runs, None, within=max(600.0, runs * 2.0))
            filled.append((top_up["namespace"], top_up["engram_steps"], runs))
            done.append(top_up)
            fill_run = {k: top_up[k] for k in ("name", "elapsed_s", "runs_per_s", "steps_per_s")}
        stepruns = sum(steps for _, steps, _ in filled)
        namespaces = ",".join(ns for ns, _, _ in filled)
        loaded = await self._quiet_rss(namespaces, "mem-loaded")
        per_1000 = (loaded["VmRSS"] - empty["VmRSS"]) / (stepruns / 1000)
        log(f"memory: {stepruns} StepRuns cached {loaded['VmRSS']:.1f} MiB ({per_1000:.1f}/1000)")
        return {
            "stepruns": stepruns,
            "jobs": stepruns,
            "storyruns": sum(runs for _, _, runs in filled),
            "namespaces": len(filled),
            "rss_empty_mib": empty["VmRSS"],
            "rss_loaded_mib": loaded["VmRSS"],
            "hwm_loaded_mib": loaded["VmHWM"],
            "sync_and_quiet_s": loaded["quiet_after_s"],
            "rss_per_1000_stepruns_mib": per_1000,
            "load_1m": load()[0],
            "fill_run": fill_run,
        }

    async def _quiet_rss(self, namespace: str, name: str) -> dict[str, float]:
        """Start a controller on `namespace`, wait until it leads with synced caches and its
        queues stay empty with no reconcile for 5 s, then read its RSS."""
        _, kubeconfig = self.controller_identity(namespace.split(",", 1)[0])
        controller = ControllerProcess(kubeconfig, namespace, self.out / f"controller-{name}.log")
        started = time.perf_counter()
        controller.start()
        try:
            async with aiohttp.ClientSession() as session:
                await controller.wait_leading(session, within=300)
                quiet_since, last = time.perf_counter(), -1.0
                deadline = time.monotonic() + 600
                while time.perf_counter() - quiet_since < 5:
                    samples = await controller.scrape(session)
                    total = sum(
                        rpt.sum_by(samples, "controller_runtime_reconcile_total", []).values()
                    )
                    depth = sum(rpt.sum_by(samples, "workqueue_depth", []).values())
                    if total != last or depth:
                        quiet_since, last = time.perf_counter(), total
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"controller on {namespace} never went quiet")
                    await anyio.sleep(0.5)
                out = proc_memory(controller.pid)
                out["quiet_after_s"] = quiet_since - started
                return out
        finally:
            controller.stop()


def write_reports(out: Path, document: dict[str, Any]) -> None:
    (out / "report.json").write_text(json.dumps(document, indent=1, default=str) + "\n")
    scenarios = document["scenarios"]
    md = [
        f"# Benchmark {document['machine']['date']}",
        "",
        f"Command: `{document['command']}`",
        "",
        "Machine: {nproc} cores ({cpu}), kernel {kernel}, Python {python}; load average at "
        "start {loadavg_at_start} (other processes share the machine: see `load 1m`).".format(
            **document["machine"]
        ),
        "",
        (
            "Latencies in ms. hop: a dependency's terminal status written by the SDK stand-in -> "
            "the dependent StepRun seen by a watch; gate: approval written -> next StepRun seen; "
            "req/step: the controller's requests (apiserver audit log, by its identity) per engram "
            "step; CPU s and peak RSS: the controller process (/proc)."
        ),
        "",
        rpt.summary_table(scenarios),
    ]
    for s in scenarios:
        md += [f"## Requests per engram step: {s['name']}", "", rpt.requests_table(s)]
        md += [
            "controller rest_client_requests_total per step: "
            + ", ".join(
                f"{k} {v}" for k, v in s["requests"]["controller_rest_client_per_step"].items()
            ),
            "",
        ]
        if s.get("mean_ms"):
            md += [
                "mean ms: "
                + "; ".join(
                    f"{what} " + ", ".join(f"{k} {v}" for k, v in values.items())
                    for what, values in s["mean_ms"].items()
                ),
                "",
            ]
        if s.get("profile_top"):
            md += [f"### Profile (py-spy, % of samples): {s['name']}", ""]
            md.append(
                rpt.markdown_table(
                    ("self", "%", "inclusive", "%"),
                    (
                        [a[0], a[1], b[0], b[1]]
                        for a, b in zip(
                            s["profile_top"]["self"], s["profile_top"]["inclusive"], strict=False
                        )
                    ),
                )
            )
    if document.get("memory"):
        mem = document["memory"]
        md += [
            "## Memory",
            "",
            rpt.markdown_table(
                MEMORY_HEADERS,
                [[mem["stepruns"], mem["storyruns"], round(mem["rss_empty_mib"], 1),
                  round(mem["rss_loaded_mib"], 1), round(mem["hwm_loaded_mib"], 1),
                  round(mem["rss_per_1000_stepruns_mib"], 2), round(mem["sync_and_quiet_s"], 1),
                  mem["load_1m"]]],
            ),
        ]  # fmt: skip
    (out / "report.md").write_text("\n".join(md) + "\n")
    try:
        from bench.chart import draw

        draw(scenarios, out / "report.png")
    except ImportError as error:
        log(f"no chart ({error}); install the bench group: uv sync --group bench")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", default="50", help="K, comma-separated for several (50,500)")
    parser.add_argument("--shapes", default="chain,fanout,diamond")
    parser.add_argument(
        "--workers",
        default="",
        help="comma-separated sweep, e.g. 1,4,16; default: the controller's",
    )
    parser.add_argument(
        "--memory", action="store_true", help="also measure RSS per 1,000 cached StepRuns"
    )
    parser.add_argument("--memory-stepruns", type=int, default=10_000)
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the controller in every scenario"
    )
    parser.add_argument(
        "--apiserver-profile",
        type=int,
        default=0,
        metavar="S",
        help="a kube-apiserver CPU profile (pprof) over the first S seconds of every scenario",
    )
    parser.add_argument(
        "--timeout", type=float, default=0, help="seconds per scenario (default 600 + 2 s per run)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "latest")
    args = parser.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    for shape in shapes:
        if shape not in SHAPES:
            parser.error(f"unknown shape {shape} (known: {', '.join(SHAPES)})")
    ks = [int(k) for k in args.runs.split(",") if k]
    workers: list[int | None] = [int(w) for w in args.workers.split(",") if w] or [None]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"command": " ".join(["bench/run.py", *sys.argv[1:]])}
    document["machine"] = machine()
    with tempfile.TemporaryDirectory(prefix="runs-bench-") as tmp:
        policy = Path(tmp) / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        audit_log = Path(tmp) / "audit.log"
        config = ControlPlaneConfig(
            extra_apiserver_args=[
                f"--audit-policy-file={policy}",
                f"--audit-log-path={audit_log}",
                "--audit-log-format=json",
                "--audit-log-maxsize=0",
                *(["--profiling=true"] if args.apiserver_profile else []),
            ]
        )
        with ControlPlane(config) as plane:
            install_crds(plane.admin, [REPO / "manifests" / "crds"], timeout=120)
            bench = Bench(plane, out, audit_log, args.profile, args.apiserver_profile)
            document["scenarios"] = []
            for shape in shapes:
                for k in ks:
                    for w in workers:
                        timeout = args.timeout or 600 + 2 * k
                        result = anyio.run(bench.scenario, shape, k, w, timeout)
                        document["scenarios"].append(result)
                        write_reports(out, document)
            if args.memory:
                document["memory"] = anyio.run(
                    bench.memory, args.memory_stepruns, document["scenarios"]
                )
            write_reports(out, document)
    log(f"wrote {out}/report.json, report.md, report.png")


if __name__ == "__main__":
    main()
