"""Interpreter tuning for a crawl process (``IMGSCRAPER_GC_THRESHOLD``, ``LOG_LEVEL``)."""

from __future__ import annotations

import gc
import logging

__all__ = ["PER_REQUEST_LOGGERS", "skip_records_below", "tune_garbage_collector"]

#: Loggers that log a DEBUG line per request or per image.
PER_REQUEST_LOGGERS = (
    "scrapy.core.engine", "scrapy.core.scraper", "imgscraper.pipelines.images", "imgscraper.extensions.failurelines",
)


def tune_garbage_collector(threshold: int) -> None:
    """Freeze the objects alive now and run the collector's first generation
    every ``threshold`` allocations instead of Python's 700; 0 changes nothing.

    Reference counting frees almost everything a crawl allocates (requests,
    responses, tasks, items). The cyclic collector still ran every few
    images, and each of its full passes walked every object alive since
    start-up (modules, classes, settings): frozen ones are left out.
    """
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold, 20, 20)  # the older generations half as often as Python


def skip_records_below(level: int | str) -> None:
    """Have the per-request loggers drop records under ``level`` before building them.

    Scrapy filters by ``LOG_LEVEL`` in its log handler, after each record is
    built: a crawl at INFO built and dropped three DEBUG records per image
    ("Crawled", "Scraped from", "Stored"). Under ``DEBUG`` nothing changes.
    """
    number = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if isinstance(number, int) and number > logging.DEBUG:
        for name in PER_REQUEST_LOGGERS:
            logging.getLogger(name).setLevel(number)
