"""The store pipeline's decisions and its parts, in process, in Scrapy's style (``get_crawler``,
``build_from_crawler``): a real store in a temporary directory with its real record; only the
download is a stand-in (:class:`StandInEngine` answers from a dict), since no test here tests it."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import io
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import StopDownload
from scrapy.http import Headers, Request, Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure

from imgscraper import settings as project_settings
from imgscraper import signals as imgscraper_signals
from imgscraper.exceptions import ImageFailed
from imgscraper.filters import ImageFilter
from imgscraper.items import ImageItem
from imgscraper.pipelines.filtering import EarlyImageFilter
from imgscraper.pipelines.images import CONTENT_NAMESPACE, ImageStorePipeline
from imgscraper.pipelines.meta import META_KEY, ImageMeta
from imgscraper.pipelines.nearduplicates import (
    HashedImage,
    NearDuplicateClaims,
    hamming_distance,
)
from imgscraper.pipelines.records import SQLiteRecord
from imgscraper.pipelines.stores import AtomicFSFilesStore
from tests.support.images import encode, picture, png

PAGE = "http://127.0.0.1:8000/gallery.html"  # named by items, never fetched
#: The project's defaults of every setting the pipeline reads.
PIPELINE_SETTINGS = {
    name: getattr(project_settings, name) for name in dir(project_settings) if name.startswith(("IMGSCRAPER_", "IMAGES_"))
}


class StandInEngine:
    """Answers the pipeline's downloads from ``answers`` (URL -> ``(status, headers, body)``, or a
    function of the request returning one, or an exception to raise) and keeps the requests."""

    running = True
    spider = None

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.requests: list[Request] = []
        self.closed_with = ""

    async def download_async(self, request: Request) -> Response:
        self.requests.append(request)
        answer = self.answers[request.url]
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, Exception):
            raise answer
        status, headers, body = answer
        return Response(request.url, status=status, headers=headers, body=body, request=request)

    async def close_spider_async(self, reason: str) -> None:
        self.closed_with = reason


class Crawl:
    """One crawl's pipeline on ``store``: its engine stand-in, and the image_failed signals it sent."""

    def __init__(self, store: Path, **settings: Any):
        crawler = get_crawler(settings_dict={**PIPELINE_SETTINGS, "IMAGES_STORE": str(store), **settings})
        crawler.spider = Spider(name="test")
        self.engine = crawler.engine = StandInEngine()
        self.failures: list[dict[str, Any]] = []
        crawler.signals.connect(self._failed, signal=imgscraper_signals.image_failed)
        self.pipeline: ImageStorePipeline = build_from_crawler(ImageStorePipeline, crawler)
        self.pipeline.open_spider()
        self.crawler, self.stats = crawler, crawler.stats

    def _failed(self, **kwargs: Any) -> None:
        self.failures.append({key: kwargs[key] for key in ("url", "page", "status", "reason", "detail")})

    def serve(self, url: str, body: bytes, content_type: str = "image/png", status: int = 200, **headers: str) -> None:
        self.engine.answers[url] = (status, {"Content-Type": content_type, **headers}, body)

    def image(self, url: str, **fields: Any) -> dict[str, Any]:
        """The item of ``url`` once through the pipeline, as a dict."""
        item = ImageItem(url=url, page=PAGE, **fields)
        return vars(asyncio.run(self.pipeline.process_item(item)))

    def close(self) -> None:
        asyncio.run(self.pipeline.close_spider())


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def crawls(store):
    """``crawls(**settings)``: a new crawl into ``store``; each is closed afterwards."""
    made: list[Crawl] = []

    def crawl(**settings: Any) -> Crawl:
        made.append(Crawl(store, **settings))
        return made[-1]

    yield crawl
    for crawl_ in made:
        crawl_.close()


def stored_files(store: Path) -> list[str]:
    return sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file() and ".imgscraper" not in p.parts)


def test_a_new_image_is_stored_byte_exact_under_a_name_from_its_bytes_and_recorded(crawls, store):
    crawl = crawls()
    body = png(1, noise=True)
    crawl.serve("http://127.0.0.1:8000/a.png", body, ETag='"v1"')
    item = crawl.image("http://127.0.0.1:8000/a.png", alt="a harbour", source="img")
    sha256 = hashlib.sha256(body).hexdigest()
    assert item | {"path": "", "checksum": ""} == vars(ImageItem(
        url="http://127.0.0.1:8000/a.png", page=PAGE, alt="a harbour", source="img", width=40, height=30,
        format="PNG", size=len(body), status="downloaded",
    ))
    assert item["path"] == f"full/{uuid.uuid5(CONTENT_NAMESPACE, sha256)}.png"
    assert item["checksum"] == sha256
    assert (store / item["path"]).read_bytes() == body
    (request,) = crawl.engine.requests
    assert request.headers["Referer"] == PAGE.encode() and request.headers["Accept"].startswith(b"image/avif")
    record = SQLiteRecord.in_store(store).get("http://127.0.0.1:8000/a.png")
    assert (record.path, record.etag, record.alt, record.page) == (item["path"], '"v1"', "a harbour", PAGE)
    assert crawl.stats.get_value("imgscraper/images/downloaded") == 1
    assert crawl.stats.get_value("imgscraper/bytes_stored") == len(body)


def test_a_fresh_record_answers_without_a_request(crawls):
    first = crawls()
    first.serve("http://127.0.0.1:8000/a.png", png(1, noise=True))
    stored = first.image("http://127.0.0.1:8000/a.png")
    first.close()
    again = crawls()
    item = again.image("http://127.0.0.1:8000/a.png")
    assert again.engine.requests == []
    assert item["status"] == "uptodate"
    assert {k: item[k] for k in ("path", "checksum", "size")} == {k: stored[k] for k in ("path", "checksum", "size")}
    assert again.stats.get_value("imgscraper/images/uptodate") == 1


def test_an_expired_image_is_asked_for_with_its_validators_and_a_304_keeps_it(crawls, store):
    url = "http://127.0.0.1:8000/a.png"
    first = crawls()
    first.serve(url, png(1, noise=True), ETag='"v1"', **{"Last-Modified": "Mon, 01 Jun 2026 10:00:00 GMT"})
    stored = first.image(url)
    first.close()
    SQLiteRecord.in_store(store).touch(url, time.time() - 3600)
    again = crawls(IMGSCRAPER_EXPIRES="30m")
    again.engine.answers[url] = lambda request: (304, {}, b"") if request.headers.get("If-None-Match") == b'"v1"' else None
    item = again.image(url)
    (request,) = again.engine.requests
    assert request.headers["If-Modified-Since"] == b"Mon, 01 Jun 2026 10:00:00 GMT"
    assert (item["status"], item["path"]) == ("uptodate", stored["path"])
    assert time.time() - SQLiteRecord.in_store(store).get(url).stored_at < 60


def test_a_body_that_is_no_image_fails_leaves_no_file_and_is_remembered(crawls, store):
    url = "http://127.0.0.1:8000/photo.jpg"
    first = crawls()
    first.serve(url, b"<html><body>Not found, sorry</body></html>", content_type="text/html")
    item = first.image(url)
    assert (item["status"], item["reason"], item["path"]) == ("failed", "not-an-image", "")
    assert stored_files(store) == []
    assert first.failures == [{"url": url, "page": PAGE, "status": "failed", "reason": "not-an-image",
                               "detail": "text/html"}]
    assert first.stats.get_value("imgscraper/images/failed/not-an-image") == 1
    first.close()
    again = crawls()
    assert again.image(url)["reason"] == "not-an-image"
    assert again.engine.requests == []  # a fresh rejection of the same bytes is not fetched again


def test_a_link_to_an_html_page_named_like_an_image_is_skipped(crawls):
    crawl = crawls()
    crawl.serve("http://127.0.0.1:8000/File:Photo.jpg", b"<!DOCTYPE html><html></html>", content_type="text/html")
    item = crawl.image("http://127.0.0.1:8000/File:Photo.jpg", source="link-href")
    assert (item["status"], item["reason"]) == ("skipped", "link-to-page")


def test_too_small_is_skipped_and_announced(crawls, store):
    crawl = crawls(IMAGES_MIN_WIDTH=100)
    crawl.serve("http://127.0.0.1:8000/small.png", png(2, noise=True))
    item = crawl.image("http://127.0.0.1:8000/small.png")
    assert (item["status"], item["reason"]) == ("skipped", "too-small")
    assert stored_files(store) == []
    assert crawl.failures == [{"url": "http://127.0.0.1:8000/small.png", "page": PAGE, "status": "skipped",
                               "reason": "too-small", "detail": "40x30"}]


def test_http_errors_and_download_errors_fail_with_their_reason(crawls):
    crawl = crawls()
    crawl.serve("http://127.0.0.1:8000/gone.png", b"", status=404)
    crawl.engine.answers["http://127.0.0.1:8000/refused.png"] = ConnectionRefusedError()
    assert crawl.image("http://127.0.0.1:8000/gone.png")["reason"] == "http-404"
    assert crawl.image("http://127.0.0.1:8000/refused.png")["reason"] == "connection-refused"
    assert [(f["status"], f["reason"]) for f in crawl.failures] == [("failed", "http-404"),
                                                                    ("failed", "connection-refused")]


def test_an_image_not_stored_leaves_with_its_item(crawls):
    """No reference cycle holds what a failed image was: its item goes when it is done with, not at
    the next pass of the garbage collector (which the crawl makes rare)."""
    crawl = crawls()
    crawl.serve("http://127.0.0.1:8000/gone.png", b"", status=404)
    gc.collect()
    gc.disable()
    try:
        item = ImageItem(url="http://127.0.0.1:8000/gone.png", page=PAGE)
        asyncio.run(crawl.pipeline.process_item(item))
        assert item.reason == "http-404"
        alive = weakref.ref(item)
        del item
        assert alive() is None
    finally:
        gc.enable()


def test_an_unsupported_scheme_is_skipped_without_a_request(crawls):
    crawl = crawls()
    item = crawl.image("file:///etc/passwd")
    assert (item["status"], item["reason"]) == ("skipped", "unsupported-scheme")
    assert crawl.engine.requests == []
    assert crawl.failures[0]["reason"] == "unsupported-scheme"


@pytest.fixture(scope="module")
def copies():
    """A picture, and a copy of it at half the size."""
    original = picture("harbour", (320, 240))
    return encode(original, "PNG"), encode(original.resize((160, 120), Image.Resampling.LANCZOS), "PNG")


def test_near_duplicates_skip(crawls, store, copies):
    original, smaller = copies
    crawl = crawls(IMGSCRAPER_NEAR_DUPLICATES="skip")
    crawl.serve("http://127.0.0.1:8000/original.png", original)
    crawl.serve("http://127.0.0.1:8000/smaller.png", smaller)
    kept = crawl.image("http://127.0.0.1:8000/original.png")
    copy = crawl.image("http://127.0.0.1:8000/smaller.png")
    assert (copy["status"], copy["reason"], copy["path"]) == ("skipped", "near-duplicate", kept["path"])
    assert (copy["width"], copy["height"], copy["size"]) == (160, 120, len(smaller))
    assert hamming_distance(int(copy["phash"], 16), int(kept["phash"], 16)) <= NearDuplicateClaims.MAX_DISTANCE
    assert stored_files(store) == [kept["path"]]
    assert crawl.failures[0]["detail"] == f"a near-duplicate of {kept['path']}"


def test_near_duplicates_mark(crawls, store, copies):
    crawl = crawls(IMGSCRAPER_NEAR_DUPLICATES="mark")
    crawl.serve("http://127.0.0.1:8000/original.png", copies[0])
    crawl.serve("http://127.0.0.1:8000/smaller.png", copies[1])
    items = [crawl.image("http://127.0.0.1:8000/original.png"), crawl.image("http://127.0.0.1:8000/smaller.png")]
    assert [item["status"] for item in items] == ["downloaded", "downloaded"]
    assert hamming_distance(*(int(item["phash"], 16) for item in items)) <= NearDuplicateClaims.MAX_DISTANCE
    assert len(stored_files(store)) == 2


def test_a_claim_given_back_lets_its_copy_be_stored():
    claims = NearDuplicateClaims()
    original = HashedImage(0x0F0F_0F0F_0F0F_0F0F, 100, 50, "full/a.png")
    copy = HashedImage(0x0F0F_0F0F_0F0F_0F0C, 50, 25, "full/b.png")

    async def claim_and_release() -> None:
        assert await claims.claim(original) is None
        assert await claims.claim(copy) == original
        assert await claims.claim(original) == original  # the same file: filed once
        await claims.release(original)
        assert await claims.claim(copy) is None
        assert await claims.claim(original) is None  # larger than the copy now filed

    asyncio.run(claim_and_release())


@pytest.mark.parametrize("file_names", ["stable", "random"])
def test_file_path_is_stable_across_its_calls(crawls, file_names):
    pipeline = crawls(IMGSCRAPER_FILE_NAMES=file_names).pipeline
    body = png(3, noise=True)
    request = Request("http://127.0.0.1:8000/a.png")
    response = Response(request.url, body=body, request=request)
    paths = {
        pipeline.file_path(request, response=response),
        pipeline.file_path(request, response=response, info=pipeline.spiderinfo),
        pipeline.file_path(request),
    }
    assert len(paths) == 1
    path = paths.pop()
    assert path.startswith("full/") and path.endswith(".png")
    assert pipeline.thumb_path(request, "small") == f"thumbs/small/{path[5:-4]}.jpg"
    other = Request("http://127.0.0.1:8000/same-bytes.png")
    same_name = pipeline.file_path(other, response=Response(other.url, body=body, request=other)) == path
    assert same_name is (file_names == "stable")


def test_the_store_writes_atomically(tmp_path):
    store = AtomicFSFilesStore(str(tmp_path))
    store.write_file("full/a.png", b"one")
    (tmp_path / "full" / "b.png").mkdir()  # a file cannot replace it: the write fails after writing
    with pytest.raises(OSError):
        store.write_file("full/b.png", b"two")

    async def persist() -> None:
        await maybe_deferred_to_future(store.persist_file("thumbs/s/c.jpg", io.BytesIO(b"three"), info=None))

    asyncio.run(persist())
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "full/a.png", "thumbs/s/c.jpg",
    ]
    assert (tmp_path / "full" / "a.png").read_bytes() == b"one"
    assert store.has_file("full/a.png") and not store.has_file("full/c.png")
    assert store.stat_file("full/missing.png", info=None) == {}


def stopped(crawler: Crawler, headers: dict[str, str], request: Request) -> bool:
    """Whether a receiver of ``headers_received`` stops the download of ``request`` (as Scrapy's
    HTTP/1.1 handler sees it)."""
    results = crawler.signals.send_catch_log(signals.headers_received, headers=Headers(headers), body_length=None,
                                             request=request, spider=crawler.spider, dont_log=StopDownload)
    return any(isinstance(result, Failure) and result.check(StopDownload) for _, result in results)


def test_the_format_filter_stops_a_download_on_its_headers_redirects_included(crawls):
    crawl = crawls(IMGSCRAPER_FORMATS="jpeg")
    pipeline = crawl.pipeline
    (request,) = pipeline.get_media_requests(ImageItem(url="http://127.0.0.1:8000/r.jpg", page=PAGE),
                                             pipeline.spiderinfo)
    redirected = request.replace(url="http://127.0.0.1:8000/real.png")
    assert not stopped(crawl.crawler, {"Content-Type": "image/jpeg"}, request)  # the redirect's own answer
    assert stopped(crawl.crawler, {"Content-Type": "image/png"}, redirected)
    assert redirected.meta[META_KEY] is request.meta[META_KEY]
    with pytest.raises(ImageFailed) as failed:
        pipeline.media_failed(Failure(StopDownload(fail=True)), request, pipeline.spiderinfo)
    assert (failed.value.status, failed.value.reason) == ("skipped", "filtered")
    assert not stopped(crawl.crawler, {"Content-Type": "image/png"}, Request(PAGE))  # a page: not the pipeline's


def test_a_body_of_unknown_length_is_stopped_past_the_maximum():
    early = EarlyImageFilter(ImageFilter(max_bytes=1000))
    request = Request("http://127.0.0.1:8000/big.png", meta={META_KEY: ImageMeta()})
    early.headers_received(Headers({"Content-Type": "image/png"}), None, request)
    early.bytes_received(b"x" * 600, request)
    with pytest.raises(StopDownload):
        early.bytes_received(b"x" * 600, request)
    assert ImageMeta.of(request).filtered == "over 1000 bytes after 1200 received"
