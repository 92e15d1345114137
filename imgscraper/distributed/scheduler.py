"""The scheduler of a shared crawl's workers (see :mod:`imgscraper.distributed`).

:class:`SharedScheduler` is scrapy-redis's scheduler (one queue and one duplicate
filter in Redis for all workers) with two changes: a page a worker takes stays
held by it (:class:`~imgscraper.distributed.ledger.WorkLedger`) until everything it
yielded is through, and a worker whose queue is empty stays open until the whole
crawl is finished.
"""

from __future__ import annotations

import importlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from scrapy import Request, Spider, signals
from scrapy.exceptions import CloseSpider, DontCloseSpider
from scrapy.utils.asyncio import create_looping_call
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.request import request_from_dict
from scrapy_redis import connection, picklecompat
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler

from imgscraper.distributed.crawl import SharedCrawl
from imgscraper.distributed.ledger import PARENT, TOKEN

if TYPE_CHECKING:
    from redis import Redis

    from scrapy.crawler import Crawler
    from twisted.internet.defer import Deferred

__all__ = ["SharedScheduler"]

logger = logging.getLogger(__name__)

#: Seconds between two hand-overs of a local worker's items and stats to its lead.
HAND_OVER_INTERVAL = 0.25
#: Seconds between checks for new work while a worker is idle: one Redis call each,
#: and an idle worker picks up a new page at most this late (0.25 s cost 0.3 s of a 3 s crawl).
IDLE_POLL = 0.05


class SharedScheduler(Scheduler):
    """scrapy-redis's scheduler, with pages held by the worker that took them
    and the crawl's end agreed by all workers (see the module doc).

    A worker takes another page only while it expects fewer than
    ``CONCURRENT_REQUESTS`` images to fetch (those of its pages, and an
    estimate for the pages it is fetching): the pages it could not start soon
    are left to idle workers.
    """

    def __init__(self, server: Redis, *, crawler: Crawler, **kwargs: Any):
        super().__init__(server, **kwargs)
        self.crawler = crawler
        self.shared = SharedCrawl.of(crawler)
        self.error = ""
        self._ready: deque[Request] = deque()
        self._held: dict[str, Request] = {}
        interval = self.shared.timeout_ms / 3000
        self._heartbeat = create_looping_call(self.shared.heartbeat)
        self._heartbeat_interval = interval
        self._idle_poll = create_looping_call(self._poll)
        self._hand_over = create_looping_call(self.shared.flush)
        crawler.signals.connect(self.spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(self.request_left_downloader, signal=signals.request_left_downloader)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SharedScheduler:
        settings = crawler.settings
        server = connection.get_redis_from_settings(settings)
        serializer = settings.get("SCHEDULER_SERIALIZER") or picklecompat
        if isinstance(serializer, str):
            serializer = importlib.import_module(serializer)
        scheduler = cls(server, crawler=crawler, persist=True, serializer=serializer)
        scheduler.stats = crawler.stats
        return scheduler

    def open(self, spider: Spider) -> None:
        self.spider = spider
        try:
            joined = self.shared.join(spider)
        except RedisError as exc:
            # One clear line, then the spider is closed as soon as it is open.
            self.error = f"Cannot join the shared crawl at {self.crawler.settings.get('REDIS_URL')}: {exc}"
            self.crawler.signals.connect(self._refuse, signal=signals.spider_opened)
            return
        if joined is None:
            self.error = "finished"
            self.crawler.signals.connect(self._refuse, signal=signals.spider_opened)
            return
        self.queue = PriorityQueue(
            server=self.server, spider=spider, key=self.shared.key("requests"), serializer=self.serializer
        )
        self.df = RFPDupeFilter(
            self.server, key=self.shared.key("dupefilter"), debug=spider.settings.getbool("DUPEFILTER_DEBUG")
        )
        self._heartbeat.start(self._heartbeat_interval, now=False)
        if self.shared.lead:
            self._hand_over.start(HAND_OVER_INTERVAL, now=False)

    def _refuse(self) -> None:
        if self.error == "finished":  # a local worker started after the crawl's end
            raise CloseSpider("finished")
        logger.error(self.error)
        raise CloseSpider("shared_crawl_unavailable")

    def close(self, reason: str) -> Deferred[None] | None:
        for loop in (self._heartbeat, self._idle_poll, self._hand_over):
            if loop.running:
                loop.stop()
        self.shared.leave()

    def enqueue_request(self, request: Request) -> bool:
        if self.error:
            return False
        token = request.meta.get(TOKEN)
        if token is not None and self._held.get(token) is request:
            # A page this worker already took (see _poll): no need to queue it again.
            del self._held[token]
            self._ready.append(request)
            return True
        parent = request.meta.pop(PARENT, None)
        request.meta.pop(TOKEN, None)
        try:
            # scrapy-redis's enqueue_request, without its deprecated stats call.
            if not request.dont_filter and self.df.request_seen(request):
                self.df.log(request, self.spider)
                return False
            if self.stats:
                self.stats.inc_value("scheduler/enqueued/redis")
            self.queue.push(request)
            return True
        finally:
            self.shared.ledger.output_done(parent)

    def next_request(self) -> Request | None:
        if self.error:
            return None
        if self._ready:
            return self._ready.popleft()
        if self.shared.ledger.busy():
            return None
        taken = self.shared.take()
        return self._decode(*taken) if taken is not None else None

    def has_pending_requests(self) -> bool:
        if self.error:
            return False
        return bool(self._ready) or len(self.queue) > 0

    # -- the end of the crawl ----------------------------------------------

    def spider_idle(self) -> None:
        """Keep an idle worker open until the whole crawl is finished."""
        if self.error:
            return
        self.shared.all_pages_done()
        if self.shared.finished():
            return
        if not self._idle_poll.running:
            self._idle_poll.start(IDLE_POLL, now=False)
        raise DontCloseSpider

    def _poll(self) -> None:
        """While idle: hand the engine the next queued page, or close when the crawl is over."""
        engine = self.crawler.engine
        taken = self.shared.take()
        if taken is not None:
            self._idle_poll.stop()
            request = self._decode(*taken)
            self._held[request.meta[TOKEN]] = request
            engine.crawl(request)
        elif self.shared.finished():
            self._idle_poll.stop()
            deferred_from_coro(engine.close_spider_async(reason="finished"))

    def request_left_downloader(self, request: Request) -> None:
        self.shared.ledger.fetched(request)

    def _decode(self, token: str, data: bytes) -> Request:
        request = self.shared.ledger.take(request_from_dict(self.serializer.loads(data), spider=self.spider), token)
        if self.stats:
            self.stats.inc_value("scheduler/dequeued/redis")
            self.stats.inc_value("imgscraper/shared/pages_taken")
        return request
