"""Identify downloaded bytes as an image without decoding its pixels.

:func:`inspect_image` reads the format and dimensions from the header (Pillow
for raster formats, an XML parse for SVG) and checks that the file is
complete. It never changes the bytes: the pipeline stores them as served.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from io import BytesIO

from lxml import etree
from PIL import Image

__all__ = ["WEB_FORMATS", "ImageInfo", "ImageRejected", "inspect_image", "parse_svg_length"]

#: Pillow formats accepted as web images, with the file extension each gets.
WEB_FORMATS: dict[str, str] = {
    "JPEG": "jpg",
    "PNG": "png",
    "GIF": "gif",
    "WEBP": "webp",
    "AVIF": "avif",
    "BMP": "bmp",
    "TIFF": "tif",
    "ICO": "ico",
}
#: Pillow reports some camera JPEGs (with a multi-picture index) as MPO.
_FORMAT_ALIASES = {"MPO": "JPEG"}
_PILLOW_FORMATS = [*WEB_FORMATS, *_FORMAT_ALIASES]
_SVG_NS = "{http://www.w3.org/2000/svg}svg"
_SVG_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
_PNG_END = b"IEND\xaeB`\x82"
#: Leading bytes of web formats: a file that starts so but does not open is damaged.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\0", b"MM\0*")

# inspect_image() rejects what Pillow only warns about (more pixels than
# Image.MAX_IMAGE_PIXELS), so the warning would just repeat it.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: ``format`` is a key of :data:`WEB_FORMATS` or ``SVG``."""

    format: str
    width: int | None
    height: int | None

    @property
    def extension(self) -> str:
        return "svg" if self.format == "SVG" else WEB_FORMATS[self.format]


class ImageRejected(Exception):
    """The bytes are not a storable image; ``reason`` is a short slug for stats."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def inspect_image(body: bytes, content_type: str = "") -> ImageInfo:
    """Return the format and size of ``body``, or raise :class:`ImageRejected`.

    Reasons: ``empty``, ``not-an-image``, ``truncated``, ``decompression-bomb``.
    Pixels are decoded only when the cheap end-of-file check cannot vouch for
    the file (rare formats, or a trailer that is missing).
    """
    if not body:
        raise ImageRejected("empty")
    if _looks_like_svg(body, content_type):
        return _inspect_svg(body)
    try:
        image = Image.open(BytesIO(body), formats=_PILLOW_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageRejected("decompression-bomb", str(exc)) from None
    except Exception:
        if body.startswith(_SIGNATURES) or (body[:4] == b"RIFF" and body[8:12] == b"WEBP"):
            raise ImageRejected("truncated", "the header is cut short or corrupt") from None
        raise ImageRejected("not-an-image", content_type or "unknown type") from None
    with image:
        width, height = image.size
        if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
            raise ImageRejected("decompression-bomb", f"{width}x{height} pixels")
        image_format = _FORMAT_ALIASES.get(image.format, image.format)
        if not _has_complete_trailer(image_format, body):
            try:
                image.load()
            except Exception as exc:
                raise ImageRejected("truncated", str(exc)) from None
        return ImageInfo(image_format, width, height)


def _has_complete_trailer(image_format: str, body: bytes) -> bool:
    """A cheap check that the file was not cut short; False means "decode to be sure"."""
    tail = body[-64:].rstrip(b"\0\r\n\t ")
    if image_format == "JPEG":
        return tail.endswith(b"\xff\xd9")
    if image_format == "PNG":
        return tail.endswith(_PNG_END)
    if image_format == "GIF":
        return tail.endswith(b";")
    if image_format == "WEBP":
        return int.from_bytes(body[4:8], "little") + 8 <= len(body)
    return False


def _looks_like_svg(body: bytes, content_type: str) -> bool:
    if "svg" in content_type.lower():
        return True
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith(b"<svg") or (head.startswith((b"<?xml", b"<!--", b"<!doctype svg")) and b"<svg" in head)


def _inspect_svg(body: bytes) -> ImageInfo:
    try:
        root = etree.fromstring(body, parser=_SVG_PARSER)
    except etree.XMLSyntaxError as exc:
        raise ImageRejected("not-an-image", f"invalid SVG: {exc}") from None
    if root is None or root.tag not in (_SVG_NS, "svg"):
        raise ImageRejected("not-an-image", "XML without an <svg> root")
    width, height = parse_svg_length(root.get("width")), parse_svg_length(root.get("height"))
    if width is None or height is None:
        view_box = (root.get("viewBox") or "").replace(",", " ").split()
        if len(view_box) == 4:
            width = width or parse_svg_length(view_box[2])
            height = height or parse_svg_length(view_box[3])
    return ImageInfo("SVG", width, height)


def parse_svg_length(value: str | None) -> int | None:
    """``"120"``, ``"120px"``, ``"120.5"`` -> 120; relative units -> None."""
    if not value:
        return None
    value = value.strip().removesuffix("px")
    try:
        return round(float(value))
    except ValueError:
        return None
