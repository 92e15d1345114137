"""From a downloaded body to what the store pipeline stores: checked, maybe converted, thumbnailed and hashed."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING

from PIL import Image, ImageOps

from imgscraper.exceptions import ImageRejected
from imgscraper.filters import ImageFilter
from imgscraper.pipelines.inspection import ImageInfo, inspect_image
from imgscraper.pipelines.nearduplicates import perceptual_hash

if TYPE_CHECKING:
    from scrapy.http import Response

    from imgscraper.pipelines.meta import ImageMeta

__all__ = ["ImagePreparer", "PreparedImage", "is_html", "to_jpeg"]

logger = logging.getLogger(__name__)


def is_html(response: Response) -> bool:
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


@dataclass
class PreparedImage:
    """The bytes to store, what they are, and the JPEG thumbnails to store with them, by thumbnail id."""

    data: BytesIO
    info: ImageInfo
    thumbs: dict[str, BytesIO] = field(default_factory=dict)


@dataclass(frozen=True)
class ImagePreparer:
    """Checks a downloaded body and produces what is stored.

    An image under ``min_width`` x ``min_height``, or that ``image_filter`` leaves out,
    is rejected; with ``convert_to_jpeg`` other formats are re-encoded; each of ``thumbs``
    (id: (width, height), as ``IMAGES_THUMBS``) is made; with ``hash_images`` the perceptual
    hash of the stored bytes is computed.
    """

    min_width: int = 0
    min_height: int = 0
    skip_tracking_pixels: bool = True
    image_filter: ImageFilter = field(default_factory=ImageFilter)
    convert_to_jpeg: bool = False
    thumbs: dict[str, tuple[int, int]] = field(default_factory=dict)
    hash_images: bool = False

    @property
    def decodes(self) -> bool:
        """Whether preparing an image decodes its pixels (much more CPU than checking its header)."""
        return bool(self.thumbs or self.convert_to_jpeg or self.hash_images)

    def prepare(self, response: Response, meta: ImageMeta) -> PreparedImage:
        """Check ``response``'s body and produce what to store, or raise :class:`ImageRejected`.

        What the image is (``info``), the SHA-256 of the bytes to store (``checksum``, which
        names the file) and their perceptual hash (``phash``) go to ``meta`` as they are known.
        """
        content_type = response.headers.get("Content-Type", b"").decode("latin-1")
        try:
            meta.info = inspect_image(response.body, content_type)
        except ImageRejected as exc:
            if exc.reason == "not-an-image" and meta.link and is_html(response):
                # <a href="/wiki/File:Photo.jpg">: a page about the image, which links do not promise.
                raise ImageRejected("link-to-page", "a link to an image file name that is a page") from None
            raise
        self.check_size(meta.info)
        if left_out := self.image_filter.rejection(meta.info.format, len(response.body)):
            raise ImageRejected("filtered", left_out)
        image, thumbs = BytesIO(response.body), {}
        if meta.info.format != "SVG" and (self.convert_to_jpeg or self.thumbs):
            try:
                image, thumbs = self._decoded(response.body, meta)
            except Image.DecompressionBombError as exc:
                raise ImageRejected("decompression-bomb", str(exc)) from None
            except (OSError, ValueError, SyntaxError) as exc:
                # The header and the end of the file were sound (inspect_image); the data between is not.
                raise ImageRejected("truncated", f"its pixels cannot be decoded: {exc}") from None
        meta.checksum = hashlib.sha256(image.getbuffer()).hexdigest()
        if self.hash_images and meta.info.format != "SVG":
            try:
                meta.phash = perceptual_hash(image.getvalue())
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                # Inspection passed it: stored as any image, without a hash.
                logger.debug("Cannot hash %(url)s: %(error)s", {"url": response.url[:300], "error": exc})
        return PreparedImage(image, meta.info, thumbs)

    def _decoded(self, body: bytes, meta: ImageMeta) -> tuple[BytesIO, dict[str, BytesIO]]:
        """The bytes to store (re-encoded with ``convert_to_jpeg``) and the thumbnails, from the decoded pixels."""
        with Image.open(BytesIO(body)) as original:
            picture = ImageOps.exif_transpose(original)
            picture.load()
        image = BytesIO(body)
        if self.convert_to_jpeg and meta.info.format != "JPEG":
            image = to_jpeg(picture)
            meta.info = ImageInfo("JPEG", *picture.size)
        return image, {thumb_id: to_jpeg(picture, tuple(size)) for thumb_id, size in self.thumbs.items()}

    def check_size(self, image_info: ImageInfo) -> None:
        """Raise ``ImageRejected("too-small")`` for an image under the size limits.

        Dimensions come from the header. 1x1 images, and SVGs that draw
        nothing (lazy-load placeholders), are too small while
        ``skip_tracking_pixels`` is on. SVGs without a size pass.
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
