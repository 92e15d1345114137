"""The result of one image: what the store pipeline writes into its item, and shares between requests for one URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scrapy.pipelines.media import MediaPipeline

    from imgscraper.pipelines.meta import ImageMeta
    from imgscraper.pipelines.records import ImageRecord

__all__ = ["ImageResult", "RecentResults", "shared_result"]


@dataclass(frozen=True)
class ImageResult:
    """The outcome of one image URL, in the fields of :class:`~imgscraper.items.ImageItem` of these names.

    ``status`` is ``downloaded``, ``uptodate``, ``skipped`` or ``failed``; ``reason`` says why
    for the last two. ``path`` is the stored file (for a ``near-duplicate``, the stored image it
    duplicates), empty when nothing was stored.
    """

    url: str
    status: str
    reason: str = ""
    path: str = ""
    checksum: str = ""
    width: int | None = None
    height: int | None = None
    format: str = ""
    size: int | None = None
    phash: str = ""

    @classmethod
    def of_record(cls, record: ImageRecord, status: str) -> ImageResult:
        """The result of the stored image ``record`` describes."""
        return cls(
            url=record.url, status=status, path=record.path, checksum=record.checksum, width=record.width,
            height=record.height, format=record.format, size=record.size, phash=record.phash,
        )

    @classmethod
    def near_duplicate(cls, url: str, stored_path: str, image: ImageMeta, size: int) -> ImageResult:
        """The result of an image left unstored: ``image`` is a near-duplicate of the one at ``stored_path``."""
        return cls(
            url=url, status="skipped", reason="near-duplicate", path=stored_path, width=image.info.width,
            height=image.info.height, format=image.info.format, size=size, phash=f"{image.phash:016x}",
        )

    def fill(self, item: Any) -> None:
        """Write this result into ``item``'s fields of the same names (the others stay)."""
        adapter = ItemAdapter(item)
        fields = adapter.field_names()
        adapter.update({name: value for name, value in vars(self).items() if name in fields})


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
