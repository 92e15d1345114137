"""The shared crawl's add-on (:class:`imgscraper.addons.distributed.DistributedCrawl`): the settings it changes."""

from __future__ import annotations

from scrapy.settings import Settings

from imgscraper.addons.distributed import DistributedCrawl


def test_near_duplicates_are_claimed_in_redis_only_in_a_shared_crawl():
    alone = Settings()
    alone.setmodule("imgscraper.settings", priority="project")
    shared = alone.copy()
    shared.set("IMGSCRAPER_REDIS_URL", "redis://127.0.0.1:6379/0", priority="cmdline")
    for settings in (alone, shared):
        DistributedCrawl().update_settings(settings)
    assert alone["IMGSCRAPER_NEAR_DUPLICATE_CLAIMS"] == "imgscraper.pipelines.nearduplicates.NearDuplicateClaims"
    assert shared["IMGSCRAPER_NEAR_DUPLICATE_CLAIMS"] == "imgscraper.distributed.nearduplicates.SharedNearDuplicateClaims"
