"""``python -m bench.recrawl``: what a re-crawl costs, measured on the server's side.

Crawls the bench site three times into one store and reports, per run, the
requests the server answered (by status), the body bytes it sent and the wall
time:

1. ``first``: an empty store;
2. ``second``: the site unchanged, images younger than ``IMGSCRAPER_EXPIRES``
   (the default: 90 days): no image should be requested;
3. ``revalidate``: ``IMGSCRAPER_EXPIRES=0``: every stored image is revalidated
   with a conditional request and should cost a 304, not its bytes.

The site is served by the tests' recording HTTP server (``tests/support/httpserver.py``),
which counts every request and byte, optionally with a latency per response.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.site import LARGE, SMALL, ensure_site
from tests.support.httpserver import HTTPTestServer

PROJECT_ROOT = Path(__file__).resolve().parent.parent

RUNS = (("first", {}), ("second", {}), ("revalidate", {"IMGSCRAPER_EXPIRES": "0"}))


def crawl(url: str, store: Path, items: Path, settings: dict[str, str], concurrency: int) -> float:
    command = [sys.executable, "-m", "scrapy", "crawl", "images", "-a", f"url={url}", "-a", "depth=2",
               "-s", f"IMAGES_STORE={store}", "-s", "LOG_LEVEL=WARNING", "-O", str(items),
               "-s", f"CONCURRENT_REQUESTS={concurrency}", "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={concurrency}"]
    for name, value in settings.items():
        command += ["-s", f"{name}={value}"]
    started = time.monotonic()
    subprocess.run(command, cwd=PROJECT_ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.recrawl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-out" / "recrawl")
    parser.add_argument("--site", choices=("small", "large"), default="large")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the server waits before each response")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("-s", "--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a Scrapy setting for every run")
    args = parser.parse_args()
    common = dict(s.split("=", 1) for s in args.set)

    spec = LARGE if args.site == "large" else SMALL
    site = ensure_site(args.out.parent / "sites" / f"recrawl-{spec.name}", spec, "/")
    store = args.out / "store"
    shutil.rmtree(store, ignore_errors=True)
    results = []
    with HTTPTestServer(args.out.parent / "sites" / f"recrawl-{spec.name}", latency=args.latency) as server:
        (server.root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
        for name, settings in RUNS:
            server.log.clear()
            items = args.out / f"{name}.jsonl"
            wall = crawl(server.url, store, items, {**common, **settings}, args.concurrency)
            server.log.wait_idle()
            log = server.log.snapshot()
            images = [r for r in log if r.url_path.startswith("/img/")]
            statuses = collections.Counter(i["status"] for i in map(json.loads, items.read_text().splitlines()))
            results.append({
                "run": name, "wall_s": round(wall, 2), "requests": len(log), "image_requests": len(images),
                "image_status": dict(collections.Counter(r.status for r in images)),
                "bytes_sent": sum(r.bytes_sent for r in log), "image_bytes_sent": sum(r.bytes_sent for r in images),
                "items": dict(statuses),
            })
            r = results[-1]
            print(f"{name:<10} wall {r['wall_s']:6.2f} s  requests {r['requests']:5d} (images {r['image_requests']:5d}"
                  f" {r['image_status']})  bytes {r['bytes_sent']:>11,d} (images {r['image_bytes_sent']:>11,d})"
                  f"  items {r['items']}", flush=True)
    summary = {"site": spec.__dict__, "images": len(site["images"]), "site_bytes": site["bytes"],
               "latency_s": args.latency, "concurrency": args.concurrency, "settings": common, "runs": results}
    (args.out / "recrawl.json").write_text(json.dumps(summary, indent=2))
    print(f"{len(site['images'])} images, {site['bytes']:,d} bytes; written {args.out / 'recrawl.json'}")


if __name__ == "__main__":
    main()
