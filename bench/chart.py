"""The benchmark's PNG: runs completed over time, the create-to-terminal latency histogram and
the controller's RSS and workqueue depth over time, one line per scenario.

matplotlib is in the `bench` dependency group (not installed by `uv sync`), so it is imported
here only, when a chart is drawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path


def draw(scenarios: Sequence[Mapping[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    done_ax, hist_ax, rss_ax, depth_ax = axes.flat
    for s in scenarios:
        label = f"{s['shape']} K={s['runs']} w={s['workers'] or 'default'}"
        done = sorted(s["series"]["done_at"])
        done_ax.plot(done, range(1, len(done) + 1), label=label)
        latencies = [1000 * v for v in s["series"]["run_latency"]]
        if latencies:
            hist_ax.hist(latencies, bins=40, histtype="step", label=label)
        points = s["series"]["samples"]
        rss_ax.plot([p["t"] for p in points], [p.get("VmRSS", 0.0) for p in points], label=label)
        scraped = [p for p in points if "queue_depth" in p]
        depth_ax.plot([p["t"] for p in scraped], [p["queue_depth"] for p in scraped], label=label)
    done_ax.set(title="StoryRuns completed", xlabel="s since first submit", ylabel="runs")
    hist_ax.set(title="StoryRun create -> terminal", xlabel="ms", ylabel="runs")
    rss_ax.set(title="controller RSS", xlabel="s since first submit", ylabel="MiB")
    depth_ax.set(title="workqueue depth (all queues)", xlabel="s since first submit")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    done_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
