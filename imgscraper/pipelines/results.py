"""The result of one image: what the store pipeline writes into its item, and shares between requests for one URL."""

from __future__ import annotations

from dataclasses import dataclass
import logging
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred

from imgscraper.pipelines.records import ImageRecord

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scrapy.pipelines.media import MediaPipeline
    from scrapy.statscollectors import StatsCollector

    from imgscraper.pipelines.meta import ImageMeta

__all__ = ["RECORDED_FIELDS", "ImageResult", "RecentResults", "fall_back", "shared_result"]


logger = logging.getLogger(__name__)

#: The item fields an image's result takes from the record of its file.
RECORDED_FIELDS = ("url", "path", "checksum", "width", "height", "format", "size", "phash")


@dataclass(frozen=True)
class ImageResult:
    """The outcome of one image URL, for the fields of its :class:`~imgscraper.items.ImageItem`.

    ``status`` is ``downloaded``, ``uptodate``, ``skipped`` or ``failed``; ``reason`` says why
    for the last two. ``image`` describes the image when it was downloaded or is stored
    (:data:`RECORDED_FIELDS`); for a ``near-duplicate``, the image downloaded, with the
    ``path`` of the stored image it duplicates.
    """

    status: str
    reason: str = ""
    image: ImageRecord | None = None

    @classmethod
    def near_duplicate(cls, url: str, stored_path: str, image: ImageMeta, size: int) -> ImageResult:
        """The result of an image left unstored: ``image`` is a near-duplicate of the one at ``stored_path``."""
        info = image.info
        downloaded = ImageRecord(
            url=url, path=stored_path, checksum="", format=info.format, width=info.width, height=info.height, size=size,
            phash=f"{image.phash:016x}",
        )
        return cls("skipped", "near-duplicate", downloaded)

    def fill(self, item: Any) -> None:
        """Write this result into ``item``: its status and reason, and those of :data:`RECORDED_FIELDS` it has."""
        adapter = ItemAdapter(item)
        adapter.update(status=self.status, reason=self.reason)
        if self.image is not None:
            fields = adapter.field_names()
            adapter.update({name: getattr(self.image, name) for name in RECORDED_FIELDS if name in fields})


def fall_back(item: Any, reason: str, stats: StatsCollector) -> None:
    """The original ``item`` names failed for ``reason``: make it the item of the URL the page
    named (its ``url``, with no ``original_of``), which is fetched instead. Counted in
    ``imgscraper/originals/fallback`` (and ``/<reason>``); no failure line."""
    adapter = ItemAdapter(item)
    original, adapter["url"], adapter["original_of"] = adapter["url"], adapter["original_of"], ""
    stats.inc_value("imgscraper/originals/fallback")
    stats.inc_value(f"imgscraper/originals/fallback/{reason}")
    logger.debug("Original %(original)s not stored (%(reason)s): fetching %(url)s instead",
                 {"original": original[:300], "reason": reason, "url": adapter["url"][:300]})


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


async def shared_result(
    info: MediaPipeline.SpiderInfo, url: str, compute: Callable[[], Awaitable[ImageResult]]
) -> ImageResult:
    """The result of ``url``: that of its request in flight or answered recently (in ``info``, as
    ``MediaPipeline`` keeps them), else ``compute()``'s, kept for the requests that follow."""
    if url in info.downloaded:
        return _cached(info.downloaded[url])
    if url in info.downloading:
        waiter: Deferred[None] = Deferred()
        info.waiting[url].append(waiter)
        await maybe_deferred_to_future(waiter)
        return _cached(info.downloaded[url])
    info.downloading.add(url)
    try:
        result: ImageResult | BaseException = await compute()
    except Exception as exc:
        # Kept without traceback nor context: they hold the response and its body.
        result = exc.with_traceback(None)
        result.__context__ = None
    info.downloading.discard(url)
    info.downloaded[url] = result
    for waiter in info.waiting.pop(url, []):
        waiter.callback(None)
    return _cached(result)


def _cached(result: ImageResult | BaseException) -> ImageResult:
    if isinstance(result, BaseException):
        raise result
    return result
