"""A Scrapy downloader whose concurrency limits hold for every request.

Stock Scrapy 2.19 overshoots its limits in two ways:

* ``Downloader._process_queue`` loops ``while slot.queue and
  slot.free_transfer_slots() > 0`` but only *schedules* a coroutine per
  request; the request enters ``slot.transferring`` when that coroutine
  first runs, after the loop. One call therefore starts the whole queue of a
  slot: every image an item pipeline queued for a host is requested at once,
  whatever ``CONCURRENT_REQUESTS_PER_DOMAIN`` says.
* ``CONCURRENT_REQUESTS`` is only checked by the engine before it takes a
  request from the scheduler. Requests sent with ``engine.download_async()``
  (what media pipelines do for every image) never pass that check.

:class:`LimitedDownloader` reserves the transfer slot synchronously and
keeps a crawl-wide count of transfers, so that no more than the slot's
concurrency (``CONCURRENT_REQUESTS_PER_DOMAIN``/``_PER_IP`` or
``DOWNLOAD_SLOTS``) are in flight per slot and no more than
``CONCURRENT_REQUESTS`` in all. Delays (``DOWNLOAD_DELAY``, AutoThrottle)
are applied by the stock code path, unchanged.

It also stops promptly. On a graceful stop (the first Ctrl-C or SIGTERM,
``Crawler.stop()``) Scrapy stops taking requests from the scheduler but waits
for every request already handed to the downloader: every image the item
pipeline queued for download (with 100 ms responses, a 3,000-image site took
30 s to exit and started 2,000 image requests after the signal). Here,
once the crawl is stopping (:func:`crawl_stopping`), transfers under way
finish and queued requests fail at once with :class:`CrawlStopped`. A component
that closes the spider at a limit (:class:`imgscraper.extensions.imagelimit.ImageLimit`)
stops it as promptly by putting its reason in the stats first (:data:`STOP_REASON`).

A subclass can hold each transfer to more limits (:meth:`~LimitedDownloader.reserve`,
:meth:`~LimitedDownloader.release`): :class:`imgscraper.distributed.leases.SharedSlotsDownloader` holds them
across the workers of a shared crawl. What a transfer reserved is released
before its slot's queue is processed again, so that the next request can have it.
"""

from __future__ import annotations

import math
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.core.downloader import Downloader, Slot
from scrapy.utils.asyncio import call_later
from scrapy.utils.defer import _process_pending_io, _schedule_coro

from imgscraper.exceptions import CrawlStopped

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response
    from twisted.internet.defer import Deferred

__all__ = ["LATER", "STOP_REASON", "LimitedDownloader", "PriorityQueue", "crawl_stopping"]

#: What :meth:`LimitedDownloader.reserve` returns when it will process the slot's queue itself once it can.
LATER = math.inf
#: The stat a component sets (to the finish reason) before it closes the spider at a limit, for
#: the crawl to stop at once, as when it is asked to stop.
STOP_REASON = "imgscraper/stop_reason"


def crawl_stopping(crawler: Crawler) -> bool:
    """Whether the crawl was asked to stop (Ctrl-C, SIGTERM, ``Crawler.stop()``), or is closing
    at a limit that stops it at once (:data:`STOP_REASON`).

    Scrapy clears ``engine.running`` first thing when it stops, then closes
    the spider, which waits for the requests in progress.
    """
    try:
        engine = crawler.engine
    except RuntimeError:  # Scrapy 2.19: not crawling yet
        return False
    if engine is None or engine.spider is None:
        return False
    return not engine.running or bool(crawler.stats.get_value(STOP_REASON))


class PriorityQueue(deque):
    """A download slot's queue of ``(request, deferred)``: served from the left, each entry
    placed after those of its request's priority or higher (Scrapy's ``Slot.queue`` is a
    deque filled with ``append``: first in, first out)."""

    def append(self, entry: tuple[Request, Deferred[Any]]) -> None:
        priority = entry[0].priority
        index = len(self)
        while index and self[index - 1][0].priority < priority:
            index -= 1
        self.insert(index, entry)


class LimitedDownloader(Downloader):
    """``Downloader`` that never exceeds its per-slot or total concurrency.

    Enable it with ``DOWNLOADER = "imgscraper.downloader.LimitedDownloader"``.
    A ``CONCURRENT_REQUESTS`` of 0 means no total limit, as in Scrapy.
    """

    def __init__(self, crawler: Crawler):
        super().__init__(crawler)
        #: Requests being transferred, all slots together.
        self.transferring_count: int = 0
        # Slots with queued requests that wait for a free total transfer
        # slot, oldest first (a dict as an ordered set).
        self._blocked: dict[Slot, None] = {}

    def total_slots_full(self) -> bool:
        """Whether ``CONCURRENT_REQUESTS`` transfers are in flight."""
        return 0 < self.total_concurrency <= self.transferring_count

    def reserve(self, slot: Slot, request: Request) -> float:
        """Reserve what ``request``'s transfer needs besides the slot's own limits: 0 when it
        may start now, else the seconds to wait before asking again, or :data:`LATER` when the
        subclass calls ``_process_queue(slot)`` once it can. Nothing here."""
        return 0.0

    def release(self, request: Request) -> None:
        """``request``'s transfer ended: give back what :meth:`reserve` or :meth:`hold` reserved. Nothing here."""

    def own_delay(self, slot: Slot) -> float:
        """The delay this downloader keeps between two transfers of ``slot`` by itself: the slot's
        (``DOWNLOAD_DELAY``, ``DOWNLOAD_SLOTS``), unless :meth:`reserve` keeps it."""
        return slot.download_delay()

    def restart_delay(self, key: str, slot: Slot) -> None:
        """The delay of ``slot`` (key ``key``) runs from now: a transfer it started went out, or was
        answered, only now (a rendered page's document, sent by its browser once the page is set up)."""
        slot.lastseen = monotonic()

    async def take_turn(self, key: str, slot: Slot) -> None:
        """Wait for the turn, in the delay of ``slot`` (key ``key``), of a request made outside this
        downloader for a transfer it started (a rendered page's document, sent once its browser is
        ready), besides the slot's own ``lastseen``. Nothing here."""

    async def hold(self, slot: Slot, request: Request) -> None:
        """Wait for, and reserve, what a transfer of ``slot`` made outside this downloader needs besides
        the slot's own limits (a rendered page's browser's request, :mod:`imgscraper.rendering.pace`);
        :meth:`release` gives it back. Nothing here."""

    def _process_queue(self, slot: Slot) -> None:
        if crawl_stopping(self.crawler):
            self._fail_queued(slot)
            return
        if slot.latercall:
            return
        now = monotonic()
        delay = self.own_delay(slot)
        if delay:
            penalty = delay - now + slot.lastseen
            if penalty > 0:
                slot.latercall = call_later(penalty, self._latercall, slot)
                return
        while slot.queue and slot.free_transfer_slots() > 0:
            if self.total_slots_full():
                self._blocked[slot] = None
                return
            wait = self.reserve(slot, slot.queue[0][0])
            if wait > 0:
                if wait != LATER:
                    slot.latercall = call_later(wait, self._latercall, slot)
                return
            slot.lastseen = now
            request, queue_dfd = slot.queue.popleft()
            # Reserved here, not when the coroutine starts: see the module doc.
            slot.transferring.add(request)
            self.transferring_count += 1
            _schedule_coro(self._wait_for_download(slot, request, queue_dfd))
            if delay:
                # One request per delay: this schedules the next call.
                self._process_queue(slot)
                break

    async def _download(self, slot: Slot, request: Request) -> Response:
        # Downloader._download, with what the transfer reserved released before the slot's
        # queue is processed again.
        try:
            response = await self.handlers.download_request_async(request)
            self.signals.send_catch_log(signal=signals.response_downloaded, response=response, request=request,
                                        spider=self.crawler.spider)
            return response
        except Exception:
            await _process_pending_io()
            raise
        finally:
            slot.transferring.remove(request)
            self.transferring_count -= 1
            self.release(request)
            self._process_queue(slot)
            self._process_blocked()
            self.signals.send_catch_log(signal=signals.request_left_downloader, request=request,
                                        spider=self.crawler.spider)

    def _fail_queued(self, slot: Slot) -> None:
        while slot.queue:
            _, queue_dfd = slot.queue.popleft()
            queue_dfd.errback(CrawlStopped())

    def _process_blocked(self) -> None:
        stopping = crawl_stopping(self.crawler)
        while self._blocked and (stopping or not self.total_slots_full()):
            slot = next(iter(self._blocked))
            del self._blocked[slot]
            self._process_queue(slot)

    def close(self) -> None:
        self._blocked.clear()
        super().close()
