"""Extensions: they observe the crawl and never change what it does."""

from __future__ import annotations

import logging

from scrapy import signals
from scrapy.crawler import Crawler

__all__ = ["OneLineRobotsErrors"]

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
