"""One crawl shared by any number of workers through Redis.

Turned on by ``IMGSCRAPER_REDIS_URL``, or by ``IMGSCRAPER_WORKERS > 1`` (local workers
through a private Redis, :mod:`imgscraper.distributed.workers`); the add-on
:class:`imgscraper.addons.distributed.DistributedCrawl` installs these components, and
nothing here is imported otherwise. Pages go
through one shared queue and duplicate filter (scrapy-redis); images, which
Scrapy's media pipeline fetches without its scheduler, are claimed in Redis
so that each is fetched and stored by one worker only.

Workers agree on a crawl by its id, ``IMGSCRAPER_CRAWL_ID`` or, when empty,
one derived from the spider and its arguments (the same command on every
machine is the same crawl). A worker *joins* the crawl if it is running or
was interrupted (it resumes), and *starts it afresh* (empty queue, empty
duplicate filter, no claims) if the last run of that id finished: a
scheduled re-crawl needs nothing but being started again.

A crawl is finished when no page is queued and no worker holds a page.
A worker holds each page it takes (moved atomically from the queue to its
own ``taken`` hash) until the page's links are queued and its images are
done. Workers exit only then, not when their own queue is momentarily
empty. A worker that stops sending heartbeats for
``IMGSCRAPER_REDIS_WORKER_TIMEOUT`` seconds counts as dead: another worker
puts its pages back in the queue, and may take over its image claims.

Redis keys, under ``imgscraper:<crawl id>:``:

``requests`` (sorted set)
    queued page requests (scrapy-redis ``PriorityQueue``)
``dupefilter`` (set)
    fingerprints of every page request seen (scrapy-redis ``RFPDupeFilter``)
``images`` (hash)
    image URL fingerprint -> id of the worker fetching it, or ``""`` once done
``workers`` (set), ``alive:<worker>`` (expiring string), ``taken:<worker>`` (hash)
    members, their heartbeats, the pages each holds
``finished`` (string)
    set when the crawl is done
``output:<lead>`` (list)
    what the local workers of ``lead`` hand it (:mod:`imgscraper.distributed.workers`): items and stats
``slot:<download slot>`` (sorted set)
    the leases of the transfers in flight on a download slot, by expiry (:mod:`imgscraper.distributed.leases`)
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import logging
import os
import pickle
import socket
import uuid
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter, is_item
from scrapy import Request, Spider, signals
from redis.exceptions import RedisError
from scrapy.exceptions import CloseSpider, DontCloseSpider
from scrapy.utils.asyncio import create_looping_call
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.request import request_from_dict
from scrapy_redis import connection, picklecompat
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler

from imgscraper.discovery import image_url_key
from imgscraper.downloader import crawl_stopping
from imgscraper.filters import count_filtered
from imgscraper.exceptions import StoppedBeforeDownload

if TYPE_CHECKING:
    from redis import Redis

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from twisted.internet.defer import Deferred

__all__ = ["SharedCrawl", "SharedImagesMiddleware", "SharedScheduler", "WorkLedger", "crawl_id_of", "image_key"]

logger = logging.getLogger(__name__)

#: Request meta keys: the token of a page a worker took, and of the page a request was found on.
TOKEN = "imgscraper_page_token"
PARENT = "imgscraper_page_parent"
#: Stats each process keeps for itself: the lead worker does not add a local worker's
#: (item_scraped_count: it counts the items it writes to its feeds).
OWN_STATS = ("item_scraped_count", "items_per_minute", "responses_per_minute", "elapsed_time", "memusage/",
             "log_count/", "start_time", "finish_")
#: Seconds between two hand-overs of a local worker's items and stats to its lead.
HAND_OVER_INTERVAL = 0.25
#: The field of a worker's ``taken`` hash held from joining until it is first idle.
STARTING = "starting"
#: Seconds between checks for new work while a worker is idle: one Redis call each,
#: and an idle worker picks up a new page at most this late (0.25 s cost 0.3 s of a 3 s crawl).
IDLE_POLL = 0.05

# Returns 1: started afresh, 0: joined, -1: finished and not joined (ARGV[5] is 0:
# a local worker, which only helps a running crawl).
_JOIN = """
local p, me = ARGV[1], ARGV[2]
local fresh = 0
if ARGV[5] == '0' and redis.call('EXISTS', p .. 'finished') == 1 then return -1 end
if redis.call('EXISTS', p .. 'finished') == 1 then
  for _, w in ipairs(redis.call('SMEMBERS', p .. 'workers')) do
    redis.call('DEL', p .. 'taken:' .. w)
  end
  redis.call('DEL', p .. 'requests', p .. 'dupefilter', p .. 'images', p .. 'workers', p .. 'finished')
  fresh = 1
elseif redis.call('EXISTS', p .. 'workers') == 0 and redis.call('EXISTS', p .. 'requests') == 0 then
  redis.call('DEL', p .. 'dupefilter', p .. 'images')
  fresh = 1
end
redis.call('SADD', p .. 'workers', me)
redis.call('SET', p .. 'alive:' .. me, '1', 'PX', ARGV[3])
redis.call('HSET', p .. 'taken:' .. me, ARGV[4], '')
return fresh
"""

_HEARTBEAT = """
local p, me = ARGV[1], ARGV[2]
redis.call('SET', p .. 'alive:' .. me, '1', 'PX', ARGV[3])
redis.call('SADD', p .. 'workers', me)
"""

_TAKE = """
local p = ARGV[1]
local head = redis.call('ZRANGE', p .. 'requests', 0, 0)
if #head == 0 then return false end
redis.call('ZREMRANGEBYRANK', p .. 'requests', 0, 0)
redis.call('HSET', p .. 'taken:' .. ARGV[2], ARGV[3], head[1])
return head[1]
"""

# Put the pages a worker holds back in the queue (all workers in ARGV[3..] when
# given, else every dead one) and forget the worker.
_RELEASE = """
local p, starting = ARGV[1], ARGV[2]
local workers = {}
if #ARGV > 2 then
  for i = 3, #ARGV do workers[#workers + 1] = ARGV[i] end
else
  for _, w in ipairs(redis.call('SMEMBERS', p .. 'workers')) do
    if redis.call('EXISTS', p .. 'alive:' .. w) == 0 then workers[#workers + 1] = w end
  end
end
local moved = 0
for _, w in ipairs(workers) do
  local taken = redis.call('HGETALL', p .. 'taken:' .. w)
  for i = 1, #taken, 2 do
    if taken[i] ~= starting then
      redis.call('ZADD', p .. 'requests', 0, taken[i + 1])
      moved = moved + 1
    end
  end
  redis.call('DEL', p .. 'taken:' .. w, p .. 'alive:' .. w)
  redis.call('SREM', p .. 'workers', w)
end
return moved
"""

_FINISHED = """
local p = ARGV[1]
if redis.call('EXISTS', p .. 'finished') == 1 then return 1 end
if redis.call('ZCARD', p .. 'requests') > 0 then return 0 end
for _, w in ipairs(redis.call('SMEMBERS', p .. 'workers')) do
  if redis.call('HLEN', p .. 'taken:' .. w) > 0 then return 0 end
end
redis.call('SET', p .. 'finished', '1')
return 1
"""

# For each image fingerprint in ARGV[3..]: 1, the image is now ours; 0: done,
# or being fetched by a live worker.
_CLAIM = """
local p, me = ARGV[1], ARGV[2]
local won = {}
for i = 3, #ARGV do
  local owner = redis.call('HGET', p .. 'images', ARGV[i])
  if owner == false or (owner ~= '' and owner ~= me and redis.call('EXISTS', p .. 'alive:' .. owner) == 0) then
    redis.call('HSET', p .. 'images', ARGV[i], me)
    won[#won + 1] = 1
  else
    won[#won + 1] = 0
  end
end
return won
"""


def image_key(url: str) -> str:
    """The key an image URL is claimed under (as the spider deduplicates it)."""
    return hashlib.sha1(image_url_key(url).encode("utf-8")).hexdigest()


@dataclass
class _Unit:
    """A request this worker took from the queue: still being fetched, parsed, outputs pending."""

    fetching: bool = True
    parsed: bool = False
    pending: int = 0


class WorkLedger:
    """The requests (pages, style sheets) a worker took and the images they brought.

    A taken request stays *held* until it is parsed and everything it yielded
    has gone through the engine; ``on_done(token)`` is called then.
    :meth:`busy` says whether the worker has enough work for now.
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

    def fetched(self, request: Request) -> None:
        unit = self.units.get(request.meta.get(TOKEN, ""))
        if unit is not None:
            unit.fetching = False

    def busy(self) -> bool:
        """Whether this worker expects at least ``max_images`` images to fetch soon: those of
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

    def clear(self) -> None:
        """The worker is idle: everything it held is done."""
        self.units.clear()
        self._item_units.clear()
        self.images_in_progress = 0

    def _maybe_done(self, token: str) -> None:
        unit = self.units[token]
        if unit.parsed and unit.pending <= 0:
            del self.units[token]
            if self.on_done is not None:
                self.on_done(token)


def crawl_id_of(spider: Spider) -> str:
    """The default crawl id: the spider's name and a digest of its arguments."""
    args = {
        name: getattr(spider, name, None)
        for name in ("start_urls", "depth", "follow_domains", "follow_any_domain", "download")
    }
    digest = hashlib.sha1(json.dumps(args, sort_keys=True, default=str).encode("utf-8")).hexdigest()
    return f"{spider.name}-{digest[:12]}"


class SharedCrawl:
    """This worker's membership of one shared crawl (see the module docstring).

    One per crawler, shared by the scheduler and the spider middleware:
    :meth:`of`. Its methods call Redis synchronously, like scrapy-redis does.
    """

    _instances: weakref.WeakKeyDictionary[Crawler, SharedCrawl] = weakref.WeakKeyDictionary()

    def __init__(self, crawler: Crawler):
        settings = crawler.settings
        self.crawler = crawler
        self.server: Redis = connection.get_redis_from_settings(settings)
        self.configured_id: str = settings.get("IMGSCRAPER_CRAWL_ID") or ""
        self.timeout_ms = int(settings.getfloat("IMGSCRAPER_REDIS_WORKER_TIMEOUT") * 1000)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.crawl_id = ""
        self.prefix = ""
        self.joined = False
        #: The worker that writes this worker's items to its feeds and counts its stats
        #: (set on the local workers the crawl command starts): see :meth:`hand_over`.
        self.lead: str = settings.get("IMGSCRAPER_LEAD_WORKER") or ""
        self._tokens = itertools.count(1)
        #: The pages this worker holds and the images they brought.
        self.ledger = WorkLedger(settings.getint("CONCURRENT_REQUESTS"), on_done=self._page_done)
        # Fingerprints of images done but not yet marked so in Redis: written
        # with the next page done (one round trip per page, not per image).
        self._done_images: list[str] = []
        #: Items and stats for the lead, written with the images done.
        self._outgoing: list[bytes] = []
        # Fingerprints of images claimed but not fetched, the crawl stopping: unclaimed on leaving.
        self._stopped_images: list[str] = []
        self._scripts = {
            name: self.server.register_script(source)
            for name, source in (
                ("join", _JOIN), ("heartbeat", _HEARTBEAT), ("take", _TAKE),
                ("release", _RELEASE), ("finished", _FINISHED), ("claim", _CLAIM),
            )
        }

    @classmethod
    def of(cls, crawler: Crawler) -> SharedCrawl:
        """The crawler's :class:`SharedCrawl`, created on first use."""
        if crawler not in cls._instances:
            cls._instances[crawler] = cls(crawler)
        return cls._instances[crawler]

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def _run(self, script: str, *args: Any) -> Any:
        return self._scripts[script](args=[self.prefix, *args])

    # -- membership -------------------------------------------------------

    def join(self, spider: Spider) -> bool | None:
        """Join (or start afresh, returning True) the crawl of ``spider``.

        None: the crawl is finished and this worker, which has a lead, did not join.
        """
        self.crawl_id = self.configured_id or crawl_id_of(spider)
        self.prefix = f"imgscraper:{self.crawl_id}:"
        joined = self._run("join", self.worker, self.timeout_ms, STARTING, 0 if self.lead else 1)
        if joined < 0:
            logger.info("Shared crawl %s is finished: nothing left to do", self.crawl_id)
            return None
        self.joined = True
        self.crawler.stats.set_value("imgscraper/shared/crawl_id", self.crawl_id)
        self.crawler.stats.set_value("imgscraper/shared/worker", self.worker)
        logger.info(
            "%s shared crawl %s as worker %s (Redis keys %s*)",
            "Started" if joined else "Joined", self.crawl_id, self.worker, self.prefix,
        )
        if self.lead:
            self.server.rpush(self.output_key(self.lead), pickle.dumps(("joined", self.worker, os.getpid())))
        return bool(joined)

    def output_key(self, lead: str) -> str:
        """The list where the local workers of ``lead`` hand it their items and stats."""
        return self.key(f"output:{lead}")

    def heartbeat(self) -> None:
        """Say this worker is alive; put the pages of dead workers back in the queue."""
        self._run("heartbeat", self.worker, self.timeout_ms)
        moved = self._run("release", STARTING)
        if moved:
            self.crawler.stats.inc_value("imgscraper/shared/pages_recovered", moved)
            logger.warning("Put %d pages of stopped workers back in the shared queue", moved)

    def leave(self) -> None:
        """Leave the crawl, putting any page still held back in the queue."""
        if not self.joined:
            return
        self.joined = False
        self.flush(final=True)
        if self._stopped_images:
            self.server.hdel(self.key("images"), *self._stopped_images)
        moved = self.release(self.worker)
        if moved:
            logger.info("Put %d unfinished pages back in the shared queue", moved)
        if self.lead:
            self.server.rpush(self.output_key(self.lead), pickle.dumps(("left", self.worker)))

    def release(self, worker: str) -> int:
        """Put the pages ``worker`` holds back in the queue, and forget it (its images may
        be claimed again); how many pages."""
        return self._run("release", STARTING, worker)

    def finished(self) -> bool:
        """Whether the whole crawl is done (and mark it so)."""
        return bool(self._run("finished"))

    # -- pages ------------------------------------------------------------

    def take(self) -> tuple[str, bytes] | None:
        """Move the next queued page into this worker's hold: (token, encoded request)."""
        token = str(next(self._tokens))
        data = self._run("take", self.worker, token)
        return (token, data) if data is not None else None

    def all_pages_done(self) -> None:
        """This worker is idle: every page it took is finished."""
        pipe = self.server.pipeline()
        self._flush(pipe, final=True)
        pipe.delete(self.key(f"taken:{self.worker}"))
        pipe.execute()
        self.ledger.clear()

    def item_done(self, item: Any) -> None:
        # Before the ledger lets the page go (_page_done): its images are marked done with it.
        if is_item(item) and "url" in ItemAdapter(item):
            self._done_images.append(image_key(ItemAdapter(item)["url"]))
        self.ledger.item_done(item)

    def item_stopped(self, item: Any) -> None:
        """An image not fetched because the crawl stopped: its page stays held (back in the
        queue when this worker leaves) and its claim is given up then."""
        self._stopped_images.append(image_key(ItemAdapter(item)["url"]))

    def hand_over(self, item: Any) -> None:
        """Pass a scraped item to the lead (when this worker has one), with its image marked done."""
        if not self.lead:
            return
        try:
            data = pickle.dumps(("item", self.worker, item), protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError):
            data = pickle.dumps(("item", self.worker, ItemAdapter(item).asdict()), protocol=pickle.HIGHEST_PROTOCOL)
        self._outgoing.append(data)

    def flush(self, *, final: bool = False) -> None:
        """Mark the images done so far, and hand the lead this worker's items and stats."""
        pipe = self.server.pipeline()
        self._flush(pipe, final=final)
        pipe.execute()

    def _flush(self, client: Any, *, final: bool = False) -> None:
        """Images done, and the items they brought to the lead, in one transaction: an item
        reaches the lead if and only if no other worker will fetch its image again."""
        if self._done_images:
            client.hset(self.key("images"), mapping=dict.fromkeys(self._done_images, ""))
            self._done_images = []
        if not self.lead:
            return
        if final or self._outgoing:
            stats = {name: value for name, value in self.crawler.stats.get_stats().items()
                     if isinstance(value, (int, float)) and not name.startswith(OWN_STATS)}
            self._outgoing.append(pickle.dumps(("stats", self.worker, stats), protocol=pickle.HIGHEST_PROTOCOL))
        if self._outgoing:
            client.rpush(self.output_key(self.lead), *self._outgoing)
            self._outgoing = []

    def _page_done(self, token: str) -> None:
        """The page ``token`` is parsed and all it yielded is through: mark its images done, let it go."""
        pipe = self.server.pipeline()
        self._flush(pipe)
        pipe.hdel(self.key(f"taken:{self.worker}"), token)
        pipe.execute()

    # -- images -----------------------------------------------------------

    def claim_images(self, urls: list[str]) -> list[bool]:
        """For each of ``urls``, whether this worker is the one to fetch it (no other did or does)."""
        if not urls:
            return []
        return [bool(won) for won in self._run("claim", self.worker, *(image_key(url) for url in urls))]


class SharedScheduler(Scheduler):
    """scrapy-redis's scheduler, with pages held by the worker that took them
    and the crawl's end agreed by all workers (see the module docstring).

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


class SharedImagesMiddleware:
    """Spider middleware: each image URL is passed on by one worker only, and
    each page is held until all it yielded has gone through the engine."""

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        self.shared = SharedCrawl.of(crawler)
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

    def _parsed(self, outputs: list[Any], token: str | None) -> list[Any]:
        kept = self._kept(outputs, token)
        # A page parsed while the crawl stops yields no image (ImagesSpider.new_images): it stays held.
        if not crawl_stopping(self.crawler):
            self.shared.ledger.parsed(token, images=sum(1 for obj in kept if not isinstance(obj, Request)))
        return kept

    def _kept(self, outputs: list[Any], token: str | None) -> list[Any]:
        """The page's outputs without the images other workers (or this one) already have.

        All of a page's images are claimed in one round trip to Redis.
        """
        images = [obj for obj in outputs if is_item(obj) and "url" in ItemAdapter(obj)]
        won = dict(zip(map(id, images), self.shared.claim_images([ItemAdapter(obj)["url"] for obj in images])))
        kept = []
        for obj in outputs:
            if id(obj) in won:
                if not won[id(obj)]:
                    self.crawler.stats.inc_value("imgscraper/shared/images_already_claimed")
                    continue
                self.crawler.stats.inc_value("imgscraper/images/found")
                if ItemAdapter(obj).get("reason") == "filtered":
                    count_filtered(self.crawler.stats)
            self.shared.ledger.output(token, obj)
            kept.append(obj)
        return kept

    def process_spider_output(self, response: Response, result: Iterable[Any]) -> Iterable[Any]:
        yield from self._parsed(list(result), response.meta.get(TOKEN))

    async def process_spider_output_async(self, response: Response, result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        for obj in self._parsed([obj async for obj in result], response.meta.get(TOKEN)):
            yield obj
