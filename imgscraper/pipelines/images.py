"""The pipeline that downloads, validates and stores each image byte-exact."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy.exceptions import StopDownload
from scrapy.http import Request, Response
from scrapy.http.request import NO_CALLBACK
from scrapy.pipelines.images import ImagesPipeline
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.misc import build_from_crawler, load_object
from twisted.python.failure import Failure

from imgscraper.downloader import crawl_stopping
from imgscraper.exceptions import (
    CrawlStopped, ImageFailed, ImageRejected, NearDuplicate, OriginalFailed, StoppedBeforeDownload, failure_reason,
    rejection_status, store_fault,
)
from imgscraper.extensions.imagelimit import holding_place, image_limit
from imgscraper.filters import ImageFilter
from imgscraper.items import CONTEXT_FIELDS
from imgscraper.pipelines.filepaths import URL_FIELDS, FilePathTemplate, image_fields, thumbnail_path
from imgscraper.pipelines.filtering import EarlyImageFilter
from imgscraper.pipelines.inspection import ImageInfo, inspect_image
from imgscraper.pipelines.meta import META_KEY, ImageMeta
from imgscraper.pipelines.preparation import ImagePreparer
from imgscraper.pipelines.records import ImageRecord, StoreRecord, open_store_record
from imgscraper.pipelines.results import ImageResult, RecentResults, fall_back, shared_result
from imgscraper.pipelines.stores import AtomicFSFilesStore, S3ImageStore
from imgscraper.pipelines.stored import StoredImages
from imgscraper.settingspec import FILE_NAME_MODES, FILE_TIME_MODES, NEAR_DUPLICATE_MODES
from imgscraper.signals import image_failed
from imgscraper.utils import parse_duration

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.pipelines.media import FileInfoOrError, MediaPipeline
    from scrapy.settings import BaseSettings
    from typing_extensions import Self

__all__ = ["ImageStorePipeline"]

logger = logging.getLogger(__name__)

#: Namespace of the stable file names: ``uuid5(CONTENT_NAMESPACE, sha256 hex)``.
CONTENT_NAMESPACE = uuid.UUID("6f1c8a52-3a57-4d5e-9a43-8e2f0b4d7c11")
#: ``Request.priority`` of image requests: below any page's (``DEPTH_PRIORITY`` lowers a page's by
#: its depth), so that in a shared crawl a page waits for no image queued for its host
#: (:class:`imgscraper.distributed.leases.SharedSlotsDownloader` serves a host's queue by priority).
IMAGE_PRIORITY = -1000
#: The only URL schemes images are fetched from.
FETCHED_SCHEMES = ("http", "https", "data")


def _one_of(settings: BaseSettings, name: str, choices: tuple[str, ...]) -> str:
    """Setting ``name``, one of ``choices``; else ``ValueError``, not ``NotConfigured`` (with which
    Scrapy would silently crawl without the pipeline): imgscraper.addons.settingscheck reports it first."""
    value = settings.get(name)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _expiry_seconds(settings: BaseSettings, expires_days: int) -> float:
    """``IMGSCRAPER_EXPIRES`` (``12h``, ``7d``, ...) or, when unset, ``expires_days`` (``IMAGES_EXPIRES``)."""
    value = settings.get("IMGSCRAPER_EXPIRES")
    if value in (None, ""):
        return expires_days * 86400.0
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"IMGSCRAPER_EXPIRES: {exc}") from None


def _checksum(request: Request, response: Response | None) -> str:
    """The SHA-256 of the bytes the image of ``request`` stores (the preparer's, else ``response``'s)."""
    image = ImageMeta.of(request)
    if not image.checksum:
        if response is None:
            raise ValueError("a file name derives from the image bytes: pass the response")
        image.checksum = hashlib.sha256(response.body).hexdigest()
    return image.checksum


def _how_to_resume(settings: BaseSettings) -> str:
    """How the images a stopped crawl did not download are fetched."""
    if settings.get("JOBDIR"):
        return "the same command with the same JOBDIR resumes the crawl and fetches them"
    return ("the same command crawls every page again and fetches them; a crawl started with"
            " -s JOBDIR=crawls/NAME resumes where it stopped")


class ImageStorePipeline(ImagesPipeline):
    """Download each :class:`~imgscraper.items.ImageItem`'s ``url`` and store it.

    Unlike stock ``ImagesPipeline`` the bytes are stored exactly as served
    (unless ``IMGSCRAPER_CONVERT_TO_JPEG``), the extension comes from the
    detected format, and files are named ``full/<uuid>.<ext>`` where the UUID
    derives from the bytes (``IMGSCRAPER_FILE_NAMES = "stable"``), so one
    image reached through several URLs or crawls is one file. The store's
    record (:mod:`imgscraper.pipelines.records`) lets re-crawls skip stored images.
    An item whose ``url`` is the original of a thumbnail (``original_of``) that fails
    (:meth:`falls_back`) becomes the item of the URL the page named, fetched instead
    (:func:`~imgscraper.pipelines.results.fall_back`). Each image not stored is counted
    (``imgscraper/images/<status>/<reason>``) and announced with :data:`imgscraper.signals.image_failed`.
    """

    STORE_SCHEMES = {
        **ImagesPipeline.STORE_SCHEMES, "": AtomicFSFilesStore, "file": AtomicFSFilesStore, "s3": S3ImageStore,
    }
    LOG_FAILED_RESULTS = False
    #: Media results kept for requests that repeat one (see :class:`RecentResults`).
    RESULTS_KEPT = 1000
    #: The Accept header of image requests: what a browser sends for an <img>. Some servers
    #: and CDNs answer a page's Accept (text/html) with an error or a different format.
    IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
    #: Rejections that depend only on the bytes: remembered in the store's record, so a
    #: re-crawl does not fetch the URL again while the rejection is fresh (``IMGSCRAPER_EXPIRES``).
    #: Failures that may pass (HTTP errors, timeouts, truncated or empty bodies) are retried.
    REMEMBERED_REJECTIONS = frozenset({"too-small", "not-an-image", "decompression-bomb", "link-to-page"})

    class SpiderInfo(ImagesPipeline.SpiderInfo):
        def __init__(self, spider: Any):
            super().__init__(spider)
            self.downloaded = RecentResults(ImageStorePipeline.RESULTS_KEPT)

    def __init__(self, store_uri: str, *, crawler: Crawler):
        super().__init__(store_uri, crawler=crawler)
        settings = crawler.settings
        self.thumbs = settings.getdict("IMAGES_THUMBS")
        self.file_names = _one_of(settings, "IMGSCRAPER_FILE_NAMES", FILE_NAME_MODES)
        self.file_path_template = FilePathTemplate.parse(settings.get("IMGSCRAPER_FILE_PATH"))
        self.near_duplicates = _one_of(settings, "IMGSCRAPER_NEAR_DUPLICATES", NEAR_DUPLICATE_MODES)
        self.expires_seconds = _expiry_seconds(settings, self.expires)
        self.image_filter = ImageFilter.from_settings(settings)
        self.early_filter = EarlyImageFilter(self.image_filter)
        self.early_filter.connect(crawler.signals)  # which keeps only a weak reference
        self.preparer = ImagePreparer(
            min_width=self.min_width,
            min_height=self.min_height,
            skip_tracking_pixels=settings.getbool("IMGSCRAPER_SKIP_TRACKING_PIXELS"),
            image_filter=self.image_filter,
            convert_to_jpeg=settings.getbool("IMGSCRAPER_CONVERT_TO_JPEG"),
            thumbs=self.thumbs,
            hash_images=self.near_duplicates != "off",
        )
        self.stats = crawler.stats
        self.image_limit = image_limit(crawler)
        self.store_fault = ""
        self.record: StoreRecord | None = open_store_record(self.store)
        if getattr(self.record, "rebuilt", ""):
            self.stats.set_value("imgscraper/record_rebuilt", self.record.rebuilt)
        claims = (build_from_crawler(load_object(settings["IMGSCRAPER_NEAR_DUPLICATE_CLAIMS"]), crawler, self.record)
                  if self.near_duplicates == "skip" else None)
        self.images = StoredImages(
            self.store, self.record, self.preparer, claims,
            file_path=self.file_path, thumb_path=self.thumb_path, keep_existing=self.file_names == "stable",
            same_bytes_by_record=not self.file_path_template.from_bytes_only,
            server_times=_one_of(settings, "IMGSCRAPER_FILE_TIMES", FILE_TIME_MODES) == "server",
        )

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        cls._update_stores(crawler.settings)
        return cls(crawler.settings["IMAGES_STORE"], crawler=crawler)

    async def close_spider(self) -> None:
        if stopped := self.stats.get_value("imgscraper/images/stopped"):
            logger.info("%(count)d images not downloaded: the crawl stopped first (%(resume)s)",
                        {"count": stopped, "resume": _how_to_resume(self.crawler.settings)})
        if self.record:
            self.record.close()

    # -- requests ---------------------------------------------------------

    def get_media_requests(self, item: Any, info: MediaPipeline.SpiderInfo) -> list[Request]:
        adapter = ItemAdapter(item)
        if adapter.get("status") == "skipped":
            return []  # left out by the spider (a filter on its URL), and counted there
        scheme = adapter["url"].partition(":")[0].lower()
        if scheme not in FETCHED_SCHEMES:
            # Discovery only yields these; an item from elsewhere must not read local files.
            ImageResult("skipped", "unsupported-scheme").fill(item)
            self._not_stored(adapter["url"], adapter.get("page") or "", "skipped", "unsupported-scheme")
            return []
        image = ImageMeta(
            context={name: adapter.get(name) or "" for name in CONTEXT_FIELDS},
            link=adapter.get("source") == "link-href",
            original_of=adapter.get("original_of") or "",
        )
        # What MediaPipeline does per request: every status reaches media_downloaded,
        # except redirects while MEDIA_ALLOW_REDIRECTS is on.
        meta: dict[str, Any] = {META_KEY: image}
        if self.handle_httpstatus_list:
            meta["handle_httpstatus_list"] = self.handle_httpstatus_list
        else:
            meta["handle_httpstatus_all"] = True
        headers = {"Accept": self.IMAGE_ACCEPT}
        if adapter.get("page"):
            headers["Referer"] = adapter["page"]
        return [Request(adapter["url"], callback=NO_CALLBACK, headers=headers, meta=meta, priority=IMAGE_PRIORITY)]

    async def process_item(self, item: Any) -> Any:
        """Download and store the item's image, then fill in its result fields.

        ``MediaPipeline.process_item`` serves items with many files: per
        request it computes a fingerprint and makes four event-loop round
        trips to share downloads between items. An image item has one URL
        and the spider yields each URL once, so this does without (a tenth
        of the CPU per image, ``make bench``); a URL in flight or answered
        recently (:class:`RecentResults`) is still fetched only once.
        """
        if self.image_limit is not None and self.image_limit.reached:
            raise self.image_limit.over_limit()  # not "stopped": the limit stopped it
        if crawl_stopping(self.crawler):
            raise self._stopped()
        info = self.spiderinfo
        async with holding_place(self.image_limit, item):  # max_images
            return self.item_completed(await self._results(item, info), item, info)

    async def _results(self, item: Any, info: MediaPipeline.SpiderInfo) -> list[FileInfoOrError]:
        """The outcome of each of the item's requests; for an original that failed, those of the
        item :func:`~imgscraper.pipelines.results.fall_back` made of it."""
        results: list[FileInfoOrError] = []
        for request in self.get_media_requests(item, info):
            try:
                compute = partial(self._download_and_store, request, info, item)
                results.append((True, await shared_result(info, request.url, compute)))
            except CrawlStopped:
                raise self._stopped() from None
            except OriginalFailed as exc:
                fall_back(item, exc.reason, self.stats)
                return await self._results(item, info)
            except ImageFailed as exc:  # without its traceback, which holds this frame, and so the results
                results.append((False, Failure(exc.with_traceback(None))))
            except Exception as exc:
                results.append((False, Failure(exc)))
        return results

    async def _download_and_store(self, request: Request, info: MediaPipeline.SpiderInfo, item: Any) -> ImageResult:
        answer = await self.media_to_download(request, info, item=item)
        if answer is not None:
            return answer
        try:
            response = await self.crawler.engine.download_async(request)
            return await self.media_downloaded(response, request, info, item=item)
        except Exception:
            self.media_failed(Failure(), request, info)  # raises the image's failure
            raise

    async def media_to_download(
        self, request: Request, info: MediaPipeline.SpiderInfo, *, item: Any = None
    ) -> ImageResult | None:
        """Answer from the store's record when the image is stored and fresh.

        A stored but expired image is re-fetched with its validators, so an
        unchanged one costs a 304 instead of its bytes. A fresh rejection
        (:attr:`REMEMBERED_REJECTIONS`) is repeated without a request.
        """
        record = await self.images.lookup(request)
        if record is None:
            return None
        fresh = time.time() - record.stored_at <= self.expires_seconds
        if not record.rejected and (left_out := self.image_filter.rejection(record.format, record.size)):
            raise self._reject(request, "skipped", "filtered", f"{left_out}, as stored")
        if record.rejected:
            if fresh and self._still_rejected(record):
                raise self._reject(request, rejection_status(record.rejected), record.rejected, "as on an earlier crawl")
            return None
        if not await self.images.has_file(record.path, info):
            return None
        if fresh:
            return self._uptodate(record)
        ImageMeta.of(request).record = record
        if record.etag:
            request.headers["If-None-Match"] = record.etag
        if record.last_modified:
            request.headers["If-Modified-Since"] = record.last_modified
        return None

    def _still_rejected(self, record: ImageRecord) -> bool:
        """Whether a remembered rejection holds under this crawl's size limits."""
        if record.rejected != "too-small":
            return True
        try:
            self.preparer.check_size(ImageInfo(record.format, record.width, record.height))
        except ImageRejected:
            return True
        return False

    def _uptodate(self, record: ImageRecord) -> ImageResult:
        self._count("uptodate")
        return ImageResult("uptodate", image=record)

    # -- responses --------------------------------------------------------

    def media_failed(self, failure: Failure, request: Request, info: MediaPipeline.SpiderInfo) -> None:
        exc = failure.value
        if isinstance(exc, (ImageFailed, CrawlStopped)):
            raise exc
        if isinstance(exc, StopDownload) and (left_out := ImageMeta.of(request).filtered):
            raise self._reject(request, "skipped", "filtered", left_out)
        reason = failure_reason(exc)
        status = "skipped" if reason in ("robots-txt", "ignored") else "failed"
        raise self._reject(request, status, reason, str(exc))

    async def media_downloaded(
        self, response: Response, request: Request, info: MediaPipeline.SpiderInfo, *, item: Any = None
    ) -> ImageResult:
        image = ImageMeta.of(request)
        if response.status == 304 and image.record is not None:
            await self.images.touch(image.record)
            return self._uptodate(image.record)
        if response.status != 200:
            raise self._reject(request, "failed", f"http-{response.status}")
        try:
            stored, already_stored = await self.images.write(response, request, info, item)
        except NearDuplicate as exc:
            self._reject(request, "skipped", "near-duplicate", f"a near-duplicate of {exc.stored.path}")
            return ImageResult.near_duplicate(request.url, exc.stored.path, image, len(response.body))
        except ImageRejected as exc:
            if exc.reason in self.REMEMBERED_REJECTIONS:
                await self.images.remember_rejection(request, response, exc.reason)
            raise self._reject(request, rejection_status(exc.reason), exc.reason, exc.detail) from None
        except (OSError, sqlite3.Error) as exc:
            raise self._store_failed(request, exc) from None
        # A data: URI carries its image: if that file is stored, it is up to date.
        status = "uptodate" if already_stored and request.url.startswith("data:") else "downloaded"
        self._count(status)
        if not already_stored:
            self.stats.inc_value("imgscraper/bytes_stored", stored.size)
        logger.debug("Stored %(url)s as %(path)s", {"url": request.url[:300], "path": stored.path})
        return ImageResult(status, image=stored)

    def _store_failed(self, request: Request, exc: OSError | sqlite3.Error) -> ImageFailed:
        """Fail this image and stop the crawl: a store that cannot be written fails every image.

        The first failure logs one ERROR line and closes the spider with the
        reason (``store_full``, ``store_unwritable`` or ``store_error``);
        images in flight fail the same way. Files already stored are
        complete (writes are atomic) and stay.
        """
        reason = store_fault(exc)
        if not self.store_fault:
            self.store_fault = reason
            logger.error(
                "Cannot write to IMAGES_STORE %(store)s (%(error)s): stopping the crawl",
                {"store": getattr(self.store, "basedir", ""), "error": getattr(exc, "strerror", None) or exc},
            )
            self._closing = deferred_from_coro(self.crawler.engine.close_spider_async(reason=reason.replace("-", "_")))
        return self._reject(request, "failed", reason, str(exc))

    def falls_back(self, status: str, reason: str) -> bool:
        """Whether an original that ended ``status`` for ``reason`` gives way to the URL the page
        named: every failure (HTTP errors after retries, a body that is no image, an unreachable
        host...) but the store's, which stops the crawl."""
        return status == "failed" and not reason.startswith("store-")

    def _reject(self, request: Request, status: str, reason: str, detail: str = "") -> ImageFailed:
        """Count and announce the image of ``request`` not stored (``status`` ``skipped`` or ``failed``);
        returns the failure to raise: :class:`OriginalFailed`, neither counted nor announced, for an
        original that :meth:`falls_back`."""
        if ImageMeta.of(request).original_of and self.falls_back(status, reason):
            return OriginalFailed(status, reason, detail)
        page = request.headers.get("Referer", b"").decode("utf-8", "replace")
        self._not_stored(request.url, page, status, reason, detail)
        return ImageFailed(status, reason, detail)

    def _not_stored(self, url: str, page: str, status: str, reason: str, detail: str = "") -> None:
        """Count an image not stored and send :data:`~imgscraper.signals.image_failed` for it."""
        self._count(status, reason)
        self.crawler.signals.send_catch_log(image_failed, url=url, page=page, status=status, reason=reason, detail=detail)

    def _stopped(self) -> StoppedBeforeDownload:
        self.stats.inc_value("imgscraper/images/stopped")
        return StoppedBeforeDownload()

    def _count(self, status: str, reason: str = "") -> None:
        self.stats.inc_value(f"imgscraper/images/{status}")
        if reason:
            self.stats.inc_value(f"imgscraper/images/{status}/{reason}")

    # -- results ----------------------------------------------------------

    def item_completed(self, results: list[FileInfoOrError], item: Any, info: MediaPipeline.SpiderInfo) -> Any:
        for ok, result in results:
            if ok:
                result.fill(item)
                if result.status in ("downloaded", "uptodate") and ItemAdapter(item).get("original_of"):
                    self.stats.inc_value("imgscraper/originals/stored")
            elif isinstance(result.value, ImageFailed):
                ImageResult(result.value.status, result.value.reason).fill(item)
            else:
                logger.error("Unexpected error storing %(url)s", {"url": ItemAdapter(item)["url"]}, exc_info=result.value)
                ImageResult("failed", failure_reason(result.value)).fill(item)
        return item

    # -- names ------------------------------------------------------------

    def file_path(
        self, request: Request, response: Response | None = None, info: MediaPipeline.SpiderInfo | None = None, *, item: Any = None
    ) -> str:
        """The image's path under the store: ``IMGSCRAPER_FILE_PATH`` filled in with
        :meth:`file_path_fields` (:mod:`imgscraper.pipelines.filepaths`), by default
        ``full/<uuid>.<ext>``. Known only once the image is downloaded; the same in every
        call for one request (kept in its :class:`ImageMeta`)."""
        image = ImageMeta.of(request)
        if not image.path:
            image.path = self.file_path_template.render(self.file_path_fields(request, response))
        return image.path

    def file_path_fields(self, request: Request, response: Response | None) -> dict[str, str]:
        """The values of the path template's fields for the image of ``request``: the UUID derives
        from the stored bytes (or is minted once per request in ``random`` mode), the extension
        from the detected format; the rest from the URLs and the page's context."""
        image = ImageMeta.of(request)
        if image.info is None:
            if response is None:
                raise ValueError("the file extension derives from the image bytes: pass the response")
            image.info = inspect_image(response.body)
        fields = {
            "uuid": self._file_uuid(request, response), "sha256": _checksum(request, response),
            "ext": f".{image.info.extension}", "alt": image.context.get("alt", ""),
            "page_title": image.context.get("page_title", ""), "date": time.strftime("%Y-%m-%d"),
        }
        if self.file_path_template.fields & URL_FIELDS:
            fields.update(image_fields(request.url, request.headers.get("Referer", b"").decode("utf-8", "replace")))
        return fields

    def thumb_path(
        self, request: Request, thumb_id: str, response: Response | None = None, info: Any = None, *, item: Any = None
    ) -> str:
        """``thumbs/<thumb_id>/`` and the image's path, less ``full/``, as ``.jpg`` (:func:`thumbnail_path`)."""
        return thumbnail_path(self.file_path(request, response), thumb_id)

    def _file_uuid(self, request: Request, response: Response | None) -> str:
        image = ImageMeta.of(request)
        if self.file_names == "random":
            image.uuid = image.uuid or str(uuid.uuid4())
            return image.uuid
        return str(uuid.uuid5(CONTENT_NAMESPACE, _checksum(request, response)))
