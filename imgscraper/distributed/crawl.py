"""This worker's membership of a shared crawl, in Redis (see :mod:`imgscraper.distributed`).

:class:`SharedCrawl` joins the crawl, sends heartbeats, moves pages from the
queue into this worker's hold and lets them go, claims images, and hands a
local worker's items and stats to its lead. Each step that reads and writes
several keys is one Lua script: Redis runs it atomically, so no worker sees
another's step half done.

Every call is made with redis-py's asyncio client on the reactor's event loop
(the crawl runs on Twisted's asyncio reactor): a worker never waits for Redis
with its event loop stopped. What a worker tells Redis in passing (images done,
pages let go, items for the lead) is written in the background, in order, one
transaction at a time (:meth:`SharedCrawl.write`).

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
``pages`` (string), ``pages_over_budget`` (string)
    how many pages the crawl queued, for ``IMGSCRAPER_MAX_PAGES`` (:mod:`imgscraper.distributed.scheduler`),
    and whether one was left out for it
``run`` (hash)
    this run of the crawl (from the first worker joining to the last leaving): ``started`` (ms), the
    counters of ``CLOSESPIDER_*`` and ``closing``, the reason the crawl is closing for
    (:mod:`imgscraper.distributed.closespider`); the places of ``max_images``
    (:mod:`imgscraper.distributed.imagelimit`)
``events`` (pub/sub channel)
    ``close <reason>``, ``freed <slot>``, ``wanted <slot>``, ``places <count>``: what a worker tells the others
    at once
``robots`` (hash)
    robots.txt URL -> the answer a worker got (:mod:`imgscraper.distributed.robotstxt`)
``phashes``, ``phashes:<band>``, ``phashes:by`` (hashes), ``phashes:ids`` (string)
    the perceptual hashes of the images the crawl stored, for ``IMGSCRAPER_NEAR_DUPLICATES=skip``
    (:mod:`imgscraper.distributed.nearduplicates`)
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import os
import pickle
import socket
import time
import uuid
import weakref
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter, is_item
from redis.exceptions import RedisError
from scrapy import Spider
from scrapy.utils.defer import deferred_from_coro
from scrapy_redis import connection

from imgscraper import signals as imgscraper_signals
from imgscraper.discovery.urls import image_url_key
from imgscraper.distributed.ledger import WorkLedger

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

__all__ = ["SharedCrawl", "crawl_id_of", "image_key", "redis_from_settings"]

logger = logging.getLogger(__name__)

#: Stats each process keeps for itself: the lead worker does not add a local worker's
#: (item_scraped_count: it counts the items it writes to its feeds).
OWN_STATS = ("item_scraped_count", "items_per_minute", "responses_per_minute", "elapsed_time", "memusage/",
             "log_count/", "start_time", "finish_", "imgscraper/max_images_reached")
#: Seconds a local worker waits for its lead to join the crawl before it gives up.
LEAD_JOINS_WITHIN = 60.0
#: The field of a worker's ``taken`` hash held from joining until it is first idle.
STARTING = "starting"

# Returns 1: started afresh, 0: joined, -1: finished and not joined, -2: not joined, its
# lead has not joined yet (ARGV[5] is 0: a local worker, which only helps a running crawl,
# the one its lead ARGV[6] joined). A worker that finds no live worker starts a new run of
# the crawl (its CLOSESPIDER_* counters from zero).
_JOIN = """
local p, me = ARGV[1], ARGV[2]
local fresh = 0
if ARGV[5] == '0' and redis.call('EXISTS', p .. 'finished') == 1 then return -1 end
if ARGV[5] == '0' and redis.call('SISMEMBER', p .. 'workers', ARGV[6]) == 0 then return -2 end
if redis.call('EXISTS', p .. 'finished') == 1 then
  for _, w in ipairs(redis.call('SMEMBERS', p .. 'workers')) do
    redis.call('DEL', p .. 'taken:' .. w)
  end
  redis.call('DEL', p .. 'requests', p .. 'workers', p .. 'finished')
  fresh = 1
elseif redis.call('EXISTS', p .. 'workers') == 0 and redis.call('EXISTS', p .. 'requests') == 0 then
  fresh = 1
end
if fresh == 1 then
  redis.call('DEL', p .. 'dupefilter', p .. 'images', p .. 'pages', p .. 'pages_over_budget', p .. 'phashes',
    p .. 'phashes:ids', p .. 'phashes:by', p .. 'robots', p .. 'phashes:0', p .. 'phashes:1', p .. 'phashes:2', p .. 'phashes:3')
end
local running = false
for _, w in ipairs(redis.call('SMEMBERS', p .. 'workers')) do
  if redis.call('EXISTS', p .. 'alive:' .. w) == 1 then running = true end
end
if not running then
  local t = redis.call('TIME')
  redis.call('DEL', p .. 'run')
  redis.call('HSET', p .. 'run', 'started', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
redis.call('SADD', p .. 'workers', me)
redis.call('SET', p .. 'alive:' .. me, '1', 'PX', ARGV[3])
redis.call('HSET', p .. 'taken:' .. me, ARGV[4], '')
return fresh
"""

# Returns the reason the crawl is closing for, if it is.
_HEARTBEAT = """
local p, me = ARGV[1], ARGV[2]
redis.call('SET', p .. 'alive:' .. me, '1', 'PX', ARGV[3])
redis.call('SADD', p .. 'workers', me)
return redis.call('HGET', p .. 'run', 'closing')
"""

# Returns {} (the queue is empty) or {the page's encoded request, pages left in the queue}.
_TAKE = """
local p = ARGV[1]
local head = redis.call('ZRANGE', p .. 'requests', 0, 0)
if #head == 0 then return {} end
redis.call('ZREMRANGEBYRANK', p .. 'requests', 0, 0)
redis.call('HSET', p .. 'taken:' .. ARGV[2], ARGV[3], head[1])
return {head[1], redis.call('ZCARD', p .. 'requests')}
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

# The crawl closes for ARGV[2] (the first reason given wins): every worker is told.
_CLOSE = """
local p = ARGV[1]
if redis.call('HSETNX', p .. 'run', 'closing', ARGV[2]) == 1 then
  redis.call('PUBLISH', p .. 'events', 'close ' .. ARGV[2])
end
return redis.call('HGET', p .. 'run', 'closing')
"""

# Milliseconds since this run of the crawl started.
_RUN_AGE = """
local t = redis.call('TIME')
local started = tonumber(redis.call('HGET', ARGV[1] .. 'run', 'started') or '0')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - started
"""


def image_key(url: str) -> str:
    """The key an image URL is claimed under (as the spider deduplicates it)."""
    return hashlib.sha1(image_url_key(url).encode("utf-8")).hexdigest()


def redis_from_settings(settings: BaseSettings) -> Redis:
    """scrapy-redis's client for ``settings`` (``REDIS_URL``, ``REDIS_PARAMS``...), as redis-py's asyncio client."""
    settings = settings.copy()
    settings.frozen = False
    settings.set("REDIS_PARAMS", {**settings.getdict("REDIS_PARAMS"), "redis_cls": "redis.asyncio.Redis"},
                 priority=settings.getpriority("REDIS_PARAMS") or "default")
    return connection.get_redis_from_settings(settings)


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

    One per crawler, shared by the scheduler, the spider middleware, the downloader
    and the extensions: :meth:`of`. Its coroutines are awaited on the reactor's
    event loop; what it writes in passing goes out in the background (:meth:`spawn`).
    """

    _instances: weakref.WeakKeyDictionary[Crawler, SharedCrawl] = weakref.WeakKeyDictionary()

    def __init__(self, crawler: Crawler):
        settings = crawler.settings
        self.crawler = crawler
        self.server: Redis = redis_from_settings(settings)
        self.configured_id: str = settings.get("IMGSCRAPER_CRAWL_ID") or ""
        self.timeout_ms = int(settings.getfloat("IMGSCRAPER_REDIS_WORKER_TIMEOUT") * 1000)
        # The crawl command gives a lead its id before forking its local workers (they name it).
        self.worker = settings.get("IMGSCRAPER_WORKER_ID") or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.crawl_id = ""
        self.prefix = ""
        self.joined = False
        #: The worker that writes this worker's items to its feeds and counts its stats
        #: (set on the local workers the crawl command starts): see :meth:`hand_over`.
        self.lead: str = settings.get("IMGSCRAPER_LEAD_WORKER") or ""
        self._tokens = itertools.count(1)
        #: The pages this worker holds and the images they brought: about two rounds of transfers, so
        #: that the next page arrives while the images of the last are fetched.
        self.ledger = WorkLedger(2 * settings.getint("CONCURRENT_REQUESTS"), on_done=self._page_done)
        # Fingerprints of images done but not yet marked so in Redis: written
        # with the next page done (one round trip per page, not per image).
        self._done_images: list[str] = []
        #: Items and stats for the lead, written with the images done.
        self._outgoing: list[bytes] = []
        # Tokens of the pages done, to let go with the next write.
        self._done_pages: list[str] = []
        # Fingerprints of images claimed but not fetched, the crawl stopping: unclaimed on leaving.
        self._stopped_images: list[str] = []
        self._writing = asyncio.Lock()
        self._write_scheduled = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._failed = False
        #: What to do with each kind of message on the crawl's ``events`` channel (:meth:`on_event`).
        self._event_handlers: dict[str, list[Callable[[str], None]]] = {}
        self._listener: asyncio.Future[None] | None = None
        self._scripts = {
            name: self.server.register_script(source)
            for name, source in (
                ("join", _JOIN), ("heartbeat", _HEARTBEAT), ("take", _TAKE), ("release", _RELEASE),
                ("finished", _FINISHED), ("claim", _CLAIM), ("close", _CLOSE), ("run_age", _RUN_AGE),
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

    async def _run(self, script: str, *args: Any) -> Any:
        return await self._scripts[script](args=[self.prefix, *args])

    def register_script(self, source: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        """``source`` as a Lua script of this crawl: ``await script(*args)`` runs it with the key prefix first."""
        script = self.server.register_script(source)

        async def run(*args: Any) -> Any:
            return await script(args=[self.prefix, *args])

        return run

    # -- work in the background ----------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        """Run ``coro`` on the event loop without waiting for it; a Redis error is logged once, not raised.
        :meth:`leave` waits for what is still running."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    @staticmethod
    async def stop(*tasks: asyncio.Future[Any] | None) -> None:
        """Cancel ``tasks`` and wait until they end. redis-py can swallow a cancellation that arrives
        while it sets up a connection (a pub/sub subscription just made went on waiting for messages,
        and the worker never left): a task still running is cancelled again."""
        while pending := [task for task in tasks if task is not None and not task.done()]:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=0.1)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, (RedisError, OSError)):
            self.redis_failed(exc)
        elif exc is not None:
            logger.error("Error in the shared crawl", exc_info=(type(exc), exc, exc.__traceback__))

    def redis_failed(self, exc: BaseException) -> None:
        """Say once that Redis failed (the shared crawl goes on as well as it can)."""
        if not self._failed:
            self._failed = True
            logger.error("Redis failed in shared crawl %s: %s", self.crawl_id, exc)

    # -- membership -------------------------------------------------------

    async def join(self, spider: Spider) -> bool | None:
        """Join (or start afresh, returning True) the crawl of ``spider``.

        None: the crawl is finished and this worker, which has a lead, did not join.
        """
        self.crawl_id = self.configured_id or crawl_id_of(spider)
        self.prefix = f"imgscraper:{self.crawl_id}:"
        deadline = time.monotonic() + LEAD_JOINS_WITHIN
        while (joined := await self._run("join", self.worker, self.timeout_ms, STARTING, 0 if self.lead else 1,
                                         self.lead)) == -2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # a local worker, forked as its lead started: it joins first
        if joined == -2:
            logger.warning("The lead worker %s did not join shared crawl %s within %.0f s", self.lead, self.crawl_id,
                           LEAD_JOINS_WITHIN)
            return None
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
            await self.server.rpush(self.output_key(self.lead), pickle.dumps(("joined", self.worker, os.getpid())))
            for signal in (imgscraper_signals.image_failed, imgscraper_signals.page_failed):
                self.crawler.signals.connect(self._failure_to_lead, signal=signal)
        self._listener = self.spawn(self._listen())
        return bool(joined)

    def output_key(self, lead: str) -> str:
        """The list where the local workers of ``lead`` hand it their items and stats."""
        return self.key(f"output:{lead}")

    async def heartbeat(self) -> None:
        """Say this worker is alive; put the pages of dead workers back in the queue. If the crawl
        is closing (see :meth:`close`), tell the ``close`` handlers, in case the message was missed."""
        closing = await self._run("heartbeat", self.worker, self.timeout_ms)
        moved = await self._run("release", STARTING)
        if moved:
            self.crawler.stats.inc_value("imgscraper/shared/pages_recovered", moved)
            logger.warning("Put %d pages of stopped workers back in the shared queue", moved)
        if closing:
            self._dispatch("close", closing.decode())

    async def leave(self) -> None:
        """Leave the crawl, putting any page still held back in the queue; close the connections."""
        if not self.joined:
            return
        self.joined = False
        if self.lead:  # as join connected them
            for signal in (imgscraper_signals.image_failed, imgscraper_signals.page_failed):
                self.crawler.signals.disconnect(self._failure_to_lead, signal=signal)
        await self.stop(self._listener)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.write(final=True)
            if self._stopped_images:
                await self.server.hdel(self.key("images"), *self._stopped_images)
            moved = await self.release(self.worker)
            if moved:
                logger.info("Put %d unfinished pages back in the shared queue", moved)
            if self.lead:
                await self.server.rpush(self.output_key(self.lead), pickle.dumps(("left", self.worker)))
        finally:
            await self.server.aclose()

    async def release(self, worker: str) -> int:
        """Put the pages ``worker`` holds back in the queue, and forget it (its images may
        be claimed again); how many pages."""
        return await self._run("release", STARTING, worker)

    async def finished(self) -> bool:
        """Whether the whole crawl is done (and mark it so)."""
        return bool(await self._run("finished"))

    async def close(self, reason: str) -> str:
        """Close the whole crawl for ``reason``: every worker is told (:meth:`on_event` ``close``,
        :meth:`heartbeat`). Returns the reason it closes for (another worker's may have come first)."""
        return (await self._run("close", reason)).decode()

    def close_worker(self, reason: str) -> None:
        """Close this worker's spider for ``reason`` (nothing if it is closed or closing already)."""
        engine = self.crawler.engine
        if engine is not None and engine.spider is not None and engine.running:
            deferred_from_coro(engine.close_spider_async(reason=reason))

    async def run_age(self) -> float:
        """Seconds since this run of the crawl started (its first worker joined)."""
        return await self._run("run_age") / 1000

    async def count(self, increments: dict[str, int]) -> dict[str, int]:
        """Add ``increments`` to the run's counters (``CLOSESPIDER_*``); their totals."""
        async with self.server.pipeline(transaction=False) as pipe:
            for name, value in increments.items():
                pipe.hincrby(self.key("run"), name, value)
            totals = await pipe.execute()
        return dict(zip(increments, totals))

    # -- messages -------------------------------------------------------------

    def on_event(self, kind: str, handler: Callable[[str], None]) -> None:
        """Call ``handler(argument)`` for each ``<kind> <argument>`` message on the crawl's channel, after
        the handlers of ``kind`` given before. A ``close`` handler may be called again for the same reason."""
        self._event_handlers.setdefault(kind, []).append(handler)

    def _dispatch(self, kind: str, argument: str) -> None:
        for handler in self._event_handlers.get(kind, ()):
            handler(argument)

    async def publish(self, kind: str, argument: str) -> None:
        await self.server.publish(self.key("events"), f"{kind} {argument}")

    async def _listen(self) -> None:
        pubsub = self.server.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.key("events"))
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is None:
                    continue
                kind, _, argument = message["data"].decode().partition(" ")
                self._dispatch(kind, argument)
        finally:
            await pubsub.aclose()

    # -- pages ------------------------------------------------------------

    async def take(self) -> tuple[str, bytes, int] | None:
        """Move the next queued page into this worker's hold: (token, encoded request, pages left in the queue)."""
        token = str(next(self._tokens))
        answer = await self._run("take", self.worker, token)
        return (token, answer[0], answer[1]) if answer else None

    async def all_pages_done(self) -> None:
        """This worker is idle: every page it took is finished."""
        self.ledger.clear()
        await self.write(final=True, idle=True)

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

    def _failure_to_lead(self, signal: object, sender: Any, **arguments: Any) -> None:
        """A local worker's failed images and pages go to its lead, which sends the signal again: its
        failure lines follow one rule for the crawl (IMGSCRAPER_FAILURE_LINES per reason and host)."""
        name = "image_failed" if signal is imgscraper_signals.image_failed else "page_failed"
        arguments = {key: value if isinstance(value, (str, int, float, bool)) else str(value)
                     for key, value in arguments.items() if key != "spider"}
        self._outgoing.append(pickle.dumps(("signal", self.worker, name, arguments)))

    def schedule_write(self) -> None:
        """Have :meth:`write` run soon, in the background (once for whatever is written meanwhile)."""
        if not self._write_scheduled:
            self._write_scheduled = True
            self.spawn(self.write())

    async def write(self, *, final: bool = False, idle: bool = False) -> None:
        """Mark the images done so far and hand the lead this worker's items and stats, in one
        transaction: an item reaches the lead if and only if no other worker will fetch its image
        again; then let go of the pages done (all of them when ``idle``). Writes go out one at a
        time, in order."""
        async with self._writing:
            self._write_scheduled = False
            async with self.server.pipeline(transaction=True) as pipe:
                if self._done_images:
                    pipe.hset(self.key("images"), mapping=dict.fromkeys(self._done_images, ""))
                    self._done_images = []
                if self.lead:
                    if final or self._outgoing:
                        stats = {name: value for name, value in self.crawler.stats.get_stats().items()
                                 if isinstance(value, (int, float)) and not name.startswith(OWN_STATS)}
                        self._outgoing.append(pickle.dumps(("stats", self.worker, stats),
                                                           protocol=pickle.HIGHEST_PROTOCOL))
                    if self._outgoing:
                        pipe.rpush(self.output_key(self.lead), *self._outgoing)
                        self._outgoing = []
                if idle:
                    pipe.delete(self.key(f"taken:{self.worker}"))
                    self._done_pages = []
                elif self._done_pages:
                    pipe.hdel(self.key(f"taken:{self.worker}"), *self._done_pages)
                    self._done_pages = []
                if len(pipe):
                    await pipe.execute()

    def _page_done(self, token: str) -> None:
        """The page ``token`` is parsed and all it yielded is through: mark its images done, let it go."""
        self._done_pages.append(token)
        self.schedule_write()

    # -- images -----------------------------------------------------------

    async def claim_images(self, urls: list[str]) -> list[bool]:
        """For each of ``urls``, whether this worker is the one to fetch it (no other did or does)."""
        if not urls:
            return []
        return [bool(won) for won in await self._run("claim", self.worker, *(image_key(url) for url in urls))]
