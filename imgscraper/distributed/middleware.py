"""Each image of a shared crawl passed on by one worker only (see :mod:`imgscraper.distributed`).

The spider yields every image reference of a page (it does not deduplicate them
in a shared crawl); :class:`SharedImagesMiddleware` claims them in Redis, one round
trip per page, passes on those this worker won, counts them as found, and
records in the worker's :class:`~imgscraper.distributed.ledger.WorkLedger` what the
page yielded, so that the page is held until all of it is through. Listing
(``-a download=no``) with ``max_images``, it passes on the images won while the
crawl's limit allows (:meth:`~imgscraper.distributed.imagelimit.SharedImageLimit.places_to_list`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter, is_item
from scrapy import Request, signals

from imgscraper.distributed.crawl import SharedCrawl
from imgscraper.distributed.imagelimit import SharedImageLimit
from imgscraper.distributed.ledger import TOKEN
from imgscraper.downloader import crawl_stopping
from imgscraper.exceptions import StoppedBeforeDownload
from imgscraper.filters import count_filtered

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

__all__ = ["SharedImagesMiddleware"]


class SharedImagesMiddleware:
    """Spider middleware: each image URL is passed on by one worker only, and
    each page is held until all it yielded has gone through the engine."""

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        self.shared = SharedCrawl.of(crawler)
        self.limit = crawler.get_extension(SharedImageLimit)
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        for signal in (signals.item_dropped, signals.item_error):
            crawler.signals.connect(self.item_done, signal=signal)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SharedImagesMiddleware:
        return cls(crawler)

    def item_scraped(self, item: Any) -> None:
        self.shared.hand_over(item)
        self.shared.item_done(item)

    def item_done(self, item: Any, exception: BaseException | None = None) -> None:
        if isinstance(exception, StoppedBeforeDownload):
            self.shared.item_stopped(item)
        else:
            self.shared.item_done(item)

    async def _parsed(self, outputs: list[Any], token: str | None) -> list[Any]:
        kept = await self._kept(outputs, token)
        # A page parsed while the crawl stops yields no image (ImagesSpider.new_images): it stays held.
        if not crawl_stopping(self.crawler):
            self.shared.ledger.parsed(token, images=sum(1 for obj in kept if not isinstance(obj, Request)))
        return kept

    async def _kept(self, outputs: list[Any], token: str | None) -> list[Any]:
        """The page's outputs without the images other workers (or this one) already have.

        All of a page's images are claimed in one round trip to Redis.
        """
        images = [obj for obj in outputs if is_item(obj) and "url" in ItemAdapter(obj)]
        claims = await self.shared.claim_images([ItemAdapter(obj)["url"] for obj in images])
        won = dict(zip(map(id, images), claims))
        over_limit = await self._over_limit([obj for obj in images if won[id(obj)]])
        kept = []
        for obj in outputs:
            if id(obj) in won:
                if not won[id(obj)]:
                    self.crawler.stats.inc_value("imgscraper/shared/images_already_claimed")
                    continue
                self.crawler.stats.inc_value("imgscraper/images/found")
                if ItemAdapter(obj).get("reason") == "filtered":
                    count_filtered(self.crawler.stats)
                if id(obj) in over_limit:
                    self.shared.item_stopped(obj)  # its claim is given up
                    continue
            self.shared.ledger.output(token, obj)
            kept.append(obj)
        return kept

    async def _over_limit(self, images: list[Any]) -> set[int]:
        """The ids of the won ``images`` to list past the crawl's ``max_images`` (none when downloading:
        the store pipeline holds a place for each image)."""
        if self.limit is None or not self.limit.listing:
            return set()
        listed = [obj for obj in images if ItemAdapter(obj).get("status") != "skipped"]
        places = await self.limit.places_to_list(len(listed))
        return set(map(id, listed[places:]))

    async def process_spider_output(self, response: Response, result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        for obj in await self._parsed([obj async for obj in result], response.meta.get(TOKEN)):
            yield obj
