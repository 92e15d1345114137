"""Extensions: they observe the crawl and never change what it does."""

from __future__ import annotations

import logging
from collections import Counter
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

__all__ = ["FewLinesPerFailureHost", "OneLinePerFailure", "OneLineRobotsErrors"]

logger = logging.getLogger(__name__)

ROBOTSTXT_LOGGER = "scrapy.downloadermiddlewares.robotstxt"


class OneLineRobotsErrors(logging.Filter):
    """Log an unreachable robots.txt as one WARNING line, without a traceback.

    Scrapy logs it as an ERROR with a full traceback; the request it guarded
    then fails on its own and the spider or pipeline reports that, so one line
    is enough here.
    """

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OneLineRobotsErrors:
        extension = cls()
        logging.getLogger(ROBOTSTXT_LOGGER).addFilter(extension)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.levelno >= logging.ERROR:
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "Cannot fetch robots.txt for %(request)s: %(f_exception)s"
        return True

    def spider_closed(self) -> None:
        logging.getLogger(ROBOTSTXT_LOGGER).removeFilter(self)


class OneLinePerFailure(logging.Filter):
    """Demote to DEBUG Scrapy's warnings about a response it then fails.

    A response over ``DOWNLOAD_MAXSIZE`` (announced, streamed or once
    decompressed) or cut short (data loss) makes Scrapy log a WARNING, then
    fail the request, which the pipeline (image) or the spider (page) logs
    in one line with its reason. This keeps that one line.
    """

    LOGGERS = (
        "scrapy.core.downloader.handlers.http11",
        "scrapy.downloadermiddlewares.httpcompression",
    )
    MESSAGES = ("larger than download max size", "Got data loss", "exceeded DOWNLOAD_MAXSIZE")

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OneLinePerFailure:
        extension = cls()
        for name in cls.LOGGERS:
            logging.getLogger(name).addFilter(extension)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and any(text in record.getMessage() for text in self.MESSAGES):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True

    def spider_closed(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)


class FewLinesPerFailureHost(logging.Filter):
    """Log the first few failures of each reason and host; count the rest, in one line at the end.

    The pipeline (``Image failed (http-404): URL``) and the spider (``Cannot
    fetch page URL``) log one WARNING per failure, with ``reason`` and ``url``
    in the record's arguments. Past ``IMGSCRAPER_FAILURE_LINES`` of them for
    one reason and host, the others are dropped and counted, and when the
    crawl ends one WARNING per (reason, host) says how many: ``... and 93 more
    http-404 from example.com``. Failures of :attr:`COUNTED_ONLY` reasons are
    never logged one by one. Items and stats keep every failure.
    """

    #: The loggers of failure lines, and what fails in each.
    LOGGERS = {"imgscraper.pipelines.images": "image", "imgscraper.spiders.images": "page"}
    #: Reasons a line of their own announced: ``host-unreachable`` (imgscraper.downloadermiddlewares.unreachablehosts).
    COUNTED_ONLY = frozenset({"host-unreachable"})

    def __init__(self, lines: int):
        super().__init__()
        self.lines = lines
        self.logged: Counter[tuple[str, str]] = Counter()
        self.dropped: Counter[tuple[str, str, str]] = Counter()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FewLinesPerFailureHost:
        lines = crawler.settings.getint("IMGSCRAPER_FAILURE_LINES")
        if lines <= 0:
            raise NotConfigured
        extension = cls(lines)
        for name in cls.LOGGERS:
            logging.getLogger(name).addFilter(extension)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.levelno != logging.WARNING or not isinstance(args, dict) or "reason" not in args or "url" not in args:
            return True
        key = (args["reason"], self.host(str(args["url"])))
        if key[0] not in self.COUNTED_ONLY and self.logged[key] < self.lines:
            self.logged[key] += 1
            return True
        self.dropped[(*key, self.LOGGERS[record.name])] += 1
        return False

    @staticmethod
    def host(url: str) -> str:
        """The host (and port) of ``url``; ``data:`` for a data URI."""
        parts = urlsplit(url)
        return parts.netloc.rpartition("@")[2].lower() or f"{parts.scheme}:"

    def summary(self) -> list[str]:
        """One line per (reason, host) with failures not logged, most first."""
        by_key: dict[tuple[str, str], Counter[str]] = {}
        for (reason, host, what), count in self.dropped.items():
            by_key.setdefault((reason, host), Counter())[what] += count
        lines = []
        for (reason, host), counts in sorted(by_key.items(), key=lambda kv: (-kv[1].total(), kv[0])):
            if self.logged[(reason, host)]:
                lines.append(f"... and {counts.total()} more {reason} from {host}")
            else:
                what = " and ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(counts.items()))
                lines.append(f"{what} failed as {reason} from {host}")
        return lines

    def spider_closed(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)
        for line in self.summary():
            logger.warning(line)

