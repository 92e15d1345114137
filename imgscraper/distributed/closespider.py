"""Scrapy's ``CLOSESPIDER_*`` limits for a shared crawl as a whole (:mod:`imgscraper.distributed`).

Scrapy's ``CloseSpider`` extension counts what one process does: three workers
with ``CLOSESPIDER_ITEMCOUNT = 100`` would scrape 300 items.
:class:`SharedCloseSpider`, installed in its place by
:class:`imgscraper.addons.distributed.DistributedCrawl`, counts in Redis, in the
hash of this run of the crawl (from its first worker joining to its last one
leaving: a crawl resumed later counts afresh, as a resumed Scrapy job does):

* ``CLOSESPIDER_ITEMCOUNT``, ``_PAGECOUNT`` and ``_ERRORCOUNT``: what every
  worker counted, together (the counts of one turn of the event loop in one round trip);
* ``CLOSESPIDER_TIMEOUT``: from the start of the run, not of each worker.

When a limit is reached the whole crawl closes, with Scrapy's reason
(``closespider_itemcount``...): every worker is told at once on the crawl's
channel, and sees it in its next heartbeat at the latest
(:class:`~imgscraper.distributed.scheduler.SharedScheduler`). As with one
process, what is in progress then is finished. ``CLOSESPIDER_TIMEOUT_NO_ITEM``
and ``CLOSESPIDER_PAGECOUNT_NO_ITEM`` stay per worker.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from scrapy.extensions.closespider import CloseSpider
from scrapy.utils.asyncio import call_later

from imgscraper.distributed.crawl import SharedCrawl

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from twisted.python.failure import Failure

__all__ = ["SharedCloseSpider"]


class SharedCloseSpider(CloseSpider):
    """Scrapy's ``CloseSpider`` whose item, page and error counts and timeout are the shared
    crawl's (see the module docstring)."""

    def __init__(self, crawler: Crawler):
        super().__init__(crawler)
        self.shared = SharedCrawl.of(crawler)
        self._increments: Counter[str] = Counter()
        self._counting = False

    def error_count(self, failure: Failure, response: Response, spider: Spider) -> None:
        self._add("errorcount")

    def page_count(self, response: Response, request: Request, spider: Spider) -> None:
        self._add("pagecount")
        self.counter["pagecount_since_last_item"] += 1
        if self.close_on["pagecount_no_item"] and (
            self.counter["pagecount_since_last_item"] >= self.close_on["pagecount_no_item"]
        ):
            self.shared.close_worker("closespider_pagecount_no_item")

    def item_scraped(self, item: Any, spider: Spider, handed_over_by: str | None = None) -> None:
        self.counter["pagecount_since_last_item"] = 0
        if handed_over_by is None:  # else counted by the local worker that scraped it
            self._add("itemcount")

    def spider_opened(self, spider: Spider) -> None:
        if self.shared.joined:
            self.shared.spawn(self._start_timeout())

    async def _start_timeout(self) -> None:
        left = self.close_on["timeout"] - await self.shared.run_age()
        self.task = call_later(max(0.0, left), self._close_crawl_soon, "closespider_timeout")

    def _add(self, name: str) -> None:
        if not self.close_on[name] or not self.shared.joined:
            return
        self._increments[name] += 1
        if not self._counting:
            self._counting = True
            self.shared.spawn(self._count())

    async def _count(self) -> None:
        try:
            while self._increments:
                increments, self._increments = dict(self._increments), Counter()
                for name, total in (await self.shared.count(increments)).items():
                    if total >= self.close_on[name]:
                        await self._close_crawl(f"closespider_{name}")
        finally:
            self._counting = False

    def _close_crawl_soon(self, reason: str) -> None:
        self.shared.spawn(self._close_crawl(reason))

    async def _close_crawl(self, reason: str) -> None:
        """Close every worker of the crawl (the first reason given wins), this one at once."""
        self.shared.close_worker(await self.shared.close(reason))
