"""One function per measured tool: each runs it once and returns a :class:`~bench.measure.Run`.

Every tool gets the same parallelism (``concurrency`` requests in flight,
all to the one host of the site).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from bench.measure import Run, run_measured, store_stats

__all__ = ["imgscraper", "stock_scrapy", "curl"]

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
    # The crawl may fork worker processes (IMGSCRAPER_PROCESSES): the memory of the whole tree.
    wall, cpu, rss, rc = run_measured(command, cwd=PROJECT_ROOT, log=work / "crawl.log", tree=True)
    images, size = store_stats(store / "full")  # not the gallery nor the record
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
