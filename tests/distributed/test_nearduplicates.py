"""Near-duplicate claims shared through Redis (:mod:`imgscraper.distributed.nearduplicates`), in process,
against a real ``redis-server``: the same answers as the claims of one process, atomic across workers.
The crawls of one and three workers are in ``test_nearduplicates_crawl.py``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from scrapy import Spider
from scrapy.utils.test import get_crawler

from imgscraper import settings as project_settings
from imgscraper import signals as imgscraper_signals
from imgscraper.distributed.crawl import SharedCrawl
from imgscraper.distributed.nearduplicates import SharedNearDuplicateClaims, band_probes
from imgscraper.pipelines.nearduplicates import HashedImage, NearDuplicateClaims

SETTINGS = {name: getattr(project_settings, name) for name in dir(project_settings) if name.startswith("IMGSCRAPER_")}


def shared_crawl(redis_url: str, crawl_id: str) -> SharedCrawl:
    """A worker's :class:`SharedCrawl` of crawl ``crawl_id``, as if joined (nothing else of it runs)."""
    crawler = get_crawler(Spider, settings_dict={**SETTINGS, "REDIS_URL": redis_url, "IMGSCRAPER_CRAWL_ID": crawl_id})
    shared = SharedCrawl(crawler)
    shared.prefix = f"imgscraper:{crawl_id}:"
    return shared


def with_workers(redis_url: str, crawl_id: str, n: int,
                 test: Callable[[list[SharedNearDuplicateClaims]], Awaitable[Any]]) -> Any:
    """Run ``test`` with the claims of ``n`` workers of crawl ``crawl_id`` (each its own Redis connections)."""

    async def run() -> Any:
        workers = [shared_crawl(redis_url, crawl_id) for _ in range(n)]
        try:
            return await test([SharedNearDuplicateClaims(shared) for shared in workers])
        finally:
            for shared in workers:
                await shared.server.aclose()

    return asyncio.run(run())


def flipped(phash: int, bits: int, rng: random.Random) -> int:
    for bit in rng.sample(range(64), bits):
        phash ^= 1 << bit
    return phash


def test_band_probes_reach_every_hash_within_the_distance():
    rng = random.Random(7)
    for _ in range(2000):
        phash = rng.getrandbits(64)
        other = flipped(phash, rng.randrange(7), rng)
        probes = band_probes(phash, 6)
        assert [len(values) for values in probes] == [17] * 4
        assert [values[0] for values in probes] == [(phash >> shift) & 0xFFFF for shift in (48, 32, 16, 0)]
        assert any((other >> shift) & 0xFFFF in values for shift, values in zip((48, 32, 16, 0), probes))


def test_the_same_answers_as_one_process(redis_url):
    """A long random sequence of claims and releases, each by any of three workers (copies 0 to 9 bits
    from earlier images, smaller, larger, other shapes), gets from Redis the answers NearDuplicateClaims
    gives in one process."""
    rng = random.Random(3)
    local = NearDuplicateClaims()
    claimed: list[HashedImage] = []

    async def compare(workers: list[SharedNearDuplicateClaims]) -> int:
        near = 0
        for n in range(3000):
            if claimed and rng.random() < 0.03:
                image = claimed.pop(rng.randrange(len(claimed)))
                await local.release(image)
                await rng.choice(workers).release(image)
                continue
            if claimed and rng.random() < 0.5:
                like = rng.choice(claimed)
                scale = rng.choice([1, 1, 0.5, 2])
                size = (round(like.width * scale), round(like.height * scale * rng.choice([1, 1, 1, 1.2])))
                phash = flipped(like.phash, rng.randrange(10), rng)
            else:
                size, phash = (rng.choice([400, 800]), rng.choice([300, 600])), rng.getrandbits(64)
            image = HashedImage(phash, *size, f"full/{n}.jpg")
            expected, got = await local.claim(image), await rng.choice(workers).claim(image)
            assert got == expected, (n, image)
            if expected is None:
                claimed.append(image)
            else:
                near += 1
        return near

    near = with_workers(redis_url, "same-answers", 3, compare)
    assert near > 500  # the sequence made many near-duplicates


def test_near_duplicates_claimed_together_by_three_workers_one_filed(redis_url):
    rng = random.Random(5)
    pictures = [rng.getrandbits(64) for _ in range(40)]

    async def claim_together(workers: list[SharedNearDuplicateClaims]) -> list[list[HashedImage | None]]:
        # Each worker claims a copy of every picture, all at the same time.
        copies = [[HashedImage(flipped(phash, w, rng), 640, 480, f"full/{p}-{w}.jpg") for w in range(3)]
                  for p, phash in enumerate(pictures)]
        answers = await asyncio.gather(*(workers[w].claim(group[w]) for group in copies for w in range(3)))
        return [answers[3 * p: 3 * p + 3] for p in range(len(pictures))]

    for group in with_workers(redis_url, "together", 3, claim_together):
        filed = [answer for answer in group if answer is None]
        assert len(filed) == 1, group
        assert len({answer.path for answer in group if answer is not None}) == 1


def test_a_dead_workers_unstored_image_is_no_near_duplicate(redis_url):
    """A worker files an image and dies before storing it. Its copies, and the image itself fetched again
    by another worker under another name, are stored; an image it did store, or filed while alive, counts."""
    url = "https://e.example/a.jpg"
    image = HashedImage(0x0F0F_1234_5678_9ABC, 800, 600, "full/a-first.jpg", url)
    copy = HashedImage(0x0F0F_1234_5678_9ABD, 800, 600, "full/copy.jpg", "https://e.example/copy.jpg")
    again = HashedImage(image.phash, 800, 600, "full/a-again.jpg", url)

    async def scenario(workers: list[SharedNearDuplicateClaims]) -> dict[str, Any]:
        dying, other = workers
        for claims in workers:
            await claims.shared.heartbeat()  # both alive
        assert await dying.shared.claim_images([url]) == [True]
        assert await dying.claim(image) is None  # filed, being stored
        answers = {"alive": await other.claim(copy)}
        await other.shared.release(dying.shared.worker)  # found dead: its heartbeat is gone
        answers["dead"] = await other.claim(copy)
        await other.release(copy)
        assert await other.shared.claim_images([url]) == [True]  # its page is done again, by the other worker
        answers["again"] = await other.claim(again)
        answers["copy after"] = await other.claim(copy)
        return answers

    answers = with_workers(redis_url, "dead-claim", 2, scenario)
    assert answers == {"alive": image, "dead": None, "again": None, "copy after": again}


def test_a_dead_workers_stored_image_still_counts(redis_url):
    url = "https://e.example/b.jpg"
    image = HashedImage(0x7777_1234_5678_9ABC, 800, 600, "full/b.jpg", url)
    copy = HashedImage(0x7777_1234_5678_9ABE, 640, 480, "full/b-small.jpg", "https://e.example/b-small.jpg")

    async def scenario(workers: list[SharedNearDuplicateClaims]) -> HashedImage | None:
        stored, other = workers
        await stored.shared.heartbeat()
        assert await stored.shared.claim_images([url]) == [True]
        assert await stored.claim(image) is None
        stored.shared.item_done({"url": url})
        await stored.shared.write()  # the image is done: marked so in the crawl's images
        await other.shared.release(stored.shared.worker)
        return await other.claim(copy)

    assert with_workers(redis_url, "stored-claim", 2, scenario) == image


def test_the_store_record_comes_first(redis_url):
    """Images of earlier crawls (the store's record) count without being in Redis."""
    recorded = HashedImage(0x1234_5678_9ABC_DEF0, 800, 600, "full/recorded.jpg")
    copy = HashedImage(0x1234_5678_9ABC_DEF1, 800, 600, "full/copy.jpg")

    async def claim(workers: list[SharedNearDuplicateClaims]) -> None:
        claims = SharedNearDuplicateClaims(workers[0].shared, [recorded])
        assert await claims.claim(copy) == recorded
        assert await workers[0].shared.server.exists(workers[0].shared.key("phashes")) == 0

    with_workers(redis_url, "record", 1, claim)


def test_redis_gone_the_image_is_stored(caplog):
    """A claim Redis cannot answer is said once, and lets the image be stored."""
    image = HashedImage(0x1234_5678_9ABC_DEF0, 800, 600, "full/a.jpg")

    async def claim() -> list[HashedImage | None]:
        shared = shared_crawl("redis://127.0.0.1:9/0", "gone")  # the discard port: nothing answers
        claims = SharedNearDuplicateClaims(shared)
        try:
            answers = [await claims.claim(image), await claims.claim(image)]
            await claims.release(image)
            return answers
        finally:
            await shared.server.aclose()

    assert asyncio.run(claim()) == [None, None]
    assert len([r for r in caplog.records if r.getMessage().startswith("Redis failed in shared crawl")]) == 1


def _ignore(**kwargs: Any) -> None:
    pass


def test_a_crawl_started_afresh_forgets_the_hashes(redis_url):
    """A crawl resumed keeps the hashes of its images; once it is finished, the next worker starts it
    afresh, and the last run's images are in the store's record, not in Redis."""
    spider = Spider(name="images")
    image = HashedImage(0x0F0F_0F0F_0F0F_0F0F, 800, 600, "full/a.jpg")

    async def run(expected_fresh: bool, then: str) -> HashedImage | None:
        shared = shared_crawl(redis_url, "afresh")
        for signal in (imgscraper_signals.image_failed, imgscraper_signals.page_failed):
            shared.crawler.signals.connect(_ignore, signal=signal)  # which leave() disconnects from
        try:
            assert await shared.join(spider) is expected_fresh
            answer = await SharedNearDuplicateClaims(shared).claim(image)
            if then == "interrupt":  # a page left in the queue
                await shared.server.zadd(shared.key("requests"), {b"a page": 0})
            else:
                await shared.server.delete(shared.key("requests"))
                await shared.all_pages_done()
                assert await shared.finished()
            return answer
        finally:
            await shared.leave()

    assert asyncio.run(run(expected_fresh=True, then="interrupt")) is None
    assert asyncio.run(run(expected_fresh=False, then="finish")) == image
    assert asyncio.run(run(expected_fresh=True, then="finish")) is None
