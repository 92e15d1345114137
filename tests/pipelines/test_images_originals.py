"""The store pipeline and originals (``-a originals=yes``): an item whose ``url`` is the original of
a thumbnail stores the original; when the original fails, the URL the page named is stored instead,
counted, with no failure line. In process, as tests/pipelines/test_components.py runs the pipeline."""

from __future__ import annotations

from tests.pipelines.test_components import PAGE, crawls, store, stored_files  # noqa: F401 - fixtures
from tests.support.images import png

THUMB = "http://127.0.0.1:8000/wp-content/uploads/2023/05/harbour-300x200.png"
ORIGINAL = "http://127.0.0.1:8000/wp-content/uploads/2023/05/harbour.png"


def test_the_original_is_stored_and_the_item_names_the_thumbnail(crawls, store):
    crawl = crawls()
    crawl.serve(ORIGINAL, png("original", (90, 60)))
    item = crawl.image(ORIGINAL, original_of=THUMB)
    assert (item["status"], item["url"], item["original_of"], item["width"]) == ("downloaded", ORIGINAL, THUMB, 90)
    assert [request.url for request in crawl.engine.requests] == [ORIGINAL]
    assert crawl.stats.get_value("imgscraper/originals/fallback") is None


def test_an_original_that_is_not_found_gives_way_to_the_thumbnail_without_a_failure(crawls, store):
    crawl = crawls()
    crawl.serve(ORIGINAL, b"not here", content_type="text/plain", status=404)
    crawl.serve(THUMB, png("thumbnail", (30, 20)))
    item = crawl.image(ORIGINAL, original_of=THUMB)
    assert (item["status"], item["url"], item["original_of"], item["width"]) == ("downloaded", THUMB, "", 30)
    assert [request.url for request in crawl.engine.requests] == [ORIGINAL, THUMB]
    assert crawl.engine.requests[1].headers["Referer"] == PAGE.encode()
    assert stored_files(store) == [item["path"]]
    assert crawl.failures == []
    assert crawl.stats.get_value("imgscraper/images/failed") is None
    assert crawl.stats.get_value("imgscraper/originals/fallback") == 1
    assert crawl.stats.get_value("imgscraper/originals/fallback/http-404") == 1


def test_an_original_that_is_no_image_is_remembered_and_the_next_crawl_asks_only_the_record(crawls):
    first = crawls()
    first.serve(ORIGINAL, b"<!DOCTYPE html><html>a page</html>", content_type="text/html")
    first.serve(THUMB, png("thumbnail", (30, 20)))
    assert first.image(ORIGINAL, original_of=THUMB)["url"] == THUMB
    first.close()
    again = crawls()
    item = again.image(ORIGINAL, original_of=THUMB)
    assert (item["status"], item["url"]) == ("uptodate", THUMB)
    assert again.engine.requests == []
    assert again.stats.get_value("imgscraper/originals/fallback/not-an-image") == 1


def test_when_the_thumbnail_fails_too_its_failure_is_the_one_reported(crawls):
    crawl = crawls()
    crawl.serve(ORIGINAL, b"", status=500)
    crawl.serve(THUMB, b"", status=410)
    item = crawl.image(ORIGINAL, original_of=THUMB)
    assert (item["status"], item["reason"], item["url"], item["original_of"]) == ("failed", "http-410", THUMB, "")
    assert [(failure["url"], failure["reason"]) for failure in crawl.failures] == [(THUMB, "http-410")]
    assert crawl.stats.get_value("imgscraper/images/failed") == 1


def test_an_original_left_out_by_a_filter_is_not_replaced(crawls):
    crawl = crawls(IMGSCRAPER_FORMATS="jpeg")
    crawl.serve(ORIGINAL, png("original", (90, 60)))
    item = crawl.image(ORIGINAL, original_of=THUMB)
    assert (item["status"], item["reason"], item["url"]) == ("skipped", "filtered", ORIGINAL)
    assert [request.url for request in crawl.engine.requests] == [ORIGINAL]


def test_without_original_of_a_failure_is_a_failure(crawls):
    crawl = crawls()
    crawl.serve(ORIGINAL, b"", status=404)
    item = crawl.image(ORIGINAL)
    assert (item["status"], item["reason"]) == ("failed", "http-404")
    assert crawl.stats.get_value("imgscraper/originals/fallback") is None
