"""``IMGSCRAPER_MAX_IMAGES`` (``-a max_images=N``): the crawl stores N images, then stops.

:class:`ImageLimit` is an extension that hands out N places. The store pipeline holds one for
each image while it is downloaded and stored (:meth:`ImageLimit.hold`); the spider takes one
for each image it lists with ``-a download=no`` (:func:`listed_within_limit`). An image that
ends with a file in the store (``downloaded`` or ``uptodate``) or listed keeps its place; any
other gives it back for the next. While every place left is held by images in progress, the
next images wait, so no more than N are stored and none is downloaded for nothing.

Once N images are stored, the images waiting and those to come are dropped
(:class:`~imgscraper.exceptions.ImageLimitReached`, counted in ``imgscraper/images/over_limit``,
not exported) and the spider is closed with the finish reason ``max_images``, as Scrapy's
``CloseSpider`` closes it, and at once, as on Ctrl-C (:data:`imgscraper.downloader.STOP_REASON`):
transfers under way finish, requests waiting for the downloader fail (their pages are left to do
in a ``JOBDIR``), nothing new is requested. The crawl command counts that reason as a success,
and the summary says it.

The counts are this process's. In a crawl shared by several workers,
:class:`imgscraper.distributed.imagelimit.SharedImageLimit` takes its place in ``EXTENSIONS`` and
counts in Redis; every component finds either with ``crawler.get_extension(ImageLimit)``
(:func:`image_limit`).
"""

from __future__ import annotations

import logging
from collections import deque
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from twisted.internet.defer import Deferred

from imgscraper.downloader import STOP_REASON
from imgscraper.exceptions import ImageLimitReached

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from scrapy.crawler import Crawler

__all__ = ["ImageLimit", "holding_place", "image_limit", "listed_within_limit"]

logger = logging.getLogger(__name__)


class ImageLimit:
    """``max_images`` places for images (see the module docstring)."""

    #: The finish reason of a crawl that stopped at its limit.
    REASON = "max_images"
    #: The statuses of an image that keeps its place: it is in the store, or listed.
    KEPT = frozenset({"downloaded", "uptodate", "listed"})

    def __init__(self, crawler: Crawler, max_images: int):
        self.crawler = crawler
        self.max_images = max_images
        #: Images that kept their place, and images holding one now.
        self.stored = 0
        self.holding = 0
        self._waiting: deque[Deferred[None]] = deque()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ImageLimit:
        max_images = crawler.settings.getint("IMGSCRAPER_MAX_IMAGES")
        if max_images <= 0:
            raise NotConfigured
        return cls(crawler, max_images)

    @property
    def reached(self) -> bool:
        """Whether ``max_images`` images kept their place."""
        return self.stored >= self.max_images

    def take(self) -> bool:
        """A place for one image now, if one is free (neither kept nor held)."""
        if self.stored + self.holding >= self.max_images:
            return False
        self.holding += 1
        return True

    async def acquire(self) -> bool:
        """A place for one image, waiting while every place left is held; False once the limit is reached."""
        while not self.take():
            if self.reached:
                return False
            waiter: Deferred[None] = Deferred()
            self._waiting.append(waiter)
            await maybe_deferred_to_future(waiter)
        return True

    def take_listed(self) -> bool:
        """A place for one image listed (``-a download=no``), kept at once; False once the limit is reached."""
        if not self.take():
            return False
        self.release(kept=True)
        return True

    def release(self, kept: bool) -> None:
        """The image holding a place is done: it keeps the place (``kept``), or gives it back to
        the first image waiting. The last place kept closes the crawl (:meth:`close`)."""
        self.holding -= 1
        if kept:
            self.stored += 1
            if self.reached:
                self.close()
        elif self._waiting:
            self._waiting.popleft().callback(None)

    @asynccontextmanager
    async def hold(self, item: Any) -> AsyncIterator[None]:
        """Hold a place while ``item``'s image is downloaded and stored (none for an item already
        ``skipped``), kept if the item ends with one of the :attr:`KEPT` statuses; raises
        :class:`~imgscraper.exceptions.ImageLimitReached` when no place is left."""
        adapter = ItemAdapter(item)
        if adapter.get("status") == "skipped":
            yield
            return
        if not await self.acquire():
            raise self.over_limit()
        kept = False
        try:
            yield
            kept = adapter.get("status") in self.KEPT
        finally:
            self.release(kept)

    def over_limit(self) -> ImageLimitReached:
        """Count an image turned away; returns the exception that drops it."""
        self.crawler.stats.inc_value("imgscraper/images/over_limit")
        return ImageLimitReached(self.max_images)

    def close(self) -> None:
        """Turn away the images waiting, and close the spider with :attr:`REASON` at once (as
        Scrapy's ``CloseSpider`` does, as promptly as a Ctrl-C: :data:`STOP_REASON`)."""
        self.crawler.stats.set_value("imgscraper/max_images_reached", self.max_images)
        self.crawler.stats.set_value(STOP_REASON, self.REASON)
        while self._waiting:
            self._waiting.popleft().callback(None)
        engine = self.crawler.engine
        if engine.spider is not None:
            logger.info("%(count)d images stored (max_images): closing the crawl", {"count": self.max_images})
            deferred_from_coro(engine.close_spider_async(reason=self.REASON))


def image_limit(crawler: Crawler) -> ImageLimit | None:
    """The crawl's :class:`ImageLimit` (or its replacement), None without one."""
    return crawler.get_extension(ImageLimit)


def holding_place(limit: ImageLimit | None, item: Any) -> AbstractAsyncContextManager[None]:
    """``limit.hold(item)``; nothing to hold without a limit."""
    return limit.hold(item) if limit is not None else nullcontext()


def listed_within_limit(crawler: Crawler, item: Any) -> bool:
    """Whether the image of ``item``, to be listed (``-a download=no``), is within the crawl's
    limit, which counts it (:meth:`ImageLimit.take_listed`); an item already ``skipped`` is."""
    limit = image_limit(crawler)
    return limit is None or ItemAdapter(item).get("status") == "skipped" or limit.take_listed()
