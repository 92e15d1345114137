"""``max_images`` for a shared crawl as a whole (:mod:`imgscraper.distributed`).

:class:`~imgscraper.extensions.imagelimit.ImageLimit` hands out one process's places: three
workers with ``max_images=100`` would store 300 images. :class:`SharedImageLimit`, installed in
its place by :class:`imgscraper.addons.distributed.DistributedCrawl`, keeps the places in Redis,
in the hash of this run of the crawl (``run``: a crawl resumed later counts afresh, as
``CLOSESPIDER_ITEMCOUNT`` does):

``images_kept``
    the images stored (or listed) within the limit, by every worker;
``images_held:<worker>``
    the places the images a worker has in progress hold.

One script takes places, never more than ``max_images`` kept and held together, and one keeps
them or gives them back: no place is handed out twice. The places of a worker found dead (its
heartbeat expired, or its lead saw it end) come back, as its pages and leases do. The images
of one turn of the event loop take their places in one round trip; places are kept or given
back in the background, a turn's worth per round trip.

While every place left is held, images wait: a worker that gives places back while one waits
says so on the crawl's channel (``places <count>``), and a waiting worker asks again after a
back-off too (:data:`BACKOFF`, doubling up to :data:`MAX_BACKOFF`), for the places of dead workers.

With ``-a download=no`` the spider of a shared crawl yields every reference it finds, other
workers' images too: the images to list are counted once
:class:`~imgscraper.distributed.middleware.SharedImagesMiddleware` has claimed them
(:meth:`SharedImageLimit.places_to_list`).

The worker that keeps the last place closes the crawl with the reason ``max_images``
(:meth:`~imgscraper.distributed.crawl.SharedCrawl.close`, the first reason given wins); every
worker hears it on the crawl's channel, or in its next heartbeat, and stops at once, as one
process stops at its limit (:data:`~imgscraper.downloader.STOP_REASON`). A worker that cannot
reach Redis for a place cannot keep to the limit: it stops at once, with the finish reason
``shared_crawl_unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from imgscraper.distributed.crawl import SharedCrawl
from imgscraper.downloader import STOP_REASON
from imgscraper.extensions.imagelimit import ImageLimit

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

__all__ = ["SharedImageLimit"]

#: First and longest wait (s) before a worker whose images wait for a place asks again unwoken.
BACKOFF = 0.05
MAX_BACKOFF = 1.0
#: The finish reason of a worker that lost Redis while it needed places.
UNAVAILABLE = "shared_crawl_unavailable"

# ARGV: prefix, worker, max_images, places wanted, '1' to keep them at once (images listed).
# Returns {places granted, images kept by the crawl}; none granted while every place left is held.
_TAKE = """
local p, me, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local run = p .. 'run'
local kept = tonumber(redis.call('HGET', run, 'images_kept') or '0')
local held = 0
local fields = redis.call('HGETALL', run)
for i = 1, #fields, 2 do
  local worker = string.match(fields[i], '^images_held:(.+)$')
  if worker == me or (worker and redis.call('EXISTS', p .. 'alive:' .. worker) == 1) then
    held = held + tonumber(fields[i + 1])
  elseif worker then
    redis.call('HDEL', run, fields[i])
  end
end
local granted = math.max(0, math.min(tonumber(ARGV[4]), limit - kept - held))
if granted == 0 then
  if kept < limit then redis.call('HSET', run, 'images_waiting', '1') end
elseif ARGV[5] == '1' then
  kept = redis.call('HINCRBY', run, 'images_kept', granted)
else
  redis.call('HINCRBY', run, 'images_held:' .. me, granted)
end
return {granted, kept}
"""

# ARGV: prefix, worker, places kept, places given back. Returns the images kept by the crawl.
# Places given back while images wait wake the waiting workers.
_RETURN = """
local p, me = ARGV[1], ARGV[2]
local run = p .. 'run'
local kept, freed = tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('HINCRBY', run, 'images_held:' .. me, -(kept + freed)) <= 0 then
  redis.call('HDEL', run, 'images_held:' .. me)
end
if freed > 0 and redis.call('HDEL', run, 'images_waiting') == 1 then
  redis.call('PUBLISH', p .. 'events', 'places ' .. freed)
end
return redis.call('HINCRBY', run, 'images_kept', kept)
"""


class SharedImageLimit(ImageLimit):
    """:class:`~imgscraper.extensions.imagelimit.ImageLimit` whose places are the shared crawl's
    (see the module docstring). :attr:`stored` and :attr:`holding` count this worker's images."""

    def __init__(self, crawler: Crawler, max_images: int):
        super().__init__(crawler, max_images)
        self.shared = SharedCrawl.of(crawler)
        self._take = self.shared.register_script(_TAKE)
        self._return = self.shared.register_script(_RETURN)
        #: Whether the crawl kept its last place, as far as this worker knows.
        self._reached = False
        self._closed = False
        self._failed = False
        #: Images waiting for a place, first come first served, and the task asking Redis for them.
        self._asking: deque[asyncio.Future[bool]] = deque()
        self._asker: asyncio.Future[None] | None = None
        self._freed = asyncio.Event()
        #: Places to keep and to give back with the next round trip.
        self._keeping = 0
        self._freeing = 0
        self._returning = False
        #: Whether the spider lists images (``-a download=no``): see :meth:`take_listed`.
        self.listing = False
        self.shared.on_event("close", self._crawl_closing)
        self.shared.on_event("places", self._places_freed)

    @property
    def reached(self) -> bool:
        """Whether the crawl's ``max_images`` images kept their place (as far as this worker knows)."""
        return self._reached

    def take(self) -> bool:
        """No place is free without asking Redis: always False (:meth:`acquire` and
        :meth:`places_to_list` take the crawl's places)."""
        return False

    async def acquire(self) -> bool:
        """A place for one image, taken in Redis, waiting while every place left in the crawl is held;
        False once the crawl's limit is reached, or when Redis failed (this worker then stops)."""
        if self._reached or self._failed:
            return False
        place: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._asking.append(place)
        if self._asker is None:
            self._asker = self.shared.spawn(self._ask())
        try:
            return await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled() and place.result():
                self.release(kept=False)
            raise

    async def _ask(self) -> None:
        """Take places for the images waiting, all in one round trip; while none is free, wait
        for places given back (a message, or the back-off)."""
        backoff = BACKOFF
        try:
            while self._asking and not self._reached:
                self._freed.clear()
                wanted = len(self._asking)
                granted, kept = await self._take(self.shared.worker, self.max_images, wanted, 0)
                self._grant(granted)
                if kept >= self.max_images:
                    await self._limit_reached()
                elif granted:
                    backoff = BACKOFF
                if granted < wanted and not self._reached:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._freed.wait(), backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
        finally:
            self._asker = None

    def _grant(self, granted: int) -> None:
        unused = 0
        for _ in range(granted):
            place = self._asking.popleft() if self._asking else None
            if place is None or place.done():  # cancelled, or turned away meanwhile
                unused += 1
            else:
                self.holding += 1
                place.set_result(True)
        if unused:
            self._send(freed=unused)

    def take_listed(self) -> bool:
        """Let an image to list through, while the crawl's limit is not reached: it is counted
        once claimed (:meth:`places_to_list`), the spider of a shared crawl yielding every reference."""
        self.listing = True
        return not self._reached

    async def places_to_list(self, count: int) -> int:
        """Places for ``count`` claimed images to list, kept at once: how many the crawl's limit
        allows. The others are turned away (``imgscraper/images/over_limit``)."""
        granted = 0
        if count and not self._reached and not self._failed:
            try:
                granted, kept = await self._take(self.shared.worker, self.max_images, count, 1)
                self.stored += granted
                if kept >= self.max_images:
                    await self._limit_reached()
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
        if count > granted:
            self.crawler.stats.inc_value("imgscraper/images/over_limit", count - granted)
        return granted

    def release(self, kept: bool) -> None:
        """The image holding a place is done: its place is kept (``kept``) or given back, in Redis,
        in the background. The crawl's last place kept closes the crawl."""
        self.holding -= 1
        if kept:
            self.stored += 1
        self._send(kept=int(kept), freed=int(not kept))

    def _send(self, *, kept: int = 0, freed: int = 0) -> None:
        """Keep or give back places with the others of this turn of the event loop: one round trip."""
        self._keeping += kept
        self._freeing += freed
        if not self._returning and not self._failed:
            self._returning = True
            self.shared.spawn(self._send_all())

    async def _send_all(self) -> None:
        try:
            while self._keeping or self._freeing:
                kept, freed = self._keeping, self._freeing
                self._keeping = self._freeing = 0
                if await self._return(self.shared.worker, kept, freed) >= self.max_images:
                    await self._limit_reached()
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
        finally:
            self._returning = False

    async def _limit_reached(self) -> None:
        """The crawl kept its last place: turn away the images waiting here; close the crawl (unless
        it closes for another reason already), and this worker at once."""
        if self._reached:
            return
        self._reached = True
        self._turn_away_waiting()
        if await self.shared.close(self.REASON) == self.REASON:
            self.close()

    def _crawl_closing(self, reason: str) -> None:
        if reason == self.REASON:
            self.close()

    def _places_freed(self, count: str) -> None:
        self._freed.set()

    def close(self) -> None:
        """Turn away the images waiting here, and close this worker as one process closes at its
        limit (once, however often the crawl's closing is heard of)."""
        if self._closed:
            return
        self._closed = self._reached = True
        self._turn_away_waiting()
        super().close()

    def _turn_away_waiting(self) -> None:
        while self._asking:
            if not (place := self._asking.popleft()).done():
                place.set_result(False)
        self._freed.set()

    def _redis_failed(self, exc: BaseException) -> None:
        """Without Redis this worker cannot keep to the crawl's limit: it stops at once."""
        self.shared.redis_failed(exc)
        if self._failed or self._closed:
            return
        self._failed = True
        self._turn_away_waiting()
        self.crawler.stats.set_value(STOP_REASON, UNAVAILABLE)
        self.shared.close_worker(UNAVAILABLE)
