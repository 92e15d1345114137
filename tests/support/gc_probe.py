"""A test-only Scrapy extension: the garbage collector's state and the per-request loggers' levels in a crawl process.

Enabled with ``PYTHONPATH=tests``, ``-s EXTENSIONS={"gc_probe.GCProbe": 0}`` and the
environment variable ``GC_PROBE_FILE``; when the spider closes it writes
``{"threshold": [...], "frozen": N, "levels": {logger: level}}`` to that file.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from pathlib import Path

from scrapy import signals
from scrapy.crawler import Crawler

from imgscraper.runtime import PER_REQUEST_LOGGERS


class GCProbe:
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> GCProbe:
        probe = cls()
        crawler.signals.connect(probe.spider_closed, signal=signals.spider_closed)
        return probe

    def spider_closed(self) -> None:
        state = {
            "threshold": list(gc.get_threshold()),
            "frozen": gc.get_freeze_count(),
            "levels": {name: logging.getLogger(name).level for name in PER_REQUEST_LOGGERS},
        }
        Path(os.environ["GC_PROBE_FILE"]).write_text(json.dumps(state))
