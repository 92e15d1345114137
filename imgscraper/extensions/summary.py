"""The closing summary: what the crawl did, as a short table in the log.

:class:`CrawlSummary` is an extension: at the end of every crawl that got
going it logs one ``INFO`` message holding a table (pages, images found,
stored, up to date, skipped and failed by reason, originals, bytes, a limit that
stopped it, duration, images/s) and puts the duration and rate in the stats too
(``imgscraper/duration_seconds``, ``imgscraper/images_per_second``). Every
number comes from the stats the spider and the pipeline keep. A crawl
without item pipelines (``-a download=no``) lists images: its table counts
the images listed instead of stored ones.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.statscollectors import StatsCollector

__all__ = ["CrawlCounts", "CrawlSummary", "format_bytes", "summary_table"]

logger = logging.getLogger(__name__)

#: Finish reasons of crawls that never started: their error line says it all.
NOT_STARTED = ("bad_argument", "bad_setting")


def format_bytes(size: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@dataclass
class CrawlCounts:
    """The crawl's counters, read from the stats (``imgscraper/...``)."""

    pages: int = 0
    found: int = 0
    downloaded: int = 0
    uptodate: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_stored: int = 0
    #: ``IMGSCRAPER_MAX_IMAGES`` when the crawl stopped there, else 0.
    max_images: int = 0
    #: Originals stored instead of thumbnails (``originals=yes``), and thumbnails stored when the original failed.
    originals: int = 0
    originals_failed: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    pages_failed_by_reason: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_stats(cls, stats: dict[str, Any]) -> CrawlCounts:
        counts = cls(
            pages=stats.get("imgscraper/pages", 0),
            found=stats.get("imgscraper/images/found", 0),
            downloaded=stats.get("imgscraper/images/downloaded", 0),
            uptodate=stats.get("imgscraper/images/uptodate", 0),
            skipped=stats.get("imgscraper/images/skipped", 0),
            failed=stats.get("imgscraper/images/failed", 0),
            bytes_stored=stats.get("imgscraper/bytes_stored", 0),
            max_images=stats.get("imgscraper/max_images_reached", 0),
            originals=stats.get("imgscraper/originals/stored", 0),
            originals_failed=stats.get("imgscraper/originals/fallback", 0),
        )
        prefixes = (
            ("imgscraper/images/skipped/", counts.skipped_by_reason),
            ("imgscraper/images/failed/", counts.failed_by_reason),
            ("imgscraper/pages_failed/", counts.pages_failed_by_reason),
        )
        for key, value in stats.items():
            for prefix, by_reason in prefixes:
                if key.startswith(prefix):
                    by_reason[key[len(prefix):]] = value
        return counts

    @property
    def done(self) -> int:
        """Images the pipeline has finished with, whatever the outcome."""
        return self.downloaded + self.uptodate + self.skipped + self.failed

    @property
    def listed(self) -> int:
        """Images found that got no other status: in a crawl without item pipelines, the images listed."""
        return max(self.found - self.done, 0)


def summary_table(counts: CrawlCounts, duration: float, listing: bool = False) -> Table:
    """The closing summary as a rich :class:`~rich.table.Table`; ``listing``: of a crawl that
    lists images (no item pipelines), which stores none."""
    rate = (counts.listed if listing else counts.done) / duration if duration > 0 else 0.0
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2))
    table.add_column("what", justify="left")
    table.add_column("reason", justify="left")
    table.add_column("count", justify="right")
    table.add_row("pages crawled", "", str(counts.pages))
    if counts.pages_failed_by_reason:
        table.add_row("pages failed", "", str(sum(counts.pages_failed_by_reason.values())))
        for reason_name, n in sorted(counts.pages_failed_by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row("", reason_name, str(n))
    table.add_row("images found", "", str(counts.found))
    if listing:
        table.add_row("listed", "", str(counts.listed))
    else:
        table.add_row("stored", "", str(counts.downloaded))
        table.add_row("up to date", "", str(counts.uptodate))
    for status, total, by_reason in (
        ("skipped", counts.skipped, counts.skipped_by_reason),
        ("failed", counts.failed, counts.failed_by_reason),
    ):
        if listing and not total:
            continue  # what listing can leave out: skipped by the URL filters
        table.add_row(status, "", str(total))
        for reason_name, n in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row("", reason_name, str(n))
    if counts.originals or counts.originals_failed:
        table.add_row("originals stored", "", str(counts.originals))
        table.add_row("thumbnails instead", "", str(counts.originals_failed))
    if not listing:
        table.add_row("bytes stored", "", format_bytes(counts.bytes_stored))
    if counts.max_images:
        table.add_row("stopped at", "max_images", str(counts.max_images))
    table.add_row("duration", "", f"{duration:.1f} s")
    table.add_row("images/s", "", f"{rate:.1f}")
    return table


def render_plain(table: Table, width: int = 80) -> str:
    """``table`` as plain text (no colours), for the log."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(table)
    return "\n".join(f"  {line}".rstrip() for line in console.file.getvalue().splitlines())


class CrawlSummary:
    """Log the closing summary table (see the module docstring)."""

    def __init__(self, stats: StatsCollector, listing: bool = False):
        self.stats = stats
        self.listing = listing
        self.started = time.monotonic()
        self.table: Table | None = None
        self.reason = ""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlSummary:
        # The spider is built first: with -a download=no it has left the item pipelines out.
        extension = cls(crawler.stats, listing=not crawler.settings.getdict("ITEM_PIPELINES"))
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(extension.engine_stopped, signal=signals.engine_stopped)
        return extension

    def spider_opened(self) -> None:
        self.started = time.monotonic()

    def spider_closed(self, reason: str) -> None:
        """Put the duration and rate in the stats before Scrapy dumps them."""
        duration = time.monotonic() - self.started
        counts = CrawlCounts.from_stats(self.stats.get_stats())
        processed = counts.listed if self.listing else counts.done
        self.stats.set_value("imgscraper/duration_seconds", round(duration, 3))
        self.stats.set_value("imgscraper/images_per_second", round(processed / duration, 2) if duration else 0.0)
        if reason not in NOT_STARTED:
            self.table, self.reason = summary_table(counts, duration, self.listing), reason

    def engine_stopped(self) -> None:
        """Log the table last, below Scrapy's stats dump, where a reader looks."""
        if self.table is not None:
            logger.info("Crawl summary (%s):\n%s", self.reason, render_plain(self.table))
