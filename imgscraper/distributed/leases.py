"""Download slots shared by the workers of a crawl (:mod:`imgscraper.distributed`).

Each worker's downloader holds its own limits: three workers with
``CONCURRENT_REQUESTS_PER_DOMAIN = 4`` would put 12 requests in flight on one
site. :class:`SharedSlotsDownloader` also takes a *lease* in Redis for every
transfer, so that a download slot's concurrency (``CONCURRENT_REQUESTS_PER_DOMAIN``,
``_PER_IP`` or ``DOWNLOAD_SLOTS``) and its delay (``DOWNLOAD_DELAY``, when
set) hold for the shared crawl as a whole, whatever the number of workers and
machines. ``CONCURRENT_REQUESTS`` stays per worker: it bounds one process's work.

A lease is a member of the sorted set ``slot:<slot key>`` (under the crawl's
keys), scored by when it expires (``DOWNLOAD_TIMEOUT`` + 10 s). A worker gives
it back when the transfer ends; the leases of a worker that died come back as
soon as it counts as dead (its heartbeat expired, or its lead saw it end), or
at the latest when they expire. A worker that finds no free lease asks again
:data:`POLL` seconds later.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from imgscraper.distributed.crawl import SharedCrawl
from imgscraper.downloader import LimitedDownloader

if TYPE_CHECKING:
    from scrapy.core.downloader import Slot
    from scrapy.crawler import Crawler
    from scrapy.http import Request

__all__ = ["SharedSlotsDownloader"]

logger = logging.getLogger(__name__)

#: Seconds between two requests for a lease while every lease of a slot is taken.
POLL = 0.01
#: Seconds a lease outlives the download timeout.
LEASE_MARGIN = 10.0

# ARGV: prefix, slot key, worker, concurrency, delay (ms), lease (ms). Returns the
# lease's id, -1 when every lease is taken, or the milliseconds the slot's delay still runs.
_ACQUIRE = """
local p, me = ARGV[1], ARGV[3]
local key = p .. 'slot:' .. ARGV[2]
local limit, delay, lease = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local alive = {}
for _, id in ipairs(redis.call('ZRANGE', key, 0, -1)) do
  local owner = string.match(id, '^(.*)|')
  if alive[owner] == nil then alive[owner] = redis.call('EXISTS', p .. 'alive:' .. owner) == 1 end
  if not alive[owner] then redis.call('ZREM', key, id) end
end
if redis.call('ZCARD', key) >= limit then return -1 end
if delay > 0 then
  local next = tonumber(redis.call('GET', key .. ':next') or '0')
  if next > now then return next - now end
  redis.call('SET', key .. ':next', now + delay, 'PX', delay + 1000)
end
local id = me .. '|' .. redis.call('INCR', key .. ':n')
redis.call('ZADD', key, now + lease, id)
redis.call('PEXPIRE', key, lease)
redis.call('PEXPIRE', key .. ':n', lease)
return id
"""


class SharedSlotsDownloader(LimitedDownloader):
    """:class:`~imgscraper.downloader.LimitedDownloader` whose slot limits hold across the
    workers of a shared crawl (see the module docstring). Installed by
    :class:`imgscraper.addons.distributed.DistributedCrawl` in place of ``LimitedDownloader``."""

    def __init__(self, crawler: Crawler):
        super().__init__(crawler)
        self.shared = SharedCrawl.of(crawler)
        self.lease_ms = int((crawler.settings.getfloat("DOWNLOAD_TIMEOUT") + LEASE_MARGIN) * 1000)
        self._acquire = self.shared.server.register_script(_ACQUIRE)
        #: Lease id of each request in transfer, and its slot key.
        self._leases: dict[Request, tuple[str, bytes]] = {}
        self._failed = False

    def reserve(self, slot: Slot, request: Request) -> float:
        if not self.shared.joined:
            return 0.0
        key = request.meta.get(self.DOWNLOAD_SLOT, "")
        delay_ms = int(slot.download_delay() * 1000)
        try:
            answer = self._acquire(args=[self.shared.prefix, key, self.shared.worker, slot.concurrency,
                                         delay_ms, self.lease_ms])
        except RedisError as exc:
            self._fail(exc)
            return 0.0
        if isinstance(answer, bytes):
            self._leases[request] = (key, answer)
            return 0.0
        return POLL if answer < 0 else answer / 1000

    def release(self, request: Request) -> None:
        lease = self._leases.pop(request, None)
        if lease is None:
            return
        key, lease_id = lease
        try:
            self.shared.server.zrem(self.shared.key(f"slot:{key}"), lease_id)
        except RedisError as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        if not self._failed:  # once: the heartbeat and the queue fail too, and say so
            self._failed = True
            logger.warning("Cannot share the download slots through Redis (%s): each worker keeps its own limits", exc)
