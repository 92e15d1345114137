"""A bandwidth limit: one crawl unpaced and at ``IMGSCRAPER_MAX_RATE=1M``.

``python -m bench.rate`` (``python -m bench`` runs it too) crawls a site of
6.8 MB (:data:`PACED`: 45 images over 4 pages, depth 2, served by nginx on
loopback) as fast as it can and at 1M (1 MiB/s), the two taking turns
``--rounds`` times (the fastest run of each is kept); each wall time includes
the process's start-up and exit.
Targets (issue #24): at 1M the crawl takes 6.5 to 8 s where it takes under 2 s
unpaced.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench import report, tools
from bench.measure import Run
from bench.servers import nginx
from bench.site import SiteSpec, ensure_site

__all__ = ["PACED", "RATE", "SCENARIO", "run", "targets"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: 6,750,765 bytes of images (generator version 1).
PACED = SiteSpec("paced", images=45, sections=1, leaves=2)
RATE = "1M"
SCENARIO = "6.8 MB, loopback"
UNPACED, AT_RATE = "imgscraper", f"imgscraper at {RATE}"
#: The issue's bounds (s): the crawl at the rate, and unpaced.
PACED_WALL, UNPACED_WALL = (6.5, 8.0), 2.0


def run(base_url: str, work: Path, *, concurrency: int = 16, rounds: int = 1) -> list[Run]:
    """The crawl of ``base_url``/paced/ unpaced and at :data:`RATE`, taking turns ``rounds`` times;
    the fastest run of each is kept, with every wall time in ``extra["walls"]``."""
    kept: dict[str, Run] = {}
    walls: dict[str, list[float]] = {UNPACED: [], AT_RATE: []}
    for _ in range(max(1, rounds)):
        for label, settings in ((UNPACED, {}), (AT_RATE, {"IMGSCRAPER_MAX_RATE": RATE})):
            load = os.getloadavg()[0]
            result = tools.imgscraper(f"{base_url}/paced/", work / ("unpaced" if label == UNPACED else "paced"),
                                      scenario=SCENARIO, concurrency=concurrency, settings=settings, label=label)
            result.extra["load"] = load
            walls[label].append(result.wall)
            best = kept.get(label)
            if best is None or (result.returncode != 0, result.wall) < (best.returncode != 0, best.wall):
                kept[label] = result
    for label, result in kept.items():
        result.extra["walls"] = walls[label]
    return list(kept.values())


def targets(runs: list[Run], expected_images: int) -> list[dict]:
    """Rows for :func:`bench.report.format_targets`: every image stored, the two wall times, their ratio."""
    by_tool = {r.tool: r for r in runs if r.scenario == SCENARIO}
    unpaced, paced = by_tool.get(UNPACED), by_tool.get(AT_RATE)
    rows = []

    def add(name: str, value: float, limit: float, at_least: bool) -> None:
        rows.append({"target": name, "value": value, "limit": limit, "at_least": at_least,
                     "met": value >= limit if at_least else value <= limit})

    for name, r in (("unpaced", unpaced), (f"at {RATE}", paced)):
        if r is not None:
            add(f"images stored, 6.8 MB {name}", r.images if r.returncode == 0 else 0, expected_images, True)
    if unpaced:
        add("wall s, 6.8 MB unpaced", unpaced.wall, UNPACED_WALL, False)
    if paced:
        add(f"wall s, 6.8 MB at {RATE}", paced.wall, PACED_WALL[0], True)
        add(f"wall s, 6.8 MB at {RATE}", paced.wall, PACED_WALL[1], False)
    if unpaced and paced:
        add(f"wall, 6.8 MB at {RATE} vs unpaced", paced.wall / unpaced.wall, PACED_WALL[0] / UNPACED_WALL, True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rate", description=__doc__)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-out", help="work directory")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each crawl, in turn")
    args = parser.parse_args()
    sites = args.out / "sites"
    site = ensure_site(sites / "paced", PACED, "/paced/")
    (sites / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    print(f"{PACED.name}: {len(site['images'])} images, {site['bytes']:,} bytes, {site['pages']} pages", flush=True)
    with nginx(sites, args.out / "nginx") as port:
        runs = run(f"http://127.0.0.1:{port}", args.out / "runs" / "rate", concurrency=args.concurrency,
                   rounds=args.rounds)
    print()
    print(report.table(runs))
    for r in runs:
        print(f"  {r.tool}: wall {', '.join(f'{w:.2f}' for w in r.extra['walls'])} s, load {r.extra['load']:.2f}")
    checks = targets(runs, len(site["images"]))
    print()
    print(report.format_targets(checks))
    report.write_json(args.out / "bench-rate.json", {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
        "site": {k: v for k, v in site.items() if k != "images"} | {"image_count": len(site["images"])},
        "rate": RATE, "runs": runs, "targets": checks,
    })
    print(f"\nJSON: {args.out / 'bench-rate.json'}")


if __name__ == "__main__":
    main()
