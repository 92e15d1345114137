"""ImageLimit (IMGSCRAPER_MAX_IMAGES): places handed out, kept or given back, waited for; the spider
closed at the last one. In process, with a stand-in engine."""

from __future__ import annotations

import asyncio
import pytest
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from imgscraper.exceptions import ImageLimitReached, StoppedBeforeDownload
from imgscraper.extensions.imagelimit import ImageLimit, image_limit, listed_within_limit
from imgscraper.items import ImageItem


class Engine:
    spider = object()

    def __init__(self) -> None:
        self.closed_with: list[str] = []

    async def close_spider_async(self, reason: str) -> None:
        self.closed_with.append(reason)


def make_limit(max_images: int) -> tuple[ImageLimit, Engine]:
    crawler = get_crawler(settings_dict={"IMGSCRAPER_MAX_IMAGES": max_images,
                                         "EXTENSIONS": {"imgscraper.extensions.imagelimit.ImageLimit": 0}})
    crawler.engine = Engine()
    limit = image_limit(crawler)
    assert isinstance(limit, ImageLimit)
    return limit, crawler.engine


def item(status: str = "listed") -> ImageItem:
    return ImageItem(url="http://127.0.0.1/a.png", page="", status=status)


def test_no_limit_is_no_extension():
    with pytest.raises(NotConfigured):
        ImageLimit.from_crawler(get_crawler(settings_dict={"IMGSCRAPER_MAX_IMAGES": 0}))
    assert image_limit(get_crawler(settings_dict={"IMGSCRAPER_MAX_IMAGES": 0})) is None


def test_places_kept_count_places_given_back_do_not():
    async def run() -> None:
        limit, engine = make_limit(2)
        assert limit.take() and limit.take() and not limit.take()  # both places held
        limit.release(kept=False)  # failed: its place is free again
        assert limit.take()
        limit.release(kept=True)
        limit.release(kept=True)
        await asyncio.sleep(0)
        assert limit.reached and engine.closed_with == ["max_images"]
        assert limit.crawler.stats.get_value("imgscraper/max_images_reached") == 2
        assert not limit.take() and not await limit.acquire()

    asyncio.run(run())


def test_images_wait_for_a_place_and_are_turned_away_once_the_limit_is_reached():
    async def run() -> None:
        limit, _ = make_limit(1)
        outcomes: list[str] = []

        async def image(name: str, status: str) -> None:
            picture = item()
            try:
                async with limit.hold(picture):
                    outcomes.append(f"{name} holds")
                    await asyncio.sleep(0.01)
                    picture.status = status
            except ImageLimitReached as exc:
                assert isinstance(exc, StoppedBeforeDownload)  # dropped, its page left to do in a JOBDIR
                outcomes.append(f"{name} over")

        await asyncio.gather(image("a", "failed"), image("b", "downloaded"), image("c", "downloaded"))
        assert outcomes == ["a holds", "b holds", "c over"]
        assert limit.crawler.stats.get_value("imgscraper/images/over_limit") == 1

    asyncio.run(run())


def test_a_skipped_item_takes_no_place():
    async def run() -> None:
        limit, _ = make_limit(1)
        async with limit.hold(item("skipped")):
            assert limit.holding == 0
        assert limit.stored == 0

    asyncio.run(run())


def test_listing_counts_each_listed_item():
    async def run() -> None:
        limit, engine = make_limit(2)
        crawler = limit.crawler
        assert [listed_within_limit(crawler, item(status)) for status in ("listed", "skipped", "listed", "listed")] == [
            True, True, True, False]
        await asyncio.sleep(0)
        assert engine.closed_with == ["max_images"]

    asyncio.run(run())
