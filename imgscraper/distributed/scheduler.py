"""The scheduler of a shared crawl's workers (see :mod:`imgscraper.distributed`).

:class:`SharedScheduler` is scrapy-redis's scheduler (one queue and one duplicate
filter in Redis for all workers, their keys and encoding) with these changes:

* it never waits for Redis: Scrapy asks a scheduler for requests and gives it
  requests synchronously, so requests to queue are pushed in the background
  (the requests of one event-loop turn in one round trip), and the next page
  is taken from the shared queue in the background into a local buffer, the
  engine woken when it arrives;
* a page a worker takes stays held by it (:class:`~imgscraper.distributed.ledger.WorkLedger`)
  until everything it yielded is through (its links queued in Redis);
* ``IMGSCRAPER_MAX_PAGES`` holds for the crawl as a whole: a page is queued only
  while the crawl's page budget, counted in Redis, allows it;
* a worker whose queue is empty stays open until the whole crawl is finished.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from scrapy import Request, Spider, signals
from scrapy.exceptions import CloseSpider, DontCloseSpider
from scrapy.utils.asyncio import is_asyncio_available
from scrapy.utils.defer import deferred_from_coro
from scrapy_redis import picklecompat
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler

from imgscraper.distributed.crawl import SharedCrawl
from imgscraper.distributed.ledger import PARENT, TOKEN

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from scrapy.crawler import Crawler
    from twisted.internet.defer import Deferred

__all__ = ["SharedScheduler"]

logger = logging.getLogger(__name__)

#: Seconds between two hand-overs of a local worker's items and stats to its lead.
HAND_OVER_INTERVAL = 0.25
#: Seconds between checks for new work while a worker is idle: one Redis call each,
#: and an idle worker picks up a new page at most this late (0.25 s cost 0.3 s of a 3 s crawl).
IDLE_POLL = 0.05
#: The request meta key of the spider's pages (what ``IMGSCRAPER_MAX_PAGES`` counts).
PAGE = "imgscraper_page"

# Queue requests: ARGV[2] is the crawl's page budget (0: none), then for each request
# its fingerprint ('' : not filtered), score, encoded request and '1' if it is a page to
# count. For each: 1 queued, 0 seen before, 2 over the page budget, 3 the first over it.
_ENQUEUE = """
local p, budget = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 4 do
  local fp, page = ARGV[i], ARGV[i + 3] == '1'
  local answer = 1
  if fp ~= '' and redis.call('SISMEMBER', p .. 'dupefilter', fp) == 1 then
    answer = 0
  elseif page and budget > 0 and tonumber(redis.call('GET', p .. 'pages') or '0') >= budget then
    answer = redis.call('SETNX', p .. 'pages_over_budget', '1') == 1 and 3 or 2
  else
    if fp ~= '' then redis.call('SADD', p .. 'dupefilter', fp) end
    if page then redis.call('INCR', p .. 'pages') end
    redis.call('ZADD', p .. 'requests', ARGV[i + 1], ARGV[i + 2])
  end
  out[#out + 1] = answer
end
return out
"""


class SharedScheduler(Scheduler):
    """scrapy-redis's scheduler, with pages held by the worker that took them
    and the crawl's end agreed by all workers (see the module doc).

    A worker takes another page only while it expects fewer than twice
    ``CONCURRENT_REQUESTS`` images to fetch (those of its pages, and an
    estimate for the pages it is fetching): the pages it could not start soon
    are left to idle workers.
    """

    def __init__(self, server: Redis, *, crawler: Crawler, max_pages: int = 0, **kwargs: Any):
        super().__init__(server, **kwargs)
        self.crawler = crawler
        self.shared = SharedCrawl.of(crawler)
        self.max_pages = max_pages
        self.error = ""
        #: Pages taken from the shared queue, for the engine.
        self._ready: deque[Request] = deque()
        #: Requests to queue in Redis, with the token of the page that yielded them.
        self._outbox: list[tuple[Request, str | None]] = []
        self._pushing = False
        self._taking = False
        #: Pages left in the shared queue when this worker last took one, and those it queued since.
        self._queued = 0
        #: When to look at the shared queue again, found empty (other workers may fill it).
        self._next_look = 0.0
        self._idle: asyncio.Future[None] | None = None
        self._finished = False
        self._loops: list[asyncio.Future[None]] = []
        self._enqueue = self.shared.register_script(_ENQUEUE)
        crawler.signals.connect(self.spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(self.request_left_downloader, signal=signals.request_left_downloader)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SharedScheduler:
        settings = crawler.settings
        serializer = settings.get("SCHEDULER_SERIALIZER") or picklecompat
        if isinstance(serializer, str):
            serializer = importlib.import_module(serializer)
        shared = SharedCrawl.of(crawler)
        scheduler = cls(shared.server, crawler=crawler, persist=True, serializer=serializer,
                        max_pages=settings.getint("IMGSCRAPER_MAX_PAGES"))
        scheduler.stats = crawler.stats
        return scheduler

    def open(self, spider: Spider) -> Deferred[None]:
        return deferred_from_coro(self._open(spider))

    async def _open(self, spider: Spider) -> None:
        self.spider = spider
        if not is_asyncio_available():
            self.error = "A shared crawl needs Twisted's asyncio reactor (TWISTED_REACTOR)"
            self.crawler.signals.connect(self._refuse, signal=signals.spider_opened)
            return
        try:
            joined = await self.shared.join(spider)
        except (RedisError, OSError) as exc:
            # One clear line, then the spider is closed as soon as it is open.
            self.error = f"Cannot join the shared crawl at {self.crawler.settings.get('REDIS_URL')}: {exc}"
            self.crawler.signals.connect(self._refuse, signal=signals.spider_opened)
            return
        if joined is None:
            self.error = "finished"
            self.crawler.signals.connect(self._refuse, signal=signals.spider_opened)
            return
        # scrapy-redis's queue and duplicate filter give the keys and the encoding; the
        # requests go in and out through scripts (_ENQUEUE, SharedCrawl.take).
        self.queue = PriorityQueue(
            server=self.server, spider=spider, key=self.shared.key("requests"), serializer=self.serializer
        )
        self.df = RFPDupeFilter(
            self.server, key=self.shared.key("dupefilter"), debug=spider.settings.getbool("DUPEFILTER_DEBUG")
        )
        self.shared.on_event("close", self._crawl_closing)
        self._loops.append(self.shared.spawn(self._heartbeats(self.shared.timeout_ms / 3000)))
        if self.shared.lead:
            self._loops.append(self.shared.spawn(self._hand_over()))

    def _refuse(self) -> None:
        if self.error == "finished":  # a local worker started after the crawl's end
            raise CloseSpider("finished")
        logger.error(self.error)
        raise CloseSpider("shared_crawl_unavailable")

    def close(self, reason: str) -> Deferred[None]:
        return deferred_from_coro(self._close(reason))

    async def _close(self, reason: str) -> None:
        await self.shared.stop(*self._loops, self._idle)
        await self.shared.leave()

    async def _heartbeats(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.shared.heartbeat()  # tells _crawl_closing if the crawl closes

    def _crawl_closing(self, reason: str) -> None:
        """The crawl closes (at a limit: ``CLOSESPIDER_*``, ``max_images``): this worker too."""
        self._finished = True
        self.shared.close_worker(reason)

    async def _hand_over(self) -> None:
        while True:
            await asyncio.sleep(HAND_OVER_INTERVAL)
            await self.shared.write()

    # -- requests in -------------------------------------------------------

    def enqueue_request(self, request: Request) -> bool:
        """Queue ``request`` in Redis, in the background: a duplicate, or a page over the crawl's
        budget, is dropped then (``request_dropped``)."""
        if self.error:
            return False
        parent = request.meta.pop(PARENT, None)
        request.meta.pop(TOKEN, None)
        self._outbox.append((request, parent))
        if not self._pushing:
            self._pushing = True
            self.shared.spawn(self._push())
        return True

    async def _push(self) -> None:
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                args: list[Any] = []
                for request, _ in batch:
                    counted = PAGE in request.meta and not request.dont_filter and "redirect_urls" not in request.meta
                    args += ["" if request.dont_filter else self.df.request_fingerprint(request), -request.priority,
                             self.queue._encode_request(request), "1" if counted else "0"]
                try:
                    answers = await self._enqueue(self.max_pages, *args)
                finally:
                    for _, parent in batch:
                        self.shared.ledger.output_done(parent)
                for (request, _), answer in zip(batch, answers):
                    self._pushed(request, answer)
                self._queued += answers.count(1)
        finally:
            self._pushing = False
            self._wake_engine()

    def _pushed(self, request: Request, answer: int) -> None:
        if answer == 1:
            self.stats.inc_value("scheduler/enqueued/redis")
            return
        if answer == 0:
            self.df.log(request, self.spider)
        else:
            if answer == 3 and not self.stats.get_value("imgscraper/pages_over_budget"):
                logger.warning("Page budget reached (IMGSCRAPER_MAX_PAGES=%d): no more pages are followed",
                               self.max_pages)
            self.stats.inc_value("imgscraper/pages_over_budget")
        self.crawler.signals.send_catch_log(signals.request_dropped, request=request, spider=self.spider)

    # -- requests out ------------------------------------------------------

    def next_request(self) -> Request | None:
        if self.error:
            return None
        if self._ready:
            return self._ready.popleft()
        if self._taking or self._idle or self.shared.ledger.busy():
            return None
        if self._queued or time.monotonic() >= self._next_look:
            self._taking = True
            self.shared.spawn(self._take_page())
        return None

    async def _take_page(self) -> None:
        try:
            taken = await self.shared.take()
        finally:
            self._taking = False
        if taken is not None:
            self._queued = taken[2]
            self._ready.append(self._decode(taken[0], taken[1]))
        else:
            self._queued = 0
            self._next_look = time.monotonic() + IDLE_POLL
        self._wake_engine()

    def has_pending_requests(self) -> bool:
        if self.error:
            return False
        return bool(self._ready or self._outbox or self._pushing or self._taking or self._queued)

    def _wake_engine(self) -> None:
        """Have the engine ask for requests, and see whether it is idle, now rather than at its next heartbeat."""
        engine = self.crawler.engine
        if engine is not None and engine._slot is not None:  # noqa: SLF001 (Scrapy has no public way)
            engine._slot.nextcall.schedule()  # noqa: SLF001

    # -- the end of the crawl ----------------------------------------------

    def spider_idle(self) -> None:
        """Keep an idle worker open until the whole crawl is finished."""
        if self.error or self._finished:
            return
        if self._idle is None:
            self._idle = self.shared.spawn(self._wait_for_work())
        raise DontCloseSpider

    async def _wait_for_work(self) -> None:
        """While idle: hand the engine the next queued page, or close when the crawl is over."""
        try:
            await self.shared.all_pages_done()
            while True:
                taken = await self.shared.take()
                if taken is not None:
                    self._queued = taken[2]
                    self._ready.append(self._decode(taken[0], taken[1]))
                    return
                if await self.shared.finished():
                    self._finished = True  # the engine, idle, closes the spider (spider_idle)
                    return
                await asyncio.sleep(IDLE_POLL)
        finally:
            self._idle = None
            self._wake_engine()

    def request_left_downloader(self, request: Request) -> None:
        self.shared.ledger.fetched(request)

    def _decode(self, token: str, data: bytes) -> Request:
        request = self.shared.ledger.take(self.queue._decode_request(data), token)
        self.stats.inc_value("scheduler/dequeued/redis")
        self.stats.inc_value("imgscraper/shared/pages_taken")
        return request
