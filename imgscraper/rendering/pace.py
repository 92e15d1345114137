"""The browser's requests keep their site's pace (``render=yes``).

Scrapy's downloader paces requests per download slot (a host; ``DOWNLOAD_SLOTS`` sets a
slot's ``concurrency``, ``delay`` and ``jitter``): at most ``concurrency`` transfers at
once, a new one every ``delay``. A rendered page is one of them: it holds a transfer of its
slot while it renders. The requests its browser makes (frames, scripts, style sheets,
fetch/XHR, images when loaded) are not Scrapy's, and would go out as fast as Chromium
sends them. :class:`BrowserPace` holds each to the slot of its host: it starts once the
slot's delay has passed since the slot's last request, Scrapy's or the browser's (a page's
counts from its answer), and a transfer is free, pages whose document has loaded not
counted; it then holds that transfer, so Scrapy's own requests of the slot wait for it
too, until it ends. The page's document, which its browser sends once the page is set up,
waits for its turn in the delay as well (:meth:`BrowserPace.turn`): other requests of the
slot may have gone out since Scrapy started the page's transfer.

Each browser request also waits for what the crawl's downloader holds every transfer to
(:meth:`~imgscraper.downloader.LimitedDownloader.hold`): across the workers of a shared
crawl, a lease of the slot (:mod:`imgscraper.distributed.leases`), so that the slot's
concurrency and delay hold for the browsers of every worker as for Scrapy's requests. A
page gives its lease to its browser's requests once its document has loaded.
"""

from __future__ import annotations

import asyncio
import weakref
from time import monotonic
from typing import TYPE_CHECKING, ClassVar

from scrapy import Request

if TYPE_CHECKING:
    from playwright.async_api import Request as BrowserRequest
    from scrapy.core.downloader import Slot
    from scrapy.crawler import Crawler

    from imgscraper.downloader import LimitedDownloader

__all__ = ["BrowserPace", "PageTransfers", "Transfer"]

#: Seconds between two looks at a slot whose transfers are all taken.
POLL = 0.05


class Transfer:
    """A transfer of a download slot, held for one request of the browser."""

    def __init__(self, downloader: LimitedDownloader, slot: Slot, url: str, key: str):
        self.downloader, self.slot = downloader, slot
        #: Stands for the browser's request in the slot's transfers.
        self.request = Request(url, meta={downloader.DOWNLOAD_SLOT: key})

    def end(self) -> None:
        """Give the transfer back (once), and let the slot's queued requests go on."""
        if self.request in self.slot.transferring:
            self.slot.transferring.discard(self.request)
            self.downloader.release(self.request)
            self.downloader._process_queue(self.slot)


class BrowserPace:
    """Holds the browser's requests to the crawl's download slots (see the module docstring).

    scrapy-playwright calls the page callbacks by name, without the crawl: the pace of the
    crawl running in this process is :attr:`installed` (by
    :meth:`~imgscraper.rendering.renderer.Renderer.from_crawler`).
    """

    installed: ClassVar[BrowserPace | None] = None

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        #: The rendered pages whose document has loaded: their transfers are their browser's.
        self.loaded: weakref.WeakSet[Request] = weakref.WeakSet()

    def install(self) -> None:
        BrowserPace.installed = self

    async def turn(self, url: str) -> None:
        """Wait for the turn of a page's document, ``url``, in its slot's delay: its browser sends it
        later than Scrapy started the page's transfer, and other requests of the slot may have
        gone out meanwhile (with a ``concurrency`` over 1, or through other workers)."""
        downloader: LimitedDownloader = self.crawler.engine.downloader
        key, slot = downloader._get_slot(Request(url))
        delay = downloader.own_delay(slot)
        while (wait := slot.lastseen + delay - monotonic()) > 0:
            await asyncio.sleep(wait)
        await downloader.take_turn(key, slot)
        slot.lastseen = monotonic()

    def sent(self, url: str) -> None:
        """A page's document, ``url``, was answered just now: the delay of its slot runs from now."""
        downloader: LimitedDownloader = self.crawler.engine.downloader
        downloader.restart_delay(*downloader._get_slot(Request(url)))

    def page_loaded(self, page: Request, url: str) -> None:
        """The document of ``page`` (Scrapy's request, rendered), ``url``, has loaded: its transfer is
        its browser's from now on, and what the downloader reserved for it (the shared crawl's lease
        of the slot) goes to the browser's requests."""
        self.sent(url)
        self.loaded.add(page)
        self.crawler.engine.downloader.release(page)

    async def take(self, url: str) -> Transfer:
        """Wait for the turn of a request for ``url`` in its slot, and take a transfer for it, with
        what the downloader holds transfers to besides (:meth:`LimitedDownloader.hold`)."""
        downloader: LimitedDownloader = self.crawler.engine.downloader
        key, slot = downloader._get_slot(Request(url))
        delay = downloader.own_delay(slot)
        while True:
            wait = slot.lastseen + delay - monotonic()
            loaded = sum(1 for request in slot.transferring if request in self.loaded)
            if wait <= 0 and len(slot.transferring) - loaded < slot.concurrency:
                break
            await asyncio.sleep(wait if wait > 0 else POLL)
        slot.lastseen = monotonic()
        transfer = Transfer(downloader, slot, url, key)
        slot.transferring.add(transfer.request)
        try:
            await downloader.hold(slot, transfer.request)
        except BaseException:
            transfer.end()
            raise
        return transfer


class PageTransfers:
    """The transfers held for the requests of the page that Scrapy's ``page`` request renders,
    taken from ``pace`` (none without one)."""

    def __init__(self, pace: BrowserPace | None, page: Request | None):
        self.pace, self.page = pace, page
        self.held: dict[BrowserRequest, Transfer] = {}
        self.closed = False

    async def hold(self, request: BrowserRequest) -> None:
        """Wait for ``request``'s turn, and hold a transfer for it until :meth:`end`."""
        if self.pace is None:
            return
        transfer = await self.pace.take(request.url)
        if self.closed:
            transfer.end()
        else:
            self.held[request] = transfer

    async def turn(self, url: str) -> None:
        """Wait for the turn of the page's document, ``url`` (see :meth:`BrowserPace.turn`)."""
        if self.pace is not None:
            await self.pace.turn(url)

    def loaded(self, url: str) -> None:
        """The page's document, ``url``, has loaded: its transfer is its browser's from now on."""
        if self.pace is not None and self.page is not None:
            self.pace.page_loaded(self.page, url)

    def end(self, request: BrowserRequest) -> None:
        """``request`` ended (finished or failed)."""
        if transfer := self.held.pop(request, None):
            transfer.end()

    def close(self) -> None:
        """The page closed: the transfers of its requests end with it."""
        self.closed = True
        for transfer in self.held.values():
            transfer.end()
        self.held.clear()
