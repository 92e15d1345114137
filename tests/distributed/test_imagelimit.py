"""SharedImageLimit (``max_images`` in a shared crawl) in process, on a real Redis, each worker a
crawler with a stand-in engine: the places are the crawl's, an image waits for a place given back
and is woken at once, a dead worker's places come back, images listed keep their places at once,
the last place kept closes every worker; the add-on installs it in ImageLimit's place.
The whole crawl with workers: test_limits.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from scrapy.utils.test import get_crawler

from imgscraper import signals as imgscraper_signals
from imgscraper.distributed.imagelimit import SharedImageLimit
from imgscraper.downloader import STOP_REASON
from imgscraper.exceptions import ImageLimitReached
from imgscraper.extensions.imagelimit import ImageLimit, image_limit
from imgscraper.items import ImageItem


class Engine:
    spider = object()
    running = True

    def __init__(self) -> None:
        self.closed_with: list[str] = []

    async def close_spider_async(self, reason: str) -> None:
        self.closed_with.append(reason)


def ignore(**kwargs: object) -> None:
    pass


async def worker(redis_url: str, crawl_id: str, max_images: int) -> SharedImageLimit:
    """A worker of the crawl ``crawl_id``, joined, with its limit."""
    crawler = get_crawler(settings_dict={
        "IMGSCRAPER_MAX_IMAGES": max_images, "REDIS_URL": redis_url, "IMGSCRAPER_CRAWL_ID": crawl_id,
        "IMGSCRAPER_REDIS_WORKER_TIMEOUT": 30, "EXTENSIONS": {SharedImageLimit: 0},
    })
    crawler.engine = Engine()
    for signal in (imgscraper_signals.image_failed, imgscraper_signals.page_failed):
        crawler.signals.connect(ignore, signal=signal)  # as the failure lines of a crawl do
    limit = crawler.get_extension(SharedImageLimit)
    shared = limit.shared
    shared.prefix = f"imgscraper:{crawl_id}:"

    async def listeners() -> int:
        return dict(await shared.server.pubsub_numsub(shared.key("events")))[shared.key("events").encode()]

    before = await listeners()
    assert await shared.join(None) is not None  # type: ignore[arg-type]  # the crawl id is given
    while await listeners() == before:  # its channel's messages reach it from now on
        await asyncio.sleep(0.005)
    return limit


async def eventually(condition, timeout: float = 5.0) -> float:
    """Seconds until ``condition()`` holds."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        await asyncio.sleep(0.005)
    return time.monotonic() - start


def with_workers(redis_url: str, max_images: int, check: Callable[..., Awaitable[None]], count: int = 2) -> None:
    """``await check(*workers)`` with ``count`` workers of a new crawl, which leave it afterwards."""
    async def run() -> None:
        crawl = uuid.uuid4().hex[:8]
        workers = [await worker(redis_url, crawl, max_images) for _ in range(count)]
        try:
            await check(*workers)
        finally:
            for limit in workers:
                await limit.shared.leave()

    asyncio.run(run())


def test_the_places_are_the_crawls_and_the_last_one_closes_every_worker(redis_url):
    async def check(a: SharedImageLimit, b: SharedImageLimit) -> None:
        assert await asyncio.gather(a.acquire(), a.acquire(), b.acquire()) == [True, True, True]
        waiting = asyncio.ensure_future(b.acquire())  # every place is held
        await asyncio.sleep(0.6)  # long enough for its back-off to grow past 0.2 s
        assert not waiting.done()
        a.release(kept=False)  # a failed image gives its place back: the waiting image is woken
        assert await eventually(waiting.done) < 0.2 and waiting.result()
        a.release(kept=True)
        b.release(kept=True)
        assert not a.reached
        b.release(kept=True)  # the crawl's third image kept: every worker closes
        for limit in (a, b):
            await eventually(lambda limit=limit: limit.crawler.engine.closed_with)
            assert limit.crawler.engine.closed_with == ["max_images"] and limit.reached
            assert limit.crawler.stats.get_value(STOP_REASON) == "max_images"
            assert limit.crawler.stats.get_value("imgscraper/max_images_reached") == 3
        assert (a.stored, b.stored) == (1, 2)
        assert not await a.acquire()

    with_workers(redis_url, 3, check)


def test_a_dead_workers_places_come_back(redis_url):
    async def check(a: SharedImageLimit, b: SharedImageLimit) -> None:
        assert await asyncio.gather(a.acquire(), a.acquire()) == [True, True]
        waiting = asyncio.ensure_future(b.acquire())
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await b.shared.server.delete(b.shared.key(f"alive:{a.shared.worker}"))  # a's heartbeat expired
        await eventually(waiting.done, timeout=3)  # no message: b asked again after its back-off
        assert waiting.result()

    with_workers(redis_url, 2, check)


def test_images_waiting_are_turned_away_at_the_limit(redis_url):
    outcomes: list[str] = []

    async def image(limit: SharedImageLimit, name: str) -> None:
        picture = ImageItem(url=f"http://127.0.0.1/{name}.png", page="")
        try:
            async with limit.hold(picture):
                outcomes.append(f"{name} holds")
                await asyncio.sleep(0.1)
                picture.status = "downloaded"
        except ImageLimitReached:
            outcomes.append(f"{name} over")

    async def check(a: SharedImageLimit, b: SharedImageLimit) -> None:
        await asyncio.gather(image(a, "first"), image(b, "second"), image(b, "third"))
        assert sorted(outcome.split()[1] for outcome in outcomes) == ["holds", "over", "over"], outcomes
        assert sum(limit.crawler.stats.get_value("imgscraper/images/over_limit", 0) for limit in (a, b)) == 2

    with_workers(redis_url, 1, check)


def test_images_listed_keep_their_places_at_once(redis_url):
    async def check(a: SharedImageLimit, b: SharedImageLimit) -> None:
        assert a.take_listed() and a.listing  # the spider lets it through: counted once claimed
        assert await a.places_to_list(3) == 3
        assert await b.places_to_list(4) == 2  # two places left in the crawl
        assert b.crawler.stats.get_value("imgscraper/images/over_limit") == 2
        await eventually(lambda: a.crawler.engine.closed_with)
        assert b.crawler.engine.closed_with == ["max_images"]
        assert await a.places_to_list(1) == 0 and not a.take_listed()

    with_workers(redis_url, 5, check)


def test_the_next_run_of_the_crawl_counts_afresh(redis_url):
    async def run() -> None:
        crawl = uuid.uuid4().hex[:8]
        for _ in range(2):  # the second worker joins when no worker is alive: a new run of the crawl
            limit = await worker(redis_url, crawl, 2)
            assert await limit.places_to_list(2) == 2
            await limit.shared.leave()

    asyncio.run(run())


def test_the_add_on_puts_it_in_place_of_image_limit():
    settings = {"IMGSCRAPER_MAX_IMAGES": 5, "IMGSCRAPER_REDIS_URL": "redis://127.0.0.1:9/0", "IMGSCRAPER_WORKERS": 1,
                "IMGSCRAPER_REDIS_WORKER_TIMEOUT": 30,
                "ADDONS": {"imgscraper.addons.distributed.DistributedCrawl": 0},
                "EXTENSIONS": {"imgscraper.extensions.imagelimit.ImageLimit": 0}}
    limit = image_limit(get_crawler(settings_dict=settings))
    assert isinstance(limit, SharedImageLimit)
    assert [type(ext) for ext in limit.crawler.extensions.middlewares if isinstance(ext, ImageLimit)] == [
        SharedImageLimit]
