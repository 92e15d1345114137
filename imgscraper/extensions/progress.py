"""Progress while crawling: a live display on a terminal, a stats line elsewhere.

:class:`CrawlProgress` is an extension. When standard error is a terminal
(and ``IMGSCRAPER_PROGRESS`` is on) it draws a live display with rich at the
bottom of the terminal, redrawn 4 times a second: pages crawled and queued,
images found, stored, up to date, skipped and failed, bytes stored, images/s.
Log lines keep scrolling above it, each printed whole: the terminal folds a
line wider than itself on screen, but no newline is added (a URL copied from
it stays one). When standard error is not a terminal
(Scrapyd, cron, CI, a pipe) nothing is drawn; instead one compact ``INFO``
line with the same numbers is logged every ``IMGSCRAPER_PROGRESS_INTERVAL``
seconds. Every number comes from the crawl's stats.
"""

from __future__ import annotations

import atexit
import io
import logging
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import create_looping_call

from imgscraper.extensions.summary import CrawlCounts, format_bytes

__all__ = ["CrawlProgress", "ProgressSnapshot"]

logger = logging.getLogger(__name__)

#: Seconds between redraws of the live display.
REFRESH = 0.25
#: The live images/s is measured over this many seconds.
RATE_WINDOW = 5.0


@dataclass
class ProgressSnapshot:
    """The numbers shown at one moment."""

    counts: CrawlCounts
    queued: int
    downloading: int
    elapsed: float
    rate: float

    def line(self) -> str:
        """The compact one-line form, for logs."""
        c = self.counts
        return (
            f"Progress: {c.pages} pages crawled, {self.queued} queued; images {c.found} found,"
            f" {c.downloaded} stored, {c.uptodate} up to date, {c.skipped} skipped, {c.failed} failed;"
            f" {format_bytes(c.bytes_stored)} stored; {self.rate:.1f} images/s"
        )

    def renderable(self, spinner: Spinner) -> Group:
        """The live display: two lines with a spinner and a bar of images done out of found."""
        c = self.counts
        minutes, seconds = divmod(int(self.elapsed), 60)
        head = Table.grid(padding=(0, 1))
        head.add_row(
            spinner,
            Text.assemble(
                ("pages ", "bold"), (f"{c.pages}", "bold cyan"), " crawled, ",
                (f"{self.queued}", "cyan"), " queued  ",
                ("downloading ", "bold"), f"{self.downloading}  ",
                ("elapsed ", "bold"), f"{minutes}:{seconds:02d}",
            ),
        )
        images = Table.grid(padding=(0, 1))
        images.add_row(
            ProgressBar(total=max(c.found, 1), completed=c.done, width=24),
            Text.assemble(
                ("images ", "bold"), (f"{c.done}/{c.found}", "bold cyan"), ": ",
                (f"{c.downloaded}", "green"), " stored, ",
                (f"{c.uptodate}", "blue"), " up to date, ",
                (f"{c.skipped}", "yellow"), " skipped, ",
                (f"{c.failed}", "red" if c.failed else ""), " failed  ",
                (format_bytes(c.bytes_stored), "bold"), "  ",
                (f"{self.rate:.1f}", "bold"), " images/s",
            ),
        )
        return Group(head, images)


class LogAboveDisplay(io.TextIOBase):
    """The log handler's stream while the live display is drawn: each line is printed above
    the display as it is. Rich's own redirection of stderr word-wraps at the terminal's width,
    splitting a long URL with newlines."""

    def __init__(self, console: Console):
        self.console = console
        self.partial = ""

    def write(self, text: str) -> int:
        *lines, self.partial = (self.partial + text).split("\n")
        if lines:
            self.console.print(Text("\n".join(lines)), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        if self.partial:
            self.console.print(Text(self.partial), soft_wrap=True)
            self.partial = ""


class CrawlProgress:
    """Show the crawl's progress (see the module docstring)."""

    def __init__(self, crawler: Crawler, live: bool, interval: float):
        self.crawler = crawler
        self.interval = REFRESH if live else interval
        self.live: Live | None = None
        self.draw = live
        self.started = time.monotonic()
        self.samples: deque[tuple[float, int]] = deque()
        self.task: Any = None
        self.spinner = Spinner("dots", style="cyan")
        self.redirected: list[tuple[logging.StreamHandler[Any], IO[str]]] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlProgress:
        settings = crawler.settings
        live = settings.getbool("IMGSCRAPER_PROGRESS") and sys.stderr.isatty()
        interval = settings.getfloat("IMGSCRAPER_PROGRESS_INTERVAL")
        if not live and interval <= 0:
            raise NotConfigured
        extension = cls(crawler, live, interval)
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self) -> None:
        self.started = time.monotonic()
        if self.draw:
            self.start_live()
        self.task = create_looping_call(self.tick)
        self.task.start(self.interval, now=False)

    def spider_closed(self) -> None:
        if self.task is not None and self.task.running:
            self.task.stop()
        self.stop_live()

    def snapshot(self) -> ProgressSnapshot:
        """The numbers now, with images/s over the last few seconds."""
        now = time.monotonic()
        counts = CrawlCounts.from_stats(self.crawler.stats.get_stats())
        self.samples.append((now, counts.done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW:
            self.samples.popleft()
        (first_time, first_done) = self.samples[0] if len(self.samples) > 1 else (self.started, 0)
        rate = (counts.done - first_done) / (now - first_time) if now > first_time else 0.0
        engine = self.crawler.engine
        try:
            queued = len(engine.scheduler) if engine.scheduler is not None else 0  # type: ignore[arg-type]
        except TypeError:  # a scheduler that cannot count
            queued = 0
        downloading = sum(len(slot.transferring) for slot in engine.downloader.slots.values())
        return ProgressSnapshot(counts, queued, downloading, now - self.started, rate)

    def tick(self) -> None:
        snapshot = self.snapshot()
        if self.live is not None:
            self.live.update(snapshot.renderable(self.spinner), refresh=True)
        else:
            logger.info(snapshot.line())

    # -- the live display -------------------------------------------------

    def start_live(self) -> None:
        """Draw at the bottom of the terminal; route log lines above the display."""
        console = Console(stderr=True)
        self.live = Live(console=console, auto_refresh=False, transient=True, redirect_stdout=True, redirect_stderr=True)
        original = sys.stderr
        self.live.start()
        atexit.register(self.stop_live)  # a forced shutdown (second Ctrl-C) skips spider_closed
        # Scrapy's log handler holds the stream it was created with; point it
        # at one that prints each log line above the display.
        for handler in logging.root.handlers:
            if type(handler) is logging.StreamHandler and handler.stream is original:
                self.redirected.append((handler, handler.setStream(LogAboveDisplay(console))))

    def stop_live(self) -> None:
        for handler, stream in self.redirected:
            handler.flush()
            handler.setStream(stream)
        self.redirected.clear()
        if self.live is not None:
            self.live.stop()
            self.live = None
            atexit.unregister(self.stop_live)
