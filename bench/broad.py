"""A broad crawl: many pages on many hosts from a URL list, peak memory at two sizes.

``python -m bench.broad`` (``make bench`` runs it too) generates the pages of
:mod:`bench.broadsite` once, serves them with nginx on nine loopback addresses, and crawls the
first 130 and the first 520 pages of the list with

* imgscraper in listing mode (``-a urls_file=FILE -a download=no -O items.jsonl``),
* a bare Scrapy spider (parsel, no pipeline: ``bench/bare_pages_spider.py``),
* imgscraper downloading every image (about 30 per page) into a fresh store.

Targets (issue #26): in listing mode, imgscraper's peak RSS within 1.3 times the bare spider's
over the same pages; downloading, 520 pages within 1.3 times the peak of 130.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench import tools
from bench.broadsite import BROAD, CDN_HOST, ensure_broad_site, page_hosts, url_list, write_pages
from bench.measure import Run
from bench.servers import nginx

__all__ = ["SIZES", "LISTING", "BARE", "DOWNLOADING", "run", "targets"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SIZES = (130, 520)
LISTING, BARE, DOWNLOADING = "imgscraper listing", "bare Scrapy", "imgscraper"
TOOLS = {"listing": LISTING, "bare": BARE, "download": DOWNLOADING}
#: Peak memory: listing against the bare spider, and the larger crawl against the smaller, downloading.
LIMIT = 1.3


def _scenario(pages: int) -> str:
    return f"broad, {pages} pages"


def run(out: Path, *, sizes: tuple[int, ...] = SIZES, which: tuple[str, ...] = tuple(TOOLS),
        settings: dict[str, str] | None = None) -> list[Run]:
    """Crawl the first ``sizes`` pages of the broad site with each of ``which`` (keys of
    :data:`TOOLS`), every run in a fresh directory under ``out``; the load average when each
    run started is in its ``extra["load"]``."""
    root = out / "sites" / "broad"
    manifest = ensure_broad_site(root, BROAD)
    runs: list[Run] = []
    with nginx(root, out / "nginx-broad", addresses=(*page_hosts(BROAD), CDN_HOST)) as port:
        write_pages(root, manifest, port)
        for pages in sizes:
            work = out / "runs" / f"broad-{pages}"
            urls = url_list(manifest, port, pages, work / "urls.txt")
            for key in which:
                load = os.getloadavg()[0]
                if key == "bare":
                    result = tools.bare_pages(urls, work / key, scenario=_scenario(pages))
                else:
                    result = tools.imgscraper_urls(urls, work / key, scenario=_scenario(pages), download=key == "download",
                                                   label=TOOLS[key], settings=settings)
                result.extra.update(pages=pages, load=load)
                runs.append(result)
                print(f"  {result.scenario:<18} {result.tool:<20} wall {result.wall:6.2f} s  CPU {result.cpu:6.2f} s  "
                      f"RSS {result.peak_rss_mb:6.1f} MB  items/images {result.images}  load {load:.2f}"
                      + ("" if result.returncode == 0 else f"  EXIT {result.returncode}"), flush=True)
    return runs


def targets(runs: list[Run]) -> list[dict]:
    """Rows for :func:`bench.report.format_targets`: listing vs bare Scrapy at each size, and
    downloading at the largest size vs the smallest."""
    peak = {(r.tool, r.extra["pages"]): r.peak_rss_mb for r in runs if r.returncode == 0}
    rows = []

    def add(name: str, value: float) -> None:
        rows.append({"target": name, "value": value, "limit": LIMIT, "at_least": False, "met": value <= LIMIT})

    sizes = sorted({pages for _, pages in peak})
    for pages in sizes:
        if (LISTING, pages) in peak and (BARE, pages) in peak:
            add(f"peak RSS, listing vs bare Scrapy, {pages} pages", peak[LISTING, pages] / peak[BARE, pages])
    downloads = [pages for pages in sizes if (DOWNLOADING, pages) in peak]
    if len(downloads) > 1:
        small, large = downloads[0], downloads[-1]
        add(f"peak RSS downloading, {large} vs {small} pages", peak[DOWNLOADING, large] / peak[DOWNLOADING, small])
    return rows


def main() -> None:
    from bench import report  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m bench.broad", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-out", help="work directory")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="pages of each crawl")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"which of {', '.join(TOOLS)}")
    parser.add_argument("-s", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for imgscraper's crawls")
    args = parser.parse_args()
    sizes = tuple(int(n) for n in args.sizes.split(",") if n.strip())
    which = tuple(key.strip() for key in args.tools.split(",") if key.strip())
    settings = dict(item.split("=", 1) for item in args.settings)
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    runs = run(args.out, sizes=sizes, which=which, settings=settings)
    print()
    print(report.table(runs))
    print()
    print(report.format_targets(targets(runs)))
    report.write_json(args.out / "bench-broad.json", {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(), "runs": runs,
        "targets": targets(runs),
    })


if __name__ == "__main__":
    main()
