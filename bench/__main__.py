"""``python -m bench``: generate the sites, serve them, measure every tool, report.

Scenarios: the large site on loopback and at +50 ms per response (every
tool; on loopback also Scrapy's engine alone over the plain image list, the
floor of any crawl inside Scrapy), the small site (a tenth of the large one) on loopback (imgscraper,
for memory growth), a 6.8 MB site unpaced and at ``IMGSCRAPER_MAX_RATE=1M`` (:mod:`bench.rate`),
and a sweep of the concurrency at +50 ms on the large site (imgscraper and curl: the chart); last, a broad
crawl (:mod:`bench.broad`: many pages on many hosts from a URL list, peak memory at two sizes).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import time
from pathlib import Path

from bench import broad, rate, report, tools, workers
from bench.measure import Run
from bench.servers import LatencyProxy, nginx
from bench.site import LARGE, SMALL, ensure_site

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK, LATENCY, SMALL_LOOPBACK = "large, loopback", "large, +50 ms", "small, loopback"
SWEEP = "large, +50 ms, sweep"
TWO_WORKERS = "imgscraper 2 workers"
NEAR_DUPLICATES_MARK = "imgscraper phash mark"


def workers_vs_one(runs: list[Run], scenarios: tuple[str, ...]) -> list[dict]:
    """Rows for :func:`bench.report.format_targets`: images/s of two local workers (private Redis,
    start-up included) against one, per scenario; a second worker should not slow the crawl down."""
    rows = []
    for scenario in scenarios:
        by_tool = {r.tool: r for r in runs if r.scenario == scenario and r.returncode == 0}
        one, two = by_tool.get("imgscraper"), by_tool.get(TWO_WORKERS)
        if one and two:
            value = two.images_per_s / max(one.images_per_s, 1e-9)
            rows.append({"target": f"images/s, 2 workers vs 1 ({scenario})", "value": value, "limit": 1.0,
                         "at_least": True, "met": value >= 1.0})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-out", help="work directory (sites, stores, logs, JSON)")
    parser.add_argument("--chart", type=Path, default=PROJECT_ROOT / "docs" / "bench-concurrency.png")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight for every tool")
    parser.add_argument("--sweep", default="4,8,16,32,64", help="concurrency values for the chart ('' to skip)")
    parser.add_argument("--delay", type=float, default=0.05, help="latency the proxy adds per response (s)")
    parser.add_argument("--broad-sizes", default=",".join(map(str, broad.SIZES)),
                        help="pages of the broad crawls ('' to skip; python -m bench.broad runs them alone)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each tool on loopback, where the crawls are CPU-bound and the machine's noise "
                             "weighs most: the fastest run of each tool is kept (every run is printed)")
    args = parser.parse_args()
    # A terminated bench still stops its nginx and proxy (the with blocks below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    sites = args.out / "sites"
    print(f"Generating sites under {sites} (cached)...", flush=True)
    large = ensure_site(sites / "large", LARGE, "/large/")
    small = ensure_site(sites / "small", SMALL, "/small/")
    paced = ensure_site(sites / "paced", rate.PACED, "/paced/")
    (sites / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    print(f"large: {len(large['images'])} images, {large['bytes'] / 1e6:.0f} MB, {large['pages']} pages; "
          f"small: {len(small['images'])} images, {small['bytes'] / 1e6:.0f} MB, {small['pages']} pages; "
          f"paced: {len(paced['images'])} images, {paced['bytes'] / 1e6:.1f} MB", flush=True)

    runs: list[Run] = []
    sweep: list[Run] = []
    c = args.concurrency

    def record(run: Run, into: list[Run]) -> None:
        into.append(run)
        print(f"  {run.scenario:<18} {run.tool:<22} c={run.extra.get('concurrency', c):<3} wall {run.wall:6.2f} s  "
              f"CPU {run.cpu:6.2f} s  RSS {run.peak_rss_mb:6.1f} MB  images {run.images}"
              + ("" if run.returncode == 0 else f"  EXIT {run.returncode}"), flush=True)

    with nginx(sites, args.out / "nginx") as port, LatencyProxy(port, args.delay) as proxy:
        direct, slow = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{proxy.port}"
        for scenario, base in ((LOOPBACK, direct), (LATENCY, slow)):
            work = args.out / "runs" / scenario.replace(" ", "").replace(",", "-").replace("+", "")
            fastest: dict[str, Run] = {}
            # The tools take turns, round after round: a slow spell of the machine hits them all.
            for _ in range(max(1, args.rounds) if scenario == LOOPBACK else 1):
                round_runs = [
                    tools.curl([base + u for u in large["images"]], work / "curl", scenario=scenario, concurrency=c),
                    tools.imgscraper(f"{base}/large/", work / "imgscraper", scenario=scenario, concurrency=c),
                    tools.stock_scrapy(f"{base}/large/", work / "stock", scenario=scenario, concurrency=c),
                ]
                # What a second worker (a private Redis, start-up included) brings: on loopback the
                # crawl is CPU-bound, at +50 ms it waits on the network.
                round_runs.append(tools.imgscraper(
                    f"{base}/large/", work / "imgscraper-2w", scenario=scenario, concurrency=c,
                    settings={"IMGSCRAPER_WORKERS": "2"}, label=TWO_WORKERS))
                if scenario == LOOPBACK:
                    # What hashing every image costs (IMGSCRAPER_NEAR_DUPLICATES=mark): CPU ms/img vs imgscraper's.
                    round_runs.append(tools.imgscraper(
                        f"{base}/large/", work / "imgscraper-mark", scenario=scenario, concurrency=c,
                        settings={"IMGSCRAPER_NEAR_DUPLICATES": "mark"}, label=NEAR_DUPLICATES_MARK))
                    # The floor inside Scrapy's architecture: its engine alone over the plain list.
                    round_runs += [
                        tools.bare_scrapy([base + u for u in large["images"]], work / f"bare-{n}", scenario=scenario,
                                          concurrency=c, processes=n)
                        for n in (1, 2)
                    ]
                for run in round_runs:
                    record(run, [])
                    best = fastest.get(run.tool)
                    if best is None or (run.returncode != 0, run.wall) < (best.returncode != 0, best.wall):
                        fastest[run.tool] = run
            runs += fastest.values()
        work = args.out / "runs" / "small-loopback"
        record(tools.imgscraper(f"{direct}/small/", work / "imgscraper", scenario=SMALL_LOOPBACK, concurrency=c), runs)
        # Many workers, one crawl (Redis): one worker, two, and two independent crawls (the ceiling).
        shared = workers.run(direct, args.out / "runs" / "shared", concurrency=c)
        for run in shared:
            record(run, runs)
        # A bandwidth limit: the same 6.8 MB crawl unpaced and at IMGSCRAPER_MAX_RATE=1M.
        for run in rate.run(direct, args.out / "runs" / "rate", concurrency=c):
            record(run, runs)

        for value in [int(v) for v in args.sweep.split(",") if v.strip()]:
            work = args.out / "runs" / f"sweep-{value}"
            for run in (
                tools.curl([slow + u for u in large["images"]], work / "curl", scenario=SWEEP, concurrency=value),
                tools.imgscraper(f"{slow}/large/", work / "imgscraper", scenario=SWEEP, concurrency=value),
            ):
                run.extra["concurrency"] = value
                record(run, sweep)

    broad_sizes = tuple(int(v) for v in args.broad_sizes.split(",") if v.strip())
    broad_runs = broad.run(args.out, sizes=broad_sizes) if broad_sizes else []
    runs += broad_runs
    print()
    print(report.table(runs))
    checks = report.targets(runs, len(large["images"]), LOOPBACK, LATENCY, SMALL_LOOPBACK)
    checks += report.targets_for(runs, TWO_WORKERS, LOOPBACK)
    checks += workers_vs_one(runs, (LOOPBACK, LATENCY))
    checks += workers.targets(shared, len(large["images"]))
    checks += rate.targets(runs, len(paced["images"]))
    checks += broad.targets(broad_runs)
    print()
    print(report.format_targets(checks))
    print()
    print(report.format_floor(runs, LOOPBACK))
    payload = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "concurrency": c,
        "latency_s": args.delay,
        "sites": {name: {k: v for k, v in m.items() if k != "images"} | {"image_count": len(m["images"])}
                  for name, m in (("large", large), ("small", small), ("paced", paced))},
        "runs": runs,
        "sweep": sweep,
        "targets": checks,
    }
    report.write_json(args.out / "bench.json", payload)
    print(f"\nJSON: {args.out / 'bench.json'}")
    if sweep:
        report.chart(args.chart, sweep, f"images/s vs concurrency, +{args.delay * 1000:.0f} ms per response "
                                        f"({len(large['images'])} images, depth 2)")
        print(f"Chart: {args.chart}")


if __name__ == "__main__":
    main()
