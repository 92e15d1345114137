"""Leaving out an image while it downloads, as soon as its headers or its size show the filter's verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.exceptions import StopDownload

from imgscraper.pipelines.meta import META_KEY, ImageMeta

if TYPE_CHECKING:
    from scrapy.http import Headers, Request
    from scrapy.signalmanager import SignalManager

    from imgscraper.filters import ImageFilter

__all__ = ["EarlyImageFilter"]


class EarlyImageFilter:
    """Stops the download of an image that ``image_filter`` leaves out (its format, or its length
    over the maximum) once its headers say so, or, for a body of unknown length, once more than
    the maximum has arrived: its body is not transferred. The reason goes to the request's
    :attr:`ImageMeta.filtered <imgscraper.pipelines.meta.ImageMeta>`; the download fails with
    ``StopDownload``. Requests other than the store pipeline's are left alone.
    """

    def __init__(self, image_filter: ImageFilter):
        self.image_filter = image_filter

    def connect(self, signal_manager: SignalManager) -> None:
        """Listen to the downloads, if this filter can decide anything before a body is complete.
        Signal managers hold their receivers weakly: whoever connects this filter keeps it."""
        if self.image_filter.decides_on_headers:
            signal_manager.connect(self.headers_received, signal=signals.headers_received)
        if self.image_filter.max_bytes:
            signal_manager.connect(self.bytes_received, signal=signals.bytes_received)

    def headers_received(self, headers: Headers, body_length: int | None, request: Request) -> None:
        image: ImageMeta | None = request.meta.get(META_KEY)
        if image is None:
            return
        if left_out := self.image_filter.rejection_by_headers(headers):
            image.filtered = left_out
            raise StopDownload(fail=True)
        # Each response counts afresh: a retry's may state its length.
        image.received = 0 if self.image_filter.counts_arriving_bytes(headers) else None

    def bytes_received(self, data: bytes, request: Request) -> None:
        image: ImageMeta | None = request.meta.get(META_KEY)
        if image is None or image.received is None:
            return
        image.received += len(data)
        if left_out := self.image_filter.rejection_by_arriving_bytes(image.received):
            image.filtered = left_out
            raise StopDownload(fail=True)
