"""A bench-only Scrapy extension: how long each page took.

Enabled by :mod:`bench.render` with ``-s EXTENSIONS={"bench.pagetimes.PageTimes": 0}``
and ``-s BENCH_PAGE_TIMES_FILE=PATH``. For every page request (one with
``imgscraper_page`` in its meta) it writes one JSON line to that file:
``url``, ``wall`` (seconds from the request reaching the downloader to its
response reaching the engine: waiting for a browser page and starting the
browser included) and ``latency`` (the handler's ``download_latency``: with
rendering, loading, scrolling and settling the page in the browser).
"""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response


class PageTimes:
    def __init__(self, path: str):
        self.path = path
        self.started: dict[int, float] = {}
        self.out: TextIO | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PageTimes:
        path = crawler.settings.get("BENCH_PAGE_TIMES_FILE")
        if not path:
            raise NotConfigured("BENCH_PAGE_TIMES_FILE is not set")
        ext = cls(path)
        crawler.signals.connect(ext.reached, signal=signals.request_reached_downloader)
        crawler.signals.connect(ext.received, signal=signals.response_received)
        crawler.signals.connect(ext.close, signal=signals.spider_closed)
        return ext

    def reached(self, request: Request, spider: Any) -> None:
        if "imgscraper_page" in request.meta:
            self.started[id(request)] = time.monotonic()

    def received(self, response: Response, request: Request, spider: Any) -> None:
        started = self.started.pop(id(request), None)
        if started is None:
            return
        if self.out is None:
            self.out = open(self.path, "w", encoding="utf-8")
        record = {"url": request.url, "wall": time.monotonic() - started,
                  "latency": request.meta.get("download_latency")}
        self.out.write(json.dumps(record) + "\n")

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
