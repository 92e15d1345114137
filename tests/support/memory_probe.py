"""A test-only Scrapy extension: what a crawl process holds after N pages.

Enabled with ``-s EXTENSIONS={"tests.support.memory_probe.MemoryProbe": 0}`` and the environment
variables ``MEMORY_PROBE_FILE`` (where to write) and ``MEMORY_PROBE_PAGES`` (when to look, e.g.
``50,200``: after the 50th and the 200th page response). It starts :mod:`tracemalloc` when the
crawler is built and, at each of those pages, without collecting anything first (garbage the
collector has not freed yet is memory the crawl holds), notes:

- ``live``: the instances alive of each class Scrapy tracks (``scrapy.utils.trackref``:
  requests, responses, selectors, items), by class name;
- ``objects``: the number of objects the garbage collector tracks (``gc.get_objects()``);
- ``traced``: the bytes :mod:`tracemalloc` counts as allocated and not freed.

When the spider closes it writes ``[{"pages": N, "live": {...}, "objects": N, "traced": N}, ...]``
to ``MEMORY_PROBE_FILE``.
"""

from __future__ import annotations

import gc
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.http import Request, Response
from scrapy.utils.trackref import live_refs


class MemoryProbe:
    def __init__(self, at: set[int]):
        self.at = at
        self.pages = 0
        self.samples: list[dict[str, Any]] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MemoryProbe:
        probe = cls({int(n) for n in os.environ["MEMORY_PROBE_PAGES"].split(",")})
        crawler.signals.connect(probe.response_received, signal=signals.response_received)
        crawler.signals.connect(probe.spider_closed, signal=signals.spider_closed)
        tracemalloc.start()
        return probe

    def response_received(self, response: Response, request: Request) -> None:
        if "imgscraper_page" not in request.meta:
            return
        self.pages += 1
        if self.pages in self.at:
            self.samples.append({
                "pages": self.pages,
                "live": {cls.__name__: len(instances) for cls, instances in live_refs.items()},
                "objects": len(gc.get_objects()),
                "traced": tracemalloc.get_traced_memory()[0],
            })

    def spider_closed(self) -> None:
        tracemalloc.stop()
        Path(os.environ["MEMORY_PROBE_FILE"]).write_text(json.dumps(self.samples))
