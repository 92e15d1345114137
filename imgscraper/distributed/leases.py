"""Download slots shared by the workers of a crawl (:mod:`imgscraper.distributed`).

Each worker's downloader holds its own limits: three workers with
``CONCURRENT_REQUESTS_PER_DOMAIN = 4`` would put 12 requests in flight on one
site. :class:`SharedSlotsDownloader` also holds a *lease* in Redis for every
transfer, so that a download slot's concurrency (``CONCURRENT_REQUESTS_PER_DOMAIN``,
``_PER_IP`` or ``DOWNLOAD_SLOTS``) and its delay (``DOWNLOAD_DELAY``, when
set) hold for the shared crawl as a whole, whatever the number of workers and
machines. ``CONCURRENT_REQUESTS`` stays per worker: it bounds one process's work.

A lease is a member of the sorted set ``slot:<slot key>`` (under the crawl's
keys), scored by when it expires (``DOWNLOAD_TIMEOUT`` + :data:`LEASE_MARGIN`).
Leases cost no wait and few round trips:

* a worker asks for as many leases as the slot's queue can start at once, in one
  round trip, in the background; the slot's queue is processed when they arrive;
* a lease whose transfer ended goes to the next request of the slot, without
  Redis, for :data:`REUSE_FOR` seconds after it was taken (so that it never
  expires during a transfer), unless another worker waits for the slot or the
  slot has a delay (each transfer then takes a new lease: the delay is the crawl's);
* a worker that finds every lease of a slot taken says so on the crawl's
  channel (``wanted <slot>``): the workers holding leases of that slot give them
  back as their transfers end, for :data:`WANTED_FOR` seconds, and a lease given
  back while someone waits wakes the waiting workers (``freed <slot>``). A
  waiting worker also asks again after a back-off (:data:`BACKOFF`, doubling up
  to :data:`MAX_BACKOFF`), for the leases that come back with no message: those
  of a worker that died (its heartbeat expired, or its lead saw it end) and
  those that expired.

A worker fetches its next page while the images of its pages wait: the engine may
take a request from the scheduler until twice ``CONCURRENT_REQUESTS`` requests are in
the downloader (the shared scheduler bounds what a worker holds:
:class:`~imgscraper.distributed.ledger.WorkLedger`), and a slot's queue is served by
``Request.priority`` (:class:`~imgscraper.downloader.PriorityQueue`), images after pages
(:data:`imgscraper.pipelines.images.IMAGE_PRIORITY`). Otherwise a worker fetched its next
page only once its last images had started, and its transfers went idle at every page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from scrapy.utils.asyncio import call_later

from imgscraper.distributed.crawl import SharedCrawl
from imgscraper.downloader import LATER, LimitedDownloader, PriorityQueue

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.core.downloader import Slot
    from scrapy.crawler import Crawler
    from scrapy.http import Request
    from scrapy.utils.asyncio import CallLaterResult

__all__ = ["SharedSlotsDownloader"]

logger = logging.getLogger(__name__)

#: Seconds a lease outlives the download timeout.
LEASE_MARGIN = 10.0
#: Seconds after it was taken during which a lease may go to the next transfer of its slot.
REUSE_FOR = LEASE_MARGIN / 2
#: Seconds during which leases are given back rather than reused once another worker wants the slot.
WANTED_FOR = 1.0
#: First and longest wait (s) before a worker that found a slot full asks again without being woken.
BACKOFF = 0.05
MAX_BACKOFF = 1.0

# ARGV: prefix, slot key, worker, concurrency, delay (ms), lease (ms), leases wanted. Returns
# {0, lease ids...}; {-1} when every lease is taken; {ms} while the slot's delay still runs.
_ACQUIRE = """
local p, slot, me = ARGV[1], ARGV[2], ARGV[3]
local key = p .. 'slot:' .. slot
local limit, delay, lease, wanted = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local alive = {}
for _, id in ipairs(redis.call('ZRANGE', key, 0, -1)) do
  local owner = string.match(id, '^(.*)|')
  if alive[owner] == nil then alive[owner] = redis.call('EXISTS', p .. 'alive:' .. owner) == 1 end
  if not alive[owner] then redis.call('ZREM', key, id) end
end
local free = limit - redis.call('ZCARD', key)
if free <= 0 then
  redis.call('SET', key .. ':waiting', '1', 'PX', lease)
  redis.call('PUBLISH', p .. 'events', 'wanted ' .. slot)
  return {-1}
end
if delay > 0 then
  local next = tonumber(redis.call('GET', key .. ':next') or '0')
  if next > now then return {next - now} end
  redis.call('SET', key .. ':next', now + delay, 'PX', delay + 1000)
  wanted = 1
end
local granted = {0}
for _ = 1, math.min(wanted, free) do
  local id = me .. '|' .. redis.call('INCR', key .. ':n')
  redis.call('ZADD', key, now + lease, id)
  granted[#granted + 1] = id
end
redis.call('PEXPIRE', key, lease)
redis.call('PEXPIRE', key .. ':n', lease)
return granted
"""

# ARGV: prefix, slot key, delay (ms). The slot's delay runs from now, for every worker.
_DELAY_FROM_NOW = """
local key = ARGV[1] .. 'slot:' .. ARGV[2] .. ':next'
local delay = tonumber(ARGV[3])
local t = redis.call('TIME')
local next = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + delay
if next > tonumber(redis.call('GET', key) or '0') then redis.call('SET', key, next, 'PX', delay + 1000) end
"""

# ARGV: prefix, slot key, delay (ms). 0, and the slot's delay runs from now for every worker; or the
# ms until the slot's next turn.
_TURN = """
local key = ARGV[1] .. 'slot:' .. ARGV[2] .. ':next'
local delay = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local next = tonumber(redis.call('GET', key) or '0')
if next > now then return next - now end
redis.call('SET', key, now + delay, 'PX', delay + 1000)
return 0
"""

# ARGV: prefix, slot key, lease ids. Gives them back; wakes the workers waiting for the slot.
_GIVE_BACK = """
local key = ARGV[1] .. 'slot:' .. ARGV[2]
for i = 3, #ARGV do redis.call('ZREM', key, ARGV[i]) end
if redis.call('DEL', key .. ':waiting') == 1 then
  redis.call('PUBLISH', ARGV[1] .. 'events', 'freed ' .. ARGV[2])
end
"""


@dataclass
class _SlotLeases:
    """This worker's leases of one download slot."""

    key: str
    slot: Slot
    #: Leases held with no transfer, and when each was taken (monotonic s).
    idle: list[tuple[bytes, float]] = field(default_factory=list)
    acquiring: bool = False
    #: Every lease is taken: asked again when one is freed, or at ``retry``.
    waiting: bool = False
    retry: CallLaterResult | None = None
    backoff: float = BACKOFF
    #: Until when leases are given back rather than reused (another worker waits for the slot).
    wanted_until: float = 0.0
    #: Leases to give back with the next round trip.
    returning: list[bytes] = field(default_factory=list)
    #: Set when a lease of the slot comes back, for the transfers waiting in :meth:`SharedSlotsDownloader.hold`.
    freed: asyncio.Event | None = None


class SharedSlotsDownloader(LimitedDownloader):
    """:class:`~imgscraper.downloader.LimitedDownloader` whose slot limits hold across the
    workers of a shared crawl (see the module docstring). Installed by
    :class:`imgscraper.addons.distributed.DistributedCrawl` in place of ``LimitedDownloader``."""

    def __init__(self, crawler: Crawler):
        super().__init__(crawler)
        self.shared = SharedCrawl.of(crawler)
        self.lease_ms = int((crawler.settings.getfloat("DOWNLOAD_TIMEOUT") + LEASE_MARGIN) * 1000)
        self._acquire = self.shared.register_script(_ACQUIRE)
        self._give_back = self.shared.register_script(_GIVE_BACK)
        self._delay_from_now = self.shared.register_script(_DELAY_FROM_NOW)
        self._turn = self.shared.register_script(_TURN)
        #: This worker's leases, by slot key and by slot.
        self._slot_leases: dict[str, _SlotLeases] = {}
        self._of_slot: dict[Slot, _SlotLeases] = {}
        self._failed = False
        #: The lease of each request in transfer: its slot key, its id, when it was taken.
        self._leases: dict[Request, tuple[str, bytes, float]] = {}
        self.shared.on_event("freed", self._freed)
        self.shared.on_event("wanted", self._wanted)

    def _get_slot(self, request: Request, spider: Spider | None = None) -> tuple[str, Slot]:
        key, slot = super()._get_slot(request)
        if not isinstance(slot.queue, PriorityQueue):  # a new slot
            slot.queue = PriorityQueue(slot.queue)
        return key, slot

    def needs_backout(self) -> bool:
        # Scrapy's engine takes no request from the scheduler while CONCURRENT_REQUESTS requests are in
        # the downloader, queued images included: a worker would fetch its next page only as the last
        # images of its pages start, and leave its transfers idle while that page is fetched and parsed.
        # What a worker holds is bounded by the shared scheduler (WorkLedger.busy), which takes a
        # page while fewer than two rounds of transfers wait.
        return 0 < self.total_concurrency and 2 * self.total_concurrency <= len(self.active)

    def _leases_of(self, key: str, slot: Slot) -> _SlotLeases:
        leases = self._slot_leases.get(key)
        if leases is None:
            leases = self._slot_leases[key] = self._of_slot[slot] = _SlotLeases(key, slot)
        if leases.slot is not slot:  # a slot collected by the downloader comes back as a new object
            self._of_slot.pop(leases.slot, None)
            leases.slot = slot
        self._of_slot[slot] = leases
        return leases

    @property
    def _sharing(self) -> bool:
        """Whether the slots are shared now: the worker has joined the crawl, and Redis has not failed."""
        return self.shared.joined and not self._failed

    def _take_idle(self, leases: _SlotLeases, request: Request) -> bool:
        """Give ``request`` a lease this worker holds with no transfer, if it has one."""
        if not leases.idle:
            return False
        lease, taken = leases.idle.pop()
        self._leases[request] = (leases.key, lease, taken)
        return True

    def reserve(self, slot: Slot, request: Request) -> float:
        if not self._sharing:
            return 0.0
        key = request.meta.get(self.DOWNLOAD_SLOT, "")
        leases = self._leases_of(key, slot)
        if self._take_idle(leases, request):
            return 0.0
        if not (leases.acquiring or leases.waiting):
            leases.acquiring = True
            wanted = max(1, min(len(slot.queue), slot.free_transfer_slots()))
            self.shared.spawn(self._acquire_leases(key, leases, wanted, int(slot.download_delay() * 1000)))
        return LATER

    def own_delay(self, slot: Slot) -> float:
        # The delay is the crawl's: each transfer's lease is granted in its turn. A delay of this
        # worker's own as well would hold back a transfer whose turn has come (after a page of this
        # worker was answered), and another worker's next turn would come too soon after it.
        if self._sharing:
            return 0.0
        return super().own_delay(slot)

    def restart_delay(self, key: str, slot: Slot) -> None:
        super().restart_delay(key, slot)
        if slot.delay and self._sharing:
            self.shared.spawn(self._delay_from_now(key, int(slot.download_delay() * 1000)))

    async def take_turn(self, key: str, slot: Slot) -> None:
        delay_ms = int(slot.download_delay() * 1000)
        while delay_ms and self._sharing:
            try:
                wait = await self._turn(key, delay_ms)
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
                return
            if not wait:
                return
            await asyncio.sleep(wait / 1000)

    async def hold(self, slot: Slot, request: Request) -> None:
        """A lease of its own for a transfer made outside the downloader, asked for at once and again
        when a lease of the slot comes back (or after a back-off), or once the slot's delay has run."""
        if not self._sharing:
            return
        key = request.meta.get(self.DOWNLOAD_SLOT, "")
        leases = self._leases_of(key, slot)
        if self._take_idle(leases, request):  # a loaded page's, kept for the slot's queue
            return
        backoff = BACKOFF
        while self._sharing:
            try:
                answer = await self._acquire(key, self.shared.worker, slot.concurrency,
                                             int(slot.download_delay() * 1000), self.lease_ms, 1)
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
                return
            status, granted = answer[0], answer[1:]
            if status == 0:
                self._leases[request] = (key, granted[0], time.monotonic())
                return
            if status > 0:  # the slot's delay, shared by every worker
                await asyncio.sleep(status / 1000)
                continue
            freed = leases.freed = leases.freed or asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(freed.wait(), backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _redis_failed(self, exc: BaseException) -> None:
        if not self._failed:  # once: the heartbeat and the queue fail too, and say so
            self._failed = True
            logger.warning("Cannot share the download slots through Redis (%s): each worker keeps its own limits", exc)

    async def _acquire_leases(self, key: str, leases: _SlotLeases, wanted: int, delay_ms: int) -> None:
        try:
            answer = await self._acquire(key, self.shared.worker, leases.slot.concurrency, delay_ms,
                                         self.lease_ms, wanted)
        except Exception as exc:
            self._redis_failed(exc)
            self._process_queue(leases.slot)
            return
        finally:
            leases.acquiring = False
        status, granted = answer[0], answer[1:]
        if status < 0:
            leases.waiting = True
            leases.retry = call_later(leases.backoff, self._retry, key)
            leases.backoff = min(leases.backoff * 2, MAX_BACKOFF)
            return
        if status > 0:  # the slot's delay, shared by every worker
            leases.retry = call_later(status / 1000, self._retry, key)
            leases.waiting = True
            return
        now = time.monotonic()
        leases.backoff = BACKOFF
        leases.idle += [(lease, now) for lease in granted]
        self._process_queue(leases.slot)

    def _retry(self, key: str) -> None:
        leases = self._slot_leases.get(key)
        if leases is not None and leases.waiting:
            leases.waiting = False
            leases.retry = None
            self._process_queue(leases.slot)

    def _freed(self, key: str) -> None:
        """A lease of slot ``key`` came back: a worker waiting for one asks again."""
        leases = self._slot_leases.get(key)
        if leases is not None and leases.freed is not None:  # transfers waiting in hold()
            leases.freed.set()
            leases.freed = None
        if leases is not None and leases.waiting:
            if leases.retry is not None:
                leases.retry.cancel()
            self._retry(key)

    def _wanted(self, key: str) -> None:
        """Another worker waits for slot ``key``: give leases back rather than reuse them for a while."""
        leases = self._slot_leases.get(key)
        if leases is not None:
            leases.wanted_until = time.monotonic() + WANTED_FOR
            self._give_back_idle(leases)

    def release(self, request: Request) -> None:
        held = self._leases.pop(request, None)
        if held is None:
            return
        key, lease, taken = held
        leases = self._slot_leases[key]
        now = time.monotonic()
        if leases.slot.queue and now - taken < REUSE_FOR and now >= leases.wanted_until and not leases.slot.delay:
            leases.idle.append((lease, taken))
        else:
            self._return(leases, [lease])

    def _process_queue(self, slot: Slot) -> None:
        super()._process_queue(slot)
        if not slot.queue and (leases := self._of_slot.get(slot)) is not None:
            self._give_back_idle(leases)

    def _give_back_idle(self, leases: _SlotLeases) -> None:
        if leases.idle:
            self._return(leases, [lease for lease, _ in leases.idle])
            leases.idle.clear()

    def _return(self, leases: _SlotLeases, ids: list[bytes]) -> None:
        """Give ``ids`` back, with the others given back in the same turn of the event loop: one round trip."""
        if not self._sharing:
            return
        if not leases.returning:
            asyncio.get_event_loop().call_soon(self._send_back, leases)
        leases.returning += ids

    def _send_back(self, leases: _SlotLeases) -> None:
        ids: list[Any] = leases.returning
        leases.returning = []
        if ids and self.shared.joined:
            self.shared.spawn(self._give_back(leases.key, *ids))

    def close(self) -> None:
        for leases in self._slot_leases.values():
            if leases.retry is not None:
                leases.retry.cancel()
            self._give_back_idle(leases)
        super().close()
