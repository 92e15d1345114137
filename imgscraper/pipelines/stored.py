"""The images in the store: what its record says of a URL, and writing a downloaded image (file, thumbnails, record)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import asynccontextmanager
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from scrapy.utils.asyncio import run_in_thread
from scrapy.utils.defer import ensure_awaitable

from imgscraper.exceptions import NearDuplicate
from imgscraper.pipelines.inspection import ImageInfo
from imgscraper.pipelines.meta import ImageMeta
from imgscraper.pipelines.nearduplicates import HashedImage
from imgscraper.pipelines.records import ImageRecord, SQLiteRecord
from imgscraper.pipelines.results import RecentResults
from imgscraper.pipelines.stores import WritableInPlace

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from scrapy.http import Request, Response
    from scrapy.pipelines.files import FilesStoreProtocol
    from scrapy.pipelines.media import MediaPipeline

    from imgscraper.pipelines.nearduplicates import NearDuplicateClaimsProtocol
    from imgscraper.pipelines.preparation import ImagePreparer, PreparedImage
    from imgscraper.pipelines.records import StoreRecord

__all__ = ["StoredImages", "server_time"]

logger = logging.getLogger(__name__)


def _page(request: Request) -> str:
    return request.headers.get("Referer", b"").decode("utf-8", "replace")


def server_time(response: Response) -> float | None:
    """The POSIX time of ``response``'s ``Last-Modified``; None without one, or for one that is no date."""
    value = response.headers.get("Last-Modified", b"").decode("latin-1")
    try:
        modified = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    # "-0000" (or no zone) gives a naive datetime: HTTP dates are GMT.
    return (modified if modified.tzinfo else modified.replace(tzinfo=timezone.utc)).timestamp()


def _rejection_record(request: Request, response: Response, reason: str) -> ImageRecord:
    """The record that the image ``request`` fetched was rejected for ``reason``."""
    image_info = ImageMeta.of(request).info
    if image_info and image_info.blank:
        # What it draws is 0x0: held by the next crawl's check like a tracking pixel.
        image_info = ImageInfo(image_info.format, 0, 0)
    return ImageRecord(
        url=request.url,
        path="",
        checksum="",
        format=image_info.format if image_info else "",
        width=image_info.width if image_info else None,
        height=image_info.height if image_info else None,
        size=len(response.body),
        page=_page(request),
        stored_at=time.time(),
        rejected=reason,
    )


class StoredImages:
    """The files ``store`` and its ``record`` (None: a store without one), as the pipeline uses them.

    :meth:`write` stores one downloaded image: prepared by ``preparer`` (which may reject it),
    claimed against its near-duplicates (``claims``, if any), written under the names
    ``file_path`` and ``thumb_path`` give (the pipeline's hooks), and put in the record.

    With ``server_times`` a file is dated by the response's ``Last-Modified`` (:func:`server_time`),
    where the store keeps dates. With ``keep_existing`` a file already in the store (the same
    bytes, under a name derived from them) is not written again; with ``same_bytes_by_record``
    too (a path that depends on more than the bytes), an image goes where the same bytes are
    stored (:meth:`place`). A store :class:`WritableInPlace` gets the whole of it in one
    synchronous call, on the reactor thread or, for an image that needs decoding or is large,
    in a worker thread (an image claimed among near-duplicates: in two, around the claim); any
    other ``FilesPipeline`` store through its ``persist_file``.
    """

    #: Larger images are hashed and written in a worker thread (see :meth:`stores_inline`).
    INLINE_MAX_BYTES = 2 * 1024 * 1024
    #: Paths remembered by the bytes they hold (:meth:`place`), besides the record.
    PLACES_KEPT = 1000

    def __init__(
        self,
        store: FilesStoreProtocol,
        record: StoreRecord | None,
        preparer: ImagePreparer,
        claims: NearDuplicateClaimsProtocol | None,
        *,
        file_path: Callable[..., str],
        thumb_path: Callable[..., str],
        keep_existing: bool,
        same_bytes_by_record: bool = False,
        server_times: bool = False,
    ):
        self.store = store
        self.record = record
        self.preparer = preparer
        self.claims = claims
        self.file_path = file_path
        self.thumb_path = thumb_path
        self.keep_existing = keep_existing
        self.server_times = server_times
        self.same_bytes_by_record = keep_existing and same_bytes_by_record and record is not None
        #: The paths this crawl chose lately, by the SHA-256 of their bytes (some not recorded yet).
        self.placed: dict[str, str] = RecentResults(self.PLACES_KEPT)
        self._placing = threading.Lock()

    def records(self, request: Request) -> bool:
        """Whether the image of ``request`` has a place in the store's record (a ``data:`` URI carries its image)."""
        return self.record is not None and not request.url.startswith("data:")

    async def lookup(self, request: Request) -> ImageRecord | None:
        """The record of the image ``request`` fetches, if any."""
        return await self._on_record(self.record.get, request.url) if self.records(request) else None

    async def has_file(self, path: str, info: MediaPipeline.SpiderInfo) -> bool:
        """Whether ``path`` is stored."""
        return bool(await ensure_awaitable(self.store.stat_file(path, info)))

    async def touch(self, record: ImageRecord) -> None:
        """Record that the image of ``record`` was found unchanged now."""
        await run_in_thread(self.record.touch, record.url, time.time())

    async def remember_rejection(self, request: Request, response: Response, reason: str) -> None:
        """Record that the image of ``response`` was rejected for ``reason``; a failure to is only logged."""
        if not self.records(request):
            return
        try:
            await self._on_record(self.record.put, _rejection_record(request, response, reason))
        except (OSError, sqlite3.Error) as exc:
            logger.debug("Could not record the rejection of %s: %s", request.url[:300], exc)

    async def _on_record(self, method: Callable[..., Any], *args: Any) -> Any:
        """Call ``method`` of the record where it costs least: an indexed SQLite statement
        on a local file costs less than the hop to a worker thread."""
        if isinstance(self.record, SQLiteRecord):
            return method(*args)
        return await run_in_thread(method, *args)

    def stores_inline(self, response: Response) -> bool:
        """Whether to store ``response`` on the reactor thread rather than in a worker thread.

        Checking a header, hashing and writing a typical image takes less
        CPU than handing it to a thread and back (the hand-offs cost more
        than the work: ``make bench``), so only images that need decoding
        (thumbnails, JPEG conversion, near-duplicate hashes) or are large go to a worker thread.
        """
        return not self.preparer.decodes and len(response.body) <= self.INLINE_MAX_BYTES

    async def write(
        self, response: Response, request: Request, info: MediaPipeline.SpiderInfo, item: Any = None
    ) -> tuple[ImageRecord, bool]:
        """Store the image of ``response``; returns its record and whether its file was stored already.

        Raises what :meth:`ImagePreparer.prepare` raises, :class:`~imgscraper.exceptions.NearDuplicate`,
        and ``OSError`` or ``sqlite3.Error`` for a store or record that cannot be written.
        """
        if not isinstance(self.store, WritableInPlace):
            return await self._write_remotely(response, request, info, item)
        if self.claims is not None:
            return await self._write_claimed_in_place(response, request)
        if self.stores_inline(response):
            return self._write_in_place(response, request)
        return await run_in_thread(self._write_in_place, response, request)

    def _write_in_place(self, response: Response, request: Request) -> tuple[ImageRecord, bool]:
        """Everything an image needs after its download, in this one call: an image that goes
        to a worker thread makes one hand-off."""
        prepared = self.preparer.prepare(response, ImageMeta.of(request))
        recorded = self.record.path_of(ImageMeta.of(request).checksum) if self.same_bytes_by_record else None
        return self._store_in_place(response, request, prepared, self.place(request, recorded, response=response))

    async def _write_claimed_in_place(self, response: Response, request: Request) -> tuple[ImageRecord, bool]:
        """An image claimed among near-duplicates: prepared (decoded, hashed) in a worker thread,
        claimed on the event loop (where claims shared by several workers answer), then
        written where :meth:`stores_inline` would, decoding aside."""
        prepared = await run_in_thread(self.preparer.prepare, response, ImageMeta.of(request))
        recorded = None
        if self.same_bytes_by_record:
            recorded = await self._on_record(self.record.path_of, ImageMeta.of(request).checksum)
        path = self.place(request, recorded, response=response)
        async with self._claimed(request, prepared, path):
            if len(response.body) <= self.INLINE_MAX_BYTES:
                return self._store_in_place(response, request, prepared, path)
            return await run_in_thread(self._store_in_place, response, request, prepared, path)

    def _store_in_place(
        self, response: Response, request: Request, prepared: PreparedImage, path: str
    ) -> tuple[ImageRecord, bool]:
        store: WritableInPlace = self.store  # type: ignore[assignment]
        already_stored = self.keep_existing and store.has_file(path)
        if not already_stored:
            store.write_file(path, prepared.data.getbuffer(), server_time(response) if self.server_times else None)
            for thumb_id, thumb in prepared.thumbs.items():
                store.write_file(self.thumb_path(request, thumb_id), thumb.getbuffer())
        stored = self._stored_record(request, response, path, prepared)
        if self.records(request):
            self.record.put(stored)
        return stored, already_stored

    async def _write_remotely(
        self, response: Response, request: Request, info: MediaPipeline.SpiderInfo, item: Any
    ) -> tuple[ImageRecord, bool]:
        prepared = await run_in_thread(self.preparer.prepare, response, ImageMeta.of(request))
        recorded = None
        if self.same_bytes_by_record:
            recorded = await run_in_thread(self.record.path_of, ImageMeta.of(request).checksum)
        path = self.place(request, recorded, response=response, info=info, item=item)
        async with self._claimed(request, prepared, path):
            already_stored = self.keep_existing and await self.has_file(path, info)
            if not already_stored:
                size = {"width": prepared.info.width, "height": prepared.info.height}
                headers = {"Content-Type": prepared.info.media_type}
                await ensure_awaitable(self.store.persist_file(path, prepared.data, info, meta=size, headers=headers))
                for thumb_id, thumb in prepared.thumbs.items():
                    await ensure_awaitable(self.store.persist_file(self.thumb_path(request, thumb_id), thumb, info))
            stored = self._stored_record(request, response, path, prepared)
            if self.records(request):
                await run_in_thread(self.record.put, stored)
        return stored, already_stored

    def place(self, request: Request, recorded: str | None, **kwargs: Any) -> str:
        """The path of the image of ``request``: :attr:`file_path`'s (given ``kwargs``) or, with
        ``same_bytes_by_record``, where the same bytes are stored: ``recorded`` (the record's
        answer) or where this crawl put them (maybe still writing): one file per image, whatever
        the pages and URLs it was found at."""
        if not self.same_bytes_by_record:
            return self.file_path(request, **kwargs)
        image = ImageMeta.of(request)
        with self._placing:
            image.path = image.path or self.placed.get(image.checksum) or recorded or ""
            path = self.placed[image.checksum] = self.file_path(request, **kwargs)
        return path

    @asynccontextmanager
    async def _claimed(self, request: Request, prepared: PreparedImage, path: str) -> AsyncIterator[None]:
        """Hold the image's place among near-duplicates while it is stored: raises
        :class:`~imgscraper.exceptions.NearDuplicate` for an image not to store, and gives
        the place back when storing fails (its copies are not near-duplicates of it then)."""
        phash, width, height = ImageMeta.of(request).phash, prepared.info.width, prepared.info.height
        if self.claims is None or phash is None or not width or not height:
            yield
            return
        image = HashedImage(phash, width, height, path, request.url)
        stored = await self.claims.claim(image)
        if stored is not None and stored.path != path:  # the same path: the same bytes, stored once
            raise NearDuplicate(stored)
        try:
            yield
        except BaseException:
            if stored is None:
                await self.claims.release(image)
            raise

    @staticmethod
    def _stored_record(request: Request, response: Response, path: str, prepared: PreparedImage) -> ImageRecord:
        image = ImageMeta.of(request)
        return ImageRecord(
            url=request.url,
            path=path,
            checksum=image.checksum,
            format=prepared.info.format,
            width=prepared.info.width,
            height=prepared.info.height,
            size=len(prepared.data.getbuffer()),
            page=_page(request),
            etag=response.headers.get("ETag", b"").decode("latin-1"),
            last_modified=response.headers.get("Last-Modified", b"").decode("latin-1"),
            stored_at=time.time(),
            phash=f"{image.phash:016x}" if image.phash is not None else "",
            **image.context,
        )
