"""The pipeline that downloads, validates and stores each image byte-exact."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import sqlite3
import tempfile
import threading
import time
import uuid
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from PIL import Image, ImageOps
from scrapy import signals
from scrapy.exceptions import StopDownload
from scrapy.http import Headers, Request, Response
from scrapy.http.request import NO_CALLBACK
from scrapy.pipelines.files import FSFilesStore, S3FilesStore
from scrapy.pipelines.images import ImagesPipeline
from scrapy.pipelines.media import FileInfoOrError, MediaPipeline
from scrapy.utils.asyncio import run_in_thread
from scrapy.utils.defer import deferred_from_coro, ensure_awaitable, maybe_deferred_to_future
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from imgscraper.downloader import crawl_stopping
from imgscraper.exceptions import CrawlStopped, ImageFailed, ImageRejected, NearDuplicate, StoppedBeforeDownload, failure_reason, rejection_status, store_fault
from imgscraper.pipelines.inspection import ImageInfo, inspect_image
from imgscraper.utils import parse_duration
from imgscraper.filters import ImageFilter
from imgscraper.items import CONTEXT_FIELDS
from imgscraper.pipelines.nearduplicates import HashedImage, NearDuplicateIndex, perceptual_hash
from imgscraper.pipelines.records import ImageRecord, SQLiteRecord, StoreRecord, open_store_record
from imgscraper.settingspec import FILE_NAME_MODES, NEAR_DUPLICATE_MODES

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import Self

    from scrapy.crawler import Crawler

__all__ = [
    "AtomicFSFilesStore", "ImageFailed", "ImageStorePipeline", "S3ImageStore", "StoppedBeforeDownload",
    "failure_reason", "to_jpeg",
]

logger = logging.getLogger(__name__)

#: Namespace of the stable file names: ``uuid5(CONTENT_NAMESPACE, sha256 hex)``.
CONTENT_NAMESPACE = uuid.UUID("6f1c8a52-3a57-4d5e-9a43-8e2f0b4d7c11")
#: The only URL schemes images are fetched from.
FETCHED_SCHEMES = ("http", "https", "data")


def _is_html(response: Response) -> bool:
    """Whether ``response`` is an HTML page, by its Content-Type or its first bytes."""
    content_type = response.headers.get("Content-Type", b"").partition(b";")[0].strip().lower()
    if content_type in (b"text/html", b"application/xhtml+xml"):
        return True
    return response.body[:512].lstrip().lower().startswith((b"<!doctype html", b"<html"))


def to_jpeg(picture: Image.Image, size: tuple[int, int] | None = None) -> BytesIO:
    """Encode ``picture`` (shrunk to fit ``size``) as JPEG, transparency on white."""
    picture = picture.copy()
    if size:
        picture.thumbnail(size, Image.Resampling.LANCZOS)
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        rgba = picture.convert("RGBA")
        picture = Image.new("RGB", rgba.size, (255, 255, 255))
        picture.paste(rgba, mask=rgba.getchannel("A"))
    buf = BytesIO()
    picture.convert("RGB").save(buf, "JPEG", quality=90)
    return buf


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class AtomicFSFilesStore(FSFilesStore):
    """A local store that writes each file under a temporary name, then renames it.

    A crawl killed mid-write never leaves a truncated image behind, only a
    temporary file named ``.tmp-<host>-<pid>-*``; opening the store removes
    those whose process is gone (same host) or that are over an hour old, so
    crawls sharing a store never delete each other's files in progress.
    ``write_file`` is synchronous (the pipeline picks the thread),
    ``persist_file`` writes in a worker thread. ``stat_file`` only stats
    (stock also reads the whole file to compute an MD5 nobody uses).
    """

    #: Temporary files older than this (seconds) are junk whoever wrote them.
    STALE_AFTER = 3600.0

    def __init__(self, basedir: str | os.PathLike[str]):
        super().__init__(basedir)
        self.temp_prefix = f".tmp-{socket.gethostname()}-{os.getpid()}-"
        removed = self.remove_stale_temp_files()
        if removed:
            logger.info("Removed %d temporary files left in %s by an interrupted crawl", removed, self.basedir)

    def remove_stale_temp_files(self) -> int:
        """Delete temporary files that interrupted crawls left; returns how many."""
        removed, now, mine = 0, time.time(), f".tmp-{socket.gethostname()}-"
        for folder in ("full", "thumbs"):
            for tmp in Path(self.basedir, folder).rglob(".tmp-*"):
                pid = tmp.name[len(mine):].partition("-")[0] if tmp.name.startswith(mine) else ""
                try:
                    writer_gone = pid.isdigit() and not _process_alive(int(pid))
                    if writer_gone or now - tmp.stat().st_mtime > self.STALE_AFTER:
                        tmp.unlink()
                        removed += 1
                except OSError:
                    continue
        return removed

    def persist_file(  # type: ignore[override]
        self,
        path: str,
        buf: BytesIO,
        info: MediaPipeline.SpiderInfo,
        meta: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Deferred[None]:
        target = self._get_filesystem_path(path)
        return deferred_from_coro(run_in_thread(self._write_atomically, target, buf.getbuffer()))

    def has_file(self, path: str) -> bool:
        """Whether ``path`` is stored."""
        return self._get_filesystem_path(path).exists()

    def write_file(self, path: str, data: memoryview | bytes) -> None:
        """Store ``data`` at ``path`` atomically."""
        self._write_atomically(self._get_filesystem_path(path), data)

    def _write_atomically(self, target: Path, data: memoryview | bytes) -> None:
        try:
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=self.temp_prefix, suffix=target.suffix)
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=self.temp_prefix, suffix=target.suffix)
        try:
            with open(fd, "wb", buffering=0) as tmp:
                view = memoryview(data)
                while view:
                    view = view[tmp.write(view) :]
            os.replace(tmp_name, target)
        except BaseException:
            # On a store turned read-only even this fails: the next crawl removes it.
            with contextlib.suppress(OSError):
                Path(tmp_name).unlink()
            raise

    def stat_file(self, path: str, info: MediaPipeline.SpiderInfo) -> dict[str, float]:  # type: ignore[override]
        try:
            return {"last_modified": self._get_filesystem_path(path).stat().st_mtime}
        except OSError:
            return {}


class S3ImageStore(S3FilesStore):
    """An S3 or S3-compatible store (``AWS_ENDPOINT_URL``): ``s3://bucket[/prefix]``.

    The prefix is a folder whether or not the URI ends with ``/``. Like the
    local store, ``stat_file`` answers ``{}`` for a missing file, and a
    failing S3 call raises ``OSError`` (the pipeline's "store error").
    """

    def __init__(self, uri: str):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        super().__init__(f"s3://{bucket}/{prefix}/" if prefix else f"s3://{bucket}/")

    def persist_file(  # type: ignore[override]
        self,
        path: str,
        buf: BytesIO,
        info: MediaPipeline.SpiderInfo,
        meta: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Deferred[Any]:
        return deferred_from_coro(self._call(super().persist_file, path, buf, info, meta, headers))

    def stat_file(self, path: str, info: MediaPipeline.SpiderInfo) -> Deferred[dict[str, Any]]:  # type: ignore[override]
        return deferred_from_coro(self._call(super().stat_file, path, info, missing={}))

    @staticmethod
    async def _call(method: Any, *args: Any, missing: Any = None) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            return await ensure_awaitable(method(*args))
        except ClientError as exc:
            if missing is not None and exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return missing
            raise OSError(f"S3: {exc}") from exc
        except BotoCoreError as exc:
            raise OSError(f"S3: {exc}") from exc


class RecentResults(dict):
    """A dict that keeps only its ``limit`` most recently added entries.

    ``MediaPipeline`` caches every media result for the whole crawl, so its
    memory grows with the site. The spider never yields an image URL twice
    and the store's record answers for images of earlier crawls, so only
    a short memory of recent results is worth keeping.
    """

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        if len(self) > self.limit:
            del self[next(iter(self))]


class ImageStorePipeline(ImagesPipeline):
    """Download each :class:`~imgscraper.items.ImageItem`'s ``url`` and store it.

    Unlike stock ``ImagesPipeline`` the bytes are stored exactly as served
    (unless ``IMGSCRAPER_CONVERT_TO_JPEG``), the extension comes from the
    detected format, and files are named ``full/<uuid>.<ext>`` where the UUID
    derives from the bytes (``IMGSCRAPER_FILE_NAMES = "stable"``), so one
    image reached through several URLs or crawls is one file. The store's
    record (:mod:`imgscraper.pipelines.records`) lets re-crawls skip stored images.
    """

    STORE_SCHEMES = {
        **ImagesPipeline.STORE_SCHEMES,
        "": AtomicFSFilesStore,
        "file": AtomicFSFilesStore,
        "s3": S3ImageStore,
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
    #: Larger images are hashed and written in a worker thread (see :meth:`_store_inline`).
    INLINE_STORE_MAX_BYTES = 2 * 1024 * 1024
    #: Near-duplicates (``IMGSCRAPER_NEAR_DUPLICATES=skip``): perceptual hashes at most this many bits apart.
    #: Resized, recompressed and re-encoded copies of a picture are 0 to 4 bits apart, copies cropped by
    #: 1-2% up to 4, by 5% up to 8; unrelated pictures 32 on average (tests/test_phash.py).
    NEAR_DUPLICATE_DISTANCE = 6
    #: ... and width / height ratios at most this far apart (relative): a resize rounds to whole pixels.
    NEAR_DUPLICATE_ASPECT_TOLERANCE = 0.03

    class SpiderInfo(ImagesPipeline.SpiderInfo):
        def __init__(self, spider: Any):
            super().__init__(spider)
            self.downloaded = RecentResults(ImageStorePipeline.RESULTS_KEPT)

    def __init__(self, store_uri: str, *, crawler: Crawler):
        super().__init__(store_uri, crawler=crawler)
        settings = crawler.settings
        self.thumbs = settings.getdict("IMAGES_THUMBS")
        self.file_names: str = settings.get("IMGSCRAPER_FILE_NAMES")
        if self.file_names not in FILE_NAME_MODES:
            # Not NotConfigured: Scrapy would silently crawl without the pipeline.
            # imgscraper.addons.settingscheck reports this before the pipeline is built.
            raise ValueError(
                f"IMGSCRAPER_FILE_NAMES must be one of {', '.join(FILE_NAME_MODES)}, not {self.file_names!r}"
            )
        self.near_duplicates: str = settings.get("IMGSCRAPER_NEAR_DUPLICATES")
        if self.near_duplicates not in NEAR_DUPLICATE_MODES:
            raise ValueError(  # reported by imgscraper.addons.settingscheck first
                f"IMGSCRAPER_NEAR_DUPLICATES must be one of {', '.join(NEAR_DUPLICATE_MODES)}, not {self.near_duplicates!r}"
            )
        self.convert_to_jpeg: bool = settings.getbool("IMGSCRAPER_CONVERT_TO_JPEG")
        self.skip_tracking_pixels: bool = settings.getbool("IMGSCRAPER_SKIP_TRACKING_PIXELS")
        self.expires_seconds: float = self._expires_seconds(settings)
        self.image_filter = ImageFilter.from_settings(settings)
        if self.image_filter.decides_on_headers:
            crawler.signals.connect(self.stop_filtered_download, signal=signals.headers_received)
        if self.image_filter.max_bytes:
            crawler.signals.connect(self.stop_oversized_download, signal=signals.bytes_received)
        self.stats = crawler.stats
        self.store_fault = ""
        self.record: StoreRecord | None = open_store_record(self.store)
        if getattr(self.record, "rebuilt", ""):
            self.stats.set_value("imgscraper/record_rebuilt", self.record.rebuilt)
        self.stored_hashes: NearDuplicateIndex | None = None
        self._stored_hashes_lock = threading.Lock()
        if self.near_duplicates == "skip":
            self.stored_hashes = self._open_stored_hashes()

    def _open_stored_hashes(self) -> NearDuplicateIndex:
        """The near-duplicate index, holding the images of the store's record that have a hash."""
        index = NearDuplicateIndex(self.NEAR_DUPLICATE_DISTANCE, self.NEAR_DUPLICATE_ASPECT_TOLERANCE)
        try:
            records = self.record.all() if self.record is not None else []
        except (OSError, sqlite3.Error) as exc:
            logger.warning("Cannot read the hashes of stored images (%s): near-duplicates of this crawl only", exc)
            records = []
        hashed = {r.path: r for r in records if r.phash and r.path and r.width and r.height}
        for record in hashed.values():
            index.add(HashedImage(int(record.phash, 16), record.width, record.height, record.path))
        return index

    def _expires_seconds(self, settings: Any) -> float:
        """``IMGSCRAPER_EXPIRES`` (``12h``, ``7d``, ...) or, when unset, ``IMAGES_EXPIRES`` days."""
        value = settings.get("IMGSCRAPER_EXPIRES")
        if value in (None, ""):
            return self.expires * 86400.0
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"IMGSCRAPER_EXPIRES: {exc}") from None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        cls._update_stores(crawler.settings)
        return cls(crawler.settings["IMAGES_STORE"], crawler=crawler)

    async def close_spider(self) -> None:
        if stopped := self.stats.get_value("imgscraper/images/stopped"):
            logger.info("%(count)d images not downloaded: the crawl stopped first "
                        "(the same command with the same JOBDIR fetches them)", {"count": stopped})
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
            adapter.update(status="skipped", reason="unsupported-scheme")
            self._count("skipped", "unsupported-scheme")
            logger.warning("Image skipped (unsupported-scheme): %(url)s", {"url": adapter["url"][:300]})
            return []
        meta: dict[str, Any] = {"imgscraper_image": True}
        if self.file_names == "random":
            meta["imgscraper_uuid"] = str(uuid.uuid4())
        # What MediaPipeline does per request: every status reaches media_downloaded,
        # except redirects while MEDIA_ALLOW_REDIRECTS is on.
        if self.handle_httpstatus_list:
            meta["handle_httpstatus_list"] = self.handle_httpstatus_list
        else:
            meta["handle_httpstatus_all"] = True
        if adapter.get("source") == "link-href":
            meta["imgscraper_link"] = True
        meta["imgscraper_context"] = {name: adapter.get(name) or "" for name in CONTEXT_FIELDS}
        headers = {"Accept": self.IMAGE_ACCEPT}
        if adapter.get("page"):
            headers["Referer"] = adapter["page"]
        return [Request(adapter["url"], callback=NO_CALLBACK, headers=headers, meta=meta)]

    async def process_item(self, item: Any) -> Any:
        """Download and store the item's image, then fill in its result fields.

        ``MediaPipeline.process_item`` serves items with many files: per
        request it computes a fingerprint and makes four event-loop round
        trips to share downloads between items. An image item has one URL
        and the spider yields each URL once, so this does without (a tenth
        of the CPU per image, ``make bench``); a URL in flight or answered
        recently (:class:`RecentResults`) is still fetched only once.
        """
        if crawl_stopping(self.crawler):
            raise self._stopped()
        info = self.spiderinfo
        results: list[FileInfoOrError] = []
        for request in self.get_media_requests(item, info):
            try:
                results.append((True, await self._image_result(request, info, item)))
            except CrawlStopped:
                raise self._stopped() from None
            except Exception as exc:
                results.append((False, Failure(exc)))
        return self.item_completed(results, item, info)

    async def _image_result(self, request: Request, info: MediaPipeline.SpiderInfo, item: Any) -> dict[str, Any]:
        """The result of ``request``, shared with the requests for its URL in flight or answered recently."""
        url = request.url
        if url in info.downloaded:
            return self._cached(info.downloaded[url])
        if url in info.downloading:
            waiter: Deferred[None] = Deferred()
            info.waiting[url].append(waiter)
            await maybe_deferred_to_future(waiter)
            return self._cached(info.downloaded[url])
        info.downloading.add(url)
        try:
            result: dict[str, Any] | BaseException = await self._download_and_store(request, info, item)
        except Exception as exc:
            # Cached without traceback nor context: they hold the response and its body.
            result = exc.with_traceback(None)
            result.__context__ = None
        info.downloading.discard(url)
        info.downloaded[url] = result
        for waiter in info.waiting.pop(url, []):
            waiter.callback(None)
        return self._cached(result)

    @staticmethod
    def _cached(result: dict[str, Any] | BaseException) -> dict[str, Any]:
        if isinstance(result, BaseException):
            raise result
        return result

    async def _download_and_store(
        self, request: Request, info: MediaPipeline.SpiderInfo, item: Any
    ) -> dict[str, Any]:
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
    ) -> dict[str, Any] | None:
        """Answer from the store's record when the image is stored and fresh.

        A stored but expired image is re-fetched with its validators, so an
        unchanged one costs a 304 instead of its bytes. A fresh rejection
        (:attr:`REMEMBERED_REJECTIONS`) is repeated without a request.
        """
        if self.record is None or request.url.startswith("data:"):
            return None
        record = await self._on_record(self.record.get, request.url)
        if record is None:
            return None
        fresh = time.time() - record.stored_at <= self.expires_seconds
        if not record.rejected and (left_out := self.image_filter.rejection(record.format, record.size)):
            raise self._reject(request, "skipped", "filtered", f"{left_out}, as stored")
        if record.rejected:
            if fresh and self._still_rejected(record):
                raise self._reject(request, rejection_status(record.rejected), record.rejected, "as on an earlier crawl")
            return None
        if not await ensure_awaitable(self.store.stat_file(record.path, info)):
            return None
        if fresh:
            return self._uptodate(record)
        request.meta["imgscraper_record"] = record
        if record.etag:
            request.headers["If-None-Match"] = record.etag
        if record.last_modified:
            request.headers["If-Modified-Since"] = record.last_modified
        return None

    async def _on_record(self, method: Callable[..., Any], *args: Any) -> Any:
        """Call ``method`` (of the record, or one writing to it) where it costs least: an indexed
        SQLite statement on a local file costs less than the hop to a worker thread."""
        if isinstance(self.record, SQLiteRecord):
            return method(*args)
        return await run_in_thread(method, *args)

    def _still_rejected(self, record: ImageRecord) -> bool:
        """Whether a remembered rejection holds under this crawl's size limits."""
        if record.rejected != "too-small":
            return True
        try:
            self.check_size(ImageInfo(record.format, record.width, record.height))
        except ImageRejected:
            return True
        return False

    def _remember_rejection(self, request: Request, response: Response, reason: str) -> None:
        """Record that ``response`` was rejected for ``reason``, so re-crawls skip it while fresh."""
        image_info: ImageInfo | None = request.meta.get("imgscraper_info")
        if image_info and image_info.blank:
            # What it draws is 0x0: held by the next crawl's check like a tracking pixel.
            image_info = ImageInfo(image_info.format, 0, 0)
        self.record.put(ImageRecord(
            url=request.url,
            path="",
            checksum="",
            format=image_info.format if image_info else "",
            width=image_info.width if image_info else None,
            height=image_info.height if image_info else None,
            size=len(response.body),
            page=request.headers.get("Referer", b"").decode("utf-8", "replace"),
            stored_at=time.time(),
            rejected=reason,
        ))

    def _uptodate(self, record: ImageRecord) -> dict[str, Any]:
        self._count("uptodate")
        return {
            "url": record.url,
            "path": record.path,
            "checksum": record.checksum,
            "status": "uptodate",
            "width": record.width,
            "height": record.height,
            "format": record.format,
            "size": record.size,
            "phash": record.phash,
        }

    # -- responses --------------------------------------------------------

    def stop_filtered_download(self, headers: Headers, body_length: int | None, request: Request) -> None:
        """Stop downloading an image whose headers show that :attr:`image_filter` leaves it
        out (its format, or its length over the maximum): its body is not transferred. A body
        of unknown length is counted as it arrives (:meth:`stop_oversized_download`)."""
        if "imgscraper_image" not in request.meta:
            return
        if left_out := self.image_filter.rejection_by_headers(headers):
            request.meta["imgscraper_filtered"] = left_out
            raise StopDownload(fail=True)
        if self.image_filter.counts_arriving_bytes(headers):
            request.meta["imgscraper_received"] = 0
        else:
            request.meta.pop("imgscraper_received", None)  # a retry's response may tell

    def stop_oversized_download(self, data: bytes, request: Request) -> None:
        """Stop downloading an image body of unknown length once it is over ``max_bytes``."""
        if "imgscraper_received" not in request.meta:
            return
        received = request.meta["imgscraper_received"] = request.meta["imgscraper_received"] + len(data)
        if left_out := self.image_filter.rejection_by_arriving_bytes(received):
            request.meta["imgscraper_filtered"] = left_out
            raise StopDownload(fail=True)

    def media_failed(self, failure: Failure, request: Request, info: MediaPipeline.SpiderInfo) -> None:
        exc = failure.value
        if isinstance(exc, (ImageFailed, CrawlStopped)):
            raise exc
        if isinstance(exc, StopDownload) and "imgscraper_filtered" in request.meta:
            raise self._reject(request, "skipped", "filtered", request.meta["imgscraper_filtered"])
        reason = failure_reason(exc)
        status = "skipped" if reason in ("robots-txt", "ignored") else "failed"
        raise self._reject(request, status, reason, str(exc))

    async def media_downloaded(
        self, response: Response, request: Request, info: MediaPipeline.SpiderInfo, *, item: Any = None
    ) -> dict[str, Any]:
        record: ImageRecord | None = request.meta.get("imgscraper_record")
        if response.status == 304 and record is not None:
            await run_in_thread(self.record.touch, record.url, time.time())
            return self._uptodate(record)
        if response.status != 200:
            raise self._reject(request, "failed", f"http-{response.status}")
        try:
            if isinstance(self.store, AtomicFSFilesStore):
                if self._store_inline(response):
                    stored, already_stored = self._store_locally(response, request)
                else:
                    stored, already_stored = await run_in_thread(self._store_locally, response, request)
            else:
                stored, already_stored = await self._store_remotely(response, request, info, item)
        except NearDuplicate as exc:
            return self._near_duplicate(request, response, exc.stored)
        except ImageRejected as exc:
            if exc.reason == "not-an-image" and request.meta.get("imgscraper_link") and _is_html(response):
                # <a href="/wiki/File:Photo.jpg">: a page about the image, which links do not promise.
                exc = ImageRejected("link-to-page", "a link to an image file name that is a page")
            remember = exc.reason in self.REMEMBERED_REJECTIONS and not request.url.startswith("data:")
            if remember and self.record is not None:
                try:
                    await self._on_record(self._remember_rejection, request, response, exc.reason)
                except (OSError, sqlite3.Error) as record_error:
                    logger.debug("Could not record the rejection of %s: %s", request.url[:300], record_error)
            raise self._reject(request, rejection_status(exc.reason), exc.reason, exc.detail) from None
        except (OSError, sqlite3.Error) as exc:
            raise self._store_failed(request, exc) from None
        path = stored.path
        # A data: URI carries its image: if that file is stored, it is up to date.
        status = "uptodate" if already_stored and request.url.startswith("data:") else "downloaded"
        self._count(status)
        if not already_stored:
            self.stats.inc_value("imgscraper/bytes_stored", stored.size)
        logger.debug("Stored %(url)s as %(path)s", {"url": request.url[:300], "path": path})
        return {
            "url": request.url,
            "path": path,
            "checksum": stored.checksum,
            "status": status,
            "width": stored.width,
            "height": stored.height,
            "format": stored.format,
            "size": stored.size,
            "phash": stored.phash,
        }

    def _near_duplicate(self, request: Request, response: Response, stored: HashedImage) -> dict[str, Any]:
        """The result of an image left unstored as a near-duplicate of ``stored``."""
        self._count("skipped", "near-duplicate")
        logger.debug("Image skipped (near-duplicate of %(path)s): %(url)s", {"path": stored.path, "url": request.url[:300]})
        image_info: ImageInfo = request.meta["imgscraper_info"]
        return {
            "url": request.url,
            "path": stored.path,
            "status": "skipped",
            "reason": "near-duplicate",
            "width": image_info.width,
            "height": image_info.height,
            "format": image_info.format,
            "size": len(response.body),
            "phash": f"{request.meta['imgscraper_phash']:016x}",
        }

    def _claim_if_not_near_duplicate(self, request: Request, path: str, image_info: ImageInfo) -> HashedImage | None:
        """Raise :class:`NearDuplicate` when ``IMGSCRAPER_NEAR_DUPLICATES=skip`` and a stored image
        (of this crawl or the store's record) is a near-duplicate at least as large; else count this
        image as stored from now on and return its claim (None: nothing claimed), which
        :meth:`_release_claim` gives back if the image is not stored after all. One image at a
        time: of two near-duplicates arriving together, the first to get here is stored, the other skipped."""
        phash = request.meta.get("imgscraper_phash")
        if self.stored_hashes is None or phash is None or not image_info.width or not image_info.height:
            return None
        claim = None
        with self._stored_hashes_lock:
            stored = self.stored_hashes.find(phash, image_info.width, image_info.height)
            if stored is None:
                claim = HashedImage(phash, image_info.width, image_info.height, path)
                self.stored_hashes.add(claim)
        if stored is not None and stored.path != path:  # the same path: the same bytes, stored once
            raise NearDuplicate(stored)
        return claim

    def _release_claim(self, claim: HashedImage | None) -> None:
        if claim is not None and self.stored_hashes is not None:
            with self._stored_hashes_lock:
                self.stored_hashes.remove(claim)

    def _store_inline(self, response: Response) -> bool:
        """Whether to store ``response`` on the reactor thread rather than in a worker thread.

        Checking a header, hashing and writing a typical image takes less
        CPU than handing it to a thread and back (the hand-offs cost more
        than the work: ``make bench``), so only images that need decoding
        (thumbnails, JPEG conversion, near-duplicate hashes) or are large go to a worker thread.
        """
        needs_decoding = self.thumbs or self.convert_to_jpeg or self.near_duplicates != "off"
        return not needs_decoding and len(response.body) <= self.INLINE_STORE_MAX_BYTES

    def _store_locally(self, response: Response, request: Request) -> tuple[ImageRecord, bool]:
        """Validate, write and record one image in a local store.

        Everything an image needs after its download happens in this one
        call, so that an image that goes to a worker thread
        (:meth:`_store_inline`) makes one hand-off.
        Returns the record and whether the file was stored already.
        """
        image, image_info, thumbs = self._prepare(response, request)
        path = self.file_path(request, response=response)
        claim = self._claim_if_not_near_duplicate(request, path, image_info)
        store: AtomicFSFilesStore = self.store
        try:
            already_stored = self.file_names == "stable" and store.has_file(path)
            if not already_stored:
                store.write_file(path, image.getbuffer())
                for thumb_path, thumb_buf in thumbs:
                    store.write_file(thumb_path, thumb_buf.getbuffer())
            stored = self._image_record(request, response, path, image, image_info)
            if self.record is not None and not request.url.startswith("data:"):
                self.record.put(stored)
        except BaseException:
            self._release_claim(claim)  # not stored: its copies are not near-duplicates of it
            raise
        return stored, already_stored

    async def _store_remotely(
        self, response: Response, request: Request, info: MediaPipeline.SpiderInfo, item: Any
    ) -> tuple[ImageRecord, bool]:
        """Validate, write and record one image in any other ``FilesPipeline`` store."""
        image, image_info, thumbs = await run_in_thread(self._prepare, response, request)
        path = self.file_path(request, response=response, info=info, item=item)
        claim = self._claim_if_not_near_duplicate(request, path, image_info)
        try:
            already_stored = self.file_names == "stable" and bool(await ensure_awaitable(self.store.stat_file(path, info)))
            if not already_stored:
                await self._persist(path, image, image_info)
                for thumb_path, thumb_buf in thumbs:
                    await ensure_awaitable(self.store.persist_file(thumb_path, thumb_buf, info))
            stored = self._image_record(request, response, path, image, image_info)
            if self.record is not None and not request.url.startswith("data:"):
                await run_in_thread(self.record.put, stored)
        except BaseException:
            self._release_claim(claim)
            raise
        return stored, already_stored

    @staticmethod
    def _image_record(
        request: Request, response: Response, path: str, image: BytesIO, image_info: ImageInfo
    ) -> ImageRecord:
        return ImageRecord(
            url=request.url,
            path=path,
            checksum=request.meta["imgscraper_checksum"],
            format=image_info.format,
            width=image_info.width,
            height=image_info.height,
            size=len(image.getbuffer()),
            page=request.headers.get("Referer", b"").decode("utf-8", "replace"),
            etag=response.headers.get("ETag", b"").decode("latin-1"),
            last_modified=response.headers.get("Last-Modified", b"").decode("latin-1"),
            stored_at=time.time(),
            phash=f"{phash:016x}" if (phash := request.meta.get("imgscraper_phash")) is not None else "",
            **request.meta.get("imgscraper_context", {}),
        )

    async def _persist(self, path: str, image: BytesIO, image_info: ImageInfo) -> None:
        await ensure_awaitable(
            self.store.persist_file(
                path,
                image,
                self.spiderinfo,
                meta={"width": image_info.width, "height": image_info.height},
                headers={"Content-Type": image_info.media_type},
            )
        )

    def _prepare(self, response: Response, request: Request) -> tuple[BytesIO, ImageInfo, list[tuple[str, BytesIO]]]:
        """Validate the body and produce the bytes to store.

        Returns the image bytes, what they are, and the thumbnails to store.
        The SHA-256 of the stored bytes goes to ``request.meta`` for
        :meth:`file_path`.
        """
        content_type = response.headers.get("Content-Type", b"").decode("latin-1")
        image_info = inspect_image(response.body, content_type)
        request.meta["imgscraper_info"] = image_info
        self.check_size(image_info)
        if left_out := self.image_filter.rejection(image_info.format, len(response.body)):
            raise ImageRejected("filtered", left_out)
        image, picture = BytesIO(response.body), None
        if image_info.format != "SVG" and (self.convert_to_jpeg or self.thumbs):
            with Image.open(BytesIO(response.body)) as original:
                picture = ImageOps.exif_transpose(original)
            if self.convert_to_jpeg and image_info.format != "JPEG":
                image = to_jpeg(picture)
                image_info = ImageInfo("JPEG", *picture.size)
        request.meta["imgscraper_checksum"] = hashlib.sha256(image.getbuffer()).hexdigest()
        request.meta["imgscraper_info"] = image_info
        if self.near_duplicates != "off" and image_info.format != "SVG":
            try:
                request.meta["imgscraper_phash"] = perceptual_hash(image.getvalue())
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                # Inspection passed it: stored as any image, without a hash.
                logger.debug("Cannot hash %(url)s: %(error)s", {"url": request.url[:300], "error": exc})
        thumbs = [
            (self.thumb_path(request, thumb_id), to_jpeg(picture, tuple(size)))
            for thumb_id, size in self.thumbs.items()
            if picture is not None
        ]
        return image, image_info, thumbs

    def check_size(self, image_info: ImageInfo) -> None:
        """Raise ``ImageRejected("too-small")`` for an image under the size limits.

        Dimensions come from the header. 1x1 images, and SVGs that draw
        nothing (lazy-load placeholders), are too small while
        ``IMGSCRAPER_SKIP_TRACKING_PIXELS`` is on. SVGs without a size pass.
        """
        if self.skip_tracking_pixels and image_info.blank:
            raise ImageRejected("too-small", "an SVG that draws nothing")
        width, height = image_info.width, image_info.height
        if width is None or height is None:
            return
        if width < self.min_width or height < self.min_height or (
            self.skip_tracking_pixels and width <= 1 and height <= 1
        ):
            raise ImageRejected("too-small", f"{width}x{height}")

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

    def _reject(self, request: Request, status: str, reason: str, detail: str = "") -> ImageFailed:
        self._count(status, reason)
        log = logger.debug if status == "skipped" else logger.warning
        log(
            "Image %(status)s (%(reason)s): %(url)s%(detail)s",
            {"status": status, "reason": reason, "url": request.url[:300], "detail": f" - {detail}" if detail else ""},
        )
        return ImageFailed(status, reason, detail)

    def _stopped(self) -> StoppedBeforeDownload:
        self.stats.inc_value("imgscraper/images/stopped")
        return StoppedBeforeDownload()

    def _count(self, status: str, reason: str = "") -> None:
        self.stats.inc_value(f"imgscraper/images/{status}")
        if reason:
            self.stats.inc_value(f"imgscraper/images/{status}/{reason}")

    # -- results ----------------------------------------------------------

    def item_completed(self, results: list[FileInfoOrError], item: Any, info: MediaPipeline.SpiderInfo) -> Any:
        adapter = ItemAdapter(item)
        for ok, result in results:
            if ok:
                fields = adapter.field_names()
                adapter.update({key: value for key, value in result.items() if key in fields})
                continue
            exc = result.value
            if isinstance(exc, ImageFailed):
                adapter.update(status=exc.status, reason=exc.reason)
            else:
                logger.error("Unexpected error storing %(url)s", {"url": adapter["url"]}, exc_info=exc)
                adapter.update(status="failed", reason=failure_reason(exc))
        return item

    # -- names ------------------------------------------------------------

    def file_path(
        self,
        request: Request,
        response: Response | None = None,
        info: MediaPipeline.SpiderInfo | None = None,
        *,
        item: Any = None,
    ) -> str:
        """``full/<uuid>.<ext>``: the UUID derives from the stored bytes (or is
        minted once per request in ``random`` mode), the extension from the
        detected format. Known only once the image is downloaded."""
        return f"full/{self._file_uuid(request, response)}.{self._image_info(request, response).extension}"

    def thumb_path(
        self,
        request: Request,
        thumb_id: str,
        response: Response | None = None,
        info: MediaPipeline.SpiderInfo | None = None,
        *,
        item: Any = None,
    ) -> str:
        return f"thumbs/{thumb_id}/{self._file_uuid(request, response)}.jpg"

    def _file_uuid(self, request: Request, response: Response | None) -> str:
        if self.file_names == "random":
            return request.meta["imgscraper_uuid"]
        if "imgscraper_checksum" not in request.meta:
            if response is None:
                raise ValueError("a stable file name derives from the image bytes: pass the response")
            request.meta["imgscraper_checksum"] = hashlib.sha256(response.body).hexdigest()
        return str(uuid.uuid5(CONTENT_NAMESPACE, request.meta["imgscraper_checksum"]))

    def _image_info(self, request: Request, response: Response | None) -> ImageInfo:
        if "imgscraper_info" not in request.meta:
            if response is None:
                raise ValueError("the file extension derives from the image bytes: pass the response")
            request.meta["imgscraper_info"] = inspect_image(response.body)
        return request.meta["imgscraper_info"]
