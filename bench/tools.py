"""One function per measured tool: each runs it once and returns a :class:`~bench.measure.Run`.

Every tool gets the same parallelism (``concurrency`` requests in flight,
all to the one host of the site).
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from bench.measure import Run, run_measured, store_stats

__all__ = ["imgscraper", "imgscraper_urls", "stock_scrapy", "bare_scrapy", "bare_pages", "curl"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _fresh(directory: Path) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def imgscraper(start_url: str, work: Path, *, scenario: str, concurrency: int = 16,
               settings: dict[str, str] | None = None, label: str = "imgscraper") -> Run:
    """``scrapy crawl images -a url=START -a depth=2`` with the project's settings (and ``settings``)."""
    store = _fresh(work / "store")
    command = [sys.executable, "-m", "scrapy", "crawl", "images", "-a", f"url={start_url}", "-a", "depth=2",
               "-s", f"IMAGES_STORE={store}",
               "-s", f"CONCURRENT_REQUESTS={concurrency}", "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={concurrency}"]
    for name, value in (settings or {}).items():
        command += ["-s", f"{name}={value}"]
    # The crawl may start worker processes and a redis-server (IMGSCRAPER_WORKERS): the whole tree.
    wall, cpu, rss, rc = run_measured(command, cwd=PROJECT_ROOT, log=work / "crawl.log", tree=True)
    images, size = store_stats(store / "full")  # not the gallery nor the record
    return Run(label, scenario, wall, cpu, rss, images, size, rc, command)


def imgscraper_urls(urls_file: Path, work: Path, *, scenario: str, download: bool, label: str = "imgscraper",
                    settings: dict[str, str] | None = None) -> Run:
    """``scrapy crawl images -a urls_file=FILE`` (``-a download=no`` unless ``download``), the project's
    settings (and ``settings``), items to a JSON-lines feed: a broad crawl of the listed pages."""
    store = _fresh(work / "store")
    command = [sys.executable, "-m", "scrapy", "crawl", "images", "-a", f"urls_file={urls_file}",
               "-a", f"download={'yes' if download else 'no'}", "-s", f"IMAGES_STORE={store}",
               "-O", str(work / "items.jsonl")]
    for name, value in (settings or {}).items():
        command += ["-s", f"{name}={value}"]
    wall, cpu, rss, rc = run_measured(command, cwd=PROJECT_ROOT, log=work / "crawl.log")
    images, size = store_stats(store / "full")
    if not download:
        with open(work / "items.jsonl", "rb") as items:
            images = sum(1 for _ in items)
    return Run(label, scenario, wall, cpu, rss, images, size, rc, command)


def stock_scrapy(start_url: str, work: Path, *, scenario: str, concurrency: int = 16) -> Run:
    """Scrapy's ``ImagesPipeline`` with an ``img::attr(src)`` spider, stock settings."""
    store = _fresh(work / "store")
    spider = Path(__file__).resolve().parent / "stock_spider.py"
    command = [sys.executable, "-m", "scrapy", "runspider", str(spider), "-a", f"url={start_url}",
               "-s", f"IMAGES_STORE={store}", "-s", "LOG_LEVEL=INFO",
               "-s", f"CONCURRENT_REQUESTS={concurrency}", "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={concurrency}"]
    # Outside the project (no scrapy.cfg above the working directory).
    with tempfile.TemporaryDirectory(prefix="stock-scrapy-") as cwd:
        wall, cpu, rss, rc = run_measured(command, cwd=Path(cwd), log=work / "crawl.log")
    images, size = store_stats(store / "full")
    return Run("stock ImagesPipeline", scenario, wall, cpu, rss, images, size, rc, command)


def bare_scrapy(image_urls: list[str], work: Path, *, scenario: str, concurrency: int = 16,
                processes: int = 1) -> Run:
    """Scrapy's engine and downloader alone over the plain image list (``bench/bare_spider.py``):
    ``processes`` crawls at once, each with its share of the list and of ``concurrency``."""
    out = _fresh(work / "store")
    urls = work / "urls.json"
    urls.write_text(json.dumps(image_urls))
    spider = Path(__file__).resolve().parent / "bare_spider.py"
    share = max(1, concurrency // processes)
    crawls = [
        shlex.join([sys.executable, "-m", "scrapy", "runspider", str(spider), "-a", f"urls={urls}", "-a", f"out={out}",
                    "-a", f"part={part}", "-a", f"parts={processes}",
                    "-s", "LOG_LEVEL=INFO", "-s", f"CONCURRENT_REQUESTS={share}",
                    "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={share}"])
        for part in range(processes)
    ]
    # One shell starts them all: wait4() on it counts every crawl's CPU; it fails if one does.
    script = "".join(f"{crawl} & pids=\"$pids $!\"; " for crawl in crawls)
    script += "rc=0; for pid in $pids; do wait $pid || rc=1; done; exit $rc"
    command = ["sh", "-c", script]
    with tempfile.TemporaryDirectory(prefix="bare-scrapy-") as cwd:
        wall, cpu, rss, rc = run_measured(command, cwd=Path(cwd), log=work / "crawl.log", tree=True)
    images, size = store_stats(out)
    label = "bare Scrapy" if processes == 1 else f"bare Scrapy {processes} proc."
    return Run(label, scenario, wall, cpu, rss, images, size, rc, command)


def bare_pages(urls_file: Path, work: Path, *, scenario: str, concurrency: int = 16, per_host: int = 8) -> Run:
    """A bare Scrapy spider over the listed pages (``bench/bare_pages_spider.py``): parsel, no pipeline,
    items to a JSON-lines feed; ``images`` counts its items (image references)."""
    _fresh(work)
    spider = Path(__file__).resolve().parent / "bare_pages_spider.py"
    items = work / "items.jsonl"
    command = [sys.executable, "-m", "scrapy", "runspider", str(spider), "-a", f"urls_file={urls_file}",
               "-O", str(items), "-s", "LOG_LEVEL=INFO",
               "-s", f"CONCURRENT_REQUESTS={concurrency}", "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={per_host}"]
    with tempfile.TemporaryDirectory(prefix="bare-pages-") as cwd:
        wall, cpu, rss, rc = run_measured(command, cwd=Path(cwd), log=work / "crawl.log")
    with open(items, "rb") as found:
        count = sum(1 for _ in found)
    return Run("bare Scrapy", scenario, wall, cpu, rss, count, 0, rc, command)


def curl(image_urls: list[str], work: Path, *, scenario: str, concurrency: int = 16) -> Run:
    """``curl --parallel --parallel-max N`` over the plain list of image URLs (the ceiling)."""
    out = _fresh(work / "store")
    config = work / "curl.cfg"
    config.write_text("".join(f'url = "{url}"\noutput = "{out}/{n}"\n' for n, url in enumerate(image_urls)))
    binary = shutil.which("curl") or "curl"
    command = [binary, "--parallel", "--parallel-max", str(concurrency), "--silent", "--show-error", "--fail",
               "--config", str(config)]
    wall, cpu, rss, rc = run_measured(command, cwd=work, log=work / "curl.log")
    images, size = store_stats(out)
    return Run("curl --parallel", scenario, wall, cpu, rss, images, size, rc, command)
