"""The deploy-under-load plot (matplotlib, the optional `.[bench]` extra).

One row per scenario: requests per 100 ms (bars, left axis) and the p99 latency
of the requests started in each 100 ms (line, right axis, log scale) over time;
each deploy's phases shaded (waiting for healthy: start -> switch; draining:
switch -> old container stopped); failed requests and WebSocket failures as red
marks on the time axis; WebSocket closes by the server as purple ticks at the top.
ImportError when matplotlib is missing: the caller writes the report without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

BIN_S = 0.1
WAITING_COLOR = "#f2c14e"
DRAINING_COLOR = "#5b8def"
WS_CLOSE_COLOR = "#8e44ad"
LEGEND_IN = 0.55  # height of the legend (two rows) above the plots, inches


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def plot(
    raw: dict[str, dict[str, Any]], path: Path, phases: tuple[str, str] | None = None
) -> Path:
    """`phases`: the legend of the two shaded spans (default: a deploy's)."""
    waiting, draining = phases or ("deploy: start -> switch", "switched, draining the old one")
    scenarios = [(name, r) for name, r in raw.items() if "samples" in r]
    if not scenarios:
        raise ImportError("no scenario produced samples")
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(12, 3.2 * len(scenarios)), squeeze=False)
    for ax, (name, result) in zip(axes[:, 0], scenarios, strict=True):
        t0 = result["load_start"]
        samples = result["samples"]
        end = max((s.start - t0 + s.latency for s in samples), default=1.0)
        nbins = int(end / BIN_S) + 1
        counts = [0] * nbins
        latencies: list[list[float]] = [[] for _ in range(nbins)]
        errors: list[float] = []
        for s in samples:
            b = int((s.start - t0) / BIN_S)
            if not 0 <= b < nbins:
                continue
            if s.failed:
                errors.append(s.start - t0)
                continue
            if s.kind == "fast":
                counts[b] += 1
                latencies[b].append(s.latency * 1000)
        xs = [i * BIN_S for i in range(nbins)]
        ax.bar(xs, counts, width=BIN_S, align="edge", color="#999999", label="requests / 100 ms")
        for d in result["deploys"]:
            start = d["start"] - t0
            switched = (d.get("switched") or d.get("end") or d["start"]) - t0
            stopped = (d.get("stopped") or d.get("end") or d["start"]) - t0
            ax.axvspan(start, switched, color=WAITING_COLOR, alpha=0.3, lw=0)
            ax.axvspan(switched, stopped, color=DRAINING_COLOR, alpha=0.3, lw=0)
        ax.set_ylabel("requests / 100 ms")
        ax.set_xlim(0, end)
        lat = ax.twinx()
        pts = [(x, _p99(v)) for x, v in zip(xs, latencies, strict=True) if v]
        if pts:
            lat.plot([p[0] + BIN_S / 2 for p in pts], [p[1] for p in pts], color="black", lw=0.8)
            lat.set_yscale("log")
        lat.set_ylabel("p99 latency ms (fast requests)")
        ws_events = result.get("ws_events", [])
        ws_failures = [e.time - t0 for e in ws_events if e.kind == "failure"]
        ws_closes = [e.time - t0 for e in ws_events if e.kind == "close"]
        if errors or ws_failures:
            ax.vlines(errors + ws_failures, 0, 1, transform=ax.get_xaxis_transform(), color="red",
                      lw=1)  # fmt: skip
        if ws_closes:
            ax.vlines(ws_closes, 0.92, 1, transform=ax.get_xaxis_transform(),
                      color=WS_CLOSE_COLOR, lw=1.5)  # fmt: skip
        ax.set_ylim(0, max(counts, default=1) * 1.25 + 1)
        title = f"{name}: {len(errors)} failed requests"
        if result.get("websockets"):
            title += f", {len(ws_failures)} WebSocket failures, {len(ws_closes)} WebSocket closes"
        ax.set_title(title, loc="left", color="red" if errors or ws_failures else "black")
    fig.legend(
        handles=[
            Patch(color="#999999", label="requests / 100 ms (left)"),
            Patch(color="black", label="p99 latency per 100 ms (right, log)"),
            Patch(color=WAITING_COLOR, alpha=0.5, label=waiting),
            Patch(color=DRAINING_COLOR, alpha=0.5, label=draining),
            Patch(color="red", label="failed request / WebSocket"),
            Patch(color=WS_CLOSE_COLOR, label="WebSocket closed by the server"),
        ],
        loc="upper center", fontsize="small", ncol=3,
    )  # fmt: skip
    axes[-1, 0].set_xlabel("seconds since the load started")
    fig.tight_layout(rect=(0, 0, 1, 1 - LEGEND_IN / fig.get_figheight()))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
