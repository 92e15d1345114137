"""Memory that stays flat as a crawl grows: the media result cache is bounded."""

from __future__ import annotations

from scrapy import Spider

from imgscraper.pipelines.images import ImageStorePipeline
from imgscraper.pipelines.results import RecentResults


def test_recent_results_keeps_only_the_newest():
    results = RecentResults(limit=3)
    for n in range(10):
        results[n] = f"result {n}"
    assert list(results) == [7, 8, 9]
    assert results[9] == "result 9"
    results[9] = "again"  # replacing a key does not evict another
    assert list(results) == [7, 8, 9]


def test_pipeline_spider_info_caches_a_bounded_number_of_results():
    info = ImageStorePipeline.SpiderInfo(Spider(name="test"))
    for n in range(ImageStorePipeline.RESULTS_KEPT + 500):
        info.downloaded[str(n).encode()] = {"url": f"http://example.com/{n}.jpg"}
    assert len(info.downloaded) == ImageStorePipeline.RESULTS_KEPT
    assert str(ImageStorePipeline.RESULTS_KEPT + 499).encode() in info.downloaded
    assert b"0" not in info.downloaded
