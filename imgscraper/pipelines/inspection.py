"""Identify downloaded bytes as an image without decoding its pixels.

:func:`inspect_image` reads the format and dimensions from the header (Pillow
for raster formats, an XML parse for SVG) and checks that the file is
complete. It never changes the bytes: the pipeline stores them as served.
"""

from __future__ import annotations

import warnings
from imgscraper.exceptions import ImageRejected
from dataclasses import dataclass
from io import BytesIO

from lxml import etree
from PIL import Image

__all__ = ["MEDIA_TYPES", "WEB_FORMATS", "ImageInfo", "ImageRejected", "inspect_image", "parse_svg_length"]

#: The media type of each format (Pillow's, which it knows only for the plugins it has loaded).
MEDIA_TYPES: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "ICO": "image/x-icon",
    "SVG": "image/svg+xml",
}

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
    """What the header says: ``format`` is a key of :data:`WEB_FORMATS` or ``SVG``;
    ``blank`` for an SVG without a single element inside (a lazy-load placeholder)."""

    format: str
    width: int | None
    height: int | None
    blank: bool = False

    @property
    def extension(self) -> str:
        return "svg" if self.format == "SVG" else WEB_FORMATS[self.format]

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


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
    if quick := _read_container_header(body):
        image_format, width, height = quick
        if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
            raise ImageRejected("decompression-bomb", f"{width}x{height} pixels")
        return ImageInfo(image_format, width, height)
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


def _read_container_header(body: bytes) -> tuple[str, int, int] | None:
    """Format and size of a complete WebP or AVIF file, read from its container; else None.

    Pillow opens these through their codecs: about 0.2 ms for a WebP (its
    animation decoder) and over 1 ms for an AVIF (a decoder with its
    threads), and it can only tell a complete AVIF by decoding every pixel.
    Their containers state the canvas size and every box's length, so a
    complete file costs a few microseconds here. Anything unusual (or cut
    short) returns None and goes to Pillow.
    """
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        size = _webp_canvas_size(body)
        complete = int.from_bytes(body[4:8], "little") + 8 <= len(body)
        return ("WEBP", *size) if size and complete else None
    if body[4:8] == b"ftyp":
        try:
            # A cut-short file ends inside a box. A last box "to the end of the file"
            # (size 0) cannot tell: Pillow decodes such a file.
            top = {kind: (payload, end) for kind, payload, end in _boxes(body, 0, len(body), open_ended=False)}
        except ValueError:
            return None
        size = _avif_primary_size(body, top)
        return ("AVIF", *size) if size else None
    return None


def _webp_canvas_size(body: bytes) -> tuple[int, int] | None:
    """The canvas size in the first chunk of a WebP file (lossy, lossless or extended)."""
    chunk = body[12:16]
    if chunk == b"VP8 " and len(body) >= 30 and body[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(body[26:28], "little") & 0x3FFF, int.from_bytes(body[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and len(body) >= 25 and body[20] == 0x2F:
        bits = int.from_bytes(body[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(body) >= 30:
        return int.from_bytes(body[24:27], "little") + 1, int.from_bytes(body[27:30], "little") + 1
    return None


def _boxes(data: bytes, start: int, end: int, *, open_ended: bool = True) -> list[tuple[bytes, int, int]]:
    """The ISO BMFF boxes in ``data[start:end]``: (type, payload start, box end).

    Raises ValueError on a box that does not fit, and on one of size 0 ("up to
    the end") unless ``open_ended``.
    """
    boxes = []
    while start < end:
        if end - start < 8:
            raise ValueError("box header cut short")
        size, kind, payload = int.from_bytes(data[start : start + 4], "big"), data[start + 4 : start + 8], start + 8
        if size == 1:
            size, payload = int.from_bytes(data[payload : payload + 8], "big"), payload + 8
        elif size == 0:
            if not open_ended:
                raise ValueError(f"box {kind!r} runs to the end")
            size = end - start
        if size < payload - start or start + size > end:
            raise ValueError(f"box {kind!r} does not fit")
        boxes.append((kind, payload, start + size))
        start += size
    return boxes


def _avif_primary_size(body: bytes, top: dict[bytes, tuple[int, int]]) -> tuple[int, int] | None:
    """The size (``ispe`` property) of an AVIF file's primary item; ``top``: its top-level boxes."""
    try:
        payload, end = top[b"ftyp"]
        brands = {body[i : i + 4] for i in range(payload, end, 4) if i != payload + 4}
        if not brands & {b"avif", b"avis"}:
            return None
        meta = {kind: (payload, end) for kind, payload, end in _boxes(body, top[b"meta"][0] + 4, top[b"meta"][1])}
        pitm_payload = meta[b"pitm"][0]
        item_id_size = 2 if body[pitm_payload] == 0 else 4
        primary = int.from_bytes(body[pitm_payload + 4 : pitm_payload + 4 + item_id_size], "big")
        iprp = {kind: (payload, end) for kind, payload, end in _boxes(body, *meta[b"iprp"])}
        properties = _boxes(body, *iprp[b"ipco"])
        for index in _ipma_properties(body, *iprp[b"ipma"], primary):
            kind, payload, _ = properties[index - 1]
            if kind == b"ispe":
                return int.from_bytes(body[payload + 4 : payload + 8], "big"), int.from_bytes(body[payload + 8 : payload + 12], "big")
    except (KeyError, IndexError, ValueError):
        return None
    return None


def _ipma_properties(body: bytes, start: int, end: int, item: int) -> list[int]:
    """The (1-based) property indexes the ``ipma`` box associates with ``item``."""
    version, flags = body[start], int.from_bytes(body[start + 1 : start + 4], "big")
    pos, count = start + 8, int.from_bytes(body[start + 4 : start + 8], "big")
    id_size, index_size = (2 if version < 1 else 4), (2 if flags & 1 else 1)
    for _ in range(count):
        item_id = int.from_bytes(body[pos : pos + id_size], "big")
        associations = body[pos + id_size]
        pos += id_size + 1
        indexes = [int.from_bytes(body[pos + i * index_size : pos + (i + 1) * index_size], "big") & (0x7FFF if index_size == 2 else 0x7F)
                   for i in range(associations)]
        pos += associations * index_size
        if pos > end:
            raise ValueError("ipma cut short")
        if item_id == item:
            return indexes
    return []


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
    blank = not any(isinstance(child.tag, str) for child in root)  # comments aside
    return ImageInfo("SVG", width, height, blank)


def parse_svg_length(value: str | None) -> int | None:
    """``"120"``, ``"120px"``, ``"120.5"`` -> 120; relative units -> None."""
    if not value:
        return None
    value = value.strip().removesuffix("px")
    try:
        return round(float(value))
    except ValueError:
        return None
