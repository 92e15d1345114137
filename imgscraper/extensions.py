"""Extensions: they observe the crawl and never change what it does."""

from __future__ import annotations

import logging

from scrapy import signals
from scrapy.crawler import Crawler

__all__ = ["OneLinePerFailure", "OneLineRobotsErrors"]

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
