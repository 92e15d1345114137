"""One crawl spread over several processes of one machine (``IMGSCRAPER_PROCESSES``).

On a fast network a crawl is CPU-bound: Scrapy's own work per request keeps
one core busy. With ``IMGSCRAPER_PROCESSES = N`` the crawl starts ``N - 1``
worker processes next to it, and the processes share the crawl's pages the
way the workers of a Redis crawl (:mod:`imgscraper.distributed`) do, with the
main process in Redis's place:

* the main process keeps the one queue of pages and its duplicate filter
  (:class:`MainScheduler`); each process, itself included, takes the next
  page when it expects fewer images to fetch than twice its share of
  ``CONCURRENT_REQUESTS``, so a page goes to the process that can start on
  it soonest;
* a worker fetches and parses the pages it takes, sends the links it finds
  to the main process's queue, and downloads and stores the page's images
  through its own downloader, middlewares and pipelines; the main process
  hands the worker's items to its feed exports;
* each image is fetched by one process only: a process claims the images of
  a page, in one message per page, before it yields them
  (:class:`SharedImagesMiddleware`);
* a process keeps up to twice its share of ``CONCURRENT_REQUESTS`` of a
  page's images and offers the rest, in batches, to whichever process has
  room first (batches go before pages): a page of many images, a single
  start page above all, is not fetched at one process's share of the limits.

A worker is a Scrapy crawler of the same spider, with the same arguments and
settings, and no start requests of its own. :class:`CrawlProcesses` (the
add-on) divides ``CONCURRENT_REQUESTS`` and ``CONCURRENT_REQUESTS_PER_DOMAIN``
/ ``_PER_IP`` by ``N`` so that all the processes together stay within them,
and keeps one process where sharing would change the crawl: ``DOWNLOAD_DELAY``
and AutoThrottle (they pace one process), a Redis crawl (already shared),
``JOBDIR`` and ``IMGSCRAPER_MAX_PAGES`` (kept by one process), a custom
``SCHEDULER``, or no images to download.

A worker ends when the main process closes its socket (the crawl is finished,
or stopped), and ignores Ctrl-C. If a worker dies, the main process puts the
pages it held back in its queue and lets its unfinished images be claimed
again (one WARNING line, stat ``imgscraper/processes/lost``).

The processes talk in length-prefixed pickles over a socket pair (they are
the same program): the main process sends ``("page", token, request)``,
``("images", token, [item, ...])`` and ``("claimed", n, [bool, ...])``; a
worker sends ``("want", pages)`` (it has room for spare images, and for a
page too if ``pages``), ``("requests", [request, ...])``, ``("claim", n,
[key, ...])``, ``("images", [item, ...], batch_size)`` (spare images),
``("item", item)``, ``("done", [token, ...], [key, ...])`` and ``("stats",
{...})`` (its counts so far, after each page and when it closes).
Requests travel as :meth:`Request.to_dict() <scrapy.Request.to_dict>` dicts.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
import itertools
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import warnings
import weakref
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter, is_item
from scrapy import Request, Spider, signals
from scrapy.core.scheduler import BaseScheduler, Scheduler
from scrapy.exceptions import DontCloseSpider
from scrapy.extensions.httpcache import FilesystemCacheStorage
from scrapy.settings import SETTINGS_PRIORITIES, Settings
from scrapy.utils.asyncio import create_looping_call
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.misc import load_object
from scrapy.utils.request import request_from_dict

from imgscraper.discovery import image_url_key
from imgscraper.filters import count_filtered
from imgscraper.runtime import skip_records_below, tune_garbage_collector

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from twisted.internet.defer import Deferred

__all__ = [
    "PARENT",
    "TOKEN",
    "CrawlProcesses",
    "ImageClaims",
    "MainScheduler",
    "SharedImagesMiddleware",
    "WorkLedger",
    "WorkerScheduler",
    "image_key",
    "in_worker",
]

logger = logging.getLogger(__name__)

#: Limits divided between the processes.
SPLIT_LIMITS = ("CONCURRENT_REQUESTS", "CONCURRENT_REQUESTS_PER_DOMAIN", "CONCURRENT_REQUESTS_PER_IP")
#: Request meta keys (here and in the Redis crawl, imgscraper.distributed): the token
#: of a page a process took, and of the page a request was found on.
TOKEN = "imgscraper_page_token"
PARENT = "imgscraper_page_parent"
#: Stats a worker keeps for itself: the main process counts its items, and
#: times, memory, logs and queues are per process.
_OWN_STATS = ("item_", "items_", "responses_per_minute", "elapsed_time", "memusage/", "log_count/",
              "start_time", "finish_", "scheduler/")
#: The least of ``CONCURRENT_REQUESTS_PER_DOMAIN`` each process gets with ``IMGSCRAPER_PROCESSES = 0``.
MIN_PER_HOST = 4
#: Seconds between checks, while the main process is idle, that the workers are done too.
IDLE_POLL = 0.02

#: The connection to the main process, in a worker process (set by :func:`main`).
_channel: Channel | None = None
#: The scheduler of each crawler, for its spider middleware.
_schedulers: weakref.WeakKeyDictionary[Crawler, MainScheduler | WorkerScheduler] = weakref.WeakKeyDictionary()


def in_worker() -> bool:
    """Whether this process is a worker of a crawl spread over processes."""
    return _channel is not None


class CrawlProcesses:
    """Add-on: with ``IMGSCRAPER_PROCESSES > 1``, share the crawl between the
    processes (scheduler and spider middleware of this module) and divide the
    concurrency limits between them, or keep one process (one INFO line) when
    sharing would change the crawl."""

    def __init__(self, crawler: Crawler | None = None):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlProcesses:
        return cls(crawler)

    def update_settings(self, settings: Settings) -> None:
        if in_worker():
            return  # set up by run_worker(), with the main process's divided limits
        processes = settings.getint("IMGSCRAPER_PROCESSES")
        automatic = processes == 0
        if automatic:
            # The workers scrapy crawl forked for it; elsewhere a new interpreter would not pay for a small crawl.
            processes = 1 + len(_forked)
        why_not = self.why_one_process(settings, processes) if processes > 1 else "one was asked for"
        # Scrapy builds the spider before it applies the add-ons (and the spider's attributes after them).
        spider = getattr(self.crawler, "spider", None)
        if not why_not and spider is not None:
            why_not = self.why_one_process_for(spider)
        if why_not:
            if processes > 1:
                logger.log(logging.DEBUG if automatic else logging.INFO,
                           "IMGSCRAPER_PROCESSES=%d: using one process (%s)", processes, why_not)
            self._override(settings, "IMGSCRAPER_PROCESSES", 1)
            dismiss_forked_workers()
            return
        self._override(settings, "IMGSCRAPER_PROCESSES", processes)
        for name in SPLIT_LIMITS:
            value = settings.getint(name)
            if value > 0:
                self._override(settings, name, max(1, value // processes))
        settings.set("SCHEDULER", "imgscraper.processes.MainScheduler", priority="addon")
        # Close to the engine, like the Redis crawl's: it sees what the other middlewares let through.
        settings.set_in_component_priority_dict("SPIDER_MIDDLEWARES", SharedImagesMiddleware, 50)

    @staticmethod
    def _override(settings: Settings, name: str, value: int) -> None:
        # At the priority the value was given with: -s values rank above add-ons.
        settings.set(name, value, priority=max(SETTINGS_PRIORITIES["addon"], settings.getpriority(name) or 0))

    @staticmethod
    def why_one_process_for(spider: Spider) -> str:
        """Why ``spider`` must be crawled by one process, or ``""``."""
        if not isinstance(getattr(spider, "arguments", None), dict):
            return f"spider {spider.name!r} does not list its arguments for a worker (an 'arguments' dict)"
        for attribute in ("download_delay", "max_concurrent_requests"):
            if getattr(spider, attribute, None):
                return f"the spider's {attribute} applies to one process"
        return ""

    @staticmethod
    def why_one_process(settings: Settings, processes: int) -> str:
        """Why the crawl must stay in one process, or ``""``."""
        if not _stores_images(settings):
            return "no images are downloaded (download=no, or no ImageStorePipeline)"
        if settings.getfloat("DOWNLOAD_DELAY") > 0:
            return "DOWNLOAD_DELAY spaces the requests of one process"
        if settings.getbool("AUTOTHROTTLE_ENABLED"):
            return "AutoThrottle adapts the pace of one process"
        if settings.getdict("DOWNLOAD_SLOTS"):
            return "DOWNLOAD_SLOTS sets the concurrency and delays of one process"
        if settings.get("IMGSCRAPER_REDIS_URL"):
            return "a shared crawl spreads over its workers"
        if settings.get("JOBDIR"):
            return "JOBDIR journals the pages of one process"
        if settings.getint("IMGSCRAPER_MAX_PAGES"):
            return "IMGSCRAPER_MAX_PAGES is counted by one process"
        for name in ("CLOSESPIDER_PAGECOUNT", "CLOSESPIDER_PAGECOUNT_NO_ITEM", "CLOSESPIDER_ERRORCOUNT"):
            if settings.getint(name):
                return f"{name} is counted by one process"
        if settings.getbool("HTTPCACHE_ENABLED") and load_object(settings["HTTPCACHE_STORAGE"]) is not FilesystemCacheStorage:
            return "HTTPCACHE_STORAGE is written by one process"
        if load_object(settings["SCHEDULER"]) is not Scheduler:
            return "SCHEDULER is not Scrapy's"
        if settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN") < processes:
            return f"CONCURRENT_REQUESTS_PER_DOMAIN is under {processes}"
        return ""


def _stores_images(settings: Settings) -> bool:
    """Whether ``ITEM_PIPELINES`` holds :class:`~imgscraper.pipelines.ImageStorePipeline` or a subclass."""
    from imgscraper.pipelines import ImageStorePipeline  # noqa: PLC0415 (it imports the spider's modules)

    for path, order in settings.getdict("ITEM_PIPELINES").items():
        try:
            pipeline = load_object(path)
        except (ImportError, NameError, ValueError):
            continue  # Scrapy reports it when it builds the pipelines
        if order is not None and isinstance(pipeline, type) and issubclass(pipeline, ImageStorePipeline):
            return True
    return False


def image_key(url: str) -> str:
    """The key an image URL is claimed under (as the spider deduplicates it)."""
    return hashlib.sha1(image_url_key(url).encode("utf-8")).hexdigest()


# -- the work a process holds -------------------------------------------------


@dataclass
class _Unit:
    """A request this process took from the queue: still being fetched, parsed, outputs pending."""

    fetching: bool = True
    parsed: bool = False
    pending: int = 0


class WorkLedger:
    """The requests (pages, style sheets) a process took and the images they brought.

    A taken request stays *held* until it is parsed and everything it yielded
    has gone through the engine; ``on_done(token)`` is called then.
    :meth:`busy` says whether the process has enough work for now.
    """

    def __init__(self, max_images: int, on_done: Callable[[str], None] | None = None):
        self.max_images = max(1, max_images)
        self.on_done = on_done
        self.units: dict[str, _Unit] = {}
        self.images_in_progress = 0
        self._item_units: dict[int, str] = {}
        self._tokens = itertools.count(1)
        self._parsed = 0
        self._images_kept = 0

    def take(self, request: Request, token: str | None = None) -> Request:
        """Hold ``request`` (taken from the queue) under a new token, or ``token``."""
        token = token or str(next(self._tokens))
        request.meta[TOKEN] = token
        self.units[token] = _Unit()
        return request

    def take_images(self, token: str, items: list[Any]) -> None:
        """Hold ``items``, images another page's process passed on, under ``token``."""
        self.units[token] = _Unit(fetching=False, parsed=True)
        for item in items:
            self.output(token, item)
        self._maybe_done(token)

    def fetched(self, request: Request) -> None:
        unit = self.units.get(request.meta.get(TOKEN, ""))
        if unit is not None:
            unit.fetching = False

    def has_room(self) -> bool:
        """Whether this process has fewer than ``max_images`` images in progress (room for spare images)."""
        return self.images_in_progress < self.max_images

    def busy(self) -> bool:
        """Whether this process expects at least ``max_images`` images to fetch soon: those of
        its parsed pages, and an estimate for the pages it is fetching (no room for a page)."""
        per_page = self._images_kept / self._parsed if self._parsed else self.max_images
        fetching = sum(1 for unit in self.units.values() if unit.fetching)
        return self.images_in_progress + fetching * per_page >= self.max_images

    def output(self, token: str | None, obj: Any) -> None:
        """``obj`` (item or request), yielded by the unit ``token``, is on its way."""
        unit = self.units.get(token) if token is not None else None
        if unit is None:
            return
        unit.pending += 1
        if isinstance(obj, Request):
            obj.meta[PARENT] = token
        else:
            self._item_units[id(obj)] = token
            self.images_in_progress += 1

    def parsed(self, token: str | None, images: int) -> None:
        self._parsed += 1
        self._images_kept += images
        unit = self.units.get(token) if token is not None else None
        if unit is not None:
            unit.fetching, unit.parsed = False, True
            self._maybe_done(token)

    def output_done(self, token: str | None) -> None:
        unit = self.units.get(token) if token is not None else None
        if unit is not None:
            unit.pending -= 1
            self._maybe_done(token)

    def item_done(self, item: Any) -> None:
        token = self._item_units.pop(id(item), None)
        if token is not None:
            self.images_in_progress -= 1
            self.output_done(token)

    def clear(self) -> list[str]:
        """The process is idle: everything it held is done. Returns the tokens it held."""
        tokens = list(self.units)
        self.units.clear()
        self._item_units.clear()
        self.images_in_progress = 0
        return tokens

    def _maybe_done(self, token: str) -> None:
        unit = self.units[token]
        if unit.parsed and unit.pending <= 0:
            del self.units[token]
            if self.on_done is not None:
                self.on_done(token)


class ImageClaims:
    """Which process fetches each image (kept by the main process)."""

    DONE = -1

    def __init__(self) -> None:
        self._owners: dict[str, int] = {}

    def claim(self, process: int, keys: list[str]) -> list[bool]:
        """For each key, whether ``process`` is to fetch it (no process did or does)."""
        won = []
        for key in keys:
            new = key not in self._owners
            if new:
                self._owners[key] = process
            won.append(new)
        return won

    def done(self, keys: list[str]) -> None:
        for key in keys:
            self._owners[key] = self.DONE

    def release(self, process: int) -> int:
        """Let the images ``process`` claimed and did not finish be claimed again; how many."""
        keys = [key for key, owner in self._owners.items() if owner == process]
        for key in keys:
            del self._owners[key]
        return len(keys)


# -- the channel between two processes ---------------------------------------

_LENGTH = struct.Struct("!I")


class Channel(asyncio.Protocol):
    """One end of the socket pair: ``send`` a message, ``on_message`` for each received one,
    ``on_end`` once when the other end stops sending (the end of the stream, or its death).

    Messages sent in one turn of the event loop leave in one write.
    """

    def __init__(self, sock: socket.socket, on_message: Callable[[tuple], None], on_end: Callable[[str], None]):
        self._sock = sock
        self.on_message = on_message
        self.on_end = on_end
        self.open = False
        self._transport: asyncio.WriteTransport | None = None
        self._frames: list[bytes] = []
        self._flush_scheduled = False
        self._writing_closed = False
        self._received = bytearray()
        self._ended: asyncio.Future[None] | None = None

    def start(self) -> None:
        """Connect to the socket (with the event loop running)."""
        loop = asyncio.get_running_loop()
        self._ended = loop.create_future()
        asyncio.ensure_future(loop.connect_accepted_socket(lambda: self, sock=self._sock))

    @property
    def ended(self) -> bool:
        """Whether the other end stopped sending."""
        return self._ended is not None and self._ended.done()

    def send(self, message: tuple) -> bool:
        """Queue ``message``; False if the other end is gone or this end closed writing."""
        if self._writing_closed or (self._transport is not None and self._transport.is_closing()):
            return False
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self._frames.append(_LENGTH.pack(len(data)) + data)
        if self._transport is not None and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return True

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._frames and self._transport is not None and not self._transport.is_closing():
            # Also after the other end stopped sending: it still reads until it closes.
            self._transport.write(b"".join(self._frames))
        self._frames = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self._transport = transport
        self.open = True
        self._flush()  # what was sent before the connection

    def data_received(self, data: bytes) -> None:
        received = self._received
        received += data
        start = 0
        while len(received) - start >= _LENGTH.size:
            size = _LENGTH.unpack_from(received, start)[0]
            if len(received) - start - _LENGTH.size < size:
                break
            body = received[start + _LENGTH.size : start + _LENGTH.size + size]
            start += _LENGTH.size + size
            try:
                message = pickle.loads(body)
            except (pickle.UnpicklingError, EOFError, ValueError, AttributeError) as exc:
                self._end(f"unreadable message: {exc}")
                if self._transport is not None:
                    self._transport.close()
                return
            self.on_message(message)
        del received[:start]

    def eof_received(self) -> bool:
        self._end("cut mid-message" if self._received else "")
        return True  # keep writing: the other end reads until it closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(str(exc) if exc else "")

    def _end(self, why: str) -> None:
        if self._ended is not None and not self._ended.done():
            self.open = False
            self._ended.set_result(None)
            self.on_end(why)

    def close_writing(self) -> None:
        """Tell the other end that nothing more comes (it sees the end of the stream)."""
        self._flush()
        self._writing_closed = True
        if self._transport is not None and not self._transport.is_closing():
            try:
                self._transport.write_eof()
            except OSError:
                pass

    async def closed(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the other end to stop sending, then close."""
        if self._ended is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._ended), timeout)
            except asyncio.TimeoutError:
                pass
        if self._transport is not None:
            self._transport.close()


# -- the main process ---------------------------------------------------------


class _TakesSpareImages:
    """What both schedulers do with spare images (see :class:`SharedImagesMiddleware`):
    send them through this process's item pipelines, held by the ledger under a token."""

    crawler: Crawler
    ledger: WorkLedger
    #: Images passed to the scraper and not yet counted by it.
    _starting = 0

    def _start_images(self, token: str, items: list[Any]) -> None:
        self.ledger.take_images(token, items)
        for item in items:
            self._starting += 1
            deferred_from_coro(self._start_image(item))

    async def _start_image(self, item: Any) -> None:
        # The scraper counts the item from here on: the engine is not idle in between.
        self._starting -= 1
        self.crawler.stats.inc_value("imgscraper/processes/spare_images_taken")
        await self.crawler.engine.scraper.start_itemproc_async(item, response=None)
        self._image_done()

    def _image_done(self) -> None:
        """A spare image went through the pipelines (no response tells the engine)."""


class Worker:
    """A worker process, seen from the main process."""

    def __init__(self, number: int, proc: subprocess.Popen | _ForkedProcess):
        self.number = number
        self.proc = proc
        self.channel: Channel | None = None
        #: What the worker took and has not finished: pages, and batches of spare images.
        self.held: dict[str, Request | list[Any]] = {}
        self.wants = False
        self.wants_pages = False
        self.stats: dict[str, Any] = {}
        self.closing = False
        self.lost = False

    @property
    def alive(self) -> bool:
        return self.channel is not None and self.channel.open


class MainScheduler(_TakesSpareImages, Scheduler):
    """Scrapy's scheduler, shared with the worker processes (see the module docstring)."""

    def __init__(self, *args: Any, crawler: Crawler, **kwargs: Any):
        super().__init__(*args, crawler=crawler, **kwargs)
        self.crawler = crawler
        _schedulers[crawler] = self
        self.workers: list[Worker] = []
        self.claims = ImageClaims()
        # Twice its share of the limit: a process takes its next page while it still has
        # images in flight, and its downloader never waits for a page (make bench).
        self.ledger = WorkLedger(2 * crawler.settings.getint("CONCURRENT_REQUESTS"))
        #: Batches of spare images, and how many images they hold.
        self.spare: deque[list[Any]] = deque()
        self._spare_images = 0
        self._idle_poll = create_looping_call(self._close_when_done)
        #: Tokens of the pages given to workers.
        self._tokens = itertools.count(1)
        crawler.signals.connect(self.spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(self.ledger.fetched, signal=signals.request_left_downloader)
        for signal_ in (signals.item_scraped, signals.item_dropped, signals.item_error):
            crawler.signals.connect(self.ledger.item_done, signal=signal_)

    def open(self, spider: Spider) -> Deferred[None] | None:
        result = super().open(spider)
        count = self.crawler.settings.getint("IMGSCRAPER_PROCESSES") - 1
        for proc, sock in start_workers(self.crawler, spider, count):
            worker = Worker(len(self.workers) + 1, proc)
            worker.channel = Channel(
                sock,
                lambda message, w=worker: self._on_message(w, message),
                lambda why, w=worker: self._on_end(w, why),
            )
            worker.channel.start()
            self.workers.append(worker)
        return result

    def close(self, reason: str) -> Deferred[None] | None:
        if self._idle_poll.running:
            self._idle_poll.stop()
        return deferred_from_coro(self._close(reason))

    async def _close(self, reason: str) -> None:
        timeout = max(60.0, self.crawler.settings.getfloat("DOWNLOAD_TIMEOUT"))
        self._finish_workers()
        for worker in self.workers:
            await _wait_or_kill(worker.proc, timeout)
            if worker.channel is not None:
                await worker.channel.closed(5)
        result = super().close(reason)
        if result is not None:
            await result

    def enqueue_request(self, request: Request) -> bool:
        request.meta.pop(TOKEN, None)
        parent = request.meta.pop(PARENT, None)
        try:
            queued = super().enqueue_request(request)
        finally:
            self.ledger.output_done(parent)
        if queued:
            self._feed_workers()
        return queued

    def has_pending_requests(self) -> bool:
        return super().has_pending_requests() or bool(self.spare) or self._starting > 0

    def next_request(self) -> Request | None:
        if not self.ledger.busy() and (not self.spare or self._pages_first()):
            request = super().next_request()
            if request is not None:
                return self.ledger.take(request)
        # Also while a page is being fetched: its images come later.
        self._take_spare()
        return None

    def share_images(self, items: list[Any], batch_size: int) -> None:
        """Offer ``items``, spare images of a page, to whichever process has room first."""
        for start in range(0, len(items), batch_size):
            self._put_spare(items[start : start + batch_size])
        self._feed_workers()
        self._take_spare()

    def _pages_first(self) -> bool:
        """Whether a process with room takes a page before spare images: while fewer images
        wait in batches than all the processes can have in progress (a page takes a while
        to fetch, and its images keep the processes busy)."""
        return len(self) > 0 and self._spare_images < self.ledger.max_images * (1 + len(self.workers))

    def _put_spare(self, batch: list[Any], *, first: bool = False) -> None:
        if first:
            self.spare.appendleft(batch)
        else:
            self.spare.append(batch)
        self._spare_images += len(batch)

    def _pop_spare(self) -> list[Any]:
        batch = self.spare.popleft()
        self._spare_images -= len(batch)
        return batch

    def _take_spare(self) -> None:
        while self.spare and self.ledger.has_room():
            self._start_images(f"spare-{next(self._tokens)}", self._pop_spare())

    def _image_done(self) -> None:
        if self.ledger.busy() or not self._pages_first():  # else the engine asks for a page next
            self._take_spare()
        # The engine checks for its end after a response, or every 5 s: it may be done now.
        if not self._idle_poll.running and self.crawler.engine.spider_is_idle():
            self._idle_poll.start(IDLE_POLL, now=False)

    def spider_idle(self) -> None:
        """Keep the crawl open while a worker holds pages (they may bring more)."""
        self.ledger.clear()
        if self.spare:
            self._take_spare()
            raise DontCloseSpider
        if any(worker.held for worker in self.workers):
            if not self._idle_poll.running:
                self._idle_poll.start(IDLE_POLL, now=False)
            raise DontCloseSpider
        self._finish_workers()  # they close while this process does

    def _close_when_done(self) -> None:
        engine = self.crawler.engine
        self._take_spare()
        if self.spare or any(worker.held for worker in self.workers):
            return
        self._idle_poll.stop()
        if engine.spider_is_idle():
            self._finish_workers()
            deferred_from_coro(engine.close_spider_async(reason="finished"))
        # Else a worker's pages brought requests, which the engine is on: its idle check comes again.

    def _finish_workers(self) -> None:
        """Tell the workers the crawl is over: each closes its spider and exits."""
        for worker in self.workers:
            if not worker.closing:
                worker.closing = True
                if worker.channel is not None:
                    worker.channel.close_writing()

    def _feed_workers(self) -> None:
        for worker in self.workers:
            if worker.wants and worker.alive and not worker.closing and (self.spare or worker.wants_pages and len(self)):
                self._give(worker)

    def _give(self, worker: Worker) -> None:
        assert worker.channel is not None
        if self.spare and not (worker.wants_pages and self._pages_first()):
            token, batch = f"spare-{next(self._tokens)}", self._pop_spare()
            if worker.channel.send(("images", token, batch)):
                worker.wants = False
                worker.held[token] = batch
            else:
                self._put_spare(batch, first=True)
            return
        request = super().next_request() if worker.wants_pages else None
        if request is None:
            return
        token = str(next(self._tokens))
        try:
            data = request.to_dict(spider=self.spider)
            sent = worker.channel is not None and worker.channel.send(("page", token, data))
        except (pickle.PicklingError, TypeError, AttributeError, ValueError) as exc:
            logger.debug("Keeping %s in this process (%s)", request.url, exc)
            sent = False
        if not sent:
            # Fetched here instead; the engine asks for it again.
            super().enqueue_request(request.replace(dont_filter=True))
            return
        worker.wants = False
        worker.held[token] = request
        self.crawler.stats.inc_value("imgscraper/processes/pages")

    # -- messages from workers -------------------------------------------

    def _on_message(self, worker: Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "claim":
            won = self.claims.claim(worker.number, message[2])
            assert worker.channel is not None
            worker.channel.send(("claimed", message[1], won))
        elif kind == "requests":
            for data in message[1]:
                self.crawler.engine.crawl(request_from_dict(data, spider=self.spider))
        elif kind == "item":
            self.crawler.stats.inc_value("imgscraper/processes/images")
            deferred_from_coro(self.crawler.signals.send_catch_log_async(
                signal=signals.item_scraped, item=message[1], response=None, spider=self.spider
            ))
        elif kind == "images":
            self.claims.done([image_key(ItemAdapter(item)["url"]) for item in message[1]])
            self.share_images(message[1], message[2])
        elif kind == "done":
            for token in message[1]:
                worker.held.pop(token, None)
            self.claims.done(message[2])
        elif kind == "want":
            worker.wants, worker.wants_pages = True, message[1]
            self._feed_workers()
        elif kind == "stats":
            self._take_stats(worker, message[1])

    def _on_end(self, worker: Worker, why: str) -> None:
        worker.wants = False
        if worker.closing:
            return
        worker.lost = True
        self.crawler.stats.inc_value("imgscraper/processes/lost")
        pages = [held for held in worker.held.values() if isinstance(held, Request)]
        batches = [held for held in worker.held.values() if not isinstance(held, Request)]
        for batch in batches:
            self._put_spare(batch)
        worker.held.clear()
        released = self.claims.release(worker.number)
        logger.warning(
            "Worker process %d ended before the crawl%s: its %d page(s) and %d batch(es) of images go back in the "
            "queue, %d image(s) to claim again",
            worker.proc.pid, f" ({why})" if why else "", len(pages), len(batches), released,
        )
        for request in pages:
            self.crawler.engine.crawl(request.replace(dont_filter=True))
        self._feed_workers()
        self._take_spare()

    def _take_stats(self, worker: Worker, stats: dict[str, Any]) -> None:
        """Add what the worker counted since its last stats to the crawl's stats
        (as it goes: the progress display and log lines show the whole crawl)."""
        for name, value in stats.items():
            if isinstance(value, (int, float)) and not name.startswith(_OWN_STATS):
                if name.endswith("_max"):
                    self.crawler.stats.max_value(name, value)
                elif value != worker.stats.get(name, 0):
                    self.crawler.stats.inc_value(name, value - worker.stats.get(name, 0))
        worker.stats = stats


async def _wait_or_kill(proc: subprocess.Popen | _ForkedProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    if proc.poll() is None:
        logger.warning("Worker process %d did not finish in %.0f s: killed", proc.pid, timeout)
        proc.kill()
        proc.wait()


def start_workers(crawler: Crawler, spider: Spider, count: int) -> list[tuple[Any, socket.socket]]:
    """Start ``count`` worker processes of ``spider`` with ``crawler``'s settings.

    Workers forked ahead by :func:`fork_workers` are used first, new
    interpreters started for the rest. Returns ``(process, socket)`` for those
    that started, the socket being the main process's end of the worker's
    socket pair; a failure to start one is one WARNING line.
    """
    settings = crawler.settings
    # Only what differs from Scrapy's defaults: setting a deprecated default would warn.
    values = {name: settings[name] for name in settings if (settings.getpriority(name) or 0) > SETTINGS_PRIORITIES["default"]}
    values.update({
        "FEEDS": {},
        "STATS_DUMP": False,
        "IMGSCRAPER_PROGRESS": False,
        "LOGSTATS_INTERVAL": 0,
        # Its warnings (a failed image, a full disk) are worth seeing, its INFO lines repeat ours.
        "LOG_LEVEL": max(logging.WARNING, _level_number(settings.get("LOG_LEVEL"))),
    })
    # The spider's class, not its name: ``scrapy runspider`` loads no spider by name.
    spider_class = type(spider)
    job = {
        "settings": values,
        "spider": f"{spider_class.__module__}.{spider_class.__qualname__}",
        "spider_file": _source_file(spider_class),
        "arguments": getattr(spider, "arguments", {}),
    }
    try:
        data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        logger.warning("Cannot start a worker process (%s): crawling in this process", exc)
        return []
    started = []
    while len(started) < count:
        try:
            proc, sock = _forked.pop() if _forked else _spawn_worker()
            # The worker's first message: what to crawl (the settings may hold credentials: not in a file).
            sock.sendall(_LENGTH.pack(len(data)) + data)
        except OSError as exc:
            logger.warning("Cannot start a worker process (%s): crawling in this process", exc)
            break
        started.append((proc, sock))
    return started


def _spawn_worker() -> tuple[subprocess.Popen, socket.socket]:
    ours, theirs = socket.socketpair()
    # Scrapyd runs crawls from an egg: the worker needs the same import path.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imgscraper.processes", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


class _ForkedProcess:
    """The parts of :class:`subprocess.Popen` used here, for a forked process."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        while self.poll() is None:
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode


#: Workers forked ahead of the crawl (:func:`fork_workers`), waiting for their job.
_forked: list[tuple[_ForkedProcess, socket.socket]] = []


def automatic_processes(settings: Settings) -> int:
    """How many processes ``IMGSCRAPER_PROCESSES = 0`` stands for: on Linux, one per core
    this process may run on, as long as each keeps :data:`MIN_PER_HOST` of the per-host limit;
    one elsewhere (macOS's system libraries do not expect a fork without exec)."""
    if not sys.platform.startswith("linux"):
        return 1
    cores = len(os.sched_getaffinity(0))
    per_host = settings.getint("CONCURRENT_REQUESTS_PER_IP") or settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN")
    return max(1, min(cores, per_host // MIN_PER_HOST, settings.getint("CONCURRENT_REQUESTS") // MIN_PER_HOST))


def dismiss_forked_workers() -> None:
    """End the workers :func:`fork_workers` forked and no crawl took."""
    while _forked:
        proc, sock = _forked.pop()
        sock.close()  # it reads no job, and exits
        proc.wait()


def fork_workers(settings: Settings) -> int:
    """Fork the worker processes a crawl with ``settings`` will start, now; how many.

    Called by the ``crawl`` command before the crawl starts, while this
    process runs no thread and no event loop: a forked worker is ready in a
    fraction of the time a new interpreter takes to import Scrapy (which it
    would spend on a core the crawl needs). A worker that gets no job (the
    crawl kept one process after all) exits when this process closes its
    socket, at the latest when this process exits.
    """
    try:
        processes = settings.getint("IMGSCRAPER_PROCESSES") or automatic_processes(settings)
        # Not with a thread running, nor a Twisted reactor installed (-a render=yes): a
        # forked worker would share its state (the reactor's event loop) with this process.
        if (processes <= 1 or not hasattr(os, "fork") or threading.active_count() > 1
                or "twisted.internet.reactor" in sys.modules
                or CrawlProcesses.why_one_process(settings, processes)):
            return 0
    except ValueError:
        return 0  # a setting that is not a number: the crawl's settings check reports it
    # What the crawl will import, imported once for all the processes.
    import scrapy.core.engine  # noqa: F401, PLC0415
    import scrapy.crawler  # noqa: F401, PLC0415

    import imgscraper.pipelines  # noqa: F401, PLC0415
    import imgscraper.spiders.images  # noqa: F401, PLC0415

    _import_components(settings)

    sys.stdout.flush()
    sys.stderr.flush()
    for _ in range(processes - 1):
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                ours.close()
                for _, sock in _forked:
                    sock.close()
                _forked.clear()
                use_own_event_loop()
                status = run_worker(theirs, forked=True)
            except BaseException:  # noqa: BLE001 (a worker must never return into the command)
                traceback.print_exc()
            finally:
                os._exit(status)
        theirs.close()
        _forked.append((_ForkedProcess(pid), ours))
    return len(_forked)


#: Settings naming one component class each, and those naming a dict of them.
_COMPONENT = ("SCHEDULER", "DOWNLOADER", "STATS_CLASS", "LOG_FORMATTER", "DUPEFILTER_CLASS",
              "REQUEST_FINGERPRINTER_CLASS", "SCHEDULER_PRIORITY_QUEUE", "SCHEDULER_MEMORY_QUEUE",
              "SCHEDULER_DISK_QUEUE", "SPIDER_LOADER_CLASS")
_COMPONENT_DICTS = ("DOWNLOADER_MIDDLEWARES", "SPIDER_MIDDLEWARES", "EXTENSIONS", "ITEM_PIPELINES")


def _import_components(settings: Settings) -> None:
    """Import the classes a crawl with ``settings`` builds (a worker forked after this has them)."""
    paths: list[Any] = [settings.get(name) for name in _COMPONENT]
    for name in _COMPONENT_DICTS:
        paths += [path for path, order in settings.getwithbase(name).items() if order is not None]
    paths += _crawl_download_handlers(settings)
    for path in paths:
        if isinstance(path, str):
            try:
                load_object(path)
            except Exception:  # noqa: BLE001 (the crawl itself reports a component it cannot load)
                continue


def _crawl_download_handlers(settings: Settings) -> list[Any]:
    """The download handlers a crawl with ``settings`` loads as it starts: http, https, data.

    Without a reactor, Scrapy puts its aiohttp handler in place of HTTP11DownloadHandler
    as the crawler starts (see ``Crawler._apply_reactorless_default_settings``); other
    handlers (s3...) are loaded on their first request.
    """
    base = dict(settings.getdict("DOWNLOAD_HANDLERS_BASE"))
    if not settings.getbool("TWISTED_REACTOR_ENABLED"):
        base.update(http=_AIOHTTP_HANDLER, https=_AIOHTTP_HANDLER)
    handlers = {**base, **settings.getdict("DOWNLOAD_HANDLERS")}
    return [handlers.get(scheme) for scheme in ("http", "https", "data")]


_AIOHTTP_HANDLER = "scrapy.core.downloader.handlers._aiohttp.AiohttpDownloadHandler"

#: Event loops made before the fork, kept from the garbage collector (see use_own_event_loop).
_inherited_loops: list[asyncio.AbstractEventLoop] = []


def use_own_event_loop() -> asyncio.AbstractEventLoop:
    """In a forked process: set a new event loop as the current one, and return it.

    The command made its event loop before forking, and that loop's epoll
    instance is shared by both processes: crawling on it would mix their
    sockets, and closing it would unregister the main process's. The
    inherited loop is left alone (and kept from the garbage collector, which
    would close it); the process ends with ``os._exit``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            _inherited_loops.append(asyncio.get_event_loop())
        except RuntimeError:
            pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def _level_number(level: str | int) -> int:
    number = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    return number if isinstance(number, int) else logging.INFO


# -- a worker process ----------------------------------------------------------


class WorkerScheduler(_TakesSpareImages, BaseScheduler):
    """A worker's scheduler: its pages come from the main process, the requests
    its pages bring go there."""

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        _schedulers[crawler] = self
        self.ledger = WorkLedger(2 * crawler.settings.getint("CONCURRENT_REQUESTS"), on_done=self._unit_done)
        self._ready: deque[Request] = deque()
        self._incoming: dict[str, Request] = {}
        self._done_tokens: list[str] = []
        self._done_images: list[str] = []
        self._wanting = False
        self._wanting_pages = False
        self._main_gone = False
        crawler.signals.connect(self.spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(self.ledger.fetched, signal=signals.request_left_downloader)
        for signal_ in (signals.item_scraped, signals.item_dropped, signals.item_error):
            crawler.signals.connect(self.item_done, signal=signal_)
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.send_stats, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> WorkerScheduler:
        return cls(crawler)

    def open(self, spider: Spider) -> None:
        self.spider = spider
        assert _channel is not None
        _channel.on_message = self._on_message
        _channel.on_end = self._on_end
        _channel.start()
        self._want()

    def enqueue_request(self, request: Request) -> bool:
        token = request.meta.get(TOKEN)
        if token is not None and self._incoming.get(token) is request:
            del self._incoming[token]
            self._ready.append(request)
            return True
        parent = request.meta.pop(PARENT, None)
        request.meta.pop(TOKEN, None)
        try:
            assert _channel is not None
            return _channel.send(("requests", [request.to_dict(spider=self.spider)]))
        except (pickle.PicklingError, TypeError, AttributeError, ValueError) as exc:
            # A callback or meta that cannot travel: fetched here, past the shared duplicate filter.
            logger.debug("Keeping %s in this worker (%s)", request.url, exc)
            self._ready.append(request)
            return True
        finally:
            self.ledger.output_done(parent)

    def next_request(self) -> Request | None:
        return self._ready.popleft() if self._ready else None

    def has_pending_requests(self) -> bool:
        return bool(self._ready) or self._starting > 0

    def share_images(self, items: list[Any], batch_size: int) -> None:
        """Send ``items``, spare images of a page, to the main process, which offers them to
        whichever process has room first (kept here if they cannot travel)."""
        assert _channel is not None
        try:
            sent = _channel.send(("images", items, batch_size))
        except (pickle.PicklingError, TypeError, AttributeError, ValueError) as exc:
            logger.debug("Keeping %d images in this worker (%s)", len(items), exc)
            sent = False
        if not sent:
            self._start_images(f"kept-{id(items)}", items)

    def item_done(self, item: Any) -> None:
        if is_item(item) and "url" in ItemAdapter(item):
            self._done_images.append(image_key(ItemAdapter(item)["url"]))
        self.ledger.item_done(item)
        self._want()

    def item_scraped(self, item: Any) -> None:
        assert _channel is not None
        try:
            _channel.send(("item", item))
        except (pickle.PicklingError, TypeError, AttributeError, ValueError):
            _channel.send(("item", ItemAdapter(item).asdict()))  # its fields, for the feeds

    def spider_idle(self) -> None:
        """Report everything done and ask for more, until the main process closes the crawl."""
        self._done_tokens += self.ledger.clear()
        self._flush_done()
        if self._main_gone:
            return
        self._want()
        raise DontCloseSpider

    def send_stats(self) -> None:
        assert _channel is not None and self.crawler.stats is not None
        stats = {k: v for k, v in self.crawler.stats.get_stats().items() if isinstance(v, (int, float))}
        _channel.send(("stats", stats))

    def _unit_done(self, token: str) -> None:
        self._done_tokens.append(token)
        self._flush_done()
        self.send_stats()
        self._want()

    def _flush_done(self) -> None:
        if self._done_tokens or self._done_images:
            assert _channel is not None
            _channel.send(("done", self._done_tokens, self._done_images))
            self._done_tokens, self._done_images = [], []

    def _want(self) -> None:
        if self._main_gone or self._ready or not self.ledger.has_room():
            return
        pages = not self.ledger.busy()
        if not self._wanting or pages != self._wanting_pages:
            assert _channel is not None
            self._wanting, self._wanting_pages = _channel.send(("want", pages)), pages

    def _on_message(self, message: tuple) -> None:
        kind = message[0]
        if kind == "page":
            _, token, data = message
            self._wanting = False
            request = self.ledger.take(request_from_dict(data, spider=self.spider), token)
            self._incoming[token] = request
            self.crawler.engine.crawl(request)
            self._want()
        elif kind == "images":
            _, token, items = message
            self._wanting = False
            self._start_images(token, items)
            self._want()
        elif kind == "claimed":
            SharedImagesMiddleware.answer(message[1], message[2])

    def _on_end(self, why: str) -> None:
        self._main_gone = True
        SharedImagesMiddleware.main_gone()
        engine = self.crawler.engine
        if engine.spider_is_idle():
            deferred_from_coro(engine.close_spider_async(reason="finished"))
        else:
            deferred_from_coro(engine.close_spider_async(reason="shutdown"))


class SharedImagesMiddleware:
    """Spider middleware of a crawl spread over processes: each image is passed
    on by the one process that claimed it; a worker has no start requests."""

    _answers: dict[int, asyncio.Future[list[bool] | None]] = {}
    _numbers = itertools.count(1)

    def __init__(self, crawler: Crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SharedImagesMiddleware:
        return cls(crawler)

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        if in_worker():
            return  # the main process starts the crawl
        async for obj in start:
            yield obj

    async def process_spider_output(self, response: Response, result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        outputs = [obj async for obj in result]
        adapters = {id(obj): ItemAdapter(obj) for obj in outputs if is_item(obj)}
        keys = {key: image_key(adapter["url"]) for key, adapter in adapters.items() if "url" in adapter}
        won = dict(zip(keys, await self._claim(list(keys.values()))))
        scheduler = _schedulers.get(self.crawler)
        ledger = scheduler.ledger if scheduler is not None else WorkLedger(len(outputs))
        token = response.meta.get(TOKEN)
        passed: list[Any] = []
        spare: list[Any] = []
        kept = 0
        for obj in outputs:
            if id(obj) in won:
                if not won[id(obj)]:
                    continue
                if adapters[id(obj)].get("reason") == "filtered":
                    count_filtered(self.crawler.stats)
                if kept >= ledger.max_images:
                    spare.append(obj)
                    continue
                kept += 1
            passed.append(obj)
        found = sum(won.values())
        if found:
            self.crawler.stats.inc_value("imgscraper/images/found", found)
        if len(won) > found:
            self.crawler.stats.inc_value("imgscraper/processes/images_already_claimed", len(won) - found)
        # Counted before anything goes (the scraper pulls the outputs as items finish), and the
        # spare images offered now: the other processes need not wait for this one.
        for obj in passed:
            ledger.output(token, obj)
        ledger.parsed(token, kept)
        if spare and scheduler is not None:
            self.crawler.stats.inc_value("imgscraper/processes/spare_images", len(spare))
            scheduler.share_images(spare, max(1, ledger.max_images // 2))
        for obj in passed:
            yield obj

    async def _claim(self, keys: list[str]) -> list[bool]:
        if not keys:
            return []
        if _channel is None:
            scheduler = _schedulers.get(self.crawler)
            if not isinstance(scheduler, MainScheduler):
                return [True] * len(keys)
            claims = scheduler.claims
            won = claims.claim(0, keys)
            claims.done(keys)  # the main process's claims end with the crawl only
            return won
        number = next(self._numbers)
        future: asyncio.Future[list[bool] | None] = asyncio.get_running_loop().create_future()
        self._answers[number] = future
        # Once the main process stopped sending (the crawl closes) no answer can come.
        if _channel.ended or not _channel.send(("claim", number, keys)):
            del self._answers[number]
            return [False] * len(keys)
        won = await future
        return won if won is not None else [False] * len(keys)

    @classmethod
    def answer(cls, number: int, won: list[bool] | None) -> None:
        """The main process's answer to claim ``number``; None: no answer will come."""
        future = cls._answers.pop(number, None)
        if future is not None and not future.done():
            future.set_result(won)

    @classmethod
    def main_gone(cls) -> None:
        """The main process is gone: the claims waiting for it are lost (their images are left)."""
        for number in list(cls._answers):
            cls.answer(number, None)


def run_worker(sock: socket.socket, *, forked: bool = False) -> int:
    """Run a worker on its end of the socket pair: read its job, crawl, return the exit status.

    A ``forked`` worker keeps the garbage collector's tuning of the process it was forked from.
    """
    global _channel  # noqa: PLW0603
    from scrapy.crawler import AsyncCrawlerProcess  # noqa: PLC0415

    # Ctrl-C reaches the whole process group: the main process decides when this one ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    job = _read_job(sock)
    if job is None:
        return 0  # the crawl kept one process
    settings = Settings(job["settings"], priority="cmdline")
    settings.set("SCHEDULER", "imgscraper.processes.WorkerScheduler", priority="cmdline")
    settings.set_in_component_priority_dict("SPIDER_MIDDLEWARES", SharedImagesMiddleware, 50)
    if not forked:
        tune_garbage_collector(settings.getint("IMGSCRAPER_GC_THRESHOLD"))
    skip_records_below(settings.get("LOG_LEVEL"))
    # The main process has said it, once per scheme.
    logging.getLogger("scrapy.core.downloader.handlers._base_streaming").addFilter(
        lambda record: "is experimental" not in record.getMessage()
    )
    # Before the crawler applies its add-ons: they set up a worker.
    _channel = Channel(sock, lambda message: None, lambda why: None)
    process = AsyncCrawlerProcess(settings)
    process.crawl(_spider_class(job["spider"], job["spider_file"]), **job["arguments"])
    process.start(install_signal_handlers=False)
    return 0


def _source_file(spider_class: type[Spider]) -> str | None:
    """The file ``spider_class`` was defined in, when it is one (not in a zipped egg)."""
    try:
        return inspect.getsourcefile(spider_class)
    except TypeError:
        return None


def _spider_class(path: str, file: str | None) -> type[Spider]:
    """The spider class at import ``path``, else the one of that name in ``file``
    (a spider file run by ``scrapy runspider``, which need not be importable)."""
    try:
        spider_class = load_object(path)
    except (ImportError, NameError, ValueError):
        spider_class = None
    if not (isinstance(spider_class, type) and issubclass(spider_class, Spider)) and file:
        spec = importlib.util.spec_from_file_location(f"imgscraper_spider_file_{os.getpid()}", file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        spider_class = getattr(module, path.rpartition(".")[2])
    return spider_class


def _read_job(sock: socket.socket) -> dict[str, Any] | None:
    """The first message on ``sock`` (blocking), or None if the socket closes first."""
    def read(size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    header = read(_LENGTH.size)
    body = read(_LENGTH.unpack(header)[0]) if header is not None else None
    return pickle.loads(body) if body is not None else None


def main(argv: list[str]) -> None:
    """``python -m imgscraper.processes FD``: run a worker process on the socket ``FD``."""
    sys.exit(run_worker(socket.socket(fileno=int(argv[1]))))


if __name__ == "__main__":
    # In the module the crawl imports (not __main__): its components read _channel there.
    from imgscraper import processes

    processes.main(sys.argv)
