"""The bench's outputs: a table on stdout, a JSON file, a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path

from bench.measure import Run

__all__ = ["table", "targets", "targets_for", "format_targets", "format_floor", "write_json", "chart"]


def table(runs: list[Run]) -> str:
    head = (f"{'scenario':<22} {'tool':<22} {'wall s':>7} {'CPU s':>7} {'RSS MB':>7} {'images':>7} "
            f"{'img/s':>8} {'MB/s':>7} {'CPU ms/img':>10}")
    lines = [head, "-" * len(head)]
    for run in runs:
        lines.append(
            f"{run.scenario:<22} {run.tool:<22} {run.wall:7.2f} {run.cpu:7.2f} {run.peak_rss_mb:7.1f} "
            f"{run.images:7d} {run.images_per_s:8.0f} {run.mb_per_s:7.1f} {run.cpu_ms_per_image:10.2f}"
            + ("" if run.returncode == 0 else f"  (exit {run.returncode})")
        )
    return "\n".join(lines)


def _find(runs: list[Run], tool: str, scenario: str) -> Run | None:
    return next((r for r in runs if r.tool == tool and r.scenario == scenario), None)


def targets(runs: list[Run], expected_images: int, loopback: str, latency: str, small: str) -> list[dict]:
    """The issue's targets, each with the measured value and whether it is met."""
    ours, stock, curl = (_find(runs, tool, loopback) for tool in ("imgscraper", "stock ImagesPipeline", "curl --parallel"))
    ours_l, curl_l = _find(runs, "imgscraper", latency), _find(runs, "curl --parallel", latency)
    ours_small = _find(runs, "imgscraper", small)
    rows = []

    def add(name: str, value: float | None, limit: float, at_least: bool = False) -> None:
        ok = value is not None and (value >= limit if at_least else value <= limit)
        rows.append({"target": name, "value": value, "limit": limit, "at_least": at_least, "met": ok})

    if ours:
        add("images stored (every image of the site)", ours.images, expected_images, at_least=True)
        add("CPU ms per stored image", ours.cpu_ms_per_image, 1.5)
        add("peak RSS MB", ours.peak_rss_mb, 200)
    if ours and stock:
        add("images/s vs stock ImagesPipeline", ours.images_per_s / max(stock.images_per_s, 1e-9), 5, at_least=True)
    if ours and curl:
        add("wall vs curl, loopback", ours.wall / curl.wall, 4)
    if ours_l and curl_l:
        add("wall vs curl, +50 ms", ours_l.wall / curl_l.wall, 1.5)
    if ours and ours_small:
        add("peak RSS, 10x larger site vs smaller", ours.peak_rss_mb / ours_small.peak_rss_mb, 1.5)
    return rows


def targets_for(runs: list[Run], tool: str, loopback: str) -> list[dict]:
    """The loopback speed targets for another imgscraper set-up ``tool`` (e.g. more processes)."""
    ours, stock, curl = (_find(runs, t, loopback) for t in (tool, "stock ImagesPipeline", "curl --parallel"))
    rows = []
    if ours and stock:
        value = ours.images_per_s / max(stock.images_per_s, 1e-9)
        rows.append({"target": f"images/s vs stock ({tool})", "value": value, "limit": 5, "at_least": True,
                     "met": value >= 5})
    if ours and curl:
        value = ours.wall / curl.wall
        rows.append({"target": f"wall vs curl, loopback ({tool})", "value": value, "limit": 4, "at_least": False,
                     "met": value <= 4})
    if ours:
        rows.append({"target": f"CPU ms per stored image ({tool})", "value": ours.cpu_ms_per_image, "limit": 1.5,
                     "at_least": False, "met": ours.cpu_ms_per_image <= 1.5})
    return rows


def format_targets(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        sign = ">=" if row["at_least"] else "<="
        value = "n/a" if row["value"] is None else f"{row['value']:.2f}"
        lines.append(f"{'OK  ' if row['met'] else 'MISS'} {row['target']:<42} {value:>9}  (target {sign} {row['limit']})")
    return "\n".join(lines)


def format_floor(runs: list[Run], loopback: str) -> str:
    """Wall time of each run on loopback against curl's and bare Scrapy's (the floor inside Scrapy)."""
    curl = _find(runs, "curl --parallel", loopback)
    floor = min((r for r in runs if r.scenario == loopback and r.tool.startswith("bare Scrapy") and r.returncode == 0),
                key=lambda r: r.wall, default=None)
    if not curl or not floor:
        return ""
    lines = [f"Wall on loopback vs curl and vs the fastest bare Scrapy ({floor.tool}: its engine alone over the plain list)"]
    for run in runs:
        if run.scenario == loopback:
            lines.append(f"  {run.tool:<22} {run.wall / curl.wall:6.2f}x curl  {run.wall / floor.wall:6.2f}x bare Scrapy")
    return "\n".join(lines)


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` (the latest run), and append it as one line to
    ``<name>.history.jsonl`` beside it: the run-by-run record of the bench."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=lambda o: o.as_dict()))
    with path.with_suffix(".history.jsonl").open("a", encoding="utf-8") as history:
        history.write(json.dumps(payload, default=lambda o: o.as_dict()) + "\n")


def chart(path: Path, sweep: list[Run], title: str) -> None:
    """images/s against the concurrency setting, one line per tool."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for tool in dict.fromkeys(run.tool for run in sweep):
        points = sorted((run.extra["concurrency"], run.images_per_s) for run in sweep if run.tool == tool)
        ax.plot([c for c, _ in points], [v for _, v in points], marker="o", label=tool)
    ax.set_xscale("log", base=2)
    concurrencies = sorted({run.extra["concurrency"] for run in sweep})
    ax.set_xticks(concurrencies, [str(c) for c in concurrencies])
    ax.set_xlabel("CONCURRENT_REQUESTS (curl: --parallel-max), one host")
    ax.set_ylabel("images stored per second")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
