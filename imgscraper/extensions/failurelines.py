"""Extensions that keep the log readable: one line per failure, a few per reason and host."""

from __future__ import annotations

import logging
from collections import Counter

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request

from imgscraper import signals as imgscraper_signals
from imgscraper.discovery.sitemaps import robots_txt_url
from imgscraper.utils import host_label, host_port_of

__all__ = ["FewLinesPerFailureHost", "OneLinePerFailure", "OneLineRobotsErrors"]

logger = logging.getLogger(__name__)

ROBOTSTXT_LOGGER = "scrapy.downloadermiddlewares.robotstxt"


class OneLineRobotsErrors(logging.Filter):
    """Log an unreachable robots.txt as one WARNING line naming it, without a traceback; nothing
    for a host already reported down (:data:`imgscraper.signals.host_down`).

    Scrapy logs it as an ERROR with a full traceback, naming the request it
    guarded; that request then fails on its own and the spider or pipeline
    reports it, so one line is enough here.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hosts_down: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OneLineRobotsErrors:
        extension = cls()
        logging.getLogger(ROBOTSTXT_LOGGER).addFilter(extension)
        crawler.signals.connect(extension.host_down, signal=imgscraper_signals.host_down)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def host_down(self, host: str) -> None:
        self.hosts_down.add(host)

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.exc_info and record.levelno >= logging.ERROR and isinstance(record.args, dict)):
            return True
        request = record.args.get("request")
        if isinstance(request, Request):
            host = host_port_of(request)
            if host and host_label(host) in self.hosts_down:
                return False
            record.args = {**record.args, "robots": robots_txt_url(request.url)}
            record.msg = "Cannot fetch %(robots)s: %(f_exception)s"
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True

    def spider_closed(self) -> None:
        logging.getLogger(ROBOTSTXT_LOGGER).removeFilter(self)


class OneLinePerFailure(logging.Filter):
    """Demote to DEBUG Scrapy's warnings about a response it then fails.

    A response over ``DOWNLOAD_MAXSIZE`` (announced, streamed or once
    decompressed) or cut short (data loss) makes Scrapy log a WARNING, then
    fail the request, whose failure then gets one line with its reason
    (:class:`FewLinesPerFailureHost`). This keeps that one line.
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


class FewLinesPerFailureHost:
    """Log a line per failed image and page: the first few of each reason and host, then one line
    at the end that counts the rest.

    It listens to :data:`imgscraper.signals.image_failed` (``Image failed (http-404): URL - detail``,
    a WARNING; a skipped image is a DEBUG line) and :data:`imgscraper.signals.page_failed`
    (``Cannot fetch page URL: detail``, a WARNING; the spider logs a start page itself). Past
    ``IMGSCRAPER_FAILURE_LINES`` failures of one reason and host, the others are counted, and
    when the crawl ends one WARNING per (reason, host) says how many: ``... and 93 more http-404
    from example.com``. Failures of :attr:`COUNTED_ONLY` reasons are only counted.
    ``IMGSCRAPER_FAILURE_LINES=0``: a line for every failure. Items and stats keep every failure.
    """

    #: Reasons a line of their own announced: ``host-unreachable`` (imgscraper.downloadermiddlewares.unreachablehosts).
    COUNTED_ONLY = frozenset({"host-unreachable"})
    #: Skips worth a WARNING: an item with a URL the pipeline never fetches came from outside the spider.
    WARNED_SKIPS = frozenset({"unsupported-scheme"})

    def __init__(self, lines: int):
        self.lines = lines
        self.logged: Counter[tuple[str, str]] = Counter()
        self.dropped: Counter[tuple[str, str, str]] = Counter()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FewLinesPerFailureHost:
        if not crawler.settings.getbool("IMGSCRAPER_LOG_FAILURES", True):
            raise NotConfigured
        extension = cls(crawler.settings.getint("IMGSCRAPER_FAILURE_LINES"))
        crawler.signals.connect(extension.image_failed, signal=imgscraper_signals.image_failed)
        crawler.signals.connect(extension.page_failed, signal=imgscraper_signals.page_failed)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def image_failed(self, url: str, status: str, reason: str, detail: str = "") -> None:
        args = {"status": status, "reason": reason, "url": url[:300], "detail": f" - {detail}" if detail else ""}
        if status == "skipped":
            level = logging.WARNING if reason in self.WARNED_SKIPS else logging.DEBUG
            logger.log(level, "Image %(status)s (%(reason)s): %(url)s%(detail)s", args)
        elif self.shown(reason, url, "image"):
            logger.warning("Image %(status)s (%(reason)s): %(url)s%(detail)s", args)

    def page_failed(self, url: str, reason: str, detail: str, start_page: bool = False) -> None:
        if not start_page and self.shown(reason, url, "page"):
            logger.warning("Cannot fetch page %(url)s: %(detail)s", {"url": url, "detail": detail})

    def shown(self, reason: str, url: str, what: str) -> bool:
        """Whether the failure of ``what`` (``image`` or ``page``) at ``url`` gets its own line; else it is counted."""
        if self.lines <= 0:
            return True
        key = (reason, self.host(url))
        if key[0] not in self.COUNTED_ONLY and self.logged[key] < self.lines:
            self.logged[key] += 1
            return True
        self.dropped[(*key, what)] += 1
        return False

    @staticmethod
    def host(url: str) -> str:
        """The host of ``url`` (and its port, if not the default); ``data:`` for a data URI."""
        host = host_port_of(url)
        return host_label(host) if host else f"{url.partition(':')[0].lower()}:"

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
        for line in self.summary():
            logger.warning(line)
